-- Everyday checkout (adapters/reservations.py), atomic: idempotency per user and key, the
-- promotion's usage limits, every line's availability (all or nothing), the expiring
-- reservation, the OrderPlaced event in the outbox, and the cart emptied. Every read and
-- decision comes first and every write last, so an error cannot leave half a checkout.
-- KEYS: 1 reservations, 2 expiry, 3 seq, 4 outbox, 5 promotions, 6 promo uses,
--       7 promo uses per user, 8 idempotency key, 9 cart, 10 sold-out announcements,
--       11.. one SKU level key per line
-- ARGV: 1 idem ttl (s), 2 user_id, 3 event_id, 4 occurred_at, 5 reservation ttl (ms),
--       6 request fingerprint, 7 currency, 8 subtotal, 9 discount, 10 total, 11 promo code
--       ('' none), 12 cart version ('' leaves the cart alone), then 6 per line: sku,
--       product_id, quantity, unit price, catalog level version, catalog on_hand
--       ('' for both when the caller has no level)
-- A SKU level is "version:on_hand:reserved:sold"; on_hand is the catalog's (newest version
-- seen wins), reserved and sold are this store's. available = on_hand - reserved - sold.
-- Returns {0, order_id, expires_at_ms} placed; {1, 'sku:available', ...} short lines;
--   {2, answer} replay of an earlier checkout; {3} key reused with another request;
--   {4} promotion used up; {5} promotion's per-user limit reached; {6} promotion not
--   usable (unknown, inactive, outside its window); {7} cart changed since it was read
local ORDER_BASE = 4503599627370496  -- 2^52: above every flash-sale order id
local user_id = ARGV[2]
local n = #KEYS - 10
-- one MGET for the idempotency key and every line's level, one MSET for the new levels:
-- a redis.call costs more than the read or write it makes
local read = {KEYS[8]}
for i = 1, n do read[i + 1] = KEYS[10 + i] end
local got = redis.call('MGET', unpack(read))
local prior = got[1]
if prior then
  if string.sub(prior, 1, #ARGV[6] + 1) == ARGV[6] .. '|' then return {2, prior} end
  return {3}
end
if ARGV[12] ~= '' and (redis.call('HGET', KEYS[9], '_v') or '') ~= ARGV[12] then return {7} end
local now = now_ms()

local code = ARGV[11]
local promo_field = ''
if code ~= '' then
  local def = redis.call('HGET', KEYS[5], code)
  if not def then return {6} end
  local active, starts, ends, limit, per_user = string.match(def, '^(%d)|(%d+)|(%d+)|(%d+)|(%d+)$')
  if active ~= '1' or now < tonumber(starts) or now >= tonumber(ends) then return {6} end
  if tonumber(limit) > 0 and tonumber(redis.call('HGET', KEYS[6], code) or '0') >= tonumber(limit) then
    return {4}
  end
  promo_field = code .. '|' .. user_id
  if tonumber(per_user) > 0
      and tonumber(redis.call('HGET', KEYS[7], promo_field) or '0') >= tonumber(per_user) then
    return {5}
  end
end

local short, levels, parts, lines, newer, out = {}, {}, {}, {}, {}, {}
for i = 1, n do
  local b = 12 + (i - 1) * 6
  local sku, qty = ARGV[b + 1], tonumber(ARGV[b + 3])
  local raw = got[i + 1]
  local v, oh, r, s = 0, 0, 0, 0
  if raw then
    local a, bb, c, d = string.match(raw, '^(%-?%d+):(%-?%d+):(%d+):(%d+)$')
    v, oh, r, s = tonumber(a), tonumber(bb), tonumber(c), tonumber(d)
  end
  if ARGV[b + 5] ~= '' and (not raw or tonumber(ARGV[b + 5]) > v) then
    v, oh = tonumber(ARGV[b + 5]), tonumber(ARGV[b + 6])
    newer[#newer + 1] = KEYS[10 + i]
    newer[#newer + 1] = int(v) .. ':' .. int(oh) .. ':' .. int(r) .. ':' .. int(s)
  end
  local avail = oh - r - s
  if avail < 0 then avail = 0 end
  if avail < qty then short[#short + 1] = sku .. ':' .. avail end
  if avail == qty then out[#out + 1] = ARGV[b + 2] end
  levels[2 * i - 1] = KEYS[10 + i]
  levels[2 * i] = int(v) .. ':' .. int(oh) .. ':' .. int(r + qty) .. ':' .. int(s)
  parts[#parts + 1] = sku .. ':' .. qty
  lines[#lines + 1] = '{"sku":' .. str(sku) .. ',"product_id":' .. int(ARGV[b + 2])
    .. ',"quantity":' .. int(qty) .. ',"unit_price_minor":' .. int(ARGV[b + 4]) .. '}'
end
if #short > 0 then
  -- nothing reserved; the newer catalog levels seen are kept (a copy, not a decision)
  if #newer > 0 then redis.call('MSET', unpack(newer)) end
  table.insert(short, 1, 1)
  return short
end

local order_id = ORDER_BASE + redis.call('INCR', KEYS[3])
local oid = int(order_id)
local expires = now + tonumber(ARGV[5])
redis.call('MSET', unpack(levels))
redis.call('HSET', KEYS[1], oid, user_id .. '|' .. code .. '|' .. table.concat(parts, ','))
redis.call('ZADD', KEYS[2], expires, oid)
if code ~= '' then
  redis.call('HINCRBY', KEYS[6], code, 1)
  redis.call('HINCRBY', KEYS[7], promo_field, 1)
end
local uid = int(user_id)
local promo_json = 'null'
if code ~= '' then promo_json = str(code) end
outbox_append(KEYS[4], user_id, event_json('OrderPlaced', ARGV[3], ARGV[4], uid,
  '"order_id":' .. oid .. ',"user_id":' .. uid .. ',"lines":[' .. table.concat(lines, ',')
  .. '],"currency":' .. str(ARGV[7]) .. ',"subtotal_minor":' .. int(ARGV[8])
  .. ',"discount_minor":' .. int(ARGV[9]) .. ',"total_minor":' .. int(ARGV[10])
  .. ',"promo_code":' .. promo_json .. ',"expires_at_ms":' .. int(expires)))
local answer = ARGV[6] .. '|' .. oid .. '|' .. int(expires) .. '|' .. ARGV[7] .. '|' .. ARGV[8]
  .. '|' .. ARGV[9] .. '|' .. ARGV[10] .. '|' .. code
redis.call('SET', KEYS[8], answer, 'EX', tonumber(ARGV[1]))
if ARGV[12] ~= '' then redis.call('DEL', KEYS[9]) end
-- the products of SKUs this order sold out, for the recommendation workers' snapshots:
-- one entry per sell-out, not per order (reading every order cost Redis more than the
-- checkout itself)
for _, pid in ipairs(out) do log_append(KEYS[10], 100000, 'p', pid) end
return {0, order_id, expires}
