-- view_spec.lua - lua/view.lua: the FFI view over a store built with the
-- FFI here (fields, dims, windows, tags and attrs through callbacks, reads
-- follow roots.cur), and the table-backed view used by examples.
local S = require("tests.lua.support")
local view = require("view")
local ffi = require("ffi")

describe("ffi view", function()
  local st = S.store(3)
  local r = st.rows
  r[0].price, r[0].list_price, r[0].discount, r[0].stock = 8, 10, 0.2, 5
  r[0].rating, r[0].reviews, r[0].market, r[0].category = 4.5, 12, 1, 4
  r[0].top_category, r[0].brand, r[0].seller, r[0].lazmall, r[0].free_shipping = 3, 5, 6, 1, 0
  r[0].win = 1
  r[1].price, r[1].market, r[1].win = 99, 2, 0
  st.win[1].sales[1], st.win[1].gmv[2], st.win[1].views[0] = 7, 1234.5, 3
  st.win[1].clicks[2], st.win[1].carts[1] = 2, 1
  st.tags[0].hot = true
  st.attrs[0] = { color = "red", weight = 2.5, new = true, size = { '{"w":3}' } }
  local s = view.ffi_view(st.roots)

  it("reads the current row's fields", function()
    st.roots.cur = 0
    assert.are.equal("S0", s.sku)
    assert.are.equal("SG", s.market)
    assert.are.equal("phones/android", s.category)
    assert.are.equal("phones", s.top_category)
    assert.are.equal("acme", s.brand)
    assert.are.equal("shop1", s.seller)
    assert.are.equal(8, s.price)
    assert.are.equal(10, s.list_price)
    assert.are.equal(0.2, s.discount)
    assert.are.equal(5, s.stock)
    assert.are.equal(4.5, s.rating)
    assert.are.equal(12, s.reviews)
    assert.is_true(s.lazmall)
    assert.is_false(s.free_shipping)
  end)

  it("reads windowed counters", function()
    st.roots.cur = 0
    assert.are.equal(7, s.sales_24h)
    assert.are.equal(1234.5, s.gmv_7d)
    assert.are.equal(3, s.views_1h)
    assert.are.equal(2, s.clicks_7d)
    assert.are.equal(1, s.carts_24h)
    assert.are.equal(0, s.sales_1h)
    st.roots.cur = 1                       -- win 0: all zero
    assert.are.equal(0, s.sales_24h)
    assert.are.equal(0, s.gmv_7d)
  end)

  it("follows roots.cur and the row contents at read time", function()
    st.roots.cur = 1
    assert.are.equal(99, s.price)
    assert.are.equal("MY", s.market)
    assert.are.equal("", s.brand)          -- dim 0 = unknown
    r[1].price = 100
    assert.are.equal(100, s.price)
    st.roots.cur = 0
    assert.are.equal(8, s.price)
  end)

  it("answers has and attrs through the callbacks", function()
    st.roots.cur = 0
    assert.is_true(s:has("hot"))
    assert.is_false(s:has("cold"))
    assert.are.equal("red", s.attrs.color)
    assert.are.equal(2.5, s.attrs.weight)
    assert.is_true(s.attrs.new)
    assert.are.equal('{"w":3}', s.attrs.size)
    assert.is_nil(s.attrs.nothing)
    st.roots.cur = 1
    assert.is_false(s:has("hot"))
    assert.is_nil(s.attrs.color)
    assert.has_error(function() return s:has(5) end)
  end)

  it("rejects unknown fields and writes", function()
    local ok, err = pcall(function() return s.pricee end)
    assert.is_false(ok)
    assert.matches('unknown SKU field "pricee"', err, 1, true)
    ok, err = pcall(function() s.price = 1 end)
    assert.matches("SKU view is read-only", err, 1, true)
    ok, err = pcall(function() s.attrs.color = "blue" end)
    assert.matches("SKU view is read-only", err, 1, true)
    assert.are.equal(false, getmetatable(s))
    assert.are.equal(false, getmetatable(s.attrs))
  end)

  it("survives missing callbacks and dims", function()
    local empty = ffi.new("view_roots_t")
    local e = view.ffi_view(empty)
    assert.are.equal("", e.sku)
    assert.is_false(e:has("x"))
    assert.is_nil(e.attrs.x)
  end)
end)

