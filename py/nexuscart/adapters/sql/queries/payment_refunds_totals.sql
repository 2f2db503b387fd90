-- What each payment's refund rows add up to, by reason, for the reconciliation command.
-- Reads every shard (an audit); grouped by the distribution column, so pushed down whole.
SELECT user_id, payment_id, reason, sum(amount_cents) AS cents, count(*) AS n
FROM payment_refunds GROUP BY user_id, payment_id, reason
