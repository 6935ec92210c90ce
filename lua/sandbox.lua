-- sandbox.lua - fresh environments for rule files, built from an allow list,
-- the metering of library calls whose cost grows with their data, and the
-- static analysis that decides whether a rule function may run
-- JIT-compiled.
--
-- Owns:
--   * new_env(seed): a new table per rule holding only allow-listed values
--     (copies of string/table/math, a per-rule deterministic math.random,
--     table-only get/setmetatable, metered library functions, pcall/xpcall
--     that hand a rule a DSL error as text (so it cannot re-raise it as
--     another file's), an xpcall that never runs a rule's handler for the
--     budget kill). Nothing in it is shared with another rule except
--     immutable functions.
--   * load(src, chunkname, env): source text only, never bytecode.
--   * harden(): changes the process-wide string library once per VM:
--     string.dump removed, string.rep bounded, the pattern functions
--     guarded and metered, string metatable protected. A rule reaches that
--     library through ("x"):method(), so it must be safe itself, not only
--     the copy in the rule's env.
--   * metering: the count hook (src/rulevm.c) only sees bytecodes, so a
--     library call that works on a big string or table would be one cheap
--     "instruction". Such calls charge their estimated cost, in budget
--     ticks (one tick = HOOK_PERIOD interpreted bytecodes, ~1.6 us), to the
--     rulevm control block given to set_ctl(), and raise "instruction
--     budget exceeded" in rule code once ctl.ticks is below 0. Pattern
--     functions are refused up front when their worst case (backtracking
--     over the subject) exceeds PATTERN_MAX_STEPS; otherwise they are
--     charged that worst case, or above PATTERN_TIMED_STEPS the time they
--     took. table.foreach/foreachi/maxn (loops the hook cannot stop) are
--     not offered; insert/remove/move/sort refuse tables with a protected
--     metatable (the shared SKU view), since they bypass __newindex.
--   * trusted sources: chunk names of the glue. A Lua function whose chunk
--     is not trusted is rule code (the C budget hook and on_error use the
--     same split: rule chunks are named "@file", glue chunks "=lua/...").
--     Metering interrupts and pattern limits apply to rule chunks only
--     (those M.load compiled); glue is charged, never interrupted.
--   * footprint(fns, limit): the bytes a rule's state holds (reachable from
--     its functions), for the VM to find a rule that hoards memory.
--   * is_bounded(fn): true when fn provably runs a bounded number of
--     bytecodes of bounded cost per call: no back-edge, no closure creation,
--     no string concatenation, at most BOUNDED_MAX_BC bytecodes, no rule
--     function and no string over BOUNDED_MAX_STRING bytes reachable from
--     its upvalues or environment (so it cannot recurse or call a loop).
--     Such functions may be JIT-compiled: the count hook does not fire
--     inside compiled code, but they need no hook.
-- Runs in the rule VM's lua_State (the writer thread), and under busted.
local M = {}

local ffi = require("ffi")
local jutil = require("jit.util")
local band, rshift = bit.band, bit.rshift
local floor, huge = math.floor, math.huge
local format = string.format

M.REP_MAX = 1024 * 1024         -- longest string string.rep may build
M.WALK_MAX = 200000             -- values is_bounded visits before giving up
M.PATTERN_MAX_STEPS = 4e6       -- worst-case matcher steps of one pattern call (~40 ms)
M.PATTERN_TIMED_STEPS = 2000    -- above: charge the time taken; below: the worst case
M.BOUNDED_MAX_BC = 500          -- bytecodes of a function that may run compiled
M.BOUNDED_MAX_STRING = 65536    -- longest string a compiled function may reach
M.TICK_NS = 1600                -- one budget tick (1000 interpreted bytecodes), in ns

-- Cost model of library work, in ns per unit (measured on LuaJIT 2.1,
-- x86-64, rounded up): a pattern matcher step, a byte scanned by
-- upper/lower/reverse/tonumber, a table.sort comparison, an element moved
-- by table.insert/remove/move/concat.
local NS_STEP, NS_SCAN, NS_CMP, NS_MOVE = 10, 1, 25, 2

