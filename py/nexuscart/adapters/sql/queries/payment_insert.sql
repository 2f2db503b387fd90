-- A payment row for an order, once (the key is derived from the order). Single shard.
-- $1 user_id, $2 payment_id, $3 order_id, $4 sale_id, $5 amount_cents, $6 currency,
-- $7 provider
INSERT INTO payments (user_id, payment_id, order_id, sale_id, amount_cents, currency, status,
                      provider)
VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7)
ON CONFLICT (user_id, payment_id) DO NOTHING
