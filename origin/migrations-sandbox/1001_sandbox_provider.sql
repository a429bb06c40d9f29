-- The sandbox provider keeps what an external provider would: intents, refunds, and the
-- webhooks it owes the origin. These tables exist only where the sandbox is configured
-- (`payments.provider = "sandbox"`); a real provider keeps its records itself. Versions
-- of this directory start at 1001 so they never collide with the core schema's.
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
