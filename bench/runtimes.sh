#!/usr/bin/env bash
# The registry on each runtime of scripts/serve.sh, side by side, in one run:
#
#   bash bench/runtimes.sh
#
# Per runtime, one after another on this machine, each on a fresh data directory:
#   - cold start: from launching `scripts/serve.sh RUNTIME --no-build` to the
#     registry's first answer to `GET /v2/` (polled every 10 ms), the runtime's own
#     start-up, and its compilation or transpilation of the registry, included;
#   - push of a 100 MiB blob in 10 MiB chunks (POST, ten PATCHes, PUT ?digest=) and
#     its pull (one GET, SHA-256 checked), with curl, the median of BENCH_REPEAT runs;
#   - manifest GET req/s: `wrk -t2 -c16` for BENCH_LOAD_SECS on one manifest;
#   - what the runtime loads, raw and gzipped: registry-host's binary (the
#     component inside), registry.wasm, or the JavaScript bundle with its Wasm
#     modules; and the runtime's own executable.
# Writes the table, with a description of the machine, to BENCHMARKS-RUNTIMES.md.
# Each stage prints its time.
#
# Environment (all optional):
#   BENCH_RUNTIMES     the runtimes (default: host wasmtime jco wash workerd wrangler deno;
#                      wrangler: the Worker under `wrangler dev`, blobs in its local R2)
#   BENCH_REPEAT       push and pull runs per runtime, median reported (default 3)
#   BENCH_LOAD_SECS    seconds of manifest GET load (default 10)
#   BENCH_RUNTIMES_OUT report file (default: BENCHMARKS-RUNTIMES.md at the root)
#   CARGO_TARGET_DIR   honoured, as by scripts/serve.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${BENCH_RUNTIMES_OUT:-$ROOT/BENCHMARKS-RUNTIMES.md}
read -r -a RUNTIMES <<<"${BENCH_RUNTIMES:-host wasmtime jco wash workerd wrangler deno}"
REPEAT=${BENCH_REPEAT:-3}
LOAD_SECS=${BENCH_LOAD_SECS:-10}
BLOB_MIB=100
CHUNK_MIB=10

# shellcheck source=bench/common.sh
. "$ROOT/bench/common.sh"

STARTED=$(date +%s)

stage packages
install_packages wrk:wrk curl:curl
command -v wrk >/dev/null 2>&1 || die "wrk is missing: install Debian's wrk package"

