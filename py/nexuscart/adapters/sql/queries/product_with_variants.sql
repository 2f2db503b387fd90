-- One product and its variants in display order, one row per variant (one row with a NULL
-- sku when it has none): a product page's build in one round trip. Single shard on Citus:
-- variants are co-located with products by product_id.
SELECT p.product_id, p.seller_id, p.category_id, p.title, p.description, p.brand, p.attributes, p.images, p.status, p.version, p.popularity, p.create_fingerprint, p.last_write_key, p.created_at, p.updated_at,
       v.sku, v.price_minor, v.currency, v.attributes AS variant_attributes, v.low_stock_threshold, v.stock, v.stock_version, v.position
FROM products p LEFT JOIN variants v ON v.product_id = p.product_id
WHERE p.product_id = $1
ORDER BY v.position, v.sku
