#!/usr/bin/env bash
# Checks the deploy/ files against real tools and a running gateway:
#   1. promtool check config deploy/prometheus.yml, promtool check rules deploy/alerts.yml;
#   2. systemd-analyze verify deploy/regevent-gw.service (ExecStart pointed at the built binary);
#   3. against a running gateway admin API at $ADMIN (default 127.0.0.1:9464): starts Prometheus
#      on 127.0.0.1:19090 scraping it every second, then asserts through the query API that
#      regevent_build_info is 1, regevent_subscribes_sent_total exists, and — when
#      $EXPECT_SUBSCRIPTIONS is set — sum(regevent_subscriptions) and
#      count(regevent_subscription_info) equal it; and runs every PromQL expression of
#      deploy/grafana/dashboard.json and every rule of deploy/alerts.yml through the query API.
#
# Installs Debian's prometheus (and systemd, for systemd-analyze) with apt-get only when missing.
# Environment: ADMIN, EXPECT_SUBSCRIPTIONS, PROM_PORT (19090), REGEVENT_GW_BIN (built binary),
#              SKIP_LIVE=1 to stop after the static checks.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
ADMIN=${ADMIN:-127.0.0.1:9464}
PROM_PORT=${PROM_PORT:-19090}
PROM="http://127.0.0.1:${PROM_PORT}"
FAILURES=0

say()  { printf '==> %s\n' "$*"; }
ok()   { printf '    ok: %s\n' "$*"; }
fail() { printf '    FAIL: %s\n' "$*" >&2; FAILURES=$((FAILURES + 1)); }
die()  { printf 'prometheus-check: %s\n' "$*" >&2; exit 1; }

apt_install() {
    # Keep package scripts from starting services (we run Prometheus ourselves).
    local policy=/usr/sbin/policy-rc.d created=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && created=1
    fi
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
    local rc=$?
    [ "$created" = 1 ] && rm -f "$policy"
    return $rc
}

# --- tools -------------------------------------------------------------------------------------
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
    say "installing prometheus (apt-get)"
    apt_install prometheus || die "cannot install the Debian prometheus package"
fi
if ! command -v systemd-analyze >/dev/null; then
    say "installing systemd (apt-get) for systemd-analyze"
    apt_install systemd || say "systemd-analyze unavailable; unit check will be skipped"
fi
command -v curl >/dev/null || apt_install curl || die "curl is required"
command -v python3 >/dev/null || die "python3 is required"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/prometheus-check.XXXXXX")
PROM_PID=
cleanup() {
    if [ -n "$PROM_PID" ] && kill -0 "$PROM_PID" 2>/dev/null; then
        kill "$PROM_PID" 2>/dev/null || true
        wait "$PROM_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# --- static checks -----------------------------------------------------------------------------
say "promtool check config deploy/prometheus.yml"
if promtool check config deploy/prometheus.yml; then ok "config"; else fail "promtool check config"; fi

say "promtool check rules deploy/alerts.yml"
if promtool check rules deploy/alerts.yml; then ok "rules"; else fail "promtool check rules"; fi

say "systemd-analyze verify deploy/regevent-gw.service"
if command -v systemd-analyze >/dev/null; then
    BIN=${REGEVENT_GW_BIN:-$ROOT/target/debug/regevent-gw}
    if [ ! -x "$BIN" ]; then
        say "building $BIN"
        cargo build --quiet --bin regevent-gw || die "cannot build regevent-gw"
    fi
    BIN=$(readlink -f "$BIN")
    mkdir -p "$TMP/unit"
    # Same unit, with ExecStart pointing at the binary we have, so that verify checks it exists
    # and is executable.
    sed "s#/usr/bin/regevent-gw#${BIN}#" deploy/regevent-gw.service > "$TMP/unit/regevent-gw.service"
    # verify exits 0 on unknown keys ("ignoring"); treat those as failures too.
    if out=$(cd "$TMP/unit" && SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no ./regevent-gw.service 2>&1) \
        && ! printf '%s' "$out" | grep -qiE 'unknown (key|section|lvalue)|failed to parse|invalid|ignoring'; then
        ok "unit${out:+ (notes: $(printf '%s' "$out" | tr '\n' ' '))}"
    else
        printf '%s\n' "$out" >&2
        fail "systemd-analyze verify"
    fi
else
    say "skipped: no systemd-analyze"
fi

if [ "${SKIP_LIVE:-0}" = 1 ]; then
    [ "$FAILURES" = 0 ] || die "$FAILURES check(s) failed"
    say "static checks passed (SKIP_LIVE=1)"
    exit 0
fi

# --- live checks -------------------------------------------------------------------------------
say "gateway admin API at $ADMIN"
curl -fsS --max-time 5 "http://$ADMIN/healthz" >/dev/null \
    || die "no gateway admin API answering at http://$ADMIN/healthz (set ADMIN=host:port)"
ok "healthz"

# Scrape config: our targets replaced by $ADMIN, every second; rules beside it.
sed -e "s#127\.0\.0\.1:9464#${ADMIN}#g" \
    -e 's#scrape_interval: .*#scrape_interval: 1s#' \
    -e 's#evaluation_interval: .*#evaluation_interval: 1s#' \
    -e 's#scrape_timeout: .*#scrape_timeout: 1s#' \
    deploy/prometheus.yml > "$TMP/prometheus.yml"
cp deploy/alerts.yml "$TMP/alerts.yml"
promtool check config "$TMP/prometheus.yml" >/dev/null || die "generated config is invalid"

say "starting prometheus on 127.0.0.1:$PROM_PORT"
prometheus --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/data" \
    --web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn \
    >"$TMP/prometheus.log" 2>&1 &
PROM_PID=$!

# jget JSON-PATH-EXPR: evaluates a Python expression over the JSON on stdin bound to `j`.
jget() { python3 -c 'import json,sys; j=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }
# query EXPR: prints the raw JSON answer of an instant query.
query() { curl -sS --max-time 10 --get --data-urlencode "query=$1" "$PROM/api/v1/query"; }

for _ in $(seq 1 60); do
    curl -fsS --max-time 1 "$PROM/-/ready" >/dev/null 2>&1 && break
    kill -0 "$PROM_PID" 2>/dev/null || { cat "$TMP/prometheus.log" >&2; die "prometheus exited"; }
    sleep 0.5
done
curl -fsS --max-time 1 "$PROM/-/ready" >/dev/null || die "prometheus not ready after 30 s"
ok "prometheus ready"

say "waiting for both jobs to be scraped"
up_jobs=0
for _ in $(seq 1 60); do
    up_jobs=$(query 'count(up{job=~"regevent-gw|regevent-gw-subscriptions"} == 1)' \
        | jget 'int(float(j["data"]["result"][0]["value"][1])) if j["data"]["result"] else 0')
    [ "$up_jobs" = 2 ] && break
    sleep 0.5
done
if [ "$up_jobs" != 2 ]; then
    curl -sS "$PROM/api/v1/targets" | jget '"\n".join(t["labels"]["job"] + ": " + t["health"] + " " + t.get("lastError","") for t in j["data"]["activeTargets"])' >&2
    die "targets are not up"
fi
ok "targets up"
# Two more scrapes so that rate() over the dashboards' windows has samples.
sleep 2.5

# expect_value EXPR WANT DESCRIPTION
expect_value() {
    local got
    got=$(query "$1" | jget 'j["data"]["result"][0]["value"][1] if j.get("status")=="success" and j["data"]["result"] else "none"')
    if [ "$got" != none ] && python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) == float(sys.argv[2]) else 1)' "$got" "$2"; then
        ok "$3 = $got"
    else
        fail "$3: $1 gave $got, expected $2"
    fi
}

