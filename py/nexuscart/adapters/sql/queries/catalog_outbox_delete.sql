-- Drop a relayed row once Kafka acknowledged it. Single shard (by product_id).
-- $1 product_id, $2 event_id
DELETE FROM catalog_outbox WHERE product_id = $1 AND event_id = $2
