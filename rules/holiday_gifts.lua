-- Holiday gift picks, every market: giftable SKUs, toys, and beauty bundles
-- that are in stock, well rated and priced like a present. Three hero SKUs
-- chosen by the merchandisers are always shown.
return pool "holiday_gifts" {
  title = "Holiday gift picks",
  where = all {
    any { tag "giftable", tag "category:toys", all { tag "category:beauty", tag "bundle" } },
    tag "in_stock",
    no_tag "blocked",
  },
  match = function(s)
    return s.rating >= 4.0 and s.price >= 10 and s.price <= 150
  end,
  pin = { "MY-0000245", "ID-0000872", "SG-0000204" },
  examples = {
    { sku = { sku = "TH-1000001", market = "TH", category = "toys/puzzles", price = 25, rating = 4.6, stock = 3 },
      expect = true },
    { sku = { sku = "TH-1000002", market = "TH", tags = { "giftable" }, price = 25, rating = 3.9, stock = 3 },
      expect = false }, -- rating too low
    { sku = { sku = "TH-1000003", market = "TH", category = "beauty/skincare", price = 25, rating = 4.5,
              stock = 3 },
      expect = false }, -- beauty only as a bundle
    { sku = { sku = "TH-1000004", market = "TH", category = "toys/rc", price = 25, rating = 4.5, stock = 0 },
      expect = false }, -- out of stock
  },
}
