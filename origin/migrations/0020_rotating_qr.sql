-- Rotating QR codes (origin/src/tickets.rs). Each ticket has a secret of its own, handed to
-- its holder's device only, from which the device computes the code of each time step
-- (RFC 6238 with HMAC-SHA256). A screenshot's code goes stale; a transferred ticket is a new
-- ticket with a new secret. 244 random bits from the server's strong random source, one
-- value per row, existing tickets included.
ALTER TABLE tickets ADD COLUMN rotation_secret bytea NOT NULL
    DEFAULT uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid());

-- A signed payload whose rotating code is missing, wrong or more than two steps old.
ALTER TABLE ticket_scans DROP CONSTRAINT ticket_scans_result_check;
ALTER TABLE ticket_scans ADD CONSTRAINT ticket_scans_result_check
    CHECK (result IN ('valid', 'already_scanned', 'revoked', 'forged', 'stale_code'));
