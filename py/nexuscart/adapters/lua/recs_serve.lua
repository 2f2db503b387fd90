-- The live part of a recommendation answer, in one call (adapters/recs_store.py: serve).
-- Which products are active and available is not read here: each serving worker holds that
-- snapshot (recs_avail.lua).
-- KEYS[1] recs:recent:<user>, KEYS[2] recs:bought:<user> (a user 0's: empty)
-- ARGV[1] recent items to expand, ARGV[2] neighbours per seed, ARGV[3] the number c of
-- context products (a product page: 1; a cart: its main lines; 0: none), ARGV[4] trending
-- items per seed category (0: none), ARGV[5] the most bought items returned whole,
-- ARGV[6..5+c] the context products, then the candidates the caller holds (its
-- precomputed list) to check against the bought items.
-- Seeds: the context products, then the shopper's ARGV[1] most recent items.
-- Returns {recent ids, {viewed-together ids of each seed, by rank}, {bought-together ids of
-- each seed}, {trending ids of each distinct seed category}, bought ids, whole}: whole is 1
-- when the bought ids are the shopper's whole set (at most ARGV[5] items), else 0 and they
-- are those among the neighbours, the trending items and the candidates.
local n_recent, n_neigh = tonumber(ARGV[1]), tonumber(ARGV[2])
local n_context, n_trend = tonumber(ARGV[3]), tonumber(ARGV[4])
local inline_max = tonumber(ARGV[5])
local recent = redis.call('ZRANGE', KEYS[1], 0, n_recent - 1, 'REV')
local seeds = {}
for i = 6, 5 + n_context do seeds[#seeds + 1] = ARGV[i] end
for _, id in ipairs(recent) do seeds[#seeds + 1] = id end
local covis, cobuy, trend, cats = {}, {}, {}, {}
for n, id in ipairs(seeds) do
  -- by rank, not by score: a Lua string per score made each read 3x dearer
  covis[n] = redis.call('ZRANGE', 'recs:covis:' .. id, 0, n_neigh - 1, 'REV')
  cobuy[n] = redis.call('ZRANGE', 'recs:cobuy:' .. id, 0, n_neigh - 1, 'REV')
  if n_trend > 0 then
    local c = redis.call('HGET', 'recs:item:' .. id, 'c')
    if c and not cats[c] then
      cats[c] = true
      trend[#trend + 1] = redis.call('ZRANGE', 'recs:trend:' .. c, 0, n_trend - 1, 'REV')
    end
  end
end
local n_bought = redis.call('SCARD', KEYS[2])
if n_bought <= inline_max then  -- none, or few enough to send whole
  local all = n_bought > 0 and redis.call('SMEMBERS', KEYS[2]) or {}
  return {recent, covis, cobuy, trend, all, 1}
end
-- a large set is checked item by item: the neighbours, the trending items and the caller's
-- candidates
local cand, bought = {}, {}
for _, lists in ipairs({covis, cobuy, trend}) do
  for _, ids in ipairs(lists) do for _, x in ipairs(ids) do cand[#cand + 1] = x end end
end
for i = 6 + n_context, #ARGV do cand[#cand + 1] = ARGV[i] end
for at = 1, #cand, 1000 do  -- unpack has a stack limit
  local chunk = {unpack(cand, at, math.min(at + 999, #cand))}
  local hit = redis.call('SMISMEMBER', KEYS[2], unpack(chunk))
  for i, h in ipairs(hit) do if h == 1 then bought[#bought + 1] = chunk[i] end end
end
return {recent, covis, cobuy, trend, bought, 0}
