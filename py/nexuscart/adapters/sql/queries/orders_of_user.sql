-- A buyer's orders with their items, by order id descending. Always carries user_id, the
-- distribution key, so it is a single-shard query on Citus.
-- $1 user_id, $2 one order_id or NULL, $3 cursor (order_id <) or NULL, $4 limit
SELECT o.order_id, o.user_id, o.sale_id, o.kind, o.status, o.total_cents, o.currency,
       o.subtotal_minor, o.discount_minor, o.promo_code, o.tracking_reference,
       o.created_at, o.updated_at, o.expires_at,
       coalesce(json_agg(json_build_object('line_no', i.line_no, 'sku', i.sku,
                                           'quantity', i.quantity,
                                           'unit_price_cents', i.unit_price_cents,
                                           'product_id', i.product_id,
                                           'seller_id', i.seller_id)
                         ORDER BY i.line_no) FILTER (WHERE i.line_no IS NOT NULL),
                '[]') AS items
FROM orders o
LEFT JOIN order_items i ON i.user_id = o.user_id AND i.order_id = o.order_id
WHERE o.user_id = $1
  AND ($2::bigint IS NULL OR o.order_id = $2)
  AND ($3::bigint IS NULL OR o.order_id < $3)
GROUP BY o.user_id, o.order_id
ORDER BY o.order_id DESC
LIMIT $4
