#!/usr/bin/env bash
# Builds the Lambda base image `sam local` runs functions in, for a Docker that cannot
# pull public.ecr.aws/lambda/provided:al2023: a minimal Debian root file system
# (debootstrap, from Debian's packages) imported under that image's name. SAM then adds
# its bundled runtime interface emulator on top (`--skip-pull-image`). The binaries are
# built on this Debian host, so its glibc is the one they need; the real provided.al2023
# image differs, which is why deployed artifacts are built by cargo lambda instead.
#   scripts/lambda-base-image.sh [x86_64|arm64]
set -euo pipefail
ARCH="${1:-x86_64}"
IMAGE="public.ecr.aws/lambda/provided:al2023-$ARCH"
# The real image carries the CA bundle the SDK's HTTPS client loads at start (it refuses
# to start without one), so this one does too.
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
if docker image inspect "$IMAGE" >/dev/null 2>&1 \
    && docker run --rm --entrypoint /bin/sh "$IMAGE" -c "test -s $CA_BUNDLE"; then
  exit 0
fi
ROOTFS="$HOME/.cache/herald-lambda-rootfs-$ARCH"
if [ ! -x "$ROOTFS/bin/sh" ] || [ ! -s "$ROOTFS$CA_BUNDLE" ]; then
  command -v debootstrap >/dev/null 2>&1 || apt-get install -y -q debootstrap >/dev/null \
    || { apt-get update -q >/dev/null && apt-get install -y -q debootstrap >/dev/null; }
  DEB_ARCH=$([ "$ARCH" = arm64 ] && echo arm64 || echo amd64)
  rm -rf "$ROOTFS"
  debootstrap --variant=minbase --include=ca-certificates --arch="$DEB_ARCH" bookworm "$ROOTFS" \
    http://deb.debian.org/debian >/dev/null
fi
tar -C "$ROOTFS" -c . | docker import - "$IMAGE" >/dev/null
# SAM builds its runtime image on top of this one once and reuses it by name: drop any
# built on an earlier base.
docker images --format '{{.Repository}}:{{.Tag}}' | grep -- '-rapid-' \
  | xargs -r docker rmi >/dev/null 2>&1 || true
echo "built $IMAGE from $ROOTFS"
