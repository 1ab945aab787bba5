#!/usr/bin/env bash
# IVR interop: the shipped 10000 dialplan driven by SIPp.
#
#   fault    ../shared/tools/sipp-ivr-call dials 100009 from 13800138000 and
#            keys a service number, confirms and picks a category by RFC 2833;
#            the gateway must hang up by itself after the read-back, and
#            `hotline ticket list` must show exactly one new fault ticket
#            for that phone with that service number.
#   status   the same caller dials 10000 and presses 1; the recording must
#            contain the read-back of that ticket (ticket, its ten digit
#            prompts, status_is, status/new), built from the
#            prompt WAVs with sox, scored by ../shared/tools/wav-similarity
#            at 0.9 or more.
#
# Usage: tests/interop/ivr_fault.sh   (after `cargo build --release`; needs
# sip-tester, tshark, sox, python3; run as root)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TOOLS=${SHARED_TOOLS:-$ROOT/../shared/tools}
WORK=${INTEROP_WORK:-$ROOT/target/interop}/ivr_fault
rm -rf "$WORK"
mkdir -p "$WORK"
# shellcheck source=tests/interop/lib.sh
. "$ROOT/tests/interop/lib.sh"
trap kill_gateway EXIT

require_tools sipp tshark sox
require_shared_tool sipp-ivr-call

CALLER=13800138000
PORT=$(free_port 127.0.0.1)
export HOTLINE_IVR_DIALPLANS_DIR=$ROOT/dialplans
start_gateway 127.0.0.1 "$PORT" HOTLINE_CALLS_MAX_DURATION_SECS=180 \
    HOTLINE_TICKETS_SLA_FILE="$ROOT/sla.toml"
tickets() { # the gateway's tickets for the caller, one line each
    HOTLINE_DATABASE_URL="sqlite://$WORK/hotline.db" HOTLINE_TICKETS_SLA_FILE="$ROOT/sla.toml" \
        "$HOTLINE_BIN" ticket list --phone "$CALLER" | grep -E '^[0-9]{10} ' || true
}
FAILED=0
SUMMARY=()

log "fault: sipp-ivr-call dials 100009"
if timeout --foreground 200 "$TOOLS/sipp-ivr-call" --target "127.0.0.1:$PORT" --dest 100009 \
    --from-user "$CALLER" --digits "55512345#,1,1" --delay 2 --hold 120 --hangup server \
    --record "$WORK/fault.wav" >"$WORK/fault.out" 2>&1; then
    list=$(tickets)
    count=$(printf '%s\n' "$list" | grep -c . || true)
    if [ "$count" -eq 1 ] && [[ $list == *"fault_report"*"virtual_network"* ]]; then
        NUMBER=${list%% *}
        log "PASS fault: ticket $NUMBER"
        SUMMARY+=("fault PASS (ticket $NUMBER)")
    else
        log "FAIL fault: tickets for $CALLER: $list"
        SUMMARY+=("fault FAIL (tickets: $count)"); FAILED=1
    fi
else
    log "FAIL fault: caller failed"; tail -n 15 "$WORK/fault.out"
    SUMMARY+=("fault FAIL (caller)"); FAILED=1
fi

if [ -n "${NUMBER:-}" ]; then
    log "status: sipp-ivr-call dials 10000 and presses 1"
    P=$ROOT/prompts/zh
    parts=("$P/ticket.wav")
    for digit in $(grep -o . <<<"$NUMBER"); do parts+=("$P/digits/$digit.wav"); done
    # The plan pauses 200 ms between the number and its status.
    sox -n -r 8000 -c 1 -b 16 "$WORK/pause.wav" trim 0 0.2
    parts+=("$WORK/pause.wav" "$P/status_is.wav" "$P/status/new.wav")
    sox "${parts[@]}" "$WORK/expected.wav"
    if timeout --foreground 120 "$TOOLS/sipp-ivr-call" --target "127.0.0.1:$PORT" --dest 10000 \
        --from-user "$CALLER" --digits "1" --delay 2 --hold 25 \
        --record "$WORK/status.wav" >"$WORK/status.out" 2>&1; then
        score=$("$TOOLS/wav-similarity" "$WORK/status.wav" "$WORK/expected.wav" --min 0.9 2>&1 | tail -n 1)
        if [[ $score == *" MATCH"* && $score != *"NO MATCH"* ]]; then
            log "PASS status: $score"; SUMMARY+=("status PASS ($score)")
        else
            log "FAIL status: $score"; SUMMARY+=("status FAIL ($score)"); FAILED=1
        fi
    else
        log "FAIL status: caller failed"; tail -n 15 "$WORK/status.out"
        SUMMARY+=("status FAIL (caller)"); FAILED=1
    fi
fi

stop_gateway || FAILED=1
printf '  %s\n' "${SUMMARY[@]}"
if [ "$FAILED" -ne 0 ]; then echo "RESULT: FAIL"; exit 1; fi
echo "RESULT: PASS"
