-- The variants of several products (a listing page). Reads the shards of those products.
-- $1 product ids
SELECT product_id, sku, price_minor, currency, attributes, low_stock_threshold, stock, stock_version, position
FROM variants WHERE product_id = ANY($1::bigint[]) ORDER BY product_id, position, sku
