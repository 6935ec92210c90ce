-- attack_spec.lua - rules that try to escape or harm, through the real
-- compile path (lua/rulevm.lua over a small FFI store, see support.lua):
-- every attempt must be refused or stopped, name the rule's file, and leave
-- other rules untouched. The count hook lives in C (tests/unit/
-- test_sandbox_attacks.c covers loops, recursion and memory); here the
-- budget is the control block's ticks, which lua/sandbox.lua's metered
-- library calls charge.
local S = require("tests.lua.support")
local sandbox = require("sandbox")
local ffi = require("ffi")

local real_dump = string.dump -- nil once a spec has hardened this Lua state

local rulevm, store, ctl = S.vm()
local previous_ctl = sandbox.get_ctl()
sandbox.set_ctl(ctl)

local function compile(src, file, name)
  local rule, err = S.compile(src, file or "rules/evil.lua", name)
  ctl.ticks = 0x7fffffff
  return rule, err
end

local function ok_rule(src, file, name)
  local rule, err = compile(src, file, name)
  assert.is_truthy(rule, err)
  return rule
end

-- Runs a rule's match over SKU 0 through its harness, with on_error as the
-- message handler, as src/rulevm.c does; returns true, out[0] or false,
-- "file:line: msg".
local one_id, one_out = ffi.new("uint32_t[1]", 0), ffi.new("uint8_t[1]")
local function run(rule, budget)
  ctl.ids, ctl.out8, ctl.n, ctl.pos = one_id, one_out, 1, 0
  ctl.budget = budget or 200
  local ok, res = xpcall(rule[1], rulevm.on_error)
  ctl.ticks, ctl.budget = 0x7fffffff, 200
  if ok then return true, one_out[0] end
  return false, string.format("%s:%d: %s", tostring(res[1]), res[2], res[3])
end

local function refused(src, want, file)
  local rule = ok_rule(src, file)
  local ok, err = run(rule)
  assert.is_false(ok, "expected an error matching " .. want)
  assert.matches(want, err, 1, true)
  return err
end

teardown(function() sandbox.set_ctl(previous_ctl) end)

