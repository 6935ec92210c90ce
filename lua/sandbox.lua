-- sandbox.lua - fresh environments for rule files, built from an allow list,
-- and the static analysis that decides whether a rule function may run
-- JIT-compiled.
--
-- Owns:
--   * new_env(seed): a new table per rule holding only allow-listed values
--     (copies of string/table/math, a per-rule deterministic math.random,
--     table-only get/setmetatable). Nothing in it is shared with another
--     rule except immutable functions.
--   * load(src, chunkname, env): source text only, never bytecode.
--   * harden(): changes the process-wide string library once per VM:
--     string.dump removed, string.rep bounded, string metatable protected.
--     A rule reaches that library through ("x"):method(), so it must be
--     safe itself, not only the copy in the rule's env.
--   * trusted sources: chunk names of the glue. A Lua function whose chunk
--     is not trusted is rule code (the C budget hook and on_error use the
--     same split: rule chunks are named "@file", glue chunks "=lua/...").
--   * is_bounded(fn): true when fn provably runs a bounded number of
--     bytecodes per call: no back-edge and no closure creation in its
--     bytecode, and no rule-defined Lua function reachable from its
--     upvalues or environment (so it cannot recurse or call a loop). Such
--     functions may be JIT-compiled: the count hook does not fire inside
--     compiled code, but they need no hook.
-- Runs in the rule VM's lua_State (the writer thread), and under busted.
local M = {}

local jutil = require("jit.util")
local band, rshift = bit.band, bit.rshift

M.REP_MAX = 1024 * 1024         -- longest string string.rep may build
M.WALK_MAX = 200000             -- values is_bounded visits before giving up

local trusted = {}
M.trusted_sources = trusted

-- Marks the chunk of the calling function (or the given chunk name) as glue.
function M.trust(source)
  trusted[source or debug.getinfo(2, "S").source] = true
end
M.trust()

-- LuaJIT implements a few library functions in bytecode (math.deg, ...):
-- those are trusted by identity.
local trusted_fns = setmetatable({}, { __mode = "k" })
for _, lib in ipairs({ _G, string, table, math, bit or {} }) do
  for _, f in pairs(lib) do
    if type(f) == "function" and debug.getinfo(f, "S").what ~= "C" then trusted_fns[f] = true end
  end
end

-- True if f is a Lua function that does not come from trusted glue.
function M.is_rule_function(f)
  if type(f) ~= "function" or trusted_fns[f] then return false end
  local info = debug.getinfo(f, "S")
  return info.what ~= "C" and not trusted[info.source]
end

-- -- string.rep, bounded ------------------------------------------------------

local real_rep = string.rep

local function bounded_rep(s, n, sep)
  local ts = type(s)
  local cn = tonumber(n)
  if (ts == "string" or ts == "number") and cn and cn >= 1 then
    local total = #tostring(s) * cn
    if sep ~= nil and (type(sep) == "string" or type(sep) == "number") then
      total = total + #tostring(sep) * (cn - 1)
    end
    if total > M.REP_MAX then
      error(string.format("string.rep result too large (%.0f bytes, limit %d)", total, M.REP_MAX), 2)
    end
  end
  return real_rep(s, n, sep)
end
M.bounded_rep = bounded_rep

local hardened = false

-- Makes the shared string library safe for rules. Idempotent.
function M.harden()
  if hardened then return end
  hardened = true
  string.dump = nil
  string.rep = bounded_rep
  local mt = debug.getmetatable("")
  if mt then mt.__metatable = false end
end

-- -- Environment ---------------------------------------------------------------

local BASE = {
  "assert", "error", "ipairs", "next", "pairs", "pcall", "select", "tonumber",
  "tostring", "type", "unpack", "xpcall", "rawequal", "rawlen",
}

local function copy(t, skip)
  local c = {}
  for k, v in pairs(t) do
    if not (skip and skip[k]) then c[k] = v end
  end
  return c
end

-- Park-Miller minimal standard generator: exact in doubles, deterministic,
-- one state per rule so rules cannot disturb each other's sequences.
local function make_random(seed)
  local state
  local floor = math.floor
  local function randomseed(x)
    x = tonumber(x) or 0
    if x ~= x then x = 0 end
    state = floor(math.abs(x)) % 2147483646 + 1
  end
  local function random(m, n)
    state = (state * 16807) % 2147483647
    local r = (state - 1) / 2147483646
    if m == nil then return r end
    m = tonumber(m)
    if m == nil then error("bad argument #1 to 'random' (number expected)", 2) end
    if n == nil then
      m, n = 1, m
    else
      n = tonumber(n)
      if n == nil then error("bad argument #2 to 'random' (number expected)", 2) end
    end
    m, n = floor(m), floor(n)
    if m > n then error("bad argument to 'random' (interval is empty)", 2) end
    return floor(r * (n - m + 1)) + m
  end
  randomseed(seed)
  return random, randomseed
