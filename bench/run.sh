#!/usr/bin/env bash
# The benchmark: our registry-host against CNCF distribution 2.8.2 (Debian's
# docker-registry), one server at a time, the same workloads, in one run.
# Prints a side-by-side table and writes it, with a description of the
# machine and the performance targets, to BENCHMARKS.md.
#
#   bash bench/run.sh
#
# Just the per-request cost group (ours, ours with instance reuse, the native
# ceiling and the reference on the small requests of a pull), in a few
# minutes; prints its section and writes it with the machine's description
# to <target dir>/bench-results/per-request.md (or BENCH_OUT), leaving
# BENCHMARKS.md alone:
#
#   BENCH_ONLY=per-request BENCH_LOAD_SECS=3 bash bench/run.sh
#
# Environment (all optional):
#   BENCH_ONLY         per-request: only that group (see above); default: all
#   BENCH_OUT          report file (default: BENCHMARKS.md at the repository root)
#   BENCH_BIG_MIB      big blob, MiB (default 1024): monolithic, chunked, pull
#   BENCH_MEDIUM_MIB   second blob for the memory comparison (default 256)
#   BENCH_REPEAT       runs of each big-blob phase, median reported (default 3)
#   BENCH_PUSH_SECS    seconds per small-push measurement and server (default 10)
#   BENCH_LOAD_SECS    seconds per GET load measurement (default 10)
#   BENCH_LOAD_TOOL    auto (wrk if installed), wrk, builtin (default auto)
#   BENCH_GC_IMAGES    images in the garbage-collection group's store, each a
#                      config and four 1 KiB layers, half deleted (default
#                      10000: 50,000 blobs); 0 leaves the group out
#   BENCH_OPS_TURNS    turns of each manifest GET load in the operations group
#                      (metrics and JSON logs on against off; default 3, 0: none)
#   BENCH_AUTH_USERS   users per bcrypt cost (10 and 12) for the sign-in
#                      latencies of the access-control group (default 10)
#   BENCH_PER_REQUEST_TURNS  turns of each load of the per-request cost group
#                      on each of its four servers (default 3, 0: no group)
#   CARGO_TARGET_DIR   honoured; results and server logs of the last run stay
#                      in $CARGO_TARGET_DIR/bench-results/
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${BENCH_OUT:-$ROOT/BENCHMARKS.md}
BIG_MIB=${BENCH_BIG_MIB:-1024}
MEDIUM_MIB=${BENCH_MEDIUM_MIB:-256}
REPEAT=${BENCH_REPEAT:-3}
PUSH_SECS=${BENCH_PUSH_SECS:-10}
LOAD_SECS=${BENCH_LOAD_SECS:-10}
LOAD_TOOL=${BENCH_LOAD_TOOL:-auto}
AUTH_USERS=${BENCH_AUTH_USERS:-10}
GC_IMAGES=${BENCH_GC_IMAGES:-10000}
OPS_TURNS=${BENCH_OPS_TURNS:-3}
PER_REQUEST_TURNS=${BENCH_PER_REQUEST_TURNS:-3}
ONLY=${BENCH_ONLY:-}
case $ONLY in
'' | per-request) ;;
*) echo "bench: BENCH_ONLY=$ONLY: the only group that runs alone is per-request" >&2; exit 1 ;;
esac
[[ $ONLY == per-request ]] && ((PER_REQUEST_TURNS < 1)) && PER_REQUEST_TURNS=1
AUTH_COSTS=(10 12)

# shellcheck source=bench/common.sh
. "$ROOT/bench/common.sh"

# --- 1. packages ------------------------------------------------------------
install_packages docker-registry:docker-registry wrk:wrk htpasswd:apache2-utils
command -v docker-registry >/dev/null 2>&1 ||
    die "the reference registry is missing: install Debian's docker-registry package (CNCF distribution 2.8.2)"
command -v wrk >/dev/null 2>&1 || say "wrk is missing: the GET loads use the benchmark's own load loop"
command -v htpasswd >/dev/null 2>&1 || say "htpasswd (apache2-utils) is missing: the access-control group is left out"

