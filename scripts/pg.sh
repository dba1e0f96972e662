#!/usr/bin/env bash
# A private PostgreSQL 15 cluster for `make run`, the tests and benchmarks: data and socket in a
# directory of ours, run as the `postgres` user (PostgreSQL refuses root), listening on loopback.
#
#   scripts/pg.sh start DIR [PORT]   initdb if DIR is new, start, create database `chatstream`;
#                                    prints the connection URL
#   scripts/pg.sh stop DIR           fast shutdown
#   scripts/pg.sh url DIR [PORT]     the connection URL
# PG_FAST=1 turns durability off (fsync, synchronous_commit): for throwaway test clusters only. Such
# clusters are copied from a template made once per machine (initdb + database `chatstream`, in
# ${PG_TEMPLATE_DIR:-/tmp/chatstream-pg-template-15}): a copy costs ~0.1 s of CPU, an initdb ~1.3 s,
# and the tests start dozens of clusters.
set -euo pipefail

cmd=${1:?usage: pg.sh start|stop|url DIR [PORT]}
dir=${2:?usage: pg.sh start|stop|url DIR [PORT]}
port=${3:-5432}
bin=/usr/lib/postgresql/15/bin

as_postgres() {
  if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

template=${PG_TEMPLATE_DIR:-/tmp/chatstream-pg-template-15}

# The template: made under a lock (tests start clusters side by side), in a scratch directory that is
# renamed into place only when complete, so a half-made template is never copied.
make_template() {
  [[ -f $template/data/PG_VERSION && -f $template/complete ]] && return 0
  exec 8>"$template.lock"
  flock 8
  if [[ ! -f $template/complete ]]; then
    local scratch="$template.new.$$"
    rm -rf "$scratch" "$template"
    mkdir -p "$scratch"
    [[ $(id -u) == 0 ]] && chown postgres:postgres "$scratch"
    as_postgres "$bin/initdb" -D "$scratch/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$scratch/initdb.log"
    as_postgres "$bin/pg_ctl" -D "$scratch/data" -l "$scratch/postgres.log" -w -t 30 start \
      -o "-c listen_addresses= -k $scratch -c fsync=off" >/dev/null
    as_postgres "$bin/createdb" -h "$scratch" -U postgres chatstream
    as_postgres "$bin/pg_ctl" -D "$scratch/data" -m fast -w stop >/dev/null
    touch "$scratch/complete"
    mv "$scratch" "$template"
  fi
  flock -u 8
}

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
url="postgresql://postgres@127.0.0.1:$port/chatstream?sslmode=disable"

case "$cmd" in
  url)
    echo "$url"
    ;;
  start)
    [[ $(id -u) == 0 ]] && chown postgres:postgres "$dir"
    if [[ ! -f $dir/data/PG_VERSION && -n ${PG_FAST:-} ]]; then
      make_template
      as_postgres cp -a "$template/data" "$dir/data"
    fi
    if [[ ! -f $dir/data/PG_VERSION ]]; then
      as_postgres "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log"
    fi
    if ! as_postgres "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 30 start \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200 ${PG_FAST:+-c fsync=off -c synchronous_commit=off -c full_page_writes=off}" >/dev/null
    fi
    as_postgres "$bin/psql" -h "$dir" -p "$port" -U postgres -d postgres -qtAc \
      "SELECT 1 FROM pg_database WHERE datname = 'chatstream'" | grep -q 1 ||
      as_postgres "$bin/createdb" -h "$dir" -p "$port" -U postgres chatstream
    echo "$url"
    ;;
  stop)
    if [[ -f $dir/data/PG_VERSION ]]; then
      as_postgres "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    ;;
  *)
    echo "pg.sh: unknown command $cmd" >&2
    exit 2
    ;;
esac
