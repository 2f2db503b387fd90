-- Pending payments of orders closed without a sale whose intent is still open at the
-- provider (domain/payments.cancel_due, and an intent stored): the cancel sweeper's poll.
-- Reads every shard (a background poll over a partial index, migration 0009, not a request
-- path). $1 limit
SELECT user_id, payment_id FROM payments
WHERE status = 'pending' AND order_closed AND provider_ref IS NOT NULL AND NOT cancel_refused
LIMIT $1
