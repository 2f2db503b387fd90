-- The current status of a shard group's orders, locked until the projector's transaction
-- ends (the edge's transitions wait, and then find the projector's status). The group's
-- users all hash to one shard, so Citus routes the statement to it (a FOR UPDATE over more
-- than one shard is refused, never silently spread).
-- $1 user ids, $2 order ids
SELECT user_id, order_id, status FROM orders
WHERE user_id = ANY($1::bigint[]) AND order_id = ANY($2::bigint[])
FOR UPDATE
