-- The item of each reserved order (a flash-sale order has one line), one row each,
-- repeated per shard group by postgres.values_query: single-shard on Citus.
-- Row: user_id, order_id, sku, quantity, unit_price_cents
INSERT INTO order_items (user_id, order_id, line_no, sku, quantity, unit_price_cents)
VALUES ($1, $2, 1, $3, $4, $5)
ON CONFLICT DO NOTHING
