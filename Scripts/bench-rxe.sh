#!/usr/bin/env bash
# RamCast side by side with raw RDMA writes, over soft-RoCE (rxe0), in ONE boot of the throw-away VM
# (Scripts/rxe-vm.sh): perftest's ib_write_lat and ib_write_bw (64 B, inline and not), then
# `ramcast-bench local --fabric rdma` for step 1, steps 1-2 and steps 1-3, for 1 group of 3 and for
# 2 groups of 3 (every message to both), each measured twice: throughput with 8 messages outstanding,
# latency with 1; then a leader crash (2 groups of 3, --crash-leader-after 300 of 2000 messages,
# delivery logs checked) for the failover time. Then (unless --no-multi) a multi-process run: 2 groups
# x 3 members and 2 senders, each its own OS process (`ramcast-bench node`), delivery logs checked.
#
#   usage: Scripts/bench-rxe.sh [--no-multi] [--multi-only] [--duration SECONDS]
#   env:   RAMCAST_BENCH_BIN=path   use this (release) ramcast-bench instead of building it
#          RXE_VM_TIMEOUT           seconds for the whole VM run (default 540)
#
# It prints the figures and three ratios against the physical limit of this setup:
#   1. full-protocol throughput / step-1 throughput                        (target >= 0.7)
#   2. RamCast p50 latency / ib_write_lat p50 (t_typical)                  (target <= 2.5, <= 3.5 multi-group)
#   3. msgs/s x writes per message at the busiest process / ib_write_bw message rate
#      (and, since a local run's processes share the one soft-RoCE device and polling thread, the
#      writes/s of all of them together / ib_write_bw message rate)
# Soft-RoCE in a TCG VM is software all the way down (about 20 us per write, 30-40 K writes/s):
# compare ratios, not absolute figures. Outputs stay in bench-out/rxe-<time>/ (git-ignored).
set -uo pipefail

# ===================== inside the VM =====================
if [[ ${1:-} == --inside ]]; then
  out=$2 bin=$3 dur=$4 what=$5
  dev=${RXE_VM_DEV:-rxe0} ip=${RXE_VM_IP:?not in the rxe VM}
  log() { echo "bench-rxe (vm $(cut -d' ' -f1 /proc/uptime)s): $*" >&2; }
  perftest() {   # NAME CMD ARGS...: server in the background, client against $ip
    local name=$1; shift
    "$@" >"$out/$name.server.txt" 2>&1 & local server=$!
    sleep 1.5
    timeout 90 "$@" "$ip" >"$out/$name.txt" 2>&1 || log "$name failed (see $out/$name.txt)"
    wait "$server" 2>/dev/null
    log "$name: $(awk '$1 == 64 {print; exit}' "$out/$name.txt")"
  }
  port=20000
  bench() {      # NAME ARGS...: one local run over rxe0
    local name=$1; shift
    port=$((port + 20))
    timeout 120 "$bin" local --fabric rdma --device "$dev" --cm-port "$port" --quiet --no-progress \
      --json "$out/$name.json" "$@" >"$out/$name.txt" 2>&1 || log "$name failed (rc $?, see $out/$name.txt)"
    log "$name: $(grep -E 'throughput|latency|crashed' "$out/$name.txt" | head -3 | tr -s ' ' | tr '\n' ' ')"
  }
  if [[ $what != multi-only ]]; then
    log "perftest on $dev ($ip), 64-byte writes"
    perftest write_lat ib_write_lat -d "$dev" -x 1 -s 64 -n 3000 -I 0 -F
    perftest write_lat_inline ib_write_lat -d "$dev" -x 1 -s 64 -n 3000 -I 64 -F
    perftest write_bw ib_write_bw -d "$dev" -x 1 -s 64 -n 20000 -I 0 -F
    perftest write_bw_inline ib_write_bw -d "$dev" -x 1 -s 64 -n 20000 -I 64 -F
    for g in 1 2; do
      for s in 1 2 3; do
        bench "tput-g$g-s$s" --groups "$g" --processes 3 --destinations "$g" --steps "$s" --outstanding 8 --duration "$dur" --warmup 1
        bench "lat-g$g-s$s" --groups "$g" --processes 3 --destinations "$g" --steps "$s" --outstanding 1 --duration "$dur" --warmup 0.5
      done
    done
    bench crash-g2 --groups 2 --processes 3 --destinations 2 --messages 2000 --crash-leader-after 300 --delivery-log "$out/crash-logs"
    "$bin" check "$out/crash-logs" >"$out/crash-check.txt" 2>&1 || log "the crash run's delivery logs do NOT check clean (see $out/crash-check.txt)"
  fi
  if [[ $what != no-multi ]]; then
    log "multi-process: 2 groups x 3 members + 2 senders, one OS process each"
    mp=$out/multi; mkdir -p "$mp"
    {
      echo '{ "groups": ['
      echo "  { \"members\": [ {\"id\": 0, \"address\": \"$ip:19000\"}, {\"id\": 1, \"address\": \"$ip:19001\"}, {\"id\": 2, \"address\": \"$ip:19002\"} ] },"
      echo "  { \"members\": [ {\"id\": 3, \"address\": \"$ip:19003\"}, {\"id\": 4, \"address\": \"$ip:19004\"}, {\"id\": 5, \"address\": \"$ip:19005\"} ] } ],"
      echo "  \"senders\": [ {\"id\": 100, \"address\": \"$ip:19100\"}, {\"id\": 101, \"address\": \"$ip:19101\"} ],"
      # 8 processes on 2 emulated vCPUs finish connecting seconds apart: the default 100 ms failure
      # timeout would suspect leaders that are not polling yet (as in failover-rxe.sh).
      echo "  \"failureDetection\": { \"heartbeatMicros\": 20000, \"timeoutMillis\": 1500 },"
      echo "  \"ring\": { \"slots\": 16, \"slotSize\": 256 }, \"rdma\": { \"device\": \"$dev\" } }"
    } >"$mp/cluster.json"
    pids=()
    for id in 0 1 2 3 4 5 100 101; do
      load=(); [[ $id -ge 100 ]] && load=(--messages 500 --outstanding 4 --destinations 1:2,2:1)
      "$bin" node --config "$mp/cluster.json" --id "$id" --steps 3 --max-seconds 200 --no-progress --nap-after-us 50 --verbose \
        --delivery-log "$mp/logs" --json "$mp/node$id.json" "${load[@]}" >"$mp/node$id.txt" 2>&1 &
      pids+=($!)
    done
    rc=0; for p in "${pids[@]}"; do wait "$p" || rc=1; done
    (( rc == 0 )) || log "a node process failed (see $mp/node*.txt)"
    "$bin" check "$mp/logs" >"$mp/check.txt" 2>&1 || log "the delivery logs do NOT check clean (see $mp/check.txt)"
    log "multi-process: $(tail -n 1 "$mp/check.txt")"
  fi
  exit 0
