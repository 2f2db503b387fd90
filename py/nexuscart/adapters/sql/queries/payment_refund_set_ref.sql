-- The provider accepted a reserved refund: its id. Once (false: already set). Single shard.
-- $1 user_id, $2 refund_key, $3 provider_ref
UPDATE payment_refunds SET provider_ref = $3
WHERE user_id = $1 AND refund_key = $2 AND provider_ref IS NULL
RETURNING refund_key
