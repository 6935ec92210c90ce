-- dsl_spec.lua - lua/dsl.lua through the real compile path (lua/rulevm.lua):
-- strict validation with file:line errors, canonical where text, schedules.
local S = require("tests.lua.support")
local dsl = require("dsl")

local function fails(src, file, hint)
  local rule, err = S.compile(src, file or "rules/flash.lua", hint == nil and "flash" or hint or nil)
  assert.is_nil(rule)
  return err
end

local function where_of(expr)
  local rule, err = S.compile('return pool "flash" { where = ' .. expr .. ' }', "rules/flash.lua", "flash")
  assert.is_truthy(rule, err)
  return rule.where
end

describe("pool", function()
  it("compiles a full spec and exposes its fields", function()
    local rule, err = S.compile([[
return pool "flash" {
  title = "11.11",
  active = { from = "2026-11-11T00:00+08:00", to = "2026-11-12T00:00+08:00" },
  where = all { tag "market:SG", any { tag "a", tag "b" }, no_tag "blocked" },
  match = function(s) return s.discount >= 0.30 and s.stock >= 20 end,
  rank = function(s) return s.gmv_24h end, limit = 2000,
  pin = { "SKU1" }, exclude = { "SKU2", "SKU3" },
  examples = { { sku = { market = "SG", price = 10, list_price = 20, tags = {"a"}, stock = 30 }, expect = true } },
}]], "rules/flash.lua", "flash")
    assert.is_truthy(rule, err)
    assert.are.equal("flash", rule.name)
    assert.are.equal("11.11", rule.title)
    assert.are.equal("market:SG & (a | b) & !blocked", rule.where)
    assert.are.equal(2000, rule.limit)
    assert.are.equal(dsl.parse_iso8601("2026-11-10T16:00Z"), rule.active_from)
    assert.are.equal(dsl.parse_iso8601("2026-11-11T16:00:00Z"), rule.active_to)
    assert.are.same({ "SKU1" }, rule.pin)
    assert.are.same({ "SKU2", "SKU3" }, rule.exclude)
    assert.are.equal(1, rule.nexamples)
    assert.is_true(rule.has_match and rule.has_rank)
  end)

  it("reports an unknown key on its own line", function()
    local err = fails([[
-- flash sale
return pool "flash" {
  title = "x",

  where = tag "a",

  mtach = function(s) return true end,
}]])
    assert.are.equal('rules/flash.lua:7: unknown key "mtach" in pool "flash"', err)
  end)

  it("checks types", function()
    assert.matches('rules/flash.lua:2: pool "flash": title must be a string, got number',
      fails('return pool "flash" {\n title = 5 }'), 1, true)
    assert.matches("match must be a function", fails('return pool "flash" { match = true }'), 1, true)
    assert.matches("rank must be a function", fails('return pool "flash" { rank = 3 }'), 1, true)
    assert.matches("limit must be a positive integer, got 0",
      fails('return pool "flash" { rank = function(s) return 1 end, limit = 0 }'), 1, true)
    assert.matches("limit must be a positive integer, got 1.5",
      fails('return pool "flash" { rank = function(s) return 1 end, limit = 1.5 }'), 1, true)
    assert.matches("limit must be a positive integer, got string",
      fails('return pool "flash" { rank = function(s) return 1 end, limit = "9" }'), 1, true)
    assert.matches("pin must be a list", fails('return pool "flash" { pin = "SKU1" }'), 1, true)
    assert.matches("exclude[2] must be a SKU id string",
      fails('return pool "flash" { exclude = { "a", 7 } }'), 1, true)
    assert.matches("where must be a clause", fails('return pool "flash" { where = "market:SG" }'), 1, true)
    assert.matches("unexpected positional value", fails('return pool "flash" { "x" }'), 1, true)
    assert.matches('expects a table', fails('return pool "flash" "x"'), 1, true)
  end)

  it("requires rank for limit", function()
    assert.are.equal('rules/flash.lua:3: pool "flash": limit needs rank (which SKUs come first?)',
      fails('return pool "flash" {\n  title = "t",\n  limit = 10,\n}'))
  end)

  it("checks active", function()
    assert.matches('active.from must be an ISO-8601 date-time',
      fails('return pool "flash" { active = { from = "tomorrow" } }'), 1, true)
    assert.matches('unknown key "until" in active',
      fails('return pool "flash" { active = { ["until"] = "2026-01-01" } }'), 1, true)
    assert.matches('active.to must be after active.from',
      fails('return pool "flash" { active = { from = "2026-01-02", to = "2026-01-01" } }'), 1, true)
    local rule = S.compile('return pool "flash" { active = { to = "2026-01-01" } }', "rules/flash.lua", "flash")
    assert.are.equal(0, rule.active_from)
    assert.are.equal(dsl.parse_iso8601("2026-01-01"), rule.active_to)
  end)

  it("checks the name against the file name", function()
    assert.are.equal('rules/flash.lua:2: pool name "x" does not match file name flash.lua',
      fails('\nreturn pool "x" {}'))
    assert.matches('must be 1%-64 characters of a%-z 0%-9 _ %-', fails('return pool "Flash Sale" {}', nil, false))
    assert.matches('must be 1%-64 characters', fails('return pool "' .. ("a"):rep(65) .. '" {}', nil, false))
    assert.is_truthy(S.compile('return pool "any-name_2" {}', "rules/x.lua", nil))
  end)

  it("requires the file to return a pool", function()
    assert.are.equal('rules/flash.lua:3: a rule file must end with: return pool "flash" { ... }',
      fails('local x = 1\n\npool "flash" {}\n\n'))
    assert.matches('must end with: return pool', fails('return { title = "x" }'), 1, true)
  end)

  it("reports syntax and runtime errors of the file with their line", function()
    assert.matches("^rules/flash.lua:3: .*unexpected symbol", fails('local a = 1\n\nlocal b = = 2\nreturn pool "flash" {}'))
    assert.matches("^rules/flash.lua:2: attempt to call global 'nope'", fails('\nnope()\nreturn pool "flash" {}'))
    assert.matches("^rules/flash.lua:2: custom", fails('\nerror("custom")\nreturn pool "flash" {}'))
  end)

  it("keeps long file names whole (LuaJIT shortens them in messages)", function()
    local file = ("deep/"):rep(20) .. "flash.lua"
    assert.are.equal(file .. ":2: unexpected symbol near '='", fails('\nlocal x = = 1', file))
    assert.are.equal(file .. ":3: attempt to call global 'nope' (a nil value)", fails('\n\nnope()', file))
    assert.are.equal(file .. ':2: unknown key "x" in pool "flash"', fails('return pool "flash" {\n x = 1 }', file))
  end)

  it("validates examples", function()
    assert.matches('example 1 needs expect = true or false',
      fails('return pool "flash" { examples = { { sku = {} } } }'), 1, true)
    assert.matches('example 1: unknown SKU field "stok"',
      fails('return pool "flash" { examples = { { sku = { stok = 3 }, expect = true } } }'), 1, true)
    assert.matches('example 1: discount is derived',
      fails('return pool "flash" { examples = { { sku = { discount = 0.5 }, expect = true } } }'), 1, true)
    assert.matches('example 1: price must be a number',
      fails('return pool "flash" { examples = { { sku = { price = "1" }, expect = true } } }'), 1, true)
    assert.matches('rules/flash.lua:5: pool "flash": example 2: tags[1] is not a valid tag',
      fails('return pool "flash" {\n examples = {\n  { sku = {}, expect = true },\n\n  { sku = { tags = { "a b" } }, expect = false },\n } }'), 1, true)
  end)
end)

