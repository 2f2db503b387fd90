-- The statuses the projector folded for a shard group's orders (their rows are locked by
-- orders_lock), one row each, exact size (a row twice would be updated twice: refused).
-- An order not projected yet (its placement re-sent late) is created with the status and no
-- details; the placement fills them in (orders_fill_placed). Single-shard on Citus. No
-- now() in DO UPDATE: Citus allows only IMMUTABLE functions there; EXCLUDED.updated_at is
-- the column default, evaluated once on the coordinator.
-- Row: user_id, order_id, sale_id, kind, status
INSERT INTO orders AS o (user_id, order_id, sale_id, kind, status, total_cents)
VALUES ($1, $2, $3, $4, $5, 0)
ON CONFLICT (user_id, order_id) DO UPDATE
SET status = EXCLUDED.status, updated_at = EXCLUDED.updated_at
