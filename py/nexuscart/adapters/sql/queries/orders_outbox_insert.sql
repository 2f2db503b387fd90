-- An event about an order (a person's transition), in the transaction that changed it; a
-- repeat of the same event id is dropped. Single shard (by user_id).
-- $1 user_id, $2 event_id, $3 topic, $4 encoded envelope
INSERT INTO orders_outbox (user_id, event_id, topic, payload) VALUES ($1, $2, $3, $4)
ON CONFLICT (user_id, event_id) DO NOTHING
