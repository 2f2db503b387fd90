-- Payments (docs/payments.md). payments (0001, distributed by user_id in 0002, co-located
-- with orders) gains the columns of the payment state machine; three new tables, all
-- distributed by user_id and co-located with users, so every write of one payment (its row,
-- its webhook record, its refunds, its outbox events) is one single-shard transaction:
--   * payment_webhooks: provider events already applied, by provider event id (dedup);
--   * payment_refunds: refunds we asked for, by their idempotency key (one per key);
--   * payments_outbox: events on payments.v1, relayed to Kafka by services/outbox_relay.
-- One payment per order: payment_id is derived from order_id (domain/payments.py), so the
-- primary key (user_id, payment_id) is also the "one payment per order" constraint.
-- Idempotent.
ALTER TABLE payments ADD COLUMN IF NOT EXISTS sale_id bigint;
ALTER TABLE payments ADD COLUMN IF NOT EXISTS provider text NOT NULL DEFAULT 'stripe';
ALTER TABLE payments ADD COLUMN IF NOT EXISTS client_secret text;
ALTER TABLE payments ADD COLUMN IF NOT EXISTS requested boolean NOT NULL DEFAULT false;
ALTER TABLE payments ADD COLUMN IF NOT EXISTS captured_cents bigint NOT NULL DEFAULT 0;
ALTER TABLE payments ADD COLUMN IF NOT EXISTS refunded_cents bigint NOT NULL DEFAULT 0;
ALTER TABLE payments ADD COLUMN IF NOT EXISTS order_closed boolean NOT NULL DEFAULT false;
-- Checks are added apart from their columns: Citus refuses ADD COLUMN with a constraint on a
-- distributed table. The last is the reconciliation's rule, enforced where it is cheapest:
-- never more back than captured.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'payments_captured_ge_0') THEN
        ALTER TABLE payments ADD CONSTRAINT payments_captured_ge_0 CHECK (captured_cents >= 0);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'payments_refunded_ge_0') THEN
        ALTER TABLE payments ADD CONSTRAINT payments_refunded_ge_0 CHECK (refunded_cents >= 0);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'payments_refund_le_capture') THEN
        ALTER TABLE payments ADD CONSTRAINT payments_refund_le_capture
            CHECK (refunded_cents <= captured_cents);
    END IF;
END
$$;
-- the refund sweeper's poll: succeeded payments of closed orders with money left. In a DO
-- block: Citus sends an index on a distributed table to its shards as the statement's text,
-- which must then be this one statement, not the whole migration file.
DO $$
BEGIN
    CREATE INDEX IF NOT EXISTS payments_refund_due ON payments (user_id)
        WHERE status = 'succeeded' AND order_closed AND refunded_cents < captured_cents;
END
$$;

CREATE TABLE IF NOT EXISTS payment_webhooks (
    user_id      bigint NOT NULL,
    event_id     text NOT NULL,  -- the provider's event id (evt_...)
    event_type   text NOT NULL,
    payment_id   text NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, event_id)
);

CREATE TABLE IF NOT EXISTS payment_refunds (
    user_id       bigint NOT NULL,
    refund_key    text NOT NULL,  -- the provider idempotency key (domain/payments.refund_key)
    payment_id    text NOT NULL,
    order_id      bigint NOT NULL,
    amount_cents  bigint NOT NULL CHECK (amount_cents > 0),
    reason        text NOT NULL,  -- late | admin | cancelled
    actor_id      bigint,
    provider_ref  text,           -- re_... once the provider answered
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, refund_key)
);

CREATE TABLE IF NOT EXISTS payments_outbox (
    user_id     bigint NOT NULL,
    event_id    uuid NOT NULL,
    topic       text NOT NULL,
    payload     bytea NOT NULL,  -- the encoded envelope, sent to Kafka as it is
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, event_id)
);
CREATE INDEX IF NOT EXISTS payments_outbox_created ON payments_outbox (created_at);

DO $$
DECLARE
    t text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    FOREACH t IN ARRAY ARRAY['payment_webhooks', 'payment_refunds', 'payments_outbox'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = t::regclass) THEN
            EXECUTE format('SELECT create_distributed_table(%L, %L, colocate_with => %L)',
                           t, 'user_id', 'users');
        END IF;
    END LOOP;
END
$$;
