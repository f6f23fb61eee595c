#!/usr/bin/env bash
# setup.sh - installs what swift-ramcast needs on a Debian-family host, idempotently:
#   * the C libraries the RDMA fabric links (libibverbs, librdmacm) and the verbs providers (rxe);
#   * with --vm, the packages the soft-RoCE VM harness uses (qemu, busybox, kmod, perftest...).
# Needs root for apt-get; does nothing when everything is already there.
set -euo pipefail
pkgs=(libibverbs-dev librdmacm-dev ibverbs-providers rdma-core ibverbs-utils rdmacm-utils perftest iproute2 kmod)
[[ ${1:-} == --vm ]] && pkgs+=(qemu-system-x86 busybox-static)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if (( ${#missing[@]} )); then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""; (( EUID == 0 )) || sudo=sudo
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get -q -o DPkg::Lock::Timeout=300 update >/tmp/ramcast-apt.log 2>&1 &&
  $sudo apt-get -q -o DPkg::Lock::Timeout=300 install -y --no-install-recommends "${missing[@]}" >>/tmp/ramcast-apt.log 2>&1 ||
    { tail -n 20 /tmp/ramcast-apt.log >&2; echo "setup: apt-get failed (see /tmp/ramcast-apt.log)" >&2; exit 1; }
fi
if ! command -v swift >/dev/null; then
  if [[ -x /opt/swift/usr/bin/swift ]]; then
    echo "setup: swift is at /opt/swift/usr/bin; add it to PATH" >&2
  else
    echo "setup: no Swift toolchain found: install Swift 6 (https://www.swift.org/install/)" >&2; exit 1
  fi
fi
