-- The audit row of a stock adjustment. Single shard (by product_id). No row back: this
-- adjustment (same sku and Idempotency-Key) was recorded already.
-- $1 product_id, $2 adjustment_id, $3 sku, $4 delta, $5 reason, $6 note, $7 stock_after,
-- $8 actor_id
INSERT INTO stock_adjustments (product_id, adjustment_id, sku, delta, reason, note,
                               stock_after, actor_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (product_id, adjustment_id) DO NOTHING
RETURNING adjustment_id
