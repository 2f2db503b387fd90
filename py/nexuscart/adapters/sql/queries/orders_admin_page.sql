-- The seller/admin listing: orders by id descending, optionally of one status, and for a
-- seller only the orders with a line of theirs. Reads every shard (an operator's page; each
-- shard answers from orders_status_id / order_items_seller, the coordinator merges the
-- ordered pages); orders and items join on the full key, co-located.
-- $1 status or NULL, $2 cursor (order_id <) or NULL, $3 seller_id or NULL (admins), $4 limit
SELECT o.user_id, o.order_id, o.sale_id, o.kind, o.status, o.total_cents, o.currency,
       o.tracking_reference, o.created_at, o.updated_at
FROM orders o
WHERE ($1::text IS NULL OR o.status = $1)
  AND ($2::bigint IS NULL OR o.order_id < $2)
  AND ($3::bigint IS NULL OR EXISTS (
        SELECT 1 FROM order_items i
        WHERE i.user_id = o.user_id AND i.order_id = o.order_id AND i.seller_id = $3))
ORDER BY o.order_id DESC
LIMIT $4
