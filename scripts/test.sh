#!/usr/bin/env bash
# `make test` and CI (.ci/run): install what is missing, then two passes of every test
# (unit + end-to-end, through ctest):
#   1. the normal release build in build/      (the binary `make build` and `make run` use)
#   2. an ASan+UBSan build in build-asan/      (the e2e tests run that pass's own binary:
#                                              ctest hands them $<TARGET_FILE:chatstream>)
# then a fuzz step: each libFuzzer target of tests/fuzz/ for 30 s from its corpus (scripts/fuzz.sh,
# clang build in build-fuzz/); a crash, leak or hang fails the script.
# Both passes always run; the script exits non-zero if anything failed.
# Environment: JOBS (build parallelism, default nproc), CTEST_ARGS (extra ctest arguments, e.g.
# "-L e2e" or "-R e2e_protocol"), SKIP_ASAN=1 (first pass only, for a quick local loop), SKIP_FUZZ=1
# (no fuzz step), TEST_FUZZ_SECONDS (seconds per fuzz target, default 30), TEST_JOBS (ctest -j,
# default 4: the e2e tests mostly wait on their servers, and each declares the cores it loads with
# ctest's PROCESSORS property, so the heavy ones never overlap; see tests/e2e/CMakeLists.txt).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
JOBS="${JOBS:-$(nproc)}"
TEST_JOBS="${TEST_JOBS:-4}"
read -r -a ctest_extra <<<"${CTEST_ARGS:-}"

bash scripts/deps.sh

# The load test holds ~2,000 sockets per pass (client + server side); it raises its own limit too.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

failed=()

run_pass() {
  local name="$1" dir="$2"; shift 2
  local start=$SECONDS
  echo "=== test.sh: $name: configure + build in $dir/" >&2
  if ! cmake -S . -B "$dir" "$@" >/dev/null || ! cmake --build "$dir" -j "$JOBS"; then
    echo "=== test.sh: $name: BUILD FAILED" >&2
    failed+=("$name (build)")
    return
  fi
  echo "=== test.sh: $name: ctest" >&2
  # Per-test TIMEOUT properties bound each test; the outer timeout bounds the whole pass.
  if ! (cd "$dir" && timeout --signal=TERM --kill-after=30 1500 \
          ctest --output-on-failure --timeout 600 -j "$TEST_JOBS" "${ctest_extra[@]}"); then
    failed+=("$name (tests)")
  fi
  echo "=== test.sh: $name: done in $((SECONDS - start))s" >&2
}

# Same configuration as `make build`, so `make test` and `make run` share one build.
run_pass release build -DCMAKE_BUILD_TYPE=Release
if [[ "${SKIP_ASAN:-0}" != 1 ]]; then
  # Same as `make asan`; benchmarks are pointless under sanitizers.
  run_pass asan build-asan -DCMAKE_BUILD_TYPE=Debug -DCHATSTREAM_SANITIZE=ON -DCHATSTREAM_BENCH=OFF
fi

if [[ "${SKIP_FUZZ:-0}" != 1 ]]; then
  start=$SECONDS
  if ! FUZZ_SECONDS="${TEST_FUZZ_SECONDS:-30}" JOBS="$JOBS" bash scripts/fuzz.sh; then
    failed+=("fuzz")
  fi
  echo "=== test.sh: fuzz: done in $((SECONDS - start))s" >&2
fi

if (( ${#failed[@]} )); then
  echo "=== test.sh: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "=== test.sh: all passes green" >&2
