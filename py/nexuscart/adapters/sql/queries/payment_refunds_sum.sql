-- What a payment's refund rows add up to: all of them (reserved or sent), and those the
-- provider accepted. Single shard.
-- $1 user_id, $2 payment_id
SELECT coalesce(sum(amount_cents), 0) AS reserved,
       coalesce(sum(amount_cents) FILTER (WHERE provider_ref IS NOT NULL), 0) AS sent
FROM payment_refunds WHERE user_id = $1 AND payment_id = $2