# --- 2. scratch space, clean-up, build --------------------------------------
WORK=$(mktemp -d /tmp/registry-bench.XXXXXX)
cleanup() {
    stop_servers
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
build_binaries
RESULTS=$TARGET_DIR/bench-results
mkdir -p "$RESULTS"

# Distinct free loopback ports: the two servers, and their instances with
# access control on.
pick_port PORT_OURS
pick_port PORT_REF
pick_port PORT_OURS_AUTH
pick_port PORT_REF_AUTH
pick_port PORT_OURS_OPS
pick_port PORT_REF_OPS
pick_port PORT_OURS_OPS_METRICS
pick_port PORT_REF_OPS_METRICS
pick_port PORT_OURS_REUSE
pick_port PORT_NATIVE

# distribution_config DATA PORT [HTPASSWD]: distribution's configuration,
# with htpasswd auth when HTPASSWD is given. DISTRIBUTION_OPS=METRICS_PORT
# turns on what the operations group measures: JSON logs at info (an
# access line per request) and Prometheus metrics on that port.
distribution_config() {
    if [[ -n ${DISTRIBUTION_OPS:-} ]]; then
        printf 'version: 0.1\nlog:\n  level: info\n  formatter: json\n'
    else
        printf 'version: 0.1\nlog:\n  level: warn\n'
    fi
    cat <<EOF
storage:
  filesystem:
    rootdirectory: $1
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:$2
EOF
    if [[ -n ${DISTRIBUTION_OPS:-} ]]; then
        cat <<EOF
  debug:
    addr: 127.0.0.1:$DISTRIBUTION_OPS
    prometheus:
      enabled: true
      path: /metrics
EOF
    fi
    if [[ -n ${3:-} ]]; then
        cat <<EOF
auth:
  htpasswd:
    realm: registry-bench
    path: $3
EOF
    fi
}
mkdir -p "$WORK/ours-data" "$WORK/reference-data"
distribution_config "$WORK/reference-data" "$PORT_REF" >"$WORK/distribution.yml"
mkdir -p "$WORK/ours-ops-data" "$WORK/reference-ops-data"
DISTRIBUTION_OPS=$PORT_REF_OPS_METRICS distribution_config "$WORK/reference-ops-data" "$PORT_REF_OPS" \
    >"$WORK/distribution-ops.yml"

# The access-control group's files (untimed): the users, all with one
# password (the loads' user `load`, and cost<C>-<i> for each bcrypt cost),
# a policy letting every user pull and push bench/**, a token key.
AUTH_DIR=$WORK/auth
AUTH_ON=0
if [[ -z $ONLY ]] && command -v htpasswd >/dev/null 2>&1; then
    mkdir -p "$AUTH_DIR" "$WORK/ours-auth-data" "$WORK/reference-auth-data"
    AUTH_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '+/=')
    # htpasswd_user COST USER: the user's bcrypt line.
    htpasswd_user() { htpasswd -niBC "$1" "$2" <<<"$AUTH_PASSWORD" | sed '/^$/d'; }
    say "writing the access-control users: load, and $AUTH_USERS per bcrypt cost (${AUTH_COSTS[*]})"
    {
        htpasswd_user 10 load
        for cost in "${AUTH_COSTS[@]}"; do
            for ((i = 1; i <= AUTH_USERS; i++)); do htpasswd_user "$cost" "cost$cost-$i"; done
        done
    } >"$AUTH_DIR/htpasswd"
    cat >"$AUTH_DIR/policy.toml" <<'EOF'
[[rules]]
repositories = ["bench/**"]
users = ["*"]
actions = ["pull", "push"]
EOF
    head -c 48 /dev/urandom | base64 -w0 >"$AUTH_DIR/token.key"
    distribution_config "$WORK/reference-auth-data" "$PORT_REF_AUTH" "$AUTH_DIR/htpasswd" \
        >"$WORK/distribution-auth.yml"
    AUTH_ON=1
fi

# --- 4. the machine ---------------------------------------------------------
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
COMPILERS_BEFORE=$(count_compilers)
if [[ ${COMPILERS_BEFORE:-0} -gt 0 ]]; then
    say "note: $COMPILERS_BEFORE compiler processes are running: the numbers will be noisy"
fi