describe("a rule cannot reach", function()
  local FORBIDDEN = {
    "io", "os", "ffi", "jit", "debug", "require", "package", "load", "loadstring", "loadfile",
    "dofile", "collectgarbage", "gcinfo", "setfenv", "getfenv", "newproxy", "module",
    "coroutine", "rawset", "rawget", "print", "bit", "string.dump", "table.foreach",
    "table.foreachi", "table.maxn",
  }

  it("the engine's globals and modules, by name or through _G", function()
    local checks = {}
    for _, name in ipairs(FORBIDDEN) do
      checks[#checks + 1] = ("assert(%s == nil, '%s reachable')"):format(name, name)
      if not name:find("%.") then
        checks[#checks + 1] = ("assert(_G[%q] == nil, '_G.%s reachable')"):format(name, name)
      end
    end
    ok_rule(table.concat(checks, "\n") .. [[

assert(_G._G == _G and _G.pool ~= nil, "_G is the rule's own environment")
assert(("").dump == nil and ("").rep ~= nil, "string methods are the hardened library")
return pool "t" {}]])
  end)

  it("metatables other than its own tables'", function()
    local rule = ok_rule([[
return pool "t" { match = function(s)
  assert(getmetatable("") == nil and getmetatable(1) == nil and getmetatable(print) == nil)
  assert(getmetatable(s) == false and getmetatable(s.attrs) == false)
  assert(not pcall(setmetatable, "", {}))
  assert(not pcall(setmetatable, s, {}))
  for _, f in ipairs({ "price", "stock", "sku", "market", "lazmall", "sales_24h", "has", "attrs" }) do
    assert(type(s[f]) ~= "cdata" and type(s[f]) ~= "userdata", f .. " is raw engine data")
  end
  return true
end }]])
    assert.are.same({ true, 1 }, { run(rule) })
  end)

  it("bytecode, also behind a #! line or a UTF-8 BOM", function()
    local bc = real_dump and real_dump(function() return 1 end) or ("\27LJ\2" .. ("\0"):rep(16))
    for _, src in ipairs({ bc, "#!/usr/bin/lua\n" .. bc, "\239\187\191" .. bc }) do
      local rule, err = compile(src)
      assert.is_nil(rule)
      assert.matches("^rules/evil.lua:?%d*: ", err)
      assert.is_truthy(err:find("bytecode", 1, true) or err:find("binary", 1, true), err)
    end
  end)

  it("another rule's globals, upvalues or library tables", function()
    local a = ok_rule([[
secret = "a's"
local hidden = { "a's upvalue" }
string.upper = function() return "hacked" end
table.concat = nil
math.floor = function() return 42 end
return pool "a" { match = function(s) return hidden[1] ~= nil end }]], "rules/a.lua", "a")
    local b = ok_rule([[
return pool "b" { match = function(s)
  assert(secret == nil and hidden == nil, "a's state is visible")
  assert(("x"):upper() == "X" and string.upper("y") == "Y", "string library changed")
  assert(table.concat({ "p", "q" }) == "pq" and math.floor(1.5) == 1, "shared library changed")
  return true
end }]], "rules/b.lua", "b")
    assert.are.same({ true, 1 }, { run(a) })
    assert.are.same({ true, 1 }, { run(b) })
  end)
end)

describe("the SKU view", function()
  it("cannot be written, in any way a rule has", function()
    refused('return pool "t" { match = function(s) s.price = 0 return true end }', "SKU view is read-only")
    refused('return pool "t" { match = function(s) s.attrs.x = 1 return true end }', "SKU view is read-only")
    refused('return pool "t" { match = function(s) table.insert(s, "x") return true end }',
      "bad argument #1 to 'insert' (table is read-only)")
    refused('return pool "t" { match = function(s) table.insert(s.attrs, 1, "x") return true end }',
      "(table is read-only)")
    refused('return pool "t" { match = function(s) table.sort(s) return true end }', "(table is read-only)")
    refused('return pool "t" { match = function(s) table.remove(s) return true end }', "(table is read-only)")
    refused('return pool "t" { match = function(s) setmetatable(s, nil) return true end }',
      "cannot change a protected metatable")
  end)

  it("carries nothing from one rule to the next", function()
    local a = ok_rule([[
return pool "a" { match = function(s) pcall(table.insert, s, "from a") return true end }]], "rules/a.lua", "a")
    local b = ok_rule([[
return pool "b" { match = function(s) return next(s) == nil and #s == 0 and next(s.attrs) == nil end }]],
      "rules/b.lua", "b")
    run(a)
    assert.are.same({ true, 1 }, { run(b) })
  end)
end)

describe("errors", function()
  it("cannot be forged to name another rule's file", function()
    -- a DSL error caught by pcall is handed to the rule as text
    local rule = ok_rule([[
return pool "t" { match = function(s)
  local ok, e = pcall(tag, 42)
  assert(not ok and type(e) == "string" and e:find("^rules/evil.lua:2: tag "), tostring(e))
  ok, e = xpcall(tag, function(m) return type(m) end, 42)
  assert(e == "string", "xpcall's handler got a " .. tostring(e))
  error("rules/victim.lua:7: I am someone else")
end }]])
    local ok, err = run(rule)
    assert.is_false(ok)
    -- the file and line are the rule's own; its text stays text
    assert.are.equal("rules/evil.lua:6: rules/victim.lua:7: I am someone else", err)
  end)

  it("never run a rule's __tostring or __gc in the error handler", function()
    local rule = ok_rule([[
local bomb = setmetatable({}, { __tostring = function() while true do end end,
                                __gc = function() while true do end end })
return pool "t" { match = function(s) error(bomb) end }]])
    local ok, err = run(rule)
    assert.is_false(ok)
    assert.are.equal("rules/evil.lua:3: (error object is a table value)", err)
  end)
end)

describe("patterns", function()
  it("refuse the classic backtracking bomb before running it", function()
    local t0 = os.clock()
    local err = refused([[
return pool "t" { match = function(s)
  return string.find(("a"):rep(30000), ("a*"):rep(30) .. "b")
end }]], "string.find: pattern")
    assert.matches("too costly for a 30000-byte subject", err, 1, true)
    assert.is_true(os.clock() - t0 < 0.5)
    -- also through a method call on the shared string metatable, and in gmatch/gsub/match
    refused([[return pool "t" { match = function(s) local x = ("a"):rep(5000) return x:match(".-.-.-b") end }]],
      "string.match: pattern")
    refused([[return pool "t" { match = function(s) for w in ("a"):rep(5000):gmatch("a*a*b") do end return true end }]],
      "string.gmatch: pattern")
    refused([[return pool "t" { match = function(s) return (("a"):rep(9000):gsub("(a+)+b", "")) end }]],
      "string.gsub: pattern")
    refused([[
local hay, needle = ("a"):rep(1000000), ("a"):rep(500000) .. "b"
return pool "t" { match = function(s) return hay:find(needle, 1, true) end }]], "string.find: pattern")
  end)

  it("refuse them even in a tail call from the harness or the top level", function()
    refused([[return pool "t" { match = function(s) return string.find(("a"):rep(9000), "a*a*a*b") end }]],
      "too costly")
    local rule, err = compile([[return string.find(("a"):rep(9000), "a*a*a*b")]])
    assert.is_nil(rule)
    assert.matches("too costly", err, 1, true)
  end)

  it("let ordinary patterns through, on short fields and long strings alike", function()
    local rule = ok_rule([[
local long = ("word "):rep(100000) .. "end"
return pool "t" { match = function(s)
  assert(s.sku:find("^S%d+$") and s.market:match("^(%u+)$") == "SG")
  assert(long:find("end", 1, true) == #long - 2)
  assert(long:match("^(%a+) ") == "word" and long:find("end$"))
  assert(select(2, long:gsub("word", "")) == 100000)
  assert(("a/b/c"):match("([^/]+)$") == "c")
  return true
end }]])
    store.rows[0].market = 1
    assert.are.same({ true, 1 }, { run(rule, 100000) })
  end)

  it("let glue scan a big rule source (compiling is not a rule call)", function()
    local src = ("-- padding padding padding\n"):rep(20000) .. 'return pool "t" {}'
    ok_rule(src)
  end)

  it("estimate the worst case from the pattern's shape", function()
    local function shape(p)
      local sh = sandbox.shape_of(p)
      return { sh.anchored, sh.items, sh.mult, sh.adds, sh.opts }
    end
    assert.are.same({ true, 2, 0, 0, 0 }, shape("^ab"))
    assert.are.same({ false, 2, 0, 1, 0 }, shape("a*b"))          -- b is not an a: one pass
    assert.are.same({ false, 2, 1, 0, 0 }, shape(".*b"))          -- . matches b: backtracks
    assert.are.same({ false, 1, 0, 1, 0 }, shape("([^/]+)$"))
    assert.are.same({ false, 3, 0, 0, 2 }, shape("a?b?c"))
    assert.are.same({ false, 2, 1, 0, 0 }, shape("%b()x"))
    local steps = sandbox.pattern_steps
    assert.is_true(steps("find", ("a"):rep(1000), "^abc") <= 3)
    assert.is_true(steps("find", ("a"):rep(1000), "abc", 1, true) < 100)
    assert.is_true(steps("match", ("a"):rep(1000), "(a*)*b") > 1e6)
  end)
end)

describe("metered library calls", function()
  it("stop a loop hidden in table.move at once, interpreted or compiled", function()
    local t0 = os.clock()
    local rule = ok_rule('return pool "t" { match = function(s) table.move({}, 1, 1e13, 1, {}) return true end }')
    assert.is_true(rule[3], "a straight-line match runs compiled")
    assert.are.same({ false, "rules/evil.lua:1: instruction budget exceeded" }, { run(rule) })
    local top, err = compile('table.move({}, 1, 1e13, 1, {})\nreturn pool "t" {}')
    assert.is_nil(top)
    assert.are.equal("rules/evil.lua:1: instruction budget exceeded", err)
    assert.is_true(os.clock() - t0 < 0.5)
  end)

  it("charge work on big tables and strings to the budget", function()
    local cases = {
      { "table.sort(big)", "local big = {} for i = 1, 300000 do big[i] = (i * 7919) % 300007 end" },
      { "table.insert(big, 1, 0)", "local big = {} for i = 1, 300000 do big[i] = i end" },
      { "table.remove(big, 1)", "local big = {} for i = 1, 300000 do big[i] = i end" },
      { "table.concat(big)", "local big = {} for i = 1, 300000 do big[i] = 'x' end" },
      { "tonumber(big)", "local big = ('1'):rep(1000000)" },
      { "big:upper()", "local big = ('x'):rep(1000000)" },
      { "big:reverse()", "local big = ('x'):rep(1000000)" },
      { "('x'):rep(1000000)", "" },
    }
    for _, c in ipairs(cases) do
      local rule = ok_rule(c[2] .. "\nreturn pool \"t\" { match = function(s) local r = " .. c[1] .. " return true end }")
      local ok, err = run(rule, 20)
      assert.is_false(ok, c[1] .. " was not charged")
      assert.are.equal("rules/evil.lua:2: instruction budget exceeded", err, c[1])
      assert.are.same({ true, 1 }, { run(rule, 1e6) }, c[1] .. " with a large budget")
    end
  end)

  it("charge each step of a gmatch iteration", function()
    local rule = ok_rule([[
local text = ("key=value; "):rep(20000)
return pool "t" { match = function(s)
  local n = 0
  for k, v in text:gmatch("(%w+)=(%w+)") do n = n + 1 end
  return n == 20000
end }]])
    assert.is_false((run(rule, 2)))
    assert.are.same({ true, 1 }, { run(rule, 1e6) })
  end)

  it("never interrupt glue (it is charged, the rule is stopped afterwards)", function()
    ctl.ticks = -5
    assert.are.equal(3, (("abc"):find("c")))      -- busted and glue are not rule code
    ctl.ticks = 0x7fffffff
  end)
end)

describe("compiled (JIT) functions", function()
  local function jit_of(src) return ok_rule(src)[3] end

  it("exclude concatenation, long bodies and large reachable strings", function()
    assert.is_true(jit_of('return pool "t" { match = function(s) return s.price > 1 end }'))
    assert.is_false(jit_of('return pool "t" { match = function(s) return (s.sku .. "x") ~= "" end }'))
    local body = ("x = x + s.price "):rep(300)
    assert.is_false(jit_of('return pool "t" { match = function(s) local x = 0 ' .. body .. ' return x > 0 end }'))
    assert.is_false(jit_of('local big = ("x"):rep(100000)\nreturn pool "t" { match = function(s) return big < s.sku end }'))
  end)
end)

describe("memory footprint", function()
  it("measures what a rule keeps between evaluations", function()
    local small = ok_rule('return pool "t" { match = function(s) return s.price > 1 end }')
    local big = ok_rule('local keep = {} for i = 1, 100000 do keep[i] = { i } end\n' ..
      'return pool "t" { match = function(s) return keep[1] ~= nil end }')
    local fs = sandbox.footprint({ small.pool.match })
    local fb = sandbox.footprint({ big.pool.match })
    assert.is_true(fs < 64 * 1024, "small rule: " .. fs)
    assert.is_true(fb > 4 * 1024 * 1024, "big rule: " .. fb)
    assert.is_true(sandbox.footprint({ big.pool.match }, 1e6) <= 2e6 + 64 * 1024, "stops counting past 2x limit")
  end)
end)
