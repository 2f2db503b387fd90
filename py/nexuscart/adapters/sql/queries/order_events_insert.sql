-- Timeline rows, one per transition, keyed by the event (or request) that caused it: a
-- redelivery or a replayed request writes nothing. Repeated per shard group by
-- postgres.values_query: single-shard on Citus.
-- Row: user_id, order_id, event_id, from_status, to_status, actor, actor_id, reason, at
INSERT INTO order_events (user_id, order_id, event_id, from_status, to_status, actor, actor_id, reason, at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT DO NOTHING
