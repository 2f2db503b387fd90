-- Everything a recommendation answer needs from Redis, in one call (adapters/recs_store.py).
-- KEYS[1] recs:recent:<user>, KEYS[2] recs:bought:<user> (a user 0's: empty)
-- ARGV[1] recent items to expand, ARGV[2] neighbours per item, ARGV[3] the context product
-- ('0': none), ARGV[4] items kept at most (the walk stops there: a request checks about
-- that many products, not every candidate), ARGV[5] live neighbours kept at most, then the
-- model's candidate ids, best first (the shopper's precomputed ranked list).
-- Candidates in this order: the bought-together and viewed-together neighbours of the
-- context product and of the shopper's most recent items, the model's list, then trending
-- in the seeds' categories when fewer than ARGV[4] were kept. Kept only when active,
-- available (any SKU with stock left: the checkout's on_hand - reserved - sold from
-- {co}:s:<sku>, the catalog's cat:stk level when the checkout has none or an older
-- version) and not bought (a consumable refill comes back: recs:item field x = 1).
-- Live scores are reciprocal ranks: a neighbour at rank r of a seed of weight w (the context
-- 2, the n-th recent item 1/n) adds w / r.
-- Returns {recent ids, {id, covis score, cobuy score, trend score, ...} of those kept}.
local n_recent, n_neigh = tonumber(ARGV[1]), tonumber(ARGV[2])
local context, want, want_live = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local recent = redis.call('ZRANGE', KEYS[1], 0, n_recent - 1, 'REV')
local score = {}   -- id -> {covis, cobuy, trend}
local order = {}   -- live neighbours, first seen first
local function add(id, k, v)
  local s = score[id]
  if not s then s = {0, 0, 0}; score[id] = s; order[#order + 1] = id end
  s[k] = s[k] + v
end
local seeds = {}
if context ~= '0' then seeds[1] = {context, 2.0} end
for r, id in ipairs(recent) do seeds[#seeds + 1] = {id, 1.0 / r} end
local cats = {}
for _, seed in ipairs(seeds) do
  local id, w = seed[1], seed[2]
  -- by rank, not by score: a Lua string per score made each read 3x dearer (a 20-item
  -- read with scores ~33 us in the script against ~10 us without, measured)
  local nb = redis.call('ZRANGE', 'recs:covis:' .. id, 0, n_neigh - 1, 'REV')
  for i = 1, #nb do add(nb[i], 1, w / i) end
  nb = redis.call('ZRANGE', 'recs:cobuy:' .. id, 0, n_neigh - 1, 'REV')
  for i = 1, #nb do add(nb[i], 2, w / i) end
  local c = redis.call('HGET', 'recs:item:' .. id, 'c')
  if c then cats[#cats + 1] = c end
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

-- which of ``ids`` pass the filter, in three calls and one HMGET each (a call per check
-- cost ~5-10 us in the script): SMISMEMBER for bought, HMGET each, one MGET of the levels
local function check(ids)
  local bought = redis.call('SMISMEMBER', KEYS[2], unpack(ids))
  local keys, owner, ok = {}, {}, {}
  for n, id in ipairs(ids) do
    local item = redis.call('HMGET', 'recs:item:' .. id, 's', 'k', 'x')
    if item[1] == 'active' and (item[3] == '1' or bought[n] == 0) then
      for sku in string.gmatch(item[2] or '', '[^,]+') do
        keys[#keys + 1] = '{co}:s:' .. sku
        keys[#keys + 1] = 'cat:stk:' .. sku
        owner[#owner + 1] = n
      end
    end
  end
  if #keys > 0 then
    local lv = redis.call('MGET', unpack(keys))
    for j, n in ipairs(owner) do
      if left(lv[2 * j - 1], lv[2 * j]) > 0 then ok[n] = true end
    end
  end
  return ok
end

local out = {}
local seen = {}
local kept = 0
if context ~= '0' then seen[context] = true end
-- keeps items of ``list`` in order until ``limit`` are kept, checking as many at a time as
-- are still wanted
local function walk(list, limit)
  local i = 1
  while kept < limit and i <= #list do
    local batch = {}
    while #batch < limit - kept and i <= #list do
      local id = list[i]
      i = i + 1
      if not seen[id] then seen[id] = true; batch[#batch + 1] = id end
    end
    if #batch > 0 then
      local ok = check(batch)
      for n, id in ipairs(batch) do
        if ok[n] then
          local s = score[id] or {0, 0, 0}
          out[#out + 1] = id
          out[#out + 1] = tostring(s[1])
          out[#out + 1] = tostring(s[2])
          out[#out + 1] = tostring(s[3])
          kept = kept + 1
        end
      end
    end
  end
end
walk(order, math.min(want_live, want))
walk({unpack(ARGV, 6)}, want)
for _, c in ipairs(cats) do
  if kept >= want then break end
  local nb = redis.call('ZRANGE', 'recs:trend:' .. c, 0, want - 1, 'REV')
  for _, id in ipairs(nb) do
    if not score[id] then score[id] = {0, 0, 1} end
  end
  walk(nb, want)
end
return {recent, out}
