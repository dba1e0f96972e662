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
#   BENCH_PG_PORT  port of the private PostgreSQL cluster of `persist` (default: 19432)
#   PERSIST_POOL_SIZE  `persist`: --db-pool-size of the server (default: the server's, 4)
#   FAKE_LLM    the fake OpenAI upstream of `relay` (default: $BUILD/fake-llm)
#   BENCH_FAKE_PORT  its port (default: 19100)
#   RELAY_STREAMS, RELAY_TOKENS, RELAY_RATE  `relay`: streams (2000), tokens per answer (400) and
#               tokens/s (20) of the fake upstream
#   RELAY_NGINX=0  `relay`: skip the pass through nginx
#   RELAY_H2_STREAMS  `relay-h2`: streams relayed over TLS + HTTP/2 (default 1000)
#   BENCH_TLS_PORT    `relay-h2`: port of the TLS + HTTP/2 front of fake-llm (default 19443)
#   PERSIST_RAMP       `persist`: sseload --ramp seconds (default 2, as streams5000)
#   RESUME_STREAMS     `resume-storm`: streams cut and resumed (default 1000)
#   RESUME_DB=0        `resume-storm`: skip the pass with PostgreSQL
#   RESUME_DB_WORKERS  `resume-storm`: workers of the pass with PostgreSQL (default 2)
#   DURABLE_STREAMS    `durable5000`: streams (default 5000)
#   DURABLE_RAMP       `durable5000`: sseload --ramp seconds (default 10)
#   DURABLE_POOL_SIZE  `durable5000`: --db-pool-size of the server (default: the server's, 4)
#   DURABLE_DB_WAIT    `durable5000`: --db-wait-timeout of the server (default 10s)
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

ALL_SCENARIOS=(streams5000 hold ttfe coalesce nginx wrk persist relay relay-h2 resume-storm durable5000)

server_pid=""  # the chatstream master
worker_pid=""  # its (first) worker: the process that holds the streams
worker_pids=() # every worker (a scenario may set `workers` as a local variable; default 1)
scenario=""

log() { echo "run.sh: $*" >&2; }

title() { printf '\n==== %s — %s\n' "$scenario" "$1"; }

show_json() {
  if command -v python3 >/dev/null; then python3 -m json.tool "$1" 2>/dev/null || cat "$1"; else cat "$1"; fi
}

