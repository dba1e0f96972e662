#!/usr/bin/env bash
# `make image`: build the chatstream image (Dockerfile) and the PostgreSQL image compose.yaml runs
# (deploy/postgres/Dockerfile) with podman here or docker where a Docker engine answers, then print
# their sizes. Both start FROM debian:12-slim: Docker Hub's where a registry is reachable, otherwise
# the one scripts/container-setup.sh makes with debootstrap (the build then never pulls).
#
# Environment: IMAGE (chatstream:latest), PG_IMAGE (chatstream-postgres:15), CONTAINER_ENGINE.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
IMAGE="${IMAGE:-chatstream:latest}"
PG_IMAGE="${PG_IMAGE:-chatstream-postgres:15}"

engine=$(bash scripts/container-setup.sh)
version=$(git describe --always --dirty --tags 2>/dev/null || echo "")
build_args=()
run_args=()
if [[ "$engine" == podman ]]; then
  # The base is local (imported, or pulled before). podman writes OCI images by default, which have no
  # HEALTHCHECK: ask for Docker's format.
  build_args=(--pull=never --format docker)
  run_args=(--pull=never)
fi

start=$SECONDS
echo "image.sh: $engine build -t $IMAGE (version ${version:-0.1.0})" >&2
"$engine" build "${build_args[@]}" --build-arg "CHATSTREAM_VERSION=$version" -t "$IMAGE" -f Dockerfile .
echo "image.sh: $engine build -t $PG_IMAGE" >&2
"$engine" build "${build_args[@]}" -t "$PG_IMAGE" deploy/postgres
echo "image.sh: built in $((SECONDS - start)) s" >&2

# Sizes as the engine counts them (uncompressed layers, the base included).
"$engine" image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' \
  | grep -E "(^|/)(${IMAGE%%:*}:${IMAGE##*:}|${PG_IMAGE%%:*}:${PG_IMAGE##*:}|debian:12-slim) " >&2 || true
"$engine" run --rm --no-healthcheck "${run_args[@]}" --entrypoint /usr/local/bin/chatstream "$IMAGE" --version
