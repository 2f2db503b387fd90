-- Stock of these SKUs of these products (after skus_lookup_many). Reads only the shards of
-- those products. $1 product ids, $2 skus
SELECT product_id, sku, stock, stock_version, low_stock_threshold
FROM variants WHERE product_id = ANY($1::bigint[]) AND sku = ANY($2::text[])
