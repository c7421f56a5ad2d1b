#!/usr/bin/env bash
# Repeat the same-run comparison (bench/run-compare.sh) and summarize the ratios: on a shared
# 2-core VM one run's ratio moves by ±15 % (both proxies' CPU per registration vary from run
# to run), so a claim rests on the median of several same-run ratios, not on one run.
#
#   bench/compare-repeat.sh 5                      # 5 × (kamailio, regevent-gw) at 1500/s, 30 s
#   bench/compare-repeat.sh 3 --rate 800 --seconds 20
#
# Each repetition runs bench/run-compare.sh --only kamailio,regevent-gw (plus any further
# arguments) and keeps its report under $OUT_DIR (default target/compare/<UTC time>/).
# Printed: per run, both proxies' CPU-seconds per 1,000 registrations, completed and failed
# registrations, and the ratio; then the median, minimum and maximum ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:?usage: bench/compare-repeat.sh RUNS [run-compare.sh arguments]}
shift
OUT_DIR=${OUT_DIR:-target/compare/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT_DIR"
ratios=()
printf '%-4s %-12s %-12s %-16s %-16s %s\n' run kamailio regevent-gw "kamailio ok/fail" "gateway ok/fail" ratio
for i in $(seq 1 "$N"); do
    report="$OUT_DIR/run-$i.md"
    bench/run-compare.sh --only kamailio,regevent-gw --out "$report" "$@" >"$OUT_DIR/run-$i.log" 2>&1
    # The table row "proxy CPU-seconds per 1,000 registrations" and the completed/failed rows.
    cell() { awk -F'|' -v label="$1" -v col="$2" 'index($2, label) { gsub(/ /, "", $(col + 2)); print $(col + 2); exit }' "$report"; }
    k=$(cell "proxy CPU-seconds per 1,000" 1)
    g=$(cell "proxy CPU-seconds per 1,000" 2)
    kok="$(cell "registrations completed" 1)/$(cell "registrations failed" 1)"
    gok="$(cell "registrations completed" 2)/$(cell "registrations failed" 2)"
    r=$(awk -v k="$k" -v g="$g" 'BEGIN { if (k + 0 > 0 && g + 0 > 0) printf "%.2f", k / g; else print "n/a" }')
    [ "$r" != n/a ] && ratios+=("$r")
    printf '%-4s %-12s %-12s %-16s %-16s %s\n' "$i" "$k" "$g" "$kok" "$gok" "$r"
done
if [ "${#ratios[@]}" -gt 0 ]; then
    printf '%s\n' "${ratios[@]}" | sort -g | awk '{ v[NR] = $1 } END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "ratio kamailio / regevent-gw over %d runs: median %.2f, min %.2f, max %.2f\n", NR, m, v[1], v[NR] }'
fi
echo "reports: $OUT_DIR"