fi

# ===================== on the host =====================
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
[[ -d /opt/swift/usr/bin ]] && export PATH=/opt/swift/usr/bin:$PATH
what=all dur=3
while (( $# )); do
  case $1 in
    --no-multi) what=no-multi ;;
    --multi-only) what=multi-only ;;
    --duration) dur=$2; shift ;;
    *) echo "usage: Scripts/bench-rxe.sh [--no-multi] [--multi-only] [--duration SECONDS]" >&2; exit 64 ;;
  esac
  shift
done
bin=${RAMCAST_BENCH_BIN:-}
if [[ -z $bin ]]; then
  echo "bench-rxe: building ramcast-bench (release)..." >&2
  swift build -c release --package-path Benchmarks --product ramcast-bench >&2 || exit 1
  bin=$(swift build -c release --package-path Benchmarks --show-bin-path)/ramcast-bench
fi
bin=$(realpath "$bin")
out=bench-out/rxe-$(date +%Y%m%d-%H%M%S); mkdir -p "$out"
echo "bench-rxe: one VM boot, outputs in $out (load now: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
start=$(date +%s)
RXE_VM_TIMEOUT=${RXE_VM_TIMEOUT:-540} "$root/Scripts/rxe-vm.sh" bash Scripts/bench-rxe.sh --inside "$out" "$bin" "$dur" "$what"
rc=$?
echo "bench-rxe: VM run took $(( $(date +%s) - start )) s (rc $rc)" >&2

python3 - "$out" "$what" <<'EOF'
import json, os, sys
out, what = sys.argv[1], sys.argv[2]

def perftest(name, column):
    try:
        for line in open(os.path.join(out, name + ".txt")):
            f = line.split()
            if f and f[0] == "64":
                return float(f[column])
    except (OSError, ValueError, IndexError):
        pass
    return None

def load(name):
    try:
        return json.load(open(os.path.join(out, name + ".json")))
    except (OSError, ValueError):
        return None

def fmt(v, digits=1):
    return "-" if v is None else f"{v:,.{digits}f}"

