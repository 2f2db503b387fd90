-- A person's transition, under order_lock's lock; the tracking reference is kept unless a
-- new one is given. Single shard (by user_id).
-- $1 user_id, $2 order_id, $3 status, $4 tracking reference or NULL
UPDATE orders
SET status = $3, tracking_reference = coalesce($4, tracking_reference), updated_at = now()
WHERE user_id = $1 AND order_id = $2
