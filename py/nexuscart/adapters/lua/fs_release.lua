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
  if due and tonumber(due) > now_ms() then return 0 end
end
local user_id, qty = string.match(hold, '^(%d+):(%d+)$')
qty = tonumber(qty)
redis.call('HDEL', KEYS[4], order_id)
redis.call('ZREM', KEYS[5], order_id)
redis.call('HINCRBY', KEYS[2], 'available', qty)
redis.call('HINCRBY', KEYS[2], 'held', -qty)
if redis.call('HINCRBY', KEYS[3], user_id, -qty) <= 0 then redis.call('HDEL', KEYS[3], user_id) end
local sale_id = redis.call('HGET', KEYS[1], 'sale_id')
outbox_append(KEYS[6], user_id, event_json('StockReleased', ARGV[3], ARGV[4], int(user_id),
  members({'order_id', int(order_id), 'sale_id', int(sale_id), 'user_id', int(user_id),
           'quantity', int(qty), 'reason', str(ARGV[2])})))
return qty