target_dir=${CARGO_TARGET_DIR:-$ROOT/target}
[[ $target_dir == /* ]] || target_dir="$ROOT/$target_dir"
export CARGO_TARGET_DIR=$target_dir
runtimes_dir="$target_dir/runtimes"
# shellcheck source=scripts/runtimes.sh
. "$ROOT/scripts/runtimes.sh"

WORK=$(mktemp -d /tmp/registry-bench-runtimes.XXXXXX)
SERVER_PGID=
stop_runtime() {
    [[ -n $SERVER_PGID ]] || return 0
    kill -TERM -- "-$SERVER_PGID" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 -- "-$SERVER_PGID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$SERVER_PGID" 2>/dev/null || true
    wait "$SERVER_PGID" 2>/dev/null || true
    SERVER_PGID=
}
trap 'stop_runtime; rm -rf "$WORK"' EXIT

stage build
for runtime in "${RUNTIMES[@]}"; do
    [[ $runtime == deno ]] && continue # built with workerd's bundle
    say "building for $runtime"
    bash "$ROOT/scripts/serve.sh" "$runtime" --build-only >&2
done
if [[ " ${RUNTIMES[*]} " == *" deno "* && " ${RUNTIMES[*]} " != *" workerd "* ]]; then
    bash "$ROOT/scripts/serve.sh" deno --build-only >&2
fi
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
COMPILERS_BEFORE=$(count_compilers)

# The test blob, its chunks, and a manifest that names it.
stage data
head -c $((BLOB_MIB << 20)) /dev/urandom >"$WORK/blob"
BLOB_DIGEST="sha256:$(sha256sum "$WORK/blob" | cut -d' ' -f1)"
split -b "${CHUNK_MIB}M" -d -a 3 "$WORK/blob" "$WORK/chunk."
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >"$WORK/config"
CONFIG_DIGEST="sha256:$(sha256sum "$WORK/config" | cut -d' ' -f1)"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%d}]}' \
    "$CONFIG_DIGEST" "$(stat -c %s "$WORK/config")" "$BLOB_DIGEST" "$(stat -c %s "$WORK/blob")" >"$WORK/manifest"

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
mbps() { awk -v s="$1" -v b=$((BLOB_MIB << 20)) 'BEGIN { printf "%.0f", b / s / 1e6 }'; }
fmt_size() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }

# The Location header of a curl -D dump, made absolute.
location() {
    local loc
    loc=$(grep -i '^location:' "$1" | tail -1 | cut -d' ' -f2- | tr -d '\r')
    [[ $loc == http* ]] || loc="$URL$loc"
    echo "$loc"
}

# Pushes the test blob to repository $1 in chunks; its time in seconds.
push_chunked() {
    local repo=$1 start loc offset=0 size chunk code
    start=$(now)
    curl -s -o /dev/null -D "$WORK/h" -X POST "$URL/v2/$repo/blobs/uploads/"
    loc=$(location "$WORK/h")
    for chunk in "$WORK"/chunk.*; do
        size=$(stat -c %s "$chunk")
        code=$(curl -s -o /dev/null -D "$WORK/h" -w '%{http_code}' -X PATCH \
            -H 'Content-Type: application/octet-stream' \
            -H "Content-Range: $offset-$((offset + size - 1))" --data-binary "@$chunk" "$loc")
        [[ $code == 202 ]] || die "$RUNTIME: PATCH at $offset answered $code"
        loc=$(location "$WORK/h")
        offset=$((offset + size))
    done
    [[ $loc == *\?* ]] && loc="$loc&digest=$BLOB_DIGEST" || loc="$loc?digest=$BLOB_DIGEST"
    code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT "$loc")
    [[ $code == 201 ]] || die "$RUNTIME: closing PUT answered $code"
    secs "$start" "$(now)"
}

# Pulls the test blob from repository $1, checking its digest; the time.
pull() {
    local repo=$1 start digest
    start=$(now)
    digest=$(curl -s "$URL/v2/$repo/blobs/$BLOB_DIGEST" | sha256sum | cut -d' ' -f1)
    [[ "sha256:$digest" == "$BLOB_DIGEST" ]] || die "$RUNTIME: the pulled blob differs"
    secs "$start" "$(now)"
}

# The bytes of the files $@, raw and gzipped, as "RAW GZIPPED".
sizes() {
    local raw=0 gz=0 f
    for f in "$@"; do
        raw=$((raw + $(stat -c %s "$f")))
        gz=$((gz + $(gzip -c "$f" | wc -c)))
    done
    echo "$raw $gz"
}

# What each runtime loads, and its own executable.
edge="$target_dir/edge/cloudflare"
artifact_files() {
    case $1 in
    host)
        # Without the debug information that the release profile keeps for
        # profiling, as one would ship it.
        strip -o "$WORK/registry-host" "$target_dir/release/registry-host"
        echo "$WORK/registry-host"
        ;;
    wasmtime | jco | wash) echo "$target_dir/release/registry.wasm" ;;
    workerd | wrangler) echo "$edge/worker.js" "$edge"/registry/*.wasm ;;
    deno) echo "$edge/deno.js" "$edge"/registry/*.wasm ;;
    esac
}
runtime_executable() {
    case $1 in
    host) echo "(the binary itself)" ;;
    wasmtime) install_wasmtime && echo "wasmtime $(stat -c %s "$WASMTIME_BIN")" ;;
    jco) echo "node $(stat -c %s "$(readlink -f "$(command -v node)")")" ;;
    wash) install_wash && echo "wash $(stat -c %s "$WASH_BIN")" ;;
    workerd | wrangler) install_edge && echo "workerd $(stat -c %s "$(readlink -f "$EDGE_MODULES/.bin/workerd")")" ;;
    deno) install_edge && echo "deno $(stat -c %s "$(readlink -f "$DENO_BIN")")" ;;
    esac
}

ROWS=()
for RUNTIME in "${RUNTIMES[@]}"; do
    stage "$RUNTIME"
    port=$(free_port)
    URL="http://127.0.0.1:$port"
    data="$WORK/data-$RUNTIME"
    mkdir -p "$data"
    start=$(now)
    set -m
    bash "$ROOT/scripts/serve.sh" "$RUNTIME" --no-build --addr "127.0.0.1:$port" --data "$data" \
        >"$WORK/$RUNTIME.log" 2>&1 &
    SERVER_PGID=$!
    set +m
    answered=""
    for _ in $(seq 12000); do
        kill -0 "$SERVER_PGID" 2>/dev/null || die "$RUNTIME stopped: $(tail -5 "$WORK/$RUNTIME.log")"
        # The registry's answer (wash answers 404 itself until the component is deployed).
        if [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$URL/v2/" || true) == 200 ]]; then
            answered=$(now)
            break
        fi
        sleep 0.01
    done
    [[ -n $answered ]] || die "$RUNTIME did not answer in 120 s"
    cold_ms=$(awk -v s="$(secs "$start" "$answered")" 'BEGIN { printf "%.0f", s * 1000 }')
    say "$RUNTIME answered after $cold_ms ms"

    pushes=()
    pulls=()
    for i in $(seq "$REPEAT"); do
        pushes+=("$(push_chunked "bench/rt$i")")
        pulls+=("$(pull "bench/rt$i")")
        say "$RUNTIME run $i: push ${pushes[-1]} s, pull ${pulls[-1]} s"
    done
    push_s=$(printf '%s\n' "${pushes[@]}" | median)
    pull_s=$(printf '%s\n' "${pulls[@]}" | median)

    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/octet-stream' \
        --data-binary "@$WORK/config" "$URL/v2/bench/rt1/blobs/uploads/?digest=$CONFIG_DIGEST")
    [[ $code == 201 ]] || die "$RUNTIME: config push answered $code"
    code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
        --data-binary "@$WORK/manifest" "$URL/v2/bench/rt1/manifests/v1")
    [[ $code == 201 ]] || die "$RUNTIME: manifest push answered $code"
    rps=$(wrk -t2 -c16 -d"${LOAD_SECS}s" -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
        "$URL/v2/bench/rt1/manifests/v1" | awk '/Requests\/sec/ { printf "%.0f", $2 }')
    non2xx=$(curl -s -o /dev/null -w '%{http_code}' -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
        "$URL/v2/bench/rt1/manifests/v1")
    [[ $non2xx == 200 ]] || die "$RUNTIME: manifest GET answered $non2xx"
    say "$RUNTIME: manifest GET $rps req/s"
    stop_runtime

    # shellcheck disable=SC2046
    read -r raw gz <<<"$(sizes $(artifact_files "$RUNTIME"))"
    exe=$(runtime_executable "$RUNTIME")
    [[ $exe == *\ [0-9]* ]] && exe="${exe% *} $(fmt_size "${exe##* }")"
    ROWS+=("| $RUNTIME | $(mbps "$push_s") MB/s ($push_s s) | $(mbps "$pull_s") MB/s ($pull_s s) | $rps | $cold_ms ms | $(fmt_size "$raw") / $(fmt_size "$gz") | $exe |")
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
COMPILERS_AFTER=$(count_compilers)

stage report
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD -- . ":!BENCHMARKS-RUNTIMES.md" 2>/dev/null || commit="$commit (with uncommitted changes)"
{
    cat <<EOF
# The registry on each runtime

One run of \`bash bench/runtimes.sh\`: every runtime of \`scripts/serve.sh\` in turn, on a fresh data
directory, alone on the machine (no other load from the run), with curl and wrk on loopback.

| | |
|---|---|
| date | $(date -u '+%Y-%m-%d %H:%M UTC') |
| CPU | $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores (nproc) |
| kernel | $(uname -sr) |
| load average (1, 5, 15 min) | before: $LOAD_BEFORE; after: $LOAD_AFTER |
| compiler processes running | before: ${COMPILERS_BEFORE:-0}; after: ${COMPILERS_AFTER:-0} |
| commit | $commit |
| runs | push and pull: median of $REPEAT; manifest GET: wrk -t2 -c16 for $LOAD_SECS s |
| duration | $(($(date +%s) - STARTED)) s, build included |

| runtime | push ${BLOB_MIB} MiB in ${CHUNK_MIB} MiB chunks | pull ${BLOB_MIB} MiB | manifest GET req/s | cold start to first answer | what it loads, raw / gzipped | the runtime's executable |
|---|---:|---:|---:|---:|---:|---|
EOF
    printf '%s\n' "${ROWS[@]}"
    cat <<'EOF'

- **push**: `POST /blobs/uploads/`, ten `PATCH`es of 10 MiB with `Content-Range`, `PUT ?digest=`, one
  curl process per request; **pull**: one `GET`, hashed as it arrives (the time includes `sha256sum`).
- **cold start**: from launching `scripts/serve.sh RUNTIME --no-build` (bash, the checks that the
  runtime is installed, the runtime's start, its compilation of the registry, and the first request)
  to the registry's first answer to `GET /v2/`, polled every 10 ms. registry-host compiles the
  component into its fresh data directory's cache; `wasmtime serve` and `wash dev` compile it with
  Cranelift unless their own compiled-code cache (in the user's home) holds it from an earlier start,
  as it does in any run but the very first on a machine;
  `jco serve` transpiles it to JavaScript at every start; workerd and Deno hand the core modules to
  V8, which compiles them lazily; `wrangler dev` (on Node.js) starts miniflare's two workerd
  processes, a proxy and the Worker's, which also simulates the R2 bucket.
- **what it loads**: registry-host's binary (stripped of its debug information; the component is
  inside); `registry.wasm` (with its DWARF sections) for wasmtime, jco and wash; the bundle and its core
  Wasm modules (DWARF removed) for workerd, wrangler and Deno. The runtime's executable is what runs
  it (node: the system's; for wrangler, the workerd it runs, without wrangler's Node.js).
EOF
} >"$OUT"
cat "$OUT"
stage ""
say "done in $(($(date +%s) - STARTED)) s"
