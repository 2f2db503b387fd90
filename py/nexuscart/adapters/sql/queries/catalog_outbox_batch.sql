-- The oldest outbox rows, for the relay. Reads every shard (a background poll, not a
-- request path). $1 limit
SELECT product_id AS key, event_id, topic, payload FROM catalog_outbox ORDER BY created_at LIMIT $1
