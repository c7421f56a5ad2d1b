#!/usr/bin/env bash
# Same-session A/B of two gateway binaries under the load generator: runs A and B alternately
# (A B A B ...), each against a fresh gateway with the config of docs/performance.md ("Load
# generator"), and prints each run's sustained rate, failures and the gateway's CPU per
# registration, then the medians. One run of each is not enough on a shared 2-core VM: the
# machine's speed moves by ±10 % from minute to minute, so compare medians of interleaved runs.
#
#   bench/loadgen-ab.sh OLD_BINARY NEW_BINARY [RUNS] [RATE] [SECONDS]
#
# The load generator of NEW_BINARY drives both (LOADGEN=... to choose another). Extra gateway
# config lines can be given in GW_EXTRA (appended to the main file), and environment overrides
# for one side only in ENV_A / ENV_B, e.g. ENV_B="REGEVENT_GW__STATE__BACKEND=none" to compare
# the same binary with the store off and on.
set -euo pipefail
cd "$(dirname "$0")/.."
A=${1:?usage: bench/loadgen-ab.sh OLD_BINARY NEW_BINARY [RUNS] [RATE] [SECONDS]}
B=${2:?usage: bench/loadgen-ab.sh OLD_BINARY NEW_BINARY [RUNS] [RATE] [SECONDS]}
RUNS=${3:-3}
RATE=${4:-15000}
SECONDS_=${5:-10}
LOADGEN=${LOADGEN:-$B}
TMP=$(mktemp -d)
GW=
cleanup() { [ -n "$GW" ] && kill "$GW" 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
. scripts/gateway-config.sh
write_gateway_config "$TMP" 5060 5070 29464 1000000 "${GW_EXTRA:-}"

# run LABEL BINARY ENV: one fresh gateway (fresh state), one load run; prints
# "LABEL sustained failures us/reg RSS".
run() {
  local label=$1 bin=$2 env=$3 out="$TMP/out"
  rm -rf "$TMP/data"
  (cd "$TMP" && exec env REGEVENT_GW_LOG=warn $env "$bin" run --config "$TMP/gw.toml") > "$TMP/gw.log" 2>&1 &
  GW=$!
  sleep 1.5
  "$LOADGEN" loadgen --rate "$RATE" --seconds "$SECONDS_" --gateway-pid "$GW" > "$out" 2>&1 || true
  kill "$GW" 2>/dev/null || true
  wait "$GW" 2>/dev/null || true
  GW=
  local sustained failures cpu rss
  sustained=$(awk '/^sustained:/ { print $2; exit }' "$out")
  failures=$(awk '/^failures:/ { print $2 + $4 + $6; exit }' "$out")
  cpu=$(grep '^gateway cpu:' "$out" | grep -o '([0-9.]* µs per registration' | tr -d '(' | awk '{ print $1 }')
  rss=$(grep '^gateway cpu:' "$out" | grep -o 'rss [0-9.]* MiB' | awk '{ print $2 }')
  printf '%-4s %-10s %-8s %-14s %s\n' "$label" "${sustained:-?}" "${failures:-?}" "${cpu:-?}" "${rss:-?}"
  cp "$out" "$TMP/$label-$(date +%s%N).txt"
}

printf '%-4s %-10s %-8s %-14s %s\n' bin sustained failures "gateway µs/reg" "RSS MiB"
for i in $(seq 1 "$RUNS"); do
  run A "$A" "${ENV_A:-}"
  run B "$B" "${ENV_B:-}"
done | tee "$TMP/table"
for l in A B; do
  awk -v l="$l" '$1 == l && $4 != "?" { print $4 }' "$TMP/table" | sort -g | awk -v l="$l" '
    { v[NR] = $1 } END { if (NR) { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      printf "%s: median %.1f µs/reg over %d runs (min %.1f, max %.1f)\n", l, m, NR, v[1], v[NR] } }'
done
