-- Release a hold (expired or cancelled): its units go back to available, atomically, with a
-- StockReleased event in the outbox. Idempotent: a hold already gone releases nothing.
-- KEYS: 1 meta, 2 stock, 3 buyers, 4 holds, 5 expiry, 6 outbox
-- ARGV: 1 order_id, 2 reason (expired|cancelled), 3 event_id, 4 occurred_at,
--       5 only_if_due ('1': release only when the hold's expiry has passed)
-- Returns the number of units released (0 when there was no such hold, or not yet due).
local order_id = ARGV[1]
local hold = redis.call('HGET', KEYS[4], order_id)
if not hold then return 0 end
if ARGV[5] == '1' then
  local due = redis.call('ZSCORE', KEYS[5], order_id)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if due and tonumber(due) > now then return 0 end
end
local user_id, qty = string.match(hold, '^(%d+):(%d+)$')
qty = tonumber(qty)
redis.call('HDEL', KEYS[4], order_id)
redis.call('ZREM', KEYS[5], order_id)
redis.call('HINCRBY', KEYS[2], 'available', qty)
redis.call('HINCRBY', KEYS[2], 'held', -qty)
if redis.call('HINCRBY', KEYS[3], user_id, -qty) <= 0 then redis.call('HDEL', KEYS[3], user_id) end
local sale_id = tonumber(redis.call('HGET', KEYS[1], 'sale_id'))
local event = cjson.encode({
  id = ARGV[3], type = 'StockReleased', version = 1, occurred_at = ARGV[4], key = user_id,
  data = {type = 'StockReleased', order_id = tonumber(order_id), sale_id = sale_id,
          user_id = tonumber(user_id), quantity = qty, reason = ARGV[2]}})
redis.call('XADD', KEYS[6], '*', 'k', user_id, 'e', event)
return qty
