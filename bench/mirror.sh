#!/usr/bin/env bash
# Pull-through mirrors: what the mirror costs on a cold pull (the blob comes
# from the upstream, through the mirror, which stores it as it passes) against
# a pull straight from the upstream, and what a warm pull (from the mirror's
# store) gives, for registry-host (--proxy) and distribution 2.8.2 in proxy mode
# (`proxy.remoteurl`), both mirroring the same upstream, a distribution on
# loopback. Each repetition pushes a new blob of random bytes to the upstream
# and pulls it: directly, cold through each mirror (which goes first
# alternates), then warm through each. Every pull is checked against its
# digest. Prints a table and writes it, with the machine's load, to
# BENCHMARKS-MIRROR.md.
#
#   bash bench/mirror.sh
#
# Environment (all optional):
#   BENCH_MIRROR_MIB   blob size, MiB (default 256)
#   BENCH_REPEAT       repetitions, median reported (default 3)
#   BENCH_MIRROR_OUT   report file (default: BENCHMARKS-MIRROR.md at the root)
#   CARGO_TARGET_DIR   honoured
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${BENCH_MIRROR_OUT:-$ROOT/BENCHMARKS-MIRROR.md}
MIB=${BENCH_MIRROR_MIB:-256}
REPEAT=${BENCH_REPEAT:-3}

# shellcheck source=bench/common.sh
. "$ROOT/bench/common.sh"
STARTED=$(date +%s)

stage packages
install_packages docker-registry:docker-registry curl:curl

stage build
host_in_work mirror

stage servers
UP=$(free_port)
OURS=$(free_port)
REF=$(free_port)
# distribution_config DATA PORT [REMOTE]: distribution, as a proxy of REMOTE if given.
distribution_config() {
    printf 'version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\n' "$1"
    printf '  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:%s\n' "$2"
    [[ -z ${3:-} ]] || printf 'proxy:\n  remoteurl: %s\n' "$3"
}
distribution_config "$WORK/upstream" "$UP" >"$WORK/upstream.yml"
distribution_config "$WORK/reference" "$REF" "http://127.0.0.1:$UP" >"$WORK/reference.yml"
printf '[[upstream]]\nprefix = ""\nurl = "http://127.0.0.1:%s"\n' "$UP" >"$WORK/mirrors.toml"
# wait_for PORT: until GET /v2/ answers there.
wait_for() {
    for _ in $(seq 300); do
        curl -sf -o /dev/null "http://127.0.0.1:$1/v2/" && return 0
        sleep 0.1
    done
    die "nothing answers on port $1 (logs: $WORK)"
}
docker-registry serve "$WORK/upstream.yml" >"$WORK/upstream.log" 2>&1 &
PIDS+=($!)
# distribution's proxy mode asks the upstream at start-up.
wait_for "$UP"
"$WORK/registry-host" --listen "127.0.0.1:$OURS" --data-dir "$WORK/ours" --proxy "$WORK/mirrors.toml" \
    --log-level warn >"$WORK/ours.log" 2>&1 &
