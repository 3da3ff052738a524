#!/usr/bin/env bash
# Builds every image the compose stack needs without an image registry (CI, air-gapped machines):
#   registrar-local/debian:bookworm   debootstrap --variant=minbase, docker import   (built once, then reused)
#   registrar-local/node:24           + Node 24, pnpm, tini, busybox                 (shared by everything below)
#   registrar-local/servers:bookworm  + etcd, ZooKeeper, HAProxy from apt            (stands in for the official images)
#   registrar:local                   the root Dockerfile, BASE_IMAGE=registrar-local/node:24
#   registrar-local/consul-double     the root Dockerfile's consul-double target (stands in for hashicorp/consul)
# Unchanged inputs cost about a second per image (Docker's layer cache); the Debian base is only rebuilt when the
# image is missing (REBUILD_BASE=1 forces it). Usage: test/compose/build-images.sh [--quiet]
set -euo pipefail
cd "$(dirname "$0")/../.."

BASE=registrar-local/debian:bookworm
NODE_IMAGE=registrar-local/node:24
SERVERS_IMAGE=registrar-local/servers:bookworm
REGISTRAR_IMAGE=${REGISTRAR_IMAGE:-registrar:local}
CONSUL_IMAGE=registrar-local/consul-double:latest
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
quiet=()
[ "${1:-}" = "--quiet" ] && quiet=(--quiet)

log() { printf '[build-images] %s\n' "$*" >&2; }

# One build at a time per machine (parallel test workers, or a developer running this by hand).
exec 9>"${TMPDIR:-/tmp}/registrar-build-images.lock"
flock 9

if [ "${REBUILD_BASE:-0}" = 1 ] || ! docker image inspect "$BASE" >/dev/null 2>&1; then
  command -v debootstrap >/dev/null || { log "debootstrap is missing: apt-get install -y debootstrap"; exit 1; }
  root=$(mktemp -d "${TMPDIR:-/tmp}/registrar-debootstrap.XXXXXX")
  trap 'rm -rf "$root"' EXIT
  log "debootstrap bookworm into $root (about a minute)"
  debootstrap --variant=minbase bookworm "$root" "$MIRROR" >/dev/null
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | docker import --change 'CMD ["/bin/bash"]' - "$BASE" >/dev/null
  rm -rf "$root"
  trap - EXIT
fi

build() { # <tag> <build args...>
  local tag=$1
  shift
  local start=$SECONDS
  docker build "${quiet[@]}" -t "$tag" "$@" >&2
  log "$tag ready in $((SECONDS - start))s"
}

# The node image downloads Node and pnpm from the npm registry, and the registrar build runs `pnpm fetch`: a
# machine that reaches the registry through a TLS-intercepting proxy needs its extra CA certificates inside
# too. Those in $EXTRA_CA_DIR (default: the host's /usr/local/share/ca-certificates) are added to the image.
ctx=$(mktemp -d "${TMPDIR:-/tmp}/registrar-node-ctx.XXXXXX")
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/ca"
find "${EXTRA_CA_DIR:-/usr/local/share/ca-certificates}" -maxdepth 1 -name '*.crt' -exec cp {} "$ctx/ca/" \; 2>/dev/null || true
cp test/compose/images/node.Dockerfile "$ctx/Dockerfile"
build "$NODE_IMAGE" --build-arg BASE_IMAGE="$BASE" \
  --build-arg NPM_REGISTRY="${NPM_REGISTRY:-$(npm config get registry 2>/dev/null | sed 's:/*$::' || true)}" "$ctx"
rm -rf "$ctx"
trap - EXIT
build "$SERVERS_IMAGE" --build-arg BASE_IMAGE="$NODE_IMAGE" -f test/compose/images/servers.Dockerfile test/compose/images
version=$(sed -n 's/^  "version": "\(.*\)",$/\1/p' packages/cli/package.json)
build "$REGISTRAR_IMAGE" --build-arg BASE_IMAGE="$NODE_IMAGE" --build-arg VERSION="$version" .
build "$CONSUL_IMAGE" --build-arg BASE_IMAGE="$NODE_IMAGE" --target consul-double .
