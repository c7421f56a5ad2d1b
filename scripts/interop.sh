#!/usr/bin/env bash
# Interoperability scenarios: the real gateway binary between SIPp UEs and SIPp IMS-core peers,
# on loopback only. Every scenario starts a fresh gateway (so its counters start at zero), runs
# SIPp bounded in calls (-m) and time (timeout), and passes only when every SIPp instance exits 0
# AND the gateway's /api/stats counters say what the scenario implies.
#
#   scripts/interop.sh                 # all scenarios
#   scripts/interop.sh udp 403         # only those whose name contains one of the words
#
# Environment: REGEVENT_GW_BIN (default target/release/regevent-gw, built when missing),
# INTEROP_UES (UEs per scenario, default 20, at most 100 = tests/sipp/users.csv),
# INTEROP_RATE (new UEs per second, default 20), INTEROP_KEEP=1 keeps the work directory
# (gateway logs, SIPp -trace_msg/-trace_err files) even when everything passed.
# See tests/sipp/README.md for what each scenario does and how to run the pieces by hand.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SIPP_DIR=$ROOT/tests/sipp
N=${INTEROP_UES:-20}
RATE=${INTEROP_RATE:-20}
# UE pause between register, re-register and deregister (ms): the notifier grants 6 s, so the
# gateway refreshes 3 s after the SUBSCRIBE, between the re-register (2.5 s) and the
# deregistration (5 s).
PAUSE_MS=2500

if ! command -v sipp >/dev/null 2>&1; then
  echo "== installing sip-tester (sipp)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends sip-tester || {
    echo "interop: cannot install sip-tester" >&2
    exit 1
  }
fi
for tool in curl python3 timeout; do
  command -v "$tool" >/dev/null 2>&1 || { echo "interop: $tool is required" >&2; exit 1; }
done

if [ -n "${REGEVENT_GW_BIN:-}" ]; then
  BIN=$REGEVENT_GW_BIN
else
  BIN=$ROOT/target/release/regevent-gw
  if [ ! -x "$BIN" ]; then
    echo "== cargo build --release --bin regevent-gw"
    cargo build --release --bin regevent-gw || exit 1
  fi
fi
[ -x "$BIN" ] || { echo "interop: no gateway binary at $BIN" >&2; exit 1; }
if [ "$N" -gt 100 ] || [ "$N" -lt 1 ]; then
  echo "interop: INTEROP_UES must be 1..100 (tests/sipp/users.csv)" >&2
  exit 1
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/regevent-interop.XXXXXX")
# The SIP address of every peer (SIPp's -i) and as written in URIs: IPv4 loopback, or ::1 and
# [::1] for the IPv6 scenario (use_ipv6).
SIP_IP=127.0.0.1
SIP_HOST=127.0.0.1
SOURCES='"127.0.0.0/8"'
use_ipv6() { SIP_IP=::1; SIP_HOST='[::1]'; SOURCES='"::1/128"'; }
use_ipv4() { SIP_IP=127.0.0.1; SIP_HOST=127.0.0.1; SOURCES='"127.0.0.0/8"'; }
PIDS=()
FAILED=()
PASSED=()

cleanup() {
  local p
  for p in "${PIDS[@]}"; do
    kill "$p" 2>/dev/null || true
  done
  for p in "${PIDS[@]}"; do
    wait "$p" 2>/dev/null || true
  done
  if [ ${#FAILED[@]} -eq 0 ] && [ "${INTEROP_KEEP:-0}" != 1 ] && [ -z "${INTERRUPTED:-}" ]; then
    rm -rf "$WORK"
  else
    echo "interop: logs kept in $WORK"
  fi
}
trap cleanup EXIT
trap 'INTERRUPTED=1; echo "interop: interrupted" >&2; exit 130' INT TERM

# N distinct loopback ports free for both UDP and TCP (the kernel picks them; they are closed
# again before use, so a clash is possible but unlikely).
free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
n = int(sys.argv[1]); ports = []; held = []
while len(ports) < n:
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.bind(("127.0.0.1", 0)); p = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p))
    except OSError:
        t.close(); continue
    held += [t, u]; ports.append(p)
