-- The folded state of a payment (domain/payments.apply), under the row lock. Single shard.
-- $1 user_id, $2 payment_id, $3 status, $4 captured_cents, $5 refunded_cents,
-- $6 order_closed, $7 cancel_refused
UPDATE payments SET status = $3, captured_cents = $4, refunded_cents = $5, order_closed = $6,
                    cancel_refused = $7, updated_at = now()
WHERE user_id = $1 AND payment_id = $2
