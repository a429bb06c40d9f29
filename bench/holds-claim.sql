-- The origin's claim transaction (origin/src/holds.rs: lock_claimable, insert_hold), for
-- pgbench: client c's k-th transaction claims the 4 seats starting at
-- :first + 4 * (c + :clients * k). Run with -D first=... -D clients=... -D k=0.
\set base :first + 4 * (:client_id + :clients * :k)
\set k :k + 1
BEGIN;
SELECT seat_id, status, hold_id, coalesce(hold_expires_at <= now(), false)
  FROM seat_inventory WHERE show_id = :show AND seat_id = ANY(ARRAY[:base, :base + 1, :base + 2, :base + 3]::int8[])
  ORDER BY seat_id FOR UPDATE SKIP LOCKED;
SELECT coalesce(sum(p.price_cents), 0)::int8 FROM seat_inventory i
  JOIN show_price_tiers p ON p.show_id = i.show_id AND p.tier = i.price_tier
  WHERE i.show_id = :show AND i.seat_id = ANY(ARRAY[:base, :base + 1, :base + 2, :base + 3]::int8[]);
INSERT INTO holds (id, show_id, fan_id, status, seat_count, total_cents, currency, expires_at)
  VALUES (gen_random_uuid(), :show, 'pgbench-' || :client_id, 'active', 4, 0, 'GBP', clock_timestamp() + interval '8 minutes')
  RETURNING id \gset hold_
INSERT INTO hold_seats (hold_id, show_id, seat_id)
  SELECT :hold_id, :show, unnest(ARRAY[:base, :base + 1, :base + 2, :base + 3]::int8[]);
UPDATE seat_inventory SET status = 'held', hold_id = :hold_id, hold_expires_at = clock_timestamp() + interval '8 minutes', version = version + 1
  WHERE show_id = :show AND seat_id = ANY(ARRAY[:base, :base + 1, :base + 2, :base + 3]::int8[]) AND status = 'available';
END;
