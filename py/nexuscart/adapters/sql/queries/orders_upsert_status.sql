-- Move one order to a later status (run with executemany; the distribution key is in the
-- row, so each is single-shard on Citus). $5 is the rank of $4 from domain/orders.py (RANK);
-- the CASE below gives the current status the same ranks. The status only moves up, so a
-- redelivered or late event changes nothing. An order not projected yet (its StockReserved
-- re-sent late) is created with this status and no details; the reservation fills them in
-- (orders_fill_reserved.sql). Searched CASE only: Citus deparses the simple
-- `CASE x WHEN ...` form wrongly ("operator does not exist: text = boolean"). No now() in
-- DO UPDATE: Citus allows only IMMUTABLE functions there; EXCLUDED.updated_at is the
-- column default, evaluated once on the coordinator.
-- $1 user_id, $2 order_id, $3 sale_id, $4 status, $5 rank of $4
INSERT INTO orders AS o (user_id, order_id, sale_id, status, total_cents)
VALUES ($1, $2, $3, $4, 0)
ON CONFLICT (user_id, order_id) DO UPDATE
SET status = EXCLUDED.status, updated_at = EXCLUDED.updated_at
WHERE $5::int > CASE WHEN o.status = 'PENDING_PAYMENT' THEN 0
                     WHEN o.status = 'PAID' THEN 1
                     ELSE 2 END