print(" ".join(map(str, ports)))
PY
}

# start_gateway DIR SIP_PORT ADMIN_PORT CORE_PORT T1 [CORE_URI_PARAMS]: writes DIR/gateway.toml,
# starts the gateway, waits for /readyz. Sets GW_PID.
start_gateway() {
  local dir=$1 sip=$2 admin=$3 core=$4 t1=$5 core_params=${6:-}
  mkdir -p "$dir/profiles"
  cat >"$dir/profiles/interop.toml" <<EOF
support_reg_event = true
role = "pcscf"
network = "home"
EOF
  cat >"$dir/gateway.toml" <<EOF
[sip]
listen = ["udp:$SIP_HOST:$sip", "tcp:$SIP_HOST:$sip"]
identity = "sip:$SIP_HOST:$sip"
core = "sip:$SIP_HOST:$core$core_params"
t1 = "$t1"
t2 = "4s"

[admin]
listen = "127.0.0.1:$admin"

[profiles]
dir = "profiles"

[[trunk_group]]
name = "access"
profile = "interop"
sources = [$SOURCES]
EOF
  REGEVENT_GW_LOG=${REGEVENT_GW_LOG:-info} "$BIN" run --config "$dir/gateway.toml" >"$dir/gateway.log" 2>&1 &
  GW_PID=$!
  PIDS+=("$GW_PID")
  local i
  for i in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$admin/readyz" >/dev/null 2>&1; then
      return 0
    fi
    if ! kill -0 "$GW_PID" 2>/dev/null; then
      echo "   gateway exited at start-up:" >&2
      sed 's/^/   | /' "$dir/gateway.log" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "   gateway not ready after 10 s" >&2
  return 1
}

stop_gateway() {
  kill "$GW_PID" 2>/dev/null || true
  wait "$GW_PID" 2>/dev/null || true
}

# sipp_bg DIR NAME SCENARIO ARGS...: a SIPp peer in the background (server side). Sets BG_PID.
sipp_bg() {
  local dir=$1 name=$2 sf=$3
  shift 3
  (cd "$dir" && exec timeout 60 sipp -sf "$SIPP_DIR/$sf" -i "$SIP_IP" -nostdin \
    -trace_msg -message_file "$name.msg.log" -trace_err -error_file "$name.err.log" \
    -timeout 50s -timeout_error -recv_timeout 20s "$@" >"$name.out" 2>&1) &
  BG_PID=$!
  PIDS+=("$BG_PID")
}

# sipp_ue DIR TRANSPORT(u1|t1) UE_PORT GW_PORT: the UEs; returns SIPp's exit code. Run as a
# background job and waited for, so that a signal to this script is handled at once.
sipp_ue() {
  local dir=$1 t=$2 port=$3 gw=$4
  (cd "$dir" && exec timeout 60 sipp -sf "$SIPP_DIR/ue_register.xml" -inf "$SIPP_DIR/users.csv" \
    -i "$SIP_IP" -p "$port" -t "$t" -m "$N" -r "$RATE" -d "$PAUSE_MS" -nostdin \
    -trace_msg -message_file ue.msg.log -trace_err -error_file ue.err.log \
    -timeout 50s -timeout_error -recv_timeout 10s "$SIP_HOST:$gw" >ue.out 2>&1) &
  PIDS+=("$!")
  wait_rc "$!"
  return "$WAIT_RC"
}

# wait_rc PID: exit code of a background job, in WAIT_RC (not through $(...): a subshell
# cannot wait for its parent's jobs).
wait_rc() {
  WAIT_RC=0
  wait "$1" || WAIT_RC=$?
}

