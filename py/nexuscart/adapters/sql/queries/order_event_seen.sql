-- Whether a request (its derived event id) moved the order already: its replay answers
-- the order as it is. Single shard (by user_id).
-- $1 user_id, $2 order_id, $3 event_id
SELECT to_status FROM order_events WHERE user_id = $1 AND order_id = $2 AND event_id = $3
