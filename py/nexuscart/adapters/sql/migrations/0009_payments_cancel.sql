-- The intent of an order whose hold ended unpaid is cancelled at the provider
-- (docs/payments.md, "An order that ends unpaid"):
--   * payments.cancel_refused: the provider refused to cancel the intent because it had moved
--     on (succeeded, processing); a fact of the payment's state (domain/payments.py), so the
--     sweeper stops asking and the intent's own webhooks settle it;
--   * the sweeper's poll: pending payments of closed orders with an intent, not refused.
-- Idempotent.
ALTER TABLE payments ADD COLUMN IF NOT EXISTS cancel_refused boolean NOT NULL DEFAULT false;
-- In a DO block, as 0006's payments_refund_due: Citus sends an index on a distributed table
-- to its shards as the statement's text, which must then be this one statement.
DO $$
BEGIN
    CREATE INDEX IF NOT EXISTS payments_cancel_due ON payments (user_id)
        WHERE status = 'pending' AND order_closed AND provider_ref IS NOT NULL
              AND NOT cancel_refused;
END
$$;
