-- General admission: a section sold by count, not by seat.
--
-- * A GA section has a capacity (`sections.capacity`) and no seats.
-- * `ga_inventory` keeps, per show and GA section, the places left: a CHECK holds it between
--   0 and the capacity, so no claim can take a place that is not there, whatever the code
--   does. `next_number` numbers the section's tickets.
-- * A GA hold names its section (`holds.ga_section`); its `seat_count` is its quantity and
--   its `seat_ids` are empty. `claim_hold` takes `p_ga_section` and `p_quantity` (NULL when
--   left out: a claim of seats, as before) and takes the places from the counter in one
--   statement; everything else is as in 0015_best_available.sql.
-- * A GA ticket has no seat: `ga_section` and a number, one valid ticket per number.
-- * Places go back to the counter exactly once, by triggers on the status changes that
--   free them, whoever makes them: a GA hold that stops being active other than by its sale
--   (released, expired), and a paid GA order cancelled. Not for a called-off show, whose
--   places are off sale for good (its counter is set to 0 when it is called off).

ALTER TABLE sections ADD COLUMN capacity integer CHECK (capacity BETWEEN 1 AND 1000000);

CREATE TABLE ga_inventory (
    show_id     uuid NOT NULL REFERENCES shows (id),
    section_id  text NOT NULL,
    price_tier  text NOT NULL,
    capacity    integer NOT NULL CHECK (capacity > 0),
    available   integer NOT NULL,
    next_number integer NOT NULL DEFAULT 1 CHECK (next_number >= 1),
    PRIMARY KEY (show_id, section_id),
    CONSTRAINT ga_inventory_available CHECK (available BETWEEN 0 AND capacity)
);

ALTER TABLE holds ADD COLUMN ga_section text;
-- A hold has its seats, or else general-admission places and no seat.
ALTER TABLE holds DROP CONSTRAINT holds_seat_ids_match_count;
ALTER TABLE holds ADD CONSTRAINT holds_seats_or_places CHECK (
    CASE WHEN ga_section IS NULL THEN cardinality(seat_ids) = seat_count
         ELSE cardinality(seat_ids) = 0 END);
-- The seat-map builder counts each GA section's places in live holds every build.
CREATE INDEX holds_ga_active ON holds (show_id, ga_section) WHERE status = 'active' AND ga_section IS NOT NULL;

ALTER TABLE tickets ALTER COLUMN seat_id DROP NOT NULL,
    ADD COLUMN ga_section text,
    ADD COLUMN ga_number integer,
    ADD CONSTRAINT tickets_seat_or_place
        CHECK ((seat_id IS NULL) = (ga_section IS NOT NULL AND ga_number IS NOT NULL));
CREATE UNIQUE INDEX tickets_one_valid_per_place ON tickets (show_id, ga_section, ga_number)
    WHERE status = 'valid' AND ga_section IS NOT NULL;

CREATE FUNCTION ga_places_back(p_show uuid, p_section text, p_count integer) RETURNS void
LANGUAGE sql AS $$
    UPDATE ga_inventory g SET available = g.available + p_count
      FROM shows s
     WHERE g.show_id = p_show AND g.section_id = p_section
       AND s.id = p_show AND s.status <> 'cancelled';
$$;

CREATE FUNCTION holds_ga_places_back() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ga_places_back(NEW.show_id, NEW.ga_section, NEW.seat_count);
    RETURN NULL;
END
$$;
CREATE TRIGGER holds_ga_places_back
    AFTER UPDATE OF status ON holds
    FOR EACH ROW
    WHEN (NEW.ga_section IS NOT NULL AND OLD.status = 'active' AND NEW.status IN ('released', 'expired'))
    EXECUTE FUNCTION holds_ga_places_back();

CREATE FUNCTION orders_ga_places_back() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ga_places_back(h.show_id, h.ga_section, h.seat_count)
       FROM holds h WHERE h.id = NEW.hold_id AND h.ga_section IS NOT NULL;
    RETURN NULL;
