-- A new variant; its SKU was claimed first (sku_claim). Single shard (by product_id).
-- $1 product_id, $2 sku, $3 price_minor, $4 currency, $5 attributes,
-- $6 low_stock_threshold, $7 position
INSERT INTO variants (product_id, sku, price_minor, currency, attributes, low_stock_threshold,
                      position)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (product_id, sku) DO NOTHING
RETURNING product_id, sku, price_minor, currency, attributes, low_stock_threshold, stock, stock_version, position
