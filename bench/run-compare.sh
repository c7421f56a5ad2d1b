#!/usr/bin/env bash
# Side-by-side CPU comparison: regevent-gw vs Kamailio 5.6 as IMS P-CSCF with reg-event
# subscription, driven by the same SIPp scenarios (bench/sipp/) in the same run.
#
#   bench/run-compare.sh            # 1500 registrations/s for 30 s against each proxy
#   bench/run-compare.sh --smoke    # 100 registrations at 50/s against each (< 30 s)
#   bench/run-compare.sh --rate 800 --seconds 20 --only kamailio-tlsf,regevent-gw
#
# Proxies, run one after the other in this order:
#   kamailio       Kamailio as packaged (default memory manager: qm, built with DBG_SR_MEMORY)
#   kamailio-tlsf  the same with -x tlsf -X tlsf (Kamailio's faster TLSF allocator)
#   regevent-gw    target/release/regevent-gw with its defaults (sip.coalesce = 2ms)
#   regevent-gw-nocoalesce  the same with sip.coalesce = 0s (every datagram handled at once)
#
# Per proxy: start the IMS core stub (SIPp server: registrar + reg-event notifier), start the
# proxy, snapshot the CPU time (utime+stime, /proc/PID/stat) of every process in the proxy's
# process group, run the UE scenario (SIPp client, -r RATE -m RATE*SECONDS, one new user per
# call), wait for the last NOTIFY, snapshot again. Reported: registrations completed/failed,
# SUBSCRIBEs and NOTIFY 200s seen at the stub, SIPp's registration response times, and the
# proxy's CPU-seconds per 1,000 registrations; then the ratio Kamailio / regevent-gw.
#
# Loopback only. Every process started here is killed on exit. Needs: kamailio with
# kamailio-ims-modules, kamailio-presence-modules, kamailio-sqlite-modules; sip-tester (sipp);
# sqlite3 or python3; cargo. --install installs the Debian packages (root) without starting
# services.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RATE=1500
SECS=30
SMOKE=0
ONLY=""
KEEP=0
INSTALL=0
WORKERS=4
OUT=""
# Extra kamailio command-line arguments, e.g. KAMAILIO_EXTRA_ARGS="-x tlsf -X tlsf".
KAMAILIO_EXTRA_ARGS=${KAMAILIO_EXTRA_ARGS:-}

usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) SMOKE=1 ;;
        --rate) RATE=$2; shift ;;
        --seconds) SECS=$2; shift ;;
        --only) ONLY=$2; shift ;;   # comma-separated subset of the proxies
        --keep) KEEP=1 ;;
        --install) INSTALL=1 ;;
        --workers) WORKERS=$2; shift ;;
        --out) OUT=$2; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
if [ "$SMOKE" = 1 ]; then RATE=50; N=100; else N=$((RATE * SECS)); fi
[ "$N" -ge 1 ] && [ "$N" -le 60000 ] || { echo "registrations per run must be 1..60000 (got $N)" >&2; exit 2; }