END
$$;
CREATE TRIGGER orders_ga_places_back
    AFTER UPDATE OF status ON orders
    FOR EACH ROW
    WHEN (OLD.status = 'confirmed' AND NEW.status = 'cancelled')
    EXECUTE FUNCTION orders_ga_places_back();

DROP FUNCTION claim_hold(uuid, uuid, text, text, bigint[], double precision, integer, text, text, bytea,
                         double precision, boolean);
CREATE FUNCTION claim_hold(
    p_hold uuid, p_show uuid, p_fan text, p_jti text, p_seats bigint[], p_ttl_s double precision,
    p_max_per_fan integer, p_key text, p_route text, p_request_hash bytea,
    p_in_flight_timeout_s double precision, p_adjacent boolean DEFAULT NULL,
    p_ga_section text DEFAULT NULL, p_quantity integer DEFAULT NULL)
RETURNS TABLE (outcome text, body text, seat_ids bigint[], show_status text, current_seats bigint)
LANGUAGE plpgsql
-- Every statement here reaches its rows by primary key, so one plan per connection serves
-- every call (no planning per call). A plan made while a table is empty would otherwise
-- scan it whole for the connection's life. The seats are read and written by statements
-- over the show's own partition (claim_statements).
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
AS $$
DECLARE
    v_spent boolean;
    v_taken boolean;
    v_status text;
    v_currency text;
    v_found bigint[];
    v_known bigint[];
    v_current bigint;
    v_expires timestamptz;
    v_total bigint;
    v_body text;
    v_count integer := coalesce(p_quantity, cardinality(p_seats));
    v_partition text := 'seat_inventory_' || replace(p_show::text, '-', '');
