-- The reads behind each serving worker's availability snapshot (adapters/recs_store.py:
-- RecsStore.availability): which products may be recommended, for the products that changed
-- since the caller's cursors and for a slice of every product (the sweep).
-- A product may be recommended when active (recs:item field s) and available: any SKU with
-- stock left, the checkout's on_hand - reserved - sold from {co}:s:<sku>, the catalog's
-- cat:stk level when the checkout has none or an older version.
-- What announces a change of either (each write appends in the same script as the write, or
-- right after it):
--   cat:changes   the catalog's stock and product writes (field p: the product)
--   recs:changes  the recommendation service's product records (field p)
--   {co}:out      the everyday checkout's sell-outs: the product of each SKU a reservation
--                 left with none available (field p); a reservation that leaves units
--                 changes no product's availability, so it announces nothing
-- ARGV[1] cat:changes cursor, ARGV[2] recs:changes cursor, ARGV[3] {co}:out cursor (all
-- three '' on the first call: start from now), ARGV[4] sweep cursor (SSCAN of recs:items),
-- ARGV[5] products swept at most (0: no sweep), ARGV[6] changes read at most per source.
-- Returns {cat cursor, recs cursor, sold-out cursor, sweep cursor, more, gap, {pid, flag, ...}}:
-- more = 1 when a source had more than ARGV[6] (call again before trusting the snapshot),
-- gap = 1 when a stream was trimmed past its cursor (changes were lost: sweep everything);
-- flag 0: never recommend, 1: may, 2: may, and a consumable (bought again).
local max_changes = tonumber(ARGV[6])
local ids, pos = {}, {}
local function want(pid)
  if pid and not pos[pid] then ids[#ids + 1] = pid; pos[pid] = #ids end
end

-- a < b for stream ids "<ms>-<seq>"
local function before(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, bm = tonumber(am), tonumber(bm)
  return am < bm or (am == bm and tonumber(as) < tonumber(bs))
end

local more, gap = 0, 0
local function follow(stream, cursor)
  if cursor == '' then
    local newest = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
    return newest[1] and newest[1][1] or '0-0'
  end
  local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
  if cursor ~= '0-0' and first[1] and before(cursor, first[1][1]) then gap = 1 end
  local entries = redis.call('XRANGE', stream, '(' .. cursor, '+', 'COUNT', max_changes)
  if #entries >= max_changes then more = 1 end
  for _, e in ipairs(entries) do
    cursor = e[1]
    local f = e[2]
    for i = 1, #f, 2 do if f[i] == 'p' then want(f[i + 1]) end end
  end
  return cursor
end
local cat_cursor = follow('cat:changes', ARGV[1])
local recs_cursor = follow('recs:changes', ARGV[2])
local out_cursor = follow('{co}:out', ARGV[3])

local sweep = ARGV[4]
if tonumber(ARGV[5]) > 0 then
  local r = redis.call('SSCAN', 'recs:items', sweep, 'COUNT', ARGV[5])
  sweep = r[1]
  for _, pid in ipairs(r[2]) do want(pid) end
end

-- the on_hand of an SKU's levels (the checkout's copy, the catalog's) less what the
-- checkout reserved or sold: the catalog's on_hand when its version is newer
local function left(co, cat)
  local on_hand, taken, version = nil, 0, nil
  if co then
    local v, on, r, s = string.match(co, '^(%-?%d+):(%-?%d+):(%d+):(%d+)$')
    if v then version, on_hand, taken = tonumber(v), tonumber(on), tonumber(r) + tonumber(s) end
  end
  if cat then
    local v, on = string.match(cat, '^(%-?%d+):(%-?%d+)')
    if v and (version == nil or tonumber(v) > version) then on_hand = tonumber(on) end
  end
  return on_hand and on_hand - taken or 0
end

-- one HMGET per product and one MGET of every level (a call per check cost ~5-10 us)
local out, keys, owner = {}, {}, {}
for n, pid in ipairs(ids) do
  out[2 * n - 1], out[2 * n] = pid, 0
  local item = redis.call('HMGET', 'recs:item:' .. pid, 's', 'k', 'x')
  if item[1] == 'active' then
    for sku in string.gmatch(item[2] or '', '[^,]+') do
      keys[#keys + 1] = '{co}:s:' .. sku
      keys[#keys + 1] = 'cat:stk:' .. sku
      owner[#owner + 1] = {n, item[3] == '1' and 2 or 1}
    end
  end
end
for at = 1, #keys, 1000 do  -- unpack has a stack limit
  local lv = redis.call('MGET', unpack(keys, at, math.min(at + 999, #keys)))
  for j = 1, #lv, 2 do
    local o = owner[(at - 1) / 2 + (j + 1) / 2]
    if left(lv[j], lv[j + 1]) > 0 then out[2 * o[1]] = o[2] end
  end
end
return {cat_cursor, recs_cursor, out_cursor, sweep, more, gap, out}
