#!/usr/bin/env bash
# Builds the registry-host container image (Dockerfile) without pulling any
# base image: the context's rootfs/ holds the stripped release binary, the
# shared libraries it links (as `ldd` finds them on this machine), an
# /etc/passwd and /etc/group naming the non-root user 10001, /tmp, and the
# data directory (/data, a volume) owned by that user.
#
#   bash scripts/image.sh [TAG] [--no-build]
#
# TAG defaults to registry-host:latest. --no-build uses the binary built
# before ($REGISTRY_HOST_BIN, else <target>/release/registry-host). Needs
# docker (any daemon); CARGO_TARGET_DIR names the build directory as for cargo.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() {
    printf 'image.sh: %s\n' "$*" >&2
    exit 1
}

tag=registry-host:latest
build=1
for arg in "$@"; do
    case "$arg" in
    --no-build) build=0 ;;
    -*) die "unknown flag $arg; usage: scripts/image.sh [TAG] [--no-build]" ;;
    *) tag=$arg ;;
    esac
done
target_dir="${CARGO_TARGET_DIR:-target}"
[[ "$target_dir" == /* ]] || target_dir="$PWD/$target_dir"
((build)) && cargo build --release -p registry-host
binary=${REGISTRY_HOST_BIN:-$target_dir/release/registry-host}
[[ -x "$binary" ]] || die "no $binary: build it (run without --no-build)"
command -v docker >/dev/null 2>&1 || die "docker is missing"

context="$target_dir/image"
rm -rf "$context"
rootfs="$context/rootfs"
mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc" "$rootfs/tmp"
strip -o "$rootfs/usr/local/bin/registry-host" "$binary"
# The dynamic loader and every library the binary links, at the same paths.
while read -r lib; do
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
done < <(ldd "$binary" | grep -o '/[^ ]*' | sort -u)
printf 'root:x:0:0:root:/:/sbin/nologin\nregistry:x:10001:10001:registry:/data:/sbin/nologin\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nregistry:x:10001:\n' >"$rootfs/etc/group"
chmod 1777 "$rootfs/tmp"
cp Dockerfile "$context/Dockerfile"
# The data directory, made the user's by the Dockerfile (a file in it, since
# an empty directory may not be copied at all).
mkdir -p "$context/data"
printf 'registry-host keeps its blobs, metadata and compiled-code cache here.\n' >"$context/data/README"
DOCKER_BUILDKIT=0 docker build -q -t "$tag" "$context" >/dev/null
echo "built $tag ($(docker image inspect -f '{{.Size}}' "$tag") bytes)"
