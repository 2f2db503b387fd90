-- Orders from StockReserved events, one row each (repeated per shard group by
-- postgres.values_query: single-shard on Citus). Returns the orders it created; an order
-- that exists already was created by an event about it that came first (its reservation
-- re-sent late): orders_fill_reserved.sql then fills in its details, keeping its status.
-- Row: user_id, order_id, sale_id, total_cents, currency, expires_at
INSERT INTO orders (user_id, order_id, sale_id, status, total_cents, currency, expires_at)
VALUES ($1, $2, $3, 'PENDING_PAYMENT', $4, $5, $6)
ON CONFLICT DO NOTHING
RETURNING order_id
