-- dsl.lua - the words a rule file is written in (SPEC "Rule files"):
--   pool "NAME" { title=, active=, where=, match=, rank=, limit=, pin=,
--                 exclude=, examples= }
--   all { ... }, any { ... }, tag "x", no_tag "x"
--
-- Owns the strict validation of a pool spec, the where tree and its
-- canonical text (SPEC "Tag expressions": "a & (b | c) & !d", "*" for no
-- where), ISO-8601 parsing of `active`, and rule errors: tables
-- {file, line, msg} whose tostring is "file:line: msg". Line numbers come
-- from the caller's frame (for where words and pool) or, for a key of the
-- spec table, from scanning the source text for "key =" after the pool
-- call (a table constructor keeps no line information).
--
-- Every compile gets its own context (new_context) and its own word
-- closures (words), so one rule cannot reach another's state. The where
-- nodes a rule holds are empty tokens; their data stays in the context,
-- out of the rule's reach. Trusted glue; used by rulevm.lua and busted.
local sandbox = require("sandbox")
sandbox.trust()

local M = {}

M.NAME_MAX = 64
M.TAG_MAX = 256         -- as TAGEXPR_MAX_TAG
M.WHERE_MAX_NODES = 1000
M.WHERE_MAX_DEPTH = 30  -- well inside TAGEXPR_MAX_DEPTH with parentheses
M.TITLE_MAX = 200
M.LIST_MAX = 100000     -- pin / exclude / examples entries
M.SKU_MAX = 256

local format = string.format

-- -- Rule errors ------------------------------------------------------------------

local ErrMT = { __metatable = "rule error" }
ErrMT.__tostring = function(e)
  if e.line and e.line > 0 then return format("%s:%d: %s", e.file, e.line, e.msg) end
  return format("%s: %s", e.file, e.msg)
end

function M.rule_error(file, line, msg)
  return setmetatable({ file = file, line = line or 0, msg = msg }, ErrMT)
end

function M.is_rule_error(e)
  return type(e) == "table" and rawequal(debug.getmetatable(e), ErrMT)
end

-- -- Context and lines ------------------------------------------------------------

function M.new_context(file, name_hint, src)
  return {
    file = file, chunkname = "@" .. file, name_hint = name_hint, src = src or "",
    nodes = setmetatable({}, { __mode = "k" }),   -- token -> node data
    pools = setmetatable({}, { __mode = "k" }),   -- token -> validated pool
  }
end

