-- Flash-sale purchase, atomic: idempotency, sale window, stock, per-user limit, expiring hold,
-- and the StockReserved event appended to the sale's outbox stream. All or nothing.
-- KEYS: 1 meta, 2 stock, 3 buyers, 4 holds, 5 expiry, 6 outbox, 7 idempotency key
-- ARGV: 1 user_id, 2 quantity, 3 event_id (uuid), 4 occurred_at (ISO 8601), 5 idem ttl (s)
-- Returns {code, order_id, expires_at_ms, available_after}
--   code: 0 ok, 1 sold-out, 2 limit-reached, 3 not-started, 4 ended, 5 not-found,
--         6 replay of an earlier success (same answer), 7 idempotency key reused with other body,
--         8 fewer units left than asked
local user_id, qty = ARGV[1], tonumber(ARGV[2])

local prior = redis.call('GET', KEYS[7])
if prior then
  local pq, order_id, expires = string.match(prior, '^(%d+):(%d+):(%d+)$')
  if tonumber(pq) ~= qty then return {7, 0, 0, 0} end
  return {6, tonumber(order_id), tonumber(expires), -1}
end

local m = redis.call('HMGET', KEYS[1], 'sale_id', 'starts_ms', 'ends_ms', 'ended', 'limit',
                     'price', 'currency', 'sku', 'hold_ttl_ms')
if not m[1] then return {5, 0, 0, 0} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if m[4] == '1' or now >= tonumber(m[3]) then return {4, 0, 0, 0} end
if now < tonumber(m[2]) then return {3, 0, 0, 0} end

local avail = tonumber(redis.call('HGET', KEYS[2], 'available'))
if avail <= 0 then return {1, 0, 0, 0} end
if avail < qty then return {8, 0, 0, avail} end
local bought = tonumber(redis.call('HGET', KEYS[3], user_id) or '0')
if bought + qty > tonumber(m[5]) then return {2, 0, 0, avail} end

local sale_id = tonumber(m[1])
local seq = redis.call('HINCRBY', KEYS[2], 'seq', 1)
-- 24 bits of sequence per sale keep order ids exact in cjson's 14 significant digits
if seq >= 16777216 then return {1, 0, 0, avail} end
-- order ids are unique across sales: sale id in the high bits, this sale's sequence below
local order_id = sale_id * 16777216 + seq
local expires = now + tonumber(m[9])
redis.call('HINCRBY', KEYS[2], 'available', -qty)
redis.call('HINCRBY', KEYS[2], 'held', qty)
redis.call('HINCRBY', KEYS[3], user_id, qty)
redis.call('HSET', KEYS[4], order_id, user_id .. ':' .. qty)
redis.call('ZADD', KEYS[5], expires, order_id)
local event = cjson.encode({
  id = ARGV[3], type = 'StockReserved', version = 1, occurred_at = ARGV[4], key = user_id,
  data = {type = 'StockReserved', order_id = order_id, sale_id = sale_id,
          user_id = tonumber(user_id), sku = m[8], quantity = qty,
          unit_price_cents = tonumber(m[6]), currency = m[7], expires_at_ms = expires}})
redis.call('XADD', KEYS[6], '*', 'k', user_id, 'e', event)
redis.call('SET', KEYS[7], qty .. ':' .. order_id .. ':' .. expires, 'EX', tonumber(ARGV[5]))
return {0, order_id, expires, avail - qty}
