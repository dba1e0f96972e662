#!/usr/bin/env bash
# `make run`: install what is missing, build a release binary, run chatstream behind nginx on
# http://127.0.0.1:$PORT until Ctrl-C, then stop both cleanly.
#
# Everything at run time lives in .run/ (socket, logs, rendered nginx config, pid files).
# Environment: PORT (8080), WORKERS (chatstream's default: one per core), any CHATSTREAM_* flag.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PORT="${PORT:-8080}"
RUN="$ROOT/.run"
SOCK="$RUN/chatstream.sock"

log() { echo "run.sh: $*" >&2; }

bash scripts/deps.sh
make --no-print-directory build

mkdir -p "$RUN"
if [[ -f "$RUN/nginx/nginx.pid" ]] && kill -0 "$(cat "$RUN/nginx/nginx.pid")" 2>/dev/null; then
  log "an nginx from a previous run is still running (pid $(cat "$RUN/nginx/nginx.pid")); stop it first"
  exit 1
fi
if (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null; then
  log "port $PORT is already in use; choose another with PORT=..."
  exit 1
fi
rm -f "$SOCK"

chatstream_pid=""
nginx_pid=""
stopping=0

stop_all() {
  (( stopping )) && return
  stopping=1
  trap '' INT TERM
  # nginx first (it stops sending new requests), then chatstream, which lets running streams finish
  # within its --drain-timeout.
  if [[ -n "$nginx_pid" ]] && kill -0 "$nginx_pid" 2>/dev/null; then
    kill -QUIT "$nginx_pid" 2>/dev/null || true   # graceful: finishes open requests
  fi
  if [[ -n "$chatstream_pid" ]] && kill -0 "$chatstream_pid" 2>/dev/null; then
    log "stopping chatstream (pid $chatstream_pid)"
    kill -TERM "$chatstream_pid" 2>/dev/null || true
    wait "$chatstream_pid" 2>/dev/null || true
  fi
  if [[ -n "$nginx_pid" ]] && kill -0 "$nginx_pid" 2>/dev/null; then
    kill -TERM "$nginx_pid" 2>/dev/null || true
    wait "$nginx_pid" 2>/dev/null || true
  fi
  rm -f "$SOCK"
  bash scripts/pg.sh stop "$RUN/pg"
  log "stopped"
}
trap 'stop_all' EXIT
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM

# --- Database ---------------------------------------------------------------------------------------
# A private PostgreSQL cluster in .run/pg (kept between runs), migrated, with the PostgreSQL manual
# (Debian's postgresql-doc-15) loaded as the knowledge base: "ask the PostgreSQL manual".
PG_PORT="${PG_PORT:-54329}"
DATABASE_URL=$(bash scripts/pg.sh start "$RUN/pg" "$PG_PORT")
export DATABASE_URL
build/chatstream migrate >&2
KB="${KNOWLEDGE_BASE:-/usr/share/doc/postgresql-doc-15/html}"
# Citations link to the manual's official pages of the same major version (KB_BASE_URL= for none).
if [[ -z "${KNOWLEDGE_BASE:-}" ]]; then
  KB_BASE_URL="${KB_BASE_URL-https://www.postgresql.org/docs/15/}"
fi
log "loading the knowledge base from $KB (unchanged files are skipped)"
build/chatstream ingest "$KB" ${KB_BASE_URL:+--base-url "$KB_BASE_URL"} >&2
# ------------------------------------------------------------------------------------------------------

# The provider: `extractive` (answers from the manual, no network), or `openai` when LLM_BASE_URL
# (with LLM_MODEL, LLM_API_KEY) is set; CHATSTREAM_PROVIDER forces one.
# Both run in their own session (setsid): Ctrl-C reaches this script only, which stops them in
# order. Without job control, setsid execs in place, so $! is the server's own pid.
setsid build/chatstream serve \
  --listen "unix:$SOCK" \
  --drain-timeout "${CHATSTREAM_DRAIN_TIMEOUT:-5s}" \
  ${WORKERS:+--workers "$WORKERS"} \
  2>>"$RUN/chatstream.log" &
chatstream_pid=$!

bash scripts/render-nginx.sh --out "$RUN/nginx" --port "$PORT" --web-root "$ROOT/web" \
  --upstream "unix:$SOCK" --check >/dev/null
setsid nginx -p "$RUN/nginx/" -c "$RUN/nginx/nginx.conf" -e "$RUN/nginx/error.log" &
nginx_pid=$!

deadline=$((SECONDS + 30))
until curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/healthz" 2>/dev/null; do
  if ! kill -0 "$chatstream_pid" 2>/dev/null; then
    log "chatstream exited; last lines of $RUN/chatstream.log:"; tail -n 20 "$RUN/chatstream.log" >&2
    exit 1
  fi
  if ! kill -0 "$nginx_pid" 2>/dev/null; then
    log "nginx exited; last lines of $RUN/nginx/error.log:"; tail -n 20 "$RUN/nginx/error.log" >&2
    exit 1
  fi
  if (( SECONDS > deadline )); then
    log "no answer from http://127.0.0.1:$PORT/healthz after 30s"
    exit 1
  fi
  sleep 0.2
done

cat <<EOF

chatstream is running behind nginx on http://127.0.0.1:$PORT  (logs: .run/chatstream.log, .run/nginx/)
Try:

curl -N -X POST http://127.0.0.1:$PORT/chat/stream -H 'Content-Type: application/json' -d '{"message":"hello"}'

or ask the PostgreSQL manual, or open http://127.0.0.1:$PORT/ for the chat page:

curl -N -X POST http://127.0.0.1:$PORT/chat/stream -H 'Content-Type: application/json' -d '{"message":"How do I create a partial index?"}'

Press Ctrl-C to stop.
EOF

# Until Ctrl-C (trap) or until one of the two dies on its own.
set +e
wait -n "$chatstream_pid" "$nginx_pid"
rc=$?
set -e
if (( ! stopping )); then
  log "a process exited unexpectedly (status $rc); stopping the other"
  exit 1
fi