local trusted = {}
M.trusted_sources = trusted

-- Marks the chunk of the calling function (or the given chunk name) as glue.
function M.trust(source)
  trusted[source or debug.getinfo(2, "S").source] = true
end
M.trust()
local SELF = debug.getinfo(1, "S").source

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

-- Chunk names of the rule sources M.load compiled.
local rule_sources = {}

-- Glue that calls rule functions: when a rule function ends in a tail call
-- (`return string.find(...)`), its frame is gone and the library function
-- appears to be called by whoever called the rule. Those callers are the
-- match/rank harness (chunk "=lua/rulevm.lua", function on its line 2) and
-- rulevm.compile (the file's top level); C functions (pcall, tostring,
-- table.sort, string.gsub) may call rule functions too.
local function calls_rules(info)
  if info.source == "=lua/rulevm.lua#harness" then return true end
  if info.source == "=lua/rulevm.lua" and info.linedefined <= 3 then return true end
  local rv = package.loaded.rulevm
  return type(rv) == "table" and info.func == rv.compile
end

-- True when the library function being run works for rule code: metering
-- may interrupt it and pattern limits apply. Glue (dsl, view, the error
-- handler) and, under busted, the test framework are only charged.
local function rule_caller()
  for level = 3, 60 do
    local info = debug.getinfo(level, "Sf")
    if not info then return false end
    if info.source ~= SELF then
      if info.what == "C" or rule_sources[info.source] then return true end
      if not trusted[info.source] then return false end
      return calls_rules(info)
    end
  end
  return false
end

-- -- Metering --------------------------------------------------------------------

local ctl            -- rulevm_ctl_t * (cdata) or nil: nothing is charged
local debt = 0       -- ns charged but not yet a whole tick

-- Sets the control block whose ticks library calls charge (nil: none).
-- Called when no evaluation runs, so ticks is reset to "no budget".
function M.set_ctl(c)
  ctl = c
  debt = 0
  if c ~= nil then c.ticks = 0x7fffffff end
end

function M.get_ctl() return ctl end

-- Charges ns of work; raises in rule code once the budget is gone.
local function charge(ns)
  local c = ctl
  if c == nil then return end
  debt = debt + ns
  if debt >= M.TICK_NS then
    local t = floor(debt / M.TICK_NS)
    debt = debt - t * M.TICK_NS
    local left = c.ticks - t
    if left < -0x7fffffff then left = -0x7fffffff end
    c.ticks = left
  end
  if c.ticks < 0 and rule_caller() then
    error("instruction budget exceeded", 0)
  end
end
M.charge = charge

local now_ns
do
  if not pcall(ffi.typeof, "sandbox_timespec_t") then
    ffi.cdef [[
      typedef struct sandbox_timespec { int64_t sec, nsec; } sandbox_timespec_t;
      int sandbox_clock_gettime(int clk, sandbox_timespec_t *ts) __asm__("clock_gettime");
    ]]
  end
  local ts = ffi.new("sandbox_timespec_t")
  local C = ffi.C
  now_ns = function()
    C.sandbox_clock_gettime(1, ts) -- CLOCK_MONOTONIC
    return tonumber(ts.sec) * 1e9 + tonumber(ts.nsec)
  end
end

local function charge_since(t0, ...)
  charge(now_ns() - t0)
  return ...
end

-- -- Strings ------------------------------------------------------------------------

-- The library's own functions, kept in the registry: harden() replaces
-- them in the shared string table, and this file may be loaded again in
-- the same state (busted reloads modules per spec file).
local real = debug.getregistry()["poold.sandbox.string"]
if not real then
  real = {}
  for _, k in ipairs({ "find", "match", "gmatch", "gsub", "rep", "upper", "lower", "reverse" }) do
    real[k] = string[k]
  end
  debug.getregistry()["poold.sandbox.string"] = real
end

