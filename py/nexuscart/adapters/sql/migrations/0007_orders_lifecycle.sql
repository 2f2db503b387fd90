-- The order lifecycle (docs/orders.md): one state machine for flash-sale and everyday orders.
--   * orders gain their kind, the everyday order's amounts (integer minor units; total_cents
--     stays the total, in minor units of the order's currency), its promotion code and the
--     shipment's tracking reference; statuses are those of domain/orders.py (CONFIRMED, paid
--     and the hold sold, is now PAID);
--   * order_items gain the product and its seller (who may fulfil the order);
--   * order_events: the timeline, one row per transition (from, to, actor, reason, at),
--     keyed by the event that caused it (a redelivery or a replayed request writes nothing);
--   * promotion_usages: which order used which code (used | returned);
--   * orders_outbox: events on orders.v1 (OrderStatusChanged) written in the transaction of
--     a person's transition, relayed to Kafka by services/outbox_relay.
-- New tables are distributed by user_id and co-located with users (and orders): every write
-- of one order is a single-shard transaction. Idempotent.
ALTER TABLE orders ADD COLUMN IF NOT EXISTS kind text NOT NULL DEFAULT 'flash';
ALTER TABLE orders ADD COLUMN IF NOT EXISTS subtotal_minor bigint NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS discount_minor bigint NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS promo_code text;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS tracking_reference text;
ALTER TABLE order_items ADD COLUMN IF NOT EXISTS product_id bigint;
ALTER TABLE order_items ADD COLUMN IF NOT EXISTS seller_id bigint;

-- Checks apart from their columns (Citus refuses ADD COLUMN with a constraint on a
-- distributed table). The status check of 0001 is replaced after CONFIRMED rows are renamed.
DO $$
BEGIN
    UPDATE orders SET status = 'PAID' WHERE status = 'CONFIRMED';
    ALTER TABLE orders DROP CONSTRAINT IF EXISTS orders_status_check;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'orders_status_known') THEN
        ALTER TABLE orders ADD CONSTRAINT orders_status_known CHECK (status IN
            ('PENDING_PAYMENT', 'PAID', 'FULFILLING', 'SHIPPED', 'DELIVERED', 'CANCELLED',
             'EXPIRED', 'REFUNDED'));
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'orders_kind_known') THEN
        ALTER TABLE orders ADD CONSTRAINT orders_kind_known CHECK (kind IN ('flash', 'regular'));
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'orders_amounts_ge_0') THEN
        ALTER TABLE orders ADD CONSTRAINT orders_amounts_ge_0
            CHECK (subtotal_minor >= 0 AND discount_minor >= 0);
    END IF;
END
$$;
-- the seller/admin listing: by status, newest first (per shard; the coordinator merges).
-- In DO blocks: Citus sends an index on a distributed table to its shards as the
-- statement's text, which must then be this one statement.
DO $$
BEGIN
    CREATE INDEX IF NOT EXISTS orders_status_id ON orders (status, order_id DESC);
END
$$;
DO $$
BEGIN
    CREATE INDEX IF NOT EXISTS order_items_seller ON order_items (seller_id, order_id)
        WHERE seller_id IS NOT NULL;
END
$$;

CREATE TABLE IF NOT EXISTS order_events (
    user_id      bigint NOT NULL,
    order_id     bigint NOT NULL,
    event_id     uuid NOT NULL,  -- the event (or request) that caused the transition
    from_status  text,           -- null: the order was placed
    to_status    text NOT NULL,
    actor        text NOT NULL CHECK (actor IN ('system', 'buyer', 'seller', 'admin')),
    actor_id     bigint,         -- the person, for buyer | seller | admin
    reason       text NOT NULL,
    at           timestamptz NOT NULL,
    PRIMARY KEY (user_id, order_id, event_id)
);

CREATE TABLE IF NOT EXISTS promotion_usages (
    user_id     bigint NOT NULL,
    code        text NOT NULL,
    order_id    bigint NOT NULL,
    state       text NOT NULL CHECK (state IN ('used', 'returned')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, code, order_id)
);

CREATE TABLE IF NOT EXISTS orders_outbox (
    user_id     bigint NOT NULL,
    event_id    uuid NOT NULL,
    topic       text NOT NULL,
    payload     bytea NOT NULL,  -- the encoded envelope, sent to Kafka as it is
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, event_id)
);
CREATE INDEX IF NOT EXISTS orders_outbox_created ON orders_outbox (created_at);

DO $$
DECLARE
    t text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    FOREACH t IN ARRAY ARRAY['order_events', 'promotion_usages', 'orders_outbox'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = t::regclass) THEN
            EXECUTE format('SELECT create_distributed_table(%L, %L, colocate_with => %L)',
                           t, 'user_id', 'users');
        END IF;
    END LOOP;
END
$$;
