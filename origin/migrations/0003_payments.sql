-- Asynchronous payments and refunds that retry until they succeed.

-- The provider's version of the intent this row last took its status from. Webhooks and
-- confirmations arrive in any order; only a newer version moves a payment.
ALTER TABLE payments ADD COLUMN provider_version bigint NOT NULL DEFAULT 0;
ALTER TABLE payments ADD COLUMN refunded_cents bigint NOT NULL DEFAULT 0 CHECK (refunded_cents >= 0);
-- The reconciliation job asks the provider about payments stuck in `processing`.
CREATE INDEX payments_processing ON payments (updated_at) WHERE status = 'processing';

-- Money owed back to a fan. A row commits with the change that owes it (a cancellation, a
-- payment that succeeded after its hold expired); the refund worker then asks the provider,
-- outside any transaction, until it succeeds.
CREATE TABLE refunds (
    id              uuid PRIMARY KEY,
    order_id        uuid NOT NULL REFERENCES orders (id),
    payment_id      uuid NOT NULL REFERENCES payments (id),
    amount_cents    bigint NOT NULL CHECK (amount_cents > 0),
    reason          text NOT NULL CHECK (reason IN ('fan_cancelled', 'hold_expired')),
    status          text NOT NULL CHECK (status IN ('pending', 'succeeded')),
    provider_ref    text,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz,
    -- One refund per payment: a cancelled order is refunded once.
    UNIQUE (payment_id)
);
CREATE INDEX refunds_due ON refunds (next_attempt_at) WHERE status = 'pending';