# --- 5. the runs ------------------------------------------------------------
# Each server is started cold (empty data directory) and stopped, then
# started again on the same directory and kept up. The workloads then run
# group by group, each group against ours and then against the reference,
# so that both face the same background (this machine is shared) within a
# minute or two; only one server is ever under load.
: >"$RESULTS/ours.jsonl"
: >"$RESULTS/reference.jsonl"
: >"$RESULTS/ours.log"
: >"$RESULTS/reference.log"
: >"$RESULTS/ours-auth.log"
: >"$RESULTS/reference-auth.log"
: >"$RESULTS/ours-ops.log"
: >"$RESULTS/reference-ops.log"
OURS_CMD=("$HOST_BIN" --listen "127.0.0.1:$PORT_OURS" --data-dir "$WORK/ours-data")
REF_CMD=(docker-registry serve "$WORK/distribution.yml")
URL_OURS=http://127.0.0.1:$PORT_OURS
URL_REF=http://127.0.0.1:$PORT_REF
OURS_AUTH_CMD=("$HOST_BIN" --listen "127.0.0.1:$PORT_OURS_AUTH" --data-dir "$WORK/ours-auth-data"
    --htpasswd "$AUTH_DIR/htpasswd" --access "$AUTH_DIR/policy.toml" --token-key "$AUTH_DIR/token.key")
REF_AUTH_CMD=(docker-registry serve "$WORK/distribution-auth.yml")
OURS_OPS_CMD=("$HOST_BIN" --listen "127.0.0.1:$PORT_OURS_OPS" --data-dir "$WORK/ours-ops-data"
    --metrics-listen "127.0.0.1:$PORT_OURS_OPS_METRICS" --log-format json)
REF_OPS_CMD=(docker-registry serve "$WORK/distribution-ops.yml")
URL_OURS_AUTH=http://127.0.0.1:$PORT_OURS_AUTH
URL_REF_AUTH=http://127.0.0.1:$PORT_REF_AUTH
URL_OURS_REUSE=http://127.0.0.1:$PORT_OURS_REUSE
URL_NATIVE=http://127.0.0.1:$PORT_NATIVE
: >"$RESULTS/per-request.jsonl"
: >"$RESULTS/ours-reuse.log"
: >"$RESULTS/ceiling.log"

# start_server NAME URL METRIC COMMAND...: spawns the server, sets
# SERVER_PID, records the time until it answers GET /v2/.
start_server() {
    local name=$1 url=$2 metric=$3
    shift 3
    spawn_server "$name" "$RESULTS/$name.log" 200 "$url" "$metric" "$@" >>"$RESULTS/$name.jsonl"
    say "$name is up (pid $SERVER_PID): $(tail -1 "$RESULTS/$name.jsonl")"
}

# run_group NAME URL PID GROUPS: one group of workloads against one server.
run_group() {
    local name=$1 url=$2 pid=$3 groups=$4
    say "$name: $groups"
    "$BENCH_BIN" run --url "$url" --pid "$pid" --server "$name" --only "$groups" \
        --big-mib "$BIG_MIB" --medium-mib "$MEDIUM_MIB" \
        --repeat 1 --push-secs "$PUSH_SECS" --load-secs "$LOAD_SECS" --load-tool "$LOAD_TOOL" \
        | tee -a "$RESULTS/$name.jsonl"
}

# The small pushes wait for disk flushes, whose latency here swings several
# times over within seconds: both servers are measured in one run, in
# alternating slices, and each line goes to its server's results.
run_small_pushes() {
    settle_caches
    say "ours + reference, alternating: small"
    "$BENCH_BIN" run --url "$URL_OURS" --pid "$OURS_PID" --server ours --only small \
        --peer-url "$URL_REF" --peer-pid "$REF_PID" --peer-server reference \
        --push-secs "$PUSH_SECS" >"$RESULTS/small.jsonl"
    cat "$RESULTS/small.jsonl"
    grep '"server":"ours"' "$RESULTS/small.jsonl" >>"$RESULTS/ours.jsonl"
    grep '"server":"reference"' "$RESULTS/small.jsonl" >>"$RESULTS/reference.jsonl"
}

