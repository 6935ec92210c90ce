local mt = getmetatable("")
local ok = pcall(setmetatable, "", {})
local r = ("x"):rep(100)
return pool "sandbox_escape" {
  match = function(s) return pcall(function() s.price = 1 end) end,
}
