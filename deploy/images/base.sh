#!/usr/bin/env bash
# Local base images for hosts that reach no container registry (air-gapped sites, this
# project's CI): a Debian root file system made with debootstrap, imported with
# `docker import`. Two images:
#
#   sine-base:bookworm   python3 (3.11) + venv: the BASE_IMAGE of the Dockerfile
#   sine-redis:bookworm  Debian's redis-server: SINE_REDIS_IMAGE of docker-compose.yml
#
# Usage: bash deploy/images/base.sh [--force]
# Needs root (debootstrap), debootstrap and a Docker engine; downloads Debian packages
# from the host's mirror (SINE_DEBIAN_MIRROR, default: the one apt uses), cached under
# SINE_CACHE_DIR (default ~/.cache/sine-rec) so a second run reuses them.
set -euo pipefail

SUITE=bookworm
MIRROR=${SINE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${SINE_CACHE_DIR:-$HOME/.cache/sine-rec}/debootstrap
FORCE=0
[ "${1:-}" = "--force" ] && FORCE=1

die() { echo "base.sh: $*" >&2; exit 1; }

# A root file system being built, removed on exit. debootstrap mounts /proc and /sys in it:
# unmount them first, so that removing the tree never reaches into the host's.
ROOT=""
cleanup() {
  [ -n "$ROOT" ] || return 0
  { grep -o " $ROOT/[^ ]*" /proc/mounts || true; } | sort -r | while read -r mnt; do umount -l "$mnt" || true; done
  if grep -q " $ROOT/" /proc/mounts; then echo "base.sh: $ROOT still has mounts; not removing it" >&2; return 0; fi
  rm -rf "$ROOT" "$ROOT.log"
}
trap cleanup EXIT
[ "$(id -u)" = 0 ] || die "debootstrap needs root: run it as root (sudo bash $0)"
command -v debootstrap >/dev/null || die "debootstrap is not installed (Debian/Ubuntu: apt-get install debootstrap)"
docker info >/dev/null 2>&1 || die "no Docker engine answers (start dockerd, or see deploy/README.md)"

# One run at a time: two debootstraps sharing the package cache corrupt it.
mkdir -p "$CACHE"
exec 9>"$CACHE.lock"
flock -n 9 || { echo "base.sh: waiting for another run to finish ..."; flock 9; }

# make_image TAG PACKAGES SETUP CHANGES...: one debootstrap'd, trimmed rootfs imported as
# TAG; SETUP is a command run inside the rootfs (chroot) before the import.
make_image() {
  local tag=$1 packages=$2 setup=$3; shift 3
  if [ "$FORCE" = 0 ] && docker image inspect "$tag" >/dev/null 2>&1; then
    echo "$tag exists (--force rebuilds it)"
    return
  fi
  local root
  root=$(mktemp -d /tmp/sine-rootfs.XXXXXX)
  ROOT=$root
  mkdir -p "$CACHE"
  echo "debootstrap $SUITE ($packages) for $tag ..."
  debootstrap --variant=minbase --cache-dir="$CACHE" --include="$packages" \
    "$SUITE" "$root" "$MIRROR" >"$root.log" 2>&1 || { tail -20 "$root.log" >&2; die "debootstrap failed (log above)"; }
  chroot "$root" sh -c "$setup"
  # What an image does not need: package caches and lists, docs, man pages, locales.
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
         "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/* \
         "$root"/var/log/*.log "$root"/var/cache/debconf/*-old
  local args=()
  for change in "$@"; do args+=(--change "$change"); done
  tar -C "$root" -c . | docker import "${args[@]}" - "$tag" >/dev/null
  cleanup
  ROOT=""
  echo "$tag: $(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}')"
}

make_image sine-base:bookworm python3,python3-venv,ca-certificates true \
  'ENV LANG=C.UTF-8' 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  'CMD ["python3"]'

# The official redis image keeps its data in /data as the redis user; this one does the same.
make_image sine-redis:bookworm redis-server 'mkdir -p /data && chown redis:redis /data' \
  'ENV LANG=C.UTF-8' 'USER redis' 'WORKDIR /data' 'EXPOSE 6379' \
  'CMD ["redis-server", "--protected-mode", "no"]'
