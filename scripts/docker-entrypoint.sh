#!/usr/bin/env bash
# Container entry point (see Dockerfile): chatstream on a unix socket + nginx on :8080 in front.
# PID 1 is this script: it forwards SIGTERM/SIGINT (docker stop) to both — nginx stops taking new
# requests, chatstream drains running streams for up to CHATSTREAM_DRAIN_TIMEOUT — and exits when
# both are gone. If either dies on its own, the other is stopped and the container exits non-zero,
# so the orchestrator restarts it.
set -euo pipefail

SOCK_DIR=/run/chatstream
SOCK="$SOCK_DIR/chatstream.sock"
NGINX_USER=www-data

# The socket directory: owned by chatstream, group www-data, setgid so the socket inherits the
# group; with umask 0007 the socket is rw for nginx's workers and nobody else.
install -d -o chatstream -g "$NGINX_USER" -m 2750 "$SOCK_DIR"
rm -f "$SOCK"

export CHATSTREAM_LISTEN="${CHATSTREAM_LISTEN:-unix:$SOCK}"
# The database is external (DATABASE_URL or CHATSTREAM_DATABASE_URL): its schema is brought up to date
# at every start (migrations are idempotent and serialized by an advisory lock). Load documents with
# `docker exec … chatstream ingest PATH`. chatstream picks the provider: openai when LLM_BASE_URL is
# set, else extractive with a database; with neither, a demonstration answer is streamed.
if [[ -n "${DATABASE_URL:-}${CHATSTREAM_DATABASE_URL:-}" ]]; then
  setpriv --reuid=chatstream --regid=chatstream --init-groups --inh-caps=-all /usr/local/bin/chatstream migrate
elif [[ -z "${LLM_BASE_URL:-}${CHATSTREAM_PROVIDER:-}" ]]; then
  export CHATSTREAM_PROVIDER=scripted
  CHATSTREAM_SCRIPTED_TEXT="$(cat /usr/share/chatstream/demo-answer.txt)"
  export CHATSTREAM_SCRIPTED_TEXT
  export CHATSTREAM_SCRIPTED_RATE="${CHATSTREAM_SCRIPTED_RATE:-20}"
fi

chatstream_pid=""
nginx_pid=""
stopping=0

stop_all() {
  (( stopping )) && return
  stopping=1
  # nginx: graceful (QUIT) — no new connections, open streams continue until chatstream ends them.
  # chatstream: TERM — drain, then `error{shutdown}` for streams still running at the deadline.
  if [[ -n "$nginx_pid" ]]; then kill -QUIT "$nginx_pid" 2>/dev/null || true; fi
  if [[ -n "$chatstream_pid" ]]; then
    kill -TERM "$chatstream_pid" 2>/dev/null || true
    wait "$chatstream_pid" 2>/dev/null || true
  fi
  if [[ -n "$nginx_pid" ]]; then wait "$nginx_pid" 2>/dev/null || true; fi
}
trap 'stop_all; exit 0' TERM INT

# chatstream: unprivileged, logs (JSON lines) to the container's stderr.
(umask 0007 && exec setpriv --reuid=chatstream --regid=chatstream --init-groups --inh-caps=-all \
   /usr/local/bin/chatstream serve "$@") &
chatstream_pid=$!

# nginx in the foreground (daemon off) with Debian's nginx.conf + /etc/nginx/conf.d/chatstream.conf.
nginx -g 'daemon off;' &
nginx_pid=$!

set +e
wait -n "$chatstream_pid" "$nginx_pid"
rc=$?
set -e
if (( ! stopping )); then
  echo "docker-entrypoint: a process exited unexpectedly (status $rc); stopping" >&2
  stop_all
  exit $(( rc == 0 ? 1 : rc ))
fi
