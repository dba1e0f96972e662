#!/usr/bin/env bash
# Side by side, one run: chatstream against the stacks people use for this, under the same load.
#
#   bash bench/peers.sh                       # chatstream, fastapi, node
#   bash bench/peers.sh node fastapi          # only these
#   PEER_LADDER="1000 2000" bash bench/peers.sh
#
# The peers (bench/peers/): FastAPI + uvicorn (Debian's python3-fastapi, python3-uvicorn, with uvloop
# and httptools, no access log: the seeds' stack at its best settings) and Node's own `http` server
# (no framework, Nagle off). Each streams exactly the events of chatstream's scripted provider (meta,
# generation_start, tokens "t0 " "t1 " … on an absolute schedule, done; ids "<run_id>:<seq>"), so the
# same sseload checks order and timeliness of all three. chatstream runs with everything on that needs
# no database (the per-run event log for resumes, heartbeats, timeouts, metrics).
#
# Same cores for all: the server process on SERVER_CPU, sseload on CLIENT_CPU. For each peer a ladder
# of loads (PEER_LADDER streams, opened over 2 s, each PEER_TOKENS tokens at 20 tokens/s) stops at the
# first load not held: a stream that failed or broke order, fewer than 99 % of tokens on time, or a
# first token p99 over 1 s (connections left waiting in the backlog). Printed per peer: the most
# streams held, and at that load the first token p99, the server's CPU per token delivered and its
# memory per stream (RSS with every stream open minus RSS before, over the streams); then the ratios.
#
# Environment: BUILD, CHATSTREAM, SSELOAD (as bench/run.sh), PEERS_PORT (default 19300),
#   SERVER_CPU / CLIENT_CPU (0 / 1), PEER_TOKENS (200), PEER_LADDER (500 1000 … 7000),
#   RESULTS (default $BUILD/bench-results/peers-<date-time>), PEER_PYTHON (default /usr/bin/python3:
#   Debian's, which has the packages), NODE (default node).
set -euo pipefail

cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
CHATSTREAM=${CHATSTREAM:-$BUILD/chatstream}
SSELOAD=${SSELOAD:-$BUILD/sseload}
PORT=${PEERS_PORT:-19300}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
TOKENS=${PEER_TOKENS:-200}
RATE=20
LADDER=(${PEER_LADDER:-500 1000 1500 2000 2500 3000 3500 4000 5000 6000 7000})
RESULTS=${RESULTS:-$BUILD/bench-results/peers-$(date +%Y%m%d-%H%M%S)}
PEER_PYTHON=${PEER_PYTHON:-/usr/bin/python3}
NODE=${NODE:-node}
ALL_PEERS=(chatstream fastapi node)

server_pid=""
log() { echo "peers.sh: $*" >&2; }

# start_peer NAME: the server on SERVER_CPU, one process; sets server_pid to the process that holds
# the streams (chatstream's worker, uvicorn, node).
start_peer() {
  local name=$1 out="$RESULTS/$1.server.log" launcher
  case $name in
    chatstream)
      taskset -c "$SERVER_CPU" "$CHATSTREAM" serve --listen "127.0.0.1:$PORT" --workers 1 --provider scripted \
        --scripted-tokens "$TOKENS" --scripted-rate "$RATE" --heartbeat 15 --run-timeout 0 \
        --max-connections 20000 >"$out" 2>&1 &
      ;;
    fastapi)
      PEER_TOKENS=$TOKENS PEER_RATE=$RATE taskset -c "$SERVER_CPU" "$PEER_PYTHON" -m uvicorn fastapi_app:app \
        --app-dir bench/peers --host 127.0.0.1 --port "$PORT" --loop uvloop --http httptools \
        --no-access-log --log-level warning --backlog 16384 --timeout-keep-alive 5 >"$out" 2>&1 &
      ;;
    node)
      PEER_TOKENS=$TOKENS PEER_RATE=$RATE taskset -c "$SERVER_CPU" "$NODE" bench/peers/node_server.mjs \
        --port "$PORT" >"$out" 2>&1 &
      ;;
  esac
  launcher=$!
  local _
  for _ in $(seq 150); do
    if ! kill -0 "$launcher" 2>/dev/null; then
      log "$name exited at start; see $out"
      return 1
    fi
    if curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/healthz" 2>/dev/null; then
      server_pid=$launcher
      # chatstream's master forks the worker that holds the streams.
      if [[ $name == chatstream ]]; then server_pid=$(pgrep -P "$launcher" | head -n 1); fi
      launcher_pid=$launcher
      return 0
    fi
    sleep 0.1
  done
  log "$name did not answer /healthz within 15 s; see $out"
  kill -KILL "$launcher" 2>/dev/null || true
  return 1
}

