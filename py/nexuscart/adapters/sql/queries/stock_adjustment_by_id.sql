-- One recorded adjustment (the answer to a retried one). Single shard (by product_id).
SELECT product_id, adjustment_id, sku, delta, reason, note, stock_after, actor_id, created_at
FROM stock_adjustments WHERE product_id = $1 AND adjustment_id = $2
