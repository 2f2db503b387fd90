-- Write a product's fields and move its version (the ETag) on; the caller holds the row
-- (product_lock) and checked If-Match. Single shard (by product_id).
-- $1 product_id, $2 category_id, $3 title, $4 description, $5 brand, $6 attributes,
-- $7 images, $8 status, $9 last_write_key
UPDATE products SET category_id = $2, title = $3, description = $4, brand = $5,
       attributes = $6, images = $7, status = $8, last_write_key = $9,
       version = version + 1, updated_at = now()
WHERE product_id = $1
RETURNING product_id, seller_id, category_id, title, description, brand, attributes, images, status, version, popularity, create_fingerprint, last_write_key, created_at, updated_at
