-- The fingerprint of the request that created a sale, stored with its Idempotency-Key: a
-- retry under the same key is answered with the first sale only if its whole request matches
-- (sales_repo.create_sale). flash_sales is a reference table on Citus; ADD COLUMN propagates
-- to every node. Idempotent. Rows created before this migration keep NULL and are compared
-- field by field.
ALTER TABLE flash_sales ADD COLUMN IF NOT EXISTS create_fingerprint text;