# ---------------------------------------------------------------------------------------------
# Dependencies
need_pkgs=()
command -v kamailio >/dev/null || need_pkgs+=(kamailio)
[ -e /usr/lib/x86_64-linux-gnu/kamailio/modules/ims_registrar_pcscf.so ] || need_pkgs+=(kamailio-ims-modules)
[ -e /usr/lib/x86_64-linux-gnu/kamailio/modules/pua.so ] || need_pkgs+=(kamailio-presence-modules)
[ -e /usr/lib/x86_64-linux-gnu/kamailio/modules/db_sqlite.so ] || need_pkgs+=(kamailio-sqlite-modules)
command -v sipp >/dev/null || need_pkgs+=(sip-tester)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    if [ "$INSTALL" = 1 ]; then
        # Never start the packaged kamailio service: policy-rc.d 101 while installing.
        made_policy=0
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; made_policy=1
        fi
        apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_pkgs[@]}"
        [ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
    else
        echo "missing Debian packages: ${need_pkgs[*]} (run with --install, as root)" >&2
        exit 2
    fi
fi

# ---------------------------------------------------------------------------------------------
# Work directory, process bookkeeping, cleanup
WORK=$(mktemp -d /tmp/regevent-bench.XXXXXX)
declare -a PGIDS=()     # process groups we started (setsid), killed on exit
cleanup() {
    local rc=$?
    for g in "${PGIDS[@]:-}"; do
        [ -n "$g" ] && kill -TERM -- "-$g" 2>/dev/null || true
    done
    sleep 0.5
    for g in "${PGIDS[@]:-}"; do
        [ -n "$g" ] && kill -KILL -- "-$g" 2>/dev/null || true
    done
    if [ "$KEEP" = 1 ] || [ $rc -ne 0 ]; then echo "work directory kept: $WORK" >&2; else rm -rf "$WORK"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_group DIR LOGNAME CMD...: run CMD in its own session/process group; its pid (= pgid)
# is left in LAST_PID.
LAST_PID=""
start_group() {
    local dir=$1 log=$2; shift 2
    ( cd "$dir" && exec setsid "$@" >"$dir/$log.out" 2>&1 ) &
    LAST_PID=$!
    disown "$LAST_PID"
    PGIDS+=("$LAST_PID")
}
stop_group() {
    local g=$1
    kill -TERM -- "-$g" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 -- "-$g" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL -- "-$g" 2>/dev/null || true
}

# Free loopback ports (UDP; TCP for the admin port).
free_port() {
    python3 - "$1" <<'EOF'
import socket, sys
kind = socket.SOCK_DGRAM if sys.argv[1] == "udp" else socket.SOCK_STREAM
s = socket.socket(socket.AF_INET, kind); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
EOF
}
udp_bound() {  # udp_bound PORT: is something listening on UDP 127.0.0.1:PORT?
    ss -Hlun "sport = :$1" 2>/dev/null | grep -q .
}
wait_udp() {
    for _ in $(seq 1 100); do udp_bound "$1" && return 0; sleep 0.1; done
    echo "nothing listens on udp port $1" >&2; return 1
}

# udp_drops PORT: datagrams dropped (receive buffer full) on the UDP socket(s) bound to PORT.
udp_drops() {
    awk -v p="$(printf '%04X' "$1")" 'NR > 1 { split($2, a, ":"); if (a[2] == p) d += $NF } END { print d + 0 }' /proc/net/udp
}

CLK_TCK=$(getconf CLK_TCK)
# cpu_ticks PGID: "utime stime" summed over every live process of the group (threads included).
cpu_ticks() {
    local g=$1 ut=0 st=0 pid stat rest
    for pid in $(ps -e -o pid=,pgid= | awk -v g="$g" '$2 == g { print $1 }'); do
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        rest=${stat##*) }             # fields from 3 (state) on; comm may contain spaces
        # shellcheck disable=SC2086
        set -- $rest
        # $3 = pgrp (field 5), $12 = utime (14), $13 = stime (15)
        [ "$3" = "$g" ] && { ut=$((ut + ${12})); st=$((st + ${13})); }
    done
    echo "$ut $st"
}
nprocs() { local g=$1; ps -e -o pgid= | awk -v g="$g" '$1==g' | wc -l; }

# csv_last FILE REGEX: value of the first column whose name matches REGEX (anchored) in the
# last line of a ';'-separated SIPp csv.
csv_last() {
    [ -n "$1" ] && [ -f "$1" ] || { echo ""; return 0; }
    awk -F';' -v re="^($2)\$" 'NR==1{for(i=1;i<=NF;i++) if(!c && $i ~ re) c=i; next} {last=$0} END{split(last,a,";"); print (c? a[c] : "")}' "$1"
}

# ---------------------------------------------------------------------------------------------
# Build and shared inputs
echo "== building target/release/regevent-gw" >&2
(cd "$ROOT" && cargo build --release --quiet --bin regevent-gw)
GW_BIN="$ROOT/target/release/regevent-gw"

PROXY_PORT=$(free_port udp); CORE_PORT=$(free_port udp); UE_PORT=$(free_port udp); ADMIN_PORT=$(free_port tcp)
DOMAIN="127.0.0.1:$CORE_PORT"
# One new user per registration; each UE advertises its own loopback address (see the scenario).
awk -v n="$N" -v dom="$DOMAIN" 'BEGIN { print "SEQUENTIAL";
    for (i = 1; i <= n; i++) { h = "127." (1 + int(i / 65536)) "." (int(i / 256) % 256) "." (i % 256);
        printf "ue%d-%s;%s;%s\n", i, h, h, dom } }' > "$WORK/users.csv"

KAM_VER=$( (kamailio -v 2>/dev/null || true) | sed -n 's/^version: //p' | head -1 || true)
SIPP_VER=$( (sipp -v 2>/dev/null || true) | grep -o "SIPp v[^ ]*" | head -1 | tr -d "\r" || true)
GW_VER=$(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo unknown)

# ---------------------------------------------------------------------------------------------
start_kamailio() {
    local dir=$1 db="$1/pua.sqlite" variant_args=$2
    if command -v sqlite3 >/dev/null; then
        sqlite3 "$db" < "$ROOT/bench/kamailio/pua-sqlite.sql"
    else
        python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.executescript(open(sys.argv[2]).read()); c.commit()' \
            "$db" "$ROOT/bench/kamailio/pua-sqlite.sql"
    fi
    start_group "$dir" proxy kamailio -f "$ROOT/bench/kamailio/kamailio-pcscf.cfg" -DD -E -m 512 -M 16 \
        -A "PCSCF_LISTEN=udp:127.0.0.1:$PROXY_PORT" -A "PCSCF_URI=\"sip:127.0.0.1:$PROXY_PORT\"" \
        -A "CORE_URI=\"sip:127.0.0.1:$CORE_PORT\"" -A "PUA_DB_URL=\"sqlite://$db\"" \
        -A "CTL_SOCKET=\"unix:$dir/kamailio.ctl\"" -A "WORKERS=$WORKERS" $variant_args $KAMAILIO_EXTRA_ARGS
}

start_regevent_gw() {
    local dir=$1 coalesce=$2
    mkdir -p "$dir/profiles"
    cat > "$dir/profiles/bench.toml" <<EOF
support_reg_event = true
role = "pcscf"
network = "home"
EOF
    cat > "$dir/gateway.toml" <<EOF
[sip]
listen = ["udp:127.0.0.1:$PROXY_PORT"]
identity = "sip:127.0.0.1:$PROXY_PORT"
core = "sip:127.0.0.1:$CORE_PORT"
p_asserted_identity = "sip:127.0.0.1:$PROXY_PORT"
$coalesce

[admin]
listen = "127.0.0.1:$ADMIN_PORT"

[subscription]
max_subscribe_rate = 100000

# Tables sized for the run at start, as Kamailio's hash_size (2^14 slots) is in its config.
[limits]
expected_registrations = $N

[profiles]
dir = "profiles"

[[trunk_group]]
name = "bench"
profile = "bench"
EOF
    # Log level warn, as Kamailio runs with debug=0 (warnings and errors only).
    REGEVENT_GW_LOG=${REGEVENT_GW_LOG:-warn} start_group "$dir" proxy "$GW_BIN" run --config "$dir/gateway.toml"
}

declare -A R  # results: R[name.key]

run_one() {
    local name=$1 dir="$WORK/$1"
    mkdir -p "$dir"
    echo "== $name: $N registrations at $RATE/s" >&2
    local core ue proxy
    start_group "$dir" core sipp -sf "$ROOT/bench/sipp/core_stub.xml" -i 127.0.0.1 -p "$CORE_PORT" -t u1 \
        -nostdin -trace_counts -fd 1 -trace_err -max_recv_loops 10000
    core=$LAST_PID
    wait_udp "$CORE_PORT"
    case $name in
        kamailio) start_kamailio "$dir" "" ;;
        kamailio-tlsf) start_kamailio "$dir" "-x tlsf -X tlsf" ;;
        regevent-gw) start_regevent_gw "$dir" "" ;;
        regevent-gw-nocoalesce) start_regevent_gw "$dir" 'coalesce = "0s"' ;;
    esac
    proxy=$LAST_PID
    wait_udp "$PROXY_PORT" || { tail -20 "$dir/proxy.out" >&2; return 1; }
    sleep 1.5   # let every worker process finish its start-up
    R[$name.procs]=$(nprocs "$proxy")
    local t0 c0 c1 t1 u0 s0 u1 s1
    c0=$(cpu_ticks "$proxy"); t0=$(date +%s.%N)
    # The UE side. -recv_timeout bounds a lost call; -timeout bounds the whole run.
    local tmo=$(( N / RATE + 60 ))
    (cd "$dir" && sipp "127.0.0.1:$PROXY_PORT" -sf "$ROOT/bench/sipp/ue_register_once.xml" -inf "$WORK/users.csv" \
        -i 127.0.0.1 -p "$UE_PORT" -t un -max_socket 10000 -r "$RATE" -rp 1000 -m "$N" -nostdin \
        -recv_timeout 10000 -timeout "${tmo}s" -max_recv_loops 10000 \
        -trace_stat -stf ue_stat.csv -fd 1 -trace_rtt -rtt_freq 100 -trace_err \
        >"$dir/ue.out" 2>&1) && R[$name.ue_rc]=0 || R[$name.ue_rc]=$?
    local t_ue
    t_ue=$(date +%s.%N)
    # Wait for the last NOTIFY transaction (200 to the NOTIFY seen at the stub), at most 10 s.
    local counts subs notif
    for _ in $(seq 1 50); do
        counts=$(ls "$dir"/core_stub_*_counts.csv 2>/dev/null | head -1 || true)
        if [ -n "$counts" ]; then
            subs=$(csv_last "$counts" '[0-9]+_SUBSCRIBE_Recv'); notif=$(csv_last "$counts" '[0-9]+_200_Recv')
            [ -n "$subs" ] && [ "$subs" -ge "$N" ] && [ "$notif" -ge "$subs" ] && break
        fi
        sleep 0.2
    done
    sleep 1.2   # one more counts dump of the stub (every 1 s)
    c1=$(cpu_ticks "$proxy"); t1=$(date +%s.%N)
    # Sockets are new for each run, so their drop counters start at 0.
    R[$name.drops]="$(udp_drops "$PROXY_PORT") / $(udp_drops "$CORE_PORT")"
    if [ "${name#regevent-gw}" != "$name" ]; then
        curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" > "$dir/metrics.txt" 2>/dev/null || true
    fi
    R[$name.procs]="${R[$name.procs]}/$(nprocs "$proxy")"
    stop_group "$proxy"
    sleep 1.1
    stop_group "$core"

    counts=$(ls "$dir"/core_stub_*_counts.csv 2>/dev/null | head -1 || true)
    R[$name.core_reg]=$(csv_last "$counts" '[0-9]+_REGISTER_Recv')
    R[$name.core_sub]=$(csv_last "$counts" '[0-9]+_SUBSCRIBE_Recv')
    R[$name.core_sub_retrans]=$(csv_last "$counts" '[0-9]+_SUBSCRIBE_Retrans')
    R[$name.core_notify_ok]=$(csv_last "$counts" '[0-9]+_200_Recv')
    R[$name.core_notify_retrans]=$(csv_last "$counts" '[0-9]+_NOTIFY_Retrans')
    R[$name.core_notify_timeout]=$(csv_last "$counts" '[0-9]+_NOTIFY_Timeout')
    R[$name.core_notify_unexp]=$(csv_last "$counts" '[0-9]+_200_Unexp')
    local stat="$dir/ue_stat.csv"
    R[$name.ok]=$(csv_last "$stat" 'SuccessfulCall\\(C\\)')
    R[$name.failed]=$(csv_last "$stat" 'FailedCall\\(C\\)')
    R[$name.retrans]=$(csv_last "$stat" 'Retransmissions\\(C\\)')
    R[$name.achieved_rate]=$(csv_last "$stat" 'CallRate\\(C\\)')
    # Response times (ms) of REGISTER -> 200 OK, every sample.
    local rtt
    rtt=$(ls "$dir"/ue_register_once_*_rtt.csv 2>/dev/null | head -1 || true)
    if [ -n "$rtt" ]; then
        local pct p50 p90 p99 pmax pn
        pct=$(awk -F';' 'NR > 1 && $2 != "" { print $2 }' "$rtt" | sort -g | awk '
            function q(p,  i) { i = int(NR * p); if (i < 1) i = 1; return v[i] }
            { v[NR] = $1 }
            END { if (NR == 0) print "- - - - 0"; else printf "%.2f %.2f %.2f %.2f %d\n", q(0.50), q(0.90), q(0.99), v[NR], NR }')
        read -r p50 p90 p99 pmax pn <<<"$pct"
        R[$name.p50]=$p50; R[$name.p90]=$p90; R[$name.p99]=$p99; R[$name.max]=$pmax; R[$name.rtt_n]=$pn
    else
        R[$name.p50]=-; R[$name.p90]=-; R[$name.p99]=-; R[$name.max]=-
    fi
    read -r u0 s0 <<<"$c0"; read -r u1 s1 <<<"$c1"
    R[$name.cpu]=$(awk -v a="$((u0 + s0))" -v b="$((u1 + s1))" -v t="$CLK_TCK" 'BEGIN{printf "%.2f", (b-a)/t}')
    R[$name.cpu_split]=$(awk -v u="$((u1 - u0))" -v s="$((s1 - s0))" -v t="$CLK_TCK" 'BEGIN{printf "%.2f / %.2f", u/t, s/t}')
    R[$name.wall]=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')
    R[$name.ue_wall]=$(awk -v a="$t0" -v b="$t_ue" 'BEGIN{printf "%.1f", b-a}')
    R[$name.cpu_per_k]=$(awk -v c="${R[$name.cpu]}" -v n="${R[$name.ok]:-0}" 'BEGIN{ if (n>0) printf "%.3f", c*1000/n; else print "-" }')
    R[$name.cores]=$(awk -v c="${R[$name.cpu]}" -v w="${R[$name.ue_wall]}" 'BEGIN{ if (w>0) printf "%.2f", c/w; else print "-" }')
    echo "   $name: ok=${R[$name.ok]} failed=${R[$name.failed]} SUBSCRIBEs=${R[$name.core_sub]} NOTIFY-200=${R[$name.core_notify_ok]} cpu=${R[$name.cpu]}s" >&2
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
PROXIES=(kamailio kamailio-tlsf regevent-gw regevent-gw-nocoalesce)
[ -n "$ONLY" ] && IFS=, read -r -a PROXIES <<<"$ONLY"
for p in "${PROXIES[@]}"; do
    case $p in kamailio|kamailio-tlsf|regevent-gw|regevent-gw-nocoalesce) ;; *) echo "unknown proxy: $p" >&2; exit 2 ;; esac
