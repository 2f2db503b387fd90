-- The details of an order that a status event created before its reservation arrived
-- (orders_upsert_status.sql). The status is left alone: it never moves back.
-- Single-shard on Citus: the distribution key is in the WHERE.
-- $1 user_id, $2 order_id, $3 sale_id, $4 total_cents, $5 currency, $6 expires_at
UPDATE orders
SET sale_id = $3, total_cents = $4, currency = $5, expires_at = $6, updated_at = now()
WHERE user_id = $1 AND order_id = $2
