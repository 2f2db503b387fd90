-- The promotion code an everyday order used, one row per order, repeated per shard group by
-- postgres.values_query: single-shard on Citus.
-- Row: user_id, code, order_id, state (used; returned when the order ended before its
-- placement was projected)
INSERT INTO promotion_usages (user_id, code, order_id, state)
VALUES ($1, $2, $3, $4)
ON CONFLICT DO NOTHING