done
for p in "${PROXIES[@]}"; do run_one "$p"; done

# ---------------------------------------------------------------------------------------------
report() {
    echo "# regevent-gw vs Kamailio P-CSCF: $N registrations at $RATE/s (UDP, loopback), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "# machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); kernel $(uname -r)"
    echo "# load average before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine shows here)"
    echo "# kamailio $KAM_VER ($WORKERS UDP workers${KAMAILIO_EXTRA_ARGS:+, args: $KAMAILIO_EXTRA_ARGS}); regevent-gw $GW_VER; $SIPP_VER"
    echo
    printf '| %-42s |' "metric"; for p in "${PROXIES[@]}"; do printf ' %14s |' "$p"; done; echo
    printf '|%s|' "$(printf -- '-%.0s' $(seq 1 44))"; for p in "${PROXIES[@]}"; do printf '%s|' "$(printf -- '-%.0s' $(seq 1 16))"; done; echo
    row() { local label=$1 key=$2; printf '| %-42s |' "$label"; for p in "${PROXIES[@]}"; do printf ' %14s |' "${R[$p.$key]:--}"; done; echo; }
    row "registrations completed (200 OK at UE)" ok
    row "registrations failed" failed
    row "UE retransmissions" retrans
    row "REGISTERs at core stub" core_reg
    row "SUBSCRIBEs at notifier stub" core_sub
    row "  of which retransmissions" core_sub_retrans
    row "NOTIFYs answered 200" core_notify_ok
    row "NOTIFY retransmissions by stub" core_notify_retrans
    row "UDP drops, full rcvbuf: proxy / stub" drops
    row "REGISTER->200 p50 (ms)" p50
    row "REGISTER->200 p90 (ms)" p90
    row "REGISTER->200 p99 (ms)" p99
    row "REGISTER->200 max (ms)" max
    row "UE phase wall time (s)" ue_wall
    row "proxy processes (start/end)" procs
    row "proxy CPU time (s, utime+stime)" cpu
    row "  user / system (s)" cpu_split
    row "proxy CPU, cores busy during UE phase" cores
    row "proxy CPU-seconds per 1,000 registrations" cpu_per_k
    echo
    local p k gw g
    for gw in regevent-gw regevent-gw-nocoalesce; do
        g=${R[$gw.cpu_per_k]:-}
        for p in kamailio kamailio-tlsf; do
            k=${R[$p.cpu_per_k]:-}
            [ -n "$k" ] && [ -n "$g" ] || continue
            awk -v k="$k" -v g="$g" -v p="$p" -v gw="$gw" 'BEGIN { if (k+0 > 0 && g+0 > 0) printf "CPU per registration, %s / %s = %.2f (same run)\n", p, gw, k/g; else printf "%s / %s: n/a\n", p, gw }'
        done
    done
}
report | tee "$WORK/report.md"
[ -n "$OUT" ] && cp "$WORK/report.md" "$OUT"
exit 0
