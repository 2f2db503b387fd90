-- Create a promotion; an existing code is left alone (the caller reads it back to tell a
-- replay, same create_key, from a taken code). Reference table: written on every node.
INSERT INTO promotions (code, kind, value, currency, min_spend_minor, starts_at_ms, ends_at_ms,
                        usage_limit, per_user_limit, category_ids, skus, active, create_key,
                        created_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, true, $12, $13)
ON CONFLICT (code) DO NOTHING
RETURNING code
