-- Promotions after a code, in code order (the admin listing; the reload into Redis).
-- $1 after (code, '' for the first page), $2 limit
SELECT code, kind, value, currency, min_spend_minor, starts_at_ms, ends_at_ms, usage_limit,
       per_user_limit, category_ids, skus, active, create_key
FROM promotions WHERE code > $1 ORDER BY code LIMIT $2
