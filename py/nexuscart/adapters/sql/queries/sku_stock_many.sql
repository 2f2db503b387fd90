-- Stock of several SKUs from PostgreSQL (the fallback when Redis lacks them, e.g. after a
-- flush). Reads the shards of those SKUs, then the products' shards. $1 skus
SELECT v.sku, v.product_id, v.stock, v.stock_version, v.low_stock_threshold
FROM variants v
WHERE (v.product_id, v.sku) IN (SELECT product_id, sku FROM skus WHERE sku = ANY($1::text[]))
