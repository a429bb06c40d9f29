#!/usr/bin/env bash
# Waiting-room benchmark, in one run on this machine:
#   (a) joins/s at the edge (POST /v1/waiting-room/sessions, wrk -t1 -c64) by signed-in fans:
#       SESSIONS (20,000) accounts, each with a session inserted in the origin's database,
#       one session per request (bearer, round-robin). The edge has seen every session within
#       accounts.session_cache_s (a warm-up joins each once to another show), so a join is
#       the edge's own work: the session from its cache, the join script in Redis, an HS256
#       queue token, a cookie. The first pass over the sessions takes new places, later
#       passes get the same places back. vs
#   (b) redis-benchmark running the same join script (EVALSHA, -c 50 -P 1), every call a new
#       account (a random hash of the 16,384 and a random id): a new place each;
#   (c) polls/s at the edge (GET /v1/waiting-room/sessions/current with 1,000 distinct queue
#       tokens, wrk -t1 -c64) vs
#   (d) redis-benchmark GET (-c 50 -P 1): a poll must not need Redis; and, for the client's
#       own ceiling, nginx answering the same wrk polls with a body as long as the edge's;
#   (e) Redis memory per queued fan after FANS (1,000,000) joins of one show by distinct
#       accounts (the join script through redis-cli --pipe, accounts spread over the 16,384
#       hashes as the edge spreads them), next to a sorted set of as many members;
#   (f) for reference, joins/s of COLD (100,000) sessions the edge has not seen: each join
#       first asks the origin (GET /v1/me, one PostgreSQL lookup), one round, run first;
#   (g) recovery: the FANS joins of (e) kept as scripts/up keeps queue state (an append-only
#       file, rewritten from memory when turned on), then Redis shut down and started again:
#       the file's size and the seconds until Redis answers with every place.
# wrk: ROUNDS (3) rounds of DURATION (10 s), medians. The edge runs one worker thread, the
# origin (release) on the same machine until (a) is done; it and PostgreSQL are stopped
# before (b)-(d), which need neither. Private PostgreSQL and Redis under .onsale/bench/.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib/stack.sh"
source "$(dirname "$0")/lib.sh"
cd "$ONSALE_ROOT"
cpu_model
rounds=${ROUNDS:-3}
duration=${DURATION:-10s}
fans=${FANS:-1000000}
sessions=${SESSIONS:-20000}
cold=${COLD:-100000}
work=$ONSALE_ROOT/.onsale/bench/waiting-room

