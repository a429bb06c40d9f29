#!/usr/bin/env bash
# Edge benchmark, in one run on this machine, wrk -t1 -c64 for DURATION (10 s) per
# measurement, ROUNDS (3) rounds each running every measurement once, medians reported:
#   (a) availability of the 80,000-seat show from the edge's memory, gzip, vs
#   (b) nginx serving the same gzip bytes with gzip_static and ETag;
#   the same two with If-None-Match (the 304 path);
#   (c) a gated purchase-path request through the edge (1,000 distinct admission tokens)
#       to a trivial upstream, vs
#   (d) nginx proxying the same request to the same upstream with keep-alive, no auth, and
#   (e) bare Pingora (examples/bare_proxy.rs) doing the same: the floor under (c).
# The edge, nginx and bare Pingora each get one worker thread. Private PostgreSQL, Redis
# and nginx under .onsale/bench/.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib/stack.sh"
source "$(dirname "$0")/lib.sh"
cd "$ONSALE_ROOT"
cpu_model
rounds=${ROUNDS:-3}
duration=${DURATION:-10s}
show=0193a6f0-0000-7000-8000-000000000201
work=$ONSALE_ROOT/.onsale/bench/edge
nginx_pid=
edge_pid=
bare_pid=

install_missing nginx:nginx-light wrk:wrk
cleanup() {
    [ -n "$edge_pid" ] && kill "$edge_pid" 2>/dev/null || true
    [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null || true
    [ -n "$bare_pid" ] && kill "$bare_pid" 2>/dev/null || true
    stop_postgres
    stop_redis
}
trap cleanup EXIT
rm -rf "$work" && mkdir -p "$work/snapshots" "$work/nginx"
start_postgres "$ONSALE_ROOT/.onsale/bench/pg" 55436 test
start_redis "$ONSALE_ROOT/.onsale/bench/redis" 56383 test
DATABASE_URL=$(create_database "$PG_ADMIN_URL" onsale_bench)
export DATABASE_URL REDIS_URL
ensure_dev_keys "$ONSALE_ROOT/.onsale/bench/keys"
cargo build --release --locked -p origin -p seatmap-builder -p edge-proxy --bins --examples >&2
target/release/origin --config config/origin.toml seed >&2
sed "s#^out_dir = .*#out_dir = \"$work/snapshots\"#" config/seatmap-builder.toml >"$work/builder.toml"
target/release/seatmap-builder --config "$work/builder.toml" once >&2
target/release/examples/admission_tokens .onsale/bench/keys/signing.pem "$show" 1000 >"$work/tokens"

# Six distinct free ports from 58080 up.
ports=()
next=58080
for _ in 1 2 3 4 5 6; do
    next=$(usable_port "$next" any)
    ports+=("$next")
    next=$((next + 1))
done
read -r edge_port edge_admin nginx_static nginx_proxy trivial bare <<<"${ports[*]}"

# nginx: the static snapshot server, the trivial upstream, and the plain proxy.
nginx_conf "$work/nginx" "$trivial" "$nginx_proxy" "    server {
        listen 127.0.0.1:$nginx_static;
        root $work/snapshots;
        gzip_static on;
        etag on;
        location / { add_header Vary Accept-Encoding; }
    }"
nginx -c "$work/nginx/nginx.conf" -g 'daemon off;' &
nginx_pid=$!

# The edge: one worker, limits out of the way (every request comes from one address),
# the trivial upstream as its origin pool.
sed -e "s/^threads = .*/threads = 1/" \
    -e "s/^per_ip = .*/per_ip = { per_minute = 600000000, burst = 10000000 }/" \
    -e "s/^per_fan_purchase = .*/per_fan_purchase = { per_minute = 600000000, burst = 10000000 }/" \
    -e "s/^\(catalog\|snapshot\|purchase\) = .*/\1 = { per_minute = 600000000, burst = 10000000 }/" \
    config/edge.toml >"$work/edge.toml"
