-- A category (admin seed, generator). Idempotent by category_id.
-- $1 category_id, $2 parent_id, $3 name, $4 slug, $5 position
INSERT INTO categories (category_id, parent_id, name, slug, position)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (category_id) DO NOTHING