# check_stats DIR ADMIN_PORT ASSERTION...: fetch /api/stats and check each assertion
# `name{label=value,...} OP number` (OP one of == >= <=; the sum over every series whose labels
# include the given ones). Prints one line per assertion; returns 1 if any fails.
check_stats() {
  local dir=$1 admin=$2
  shift 2
  curl -fsS "http://127.0.0.1:$admin/api/stats" >"$dir/stats.json" || {
    echo "   cannot fetch /api/stats" >&2
    return 1
  }
  python3 - "$dir/stats.json" "$@" <<'PY'
import json, re, sys
stats = json.load(open(sys.argv[1]))
series = {}
for kind in ("counters", "gauges"):
    for name, rows in stats.get(kind, {}).items():
        series.setdefault(name, []).extend(rows)
ok = True
for a in sys.argv[2:]:
    m = re.fullmatch(r"\s*([a-z_]+)(?:\{([^}]*)\})?\s*(==|>=|<=)\s*([0-9.]+)\s*", a)
    if not m:
        print(f"   bad assertion: {a}"); ok = False; continue
    name, labels, op, want = m.group(1), m.group(2) or "", m.group(3), float(m.group(4))
    sel = dict(kv.split("=", 1) for kv in labels.split(",") if kv)
    got = sum(r["value"] for r in series.get(name, [])
              if all(r.get("labels", {}).get(k) == v for k, v in sel.items()))
    good = {"==": got == want, ">=": got >= want, "<=": got <= want}[op]
    ok &= good
    print(f"   {'ok  ' if good else 'FAIL'} {name}{{{labels}}} = {got:g} (want {op} {want:g})")
sys.exit(0 if ok else 1)
PY
}

# ---------------------------------------------------------------------------------------------
# Scenarios. Each prints its result; failures are collected.

# Full flow: UEs (UDP or TCP) -> gateway -> one SIPp instance that is registrar and notifier
# (over UDP, or over TCP: the gateway connects to it, and the Service-Route says transport=TCP).
case_accept() {
  local name=$1 t=$2 core_t=${3:-u1}
  local dir=$WORK/$name params=
  mkdir -p "$dir"
  [ "$core_t" = t1 ] && params=";transport=tcp"
  read -r GW ADMIN CORE UE <<<"$(free_ports 4)"
  start_gateway "$dir" "$GW" "$ADMIN" "$CORE" 500ms "$params" || return 1
  sipp_bg "$dir" core core_registrar_notifier.xml -p "$CORE" -t "$core_t" -m $((2 * N))
  local core_pid=$BG_PID ue_rc core_rc ok=0
  sipp_ue "$dir" "$t" "$UE" "$GW"
  ue_rc=$?
  wait_rc "$core_pid"
  core_rc=$WAIT_RC
  echo "   sipp ue exit=$ue_rc core (registrar+notifier) exit=$core_rc"
  [ "$ue_rc" = 0 ] && [ "$core_rc" = 0 ] || ok=1
  sleep 1.2 # gauges are refreshed every second
  check_stats "$dir" "$ADMIN" \
    "regevent_registration_events_total{event=initial}==$N" \
    "regevent_subscribes_sent_total{kind=initial}==$N" \
    "regevent_subscribe_responses_total{class=2xx,kind=initial}==$N" \
    "regevent_notifies_total{outcome=accepted}>=$((2 * N))" \
    "regevent_registration_actions_total{action=add_pui}==$N" \
    "regevent_subscribes_sent_total{kind=refresh}>=$N" \
    "regevent_subscribe_responses_total{class=2xx,kind=refresh}>=$N" \
    "regevent_subscribes_sent_total{kind=unsubscribe}==$N" \
    "regevent_subscribe_responses_total{class=2xx,kind=unsubscribe}==$N" \
    "regevent_subscription_removals_total{reason=user_deregistration}==$N" \
    "regevent_subscription_removals_total==$N" \
    "regevent_notifies_total{outcome=terminated}==$N" \
    "regevent_notifies_total{outcome=malformed}==0" \
    "regevent_subscribe_timeouts_total==0" \
    "regevent_subscriptions==0" \
    "regevent_registrations==0" || ok=1
  stop_gateway
  return $ok
}

