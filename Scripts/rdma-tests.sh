#!/usr/bin/env bash
# rdma-tests.sh - runs swift-ramcast's RDMA tests (the RamCastRDMATests module: the fabric conformance
# suite and the error tests over real verbs) on a real RDMA device, finding one the cheapest way:
#   1. $RAMCAST_RDMA_DEVICE, if set (e.g. mlx5_0 on a machine with a NIC);
#   2. an RDMA device with an active port in /sys/class/infiniband;
#   3. soft-RoCE created here: root, `modprobe rdma_rxe` works and an up netdev (not lo) has an IPv4
#      address -> `rdma link add ramcast_rxe0 type rxe netdev IF`;
#   4. otherwise a throw-away QEMU VM with rxe0 (Scripts/rxe-vm.sh), running this script inside it.
# The test binary must already be built (`swift build --build-tests`). Prints the device and a
# closing line "rdma: N passed, M failed". Exit status: that of the test run.
# With --cluster N, it also runs a whole RamCast cluster over the device (2 groups × 3 processes and
# 2 senders, N messages mixing one- and two-group destinations, delivery logs written) and checks the
# logs with ramcast-check.
# With --failover N, it also runs Scripts/failover-rxe.sh: the cluster as separate OS processes,
# N messages per sender, group 0's leader killed with kill -9 mid-stream, logs checked, failover
# time printed.
#   usage: Scripts/rdma-tests.sh [--bin PATH] [--bin-dir DIR] [--no-vm] [--cluster MESSAGES] [--failover MESSAGES]
set -uo pipefail
here=$(dirname "$(realpath "$0")"); root=$(dirname "$here")
bin=$root/.build/debug/swift-ramcastPackageTests.xctest; bindir=$root/.build/debug
novm=0; cluster=0; invm=0; failover=0
while (( $# )); do case $1 in
  --bin) bin=$2; shift 2 ;; --bin-dir) bindir=$2; shift 2 ;; --no-vm) novm=1; shift ;;
  --cluster) cluster=$2; shift 2 ;; --failover) failover=$2; shift 2 ;; --in-vm) invm=1; shift ;;
  *) echo "rdma-tests: unknown argument $1" >&2; exit 2 ;; esac; done
[[ -x $bin ]] || { echo "rdma-tests: no test binary at $bin; run 'swift build --build-tests' first" >&2; exit 2; }

active_device() {   # first device with an ACTIVE port
  local d p
  for d in /sys/class/infiniband/*; do
    [[ -d $d ]] || continue
    for p in "$d"/ports/*/state; do grep -q ACTIVE "$p" 2>/dev/null && { basename "$d"; return 0; }; done
  done
  return 1
}

make_rxe() {        # soft-RoCE on the host, when the kernel allows it
  (( EUID == 0 )) && modprobe rdma_rxe 2>/dev/null || return 1
  local ifname
  ifname=$(ip -o -4 addr show up 2>/dev/null | awk '$2 != "lo" {print $2; exit}')
  [[ -n $ifname ]] || return 1
  rdma link add ramcast_rxe0 type rxe netdev "$ifname" 2>/dev/null || [[ -d /sys/class/infiniband/ramcast_rxe0 ]] || return 1
  echo ramcast_rxe0
}

dev=${RAMCAST_RDMA_DEVICE:-}
[[ -n $dev ]] || dev=$(active_device) || dev=$(make_rxe) || dev=""
if [[ -z $dev ]]; then
  (( novm )) && { echo "rdma-tests: no RDMA device and --no-vm given; skipping"; exit 0; }
  echo "rdma-tests: no RDMA device on this host (and rdma_rxe cannot be loaded): running in a soft-RoCE VM"
  "$here/setup.sh" --vm || exit 1
  start=$(date +%s)
  args=(--in-vm --bin "$bin" --bin-dir "$bindir" --cluster "$cluster" --failover "$failover")
  (cd "$root" && "$here/rxe-vm.sh" bash "$here/rdma-tests.sh" "${args[@]}"); rc=$?
  echo "rdma-tests: VM part took $(( $(date +%s) - start )) s wall (boot included)"
  exit $rc
fi

export RAMCAST_RDMA_DEVICE=$dev
(( invm )) && export RAMCAST_RDMA_ADDRESS=${RAMCAST_RDMA_ADDRESS:-$RXE_VM_IP}
echo "rdma-tests: device $dev$( (( invm )) && echo " (in the soft-RoCE VM, address $RXE_VM_IP)")"
ibv_devinfo -d "$dev" -v 2>/dev/null | grep -E 'hca_id|transport|state:|active_mtu|link_layer|GID\[' | sed 's/^/  /'
ulimit -l unlimited 2>/dev/null || true

xml=$root/.build/rdma-tests.xunit.xml; log=$root/.build/rdma-tests.log; rm -f "$xml" "$log"
start=$(date +%s)
"$bin" --testing-library swift-testing --filter RamCastRDMATests --xunit-output "$xml" 2>&1 | tee "$log"; rc=${PIPESTATUS[0]}
secs=$(( $(date +%s) - start ))
# Count test cases, not test functions: a parameterized test reports "with N test cases passed".
plain=$(sed 's/\x1b\[[0-9;]*m//g' "$log")
cases=$(grep -E '^✔ Test .* with [0-9]+ test cases? passed' <<<"$plain" | sed -E 's/.* with ([0-9]+) test cases? passed.*/\1/' | awk '{s += $1} END {print s + 0}')
single=$(grep -E '^✔ Test .* passed after' <<<"$plain" | grep -vcE ' with [0-9]+ test cases? passed')
failed=$(grep -E '^✘ Test ' <<<"$plain" | grep -cE 'failed after')
skipped=$(grep -cE '^➜ Test .* skipped' <<<"$plain")
echo "rdma: test cases ran over $dev in ${secs} s"
echo "rdma: $(( ${cases:-0} + single )) passed, $failed failed, $skipped skipped"
(( rc == 0 )) || { echo "rdma-tests: the RDMA test run failed (status $rc)" >&2; exit $rc; }

if (( cluster > 0 )); then
  logs=$root/.build/rxe-delivery-logs; rm -rf "$logs"
  echo "rdma-tests: a RamCast cluster over $dev: 2 groups × 3, 2 senders, $cluster messages"
  start=$(date +%s)
  "$bindir/ramcast-demo" --fabric rdma --device "$dev" --messages "$cluster" --delivery-log "$logs" 2>&1 | grep -v ' info '
  (( PIPESTATUS[0] == 0 )) || { echo "rdma-tests: the cluster run failed" >&2; exit 1; }
  echo "rdma-tests: cluster run took $(( $(date +%s) - start )) s; checking its delivery logs"
  "$bindir/ramcast-check" "$logs" || { echo "rdma-tests: ramcast-check found violations in $logs" >&2; exit 1; }
fi
if (( failover > 0 )); then
  echo "rdma-tests: failover over $dev: 2 groups × 3 and 2 senders as OS processes, kill -9 of group 0's leader"
  start=$(date +%s)
  (cd "$root" && "$here/failover-rxe.sh" "$bindir" "$failover") || { echo "rdma-tests: the failover run failed" >&2; exit 1; }
  echo "rdma-tests: failover run took $(( $(date +%s) - start )) s"
fi
exit 0
