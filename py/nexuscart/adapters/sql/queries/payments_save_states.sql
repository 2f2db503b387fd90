-- The folded states of a batch of payments (domain/payments.apply), under the row locks of
-- payments_lock_many; on Citus it runs on the batch's shards only (pruned by the ANY).
-- $1 user_id[], $2 payment_id[], $3 status[], $4 captured_cents[], $5 refunded_cents[],
-- $6 order_closed[], $7 cancel_refused[] (pairwise, distinct payments)
UPDATE payments p SET status = s.status, captured_cents = s.captured_cents,
                      refunded_cents = s.refunded_cents, order_closed = s.order_closed,
                      cancel_refused = s.cancel_refused, updated_at = now()
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::boolean[],
            $7::boolean[])
     AS s(user_id, payment_id, status, captured_cents, refunded_cents, order_closed,
          cancel_refused)
WHERE p.user_id = ANY($1::bigint[]) AND p.user_id = s.user_id AND p.payment_id = s.payment_id
