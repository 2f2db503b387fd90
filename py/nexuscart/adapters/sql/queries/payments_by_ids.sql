-- The payment rows of a batch of orders that existed before it (a redelivery, or a webhook
-- or the order's end got there first): filtered to the exact pairs by the caller. Rows of
-- many users: on Citus a read of the shards of those users.
-- $1 user ids, $2 payment ids
SELECT user_id, payment_id, order_id, sale_id, amount_cents, currency, status, provider,
       provider_ref, client_secret, requested, captured_cents, refunded_cents, order_closed,
       cancel_refused
FROM payments WHERE user_id = ANY($1::bigint[]) AND payment_id = ANY($2::text[])
