-- One variant, locked for a stock adjustment. Single shard (by product_id).
SELECT product_id, sku, price_minor, currency, attributes, low_stock_threshold, stock, stock_version, position
FROM variants WHERE product_id = $1 AND sku = $2 FOR UPDATE
