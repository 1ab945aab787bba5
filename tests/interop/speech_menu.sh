#!/usr/bin/env bash
# Speech as another way to press, with a real softphone (issue 18): the
# gateway with [speech] on and the shipped 10000 plan; baresip
# (../shared/tools/baresip-ivr-call) dials 10000 and, during the main
# menu, its microphone says 报障 ("report a fault"; the test-set file
# tests/data/speech/018-zh-9.wav, espeak-ng through G.711), pressing no
# key. The call must land in the fault branch, and its call record (staff
# API) must say the choice came from speech: "main_menu: speech: …
# as key 9", then "fault_intro: enter".
#
# Usage: tests/interop/speech_menu.sh   (after `cargo build --release`, or
# with HOTLINE_BIN=target/debug/hotline as CI runs it; needs baresip-core,
# sox, python3, curl, and pocketsphinx + pocketsphinx-en-us). About 40 s.
# Env:   HOTLINE_BIN, INTEROP_WORK (logs in $INTEROP_WORK/speech_menu),
#        SHARED_TOOLS (default ../shared/tools)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BASE=${INTEROP_WORK:-$ROOT/target/interop}/speech_menu
TOOLS=${SHARED_TOOLS:-$ROOT/../shared/tools}
rm -rf "$BASE"
mkdir -p "$BASE"
WORK=$BASE
# shellcheck source=tests/interop/lib.sh
. "$ROOT/tests/interop/lib.sh"
HOTLINE_BIN=$(cd "$(dirname "$HOTLINE_BIN")" && pwd)/$(basename "$HOTLINE_BIN")
trap kill_gateway EXIT

require_tools baresip sox python3 curl
[ -x "$HOTLINE_BIN" ] || { echo "$HOTLINE_BIN not found: run cargo build --release"; exit 2; }
require_shared_tool baresip-ivr-call
[ -e /usr/share/pocketsphinx/model/en-us/en-us/mdef ] ||
    { echo "pocketsphinx-en-us is not installed"; exit 2; }

# The microphone: silence through the greeting (5.9 s) into the main
# menu's prompt, then 报障, then silence.
SPOKEN=$ROOT/tests/data/speech/018-zh-9.wav
sox -D -n -r 8000 -c 1 -b 16 -e signed-integer "$BASE/lead.wav" trim 0 8
sox -D -n -r 8000 -c 1 -b 16 -e signed-integer "$BASE/tail.wav" trim 0 15
sox "$BASE/lead.wav" "$SPOKEN" "$BASE/tail.wav" "$BASE/mic.wav"

SIP=$(free_port 127.0.0.1)
HTTP_PORT=$(free_port 127.0.0.1)
SETTINGS=(HOTLINE_DATABASE_URL="sqlite://$BASE/hotline.db")
(cd "$BASE" && start_gateway 127.0.0.1 "$SIP" "${SETTINGS[@]}" HOTLINE_SPEECH_ENABLED=true \
    HOTLINE_IVR_DIALPLANS_DIR="$ROOT/dialplans" HOTLINE_PROMPTS_DIR="$ROOT/prompts" \
    HOTLINE_RECORDINGS_DIR="$BASE/recordings" HOTLINE_HTTP_LISTEN="127.0.0.1:$HTTP_PORT") || {
    echo "RESULT: FAIL (the gateway did not start)"
    exit 1
}
grep -q "speech recognition on" "$BASE/gateway.log" || fail "the gateway did not turn speech on: $(grep -i speech "$BASE/gateway.log" | tail -n 1)"
TOKEN=$(env "${SETTINGS[@]}" "$HOTLINE_BIN" token create --name li.na --role agent |
    grep -oE 'hl_[0-9a-f]{64}' | head -n 1)

log "caller: says 报障 during the main menu, presses nothing"
caller_rc=0
"$TOOLS/baresip-ivr-call" --target "127.0.0.1:$SIP" --dest 10000 --from-user 13800138000 \
    --digits "" --play "$BASE/mic.wav" --hold 18 --hangup any \
    --workdir "$BASE/caller" >"$BASE/caller.out" 2>&1 || caller_rc=$?
[ "$caller_rc" -eq 0 ] || fail "caller: baresip-ivr-call exited $caller_rc ($(tail -n 1 "$BASE/caller.out"))"

path=""
for _ in $(seq 1 40); do
    path=$(curl -sS --max-time 10 -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$HTTP_PORT/api/v1/calls?limit=1" |
        python3 -c 'import json,sys; c=json.load(sys.stdin); print(" | ".join(s["node"] + ": " + s["event"] for s in c[0]["menu_path"]) if c else "")')
    [ -n "$path" ] && break
    sleep 0.5
done
echo "$path" >"$BASE/path.txt"
log "menu path: $path"
grep -qE "main_menu: speech: .* as key 9" <<<"$path" || fail "the record does not show a spoken 9"
grep -q "fault_intro: enter" <<<"$path" || fail "the call did not reach the fault branch"

stop_gateway || fail "the gateway did not stop cleanly"
result "$BASE"
