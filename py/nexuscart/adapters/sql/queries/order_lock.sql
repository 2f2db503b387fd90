-- One order locked for a person's transition (its status is checked against the machine
-- under the lock, so two operators cannot both ship it). Single shard (by user_id).
-- $1 user_id, $2 order_id
SELECT status, sale_id, kind FROM orders WHERE user_id = $1 AND order_id = $2 FOR UPDATE
