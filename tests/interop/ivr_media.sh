#!/usr/bin/env bash
# Media interop suite: real third-party callers hear the greeting prompt
# and their keys are read exactly once.
#
#   sipp        ../shared/tools/sipp-ivr-call (SIPp, RFC 2833 keys from its
#               pcaps) records what it hears; wav-similarity must score the
#               recording against prompts/zh/welcome.wav at 0.9 or more, and
#               the gateway must log each key once (source rfc4733)
#   sipp-info   the same keys by SIP INFO (source sip_info)
#   baresip     ../shared/tools/baresip-ivr-call, RFC 2833 keys, recording
#               scored the same way
#
# In-band keys are not run here: both callers always offer telephone-event,
# and a call that negotiates it has in-band detection off (so that no key
# counts twice). tests/e2e_media.rs sends in-band keys on a call without
# telephone-event.
#
# Usage: tests/interop/ivr_media.sh   (after `cargo build --release`; needs
# sip-tester, baresip-core, tshark, sox, python3; run as root)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TOOLS=${SHARED_TOOLS:-$ROOT/../shared/tools}
WORK=${INTEROP_WORK:-$ROOT/target/interop}/ivr_media
rm -rf "$WORK"
mkdir -p "$WORK"
# shellcheck source=tests/interop/lib.sh
. "$ROOT/tests/interop/lib.sh"
trap kill_gateway EXIT

require_tools sipp baresip tshark sox
require_shared_tool sipp-ivr-call

PROMPT=$ROOT/prompts/zh/welcome.wav
PORT=$(free_port 127.0.0.1)
start_gateway 127.0.0.1 "$PORT" HOTLINE_CALLS_GREETING=zh/welcome HOTLINE_CALLS_MAX_DURATION_SECS=60
FAILED=0
SUMMARY=()

# Keys after the greeting has played (it is about 5.9 s), so the recording
# holds the whole prompt before barge-in would cut it.
DIGITS="1,2"
keys_logged() { # SOURCE: how many key lines with that source the gateway logged
    grep -c "key pressed.*source=\"\?$1" "$WORK/gateway.log" || true
}

run_case() { # NAME EXPECTED_SOURCE CALLER ARGS...
    local name=$1 source=$2 caller=$3
    shift 3
    local before after wav=$WORK/$name.wav
    before=$(keys_logged "$source")
    log "$name: $caller $*"
    local attempt
    for attempt in 1 2; do
        if timeout --foreground 120 "$TOOLS/$caller" --target "127.0.0.1:$PORT" --dest 10000 \
            --digits "$DIGITS" --delay 7 --gap 1 --hold 2 --record "$wav" "$@" >"$WORK/$name.out" 2>&1; then
            break
        fi
        # baresip-ivr-call picks its own SIP port; once in CI another
        # process took it first ("Address already in use" in baresip's
        # log), so baresip never started and no call reached the gateway.
        # A caller that did not start earns one more try.
        if [ "$attempt" -eq 1 ] && grep -q "before ctrl_tcp came up" "$WORK/$name.out"; then
            log "$name: the caller did not start (its port taken?); trying once more"
            continue
        fi
        log "FAIL $name: caller failed"; tail -n 15 "$WORK/$name.out"
        SUMMARY+=("$name FAIL (caller)"); FAILED=1; return
    done
    sleep 0.5
    after=$(keys_logged "$source")
    local score
    score=$("$TOOLS/wav-similarity" "$wav" "$PROMPT" --min 0.9 2>&1 | tail -n 1)
    if [[ $score != *" MATCH"* || $score == *"NO MATCH"* ]]; then
        log "FAIL $name: recording does not match the prompt: $score"
        SUMMARY+=("$name FAIL ($score)"); FAILED=1; return
    fi
    if [ $((after - before)) -ne 2 ]; then
        log "FAIL $name: gateway logged $((after - before)) keys from $source, wanted 2"
        grep "key pressed" "$WORK/gateway.log" | tail -n 5
        SUMMARY+=("$name FAIL (keys $((after - before)))"); FAILED=1; return
    fi
    log "PASS $name: $score; keys read once each"
    SUMMARY+=("$name PASS ($score)")
}

run_case sipp rfc4733 sipp-ivr-call
run_case sipp-info sip_info sipp-ivr-call --dtmf info
run_case baresip rfc4733 baresip-ivr-call

stop_gateway || FAILED=1
printf '  %s\n' "${SUMMARY[@]}"
if [ "$FAILED" -ne 0 ]; then echo "RESULT: FAIL"; exit 1; fi
echo "RESULT: PASS"