install_missing wrk:wrk redis-benchmark:redis-tools nginx:nginx-light
nginx_pid=
cleanup() {
    [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null || true
    stop_origin_and_edge
    stop_redis
    stop_postgres
}
trap cleanup EXIT
rm -rf "$work" && mkdir -p "$work"
# A fresh instance: a snapshot left by an earlier run would take seconds to load.
rm -rf "$ONSALE_ROOT/.onsale/bench/wr-redis"
start_redis "$ONSALE_ROOT/.onsale/bench/wr-redis" 56384 test
start_postgres "$ONSALE_ROOT/.onsale/bench/pg" 55436 test
export REDIS_URL
redis_port=${REDIS_URL##*:}
rcli() { redis-cli -h 127.0.0.1 -p "$redis_port" "$@"; }
rcli flushall >/dev/null
psql "$PG_ADMIN_URL" -X -q -c "DROP DATABASE IF EXISTS onsale_bench_wr WITH (FORCE)" >/dev/null
DATABASE_URL=$(create_database "$PG_ADMIN_URL" onsale_bench_wr)
export DATABASE_URL
ensure_dev_keys "$ONSALE_ROOT/.onsale/bench/keys"
cargo build --release --locked -p origin -p edge-proxy --bins >&2
target/release/origin --config config/origin.toml migrate >&2

# The first SESSIONS are the warm ones, the next COLD the cold ones.
insert_fans "$((sessions + cold))" "$work/all-sessions"
head -n "$sessions" "$work/all-sessions" >"$work/sessions"
tail -n "$cold" "$work/all-sessions" >"$work/cold-sessions"

# Bench shows admitting one fan a minute, so the polling fans stay queued (a poll that
# admits is a claim in Redis and a signature).
start_origin_and_edge 1 1 bench-warm bench-join bench-cold bench-poll
for _ in $(seq 300); do
    join_show bench-poll "$(head -n1 "$work/sessions")" 2>/dev/null | grep -q '"status":"queued"' && break
    sleep 0.1
done
join_show bench-poll "$(head -n1 "$work/sessions")" | grep -q '"status":"queued"' \
    || die "the edge's waiting room did not come up (see $work/edge.log and $work/origin.log)"
# Origin lookups of sessions so far, from the edge's metrics.
lookups() {
    curl -sS "http://127.0.0.1:$edge_admin/metrics" \
        | sed -n 's/^onsale_edge_session_lookups_total{outcome="account"} \([0-9]*\).*/\1/p'
}

join_script "$work/warm.lua" "$work/sessions" bench-warm
join_script "$work/join.lua" "$work/sessions" bench-join
join_script "$work/cold.lua" "$work/cold-sessions" bench-cold

# The polling fans' queue tokens, taken just before the polls: a fan that stops polling for
# longer than the show's no-show grace misses its turn, and its polls are refused.
poll_tokens() {
    head -n 1000 "$work/sessions" | while read -r session; do join_show bench-poll "$session"; echo; done \
        | sed -n 's/.*"queue_token":"\([^"]*\)".*/\1/p' >"$work/tokens"
    [ "$(wc -l <"$work/tokens")" = 1000 ] || die "could not collect 1,000 queue tokens"
}

# nginx_polls: nginx (one worker) on nginx_port, answering any GET with a body as long as a
# poll's answer: what the same wrk client reaches against a server that does next to nothing
# per request.
nginx_polls() {
    local length trivial
    # A join's answer is a poll's: where the fan stands, with its queue token.
    length=$(join_show bench-poll "$(head -n1 "$work/sessions")" | wc -c)
    nginx_port=$(usable_port 28380 any)
    trivial=$(usable_port $((nginx_port + 1)) any)
    mkdir -p "$work/nginx"
    nginx_conf "$work/nginx" "$trivial" "$(usable_port $((trivial + 1)) any)" "    server {
        listen 127.0.0.1:$nginx_port;
        location / { add_header Cache-Control no-store; return 200 '$(printf "%${length}s" "" | tr ' ' x)'; }
    }"
    nginx -c "$work/nginx/nginx.conf" -g 'daemon off;' &
    nginx_pid=$!
    wait_http "http://127.0.0.1:$nginx_port/" nginx
}

# Warm-up: every session joins another show once, so the edge has asked the origin about
# it (each answer is believed for session_cache_s, 60 s here: the timed rounds follow at once).
warm_up() {
    local target=$(($(lookups) + sessions - 1000))
    for _ in $(seq 30); do
        [ "$(lookups)" -ge "$target" ] && return 0
        wrk -t1 -c64 -d2s -s "$work/warm.lua" "$edge_url/v1/waiting-room/sessions" >/dev/null
    done
    die "the warm-up did not reach every session"
}

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

# The join script with a join's keys and arguments (as store::join passes them), on a show
# of its own; every call a new account: a random one of the 16,384 hashes, a random 16-byte id.
sha=$(rcli script load "$(cat edge-proxy/src/waiting_room/lua/join.lua)")

nginx_polls
{
    before_cold=$(lookups)
    rounds=1 run edge_join_cold "$edge_url/v1/waiting-room/sessions" -s "$work/cold.lua"
    echo "edge_join_cold_origin_lookups=$(($(lookups) - before_cold))"
    warm_up
    before_join=$(lookups)
    run edge_join "$edge_url/v1/waiting-room/sessions" -s "$work/join.lua"
    echo "edge_join_origin_lookups=$(($(lookups) - before_join))"
    poll_tokens
    bearer_script "$work/poll.lua" "$work/tokens"
    # Nothing asks the origin from here on: it and PostgreSQL stop, so the references and
    # the polls have the machine to themselves, as the edge and Redis alone.
    kill "$origin_pid"
    stop_postgres
    run edge_poll "$edge_url/v1/waiting-room/sessions/current" -s "$work/poll.lua"
    redis_rate redis_get -n 1000000 -t get
    run nginx_poll "http://127.0.0.1:$nginx_port/v1/waiting-room/sessions/current" -s "$work/poll.lua"
    # shellcheck disable=SC2046
    redis_rate redis_join -n 300000 -r 16384 $(join_args "$sha" redis-join) ""
} | tee "$work/results"

# Memory: FANS joins of one show by distinct accounts, as the edge makes them (account i in
# hash i mod 16,384, a 16-byte id), written as RESP and pipelined.
before=$(rcli info memory | sed -n 's/^used_memory:\([0-9]*\).*/\1/p' | tr -d '\r')
awk -v n="$fans" -v sha="$sha" -v now="$now_ms" -v seen="bench:wr:{memory}:seen:$((now_ms / grace_ms))" \
    -v ttl="$((grace_ms * 3))" -v seed="$seed" 'BEGIN {
    state = "bench:wr:{memory}:state"
    for (i = 0; i < n; i++) {
        acct = "bench:wr:{memory}:acct:" (i % 16384)
        id = sprintf("%016d", i)
        printf "*12\r\n$7\r\nEVALSHA\r\n$%d\r\n%s\r\n$1\r\n3\r\n", length(sha), sha
        printf "$%d\r\n%s\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(state), state, length(seen), seen, length(acct), acct
        printf "$%d\r\n%s\r\n$1\r\n0\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(now), now, length(seed), seed, length(ttl), ttl
        printf "$16\r\n%s\r\n$0\r\n\r\n", id
    }
}' | redis-cli -h 127.0.0.1 -p "$redis_port" --pipe >"$work/pipe.log"
grep -q 'errors: 0' "$work/pipe.log" || die "the join script failed under --pipe: $(cat "$work/pipe.log")"
after=$(rcli info memory | sed -n 's/^used_memory:\([0-9]*\).*/\1/p' | tr -d '\r')
joined=$(rcli hget "bench:wr:{memory}:state" open | tr -d '\r')
encoding=$(rcli object encoding "bench:wr:{memory}:acct:0" | tr -d '\r')
largest=$(for b in $(seq 0 16383); do echo "HLEN bench:wr:{memory}:acct:$b"; done \
    | rcli | sort -n | tail -1 | tr -d '\r')

