#!/usr/bin/env bash
# IVR → agent by a bridged transfer (transfer mode "bridge"): the gateway
# calls the agent itself and relays the audio both ways.
#
# The shipped 10000 plan; target "agents" is configured (hotline.toml, in
# the work directory) as mode = "bridge" to a SIPp UAS acting as the agent
# (tests/interop/scenarios/bridge_agent_*.xml): it checks the context
# headers of the gateway's INVITE, rings, answers with PCMA only and plays
# SIPp's g711a.pcap (7 s of A-law speech) while tshark captures what it
# receives. The caller is ../shared/tools/baresip-ivr-call from
# 13800138000 (not on file, so target "agents"), PCMU: it presses 0 by
# RFC 2833 and speaks prompts/en/complaint_recorded.wav (after 9 s of
# silence, so that it is said once the bridge is up) while recording what
# it hears. A SIPp caller cannot be used here: SIPp sends no audio but its
# DTMF pcaps, and the agent must hear the caller speak.
#
# Two runs, each must show both directions:
#   agent-bye   the agent hangs up 9 s after the answer; the caller must get
#               the gateway's BYE (baresip --hangup server).
#   caller-bye  the caller hangs up; the agent must get the gateway's BYE.
# In each: wav-similarity finds the agent's speech in the caller's recording
# and the caller's speech in the agent's capture (score >= 0.8), the agent
# saw the context token, and the call record says "transferred" with
# "bridged" in its path.
#
# Usage: tests/interop/ivr_bridge.sh   (after `cargo build --release`, or
# with HOTLINE_BIN=target/debug/hotline as CI runs it; needs sip-tester,
# baresip, tshark, sox, python3; run as root: SIPp's play_pcap_audio and
# tshark need raw sockets). Takes about a minute.
# Env:   HOTLINE_BIN, INTEROP_WORK (logs in $INTEROP_WORK/ivr_bridge),
#        SHARED_TOOLS (default ../shared/tools)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=${INTEROP_WORK:-$ROOT/target/interop}/ivr_bridge
TOOLS=${SHARED_TOOLS:-$ROOT/../shared/tools}
rm -rf "$WORK"
mkdir -p "$WORK"
# shellcheck source=tests/interop/lib.sh
. "$ROOT/tests/interop/lib.sh"
CAPTURE_PID=""
cleanup() {
    [ -n "$CAPTURE_PID" ] && kill "$CAPTURE_PID" 2>/dev/null || true
    kill_gateway
}
trap cleanup EXIT

require_tools sipp tshark sox python3
[ -x "$HOTLINE_BIN" ] || { echo "$HOTLINE_BIN not found: run cargo build --release"; exit 2; }
require_shared_tool baresip-ivr-call
AGENT_PCAP=/usr/share/sip-tester/g711a.pcap
[ -r "$AGENT_PCAP" ] || { echo "$AGENT_PCAP not found (sip-tester)"; exit 2; }
CALLER_SPEECH=$ROOT/prompts/en/complaint_recorded.wav