OURS_PID=$!
PIDS+=("$OURS_PID")
docker-registry serve "$WORK/reference.yml" >"$WORK/reference.log" 2>&1 &
REF_PID=$!
PIDS+=("$REF_PID")
wait_for "$OURS"
wait_for "$REF"

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
COMPILERS_BEFORE=$(count_compilers)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# pull PORT DIGEST PID: GET of the blob, hashed; prints "MB/s CPU_S_PER_GIB"
# (the server PID's CPU; 0 for the upstream, which is not measured).
pull() {
    local c0 c1 out seconds bytes got
    c0=$([[ $3 == 0 ]] && echo 0 || cpu_ticks "$3")
    # The bytes go straight into sha256sum; curl's figures go to stderr.
    out=$({ curl -sf -w '%{stderr}%{time_total} %{size_download}\n' "http://127.0.0.1:$1/v2/bench/mirror/blobs/$2" |
        sha256sum >"$WORK/sum"; } 2>&1) || die "GET of $2 on port $1 failed"
    c1=$([[ $3 == 0 ]] && echo 0 || cpu_ticks "$3")
    got="sha256:$(cut -d' ' -f1 "$WORK/sum")"
    [[ $got == "$2" ]] || die "port $1 served $got for $2"
    read -r seconds bytes <<<"$out"
    awk -v s="$seconds" -v b="$bytes" -v t=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" \
        'BEGIN { printf "%.0f %.2f\n", b / s / 1e6, t / hz / (b / 1073741824) }'
}
declare -A mbps cpu
stage pulls
for rep in $(seq "$REPEAT"); do
    head -c "$((MIB << 20))" /dev/urandom >"$WORK/blob"
    digest="sha256:$(sha256sum "$WORK/blob" | cut -d' ' -f1)"
    # POST, then PUT ?digest= with the bytes (distribution answers a POST
    # ?digest= with a session, not the monolithic upload).
    location=$(curl -sf -D - -o /dev/null -X POST "http://127.0.0.1:$UP/v2/bench/mirror/blobs/uploads/" |
        awk 'tolower($1) == "location:" { print $2 }' | tr -d '\r')
    [[ $location == /* ]] && location="http://127.0.0.1:$UP$location"
    [[ $location == *\?* ]] && location+="&" || location+="?"
    curl -sf -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$WORK/blob" \
        "${location}digest=$digest" || die "pushing to the upstream failed"
    rm -f "$WORK/blob"
    read -r m c < <(pull "$UP" "$digest" 0)
    mbps[direct]+="$m " cpu[direct]+="$c "
    if ((rep % 2)); then order=(ours reference); else order=(reference ours); fi
    for phase in cold warm; do
        for name in "${order[@]}"; do
            if [[ $name == ours ]]; then port=$OURS pid=$OURS_PID; else port=$REF pid=$REF_PID; fi
            read -r m c < <(pull "$port" "$digest" "$pid")
            mbps[$phase-$name]+="$m " cpu[$phase-$name]+="$c "
            say "repetition $rep, $phase, $name: $m MB/s, $c s CPU per GiB"
        done
    done
    say "repetition $rep, direct from the upstream: ${mbps[direct]##* } MB/s"
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
COMPILERS_AFTER=$(count_compilers)
peak() { awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }
OURS_PEAK=$(peak "$OURS_PID")
REF_PEAK=$(peak "$REF_PID")

stage report
med() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | median; }
row() {
    printf '| %s | %s | %s | %s |\n' "$1" "$(med "${mbps[$2]}")" "$(if [[ $2 == direct ]]; then echo –; else med "${cpu[$2]}"; fi)" "${mbps[$2]% }"
}
ratio() { awk -v a="$(med "${mbps[$1]}")" -v b="$(med "${mbps[$2]}")" 'BEGIN { printf "%.2f", a / b }'; }
LOAD_TOOL=curl
EXCLUDE=BENCHMARKS-MIRROR.md
{
    echo "# Pull-through mirrors"
    echo
    echo "One run of \`bash bench/mirror.sh\`: blobs of $MIB MiB of random bytes pushed to an upstream (distribution"
    echo "2.8.2 on loopback, filesystem storage) and pulled with curl (each checked against its digest):"
    echo "directly from the upstream, cold through each mirror (it fetches from the upstream and stores"
    echo "as it serves), then warm (from the mirror's store). Ours: \`registry-host --proxy\`; the reference:"
    echo "distribution 2.8.2 in proxy mode (\`proxy.remoteurl\`), both mirroring the same upstream. $REPEAT"
    echo "repetitions, a new blob each, which mirror goes first alternating; medians."
    echo
    machine_table | sed '/^| GET load tool/d'
    echo
    echo "## Results"
    echo
    echo "| pull of $MIB MiB | MB/s (median) | mirror CPU, s per GiB (median) | MB/s, each repetition |"
    echo "|---|---:|---:|---|"
    row "directly from the upstream" direct
    row "cold, through ours" cold-ours
    row "cold, through the reference" cold-reference
    row "warm, from ours" warm-ours
    row "warm, from the reference" warm-reference
    echo
    echo "- Cold through ours is $(ratio cold-ours direct)× a direct pull from the upstream (the tee's cost:"
    echo "  hashing, storing, and holding back the last chunk until the digest checks); through the"
    echo "  reference, $(ratio cold-reference direct)×."
    echo "- Warm: ours $(ratio warm-ours warm-reference)× the reference."
    echo "- Peak RSS over the run: ours $OURS_PEAK MiB, the reference $REF_PEAK MiB."
} >"$OUT"
cat "$OUT"
stage ""
say "done in $(($(date +%s) - STARTED)) s"
