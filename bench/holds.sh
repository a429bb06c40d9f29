#!/usr/bin/env bash
# Hold benchmark on the 80,000-seat demo show, in one run on this machine:
#   (a) pgbench running the origin's claim transaction (bench/holds-claim.sql), 16 clients,
#       20,000 claims of 4 adjacent seats: a complete sell-out;
#   (b) the same 20,000 claims as `POST /v1/shows/{id}/holds` against the release origin,
#       CONCURRENCY (default 32) HTTP clients, fresh idempotency keys, tokens signed up front.
# Inventory is reset between the two. Private PostgreSQL and Redis under .onsale/bench/.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib/stack.sh"
cd "$ONSALE_ROOT"
concurrency=${CONCURRENCY:-32}
show=0193a6f0-0000-7000-8000-000000000201
seats_per_claim=4
pgbench_clients=16

install_missing
origin_pid=
trap '[ -n "$origin_pid" ] && kill "$origin_pid" 2>/dev/null; stop_postgres; stop_redis' EXIT
start_postgres "$ONSALE_ROOT/.onsale/bench/pg" 55436 test
start_redis "$ONSALE_ROOT/.onsale/bench/redis" 56383 test
DATABASE_URL=$(create_database "$PG_ADMIN_URL" onsale_bench)
export DATABASE_URL REDIS_URL
ensure_dev_keys "$ONSALE_ROOT/.onsale/bench/keys"
cargo build --release --locked -p origin --bins --examples >&2
target/release/origin --config config/origin.toml seed >&2

sql() { psql "$DATABASE_URL" -X -q -t -A -v ON_ERROR_STOP=1 -c "$1"; }
reset_inventory() {
    sql "BEGIN;
         DELETE FROM hold_seats; DELETE FROM holds; DELETE FROM idempotency_keys;
         UPDATE seat_inventory SET status = 'available', hold_id = NULL, hold_expires_at = NULL
          WHERE show_id = '$show' AND status <> 'available';
         COMMIT;" >/dev/null
    sql "VACUUM ANALYZE seat_inventory, holds, hold_seats, idempotency_keys" >/dev/null
}
held() { sql "SELECT count(*) FROM seat_inventory WHERE show_id = '$show' AND status = 'held'"; }

seats=$(sql "SELECT count(*) FROM seat_inventory WHERE show_id = '$show'")
first=$(sql "SELECT min(seat_id) FROM seat_inventory WHERE show_id = '$show'")
last=$(sql "SELECT max(seat_id) FROM seat_inventory WHERE show_id = '$show'")
[ $((last - first + 1)) -eq "$seats" ] || die "seat ids of the show are not contiguous"
claims=$((seats / seats_per_claim))
echo "seats=$seats claims=$claims seats_per_claim=$seats_per_claim"

reset_inventory
pgbench_out=$(pgbench "$DATABASE_URL" -n -r -M prepared -c "$pgbench_clients" -j 2 -t $((claims / pgbench_clients)) \
    -f bench/holds-claim.sql -D show="$show" -D first="$first" -D clients="$pgbench_clients" -D k=0 \
    --log --log-prefix=.onsale/bench/pgbench 2>&1) || { echo "$pgbench_out" >&2; die "pgbench failed"; }
pgbench_tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$pgbench_out")
# Per-transaction latencies (microseconds, column 3) from pgbench's logs.
read -r pgbench_p50 pgbench_p99 < <(cat .onsale/bench/pgbench.* | awk '{print $3}' | sort -n \
    | awk '{a[NR]=$1} END {printf "%.2f %.2f\n", a[int(NR*0.5)]/1000, a[int(NR*0.99)]/1000}')
rm -f .onsale/bench/pgbench.*
pgbench_held=$(held)
# Per-statement latencies, to see where a claim's time goes.
sed -n '/statement latencies/,$p' <<<"$pgbench_out" | grep -v '^ *0.0[0-9][0-9] *0 *\\' | cut -c1-100 >&2
pgbench_seconds=$(awk -v c="$claims" -v t="$pgbench_tps" 'BEGIN {printf "%.3f", c / t}')
echo "pgbench_holds_per_s=$pgbench_tps pgbench_seconds=$pgbench_seconds p50_ms=$pgbench_p50 p99_ms=$pgbench_p99 seats_held=$pgbench_held"

reset_inventory
origin_listen=127.0.0.1:$(usable_port 58081 any)
ONSALE_ORIGIN_LISTEN=$origin_listen \
ONSALE_VERIFY_KEYS="$ONSALE_ROOT/.onsale/bench/keys/verify.pem" \
RUST_LOG=warn \
    target/release/origin --config config/origin.toml serve >.onsale/bench/origin.log 2>&1 &
origin_pid=$!
origin_url=http://$origin_listen
wait_http "$origin_url/readyz" origin
http_out=$(target/release/examples/hold_load "$origin_url" "$show" .onsale/bench/keys/signing.pem \
    "$first" "$claims" "$seats_per_claim" "$concurrency")
http_held=$(held)
echo "$http_out" | tr '\n' ' '; echo "seats_held=$http_held"

http_rate=$(sed -n 's/^http_holds_per_s=//p' <<<"$http_out")
http_seconds=$(sed -n 's/^http_seconds=//p' <<<"$http_out")
awk -v h="$http_rate" -v p="$pgbench_tps" -v hs="$http_seconds" -v ps="$pgbench_seconds" \
    'BEGIN {printf "ratio_http_over_pgbench=%.2f sellout_time_ratio=%.2f\n", h / p, hs / ps}'
