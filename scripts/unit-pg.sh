#!/usr/bin/env bash
# The throwaway PostgreSQL cluster of the unit tests that need one (tests/unit/db/pool_test.cpp):
# scripts/pg.sh on a free loopback port, durability off (PG_FAST), its URL written to DIR/url.
#
#   scripts/unit-pg.sh start DIR   a fresh cluster (one left by an earlier start with this DIR is
#                                  stopped and removed first); prints the URL and writes it to DIR/url
#   scripts/unit-pg.sh stop DIR    stops it and removes it and DIR
#
# The cluster itself lives in a directory of its own under /tmp (named in DIR/cluster), not in DIR:
# PostgreSQL runs as the postgres user, which cannot enter a build tree inside a private directory
# (a clone in `mktemp -d`, a home directory).
#
# ctest runs `start` once before the Pool tests (fixture unit_pg, tests/CMakeLists.txt) and `stop`
# after them; the test binary run by hand calls it itself.
set -euo pipefail

cmd=${1:?usage: unit-pg.sh start|stop DIR}
dir=${2:?usage: unit-pg.sh start|stop DIR}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

stop() {
  if [[ -f $dir/cluster ]]; then
    local cluster
    cluster=$(cat "$dir/cluster")
    if [[ -d $cluster ]]; then
      "$here/pg.sh" stop "$cluster"
      rm -rf "$cluster"
    fi
  fi
  rm -rf "$dir"
}

case "$cmd" in
  start)
    if [[ ! -x /usr/lib/postgresql/15/bin/initdb ]]; then
      echo "unit-pg.sh: PostgreSQL 15 is not installed (no /usr/lib/postgresql/15/bin/initdb);" \
        "scripts/deps.sh installs it" >&2
      exit 1
    fi
    stop
    mkdir -p "$dir"
    # A port free now may be taken before the postmaster binds it: try a few.
    for attempt in 1 2 3 4 5; do
      cluster=$(mktemp -d /tmp/chatstream-unit-pg-XXXXXX)
      echo "$cluster" >"$dir/cluster"
      port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
      if url=$(PG_FAST=1 "$here/pg.sh" start "$cluster" "$port"); then
        echo "$url" >"$dir/url"
        echo "$url"
        exit 0
      fi
      echo "unit-pg.sh: start on port $port failed (attempt $attempt); $cluster/postgres.log:" >&2
      tail -5 "$cluster/postgres.log" >&2 2>/dev/null || true
      "$here/pg.sh" stop "$cluster" || true
      rm -rf "$cluster"
    done
    echo "unit-pg.sh: PostgreSQL did not start" >&2
    exit 1
    ;;
  stop)
    stop
    ;;
  *)
    echo "unit-pg.sh: unknown command $cmd" >&2
    exit 2
    ;;
esac
