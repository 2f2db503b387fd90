-- The oldest outbox rows, for the relay. Reads every shard (a background poll, not a
-- request path). $1 limit
SELECT user_id, event_id, topic, payload FROM orders_outbox ORDER BY created_at LIMIT $1
