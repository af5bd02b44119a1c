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
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  exit 0
fi
ROOTFS="$HOME/.cache/herald-lambda-rootfs-$ARCH"
if [ ! -x "$ROOTFS/bin/sh" ]; then
  command -v debootstrap >/dev/null 2>&1 || apt-get install -y -q debootstrap >/dev/null \
    || { apt-get update -q >/dev/null && apt-get install -y -q debootstrap >/dev/null; }
  DEB_ARCH=$([ "$ARCH" = arm64 ] && echo arm64 || echo amd64)
  rm -rf "$ROOTFS"
  debootstrap --variant=minbase --arch="$DEB_ARCH" bookworm "$ROOTFS" http://deb.debian.org/debian >/dev/null
fi
tar -C "$ROOTFS" -c . | docker import - "$IMAGE" >/dev/null
echo "built $IMAGE from $ROOTFS"
