-- A valid rule with examples: `poold check` prints "ok".
return pool "flash_sale" {
  title = "Flash sale, Singapore",
  active = { from = "2026-11-11T00:00+08:00", to = "2026-11-12T00:00+08:00" },
  where = all { tag "market:SG", any { tag "lazmall", tag "flash" }, no_tag "blocked" },
  match = function(s) return s.discount >= 0.30 and s.stock >= 20 end,
  rank = function(s) return s.gmv_24h end,
  limit = 100,
  pin = { "SG-PIN-1" },
  exclude = { "SG-BAD-1" },
  examples = {
    { sku = { market = "SG", lazmall = true, price = 10, list_price = 20, stock = 30 }, expect = true },
    { sku = { market = "SG", tags = { "flash", "blocked" }, price = 10, list_price = 20, stock = 30 }, expect = false },
    { sku = { market = "MY", lazmall = true, price = 10, list_price = 20, stock = 30 }, expect = false },
  },
}
