#!/usr/bin/env bash
# Figures of docs/redis.md, with a release build and a redis-server on loopback (Debian package
# redis-server; no persistence, in a temporary directory, killed at the end).
#
#   scripts/redis-takeover.sh takeover [USERS] [LEASE]   (default 100000, 5s)
#     Instance A takes USERS registrations with subscriptions at 10,000/s; B waits as a standby;
#     A is killed -9; the time from the kill to the first NOTIFY answered by B, and B's lease
#     wait and restore (tests/redis_takeover_time.rs, run --ignored).
#
#   scripts/redis-takeover.sh load [RATE] [SECONDS]      (default 10000, 10)
#     The load generator run of docs/performance.md ("Load generator") against a gateway with
#     state.backend = "redis": its report (rate, failures, the gateway's CPU per registration)
#     and redis-server's CPU per registration from /proc/PID/stat, and the gateway's state
#     threads' CPU. BACKEND=embedded (or none) runs the same with that backend, for comparison.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-takeover}
command -v redis-server >/dev/null || { echo "redis-server is not installed (apt-get install redis-server)"; exit 1; }

case "$MODE" in
takeover)
  USERS=${2:-100000}
  LEASE=${3:-5s}
  cargo build --release --bin regevent-gw
  REGEVENT_GW_BIN=$PWD/target/release/regevent-gw REDIS_TAKEOVER_USERS=$USERS \
    REDIS_TAKEOVER_LEASE=$LEASE \
    cargo test --release --test redis_takeover_time -- --ignored --nocapture 2>&1 |
    grep -E '^(registered|TAKEOVER|B: )|test result|panicked'
  ;;
load)
  RATE=${2:-10000}
  SECONDS_=${3:-10}
  cargo build --release --bin regevent-gw
  BIN=target/release/regevent-gw
  TMP=$(mktemp -d)
  RS= GW=
  cleanup() {
    if [ -n "$GW" ]; then kill -9 "$GW" 2>/dev/null || true; fi
    if [ -n "$RS" ]; then kill -9 "$RS" 2>/dev/null || true; fi
    wait 2>/dev/null || true
    rm -rf "$TMP"
  }
  trap cleanup EXIT
  redis-server --port 27379 --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP" >"$TMP/redis.log" 2>&1 &
  RS=$!
  . scripts/gateway-config.sh
  write_gateway_config "$TMP" 27060 27070 27090 1000000 "[state]
backend = \"${BACKEND:-redis}\"
url = \"redis://127.0.0.1:27379/0\"
dir = \"$TMP/data\""
  for _ in $(seq 1 100); do redis-cli -p 27379 ping >/dev/null 2>&1 && break; sleep 0.05; done
  redis-cli -p 27379 ping >/dev/null || { echo "redis-server did not start:"; cat "$TMP/redis.log"; exit 1; }
  REGEVENT_GW_LOG=warn "$BIN" run --config "$TMP/gw.toml" >"$TMP/gw.log" 2>&1 &
  GW=$!
  for _ in $(seq 1 200); do curl -fsS http://127.0.0.1:27090/readyz >/dev/null 2>&1 && break; sleep 0.05; done
  curl -fsS http://127.0.0.1:27090/readyz >/dev/null || { echo "the gateway is not ready:"; cat "$TMP/gw.log"; exit 1; }
  ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
  HZ=$(getconf CLK_TCK)
  r0=$(ticks "$RS")
  "$BIN" loadgen --gateway 127.0.0.1:27060 --core 127.0.0.1:27070 --rate "$RATE" \
    --seconds "$SECONDS_" --gateway-pid "$GW" | grep -v '^t='
  # What the writer still had queued at the end.
  sleep 1
  r1=$(ticks "$RS")
  for t in /proc/"$GW"/task/*; do
    case "$(cat "$t/comm")" in
      state-writer|state-lease) awk -v hz="$HZ" '{ gsub(/.*\) /, ""); printf "gateway thread %s: %.2f s CPU\n", FILENAME, ($12 + $13) / hz }' "$t/stat" | sed "s|/proc/$GW/task/[0-9]*/stat|$(cat "$t/comm")|" ;;
    esac
  done
  ok=$(redis-cli -p 27379 --scan --pattern 'regevent-gw:sip:127.0.0.1:27060:*:reg' | wc -l)
  awk -v a="$r0" -v b="$r1" -v hz="$HZ" -v n="$ok" 'BEGIN {
    printf "redis-server: %.2f s CPU, %.1f µs per registration (%d registrations in Redis)\n",
      (b - a) / hz, (b - a) / hz * 1e6 / (n ? n : 1), n }'
  grep -E 'ERROR|WARN' "$TMP/gw.log" || true
  ;;
*)
  echo "usage: $0 takeover [USERS] [LEASE] | load [RATE] [SECONDS]"; exit 2 ;;
esac