# split_core NAME NOTIFIER_XML NOTIFIER_CALLS T1: UEs over UDP -> gateway -> a registrar SIPp
# (core_registrar.xml) whose Service-Route names a separate notifier SIPp. Checks the SIPp exit
# codes; leaves the gateway running for check_stats (DIR, ADMIN); returns 1 on a SIPp failure.
split_core() {
  local name=$1 notifier=$2 calls=$3 t1=$4
  DIR=$WORK/$name
  mkdir -p "$DIR"
  read -r GW ADMIN CORE SCSCF UE <<<"$(free_ports 5)"
  start_gateway "$DIR" "$GW" "$ADMIN" "$CORE" "$t1" || return 1
  sipp_bg "$DIR" registrar core_registrar.xml -p "$CORE" -t u1 -m "$N" -key scscf "127.0.0.1:$SCSCF"
  local reg_pid=$BG_PID
  sipp_bg "$DIR" notifier "$notifier" -p "$SCSCF" -t u1 -m "$calls"
  local not_pid=$BG_PID ue_rc reg_rc not_rc
  sipp_ue "$DIR" u1 "$UE" "$GW"
  ue_rc=$?
  wait_rc "$reg_pid"
  reg_rc=$WAIT_RC
  wait_rc "$not_pid"
  not_rc=$WAIT_RC
  echo "   sipp ue exit=$ue_rc registrar exit=$reg_rc notifier ($notifier) exit=$not_rc"
  sleep 1.2 # gauges are refreshed every second
  [ "$ue_rc" = 0 ] && [ "$reg_rc" = 0 ] && [ "$not_rc" = 0 ]
}

# Error injection: every SUBSCRIBE refused with 403 -> removed at once, never retried.
case_403() {
  local ok=0
  split_core notifier-403 notifier_403.xml "$N" 500ms || ok=1
  check_stats "$DIR" "$ADMIN" \
    "regevent_registration_events_total{event=initial}==$N" \
    "regevent_subscribes_sent_total{kind=initial}==$N" \
    "regevent_subscribe_responses_total{class=4xx,kind=initial}==$N" \
    "regevent_subscribe_timeouts_total==0" \
    "regevent_subscription_removals_total{reason=error_response}==$N" \
    "regevent_subscription_removals_total==$N" \
    "regevent_subscribes_sent_total{kind=refresh}==0" \
    "regevent_subscribes_sent_total{kind=unsubscribe}==0" \
    "regevent_notifies_total==0" \
    "regevent_subscriptions==0" \
    "regevent_registrations==0" || ok=1
  stop_gateway
  return $ok
}

# Error injection: SUBSCRIBE never answered; t1 = 50ms -> Timer F after 3.2 s -> removed.
case_silent() {
  local ok=0
  split_core notifier-silent notifier_silent.xml "$N" 50ms || ok=1
  check_stats "$DIR" "$ADMIN" \
    "regevent_registration_events_total{event=initial}==$N" \
    "regevent_subscribes_sent_total{kind=initial}==$N" \
    "regevent_subscribe_timeouts_total{kind=initial}==$N" \
    "regevent_subscribe_responses_total==0" \
    "regevent_subscription_removals_total{reason=timeout}==$N" \
    "regevent_subscription_removals_total==$N" \
    "regevent_subscribes_sent_total{kind=refresh}==0" \
    "regevent_subscribes_sent_total{kind=unsubscribe}==0" \
    "regevent_notifies_total==0" \
    "regevent_subscriptions==0" \
    "regevent_registrations==0" || ok=1
  stop_gateway
  return $ok
}

