-- One promotion by code. $1 code
SELECT code, kind, value, currency, min_spend_minor, starts_at_ms, ends_at_ms, usage_limit,
       per_user_limit, category_ids, skus, active, create_key
FROM promotions WHERE code = $1
