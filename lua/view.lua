-- view.lua - the SKU object `s` that a rule's match/rank reads (SPEC "SKU
-- view in rules"), in two flavours with the same field names:
--
--   ffi_view(roots): ONE reusable object per VM over the engine's columns.
--     roots is a `view_roots_t *` cdata (src/view.h); every read goes to
--     roots.rows[roots.cur] (and roots.win / roots.dims / the callbacks)
--     at the moment of the read, so the object never holds SKU data and
--     nothing is allocated per SKU. Getters are generated from a template
--     so each field name is a constant in its own function: the JIT turns
--     `s.price` into one guarded load. Dimension strings are cached by id
--     (dims never change).
--   table_view(sku): a view over an example's plain table, with the auto
--     tags the engine derives (market:, brand:, category:<top>,
--     category:<top/leaf>, seller:, lazmall, free_shipping, in_stock) and
--     discount derived from price and list_price.
--
-- Both are read-only (writes raise "SKU view is read-only"), raise
-- `unknown SKU field "x"` on a name that is not a field, and hide their
-- metatable (__metatable = false). Trusted glue; the FFI types must have
-- been declared (view_cdef()) before ffi_view is called.
local ffi = require("ffi")
local sandbox = require("sandbox")
sandbox.trust()

local M = {}

local GEN_CHUNK = "=lua/view.lua"
sandbox.trust(GEN_CHUNK)

M.METRICS = { "sales", "gmv", "views", "clicks", "carts" }
M.WINDOWS = { "1h", "24h", "7d" }
M.NUMBERS = { "price", "list_price", "discount", "rating", "stock", "reviews" }
M.DIMS = { "market", "category", "top_category", "brand", "seller" }
M.BOOLS = { "lazmall", "free_shipping" }
-- VIEW_READ_* bits (src/view.h): 1 windowed counters, 2 price fields,
-- 4 stock (and tags: s:has, since stock moves the in_stock tag).
M.READ_BIT = { price = 2, list_price = 2, discount = 2, stock = 4 }

local function unknown_field(k)
  if type(k) == "string" then return string.format('unknown SKU field "%s"', k) end
  return "unknown SKU field (a " .. type(k) .. " key)"
end
M.unknown_field = unknown_field

local function read_only()
  error("SKU view is read-only", 2)
end

