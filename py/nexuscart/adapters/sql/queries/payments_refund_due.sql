-- Succeeded payments of orders closed without a sale that still hold money: the refund
-- sweeper's poll. Reads every shard (a background poll over a partial index, not a request
-- path). $1 limit
SELECT user_id, payment_id FROM payments
WHERE status = 'succeeded' AND order_closed AND refunded_cents < captured_cents
LIMIT $1
