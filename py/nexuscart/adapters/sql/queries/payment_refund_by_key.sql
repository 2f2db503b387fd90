-- One refund by its key (a retried admin request gets the first answer). Single shard.
-- $1 user_id, $2 refund_key
SELECT user_id, refund_key, payment_id, order_id, amount_cents, reason, actor_id, provider_ref
FROM payment_refunds WHERE user_id = $1 AND refund_key = $2
