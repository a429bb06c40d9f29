-- Asynchronous payments, refunds that retry until they succeed, and the sandbox provider's
-- own records.

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

-- The sandbox provider keeps what an external provider would: intents, refunds, and the
-- webhooks it owes the origin. A real provider replaces all three.
CREATE TABLE sandbox_intents (
    ref                  text PRIMARY KEY,
    amount_cents         bigint NOT NULL,
    currency             text NOT NULL,
    status               text NOT NULL,
    version              bigint NOT NULL,
    payment_method       text,
    -- The idempotency key of the confirmation that moved it last.
    confirm_key          text,
    -- `pm_card_slow`: when the intent succeeds on its own.
    settles_at           timestamptz,
    refunded_cents       bigint NOT NULL DEFAULT 0,
    -- `pm_card_refund_fails`: refund attempts that fail before one succeeds.
    refund_failures_left integer NOT NULL DEFAULT 0,
    created_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sandbox_intents_settling ON sandbox_intents (settles_at) WHERE status = 'processing';

CREATE TABLE sandbox_refunds (
    idempotency_key text PRIMARY KEY,
    ref             text NOT NULL UNIQUE,
    intent_ref      text NOT NULL REFERENCES sandbox_intents (ref),
    amount_cents    bigint NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sandbox_webhooks (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        text NOT NULL,
    body            bytea NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    abandoned_at    timestamptz,
    last_error      text
);
CREATE INDEX sandbox_webhooks_due ON sandbox_webhooks (next_attempt_at)
    WHERE delivered_at IS NULL AND abandoned_at IS NULL;
