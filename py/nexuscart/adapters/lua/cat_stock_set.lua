-- Catalog stock of SKUs in Redis (adapters/catalog_store.py), written after PostgreSQL
-- committed it. KEYS: one cat:stk:<sku> per SKU; ARGV: per SKU the triple
-- stock_version, stock, low_stock_threshold. A value is "version:stock:threshold"; a SKU is
-- written only when its stored version is older (or absent): writers racing after their
-- commits, or a reload from PostgreSQL, never move a SKU back in time.
-- Returns how many SKUs were written.
local written = 0
for i, key in ipairs(KEYS) do
  local base = (i - 1) * 3
  local version = tonumber(ARGV[base + 1])
  local current = redis.call('GET', key)
  local older = true
  if current then
    local v = tonumber(string.match(current, '^(%-?%d+):'))
    older = v == nil or v < version
  end
  if older then
    redis.call('SET', key, ARGV[base + 1] .. ':' .. ARGV[base + 2] .. ':' .. ARGV[base + 3])
    written = written + 1
  end
end
return written