# (g) The state of (e) in an append-only file, then a restart.
redis_dir=$ONSALE_ROOT/.onsale/bench/wr-redis
rcli config set appendonly yes >/dev/null
until rcli info persistence | tr -d '\r' | grep -q '^aof_rewrite_in_progress:0' \
    && rcli info persistence | tr -d '\r' | grep -q '^aof_rewrite_scheduled:0' \
    && [ -n "$(ls "$redis_dir/appendonlydir" 2>/dev/null)" ]; do
    sleep 0.1
done
aof_bytes=$(du -sb "$redis_dir/appendonlydir" | cut -f1)
rcli shutdown >/dev/null 2>&1 || true
while rcli ping >/dev/null 2>&1; do sleep 0.05; done
restart_ns=$(date +%s%N)
redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$redis_dir" --daemonize yes \
    --pidfile "$redis_dir/redis.pid" --logfile "$redis_dir/redis.log" --save "" \
    --appendonly yes --appendfsync everysec >/dev/null
until [ "$(rcli ping 2>/dev/null | tr -d '\r')" = PONG ]; do sleep 0.02; done
recovered_ns=$(date +%s%N)
[ "$(rcli hget "bench:wr:{memory}:state" open | tr -d '\r')" = "$joined" ] \
    || die "Redis came back without every place"
awk -v n="$joined" -v bytes="$aof_bytes" -v ns="$((recovered_ns - restart_ns))" 'BEGIN {
    printf "recovery joined=%d aof_bytes=%d restart_to_answer_s=%.2f\n", n, bytes, ns / 1e9 }' \
    | tee -a "$work/results"

zbefore=$(rcli info memory | sed -n 's/^used_memory:\([0-9]*\).*/\1/p' | tr -d '\r')
redis-benchmark -h 127.0.0.1 -p "$redis_port" -c 50 -P 32 -q -n "$fans" -r 1000000000 \
    zadd bench:zset __rand_int__ member:__rand_int__ >/dev/null
zafter=$(rcli info memory | sed -n 's/^used_memory:\([0-9]*\).*/\1/p' | tr -d '\r')
members=$(rcli zcard bench:zset | tr -d '\r')
awk -v b="$before" -v a="$after" -v n="$joined" -v zb="$zbefore" -v za="$zafter" -v m="$members" \
    -v e="$encoding" -v l="$largest" 'BEGIN {
    printf "memory joined=%d bytes=%d bytes_per_fan=%.2f account_hash_encoding=%s largest_account_hash=%d zset_members=%d zset_bytes_per_member=%.1f\n",
        n, a - b, (a - b) / n, e, l, m, (za - zb) / m }' | tee -a "$work/results"

r=$work/results
awk -v a="$(rps edge_join "$r")" -v b="$(rps redis_join "$r")" -v c="$(rps edge_poll "$r")" \
    -v d="$(rps redis_get "$r")" -v e="$(rps nginx_poll "$r")" 'BEGIN {
    printf "ratio_join=%.2f ratio_poll=%.2f poll_vs_nginx=%.2f\n", a / b, c / d, c / e }'