# Network-initiated deregistration: the notifier terminates the registration and the
# subscription ~1 s after subscribing; the UE's re-registration at 2.5 s is an initial one again
# (second subscription, deregistered the same way); its deregistration at 5 s finds nothing.
case_netdereg() {
  local ok=0 n2=$((2 * N))
  split_core network-dereg notifier_netdereg.xml "$n2" 500ms || ok=1
  check_stats "$DIR" "$ADMIN" \
    "regevent_registration_events_total{event=initial}==$n2" \
    "regevent_registration_events_total{event=network_deregistration}==$n2" \
    "regevent_registration_actions_total{action=network_deregistration}==$n2" \
    "regevent_subscribes_sent_total{kind=initial}==$n2" \
    "regevent_notifies_total{outcome=accepted}==$n2" \
    "regevent_notifies_total{outcome=terminated}==$n2" \
    "regevent_subscription_removals_total{reason=notify_terminated}==$n2" \
    "regevent_subscription_removals_total==$n2" \
    "regevent_subscribes_sent_total{kind=unsubscribe}==0" \
    "regevent_subscribes_sent_total{kind=refresh}==0" \
    "regevent_subscriptions==0" \
    "regevent_registrations==0" || ok=1
  stop_gateway
  return $ok
}

# The notifier's first NOTIFY arrives before its 200 OK and establishes the dialog; the
# unsubscribe must use it.
case_notify_first() {
  local ok=0
  split_core notify-before-200 notifier_notify_first.xml "$N" 500ms || ok=1
  check_stats "$DIR" "$ADMIN" \
    "regevent_subscribes_sent_total{kind=initial}==$N" \
    "regevent_notify_tolerances_total{kind=notify_before_2xx}==$N" \
    "regevent_notifies_total{outcome=accepted}==$N" \
    "regevent_subscribe_responses_total{class=2xx,kind=initial}==$N" \
    "regevent_subscribes_sent_total{kind=unsubscribe}==$N" \
    "regevent_notifies_total{outcome=terminated}==$N" \
    "regevent_subscription_removals_total{reason=user_deregistration}==$N" \
    "regevent_subscription_removals_total==$N" \
    "regevent_subscribe_timeouts_total==0" \
    "regevent_subscriptions==0" \
    "regevent_registrations==0" || ok=1
  stop_gateway
  return $ok
}

run() {
  local name=$1
  shift
  if [ ${#FILTER[@]} -gt 0 ]; then
    local f hit=0
    for f in "${FILTER[@]}"; do
      case $name in *"$f"*) hit=1 ;; esac
    done
    [ $hit = 1 ] || return 0
  fi
  echo "== interop: $name ($N UEs)"
  local t0=$SECONDS
  if "$@"; then
    PASSED+=("$name")
    echo "PASS $name ($((SECONDS - t0)) s)"
  else
    FAILED+=("$name")
    echo "FAIL $name ($((SECONDS - t0)) s) — logs in $WORK/$name"
  fi
}

FILTER=("$@")
echo "interop: gateway $BIN, $(sipp -v 2>&1 | grep -o 'SIPp v[^ ]*' | head -1), work dir $WORK"
run ue-udp-accept case_accept ue-udp-accept u1
run ue-tcp-accept case_accept ue-tcp-accept t1
run core-tcp-accept case_accept core-tcp-accept u1 t1
# The full flow over IPv6 (issue 20): UEs, gateway and core on [::1].
case_accept_ipv6() {
  use_ipv6
  local rc=0
  case_accept ue-udp-ipv6-accept u1 || rc=1
  use_ipv4
  return $rc
}
run ue-udp-ipv6-accept case_accept_ipv6
run notifier-403 case_403
run notifier-silent case_silent
run network-dereg case_netdereg
run notify-before-200 case_notify_first

echo "interop: ${#PASSED[@]} passed, ${#FAILED[@]} failed${FAILED[*]:+ (${FAILED[*]})}"
[ ${#FAILED[@]} -eq 0 ]
