# Helpers of the benchmark drivers (bench/run.sh, bench/s3.sh), sourced by
# them: packages, the build, scratch space, ports, servers, caches, the
# machine's description. Each driver sets ROOT before sourcing this file.

say() { echo "== $*" >&2; }
die() { echo "bench: $*" >&2; exit 1; }

# median: the median of the numbers on stdin, one per line.
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# free_port: a port of 127.0.0.1 that was free a moment ago (for servers
# that take a port from the command line).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# stage NAME: ends the current stage (printing its time) and starts NAME
# (the driver sets STARTED, its start in seconds since the epoch).
STAGE=
STAGE_STARTED=
stage() {
    local now
    now=$(date +%s)
    [[ -n $STAGE ]] && say "stage '$STAGE' took $((now - STAGE_STARTED)) s"
    STAGE=$1
    STAGE_STARTED=$now
    [[ -n $STAGE ]] && say "stage '$STAGE' (at $((now - STARTED)) s)"
    return 0
}

# install_packages COMMAND:PACKAGE...: installs, as root with apt-get, the
# Debian package of each command that is missing (else says how).
install_packages() {
    local missing=() pair
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
    done
    ((${#missing[@]})) || return 0
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        say "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        # Update the package lists only when the install cannot find them.
        apt-get install -y --no-install-recommends "${missing[@]}" >&2 ||
            { apt-get update >&2 && apt-get install -y --no-install-recommends "${missing[@]}" >&2; } ||
            say "could not install ${missing[*]}"
    else
        say "missing: ${missing[*]}; install them with: sudo apt-get install ${missing[*]}"
    fi
}

# build_binaries: builds registry-host and registry-bench (release), then
# copies them into $WORK/bin (WORK must exist): a build of another checkout
# sharing the target directory must not swap them between one server start
# and the next. Sets TARGET_DIR, HOST_BIN, BENCH_BIN.
build_binaries() {
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust with rustup"
    TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
    say "building registry-host and registry-bench (release; target dir $TARGET_DIR)"
    (cd "$ROOT" && cargo build --release -p registry-host -p registry-bench)
    HOST_BIN=$TARGET_DIR/release/registry-host
    BENCH_BIN=$TARGET_DIR/release/registry-bench
    [[ -x $HOST_BIN && -x $BENCH_BIN ]] || die "the build left no $HOST_BIN or $BENCH_BIN"
    mkdir -p "$WORK/bin"
    cp "$HOST_BIN" "$BENCH_BIN" "$WORK/bin/"
    HOST_BIN=$WORK/bin/registry-host
    BENCH_BIN=$WORK/bin/registry-bench
}

SERVER_PID=
SERVER_PIDS=()
# Stops the server started last.
stop_server() {
    if [[ -n $SERVER_PID ]]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}
# Stops every server this script started.
stop_servers() {
    local pid
    for pid in "${SERVER_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${SERVER_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    SERVER_PIDS=()
    SERVER_PID=
}

PORTS=()
# pick_port VAR [ARGS]: sets VAR to a free loopback port none of the others
# has (ARGS go to `registry-bench free-port`).
pick_port() {
    local var=$1 port
    shift
    port=$("$BENCH_BIN" free-port "$@")
    while [[ " ${PORTS[*]} " == *" $port "* ]]; do port=$("$BENCH_BIN" free-port "$@"); done
    PORTS+=("$port")
    printf -v "$var" %s "$port"
}

# spawn_server NAME LOG STATUS URL METRIC COMMAND...: spawns the server
# with its output in LOG, sets SERVER_PID, prints the result line of the
# time until it answers GET /v2/ with STATUS (401 with access control on).
spawn_server() {
    local name=$1 log=$2 status=$3 url=$4 metric=$5
    shift 5
    local t0
    t0=$(date +%s%N)
    # A developer shell's RUST_BACKTRACE=1 would make every error value
    # capture a backtrace: run the servers as deployed, without it. Instance
    # reuse only where a command asks for it (--instance-reuse).
    env -u RUST_BACKTRACE -u RUST_LIB_BACKTRACE -u REGISTRY_INSTANCE_REUSE "$@" >>"$log" 2>&1 &
    SERVER_PID=$!
    SERVER_PIDS+=("$SERVER_PID")
    if ! "$BENCH_BIN" wait --url "$url" --server "$name" --metric "$metric" --status "$status" --since-ns "$t0"; then
        tail -20 "$log" >&2
        die "$name did not start"
    fi
}

# Before the small pushes and each big-blob repetition, written data is synced and the kernel's caches
# are dropped (as root): this filesystem (ext4 without a journal) makes each
# new inode skip those deleted in the last minutes, checking each in the
# cached inode table, so every file create costs more the more files were
# deleted shortly before (the big phases' and earlier runs' clean-ups); the
# same sequential pushes ran at 747/s before and 989/s after a drop here.
settle_caches() {
    sync
    if [[ $(id -u) == 0 ]]; then
        echo 3 >/proc/sys/vm/drop_caches
    else
        say "not root: the kernel's caches are not dropped between phases"
    fi
}

# prewarm_page_cache MIB: this kind of machine (a microVM) backs guest
# memory lazily: the first write into never-used page-cache pages runs at
# ~300 MB/s, later ones at several GB/s. Whichever server ran first would
# pay for that, so before each server's big-blob group the run writes and
# deletes MIB MiB, as much as the server will be sent (untimed).
prewarm_page_cache() {
    # Start from an empty page cache too: with the earlier repetitions'
    # blobs still cached, a later phase pays for reclaiming them (a 256 MiB
    # push took 3× the CPU in the second repetition than in the first).
    settle_caches
    dd if=/dev/zero of="$WORK/prewarm" bs=1M count="$1" status=none
    rm -f "$WORK/prewarm"
    sync
}

count_compilers() { pgrep -c -x 'rustc|cc1|cc1plus|ld|cargo' 2>/dev/null || true; }

# machine_table: the machine table's heading and the rows that both
# drivers share; each adds its own rows after them (LOAD_BEFORE, LOAD_AFTER,
# COMPILERS_BEFORE, COMPILERS_AFTER, LOAD_TOOL set; EXCLUDE: a report file
# the commit check ignores).
machine_table() {
    local cpu mem fs commit ref_version load_tool_used
    cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
    mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
    fs=$(findmnt -no FSTYPE -T "$WORK" 2>/dev/null || stat -f -c %T "$WORK")
    commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    git -C "$ROOT" diff --quiet HEAD -- . ":!$EXCLUDE" 2>/dev/null || commit="$commit (with uncommitted changes)"
    ref_version=$(dpkg-query -W -f '${Version}' docker-registry 2>/dev/null || docker-registry --version 2>&1 | head -1)
    if [[ $LOAD_TOOL == builtin ]] || ! command -v wrk >/dev/null 2>&1; then
        load_tool_used="the benchmark's built-in loop"
    else
        load_tool_used=$( (wrk --version 2>&1 || true) | head -1 | sed 's/ *Copyright.*//')
    fi
    cat <<EOF
## Machine and run

| | |
|---|---|
| date | $(date -u '+%Y-%m-%d %H:%M UTC') |
| CPU | $cpu, $(nproc) cores (nproc) |
| memory | $mem |
| kernel | $(uname -sr) |
| temp dirs | $(dirname "$WORK") ($fs) |
| load average (1, 5, 15 min) | before: $LOAD_BEFORE; after: $LOAD_AFTER |
| compiler processes running | before: ${COMPILERS_BEFORE:-0}; after: ${COMPILERS_AFTER:-0} |
| ours | registry-host at commit $commit, built with $(rustc --version 2>/dev/null || echo rustc) |
| reference | docker-registry $ref_version |
| GET load tool | $load_tool_used |
EOF
}

# host_in_work NAME: builds registry-host and copies it into a new $WORK
# (/tmp/registry-bench-NAME.*), so that a rebuild during the run cannot
# change it; on exit the servers in $PIDS are killed and $WORK removed.
host_in_work() {
    (cd "$ROOT" && cargo build --release -p registry-host)
    local target=${CARGO_TARGET_DIR:-$ROOT/target}
    [[ $target == /* ]] || target="$ROOT/$target"
    WORK=$(mktemp -d "/tmp/registry-bench-$1.XXXXXX")
    cp "$target/release/registry-host" "$WORK/registry-host"
    PIDS=()
    trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$WORK"' EXIT
}
