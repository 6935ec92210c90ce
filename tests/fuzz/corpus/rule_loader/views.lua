return pool "views" {
  where = any { all { tag "market:SG", no_tag "x" }, tag "hot" },
  match = function(s)
    return s:has("hot") and s.attrs.color ~= nil and s.top_category == "phones"
      and s.gmv_7d >= 0 and s.sales_24h >= 0 and s.lazmall ~= s.free_shipping
  end,
  rank = function(s) return s.discount * 100 + s.views_1h end,
  examples = { { sku = { market = "SG", tags = { "hot" }, attrs = { color = "red", n = { 1, 2 } } }, expect = true } },
}
