-- The waitlist: signed-in fans waiting for seats of a sold-out show, offered the seats that
-- come back, in the order they joined.
--
-- * A seat freed while its show has a fan waiting is `returned`, not `available`, and
--   queued in `seat_returns` with the moment it came back (an expired hold's seats at the
--   hold's expiry). No claim takes a returned seat; a claim takes the seats of an expired
--   hold only while nobody waits (`claim_statements`, restated), and the snapshots show
--   both as held. The offer worker (origin/src/waitlist/offers.rs) makes returned seats an
--   offer hold for the first waiting fan they fit, or gives them back to everyone when no
--   fan waiting can take them. `seat_returns` is a queue of its own so that finding the
--   returned seats needs no index on `seat_inventory.status`, which would cost every claim
--   its heap-only update.
-- * A fan has one entry per show that is waiting or offered. An offer is a hold
--   (`offer_hold_id`); the entry is `bought` once that hold is sold, `lapsed` once it ends
--   unsold, `left` when the fan leaves, `closed` when the show is called off.
-- * Connections prepared their claim statements before this migration keep the old ones
--   until they reconnect: an origin restarts onto a migrated database.

ALTER TABLE seat_inventory DROP CONSTRAINT seat_inventory_status_check,
    ADD CONSTRAINT seat_inventory_status_check
        CHECK (status IN ('available', 'held', 'sold', 'unavailable', 'returned'));

CREATE TABLE seat_returns (
    show_id     uuid NOT NULL,
    seat_id     bigint NOT NULL,
    returned_at timestamptz NOT NULL,
    PRIMARY KEY (show_id, seat_id)
);

CREATE TABLE waitlist_entries (
    -- The order fans joined in.
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    show_id       uuid NOT NULL REFERENCES shows (id),
    account_id    uuid NOT NULL REFERENCES accounts (id),
    quantity      integer NOT NULL CHECK (quantity BETWEEN 1 AND 100),
    -- The sections the fan would take seats in; NULL for any.
    section_ids   text[] CHECK (cardinality(section_ids) BETWEEN 1 AND 32),
    status        text NOT NULL DEFAULT 'waiting'
                  CHECK (status IN ('waiting', 'offered', 'bought', 'lapsed', 'left', 'closed')),
    joined_at     timestamptz NOT NULL DEFAULT now(),
    offer_hold_id uuid REFERENCES holds (id),
    offered_at    timestamptz,
    ended_at      timestamptz,
    CONSTRAINT waitlist_offer_has_hold
        CHECK (status NOT IN ('offered', 'bought', 'lapsed') OR (offer_hold_id IS NOT NULL AND offered_at IS NOT NULL)),
    CONSTRAINT waitlist_ended_when
        CHECK ((status IN ('waiting', 'offered')) = (ended_at IS NULL))
);
CREATE UNIQUE INDEX waitlist_one_per_account ON waitlist_entries (show_id, account_id)
    WHERE status IN ('waiting', 'offered');
CREATE INDEX waitlist_waiting ON waitlist_entries (show_id, id) WHERE status = 'waiting';
CREATE INDEX waitlist_offered ON waitlist_entries (offer_hold_id) WHERE status = 'offered';

-- Whether a fan waits for `p_show`'s seats: what a seat freed now becomes.
CREATE FUNCTION waitlist_waiting(p_show uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM waitlist_entries w WHERE w.show_id = p_show AND w.status = 'waiting');
$$;

-- As in 0012_claim_names_the_show_partition.sql, but an expired hold's seats are left to
-- the waitlist while a fan waits.
CREATE OR REPLACE FUNCTION claim_statements(p_partition text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_prepared_statements WHERE name = 'lock_' || p_partition) THEN
        EXECUTE format($sql$PREPARE %I(uuid, bigint[]) AS
            SELECT coalesce(array_agg(c.seat_id), '{}'), coalesce(sum(c.price_cents), 0)
              FROM (SELECT i.seat_id, p.price_cents FROM %I i
                      JOIN show_price_tiers p ON p.show_id = i.show_id AND p.tier = i.price_tier
                     WHERE i.show_id = $1 AND i.seat_id = ANY($2)
                       AND (i.status = 'available'
                            OR (i.status = 'held' AND i.hold_expires_at <= now()
                                AND NOT waitlist_waiting($1)))
                     ORDER BY i.seat_id FOR UPDATE OF i SKIP LOCKED) c$sql$,
            'lock_' || p_partition, p_partition);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_prepared_statements WHERE name = 'hold_' || p_partition) THEN
        -- The expiry is read from the hold, never passed as text through a session's DateStyle.
        EXECUTE format($sql$PREPARE %I(uuid, bigint[], uuid) AS
            UPDATE %I i
               SET status = 'held', hold_id = $3, version = i.version + 1,
                   hold_expires_at = (SELECT h.expires_at FROM holds h WHERE h.id = $3)
             WHERE i.show_id = $1 AND i.seat_id = ANY($2)$sql$,
            'hold_' || p_partition, p_partition);
    END IF;
    PERFORM set_config('onsale.claim_' || p_partition, 'prepared', false);
END
$$;