# RTP of one direction of a capture, decoded to an 8 kHz mono WAV in
# arrival order: rtp_to_wav PCAP DST_PORT OUT.WAV
rtp_to_wav() {
    tshark -r "$1" -d "udp.port==$2,rtp" -Y "udp.dstport==$2 && rtp" \
        -T fields -e rtp.p_type -e rtp.payload 2>/dev/null |
        python3 -W ignore -c '
import audioop, sys, wave
frames = bytearray()
for line in sys.stdin:
    parts = line.split()
    if len(parts) != 2 or parts[0] not in ("0", "8"):
        continue
    payload = bytes.fromhex(parts[1].replace(":", ""))
    frames += audioop.ulaw2lin(payload, 2) if parts[0] == "0" else audioop.alaw2lin(payload, 2)
with wave.open(sys.argv[1], "wb") as out:
    out.setnchannels(1); out.setsampwidth(2); out.setframerate(8000)
    out.writeframes(bytes(frames))
print(len(frames) // 16000, "s")
' "$3"
}

# References: what the agent plays, and what the caller says (9 s of silence
# first, then the prompt, then silence for the rest of the call).
cp "$AGENT_PCAP" "$WORK/agent_audio.pcap"
rtp_to_wav "$AGENT_PCAP" 2006 "$WORK/agent_reference.wav" >/dev/null
sox "$CALLER_SPEECH" "$WORK/caller_mic.wav" pad 9 25

PORT=$(free_port 127.0.0.1)
AGENT_PORT=$(free_port 127.0.0.1)
cat >"$WORK/hotline.toml" <<TOML
[transfer]
ring_timeout_secs = 15

[transfer.targets.agents]
uri = "sip:agents@127.0.0.1:$AGENT_PORT"
mode = "bridge"

[transfer.targets.agents_priority]
uri = "sip:agents-priority@127.0.0.1:$AGENT_PORT"
mode = "bridge"
TOML
cd "$WORK"
export HOTLINE_IVR_DIALPLANS_DIR=$ROOT/dialplans
start_gateway 127.0.0.1 "$PORT" HOTLINE_CALLS_MAX_DURATION_SECS=120 \
    HOTLINE_TICKETS_SLA_FILE="$ROOT/sla.toml"

FAILED=0
SUMMARY=()

# run_case NAME SCENARIO HANGUP HOLD
run_case() {
    local name=$1 scenario=$2 hangup=$3 hold=$4
    local dir=$WORK/$name
    mkdir -p "$dir"
    local agent_media
    agent_media=$(free_port 127.0.0.1)
    tshark -i lo -f "udp port $agent_media" -w "$dir/agent.pcap" -q >"$dir/tshark.log" 2>&1 &
    CAPTURE_PID=$!
    sleep 1
    local agent_cmd=(sipp -sf "$ROOT/tests/interop/scenarios/$scenario"
        -i 127.0.0.1 -p "$AGENT_PORT" -mi 127.0.0.1 -mp "$agent_media" -m 1
        -nostdin -timeout 70s -timeout_error
        -trace_msg -message_file "$dir/agent_messages.log"
        -trace_err -error_file "$dir/agent_errors.log"
        -trace_logs -log_file "$dir/agent_actions.log"
        -trace_screen -screen_file "$dir/agent_screen.log")
    echo "${agent_cmd[*]}" >"$dir/agent.cmd"
    log "$name agent: ${agent_cmd[*]}"
    timeout --foreground --kill-after=5 80 "${agent_cmd[@]}" >"$dir/agent.out" 2>&1 &
    local agent_pid=$!
    sleep 0.5

    local caller_rc=0
    log "$name caller: baresip-ivr-call --digits 0 --hangup $hangup --hold $hold"
    timeout --foreground --kill-after=5 90 "$TOOLS/baresip-ivr-call" \
        --target "127.0.0.1:$PORT" --dest 10000 --from-user 13800138000 \
        --digits 0 --hold "$hold" --hangup "$hangup" --codec pcmu \
        --play "$WORK/caller_mic.wav" --record "$dir/caller_heard.wav" \
        --workdir "$dir/baresip" >"$dir/caller.out" 2>&1 || caller_rc=$?
    # baresip-ivr-call picks its own SIP port; another process can take it
    # first ("Address already in use"), and then no call is placed at all.
    # Such a case is run once more, from a fresh agent and capture.
    if [ "$caller_rc" -ne 0 ] && [ -z "${RETRYING:-}" ] && grep -q "before ctrl_tcp came up" "$dir/caller.out"; then
        log "$name: the caller did not start (its port taken?); running the case once more"
        kill "$agent_pid" "$CAPTURE_PID" 2>/dev/null || true
        wait "$agent_pid" "$CAPTURE_PID" 2>/dev/null || true
        CAPTURE_PID=""
        mv "$dir" "$dir.first-try"
        RETRYING=1 run_case "$@"
        return
    fi
    local agent_rc=0
    wait "$agent_pid" || agent_rc=$?
    sleep 0.5
    kill "$CAPTURE_PID" 2>/dev/null || true
    wait "$CAPTURE_PID" 2>/dev/null || true
    CAPTURE_PID=""

    local problems=()
    [ "$caller_rc" -eq 0 ] || problems+=("caller exit $caller_rc ($(tail -n 1 "$dir/caller.out"))")
    [ "$agent_rc" -eq 0 ] || problems+=("agent sipp exit $agent_rc")
    local token
    token=$(sed -n 's/.*agent token: \([0-9a-f]\{24\}\).*/\1/p' "$dir/agent_actions.log" 2>/dev/null | head -n 1)
    [ -n "$token" ] || problems+=("the agent saw no context token")

    local agent_heard
    agent_heard=$(rtp_to_wav "$dir/agent.pcap" "$agent_media" "$dir/agent_heard.wav" 2>&1 || true)
    local to_caller to_agent
    to_caller=$("$TOOLS/wav-similarity" "$dir/caller_heard.wav" "$WORK/agent_reference.wav" --min 0.8 2>&1 | tail -n 1 || true)
    to_agent=$("$TOOLS/wav-similarity" "$dir/agent_heard.wav" "$CALLER_SPEECH" --min 0.8 2>&1 | tail -n 1 || true)
    log "$name: caller heard the agent: $to_caller"
    log "$name: agent heard the caller ($agent_heard captured): $to_agent"
    [[ $to_caller == *" MATCH"* && $to_caller != *"NO MATCH"* ]] || problems+=("the caller did not hear the agent: $to_caller")
    [[ $to_agent == *" MATCH"* && $to_agent != *"NO MATCH"* ]] || problems+=("the agent did not hear the caller: $to_agent")

    local verdict=""
    for _ in $(seq 1 20); do
        verdict=$(python3 - "$WORK/hotline.db" "$token" <<'PY'
import sqlite3, sys
db, token = sqlite3.connect(sys.argv[1]), sys.argv[2]
ctx = db.execute("SELECT caller, level, target FROM transfer_contexts WHERE token = ?",
                 (token,)).fetchone()
call = db.execute("SELECT disposition, menu_path FROM calls WHERE caller = '13800138000' "
                  "ORDER BY id DESC").fetchone()
ok = (ctx == ("13800138000", "local_c", "agents") and call is not None
      and call[0] == "transferred" and "transferred to agents (bridged, " in call[1])
print(("PASS" if ok else "FAIL") + f" context {ctx}, call record {call[0] if call else None}")
PY
) || verdict="FAIL cannot read the store"
        [[ $verdict == PASS* ]] && break
        sleep 0.25
    done
    [[ $verdict == PASS* ]] || problems+=("store: $verdict")

    if [ ${#problems[@]} -eq 0 ]; then
        SUMMARY+=("$name PASS both legs ended; caller heard agent [$to_caller]; agent heard caller [$to_agent]; token $token")
    else
        SUMMARY+=("$name FAIL ${problems[*]}")
        FAILED=1
        [ -s "$dir/agent_errors.log" ] && head -n 20 "$dir/agent_errors.log"
        tail -n 15 "$dir/caller.out" || true
        grep -i 'transfer\|bridg\|agent' "$WORK/gateway.log" | tail -n 15 || true
    fi
}

run_case agent-bye bridge_agent_hangs_up.xml server 30
run_case caller-bye bridge_agent_answers_bye.xml client 16

stop_gateway || FAILED=1
echo
echo "IVR bridge suite (logs in $WORK):"
printf '  %s\n' "${SUMMARY[@]}"
if [ "$FAILED" -ne 0 ]; then echo "RESULT: FAIL"; exit 1; fi
echo "RESULT: PASS"
