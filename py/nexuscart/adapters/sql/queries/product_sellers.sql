-- The seller of each product of an everyday order's lines (who may fulfil it), for the
-- orders projector (cached per process: a product never changes seller). products is
-- distributed by product_id: a few shards, once per product.
-- $1 product ids
SELECT product_id, seller_id FROM products WHERE product_id = ANY($1::bigint[])
