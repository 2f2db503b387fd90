-- A payment row (the buyer's view, the sweeper's re-read). Single shard.
-- $1 user_id, $2 payment_id
SELECT user_id, payment_id, order_id, sale_id, amount_cents, currency, status, provider,
       provider_ref, client_secret, requested, captured_cents, refunded_cents, order_closed,
       cancel_refused
FROM payments WHERE user_id = $1 AND payment_id = $2
