#!/usr/bin/env bash
# Build a local Python 3.11 base image from Debian's own packages, for machines that reach the
# Debian and PyPI mirrors but no container registry (so `FROM python:3.11-slim` cannot be pulled).
#
#   debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
#       bookworm DIR
#   tar -C DIR -c . | docker import - NAME
#
# Debian bookworm's python3 is 3.11, the project's Python. The image's system Python is
# "externally managed" (PEP 668): the Dockerfiles create a venv in /opt/venv, which works the
# same on this base and on python:3.11-slim.
#
# Usage: scripts/build_base_image.sh [--force] [NAME]
#   NAME     image tag to create (default: $BASE_IMAGE_LOCAL or retail-forecast-python:3.11-bookworm)
#   --force  rebuild even when NAME already exists
# Environment: DEBIAN_MIRROR (default http://deb.debian.org/debian), DEBIAN_SUITE (bookworm).
set -euo pipefail

force=0
name="${BASE_IMAGE_LOCAL:-retail-forecast-python:3.11-bookworm}"
for arg in "$@"; do
    case "$arg" in
        --force) force=1 ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) name="$arg" ;;
    esac
done
suite="${DEBIAN_SUITE:-bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

log() { echo "[build_base_image] $*" >&2; }

if [[ $force -eq 0 ]] && docker image inspect "$name" >/dev/null 2>&1; then
    log "$name already exists; nothing to do (pass --force to rebuild)"
    exit 0
fi

sudo_cmd=()
if [[ $EUID -ne 0 ]]; then
    command -v sudo >/dev/null || { log "debootstrap needs root (or sudo)"; exit 1; }
    sudo_cmd=(sudo)
fi
command -v debootstrap >/dev/null || { log "debootstrap is not installed (apt-get install debootstrap)"; exit 1; }

rootfs="$(mktemp -d "${TMPDIR:-/tmp}/base-rootfs.XXXXXX")"
cleanup() { "${sudo_cmd[@]}" rm -rf "$rootfs"; }
trap cleanup EXIT

start=$SECONDS
log "debootstrap $suite from $mirror into $rootfs"
"${sudo_cmd[@]}" debootstrap --variant=minbase \
    --include=python3,python3-venv,python3-pip,ca-certificates \
    "$suite" "$rootfs" "$mirror" >&2

# Trim what an image never needs: package caches, docs, man pages, translations.
log "trimming caches and docs"
"${sudo_cmd[@]}" chroot "$rootfs" apt-get clean
"${sudo_cmd[@]}" rm -rf \
    "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/var/cache/apt/*.bin \
    "$rootfs"/var/log/* \
    "$rootfs"/usr/share/doc/* \
    "$rootfs"/usr/share/man/* \
    "$rootfs"/usr/share/info/* \
    "$rootfs"/usr/share/locale/* \
    "$rootfs"/tmp/* \
    "$rootfs"/root/.cache
# The python:3.11-slim images have a `python` command; make the local base match.
"${sudo_cmd[@]}" ln -sf python3 "$rootfs"/usr/bin/python

log "importing as $name"
"${sudo_cmd[@]}" tar --numeric-owner -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    --message "debootstrap --variant=minbase $suite + python3, python3-venv, python3-pip" \
    - "$name" >/dev/null

log "built $name in $((SECONDS - start)) s ($(docker image inspect -f '{{.Size}}' "$name" | awk '{printf "%.0f MB", $1/1e6}'))"
docker run --rm "$name" python3 --version >&2
