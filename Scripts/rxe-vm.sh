#!/usr/bin/env bash
# Part of swift-ramcast's soft-RoCE harness (Scripts/rdma-tests.sh decides when it is needed).
# Why: on a host whose kernel has no RDMA support, Debian's 6.1 kernel (linux-image-amd64) ships rdma_rxe.
#
#   usage: rxe-vm.sh [CMD [ARGS...]]        (default: ibv_devinfo)
#   e.g.   rxe-vm.sh bash -c 'ib_write_lat -d rxe0 -x 1 & sleep 2; ib_write_lat -d rxe0 -x 1 $RXE_VM_IP'
#          (-x 1 = GID index 1 = ::ffff:10.211.0.1, RoCE v2; add -R to connect through rdma_cm)
#
# Inside the VM: the host root filesystem, read-only over 9p, under a tmpfs overlay (writes vanish
# at exit), except the current directory, which is mounted read-write at the same path. CMD runs
# as root there with the host's exported environment, stdin=/dev/null; its stdout/stderr stream to
# the host's stdout/stderr (virtio-serial ports) and its exit status is rxe-vm.sh's exit status
# (124 = VM timed out, 125 = VM/setup failure, guest console shown). The VM has no NIC at all:
# RDMA traffic runs over rxe0 bound to dummy netdev rxenet0 ($RXE_VM_IP), never leaving the VM.
# Env knobs: RXE_VM_MEM (MiB, 2048)  RXE_VM_CPUS (2)  RXE_VM_TIMEOUT (s, 600)  RXE_VM_DEBUG=1
#   RXE_VM_CACHE (/var/cache/rxe-vm: kernel + modules + initramfs, ~185 MB)  RXE_VM_RXE=0 (no rxe setup)
#   RXE_VM_MTU (netdev MTU, 9000 -> RoCE MTU 4096)  RXE_VM_SIW=1 (also siw0 on $RXE_VM_SIW_IP; needs siw-build.sh)
#   RXE_VM_CPU (qemu -cpu, max)  RXE_VM_ACCEL (tcg,thread=multi)  RXE_VM_KARGS (extra kernel args)
#   RXE_VM_QEMU_ARGS (extra qemu args, word-split; e.g. a virtio-net NIC on a unix socket for a 2-VM setup)
# tsc=reliable: without it the guest marks the TCG TSC unstable, uses HPET and clock_gettime costs ~1.1 us.
# Accel: TCG. /dev/kvm on these machines is kvm-pvm (nested "pagetable VM"); it emulates a stock
# kernel instruction by instruction and dies with "KVM internal error" (see README.md). RXE_VM_ACCEL overrides.
set -uo pipefail
IP=10.211.0.1 SIW_IP=10.211.1.1   # rxenet0 / siwnet0 inside the VM (VM-internal only: the VM has no NIC)

if [[ ${1:-} == --stage2 ]]; then   # ===== inside the VM, PID 1, after switch_root =====
  export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  ctl=$2; . "$ctl/vars"                                     # KVER CACHE CWD RXE MTU SIW [RXE_VM_DEBUG]
  mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
  mkdir -p /dev/pts /dev/shm; mount -t devpts devpts /dev/pts; mount -t tmpfs tmpfs /dev/shm; mount -t tmpfs tmpfs /run
  for p in /sys/class/virtio-ports/*; do declare "port_$(cat "$p/name")=/dev/${p##*/}"; done
  fail() { echo "rxe-vm (guest): $*" >"$port_err"; echo 125 >"$port_rc"; sync; busybox poweroff -f; }
  dbg() { [[ -z ${RXE_VM_DEBUG:-} ]] || echo "rxe-vm: guest $(cut -d' ' -f1 /proc/uptime)s uptime: $*" >"$port_err"; }; dbg "stage2 started"
  [[ $CWD == / ]] || mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=mmap cwd "$CWD" || fail "cannot mount $CWD"
  mkdir -p "/lib/modules/$KVER" && mount --bind "$CACHE/$KVER/kroot/lib/modules/$KVER" "/lib/modules/$KVER"
  hostname rxe-vm; ip link set lo up; ulimit -l unlimited; dbg "mounts done"
  if [[ $RXE != 0 ]]; then                                  # soft-RoCE on a dummy netdev with a static IP
    modprobe -a rdma_rxe rdma_ucm dummy || fail "modprobe failed"; dbg "modules loaded"
    ip link add rxenet0 mtu "$MTU" type dummy && ip addr add "$IP/24" dev rxenet0 && ip link set rxenet0 up || fail "netdev setup"
    rdma link add rxe0 type rxe netdev rxenet0 || fail "rdma link add failed"
  fi
  if [[ $SIW == 1 ]]; then                                  # optional Soft-iWARP (module from siw-build.sh)
    { modprobe -a ib_core libcrc32c dummy && insmod "$CACHE/$KVER/siw.ko" && ip link add siwnet0 mtu "$MTU" type dummy &&
      ip addr add "$SIW_IP/24" dev siwnet0 && ip link set siwnet0 up && rdma link add siw0 type siw netdev siwnet0; } ||
      fail "siw setup failed (did you run siw-build.sh?)"
  fi
  dbg "ready, running the command"
  ( set +u; . "$ctl/env"; export RXE_VM_DEV=rxe0 RXE_VM_IP=$IP RXE_VM_NETDEV=rxenet0 RXE_VM_SIW_IP=$SIW_IP
    cd "$CWD" && exec bash -c "$(cat "$ctl/cmd")" ) </dev/null >"$port_out" 2>"$port_err"
  echo $? >"$port_rc"; sync; busybox poweroff -f
