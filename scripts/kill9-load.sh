#!/usr/bin/env bash
# Crash under load (SPEC §10, real processes): a gateway with the embedded store takes
# registrations from the load generator at RATE/s and is killed with SIGKILL at a random moment,
# RUNS times. After each kill, every registration whose 200 OK the UEs got more than
# `state.commit` (+ the fsync, MARGIN_MS) before the kill must be in the store, as a restart
# loads it (`regevent-gw state export`); then the gateway is started again on it and must come
# up. Timings are reported, never asserted: only "answered and old enough → kept" is.
#
#   scripts/kill9-load.sh [RUNS] [RATE]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${REGEVENT_GW_BIN:-target/release/regevent-gw}
RUNS=${1:-5}
RATE=${2:-10000}
COMMIT_MS=50
MARGIN_MS=${MARGIN_MS:-25}
TMP=$(mktemp -d)
GW= LG=
cleanup() {
  [ -n "$GW" ] && kill -9 "$GW" 2>/dev/null
  [ -n "$LG" ] && kill -9 "$LG" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
. scripts/gateway-config.sh
write_gateway_config "$TMP" 26060 26070 26090 200000 "[state]
dir = \"$TMP/data\"
commit = \"${COMMIT_MS}ms\""

now_ms() { date +%s%3N; }
ready() {
  for _ in $(seq 1 200); do
    curl -fsS "http://127.0.0.1:26090/readyz" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "kill9-load: the gateway did not become ready"; exit 1
}

failed=0
for run in $(seq 1 "$RUNS"); do
  rm -rf "$TMP/data"
  REGEVENT_GW_LOG=warn "$BIN" run --config "$TMP/gw.toml" > "$TMP/gw-$run.log" 2>&1 &
  GW=$!
  ready
  "$BIN" loadgen --gateway 127.0.0.1:26060 --core 127.0.0.1:26070 --rate "$RATE" --seconds 8 \
    --answered-log "$TMP/answered-$run" > "$TMP/loadgen-$run.log" 2>&1 &
  LG=$!
  # A random moment between 1.5 and 6.5 s into the run.
  sleep "$(awk -v r=$RANDOM 'BEGIN { printf "%.3f", 1.5 + 5 * r / 32768 }')"
  kill_ms=$(now_ms)
  kill -9 "$GW"
  wait "$GW" 2>/dev/null || true
  GW=
  sleep 1.5 # the load generator writes its answered log once a second
  kill -INT "$LG" 2>/dev/null || true
  wait "$LG" 2>/dev/null || true
  LG=
  "$BIN" state export --config "$TMP/gw.toml" > "$TMP/export-$run.jsonl"
  # Users whose registration is stored (default PUI sip:ueN@ims.example.net).
  grep '"type":"registration"' "$TMP/export-$run.jsonl" \
    | sed -n 's/.*"default_pui":"sip:ue\([0-9]*\)@.*/\1/p' | sort -u > "$TMP/stored-$run"
  # Users answered 200 more than commit + margin before the kill.
  awk -v k="$kill_ms" -v c=$((COMMIT_MS + MARGIN_MS)) '$2 < k - c { print $1 }' "$TMP/answered-$run" \
    | sort -u > "$TMP/old-$run"
  answered=$(wc -l < "$TMP/answered-$run")
  old=$(wc -l < "$TMP/old-$run")
  stored=$(wc -l < "$TMP/stored-$run")
  missing=$(comm -23 "$TMP/old-$run" "$TMP/stored-$run" | wc -l)
  # Restart on the crashed store: it must come up with what was stored.
  REGEVENT_GW_LOG=info "$BIN" run --config "$TMP/gw.toml" > "$TMP/gw-$run-restart.log" 2>&1 &
  GW=$!
  ready
  restored=$(grep -o 'registrations=[0-9]*' "$TMP/gw-$run-restart.log" | head -1 | cut -d= -f2 || true)
  kill "$GW"
  wait "$GW" 2>/dev/null || true
  GW=
  echo "run $run: killed at $(( kill_ms - $(head -1 "$TMP/answered-$run" | awk '{ print $2 }') )) ms after the first answer; answered $answered, of which $old more than ${COMMIT_MS}+${MARGIN_MS} ms before the kill; stored $stored; missing $missing; restart restored ${restored:-?} registrations"
  if [ "$missing" -ne 0 ]; then
    echo "kill9-load: run $run lost $missing registrations answered before the last commit window:"
    comm -23 "$TMP/old-$run" "$TMP/stored-$run" | head -5
    failed=1
  fi
  if [ "${restored:-x}" != "$stored" ]; then
    echo "kill9-load: run $run: the restart restored ${restored:-?} registrations, the store held $stored"
    failed=1
  fi
done
[ "$failed" -eq 0 ] || exit 1
echo "kill9-load: ok ($RUNS kills at $RATE/s; no registration answered before the last commit window was lost)"
