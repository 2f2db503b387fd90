-- Claim a SKU for a product. Single shard (by sku). No row back: another product has it
-- (or this one: the caller compares). $1 sku, $2 product_id
INSERT INTO skus (sku, product_id) VALUES ($1, $2)
ON CONFLICT (sku) DO NOTHING
RETURNING product_id