# The access-control group: a second instance of each server, with access
# control on (the same users), started, measured and stopped in turn; the
# loads without access control it compares with run on the servers above,
# just before. Its results go with the server's others; its start-up lines
# go to its own log.
run_access_control() {
    local name url open_url open_pid sign_in
    for name in ours reference; do
        if [[ $name == ours ]]; then
            url=$URL_OURS_AUTH open_url=$URL_OURS open_pid=$OURS_PID sign_in=token
            spawn_server ours "$RESULTS/ours-auth.log" 401 "$url" startup_ms "${OURS_AUTH_CMD[@]}" \
                >>"$RESULTS/ours-auth.log"
        else
            url=$URL_REF_AUTH open_url=$URL_REF open_pid=$REF_PID sign_in=basic
            spawn_server reference "$RESULTS/reference-auth.log" 401 "$url" startup_ms "${REF_AUTH_CMD[@]}" \
                >>"$RESULTS/reference-auth.log"
        fi
        say "$name: access control (pid $SERVER_PID)"
        BENCH_AUTH_PASSWORD=$AUTH_PASSWORD "$BENCH_BIN" access --url "$url" --pid "$SERVER_PID" --server "$name" \
            --sign-in "$sign_in" --open-url "$open_url" --open-pid "$open_pid" \
            --costs "$(IFS=,; echo "${AUTH_COSTS[*]}")" --users "$AUTH_USERS" \
            --load-secs "$LOAD_SECS" --load-tool "$LOAD_TOOL" | tee -a "$RESULTS/$name.jsonl"
        stop_server
    done
}

# The operations group: a second instance of each server with metrics and
# JSON logs on, its manifest GET load in turns with the instance above's.
# Its access lines go to its log, as they would in production.
run_operations() {
    local name url cmd metrics default_url default_pid
    for name in ours reference; do
        if [[ $name == ours ]]; then
            url=http://127.0.0.1:$PORT_OURS_OPS metrics=http://127.0.0.1:$PORT_OURS_OPS_METRICS/metrics
            default_url=$URL_OURS default_pid=$OURS_PID cmd=("${OURS_OPS_CMD[@]}")
        else
            url=http://127.0.0.1:$PORT_REF_OPS metrics=http://127.0.0.1:$PORT_REF_OPS_METRICS/metrics
            default_url=$URL_REF default_pid=$REF_PID cmd=("${REF_OPS_CMD[@]}")
        fi
        spawn_server "$name" "$RESULTS/$name-ops.log" 200 "$url" startup_ms "${cmd[@]}" >/dev/null
        say "$name: metrics and JSON logs on (pid $SERVER_PID)"
        "$BENCH_BIN" ops --url "$url" --pid "$SERVER_PID" --metrics-url "$metrics" --server "$name" \
            --default-url "$default_url" --default-pid "$default_pid" --turns "$OPS_TURNS" \
            --load-secs "$LOAD_SECS" --load-tool "$LOAD_TOOL" | tee -a "$RESULTS/$name.jsonl"
        stop_server
    done
}

# The garbage-collection group: a fresh instance of each server fills a
# store of the same shape. Ours collects it online through /_registry/gc
# (grace 0) and then measures image pushes alone and while collections run
# back to back; distribution can only collect offline, so it is stopped and
# its `garbage-collect` timed on its store.
run_garbage_collection() {
    local port url t0 t1
    port=$("$BENCH_BIN" free-port)
    url=http://127.0.0.1:$port
    spawn_server ours "$RESULTS/ours-gc.log" 200 "$url" startup_ms "$HOST_BIN" --listen "127.0.0.1:$port" \
        --data-dir "$WORK/ours-gc-data" --gc-endpoint --gc-grace 0 --gc-interval 0 >>"$RESULTS/ours-gc.log"
    say "ours: garbage collection, $GC_IMAGES images (pid $SERVER_PID)"
    "$BENCH_BIN" gc --url "$url" --server ours --images "$GC_IMAGES" --fill --collect --push-secs "$PUSH_SECS" \
        | tee -a "$RESULTS/ours.jsonl"
    stop_server
    rm -rf "$WORK/ours-gc-data"
    settle_caches

    port=$("$BENCH_BIN" free-port)
    url=http://127.0.0.1:$port
    mkdir -p "$WORK/reference-gc-data"
    distribution_config "$WORK/reference-gc-data" "$port" >"$WORK/distribution-gc.yml"
    spawn_server reference "$RESULTS/reference-gc.log" 200 "$url" startup_ms \
        docker-registry serve "$WORK/distribution-gc.yml" >>"$RESULTS/reference-gc.log"
    say "reference: garbage collection, $GC_IMAGES images (pid $SERVER_PID)"
    "$BENCH_BIN" gc --url "$url" --server reference --images "$GC_IMAGES" --fill | tee -a "$RESULTS/reference.jsonl"
    stop_server
    settle_caches
    t0=$(date +%s%N)
    docker-registry garbage-collect "$WORK/distribution-gc.yml" >>"$RESULTS/reference-gc.log" 2>&1 ||
        die "distribution's garbage-collect failed (see $RESULTS/reference-gc.log)"
    t1=$(date +%s%N)
    printf '{"server":"reference","metric":"gc_collect_s","value":%s,"unit":"s","note":"offline"}\n' \
        "$(awk -v ns=$((t1 - t0)) 'BEGIN { printf "%.2f", ns / 1e9 }')" | tee -a "$RESULTS/reference.jsonl"
    rm -rf "$WORK/reference-gc-data"
}

