-- The payment rows of a batch of (user_id, payment_id) pairs, locked for this transaction's
-- state changes. A no-op UPDATE takes the row locks because Citus runs no multi-shard
-- SELECT ... FOR UPDATE. On Citus it runs on the batch's shards only (the ANY on user_id is
-- what lets Citus prune: the join with unnest alone goes to every shard). Rows are
-- locked in scan order, not the batch's: two overlapping batches can deadlock, PostgreSQL
-- then aborts one, and PaymentsRepo.apply_many applies its changes one by one.
-- $1 user_id[], $2 payment_id[] (pairwise, distinct pairs)
UPDATE payments p SET updated_at = p.updated_at
FROM unnest($1::bigint[], $2::text[]) AS k(user_id, payment_id)
WHERE p.user_id = ANY($1::bigint[]) AND p.user_id = k.user_id AND p.payment_id = k.payment_id
RETURNING p.user_id, p.payment_id, p.order_id, p.sale_id, p.amount_cents, p.currency,
          p.status, p.provider, p.provider_ref, p.client_secret, p.requested,
          p.captured_cents, p.refunded_cents, p.order_closed, p.cancel_refused
