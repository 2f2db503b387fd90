-- One product, locked for a write in this transaction. Single shard (by product_id).
SELECT product_id, seller_id, category_id, title, description, brand, attributes, images, status, version, popularity, create_fingerprint, last_write_key, created_at, updated_at
FROM products WHERE product_id = $1 FOR UPDATE