# The per-request cost group, on ours and the reference above (both up),
# a second registry-host with instance reuse on its own data directory
# (when this registry-host has the flag), and the native ceiling replaying
# ours' answers: the image is pushed to each registry, ours' answers are
# recorded for the ceiling, then the loads run in turns on all four.
run_per_request() {
    local seed urls=(--url "$URL_OURS" --url "$URL_REF") servers absent=() pids=()
    seed=$(date +%s%N)
    servers=(--server "ours=$URL_OURS@$OURS_PID")
    if "$HOST_BIN" --help 2>/dev/null | grep -q instance-reuse; then
        mkdir -p "$WORK/ours-reuse-data"
        spawn_server ours-reuse "$RESULTS/ours-reuse.log" 200 "$URL_OURS_REUSE" startup_ms "$HOST_BIN" \
            --listen "127.0.0.1:$PORT_OURS_REUSE" --data-dir "$WORK/ours-reuse-data" --instance-reuse 1000 \
            >>"$RESULTS/ours-reuse.log"
        pids+=("$SERVER_PID")
        urls+=(--url "$URL_OURS_REUSE")
        servers+=(--server "ours-reuse=$URL_OURS_REUSE@$SERVER_PID")
    else
        absent=(--absent "ours-reuse=this registry-host has no --instance-reuse")
    fi
    say "per-request cost: pushing the image, recording ours' answers"
    "$BENCH_BIN" per-request-setup "${urls[@]}" --capture-from "$URL_OURS" --dir "$WORK/native" --seed "$seed"
    spawn_server ceiling "$RESULTS/ceiling.log" 200 "$URL_NATIVE" startup_ms "$BENCH_BIN" native-server \
        --dir "$WORK/native" --listen "127.0.0.1:$PORT_NATIVE" >>"$RESULTS/ceiling.log"
    pids+=("$SERVER_PID")
    servers+=(--server "ceiling=$URL_NATIVE@$SERVER_PID" --server "reference=$URL_REF@$REF_PID")
    say "per-request cost: ${PER_REQUEST_TURNS} turns of each load on each server"
    "$BENCH_BIN" per-request "${servers[@]}" "${absent[@]}" --compare ours,ceiling --seed "$seed" \
        --turns "$PER_REQUEST_TURNS" --load-secs "$LOAD_SECS" --load-tool "$LOAD_TOOL" \
        | tee "$RESULTS/per-request.jsonl"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
    SERVER_PID=
}