BEGIN
    -- A spent admission buys nothing more, not even a replay. An answered key, or a claim
    -- still live, is the key's to answer; a claim that died in flight long ago is taken
    -- over below.
    SELECT EXISTS (SELECT 1 FROM spent_admissions a WHERE a.jti = p_jti),
           EXISTS (SELECT 1 FROM idempotency_keys k
                   WHERE k.fan_id = p_fan AND k.key = p_key
                     AND NOT (k.response_status IS NULL AND k.request_hash = p_request_hash
                              AND k.created_at < now() - make_interval(secs => p_in_flight_timeout_s)))
      INTO v_spent, v_taken;
    IF v_spent THEN
        RETURN QUERY SELECT 'admission_spent', NULL::text, NULL::bigint[], NULL::text, NULL::bigint;
        RETURN;
    END IF;
    IF v_taken THEN
        RETURN QUERY SELECT 'key_taken', NULL::text, NULL::bigint[], NULL::text, NULL::bigint;
        RETURN;
    END IF;

    SELECT CASE WHEN s.status = 'scheduled' AND s.on_sale_at <= now() THEN 'on_sale' ELSE s.status END,
           s.currency
      INTO v_status, v_currency
      FROM shows s WHERE s.id = p_show;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'no_show', NULL::text, NULL::bigint[], NULL::text, NULL::bigint;
        RETURN;
    END IF;
    IF v_status <> 'on_sale' THEN
        RETURN QUERY SELECT 'not_on_sale', NULL::text, NULL::bigint[], v_status, NULL::bigint;
        RETURN;
    END IF;

    PERFORM pg_advisory_xact_lock(hashtextextended(p_show::text || ':' || p_fan, 7215));
    SELECT coalesce(sum(f.seat_count), 0) FROM fan_seats f
     WHERE f.show_id = p_show AND f.fan_id = p_fan AND f.counts_until > now()
      INTO v_current;
    IF v_current + v_count > p_max_per_fan THEN
        RETURN QUERY SELECT 'fan_limit', NULL::text, NULL::bigint[], NULL::text, v_current;
        RETURN;
    END IF;

    IF p_ga_section IS NOT NULL THEN
        -- General admission: one statement takes the places from the section's counter, or
        -- none; concurrent claims queue on its row and each sees what the last one left.
        UPDATE ga_inventory g SET available = g.available - p_quantity
          FROM show_price_tiers t
         WHERE g.show_id = p_show AND g.section_id = p_ga_section AND g.available >= p_quantity
           AND t.show_id = g.show_id AND t.tier = g.price_tier
        RETURNING p_quantity * t.price_cents INTO v_total;
        IF NOT FOUND THEN
            RETURN QUERY SELECT 'sold_out', NULL::text, NULL::bigint[], NULL::text, NULL::bigint;
            RETURN;
        END IF;
    ELSE
        IF current_setting('onsale.claim_' || v_partition, true) IS DISTINCT FROM 'prepared' THEN
            PERFORM claim_statements(v_partition);
        END IF;
        EXECUTE format('EXECUTE %I(%L, %L)', 'lock_' || v_partition, p_show, p_seats)
           INTO v_found, v_total;
        IF cardinality(v_found) < cardinality(p_seats) THEN
            -- Unknown seats are told apart from taken ones only on this path.
            EXECUTE format('SELECT coalesce(array_agg(i.seat_id), ''{}'') FROM %I i
                             WHERE i.show_id = $1 AND i.seat_id = ANY($2)', v_partition)
               INTO v_known USING p_show, p_seats;
            IF cardinality(v_known) < cardinality(p_seats) THEN
                RETURN QUERY SELECT 'unknown_seats', NULL::text,
                    ARRAY(SELECT w FROM unnest(p_seats) w WHERE w <> ALL(v_known)), NULL::text, NULL::bigint;
            ELSE
                RETURN QUERY SELECT 'seats_taken', NULL::text,
                    ARRAY(SELECT w FROM unnest(p_seats) w WHERE w <> ALL(v_found)), NULL::text, NULL::bigint;
            END IF;
            RETURN;
        END IF;
    END IF;

    INSERT INTO holds (id, show_id, fan_id, status, seat_count, total_cents, currency, expires_at, seat_ids,
                       adjacent, ga_section)
    VALUES (p_hold, p_show, p_fan, 'active', v_count, v_total,
            v_currency, clock_timestamp() + make_interval(secs => p_ttl_s), p_seats, p_adjacent, p_ga_section)
    RETURNING expires_at INTO v_expires;
    INSERT INTO fan_seats (show_id, fan_id, hold_id, seat_count, counts_until)
    VALUES (p_show, p_fan, p_hold, v_count, v_expires);
    IF p_ga_section IS NULL THEN
        EXECUTE format('EXECUTE %I(%L, %L, %L)', 'hold_' || v_partition, p_show, p_seats, p_hold);
    END IF;

    -- The hold as the API shows it (origin/src/holds/mod.rs HoldView, field for field), its
    -- times on the clock that set the expiry.
    v_body := format(
        '{"hold_id":"%s","show_id":"%s","seat_ids":[%s],"status":"active","expires_at_ms":%s,"server_time_ms":%s,"total_cents":%s,"currency":%s%s%s}',
        p_hold, p_show, array_to_string(p_seats, ','),
        floor(extract(epoch FROM v_expires) * 1000)::bigint,
        floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint, v_total,
        to_json(v_currency),
        CASE WHEN p_adjacent IS NULL THEN '' ELSE ',"adjacent":' || p_adjacent::text END,
        CASE WHEN p_ga_section IS NULL THEN ''
             ELSE format(',"general_admission":{"section_id":%s,"quantity":%s}', to_json(p_ga_section), p_quantity) END);
    INSERT INTO idempotency_keys AS k (fan_id, key, route, request_hash, claim, response_status, response_body)
    VALUES (p_fan, p_key, p_route, p_request_hash, gen_random_uuid(), 201, convert_to(v_body, 'UTF8'))
    ON CONFLICT (fan_id, key) DO UPDATE
       SET created_at = now(), claim = EXCLUDED.claim,
           response_status = EXCLUDED.response_status, response_body = EXCLUDED.response_body
     WHERE k.response_status IS NULL AND k.request_hash = EXCLUDED.request_hash
       AND k.created_at < now() - make_interval(secs => p_in_flight_timeout_s);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'idempotency key % of % was answered meanwhile', p_key, p_fan
            USING ERRCODE = 'ON409';
    END IF;
    RETURN QUERY SELECT 'created', v_body, NULL::bigint[], NULL::text, NULL::bigint;
END
$$;
