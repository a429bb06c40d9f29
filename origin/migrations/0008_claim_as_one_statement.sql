-- The claim as one statement: a hold is one call of claim_hold, one round trip and one
-- commit. Each statement inside takes its own snapshot (read committed), so the fan's count
-- runs after the fan's lock is granted and sees every hold committed before it.
--
-- Outcomes (`outcome`, with what goes with it):
--   created        the hold is written and `body` (its JSON) stored as the key's answer;
--   key_taken      the key has an answer or a live claim already: ask the key;
--   no_show, not_on_sale (show_status), fan_limit (current_seats), unknown_seats
--   (seat_ids), seats_taken (seat_ids): refused, nothing written.
-- Every refusal comes before the first write. The key is written last, with the answer:
-- a concurrent duplicate waits on its unique entry, then the loser's whole claim rolls back
-- with SQLSTATE ON409 ("the key was answered meanwhile").
CREATE FUNCTION claim_hold(
    p_hold uuid, p_show uuid, p_fan text, p_seats bigint[], p_ttl_s double precision,
    p_max_per_fan integer, p_key text, p_route text, p_request_hash bytea,
    p_in_flight_timeout_s double precision)
RETURNS TABLE (outcome text, body text, seat_ids bigint[], show_status text, current_seats bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
    v_currency text;
    v_found bigint[];
    v_known bigint[];
    v_current bigint;
    v_expires timestamptz;
    v_total bigint;
    v_body text;
BEGIN
    -- An answered key, or a claim still live, is the key's to answer; a claim that died in
    -- flight long ago is taken over below.
    IF EXISTS (SELECT 1 FROM idempotency_keys k
               WHERE k.fan_id = p_fan AND k.key = p_key
                 AND NOT (k.response_status IS NULL AND k.request_hash = p_request_hash
                          AND k.created_at < now() - make_interval(secs => p_in_flight_timeout_s))) THEN
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
    SELECT (SELECT coalesce(sum(h.seat_count), 0) FROM holds h
             WHERE h.show_id = p_show AND h.fan_id = p_fan AND h.status = 'active' AND h.expires_at > now())
         + (SELECT count(*) FROM order_items oi JOIN orders o ON o.id = oi.order_id
             WHERE o.show_id = p_show AND o.fan_id = p_fan AND o.status = 'confirmed')
      INTO v_current;
    IF v_current + cardinality(p_seats) > p_max_per_fan THEN
        RETURN QUERY SELECT 'fan_limit', NULL::text, NULL::bigint[], NULL::text, v_current;
        RETURN;
    END IF;

    -- In seat order, skipping rows another claim holds: those count as taken. The locked
    -- rows' prices make the hold's total. Each statement on the inventory costs a plan's
    -- start over its partitions and constraints, so the seats are read once.
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
