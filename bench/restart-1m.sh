#!/usr/bin/env bash
# Durable state at scale (SPEC §10, docs/performance.md "Restart at 1M"): USERS registrations with
# subscriptions through `regevent-gw loadgen --hold` into a gateway with the embedded store, then
# the gateway is killed (SIGKILL; STOP=term for SIGTERM) and started again on the same store.
# Prints: bytes on disk per registration, restart-to-serving time (exec → /readyz 200, and the
# gateway's own regevent_state_restore_seconds), what was restored, and the SUBSCRIBEs sent per
# second in the minute after the restart, by kind (no burst: nothing was due, and nothing new).
#
#   bench/restart-1m.sh BINARY [USERS=1000000] [RATE=12000]
#
# Ports: SIP 5060, core 5070, admin 29464 (loopback). Needs about 3 GiB of memory at 1M.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "${1:?usage: bench/restart-1m.sh BINARY [USERS] [RATE]}")
USERS=${2:-1000000}
RATE=${3:-12000}
SIG=KILL
[ "${STOP:-kill}" = term ] && SIG=TERM
TMP=$(mktemp -d)
GW=
LG=
cleanup() {
  [ -n "$GW" ] && kill "$GW" 2>/dev/null
  [ -n "$LG" ] && kill "$LG" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
. scripts/gateway-config.sh
write_gateway_config "$TMP" 5060 5070 29464 "$USERS" "[state]
dir = \"$TMP/state\""

# sum NAME [LABEL_FILTER]: the sum of a metric's series on /metrics (0 if none).
sum() {
  curl -s --max-time 2 http://127.0.0.1:29464/metrics 2>/dev/null |
    awk -v m="$1" -v f="${2:-}" '
      index($1, m "{") == 1 || $1 == m { if (f == "" || index($1, f) > 0) s += $2 }
      END { printf "%d\n", s }'
}

start_gw() {
  (cd "$TMP" && exec env REGEVENT_GW_LOG=warn "$BIN" run --config "$TMP/gw.toml") >> "$TMP/gw.log" 2>&1 &
  GW=$!
  until curl -fs --max-time 1 http://127.0.0.1:29464/readyz >/dev/null 2>&1; do
    kill -0 "$GW" || { cat "$TMP/gw.log"; exit 1; }
    sleep 0.05
  done
}

start_gw
secs=$(( (USERS + RATE - 1) / RATE ))
"$BIN" loadgen --rate "$RATE" --users "$USERS" --seconds "$secs" --hold --hold-seconds 600 \
  --gateway-pid "$GW" > "$TMP/loadgen.txt" 2>&1 &
LG=$!
echo "registering $USERS UEs at $RATE/s ..."
while :; do
  regs=$(sum regevent_registrations)
  subs=$(sum regevent_subscriptions 'state="active"')
  if [ "$regs" -ge "$USERS" ] && [ "$subs" -ge "$USERS" ]; then break; fi
  kill -0 "$LG" || { tail -20 "$TMP/loadgen.txt"; exit 1; }
  sleep 2
done
# Everything handed to the writer and durable: nothing pending, nothing queued, then one more
# commit window.
until [ "$(sum regevent_state_pending_changes)" = 0 ] && [ "$(sum regevent_state_queue_depth)" = 0 ]; do
  sleep 0.5
done
sleep 1
rss=$(awk '/VmRSS/ { print $2 }' "/proc/$GW/status")
bytes=$(du -sb "$TMP/state" | cut -f1)
echo "live: $regs registrations, $subs active subscriptions; gateway RSS $((rss / 1024)) MiB"
echo "on disk: $bytes bytes in $TMP/state = $((bytes / USERS)) bytes per registration with its subscription"
ls -la "$TMP/state" | tail -n +2 | awk '{ print "   " $5, $9 }'

before_init=$(sum regevent_subscribes_sent_total 'kind="initial"')
kill -s "$SIG" "$GW"
wait "$GW" 2>/dev/null || true
t0=$(date +%s.%N)
start_gw
t1=$(date +%s.%N)
echo "restart (SIG$SIG): exec → /readyz 200 in $(echo "$t1 - $t0" | bc) s; regevent_state_restore_seconds $(curl -s http://127.0.0.1:29464/metrics | awk '$1 == "regevent_state_restore_seconds" { print $2 }')"
# Where that time went: the CPU in the gateway's own code (user) and in the kernel (system:
# mostly zeroing the fresh pages that the restored tables, the files' bytes and the decoded
# records are written into), and its peak memory.
awk -v hz="$(getconf CLK_TCK)" '{ gsub(/.*\) /, ""); printf "   restart CPU until ready: %.2f s user, %.2f s system\n", $12 / hz, $13 / hz }' "/proc/$GW/stat"
awk '/VmHWM/ { printf "   peak RSS during the restore: %d MiB\n", $2 / 1024 }' "/proc/$GW/status"
echo "restored: $(sum regevent_registrations) registrations, $(sum regevent_subscriptions 'state="active"') active subscriptions"

echo "SUBSCRIBEs sent per second in the minute after the restart (initial / refresh / unsubscribe):"
prev=(0 0 0)
max=(0 0 0)
total=(0 0 0)
for s in $(seq 1 60); do
  sleep 1
  now=("$(sum regevent_subscribes_sent_total 'kind="initial"')" \
       "$(sum regevent_subscribes_sent_total 'kind="refresh"')" \
       "$(sum regevent_subscribes_sent_total 'kind="unsubscribe"')")
  for k in 0 1 2; do
    d=$((now[k] - prev[k]))
    [ "$d" -gt "${max[k]}" ] && max[k]=$d
    total[k]=${now[k]}
  done
  prev=("${now[@]}")
done
echo "   in 60 s: initial ${total[0]} (max ${max[0]}/s), refresh ${total[1]} (max ${max[1]}/s), unsubscribe ${total[2]} (max ${max[2]}/s)"
echo "   (before the kill the gateway had sent $before_init initial SUBSCRIBEs; a new process counts from 0)"
