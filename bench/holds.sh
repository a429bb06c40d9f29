#!/usr/bin/env bash
# Hold benchmark on the 80,000-seat demo show, in one run on this machine, one PostgreSQL
# instance (PG_PROFILE: `dev`, durable commits as `scripts/up` runs it, the default; or
# `test`, commits not flushed, as the test suite runs it):
#   (r) the reference: the least work a correct 4-seat hold can do, one hold row and one
#       conditional UPDATE of 4 seats (holds-minimal.sql on holds-minimal-schema.sql, from
#       REFERENCE_DIR, run unchanged) in a scratch database of the same instance,
#       CONCURRENCY pgbench clients, 20,000 claims: a sell-out;
#   (a) pgbench running the origin's claim (bench/holds-claim.sql: one call of claim_hold,
#       the idempotency record included), CONCURRENCY clients, 20,000 claims of 4 adjacent
#       seats: a complete sell-out, the database's share of (b);
#   (b) the same 20,000 claims as `POST /v1/shows/{id}/holds` against the release origin,
#       CONCURRENCY (default 32) HTTP clients, fresh idempotency keys, tokens signed up front.
#   (d) every hold of (b) expired at once: the sweeper ends them while the same claims run
#       again; the longest claim shows whether the sweep stalls claims.
#   (e) the whole checkout: the same 20,000 claims, each then ordered and paid (the sandbox
#       provider, its webhooks delivered to the origin as a real provider's would be), by
#       CONCURRENCY HTTP clients; every seat ends sold once, with one ticket.
# Inventory is reset between (a) and (b); every run must end with every seat held exactly
# once. Private PostgreSQL and Redis under .onsale/bench/. The last lines compare (b) to (r).
set -euo pipefail
source "$(dirname "$0")/../scripts/lib/stack.sh"
cd "$ONSALE_ROOT"
concurrency=${CONCURRENCY:-32}
show=0193a6f0-0000-7000-8000-000000000201
seats_per_claim=4
profile=${PG_PROFILE:-dev}
reference_dir=${REFERENCE_DIR:-$ONSALE_ROOT/../shared/bench}
case $profile in dev | test) ;; *) die "PG_PROFILE must be dev or test" ;; esac
[ -f "$reference_dir/holds-minimal.sql" ] && [ -f "$reference_dir/holds-minimal-schema.sql" ] \
    || die "no holds-minimal.sql and holds-minimal-schema.sql in $reference_dir (set REFERENCE_DIR)"

install_missing
origin_pid=
trap '[ -n "$origin_pid" ] && kill "$origin_pid" 2>/dev/null; stop_postgres; stop_redis' EXIT
# A data directory per profile: a running server keeps the settings it started with.
start_postgres "$ONSALE_ROOT/.onsale/bench/pg-$profile" 55436 "$profile"
start_redis "$ONSALE_ROOT/.onsale/bench/redis" 56383 test
# A fresh database each run: the seed, the migrations and the statistics start alike.
psql "$PG_ADMIN_URL" -X -q -c "DROP DATABASE IF EXISTS onsale_bench WITH (FORCE)" >/dev/null
DATABASE_URL=$(create_database "$PG_ADMIN_URL" onsale_bench)
export DATABASE_URL REDIS_URL
ensure_dev_keys "$ONSALE_ROOT/.onsale/bench/keys"
cargo build --release --locked -p origin --bins --examples >&2
target/release/origin --config config/origin.toml seed >&2

sql() { psql "$DATABASE_URL" -X -q -t -A -v ON_ERROR_STOP=1 -c "$1"; }
reset_inventory() {
    sql "BEGIN;
         DELETE FROM holds; DELETE FROM fan_seats; DELETE FROM idempotency_keys;
         UPDATE seat_inventory SET status = 'available', hold_id = NULL, hold_expires_at = NULL
          WHERE show_id = '$show' AND status <> 'available';
         COMMIT;" >/dev/null
    sql "VACUUM ANALYZE seat_inventory, holds, fan_seats, idempotency_keys" >/dev/null
    sql "SELECT pg_stat_reset()" >/dev/null
}
held() { sql "SELECT count(*) FROM seat_inventory WHERE show_id = '$show' AND status = 'held'"; }

