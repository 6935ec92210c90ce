local cache = {}
return pool "loop" {
  match = function(s)
    local n = 0
    for i = 1, 1e9 do n = n + i end
    return n > 0
  end,
  rank = function(s) cache[#cache + 1] = s.sku; return s.price * s.stock end,
}
