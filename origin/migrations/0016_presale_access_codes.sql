-- Presale access codes (origin/src/presale.rs). An organizer gives a show a presale window
-- and codes; during the window only an account that has redeemed a code joins the show's
-- queue (the edge asks the origin at each such join). Codes are kept as SHA-256 of the show
-- and the code, never in the clear. An account redeems at most one code per show, and the
-- redemption lets it join again from any device for the rest of the window.
CREATE TABLE show_presales (
    show_id   uuid PRIMARY KEY REFERENCES shows (id),
    starts_at timestamptz NOT NULL,
    ends_at   timestamptz NOT NULL,
    CHECK (starts_at < ends_at)
);

CREATE TABLE access_codes (
    show_id    uuid NOT NULL REFERENCES shows (id),
    code_hash  bytea NOT NULL CHECK (length(code_hash) = 32),
    max_uses   integer NOT NULL CHECK (max_uses BETWEEN 1 AND 100000),
    uses       integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (show_id, code_hash),
    CHECK (uses BETWEEN 0 AND max_uses)
);

CREATE TABLE access_code_redemptions (
    show_id     uuid NOT NULL,
    account_id  uuid NOT NULL,
    code_hash   bytea NOT NULL,
    redeemed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (show_id, account_id),
    FOREIGN KEY (show_id, code_hash) REFERENCES access_codes (show_id, code_hash)
);

-- Guesses at codes are throttled per account and per client IP like credential checks.
ALTER TABLE auth_throttle DROP CONSTRAINT auth_throttle_scope_check;
ALTER TABLE auth_throttle ADD CONSTRAINT auth_throttle_scope_check
    CHECK (scope IN ('credential_email', 'credential_ip', 'reset_email', 'reset_ip',
                     'access_code_account', 'access_code_ip'));