seats=$(sql "SELECT count(*) FROM seat_inventory WHERE show_id = '$show'")
first=$(sql "SELECT min(seat_id) FROM seat_inventory WHERE show_id = '$show'")
last=$(sql "SELECT max(seat_id) FROM seat_inventory WHERE show_id = '$show'")
[ $((last - first + 1)) -eq "$seats" ] || die "seat ids of the show are not contiguous"
claims=$((seats / seats_per_claim))
echo "seats=$seats claims=$claims seats_per_claim=$seats_per_claim profile=$profile concurrency=$concurrency"
[ $((claims % concurrency)) -eq 0 ] || die "CONCURRENCY must divide the $claims claims"

# latencies PREFIX: "p50_ms p99_ms" of the transactions in pgbench's logs under PREFIX
# (microseconds, column 3), which it removes.
latencies() {
    cat "$1".* | awk '{print $3}' | sort -n \
        | awk '{a[NR]=$1} END {printf "%.2f %.2f\n", a[int(NR*0.5)]/1000, a[int(NR*0.99)]/1000}'
    rm -f "$1".*
}

# wal_lsn: the instance's current WAL position; wal_per_claim FROM TO: bytes per claim.
wal_lsn() { sql "SELECT pg_current_wal_lsn()"; }
wal_per_claim() { sql "SELECT round(pg_wal_lsn_diff('$2', '$1') / $claims)"; }
# hot_updates URL TABLE_PATTERN: "updates hot_updates" of matching tables since the last reset.
hot_updates() {
    psql "$1" -X -q -t -A -F ' ' -c "SELECT coalesce(sum(n_tup_upd), 0), coalesce(sum(n_tup_hot_upd), 0)
        FROM pg_stat_user_tables WHERE relname LIKE '$2'"
}

# (r) The reference, in a scratch database of the same instance.
psql "$PG_ADMIN_URL" -X -q -c "DROP DATABASE IF EXISTS onsale_bench_minimal WITH (FORCE)" >/dev/null
minimal_url=$(create_database "$PG_ADMIN_URL" onsale_bench_minimal)
psql "$minimal_url" -X -q -v ON_ERROR_STOP=1 -f "$reference_dir/holds-minimal-schema.sql" >/dev/null
wal_before=$(wal_lsn)
minimal_out=$(pgbench "$minimal_url" -n -r -M prepared -c "$concurrency" -j 2 -t $((claims / concurrency)) \
    -f "$reference_dir/holds-minimal.sql" -D clients="$concurrency" -D k=0 \
    --log --log-prefix=.onsale/bench/minimal 2>&1) || { echo "$minimal_out" >&2; die "pgbench (reference) failed"; }
wal_after=$(wal_lsn)
minimal_tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$minimal_out")
sleep 1 # the statistics collector reports at most once a second
read -r minimal_updates minimal_hot < <(hot_updates "$minimal_url" ref_seats)
read -r minimal_p50 minimal_p99 < <(latencies .onsale/bench/minimal)
read -r minimal_held minimal_holds < <(psql "$minimal_url" -X -q -t -A -F ' ' \
    -c "SELECT count(*), count(DISTINCT hold_id) FROM ref_seats WHERE status = 1")
[ "$minimal_held" -eq "$seats" ] && [ "$minimal_holds" -eq "$claims" ] \
    || die "reference: $minimal_held seats in $minimal_holds holds, not $seats in $claims"
minimal_seconds=$(awk -v c="$claims" -v t="$minimal_tps" 'BEGIN {printf "%.3f", c / t}')
echo "minimal_holds_per_s=$minimal_tps minimal_seconds=$minimal_seconds p50_ms=$minimal_p50 p99_ms=$minimal_p99 seats_held=$minimal_held wal_bytes_per_claim=$(wal_per_claim "$wal_before" "$wal_after") hot_updates=$minimal_hot/$minimal_updates"
psql "$PG_ADMIN_URL" -X -q -c "DROP DATABASE onsale_bench_minimal WITH (FORCE)" >/dev/null

