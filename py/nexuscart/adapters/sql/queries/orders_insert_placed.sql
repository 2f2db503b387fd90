-- Orders from their placement (StockReserved: a flash-sale hold; OrderPlaced: an everyday
-- checkout), one row each (repeated per shard group by postgres.values_query: single-shard
-- on Citus). Returns the orders it created; an order that exists already was created by a
-- status event about it that came first (its placement re-sent late): orders_fill_placed
-- then fills in its details, keeping its status.
-- Row: user_id, order_id, sale_id, kind, total_cents, currency, expires_at, subtotal_minor,
--      discount_minor, promo_code
INSERT INTO orders (user_id, order_id, sale_id, kind, status, total_cents, currency, expires_at, subtotal_minor, discount_minor, promo_code)
VALUES ($1, $2, $3, $4, 'PENDING_PAYMENT', $5, $6, $7, $8, $9, $10)
ON CONFLICT DO NOTHING
RETURNING order_id
