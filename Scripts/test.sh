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
swift build --product ramcast-demo >/dev/null || { echo "test: demo build failed" >&2; exit 1; }
echo "== host tests (in-process fabric; RDMA tests skip here without a device)"
t1=$(date +%s)
swift test --skip-build 2>&1 | tee .build/host-tests.log | grep -vE '^(◇|↳)|started\.$'; host=${PIPESTATUS[0]}
echo "host: $(grep -E 'Test run with' .build/host-tests.log | tail -1 | sed 's/\x1b\[[0-9;]*m//g')"
t2=$(date +%s)
echo "== RDMA tests"
"$here/rdma-tests.sh" --demo; rdma=$?
t3=$(date +%s)
echo "== summary"
echo "host tests: $( ((host == 0)) && echo passed || echo FAILED ) in $((t2 - t1)) s"
echo "rdma tests: $( ((rdma == 0)) && echo passed || echo FAILED ) in $((t3 - t2)) s"
echo "total wall time: $((t3 - t0)) s"
(( host == 0 && rdma == 0 ))
