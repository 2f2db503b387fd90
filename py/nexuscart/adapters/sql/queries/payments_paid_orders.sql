-- Orders a payment made PAID (and what follows it: fulfilment, shipment, delivery), for the
-- reconciliation command. Reads every shard (an operator's audit, not a request path).
SELECT user_id, order_id FROM orders
WHERE status IN ('PAID', 'FULFILLING', 'SHIPPED', 'DELIVERED', 'REFUNDED')
