-- sandbox_spec.lua - lua/sandbox.lua: what a rule can and cannot reach,
-- source-only loading, per-rule state, and the bound analysis that decides
-- which functions may run JIT-compiled.
local S = require("tests.lua.support")
local sandbox = require("sandbox")

local FORBIDDEN = {
  "io", "os", "ffi", "jit", "debug", "require", "package", "load", "loadstring", "loadfile",
  "dofile", "collectgarbage", "setfenv", "getfenv", "newproxy", "module", "coroutine",
  "rawset", "rawget", "print", "gcinfo", "bit",
}

local function ok_rule(src, file, name)
  local rule, err = S.compile(src, file or "rules/t.lua", name)
  assert.is_truthy(rule, err)
  return rule
end

describe("sandbox environment", function()
  S.vm() -- hardens the string library as the engine does

  it("holds none of the forbidden globals", function()
    local env = sandbox.new_env(1)
    for _, name in ipairs(FORBIDDEN) do
      assert.is_nil(env[name], name)
    end
    assert.is_nil(env.string.dump)
    for _, name in ipairs({ "assert", "error", "ipairs", "next", "pairs", "pcall", "select",
                            "tonumber", "tostring", "type", "unpack", "xpcall", "rawequal",
                            "setmetatable", "getmetatable", "string", "table", "math" }) do
      assert.is_not_nil(env[name], name)
    end
  end)

  it("leaves a running rule no way to them", function()
    local checks = {}
    for _, name in ipairs(FORBIDDEN) do
      checks[#checks + 1] = ("assert(%s == nil, '%s reachable')"):format(name, name)
    end
    ok_rule(table.concat(checks, "\n") .. [[

assert(string.dump == nil and ("").dump == nil, "string.dump reachable")
assert(getmetatable("") == nil, "string metatable reachable")
assert(_G.io == nil and _G.os == nil)
assert(not pcall(setmetatable, "x", {}))
return pool "t" {}]])
  end)

  it("keeps the shared string metatable out of reach", function()
    assert.are.equal(false, getmetatable(""))  -- hardened: protected
    ok_rule([[
local mt = getmetatable("")
assert(mt == nil)
-- string methods still work through the protected metatable
assert(("abc"):upper() == "ABC" and ("a,b"):find(",", 1, true) == 2)
-- replacing the rule's own string table does not change string methods
string.upper = function() return "hacked" end
assert(("x"):upper() == "X")
return pool "t" {}]])
    assert.are.equal("X", ("x"):upper())
  end)

  it("bounds string.rep, also through method calls", function()
    local rule, err = S.compile('local s = ("x"):rep(2 * 1024 * 1024)\nreturn pool "t" {}', "rules/t.lua")
    assert.is_nil(rule)
    assert.matches("^rules/t.lua:1: string.rep result too large", err)
    rule, err = S.compile('local s = string.rep("ab", 600000, ",")\nreturn pool "t" {}', "rules/t.lua")
    assert.is_nil(rule)
    assert.matches("string.rep result too large", err, 1, true)
    ok_rule('assert(#string.rep("ab", 1000, ",") == 2999)\nreturn pool "t" {}')
  end)

  it("refuses bytecode", function()
    local bc = string.dump and string.dump(function() end)
    if not bc then
      -- the string library is hardened in this state: build a header by hand
      bc = "\27LJ\2" .. ("\0"):rep(16)
    end
    local chunk, err = sandbox.load(bc, "@x", {})
    assert.is_nil(chunk)
    assert.matches("bytecode", err)
    local rule, cerr = S.compile(bc, "rules/t.lua")
    assert.is_nil(rule)
    assert.matches("^rules/t.lua: precompiled bytecode is not allowed", cerr)
  end)

  it("gives every rule its own globals", function()
    local a = ok_rule([[
shared = "from a"
return pool "a" { match = function(s) leaked = true; return shared == "from a" end }]], "rules/a.lua", "a")
    local b = ok_rule([[
return pool "b" { match = function(s) return shared == nil and leaked == nil end }]], "rules/b.lua", "b")
    assert.are.same({ 1, 1 }, S.match(a, { 0, 1 }))
    assert.are.same({ 1, 1 }, S.match(b, { 0, 1 }))
    assert.is_nil(rawget(_G, "shared"))
    assert.is_nil(rawget(_G, "leaked"))
  end)

  it("gives every rule its own deterministic math.random", function()
    local e1, e2, e3 = sandbox.new_env(42), sandbox.new_env(42), sandbox.new_env(7)
    local seq1, seq2, seq3 = {}, {}, {}
    for i = 1, 5 do
      seq1[i] = e1.math.random(1, 100)
      seq3[i] = e3.math.random(1, 100)
    end
    for i = 1, 5 do seq2[i] = e2.math.random(1, 100) end
    assert.are.same(seq1, seq2)
    assert.are_not.same(seq1, seq3)
    local x = e1.math.random()
    assert.is_true(x >= 0 and x < 1)
    e1.math.randomseed(42)
    assert.are.equal(seq1[1], e1.math.random(1, 100))
    assert.has_error(function() e1.math.random(5, 1) end)
  end)

  it("protects the SKU view's metatable", function()
    local r = ok_rule([[
return pool "t" { match = function(s)
  assert(getmetatable(s) == false)
  assert(not pcall(setmetatable, s, {}))
  assert(not pcall(function() s.price = 1 end))
  return true
end }]])
    assert.are.same({ 1 }, S.match(r, { 0 }))
  end)
end)

describe("bound analysis", function()
  local function jit_of(src)
    return ok_rule(src)[3]
  end

  it("recognises this LuaJIT's loop forms", function()
    assert.is_true(sandbox.analysis_ok)
  end)

  it("lets straight-line rules run compiled", function()
    assert.is_true(jit_of('return pool "t" { match = function(s) return s.discount >= 0.3 and s.stock >= 20 end }'))
    assert.is_true(jit_of([[
local min = 0.3
local brands = { acme = true }
return pool "t" {
  match = function(s) return s.discount >= min and brands[s.brand] == true and s:has("x") end,
  rank = function(s) return math.max(s.gmv_24h, s.sales_24h) end,
}]]))
  end)

  it("keeps anything that may not terminate interpreted", function()
    local cases = {
      "match = function(s) for i = 1, 10 do end return true end",
      "match = function(s) while s.stock > 0 do end return true end",
      "match = function(s) for k in pairs(s) do end return true end",
      "match = function(s) local f = function() end return true end",
      "match = function(s) ::a:: if s.stock > 1 then goto a end return true end",
    }
    for _, c in ipairs(cases) do
      assert.is_false(jit_of('return pool "t" { ' .. c .. ' }'), c)
    end
    -- recursion through an upvalue, a global, a table or a metamethod
    assert.is_false(jit_of('local f\nf = function(s) return f(s) end\nreturn pool "t" { match = f }'))
    assert.is_false(jit_of('function helper(s) return true end\nreturn pool "t" { match = function(s) return helper(s) end }'))
    assert.is_false(jit_of('local t = {}\nt.f = function(s) return true end\nreturn pool "t" { match = function(s) return t.f(s) end }'))
    assert.is_false(jit_of('local t = setmetatable({}, { __index = function() return 1 end })\nreturn pool "t" { match = function(s) return t.x == 1 end }'))
    -- one unbounded function keeps both interpreted
    assert.is_false(jit_of('return pool "t" { match = function(s) return true end, rank = function(s) for i = 1, 2 do end return 1 end }'))
  end)

  it("is the identity of trusted code, not its name", function()
    assert.is_true(sandbox.is_rule_function(load("return 1")))
    assert.is_false(sandbox.is_rule_function(math.deg))   -- bytecode builtin in LuaJIT
    assert.is_false(sandbox.is_rule_function(print))
  end)
end)