# start_server EXTRA_FLAGS...: starts the server for the current scenario and waits until /healthz
# answers and its workers exist (at most 10 s). The provider is $provider and the number of workers
# $workers (a scenario may set them as local variables), scripted and 1 by default.
start_server() {
  taskset -c "$SERVER_CPU" "$CHATSTREAM" serve --listen "127.0.0.1:$PORT" --workers "${workers:-1}" \
    --provider "${provider:-scripted}" --heartbeat 15 --run-timeout 0 "$@" >"$RESULTS/$scenario.server.log" 2>&1 &
  server_pid=$!  # taskset execs the server: this is the master's pid
  local _
  for _ in $(seq 100); do
    if ! kill -0 "$server_pid" 2>/dev/null; then
      log "$scenario: the server exited at start; see $RESULTS/$scenario.server.log"
      server_pid=""
      return 1
    fi
    if curl -fsS -o /dev/null --max-time 1 "$BASE_URL/healthz" 2>/dev/null; then
      mapfile -t worker_pids < <(pgrep -P "$server_pid" || true)
      worker_pid=${worker_pids[0]:-}
      if ((${#worker_pids[@]} >= ${workers:-1})); then return 0; fi
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
  worker_pids=()
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
  start_sampler "$RESULTS/$scenario.samples"
  run_sseload 90 --streams 5000 --ramp 2 --duration 60 --check-order --expect-rate 20 --pid "$worker_pid"
  stop_sampler
  echo "-- worker memory (every POST /chat/stream run keeps its event log)"
  memory_summary "$RESULTS/$scenario.samples" 5000 2 400 20
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
  title "time to first event: 1,000 streams in flight (1 s answers at 20 tokens/s), replaced as they finish, 20,000 in all"
  start_server --scripted-tokens 20 --scripted-rate 20 || return 1
  # Each finished stream's connection is closed by the client and sits in TIME_WAIT on its side:
  # four source addresses keep 20,000 of them far from the ~28k ephemeral ports of one address.
  run_sseload 150 --streams 1000 --total 20000 --ramp 1 --duration 120 --check-order --sources 4 \
    --pid "$worker_pid"
  stop_server
  echo "-- worst case: 5-token answers at once, so every stream is a new connection (~17,000/s)"
  start_server --scripted-tokens 5 --scripted-rate 0 || return 1
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

# quit_nginx PID SECONDS: a graceful stop (SIGQUIT: requests in flight finish), SIGKILL after SECONDS.
quit_nginx() {
  local pid=$1 ticks=$(($2 * 10)) _
  kill -QUIT "$pid" 2>/dev/null || true
  for _ in $(seq "$ticks"); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

stop_nginx() {
  [[ -n $nginx_pid ]] || return 0
  quit_nginx "$nginx_pid" 10
  nginx_pid=""
  nginx_worker_pid=""
}

# start_server_unix EXTRA_FLAGS...: like start_server, but on the unix socket nginx proxies to.
start_server_unix() {
  local socket="$RESULTS/chatstream.sock"
  taskset -c "$SERVER_CPU" "$CHATSTREAM" serve --listen "unix:$socket" --workers 1 --provider "${provider:-scripted}" \
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

# With PostgreSQL: a private cluster (scripts/pg.sh) in $RESULTS/pg with real durability (PG_FAST
# unset: fsync and synchronous commits on), so each run's writes cost what they cost in production.
PG_PORT=${BENCH_PG_PORT:-19432}
pg_dir=""
pg_url=""

start_pg() {
  pg_dir="$RESULTS/pg"
  # PostgreSQL runs unpinned unless PG_CPU says where (pinned to the client's core, the client
  # falls behind and measures its own lateness: durable5000 0.81 on time against 0.88 unpinned).
  local pin=()
  if [[ -n ${PG_CPU:-} ]]; then pin=(taskset -c "$PG_CPU"); fi
  if ! pg_url=$(env -u PG_FAST "${pin[@]}" bash scripts/pg.sh start "$pg_dir" "$PG_PORT" 2>"$RESULTS/$scenario.pg.log"); then
    log "$scenario: PostgreSQL did not start; see $RESULTS/$scenario.pg.log and $pg_dir/postgres.log"
    pg_dir=""
    return 1
  fi
  if ! "$CHATSTREAM" migrate --database-url "$pg_url" >>"$RESULTS/$scenario.pg.log" 2>&1; then
    log "$scenario: chatstream migrate failed; see $RESULTS/$scenario.pg.log"
    stop_pg
    return 1
  fi
}

stop_pg() {
  [[ -n $pg_dir ]] || return 0
  bash scripts/pg.sh stop "$pg_dir" || true
  pg_dir=""
}

# CPU seconds used by the cluster so far: the postmaster (with the children it reaped) and its live
# children (backends, WAL writer, checkpointer, ...).
pg_cpu_seconds() {
  local postmaster hz
  postmaster=$(head -n 1 "$pg_dir/data/postmaster.pid")
  hz=$(getconf CLK_TCK)
  {
    awk '{print $14 + $15 + $16 + $17}' "/proc/$postmaster/stat"
    local child
    for child in $(pgrep -P "$postmaster"); do
      awk '{print $14 + $15}' "/proc/$child/stat" 2>/dev/null || true
    done
  } | awk -v hz="$hz" '{ticks += $1} END {printf "%.2f\n", ticks / hz}'
}

# metric NAME [LABELS]: one sample of the server's /metrics (0 when absent).
metric() {
  local name=$1
  if [[ -n ${2:-} ]]; then name+="{$2}"; fi
  curl -fsS --max-time 5 "$BASE_URL/metrics" |
    awk -v name="$name" '$1 == name {print $2; found = 1} END {if (!found) print 0}'
}

# pg_rows: what the load left in the database (exact, unlike pg_stat_database's lazily flushed counters).
pg_rows() {
  psql "$pg_url" -qtAX -F ' ' -c "SELECT (SELECT count(*) FROM runs), (SELECT count(*) FROM runs WHERE status = 'complete'),
    (SELECT count(*) FROM messages WHERE role = 'user'), (SELECT count(*) FROM messages WHERE role = 'assistant')" |
    awk '{printf "rows: runs %d (complete %d), user messages %d, assistant messages %d\n", $1, $2, $3, $4}'
}

scenario_persist() {
  title "streams5000 with PostgreSQL on (durable commits): queries per run, worker and PostgreSQL CPU"
  if [[ ! -x /usr/lib/postgresql/15/bin/pg_ctl ]] || ! command -v psql >/dev/null; then
    echo "skipped: PostgreSQL 15 is not installed (scripts/deps.sh installs it)"
    return 0
  fi
  start_pg || return 1
  # Default pool (4 connections per worker, 2 s wait) unless PERSIST_POOL_SIZE is set: what a
  # deployment gets without tuning.
  local pool=()
  if [[ -n ${PERSIST_POOL_SIZE:-} ]]; then pool=(--db-pool-size "$PERSIST_POOL_SIZE"); fi
  start_server --database-url "$pg_url" --scripted-tokens 400 --scripted-rate 20 "${pool[@]}" ||
    { stop_pg; return 1; }
  local pg_cpu_before pg_cpu_after
  pg_cpu_before=$(pg_cpu_seconds)
  run_sseload 90 --streams 5000 --ramp "${PERSIST_RAMP:-2}" --duration 60 --check-order --expect-rate 20 \
    --pid "$worker_pid"
  pg_cpu_after=$(pg_cpu_seconds)
  local queries complete runs
  queries=$(metric chatstream_db_queries_total)
  complete=$(metric chatstream_runs_total 'status="complete"')
  runs=$(curl -fsS --max-time 5 "$BASE_URL/metrics" | awk '$1 ~ /^chatstream_runs_total\{/ {n += $2} END {print n + 0}')
  echo "-- database (from /metrics; the worker's CPU is server_cpu_seconds above)"
  awk -v q="$queries" -v c="$complete" -v r="$runs" 'BEGIN {
    printf "chatstream_db_queries_total: %d\n", q
    printf "runs: %d, of which complete: %d\n", r, c
    printf "queries per completed run: %s\n", (c > 0 ? sprintf("%.2f", q / c) : "n/a")
    printf "queries per run (all endings): %s\n", (r > 0 ? sprintf("%.2f", q / r) : "n/a")
  }'
  echo "chatstream_persist_deferred_total: $(metric chatstream_persist_deferred_total)"
  echo "chatstream_persist_lost_total: $(metric chatstream_persist_lost_total)"
  echo "chatstream_run_errors_total{code=\"overloaded\"}: $(metric chatstream_run_errors_total 'code="overloaded"')"
  echo "chatstream_run_errors_total{code=\"internal\"}: $(metric chatstream_run_errors_total 'code="internal"')"
  pg_rows
  echo "postgresql cpu seconds during the load: $(awk -v a="$pg_cpu_before" -v b="$pg_cpu_after" 'BEGIN {printf "%.2f", b - a}')"
  stop_server
  stop_pg
}

# The openai provider relaying bench/fake-llm: every stream is an upstream HTTP/1.1 transfer
# (libcurl on the worker's loop) whose chunks chatstream parses and re-frames. fake-llm runs on the
# client's core (it is part of the load generator), chatstream's worker on its own.
FAKE_LLM=${FAKE_LLM:-$BUILD/fake-llm}
FAKE_PORT=${BENCH_FAKE_PORT:-19100}
RELAY_STREAMS=${RELAY_STREAMS:-2000}
RELAY_TOKENS=${RELAY_TOKENS:-400}
RELAY_RATE=${RELAY_RATE:-20}
RELAY_PROBE_STREAMS=20
fake_pid=""

start_fake() {
  taskset -c "$CLIENT_CPU" "$FAKE_LLM" --listen "127.0.0.1:$FAKE_PORT" --tokens "$RELAY_TOKENS" \
    --rate "$RELAY_RATE" >"$RESULTS/$scenario.fake-llm.log" 2>&1 &
  fake_pid=$!
  local _
  for _ in $(seq 100); do
    if curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$FAKE_PORT/v1/models" 2>/dev/null; then return 0; fi
    kill -0 "$fake_pid" 2>/dev/null || break
    sleep 0.1
  done
  log "$scenario: fake-llm did not start; see $RESULTS/$scenario.fake-llm.log"
  stop_fake
  return 1
}

stop_fake() {
  [[ -n $fake_pid ]] || return 0
  kill -TERM "$fake_pid" 2>/dev/null || true
  wait "$fake_pid" 2>/dev/null || true
  fake_pid=""
}

cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f\n", ($14 + $15) / hz}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# relay_pass LABEL URL SSELOAD_PIDS...: one load through URL (chatstream, or nginx in front of it).
# While sseload runs: the worker's RSS is read once the streams are all open (steady state), and
# relay_probe.py reads 20 more streams through URL and 20 directly from fake-llm (lateness against
# the fake's schedule). Then one summary.
relay_pass() {
  local label=$1 url=$2
  shift 2
  local pid_args=() pid
  for pid in "$@"; do pid_args+=(--pid "$pid"); done
  local out="$RESULTS/$scenario.$label"
  curl -fsS -o /dev/null -X POST "http://127.0.0.1:$FAKE_PORT/v1/reset"
  local rss_before fake_cpu_before
  rss_before=$(rss_kib "$worker_pid")
  fake_cpu_before=$(cpu_seconds "$fake_pid")
  # Steady state: the 2 s ramp is over, no stream has ended (each lasts RELAY_TOKENS / RELAY_RATE s).
  (sleep 10; rss_kib "$worker_pid" >"$out.rss_steady") &
  local sampler=$!
  local hostport=${url#http://}
  hostport=${hostport%%/*}
  (sleep 3; taskset -c "$CLIENT_CPU" python3 bench/relay_probe.py --relay "$hostport" --fake "127.0.0.1:$FAKE_PORT" \
    --streams "$RELAY_PROBE_STREAMS" --rate "$RELAY_RATE" --seconds 15 >"$out.probe.json" 2>"$out.probe.log") &
  local probe=$!
  timeout -s INT -k 10 90 taskset -c "$CLIENT_CPU" "$SSELOAD" --url "$url" --streams "$RELAY_STREAMS" --ramp 2 \
    --duration 60 --check-order --expect-rate "$RELAY_RATE" "${pid_args[@]}" >"$out.json" 2>"$out.sseload.log" \
    || log "$scenario: sseload exited with status $?"
  wait "$sampler" "$probe" || true
  curl -fsS --max-time 5 "http://127.0.0.1:$FAKE_PORT/v1/stats" >"$out.fake-stats.json" || true
  echo "fake_cpu_seconds $(awk -v a="$fake_cpu_before" -v b="$(cpu_seconds "$fake_pid")" 'BEGIN {printf "%.2f", b - a}')" \
    >"$out.fake-cpu"
  show_json "$out.json"
  python3 - "$out" "$rss_before" "$RELAY_PROBE_STREAMS" <<'PY'
import json, sys
out, rss_before, probe_streams = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = json.load(open(out + ".json"))
probe = json.load(open(out + ".probe.json"))
fake = json.load(open(out + ".fake-stats.json"))
fake_cpu = float(open(out + ".fake-cpu").read().split()[1])
rss_steady = int(open(out + ".rss_steady").read().strip() or 0)
streams = s["streams_established"] + probe_streams
tokens = s["tokens"] + probe["relay"]["tokens"]  # the worker also relayed the probe's streams
pct = lambda h: f'p50 {h["p50"]} / p99 {h["p99"]} / max {h["max"]}' if h else "n/a"
print(f'-- summary ({out.rsplit(".", 1)[-1]})')
print(f'streams completed {s["streams_completed"]} of {s["streams_requested"]}, failed {s["streams_failed"]} '
      f'{s.get("failures_by_reason") or ""}, order_errors {s["order_errors"]}, on_time_ratio {s["on_time_ratio"]}')
print(f'gap_ms {pct(s["gap_ms"])}; first_token_ms {pct(s["first_token_ms"])}')
cpu = s.get("server_cpu_seconds")
if cpu is not None and tokens:
    print(f'server cpu {cpu:.2f} s for {tokens} tokens: {cpu / tokens * 1000 * 1000:.1f} ms per 1000 tokens '
          f'({cpu / s["duration_s"]:.2f} of a core over {s["duration_s"]:.1f} s)')
print(f'worker rss {rss_before} KiB before, {rss_steady} KiB with {streams} streams open: '
      f'{(rss_steady - rss_before) * 1024 / max(1, streams):.0f} bytes per stream')
print(f'fake-llm: {fake["requests"]} requests, max {fake["max_concurrent_streams"]} concurrent, '
      f'client_closed_early {fake["client_closed_early"]}, paused_detected {fake["paused_detected"]}, '
      f'cpu {fake_cpu:.2f} s; sseload cpu {s["client_cpu_seconds"]:.2f} s')
for path in ("relay", "direct"):
    p = probe.get(path)
    if p:
        print(f'probe {path}: {p["streams_with_tokens"]} streams, {p["tokens"]} tokens, order_errors {p["order_errors"]}, '
              f'lateness_ms {pct(p["lateness_ms"])}, first_token_ms {pct(p["first_token_ms"])}')
PY
}

scenario_relay() {
  title "$RELAY_STREAMS streams relayed from fake-llm (openai provider), $RELAY_TOKENS tokens at $RELAY_RATE tokens/s, direct and through nginx"
  if [[ ! -x $FAKE_LLM ]]; then
    log "$scenario: $FAKE_LLM not found (cmake --build $BUILD --target fake-llm)"
    return 1
  fi
  local provider=openai
  local upstream=(--llm-base-url "http://127.0.0.1:$FAKE_PORT/v1" --llm-model fake-model --llm-api-key sk-bench)
  start_fake || return 1
  echo "-- direct"
  start_server "${upstream[@]}" || { stop_fake; return 1; }
  relay_pass direct "$BASE_URL/chat/stream" "$worker_pid"
  stop_server
  if [[ ${RELAY_NGINX:-1} == 1 ]] && command -v nginx >/dev/null; then
    echo "-- through nginx (server_cpu_seconds = worker + nginx worker, both on core $SERVER_CPU)"
    start_server_unix "${upstream[@]}" || { stop_fake; return 1; }
    start_nginx "unix:$RESULTS/chatstream.sock" || { stop_server; stop_fake; return 1; }
    relay_pass nginx "http://127.0.0.1:$NGINX_PORT/chat/stream" "$worker_pid" "$nginx_worker_pid"
    stop_nginx
    stop_server
  fi
  stop_fake
}

# The same relay over TLS + HTTP/2, what hosted models speak: nginx (scripts/tls-upstream.sh: a CA
# of its own, trusted with --llm-ca-file) terminates TLS and HTTP/2 in front of fake-llm, both on the
# client's core (they are the upstream). Also printed: how many HTTP/2 connections carry the streams.
RELAY_H2_STREAMS=${RELAY_H2_STREAMS:-1000}
TLS_PORT=${BENCH_TLS_PORT:-19443}
tls_pid=""

stop_tls_front() {
  [[ -n $tls_pid ]] || return 0
  quit_nginx "$tls_pid" 5
  tls_pid=""
}

scenario_relay_h2() {
  title "$RELAY_H2_STREAMS streams relayed over TLS + HTTP/2 (nginx in front of fake-llm), $RELAY_TOKENS tokens at $RELAY_RATE tokens/s"
  if ! command -v nginx >/dev/null; then
    echo "skipped: nginx is not installed"
    return 0
  fi
  if [[ ! -x $FAKE_LLM ]]; then
    log "$scenario: $FAKE_LLM not found (cmake --build $BUILD --target fake-llm)"
    return 1
  fi
  local provider=openai dir="$RESULTS/tls-upstream"
  bash scripts/tls-upstream.sh --out "$dir" --port "$TLS_PORT" --upstream "127.0.0.1:$FAKE_PORT" >/dev/null || return 1
  start_fake || return 1
  taskset -c "$CLIENT_CPU" nginx -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log" \
    >"$RESULTS/$scenario.tls-front.log" 2>&1 &
  tls_pid=$!
  local _ ready=0
  for _ in $(seq 100); do
    if curl -fsS -o /dev/null --max-time 1 --cacert "$dir/ca.pem" "https://127.0.0.1:$TLS_PORT/v1/models" 2>/dev/null; then
      ready=1
      break
    fi
    sleep 0.1
  done
  if ((!ready)); then
    log "$scenario: the TLS front did not start; see $dir/error.log"
    stop_tls_front
    stop_fake
    return 1
  fi
  start_server --llm-base-url "https://127.0.0.1:$TLS_PORT/v1" --llm-model fake-model --llm-api-key sk-bench \
    --llm-ca-file "$dir/ca.pem" || { stop_tls_front; stop_fake; return 1; }
  local RELAY_STREAMS=$RELAY_H2_STREAMS  # relay_pass's load
  (sleep 10; ss -tnH state established "( dport = :$TLS_PORT )" | wc -l >"$RESULTS/$scenario.h2-connections") &
  local counter=$!
  relay_pass h2 "$BASE_URL/chat/stream" "$worker_pid"
  wait "$counter" || true
  echo "HTTP/2 connections to the upstream with $RELAY_H2_STREAMS streams open: $(cat "$RESULTS/$scenario.h2-connections")"
  stop_server
  stop_tls_front
  stop_fake
}

# --- Durable streams (issue 10): resume storms, and the 5,000-stream load with checkpoints ---------

sampler_pid=""

# start_sampler FILE: in the background on the client's core, every 0.5 s one line
# "SECONDS RSS_KIB CHECKPOINT_STATEMENTS" (seconds since the call, VmRSS summed over the workers,
# chatstream_checkpoint_statements_total from /metrics) until stop_sampler.
start_sampler() {
  (
    taskset -cp "$CLIENT_CPU" "$BASHPID" >/dev/null 2>&1 || true
    start=$(date +%s.%N)
    while :; do
      rss=0
      for pid in "${worker_pids[@]}"; do rss=$((rss + $(rss_kib "$pid" 2>/dev/null || echo 0))); done
      statements=$(metric chatstream_checkpoint_statements_total 2>/dev/null || true)
      statements=${statements%%$'\n'*}
      echo "$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b - a}') $rss $statements"
      sleep 0.5
    done
  ) >"$1" 2>/dev/null &
  sampler_pid=$!
}

stop_sampler() {
  [[ -n $sampler_pid ]] || return 0
  kill "$sampler_pid" 2>/dev/null || true
  wait "$sampler_pid" 2>/dev/null || true
  sampler_pid=""
}

# memory_summary SAMPLES STREAMS RAMP TOKENS RATE: worker memory per stream and per answer from the
# RSS samples of a load of STREAMS answers of TOKENS tokens at RATE tokens/s, opened evenly over
# RAMP seconds. Between t1 (the ramp is over: every stream is open) and t2 (just before the first
# stream ends) no stream opens or closes and each receives RATE × (t2 − t1) more tokens, so
# RSS(t2) − RSS(t1) is what those tokens cost (the answer text, the event log, the stored copy's
# buffers); × TOKENS gives a whole answer. RSS(t1) − RSS(before the load), over STREAMS, is a held
# stream with its first tokens; the per-token cost of those tokens taken off gives the stream alone.
# RSS at t1 (t2) is the lowest sample of the 2 s after t1 (before t2): a checkpoint builds one
# statement for every run and frees it, a transient that would otherwise land in either sample.
# Also the checkpoint statements per second between t1 and t2.
memory_summary() {
  python3 - "$@" <<'PY'
import sys
path, streams, ramp, tokens, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
rows = [tuple(float(x) for x in line.split()) for line in open(path) if len(line.split()) == 3]
if len(rows) < 4:
    print("memory: not enough samples"); sys.exit(0)
before = rows[0]
answer_s = tokens / rate
window = 2.0  # one checkpoint interval
t1 = next((r for r in rows if r[0] >= ramp + 0.5), None)
t2 = max((r for r in rows if r[0] <= answer_s - 0.5), key=lambda r: r[0], default=None)
if t1 is None or t2 is None or t2[0] - t1[0] < 2 * window + 1:
    print("memory: the load is too short for the method (ramp + 0.5 s .. answer - 0.5 s)"); sys.exit(0)
low = lambda a, b: min(r[1] for r in rows if a <= r[0] <= b)
t1 = (t1[0], low(t1[0], t1[0] + window), t1[2])
t2 = (t2[0], low(t2[0] - window, t2[0]), t2[2])
span = t2[0] - t1[0]
per_token = (t2[1] - t1[1]) * 1024 / (streams * rate * span)
held = (t1[1] - before[1]) * 1024 / streams
tokens_at_t1 = max(0.0, (t1[0] - ramp / 2) * rate)  # on average: streams opened evenly over the ramp
print(f"worker rss: {before[1]:.0f} KiB before, {t1[1]:.0f} KiB at {t1[0]:.1f} s (all {streams} streams open), "
      f"{t2[1]:.0f} KiB at {t2[0]:.1f} s (none ended yet)")
print(f"per held stream at {t1[0]:.1f} s (~{tokens_at_t1:.0f} tokens each): {held:.0f} bytes; "
      f"without those tokens: {held - per_token * tokens_at_t1:.0f} bytes")
print(f"per token: {per_token:.1f} bytes; per {tokens}-token answer with its event log: {per_token * tokens:.0f} bytes "
      f"({(t2[1] - t1[1]) / 1024:.1f} MiB for {streams} streams x {rate * span:.0f} tokens)")
inside = [r[1] for r in rows if t1[0] <= r[0] <= t2[0]]
print(f"worker rss between {t1[0]:.1f} s and {t2[0]:.1f} s: {min(inside):.0f} .. {max(inside):.0f} KiB (peak over the whole load "
      f"{max(r[1] for r in rows):.0f} KiB)")
if rows[-1][2] > 0:
    print(f"checkpoint statements: {(t2[2] - t1[2]) / span:.2f}/s between {t1[0]:.1f} s and {t2[0]:.1f} s; "
          f"{rows[-1][2]:.0f} in {rows[-1][0]:.1f} s of load ({rows[-1][2] / rows[-1][0]:.2f}/s)")
PY
}

# resume_summary JSON: the figures the resume-storm target is judged on.
resume_summary() {
  python3 - "$1" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
r = s.get("resume") or {}
h = r.get("first_replayed_event_ms") or {}
print(f'cut {r.get("streams_cut")} of {s["streams_established"]} streams at {r.get("cut_at_s")} s, resumed at {r.get("resumed_at_s")} s: '
      f'{r.get("resumes_established")} resumes answered 200, {r.get("resumes_completed")} read to done '
      f'(failed {s["streams_failed"]} {s.get("failures_by_reason") or ""})')
print(f'resume request -> first replayed event: p50 {h.get("p50")} / p99 {h.get("p99")} / max {h.get("max")} ms '
      f'(target p99 < 100 ms: {"met" if h.get("p99") is not None and h["p99"] < 100 else "NOT met"})')
ok = s["order_errors"] == 0 and s["id_errors"] == 0 and r.get("first_replayed_seq_mismatches") == 0
print(f'tokens lost or repeated: order_errors {s["order_errors"]}, id_errors {s["id_errors"]} '
      f'(after the resume {r.get("id_errors_after_resume")}), first replayed seq != last read + 1: '
      f'{r.get("first_replayed_seq_mismatches")} -> {"none" if ok else "SOME"}')
PY
}

resume_metrics() {
  local name
  for name in chatstream_resumes_total chatstream_resumes_remote_total chatstream_events_published_total \
    chatstream_disconnect_grace_expired_total chatstream_checkpoint_statements_total; do
    echo "$name: $(metric "$name")"
  done
}

RESUME_STREAMS=${RESUME_STREAMS:-1000}

# resume-storm: every stream is cut by the client at once (connections closed) once all have 20
# tokens, then, 1 s after the last connection closed, all are resumed at once with
# GET /chat/stream/{run_id} + Last-Event-ID, each on a new connection, and read to `done`.
scenario_resume_storm() {
  title "$RESUME_STREAMS streams (400 tokens at 20/s) cut at once after 20 tokens, resumed at once: all resume, p99 to the first replayed event < 100 ms, no token lost or repeated"
  local storm=(--streams "$RESUME_STREAMS" --duration 60 --check-order --cut-after-tokens 20 --resume --resume-delay 1)
  echo "-- one worker, no database: the owner resumes from its in-memory event log"
  start_server --scripted-tokens 400 --scripted-rate 20 --disconnect-grace 10s || return 1
  run_sseload 90 "${storm[@]}" --ramp 1 --pid "$worker_pid"
  resume_summary "$RESULTS/$scenario.json"
  resume_metrics
  stop_server
  if [[ ${RESUME_DB:-1} == 0 ]]; then return 0; fi
  if [[ ! -x /usr/lib/postgresql/15/bin/pg_ctl ]] || ! command -v psql >/dev/null; then
    echo "-- with PostgreSQL: skipped (PostgreSQL 15 is not installed)"
    return 0
  fi
  local workers=${RESUME_DB_WORKERS:-2}
  echo "-- $workers worker(s) (all on core $SERVER_CPU) with PostgreSQL and checkpoints every 2 s: a resume that lands on a worker other than the run's owner replays the stored copy and follows the owner by NOTIFY"
  local plain=$scenario
  scenario=$plain.db  # its own result and log files
  start_pg || { scenario=$plain; return 1; }
  start_server --database-url "$pg_url" --scripted-tokens 400 --scripted-rate 20 --disconnect-grace 10s \
    --checkpoint-interval 2s || { stop_pg; scenario=$plain; return 1; }
  local pids=() pid
  for pid in "${worker_pids[@]}"; do pids+=(--pid "$pid"); done
  run_sseload 90 "${storm[@]}" --ramp 2 "${pids[@]}"
  resume_summary "$RESULTS/$scenario.json"
  resume_metrics
  stop_server
  stop_pg
  scenario=$plain
}

# durable5000: the streams5000 load with PostgreSQL (durable commits) and checkpoints every 2 s:
# on-time share, worker memory per stream and per answer with its event log (memory_summary above),
# checkpoint statements per second. Opened over DURABLE_RAMP (10) s, with --db-wait-timeout 10s: the
# start statements' cost is `persist`'s subject; here it is the steady state (over 2 s, or with the
# default 2 s wait on this shared machine, the default pool of 4 refuses a share of the runs as
# `overloaded`).
scenario_durable5000() {
  local ramp=${DURABLE_RAMP:-10} streams=${DURABLE_STREAMS:-5000}
  title "$streams streams × 400 tokens at 20/s with PostgreSQL, resume and checkpoints (--checkpoint-interval 2s) on, opened over $ramp s"
  if [[ ! -x /usr/lib/postgresql/15/bin/pg_ctl ]] || ! command -v psql >/dev/null; then
    echo "skipped: PostgreSQL 15 is not installed (scripts/deps.sh installs it)"
    return 0
  fi
  start_pg || return 1
  local pool=()
  if [[ -n ${DURABLE_POOL_SIZE:-} ]]; then pool=(--db-pool-size "$DURABLE_POOL_SIZE"); fi
  start_server --database-url "$pg_url" --scripted-tokens 400 --scripted-rate 20 --checkpoint-interval 2s \
    --disconnect-grace 10s --db-wait-timeout "${DURABLE_DB_WAIT:-10s}" "${pool[@]}" || { stop_pg; return 1; }
  # Statements over 1 s are logged (postgres.log), to see what holds the pool's connections.
  psql "$pg_url" -qtAX -c "ALTER SYSTEM SET log_min_duration_statement = 1000" -c "SELECT pg_reload_conf()" >/dev/null
  local pg_cpu_before pg_cpu_after wal_before wal_after
  pg_cpu_before=$(pg_cpu_seconds)
  wal_before=$(psql "$pg_url" -qtAX -c "SELECT pg_current_wal_lsn()")
  start_sampler "$RESULTS/$scenario.samples"
  run_sseload 120 --streams "$streams" --ramp "$ramp" --duration 90 --check-order --expect-rate 20 --pid "$worker_pid"
  stop_sampler
  pg_cpu_after=$(pg_cpu_seconds)
  wal_after=$(psql "$pg_url" -qtAX -c "SELECT pg_current_wal_lsn()")
  echo "-- summary"
  python3 - "$RESULTS/$scenario.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
pct = lambda h: f'p50 {h["p50"]} / p99 {h["p99"]} / max {h["max"]}'
print(f'streams completed {s["streams_completed"]} of {s["streams_requested"]}, failed {s["streams_failed"]} '
      f'{s.get("failures_by_reason") or ""}, order_errors {s["order_errors"]}, on_time_ratio {s["on_time_ratio"]}, '
      f'gap_ms {pct(s["gap_ms"])}')
cpu = s.get("server_cpu_seconds")
if cpu is not None:
    print(f'worker cpu {cpu:.2f} s over {s["duration_s"]:.1f} s ({cpu / s["duration_s"]:.2f} of a core), '
          f'{cpu / max(1, s["events"]) * 1e6:.1f} µs per event')
PY
  memory_summary "$RESULTS/$scenario.samples" "$streams" "$ramp" 400 20
  echo "chatstream_db_queries_total: $(metric chatstream_db_queries_total)"
  echo "chatstream_checkpoint_statements_total: $(metric chatstream_checkpoint_statements_total)"
  echo "chatstream_run_errors_total{code=\"overloaded\"}: $(metric chatstream_run_errors_total 'code="overloaded"')"
  echo "chatstream_persist_deferred_total: $(metric chatstream_persist_deferred_total)"
  pg_rows
  echo "postgresql cpu seconds during the load: $(awk -v a="$pg_cpu_before" -v b="$pg_cpu_after" 'BEGIN {printf "%.2f", b - a}')"
  echo "wal written during the load: $(psql "$pg_url" -qtAX -c "SELECT pg_size_pretty(pg_wal_lsn_diff('$wal_after', '$wal_before'))")"
  echo "statements over 1 s (postgres.log), by their first words:"
  grep -o 'duration: [0-9.]* ms  [a-z]*: .\{0,40\}' "$pg_dir/postgres.log" |
    awk '{ms = $2; $1 = $2 = $3 = $4 = ""; key = substr($0, 1, 44); n[key]++; if (ms > max[key]) max[key] = ms}
         END {for (k in n) printf "  %d x, longest %.0f ms: %s\n", n[k], max[k], k}' || true
  stop_server
  stop_pg
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
  trap 'stop_sampler; stop_nginx; stop_server; stop_pg; stop_tls_front; stop_fake' EXIT
  trap 'exit 130' INT TERM

  log "results and logs in $RESULTS"
  for scenario in "${selected[@]}"; do
    "scenario_${scenario//-/_}" || log "$scenario failed"
    stop_server  # in case a scenario returned early
  done
}

main "$@"
