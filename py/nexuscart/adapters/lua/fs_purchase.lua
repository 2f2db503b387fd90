-- Flash-sale purchases of one sale, a batch at a time, atomic: idempotency, sale window,
-- stock, per-user limit, expiring holds, and each StockReserved event appended to the sale's
-- outbox stream. The batch is decided exactly as if its purchases ran one after another.
-- Every read and decision comes first and every write last, so a script error cannot leave
-- half a purchase behind (Redis does not roll a script back).
-- KEYS: 1 meta, 2 stock, 3 buyers, 4 holds, 5 expiry, 6 outbox, 7.. one idempotency key each
-- ARGV: 1 idem ttl (s), then 5 per purchase: user_id, quantity, event_id (uuid), occurred_at,
--       traceparent ('' unless the request is traced; stored with its outbox entry)
-- Returns one {code, order_id, expires_at_ms, available_after} per purchase
--   code: 0 ok, 1 sold-out, 2 limit-reached, 3 not-started, 4 ended, 5 not-found,
--         6 replay of an earlier success (same answer), 7 idempotency key reused with other body,
--         8 fewer units left than asked
-- User ids stay decimal strings throughout (they reach 10^18); see lib.lua.
local n = #KEYS - 6
local out = {}

local m = redis.call('HMGET', KEYS[1], 'sale_id', 'starts_ms', 'ends_ms', 'ended', 'limit',
                     'price', 'currency', 'sku', 'hold_ttl_ms')
local now = now_ms()
local closed = nil
if not m[1] then closed = 5
elseif m[4] == '1' or now >= tonumber(m[3]) then closed = 4
elseif now < tonumber(m[2]) then closed = 3 end

local s = redis.call('HMGET', KEYS[2], 'available', 'held', 'seq')
local avail, held, seq = tonumber(s[1] or '0'), tonumber(s[2] or '0'), tonumber(s[3] or '0')
local limit, expires, base = tonumber(m[5] or '0'), 0, 0
-- what every StockReserved of this batch shares, checked and encoded once
local sale_part, item_part, tail_part, expires_s = '', '', '', ''
if not closed then
  expires = now + tonumber(m[9])
  base = tonumber(m[1]) * SEQ_SPAN
  expires_s = int(expires)
  sale_part = ',"sale_id":' .. int(m[1]) .. ',"user_id":'
  item_part = ',"sku":' .. str(m[8]) .. ',"quantity":'
  tail_part = ',"unit_price_cents":' .. int(m[6]) .. ',"currency":' .. str(m[7])
    .. ',"expires_at_ms":' .. expires_s
end

local idem = {}    -- idempotency key -> stored answer, including this batch's own
local bought = {}  -- user id -> units bought, including this batch's own
local hold_fields, expiry_args, buyer_args, events, idem_sets = {}, {}, {}, {}, {}

for i = 1, n do
  local b = 1 + (i - 1) * 5
  local user_id, qty = ARGV[b + 1], tonumber(ARGV[b + 2])
  local key = KEYS[6 + i]
  local prior = idem[key]
  if prior == nil then prior = redis.call('GET', key) or false; idem[key] = prior end
  if prior then
    local pq, order_id, exp = string.match(prior, '^(%d+):(%d+):(%d+)$')
    if tonumber(pq) ~= qty then out[i] = {7, 0, 0, 0}
    else out[i] = {6, tonumber(order_id), tonumber(exp), -1} end
  elseif closed then
    out[i] = {closed, 0, 0, 0}
  elseif avail <= 0 or seq + 1 >= SEQ_SPAN then
    -- 2^32 - 1 purchase ids per sale; each needs a unit, and units (< 2^24) only come back
    -- by releases, so reaching the end takes billions of purchases and releases
    out[i] = {1, 0, 0, 0}
  elseif avail < qty then
    out[i] = {8, 0, 0, avail}
  else
    local have = bought[user_id]
    if have == nil then have = tonumber(redis.call('HGET', KEYS[3], user_id) or '0') end
    if have + qty > limit then
      bought[user_id] = have
      out[i] = {2, 0, 0, avail}
    else
      seq = seq + 1
      avail = avail - qty
      held = held + qty
      bought[user_id] = have + qty
      -- order ids are unique across sales: sale id in the high bits, the sequence below
      local order_id = base + seq
      local oid = int(order_id)
      hold_fields[#hold_fields + 1] = oid
      hold_fields[#hold_fields + 1] = user_id .. ':' .. qty
      expiry_args[#expiry_args + 1] = expires
      expiry_args[#expiry_args + 1] = oid
      buyer_args[#buyer_args + 1] = user_id
      local uid = int(user_id)
      events[#events + 1] = {user_id, event_json('StockReserved', ARGV[b + 3], ARGV[b + 4], uid,
        '"order_id":' .. oid .. sale_part .. uid .. item_part .. int(qty) .. tail_part),
        ARGV[b + 5]}
      local answer = qty .. ':' .. oid .. ':' .. expires_s
      idem[key] = answer
      idem_sets[#idem_sets + 1] = {key, answer}
      out[i] = {0, order_id, expires, avail}
    end
  end
end

if #events > 0 then
  redis.call('HSET', KEYS[2], 'available', avail, 'held', held, 'seq', int(seq))
  redis.call('HSET', KEYS[4], unpack(hold_fields))
  redis.call('ZADD', KEYS[5], unpack(expiry_args))
  local totals, seen = {}, {}
  for _, u in ipairs(buyer_args) do
    if not seen[u] then
      seen[u] = true
      totals[#totals + 1] = u
      totals[#totals + 1] = bought[u]
    end
  end
  redis.call('HSET', KEYS[3], unpack(totals))
  for _, e in ipairs(events) do outbox_append(KEYS[6], e[1], e[2], e[3]) end
  local ttl = tonumber(ARGV[1])
  for _, kv in ipairs(idem_sets) do redis.call('SET', kv[1], kv[2], 'EX', ttl) end
end
return out
