-- The sale created under an Idempotency-Key, with its creating request's fingerprint.
-- $1 create_key
SELECT sale_id, sku, units, price_cents, currency, hold_ttl_s, per_user_limit, starts_at,
       ends_at, ended, create_fingerprint
FROM flash_sales WHERE create_key = $1
