-- A refund we asked the provider for, once per key; no row back when it exists. Single shard.
-- $1 user_id, $2 refund_key, $3 payment_id, $4 order_id, $5 amount_cents, $6 reason,
-- $7 actor_id (provider_ref is set once the provider accepted it)
INSERT INTO payment_refunds (user_id, refund_key, payment_id, order_id, amount_cents, reason,
                             actor_id)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (user_id, refund_key) DO NOTHING
RETURNING refund_key
