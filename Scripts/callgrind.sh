#!/usr/bin/env bash
# Instructions per delivered message, counted by valgrind's callgrind on the in-process fabric.
#
#   usage: Scripts/callgrind.sh [SHAPE...]        SHAPE = groups:processes:destinations:steps
#          default shapes: 1:3:1:1 1:3:1:2 1:3:1:3 2:3:2:1 2:3:2:3
#   env:   CALLGRIND_MESSAGES="2000 10000"   the two message counts (see below)
#          RAMCAST_BENCH_BIN=path            use this ramcast-bench instead of building it (release)
#
# For each shape it runs the release `ramcast-bench local --fabric memory --messages N` under
# callgrind twice, counting only the polling thread's loop (--toggle-collect on Poller.run: every
# engine, driver and fabric call it makes; no setup, no report), with N1 and N2 messages. Then
#   instructions per message  = (Ir(N2) - Ir(N1)) / (N2 - N1)
# which cancels the warm-up of the first laps of the rings, and per delivery = that / (k·p) for k
# destination groups of p processes. Instruction counts do not depend on machine load, so these
# figures are repeatable (unlike times on a shared 2-core machine).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[[ -d /opt/swift/usr/bin ]] && export PATH=/opt/swift/usr/bin:$PATH
command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind is not installed (apt-get install valgrind)" >&2; exit 2; }
read -r n1 n2 <<<"${CALLGRIND_MESSAGES:-2000 10000}"
(( n2 > n1 )) || { echo "callgrind.sh: CALLGRIND_MESSAGES needs two counts, the second larger" >&2; exit 2; }
shapes=("$@"); (( ${#shapes[@]} )) || shapes=(1:3:1:1 1:3:1:2 1:3:1:3 2:3:2:1 2:3:2:3)

bin=${RAMCAST_BENCH_BIN:-}
if [[ -z $bin ]]; then
  echo "callgrind.sh: building ramcast-bench (release)..." >&2
  swift build -c release --package-path "$root/Benchmarks" --product ramcast-bench >&2
  bin=$(swift build -c release --package-path "$root/Benchmarks" --show-bin-path)/ramcast-bench
fi
work=$(mktemp -d /tmp/ramcast-callgrind.XXXXXX); trap 'rm -rf "$work"' EXIT
# valgrind 3.19 cannot read the DWARF 5 that Swift 6 emits: count on a copy without debug info
# (the symbol table stays, so functions keep their names).
cp "$bin" "$work/ramcast-bench" && strip --strip-debug "$work/ramcast-bench"

# Heartbeats are paced by the wall clock, which runs ~50x faster than the program under valgrind:
# at the default 1 ms, the counts would be mostly heartbeats (proportional to run time, not to
# messages), and a slow start-up could even look like a leader crash. Both are pushed out of the way.
irs() {   # irs GROUPS PROCESSES DESTINATIONS STEPS MESSAGES -> total Ir inside Poller.run
  local out=$work/cg.$1.$2.$3.$4.$5
  valgrind --tool=callgrind --callgrind-out-file="$out" --toggle-collect='*6PollerC3run*' \
    "$work/ramcast-bench" local --fabric memory --groups "$1" --processes "$2" --destinations "$3" --steps "$4" \
    --messages "$5" --warmup 0 --quiet --no-progress --heartbeat-us 10000000 --failure-timeout-ms 600000 >"$out.log" 2>&1 \
    || { echo "callgrind.sh: run failed:" >&2; tail -n 20 "$out.log" >&2; exit 1; }
  awk '/^(summary|totals):/ {print $2; exit}' "$out"
}

printf '%-8s %-10s %-6s %-7s %14s %16s\n' groups processes dst steps "Ir/message" "Ir/delivery"
for shape in "${shapes[@]}"; do
  IFS=: read -r g p k s <<<"$shape"
  a=$(irs "$g" "$p" "$k" "$s" "$n1"); b=$(irs "$g" "$p" "$k" "$s" "$n2")
  awk -v a="$a" -v b="$b" -v n1="$n1" -v n2="$n2" -v g="$g" -v p="$p" -v k="$k" -v s="$s" 'BEGIN {
    per = (b - a) / (n2 - n1); printf "%-8s %-10s %-6s %-7s %14.0f %16.0f\n", g, p, k, s, per, per / (k * p) }'
done
echo "(callgrind, polling thread only, marginal over messages $n1 -> $n2; 1 sender, 8 outstanding, 64 B)"
