-- Best available, properly: seats near the stage, adjacent when they can be, and a hold
-- that says when they could not.
--
-- * A venue has a stage point (`stage_x`, `stage_y`, in its seats' coordinates; the origin
--   by default, where the demo venues have their stage and pitch). Best-available ranks
--   seats by their distance to it (origin/src/holds/best.rs).
-- * A best-available hold records whether its seats are adjacent in one row
--   (`holds.adjacent`; NULL for a hold of named seats), and its answer says so.
--   `claim_hold` takes it as `p_adjacent` (NULL when left out); everything else is as in
--   0012_claim_names_the_show_partition.sql.

ALTER TABLE venues ADD COLUMN stage_x real NOT NULL DEFAULT 0,
                   ADD COLUMN stage_y real NOT NULL DEFAULT 0;
ALTER TABLE holds ADD COLUMN adjacent boolean;

DROP FUNCTION claim_hold(uuid, uuid, text, text, bigint[], double precision, integer, text, text, bytea,
                         double precision);
CREATE FUNCTION claim_hold(
    p_hold uuid, p_show uuid, p_fan text, p_jti text, p_seats bigint[], p_ttl_s double precision,
    p_max_per_fan integer, p_key text, p_route text, p_request_hash bytea,
    p_in_flight_timeout_s double precision, p_adjacent boolean DEFAULT NULL)
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

    INSERT INTO holds (id, show_id, fan_id, status, seat_count, total_cents, currency, expires_at, seat_ids,
                       adjacent)
    VALUES (p_hold, p_show, p_fan, 'active', cardinality(p_seats), v_total,
            v_currency, clock_timestamp() + make_interval(secs => p_ttl_s), p_seats, p_adjacent)
    RETURNING expires_at INTO v_expires;
    INSERT INTO fan_seats (show_id, fan_id, hold_id, seat_count, counts_until)
    VALUES (p_show, p_fan, p_hold, cardinality(p_seats), v_expires);
    EXECUTE format('EXECUTE %I(%L, %L, %L)', 'hold_' || v_partition, p_show, p_seats, p_hold);

    -- The hold as the API shows it (origin/src/holds/mod.rs HoldView, field for field), its
    -- times on the clock that set the expiry.
    v_body := format(
        '{"hold_id":"%s","show_id":"%s","seat_ids":[%s],"status":"active","expires_at_ms":%s,"server_time_ms":%s,"total_cents":%s,"currency":%s%s}',
        p_hold, p_show, array_to_string(p_seats, ','),
        floor(extract(epoch FROM v_expires) * 1000)::bigint,
        floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint, v_total,
        to_json(v_currency),
        CASE WHEN p_adjacent IS NULL THEN '' ELSE ',"adjacent":' || p_adjacent::text END);
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
