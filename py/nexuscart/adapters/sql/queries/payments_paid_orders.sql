-- Orders a payment made PAID or CONFIRMED, for the reconciliation command. Reads every
-- shard (an operator's audit, not a request path).
SELECT user_id, order_id FROM orders WHERE status IN ('PAID', 'CONFIRMED')
