UPDATE flash_sales
SET units = $2, price_cents = $3, starts_at = to_timestamp($4 / 1000.0),
    ends_at = to_timestamp($5 / 1000.0), per_user_limit = $6, ended = $7, updated_at = now()
WHERE sale_id = $1
