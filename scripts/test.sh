#!/usr/bin/env bash
# The test command: everything CI runs. Installs what the tests need (Debian packages via
# apt-get, crates via cargo), then: format, lint, unit + integration tests, benchmarks compiled,
# the real-Prometheus check and the SIPp interop scenarios.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Debian's prometheus package starts a service when it can; we run our own instance.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${need[@]}"
  rm -f /usr/sbin/policy-rc.d
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace --all-features
echo "== cargo bench --no-run"
cargo bench --workspace --no-run >/dev/null
echo "== scripts/container-check.sh"
scripts/container-check.sh

cargo build --release --bin regevent-gw
BIN=target/release/regevent-gw

echo "== the test-only fault hook is not in the release build"
if grep -q "X-Regevent-Test-Fault" "$BIN"; then
  echo "the release binary contains the debug-only fault hook" >&2
  exit 1
fi

echo "== demo smoke + real Prometheus against a gateway with live subscriptions"
UES=30
"$BIN" demo --steady --ues "$UES" --seconds 120 --seed 1 --admin 127.0.0.1:19191 --sip 127.0.0.1:15060 \
  > target/demo-steady.log 2>&1 &
DEMO=$!
trap 'kill $DEMO 2>/dev/null || true' EXIT
sleep 4
ADMIN=127.0.0.1:19191 EXPECT_SUBSCRIPTIONS=$UES REGEVENT_GW_BIN="$BIN" scripts/prometheus-check.sh
"$BIN" subscriptions --admin 127.0.0.1:19191 --limit 5
"$BIN" stats --admin 127.0.0.1:19191 | head -20
kill $DEMO 2>/dev/null || true
trap - EXIT

echo "== scripts/loadgen-smoke.sh"
REGEVENT_GW_BIN="$BIN" scripts/loadgen-smoke.sh

echo "== scripts/kill9-load.sh (kill -9 under load, five times; no committed registration lost)"
MARGIN_MS=25 REGEVENT_GW_BIN="$BIN" scripts/kill9-load.sh 5 10000

if [ -x scripts/interop.sh ]; then
  echo "== scripts/interop.sh"
  scripts/interop.sh
fi
echo "== all checks passed"
