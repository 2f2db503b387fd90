-- Whether a consumer applied an event already. Single shard.
-- $1 user_id, $2 consumer, $3 event_id
SELECT 1 FROM inbox WHERE user_id = $1 AND consumer = $2 AND event_id = $3