reset_inventory
wal_before=$(wal_lsn)
pgbench_out=$(pgbench "$DATABASE_URL" -n -r -M prepared -c "$concurrency" -j 2 -t $((claims / concurrency)) \
    -f bench/holds-claim.sql -D show="$show" -D first="$first" -D clients="$concurrency" -D k=0 \
    --log --log-prefix=.onsale/bench/pgbench 2>&1) || { echo "$pgbench_out" >&2; die "pgbench failed"; }
wal_after=$(wal_lsn)
pgbench_tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$pgbench_out")
sleep 1
read -r pgbench_updates pgbench_hot < <(hot_updates "$DATABASE_URL" 'seat_inventory%')
pgbench_wal=$(wal_per_claim "$wal_before" "$wal_after")
read -r pgbench_p50 pgbench_p99 < <(latencies .onsale/bench/pgbench)
pgbench_held=$(held)
[ "$pgbench_held" -eq "$seats" ] || die "pgbench: $pgbench_held seats held, not $seats"
pgbench_seconds=$(awk -v c="$claims" -v t="$pgbench_tps" 'BEGIN {printf "%.3f", c / t}')
echo "pgbench_holds_per_s=$pgbench_tps pgbench_seconds=$pgbench_seconds p50_ms=$pgbench_p50 p99_ms=$pgbench_p99 seats_held=$pgbench_held wal_bytes_per_claim=$pgbench_wal hot_updates=$pgbench_hot/$pgbench_updates"

reset_inventory
# start_origin CONFIG: the release origin on a free port; sets origin_pid and origin_url.
start_origin() {
    local listen
    listen=127.0.0.1:$(usable_port 58081 any)
    ONSALE_ORIGIN_LISTEN=$listen \
    ONSALE_VERIFY_KEYS="$ONSALE_ROOT/.onsale/bench/keys/verify.pem" \
    ONSALE_TICKET_SIGNING_KEY="$ONSALE_ROOT/.onsale/bench/keys/signing.pem" \
    RUST_LOG=warn \
        target/release/origin --config "$1" serve >>.onsale/bench/origin.log 2>&1 &
    origin_pid=$!
    origin_url=http://$listen
    wait_http "$origin_url/readyz" origin
}
: >.onsale/bench/origin.log
start_origin config/origin.toml
wal_before=$(wal_lsn)
http_out=$(target/release/examples/hold_load "$origin_url" "$show" .onsale/bench/keys/signing.pem \
    "$first" "$claims" "$seats_per_claim" "$concurrency")
