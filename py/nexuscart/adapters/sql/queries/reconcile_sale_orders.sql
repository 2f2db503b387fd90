-- Units of one sale by order state, for the conservation check (inventory reconcile).
-- A sale's buyers are spread over every shard, so this one fans out to all of them on
-- Citus (a rare admin check, not a request path); orders and items join on the full key,
-- co-located, so each shard answers for itself.
-- $1 sale_id
-- Held: awaiting payment; sold: paid (PAID and after, REFUNDED included: a flash sale's
-- sold units do not come back when its order is cancelled and refunded).
SELECT coalesce(sum(i.quantity) FILTER (WHERE o.status = 'PENDING_PAYMENT'), 0) AS pending,
       coalesce(sum(i.quantity) FILTER (WHERE o.status IN
           ('PAID', 'FULFILLING', 'SHIPPED', 'DELIVERED', 'REFUNDED')), 0) AS confirmed
FROM orders o JOIN order_items i USING (user_id, order_id)
WHERE o.sale_id = $1
