#!/usr/bin/env bash
# failover-rxe.sh - a RamCast cluster as separate OS processes over an RDMA device (2 groups × 3
# members, 2 senders streaming multicasts), with group 0's leader killed by `kill -9` mid-stream.
# The survivors elect a new leader, sending resumes; then the killed process restarts as a new
# incarnation (--incarnation 1) and must be taken back in, delivering the rest of the stream. ramcast-
# check must pass on every delivery log (both incarnations' included). Prints the failover time
# (from the kill to the first delivery under the new leader) and the rejoin time.
# Runs where the device is (inside Scripts/rxe-vm.sh on a host without RDMA):
#   usage: Scripts/failover-rxe.sh BIN_DIR [MESSAGES_PER_SENDER]
set -uo pipefail
bin=${1:?usage: failover-rxe.sh BIN_DIR [MESSAGES]}; messages=${2:-2000}
ip=${RAMCAST_RDMA_ADDRESS:-${RXE_VM_IP:-}}; dev=${RAMCAST_RDMA_DEVICE:-rxe0}
[[ -n $ip ]] || { echo "failover: set RAMCAST_RDMA_ADDRESS (the device's IP)" >&2; exit 2; }
dir=$(pwd)/.build/failover-logs; rm -rf "$dir"; mkdir -p "$dir"
ulimit -l unlimited 2>/dev/null || true
member() { echo "{ \"id\": $1, \"address\": \"$ip:$((19000 + $1))\" }"; }
cat >"$dir/cluster-config.json" <<JSON
{
  "groups": [ { "members": [ $(member 0), $(member 1), $(member 2) ] },
              { "members": [ $(member 3), $(member 4), $(member 5) ] } ],
  "senders": [ $(member 100), $(member 101) ],
  "ring": { "slots": 16, "slotSize": 256 },
  "failureDetection": { "heartbeatMicros": 20000, "timeoutMillis": 1500 },
  "rdma": { "device": "$dev" }
}
JSON
declare -A pid
for id in 0 1 2 3 4 5; do
  "$bin/ramcast-node" --config "$dir/cluster-config.json" --id $id --delivery-log "$dir" --failure-timeout-ms 1500 \
    >"$dir/node-$id.log" 2>&1 & pid[$id]=$!
done
for id in 100 101; do
  "$bin/ramcast-node" --config "$dir/cluster-config.json" --id $id --delivery-log "$dir" --messages "$messages" \
    >"$dir/node-$id.log" 2>&1 & pid[$id]=$!
done
lines() { cat "$dir/deliveries-0.jsonl" 2>/dev/null | wc -l; }
t0=$(date +%s)
until (( $(lines) >= messages / 3 )); do
  sleep 0.2
  (( $(date +%s) - t0 > 300 )) && { echo "failover: the cluster made no progress before the kill" >&2; tail -5 "$dir"/node-*.log; exit 1; }
done
kill_ns=$(date +%s%N); kill -9 "${pid[0]}"
echo "failover: killed process 0 (group 0's leader) after $(lines) deliveries there"
ok=1
# Then process 0 restarts (a new incarnation, empty memory) once a survivor leads group 0: it must
# be taken back in and deliver the group's order after its cut while the stream goes on.
t1=$(date +%s)
until grep -qh 'now leading' "$dir/node-1.log" "$dir/node-2.log" 2>/dev/null; do
  sleep 0.1; (( $(date +%s) - t1 > 60 )) && { echo "failover: no new leader within 60 s" >&2; ok=0; break; }
done
restart_ns=$(date +%s%N)
"$bin/ramcast-node" --config "$dir/cluster-config.json" --id 0 --incarnation 1 --delivery-log "$dir" --failure-timeout-ms 1500 \
  >"$dir/node-0.1.log" 2>&1 & pid[r]=$!
