-- Write a variant's fields (not its stock: that is an audited adjustment). Single shard.
-- $1 product_id, $2 sku, $3 price_minor, $4 currency, $5 attributes, $6 low_stock_threshold
UPDATE variants SET price_minor = $3, currency = $4, attributes = $5,
       low_stock_threshold = $6, updated_at = now()
WHERE product_id = $1 AND sku = $2
RETURNING product_id, sku, price_minor, currency, attributes, low_stock_threshold, stock, stock_version, position
