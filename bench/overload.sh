#!/usr/bin/env bash
# Overload figures (SPEC §11, docs/performance.md "Overload"): for each offered rate, a fresh
# gateway (the configuration of bench/loadgen-ab.sh) and `regevent-gw loadgen --rate RATE
# --seconds 10`; /metrics is read every second meanwhile. Prints per run: sustained goodput,
# final responses never seen, 503s, REGISTER retransmissions, p99 REGISTER→final response, the
# gateway's largest RSS, and how many seconds after the offer stopped (t = 10 s) the gateway was
# out of overload (`regevent_overload_active` 0) — `-` if still in it when the run ended.
#
#   bench/overload.sh BINARY [RATE ...]          (default rates: 15000 45000)
#
# BIN_B=OTHER_BINARY runs every rate with it too (e.g. a build from before overload control),
# interleaved; GW_EXTRA adds lines to the gateway's main file (e.g. "[overload]\nenabled = false").
# OUT_DIR=DIR keeps each run's full load generator report there.
# Ports: SIP 5060, core 5070, admin 29464 (loopback). Not a test: figures, as measured.
set -euo pipefail
cd "$(dirname "$0")/.."
A=${1:?usage: bench/overload.sh BINARY [RATE ...]}
shift
RATES=${*:-15000 45000}
SECONDS_=10
TMP=$(mktemp -d)
GW=
cleanup() { [ -n "$GW" ] && kill "$GW" 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
. scripts/gateway-config.sh
write_gateway_config "$TMP" 5060 5070 29464 1000000 "[state]
backend = \"none\"
$(printf '%b' "${GW_EXTRA:-}")"

metric() { # metric NAME: the value of an unlabelled series, or 0
  curl -s --max-time 1 http://127.0.0.1:29464/metrics 2>/dev/null |
    awk -v m="$1" '$1 == m { print $2; found = 1; exit } END { if (!found) print 0 }'
}

run() { # run LABEL BINARY RATE
  local label=$1 bin=$2 rate=$3 out="$TMP/out" active="$TMP/active"
  (cd "$TMP" && exec env REGEVENT_GW_LOG=warn "$bin" run --config "$TMP/gw.toml") > "$TMP/gw.log" 2>&1 &
  GW=$!
  sleep 1.5
  "$A" loadgen --rate "$rate" --seconds "$SECONDS_" --gateway-pid "$GW" > "$out" 2>&1 &
  local lg=$! t=0
  : > "$active"
  while kill -0 "$lg" 2>/dev/null; do
    sleep 1
    t=$((t + 1))
    echo "$t $(metric regevent_overload_active)" >> "$active"
  done
  wait "$lg" || true
  kill "$GW" 2>/dev/null || true
  wait "$GW" 2>/dev/null || true
  GW=
  local sustained never rejected retx p99 rss back
  sustained=$(awk '/^sustained:/ { print $2; exit }' "$out")
  never=$(awk '/^failures:/ { print $6; exit }' "$out")
  rejected=$(awk '/^overload:/ { print $2; exit }' "$out")
  retx=$(awk '/^retransmitted:/ { print $4; exit }' "$out" | tr -d '(')
  p99=$(awk '/^latency:/ { for (i = 1; i <= NF; i++) if ($i == "p99") { print $(i + 1); exit } }' "$out")
  rss=$(grep -o 'gw_rss=[0-9.]*' "$out" | cut -d= -f2 | sort -g | tail -1)
  # The first second from t = 10 s on at which the gateway was out of overload.
  back=$(awk -v s="$SECONDS_" '$1 >= s && $2 == 0 { print $1 - s; exit }' "$active")
  printf '%-3s %-7s %-10s %-7s %-9s %-8s %-12s %-9s %s\n' "$label" "$rate" "${sustained:-?}" \
    "${never:-?}" "${rejected:-0}" "${retx:-?}%" "${p99:-?}" "${rss:-?}" "${back:--}"
  if [ -n "${OUT_DIR:-}" ]; then mkdir -p "$OUT_DIR" && cp "$out" "$OUT_DIR/overload-$label-$rate.txt"; fi
}

printf '%-3s %-7s %-10s %-7s %-9s %-8s %-12s %-9s %s\n' bin offered "goodput/s" never 503s retx \
  "p99 final µs" "RSS MiB" "clean after (s)"
for rate in $RATES; do
  run A "$A" "$rate"
  if [ -n "${BIN_B:-}" ]; then run B "$BIN_B" "$rate"; fi
done
