-- Fans and organizers sign in to accounts. The account id is the fan: queue and admission
-- tokens carry it as `sub`, so holds, orders and limits (`fan_id`) follow the account
-- across waiting-room joins, devices and sessions.

-- `email` is kept as typed (trimmed); `email_key` is its normalised form (lower case) and
-- the one unique key, so `Ana@Example.com` and `ana@example.com` are one account.
CREATE TABLE accounts (
    id                  uuid PRIMARY KEY,
    email               text NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    email_key           text NOT NULL UNIQUE CHECK (email_key = lower(email_key)),
    display_name        text NOT NULL CHECK (char_length(display_name) BETWEEN 1 AND 64),
    -- A PHC string; only argon2id is ever written.
    password_hash       text NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    role                text NOT NULL CHECK (role IN ('fan', 'organizer')),
    password_changed_at timestamptz NOT NULL DEFAULT now(),
    created_at          timestamptz NOT NULL DEFAULT now()
);

-- A session is an opaque token the fan holds; only its SHA-256 is stored, so a copy of the
-- table signs nobody in. Revocation sets `revoked_at`; every request reads it.
CREATE TABLE sessions (
    id         uuid PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts (id),
    token_hash bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz,
    CHECK (expires_at > created_at)
);
CREATE INDEX sessions_account_live ON sessions (account_id) WHERE revoked_at IS NULL;
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- A reset code is sent to the account's email and kept only as a hash; it works once,
-- until `expires_at`.
CREATE TABLE password_resets (
    id         uuid PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts (id),
    code_hash  bytea NOT NULL CHECK (length(code_hash) = 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    CHECK (expires_at > created_at)
);
CREATE INDEX password_resets_live ON password_resets (account_id) WHERE used_at IS NULL;
CREATE INDEX password_resets_expiry ON password_resets (expires_at);

-- Attempts counted in fixed windows, shared by every origin: credential failures per email
-- and per client IP, and reset requests per email and per IP. `subject` is the SHA-256 of
-- the normalised email or the IP (IPv6 by /64), so the table names no one.
CREATE TABLE auth_throttle (
    scope        text NOT NULL
                 CHECK (scope IN ('credential_email', 'credential_ip', 'reset_email', 'reset_ip')),
    subject      bytea NOT NULL CHECK (length(subject) = 32),
    window_start timestamptz NOT NULL,
    hits         integer NOT NULL CHECK (hits > 0),
    PRIMARY KEY (scope, subject)
);
CREATE INDEX auth_throttle_age ON auth_throttle (window_start);

-- The admission token an order was created with. When the order is paid, that admission
-- (and the one that confirmed the payment) is spent: the origin refuses it from then on.
ALTER TABLE orders ADD COLUMN admission_jti text CHECK (length(admission_jti) BETWEEN 1 AND 128);

CREATE TABLE spent_admissions (
    jti      text PRIMARY KEY CHECK (length(jti) BETWEEN 1 AND 128),
    order_id uuid NOT NULL REFERENCES orders (id),
    spent_at timestamptz NOT NULL DEFAULT now()
);

-- Account events (a password reset's code) go through the outbox like order events; the
-- relay names the aggregate by its kind on the stream.
ALTER TABLE outbox ADD COLUMN aggregate_type text NOT NULL DEFAULT 'order'
    CHECK (aggregate_type IN ('order', 'account'));