describe("where", function()
  it("renders canonical tag expressions", function()
    assert.are.equal("*", S.compile('return pool "flash" {}', "rules/flash.lua", "flash").where)
    assert.are.equal("market:SG", where_of('tag "market:SG"'))
    assert.are.equal("!blocked", where_of('no_tag "blocked"'))
    assert.are.equal("a & b & c", where_of('all { tag "a", all { tag "b", tag "c" } }'))
    assert.are.equal("a & b | c", where_of('any { all { tag "a", tag "b" }, tag "c" }'))
    assert.are.equal("(a | b) & (c | !d)", where_of('all { any { tag "a", tag "b" }, any { tag "c", no_tag "d" } }'))
    assert.are.equal("x & (a | b)", where_of('all { tag "x", any { any { tag "a", tag "b" } } }'))
    assert.are.equal("a", where_of('all { any { tag "a" } }'))
    assert.are.equal("category:phones/android & brand:a.b+c-d_e", where_of('all { tag "category:phones/android", tag "brand:a.b+c-d_e" }'))
  end)

  it("rejects bad tags and empty groups with the line", function()
    assert.are.equal('rules/flash.lua:2: tag "a b": a tag is 1-256 characters of A-Z a-z 0-9 _ : / . + -',
      fails('return pool "flash" {\n where = tag "a b" }'))
    assert.matches('no_tag "": a tag is', fails('return pool "flash" { where = no_tag "" }'), 1, true)
    assert.matches("tag expects a tag name string", fails('return pool "flash" { where = tag(5) }'), 1, true)
    assert.matches("all { } needs at least one clause", fails('return pool "flash" { where = all {} }'), 1, true)
    assert.matches("any clause #2 is not a clause", fails('return pool "flash" { where = any { tag "a", "b" } }'), 1, true)
    assert.matches("takes a list of clauses", fails('return pool "flash" { where = all { x = tag "a" } }'), 1, true)
  end)

  it("cannot be forged or changed after construction", function()
    -- a node is an opaque token: editing it changes nothing
    local rule = S.compile('local t = tag "a"\nt.name = "b c"\nt.kind = "any"\nreturn pool "flash" { where = t }',
      "rules/flash.lua", "flash")
    assert.are.equal("a", rule.where)
    assert.matches("where must be a clause",
      fails('return pool "flash" { where = { kind = "tag", name = "a" } }'), 1, true)
  end)
end)

describe("parse_iso8601", function()
  it("accepts the engine's forms", function()
    assert.are.equal(0, dsl.parse_iso8601("1970-01-01"))
    assert.are.equal(1794326400000, dsl.parse_iso8601("2026-11-11T00:00+08:00"))
    assert.are.equal(1794355200123, dsl.parse_iso8601("2026-11-11T00:00:00.123Z"))
    assert.are.equal(1794355200000, dsl.parse_iso8601("2026-11-11t00:00:00z"))
    assert.are.equal(1794373200000, dsl.parse_iso8601("2026-11-11 00:00-0500"))
    assert.are.equal(951782400000, dsl.parse_iso8601("2000-02-29"))
  end)
  it("rejects the rest", function()
    for _, s in ipairs({ "2026-13-01", "2026-02-29", "2026-11-11T24:00", "2026-11-11T00:00+8",
                         "2026-11-11T00:00:00.", "11/11/2026", "2026-11-11T", "" }) do
      assert.is_nil(dsl.parse_iso8601(s), s)
    end
  end)
end)
