-- An event about a product, in the transaction that changed it. Single shard (by product_id).
-- $1 product_id, $2 event_id, $3 topic, $4 encoded envelope
INSERT INTO catalog_outbox (product_id, event_id, topic, payload) VALUES ($1, $2, $3, $4)
