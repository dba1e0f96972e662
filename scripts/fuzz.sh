#!/usr/bin/env bash
# `make fuzz` and the fuzz step of `make test`: builds the libFuzzer targets of tests/fuzz/ with clang
# (ASan+UBSan, the real worker code) in build-fuzz/, then runs each for FUZZ_SECONDS seconds, one after
# the other, starting from its seed corpus and regression inputs in tests/fuzz/corpus/<target>/.
#
# The committed corpus is only read: inputs the fuzzer finds go to build-fuzz/corpus/<target>/, its log
# to build-fuzz/logs/<target>.log, and a crash, leak or hang leaves its input in
# build-fuzz/crashes/<target>/ (keep it in tests/fuzz/corpus/<target>/ once the bug is fixed). Exits
# non-zero if any target failed; prints execs/s and coverage (libFuzzer's cov:/ft:) per target.
#
# Environment: FUZZ_SECONDS (default 300), FUZZ_TARGETS (default: every target), JOBS (build).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
FUZZ_SECONDS="${FUZZ_SECONDS:-300}"
JOBS="${JOBS:-$(nproc)}"
DIR=build-fuzz
read -r -a targets <<<"${FUZZ_TARGETS:-http_request upstream_sse json_utf8 ingest_html ingest_markdown}"

bash scripts/deps.sh

echo "=== fuzz.sh: configure + build in $DIR/ (clang, libFuzzer, ASan+UBSan)" >&2
CC=clang CXX=clang++ cmake -S . -B "$DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCHATSTREAM_FUZZ=ON >/dev/null
cmake --build "$DIR" --target fuzz_targets -j "$JOBS"

failed=()
summary=()
for target in "${targets[@]}"; do
  mkdir -p "$DIR/corpus/$target" "$DIR/crashes/$target" "$DIR/logs"
  log="$DIR/logs/$target.log"
  echo "=== fuzz.sh: $target for ${FUZZ_SECONDS}s" >&2
  # -timeout: an input that takes 10 s is a hang, reported like a crash. Leaks fail too (ASan).
  dict=()
  [[ -f tests/fuzz/dict/$target.dict ]] && dict=(-dict="tests/fuzz/dict/$target.dict")
  if "$DIR/fuzz/$target" -max_total_time="$FUZZ_SECONDS" -timeout=10 -max_len=16384 -print_final_stats=1 \
       "${dict[@]}" -artifact_prefix="$DIR/crashes/$target/" "$DIR/corpus/$target" "tests/fuzz/corpus/$target" >"$log" 2>&1; then
    result=ok
  else
    result=FAILED
    failed+=("$target")
    tail -n 60 "$log" >&2
  fi
  # The last status line carries the coverage; the final stats the execution rate.
  cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1 || true)
  execs=$(grep -Eo 'stat::number_of_executed_units: +[0-9]+' "$log" | grep -Eo '[0-9]+$' || echo "?")
  rate=$(grep -Eo 'stat::average_exec_per_sec: +[0-9]+' "$log" | grep -Eo '[0-9]+$' || echo "?")
  summary+=("$(printf '%-16s %-6s %10s execs %7s execs/s  %s' "$target" "$result" "$execs" "$rate" "$cov")")
done

echo "=== fuzz.sh: results (${FUZZ_SECONDS}s per target)" >&2
printf '%s\n' "${summary[@]}" >&2
if (( ${#failed[@]} )); then
  echo "=== fuzz.sh: FAILED: ${failed[*]} (inputs in $DIR/crashes/)" >&2
  exit 1
fi
