#!/usr/bin/env bash
# End-to-end tests of the OpenAI-compatible endpoint (POST /v1/chat/completions, GET /v1/models) with
# the official `openai` Node SDK (pinned in package-lock.json) as the client and node's own test runner:
# every *.test.mjs starts the REAL chatstream (and, for sessions.test.mjs, a private PostgreSQL through
# scripts/pg.sh) on free loopback ports and stops it at the end.
#
#   tests/openai/run.sh [--binary PATH] [FILE.test.mjs …]
#
# The server binary: --binary, else $CHATSTREAM_BIN, else <source>/build/chatstream. Runs `npm ci` when
# node_modules does not hold the locked openai version. Exits non-zero when a test fails.
# Extra: TEST_FILTER=regex runs only the matching tests; CHATSTREAM_E2E_KEEP=1 keeps the logs.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
binary="${CHATSTREAM_BIN:-$ROOT/build/chatstream}"
files=()

while [[ $# -gt 0 ]]; do
  case "$1" in
    --binary) binary="${2:?--binary needs a path}"; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *.test.mjs) files+=("$1"); shift ;;
    *) echo "run.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done

log() { echo "tests/openai: $*" >&2; }

command -v node >/dev/null || { log "node is needed (apt-get install nodejs npm)"; exit 1; }
node_major=$(node -p 'process.versions.node.split(".")[0]')
(( node_major >= 20 )) || { log "node >= 20 is needed, found $(node --version)"; exit 1; }
[[ -x "$binary" ]] || { log "chatstream binary not found: $binary (build it: cmake --build build --target chatstream)"; exit 1; }
binary="$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")"  # the tests run from tests/openai/
[[ -x /usr/lib/postgresql/15/bin/postgres ]] || { log "PostgreSQL 15 is needed (scripts/deps.sh installs it)"; exit 1; }

cd "$HERE"
want=$(node -p 'require("./package-lock.json").packages["node_modules/openai"].version')
have=$(node -p 'try { require("./node_modules/openai/package.json").version } catch { "" }')
if [[ "$want" != "$have" ]]; then
  command -v npm >/dev/null || { log "npm is needed (apt-get install npm)"; exit 1; }
  log "npm ci (openai $want)"
  npm ci --no-audit --no-fund --loglevel=error
fi

flags=(--test-reporter=spec)
# One file at a time: the pacing assertions want the cores to themselves. Both flags exist from node
# 20.10 / 20.11 on; older nodes run without them.
if node --help 2>/dev/null | grep -q -- '--test-concurrency'; then flags+=(--test-concurrency=1); fi
if node --help 2>/dev/null | grep -q -- '--test-timeout'; then flags+=(--test-timeout=120000); fi
[[ -n "${TEST_FILTER:-}" ]] && flags+=(--test-name-pattern="$TEST_FILTER")
(( ${#files[@]} )) || files=(*.test.mjs)

log "$(node --version), openai $want, binary $binary"
CHATSTREAM_BIN="$binary" CHATSTREAM_SOURCE_DIR="$ROOT" node --test "${flags[@]}" "${files[@]}"
