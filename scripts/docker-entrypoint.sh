#!/usr/bin/env bash
# Container entry point (see Dockerfile), as the image's unprivileged user. Three roles:
#   (no role) [serve flags…]   chatstream on a unix socket + nginx on :8080 in front (docker run)
#   server [serve flags…]      chatstream alone on CHATSTREAM_LISTEN (default 0.0.0.0:9000); compose
#                              gives it a unix socket in a volume shared with the nginx container
#   nginx                      nginx alone on :8080 in front of CHATSTREAM_UPSTREAM (unix:/path or
#                              host:port; default chatstream:9000)
# PID 1 is this script: it forwards SIGTERM/SIGINT (docker stop) to both — nginx stops taking new
# connections, chatstream drains running streams for up to CHATSTREAM_DRAIN_TIMEOUT — and exits when
# both are gone. If either dies on its own, the other is stopped and the container exits non-zero,
# so the orchestrator restarts it.
#
# With a database (DATABASE_URL or CHATSTREAM_DATABASE_URL) the schema is brought up to date at every
# start (migrations are idempotent and serialized by an advisory lock), and the documents under
# CHATSTREAM_INGEST_PATHS (space separated; compose.yaml sets the bundled PostgreSQL manual) are
# loaded: ingestion is idempotent by source path, so after the first start it only checks hashes.
# Without a database and without LLM_BASE_URL, a demonstration answer is streamed.
set -euo pipefail

STATE=/var/lib/chatstream
SOCK="$STATE/chatstream.sock"
NGINX_DIR="$STATE/nginx"

log() { printf '{"level":"info","msg":"docker-entrypoint: %s"}\n' "$*" >&2; }

role=all
case "${1:-}" in
  server|nginx) role="$1"; shift ;;
esac

if [[ "$role" == nginx ]]; then
  # The upstream is another container: render the configuration for it at start (the address is only
  # known then), into a directory of this container's own.
  upstream="${CHATSTREAM_UPSTREAM:-chatstream:9000}"
  bash /usr/share/chatstream/scripts/render-nginx.sh --out "$STATE/nginx-proxy" --port 8080 \
    --listen 0.0.0.0 --web-root /srv/chatstream/web --upstream "$upstream" >/dev/null
  sed -i -e '/^user root root;$/d' -e 's/^worker_processes 2;/worker_processes auto;/' \
      -e 's|^error_log .*;|error_log stderr warn;|' -e 's|^\(\s*\)access_log .*;|\1access_log off;|' \
      "$STATE/nginx-proxy/nginx.conf"
  log "nginx on :8080 in front of $upstream"
  exec nginx -e stderr -p "$STATE/nginx-proxy/" -c "$STATE/nginx-proxy/nginx.conf"
fi

if [[ "$role" == server ]]; then
  export CHATSTREAM_LISTEN="${CHATSTREAM_LISTEN:-0.0.0.0:9000}"
else
  export CHATSTREAM_LISTEN="${CHATSTREAM_LISTEN:-unix:$SOCK}"
fi
# A socket left by a container that was killed would make the bind fail.
if [[ "$CHATSTREAM_LISTEN" == unix:* ]]; then rm -f "${CHATSTREAM_LISTEN#unix:}"; fi

if [[ -n "${DATABASE_URL:-}${CHATSTREAM_DATABASE_URL:-}" ]]; then
  # The database may still be starting (compose waits for its health check; other orchestrators may
  # not): retry the migration for a while before giving up.
  for attempt in $(seq 1 30); do
    if /usr/local/bin/chatstream migrate >&2; then break; fi
    (( attempt == 30 )) && { log "database not reachable, giving up"; exit 1; }
    sleep 2
  done
  if [[ -n "${CHATSTREAM_INGEST_PATHS:-}" ]]; then
    read -r -a ingest_paths <<<"$CHATSTREAM_INGEST_PATHS"
    /usr/local/bin/chatstream ingest "${ingest_paths[@]}" >&2
  fi
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
  log "stopping: draining running streams"
  if [[ -n "$nginx_pid" ]]; then kill -QUIT "$nginx_pid" 2>/dev/null || true; fi
  if [[ -n "$chatstream_pid" ]]; then
    kill -TERM "$chatstream_pid" 2>/dev/null || true
    wait "$chatstream_pid" 2>/dev/null || true
  fi
  if [[ -n "$nginx_pid" ]]; then wait "$nginx_pid" 2>/dev/null || true; fi
  log "stopped"
}
trap 'stop_all; exit 0' TERM INT

# Sockets readable and writable by this user only: nginx runs as the same user.
(umask 0077 && exec /usr/local/bin/chatstream serve "$@") &
chatstream_pid=$!

if [[ "$role" == server ]]; then
  set +e
  wait "$chatstream_pid"
  rc=$?
  set -e
  (( stopping )) && exit 0
  log "chatstream exited unexpectedly (status $rc)"
  exit $(( rc == 0 ? 1 : rc ))
fi

nginx -e stderr -p "$NGINX_DIR/" -c "$NGINX_DIR/nginx.conf" &
nginx_pid=$!

set +e
wait -n "$chatstream_pid" "$nginx_pid"
rc=$?
set -e
if (( ! stopping )); then
  log "a process exited unexpectedly (status $rc); stopping"
  stop_all
  exit $(( rc == 0 ? 1 : rc ))
fi
