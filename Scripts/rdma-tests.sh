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
#   usage: Scripts/rdma-tests.sh [--bin PATH] [--no-vm] [--demo]
set -uo pipefail
here=$(dirname "$(realpath "$0")"); root=$(dirname "$here")
bin=$root/.build/debug/swift-ramcastPackageTests.xctest; demo=$root/.build/debug/ramcast-demo
novm=0; rundemo=0; invm=0
while (( $# )); do case $1 in
  --bin) bin=$2; shift 2 ;; --no-vm) novm=1; shift ;; --demo) rundemo=1; shift ;;
  --in-vm) invm=1; shift ;; *) echo "rdma-tests: unknown argument $1" >&2; exit 2 ;; esac; done
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
  args=(--in-vm --bin "$bin"); (( rundemo )) && args+=(--demo)
  (cd "$root" && "$here/rxe-vm.sh" bash "$here/rdma-tests.sh" "${args[@]}"); rc=$?
  echo "rdma-tests: VM part took $(( $(date +%s) - start )) s wall (boot included)"
  exit $rc
fi

export RAMCAST_RDMA_DEVICE=$dev
(( invm )) && export RAMCAST_RDMA_ADDRESS=${RAMCAST_RDMA_ADDRESS:-$RXE_VM_IP}
echo "rdma-tests: device $dev$( (( invm )) && echo " (in the soft-RoCE VM, address $RXE_VM_IP)")"
ibv_devinfo -d "$dev" -v 2>/dev/null | grep -E 'hca_id|transport|state:|active_mtu|link_layer|GID\[' | sed 's/^/  /'
ulimit -l unlimited 2>/dev/null || true

if (( rundemo )) && [[ -x $demo ]]; then
  echo "rdma-tests: demo over $dev"
  "$demo" --fabric rdma --device "$dev" || { echo "rdma-tests: demo failed" >&2; exit 1; }
fi

xml=$root/.build/rdma-tests.xunit.xml; rm -f "$xml"
start=$(date +%s)
"$bin" --testing-library swift-testing --filter RamCastRDMATests --xunit-output "$xml"; rc=$?
secs=$(( $(date +%s) - start ))
if [[ -f $xml ]]; then
  total=$(grep -o '<testcase ' "$xml" | wc -l)
  failed=$(grep -o '<failure' "$xml" | wc -l)
  skipped=$(grep -o '<skipped' "$xml" | wc -l)
  echo "rdma: test cases over $dev in ${secs} s"
  echo "rdma: $(( total - failed - skipped )) passed, $failed failed, $skipped skipped"
else
  echo "rdma-tests: no xunit report written (rc=$rc)" >&2
  (( rc == 0 )) && rc=1
fi
exit $rc
