#!/usr/bin/env bash
# fuzz.sh - builds the libFuzzer targets in Fuzz/ (their own package, scratch path .build-fuzz, with
# -sanitize=fuzzer,address) and runs each for a bounded time from the committed seed corpus.
# Built optimized (-c release: about 20 times the executions per second of a debug build; traps and
# preconditions stay). A crash, a trap, an ASan report or a leak fails the run; the input is kept in
# .build-fuzz/artifacts/ (reproduce: .build-fuzz/release/<target> <file>). Add it to
# Fuzz/Corpus/<target>/ as a regression seed once fixed.
#
#   usage: Scripts/fuzz.sh [--seconds N] [--target NAME]     (default: 60 s for each target)
set -uo pipefail
here=$(dirname "$(realpath "$0")"); root=$(dirname "$here"); cd "$root"
[[ -x /opt/swift/usr/bin/swift ]] && export PATH=/opt/swift/usr/bin:$PATH
seconds=60; targets=(FuzzConfiguration FuzzDeliveryLog)
while (($#)); do case $1 in
  --seconds) seconds=$2; shift 2 ;;
  --target) targets=("$2"); shift 2 ;;
  *) echo "fuzz: unknown argument $1 (usage: Scripts/fuzz.sh [--seconds N] [--target NAME])" >&2; exit 64 ;;
esac; done
scratch=$root/.build-fuzz
echo "fuzz: building ${targets[*]} with -sanitize=fuzzer,address"
swift build -c release --package-path Fuzz --scratch-path "$scratch" -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library 2>&1 \
  | grep -E 'error|warning: unre|Build complete'; (( PIPESTATUS[0] == 0 )) || { echo "fuzz: build failed" >&2; exit 1; }
mkdir -p "$scratch/artifacts"
status=0
for t in "${targets[@]}"; do
  # New inputs go to a work corpus outside the repository; the committed seeds are read only.
  work=$scratch/corpus/$t; mkdir -p "$work"
  log=$scratch/$t.log
  "$scratch/release/$t" "$work" "Fuzz/Corpus/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 \
    -dict="Fuzz/$t.dict" -artifact_prefix="$scratch/artifacts/$t-" -print_final_stats=1 > "$log" 2>&1
  rc=$?
  runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)/\1/p' "$log" | tail -1)
  rate=$(sed -nE 's/^stat::average_exec_per_sec: *([0-9]+)/\1/p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9a-zA-Z]+' "$log" | tail -1)
  if (( rc != 0 )); then
    status=1
    echo "fuzz: $t FAILED (status $rc) after ${runs:-?} executions:"
    grep -E 'ERROR|Fatal error|Precondition|SUMMARY|Test unit written|^    #[0-9]+ ' "$log" | head -n 25
  else
    echo "fuzz: $t: ${runs:-?} executions in $seconds s (${rate:-?} exec/s), $cov, no crash"
  fi
done
exit $status
