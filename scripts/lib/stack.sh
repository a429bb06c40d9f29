# Shared bootstrap for scripts/up and scripts/test: install what is missing, start private
# PostgreSQL and Redis instances (or use running ones named by DATABASE_URL / REDIS_URL),
# and stop what was started. Sourced, not executed.

ONSALE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ONSALE_STARTED_PG=""
ONSALE_STARTED_REDIS=""
ONSALE_STARTED_CLUSTER=""
PLOT_FONT=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf

# Each line carries the seconds since the script started: a slow step shows in any log.
log() { printf '\033[1m[onsale %ss]\033[0m %s\n' "$SECONDS" "$*" >&2; }
die() { log "error: $*"; exit 1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "need root (or sudo) to run: $*"
    fi
}

pg_bindir() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [ -x "$dir/initdb" ] && { echo "$dir"; return 0; }
    done
    command -v initdb >/dev/null && { dirname "$(readlink -f "$(command -v initdb)")"; return 0; }
    return 1
}

# Installs the system packages the stack needs and the machine lacks (Debian/Ubuntu).
# install_missing [COMMAND:PACKAGE ...]: the stack's tools, plus any extra ones named.
install_missing() {
    local packages=() extra
    for extra in "$@"; do
        command -v "${extra%%:*}" >/dev/null || packages+=("${extra#*:}")
    done
    command -v cmake >/dev/null || packages+=(cmake)
    command -v curl >/dev/null || packages+=(curl)
    command -v openssl >/dev/null || packages+=(openssl)
    # The edge's HTTPS links the system OpenSSL.
    command -v pkg-config >/dev/null || packages+=(pkg-config)
    pkg-config --exists openssl 2>/dev/null || packages+=(libssl-dev)
    if [ -z "${REDIS_URL:-}" ]; then
        command -v redis-server >/dev/null || packages+=(redis-server)
    fi
    command -v redis-cli >/dev/null || packages+=(redis-tools)
    if [ -z "${DATABASE_URL:-}" ]; then
        pg_bindir >/dev/null || packages+=(postgresql)
    fi
    command -v psql >/dev/null || packages+=(postgresql-client)
    # The typeface of the simulator's PNG plots.
    [ -f "$PLOT_FONT" ] || packages+=(fonts-dejavu-core)
    [ ${#packages[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null || die "missing ${packages[*]} and no apt-get to install them"
    log "installing ${packages[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
}

# The suite's Python tools, pinned, in a virtualenv of the project's own: the OpenAPI
# conformance run's fuzzer, and an Ed25519 implementation other than the project's, to
# check a ticket offline with nothing but the published key set.
SCHEMATHESIS_VERSION=4.32.5
CRYPTOGRAPHY_VERSION=45.0.7
install_python_tools() {
    local venv="$ONSALE_ROOT/.onsale/venv"
    if "$venv/bin/schemathesis" --version 2>/dev/null | grep -qF "$SCHEMATHESIS_VERSION" &&
        "$venv/bin/python" -c "import cryptography, sys; sys.exit(cryptography.__version__ != '$CRYPTOGRAPHY_VERSION')" 2>/dev/null; then
        return 0
    fi
    python3 -c 'import ensurepip, venv' 2>/dev/null || {
        log "installing python3-venv"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    }
    log "installing schemathesis $SCHEMATHESIS_VERSION and cryptography $CRYPTOGRAPHY_VERSION (PyPI) in .onsale/venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check \
        "schemathesis==$SCHEMATHESIS_VERSION" "cryptography==$CRYPTOGRAPHY_VERSION"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# usable_port PORT MODE: PORT if free; else with MODE "any" the next free port above it,
# with MODE "fixed" an error (scripts/up promises its ports).
usable_port() {
    local port=$1 mode=$2
    while port_in_use "$port"; do
        [ "$mode" = any ] || die "port $port is taken by another program; stop it or set DATABASE_URL/REDIS_URL"
        port=$((port + 1))
    done
    echo "$port"
}

# Runs a PostgreSQL server binary as an unprivileged user: initdb refuses to run as root.
pg_run() {
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# start_postgres DIR PORT [dev|test|chaos]: a private cluster with its data in DIR, listening
# on 127.0.0.1:PORT. "dev" (the default) insists on PORT; "test" trades durability for speed
# and "chaos" keeps it, both moving to a free port if PORT is taken. Sets PG_ADMIN_URL.
start_postgres() {
    local dir=$1 port=$2 profile=${3:-dev} bin
    if [ -n "${DATABASE_URL:-}" ]; then
        PG_ADMIN_URL=$DATABASE_URL
        log "using the running PostgreSQL named by DATABASE_URL"
        return 0
    fi
    bin=$(pg_bindir) || die "no PostgreSQL server binaries found"
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then chown postgres "$dir" 2>/dev/null || { id postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres; chown postgres "$dir"; }; fi
    chmod 700 "$dir"
    if [ ! -f "$dir/PG_VERSION" ]; then
        log "initialising PostgreSQL in $dir"
        pg_run "$bin/initdb" -D "$dir" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null \
            || die "initdb failed"
    fi
    if pg_run "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
        port=$(sed -n 4p "$dir/postmaster.pid")
        log "PostgreSQL already running on $port"
    else
        local mode attempt options
        mode=$([ "$profile" = dev ] && echo fixed || echo any)
        # A port nothing listens on may still be held by closed connections in TIME_WAIT (a
        # server stopped a moment ago, or a client that drew it from the ephemeral range) for
        # up to a minute: a fixed port waits them out, any other moves to the next port.
        for attempt in $(seq 40); do
            port=$(usable_port "$port" "$mode")
            options="-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300 -c shared_buffers=256MB"
            if [ "$profile" = test ]; then
                options="$options -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            fi
            log "starting PostgreSQL on 127.0.0.1:$port"
            pg_run "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 -o "$options" start >/dev/null && break
            if [ "$attempt" = 40 ] || ! tail -n 20 "$dir/server.log" | grep -q 'Address already in use'; then
                tail -n 20 "$dir/server.log" >&2
                die "PostgreSQL did not start"
            fi
            if [ "$mode" = any ]; then
                port=$((port + 1))
            else
                [ "$attempt" = 1 ] && log "port $port is still held by closed connections; waiting"
                sleep 2
            fi
        done
        ONSALE_STARTED_PG=$dir
    fi
    PG_ADMIN_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

# restart_postgres DIR: restarts the cluster in DIR in fast mode (open transactions rolled
# back, connections closed), with the options it was started with.
restart_postgres() {
    pg_run "$(pg_bindir)/pg_ctl" -D "$1" -m fast -w -t 60 restart >/dev/null
}

stop_postgres() {
    [ -n "$ONSALE_STARTED_PG" ] || return 0
    pg_run "$(pg_bindir)/pg_ctl" -D "$ONSALE_STARTED_PG" -m fast -w stop >/dev/null 2>&1 || true
    ONSALE_STARTED_PG=""
}

# create_database ADMIN_URL NAME: prints the URL of database NAME, creating it when missing.
create_database() {
    local admin=$1 name=$2
    if ! psql "$admin" -Atqc "SELECT 1 FROM pg_database WHERE datname = '$name'" | grep -q 1; then
        psql "$admin" -qc "CREATE DATABASE \"$name\"" >/dev/null || die "cannot create database $name"
    fi
    echo "${admin%/*}/$name"
}

# launch_redis DIR PORT MODE [ARGS...]: a redis-server with its files in DIR on 127.0.0.1:PORT
# and extra ARGS, waited for until it answers. MODE "any": the next free port if PORT is
# taken, also when another program takes it before Redis binds it (it is in the range the
# kernel hands out to outgoing connections). Sets LAUNCHED_PORT.
launch_redis() {
    local dir=$1 port=$2 mode=$3 attempt i
    shift 3
    mkdir -p "$dir"
    for attempt in 1 2 3 4 5; do
        port=$(usable_port "$port" "$mode")
        echo "$port" > "$dir/port"
        log "starting Redis on 127.0.0.1:$port"
        redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --daemonize yes \
            --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" "$@" >/dev/null \
            || die "Redis did not start"
        for i in $(seq 50); do
            redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1 && break 2
            sleep 0.1
        done
        [ "$mode" = any ] || break
        port=$((port + 1))
    done
    redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1 \
        || { tail -n 5 "$dir/redis.log" >&2; die "Redis did not start"; }
    LAUNCHED_PORT=$port
}

# start_redis DIR PORT [test]: a private Redis with its data in DIR on 127.0.0.1:PORT ("test":
# a free port if PORT is taken, and no append-only file: test data need not outlive a crash).
# Otherwise queue state is kept as production keeps it: an append-only file synced every
# second (ARCHITECTURE.md, "Queue state across a Redis restart"). Sets REDIS_URL.
start_redis() {
    local dir=$1 port=$2 profile=${3:-dev}
    if [ -n "${REDIS_URL:-}" ]; then
        log "using the running Redis named by REDIS_URL"
        return 0
    fi
    mkdir -p "$dir"
    if [ -f "$dir/redis.pid" ] && kill -0 "$(cat "$dir/redis.pid")" 2>/dev/null \
        && [ -f "$dir/port" ] && redis-cli -h 127.0.0.1 -p "$(cat "$dir/port")" ping >/dev/null 2>&1; then
        port=$(cat "$dir/port")
        log "Redis already running on $port"
    else
        local mode persistence=()
        mode=$([ "$profile" = test ] && echo any || echo fixed)
        [ "$profile" = test ] || persistence=(--appendonly yes --appendfsync everysec)
        launch_redis "$dir" "$port" "$mode" --save 60 1000 "${persistence[@]}"
        port=$LAUNCHED_PORT
        ONSALE_STARTED_REDIS=$port
    fi
    if [ "$profile" != test ]; then
        # An instance started before queue state was made durable gets it now.
        redis-cli -h 127.0.0.1 -p "$port" CONFIG SET appendonly yes >/dev/null
        redis-cli -h 127.0.0.1 -p "$port" CONFIG SET appendfsync everysec >/dev/null
    fi
    REDIS_URL="redis://127.0.0.1:$port"
}

# start_redis_cluster DIR PORT: a private Redis Cluster of three primaries (no replicas, no
# persistence: test data), each with its files under DIR, client ports from PORT up (the next
# free ones if taken), its slots spread evenly by `redis-cli --cluster create`. Sets
# REDIS_CLUSTER_URL: the nodes' URLs, comma-separated.
start_redis_cluster() {
    local dir=$1 port=$2 nodes=() urls=() i
    rm -rf "$dir"
    for i in 1 2 3; do
        # The cluster bus listens on the client port + 10000.
        while port_in_use $((port + 10000)); do port=$((port + 1)); done
        launch_redis "$dir/node-$i" "$port" any --cluster-enabled yes \
            --cluster-config-file nodes.conf --save "" --appendonly no
        ONSALE_STARTED_CLUSTER+=" $LAUNCHED_PORT"
        nodes+=("127.0.0.1:$LAUNCHED_PORT")
        urls+=("redis://127.0.0.1:$LAUNCHED_PORT")
        port=$((LAUNCHED_PORT + 1))
    done
    log "creating a Redis Cluster of ${nodes[*]}"
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes \
        >"$dir/create.log" 2>&1 || { tail -n 5 "$dir/create.log" >&2; die "the cluster did not form"; }
    for i in $(seq 100); do
        cluster_ok "${nodes[@]}" && break
        sleep 0.1
    done
    cluster_ok "${nodes[@]}" || die "the cluster did not come up (cluster_state not ok on every node)"
    REDIS_CLUSTER_URL=$(IFS=,; echo "${urls[*]}")
}

# cluster_ok HOST:PORT...: every node says the cluster is up with all slots served.
cluster_ok() {
    local node
    for node in "$@"; do
        redis-cli -h "${node%:*}" -p "${node#*:}" cluster info 2>/dev/null \
            | grep -q 'cluster_state:ok' || return 1
    done
}

stop_redis_cluster() {
    local port
    for port in $ONSALE_STARTED_CLUSTER; do
        redis-cli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null 2>&1 || true
    done
    ONSALE_STARTED_CLUSTER=""
}

stop_redis() {
    [ -n "$ONSALE_STARTED_REDIS" ] || return 0
    redis-cli -h 127.0.0.1 -p "$ONSALE_STARTED_REDIS" shutdown nosave >/dev/null 2>&1 || true
    ONSALE_STARTED_REDIS=""
}

# supervise NAME LOG COMMAND...: runs COMMAND in a session of its own (so Ctrl-C reaches
# only the caller), its output appended to LOG. When it exits without being asked to, says so
# and starts it again after a backoff: ONSALE_RESTART_DELAY_MS (1,000) at first, doubling up
# to 30 s, back to the first once a run lasted a minute. SIGTERM or SIGINT to the supervisor
# is passed on to COMMAND (a graceful drain), awaited, and ends both. Run it in a subshell
# of its own: `supervise ... &`.
supervise() {
    local name=$1 logfile=$2; shift 2
    local first_ms=${ONSALE_RESTART_DELAY_MS:-1000} max_ms=30000 steady_s=60
    local delay_ms=$first_ms restarts=0 pid="" started status delay
    trap 'if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null; wait "$pid" || true; fi; exit 0' TERM INT
    while :; do
        started=$SECONDS
        setsid "$@" >>"$logfile" 2>&1 &
        pid=$!
        status=0
        wait "$pid" || status=$?
        pid=""
        [ $((SECONDS - started)) -lt $steady_s ] || delay_ms=$first_ms
        restarts=$((restarts + 1))
        delay=$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))
        log "$name exited with status $status; restart $restarts in ${delay}s (log: $logfile)"
        sleep "$delay" &
        wait $!
        delay_ms=$((delay_ms * 2 > max_ms ? max_ms : delay_ms * 2))
    done
}

# Development keys, never committed: the admission tokens' Ed25519 pair, signing.pem
# (PKCS#8) and verify.pem (SPKI), and the queue tokens' HS256 secret, queue.key (base64 of
# 32 random bytes).
ensure_dev_keys() {
    local dir=$1
    mkdir -p "$dir"
    if [ ! -f "$dir/signing.pem" ]; then
        log "generating development Ed25519 keys in $dir"
        (umask 077; openssl genpkey -algorithm ed25519 -out "$dir/signing.pem") || die "openssl genpkey failed"
        openssl pkey -in "$dir/signing.pem" -pubout -out "$dir/verify.pem" || die "openssl pkey failed"
    fi
    if [ ! -f "$dir/queue.key" ]; then
        log "generating a development queue key in $dir"
        (umask 077; openssl rand -base64 32 >"$dir/queue.key") || die "openssl rand failed"
    fi
}

# ensure_dev_certificate DIR: a self-signed ECDSA P-256 certificate for 127.0.0.1 and
# localhost (DIR/cert.pem, DIR/key.pem), made once, for the edge's development HTTPS.
ensure_dev_certificate() {
    local dir=$1
    mkdir -p "$dir"
    [ -f "$dir/cert.pem" ] && [ -f "$dir/key.pem" ] && return 0
    log "generating a self-signed development certificate in $dir"
    (umask 077; openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -days 825 -subj /CN=onsale-development \
        -addext subjectAltName=IP:127.0.0.1,DNS:localhost \
        -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null) || die "openssl req failed"
}

# wait_http URL NAME [SECONDS]: waits until URL answers 2xx.
wait_http() {
    local url=$1 name=$2 seconds=${3:-60} i
    for i in $(seq $((seconds * 10))); do
        curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null && return 0
        sleep 0.1
    done
    die "$name did not become ready at $url within ${seconds}s"
}
