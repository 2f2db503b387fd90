-- The whole category tree (a reference table: read on any node). Loaded once per worker.
SELECT category_id, parent_id, name, slug, position FROM categories ORDER BY category_id
