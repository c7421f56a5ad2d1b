#!/usr/bin/env bash
# Smoke run of the load generator against a real gateway process (a few seconds, small rate):
# proves `regevent-gw loadgen` works end to end: with UDP UEs, with TCP UEs, and with TCP UEs
# and the gateway's core link on TCP too (each against a fresh gateway, so every run starts
# with no registrations). Timings are reported, never asserted.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${REGEVENT_GW_BIN:-target/release/regevent-gw}
TMP=$(mktemp -d)
GW=
cleanup() { [ -n "$GW" ] && kill "$GW" 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
mkdir -p "$TMP/profiles"
echo 'support_reg_event = true' > "$TMP/profiles/default.toml"
cat > "$TMP/gw.toml" <<TOML
[sip]
listen = ["udp:127.0.0.1:25060", "tcp:127.0.0.1:25060"]
identity = "sip:127.0.0.1:25060"
core = "sip:127.0.0.1:25070"
[admin]
listen = "127.0.0.1:25090"
[profiles]
dir = "$TMP/profiles"
[[trunk_group]]
name = "default"
profile = "default"
sources = ["127.0.0.0/8"]
TOML

sed 's|^core = .*|core = "sip:127.0.0.1:25070;transport=tcp"|' "$TMP/gw.toml" > "$TMP/gw-tcp-core.toml"

# One run: a fresh gateway with config $2, 600 UEs over $1, every registration completed and
# notified, and $3 messages reaching the core over TCP (REGISTER, SUBSCRIBE and the NOTIFY's
# 200 OK of each user when the core link is TCP). $4, if given, is passed to loadgen.
smoke() {
  local transport=$1 config=$2 core_tcp=$3 extra=${4:-} out="$TMP/out-$1-$(basename "$2")${4:-}"
  # A fresh gateway with fresh state: the embedded store (on by default, under the config's
  # directory) would otherwise restore the previous run's subscriptions for the same users.
  rm -rf "$TMP/data"
  REGEVENT_GW_LOG=warn "$BIN" run --config "$config" > "$TMP/gw-$transport.log" 2>&1 &
  GW=$!
  sleep 1
  timeout 60 "$BIN" loadgen --transport "$transport" --gateway 127.0.0.1:25060 \
    --core 127.0.0.1:25070 --rate 200 --seconds 3 --gateway-pid "$GW" $extra | tee "$out"
  grep -q '^completed:  600 registrations' "$out" || { echo "loadgen smoke ($transport): not all 600 registrations completed"; exit 1; }
  grep -q '600 subscribed+notified' "$out" || { echo "loadgen smoke ($transport): not all 600 subscriptions notified"; exit 1; }
  grep -q '^failures:   0 non-2xx, 0 timeouts, 0 never answered' "$out" || { echo "loadgen smoke ($transport): failures"; exit 1; }
  grep -q "; $core_tcp messages over TCP\$" "$out" || { echo "loadgen smoke ($transport, $config): not $core_tcp messages to the core over TCP"; exit 1; }
  kill "$GW"
  wait "$GW" 2>/dev/null || true
  GW=
}
smoke udp "$TMP/gw.toml" 0
smoke tcp "$TMP/gw.toml" 0
smoke tcp "$TMP/gw-tcp-core.toml" 1800
smoke tcp "$TMP/gw.toml" 0 --connection-per-ue
grep -q '^connections: 600 opened' "$TMP/out-tcp-gw.toml--connection-per-ue" || { echo "loadgen smoke: not 600 connections, one per UE"; exit 1; }
echo "loadgen smoke: ok (udp, tcp, tcp with the core link on tcp, tcp with a connection per UE)"
