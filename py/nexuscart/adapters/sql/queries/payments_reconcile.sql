-- Every payment with its order's status, for the reconciliation command. Reads every shard
-- (an operator's audit, not a request path); the join is co-located (on user_id).
SELECT p.user_id, p.payment_id, p.order_id, p.status, p.captured_cents, p.refunded_cents,
       p.order_closed, o.status AS order_status
FROM payments p
LEFT JOIN orders o ON o.user_id = p.user_id AND o.order_id = p.order_id
