-- The product of a SKU. Single shard (by sku).
SELECT product_id FROM skus WHERE sku = $1
