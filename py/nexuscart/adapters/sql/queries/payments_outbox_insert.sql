-- Events about payments, in the transaction that changed them; a repeat of the same event
-- id is dropped. One row as written, single shard (by user_id); a batch repeats the VALUES
-- row (postgres.values_query): rows of many users, on Citus one statement over their shards.
-- Row: user_id, event_id, topic, encoded envelope
INSERT INTO payments_outbox (user_id, event_id, topic, payload)
VALUES ($1, $2, $3, $4)
ON CONFLICT (user_id, event_id) DO NOTHING
