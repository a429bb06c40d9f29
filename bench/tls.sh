#!/usr/bin/env bash
# HTTPS benchmark, in one run on this machine, the edge against nginx with the same
# certificate (ECDSA P-256, self-signed), each with one worker, both OpenSSL:
#   (a) TLS handshakes/s: h2load opens CONNECTIONS (1,000) connections at once, each a full
#       handshake (no session resumption) and one HTTP/2 request of the web app's HTML shell;
#       connections / elapsed time, ROUNDS (3) rounds, median;
#   (b) HTTP/2 requests/s: h2load -c 64 -m 10 (64 connections, 10 streams each) for
#       DURATION (10 s) on the same page, ROUNDS rounds, median.
# The edge serves the shell from memory; nginx serves the same bytes from a file with
# open_file_cache, so neither touches the disk. Private nginx and Redis under .onsale/bench/.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib/stack.sh"
source "$(dirname "$0")/lib.sh"
cd "$ONSALE_ROOT"
rounds=${ROUNDS:-3}
duration=${DURATION:-10}
connections=${CONNECTIONS:-1000}
work=$ONSALE_ROOT/.onsale/bench/tls
edge_pid=
nginx_pid=

install_missing nginx:nginx-light h2load:nghttp2-client
cleanup() {
    [ -n "$edge_pid" ] && kill "$edge_pid" 2>/dev/null || true
    [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null || true
    stop_redis
}
trap cleanup EXIT
rm -rf "$work" && mkdir -p "$work/nginx" "$work/www"
ulimit -n "$((connections * 2 + 1024))"
start_redis "$ONSALE_ROOT/.onsale/bench/tls-redis" 56385 test
export REDIS_URL
ensure_dev_keys "$ONSALE_ROOT/.onsale/bench/keys"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
cargo build --release --locked -p edge-proxy --bins >&2

ports=()
next=58480
for _ in 1 2 3 4; do
    next=$(usable_port "$next" any)
    ports+=("$next")
    next=$((next + 1))
done
read -r edge_plain edge_admin edge_tls nginx_tls <<<"${ports[*]}"

sed -e "s/^threads = .*/threads = 1/" \
    -e "s/^per_ip = .*/per_ip = { per_minute = 600000000, burst = 10000000 }/" \
    config/edge.toml >"$work/edge.toml"
ONSALE_EDGE_LISTEN=127.0.0.1:$edge_plain ONSALE_EDGE_ADMIN_LISTEN=127.0.0.1:$edge_admin \
ONSALE_EDGE_TLS_LISTEN=127.0.0.1:$edge_tls ONSALE_EDGE_TLS_CERT=$work/cert.pem \
ONSALE_EDGE_TLS_KEY=$work/key.pem ONSALE_VERIFY_KEYS=.onsale/bench/keys/verify.pem \
ONSALE_SIGNING_KEY=.onsale/bench/keys/signing.pem ONSALE_QUEUE_KEYS=.onsale/bench/keys/queue.key \
RUST_LOG=warn target/release/edge-proxy --config "$work/edge.toml" >"$work/edge.log" 2>&1 &
edge_pid=$!
wait_http "http://127.0.0.1:$edge_admin/healthz" edge
curl -sS "http://127.0.0.1:$edge_plain/" >"$work/www/index.html"

cat >"$work/nginx/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections $((connections * 2)); }
http {
    access_log off;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    open_file_cache max=16 inactive=60s;
    open_file_cache_valid 60s;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$nginx_tls ssl http2;
        ssl_certificate $work/cert.pem;
        ssl_certificate_key $work/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache off;
        ssl_session_tickets off;
        root $work/www;
        default_type text/html;
        etag on;
    }
}
CONF
nginx -c "$work/nginx/nginx.conf" -g 'daemon off;' &
nginx_pid=$!
for _ in $(seq 100); do
    curl -sk -o /dev/null "https://127.0.0.1:$nginx_tls/" && curl -sk -o /dev/null "https://127.0.0.1:$edge_tls/" && break
    sleep 0.1
done
for url in "https://127.0.0.1:$edge_tls/" "https://127.0.0.1:$nginx_tls/"; do
    version=$(curl -sk --http2 -o "$work/check.html" -w '%{http_version}' "$url")
    [ "$version" = 2 ] || die "$url did not answer over HTTP/2"
    cmp -s "$work/check.html" "$work/www/index.html" || die "$url serves other bytes"
done

# h2load_rate NAME ARGS...: ROUNDS runs of h2load; prints the median req/s (failures fail it).
h2load_rate() {
    local name=$1; shift
    local results=()
    for _ in $(seq "$rounds"); do
        local out
        out=$(h2load "$@")
        grep -q ' 0 failed, 0 errored' <<<"$out" || die "$name: $(grep 'requests:' <<<"$out")"
        results+=("$(sed -n 's/^finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p' <<<"$out")")
    done
    printf '%s\n' "${results[@]}" | median | awk -v n="$name" '{printf "%s rps=%s\n", n, $1}'
}

{
    for target in edge:$edge_tls nginx:$nginx_tls; do
        # One request per connection: the rate is handshakes per second.
        h2load_rate "${target%%:*}_handshakes" -t1 -c "$connections" -n "$connections" \
            "https://127.0.0.1:${target#*:}/"
        h2load_rate "${target%%:*}_h2" -t1 -c 64 -m 10 -D "$duration" --warm-up-time=1 \
            "https://127.0.0.1:${target#*:}/"
    done
} | tee "$work/results"

r=$work/results
awk -v a="$(rps edge_handshakes "$r")" -v b="$(rps nginx_handshakes "$r")" \
    -v c="$(rps edge_h2 "$r")" -v d="$(rps nginx_h2 "$r")" 'BEGIN {
    printf "ratio_handshakes=%.2f ratio_h2=%.2f\n", a / b, c / d }'
