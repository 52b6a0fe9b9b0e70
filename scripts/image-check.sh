#!/usr/bin/env bash
# Builds the repo's Dockerfile with podman and runs the image: `snapsync --version`, and a real
# `snapsync run` of a file:// dataset as the image's non-root user into its state volume.
#   scripts/image-check.sh            # CI runs it after the tests (.ci/run, CI=true)
# Installs podman, runc and debootstrap from Debian's packages when missing (needs root).
#
# This machine reaches Debian's mirror and crates.io but no container registry, so the
# Dockerfile's two base images are made here under the names it asks for (podman then finds
# them locally and pulls nothing):
#   debian:bookworm-slim      debootstrap --variant=minbase bookworm (Debian's own mirror)
#   rust:1.95-slim-bookworm   that, plus gcc and libc6-dev, plus this machine's Rust toolchain
#                             (`rustc --print sysroot`, the version RustConfig pins) in
#                             /usr/local, with CARGO_HOME=/usr/local/cargo as the official image
# Elsewhere (a registry in reach) the real images are used: `docker build -t snapsync .` needs
# none of this script.
#
# The sandbox's quirks, each worked around here only: RUN steps use buildah's chroot isolation
# (crun refuses this machine's mixed cgroup mounts), the container runs under runc, and its
# rlimits are set below this process's (it lacks CAP_SYS_RESOURCE, and podman asks for more).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
WORK=${IMAGE_WORK:-${TMPDIR:-/tmp}/snapsync-image}
TAG=${IMAGE_TAG:-localhost/snapsync:check}
log() { echo "image-check: $*" >&2; }

need=()
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >&2 \
    || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >&2; }
fi
mkdir -p "$WORK"
# Lower than this process's own: runc may not set even equal ones without CAP_SYS_RESOURCE.
ulimits=(--ulimit "nofile=1024:1024" --ulimit "nproc=4096:4096")

# 1. debian:bookworm-slim
if ! podman image exists docker.io/library/debian:bookworm-slim; then
  log "debootstrap bookworm (minbase)"
  rm -rf "$WORK/rootfs"
  debootstrap --variant=minbase bookworm "$WORK/rootfs" http://deb.debian.org/debian >"$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log" >&2; exit 1; }
  rm -rf "$WORK/rootfs/var/cache/apt/archives/"*.deb "$WORK/rootfs/var/lib/apt/lists/"*
  tar -C "$WORK/rootfs" -c . | podman import -q --change 'CMD ["bash"]' - docker.io/library/debian:bookworm-slim >/dev/null
  rm -rf "$WORK/rootfs"
fi

# 2. rust:1.95-slim-bookworm (the toolchain RustConfig pins)
version=$(sed -n 's/^VERSION=//p' RustConfig)
rust_image="docker.io/library/rust:${version%.*}-slim-bookworm"
if ! podman image exists "$rust_image"; then
  sysroot=$(rustc --print sysroot)
  have=$(rustc --version | awk '{print $2}')
  [ "$have" = "$version" ] || { log "rustc is $have, RustConfig pins $version"; exit 1; }
  log "making $rust_image from $sysroot"
  rm -rf "$WORK/rust" && mkdir -p "$WORK/rust"
  tar -C "$sysroot" --exclude=./share/doc -cf - . | tar -C "$WORK/rust" -xf -
  # A network that inspects TLS with its own CA (this one does) needs it in the builder, which
  # downloads crates; the runtime image is the Dockerfile's, untouched.
  rm -rf "$WORK/site-ca" && mkdir -p "$WORK/site-ca"
  cp /usr/local/share/ca-certificates/*.crt "$WORK/site-ca/" 2>/dev/null || true
  cat >"$WORK/Containerfile.rust" <<'EOF'
FROM docker.io/library/debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY site-ca /usr/local/share/ca-certificates
RUN update-ca-certificates
COPY rust /usr/local
ENV CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN rustc --version && cargo --version
EOF
  podman build --isolation chroot --network host -t "$rust_image" -f "$WORK/Containerfile.rust" "$WORK" \
    >"$WORK/rust-image.log" 2>&1 || { tail -30 "$WORK/rust-image.log" >&2; exit 1; }
  rm -rf "$WORK/rust"
fi

# 3. the Dockerfile itself, unchanged
log "podman build -t $TAG . (a cold release build inside)"
start=$(date +%s)
podman build --isolation chroot --network host -t "$TAG" . >"$WORK/build.log" 2>&1 \
  || { tail -40 "$WORK/build.log" >&2; exit 1; }
log "built in $(( $(date +%s) - start )) s; image $(podman image inspect --format '{{.Size}}' "$TAG" | awk '{printf "%.1f MB", $1/1e6}')"

# 4. run it: the version, the user, and one real run into the volume
run() { podman --runtime runc run --rm "${ulimits[@]}" "$@"; }
got=$(run "$TAG" --version)
want="snapsync $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
[ "$got" = "$want" ] || { log "--version said '$got', expected '$want'"; exit 1; }
user=$(run --entrypoint id "$TAG" -u)
[ "$user" != 0 ] || { log "the image runs as root"; exit 1; }
data="$WORK/data" && rm -rf "$data" && mkdir -p "$data" && chmod 777 "$data"
echo '[{"country":{"key":"a"},"n":1},{"country":{"key":"b"},"n":2}]' >"$data/d.json"
summary=$(run -v "$data:/data" -e SNAPSYNC_STORE=file:///data/store "$TAG" run --url file:///data/d.json)
case "$summary" in
  "covid-countries changed version=1 "*) ;;
  *) log "run printed '$summary'"; exit 1 ;;
esac
[ -s "$data/store/covid-countries/latest.json" ] || { log "no latest.json in the volume"; exit 1; }
log "ok: '$got', uid $user, '$summary'"
