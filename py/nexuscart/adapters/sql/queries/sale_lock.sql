-- One sale, locked for the rest of the transaction (concurrent admin updates serialise).
SELECT sale_id, sku, units, price_cents, currency, hold_ttl_s, per_user_limit, starts_at,
       ends_at, ended
FROM flash_sales WHERE sale_id = $1
FOR UPDATE