describe("table view", function()
  local sku = {
    sku = "A1", market = "SG", category = "phones/android", brand = "acme", seller = "shop1",
    price = 15, list_price = 20, stock = 3, lazmall = true, free_shipping = false,
    sales_24h = 4, tags = { "hot", "category:x" }, attrs = { color = "red", dims = { w = 1, h = { 2, 3 } } },
  }

  it("derives the engine's automatic tags", function()
    local _, tags = view.table_view(sku)
    local want = { "market:SG", "brand:acme", "seller:shop1", "category:phones",
                   "category:phones/android", "lazmall", "in_stock", "hot", "category:x" }
    for _, t in ipairs(want) do assert.is_true(tags[t], t) end
    assert.is_nil(tags.free_shipping)
    local n = 0
    for _ in pairs(tags) do n = n + 1 end
    assert.are.equal(#want, n)
    local _, none = view.table_view({ stock = 0, category = "toys" })
    assert.is_nil(none.in_stock)
    assert.is_true(none["category:toys"])
    local c = 0
    for _ in pairs(none) do c = c + 1 end
    assert.are.equal(1, c)
  end)

  it("derives discount and defaults the rest", function()
    local s = view.table_view(sku)
    assert.are.equal(0.25, s.discount)
    assert.are.equal("phones", s.top_category)
    assert.are.equal(4, s.sales_24h)
    assert.are.equal(0, s.gmv_7d)
    assert.are.equal(0, s.rating)
    assert.is_true(s.lazmall)
    assert.is_false(s.free_shipping)
    assert.is_true(s:has("in_stock"))
    assert.is_false(s:has("blocked"))
    assert.are.equal("red", s.attrs.color)
    assert.are.equal('{"h":[2,3],"w":1}', s.attrs.dims)
    local z = view.table_view({ price = 5 })
    assert.are.equal(0, z.discount)       -- no list price
    assert.are.equal("", z.market)
    assert.are.equal("example", z.sku)
  end)

  it("has the same errors as the FFI view", function()
    local s = view.table_view(sku)
    assert.has_error(function() return s.colour end, nil)
    local ok, err = pcall(function() return s.colour end)
    assert.is_false(ok)
    assert.matches('unknown SKU field "colour"', err, 1, true)
    ok, err = pcall(function() s.price = 1 end)
    assert.matches("read-only", err, 1, true)
  end)
end)

describe("examples", function()
  local rulevm = S.vm()

  local function run(src)
    local rule, err = S.compile(src, "rules/ex.lua", "ex")
    assert.is_truthy(rule, err)
    local ok, e = xpcall(rulevm.examples, rulevm.on_error, rule)
    if ok then return nil end
    return string.format("%s:%d: %s", e[1], e[2], e[3])
  end

  it("pass when where and match agree with expect", function()
    assert.is_nil(run([[
return pool "ex" {
  where = all { tag "market:SG", any { tag "hot", tag "lazmall" }, no_tag "blocked" },
  match = function(s) return s.discount >= 0.3 and s.stock >= 20 end,
  examples = {
    { sku = { market = "SG", price = 10, list_price = 20, stock = 30, lazmall = true }, expect = true },
    { sku = { market = "SG", price = 10, list_price = 20, stock = 30, tags = { "hot", "blocked" } }, expect = false },
    { sku = { market = "SG", price = 19, list_price = 20, stock = 30, tags = { "hot" } }, expect = false },
  },
}]]))
  end)

  it("name the failing example, its line, and which clause decided", function()
    local err = run([[
return pool "ex" {
  where = all { tag "market:SG", no_tag "blocked" },
  match = function(s) return s.stock >= 20 end,
  examples = {
    { sku = { market = "SG", stock = 30 }, expect = true },
    { name = "blocked item", sku = { market = "SG", stock = 30, tags = { "blocked" } }, expect = true },
  },
}]])
    assert.are.equal('rules/ex.lua:6: example 2 (blocked item): expected true, got false: '
      .. 'where false (market:SG -> true, !blocked -> false); match not run', err)
    err = run([[
return pool "ex" {
  match = function(s) return s.stock >= 20 end,
  examples = { { sku = { stock = 3 }, expect = true } },
}]])
    assert.are.equal("rules/ex.lua:3: example 1: expected true, got false: match returned false", err)
  end)

  it("report a match error at the rule's line", function()
    local err = run([[
return pool "ex" {
  match = function(s)
    return s.stok >= 20
  end,
  examples = { { sku = { stock = 3 }, expect = true } },
}]])
    assert.are.equal('rules/ex.lua:3: example 1 (line 5): match failed: unknown SKU field "stok"', err)
  end)
end)
