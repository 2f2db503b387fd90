-- Distribute the tables where the citus extension is installed; a no-op on plain PostgreSQL.
-- Idempotent: tables already in pg_dist_partition are left alone.
DO $$
DECLARE
    t text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    FOREACH t IN ARRAY ARRAY['products', 'flash_sales'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = t::regclass) THEN
            EXECUTE format('SELECT create_reference_table(%L)', t);
        END IF;
    END LOOP;
    IF NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'users'::regclass) THEN
        -- pinned: the shard router and ShardPartitioner assume 32 (docs/scaling.md)
        PERFORM create_distributed_table('users', 'user_id', shard_count => 32);
    END IF;
    FOREACH t IN ARRAY ARRAY['orders', 'order_items', 'payments', 'inbox'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = t::regclass) THEN
            EXECUTE format('SELECT create_distributed_table(%L, %L, colocate_with => %L)',
                           t, 'user_id', 'users');
        END IF;
    END LOOP;
END
$$;
