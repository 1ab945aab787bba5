#!/usr/bin/env bash
# /metrics and /readyz of the gateway ($HOTLINE_BIN): starts it with the shipped
# dialplans, places 5 SIPp calls to 10000 (SIPp's built-in uac scenario)
# and one to a number without a dialplan, scrapes GET /metrics and checks
# it with `promtool check metrics` (Debian package `prometheus`) and that
# the call counters say what was placed; /readyz answers 200 while the
# gateway runs.
#
# Usage: tests/interop/metrics_promtool.sh   (after `cargo build --release`, or with HOTLINE_BIN=target/debug/hotline).
# Log and scrape: $INTEROP_WORK/metrics_promtool/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=${INTEROP_WORK:-$ROOT/target/interop}/metrics_promtool
rm -rf "$WORK"
mkdir -p "$WORK"
# shellcheck source=tests/interop/lib.sh
. "$ROOT/tests/interop/lib.sh"
trap kill_gateway EXIT
export -n HOTLINE_BIN

command -v promtool >/dev/null || { echo "promtool is not installed (apt-get install prometheus)"; exit 2; }
command -v sipp >/dev/null || { echo "sipp is not installed (apt-get install sip-tester)"; exit 2; }
command -v curl >/dev/null || { echo "curl is not installed"; exit 2; }
[ -x "$HOTLINE_BIN" ] || { echo "no gateway binary at $HOTLINE_BIN (cargo build --release)"; exit 2; }

PORT=$(free_port 127.0.0.1)
HTTP_PORT=$(free_port 127.0.0.1)
HOTLINE_IVR_DIALPLANS_DIR="$ROOT/dialplans" start_gateway 127.0.0.1 "$PORT" \
    HOTLINE_HTTP_LISTEN="127.0.0.1:$HTTP_PORT" HOTLINE_TICKETS_SLA_FILE="$ROOT/sla.toml"
BASE=http://127.0.0.1:$HTTP_PORT

ready=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$BASE/readyz")
[ "$ready" = 200 ] || { log "FAIL: /readyz answered $ready"; exit 1; }

log "placing 5 calls to 10000 and 1 to 99999 with SIPp"
for number in 10000 99999; do
    calls=5
    [ "$number" = 99999 ] && calls=1
    timeout 60 sipp -sn uac -s "$number" "127.0.0.1:$PORT" -i 127.0.0.1 \
        -p "$(free_port 127.0.0.1)" -m "$calls" -r 5 -d 1000 -timeout 50s \
        -trace_err -error_file "$WORK/sipp_$number.err" >"$WORK/sipp_$number.log" 2>&1 || true
done

curl -sf --max-time 5 "$BASE/metrics" >"$WORK/metrics.txt"
log "scraped $(wc -l <"$WORK/metrics.txt") lines"
if ! promtool check metrics <"$WORK/metrics.txt" >"$WORK/promtool.log" 2>&1; then
    log "FAIL: promtool check metrics:"
    cat "$WORK/promtool.log"
    exit 1
fi
log "promtool check metrics: clean"

value() { awk -v series="$1" '$1 == series { print $2 }' "$WORK/metrics.txt"; }
offered=$(value hotline_calls_offered_total)
answered=$(value hotline_calls_answered_total)
no_dialplan=$(value 'hotline_calls_rejected_total{reason="no_dialplan"}')
log "offered=$offered answered=$answered rejected(no_dialplan)=$no_dialplan"
[ "$offered" = 6 ] && [ "$answered" = 5 ] && [ "$no_dialplan" = 1 ] ||
    { log "FAIL: expected offered=6 answered=5 rejected(no_dialplan)=1"; exit 1; }
stop_gateway
log "PASS"
