#!/usr/bin/env bash
# A caller's spoken fault description with a real softphone (issue 18):
# baresip (../shared/tools/baresip-ivr-call) dials 10000 as 13800138000
# and keys the shipped fault branch: 9, service number 55512345#, 1 to
# confirm it, category 5; the ticket is made and "describe the fault after
# the tone" starts, which the caller cuts short with 1 (any key but #
# starts the recording at once). Its microphone (--play) is a WAV made
# here: silence until just after that key, then a spoken description
# (espeak-ng, Mandarin), then silence; the gateway ends the recording
# after 3 s of silence and says it is kept.
# Checks: the ticket has one recording (staff API), 16-bit 8 kHz mono; the
# audio fetched through the API contains the spoken description
# (wav-similarity >= 0.9); a range request answers 206; and in headless
# Chromium the ticket page's player loads it (its duration) with no
# console error, and the play is then on the ticket's timeline
# (record_browser.py, Selenium from the venv console_browser.sh makes).
#
# Usage: tests/interop/record_description.sh   (after `cargo build
# --release`, or with HOTLINE_BIN=target/debug/hotline as CI runs it;
# needs baresip-core, espeak-ng, sox, python3, chromium and
# chromium-driver). Takes about a minute.
# Env:   HOTLINE_BIN, INTEROP_WORK (logs in $INTEROP_WORK/record_description),
#        SHARED_TOOLS (default ../shared/tools), CONSOLE_VENV
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BASE=${INTEROP_WORK:-$ROOT/target/interop}/record_description
TOOLS=${SHARED_TOOLS:-$ROOT/../shared/tools}
VENV=${CONSOLE_VENV:-$ROOT/target/console-venv}
rm -rf "$BASE"
mkdir -p "$BASE"
WORK=$BASE
# shellcheck source=tests/interop/lib.sh
. "$ROOT/tests/interop/lib.sh"
HOTLINE_BIN=$(cd "$(dirname "$HOTLINE_BIN")" && pwd)/$(basename "$HOTLINE_BIN")
trap kill_gateway EXIT

require_tools baresip espeak-ng sox python3 curl chromium chromedriver
[ -x "$HOTLINE_BIN" ] || { echo "$HOTLINE_BIN not found: run cargo build --release"; exit 2; }
require_shared_tool baresip-ivr-call
require_shared_tool wav-similarity
if ! "$VENV/bin/python" -c 'import selenium' 2>/dev/null; then
    log "installing selenium into $VENV"
    python3 -m venv "$VENV" || { echo "python3 -m venv failed (apt-get install python3-venv)"; exit 2; }
    "$VENV/bin/pip" install --quiet 'selenium>=4.20,<5' >"$BASE/pip.log" 2>&1 ||
        { echo "pip install selenium failed:"; tail -n 20 "$BASE/pip.log"; exit 2; }
fi

# What the caller says, and the microphone: silence until LEAD seconds
# after the answer (the last key comes about 15.5 s in), the words, then
# silence.
LEAD=17
espeak-ng -v cmn-latn-pinyin -s 150 -w "$BASE/espeak.wav" "专线每天晚上六点钟断线，请尽快派人检修。"
sox -D "$BASE/espeak.wav" -r 8000 -c 1 -b 16 -e signed-integer "$BASE/spoken.wav" \
    remix - gain -h rate -v 8000 norm -3
sox -D -n -r 8000 -c 1 -b 16 -e signed-integer "$BASE/lead.wav" trim 0 "$LEAD"
sox -D -n -r 8000 -c 1 -b 16 -e signed-integer "$BASE/tail.wav" trim 0 20
sox "$BASE/lead.wav" "$BASE/spoken.wav" "$BASE/tail.wav" "$BASE/mic.wav"
log "spoken description: $(soxi -D "$BASE/spoken.wav") s, from ${LEAD} s into the call"