if what != "multi-only":
    lat = [v for v in (perftest("write_lat", 4), perftest("write_lat_inline", 4)) if v]
    bw = [v for v in (perftest("write_bw", 4), perftest("write_bw_inline", 4)) if v]
    raw_lat = min(lat) if lat else None            # t_typical, us (half a round trip)
    raw_rate = max(bw) * 1e6 if bw else None       # MsgRate, Mpps -> writes/s
    print(f"\nraw RDMA over rxe0, 64 B (perftest): ib_write_lat t_typical {fmt(perftest('write_lat', 4), 2)} us "
          f"(inline {fmt(perftest('write_lat_inline', 4), 2)} us); ib_write_bw {fmt(perftest('write_bw', 4) and perftest('write_bw', 4) * 1e6, 0)} msgs/s "
          f"(inline {fmt(perftest('write_bw_inline', 4) and perftest('write_bw_inline', 4) * 1e6, 0)})")
    print("\nRamCast over rxe0 (ramcast-bench local --fabric rdma, 1 sender; throughput with 8 outstanding, latency with 1):")
    print(f"  {'cluster':<24}{'steps':<7}{'msgs/s':>10}{'p50 us':>9}{'p99 us':>9}{'busiest w/msg':>15}{'busiest writes/s':>18}{'all writes/s':>14}{'CPU %':>7}")
    rows = {}
    for g in (1, 2):
        for s in (1, 2, 3):
            t, l = load(f"tput-g{g}-s{s}"), load(f"lat-g{g}-s{s}")
            rows[(g, s)] = (t, l)
            b = t and t.get("busiest_process")
            name = "1 group x 3" if g == 1 else "2 groups x 3, 2 dst"
            print(f"  {name:<24}{['1', '1-2', '1-3'][s-1]:<7}{fmt(t and t['messages_per_second'], 0):>10}"
                  f"{fmt(l and l['latency_us']['p50']):>9}{fmt(l and l['latency_us']['p99']):>9}"
                  f"{fmt(b and b['writes_per_message'], 2):>15}{fmt(b and b['writes_per_second'], 0):>18}"
                  f"{fmt(t and t['total_writes_per_second'], 0):>14}"
                  f"{fmt(t and t['cpu']['percent_of_wall'], 0):>7}")
    print("\nratios:")
    for g, target in ((1, 2.5), (2, 3.5)):
        name = "1 group " if g == 1 else "2 groups"
        t1, t3 = rows[(g, 1)][0], rows[(g, 3)][0]
        l3 = rows[(g, 3)][1]
        r1 = t3["messages_per_second"] / t1["messages_per_second"] if t1 and t3 and t1["messages_per_second"] else None
        r2 = l3["latency_us"]["p50"] / raw_lat if l3 and raw_lat and l3["latency_us"]["p50"] is not None else None
        b = t3 and t3.get("busiest_process")
        r3 = b["writes_per_second"] / raw_rate if b and raw_rate else None
        r4 = t3["total_writes_per_second"] / raw_rate if t3 and raw_rate else None
        print(f"  {name}: full protocol / step 1 throughput {fmt(r1, 2)} (target >= 0.7)")
        print(f"            p50 latency / ib_write_lat t_typical {fmt(r2, 1)} (target <= {target})")
        print(f"            busiest process writes/s / ib_write_bw {fmt(r3, 2)}; all processes' writes/s / ib_write_bw {fmt(r4, 2)}")
    c = load("crash-g2")
    try:
        check = open(os.path.join(out, "crash-check.txt")).read().strip().splitlines()[-1]
    except (OSError, IndexError):
        check = "no check output"
    print("\nleader crash (2 groups x 3, 2 dst, group 0's leader crashed after 300 deliveries of 2,000 messages):")
    if c:
        around = ""
        if c.get("messages_per_second_before_crash") is not None:
            around = f"; msgs/s before the crash {fmt(c['messages_per_second_before_crash'], 0)}, after {fmt(c['messages_per_second_after_crash'], 0)}"
        print(f"  crashed {c['crashed_processes']}, failover_ms {fmt(c['failover_ms'], 1)}{around}; {check}")
    else:
        print(f"  no result (see {out}/crash-g2.txt)")
if what != "no-multi":
    mp = os.path.join(out, "multi")
    print("\nmulti-process (2 groups x 3 + 2 senders, one OS process each, steps 1-3):")
    for sid in (100, 101):
        r = load(f"multi/node{sid}")
        if r:
            print(f"  sender {sid}: {r['messages']:,} messages, {r['messages_per_second']:,.0f} msgs/s, "
                  f"p50 {fmt(r['latency_us']['p50'])} us, p99 {fmt(r['latency_us']['p99'])} us (seen at the sender through slot releases)")
        else:
            print(f"  sender {sid}: no result (see {mp}/node{sid}.txt)")
    try:
        print("  " + open(os.path.join(mp, "check.txt")).read().strip().splitlines()[-1])
    except (OSError, IndexError):
        print("  no check output")
print(f"\n(all outputs in {out})")
EOF
exit $rc
