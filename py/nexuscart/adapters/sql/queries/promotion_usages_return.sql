-- An order that ended without a sale (cancelled, expired, refunded) gives its promotion use
-- back. Single shard (by user_id).
-- $1 user_id, $2 order_id
UPDATE promotion_usages SET state = 'returned', updated_at = now()
WHERE user_id = $1 AND order_id = $2 AND state = 'used'
