-- Active products by id ascending after a cursor, optionally within a set of categories (a
-- subtree). Reads every shard (each returns its first $3 rows, the coordinator merges).
-- $1 cursor (product_id >) or NULL, $2 category ids or NULL, $3 limit
SELECT product_id, seller_id, category_id, title, description, brand, attributes, images, status, version, popularity, create_fingerprint, last_write_key, created_at, updated_at
FROM products
WHERE status = 'active' AND ($1::bigint IS NULL OR product_id > $1)
  AND ($2::bigint[] IS NULL OR category_id = ANY($2::bigint[]))
ORDER BY product_id
LIMIT $3
