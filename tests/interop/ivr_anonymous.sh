#!/usr/bin/env bash
# IVR interop: fault reports from callers whose From is no phone number,
# through the shipped 10000 plan, by SIPp (../shared/tools/sipp-ivr-call,
# RFC 2833 keys) against the gateway on loopback:
#
#   asserted   From "Anonymous" <sip:anonymous@anonymous.invalid> (SIPp run
#              through tests/interop/sipp-anonymous-from), with
#              P-Asserted-Identity <tel:+86-139-0013-9000> and Privacy: id
#              from loopback, which sip.asserted_identity_from trusts by
#              default; keys 9, service number 12345#, 1 to confirm,
#              category 1: the asserted number is the ticket's contact
#   anonymous  the same From without the assertion: the plan asks for a
#              callback number, keyed as 13700137000# and confirmed with 1
#   sipp       SIPp's own From user "sipp" and the issue's keys 9,
#              13800138000#, 1, 1: that service number is the contact
#   extension  From user 8001 reporting fixed line 55512345: that line is
#              the contact
#
# The four call at once. Each call must end with the gateway's BYE and
# make exactly one ticket (`hotline ticket list`: one for its contact, four
# in all), and
# its recording must contain the read-back of that ticket's number
# (your_ticket_number_is and its ten digit prompts, joined with sox),
# scored by ../shared/tools/wav-similarity at 0.9 or more.
#
# Usage: tests/interop/ivr_anonymous.sh   (after `cargo build --release`, or
# with HOTLINE_BIN; needs sip-tester, tshark, sox, python3; run as root)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TOOLS=${SHARED_TOOLS:-$ROOT/../shared/tools}
WORK=${INTEROP_WORK:-$ROOT/target/interop}/ivr_anonymous
rm -rf "$WORK"
mkdir -p "$WORK"
# shellcheck source=tests/interop/lib.sh
. "$ROOT/tests/interop/lib.sh"
trap kill_gateway EXIT

require_tools sipp tshark sox
require_shared_tool sipp-ivr-call

PORT=$(free_port 127.0.0.1)
export HOTLINE_IVR_DIALPLANS_DIR=$ROOT/dialplans
start_gateway 127.0.0.1 "$PORT" HOTLINE_TICKETS_SLA_FILE="$ROOT/sla.toml"
tickets() { # the gateway's tickets, one line each (all, or for a phone)
    HOTLINE_DATABASE_URL="sqlite://$WORK/hotline.db" HOTLINE_TICKETS_SLA_FILE="$ROOT/sla.toml" \
        "$HOTLINE_BIN" ticket list "$@" | grep -E '^[0-9]{10} ' || true
}
count() { grep -c . <<<"$1" || true; }
FAILED=0
SUMMARY=()

# call NAME DIGITS [sipp-ivr-call options...]: one caller, in the
# background (the four run at once; each has its own ports and capture).
PIDS=()
call() {
    local name=$1 digits=$2
    shift 2
    log "$name: sipp-ivr-call dials 10000, keys $digits"
    timeout --foreground 200 "$TOOLS/sipp-ivr-call" --target "127.0.0.1:$PORT" --dest 10000 \
        --digits "$digits" --delay 2 --gap 3 --hold 90 --hangup server \
        --workdir "$WORK/$name-sipp" --record "$WORK/$name.wav" "$@" \
        >"$WORK/$name.out" 2>&1 &
    PIDS+=("$name:$!")
}

# check NAME CONTACT: the call passed, its one ticket has CONTACT, and the
# recording holds that ticket's number read back.
check() {
    local name=$1 contact=$2 mine number score
    mine=$(tickets --phone "$contact")
    if [ "$(count "$mine")" -ne 1 ] || [[ $mine != *"fault_report"* ]]; then
        log "FAIL $name: tickets for $contact: $mine"
        SUMMARY+=("$name FAIL ($(count "$mine") tickets for $contact)"); FAILED=1
        return 0
    fi
    number=${mine%% *}
    local parts=("$ROOT/prompts/zh/your_ticket_number_is.wav") digit
    for digit in $(grep -o . <<<"$number"); do parts+=("$ROOT/prompts/zh/digits/$digit.wav"); done
    sox "${parts[@]}" "$WORK/$name-expected.wav"
    score=$("$TOOLS/wav-similarity" "$WORK/$name.wav" "$WORK/$name-expected.wav" --min 0.9 2>&1 | tail -n 1)
    if [[ $score == *" MATCH"* && $score != *"NO MATCH"* ]]; then
        log "PASS $name: ticket $number for $contact, read back: $score"
        SUMMARY+=("$name PASS (ticket $number, contact $contact, $score)")
    else
        log "FAIL $name: ticket $number for $contact, read back: $score"
        SUMMARY+=("$name FAIL (ticket $number: $score)"); FAILED=1
    fi
}

ANONYMOUS=(--sipp "$ROOT/tests/interop/sipp-anonymous-from" --from-user anonymous)
call asserted "9,12345#,1,1" "${ANONYMOUS[@]}" \
    --header "P-Asserted-Identity: <tel:+86-139-0013-9000>" --header "Privacy: id"
call anonymous "9,12345#,1,1,13700137000#,1" "${ANONYMOUS[@]}"
call sipp "9,13800138000#,1,1" --from-user sipp
call extension "9,55512345#,1,1" --from-user 8001
for entry in "${PIDS[@]}"; do
    name=${entry%%:*}
    if ! wait "${entry#*:}"; then
        log "FAIL $name: caller failed"; tail -n 15 "$WORK/$name.out"
        SUMMARY+=("$name FAIL (caller)"); FAILED=1
    fi
done
for name in asserted anonymous; do
    grep -rqs 'sip:anonymous@anonymous.invalid' "$WORK/$name-sipp" \
        || { log "FAIL $name: SIPp did not send the anonymous From"; FAILED=1; }
done
check asserted 13900139000
check anonymous 13700137000
check sipp 13800138000
check extension 55512345
total=$(count "$(tickets)")
if [ "$total" -ne 4 ]; then
    log "FAIL: $total tickets in all, not one per call"; FAILED=1
fi
SUMMARY+=("tickets in all: $total (4 calls)")
grep -q 'source=P-Asserted-Identity' "$WORK/gateway.log" \
    || { log "FAIL: the gateway never took a number from P-Asserted-Identity"; FAILED=1; }

stop_gateway || FAILED=1
printf '  %s\n' "${SUMMARY[@]}"
if [ "$FAILED" -ne 0 ]; then echo "RESULT: FAIL"; exit 1; fi
echo "RESULT: PASS"