stop_peer() {
  [[ -n ${launcher_pid:-} ]] || return 0
  kill -TERM "$launcher_pid" 2>/dev/null || true
  local _
  for _ in $(seq 100); do
    kill -0 "$launcher_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$launcher_pid" 2>/dev/null || true
  wait "$launcher_pid" 2>/dev/null || true
  launcher_pid=""
  server_pid=""
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# step NAME STREAMS: one load; writes $RESULTS/NAME.STREAMS.json (sseload) and .rss (before, steady).
step() {
  local name=$1 streams=$2 out="$RESULTS/$1.$2"
  start_peer "$name" || return 1
  local before
  before=$(rss_kib "$server_pid")
  # Steady state: the 2 s ramp is over and no stream has ended (each lasts TOKENS / RATE s).
  (sleep 4; echo "$before $(rss_kib "$server_pid" 2>/dev/null || echo 0)" >"$out.rss") &
  local sampler=$!
  timeout -s INT -k 10 $((TOKENS / RATE + 60)) taskset -c "$CLIENT_CPU" "$SSELOAD" \
    --url "http://127.0.0.1:$PORT/chat/stream" --streams "$streams" --ramp 2 --duration $((TOKENS / RATE + 40)) \
    --check-order --expect-rate "$RATE" --pid "$server_pid" --quiet >"$out.json" 2>"$out.sseload.log" \
    || log "$name $streams: sseload exited with status $?"
  wait "$sampler" || true
  stop_peer
}

# verdict NAME STREAMS: prints "held|not-held on_time first_token_p99_ms cpu_us_per_token bytes_per_stream".
verdict() {
  "$PEER_PYTHON" - "$RESULTS/$1.$2" "$2" <<'PY'
import json, sys
out, streams = sys.argv[1], int(sys.argv[2])
try:
    s = json.load(open(out + ".json"))
    before, steady = (int(x) for x in open(out + ".rss").read().split())
except (OSError, ValueError):
    print("not-held 0 0 0 0")
    sys.exit()
first_p99 = (s.get("first_token_ms") or {}).get("p99") or 1e9
# Held: every stream complete and in order, 99 % of tokens on their schedule (counted from each
# stream's first token), and the first token within a second for 99 % of the streams (a server that
# queues connections in its backlog keeps the schedule of the streams it serves, late).
held = (s["streams_completed"] == streams and s["streams_failed"] == 0 and s["order_errors"] == 0
        and (s["on_time_ratio"] or 0) >= 0.99 and first_p99 <= 1000)
cpu = s.get("server_cpu_seconds") or 0
tokens = s.get("tokens") or 1  # one token per event when on time; a late chatstream merges them
print("held" if held else "not-held", s["on_time_ratio"], f"{first_p99:.1f}", f"{cpu / tokens * 1e6:.1f}",
      f"{(steady - before) * 1024 / streams:.0f}")
PY
}

main() {
  local peers=("$@")
  ((${#peers[@]})) || peers=("${ALL_PEERS[@]}")
  local p
  for p in "${peers[@]}"; do
    [[ " ${ALL_PEERS[*]} " == *" $p "* ]] || { log "unknown peer '$p' (peers: ${ALL_PEERS[*]})"; exit 2; }
  done
  [[ -x $CHATSTREAM && -x $SSELOAD ]] || { log "build first: cmake --build $BUILD ($CHATSTREAM, $SSELOAD)"; exit 1; }
  if [[ " ${peers[*]} " == *" fastapi "* ]] && ! "$PEER_PYTHON" -c 'import fastapi, uvicorn, uvloop, httptools' 2>/dev/null; then
    log "fastapi peer: bash scripts/deps.sh bench (python3-fastapi, python3-uvicorn, python3-uvloop, python3-httptools)"
    exit 1
  fi
  mkdir -p "$RESULTS"
  trap 'stop_peer' EXIT
  log "results and logs in $RESULTS"
  printf '%s\n' "${LADDER[@]}" >/dev/null
  local summary="$RESULTS/summary.txt"
  : >"$summary"
  for p in "${peers[@]}"; do
    local best=0 best_line="" n line
    for n in "${LADDER[@]}"; do
      step "$p" "$n" || break
      line=$(verdict "$p" "$n")
      printf '%-10s %6d streams: %s\n' "$p" "$n" "$line"
      [[ $line == held* ]] || break
      best=$n
      best_line=$line
    done
    echo "$p $best ${best_line#held }" >>"$summary"
  done
  echo
  echo "==== side by side: $TOKENS tokens at $RATE tokens/s per stream, server on core $SERVER_CPU, sseload on core $CLIENT_CPU"
  "$PEER_PYTHON" - "$summary" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) == 6:
        name, held, on_time, first, cpu, mem = parts
        rows[name] = (int(held), float(first), float(cpu), int(mem))
    elif len(parts) >= 2:
        rows[parts[0]] = (int(parts[1]), 0.0, 0.0, 0)
print(f"{'peer':<11} {'streams held':>12} {'first token p99':>16} {'CPU per token':>14} {'memory per stream':>18}")
for name, (held, first, cpu, mem) in rows.items():
    print(f"{name:<11} {held:>12} {first:>13.1f} ms {cpu:>11.1f} µs {mem:>12} bytes")
base = rows.get("chatstream")
if base and base[0]:
    for name, (held, first, cpu, mem) in rows.items():
        if name == "chatstream" or not held:
            continue
        print(f"chatstream vs {name}: ×{base[0] / held:.2f} streams, ×{cpu / base[2]:.2f} less CPU per token, "
              f"×{mem / max(1, base[3]):.1f} less memory per stream (each at its own most streams held)")
PY
}

main "$@"
