-- Move an orphaned SKU claim (its product's write died between the claim and the variant,
-- older than $3 seconds) to another product. Compare-and-set on the old owner: one taker
-- wins. Single shard (by sku). $1 sku, $2 orphan product_id, $3 min age (s), $4 product_id
UPDATE skus SET product_id = $4, claimed_at = now()
WHERE sku = $1 AND product_id = $2 AND claimed_at < now() - make_interval(secs => $3)
RETURNING product_id
