-- The products of several SKUs (the stock fallback when Redis lacks them). Reads only the
-- shards of those SKUs. $1 skus
SELECT sku, product_id FROM skus WHERE sku = ANY($1::text[])
