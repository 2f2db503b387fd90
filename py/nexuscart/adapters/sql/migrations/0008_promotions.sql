-- Promotion definitions (docs/cart-checkout.md). A small table every checkout may need and
-- any worker reads whole: a reference table on Citus (a copy on every node, so a lookup by
-- code joins nothing and routes anywhere). Uses are counted in Redis by the checkout script
-- and recorded with the orders (the orders service's tables), not here.
CREATE TABLE IF NOT EXISTS promotions (
    code            text PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('percent', 'fixed')),
    value           bigint NOT NULL CHECK (value > 0),
    currency        text,
    min_spend_minor bigint NOT NULL DEFAULT 0 CHECK (min_spend_minor >= 0),
    starts_at_ms    bigint NOT NULL,
    ends_at_ms      bigint NOT NULL,
    usage_limit     bigint NOT NULL DEFAULT 0 CHECK (usage_limit >= 0),
    per_user_limit  bigint NOT NULL DEFAULT 0 CHECK (per_user_limit >= 0),
    category_ids    bigint[] NOT NULL DEFAULT '{}',
    skus            text[] NOT NULL DEFAULT '{}',
    active          boolean NOT NULL DEFAULT true,
    create_key      text NOT NULL,  -- the Idempotency-Key of the creating request
    created_by      bigint NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at_ms > starts_at_ms)
);

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_dist_partition
                   WHERE logicalrelid = 'promotions'::regclass) THEN
        PERFORM create_reference_table('promotions');
    END IF;
END
$$;
