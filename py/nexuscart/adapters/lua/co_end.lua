-- The end of an everyday reservation or sale (adapters/reservations.py), atomic with its
-- event in the outbox. The caller read the order's record to name the SKU keys; the record
-- of an order never changes, so the script only re-checks it is still where it was read.
-- KEYS: 1 reservations, 2 expiry, 3 sold, 4 outbox, 5 promo uses, 6 promo uses per user,
--       7.. the SKU level key of each SKU of the record, in the record's order
-- ARGV: 1 action (confirm | release | restore), 2 order_id, 3 user_id, 4 event_id,
--       5 occurred_at, 6 the record as read, 7 reason (release), 8 only_if_due ('1')
-- A record is "user_id|promo|sku:qty,sku:qty"; a sold one given back is prefixed "R|".
-- Returns units: confirm: sold (again on a repeat), -1 when the reservation has ended
--   (released, or past its expiry: the expirer's to release); release: returned, 0 when
--   there is nothing (or, with only_if_due, not yet due); restore: put back on sale (the
--   same again on a repeat), 0 when the order was never sold.
local action, oid, user_id, rec = ARGV[1], ARGV[2], ARGV[3], ARGV[6]

local function units(record)
  local total, qtys = 0, {}
  for q in string.gmatch(string.match(record, '|[^|]*|(.*)$'), ':(%d+)') do
    qtys[#qtys + 1] = tonumber(q)
    total = total + tonumber(q)
  end
  return total, qtys
end

-- add dr to reserved and ds to sold of the i-th SKU, per unit of its line
local function move(qtys, dr, ds)
  for i, q in ipairs(qtys) do
    local raw = redis.call('GET', KEYS[6 + i]) or '0:0:0:0'
    local v, oh, r, s = string.match(raw, '^(%-?%d+):(%-?%d+):(%d+):(%d+)$')
    r = tonumber(r) + dr * q
    s = tonumber(s) + ds * q
    if r < 0 then r = 0 end
    if s < 0 then s = 0 end
    redis.call('SET', KEYS[6 + i], v .. ':' .. oh .. ':' .. int(r) .. ':' .. int(s))
  end
end

local function give_promo_back(record)
  local code = string.match(record, '^%d+|([^|]*)|')
  if code and code ~= '' then
    if redis.call('HINCRBY', KEYS[5], code, -1) < 0 then redis.call('HSET', KEYS[5], code, 0) end
    local f = code .. '|' .. user_id
    if redis.call('HINCRBY', KEYS[6], f, -1) <= 0 then redis.call('HDEL', KEYS[6], f) end
  end
end

local function ended_event(etype, qty, extra)
  local uid = int(user_id)
  outbox_append(KEYS[4], user_id, event_json(etype, ARGV[4], ARGV[5], uid,
    '"order_id":' .. int(oid) .. ',"sale_id":null,"user_id":' .. uid .. ',"quantity":'
    .. int(qty) .. extra))
end

if action == 'restore' then
  local sold = redis.call('HGET', KEYS[3], oid)
  if not sold then return 0 end
  if string.sub(sold, 1, 2) == 'R|' then return (units(string.sub(sold, 3))) end
  if sold ~= rec or string.match(rec, '^(%d+)|') ~= user_id then return 0 end
  local total, qtys = units(rec)
  move(qtys, 0, -1)
  give_promo_back(rec)
  redis.call('HSET', KEYS[3], oid, 'R|' .. rec)
  ended_event('StockReleased', total, ',"reason":"cancelled"')
  return total
end

if action == 'confirm' then
  local sold = redis.call('HGET', KEYS[3], oid)
  if sold then
    if string.sub(sold, 1, 2) == 'R|' then sold = string.sub(sold, 3) end
    return (units(sold))
  end
end
local held = redis.call('HGET', KEYS[1], oid)
if not held or held ~= rec or string.match(rec, '^(%d+)|') ~= user_id then
  if action == 'confirm' then return -1 end
  return 0
end
-- the same boundary for both: due at expires_at_ms
local due = redis.call('ZSCORE', KEYS[2], oid)
local past = due and tonumber(due) <= now_ms()
if action == 'confirm' and past then return -1 end
if action == 'release' and ARGV[8] == '1' and not past then return 0 end
local total, qtys = units(rec)
redis.call('HDEL', KEYS[1], oid)
redis.call('ZREM', KEYS[2], oid)
if action == 'confirm' then
  move(qtys, -1, 1)
  redis.call('HSET', KEYS[3], oid, rec)
  ended_event('StockSold', total, '')
else
  move(qtys, -1, 0)
  give_promo_back(rec)
  ended_event('StockReleased', total, ',"reason":' .. str(ARGV[7]))
end
return total
