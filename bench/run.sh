#!/usr/bin/env bash
# Runs chatstream's benchmark scenarios, each bounded in time, and prints their figures.
#
#   bash bench/run.sh                      # every scenario, in the order below
#   bash bench/run.sh streams5000 ttfe     # only these
#   bash bench/run.sh --list
#
# The server (scripted provider, one worker) is pinned to one core and the load client to another,
# so neither steals the other's CPU. Each scenario starts its own server with its own flags and stops
# it with SIGTERM. Results (JSON) and logs go to $RESULTS.
#
# Environment:
#   BUILD       build directory (default: build)
#   CHATSTREAM  server binary (default: $BUILD/chatstream)
#   SSELOAD     load client (default: $BUILD/sseload)
#   BENCH_PORT  port the server listens on (default: 19000)
#   SERVER_CPU, CLIENT_CPU   cores for taskset (default: 0 and 1)
#   RESULTS     where results and logs go (default: $BUILD/bench-results/<date-time>)
set -euo pipefail

cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
CHATSTREAM=${CHATSTREAM:-$BUILD/chatstream}
SSELOAD=${SSELOAD:-$BUILD/sseload}
PORT=${BENCH_PORT:-19000}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
RESULTS=${RESULTS:-$BUILD/bench-results/$(date +%Y%m%d-%H%M%S)}
BASE_URL="http://127.0.0.1:$PORT"

ALL_SCENARIOS=(streams5000 hold ttfe coalesce nginx wrk)

server_pid=""  # the chatstream master
worker_pid=""  # its (only) worker: the process that holds the streams
scenario=""

log() { echo "run.sh: $*" >&2; }

title() { printf '\n==== %s — %s\n' "$scenario" "$1"; }

show_json() {
  if command -v python3 >/dev/null; then python3 -m json.tool "$1" 2>/dev/null || cat "$1"; else cat "$1"; fi
}

# start_server EXTRA_FLAGS...: starts the server for the current scenario and waits until /healthz
# answers and its worker exists (at most 10 s).
start_server() {
  taskset -c "$SERVER_CPU" "$CHATSTREAM" serve --listen "127.0.0.1:$PORT" --workers 1 --provider scripted \
    --heartbeat 15 --run-timeout 0 "$@" >"$RESULTS/$scenario.server.log" 2>&1 &
  server_pid=$!  # taskset execs the server: this is the master's pid
  local _
  for _ in $(seq 100); do
    if ! kill -0 "$server_pid" 2>/dev/null; then
      log "$scenario: the server exited at start; see $RESULTS/$scenario.server.log"
      server_pid=""
      return 1
    fi
    if curl -fsS -o /dev/null --max-time 1 "$BASE_URL/healthz" 2>/dev/null; then
      worker_pid=$(pgrep -P "$server_pid" | head -n 1 || true)
      if [[ -n $worker_pid ]]; then return 0; fi
    fi
    sleep 0.1
  done
  log "$scenario: the server did not become ready (healthz + worker) within 10 s"
  stop_server
  return 1
}

stop_server() {
  [[ -n $server_pid ]] || return 0
  kill -TERM "$server_pid" 2>/dev/null || true
  local _
  for _ in $(seq 150); do
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$server_pid" 2>/dev/null; then
    log "$scenario: the server ignored SIGTERM for 15 s; killing it"
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
  worker_pid=""
}

# run_sseload BACKSTOP_SECONDS SSELOAD_FLAGS...: sseload stops itself at its --duration and still
# reports; the outer timeout is a backstop that sends SIGINT first (sseload then reports too).
run_sseload() {
  local backstop=$1
  shift
  local out="$RESULTS/$scenario.json"
  timeout -s INT -k 10 "$backstop" taskset -c "$CLIENT_CPU" "$SSELOAD" --url "$BASE_URL/chat/stream" "$@" \
    >"$out" 2>"$RESULTS/$scenario.sseload.log" || log "$scenario: sseload exited with status $?"
  if [[ -s $out ]]; then show_json "$out"; else log "$scenario: no result; see $RESULTS/$scenario.sseload.log"; fi
}

scenario_streams5000() {
  title "5,000 concurrent streams, 400 tokens each at 20 tokens/s (20 s), order and timeliness checked"
  start_server --scripted-tokens 400 --scripted-rate 20 || return 1
  run_sseload 90 --streams 5000 --ramp 2 --duration 60 --check-order --expect-rate 20 --pid "$worker_pid"
  stop_server
}

