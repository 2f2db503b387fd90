-- Drop a relayed row once Kafka acknowledged it. Single shard (by user_id).
-- $1 user_id, $2 event_id
DELETE FROM orders_outbox WHERE user_id = $1 AND event_id = $2
