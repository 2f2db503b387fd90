-- Project StockReserved events of one shard group in ONE statement: the inbox rows (dedup by
-- event id), the new orders and their items, all or nothing. Redelivered events add nothing.
-- $1..$9 parallel arrays (user_id, event_id, order_id, sale_id, sku, quantity, unit_price,
-- currency, expires_ms), $10 consumer name.
WITH ev AS (
    SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::bigint[], $4::bigint[], $5::text[],
                         $6::int[], $7::bigint[], $8::text[], $9::bigint[])
        AS e(user_id, event_id, order_id, sale_id, sku, quantity, unit_price, currency,
             expires_ms)
), fresh AS (
    INSERT INTO inbox (user_id, consumer, event_id)
    SELECT user_id, $10, event_id FROM ev
    ON CONFLICT DO NOTHING
    RETURNING user_id, event_id
), new AS (
    SELECT ev.* FROM ev JOIN fresh USING (user_id, event_id)
), o AS (
    INSERT INTO orders (user_id, order_id, sale_id, status, total_cents, currency, expires_at)
    SELECT user_id, order_id, sale_id, 'PENDING_PAYMENT', quantity * unit_price, currency,
           to_timestamp(expires_ms / 1000.0)
    FROM new
    ON CONFLICT DO NOTHING
    RETURNING order_id
), i AS (
    INSERT INTO order_items (user_id, order_id, line_no, sku, quantity, unit_price_cents)
    SELECT user_id, order_id, 1, sku, quantity, unit_price FROM new
    ON CONFLICT DO NOTHING
    RETURNING order_id
)
SELECT (SELECT count(*) FROM o) AS orders, (SELECT count(*) FROM fresh) AS fresh
