-- Move orders to a later status, one row per order (repeated per shard group by
-- postgres.values_query: single-shard on Citus). The rank order is domain/orders.py's RANK:
-- PENDING_PAYMENT 0 < PAID 1 < CONFIRMED = EXPIRED = CANCELLED 2; the status only moves up,
-- so a redelivered or late event changes nothing. An order not projected yet (its
-- StockReserved re-sent late) is created with this status and no details; the reservation
-- fills them in (orders_insert_reserved.sql). Searched CASE only: Citus deparses the
-- simple `CASE x WHEN ...` form wrongly ("operator does not exist: text = boolean").
-- Row: user_id, order_id, sale_id, status
INSERT INTO orders AS o (user_id, order_id, sale_id, status, total_cents)
VALUES ($1, $2, $3, $4, 0)
ON CONFLICT (user_id, order_id) DO UPDATE
SET status = EXCLUDED.status, updated_at = now()
WHERE (CASE WHEN EXCLUDED.status = 'PENDING_PAYMENT' THEN 0
            WHEN EXCLUDED.status = 'PAID' THEN 1 ELSE 2 END)
    > (CASE WHEN o.status = 'PENDING_PAYMENT' THEN 0
            WHEN o.status = 'PAID' THEN 1 ELSE 2 END)