# BENCH_ONLY=per-request: that group alone on freshly started servers, its
# section on its own.
if [[ $ONLY == per-request ]]; then
    start_server ours "$URL_OURS" startup_warm_ms "${OURS_CMD[@]}"
    OURS_PID=$SERVER_PID
    start_server reference "$URL_REF" startup_warm_ms "${REF_CMD[@]}"
    REF_PID=$SERVER_PID
    run_per_request
    stop_servers
    LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
    COMPILERS_AFTER=$(count_compilers)
    EXCLUDE=BENCHMARKS.md
    {
        machine_table
        cat <<EOF
| sizes | the per-request cost group alone, $PER_REQUEST_TURNS turns of each load, GET loads ${LOAD_SECS} s each |
| command | \`BENCH_ONLY=per-request BENCH_LOAD_SECS=$LOAD_SECS bash bench/run.sh\` |
EOF
    } >"$RESULTS/machine.md"
    "$BENCH_BIN" report-per-request --input "$RESULTS/per-request.jsonl" --machine "$RESULTS/machine.md" \
        --out "${BENCH_OUT:-$RESULTS/per-request.md}"
    say "results and server logs: $RESULTS"
    exit 0
fi

# What the server will be sent in a big-blob repetition.
PREWARM_MIB=$((2 * BIG_MIB + MEDIUM_MIB + 512))
prewarm_page_cache "$PREWARM_MIB"
start_server ours "$URL_OURS" startup_cold_ms "${OURS_CMD[@]}"
stop_server
start_server ours "$URL_OURS" startup_warm_ms "${OURS_CMD[@]}"
OURS_PID=$SERVER_PID
start_server reference "$URL_REF" startup_cold_ms "${REF_CMD[@]}"
stop_server
start_server reference "$URL_REF" startup_warm_ms "${REF_CMD[@]}"
REF_PID=$SERVER_PID

run_group ours "$URL_OURS" "$OURS_PID" idle
run_group reference "$URL_REF" "$REF_PID" idle
# The big-blob phases run one repetition at a time, alternating between the
# servers and which of them goes first: the disk's speed drifts over minutes
# here (a third back-to-back repetition ran at half the speed of the first
# for both servers), and this way both meet the same drift. The report pools
# each server's repetitions (median).
for ((rep = 1; rep <= REPEAT; rep++)); do
    if ((rep % 2)); then order=(ours reference); else order=(reference ours); fi
    for name in "${order[@]}"; do
        prewarm_page_cache "$PREWARM_MIB"
        if [[ $name == ours ]]; then
            run_group ours "$URL_OURS" "$OURS_PID" big
        else
            run_group reference "$URL_REF" "$REF_PID" big
        fi
    done
done
run_small_pushes
run_group ours "$URL_OURS" "$OURS_PID" load
run_group reference "$URL_REF" "$REF_PID" load
run_group ours "$URL_OURS" "$OURS_PID" end
run_group reference "$URL_REF" "$REF_PID" end
if ((AUTH_ON)); then run_access_control; fi
if ((OPS_TURNS > 0)); then run_operations; fi
if ((PER_REQUEST_TURNS > 0)); then run_per_request; fi
stop_servers
if ((GC_IMAGES > 0)); then run_garbage_collection; fi

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
COMPILERS_AFTER=$(count_compilers)

# --- 6. the report ----------------------------------------------------------
EXCLUDE=BENCHMARKS.md
auth_sizes=
((AUTH_ON)) && auth_sizes=", access control: sign-ins of $AUTH_USERS users per bcrypt cost (${AUTH_COSTS[*]})"
per_request_sizes=
per_request=()
if ((PER_REQUEST_TURNS > 0)); then
    per_request_sizes=", per-request cost: $PER_REQUEST_TURNS turns of each load"
    per_request=(--per-request "$RESULTS/per-request.jsonl")
fi
{
    machine_table
    cat <<EOF
| sizes | big blob $BIG_MIB MiB, second blob $MEDIUM_MIB MiB, each big phase run $REPEAT times (median), small pushes ${PUSH_SECS} s each, GET loads ${LOAD_SECS} s each$auth_sizes$per_request_sizes |
| command | \`bash bench/run.sh\` |
EOF
} >"$RESULTS/machine.md"

notes=()
# The hand-written profile analysis, kept beside this script, goes at the end.
[[ -f $ROOT/bench/analysis.md ]] && notes=(--notes "$ROOT/bench/analysis.md")
"$BENCH_BIN" report --ours "$RESULTS/ours.jsonl" --reference "$RESULTS/reference.jsonl" "${per_request[@]}" \
    --machine "$RESULTS/machine.md" --out "$OUT" "${notes[@]}"
say "results and server logs: $RESULTS"
