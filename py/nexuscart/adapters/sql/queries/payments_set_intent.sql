-- The provider's intents of a batch of payments, each recorded once: returns only the rows
-- this statement recorded (those write PaymentRequested). The row exists (inserted before
-- the provider was asked); the INSERT form sets many rows with one multi-row VALUES
-- statement, which Citus splits by shard (as orders_set_status does). Rows must be
-- distinct (DO UPDATE touches a row once per statement). No now() in DO UPDATE (Citus
-- allows IMMUTABLE functions only): EXCLUDED.updated_at is the column default.
-- Row: user_id, payment_id, order_id, sale_id, amount_cents, currency, provider,
--      provider_ref, client_secret
INSERT INTO payments AS p (user_id, payment_id, order_id, sale_id, amount_cents, currency, status, provider, provider_ref, client_secret, requested)
VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9, true)
ON CONFLICT (user_id, payment_id) DO UPDATE
SET provider_ref = EXCLUDED.provider_ref, client_secret = EXCLUDED.client_secret,
    requested = true, updated_at = EXCLUDED.updated_at
WHERE NOT p.requested
RETURNING user_id, payment_id
