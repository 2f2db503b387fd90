-- Record a provider event as applied; no row back when it was applied before. Single shard
-- as written; PaymentsRepo.apply_many repeats the VALUES row for a batch (values_query).
-- $1 user_id, $2 event_id, $3 event_type, $4 payment_id
INSERT INTO payment_webhooks (user_id, event_id, event_type, payment_id)
VALUES ($1, $2, $3, $4)
ON CONFLICT (user_id, event_id) DO NOTHING
RETURNING event_id, user_id
