-- One sale, locked for the rest of the transaction (concurrent admin updates serialise).
SELECT sale_id, sku, units, price_cents, currency, hold_ttl_s, per_user_limit,
       (extract(epoch FROM starts_at) * 1000)::bigint AS starts_at_ms,
       (extract(epoch FROM ends_at) * 1000)::bigint AS ends_at_ms, ended
FROM flash_sales WHERE sale_id = $1
FOR UPDATE
