-- Confirm a paid hold: held units become sold, atomically, with a StockSold event.
-- Idempotent: an order already sold answers its quantity again without a second event.
-- KEYS: 1 meta, 2 stock, 4 holds, 5 expiry, 6 outbox, 7 sold (hash order_id -> user:qty)
--   (KEYS[3], buyers, is unused but kept so every script takes the same key list)
-- ARGV: 1 order_id, 2 event_id, 3 occurred_at
-- Returns units sold by this order, or -1 when the hold is gone: released, or past its
-- expiry (the expirer may not have run yet, but the hold is its to release, not to sell).
local order_id = ARGV[1]
local sold = redis.call('HGET', KEYS[7], order_id)
if sold then return tonumber(string.match(sold, ':(%d+)$')) end
local hold = redis.call('HGET', KEYS[4], order_id)
if not hold then return -1 end
-- the same boundary as fs_release.lua's only_if_due: due at expires_at_ms
local due = redis.call('ZSCORE', KEYS[5], order_id)
if due and tonumber(due) <= now_ms() then return -1 end
local user_id, qty = string.match(hold, '^(%d+):(%d+)$')
qty = tonumber(qty)
redis.call('HDEL', KEYS[4], order_id)
redis.call('ZREM', KEYS[5], order_id)
redis.call('HSET', KEYS[7], order_id, hold)
redis.call('HINCRBY', KEYS[2], 'held', -qty)
redis.call('HINCRBY', KEYS[2], 'sold', qty)
local sale_id = redis.call('HGET', KEYS[1], 'sale_id')
outbox_append(KEYS[6], user_id, event_json('StockSold', ARGV[2], ARGV[3], int(user_id),
  members({'order_id', int(order_id), 'sale_id', int(sale_id), 'user_id', int(user_id),
           'quantity', int(qty)})))
return qty
