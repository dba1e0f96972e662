#!/usr/bin/env bash
# Install the Debian packages chatstream needs to build, test and run, only those missing.
# Idempotent and quiet: when everything is installed it prints nothing and touches no network.
# Runs as root, or through sudo otherwise.
#   scripts/deps.sh             what `make run` and `make test` need
#   scripts/deps.sh container   what `make image` and `make test-container` add (podman and friends)
#   scripts/deps.sh bench       what bench/peers.sh adds (FastAPI, uvicorn)
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config          # toolchain
  libuv1-dev node-llhttp                    # event loop, HTTP parser (C sources)
  libpq-dev libmimalloc-dev libsimdjson-dev # PostgreSQL client, allocator, JSON
  libstemmer-dev                            # Snowball stemmer (as PostgreSQL's english configuration)
  libcurl4-openssl-dev libssl-dev           # OpenAI-compatible provider
  libgtest-dev libbenchmark-dev             # unit tests, micro-benchmarks
  postgresql nginx wrk                      # database, front proxy, load generator
  postgresql-doc-15                         # the sample knowledge base: the PostgreSQL manual (HTML)
  python3 curl procps util-linux            # e2e tests, health checks, ps/pkill, taskset/setsid
  openssl iproute2                          # the TLS upstream test: a CA made with openssl, ss -K
  prometheus                                # promtool: the metrics format test (tests/ops/)
  clang libfuzzer-14-dev libclang-rt-14-dev # fuzz targets (tests/fuzz/, scripts/fuzz.sh)
)
if [[ "${1:-}" == bench ]]; then
  # bench/peers.sh: the FastAPI + uvicorn peer at its best settings (uvloop, httptools); the Node
  # peer uses the machine's node.
  PACKAGES=(python3-fastapi python3-uvicorn python3-uvloop python3-httptools)
fi
if [[ "${1:-}" == container ]]; then
  # An OCI engine without a daemon, the runtime that copes with hybrid cgroups, the tool that makes
  # the Debian base image from a mirror, and compose for the stack (scripts/container-setup.sh).
  # netavark + aardvark-dns: the bridge network and the service names compose resolves.
  PACKAGES=(podman runc debootstrap podman-compose netavark aardvark-dns iptables uidmap
            ca-certificates curl python3)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [[ "$status" == installed ]] || missing+=("$p")
done
(( ${#missing[@]} == 0 )) && exit 0

if [[ $(id -u) -eq 0 ]]; then
  SUDO=()
elif command -v sudo >/dev/null; then
  SUDO=(sudo)
else
  echo "deps.sh: missing packages (${missing[*]}) and neither root nor sudo available" >&2
  exit 1
fi

echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts the services it installs where an init system runs; chatstream runs its own nginx
# (scripts/run.sh, the tests) and its own database, so the distribution's instances are not needed
# but are left alone.
