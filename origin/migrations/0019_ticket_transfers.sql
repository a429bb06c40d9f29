-- Tickets change hands (origin/src/transfers.rs). A ticket's holder is the account it
-- admits, at first the order's fan. A transfer revokes the ticket and issues a new one, with
-- a new id and signature, to the new holder, in one transaction; every move is kept.
ALTER TABLE tickets ADD COLUMN holder text;
UPDATE tickets t SET holder = o.fan_id FROM orders o WHERE o.id = t.order_id;
ALTER TABLE tickets ALTER COLUMN holder SET NOT NULL;
CREATE INDEX tickets_holder ON tickets (holder, issued_at DESC, id DESC) WHERE status = 'valid';

CREATE TABLE ticket_transfers (
    id            uuid PRIMARY KEY,
    -- The ticket handed over, and the one issued for it once the transfer completes.
    ticket_id     uuid NOT NULL REFERENCES tickets (id),
    new_ticket_id uuid REFERENCES tickets (id),
    from_account  text NOT NULL,
    -- The recipient: its email's key at once, its account once it has one.
    to_email_key  text NOT NULL,
    to_account    text,
    status        text NOT NULL CHECK (status IN ('pending', 'completed', 'cancelled', 'expired')),
    expires_at    timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    ended_at      timestamptz,
    CHECK ((status = 'completed') = (new_ticket_id IS NOT NULL AND to_account IS NOT NULL)),
    CHECK ((status = 'pending') = (ended_at IS NULL))
);
CREATE UNIQUE INDEX ticket_transfers_one_pending ON ticket_transfers (ticket_id) WHERE status = 'pending';
CREATE INDEX ticket_transfers_waiting ON ticket_transfers (to_email_key) WHERE status = 'pending';
