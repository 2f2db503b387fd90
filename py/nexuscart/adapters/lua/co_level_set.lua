-- The catalog's stock levels copied into the checkout's SKU counters (adapters/reservations.py),
-- after the catalog wrote them: each SKU's on_hand takes a newer version only; reserved and
-- sold are left as they are. KEYS: one {co}:s:<sku> per SKU; ARGV: per SKU version, on_hand.
-- Returns how many SKUs were written.
local written = 0
for i, key in ipairs(KEYS) do
  local version, on_hand = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local raw = redis.call('GET', key)
  local v, r, s = -1, '0', '0'
  if raw then
    local a, _, c, d = string.match(raw, '^(%-?%d+):(%-?%d+):(%d+):(%d+)$')
    v, r, s = tonumber(a), c, d
  end
  if version > v then
    redis.call('SET', key, int(version) .. ':' .. int(on_hand) .. ':' .. r .. ':' .. s)
    written = written + 1
  end
end
return written
