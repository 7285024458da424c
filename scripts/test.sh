#!/usr/bin/env bash
# Runs every test of the workspace: the unit tests of each crate and the end-to-end
# suite (tests/e2e), which starts the real registry-host and drives it with raw HTTP,
# the oci-client crate, the Docker CLI, skopeo and the oras Python SDK.
#
# This is the project's single test command (README, .ci/run and the GitHub
# workflow all run it). On a fresh Debian/Ubuntu machine, as root, it installs what
# it needs; without root it says what to install instead of skipping anything.
#
# It starts a private dockerd (no network, vfs storage, its own socket and data in a
# temporary directory) for the Docker CLI test, and always stops and removes it on
# exit. Extra arguments go to the end-to-end `cargo test`, e.g. `scripts/test.sh uploads`.
#
# Environment:
#   CARGO_TARGET_DIR        where to build; with CI=true and unset, a fixed directory
#                           outside the clone (/var/cache/wasm-registry/target) that
#                           later CI runs on the same machine reuse.
#   REGISTRY_TEST_NO_DOCKER=1  skip the Docker daemon and the Docker CLI test, on
#                           purpose (for machines where no dockerd can run).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

section() {
    printf '\n==== %s ====\n' "$*"
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

# ---------------------------------------------------------------------------------
section "Checking tools"

# Whether the Debian package $1 is installed (false where there is no dpkg).
have_package() {
    command -v dpkg-query >/dev/null 2>&1 &&
        dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=()
command -v cargo >/dev/null 2>&1 ||
    die "cargo not found: install Rust with rustup (https://rustup.rs); rust-toolchain.toml picks the toolchain and the wasm32-wasip2 target"
command -v cc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
command -v tar >/dev/null 2>&1 || missing+=(tar)
command -v skopeo >/dev/null 2>&1 || missing+=(skopeo)
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
(REGISTRY_TEST_NO_DOCKER=1 leaves out the Docker test and its packages, on purpose.)"
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
dockerd_pid=""    # what we started: dockerd, or the sudo running it
dockerd_target="" # dockerd itself
docker_dir=""

stop_dockerd() {
    local status=$?
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
    return "$status"
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
    trap stop_dockerd EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
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

# ---------------------------------------------------------------------------------
section "Build: cargo build --release -p registry-host"
# Exactly the README's build, so the suite tests what users run and the two
# share one build. Release: a debug wasmtime would be a second long build.
cargo build --release -p registry-host
export REGISTRY_HOST_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/registry-host"

section "Unit tests: cargo test --release"
cargo test --release

section "End-to-end tests: cargo test --release --manifest-path tests/Cargo.toml $*"
# tests/ is its own workspace: its client crates must not change the features
# the registry's crates are built with (that would compile wasmtime twice).
cargo test --release --manifest-path tests/Cargo.toml "$@"

section "All tests passed"
