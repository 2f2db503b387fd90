-- Catalog (docs/catalog.md). Layout on Citus:
--   * categories: a small tree read by every listing and page: a reference table (a copy on
--     every node, joins and lookups local everywhere).
--   * products: distributed by product_id (32 shards, a co-location group of its own);
--     variants, stock_adjustments and catalog_outbox carry product_id first in their keys and
--     are co-located with products, so every write of one product (its row, its variants,
--     the audit row and its events) is one single-shard transaction.
--   * skus: sku -> product_id, distributed by sku (its own group, like user_emails): the
--     global uniqueness of a SKU and a stock check by SKU hit one shard.
-- 0001's products table (sku, name, price_cents) was a placeholder no code ever read or
-- wrote; it is replaced by the catalog's shape. Idempotent: the old shape is recognised by
-- its sku column, which the new table does not have.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM information_schema.columns
               WHERE table_schema = current_schema() AND table_name = 'products'
                 AND column_name = 'sku') THEN
        DROP TABLE products;
    END IF;
END
$$;

CREATE TABLE IF NOT EXISTS categories (
    category_id  bigint PRIMARY KEY,
    parent_id    bigint,  -- NULL for a top-level department
    name         text NOT NULL,
    slug         text NOT NULL UNIQUE,
    position     integer NOT NULL DEFAULT 0  -- order among siblings
);
CREATE INDEX IF NOT EXISTS categories_parent ON categories (parent_id, position);

CREATE TABLE IF NOT EXISTS products (
    product_id    bigint PRIMARY KEY,
    seller_id     bigint NOT NULL,
    category_id   bigint NOT NULL,
    title         text NOT NULL,
    description   text NOT NULL DEFAULT '',
    brand         text NOT NULL DEFAULT '',
    attributes    jsonb NOT NULL DEFAULT '{}',
    images        text[] NOT NULL DEFAULT '{}',
    status        text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'active', 'archived')),
    version       integer NOT NULL DEFAULT 1,  -- the ETag; +1 on every write of the product
    popularity    double precision NOT NULL DEFAULT 0,  -- relative demand (generator: Zipf)
    -- idempotency: the fingerprint of the creating request (its id is derived from the
    -- seller and the key), and the key of the last write (a retried write is recognised)
    create_fingerprint  text,
    last_write_key      text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS products_active_category
    ON products (category_id, product_id) WHERE status = 'active';
CREATE INDEX IF NOT EXISTS products_seller ON products (seller_id, product_id);

CREATE TABLE IF NOT EXISTS variants (
    product_id           bigint NOT NULL,
    sku                  text NOT NULL,
    price_minor          bigint NOT NULL CHECK (price_minor >= 0),
    currency             text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    attributes           jsonb NOT NULL DEFAULT '{}',
    low_stock_threshold  integer NOT NULL DEFAULT 5 CHECK (low_stock_threshold >= 0),
    stock                bigint NOT NULL DEFAULT 0 CHECK (stock >= 0),
    stock_version        bigint NOT NULL DEFAULT 0,  -- +1 per adjustment; orders Redis' copy
    position             integer NOT NULL DEFAULT 0,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (product_id, sku)
);

CREATE TABLE IF NOT EXISTS skus (
    sku         text PRIMARY KEY,
    product_id  bigint NOT NULL,
    claimed_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS stock_adjustments (
    product_id     bigint NOT NULL,
    adjustment_id  uuid NOT NULL,  -- derived from (sku, Idempotency-Key): a retry is a no-op
    sku            text NOT NULL,
    delta          bigint NOT NULL,
    reason         text NOT NULL,
    note           text NOT NULL DEFAULT '',
    stock_after    bigint NOT NULL,
    actor_id       bigint NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (product_id, adjustment_id)
);
CREATE INDEX IF NOT EXISTS stock_adjustments_sku ON stock_adjustments (product_id, sku, created_at);

CREATE TABLE IF NOT EXISTS catalog_outbox (
    product_id  bigint NOT NULL,
    event_id    uuid NOT NULL,
    topic       text NOT NULL,
    payload     bytea NOT NULL,  -- the encoded envelope, sent to Kafka as it is
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (product_id, event_id)
);
CREATE INDEX IF NOT EXISTS catalog_outbox_created ON catalog_outbox (created_at);

DO $$
DECLARE
    t text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_dist_partition
                   WHERE logicalrelid = 'categories'::regclass) THEN
        PERFORM create_reference_table('categories');
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_dist_partition
                   WHERE logicalrelid = 'products'::regclass) THEN
        PERFORM create_distributed_table('products', 'product_id', shard_count => 32,
                                         colocate_with => 'none');
    END IF;
    FOREACH t IN ARRAY ARRAY['variants', 'stock_adjustments', 'catalog_outbox'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = t::regclass) THEN
            EXECUTE format('SELECT create_distributed_table(%L, %L, colocate_with => %L)',
                           t, 'product_id', 'products');
        END IF;
    END LOOP;
    IF NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'skus'::regclass) THEN
        PERFORM create_distributed_table('skus', 'sku', shard_count => 32,
                                         colocate_with => 'none');
    END IF;
END
$$;