wal_after=$(wal_lsn)
http_held=$(held)
sleep 1
read -r http_updates http_hot < <(hot_updates "$DATABASE_URL" 'seat_inventory%')
echo "$http_out" | tr '\n' ' '
echo "seats_held=$http_held wal_bytes_per_claim=$(wal_per_claim "$wal_before" "$wal_after") hot_updates=$http_hot/$http_updates"
# Every seat held exactly once: each in one live hold, the holds covering the show.
read -r in_holds live_holds < <(sql "SELECT coalesce(sum(seat_count), 0), count(*) FROM holds
    WHERE show_id = '$show' AND status = 'active'" | tr '|' ' ')
[ "$http_held" -eq "$seats" ] && [ "$in_holds" -eq "$seats" ] && [ "$live_holds" -eq "$claims" ] \
    || die "HTTP: $http_held seats held, $in_holds in $live_holds live holds; not $seats in $claims"

# (d) Expiry at scale: every hold of (b) expires at once, and the sweeper (batches of
# holds.sweep_batch, back to back) ends them while the same fans claim the same seats again
# under new keys. A claim never waits on the sweep: it takes an expired seat over (201) or
# finds it locked by the sweep (409) at once. Then every seat is held exactly once, by a live
# hold that lists it, or free.
sql "BEGIN;
     UPDATE holds SET expires_at = now() - interval '1 second' WHERE show_id = '$show' AND status = 'active';
     UPDATE seat_inventory SET hold_expires_at = now() - interval '1 second' WHERE show_id = '$show' AND status = 'held';
     COMMIT;" >/dev/null
sweep_started=$(date +%s%N)
sweep_out=$(target/release/examples/hold_load "$origin_url" "$show" .onsale/bench/keys/signing.pem \
    "$first" "$claims" "$seats_per_claim" "$concurrency")
overdue() { sql "SELECT count(*) FROM holds WHERE status = 'active' AND expires_at <= now()"; }
for _ in $(seq 600); do [ "$(overdue)" -eq 0 ] && break; sleep 0.1; done
[ "$(overdue)" -eq 0 ] || die "the sweeper left $(overdue) expired holds after a minute"
sweep_seconds=$(awk -v a="$sweep_started" -v b="$(date +%s%N)" 'BEGIN {printf "%.1f", (b - a) / 1e9}')
read -r held_now in_live stray < <(sql "SELECT
      (SELECT count(*) FROM seat_inventory WHERE show_id = '$show' AND status = 'held'),
      (SELECT coalesce(sum(seat_count), 0) FROM holds WHERE show_id = '$show' AND status = 'active'),
      (SELECT count(*) FROM seat_inventory i WHERE i.show_id = '$show' AND i.status = 'held'
         AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.id = i.hold_id AND h.status = 'active'
                         AND h.expires_at > now() AND i.seat_id = ANY(h.seat_ids)))" | tr '|' ' ')
[ "$held_now" -eq "$in_live" ] && [ "$stray" -eq 0 ] \
    || die "after the sweep: $held_now seats held, $in_live in live holds, $stray held by no live hold"
echo "sweep_claims: $(echo "$sweep_out" | tr '\n' ' ')sweep_seconds=$sweep_seconds seats_held=$held_now"
sweep_max=$(sed -n 's/^http_holds_max_ms=//p' <<<"$sweep_out")

# (e) Checkout. Webhooks go straight to the origin (no edge runs here).
kill "$origin_pid"
wait "$origin_pid" 2>/dev/null || true
reset_inventory
sed '/^webhook_url = /d' config/origin.toml >.onsale/bench/origin-checkout.toml
start_origin .onsale/bench/origin-checkout.toml
wal_before=$(wal_lsn)
checkout_out=$(target/release/examples/hold_load "$origin_url" "$show" .onsale/bench/keys/signing.pem \
    "$first" "$claims" "$seats_per_claim" "$concurrency" checkout)
wal_after=$(wal_lsn)
read -r sold tickets < <(sql "SELECT
      (SELECT count(*) FROM seat_inventory WHERE show_id = '$show' AND status = 'sold'),
      (SELECT count(*) FROM tickets WHERE show_id = '$show' AND status = 'valid')" | tr '|' ' ')
[ "$sold" -eq "$seats" ] && [ "$tickets" -eq "$seats" ] \
    || die "checkout: $sold seats sold and $tickets tickets, not $seats"
echo "checkout: $(echo "$checkout_out" | tr '\n' ' ')seats_sold=$sold tickets=$tickets wal_bytes_per_checkout=$(wal_per_claim "$wal_before" "$wal_after")"

http_rate=$(sed -n 's/^http_holds_per_s=//p' <<<"$http_out")
http_seconds=$(sed -n 's/^http_seconds=//p' <<<"$http_out")
awk -v h="$http_rate" -v p="$pgbench_tps" -v hs="$http_seconds" -v ps="$pgbench_seconds" \
    'BEGIN {printf "ratio_http_over_pgbench=%.2f sellout_time_ratio=%.2f\n", h / p, hs / ps}'
echo "minimal_holds_per_s=$minimal_tps"
echo "http_holds_per_s=$http_rate"
awk -v h="$http_rate" -v m="$minimal_tps" 'BEGIN {printf "ratio_http_over_minimal=%.2f\n", h / m}'
echo "sellout_seconds_http=$http_seconds sellout_seconds_minimal=$minimal_seconds"
echo "claims_during_sweep_max_ms=$sweep_max"
grep -E '^http_(orders|payments)_(per_s|p99_ms)=' <<<"$checkout_out"
