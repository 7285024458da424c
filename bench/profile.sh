#!/usr/bin/env bash
# Profiles registry-host during one group of the benchmark's workloads:
# perf samples the server (cpu-clock, so it works in VMs without hardware
# counters) while registry-bench drives it, then prints the top symbols.
#
#   bash bench/profile.sh big|small|load [perf report options...]
#
# Needs perf (Debian: linux-perf). Builds like bench/run.sh; the perf data,
# the server log and the results stay in $CARGO_TARGET_DIR/bench-profile/.
# For call graphs: BENCH_PERF_CALLGRAPH=dwarf (large files; keep runs short).
# The server runs with REGISTRY_PERFMAP=1, so that wasmtime writes
# /tmp/perf-<pid>.map and the component's functions appear by name.
set -euo pipefail

GROUP=${1:?usage: bash bench/profile.sh big|small|load}
shift
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUTDIR=$TARGET_DIR/bench-profile
command -v perf >/dev/null 2>&1 || { echo "profile: perf is missing (apt-get install linux-perf)" >&2; exit 1; }
(cd "$ROOT" && cargo build --release -p registry-host -p registry-bench)
HOST_BIN=$TARGET_DIR/release/registry-host
BENCH_BIN=$TARGET_DIR/release/registry-bench

WORK=$(mktemp -d /tmp/registry-profile.XXXXXX)
mkdir -p "$OUTDIR"
SERVER_PID=
cleanup() {
    [[ -n $SERVER_PID ]] && { kill -TERM "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; }
    rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$("$BENCH_BIN" free-port)
URL=http://127.0.0.1:$PORT
env -u RUST_BACKTRACE -u RUST_LIB_BACKTRACE REGISTRY_PERFMAP=1 "$HOST_BIN" --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" \
    >"$OUTDIR/server.log" 2>&1 &
SERVER_PID=$!
"$BENCH_BIN" wait --url "$URL" --server ours --since-ns 0 >/dev/null
# Touch as much page cache as the phase writes (see bench/run.sh).
dd if=/dev/zero of="$WORK/prewarm" bs=1M count=3000 status=none && rm -f "$WORK/prewarm"

callgraph=()
[[ -n ${BENCH_PERF_CALLGRAPH:-} ]] && callgraph=(--call-graph "$BENCH_PERF_CALLGRAPH")
perf record -e cpu-clock -F 999 "${callgraph[@]}" -p "$SERVER_PID" -o "$OUTDIR/perf.data" >/dev/null 2>&1 &
PERF_PID=$!
sleep 0.3
"$BENCH_BIN" run --url "$URL" --pid "$SERVER_PID" --server ours --only "$GROUP" --repeat 1 --load-secs ${BENCH_LOAD_SECS:-10} \
    | tee "$OUTDIR/results.jsonl"
kill -INT "$PERF_PID"
wait "$PERF_PID" || true
echo "== by binary"
perf report -i "$OUTDIR/perf.data" --stdio --sort dso 2>/dev/null | grep -v '^#' | grep -v '^$' | head -8
echo "== top symbols ([JIT] = the registry component's own code)"
perf report -i "$OUTDIR/perf.data" --stdio --sort dso,sym "$@" 2>/dev/null | grep -v '^#' | grep -v '^$' | head -30
echo "perf data: $OUTDIR/perf.data"