fi

# ===== host side =====
self=$(realpath "$0"); cache=${RXE_VM_CACHE:-/var/cache/rxe-vm}; dbg=${RXE_VM_DEBUG:-}
log() { [[ -n $dbg ]] && echo "rxe-vm: $(date +%T.%N | cut -c1-12) $*" >&2; return 0; }
die() { echo "rxe-vm: $*" >&2; exit 125; }
(( $# )) || set -- ibv_devinfo

# 1. host packages (idempotent; apt-get only if something is missing)
pkgs=(qemu-system-x86 busybox-static kmod iproute2 rdma-core ibverbs-providers ibverbs-utils rdmacm-utils perftest)
missing=(); for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done
if (( ${#missing[@]} )); then
  log "installing ${missing[*]}"; export DEBIAN_FRONTEND=noninteractive; alog=/tmp/rxe-vm-apt.log
  { apt-get -q -o DPkg::Lock::Timeout=300 update && apt-get -q -o DPkg::Lock::Timeout=300 install -y \
      --no-install-recommends "${missing[@]}"; } >"$alog" 2>&1 || { tail -n 20 "$alog" >&2; die "apt-get failed (see $alog)"; }
fi

# 2. guest kernel: Debian's linux-image, unpacked into the cache (never installed into /boot)
mkdir -p "$cache" && exec 9>"$cache/.lock" && flock 9 || die "cannot lock $cache"   # one preparer at a time
KVER=$(cat "$cache/current" 2>/dev/null)
if [[ -z $KVER || ! -f $cache/$KVER/initrd.gz ]]; then
  kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
  [[ -n $kpkg ]] || { apt-get -qq update >&2; kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}'); }
  [[ -n $kpkg ]] || die "cannot resolve linux-image-amd64"
  KVER=${kpkg#linux-image-}; d=$cache/$KVER; log "preparing kernel $KVER in $d"
  rm -rf "$d" && mkdir -p "$d/initrd" || die "cannot create $d"
  ( cd "$d" && apt-get -qq download "$kpkg" 2>/dev/null && dpkg -x "$kpkg"_*.deb kroot && rm -f "$kpkg"_*.deb ) || die "download/unpack of $kpkg failed"
  m=$d/kroot/lib/modules/$KVER/kernel            # prune what a VM with no hardware never loads
  rm -rf "$m"/sound "$m"/drivers/{gpu,media,usb,scsi,iio,hwmon,staging,bluetooth,input,net/wireless,net/ethernet}
  depmod -b "$d/kroot" "$KVER" || die "depmod failed"
  # initramfs: static busybox + virtio/9p/overlay modules + a tiny init that mounts the host root
  mkdir -p "$d/initrd"/{bin,dev,proc,sys,lower,rw,newroot,mods} && cp /bin/busybox "$d/initrd/bin/" && ln -s busybox "$d/initrd/bin/sh"
  modprobe -d "$d/kroot" -S "$KVER" --show-depends -a virtio_pci 9pnet_virtio 9p overlay virtio_console \
    | awk '$1=="insmod" && !s[$2]++ {print $2}' | while read -r f; do cp "$f" "$d/initrd/mods/"; echo "${f##*/}"; done >"$d/initrd/mods/order"
  cat >"$d/initrd/init" <<'EOF'
#!/bin/sh
export PATH=/bin; busybox mount -t proc proc /proc; busybox mount -t sysfs sys /sys; busybox mount -t devtmpfs dev /dev
for m in $(busybox cat /mods/order); do busybox insmod /mods/$m || echo "insmod $m failed"; done
busybox mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose root /lower || echo "9p mount failed"
busybox mount -t tmpfs tmpfs /rw && busybox mkdir -p /rw/u /rw/w
busybox mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/u,workdir=/rw/w /newroot || echo "overlay mount failed"
busybox umount /proc /sys /dev
exec busybox switch_root /newroot "$rxevm_stage2" --stage2 "$rxevm_ctl"
EOF
  chmod +x "$d/initrd/init"
  ( cd "$d/initrd" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1 >../initrd.gz ) || die "initramfs build failed"
  echo "$KVER" >"$cache/current"
fi
d=$cache/$KVER; exec 9>&-

# 3. per-run control dir (read by the guest through the read-only root share)
ctl=$(mktemp -d /tmp/rxe-vm.XXXXXX) || die "mktemp failed"; trap 'rm -rf "$ctl"' EXIT
printf '%q ' "$@" >"$ctl/cmd"; export -p >"$ctl/env"
printf 'KVER=%q CACHE=%q CWD=%q RXE=%q MTU=%q SIW=%q\n' "$KVER" "$cache" "$PWD" "${RXE_VM_RXE:-1}" "${RXE_VM_MTU:-9000}" "${RXE_VM_SIW:-0}" >"$ctl/vars"
[[ -n $dbg ]] && echo "RXE_VM_DEBUG=1" >>"$ctl/vars"
: >"$ctl/rc"; mkfifo "$ctl/out" "$ctl/err"

# 4. boot (TCG, no NIC); stdout/stderr/rc of CMD come back over three virtio-serial ports
cwdshare=(); [[ $PWD == / ]] || cwdshare=(-virtfs "local,path=${PWD//,/,,},mount_tag=cwd,security_model=none,multidevs=remap")
log "booting VM"   # fifo readers copy the guest's output to OUR fd 1/2 (qemu reopening them would break offsets)
cat "$ctl/out" & cat "$ctl/err" >&2 &
timeout -k 5 "${RXE_VM_TIMEOUT:-600}" qemu-system-x86_64 -accel "${RXE_VM_ACCEL:-tcg,thread=multi}" -cpu "${RXE_VM_CPU:-max}" \
  -m "${RXE_VM_MEM:-2048}" -smp "${RXE_VM_CPUS:-2}" -nodefaults -display none -no-reboot -nic none \
  -kernel "$d/kroot/boot/vmlinuz-$KVER" -initrd "$d/initrd.gz" \
  -append "console=ttyS0 quiet panic=-1 tsc=reliable ${RXE_VM_KARGS:-} rxevm_stage2=$self rxevm_ctl=$ctl" -serial "file:$ctl/console.log" \
  -virtfs local,path=/,mount_tag=root,security_model=none,readonly=on,multidevs=remap "${cwdshare[@]}" \
  -device virtio-serial-pci \
  -chardev file,id=out,path="$ctl/out" -device virtserialport,chardev=out,name=out \
  -chardev file,id=err,path="$ctl/err" -device virtserialport,chardev=err,name=err \
  -chardev file,id=rc,path="$ctl/rc" -device virtserialport,chardev=rc,name=rc ${RXE_VM_QEMU_ARGS:-}
qrc=$?; for f in out err; do exec 5<>"$ctl/$f"; exec 5>&-; done; wait   # unblock readers if qemu never opened them
rc=$(tr -dc 0-9 <"$ctl/rc"); log "VM exited (qemu rc=$qrc, command rc=${rc:-none})"
if [[ -z $rc || -n $dbg ]]; then echo "---- guest console (tail) ----" >&2; tail -n 30 "$ctl/console.log" >&2; fi
[[ -n $rc ]] && exit "$rc"
(( qrc == 124 )) && { echo "rxe-vm: timed out after ${RXE_VM_TIMEOUT:-600}s" >&2; exit 124; }
die "VM ended without reporting an exit status (qemu rc=$qrc)"
