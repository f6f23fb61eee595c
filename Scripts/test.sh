#!/usr/bin/env bash
# test.sh - the README's test command: set up, build, run the host tests, then the RDMA tests over
# a real device or soft-RoCE (in a VM when the kernel has no RDMA). Prints each runner's summary.
set -uo pipefail
here=$(dirname "$(realpath "$0")"); root=$(dirname "$here"); cd "$root"
[[ -x /opt/swift/usr/bin/swift ]] && export PATH=/opt/swift/usr/bin:$PATH
t0=$(date +%s)
"$here/setup.sh" || exit 1
echo "== build"
swift build --build-tests 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\] (Compiling|Emitting|Write|Linking)' ; (( PIPESTATUS[0] == 0 )) || { echo "test: build failed" >&2; exit 1; }
# Release builds of the tools: the seed exploration and the rxe cluster run are CPU-bound.
for product in ramcast-sim ramcast-demo ramcast-check ramcast-node; do
  swift build -c release --product "$product" 2>&1 | grep -E 'error|warning: unre' ; (( PIPESTATUS[0] == 0 )) || { echo "test: release build of $product failed" >&2; exit 1; }
done
# The benchmark CLI (its own package) takes user input too: the bad-input corpus runs it.
swift build --package-path Benchmarks --product ramcast-bench 2>&1 | grep -E 'error|warning: unre' ; (( PIPESTATUS[0] == 0 )) || { echo "test: build of ramcast-bench failed" >&2; exit 1; }
echo "== host tests (in-process fabric, simulation, checker; RDMA tests skip here without a device)"
t1=$(date +%s)
RAMCAST_SIM_SECONDS=${RAMCAST_SIM_SECONDS:-30} swift test --skip-build 2>&1 | tee .build/host-tests.log | grep -vE '^(◇|↳)|started\.$'; host=${PIPESTATUS[0]}
echo "host: $(grep -E 'Test run with' .build/host-tests.log | tail -1 | sed 's/\x1b\[[0-9;]*m//g')"
t2=$(date +%s)
explore=${RAMCAST_SIM_EXPLORE_SECONDS:-100}
echo "== randomized simulation, every run checked: seeded schedules, crash schedules, then crash and restart schedules, ${explore} s each"
.build/release/ramcast-sim --from 1000 --seconds "$explore"; sim=$?
# Explorations run crash schedules without driver races for now: with them, about 1 seed in 7,000
# still stalls a deposed leader or its group (1005112, 5000837; docs/failure-handling.md, "Driver
# races in the simulation"). SimulationTests' crash seeds do run with driver races.
.build/release/ramcast-sim --from 1000000 --seconds "$explore" --crashes --no-races; (( sim |= $? ))
.build/release/ramcast-sim --from 2000000 --seconds "$explore" --crashes --restarts --no-races; (( sim |= $? ))
near=${RAMCAST_SIM_NEAR_LIMITS_EXPLORE_SECONDS:-20}
echo "== every counter near its limit (message ids, log positions, ballots, clocks wrap within each run), ${near} s each: plain, crashes, crashes and restarts"
.build/release/ramcast-sim --from 3000000 --seconds "$near" --near-limits; (( sim |= $? ))
.build/release/ramcast-sim --from 4000000 --seconds "$near" --near-limits --crashes --no-races; (( sim |= $? ))
.build/release/ramcast-sim --from 5000000 --seconds "$near" --near-limits --crashes --restarts --no-races; (( sim |= $? ))
t3=$(date +%s)
echo "== bad inputs (every tool: a documented exit status and the culprit named, never a signal), then the fuzzers"
"$here/bad-inputs.sh" --bin-dir .build/debug --bench "$(swift build --package-path Benchmarks --show-bin-path)/ramcast-bench"; inputs=$?
"$here/fuzz.sh" --seconds "${RAMCAST_FUZZ_SECONDS:-60}"; (( inputs |= $? ))
t3b=$(date +%s)
echo "== RDMA tests"
"$here/rdma-tests.sh" --bin-dir .build/release --cluster "${RAMCAST_RXE_MESSAGES:-10000}" --failover "${RAMCAST_FAILOVER_MESSAGES:-4000}"; rdma=$?
t4=$(date +%s)
echo "== summary"
echo "host tests: $( ((host == 0)) && echo passed || echo FAILED ) in $((t2 - t1)) s"
echo "simulation: $( ((sim == 0)) && echo passed || echo FAILED ) in $((t3 - t2)) s"
echo "bad inputs and fuzzing: $( ((inputs == 0)) && echo passed || echo FAILED ) in $((t3b - t3)) s"
echo "rdma tests: $( ((rdma == 0)) && echo passed || echo FAILED ) in $((t4 - t3b)) s (VM boot included)"
echo "total wall time: $((t4 - t0)) s"
(( host == 0 && sim == 0 && inputs == 0 && rdma == 0 ))
