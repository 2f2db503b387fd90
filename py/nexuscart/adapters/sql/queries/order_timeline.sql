-- An order's timeline, oldest first (a placement projected after a status event that
-- overtook it still sorts first: its time is the event's). Single shard (by user_id).
-- $1 user_id, $2 order_id
SELECT from_status, to_status, actor, actor_id, reason, at
FROM order_events
WHERE user_id = $1 AND order_id = $2
ORDER BY at, from_status NULLS FIRST