scenario_hold() {
  title "5,000 quiet streams held open 10 s: server memory per stream"
  # One token every 1000 s: the streams stay open with nothing but heartbeats.
  start_server --scripted-tokens 2 --scripted-rate 0.001 --token-timeout 0 || return 1
  run_sseload 60 --streams 5000 --ramp 2 --hold --hold-seconds 10 --duration 40 --pid "$worker_pid"
  stop_server
}

scenario_ttfe() {
  title "time to first event: 1,000 streams in flight, 20,000 in all, 5-token answers at once"
  start_server --scripted-tokens 5 --scripted-rate 0 || return 1
  # Each finished stream's connection is closed by the client and sits in TIME_WAIT on its side:
  # four source addresses keep 20,000 of them far from the ~28k ephemeral ports of one address.
  run_sseload 150 --streams 1000 --total 20000 --ramp 1 --duration 120 --check-order --sources 4 \
    --pid "$worker_pid"
  stop_server
}

scenario_coalesce() {
  title "coalescing: 1,000 streams at 100 tokens/s with --flush-ms 50 (at most 20 token events/s, no token lost)"
  start_server --scripted-tokens 400 --scripted-rate 100 --flush-ms 50 || return 1
  run_sseload 60 --streams 1000 --ramp 2 --duration 40 --check-order --expect-rate 100 \
    --max-token-event-rate 20 --pid "$worker_pid"
  stop_server
}

# Through nginx: the worker is reached over a unix socket (cheapest for nginx per relayed event),
# nginx runs one worker process pinned to the server's core, so the figures are "what one core
# holds with nginx in front". nginx costs ~14 µs per relayed event, about twice the worker's own
# cost, hence fewer streams than direct.
NGINX_PORT=${BENCH_NGINX_PORT:-19080}
NGINX_CPU=${NGINX_CPU:-$SERVER_CPU}
NGINX_STREAMS=${NGINX_STREAMS:-2000}
nginx_pid=""
nginx_worker_pid=""

start_nginx() {
  local upstream=$1 dir="$RESULTS/nginx"
  bash scripts/render-nginx.sh --out "$dir" --port "$NGINX_PORT" --upstream "$upstream" >/dev/null
  sed -i -e 's/^worker_processes .*/worker_processes 1;/' \
         -e 's/^worker_rlimit_nofile .*/worker_rlimit_nofile 20000;/' \
         -e 's/worker_connections [0-9]*;/worker_connections 16384;/' "$dir/nginx.conf"
  taskset -c "$NGINX_CPU" nginx -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log" \
    >"$RESULTS/$scenario.nginx.log" 2>&1 &
  nginx_pid=$!
  local _
  for _ in $(seq 100); do
    if curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$NGINX_PORT/healthz" 2>/dev/null; then
      nginx_worker_pid=$(pgrep -P "$nginx_pid" | head -n 1 || true)
      [[ -n $nginx_worker_pid ]] && return 0
    fi
    sleep 0.1
  done
  log "$scenario: nginx did not become ready; see $dir/error.log"
  stop_nginx
  return 1
}

stop_nginx() {
  [[ -n $nginx_pid ]] || return 0
  kill -QUIT "$nginx_pid" 2>/dev/null || true
  local _
  for _ in $(seq 100); do
    kill -0 "$nginx_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$nginx_pid" 2>/dev/null || true
  wait "$nginx_pid" 2>/dev/null || true
  nginx_pid=""
  nginx_worker_pid=""
}

# start_server_unix EXTRA_FLAGS...: like start_server, but on the unix socket nginx proxies to.
start_server_unix() {
  local socket="$RESULTS/chatstream.sock"
  taskset -c "$SERVER_CPU" "$CHATSTREAM" serve --listen "unix:$socket" --workers 1 --provider scripted \
    --heartbeat 15 --run-timeout 0 "$@" >"$RESULTS/$scenario.server.log" 2>&1 &
  server_pid=$!
  local _
  for _ in $(seq 100); do
    if curl -fsS -o /dev/null --max-time 1 --unix-socket "$socket" http://localhost/healthz 2>/dev/null; then
      worker_pid=$(pgrep -P "$server_pid" | head -n 1 || true)
      [[ -n $worker_pid ]] && return 0
    fi
    sleep 0.1
  done
  log "$scenario: the server did not become ready on $socket"
  stop_server
  return 1
}

