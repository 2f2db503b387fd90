-- Create a flash sale under its creating request's Idempotency-Key and request fingerprint.
-- No row comes back when the key exists already (a concurrent create won): the caller then
-- reads that sale with sale_by_create_key. Callers look the key up first, so a replay never
-- reaches this statement and draws no id from the identity sequence.
-- RETURNING only plain columns: Citus refuses non-IMMUTABLE functions there (timestamps are
-- converted to epoch ms in Python).
INSERT INTO flash_sales (create_key, create_fingerprint, sku, units, price_cents, currency,
                         hold_ttl_s, per_user_limit, starts_at, ends_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, to_timestamp($9 / 1000.0), to_timestamp($10 / 1000.0))
ON CONFLICT (create_key) DO NOTHING
RETURNING sale_id, sku, units, price_cents, currency, hold_ttl_s, per_user_limit, starts_at,
          ends_at, ended, create_fingerprint