local function bounded_rep(s, n, sep)
  local ts = type(s)
  local cn = tonumber(n)
  if (ts == "string" or ts == "number") and cn and cn >= 1 then
    local total = #tostring(s) * cn
    if sep ~= nil and (type(sep) == "string" or type(sep) == "number") then
      total = total + #tostring(sep) * (cn - 1)
    end
    if total > M.REP_MAX then
      error(format("string.rep result too large (%.0f bytes, limit %d)", total, M.REP_MAX), 2)
    end
    charge(total * 0.1)
  end
  return real.rep(s, n, sep)
end
M.bounded_rep = bounded_rep

local function scanning(fn)
  return function(s, ...)
    if type(s) == "string" and #s > 256 then charge(#s * NS_SCAN) end
    return fn(s, ...)
  end
end

-- Lua 5.1 pattern shape, for the worst case of its backtracking matcher:
-- anchored, items (elements), mult (repetitions that may backtrack into
-- each other: each multiplies the work by the subject length), adds
-- (repetitions the rest of the pattern cannot backtrack into: followed by
-- the end or by a literal character the repeated class does not match;
-- each adds one pass), opts (elements followed by ?, each doubles).
local SPECIALS = "[%^%$%*%+%?%.%(%[%%%-]"
local shapes, nshapes = {}, 0

local function class_end(p, i)
  local c = p:byte(i)
  if c == 37 then return i + 2 end              -- %x
  if c == 91 then                                -- [set]
    i = i + 1
    if p:byte(i) == 94 then i = i + 1 end
    repeat                                       -- the first ] is literal
      if i > #p then return i end                -- malformed: the matcher raises
      local d = p:byte(i)
      i = i + (d == 37 and 2 or 1)
    until p:byte(i) == 93
    return i + 1
  end
  return i + 1
end

