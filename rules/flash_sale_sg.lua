-- 11.11 flash sale, Singapore: LazMall or flash-eligible SKUs at 30% off or
-- more, with enough stock to survive the rush. Live only during the sale
-- week (Singapore time); two SKUs are held back by the category team.
return pool "flash_sale_sg" {
  title = "11.11 flash sale, Singapore",
  active = { from = "2026-11-08T00:00:00+08:00", to = "2026-11-15T00:00:00+08:00" },
  where = all {
    tag "market:SG",
    any { tag "lazmall", tag "flash_eligible" },
    no_tag "blocked",
  },
  match = function(s)
    return s.discount >= 0.30 and s.stock >= 20
  end,
  exclude = { "SG-0000075", "SG-0000124" },
  examples = {
    { sku = { sku = "SG-1000001", market = "SG", lazmall = true, price = 60, list_price = 100, stock = 50 },
      expect = true },
    { sku = { sku = "SG-1000002", market = "SG", tags = { "flash_eligible" }, price = 80, list_price = 100,
              stock = 50 },
      expect = false }, -- only 20% off
    { sku = { sku = "SG-1000003", market = "SG", lazmall = true, price = 50, list_price = 100, stock = 5 },
      expect = false }, -- too little stock
    { sku = { sku = "MY-1000004", market = "MY", lazmall = true, price = 50, list_price = 100, stock = 50 },
      expect = false }, -- wrong market
  },
}
