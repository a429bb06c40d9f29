-- The fan's seat count is a primary-key range of its own, and the claim is planned once per
-- connection.
--
-- The claim counted the fan's seats of the show over `holds` and `orders` joined to
-- `order_items`: five relations and their indexes per claim, and plans that depend on the
-- tables' statistics. Re-planned on every call (custom plans), that planning was most of a
-- claim's time; a plan kept per connection is only safe when no statistics can change its
-- shape. Now:
--   * `fan_seats` has a row per live hold and per paid order of each (show, fan): the hold's
--     seats, counted until the hold expires, or for good ('infinity') once paid. The claim,
--     which alone makes holds, writes the row with the hold; triggers on `holds` and
--     `orders` follow every later change of either, whoever makes it. Its only index is
--     the primary key, so the count has one plan.
--   * `claim_hold` keeps its plans for the connection's life (`force_generic_plan`), and
--     `enable_seqscan = off` keeps a plan made on an empty table from scanning it whole.
--     Every statement in it names its rows by a primary key.
--   * `holds_fan` served only the old count.
--   * A show is never deleted (a called-off show is `cancelled`, a finished one keeps its
--     history), so a hold or an order names a show that exists for good once the claim has
--     read it, and their foreign keys to `shows` go: each check took a share lock on the
--     show's one row, and with a crowd claiming at once every lock on that row made a new
--     multixact of all its lockers.
--
--   * An idempotency key's check no longer uses a bounded repetition: PostgreSQL's regex
--     engine ran `^[\x21-\x7e]{1,255}$` as an automaton of 255 copies of the class on
--     every write, about a fifth of a claim's time. The same keys pass.
--   * The claim checks the admission's `jti` against `spent_admissions` itself (outcome
--     `admission_spent`, before anything else), so the route makes one round trip.
--
-- Other outcomes and their order as in 0008_claim_as_one_statement.sql.

CREATE TABLE fan_seats (
    show_id      uuid NOT NULL,
    fan_id       text NOT NULL,
    hold_id      uuid NOT NULL,
    seat_count   integer NOT NULL,
    counts_until timestamptz NOT NULL,
    PRIMARY KEY (show_id, fan_id, hold_id)
);

INSERT INTO fan_seats (show_id, fan_id, hold_id, seat_count, counts_until)
SELECT show_id, fan_id, id, seat_count, expires_at FROM holds WHERE status = 'active';
INSERT INTO fan_seats (show_id, fan_id, hold_id, seat_count, counts_until)
SELECT o.show_id, o.fan_id, o.hold_id, count(*), 'infinity'
  FROM orders o JOIN order_items oi ON oi.order_id = o.id
 WHERE o.status = 'confirmed'
 GROUP BY o.show_id, o.fan_id, o.hold_id;

-- A hold counts while it is active (until its expiry, which an order extends) and for good
-- once converted (paid); released or expired, it no longer counts. An upsert, so a hold
-- made before its row existed still counts once paid.
CREATE FUNCTION holds_fan_seats() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'active' OR NEW.status = 'converted' THEN
        INSERT INTO fan_seats (show_id, fan_id, hold_id, seat_count, counts_until)
        VALUES (NEW.show_id, NEW.fan_id, NEW.id, NEW.seat_count,
                CASE WHEN NEW.status = 'active' THEN NEW.expires_at ELSE 'infinity' END)
        ON CONFLICT (show_id, fan_id, hold_id) DO UPDATE SET counts_until = EXCLUDED.counts_until;
    ELSE
        DELETE FROM fan_seats WHERE show_id = NEW.show_id AND fan_id = NEW.fan_id AND hold_id = NEW.id;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER holds_fan_seats
    AFTER UPDATE OF status, expires_at ON holds
    FOR EACH ROW EXECUTE FUNCTION holds_fan_seats();

-- A paid order that is cancelled (refunded) gives its seats back to the fan's limit.
CREATE FUNCTION orders_fan_seats() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM fan_seats WHERE show_id = NEW.show_id AND fan_id = NEW.fan_id AND hold_id = NEW.hold_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER orders_fan_seats
    AFTER UPDATE OF status ON orders
    FOR EACH ROW WHEN (OLD.status = 'confirmed' AND NEW.status <> 'confirmed')
    EXECUTE FUNCTION orders_fan_seats();

DROP INDEX holds_fan;

CREATE FUNCTION shows_are_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'shows are never deleted; cancel the show instead'
        USING ERRCODE = 'restrict_violation', CONSTRAINT = 'shows_are_kept', TABLE = 'shows';
