-- Confirm a paid hold: held units become sold, atomically, with a StockSold event.
-- Idempotent: an order already sold answers its quantity again without a second event.
-- KEYS: 1 meta, 2 stock, 4 holds, 5 expiry, 6 outbox, 7 sold (hash order_id -> user:qty)
--   (KEYS[3], buyers, is unused but kept so every script takes the same key list)
-- ARGV: 1 order_id, 2 event_id, 3 occurred_at
-- Returns units sold by this order, or -1 when the hold is gone (expired or cancelled first).
local order_id = ARGV[1]
local sold = redis.call('HGET', KEYS[7], order_id)
if sold then return tonumber(string.match(sold, ':(%d+)$')) end
local hold = redis.call('HGET', KEYS[4], order_id)
if not hold then return -1 end
local user_id, qty = string.match(hold, '^(%d+):(%d+)$')
qty = tonumber(qty)
redis.call('HDEL', KEYS[4], order_id)
redis.call('ZREM', KEYS[5], order_id)
redis.call('HSET', KEYS[7], order_id, hold)
redis.call('HINCRBY', KEYS[2], 'held', -qty)
redis.call('HINCRBY', KEYS[2], 'sold', qty)
local sale_id = tonumber(redis.call('HGET', KEYS[1], 'sale_id'))
local event = cjson.encode({
  id = ARGV[2], type = 'StockSold', version = 1, occurred_at = ARGV[3], key = user_id,
  data = {type = 'StockSold', order_id = tonumber(order_id), sale_id = sale_id,
          user_id = tonumber(user_id), quantity = qty}})
redis.call('XADD', KEYS[6], '*', 'k', user_id, 'e', event)
return qty
