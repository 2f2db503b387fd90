-- Accounts (docs/accounts.md). users keeps its key and distribution (user_id, 0001/0002) and
-- gains the account columns; two new tables:
--   * user_emails: normalised email -> user_id, distributed by email (its own co-location
--     group), so a login's lookup and the uniqueness check of a registration hit one shard
--     (ADR 0010). Its primary key is what makes parallel registrations of one email create
--     one user.
--   * users_outbox: events about a user (UserRegistered), written in the same single-shard
--     transaction as the user row, relayed to Kafka by services/outbox_relay.
-- ALTER TABLE ... ADD COLUMN propagates to every shard on Citus. Idempotent.
ALTER TABLE users ADD COLUMN IF NOT EXISTS display_name text NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN IF NOT EXISTS password_hash text;
ALTER TABLE users ADD COLUMN IF NOT EXISTS roles text[] NOT NULL DEFAULT '{customer}';
ALTER TABLE users ADD COLUMN IF NOT EXISTS disabled boolean NOT NULL DEFAULT false;
ALTER TABLE users ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE users ADD COLUMN IF NOT EXISTS password_changed_at timestamptz;

-- User ids: drawn on the coordinator (one sequence, no shard owns it); they stay far below
-- the token verifier's 18-digit bound.
CREATE SEQUENCE IF NOT EXISTS users_user_id_seq START WITH 1000000;

CREATE TABLE IF NOT EXISTS user_emails (
    email       text PRIMARY KEY,  -- normalised (domain/accounts.normalise_email)
    user_id     bigint NOT NULL,
    claimed_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS users_outbox (
    user_id     bigint NOT NULL,
    event_id    uuid NOT NULL,
    topic       text NOT NULL,
    payload     bytea NOT NULL,  -- the encoded envelope, sent to Kafka as it is
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, event_id)
);
CREATE INDEX IF NOT EXISTS users_outbox_created ON users_outbox (created_at);

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_dist_partition
                   WHERE logicalrelid = 'user_emails'::regclass) THEN
        PERFORM create_distributed_table('user_emails', 'email', shard_count => 32,
                                         colocate_with => 'none');
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_dist_partition
                   WHERE logicalrelid = 'users_outbox'::regclass) THEN
        PERFORM create_distributed_table('users_outbox', 'user_id', colocate_with => 'users');
    END IF;
END
$$;
