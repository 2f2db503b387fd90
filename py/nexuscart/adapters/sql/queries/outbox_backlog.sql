-- Rows waiting in each PostgreSQL outbox and the age (s) of the oldest (NULL when empty), for
-- the relay's gauges. A monitoring read over every shard (no distribution key to route by);
-- created_at is indexed in each table, and relayed rows are deleted, so each scan is short.
SELECT 'users' AS outbox, count(*) AS waiting,
       extract(epoch FROM now() - min(created_at))::float8 AS age_s
  FROM users_outbox
UNION ALL
SELECT 'catalog', count(*), extract(epoch FROM now() - min(created_at))::float8
  FROM catalog_outbox
UNION ALL
SELECT 'payments', count(*), extract(epoch FROM now() - min(created_at))::float8
  FROM payments_outbox
UNION ALL
SELECT 'orders', count(*), extract(epoch FROM now() - min(created_at))::float8
  FROM orders_outbox