for id in 100 101; do
  if ! timeout 600 tail --pid="${pid[$id]}" -f /dev/null; then ok=0; fi
  wait "${pid[$id]}" || { echo "failover: sender $id failed:" >&2; tail -5 "$dir/node-$id.log" >&2; ok=0; }
done
touch "$dir/STOP"
for id in 1 2 3 4 5; do wait "${pid[$id]}" || { echo "failover: process $id failed" >&2; tail -5 "$dir/node-$id.log" >&2; ok=0; }; done
wait "${pid[r]}" || { echo "failover: restarted process 0 failed" >&2; tail -5 "$dir/node-0.1.log" >&2; ok=0; }
rejoined=$(grep -h 'rejoined' "$dir/node-0.1.log" | grep -o 'unix_ns=[0-9]*' | tail -1 | cut -d= -f2)
after=$(grep -h 'rejoined' "$dir/node-0.1.log" | grep -o 'after=[^ ]*' | tail -1)
n_new=$(grep -c '"message"' "$dir/deliveries-1000000.jsonl" 2>/dev/null); n_new=${n_new:-0}
if [[ -n $rejoined ]]; then
  echo "restart: process 0 restarted, rejoined group 0 $(( (rejoined - restart_ns) / 1000000 )) ms after its start ($after) and delivered $n_new messages after its cut"
  echo "rejoin_ms=$(( (rejoined - restart_ns) / 1000000 )) restarted_deliveries=$n_new"
  (( n_new > 0 )) || { echo "restart: the new incarnation delivered nothing: the stream ended before it was back" >&2; ok=0; }
else
  echo "restart: process 0's new incarnation never rejoined" >&2; tail -5 "$dir/node-0.1.log" >&2; ok=0
fi
# The killed process's log counts for uniform agreement; tell the checker it crashed.
sed -i 's/"crashed":\[[0-9,]*\]/"crashed":[0]/' "$dir/cluster.json"
# The new leader is whichever survivor of group 0 logged "now leading" (usually process 1; another
# one if process 1 was itself suspected meanwhile); service is back at the earliest first delivery
# under a new leader.
leader=""; lead=""; first=""
# Process 0 must still have led group 0 when it was killed: a survivor that logged "now leading"
# earlier took over before the kill (process 0 deposed at start-up, for one), and what follows
# the kill is not a failover.
early=$(grep -h 'now leading' "$dir/node-1.log" "$dir/node-2.log" 2>/dev/null | grep 'group=0' | grep -o 'unix_ns=[0-9]*' | cut -d= -f2 |
        awk -v k="$kill_ns" '$1 < k' | head -1)
if [[ -n $early ]]; then
  echo "failover: process 0 no longer led group 0 when it was killed (a survivor led $(( (kill_ns - early) / 1000000 )) ms before the kill$(grep -q 'deposed' "$dir/node-0.log" && echo ', process 0 was deposed')); no failover time measured"
fi
for id in 1 2; do
  [[ -n $early ]] && break
  # The first time: the leader logs again after the ballot that takes the restarted process back.
  l=$(grep -h 'now leading' "$dir/node-$id.log" | grep 'group=0' | grep -o 'unix_ns=[0-9]*' | head -1 | cut -d= -f2)
  f=$(grep -h 'first delivery under the new leader' "$dir/node-$id.log" | grep -o 'unix_ns=[0-9]*' | head -1 | cut -d= -f2)
  if [[ -n $l && -n $f ]] && [[ -z $first || $f -lt $first ]]; then leader=$id; lead=$l; first=$f; fi
done
if [[ -n $first ]]; then
  echo "failover: process $leader led group 0 $(( (lead - kill_ns) / 1000000 )) ms after the kill; first delivery under it after $(( (first - kill_ns) / 1000000 )) ms"
  echo "failover_ms=$(( (first - kill_ns) / 1000000 ))"
elif [[ -z $early ]]; then
  echo "failover: no delivery under a new leader was logged" >&2; ok=0
fi
"$bin/ramcast-check" "$dir" || ok=0
(( ok ))
