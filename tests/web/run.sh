#!/usr/bin/env bash
# Tests of the browser chat page (web/):
#   unit  node's own test runner, no browser: the SSE parser and the client (tests/web/*.test.mjs)
#   e2e   playwright-core driving Debian's chromium headless through the REAL chatstream and nginx
#         (tests/web/e2e/*.test.mjs); screenshots go to tests/artifacts/web/
#
#   tests/web/run.sh [unit|e2e|all] [--binary PATH] [--file NAME]
#
# The server binary: --binary, else $CHATSTREAM_BIN, else <source>/build/chatstream. Installs what is
# missing first (chromium and nginx with apt, playwright-core with npm ci from package-lock.json),
# under a lock: ctest runs the e2e files side by side. --file NAME runs only e2e/NAME.test.mjs (ctest
# registers one test per file: web_e2e.NAME). Exits non-zero when a test fails.
# Extra: E2E_FILTER=regex runs only the matching e2e tests.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
what="all"
file=""
binary="${CHATSTREAM_BIN:-$ROOT/build/chatstream}"

while [[ $# -gt 0 ]]; do
  case "$1" in
    unit|e2e|all) what="$1"; shift ;;
    --binary) binary="${2:?--binary needs a path}"; shift 2 ;;
    --file) file="${2:?--file needs a name}"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done

log() { echo "tests/web: $*" >&2; }

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else log "need root to run: $*"; return 1
  fi
}

apt_updated=0
apt_install() {
  if (( ! apt_updated )); then
    as_root apt-get update -qq
    apt_updated=1
  fi
  log "installing $* with apt"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

command -v node >/dev/null || apt_install nodejs npm
node_major=$(node -p 'process.versions.node.split(".")[0]')
test_flags=()
# --test-concurrency / --test-timeout exist from node 20.10 / 20.11 on; older nodes run without them.
if node --help 2>/dev/null | grep -q -- '--test-concurrency'; then test_flags+=(--test-concurrency=1); fi
if node --help 2>/dev/null | grep -q -- '--test-timeout'; then test_flags+=(--test-timeout=180000); fi
(( node_major >= 18 )) || { log "node >= 18 is needed, found $(node --version)"; exit 1; }

cd "$HERE"
status=0

if [[ "$what" == unit || "$what" == all ]]; then
  log "unit tests (node $(node --version))"
  node --test "${test_flags[@]}" sse_parser.test.mjs client.test.mjs || status=1
fi

if [[ "$what" == e2e || "$what" == all ]]; then
  (( node_major >= 20 )) || { log "playwright-core needs node >= 20, found $(node --version)"; exit 1; }
  files=(e2e/*.test.mjs)
  if [[ -n "$file" ]]; then
    files=("e2e/$file.test.mjs")
    [[ -f "${files[0]}" ]] || { log "no such e2e file: ${files[0]}"; exit 2; }
  fi
  # One installer at a time: the other files' runs wait here, then find everything in place.
  exec 9>"$HERE/.install.lock"
  flock 9
  [[ -x /usr/bin/chromium ]] || apt_install chromium
  [[ -x /usr/sbin/nginx ]] || apt_install nginx-light
  command -v npm >/dev/null || apt_install npm
  want=$(node -p 'require("./package-lock.json").packages["node_modules/playwright-core"].version')
  have=$(node -p 'try { require("./node_modules/playwright-core/package.json").version } catch { "" }')
  if [[ "$want" != "$have" ]]; then
    log "npm ci (playwright-core $want)"
    npm ci --no-audit --no-fund --loglevel=error
  fi
  flock -u 9
  [[ -x "$binary" ]] || { log "chatstream binary not found: $binary (build it: cmake --build build --target chatstream)"; exit 1; }
  mkdir -p "$ROOT/tests/artifacts/web"
  log "end-to-end tests with $binary and $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
  name_flags=()
  [[ -n "${E2E_FILTER:-}" ]] && name_flags+=(--test-name-pattern="$E2E_FILTER")
  CHATSTREAM_BIN="$binary" CHATSTREAM_SOURCE_DIR="$ROOT" \
    node --test "${test_flags[@]}" "${name_flags[@]}" "${files[@]}" || status=1
  log "screenshots: $ROOT/tests/artifacts/web/"
fi

exit "$status"
