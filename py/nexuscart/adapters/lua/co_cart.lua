-- A cart change (adapters/carts.py), atomic with its limits. A cart is a hash: '_v' its
-- version (moves on every change; the checkout empties only the version it priced), '_c'
-- its currency, '_k' the Idempotency-Key of its last change (a retry of that change is
-- answered without applying it again), then one field per SKU:
-- "quantity|product_id|price_seen|currency". Every change renews the inactivity expiry.
-- KEYS: 1 the cart, 2 (merge) the guest cart merged into it
-- ARGV: 1 op (add | set | merge | get), 2 ttl (ms), 3 max lines, 4 max quantity, 5 the
--   request's Idempotency-Key ('' none), then
--   add/set: 6 sku, 7 product_id, 8 quantity (add: more units; set: the units, 0 removes),
--            9 unit price now, 10 currency
-- Returns {0, version, merged lines, lines left out, {the cart's fields and values}, {the
--   checkout's level of each line's SKU, in field order}} done (a retry: the same without a
--   change; get: the cart as it is, its expiry renewed); {1} mixed currencies; {2} quantity
--   above the limit; {3} too many lines; {4} no such line (set)
-- The levels ({co}:s:<sku>, "version:on_hand:reserved:sold", false when the checkout has
-- none) are keys of this script's slot built from the cart's own fields: the caller shows
-- each line's availability without a second round trip.
local op, ttl, max_lines, max_qty = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local cart = KEYS[1]
local idem = ARGV[5]
-- {0, version, merged, left out, the cart as HGETALL answers it, the levels of its lines}
local function answer(v, merged, left)
  local fields = redis.call('HGETALL', cart)
  local keys = {}
  for i = 1, #fields, 2 do
    local f = fields[i]
    if f ~= '_v' and f ~= '_c' and f ~= '_k' then keys[#keys + 1] = '{co}:s:' .. f end
  end
  local levels = {}
  if #keys > 0 then levels = redis.call('MGET', unpack(keys)) end
  return {0, v, merged or 0, left or 0, fields, levels}
end

if op == 'get' or (idem ~= '' and redis.call('HGET', cart, '_k') == idem) then
  redis.call('PEXPIRE', cart, ttl)
  return answer(tonumber(redis.call('HGET', cart, '_v') or '0'))
end

local function lines_of(key)
  local n = redis.call('HLEN', key)
  for _, f in ipairs({'_v', '_c', '_k'}) do
    if redis.call('HEXISTS', key, f) == 1 then n = n - 1 end
  end
  return n
end

-- the caller shows the cart without reading it again
local function done(merged, left)
  local v = redis.call('HINCRBY', cart, '_v', 1)
  if idem ~= '' then redis.call('HSET', cart, '_k', idem) end
  redis.call('PEXPIRE', cart, ttl)
  return answer(v, merged, left)
end

if op == 'merge' then
  local guest = redis.call('HGETALL', KEYS[2])
  local cur = redis.call('HGET', cart, '_c')
  local count = lines_of(cart)
  local merged, left = 0, 0
  for i = 1, #guest, 2 do
    local sku, val = guest[i], guest[i + 1]
    if sku ~= '_v' and sku ~= '_c' and sku ~= '_k' then
      local q, pid, price, c = string.match(val, '^(%d+)|(%d+)|(%d+)|(%u+)$')
      local have = redis.call('HGET', cart, sku)
      if (cur and count > 0 and c ~= cur) or (not have and count >= max_lines) then
        left = left + 1
      else
        local total = tonumber(q)
        if have then total = total + tonumber(string.match(have, '^(%d+)|')) else count = count + 1 end
        if total > max_qty then total = max_qty end
        redis.call('HSET', cart, sku, total .. '|' .. pid .. '|' .. price .. '|' .. c, '_c', c)
        cur = c
        merged = merged + 1
      end
    end
  end
  redis.call('DEL', KEYS[2])
  return done(merged, left)
end

local sku, pid, qty, price, c = ARGV[6], ARGV[7], tonumber(ARGV[8]), ARGV[9], ARGV[10]
local have = redis.call('HGET', cart, sku)
if op == 'set' then
  if not have then return {4} end
  if qty == 0 then
    redis.call('HDEL', cart, sku)
    if lines_of(cart) == 0 then redis.call('HDEL', cart, '_c') end
    return done()
  end
  if qty > max_qty then return {2} end
  -- the price seen stays the one of the add: changing a quantity confirms no new price
  local _, rest = string.match(have, '^(%d+)|(.*)$')
  redis.call('HSET', cart, sku, qty .. '|' .. rest)
  return done()
end
local cur = redis.call('HGET', cart, '_c')
if cur and cur ~= c and lines_of(cart) > (have and 1 or 0) then return {1} end
local total = qty
if have then total = total + tonumber(string.match(have, '^(%d+)|')) end
if total > max_qty then return {2} end
if not have and lines_of(cart) >= max_lines then return {3} end
-- adding from the product page: the shopper has seen today's price
redis.call('HSET', cart, sku, total .. '|' .. pid .. '|' .. price .. '|' .. c, '_c', c)
return done()
