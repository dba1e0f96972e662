#!/usr/bin/env bash
# Make this machine able to build and run chatstream's containers, only what is missing:
#   1. the container engine: Docker when a Docker engine answers, otherwise Debian's podman (with runc,
#      debootstrap and podman-compose), installed through scripts/deps.sh;
#   2. podman's engine settings, once, in /etc/containers/containers.conf (runc as the runtime,
#      cgroupfs, explicit ulimits: see below) unless that file already exists;
#   3. the base image `debian:12-slim` when no registry can be reached: a Debian 12 minbase root file
#      system made by debootstrap from the configured Debian mirror, imported under Docker Hub's name
#      so that the Dockerfile stays the one `docker build` uses against Docker Hub.
#
#   scripts/container-setup.sh            set up, print the engine to use (docker or podman) on stdout
#   scripts/container-setup.sh --check    exit 3 with the reason on stderr where containers cannot run
#
# Environment: DEBIAN_MIRROR (default: the first Debian mirror in /etc/apt), CONTAINER_ENGINE
# (docker or podman: skip the detection).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE_IMAGE=docker.io/library/debian:12-slim
CONF=/etc/containers/containers.conf

log() { echo "container-setup: $*" >&2; }

pick_engine() {
  if [[ -n "${CONTAINER_ENGINE:-}" ]]; then echo "$CONTAINER_ENGINE"; return; fi
  # A docker CLI without an engine behind it is common (this machine has one): ask the engine.
  if command -v docker >/dev/null && timeout 10 docker info >/dev/null 2>&1; then echo docker; return; fi
  echo podman
}

# podman's defaults do not fit a machine like this one:
#  - crun (Debian's default runtime) refuses a hybrid cgroup v1/v2 hierarchy; runc handles it;
#  - without systemd as PID 1 the systemd cgroup manager and journald cannot be used;
#  - podman raises RLIMIT_NOFILE/NPROC of every container to 1048576/4194304, which a sandbox that
#    forbids raising limits refuses (`setrlimit: operation not permitted`): use this machine's hard
#    limit for open files, and at most 32,768 processes (this sandbox refused 65,536 although its
#    own hard limit is higher; a chatstream container runs a handful).
write_podman_conf() {
  if [[ -e "$CONF" ]]; then return; fi
  local nofile nproc
  nofile=$(ulimit -Hn); nproc=$(ulimit -Hu)
  [[ "$nofile" == unlimited ]] && nofile=1048576
  if [[ "$nproc" == unlimited ]] || (( nproc > 32768 )); then nproc=32768; fi
  mkdir -p "$(dirname "$CONF")"
  cat >"$CONF" <<EOF
# Written by chatstream's scripts/container-setup.sh (see the comment there); edit freely.
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
  log "wrote $CONF (runc, cgroupfs, nofile=$nofile, nproc=$nproc)"
}

debian_mirror() {
  if [[ -n "${DEBIAN_MIRROR:-}" ]]; then echo "$DEBIAN_MIRROR"; return; fi
  local m
  m=$(grep -rhoE 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
      | grep -v security | head -n1 | tr -d ' ' || true)
  echo "${m:-http://deb.debian.org/debian}"
}

# What Docker Hub's debian:12-slim is: minbase, Debian's three suites, docs and man pages excluded
# by dpkg (only copyright files kept), no apt lists.
make_base_image() {
  local engine="$1"
  if "$engine" image exists "$BASE_IMAGE" 2>/dev/null; then return; fi
  if [[ "$engine" == docker ]] && docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then return; fi
  if [[ "$engine" == docker ]] && docker pull "$BASE_IMAGE" >/dev/null 2>&1; then return; fi
  local mirror rootfs start=$SECONDS
  mirror=$(debian_mirror)
  rootfs=$(mktemp -d /var/tmp/chatstream-rootfs.XXXXXX)
  trap 'rm -rf "$rootfs"' RETURN
  log "building $BASE_IMAGE with debootstrap from $mirror (about 30 s)"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 \
    || { tail -n 20 "$rootfs.log" >&2; rm -f "$rootfs.log"; log "debootstrap failed"; exit 1; }
  rm -f "$rootfs.log"
  local security="${mirror%/debian}/debian-security"
  [[ "$mirror" == */debian ]] || security=http://deb.debian.org/debian-security
  rm -f "$rootfs/etc/apt/sources.list"
  cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
  find "$rootfs/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete 2>/dev/null || true
  rm -rf "$rootfs"/usr/share/{man,info,groff,lintian,linda}/* "$rootfs"/var/lib/apt/lists/* \
         "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/log/*.log
  tar --numeric-owner -C "$rootfs" -c . \
    | "$engine" import --change 'CMD ["bash"]' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        - "$BASE_IMAGE" >/dev/null 2>&1
  log "imported $BASE_IMAGE in $((SECONDS - start)) s"
}

# Where podman cannot start a container at all (no user namespaces, no overlay, a locked-down
# sandbox), say so and why: the container test is skipped on that, and only on that.
can_run() {
  local engine="$1" out
  if ! out=$("$engine" run --rm --pull=never --network=none "$BASE_IMAGE" true 2>&1); then
    echo "$out" | tail -n 3 >&2
    return 1
  fi
}

engine=$(pick_engine)
if [[ "$engine" == podman ]]; then
  bash "$ROOT/scripts/deps.sh" container
  write_podman_conf
fi
make_base_image "$engine"
if [[ "${1:-}" == --check ]] && ! can_run "$engine"; then
  log "$engine cannot run a container on this machine"
  exit 3
fi
echo "$engine"
