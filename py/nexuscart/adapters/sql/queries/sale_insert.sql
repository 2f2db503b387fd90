-- Create a flash sale. The creating request's Idempotency-Key is stored with it, so a
-- retried create returns the same sale (existed = true) instead of a second one.
INSERT INTO flash_sales (create_key, sku, units, price_cents, currency, hold_ttl_s,
                         per_user_limit, starts_at, ends_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, to_timestamp($8 / 1000.0), to_timestamp($9 / 1000.0))
ON CONFLICT (create_key) DO UPDATE SET create_key = EXCLUDED.create_key
RETURNING sale_id, (xmax <> 0) AS existed, sku, units, price_cents, currency, hold_ttl_s,
          per_user_limit, (extract(epoch FROM starts_at) * 1000)::bigint AS starts_at_ms,
          (extract(epoch FROM ends_at) * 1000)::bigint AS ends_at_ms, ended
