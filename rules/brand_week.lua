-- Brand week, Thailand and Vietnam: the twelve partner brands of the week,
-- in stock and at least 10% off.
local PARTNERS = {
  b0001 = true, b0002 = true, b0003 = true, b0004 = true, b0005 = true, b0006 = true,
  b0007 = true, b0008 = true, b0009 = true, b0010 = true, b0011 = true, b0012 = true,
}

return pool "brand_week" {
  title = "Brand week: partner brands, TH and VN",
  where = all { any { tag "market:TH", tag "market:VN" }, tag "in_stock", no_tag "blocked" },
  match = function(s)
    return PARTNERS[s.brand] == true and s.discount >= 0.10
  end,
}