local function lines_of(ctx)
  if not ctx.lines then
    local t = {}
    for l in (ctx.src .. "\n"):gmatch("([^\n]*)\n") do t[#t + 1] = l end
    ctx.lines = t
  end
  return ctx.lines
end

-- The last line that is not blank (where a missing `return` belongs).
function M.last_line(ctx)
  local lines = lines_of(ctx)
  for i = #lines, 1, -1 do
    if lines[i]:find("%S") then return i end
  end
  return 1
end

-- The line the rule is executing, found on the stack; 0 if none.
local function caller_line(ctx)
  for level = 3, 40 do
    local info = debug.getinfo(level, "Sl")
    if not info then break end
    if info.source == ctx.chunkname then return info.currentline end
  end
  return 0
end

-- First line >= from where `key =` appears; `from` if none.
local function key_line(ctx, key, from, nth)
  if type(key) ~= "string" or not key:find("^[%a_][%w_]*$") then return from end
  local pat = "%f[%w_]" .. key .. "%s*=%f[^=]"
  local lines, seen = lines_of(ctx), 0
  for i = math.max(from, 1), #lines do
    local l = lines[i]:gsub("%-%-.*$", "")
    local pos = 1
    while true do
      local s, e = l:find(pat, pos)
      if not s then break end
      seen = seen + 1
      if seen >= (nth or 1) then return i end
      pos = e + 1
    end
  end
  return from
end

-- -- ISO-8601 (the forms parse_iso8601_ms in src/ndjson.c accepts) ----------------

local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

local function days_in_month(y, m)
  if m == 2 then
    local leap = (y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0
    return leap and 29 or 28
  end
  return (m == 4 or m == 6 or m == 9 or m == 11) and 30 or 31
end

-- ms since the epoch, or nil.
function M.parse_iso8601(s)
  if type(s) ~= "string" then return nil end
  local y, mo, d, rest = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)(.*)$")
  if not y then return nil end
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  if mo < 1 or mo > 12 or d < 1 or d > days_in_month(y, mo) then return nil end
  local h, mi, sec, ms, off = 0, 0, 0, 0, 0
  if rest ~= "" then
    local hh, mm, r = rest:match("^[Tt ](%d%d):(%d%d)(.*)$")
    if not hh then return nil end
    h, mi, rest = tonumber(hh), tonumber(mm), r
    if h > 23 or mi > 59 then return nil end
    local ss, r2 = rest:match("^:(%d%d)(.*)$")
    if ss then
      sec, rest = tonumber(ss), r2
      if sec > 59 then return nil end
      local frac, r3 = rest:match("^%.(%d*)(.*)$")
      if frac then
        if #frac < 1 or #frac > 9 then return nil end
        ms, rest = tonumber((frac .. "00"):sub(1, 3)), r3
      end
    end
    if rest == "Z" or rest == "z" then
      rest = ""
    elseif rest ~= "" then
      local sign, oh, om = rest:match("^([%+%-])(%d%d):?(%d%d)$")
      if not sign then return nil end
      oh, om = tonumber(oh), tonumber(om)
      if oh > 23 or om > 59 then return nil end
      off = (sign == "-" and -1 or 1) * (oh * 60 + om)
    end
  end
  return (((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60 + sec) * 1000 + ms - off * 60000
end

-- -- Where trees ------------------------------------------------------------------

-- Renders node data; returns text and precedence (3 atom, 2 "&", 1 "|").
local function render(d)
  if d.kind == "tag" then return d.name, 3 end
  if d.kind == "no_tag" then return "!" .. d.name, 3 end
  local parts = {}
  for i, c in ipairs(d) do
    local s, p = render(c)
    if d.kind == "all" and p < 2 then s = "(" .. s .. ")" end
    parts[i] = s
  end
  if #parts == 1 then return render(d[1]) end
  return table.concat(parts, d.kind == "all" and " & " or " | "), d.kind == "all" and 2 or 1
end

-- Canonical tag expression of node data; "*" for nil.
function M.where_text(d)
  if d == nil then return "*" end
  return (render(d))
end

-- Evaluates node data with has(tag) -> bool.
local function eval(d, has)
  if d.kind == "tag" then return has(d.name) and true or false end
  if d.kind == "no_tag" then return not has(d.name) end
  if d.kind == "all" then
    for _, c in ipairs(d) do if not eval(c, has) then return false end end
    return true
  end
  for _, c in ipairs(d) do if eval(c, has) then return true end end
  return false
end
M.where_eval = eval

-- The top-level clauses of node data with their results:
-- { {text=, value=}, ... }, and the overall result.
function M.where_explain(d, has)
  if d == nil then return {}, true end
  local list = {}
  if d.kind == "all" or d.kind == "any" then
    for i, c in ipairs(d) do
      local text, p = render(c)
      if p < 2 then text = "(" .. text .. ")" end
      list[i] = { text = text, value = eval(c, has) }
    end
  else
    list[1] = { text = render(d), value = eval(d, has) }
  end
  return list, eval(d, has)
end

-- -- Spec validation -------------------------------------------------------------

-- Length of t if it is a proper array (keys 1..n only), else nil.
local function array_len(t)
  local n = 0
  for k in next, t do
    if type(k) ~= "number" or k < 1 or k % 1 ~= 0 then return nil end
    n = n + 1
  end
  for i = 1, n do if rawget(t, i) == nil then return nil end end
  return n
end
M.array_len = array_len

local SKU_STRING = { sku = true, market = true, category = true, brand = true, seller = true }
local SKU_NUMBER = { price = true, list_price = true, stock = true, rating = true, reviews = true }
local SKU_BOOL = { lazmall = true, free_shipping = true }
for _, m in ipairs({ "sales", "gmv", "views", "clicks", "carts" }) do
  for _, w in ipairs({ "1h", "24h", "7d" }) do SKU_NUMBER[m .. "_" .. w] = true end
end
local SKU_DERIVED = {
  discount = "discount is derived from price and list_price; set those",
  top_category = "top_category is derived from category (\"top/leaf\"); set category",
}

-- Nested attribute values: strings, numbers, booleans and tables of them.
local function check_attr_value(v, depth)
  local t = type(v)
  if t == "string" or t == "number" or t == "boolean" then return true end
  if t ~= "table" or depth > 16 then return false end
  for k, x in next, v do
    if (type(k) ~= "string" and type(k) ~= "number") or not check_attr_value(x, depth + 1) then
      return false
    end
  end
  return true
end

function M.words(ctx)
  local nodes, pools = ctx.nodes, ctx.pools

  local function fail(line, fmt, ...)
    error(M.rule_error(ctx.file, line, format(fmt, ...)), 0)
  end

  -- The words work while the file's top level runs: called from match or
  -- rank they would run glue loops over rule data on every evaluation.
  local function open_only(word)
    if ctx.closed then
      fail(caller_line(ctx), "%s can only be used while the rule file loads, not inside match or rank", word)
    end
  end

  local function node(d)
    local token = {}
    nodes[token] = d
    return token
  end

  local function tag_name(word, name, line)
    if type(name) ~= "string" then
      fail(line, '%s expects a tag name string: %s "x"', word, word)
    end
    if #name == 0 or #name > M.TAG_MAX or not name:find("^[A-Za-z0-9_:/%.%+%-]+$") then
      fail(line, '%s "%s": a tag is 1-%d characters of A-Z a-z 0-9 _ : / . + -',
           word, name, M.TAG_MAX)
    end
    return name
  end

  local function tag(name)
    open_only("tag")
    return node({ kind = "tag", name = tag_name("tag", name, caller_line(ctx)) })
  end

  local function no_tag(name)
    open_only("no_tag")
    return node({ kind = "no_tag", name = tag_name("no_tag", name, caller_line(ctx)) })
  end

  local function group(kind)
    return function(list)
      open_only(kind)
      local line = caller_line(ctx)
      if type(list) ~= "table" or nodes[list] then
        fail(line, "%s expects a list of clauses: %s { tag \"a\", ... }", kind, kind)
      end
      local n = array_len(list)
      if n == nil then fail(line, "%s { ... } takes a list of clauses, not keys", kind) end
      if n == 0 then fail(line, "%s { } needs at least one clause", kind) end
      local d = { kind = kind }
      local size, depth = 1, 1
      for i = 1, n do
        local c = nodes[list[i]]
        if not c then
          fail(line, '%s clause #%d is not a clause (use tag "x", no_tag "x", all {...}, any {...})',
               kind, i)
        end
        d[i] = c
        size = size + (c.size or 1)
        depth = math.max(depth, (c.depth or 1) + 1)
      end
      if size > M.WHERE_MAX_NODES or depth > M.WHERE_MAX_DEPTH then
        fail(line, "where is too large (at most %d clauses nested %d deep)",
             M.WHERE_MAX_NODES, M.WHERE_MAX_DEPTH)
      end
      d.size, d.depth = size, depth
      return node(d)
    end
  end

  local KEYS = {
    title = true, active = true, where = true, match = true, rank = true, limit = true,
    pin = true, exclude = true, examples = true,
  }

  local function validate(name, spec, line)
    if type(spec) ~= "table" or nodes[spec] or pools[spec] then
      fail(line, 'pool "%s" expects a table: pool "%s" { ... }', name, name)
    end
    local p = { name = name, line = line, file = ctx.file }
    local function kline(k) return key_line(ctx, k, line) end
    for k in next, spec do
      if type(k) ~= "string" then
        fail(line, 'pool "%s": unexpected positional value (every entry needs a key, e.g. title = "...")', name)
      end
      if not KEYS[k] then
        fail(kline(k), 'unknown key "%s" in pool "%s"', k, name)
      end
    end
    local function want(k, t, what)
      local v = rawget(spec, k)
      if v ~= nil and type(v) ~= t then
        fail(kline(k), 'pool "%s": %s must be %s, got %s', name, k, what, type(v))
      end
      return v
    end

    local title = want("title", "string", "a string")
    if title and #title > M.TITLE_MAX then
      fail(kline("title"), 'pool "%s": title is longer than %d bytes', name, M.TITLE_MAX)
    end
    p.title = title or ""

    local active = want("active", "table", "a table { from = ISO, to = ISO }")
    p.active_from, p.active_to = 0, 0
    if active then
      local aline = kline("active")
      for k in next, active do
        if k ~= "from" and k ~= "to" then
          fail(aline, 'pool "%s": unknown key "%s" in active (use from and to)', name, tostring(k))
        end
      end
      for _, k in ipairs({ "from", "to" }) do
        local v = rawget(active, k)
        if v ~= nil then
          local ms = M.parse_iso8601(v)
          if not ms then
            fail(key_line(ctx, k, aline), 'pool "%s": active.%s must be an ISO-8601 date-time like "2026-11-11T00:00+08:00", got %s',
                 name, k, type(v) == "string" and format("%q", v) or type(v))
          end
          if k == "from" then p.active_from = ms else p.active_to = ms end
        end
      end
      if p.active_from ~= 0 and p.active_to ~= 0 and p.active_to <= p.active_from then
        fail(aline, 'pool "%s": active.to must be after active.from', name)
      end
    end

    local where = rawget(spec, "where")
    if where ~= nil then
      local d = nodes[where]
      if not d then
        fail(kline("where"), 'pool "%s": where must be a clause: tag "x", no_tag "x", all {...} or any {...}', name)
      end
      p.where_data = d
    end
    p.where = M.where_text(p.where_data)

    p.match = want("match", "function", "a function(s)")
    p.rank = want("rank", "function", "a function(s) returning a number")

    local limit = rawget(spec, "limit")
    p.limit = 0
    if limit ~= nil then
      if type(limit) ~= "number" or limit < 1 or limit % 1 ~= 0 or limit > 1e9 then
        fail(kline("limit"), 'pool "%s": limit must be a positive integer, got %s', name,
             type(limit) == "number" and tostring(limit) or type(limit))
      end
      if not p.rank then
        fail(kline("limit"), 'pool "%s": limit needs rank (which SKUs come first?)', name)
      end
      p.limit = limit
    end

    for _, k in ipairs({ "pin", "exclude" }) do
      local v = want(k, "table", 'a list of SKU ids { "SKU1", ... }')
      local list = {}
      if v then
        local n = array_len(v)
        if n == nil or n > M.LIST_MAX then
          fail(kline(k), 'pool "%s": %s must be a list of SKU ids { "SKU1", ... }', name, k)
        end
        for i = 1, n do
          local id = v[i]
          if type(id) ~= "string" or #id == 0 or #id > M.SKU_MAX then
            fail(kline(k), 'pool "%s": %s[%d] must be a SKU id string (1-%d bytes)', name, k, i, M.SKU_MAX)
          end
          list[i] = id
        end
      end
      p[k] = list
    end

    local examples = want("examples", "table", "a list of { sku = {...}, expect = true|false }")
    p.examples = {}
    if examples then
      local eline = kline("examples")
      local n = array_len(examples)
      if n == nil or n > M.LIST_MAX then
        fail(eline, 'pool "%s": examples must be a list of { sku = {...}, expect = true|false }', name)
      end
      for i = 1, n do
        local ex = examples[i]
        local xline = key_line(ctx, "expect", eline, i)
        if type(ex) ~= "table" then
          fail(xline, 'pool "%s": example %d must be a table { sku = {...}, expect = true|false }', name, i)
        end
        for k in next, ex do
          if k ~= "sku" and k ~= "expect" and k ~= "name" then
            fail(xline, 'pool "%s": example %d has unknown key "%s" (use sku, expect, name)', name, i, tostring(k))
          end
        end
        local sku, expect, label = rawget(ex, "sku"), rawget(ex, "expect"), rawget(ex, "name")
        if type(sku) ~= "table" then fail(xline, 'pool "%s": example %d needs sku = { ... }', name, i) end
        if type(expect) ~= "boolean" then fail(xline, 'pool "%s": example %d needs expect = true or false', name, i) end
        if label ~= nil and type(label) ~= "string" then fail(xline, 'pool "%s": example %d name must be a string', name, i) end
        local copy = {}
        for k, v in next, sku do
          local bad
          if SKU_DERIVED[k] then
            bad = SKU_DERIVED[k]
          elseif SKU_STRING[k] then
            if type(v) ~= "string" then bad = k .. " must be a string" end
          elseif SKU_NUMBER[k] then
            if type(v) ~= "number" then bad = k .. " must be a number" end
          elseif SKU_BOOL[k] then
            if type(v) ~= "boolean" then bad = k .. " must be true or false" end
          elseif k == "tags" then
            local tn = type(v) == "table" and array_len(v)
            if not tn then
              bad = "tags must be a list of tag strings"
            else
              for j = 1, tn do
                local t = v[j]
                if type(t) ~= "string" or not t:find("^[A-Za-z0-9_:/%.%+%-]+$") or #t > M.TAG_MAX then
                  bad = format("tags[%d] is not a valid tag", j)
                  break
                end
              end
            end
          elseif k == "attrs" then
            if type(v) ~= "table" then
              bad = "attrs must be a table"
            else
              for ak, av in next, v do
                if type(ak) ~= "string" or not check_attr_value(av, 1) then
                  bad = "attrs must map names to strings, numbers, booleans or tables of them"
                  break
                end
              end
            end
          else
            bad = format('unknown SKU field "%s"', tostring(k))
          end
          if bad then fail(xline, 'pool "%s": example %d: %s', name, i, bad) end
          copy[k] = v
        end
        p.examples[i] = { sku = copy, expect = expect, name = label, line = xline, index = i }
      end
    end
    return p
  end

  local function pool(name)
    open_only("pool")
    local line = caller_line(ctx)
    if type(name) ~= "string" then fail(line, 'pool expects a name: pool "name" { ... }') end
    if #name < 1 or #name > M.NAME_MAX or not name:find("^[a-z0-9_%-]+$") then
      fail(line, 'pool name "%s" must be 1-%d characters of a-z 0-9 _ -', name, M.NAME_MAX)
    end
    if ctx.name_hint and name ~= ctx.name_hint then
      fail(line, 'pool name "%s" does not match file name %s.lua', name, ctx.name_hint)
    end
    return function(spec)
      open_only("pool")
      local p = validate(name, spec, line)
      local token = {}
      pools[token] = p
      return token
    end
  end

  return { pool = pool, all = group("all"), any = group("any"), tag = tag, no_tag = no_tag }
end

-- Adds the DSL words to a rule environment.
function M.install(env, ctx)
  for k, v in pairs(M.words(ctx)) do env[k] = v end
  return env
end

-- The validated pool a rule chunk returned, or nil.
function M.pool_of(ctx, value)
  if type(value) ~= "table" then return nil end
  return ctx.pools[value]
end

return M
