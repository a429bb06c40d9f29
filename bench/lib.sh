# Shared by the wrk benchmarks; sourced after scripts/lib/stack.sh, with `rounds` and
# `duration` set.

# bearer_script FILE TOKENS: a wrk script sending one bearer token per request,
# round-robin over the lines of TOKENS.
bearer_script() {
    export TOKENS=$2
    cat >"$1" <<'LUA'
local tokens, i = {}, 0
for line in io.lines(os.getenv("TOKENS")) do tokens[#tokens + 1] = line end
request = function()
    i = i % #tokens + 1
    return wrk.format("GET", nil, { ["Authorization"] = "Bearer " .. tokens[i] })
end
LUA
}

# cpu_model: the benchmark's CPU, printed first: absolute rates, and how Pingora fares
# against nginx and Redis, move with it.
cpu_model() {
    echo "cpu=\"$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)\" cores=$(nproc)"
}

# median: the middle line of ROUNDS lines on stdin, sorted by their first number.
median() {
    sort -n | sed -n "$(( (rounds + 1) / 2 ))p"
}

# run_once NAME URL [wrk args...]: one wrk -t1 -c64 run; prints "NAME RPS P50 P99". Any
# response that is not 2xx/3xx fails the benchmark.
run_once() {
    local name=$1 url=$2; shift 2
    local out rps p50 p99 non2xx
    out=$(wrk -t1 -c64 -d"$duration" --latency "$@" "$url")
    non2xx=$(sed -n 's/.*Non-2xx or 3xx responses: \([0-9]*\).*/\1/p' <<<"$out")
    [ -z "$non2xx" ] || die "$name: $non2xx responses were not 2xx/3xx"
    rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    echo "$name $rps $p50 $p99"
}

# run NAME URL [wrk args...]: ROUNDS runs of wrk -t1 -c64; prints the median req/s with
# its p50/p99.
run() {
    local name=$1
    for _ in $(seq "$rounds"); do
        run_once "$@"
    done | medians "$name"
}

# medians NAME...: from "NAME RPS P50 P99" lines on stdin (rounds of several measures,
# in any order), each NAME's median req/s with its p50/p99, in the order named.
medians() {
    local lines name
    lines=$(cat)
    for name in "$@"; do
        awk -v n="$name" '$1 == n { print $2, $3, $4 }' <<<"$lines" | median \
            | awk -v n="$name" '{printf "%s rps=%s p50=%s p99=%s\n", n, $1, $2, $3}'
    done
}

# rps NAME FILE: the req/s recorded for NAME in a results file.
rps() {
    sed -n "s/^$1 rps=\([0-9.]*\).*/\1/p" "$2"
}

# insert_fans N FILE: N fans with sessions, straight into the origin's tables at DATABASE_URL
# (argon2 for each would take minutes; the password is never checked here); their bearer
# tokens, ses_bench<38 digits> (stored as their SHA-256), one per line in FILE.
insert_fans() {
    psql "$DATABASE_URL" -X -q -v ON_ERROR_STOP=1 <<SQL >/dev/null
CREATE TEMP TABLE fans AS
SELECT i, gen_random_uuid() AS id FROM generate_series(1, $1) i;
INSERT INTO accounts (id, email, email_key, display_name, password_hash, role)
SELECT id, 'bench-' || i || '@bench.test', 'bench-' || i || '@bench.test', 'Bench fan',
       '\$argon2id\$v=19\$m=19456,t=2,p=1\$unused\$unused', 'fan'
  FROM fans;
INSERT INTO sessions (id, account_id, token_hash, expires_at)
SELECT gen_random_uuid(), id, sha256(convert_to('ses_bench' || lpad(i::text, 38, '0'), 'UTF8')),
       now() + interval '1 day'
  FROM fans;
SQL
    seq 1 "$1" | awk '{printf "ses_bench%038d\n", $1}' >"$2"
}

# join_script FILE SESSIONS SHOW: a wrk script joining SHOW, one session per request,
# round-robin over the lines of SESSIONS.
join_script() {
    cat >"$1" <<LUA
local sessions, i = {}, 0
for line in io.lines("$2") do sessions[#sessions + 1] = line end
local body = '{"show_id":"$3"}'
request = function()
    i = i % #sessions + 1
    return wrk.format("POST", nil, {
        ["Content-Type"] = "application/json",
        ["Authorization"] = "Bearer " .. sessions[i],
    }, body)
end
LUA
}

# The join script's arguments as store::join passes them: now, a grace of 60 s, a zero seed.
now_ms=$(date +%s%3N)
grace_ms=60000
seed=$(printf '0%.0s' $(seq 64))

# join_args SHA SHOW: redis-benchmark arguments running the join script (loaded as SHA) on
# SHOW's keys under the prefix bench:, every call a new account (a random one of the 16,384
# hashes, a random id).
join_args() {
    echo "EVALSHA $1 3 bench:wr:{$2}:state bench:wr:{$2}:seen:$((now_ms / grace_ms)) bench:wr:{$2}:acct:__rand_int__ $now_ms 0 $seed $((grace_ms * 3)) fan:__rand_int__"
}

# start_origin_and_edge ADMIT MAX_ACTIVE SHOW...: a release origin and a release edge in
# front of it, on ports below the kernel's ephemeral range (where no outgoing connection can
# hold them), logs and the edge's config in $work. The edge: one worker; limits out of the
# way (every request comes from one address); sessions believed for the longest window
# allowed; the committed shows replaced by the SHOWs, whose queue and sale are open,
# admitting ADMIT fans a minute, at most MAX_ACTIVE at once. Sets origin_port, origin_pid,
# edge_port, edge_admin, edge_pid and edge_url.
start_origin_and_edge() {
    local admit=$1 max_active=$2 name
    shift 2
    origin_port=$(usable_port 28081 any)
    ONSALE_ORIGIN_LISTEN=127.0.0.1:$origin_port \
    ONSALE_VERIFY_KEYS=.onsale/bench/keys/verify.pem ONSALE_TICKET_SIGNING_KEY=.onsale/bench/keys/signing.pem \
    RUST_LOG=warn target/release/origin --config config/origin.toml serve >"$work/origin.log" 2>&1 &
    origin_pid=$!
    wait_http "http://127.0.0.1:$origin_port/readyz" origin
    edge_port=$(usable_port 28180 any)
    edge_admin=$(usable_port $((edge_port + 1)) any)
    sed -e "s/^threads = .*/threads = 1/" \
        -e "s/^per_ip = .*/per_ip = { per_minute = 600000000, burst = 10000000 }/" \
        -e "s/^per_ip_join = .*/per_ip_join = { per_minute = 600000000, burst = 10000000 }/" \
        -e "s/^waiting_room = .*/waiting_room = { per_minute = 600000000, burst = 10000000 }/" \
        -e "s/^session_cache_s = .*/session_cache_s = 60/" \
        -e "s/^key_prefix = .*/key_prefix = \"bench:\"/" \
        -e '/^\[waiting_room.shows\./,$d' \
        config/edge.toml >"$work/edge.toml"
    for name in "$@"; do
        cat >>"$work/edge.toml" <<TOML
[waiting_room.shows."$name"]
admit_per_minute = $admit
max_active = $max_active
session_ttl_s = 900
queue_opens_at = "2026-01-01T00:00:00Z"
sale_opens_at = "2026-01-01T00:00:00Z"
TOML
    done
    ONSALE_EDGE_LISTEN=127.0.0.1:$edge_port ONSALE_EDGE_ADMIN_LISTEN=127.0.0.1:$edge_admin \
    ONSALE_ORIGIN_UPSTREAMS=127.0.0.1:$origin_port \
    ONSALE_VERIFY_KEYS=.onsale/bench/keys/verify.pem ONSALE_SIGNING_KEY=.onsale/bench/keys/signing.pem \
    ONSALE_QUEUE_KEYS=.onsale/bench/keys/queue.key \
    RUST_LOG=warn target/release/edge-proxy --config "$work/edge.toml" >"$work/edge.log" 2>&1 &
    edge_pid=$!
    edge_url=http://127.0.0.1:$edge_port
}

# stop_origin_and_edge: stops what start_origin_and_edge started.
stop_origin_and_edge() {
    [ -n "${edge_pid:-}" ] && kill "$edge_pid" 2>/dev/null || true
    [ -n "${origin_pid:-}" ] && kill "$origin_pid" 2>/dev/null || true
    edge_pid= origin_pid=
}

# join_show SHOW SESSION: one join through the edge, its JSON answer.
join_show() {
    curl -sS -X POST -H 'content-type: application/json' -H "authorization: Bearer $2" \
        -d "{\"show_id\":\"$1\"}" "$edge_url/v1/waiting-room/sessions"
}

# nginx_conf DIR TRIVIAL PROXY [SERVERS]: DIR/nginx.conf for one nginx worker: a trivial
# upstream on port TRIVIAL (200 {"ok":true}), a keep-alive proxy to it on port PROXY (64
# upstream connections kept), and the server blocks in SERVERS; temp files and logs in DIR.
nginx_conf() {
    cat >"$1/nginx.conf" <<CONF
worker_processes 1;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    default_type application/json;
    client_body_temp_path $1/body;
    proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi;
    uwsgi_temp_path $1/uwsgi;
    scgi_temp_path $1/scgi;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$2;
        location / { return 200 '{"ok":true}'; }
    }
    upstream trivial { server 127.0.0.1:$2; keepalive 64; }
    server {
        listen 127.0.0.1:$3;
        location / {
            proxy_pass http://trivial;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
${4:-}
}
CONF
}
