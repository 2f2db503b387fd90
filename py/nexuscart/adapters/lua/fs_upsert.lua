-- Create or update a flash sale's Redis state. Stock changes keep conservation:
-- units = available + held + sold, so raising units adds to available, and lowering them
-- only takes from available (never below zero). The sale and stream indexes are written by
-- the caller beforehand (other cluster slots).
-- KEYS: 1 meta, 2 stock
-- ARGV: 1 sale_id, 2 units, 3 starts_ms, 4 ends_ms, 5 limit, 6 price, 7 currency, 8 sku,
--       9 hold_ttl_ms, 10 ended ('0'|'1')
-- Returns {units, available, held, sold} after the change, or {-1} when units < held + sold.
local units = tonumber(ARGV[2])
local s = redis.call('HMGET', KEYS[2], 'available', 'held', 'sold')
local avail, held, sold = tonumber(s[1] or '0'), tonumber(s[2] or '0'), tonumber(s[3] or '0')
if units < held + sold then return {-1, avail, held, sold} end
avail = units - held - sold
redis.call('HSET', KEYS[2], 'available', avail, 'held', held, 'sold', sold)
redis.call('HSET', KEYS[1], 'sale_id', ARGV[1], 'units', units, 'starts_ms', ARGV[3],
           'ends_ms', ARGV[4], 'limit', ARGV[5], 'price', ARGV[6], 'currency', ARGV[7],
           'sku', ARGV[8], 'hold_ttl_ms', ARGV[9], 'ended', ARGV[10])
return {units, avail, held, sold}
