-- rulevm.lua - the Lua half of src/rulevm.c: compiles rule files into rule
-- objects, runs their examples, evaluates match/rank over batches of SKUs,
-- and turns errors into {file, line, msg}.
--
-- C calls (always under lua_pcall with on_error as the message handler):
--   init(roots, view_cdef, ctl_cdef, ctl)   once per VM (lightuserdata)
--   compile(file, name_hint|nil, src) -> rule object
--   examples(rule)                          raises the first failure
-- A rule object is a table: [1] match harness (or false), [2] rank harness
-- (or false), [3] true when match/rank run JIT-compiled, and the pool's
-- fields for C to copy (name, title, where, limit, active_from, ...).
--
-- A harness is a closure made per rule from HARNESS_* text (its own
-- prototype, so each rule gets its own trace). It loops over ctl.ids from
-- ctl.pos to ctl.n, storing its position in ctl.pos before each SKU and
-- resetting ctl.ticks (the C count hook's budget) to ctl.budget; on an
-- error C records it and re-enters at ctl.pos + 1. No per-SKU allocation
-- on the JIT path.
--
-- Budget and JIT: every rule chunk is compiled with jit.off(chunk, true), so
-- its top level and helpers run in the interpreter where the count hook
-- bounds them. match/rank are switched back on only when
-- sandbox.is_bounded proves they run a bounded number of bytecodes.
local ffi = require("ffi")
local sandbox = require("sandbox")
local dsl = require("dsl")
local view = require("view")
sandbox.trust()

local M = {}

local HARNESS_CHUNK = "=lua/rulevm.lua#harness"
sandbox.trust(HARNESS_CHUNK)

local HARNESS_MATCH = [[
local ctl, roots, s, fn = ...
return function()
  local ids, out, n = ctl.ids, ctl.out8, ctl.n
  for i = ctl.pos, n - 1 do
    ctl.pos = i
    ctl.ticks = ctl.budget
    roots.cur = ids[i]
    if fn(s) then out[i] = 1 else out[i] = 0 end
  end
  ctl.pos = n
end]]

local HARNESS_RANK = [[
local ctl, roots, s, fn, bad = ...
local ninf = -math.huge
return function()
  local ids, out, n = ctl.ids, ctl.outd, ctl.n
  for i = ctl.pos, n - 1 do
    ctl.pos = i
    ctl.ticks = ctl.budget
    roots.cur = ids[i]
    local v = fn(s)
    if type(v) ~= "number" then bad(v) end
    if v ~= v then v = ninf end
    out[i] = v
  end
  ctl.pos = n
end]]

local ctl, roots, s
local live = setmetatable({}, { __mode = "k" }) -- compiled rule objects

function M.init(roots_ud, view_cdef, ctl_cdef, ctl_ud)
  sandbox.harden()
  if not pcall(ffi.typeof, "view_roots_t") then ffi.cdef(view_cdef) end
  if not pcall(ffi.typeof, "rulevm_ctl_t") then ffi.cdef(ctl_cdef) end
  roots = ffi.cast("view_roots_t *", roots_ud)
  ctl = ffi.cast("rulevm_ctl_t *", ctl_ud)
  sandbox.set_ctl(ctl) -- metered library calls charge ctl.ticks
  s = view.ffi_view(roots)
end

local function fn_line(fn)
  local info = debug.getinfo(fn, "S")
  return info.linedefined or 0
end

-- -- Errors -------------------------------------------------------------------

local function split_position(msg)
  local pfx, ln, rest = msg:match("^(.-):(%d+): (.*)$")
  if pfx and not pfx:find("\n") then return pfx, tonumber(ln), rest end
  return nil, nil, msg
end

-- Message handler: returns { file|false, line, msg }.
function M.on_error(e)
  if dsl.is_rule_error(e) then return { e.file, e.line, e.msg } end
  local msg
  if type(e) == "string" then
    msg = e
  elseif type(e) == "number" then
    msg = tostring(e)
  else
    msg = "(error object is a " .. type(e) .. " value)"
  end
  local file, line
  for level = 2, 200 do
    local info = debug.getinfo(level, "Sl")
    if not info then break end
    if info.what ~= "C" and not sandbox.trusted_sources[info.source]
        and info.source:sub(1, 1) == "@" then
      file, line = info.source:sub(2), info.currentline
      break
    end
  end
  local pfx, pline, rest = split_position(msg)
  if pfx then
    local tail = pfx:sub(1, 3) == "..." and pfx:sub(4) or pfx
    if file and file:sub(-#tail) == tail then
      line = pline                          -- error(msg, level) chose this line
    elseif not file then
      line = 0
    end
    msg = rest
  end
  return { file or false, line or 0, msg }
end

-- -- Compile ------------------------------------------------------------------

local function base_name(file)
  return (file:match("([^/]+)$") or file):gsub("%.lua$", "")
end

local function harness(text, ...)
  return assert(load(text, HARNESS_CHUNK, "t"))(ctl, roots, s, ...)
end

function M.compile(file, name_hint, src)
  local ctx = dsl.new_context(file, name_hint, src)
  local env = dsl.install(sandbox.new_env(sandbox.seed_of(base_name(file))), ctx)
  local chunk, err = sandbox.load(src, "@" .. file, env)
  if not chunk then
    local _, line, msg = split_position(err)
    error(dsl.rule_error(file, line or 0, msg), 0)
  end
  jit.off(chunk, true)
  ctl.ticks = ctl.budget_compile
  local ret = chunk()
  ctx.closed = true -- the DSL words refuse to run from match/rank
  ctl.ticks = 0x7fffffff
  local p = dsl.pool_of(ctx, ret)
  if not p then
    error(dsl.rule_error(file, dsl.last_line(ctx),
      'a rule file must end with: return pool "' .. (name_hint or "name") .. '" { ... }'), 0)
  end
  local jit_on = true -- (not ipairs: match may be nil and rank still present)
  if p.match and not sandbox.is_bounded(p.match) then jit_on = false end
  if p.rank and not sandbox.is_bounded(p.rank) then jit_on = false end
  if jit_on then
    if p.match then jit.on(p.match) end
    if p.rank then jit.on(p.rank) end
  end
  local rank_bad
  if p.rank then
    local line = fn_line(p.rank)
    rank_bad = function(v)
      error(dsl.rule_error(file, line, "rank must return a number, got " .. type(v)), 0)
    end
  end
  local rule = {
    p.match and harness(HARNESS_MATCH, p.match) or false,
    p.rank and harness(HARNESS_RANK, p.rank, rank_bad) or false,
    jit_on and (p.match ~= nil or p.rank ~= nil),
    pool = p,
    name = p.name, title = p.title, where = p.where, limit = p.limit,
    active_from = p.active_from, active_to = p.active_to,
    pin = p.pin, exclude = p.exclude, nexamples = #p.examples,
    has_match = p.match ~= nil, has_rank = p.rank ~= nil,
  }
  live[rule] = true
  return rule
end

-- Called by C when the VM's memory is short even after a full collection:
-- the live rule whose state holds the most, if that is over `limit` bytes,
-- is stopped (its functions dropped, so the collector takes its data back)
-- and fails every evaluation from then on with the message returned here.
-- Returns file, message; or nothing. Allocates (C lifts the cap).
function M.evict(limit)
  local worst, size = nil, 0
  for rule in pairs(live) do
    local p = rule.pool
    if p then
      local b = sandbox.footprint({ p.match, p.rank }, limit)
      if b > size then worst, size = rule, b end
    end
  end
  if not worst or size <= limit then return end
  local file = worst.pool.file
  worst.evicted = string.format("rule stopped: its state holds over %d MB between evaluations " ..
    "(limit %d MB per rule); it stays stopped until published again",
    math.floor(size / 1048576), math.floor(limit / 1048576))
  worst[1], worst[2], worst.pool = false, false, nil
  jit.flush() -- compiled traces keep the constants they were recorded with
  return file, worst.evicted
end

-- -- Examples -------------------------------------------------------------------

-- A short, side-effect-free rendering (never calls a rule's __tostring).
local function show(v)
  local t = type(v)
  if t == "string" then return string.format("%q", v) end
  if t == "number" or t == "boolean" or t == "nil" then return tostring(v) end
  return "a " .. t
end

local function describe(ex)
  local d = "example " .. ex.index
  if ex.name then d = d .. " (" .. ex.name .. ")" end
  return d
end

-- Runs every example; raises a rule error for the first that fails.
function M.examples(rule)
  local p = rule.pool
  if not p then error(rule.evicted or "rule stopped", 0) end
  for _, ex in ipairs(p.examples) do
    local v, tags = view.table_view(ex.sku)
    local clauses, where_ok = dsl.where_explain(p.where_data, function(t) return tags[t] == true end)
    local matched, match_res = true, nil
    if where_ok and p.match then
      ctl.ticks = ctl.budget
      local ok, res = xpcall(p.match, M.on_error, v)
      ctl.ticks = 0x7fffffff
      if not ok then
        local line, msg = ex.line, type(res) == "string" and res or show(res)
        if type(res) == "table" then line, msg = res[2], res[3] end
        error(dsl.rule_error(p.file, line, describe(ex) .. " (line " .. ex.line .. "): match failed: " .. msg), 0)
      end
      match_res = res
      matched = res and true or false
    end
    local got = where_ok and matched
    if got ~= ex.expect then
      local why = {}
      if p.where_data then
        local parts = {}
        for _, c in ipairs(clauses) do
          if not where_ok or #clauses == 1 then parts[#parts + 1] = c.text .. " -> " .. tostring(c.value) end
        end
        why[#why + 1] = "where " .. tostring(where_ok) .. (#parts > 0 and " (" .. table.concat(parts, ", ") .. ")" or "")
      end
      if p.match then
        if where_ok then
          why[#why + 1] = "match returned " .. show(match_res)
        else
          why[#why + 1] = "match not run"
        end
      end
      if #why == 0 then why[1] = "the pool has no where and no match, so every SKU is in" end
      error(dsl.rule_error(p.file, ex.line, string.format("%s: expected %s, got %s: %s",
        describe(ex), tostring(ex.expect), tostring(got), table.concat(why, "; "))), 0)
    end
  end
end

-- -- Explain ----------------------------------------------------------------------

local function reads_json(reads)
  local seen, parts = {}, {}
  for _, r in ipairs(reads) do
    local k, v = r[1], r[2]
    if not seen[k] then
      seen[k] = true
      local t = type(v)
      local jv = (t == "string" or t == "number" or t == "boolean") and view.json(v) or "null"
      parts[#parts + 1] = view.json(k) .. ":" .. jv
    end
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

local function error_text(res)
  if type(res) == "table" then
    return (res[1] or "?") .. ":" .. tostring(res[2] or 0) .. ": " .. tostring(res[3])
  end
  return tostring(res)
end

-- Runs match and rank for SKU `id` (roots.cur) through a recording view;
-- returns the JSON text described at rulevm_explain in src/rulevm.h.
function M.explain(rule, id)
  local p = rule.pool
  if not p then error(rule.evicted or "rule stopped", 0) end
  roots.cur = id
  local parts = {}
  for _, which in ipairs({ "match", "rank" }) do
    local fn = p[which]
    if fn then
      local reads = {}
      local rv = view.recording_view(s, reads)
      ctl.ticks = ctl.budget
      local ok, res = xpcall(fn, M.on_error, rv)
      ctl.ticks = 0x7fffffff
      local fields = { '"reads":' .. reads_json(reads) }
      if not ok then
        fields[#fields + 1] = '"error":' .. view.json(error_text(res))
        if which == "match" then fields[#fields + 1] = '"result":false' end
      elseif which == "match" then
        fields[#fields + 1] = '"result":' .. tostring(res and true or false)
        fields[#fields + 1] = '"value":' .. view.json(show(res))
      else
        local score = (type(res) == "number" and res == res) and view.json(res) or "null"
        fields[#fields + 1] = '"score":' .. score
      end
      parts[#parts + 1] = view.json(which) .. ":{" .. table.concat(fields, ",") .. "}"
    end
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

-- For tests and tooling: which functions of a rule run JIT-compiled.
function M.is_jit(rule) return rule[3] end

return M
