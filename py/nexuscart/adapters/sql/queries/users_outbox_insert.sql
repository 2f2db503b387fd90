-- An event about a user, in the transaction that changed the user. Single shard (by user_id).
-- $1 user_id, $2 event_id, $3 topic, $4 encoded envelope
INSERT INTO users_outbox (user_id, event_id, topic, payload) VALUES ($1, $2, $3, $4)