END
$$;
CREATE TRIGGER shows_are_kept BEFORE DELETE ON shows
    FOR EACH ROW EXECUTE FUNCTION shows_are_kept();
CREATE TRIGGER shows_are_kept_whole BEFORE TRUNCATE ON shows
    FOR EACH STATEMENT EXECUTE FUNCTION shows_are_kept();
ALTER TABLE holds DROP CONSTRAINT holds_show_id_fkey;
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_key_check,
    ADD CONSTRAINT idempotency_keys_key_check CHECK (octet_length(key) <= 255 AND key ~ '^[\x21-\x7e]+$');
ALTER TABLE orders DROP CONSTRAINT orders_show_id_fkey;

DROP FUNCTION claim_hold(uuid, uuid, text, bigint[], double precision, integer, text, text, bytea,
                         double precision);
CREATE FUNCTION claim_hold(
    p_hold uuid, p_show uuid, p_fan text, p_jti text, p_seats bigint[], p_ttl_s double precision,
    p_max_per_fan integer, p_key text, p_route text, p_request_hash bytea,
    p_in_flight_timeout_s double precision)
RETURNS TABLE (outcome text, body text, seat_ids bigint[], show_status text, current_seats bigint)
LANGUAGE plpgsql
-- Every statement here reaches its rows by primary key, so one plan per connection serves
-- every call (no planning per call). A plan made while a table is empty would otherwise
-- scan it whole for the connection's life.
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
    IF v_current + cardinality(p_seats) > p_max_per_fan THEN
        RETURN QUERY SELECT 'fan_limit', NULL::text, NULL::bigint[], NULL::text, v_current;
        RETURN;
    END IF;

    -- In seat order, skipping rows another claim holds: those count as taken. The locked
    -- rows' prices make the hold's total. Each statement on the inventory costs an
    -- executor start over its partitions and constraints, so the seats are read once.
    SELECT coalesce(array_agg(c.seat_id), '{}'), coalesce(sum(c.price_cents), 0)
      INTO v_found, v_total
      FROM (SELECT i.seat_id, p.price_cents FROM seat_inventory i
              JOIN show_price_tiers p ON p.show_id = i.show_id AND p.tier = i.price_tier
             WHERE i.show_id = p_show AND i.seat_id = ANY(p_seats)
               AND (i.status = 'available' OR (i.status = 'held' AND i.hold_expires_at <= now()))
             ORDER BY i.seat_id FOR UPDATE OF i SKIP LOCKED) c;
    IF cardinality(v_found) < cardinality(p_seats) THEN
        -- Unknown seats are told apart from taken ones only on this path.
        SELECT coalesce(array_agg(i.seat_id), '{}') INTO v_known
          FROM seat_inventory i WHERE i.show_id = p_show AND i.seat_id = ANY(p_seats);
        IF cardinality(v_known) < cardinality(p_seats) THEN
            RETURN QUERY SELECT 'unknown_seats', NULL::text,
                ARRAY(SELECT w FROM unnest(p_seats) w WHERE w <> ALL(v_known)), NULL::text, NULL::bigint;
        ELSE
            RETURN QUERY SELECT 'seats_taken', NULL::text,
                ARRAY(SELECT w FROM unnest(p_seats) w WHERE w <> ALL(v_found)), NULL::text, NULL::bigint;
        END IF;
        RETURN;
    END IF;

    INSERT INTO holds (id, show_id, fan_id, status, seat_count, total_cents, currency, expires_at, seat_ids)
    VALUES (p_hold, p_show, p_fan, 'active', cardinality(p_seats), v_total,
            v_currency, clock_timestamp() + make_interval(secs => p_ttl_s), p_seats)
    RETURNING expires_at INTO v_expires;
    INSERT INTO fan_seats (show_id, fan_id, hold_id, seat_count, counts_until)
    VALUES (p_show, p_fan, p_hold, cardinality(p_seats), v_expires);
    UPDATE seat_inventory i
       SET status = 'held', hold_id = p_hold, hold_expires_at = v_expires, version = i.version + 1
     WHERE i.show_id = p_show AND i.seat_id = ANY(p_seats);

    -- The hold as the API shows it (origin/src/holds/mod.rs HoldView, field for field), its
    -- times on the clock that set the expiry.
    v_body := format(
        '{"hold_id":"%s","show_id":"%s","seat_ids":[%s],"status":"active","expires_at_ms":%s,"server_time_ms":%s,"total_cents":%s,"currency":%s}',
        p_hold, p_show, array_to_string(p_seats, ','),
        floor(extract(epoch FROM v_expires) * 1000)::bigint,
        floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint, v_total,
        to_json(v_currency));
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
