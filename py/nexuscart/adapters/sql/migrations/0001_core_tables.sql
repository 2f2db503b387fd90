-- Core tables, laid out for Citus (docs/scaling.md):
--   * tables that grow with users carry user_id, include it in every primary key, and are
--     distributed by it (co-located), so one user's writes are single-shard;
--   * catalog tables (products, flash_sales) are small reference tables.
-- The same DDL runs on plain PostgreSQL; 0002 distributes the tables where citus exists.

CREATE TABLE IF NOT EXISTS users (
    user_id     bigint PRIMARY KEY,
    email       text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS products (
    product_id   bigint PRIMARY KEY,
    sku          text NOT NULL UNIQUE,
    name         text NOT NULL,
    price_cents  bigint NOT NULL CHECK (price_cents >= 0),
    currency     text NOT NULL DEFAULT 'usd',
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS flash_sales (
    sale_id         bigint PRIMARY KEY,
    sku             text NOT NULL,
    units           integer NOT NULL CHECK (units >= 0),
    price_cents     bigint NOT NULL CHECK (price_cents >= 0),
    currency        text NOT NULL DEFAULT 'usd',
    per_user_limit  integer NOT NULL CHECK (per_user_limit > 0),
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL CHECK (ends_at > starts_at),
    ended           boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS orders (
    user_id      bigint NOT NULL,
    order_id     bigint NOT NULL,
    sale_id      bigint,
    status       text NOT NULL CHECK (status IN
                   ('PENDING_PAYMENT', 'PAID', 'CONFIRMED', 'EXPIRED', 'CANCELLED')),
    total_cents  bigint NOT NULL CHECK (total_cents >= 0),
    currency     text NOT NULL DEFAULT 'usd',
    expires_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, order_id)
);
CREATE INDEX IF NOT EXISTS orders_user_created ON orders (user_id, created_at DESC, order_id DESC);
CREATE INDEX IF NOT EXISTS orders_sale_status ON orders (sale_id, status);

CREATE TABLE IF NOT EXISTS order_items (
    user_id           bigint NOT NULL,
    order_id          bigint NOT NULL,
    line_no           integer NOT NULL,
    sku               text NOT NULL,
    quantity          integer NOT NULL CHECK (quantity > 0),
    unit_price_cents  bigint NOT NULL CHECK (unit_price_cents >= 0),
    PRIMARY KEY (user_id, order_id, line_no)
);

CREATE TABLE IF NOT EXISTS payments (
    user_id       bigint NOT NULL,
    payment_id    text NOT NULL,
    order_id      bigint NOT NULL,
    amount_cents  bigint NOT NULL CHECK (amount_cents >= 0),
    currency      text NOT NULL DEFAULT 'usd',
    status        text NOT NULL,
    provider_ref  text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, payment_id)
);

-- Inbox: one row per (consumer, event) already applied; written in the same transaction as
-- the effect, so a redelivered event is recognised and skipped. Keyed by user_id so the
-- dedup row and the order it guards live on the same shard.
CREATE TABLE IF NOT EXISTS inbox (
    user_id       bigint NOT NULL,
    consumer      text NOT NULL,
    event_id      uuid NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, consumer, event_id)
);
