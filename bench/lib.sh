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

# median: the middle line of ROUNDS lines on stdin, sorted by their first number.
median() {
    sort -n | sed -n "$(( (rounds + 1) / 2 ))p"
}

# run NAME URL [wrk args...]: ROUNDS runs of wrk -t1 -c64; prints the median req/s with
# its p50/p99. Any response that is not 2xx/3xx fails the benchmark.
run() {
    local name=$1 url=$2; shift 2
    local results=()
    for _ in $(seq "$rounds"); do
        local out rps p50 p99 non2xx
        out=$(wrk -t1 -c64 -d"$duration" --latency "$@" "$url")
        non2xx=$(sed -n 's/.*Non-2xx or 3xx responses: \([0-9]*\).*/\1/p' <<<"$out")
        [ -z "$non2xx" ] || die "$name: $non2xx responses were not 2xx/3xx"
        rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' <<<"$out")
        p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
        p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
        results+=("$rps $p50 $p99")
    done
    printf '%s\n' "${results[@]}" | median \
        | awk -v n="$name" '{printf "%s rps=%s p50=%s p99=%s\n", n, $1, $2, $3}'
}

# rps NAME FILE: the req/s recorded for NAME in a results file.
rps() {
    sed -n "s/^$1 rps=\([0-9.]*\).*/\1/p" "$2"
}
