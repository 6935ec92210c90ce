-- Premium electronics: LazMall or premium-tagged electronics between 300
-- and 3,000, rated 4.2 or better by at least 20 reviewers.
return pool "premium_electronics" {
  title = "Premium electronics, 300 to 3,000, top rated",
  where = any { tag "lazmall", tag "premium" },
  match = function(s)
    return s.category:sub(1, 12) == "electronics/"
       and s.price >= 300 and s.price < 3000
       and s.rating >= 4.2 and s.reviews >= 20
  end,
  examples = {
    { sku = { sku = "PH-1000001", market = "PH", category = "electronics/phones", lazmall = true, price = 899,
              rating = 4.7, reviews = 1200 },
      expect = true },
    { sku = { sku = "PH-1000002", market = "PH", category = "electronics/phones", lazmall = true, price = 3000,
              rating = 4.7, reviews = 1200 },
      expect = false }, -- 3,000 is outside the range
    { sku = { sku = "PH-1000003", market = "PH", category = "fashion/watches", lazmall = true, price = 899,
              rating = 4.7, reviews = 1200 },
      expect = false }, -- not electronics
  },
}
