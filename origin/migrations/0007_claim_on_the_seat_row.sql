-- The seat row carries its live hold, and a claim's seat update is HOT.
--
-- A claim used to write a `hold_seats` row per seat (its unique index, a foreign key into the
-- partitioned inventory) and update seat rows whose `status` sat in two indexes, so every
-- seat update also wrote three index entries. Now:
--   * one live hold per seat is the seat row itself (`hold_id`), guarded by a trigger that
--     refuses to hand a seat held by a live hold to another hold;
--   * which seats a hold was for is `holds.seat_ids` (history, written once);
--   * no index covers `status`, `hold_id` or `hold_expires_at`, and the inventory's pages
--     keep room for new row versions (fillfactor), so claims, releases and sales update
--     seats in place (HOT); the sweeper finds expired holds through `holds_active_expiry`.

ALTER TABLE holds ADD COLUMN seat_ids bigint[];
UPDATE holds h SET seat_ids = coalesce(
    (SELECT array_agg(s.seat_id ORDER BY s.seat_id) FROM hold_seats s WHERE s.hold_id = h.id),
    '{}');
ALTER TABLE holds ALTER COLUMN seat_ids SET NOT NULL,
    ADD CONSTRAINT holds_seat_ids_match_count CHECK (cardinality(seat_ids) = seat_count);

-- A hold that lost seats to a later claim after it expired (lazy expiry) keeps them in its
-- history; the seats it still holds are those whose row names it.
DROP TABLE hold_seats;

DROP INDEX seat_inventory_held_expiry;
DROP INDEX seat_inventory_section;
-- Best-available walks a section in layout order and skips taken seats.
CREATE INDEX seat_inventory_section ON seat_inventory (show_id, section_id, layout_idx);

CREATE FUNCTION seat_inventory_one_live_hold() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.hold_expires_at > now() THEN
        RAISE EXCEPTION 'seat % of show % is held by live hold %', OLD.seat_id, OLD.show_id, OLD.hold_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'seat_inventory_one_live_hold',
                  TABLE = 'seat_inventory';
    END IF;
    RETURN NEW;
END
$$;
-- Only an update that gives a held seat to another hold runs the function: the condition
-- is checked without it, so claims of available seats pay nothing.
CREATE TRIGGER seat_inventory_one_live_hold
    BEFORE UPDATE ON seat_inventory
    FOR EACH ROW
    WHEN (OLD.status = 'held' AND NEW.status = 'held' AND NEW.hold_id IS DISTINCT FROM OLD.hold_id)
    EXECUTE FUNCTION seat_inventory_one_live_hold();

-- Room on every page for updated row versions, in the partitions there are now (rewritten
-- so existing pages get it) and, through the show's creation, in every later one. The
-- rewrite locks each partition while it runs (about a second for a stadium): migrate
-- between on-sales, not during one.
DO $$
DECLARE
    partition regclass;
    primary_key regclass;
BEGIN
    FOR partition, primary_key IN
        SELECT i.inhrelid::regclass, x.indexrelid::regclass
        FROM pg_inherits i JOIN pg_index x ON x.indrelid = i.inhrelid AND x.indisprimary
        WHERE i.inhparent = 'seat_inventory'::regclass
    LOOP
        EXECUTE format('ALTER TABLE %s SET (fillfactor = 80)', partition);
        EXECUTE format('CLUSTER %s USING %s', partition, primary_key);
    END LOOP;
END
$$;
