-- Payment rows for orders, once each (the key is derived from the order); returns the rows
-- it created. One row as written; the payments service repeats the VALUES row for a batch
-- of orders (postgres.values_query): rows of many users, so on Citus one statement over
-- their shards (Citus splits a multi-row INSERT by shard).
-- Row: user_id, payment_id, order_id, sale_id, amount_cents, currency, provider
INSERT INTO payments (user_id, payment_id, order_id, sale_id, amount_cents, currency, status, provider)
VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7)
ON CONFLICT (user_id, payment_id) DO NOTHING
RETURNING user_id, payment_id, order_id, sale_id, amount_cents, currency, status, provider,
          provider_ref, client_secret, requested, captured_cents, refunded_cents, order_closed,
          cancel_refused
