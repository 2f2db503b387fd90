-- Refunds reserved but not (yet) accepted by the provider, older than $1 seconds (their
-- caller died between the reservation and the provider's answer): the sweeper sends them
-- again with the same idempotency key. Reads every shard (a background poll). $2 limit
SELECT user_id, refund_key FROM payment_refunds
WHERE provider_ref IS NULL AND created_at < now() - make_interval(secs => $1)
LIMIT $2
