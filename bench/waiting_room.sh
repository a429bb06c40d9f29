#!/usr/bin/env bash
# Waiting-room benchmark, in one run on this machine:
#   (a) joins/s at the edge (POST /v1/waiting-room/sessions, wrk -t1 -c64, every join a new
#       fan: the join script in Redis, a signed queue token, a cookie) vs
#   (b) redis-benchmark running the same join script (EVALSHA, -c 50 -P 1);
#   (c) polls/s at the edge (GET /v1/waiting-room/sessions/current with 1,000 distinct queue
#       tokens, wrk -t1 -c64) vs
#   (d) redis-benchmark GET (-c 50 -P 1): a poll must not need Redis;
#   (e) Redis memory per queued fan after FANS (1,000,000) joins of one show, next to a
#       sorted set of as many members.
# wrk: ROUNDS (3) rounds of DURATION (10 s), medians. The edge runs one worker thread.
# Private Redis under .onsale/bench/.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib/stack.sh"
source "$(dirname "$0")/lib.sh"
cd "$ONSALE_ROOT"
rounds=${ROUNDS:-3}
duration=${DURATION:-10s}
fans=${FANS:-1000000}
work=$ONSALE_ROOT/.onsale/bench/waiting-room
show=bench-show
edge_pid=

install_missing wrk:wrk redis-benchmark:redis-tools
cleanup() {
    [ -n "$edge_pid" ] && kill "$edge_pid" 2>/dev/null || true
    stop_redis
}
trap cleanup EXIT
rm -rf "$work" && mkdir -p "$work"
# A fresh instance: a snapshot left by an earlier run would take seconds to load.
rm -rf "$ONSALE_ROOT/.onsale/bench/wr-redis"
start_redis "$ONSALE_ROOT/.onsale/bench/wr-redis" 56384 test
export REDIS_URL
redis_port=${REDIS_URL##*:}
rcli() { redis-cli -h 127.0.0.1 -p "$redis_port" "$@"; }
rcli flushall >/dev/null
ensure_dev_keys "$ONSALE_ROOT/.onsale/bench/keys"
cargo build --release --locked -p edge-proxy --bins >&2

edge_port=$(usable_port 58180 any)
edge_admin=$(usable_port $((edge_port + 1)) any)
# One worker; limits out of the way (every request comes from one address); the committed
# shows replaced by one whose queue and sale are open, admitting one fan a minute so the
# polling fans stay queued (a poll that admits is a claim in Redis and a signature).
sed -e "s/^threads = .*/threads = 1/" \
    -e "s/^per_ip = .*/per_ip = { per_minute = 600000000, burst = 10000000 }/" \
    -e "s/^per_ip_join = .*/per_ip_join = { per_minute = 600000000, burst = 10000000 }/" \
    -e "s/^waiting_room = .*/waiting_room = { per_minute = 600000000, burst = 10000000 }/" \
    -e "s/^key_prefix = .*/key_prefix = \"bench:\"/" \
    -e '/^\[waiting_room.shows\./,$d' \
    config/edge.toml >"$work/edge.toml"
cat >>"$work/edge.toml" <<TOML
[waiting_room.shows."$show"]
admit_per_minute = 1
max_active = 1
session_ttl_s = 900
queue_opens_at = "2026-01-01T00:00:00Z"
sale_opens_at = "2026-01-01T00:00:00Z"
TOML
ONSALE_EDGE_LISTEN=127.0.0.1:$edge_port ONSALE_EDGE_ADMIN_LISTEN=127.0.0.1:$edge_admin \
ONSALE_VERIFY_KEYS=.onsale/bench/keys/verify.pem ONSALE_SIGNING_KEY=.onsale/bench/keys/signing.pem \
RUST_LOG=warn target/release/edge-proxy --config "$work/edge.toml" >"$work/edge.log" 2>&1 &
edge_pid=$!
edge_url=http://127.0.0.1:$edge_port
join_body="{\"show_id\":\"$show\"}"
join() { curl -sS -X POST -H 'content-type: application/json' -d "$join_body" "$edge_url/v1/waiting-room/sessions"; }
for _ in $(seq 300); do
    join 2>/dev/null | grep -q '"status":"queued"' && break
    sleep 0.1
done
join | grep -q '"status":"queued"' || die "the edge's waiting room did not come up (see $work/edge.log)"

for _ in $(seq 1000); do join; echo; done \
    | sed -n 's/.*"queue_token":"\([^"]*\)".*/\1/p' >"$work/tokens"
[ "$(wc -l <"$work/tokens")" = 1000 ] || die "could not collect 1,000 queue tokens"

cat >"$work/join.lua" <<LUA
wrk.method = "POST"
wrk.body = '$join_body'
wrk.headers["Content-Type"] = "application/json"
LUA
bearer_script "$work/poll.lua" "$work/tokens"

# redis_rate NAME [redis-benchmark args...]: requests per second, ROUNDS runs, median.
redis_rate() {
    local name=$1; shift
    local results=()
    for _ in $(seq "$rounds"); do
        results+=("$(redis-benchmark -h 127.0.0.1 -p "$redis_port" -c 50 -P 1 -q "$@" \
            | tr '\r' '\n' | sed -n 's/.*: \([0-9.]*\) requests per second.*/\1/p' | tail -1)")
    done
    printf '%s\n' "${results[@]}" | median | awk -v n="$name" '{printf "%s rps=%s\n", n, $1}'
}

# The join script with a join's keys and arguments, on a show of its own.
sha=$(rcli script load "$(cat edge-proxy/src/waiting_room/lua/join.lua)")
now_ms=$(date +%s%3N)
grace_ms=60000
join_args() {
    local target=$1
    echo "EVALSHA $sha 2 bench:wr:{$target}:state bench:wr:{$target}:seen:$((now_ms / grace_ms)) $now_ms 0 $(printf '0%.0s' $(seq 64)) $((grace_ms * 3))"
}

{
    run edge_join "$edge_url/v1/waiting-room/sessions" -s "$work/join.lua"
    # shellcheck disable=SC2046
    redis_rate redis_join -n 300000 $(join_args redis-join)
    run edge_poll "$edge_url/v1/waiting-room/sessions/current" -s "$work/poll.lua"
    redis_rate redis_get -n 1000000 -t get
} | tee "$work/results"

# Memory: FANS joins of one show, the join script pipelined for speed.
before=$(rcli info memory | sed -n 's/^used_memory:\([0-9]*\).*/\1/p' | tr -d '\r')
# shellcheck disable=SC2046
redis-benchmark -h 127.0.0.1 -p "$redis_port" -c 50 -P 32 -q -n "$fans" $(join_args memory) >/dev/null
after=$(rcli info memory | sed -n 's/^used_memory:\([0-9]*\).*/\1/p' | tr -d '\r')
joined=$(rcli hget "bench:wr:{memory}:state" open | tr -d '\r')
zbefore=$after
redis-benchmark -h 127.0.0.1 -p "$redis_port" -c 50 -P 32 -q -n "$fans" -r 1000000000 \
    zadd bench:zset __rand_int__ member:__rand_int__ >/dev/null
zafter=$(rcli info memory | sed -n 's/^used_memory:\([0-9]*\).*/\1/p' | tr -d '\r')
members=$(rcli zcard bench:zset | tr -d '\r')
awk -v b="$before" -v a="$after" -v n="$joined" -v zb="$zbefore" -v za="$zafter" -v m="$members" 'BEGIN {
    printf "memory joined=%d bytes=%d bytes_per_fan=%.2f zset_members=%d zset_bytes_per_member=%.1f\n",
        n, a - b, (a - b) / n, m, (za - zb) / m }' | tee -a "$work/results"

r=$work/results
awk -v a="$(rps edge_join "$r")" -v b="$(rps redis_join "$r")" -v c="$(rps edge_poll "$r")" \
    -v d="$(rps redis_get "$r")" 'BEGIN {
    printf "ratio_join=%.2f ratio_poll=%.2f\n", a / b, c / d }'