scenario_nginx() {
  title "$NGINX_STREAMS streams of 20 tokens/s through nginx (unix-socket upstream, nginx and worker on one core)"
  if ! command -v nginx >/dev/null; then
    echo "skipped: nginx is not installed"
    return 0
  fi
  start_server_unix --scripted-tokens 400 --scripted-rate 20 || return 1
  start_nginx "unix:$RESULTS/chatstream.sock" || { stop_server; return 1; }
  echo "-- streams (server_cpu_seconds = worker + nginx worker)"
  timeout -s INT -k 10 90 taskset -c "$CLIENT_CPU" "$SSELOAD" --url "http://127.0.0.1:$NGINX_PORT/chat/stream" \
    --streams "$NGINX_STREAMS" --ramp 2 --duration 60 --check-order --expect-rate 20 \
    --pid "$worker_pid" --pid "$nginx_worker_pid" >"$RESULTS/$scenario.json" 2>"$RESULTS/$scenario.sseload.log" \
    || log "$scenario: sseload exited with status $?"
  show_json "$RESULTS/$scenario.json"
  local nginx_cpu
  nginx_cpu=$(awk '{print ($14 + $15) / 100}' "/proc/$nginx_worker_pid/stat")
  echo "nginx worker cpu seconds since start: $nginx_cpu"
  echo "-- nginx memory per quiet stream (hold; rss figures are the nginx worker's)"
  stop_server
  start_server_unix --scripted-tokens 2 --scripted-rate 0.001 --token-timeout 0 || { stop_nginx; return 1; }
  timeout -s INT -k 10 60 taskset -c "$CLIENT_CPU" "$SSELOAD" --url "http://127.0.0.1:$NGINX_PORT/chat/stream" \
    --streams "$NGINX_STREAMS" --ramp 2 --hold --hold-seconds 10 --duration 40 --pid "$nginx_worker_pid" \
    >"$RESULTS/$scenario.hold.json" 2>>"$RESULTS/$scenario.sseload.log" || log "$scenario: sseload exited with status $?"
  show_json "$RESULTS/$scenario.hold.json"
  stop_nginx
  stop_server
}

# run_wrk NAME SCRIPT: 10 s of 50 keep-alive connections; prints the JSON line of bench/wrk/summary.lua.
run_wrk() {
  local name=$1 script=$2
  local out="$RESULTS/$scenario.$name.txt"
  timeout -s INT -k 5 30 taskset -c "$CLIENT_CPU" wrk -t1 -c50 -d10s -s "$script" "$BASE_URL" >"$out" 2>&1 \
    || log "$scenario: wrk exited with status $?"
  echo "-- $name"
  grep '^{' "$out" | tail -n 1 >"$out.json" || true
  if [[ -s $out.json ]]; then show_json "$out.json"; else cat "$out"; fi
}

scenario_wrk() {
  title "request/response throughput with wrk: POST /chat (20-token answers at once), GET /healthz"
  if ! command -v wrk >/dev/null; then
    echo "skipped: wrk is not installed"
    return 0
  fi
  start_server --scripted-tokens 20 --scripted-rate 0 || return 1
  run_wrk chat bench/wrk/chat.lua
  run_wrk healthz bench/wrk/healthz.lua
  stop_server
}

usage() {
  echo "usage: bash bench/run.sh [--list] [scenario...]   scenarios: ${ALL_SCENARIOS[*]}" >&2
}

main() {
  local selected=()
  for arg in "$@"; do
    case $arg in
      --list) printf '%s\n' "${ALL_SCENARIOS[@]}"; return 0 ;;
      -h | --help) usage; return 0 ;;
      *)
        if [[ " ${ALL_SCENARIOS[*]} " != *" $arg "* ]]; then
          usage
          return 2
        fi
        selected+=("$arg")
        ;;
    esac
  done
  if ((${#selected[@]} == 0)); then selected=("${ALL_SCENARIOS[@]}"); fi

  for binary in "$CHATSTREAM" "$SSELOAD"; do
    if [[ ! -x $binary ]]; then
      log "$binary not found: build first (make build, or cmake --build $BUILD)"
      return 1
    fi
  done
  if curl -fsS -o /dev/null --max-time 1 "$BASE_URL/healthz" 2>/dev/null; then
    log "something already answers on port $PORT; set BENCH_PORT"
    return 1
  fi
  mkdir -p "$RESULTS"
  RESULTS=$(cd "$RESULTS" && pwd)
  trap 'stop_nginx; stop_server' EXIT
  trap 'exit 130' INT TERM

  log "results and logs in $RESULTS"
  for scenario in "${selected[@]}"; do
    "scenario_$scenario" || log "$scenario failed"
    stop_server  # in case a scenario returned early
  done
}

main "$@"
