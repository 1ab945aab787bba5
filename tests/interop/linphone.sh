#!/usr/bin/env bash
# linphonec interop suite: Debian's linphone-cli (linphonec 5.1, headless:
# its "files" sound card, a silent WAV as microphone, the call recorded to a
# WAV) calls the gateway over UDP on 127.0.0.1, keys 1 and 2 with its DTMF
# (RFC 4733) after the greeting, and hangs up.
#
#   plain   linphonec as installed (IPv6 on): on a host with an IPv6
#           interface it offers that interface's address (c=IN IP6 …) over
#           IPv4 signalling, the case of issue 15; the gateway (no IPv6 media
#           address configured) answers IPv4 and latches to the RTP linphone
#           sends. The recording must score >= 0.9 against
#           prompts/zh/welcome.wav (wav-similarity) and each key must be
#           logged once.
#   srtp    the same with media_encryption=srtp (SDES), mandatory: linphone
#           offers RTP/SAVP with a=crypto; same checks, and the gateway must
#           log that the media is SRTP.
#
# linphonec is driven over its standard input (a FIFO): `soundcard use
# files`, `ports sip N` (a free port) before `call`, `play`, `record`,
# digits typed as lines are sent as DTMF, `terminate`, `quit`. Its config
# file and HOME are temporary.
#
# Usage: tests/interop/linphone.sh   (after `cargo build`; HOTLINE_BIN names
# the gateway binary; needs linphone-cli, sox, python3)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TOOLS=${SHARED_TOOLS:-$ROOT/../shared/tools}
WORK=${INTEROP_WORK:-$ROOT/target/interop}/linphone
rm -rf "$WORK"
mkdir -p "$WORK"
# shellcheck source=tests/interop/lib.sh
. "$ROOT/tests/interop/lib.sh"

LP_PID=""
cleanup() {
    exec 3>&- 2>/dev/null || true
    if [ -n "$LP_PID" ] && kill -0 "$LP_PID" 2>/dev/null; then
        kill -KILL "$LP_PID" 2>/dev/null || true
    fi
    kill_gateway
}
trap cleanup EXIT

require_tools linphonec sox python3
require_shared_tool wav-similarity

PROMPT=$ROOT/prompts/zh/welcome.wav
sox -n -r 8000 -c 1 -b 16 "$WORK/silence.wav" trim 0 60
PORT=$(free_port 127.0.0.1)
start_gateway 127.0.0.1 "$PORT" HOTLINE_CALLS_GREETING=zh/welcome HOTLINE_CALLS_MAX_DURATION_SECS=60
FAILED=0
SUMMARY=()

keys_logged() { grep -c 'key pressed.*source="\?rfc4733' "$WORK/gateway.log" || true; }

# wait_for FILE PATTERN SECONDS
wait_for() {
    local i
    for i in $(seq 1 $(($3 * 10))); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

run_case() { # NAME CONFIG_LINES...
    local name=$1
    shift
    local home=$WORK/$name.home out=$WORK/$name.out wav=$WORK/$name.wav fifo=$WORK/$name.fifo
    mkdir -p "$home"
    printf '%s\n' "$@" >"$WORK/$name.linphonerc"
    rm -f "$fifo"
    mkfifo "$fifo"
    local before after lport
    before=$(keys_logged)
    lport=$(free_port 127.0.0.1)
    log "$name: linphonec (SIP port $lport) calls sip:10000@127.0.0.1:$PORT"
    HOME=$home timeout 90 linphonec -c "$WORK/$name.linphonerc" -d 0 <"$fifo" >"$out" 2>&1 &
    LP_PID=$!
    exec 3>"$fifo"
    printf 'soundcard use files\nports sip %s\nplay %s\nrecord %s\ncall sip:10000@127.0.0.1:%s\n' \
        "$lport" "$WORK/silence.wav" "$wav" "$PORT" >&3
    if ! wait_for "$out" "connected" 15; then
        log "FAIL $name: no answer"; tail -n 15 "$out"
        SUMMARY+=("$name FAIL (no answer)"); FAILED=1
        printf 'quit\n' >&3; exec 3>&-; wait "$LP_PID" || true; LP_PID=""
        return
    fi
    # The greeting is about 5.9 s; key after it so the recording holds all of it.
    sleep 7
    printf '1\n' >&3
    sleep 1
    printf '2\n' >&3
    sleep 2
    printf 'terminate\n' >&3
    wait_for "$out" "ended" 10 || true
    printf 'quit\n' >&3
    exec 3>&-
    wait "$LP_PID" || true
    LP_PID=""
    sleep 0.5
    after=$(keys_logged)
    if [ ! -s "$wav" ]; then
        log "FAIL $name: linphonec recorded nothing"; tail -n 15 "$out"
        SUMMARY+=("$name FAIL (no recording)"); FAILED=1; return
    fi
    local score
    score=$("$TOOLS/wav-similarity" "$wav" "$PROMPT" --min 0.9 2>&1 | tail -n 1 || true)
    if [[ $score != *" MATCH"* || $score == *"NO MATCH"* ]]; then
        log "FAIL $name: recording does not match the prompt: $score"
        SUMMARY+=("$name FAIL ($score)"); FAILED=1; return
    fi
    if [ $((after - before)) -ne 2 ]; then
        log "FAIL $name: gateway logged $((after - before)) keys, wanted 2"
        grep "key pressed" "$WORK/gateway.log" | tail -n 5
        SUMMARY+=("$name FAIL (keys $((after - before)))"); FAILED=1; return
    fi
    log "PASS $name: $score; keys read once each"
    SUMMARY+=("$name PASS ($score)")
}

run_case plain "[sip]" "use_ipv6=1"
if grep -q "the offer's media address is of the other IP family" "$WORK/gateway.log"; then
    log "note: linphonec offered media of the other family (IPv6 over IPv4); the gateway latched"
fi
run_case srtp "[sip]" "use_ipv6=1" "media_encryption=srtp" "media_encryption_mandatory=1"
if ! grep -q "media is SRTP" "$WORK/gateway.log"; then
    log "FAIL srtp: the gateway did not negotiate SRTP"
    SUMMARY+=("srtp FAIL (not SRTP)"); FAILED=1
fi

stop_gateway || FAILED=1
printf '  %s\n' "${SUMMARY[@]}"
if [ "$FAILED" -ne 0 ]; then echo "RESULT: FAIL"; exit 1; fi
echo "RESULT: PASS"
