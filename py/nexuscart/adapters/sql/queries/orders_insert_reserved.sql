-- Orders from StockReserved events, one row each (repeated per shard group by
-- postgres.values_query: single-shard on Citus). An event about the order may have come
-- first and created the row with its status (orders_upsert_status.sql): the reservation
-- then fills in the details and leaves the status alone, which never moves back.
-- Row: user_id, order_id, sale_id, total_cents, currency, expires_at
INSERT INTO orders AS o (user_id, order_id, sale_id, status, total_cents, currency, expires_at)
VALUES ($1, $2, $3, 'PENDING_PAYMENT', $4, $5, $6)
ON CONFLICT (user_id, order_id) DO UPDATE
SET sale_id = EXCLUDED.sale_id, total_cents = EXCLUDED.total_cents,
    currency = EXCLUDED.currency, expires_at = EXCLUDED.expires_at, updated_at = now()