ONSALE_EDGE_LISTEN=127.0.0.1:$edge_port ONSALE_EDGE_ADMIN_LISTEN=127.0.0.1:$edge_admin \
ONSALE_ORIGIN_UPSTREAMS=127.0.0.1:$trivial ONSALE_VERIFY_KEYS=.onsale/bench/keys/verify.pem \
ONSALE_SIGNING_KEY=.onsale/bench/keys/signing.pem ONSALE_QUEUE_KEYS=.onsale/bench/keys/queue.key \
RUST_LOG=warn target/release/edge-proxy --config "$work/edge.toml" >"$work/edge.log" 2>&1 &
edge_pid=$!
target/release/examples/bare_proxy "127.0.0.1:$bare" "127.0.0.1:$trivial" >"$work/bare.log" 2>&1 &
bare_pid=$!
wait_http "http://127.0.0.1:$edge_admin/readyz" edge
wait_http "http://127.0.0.1:$bare/" "bare Pingora"
avail=/v1/shows/$show/availability
edge_url=http://127.0.0.1:$edge_port
wait_http "$edge_url$avail" "the edge's snapshot"
nginx_file=/$show/availability.json

etag() { curl -sS -o /dev/null -D - -H 'Accept-Encoding: gzip' "$1" | tr -d '\r' | sed -n 's/^[Ee][Tt]ag: //p'; }
edge_etag=$(etag "$edge_url$avail")
nginx_etag=$(etag "http://127.0.0.1:$nginx_static$nginx_file")
curl -sS -H 'Accept-Encoding: gzip' "$edge_url$avail" >"$work/edge.gz"
curl -sS -H 'Accept-Encoding: gzip' "http://127.0.0.1:$nginx_static$nginx_file" >"$work/nginx.gz"
cmp -s "$work/edge.gz" "$work/nginx.gz" || die "the edge and nginx serve different gzip bytes"
edge_bytes=$(wc -c <"$work/edge.gz")
echo "gzip_bytes=$edge_bytes edge_etag=$edge_etag nginx_etag=$nginx_etag"

bearer_script "$work/tokens.lua" "$work/tokens"

# Rounds interleave the measures, so a slow minute of the host falls on both sides of a
# ratio rather than on one.
measures=(edge_200 nginx_200 edge_304 nginx_304 edge_gated nginx_proxy bare_pingora)
hold=/v1/holds/0193a6f0-0000-7000-8000-00000000b001
measure() {
    case $1 in
    edge_200) run_once "$1" "$edge_url$avail" -H 'Accept-Encoding: gzip' ;;
    nginx_200) run_once "$1" "http://127.0.0.1:$nginx_static$nginx_file" -H 'Accept-Encoding: gzip' ;;
    edge_304) run_once "$1" "$edge_url$avail" -H 'Accept-Encoding: gzip' -H "If-None-Match: $edge_etag" ;;
    nginx_304) run_once "$1" "http://127.0.0.1:$nginx_static$nginx_file" -H 'Accept-Encoding: gzip' -H "If-None-Match: $nginx_etag" ;;
    edge_gated) run_once "$1" "$edge_url$hold" -s "$work/tokens.lua" ;;
    nginx_proxy) run_once "$1" "http://127.0.0.1:$nginx_proxy$hold" ;;
    bare_pingora) run_once "$1" "http://127.0.0.1:$bare$hold" ;;
    esac
}
for _ in $(seq "$rounds"); do
    for m in "${measures[@]}"; do measure "$m"; done
done | medians "${measures[@]}" | tee "$work/results"

r=$work/results
awk -v a="$(rps edge_200 "$r")" -v b="$(rps nginx_200 "$r")" -v c="$(rps edge_304 "$r")" \
    -v d="$(rps nginx_304 "$r")" -v e="$(rps edge_gated "$r")" -v f="$(rps nginx_proxy "$r")" \
    -v g="$(rps bare_pingora "$r")" 'BEGIN {
    printf "ratio_200=%.2f ratio_304=%.2f ratio_gated=%.2f bare_pingora_vs_nginx=%.2f edge_vs_bare=%.2f\n",
        a / b, c / d, e / f, g / f, e / g }'
