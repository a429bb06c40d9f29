-- A claim's cost no longer grows with the number of shows.
--
-- claim_hold keeps its plans for the connection's life (0011_fan_seats.sql), and a kept
-- (generic) plan over the partitioned inventory cannot know the show: it holds every
-- partition and locks each one, with its indexes, at every call before pruning to the one
-- it needs. With 200 more shows a claim took 1,643 locks and ran at a third of the rate.
-- The claim's two seat statements now name the show's own partition
-- (`seat_inventory_<show id without dashes>`, as origin/src/admin.rs names it): prepared
-- by the connection on its first claim of the show, a plan made once for that one table.
-- A connection keeps two prepared statements per show it has claimed on, for its life;
-- the pool's connections live at most `max_lifetime`.

-- Prepares this connection's statements over one show's partition:
--   lock_<partition>(show, seats): the seats free to hold, in seat order, locked, skipping
--     rows another claim holds (those count as taken), and the locked rows' total price;
--   hold_<partition>(show, seats, hold): the seats held by the hold, until its expiry.
-- A session setting records that they exist, so a claim checks it instead of listing the
-- connection's prepared statements. A rolled-back transaction forgets the setting but not
-- the statements, hence the check here.
CREATE FUNCTION claim_statements(p_partition text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_prepared_statements WHERE name = 'lock_' || p_partition) THEN
        EXECUTE format($sql$PREPARE %I(uuid, bigint[]) AS
            SELECT coalesce(array_agg(c.seat_id), '{}'), coalesce(sum(c.price_cents), 0)
              FROM (SELECT i.seat_id, p.price_cents FROM %I i
                      JOIN show_price_tiers p ON p.show_id = i.show_id AND p.tier = i.price_tier
                     WHERE i.show_id = $1 AND i.seat_id = ANY($2)
                       AND (i.status = 'available' OR (i.status = 'held' AND i.hold_expires_at <= now()))
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

CREATE OR REPLACE FUNCTION claim_hold(
    p_hold uuid, p_show uuid, p_fan text, p_jti text, p_seats bigint[], p_ttl_s double precision,
    p_max_per_fan integer, p_key text, p_route text, p_request_hash bytea,
    p_in_flight_timeout_s double precision)
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
    IF v_current + cardinality(p_seats) > p_max_per_fan THEN
        RETURN QUERY SELECT 'fan_limit', NULL::text, NULL::bigint[], NULL::text, v_current;
        RETURN;
    END IF;

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

    INSERT INTO holds (id, show_id, fan_id, status, seat_count, total_cents, currency, expires_at, seat_ids)
    VALUES (p_hold, p_show, p_fan, 'active', cardinality(p_seats), v_total,
            v_currency, clock_timestamp() + make_interval(secs => p_ttl_s), p_seats)
    RETURNING expires_at INTO v_expires;
    INSERT INTO fan_seats (show_id, fan_id, hold_id, seat_count, counts_until)
    VALUES (p_show, p_fan, p_hold, cardinality(p_seats), v_expires);
    EXECUTE format('EXECUTE %I(%L, %L, %L)', 'hold_' || v_partition, p_show, p_seats, p_hold);

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
