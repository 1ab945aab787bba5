#!/usr/bin/env bash
# Staff API conformance: schemathesis (from PyPI) reads the OpenAPI
# document the running release gateway serves at /api/v1/openapi.json,
# generates requests for every operation from it, sends them with an admin
# token made by `hotline token create`, and checks every answer against the
# document (`--checks all`: no 5xx, documented status codes, content types
# and response schemas, schema-violating data rejected, auth enforced, …)
# except `positive_data_acceptance`: some schema-valid requests are refused
# by rules a schema cannot state (a ticket number's check digit is 400
# `mistyped_ticket_number` by design; a customer_id must exist; a phone may
# belong to one customer only; an assignment needs an assignee or a queue),
# so that check would only report those. SCHEMATHESIS_CHECKS=all turns it
# back on.
#
# Usage: tests/interop/api_schemathesis.sh   (after `cargo build --release`,
# or with HOTLINE_BIN=target/debug/hotline;
# needs python3 with venv; schemathesis is installed into a venv under
# target/ on first use). Bounded: SCHEMATHESIS_MAX_EXAMPLES examples per
# operation (default 25) and SCHEMATHESIS_TIMEOUT seconds in all (default
# 600). Report and log: $INTEROP_WORK/api_schemathesis/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=${INTEROP_WORK:-$ROOT/target/interop}/api_schemathesis
VENV=${SCHEMATHESIS_VENV:-$ROOT/target/schemathesis-venv}
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-25}
CHECKS=${SCHEMATHESIS_CHECKS:-all-but-positive}
TIMEOUT=${SCHEMATHESIS_TIMEOUT:-600}
rm -rf "$WORK"
mkdir -p "$WORK"
# shellcheck source=tests/interop/lib.sh
. "$ROOT/tests/interop/lib.sh"
trap kill_gateway EXIT
# HOTLINE_BIN may come from the environment (a debug build, say); the
# gateway refuses HOTLINE_* variables it does not know, so keep it here.
export -n HOTLINE_BIN

[ -x "$HOTLINE_BIN" ] || { echo "no release build at $HOTLINE_BIN (cargo build --release)"; exit 2; }
if [ ! -x "$VENV/bin/schemathesis" ]; then
    log "installing schemathesis into $VENV"
    python3 -m venv "$VENV" || { echo "python3 -m venv failed (apt-get install python3-venv)"; exit 2; }
    "$VENV/bin/pip" install --quiet 'schemathesis>=4,<5' >"$WORK/pip.log" 2>&1 ||
        { echo "pip install schemathesis failed:"; tail -n 20 "$WORK/pip.log"; exit 2; }
fi
"$VENV/bin/schemathesis" --version

SETTINGS=(HOTLINE_DATABASE_URL="sqlite://$WORK/hotline.db" HOTLINE_TICKETS_SLA_FILE="$ROOT/sla.toml")
API_PORT=$(free_port 127.0.0.1)
start_gateway 127.0.0.1 "$(free_port 127.0.0.1)" "${SETTINGS[@]}" \
    HOTLINE_HTTP_LISTEN="127.0.0.1:$API_PORT"
BASE=http://127.0.0.1:$API_PORT
TOKEN=$(env "${SETTINGS[@]}" "$HOTLINE_BIN" token create --name schemathesis --role admin |
    grep -oE 'hl_[0-9a-f]{64}' | head -n 1)
[ -n "$TOKEN" ] || { log "FAIL: hotline token create printed no token"; exit 1; }
# Something for the generated requests to find.
env "${SETTINGS[@]}" "$HOTLINE_BIN" ticket create --type fault_report \
    --category virtual_network --phone 13800138000 --description "schemathesis seed" >/dev/null

log "schemathesis against $BASE/api/v1/openapi.json (max $MAX_EXAMPLES examples per operation, ${TIMEOUT}s)"
status=0
# From $WORK: schemathesis keeps its example database in ./.schemathesis.
cd "$WORK"
timeout --kill-after=10 "$TIMEOUT" "$VENV/bin/schemathesis" run "$BASE/api/v1/openapi.json" \
    --header "Authorization: Bearer $TOKEN" \
    --checks all \
    $([ "$CHECKS" = all ] || echo --exclude-checks positive_data_acceptance) \
    --max-examples "$MAX_EXAMPLES" \
    --request-timeout 10 \
    --report junit --report-dir "$WORK" \
    2>&1 | tee "$WORK/schemathesis.out" || status=$?
stop_gateway || status=1
if [ "$status" -eq 0 ]; then
    log "PASS: schemathesis found no failure"
else
    log "FAIL: schemathesis exit status $status (see $WORK/schemathesis.out)"
fi
exit "$status"
