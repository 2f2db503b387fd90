-- A product's variants in display order. Single shard (by product_id).
SELECT product_id, sku, price_minor, currency, attributes, low_stock_threshold, stock, stock_version, position
FROM variants WHERE product_id = $1 ORDER BY position, sku
