-- The lines of each placed order, one row each, repeated per shard group by
-- postgres.values_query: single-shard on Citus. product_id/seller_id are null for a flash
-- sale's line (its SKU is not a catalog product's: only admins fulfil it).
-- Row: user_id, order_id, line_no, sku, quantity, unit_price_cents, product_id, seller_id
INSERT INTO order_items (user_id, order_id, line_no, sku, quantity, unit_price_cents, product_id, seller_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT DO NOTHING