SIP=$(free_port 127.0.0.1)
HTTP_PORT=$(free_port 127.0.0.1)
SETTINGS=(HOTLINE_DATABASE_URL="sqlite://$BASE/hotline.db" HOTLINE_RECORDINGS_DIR="$BASE/recordings")
(cd "$BASE" && start_gateway 127.0.0.1 "$SIP" "${SETTINGS[@]}" \
    HOTLINE_IVR_DIALPLANS_DIR="$ROOT/dialplans" HOTLINE_PROMPTS_DIR="$ROOT/prompts" \
    HOTLINE_HTTP_LISTEN="127.0.0.1:$HTTP_PORT") || {
    echo "RESULT: FAIL (the gateway did not start)"
    exit 1
}
API=http://127.0.0.1:$HTTP_PORT
TOKEN=$(env "${SETTINGS[@]}" "$HOTLINE_BIN" token create --name li.na --role agent |
    grep -oE 'hl_[0-9a-f]{64}' | head -n 1)
[ -n "$TOKEN" ] || { echo "RESULT: FAIL (no token)"; exit 1; }

log "caller: 9, 55512345#, 1, 5, then 1 into the description prompt, then speaks"
caller_rc=0
"$TOOLS/baresip-ivr-call" --target "127.0.0.1:$SIP" --dest 10000 --from-user 13800138000 \
    --digits "9,55512345#,1,5,1" --play "$BASE/mic.wav" --hold 16 --hangup client \
    --workdir "$BASE/caller" >"$BASE/caller.out" 2>&1 || caller_rc=$?
[ "$caller_rc" -eq 0 ] || fail "caller: baresip-ivr-call exited $caller_rc ($(tail -n 1 "$BASE/caller.out"))"

api() { curl -sS --max-time 10 -H "Authorization: Bearer $TOKEN" "$@"; }
NUMBER=$(api "$API/api/v1/tickets" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["number"])')
log "ticket $NUMBER"
recordings=""
for _ in $(seq 1 40); do
    recordings=$(api "$API/api/v1/tickets/$NUMBER/recordings")
    [ "$recordings" != "[]" ] && break
    sleep 0.5
done
echo "$recordings" >"$BASE/recordings.json"
count=$(python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' <<<"$recordings")
[ "$count" -eq 1 ] || fail "$count recordings on the ticket, expected 1 (see $BASE/recordings.json)"
AUDIO=$(python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["audio"])' <<<"$recordings" 2>/dev/null || true)
if [ -n "$AUDIO" ]; then
    api -o "$BASE/kept.wav" "$API$AUDIO"
    log "kept: $(soxi -r "$BASE/kept.wav") Hz, $(soxi -c "$BASE/kept.wav") channel, $(soxi -b "$BASE/kept.wav") bit, $(soxi -D "$BASE/kept.wav") s"
    [ "$(soxi -r "$BASE/kept.wav")/$(soxi -c "$BASE/kept.wav")/$(soxi -b "$BASE/kept.wav")" = "8000/1/16" ] ||
        fail "the recording is not 8 kHz mono 16-bit"
    if "$TOOLS/wav-similarity" "$BASE/kept.wav" "$BASE/spoken.wav" --min 0.9 >"$BASE/similarity.out" 2>&1; then
        log "wav-similarity: $(tail -n 1 "$BASE/similarity.out")"
    else
        fail "the recording does not match what was said: $(tail -n 1 "$BASE/similarity.out")"
    fi
    status=$(api -o /dev/null -w '%{http_code}' -H 'Range: bytes=44-1043' "$API$AUDIO")
    [ "$status" = 206 ] || fail "a range request answered $status, not 206"
    "$VENV/bin/python" "$ROOT/tests/interop/record_browser.py" "$API" "$TOKEN" "$NUMBER" \
        "$ROOT/target/console-screens" >"$BASE/browser.out" 2>&1 ||
        fail "browser: $(tail -n 1 "$BASE/browser.out")"
    cat "$BASE/browser.out"
fi

stop_gateway || fail "the gateway did not stop cleanly"
result "$BASE"
