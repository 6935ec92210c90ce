-- Eco picks: products made of sustainable materials, or eco-tagged local
-- products with an A or B energy class. Reads the JSON attributes.
local MATERIALS = { bamboo = true, recycled_plastic = true, organic_cotton = true }

return pool "eco_picks" {
  title = "Eco picks: sustainable materials, efficient local products",
  where = all {
    any { tag "eco", tag "category:home", tag "category:baby", tag "category:fashion" },
    no_tag "blocked",
  },
  match = function(s)
    local a = s.attrs
    if MATERIALS[a.material] then return true end
    local e = a.energy_class
    return s:has("eco") and a.origin == "local" and (e == "A" or e == "B")
  end,
  examples = {
    { sku = { sku = "VN-1000001", market = "VN", category = "home/kitchen", attrs = { material = "bamboo" } },
      expect = true },
    { sku = { sku = "VN-1000002", market = "VN", tags = { "eco" },
              attrs = { origin = "local", energy_class = "B" } },
      expect = true },
    { sku = { sku = "VN-1000003", market = "VN", tags = { "eco" },
              attrs = { origin = "imported", energy_class = "A" } },
      expect = false }, -- not local
    { sku = { sku = "VN-1000004", market = "VN", category = "home/decor", attrs = { material = "plastic" } },
      expect = false },
  },
}
