-- The origin's claim transaction (origin/src/holds/claim.rs: open_claim, check_fan_limit,
-- lock_claimable, insert_hold), for pgbench: client c's
-- k-th transaction claims the 4 seats starting at :first + 4 * (c + :clients * k), as fan
-- pgbench-c. Run with -D show=... -D first=... -D clients=... -D k=0. The idempotency
-- record is left out (the HTTP run has it). chr(58) is ':', which pgbench would take for a
-- variable's start even inside a string.
\set base :first + 4 * (:client_id + :clients * :k)
\set k :k + 1
BEGIN;
SELECT CASE WHEN s.status = 'scheduled' AND s.on_sale_at <= now() THEN 'on_sale' ELSE s.status END, s.currency,
       ARRAY(SELECT wanted FROM unnest(ARRAY[:base, :base + 1, :base + 2, :base + 3]::int8[]) wanted
             WHERE NOT EXISTS (SELECT 1 FROM seat_inventory i WHERE i.show_id = s.id AND i.seat_id = wanted))
  FROM shows s, pg_advisory_xact_lock(hashtextextended(CAST(:show AS text) || chr(58) || 'pgbench-' || CAST(:client_id AS text), 7215))
  WHERE s.id = :show;
SELECT (SELECT coalesce(sum(seat_count), 0) FROM holds
         WHERE show_id = :show AND fan_id = 'pgbench-' || CAST(:client_id AS text) AND status = 'active' AND expires_at > now())
     + (SELECT count(*) FROM order_items oi JOIN orders o ON o.id = oi.order_id
         WHERE o.show_id = :show AND o.fan_id = 'pgbench-' || CAST(:client_id AS text) AND o.status = 'confirmed');
SELECT seat_id FROM seat_inventory
  WHERE show_id = :show AND seat_id = ANY(ARRAY[:base, :base + 1, :base + 2, :base + 3]::int8[])
    AND (status = 'available' OR (status = 'held' AND hold_expires_at <= now()))
  ORDER BY seat_id FOR UPDATE SKIP LOCKED;
WITH hold AS (
    INSERT INTO holds (id, show_id, fan_id, status, seat_count, total_cents, currency, expires_at, seat_ids)
    SELECT gen_random_uuid(), :show, 'pgbench-' || CAST(:client_id AS text), 'active', 4, coalesce(sum(p.price_cents), 0),
           'GBP', clock_timestamp() + interval '8 minutes', ARRAY[:base, :base + 1, :base + 2, :base + 3]::int8[]
    FROM seat_inventory i JOIN show_price_tiers p ON p.show_id = i.show_id AND p.tier = i.price_tier
    WHERE i.show_id = :show AND i.seat_id = ANY(ARRAY[:base, :base + 1, :base + 2, :base + 3]::int8[])
    RETURNING id, expires_at, total_cents),
seats AS (
    UPDATE seat_inventory SET status = 'held', hold_id = (SELECT id FROM hold),
           hold_expires_at = (SELECT expires_at FROM hold), version = version + 1
    WHERE show_id = :show AND seat_id = ANY(ARRAY[:base, :base + 1, :base + 2, :base + 3]::int8[])
    RETURNING seat_id)
SELECT expires_at, total_cents, (SELECT count(*) FROM seats) FROM hold;
END;
