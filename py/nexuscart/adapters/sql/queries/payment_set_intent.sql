-- The provider's intent of a payment, recorded once: true only for the call that recorded
-- it (that one writes PaymentRequested). Single shard.
-- $1 user_id, $2 payment_id, $3 provider_ref, $4 client_secret
UPDATE payments SET provider_ref = $3, client_secret = $4, requested = true, updated_at = now()
WHERE user_id = $1 AND payment_id = $2 AND NOT requested
RETURNING payment_id
