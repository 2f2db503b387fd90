-- The sellers of an order's products (who may fulfil it besides admins). Single shard.
-- $1 user_id, $2 order_id
SELECT DISTINCT seller_id FROM order_items
WHERE user_id = $1 AND order_id = $2 AND seller_id IS NOT NULL