end

local function safe_getmetatable(v)
  if type(v) ~= "table" then return nil end
  return getmetatable(v)
end

local function safe_setmetatable(t, mt)
  if type(t) ~= "table" then
    error("bad argument #1 to 'setmetatable' (table expected, got " .. type(t) .. ")", 2)
  end
  if mt ~= nil and type(mt) ~= "table" then
    error("bad argument #2 to 'setmetatable' (nil or table expected)", 2)
  end
  return setmetatable(t, mt)
end

-- A new environment for one rule. seed: number for math.random.
function M.new_env(seed)
  local env = {}
  for _, k in ipairs(BASE) do
    local v = _G[k]
    if v ~= nil then env[k] = v end
  end
  env.string = copy(string, { dump = true })
  env.string.rep = bounded_rep
  env.table = copy(table)
  env.math = copy(math)
  env.math.random, env.math.randomseed = make_random(seed or 0)
  env.getmetatable = safe_getmetatable
  env.setmetatable = safe_setmetatable
  env._G = env
  env._VERSION = _VERSION
  return env
end

-- A stable 31-bit seed from a string (the rule's file name).
function M.seed_of(s)
  local h = 5381
  for i = 1, #s do h = (h * 33 + s:byte(i)) % 2147483647 end
  return h
end

-- Compiles rule source text. Returns the chunk or nil, message.
function M.load(src, chunkname, env)
  if type(src) ~= "string" then return nil, "rule source must be a string" end
  if src:byte(1) == 27 then
    return nil, "precompiled bytecode is not allowed; a rule is Lua source text"
  end
  return load(src, chunkname, "t", env)
end

-- -- Static bound analysis ------------------------------------------------------

local BCM_FUNC, BCM_JUMP = 12 * 128, 13 * 128  -- D-operand modes (lj_bc.h)

-- Nil if the function's own bytecode has no back-edge and no FNEW, else a
-- reason.
local function straight_line(fn)
  for pc = 1, 1e9 do
    local ins, m = jutil.funcbc(fn, pc)
    if not ins then return nil end
    local mode = band(m, 15 * 128)
    if mode == BCM_FUNC then return "creates functions" end
    if mode == BCM_JUMP and pc + rshift(ins, 16) - 0x7fff <= pc then return "has a loop" end
  end
end

-- The analysis is only trusted when it recognises every loop form of this
-- LuaJIT build.
local analysis_ok = (function()
  local probes = {
    "for i = 1, 2 do end", "while true do end", "repeat until false",
    "for k in pairs({}) do end", "local f for k in f do end",
    "local a = 0 ::top:: a = a + 1 if a < 9 then goto top end",
    "return function() end",
  }
  for _, src in ipairs(probes) do
    if straight_line(load(src)) == nil then return false end
  end
  return straight_line(load("local s = ... return s.a >= 1 and s.b < 2")) == nil
end)()
M.analysis_ok = analysis_ok

-- True (and nil) when fn runs a bounded number of steps per call; else
-- false and a reason.
function M.is_bounded(fn)
  if not analysis_ok then return false, "bound analysis unavailable" end
  if type(fn) ~= "function" or not M.is_rule_function(fn) then return false, "not a rule function" end
  local why = straight_line(fn)
  if why then return false, why end
  local seen, stack, count = {}, {}, 0
  local function push(v)
    local t = type(v)
    if (t == "table" or t == "function") and not seen[v] then
      seen[v] = true
      stack[#stack + 1] = v
    end
  end
  for i = 1, 1e6 do
    local name, v = debug.getupvalue(fn, i)
    if name == nil then break end
    push(v)
  end
  push(getfenv(fn))
  while #stack > 0 do
    local v = stack[#stack]
    stack[#stack] = nil
    count = count + 1
    if count > M.WALK_MAX then return false, "too much reachable data to analyse" end
    if type(v) == "table" then
      push(debug.getmetatable(v))
      for k, x in next, v do
        push(k)
        push(x)
      end
    elseif M.is_rule_function(v) then
      return false, "can call rule functions"
    end
  end
  return true
end

return M
