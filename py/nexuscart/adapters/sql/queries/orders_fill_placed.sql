-- The details of an order that a status event created before its placement arrived
-- (orders_set_status). The status is left alone: the machine has moved it already; it is
-- returned (an order that ended before its placement arrived used no promotion).
-- Single-shard on Citus: the distribution key is in the WHERE.
-- $1 user_id, $2 order_id, $3 sale_id, $4 kind, $5 total_cents, $6 currency, $7 expires_at,
-- $8 subtotal_minor, $9 discount_minor, $10 promo_code
UPDATE orders
SET sale_id = $3, kind = $4, total_cents = $5, currency = $6, expires_at = $7,
    subtotal_minor = $8, discount_minor = $9, promo_code = $10, updated_at = now()
WHERE user_id = $1 AND order_id = $2
RETURNING status
