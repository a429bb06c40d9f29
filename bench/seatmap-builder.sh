#!/usr/bin/env bash
# Seat-map builder benchmark on the 80,000-seat demo show, in one run on this machine:
#   (a) the full availability build (seat-state query, document, gzip, brotli, publish to
#       Redis), ROUNDS times, each after one seat changed;
#   (b) psql COPY of the same rows and columns the build reads, ROUNDS times in one session;
# and the availability document's sizes with half the seats sold at random and with
# realistic blocks sold. Private PostgreSQL and Redis under .onsale/bench/.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib/stack.sh"
cd "$ONSALE_ROOT"
rounds=${ROUNDS:-30}
show=0193a6f0-0000-7000-8000-000000000201

install_missing
trap 'stop_postgres; stop_redis' EXIT
start_postgres "$ONSALE_ROOT/.onsale/bench/pg" 55436 test
start_redis "$ONSALE_ROOT/.onsale/bench/redis" 56383 test
DATABASE_URL=$(create_database "$PG_ADMIN_URL" onsale_bench)
export DATABASE_URL REDIS_URL
cargo build --release --locked -p origin -p seatmap-builder --bins --examples >&2
target/release/origin --config config/origin.toml seed >&2

result=$(target/release/examples/bench config/seatmap-builder.toml "$show" "$rounds")
echo "$result"

copy_sql="COPY (SELECT status, hold_expires_at FROM seat_inventory WHERE show_id = '$show' ORDER BY layout_idx) TO STDOUT;"
copy_ms=$( { echo '\timing on'; echo '\o /dev/null'; for _ in $(seq "$rounds"); do echo "$copy_sql"; done; } \
    | psql "$DATABASE_URL" -X -q | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "copy_ms_p50=$copy_ms"
build_ms=$(sed -n 's/^build_ms_p50=//p' <<<"$result")
awk -v b="$build_ms" -v c="$copy_ms" 'BEGIN { printf "ratio_build_over_copy=%.2f\n", b / c }'
