-- Record events as seen by a consumer; returns the ids not seen before, whose effects the
-- caller then applies in the same transaction. Written for one row: the projector repeats
-- the VALUES row for a whole shard group (postgres.values_query), so on Citus the statement
-- goes to one shard. A repeated id inside one statement is inserted once.
-- Row: user_id, consumer, event_id
INSERT INTO inbox (user_id, consumer, event_id)
VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING
RETURNING event_id
