#!/usr/bin/env bash
# The hottest show's Redis load at its opening, on a Redis Cluster, in one run on this
# machine. A private Redis Cluster of three primaries, PostgreSQL, a release origin and a
# release edge (one worker thread, limits out of the way, sessions believed for 60 s)
# against the cluster, with one show whose queue and sale are open:
#   (a) the opening: SESSIONS (20,000) signed-in fans join the show as fast as the edge takes
#       them (wrk -t1 -c64, DURATION, after a warm-up that joins each once to another show so
#       the edge holds every session), while the edge's waiting-room step runs every 200 ms.
#       Every node's commands (INFO: total_commands_processed, which counts the commands a
#       script runs, and cmdstat_evalsha, the script calls) before and after: the show's
#       node's rates and the other nodes', next to the edge's joins/s;
#   (b) the most one show's slot can take: redis-benchmark running the join script on the
#       show's node alone (EVALSHA with a join's keys and arguments, -c 50 -P 1, a new
#       account each call).
# wrk: ROUNDS (3) rounds of DURATION (10 s), medians. Private PostgreSQL and Redis Cluster
# under .onsale/bench/.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib/stack.sh"
source "$(dirname "$0")/lib.sh"
cd "$ONSALE_ROOT"
rounds=${ROUNDS:-3}
duration=${DURATION:-10s}
sessions=${SESSIONS:-20000}
show=bench-opening
work=$ONSALE_ROOT/.onsale/bench/redis-cluster

install_missing wrk:wrk redis-benchmark:redis-tools redis-server:redis-server
cleanup() {
    stop_origin_and_edge
    stop_redis_cluster
    stop_postgres
}
trap cleanup EXIT
rm -rf "$work" && mkdir -p "$work"
start_redis_cluster "$ONSALE_ROOT/.onsale/bench/redis-cluster-nodes" 46491
start_postgres "$ONSALE_ROOT/.onsale/bench/pg" 55436 test
nodes=$(tr ',' '\n' <<<"$REDIS_CLUSTER_URL" | sed 's|redis://||')
first=$(head -n1 <<<"$nodes")
psql "$PG_ADMIN_URL" -X -q -c "DROP DATABASE IF EXISTS onsale_bench_cluster WITH (FORCE)" >/dev/null
DATABASE_URL=$(create_database "$PG_ADMIN_URL" onsale_bench_cluster)
export DATABASE_URL REDIS_URL=$REDIS_CLUSTER_URL REDIS_CLUSTER=true
ensure_dev_keys "$ONSALE_ROOT/.onsale/bench/keys"
cargo build --release --locked -p origin -p edge-proxy --bins >&2
target/release/origin --config config/origin.toml migrate >&2
insert_fans "$sessions" "$work/sessions"

start_origin_and_edge 600 2000 bench-warm "$show"
for _ in $(seq 300); do
    join_show "$show" "$(head -n1 "$work/sessions")" 2>/dev/null | grep -q '"queue_token"' && break
    sleep 0.1
done
join_script "$work/warm.lua" "$work/sessions" bench-warm
join_script "$work/join.lua" "$work/sessions" "$show"
wrk -t1 -c64 -d10s -s "$work/warm.lua" "$edge_url/v1/waiting-room/sessions" >/dev/null

# The show's node: the primary serving its hash tag's slot (CLUSTER NODES: id, address,
# flags, ..., slot ranges from the ninth field).
slot=$(redis-cli -h "${first%:*}" -p "${first#*:}" cluster keyslot "bench:wr:{$show}:state")
owner=$(redis-cli -h "${first%:*}" -p "${first#*:}" cluster nodes | awk -v s="$slot" '
    $3 ~ /master/ { for (i = 9; i <= NF; i++) { n = split($i, r, "-"); if (n == 1) r[2] = r[1]
        if (s >= r[1] + 0 && s <= r[2] + 0) { split($2, a, "@"); print a[1] } } }')
[ -n "$owner" ] || die "no primary serves slot $slot"
# commands: per node, its address, the commands it has run (those inside scripts too) and
# its script calls (EVALSHA).
commands() {
    local node
    for node in $nodes; do
        echo "$node $(redis-cli -h "${node%:*}" -p "${node#*:}" info all | tr -d '\r' | awk -F'[:=,]' '
            $1 == "total_commands_processed" { total = $2 }
            $1 == "cmdstat_evalsha" { scripts = $3 }
            END { print total, scripts + 0 }')"
    done
}

for round in $(seq "$rounds"); do
    commands >"$work/before"
    start_ns=$(date +%s%N)
    out=$(wrk -t1 -c64 -d"$duration" -s "$work/join.lua" "$edge_url/v1/waiting-room/sessions")
    elapsed_ns=$(($(date +%s%N) - start_ns))
    commands >"$work/after"
    non2xx=$(sed -n 's/.*Non-2xx or 3xx responses: \([0-9]*\).*/\1/p' <<<"$out")
    [ -z "$non2xx" ] || die "joins: $non2xx responses were not 2xx/3xx"
    joins=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' <<<"$out")
    join -j1 "$work/before" "$work/after" | awk -v o="$owner" -v ns="$elapsed_ns" -v j="$joins" '
        { s = ns / 1e9
          if ($1 == o) { show = ($4 - $2) / s; scripts = ($5 - $3) / s } else others += ($4 - $2) / s }
        END { printf "%.0f %.0f %.0f %.0f\n", j, show, scripts, others }'
done | median | awk -v o="$owner" '{
    printf "opening joins_per_s=%s show_node=%s show_node_commands_per_s=%s show_node_script_calls_per_s=%s other_nodes_commands_per_s=%s commands_per_join=%.2f\n",
        $1, o, $2, $3, $4, $2 / $1 }' | tee "$work/results"

stop_origin_and_edge
stop_postgres
sha=$(redis-cli -h "${owner%:*}" -p "${owner#*:}" script load "$(cat edge-proxy/src/waiting_room/lua/join.lua)")
for _ in $(seq "$rounds"); do
    # shellcheck disable=SC2046
    redis-benchmark -h "${owner%:*}" -p "${owner#*:}" -c 50 -P 1 -q -n 300000 -r 16384 \
        $(join_args "$sha" "$show") "" | tr '\r' '\n' \
        | sed -n 's/.*: \([0-9.]*\) requests per second.*/\1/p' | tail -1
done | median | awk '{ printf "show_node_join_script rps=%s\n", $1 }' | tee -a "$work/results"
