-- Apply order status changes. Status moves only forward in rank (domain/orders.py), so a
-- redelivered event changes nothing; the inbox rows record that the events were seen (a
-- data-modifying CTE runs even though the UPDATE does not read it).
-- $1 user ids, $2 event ids (every event), $3/$4/$5 final (user, order, status), $6 consumer.
WITH seen AS (
    INSERT INTO inbox (user_id, consumer, event_id)
    SELECT * FROM unnest($1::bigint[], array_fill($6::text, ARRAY[cardinality($1)]),
                         $2::uuid[])
    ON CONFLICT DO NOTHING
)
UPDATE orders o SET status = t.status, updated_at = now()
FROM unnest($3::bigint[], $4::bigint[], $5::text[]) AS t(user_id, order_id, status)
WHERE o.user_id = t.user_id AND o.order_id = t.order_id
  AND (CASE t.status WHEN 'PAID' THEN 1 ELSE 2 END)
      > (CASE o.status WHEN 'PENDING_PAYMENT' THEN 0 WHEN 'PAID' THEN 1 ELSE 2 END)
