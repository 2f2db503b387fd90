-- Everything a recommendation answer needs from Redis, in one call (adapters/recs_store.py).
-- KEYS[1] recs:recent:<user>, KEYS[2] recs:bought:<user> (a user 0's: empty)
-- ARGV[1] recent items to expand, ARGV[2] neighbours per item, ARGV[3] the context product
-- ('0': none), ARGV[4] candidates wanted at least (trending of the context's or the recent
-- items' categories fill up to it), then candidate product ids from the model.
-- Candidates: the model's, the bought-together and viewed-together neighbours of the context
-- product and of the shopper's most recent items, trending; kept only when active, in stock
-- (any of its SKUs' cat:stk stock > 0) and not bought (a consumable refill comes back:
-- recs:item field x = 1).
-- Returns {recent ids, {id, covis score, cobuy score, trend score, ...} of those kept}.
local n_recent, n_neigh = tonumber(ARGV[1]), tonumber(ARGV[2])
local context, want = ARGV[3], tonumber(ARGV[4])
local recent = redis.call('ZRANGE', KEYS[1], 0, n_recent - 1, 'REV')
local score = {}   -- id -> {covis, cobuy, trend}
local order = {}
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
  local nb = redis.call('ZRANGE', 'recs:covis:' .. id, 0, n_neigh - 1, 'REV', 'WITHSCORES')
  for i = 1, #nb, 2 do add(nb[i], 1, w * tonumber(nb[i + 1])) end
  nb = redis.call('ZRANGE', 'recs:cobuy:' .. id, 0, n_neigh - 1, 'REV', 'WITHSCORES')
  for i = 1, #nb, 2 do add(nb[i], 2, w * tonumber(nb[i + 1])) end
  local c = redis.call('HGET', 'recs:item:' .. id, 'c')
  if c then cats[#cats + 1] = c end
end
for i = 5, #ARGV do add(ARGV[i], 1, 0) end
if #order < want then
  for _, c in ipairs(cats) do
    local nb = redis.call('ZRANGE', 'recs:trend:' .. c, 0, want - 1, 'REV', 'WITHSCORES')
    for i = 1, #nb, 2 do add(nb[i], 3, 1) end
  end
end
local out = {}
local seen = {}
if context ~= '0' then seen[context] = true end
for _, id in ipairs(order) do
  if not seen[id] then
    seen[id] = true
    local item = redis.call('HMGET', 'recs:item:' .. id, 's', 'k', 'x')
    local ok = item[1] == 'active'
    if ok and item[3] ~= '1' and redis.call('SISMEMBER', KEYS[2], id) == 1 then ok = false end
    if ok then
      ok = false
      for sku in string.gmatch(item[2] or '', '[^,]+') do
        local lvl = redis.call('GET', 'cat:stk:' .. sku)
        if lvl then
          local stock = tonumber(string.match(lvl, '^[^:]*:(%-?%d+)'))
          if stock and stock > 0 then ok = true; break end
        end
      end
    end
    if ok then
      local s = score[id]
      out[#out + 1] = id
      out[#out + 1] = tostring(s[1])
      out[#out + 1] = tostring(s[2])
      out[#out + 1] = tostring(s[3])
    end
  end
end
return {recent, out}
