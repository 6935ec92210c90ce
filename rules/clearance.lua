-- Clearance: the 300 deepest discounts (40% off or more) among clearance
-- SKUs and in-stock non-premium SKUs, deepest first.
return pool "clearance" {
  title = "Clearance: the 300 deepest discounts",
  where = all { any { tag "clearance", all { tag "in_stock", no_tag "premium" } }, no_tag "blocked" },
  match = function(s)
    return s.discount >= 0.40 and s.stock > 0
  end,
  rank = function(s) return s.discount end,
  limit = 300,
}
