-- The door's staff (origin/src/staff.rs): accounts with the `scanner` role, each made by an
-- organizer for one show and one gate. Scanning, the revocation list and offline uploads take
-- a scanner's session, for a show it is staff of, instead of the organizer's admin token.
-- Every scan is kept (`ticket_scans`) for the show's entry counts by gate, scanner and
-- minute.
ALTER TABLE accounts DROP CONSTRAINT accounts_role_check;
ALTER TABLE accounts ADD CONSTRAINT accounts_role_check CHECK (role IN ('fan', 'organizer', 'scanner'));

CREATE TABLE show_staff (
    account_id uuid PRIMARY KEY REFERENCES accounts (id),
    show_id    uuid NOT NULL REFERENCES shows (id),
    gate       text NOT NULL CHECK (gate ~ '^[A-Za-z0-9_-]{1,64}$'),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ticket_scans (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    show_id    uuid NOT NULL,
    -- NULL for a payload no key signed, or for no ticket of the show.
    ticket_id  uuid,
    account_id uuid NOT NULL,
    gate       text NOT NULL,
    result     text NOT NULL CHECK (result IN ('valid', 'already_scanned', 'revoked', 'forged')),
    scanned_at timestamptz NOT NULL,
    offline    boolean NOT NULL,
    -- An offline scan uploaded again is the same scan.
    UNIQUE (ticket_id, account_id, scanned_at)
);
CREATE INDEX ticket_scans_show ON ticket_scans (show_id, scanned_at);
