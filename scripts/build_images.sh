#!/usr/bin/env bash
# Build the platform's container images from the repository root (`make images` runs this).
#
#   scripts/build_images.sh [training] [inference] [gateway] [postgres] [lb]   (default: all five)
#
# Tags: retail-forecast-<name>:${IMAGE_TAG:-latest}.
# Base image: $BASE_IMAGE when set; otherwise python:3.11-slim when it is present or can be
# pulled; otherwise (no registry reachable) the local Debian-built base from
# scripts/build_base_image.sh, built on first use.
# The training, inference and gateway Dockerfiles share their dependency layers, so the second
# and third builds reuse the first one's pip installs; a change under forecasting/ or server/
# rebuilds only the last layers. postgres (PostgreSQL) and lb (HAProxy) are Debian packages on
# the same base, for docker-compose.yml.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

log() { echo "[build_images] $*" >&2; }

tag="${IMAGE_TAG:-latest}"
official_base="python:3.11-slim"
local_base="${BASE_IMAGE_LOCAL:-retail-forecast-python:3.11-bookworm}"
names=("$@")
[[ ${#names[@]} -gt 0 ]] || names=(training inference gateway postgres lb)

if ! docker info >/dev/null 2>&1; then
    log "no Docker engine answers (docker info failed): start dockerd first"
    exit 1
fi

choose_base() {
    if [[ -n "${BASE_IMAGE:-}" ]]; then
        log "base image from BASE_IMAGE: $BASE_IMAGE"
        echo "$BASE_IMAGE"
    elif docker image inspect "$official_base" >/dev/null 2>&1; then
        log "base image $official_base is present"
        echo "$official_base"
    elif timeout 180 docker pull -q "$official_base" >/dev/null 2>&1; then
        log "pulled $official_base"
        echo "$official_base"
    else
        log "cannot pull $official_base (no registry reachable): using the local base $local_base"
        bash scripts/build_base_image.sh "$local_base"
        echo "$local_base"
    fi
}

# Extra CA certificates for pip inside the build (a TLS-intercepting egress proxy): the host's
# locally added CAs, or the files named in BUILD_CA_CERTS. Used in the `venv` build stage only;
# see containers/build-ca/README.md.
stage_build_cas() {
    local dir=containers/build-ca
    find "$dir" -maxdepth 1 -name '*.crt' -delete
    local certs=()
    if [[ -n "${BUILD_CA_CERTS:-}" ]]; then
        read -r -a certs <<<"$BUILD_CA_CERTS"
    else
        shopt -s nullglob
        certs=(/usr/local/share/ca-certificates/*.crt /usr/local/share/ca-certificates/*/*.crt)
        shopt -u nullglob
    fi
    local cert
    for cert in "${certs[@]}"; do
        cp "$cert" "$dir/$(basename "$cert")"
        log "build-time CA for pip: $cert"
    done
}

base="$(choose_base)"
stage_build_cas
declare -A seconds
for name in "${names[@]}"; do
    dockerfile="containers/$name/Dockerfile"
    [[ -f "$dockerfile" ]] || { log "no $dockerfile"; exit 1; }
    image="retail-forecast-$name:$tag"
    log "building $image from $dockerfile (BASE_IMAGE=$base)"
    start=$SECONDS
    docker build --file "$dockerfile" --build-arg "BASE_IMAGE=$base" --tag "$image" \
        --label "com.retail-forecast.base-image=$base" \
        --label "org.opencontainers.image.revision=$(git rev-parse --verify -q HEAD || echo unknown)" .
    seconds[$name]=$((SECONDS - start))
done

log "summary:"
for name in "${names[@]}"; do
    image="retail-forecast-$name:$tag"
    size="$(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}')"
    log "  $image  $size  built in ${seconds[$name]} s"
done