local function getter_source()
  local out = { "local roots, dim = ...", "local bor = bit.bor", "local g = {}" }
  local function add(fmt, ...) out[#out + 1] = string.format(fmt, ...) end
  -- roots.reads collects what kinds of fields a rule read (src/view.h
  -- VIEW_READ_*): the engine skips re-evaluating a rule for events that
  -- changed nothing of those kinds.
  for _, f in ipairs(M.NUMBERS) do
    local bitv = M.READ_BIT[f]
    if bitv then
      add("g.%s = function() roots.reads = bor(roots.reads, %d); return roots.rows[roots.cur].%s end", f, bitv, f)
    else
      add("g.%s = function() return roots.rows[roots.cur].%s end", f, f)
    end
  end
  for _, f in ipairs(M.DIMS) do
    add("g.%s = function() return dim(roots.rows[roots.cur].%s) end", f, f)
  end
  for _, f in ipairs(M.BOOLS) do
    add("g.%s = function() return roots.rows[roots.cur].%s ~= 0 end", f, f)
  end
  for _, m in ipairs(M.METRICS) do
    for wi, w in ipairs(M.WINDOWS) do
      add("g.%s_%s = function() roots.reads = bor(roots.reads, 1); " ..
          "return roots.win[roots.rows[roots.cur].win].%s[%d] end", m, w, m, wi - 1)
    end
  end
  out[#out + 1] = "return g"
  return table.concat(out, "\n")
end

-- The reusable view over roots (a view_roots_t * cdata).
function M.ffi_view(roots)
  local dims = {}
  local function dim(id)
    local v = dims[id]
    if v == nil then
      local p = id ~= 0 and roots.dims ~= nil and roots.dims[id] or nil
      v = p ~= nil and ffi.string(p) or ""
      dims[id] = v
    end
    return v
  end
  local getters = assert(load(getter_source(), GEN_CHUNK, "t"))(roots, dim)

  getters.sku = function()
    local f = roots.sku_name
    if f == nil then return "" end
    local p = f(roots.ctx, roots.cur)
    return p ~= nil and ffi.string(p) or ""
  end

  local function has(_, tag)
    if type(tag) ~= "string" then error('s:has expects a tag string: s:has("lazmall")', 2) end
    roots.reads = bit.bor(roots.reads, 4)
    if #tag > 4096 then return false end -- no tag is that long; spares the lookup the hashing
    local f = roots.has_tag
    return f ~= nil and f(roots.ctx, roots.cur, tag, #tag) ~= 0
  end
  getters.has = function() return has end

  local av = ffi.new("attr_value_t[1]")
  local attrs = setmetatable({}, {
    __index = function(_, name)
      if type(name) ~= "string" then return nil end
      local f = roots.attr_get
      if f == nil then return nil end
      f(roots.ctx, roots.cur, name, #name, av)
      local a = av[0]
      local t = a.type
      if t == 1 then return a.num end
      if t == 2 or t == 4 then return a.str ~= nil and ffi.string(a.str, a.len) or "" end
      if t == 3 then return a.num ~= 0 end
      return nil
    end,
    __newindex = read_only,
    __metatable = false,
  })
  getters.attrs = function() return attrs end

  return setmetatable({}, {
    __index = function(_, k)
      local g = getters[k]
      if g == nil then error(unknown_field(k), 2) end
      return g()
    end,
    __newindex = read_only,
    __metatable = false,
  })
end

-- A view over `s` (either flavour) that appends every read to `reads` as
-- { field, value } (explain): "has(tag)" for s:has, "attrs.name" for
-- attributes. Allocates; never used on the evaluation path.
function M.recording_view(s, reads)
  local function note(k, v) reads[#reads + 1] = { k, v } end
  local attrs = setmetatable({}, {
    __index = function(_, name)
      local v = s.attrs[name]
      note("attrs." .. tostring(name), v)
      return v
    end,
    __newindex = read_only,
    __metatable = false,
  })
  local function has(_, tag)
    local v = s:has(tag)
    note("has(" .. tostring(tag) .. ")", v)
    return v
  end
  return setmetatable({}, {
    __index = function(_, k)
      if k == "has" then return has end
      if k == "attrs" then return attrs end
      local ok, v = pcall(function() return s[k] end)
      if not ok then error(unknown_field(k), 2) end
      note(k, v)
      return v
    end,
    __newindex = read_only,
    __metatable = false,
  })
end

-- -- Table-backed view (examples) ----------------------------------------------------

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    local e = ({ ['"'] = '\\"', ['\\'] = '\\\\', ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t' })[c]
    return e or string.format("\\u%04x", c:byte())
  end) .. '"'
end

-- Compact JSON text of a nested attribute value (objects with sorted keys).
local function json(v)
  local t = type(v)
  if t == "string" then return json_string(v) end
  if t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return "null" end
    if v % 1 == 0 and math.abs(v) < 1e15 then return string.format("%d", v) end
    return string.format("%.17g", v)
  end
  if t == "boolean" then return tostring(v) end
  if t ~= "table" then return "null" end
  local n = 0
  for _ in pairs(v) do n = n + 1 end
  if n > 0 and n == #v then
    local parts = {}
    for i = 1, n do parts[i] = json(v[i]) end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  local parts = {}
  for i, k in ipairs(keys) do
    local x = v[k]
    if x == nil then x = v[tonumber(k)] end
    parts[i] = json_string(k) .. ":" .. json(x)
  end
  return "{" .. table.concat(parts, ",") .. "}"
end
M.json = json

-- The tag set the engine would give this SKU table: { [tag] = true }.
function M.auto_tags(sku)
  local tags = {}
  local function add(t) tags[t] = true end
  local function nonempty(v) return type(v) == "string" and v ~= "" end
  if nonempty(sku.market) then add("market:" .. sku.market) end
  if nonempty(sku.brand) then add("brand:" .. sku.brand) end
  if nonempty(sku.seller) then add("seller:" .. sku.seller) end
  if nonempty(sku.category) then
    local top = sku.category:match("^([^/]*)/")
    if top and top ~= "" then add("category:" .. top) end
    add("category:" .. sku.category)
  end
  if sku.lazmall == true then add("lazmall") end
  if sku.free_shipping == true then add("free_shipping") end
  if type(sku.stock) == "number" and sku.stock > 0 then add("in_stock") end
  if type(sku.tags) == "table" then
    for _, t in ipairs(sku.tags) do add(t) end
  end
  return tags
end

local function num(v) return type(v) == "number" and v or 0 end
local function str(v) return type(v) == "string" and v or "" end

local TABLE_GET = {}
for _, f in ipairs({ "price", "list_price", "rating", "stock", "reviews" }) do
  TABLE_GET[f] = function(sku) return num(sku[f]) end
end
for _, m in ipairs(M.METRICS) do
  for _, w in ipairs(M.WINDOWS) do
    local f = m .. "_" .. w
    TABLE_GET[f] = function(sku) return num(sku[f]) end
  end
end
for _, f in ipairs({ "market", "category", "brand", "seller" }) do
  TABLE_GET[f] = function(sku) return str(sku[f]) end
end
TABLE_GET.sku = function(sku) return type(sku.sku) == "string" and sku.sku or "example" end
TABLE_GET.top_category = function(sku)
  local c = str(sku.category)
  return c:match("^([^/]*)/") or c
end
TABLE_GET.discount = function(sku)
  local p, lp = num(sku.price), num(sku.list_price)
  return lp > 0 and 1 - p / lp or 0
end
TABLE_GET.lazmall = function(sku) return sku.lazmall == true end
TABLE_GET.free_shipping = function(sku) return sku.free_shipping == true end

-- A view over a plain table (see dsl.lua for the accepted keys). Returns
-- the view and its tag set.
function M.table_view(sku)
  local tags = M.auto_tags(sku)
  local a = type(sku.attrs) == "table" and sku.attrs or {}
  local attrs = setmetatable({}, {
    __index = function(_, name)
      if type(name) ~= "string" then return nil end
      local v = a[name]
      if type(v) == "table" then return json(v) end
      return v
    end,
    __newindex = read_only,
    __metatable = false,
  })
  local function has(_, tag)
    if type(tag) ~= "string" then error('s:has expects a tag string: s:has("lazmall")', 2) end
    return tags[tag] == true
  end
  local view = setmetatable({}, {
    __index = function(_, k)
      if k == "has" then return has end
      if k == "attrs" then return attrs end
      local g = TABLE_GET[k]
      if g == nil then error(unknown_field(k), 2) end
      return g(sku)
    end,
    __newindex = read_only,
    __metatable = false,
  })
  return view, tags
end

return M
