return pool "typo" {
  title = "a typo in a key",
  where = tag "market:SG",
  mtach = function(s) return s.stock > 0 end,
}