-- The literal character the element at i matches, or nil (a class, a
-- special element or the end). Captures are skipped.
local function literal_at(p, i)
  while p:byte(i) == 40 or p:byte(i) == 41 do i = i + 1 end
  local c = p:byte(i)
  if c == nil or (c == 36 and i == #p) then return "" end  -- the end: nothing follows
  if c == 37 then
    local d = p:sub(i + 1, i + 1)
    if d ~= "" and not d:find("^%w") then return d end    -- %. %- ... escaped punctuation
    return nil
  end
  if real.find(string.char(c), SPECIALS) then return nil end
  return string.char(c)
end

local function shape_of(p)
  local sh = shapes[p]
  if sh then return sh end
  local n, i = #p, 1
  local anchored = p:byte(1) == 94
  if anchored then i = 2 end
  local items, mult, adds, opts = 0, 0, 0, 0
  local runs = {}                                -- classes of the one-pass repetitions
  while i <= n do
    local c = p:byte(i)
    local d = p:byte(i + 1)
    if c == 40 or c == 41 then                   -- ( ) captures cost nothing
      i = i + 1
    elseif c == 36 and i == n then               -- final $
      i = i + 1
    elseif c == 37 and d == 98 then              -- %bxy scans to the balance
      items, mult, i = items + 1, mult + 1, i + 4
    elseif c == 37 and d == 102 then             -- %f[set]
      items, i = items + 1, class_end(p, i + 2)
    elseif c == 37 and d and d >= 48 and d <= 57 then -- back reference
      items, mult, i = items + 1, mult + 1, i + 2
    else
      local e = class_end(p, i)
      local q = p:byte(e)
      items = items + 1
      if q == 42 or q == 43 or q == 45 then
        local lit = literal_at(p, e + 1)
        local ok, hit = lit ~= nil, nil
        if ok and lit ~= "" then
          ok, hit = pcall(real.find, lit, "^" .. p:sub(i, e - 1))
          ok = ok and hit == nil
        end
        if ok then
          adds = adds + 1
          runs[#runs + 1] = p:sub(i, e - 1) .. "+"
        else
          mult = mult + 1
        end
        i = e + 1
      elseif q == 63 then opts, i = opts + 1, e + 1
      else i = e end
    end
  end
  sh = { anchored = anchored, items = items, mult = mult, adds = adds, opts = opts, runs = runs,
         special = real.find(p, SPECIALS) ~= nil }
  if nshapes >= 1024 then shapes, nshapes = {}, 0 end
  shapes[p], nshapes = sh, nshapes + 1
  return sh
end
M.shape_of = shape_of

-- Worst-case matcher steps of string.<kind>(s, p, init, plain).
local function pattern_steps(kind, s, p, init, plain)
  local ls = #s
  local first = 1
  if init ~= nil and (kind == "find" or kind == "match") then
    first = tonumber(init) or 1
    if first < 0 then first = ls + first + 1 end
    if first < 1 then first = 1 end
    if first > ls + 1 then return 1 end
  end
  local n = ls - first + 1
  if kind == "find" and (plain or not shape_of(p).special) then
    local tries = n - #p + 1
    if tries < 1 then return 1 end
    return n / 500 + tries * #p / 200            -- memchr, then memcmp per hit
  end
  local sh = shape_of(p)
  local L = n + 1
  local starts = (sh.anchored and kind ~= "gmatch") and 1 or L
  local items = sh.items > 0 and sh.items or 1
  local pass = sh.adds > 0 and (1 + sh.adds) * L or 1
  local steps = starts * items * pass * L ^ sh.mult * 2 ^ sh.opts
  if steps > M.PATTERN_MAX_STEPS and sh.mult == 0 and sh.adds > 0 and n <= M.REP_MAX * 16 then
    -- Only one-pass repetitions: from any start each scans at most the
    -- longest run of its class in this subject (one linear scan to find).
    pass = 0
    for _, run in ipairs(sh.runs) do
      local longest, at = 0, first
      while true do
        local a, b = real.find(s, run, at)
        if not a then break end
        if b - a + 1 > longest then longest = b - a + 1 end
        at = b + 1
      end
      pass = pass + longest
    end
    steps = starts * (items + pass) * 2 ^ sh.opts
  end
  return steps
end
M.pattern_steps = pattern_steps

local function refuse(name, s, p, steps)
  error(format("%s: pattern %q is too costly for a %d-byte subject " ..
               "(worst case %.3g steps, limit %.3g); anchor it with ^, use plain find, " ..
               "or search a shorter string", name, #p > 40 and p:sub(1, 40) .. "..." or p,
               #s, steps, M.PATTERN_MAX_STEPS), 3)
end

local function charged_iterator(it)
  return function() return charge_since(now_ns(), it()) end
end

-- (No closure and no vararg on the path of a cheap call, so that it
-- compiles into a rule's trace.)
local function guarded(kind, fn)
  local name = "string." .. kind
  return function(s, p, a3, a4)
    local ts, tp = type(s), type(p)
    if (ts == "string" or ts == "number") and (tp == "string" or tp == "number") then
      local ss = ts == "string" and s or tostring(s)
      local ps = tp == "string" and p or tostring(p)
      local steps = pattern_steps(kind, ss, ps, a3, kind == "find" and a4)
      if steps > M.PATTERN_MAX_STEPS and rule_caller() then refuse(name, ss, ps, steps) end
      if steps > M.PATTERN_TIMED_STEPS then
        if kind == "gmatch" then return charged_iterator(fn(s, p)) end
        return charge_since(now_ns(), fn(s, p, a3, a4))
      end
      charge(steps * NS_STEP)
    end
    return fn(s, p, a3, a4)
  end
end

local safe_string = {
  find = guarded("find", real.find),
  match = guarded("match", real.match),
  gmatch = guarded("gmatch", real.gmatch),
  gsub = guarded("gsub", real.gsub),
  rep = bounded_rep,
  upper = scanning(real.upper),
  lower = scanning(real.lower),
  reverse = scanning(real.reverse),
}
M.safe_string = safe_string

local hardened = false

-- Makes the shared string library safe for rules. Idempotent.
function M.harden()
  if hardened then return end
  hardened = true
  string.dump = nil
  for k, f in pairs(safe_string) do string[k] = f end
  local mt = debug.getmetatable("")
  if mt then mt.__metatable = false end
end

-- -- Tables ---------------------------------------------------------------------------

local tinsert, tremove, tmove, tsort, tconcat = table.insert, table.remove, table.move, table.sort, table.concat

-- Raises unless t may be changed in place by the table library (which
-- bypasses __newindex): tables with a protected metatable belong to the
-- engine (the SKU view, s.attrs) or to another owner.
local function writable(t, fname)
  if type(t) == "table" then
    local mt = debug.getmetatable(t)
    if mt ~= nil and rawget(mt, "__metatable") ~= nil then
      error(format("bad argument #1 to '%s' (table is read-only)", fname), 3)
    end
  end
end

local function int_or(v, d)
  v = tonumber(v)
  return v and floor(v) or d
end

local safe_table = {
  insert = function(t, ...)
    writable(t, "insert")
    if select("#", ...) == 2 and type(t) == "table" then
      local shift = #t - int_or((...), #t) + 1
      if shift > 0 then charge(shift * NS_MOVE) end
    end
    return tinsert(t, ...)
  end,
  remove = function(t, pos)
    writable(t, "remove")
    if pos ~= nil and type(t) == "table" then
      local shift = #t - int_or(pos, #t)
      if shift > 0 then charge(shift * NS_MOVE) end
    end
    return tremove(t, pos)
  end,
  move = tmove and function(a1, f, e, t, a2)
    writable(a2 == nil and a1 or a2, "move")
    local fi, ei = int_or(f, 0), int_or(e, -1)
    if ei >= fi then charge((ei - fi + 1) * NS_MOVE) end
    return tmove(a1, f, e, t, a2)
  end or nil,
  sort = function(t, cmp)
    writable(t, "sort")
    if type(t) == "table" then
      local n = #t
      if n > 1 then charge(n * math.log(n) / math.log(2) * NS_CMP) end
    end
    return tsort(t, cmp)
  end,
  concat = function(t, sep, i, j)
    if type(t) == "table" then
      local count = int_or(j, #t) - int_or(i, 1) + 1
      if count > 0 then charge(count * NS_MOVE) end
    end
    return tconcat(t, sep, i, j)
  end,
}
M.safe_table = safe_table

-- Library functions a rule is not offered: loops in bytecode or C that the
-- count hook cannot stop (they run in trusted frames) and deprecated ones.
local TABLE_DROP = { foreach = true, foreachi = true, maxn = true }

-- -- Base functions ---------------------------------------------------------------------

-- A DSL error object (lua/dsl.lua: a table whose metatable says
-- "rule error") is handed to rule code as its text, so a rule cannot edit
-- the file or line of an error and raise it again as someone else's.
local function is_dsl_error(e)
  if type(e) ~= "table" then return false end
  local mt = debug.getmetatable(e)
  return mt ~= nil and rawget(mt, "__metatable") == "rule error"
end

local function scrub(ok, ...)
  if ok then return ok, ... end
  local e = ...
  if is_dsl_error(e) then return false, tostring(e) end
  return false, ...
end

local function safe_pcall(f, ...)
  return scrub(pcall(f, ...))
end

-- The budget kill is raised from the count hook, and LuaJIT runs a message
-- handler for it with hooks disabled: a rule's handler must not run then
-- (it could loop unseen). It gets every other error.
local KILLED = "instruction budget exceeded"

local function safe_xpcall(f, handler)
  if type(handler) ~= "function" then return xpcall(f, handler) end
  return scrub(xpcall(f, function(e)
    if e == KILLED then return e end
    if is_dsl_error(e) then e = tostring(e) end
    return handler(e)
  end))
end

local real_tonumber = tonumber
local function safe_tonumber(v, base)
  if type(v) == "string" and #v > 256 then charge(#v * NS_SCAN) end
  return real_tonumber(v, base)
end

-- -- Environment ---------------------------------------------------------------

local BASE = {
  "assert", "error", "ipairs", "next", "pairs", "select",
  "tostring", "type", "unpack", "rawequal", "rawlen",
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
  env.pcall, env.xpcall, env.tonumber = safe_pcall, safe_xpcall, safe_tonumber
  env.string = copy(string, { dump = true })
  for k, f in pairs(safe_string) do env.string[k] = f end
  env.table = copy(table, TABLE_DROP)
  for k, f in pairs(safe_table) do env.table[k] = f end
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

-- Compiles rule source text. Returns the chunk or nil, message. (LuaJIT
-- also refuses bytecode behind a "#!" line or a UTF-8 BOM.)
function M.load(src, chunkname, env)
  if type(src) ~= "string" then return nil, "rule source must be a string" end
  if src:byte(1) == 27 then
    return nil, "precompiled bytecode is not allowed; a rule is Lua source text"
  end
  local chunk, err = load(src, chunkname, "t", env)
  if chunk then rule_sources[chunkname] = true end
  return chunk, err
end

-- -- Footprint -----------------------------------------------------------------

-- Approximate bytes a rule holds between evaluations: everything reachable
-- from its functions (upvalues, environments, tables, metatables), not
-- descending into glue or C functions. Stops counting past 2 * limit.
-- Allocates; the caller lifts the VM's memory cap around it.
function M.footprint(fns, limit)
  local seen, stack, bytes = {}, {}, 0
  local function push(v)
    local t = type(v)
    if (t == "table" or t == "function" or t == "string") and not seen[v] then
      seen[v] = true
      stack[#stack + 1] = v
    end
  end
  for _, f in ipairs(fns) do push(f) end
  local cap = (limit or huge) * 2
  while #stack > 0 and bytes <= cap do
    local v = stack[#stack]
    stack[#stack] = nil
    local t = type(v)
    if t == "string" then
      bytes = bytes + #v + 24
    elseif t == "table" then
      bytes = bytes + 64
      push(debug.getmetatable(v))
      for k, x in next, v do
        bytes = bytes + 16
        push(k)
        push(x)
      end
    elseif M.is_rule_function(v) then
      bytes = bytes + 64
      for i = 1, 255 do
        local name, x = debug.getupvalue(v, i)
        if name == nil then break end
        bytes = bytes + 16
        push(x)
      end
      push(getfenv(v))
    end
  end
  return bytes
end

-- -- Static bound analysis ------------------------------------------------------

local BCM_FUNC, BCM_JUMP = 12 * 128, 13 * 128  -- D-operand modes (lj_bc.h)

-- The CAT opcode of this build: the instruction before the return in a
-- function that only concatenates.
local OP_CAT = (function()
  local f = function(a, b) return a .. b end
  local ops = {}
  for pc = 1, 100 do
    local ins = jutil.funcbc(f, pc)
    if not ins then break end
    ops[#ops + 1] = band(ins, 0xff)
  end
  return ops[#ops - 1]
end)()

-- Nil if the function's own bytecode has no back-edge, no FNEW, no CAT and
-- at most BOUNDED_MAX_BC instructions, else a reason.
local function straight_line(fn)
  for pc = 1, 1e9 do
    local ins, m = jutil.funcbc(fn, pc)
    if not ins then return nil end
    if pc > M.BOUNDED_MAX_BC then return "is too long" end
    local mode = band(m, 15 * 128)
    if mode == BCM_FUNC then return "creates functions" end
    if mode == BCM_JUMP and pc + rshift(ins, 16) - 0x7fff <= pc then return "has a loop" end
    if band(ins, 0xff) == OP_CAT then return "concatenates strings" end
  end
end

-- The analysis is only trusted when it recognises every loop form of this
-- LuaJIT build.
local analysis_ok = (function()
  local probes = {
    "for i = 1, 2 do end", "while true do end", "repeat until false",
    "for k in pairs({}) do end", "local f for k in f do end",
    "local a = 0 ::top:: a = a + 1 if a < 9 then goto top end",
    "return function() end", "local a, b = ... return a .. b",
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
    if t == "string" and #v > M.BOUNDED_MAX_STRING then
      count = huge
    elseif (t == "table" or t == "function") and not seen[v] then
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
    if count == huge then return false, "can reach a large string" end
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
  if count == huge then return false, "can reach a large string" end
  return true
end

return M
