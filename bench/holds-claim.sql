-- The origin's claim (origin/src/holds/claim.rs), for pgbench: one call of claim_hold
-- (origin/migrations/0015_best_available.sql), the spent-admission check
-- and the idempotency record included, in its own transaction as the origin sends it.
-- Client c's k-th call claims the 4 seats starting at :first + 4 * (c + :clients * k) as a
-- fan, with an admission and under a key of its own, for 480 s, at most 8 seats per fan.
-- Run with -D show=... -D first=... -D clients=... -D k=0.
\set base :first + 4 * (:client_id + :clients * :k)
\set k :k + 1
SELECT outcome FROM claim_hold(gen_random_uuid(), :show, 'pgbench-' || CAST(:base AS text),
    'pgbench-' || CAST(:base AS text), ARRAY[:base, :base + 1, :base + 2, :base + 3]::int8[],
    480, 8, 'pgbench-' || CAST(:base AS text), 'pgbench', '\x00'::bytea, 60);
