#!/usr/bin/env bash
# Pingora's own knobs under the gated hop's floor, in one run on this machine: bare Pingora
# (examples/bare_proxy.rs) proxying to a trivial nginx upstream with keep-alive, with
# Pingora's defaults but one worker thread, and once per knob changed from there, against
# nginx proxying the same request (one worker, 64 upstream connections kept). wrk -t1 -c64
# for DURATION (10 s) per measure, ROUNDS (3) rounds each running every measure once,
# medians. The knobs:
#   threads_2          two worker threads (nginx keeps one);
#   no_work_stealing   work_stealing = false;
#   pool_16, pool_0    upstream_keepalive_pool_size 16 (fewer than the 64 client
#                      connections) and 0 (a new upstream connection per request);
#   recv_buf_256k      the upstream sockets' receive buffer at 256 KiB.
# TCP_NODELAY is no knob: Pingora sets it on every socket it accepts or connects.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib/stack.sh"
source "$(dirname "$0")/lib.sh"
cd "$ONSALE_ROOT"
cpu_model
rounds=${ROUNDS:-3}
duration=${DURATION:-10s}
work=$ONSALE_ROOT/.onsale/bench/pingora-knobs
pids=()

install_missing nginx:nginx-light wrk:wrk
trap 'for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done' EXIT
rm -rf "$work" && mkdir -p "$work/nginx"
cargo build --release --locked -p edge-proxy --example bare_proxy >&2

# take_port: the next free port from 58180 up, in $port.
next=58180
take_port() { port=$(usable_port "$next" any); next=$((port + 1)); }
take_port && trivial=$port
take_port && nginx_proxy=$port
nginx_conf "$work/nginx" "$trivial" "$nginx_proxy"
nginx -c "$work/nginx/nginx.conf" -g 'daemon off;' &
pids+=($!)
wait_http "http://127.0.0.1:$nginx_proxy/" "nginx"

# Every variant listens at once on its own port; an idle one takes no CPU.
declare -A url
url[nginx_proxy]=http://127.0.0.1:$nginx_proxy/v1/holds/b001
variant() {
    local name=$1 listen
    shift
    take_port && listen=$port
    env "$@" target/release/examples/bare_proxy "127.0.0.1:$listen" "127.0.0.1:$trivial" \
        >"$work/$name.log" 2>&1 &
    pids+=($!)
    wait_http "http://127.0.0.1:$listen/" "bare Pingora ($name)"
    url[$name]=http://127.0.0.1:$listen/v1/holds/b001
}
variant defaults
variant threads_2 BARE_THREADS=2
variant no_work_stealing BARE_WORK_STEALING=false
variant pool_16 BARE_KEEPALIVE_POOL=16
variant pool_0 BARE_KEEPALIVE_POOL=0
variant recv_buf_256k BARE_TCP_RECV_BUF=262144

measures=(nginx_proxy defaults threads_2 no_work_stealing pool_16 pool_0 recv_buf_256k)
for _ in $(seq "$rounds"); do
    for m in "${measures[@]}"; do run_once "$m" "${url[$m]}"; done
done | medians "${measures[@]}" | tee "$work/results"

nginx=$(rps nginx_proxy "$work/results")
for m in "${measures[@]:1}"; do
    awk -v m="$m" -v r="$(rps "$m" "$work/results")" -v n="$nginx" \
        'BEGIN { printf "%s_vs_nginx=%.2f\n", m, r / n }'
done