say "series assertions"
expect_value 'max(regevent_build_info)' 1 "regevent_build_info"
got=$(query 'count(regevent_subscribes_sent_total)' | jget 'j["data"]["result"][0]["value"][1] if j["data"]["result"] else 0')
if [ "$got" != 0 ]; then ok "regevent_subscribes_sent_total exists ($got series)"; else fail "regevent_subscribes_sent_total missing"; fi
if [ -n "${EXPECT_SUBSCRIPTIONS:-}" ]; then
    expect_value 'sum(regevent_subscriptions)' "$EXPECT_SUBSCRIPTIONS" "sum(regevent_subscriptions)"
    expect_value 'count(regevent_subscription_info)' "$EXPECT_SUBSCRIPTIONS" "count(regevent_subscription_info)"
    expect_value 'max(regevent_subscription_series_omitted)' 0 "series omitted"
fi

# run_exprs LABEL: runs every expression on stdin (one per line) and checks status == success.
run_exprs() {
    local label=$1 n=0 expr status
    while IFS= read -r expr; do
        [ -n "$expr" ] || continue
        n=$((n + 1))
        status=$(query "$expr" | jget 'j.get("status","?") + ("" if j.get("status")=="success" else ": " + j.get("error",""))' 2>&1 || true)
        if [ "$status" = success ]; then ok "$label: $expr"; else fail "$label: $expr -> $status"; fi
    done
    [ "$n" -gt 0 ] || fail "$label: no expressions found"
}

say "dashboard queries (deploy/grafana/dashboard.json)"
python3 - deploy/grafana/dashboard.json <<'PY' > "$TMP/dashboard.exprs"
import json, sys
d = json.load(open(sys.argv[1]))
def panels(ps):
    for p in ps:
        yield p
        yield from panels(p.get("panels", []))
for p in panels(d["panels"]):
    for t in p.get("targets", []):
        e = t.get("expr")
        if e:
            e = e.replace("$__rate_interval", "1m").replace("${trunk_group}", ".*").replace("$trunk_group", ".*")
            print(" ".join(e.split()))
PY
run_exprs dashboard < "$TMP/dashboard.exprs"

say "alert rules (deploy/alerts.yml, as loaded by prometheus)"
want_rules=$(grep -cE '^\s*- (alert|record):' deploy/alerts.yml)
curl -sS "$PROM/api/v1/rules" | jget '"\n".join(" ".join(r["query"].split()) for g in j["data"]["groups"] for r in g["rules"])' > "$TMP/rules.exprs"
got_rules=$(grep -c . "$TMP/rules.exprs" || true)
[ "$got_rules" = "$want_rules" ] && ok "$got_rules rules loaded" || fail "prometheus loaded $got_rules rules, alerts.yml has $want_rules"
run_exprs alert < "$TMP/rules.exprs"
bad=$(curl -sS "$PROM/api/v1/rules" | jget '"; ".join(r["name"] + ": " + r.get("lastError","") for g in j["data"]["groups"] for r in g["rules"] if r.get("health") == "err")')
[ -z "$bad" ] && ok "no rule evaluation errors" || fail "rule evaluation errors: $bad"

if [ "$FAILURES" != 0 ]; then
    printf '\nprometheus log:\n' >&2; tail -n 20 "$TMP/prometheus.log" >&2 || true
    die "$FAILURES check(s) failed"
fi
say "all checks passed"
