-- When a ticket was revoked (cancelled, refunded, its show called off), for the show's
-- revocation list that offline scanners sync (origin/src/tickets.rs). Set by the database
-- on every revocation, whichever path makes it; tickets revoked before this migration
-- take the time of the migration.
ALTER TABLE tickets ADD COLUMN revoked_at timestamptz;
UPDATE tickets SET revoked_at = now() WHERE status = 'revoked';
ALTER TABLE tickets ADD CONSTRAINT tickets_revoked_has_time
    CHECK ((status = 'revoked') = (revoked_at IS NOT NULL));

CREATE FUNCTION tickets_revoked_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.revoked_at := now();
    RETURN NEW;
END
$$;
CREATE TRIGGER tickets_revoked_at
    BEFORE UPDATE OF status ON tickets
    FOR EACH ROW WHEN (OLD.status = 'valid' AND NEW.status = 'revoked')
    EXECUTE FUNCTION tickets_revoked_at();

CREATE INDEX tickets_revocations ON tickets (show_id, revoked_at, id) WHERE status = 'revoked';
