-- Free-shipping deals, Malaysia: in-stock free-shipping SKUs under 50 and
-- at least 15% off, groceries aside. Two launch SKUs are pinned.
return pool "free_shipping_my" {
  title = "Free-shipping deals, Malaysia",
  where = all { tag "market:MY", tag "free_shipping", tag "in_stock", no_tag "blocked" },
  match = function(s)
    return s.market == "MY" and s.top_category ~= "grocery"
       and s.discount >= 0.15 and s.price < 50
  end,
  pin = { "MY-0000006", "MY-0000018" },
  examples = {
    { sku = { sku = "MY-1000001", market = "MY", category = "home/decor", free_shipping = true, price = 20,
              list_price = 30, stock = 10 },
      expect = true },
    { sku = { sku = "MY-1000002", market = "MY", category = "grocery/snacks", free_shipping = true, price = 20,
              list_price = 30, stock = 10 },
      expect = false }, -- groceries have their own campaign
    { sku = { sku = "MY-1000003", market = "MY", category = "home/decor", free_shipping = true, price = 60,
              list_price = 90, stock = 10 },
      expect = false }, -- 50 or more
  },
}
