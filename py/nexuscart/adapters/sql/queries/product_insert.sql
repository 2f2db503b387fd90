-- A new product (draft or active). Single shard (by product_id). Its id is derived from the
-- seller and the Idempotency-Key, so a retried create finds its row (no row back) and
-- compares create_fingerprint. RETURNING only plain columns (Citus).
-- $1 product_id, $2 seller_id, $3 category_id, $4 title, $5 description, $6 brand,
-- $7 attributes, $8 images, $9 status, $10 create_fingerprint
INSERT INTO products (product_id, seller_id, category_id, title, description, brand,
                      attributes, images, status, create_fingerprint, last_write_key)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL)
ON CONFLICT (product_id) DO NOTHING
RETURNING product_id, seller_id, category_id, title, description, brand, attributes, images, status, version, popularity, create_fingerprint, last_write_key, created_at, updated_at
