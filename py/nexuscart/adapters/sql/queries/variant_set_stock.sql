-- A variant's stock after an adjustment, and its stock version on. Single shard.
-- $1 product_id, $2 sku, $3 stock
UPDATE variants SET stock = $3, stock_version = stock_version + 1, updated_at = now()
WHERE product_id = $1 AND sku = $2
RETURNING product_id, sku, price_minor, currency, attributes, low_stock_threshold, stock, stock_version, position
