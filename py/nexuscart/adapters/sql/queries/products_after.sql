-- Every product (any status) by id after a cursor: the pages a derived view (the search
-- index) is rebuilt from. Reads every shard (a background job). $1 cursor, $2 limit
SELECT product_id, seller_id, category_id, title, description, brand, attributes, images,
       status, version, popularity, create_fingerprint, last_write_key, created_at, updated_at
FROM products WHERE product_id > $1 ORDER BY product_id LIMIT $2
