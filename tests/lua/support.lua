-- support.lua - shared by the specs: the FFI declarations of src/view.h and
-- the rulevm control block (mirrored here; the C unit test exercises the real
-- view_cdef()), a small FFI store, and a Lua-side rule VM (lua/rulevm.lua
-- initialised over that store, with no budget hook since there is no C).
package.path = "./lua/?.lua;./tests/lua/?.lua;" .. package.path
local ffi = require("ffi")

local S = {}

S.VIEW_CDEF = [[
typedef struct sku_row { double price; double list_price; double discount; double rating;
  int32_t stock; int32_t reviews; uint32_t market; uint32_t category; uint32_t top_category;
  uint32_t brand; uint32_t seller; uint32_t win; uint8_t lazmall; uint8_t free_shipping;
  uint8_t live; uint8_t reserved; } sku_row_t;
typedef struct win_sums { uint32_t sales[3]; uint32_t views[3]; uint32_t clicks[3];
  uint32_t carts[3]; double gmv[3]; } win_sums_t;
typedef struct attr_value { int32_t type; int32_t len; double num; const char *str; } attr_value_t;
typedef struct view_roots { const sku_row_t *rows; const win_sums_t *win;
  const char *const *dims; uint32_t cur; uint32_t reads; void *ctx;
  int (*has_tag)(void *ctx, uint32_t sku, const char *tag, size_t len);
  void (*attr_get)(void *ctx, uint32_t sku, const char *name, size_t len, attr_value_t *out);
  const char *(*sku_name)(void *ctx, uint32_t sku); } view_roots_t;
]]

S.CTL_CDEF = [[
typedef struct rulevm_ctl { const uint32_t *ids; uint8_t *out8; double *outd;
  double pos, n; int32_t ticks; int32_t budget, budget_compile; int32_t reserved; } rulevm_ctl_t;
]]

if not pcall(ffi.typeof, "view_roots_t") then ffi.cdef(S.VIEW_CDEF) end
if not pcall(ffi.typeof, "rulevm_ctl_t") then ffi.cdef(S.CTL_CDEF) end

-- A store of n rows; keep the returned table alive while roots is used.
function S.store(n)
  local st = { n = n }
  st.rows = ffi.new("sku_row_t[?]", n)
  st.win = ffi.new("win_sums_t[?]", 3)
  st.dim_strings = { "", "SG", "MY", "phones", "phones/android", "acme", "shop1" }
  st.dim_c = {}
  st.dims = ffi.new("const char *[?]", #st.dim_strings)
  for i, s in ipairs(st.dim_strings) do
    st.dim_c[i] = ffi.new("char[?]", #s + 1, s)
    st.dims[i - 1] = st.dim_c[i]
  end
  st.names, st.name_c, st.tags, st.attrs = {}, {}, {}, {}
  for i = 0, n - 1 do
    st.names[i] = "S" .. i
    st.name_c[i] = ffi.new("char[?]", #st.names[i] + 1, st.names[i])
    st.tags[i] = {}
    st.attrs[i] = {}
  end
  st.roots = ffi.new("view_roots_t")
  st.roots.rows, st.roots.win, st.roots.dims = st.rows, st.win, st.dims
  st.keep = {}
  st.roots.has_tag = ffi.cast("int (*)(void *, uint32_t, const char *, size_t)",
    function(_, sku, tag, len) return st.tags[sku][ffi.string(tag, len)] and 1 or 0 end)
  st.roots.sku_name = ffi.cast("const char *(*)(void *, uint32_t)",
    function(_, sku) return st.name_c[sku] end)
  st.roots.attr_get = ffi.cast("void (*)(void *, uint32_t, const char *, size_t, attr_value_t *)",
    function(_, sku, name, len, out)
      local v = st.attrs[sku][ffi.string(name, len)]
      out.type, out.len, out.num, out.str = 0, 0, 0, nil
      if type(v) == "number" then out.type, out.num = 1, v
      elseif type(v) == "boolean" then out.type, out.num = 3, v and 1 or 0
      elseif type(v) == "string" then
        local c = ffi.new("char[?]", #v + 1, v)
        st.keep[#st.keep + 1] = c
        out.type, out.str, out.len = 2, c, #v
      elseif type(v) == "table" then
        local c = ffi.new("char[?]", #v[1] + 1, v[1])
        st.keep[#st.keep + 1] = c
        out.type, out.str, out.len = 4, c, #v[1]      -- { "raw json" }
      end
    end)
  return st
end

-- lua/rulevm.lua, initialised once per Lua state over a 4-row store.
function S.vm()
  if S._vm then return S._vm, S._store, S._ctl end
  local rulevm = require("rulevm")
  S._store = S.store(4)
  S._ctl = ffi.new("rulevm_ctl_t")
  S._ctl.budget, S._ctl.budget_compile = 200, 20000
  rulevm.init(S._store.roots, S.VIEW_CDEF, S.CTL_CDEF, S._ctl)
  S._vm = rulevm
  return rulevm, S._store, S._ctl
end

-- Compiles src as file; returns the rule object, or nil and the error text
-- "file:line: msg".
function S.compile(src, file, name_hint)
  local rulevm, _, ctl = S.vm()
  ctl.ticks = 0x7fffffff -- no budget outside a call, as src/rulevm.c keeps it
  local ok, res = xpcall(rulevm.compile, rulevm.on_error, file or "rules/t.lua", name_hint, src)
  ctl.ticks = 0x7fffffff
  if ok then return res end
  local e = res
  if e[2] and e[2] > 0 then return nil, string.format("%s:%d: %s", e[1] or "?", e[2], e[3]) end
  return nil, string.format("%s: %s", e[1] or "?", e[3])
end

-- Runs a rule's match over ids (0-based list) via its harness; returns the
-- 0/1 results as a Lua list. Errors propagate.
function S.match(rule, ids)
  local _, _, ctl = S.vm()
  local n = #ids
  local cids = ffi.new("uint32_t[?]", n, ids)
  local out = ffi.new("uint8_t[?]", n)
  ctl.ids, ctl.out8, ctl.n, ctl.pos = cids, out, n, 0
  local ok, err = pcall(rule[1])
  ctl.ticks = 0x7fffffff -- no budget outside a call, as src/rulevm.c keeps it
  if not ok then error(err, 0) end
  local r = {}
  for i = 0, n - 1 do r[i + 1] = out[i] end
  return r
end

return S
