#!/usr/bin/env bash
# What operations features cost: manifest GET on registry-host as it starts by
# default, against the same build with Prometheus metrics (--metrics-listen)
# and JSON logs (--log-format json) on, both serving one manifest, in turns
# (default, on, default, on, ...) so that both meet the same drift of the
# machine; each row the median of its turns. The target: at most 5% fewer
# requests per second with both on. Prints a table and writes it, with the
# machine's load, to BENCHMARKS-OPS.md.
#
#   bash bench/ops.sh
#
# Environment (all optional):
#   BENCH_OPS_TURNS    turns of each (default 5)
#   BENCH_LOAD_SECS    seconds per turn (default 10)
#   BENCH_OPS_OUT      report file (default: BENCHMARKS-OPS.md at the root)
#   CARGO_TARGET_DIR   honoured
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${BENCH_OPS_OUT:-$ROOT/BENCHMARKS-OPS.md}
TURNS=${BENCH_OPS_TURNS:-5}
LOAD_SECS=${BENCH_LOAD_SECS:-10}

# shellcheck source=bench/common.sh
. "$ROOT/bench/common.sh"
STARTED=$(date +%s)

stage packages
install_packages wrk:wrk curl:curl
command -v wrk >/dev/null 2>&1 || die "wrk is missing: install Debian's wrk package"

stage build
host_in_work ops


stage servers
PLAIN=$(free_port)
ON=$(free_port)
METRICS=$(free_port)
"$WORK/registry-host" --listen "127.0.0.1:$PLAIN" --data-dir "$WORK/plain" >"$WORK/plain.log" 2>&1 &
PLAIN_PID=$!
PIDS+=("$PLAIN_PID")
"$WORK/registry-host" --listen "127.0.0.1:$ON" --data-dir "$WORK/on" \
    --metrics-listen "127.0.0.1:$METRICS" --log-format json >"$WORK/on.log" 2>&1 &
ON_PID=$!
PIDS+=("$ON_PID")
for port in "$PLAIN" "$ON"; do
    for _ in $(seq 300); do
        curl -sf -o /dev/null "http://127.0.0.1:$port/v2/" && break
        sleep 0.1
    done
done

# One small image on each: a config and a manifest.
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >"$WORK/config"
CONFIG="sha256:$(sha256sum "$WORK/config" | cut -d' ' -f1)"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[]}' \
    "$CONFIG" "$(stat -c %s "$WORK/config")" >"$WORK/manifest"
for port in "$PLAIN" "$ON"; do
    curl -sf -o /dev/null -X POST --data-binary "@$WORK/config" "http://127.0.0.1:$port/v2/bench/ops/blobs/uploads/?digest=$CONFIG"
    curl -sf -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
        --data-binary "@$WORK/manifest" "http://127.0.0.1:$port/v2/bench/ops/manifests/v1"
done

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
COMPILERS_BEFORE=$(count_compilers)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# turn NAME PID PORT: one load; prints "RPS CPU_US_PER_REQUEST".
turn() {
    local c0 c1 out rps requests
    c0=$(cpu_ticks "$2")
    out=$(wrk -t2 -c16 -d"${LOAD_SECS}s" -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
        "http://127.0.0.1:$3/v2/bench/ops/manifests/v1")
    c1=$(cpu_ticks "$2")
    rps=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
    requests=$(awk '/requests in/ { print $1 }' <<<"$out")
    grep -q 'Non-2xx' <<<"$out" && die "$1: wrk saw non-2xx answers: $out"
    awk -v r="$rps" -v t=$((c1 - c0)) -v n="$requests" -v hz="$(getconf CLK_TCK)" \
        'BEGIN { printf "%.0f %.1f\n", r, t / hz * 1e6 / n }'
}
stage loads
plain_rps=() on_rps=() plain_cpu=() on_cpu=() ratios=()
for i in $(seq "$TURNS"); do
    read -r r c < <(turn default "$PLAIN_PID" "$PLAIN")
    plain_rps+=("$r") plain_cpu+=("$c")
    read -r r2 c2 < <(turn on "$ON_PID" "$ON")
    on_rps+=("$r2") on_cpu+=("$c2")
    ratios+=("$(awk -v a="$r2" -v b="$r" 'BEGIN { printf "%.3f", a / b }')")
    say "turn $i: default $r req/s ($c µs CPU), metrics and JSON logs $r2 req/s ($c2 µs CPU): ${ratios[-1]}"
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
COMPILERS_AFTER=$(count_compilers)
# The exposition was served and the JSON lines written (the loads above were answered).
scraped=$(curl -sf "http://127.0.0.1:$METRICS/metrics" | grep -c '^registry_http_requests_total' || true)
json_lines=$(grep -c '"target":"access"' "$WORK/on.log" || true)

stage report
ratio=$(printf '%s\n' "${ratios[@]}" | median)
met=$(awk -v r="$ratio" 'BEGIN { print (r >= 0.95) ? "yes" : "no" }')
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD -- . ":!BENCHMARKS-OPS.md" 2>/dev/null || commit="$commit (with uncommitted changes)"
cat >"$OUT" <<REPORT
# What metrics and JSON logs cost

One run of \`bash bench/ops.sh\`: manifest GET (\`wrk -t2 -c16\`, ${LOAD_SECS} s a turn) on \`registry-host\` as
it starts by default, and on the same build with \`--metrics-listen\` and \`--log-format json\`, in
$TURNS turns each, alternating; the median of the turns. Target: with both on, at least 95% of the
default rate.

| | |
|---|---|
| date | $(date -u '+%Y-%m-%d %H:%M UTC') |
| CPU | $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores |
| load average (1, 5, 15 min) | before: $LOAD_BEFORE; after: $LOAD_AFTER |
| compiler processes running | before: ${COMPILERS_BEFORE:-0}; after: ${COMPILERS_AFTER:-0} |
| commit | $commit |

| | default | metrics and JSON logs | ratio |
|---|---:|---:|---:|
| manifest GET, req/s (median) | $(printf '%s\n' "${plain_rps[@]}" | median) | $(printf '%s\n' "${on_rps[@]}" | median) | $ratio |
| server CPU per request, µs (median) | $(printf '%s\n' "${plain_cpu[@]}" | median) | $(printf '%s\n' "${on_cpu[@]}" | median) | |
| turns, req/s | ${plain_rps[*]} | ${on_rps[*]} | ${ratios[*]} |

Target met (ratio ≥ 0.95): **$met**. During the run the metrics address answered with
$scraped \`registry_http_requests_total\` series, and the JSON log held $json_lines access lines.
REPORT
cat "$OUT"
stage ""
say "done in $(($(date +%s) - STARTED)) s"
