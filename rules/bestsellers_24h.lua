-- Bestsellers of the last 24 hours: at least 5 units sold in the window. A
-- SKU leaves the pool when its sales fall out of the window, with no new
-- event. One SKU under a pricing dispute is held back.
return pool "bestsellers_24h" {
  title = "Bestsellers, last 24 hours",
  where = all { tag "in_stock", no_tag "blocked" },
  match = function(s)
    return s.sales_24h >= 5
  end,
  exclude = { "TH-0012592" },
  examples = {
    { sku = { sku = "ID-1000001", market = "ID", stock = 12, sales_24h = 5 }, expect = true },
    { sku = { sku = "ID-1000002", market = "ID", stock = 12, sales_24h = 4, sales_7d = 40 }, expect = false },
    { sku = { sku = "ID-1000003", market = "ID", stock = 0, sales_24h = 30 }, expect = false }, -- sold out
    { sku = { sku = "ID-1000004", market = "ID", stock = 12, sales_24h = 9, tags = { "blocked" } },
      expect = false },
  },
}
