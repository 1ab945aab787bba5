#!/usr/bin/env bash
# Outbound confirmation calls (修复确认) against SIPp callees: a fault ticket
# is created and resolved with the CLI; resolving it queues a confirmation
# call, which the gateway's outbound worker places through trunk "main", a
# SIPp UAS on loopback standing for the customer's phone
# (tests/interop/scenarios/outbound_*.xml). Each case runs a fresh gateway
# (SQLite, the shipped dialplans and prompts, hotline.toml written here)
# with an SMS outbox posting to fake_sms_provider.py, and checks the job's
# attempts on the ticket's history, the ticket's status and the texts:
#
#   a  answers, presses 1 (14 s in, after the number)  ticket confirmed, one
#                               attempt "completed"
#   b  answers, presses 2       ticket back in progress (reopened)
#   c  486 Busy, then answers   two attempts: busy, completed
#   d  never answers            CANCEL at the 3 s ring timeout, twice;
#                               given up, the "is it restored?" text sent
#   e  603 Decline              one attempt, never called again, text sent
#
# In case a the callee's received audio is captured (tshark) and decoded;
# wav-similarity must find the ticket's spoken digits in it (each digit's
# prompt, in order, above 0.8).
#
# Usage: tests/interop/outbound_confirm.sh   (after `cargo build --release`,
# or with HOTLINE_BIN=target/debug/hotline as CI runs it; needs
# sip-tester, tshark, sox, python3; as root for SIPp's play_pcap_audio and
# tshark). Takes about two minutes.
# Env:   HOTLINE_BIN, INTEROP_WORK (logs in $INTEROP_WORK/outbound_confirm),
#        SHARED_TOOLS (default ../shared/tools)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BASE=${INTEROP_WORK:-$ROOT/target/interop}/outbound_confirm
TOOLS=${SHARED_TOOLS:-$ROOT/../shared/tools}
rm -rf "$BASE"
mkdir -p "$BASE"
WORK=$BASE
# shellcheck source=tests/interop/lib.sh
. "$ROOT/tests/interop/lib.sh"
HOTLINE_BIN=$(cd "$(dirname "$HOTLINE_BIN")" && pwd)/$(basename "$HOTLINE_BIN")
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    kill_gateway
}
trap cleanup EXIT

require_tools sipp tshark sox python3
[ -x "$HOTLINE_BIN" ] || { echo "$HOTLINE_BIN not found: run cargo build --release"; exit 2; }
require_shared_tool wav-similarity
PCAPS=/usr/share/sip-tester
[ -r "$PCAPS/dtmf_2833_1.pcap" ] || { echo "$PCAPS/dtmf_2833_1.pcap not found (sip-tester)"; exit 2; }
CUSTOMER=13800138000

PROVIDER_HOLD=$(free_port 127.0.0.1)
PROVIDER_OK=$(free_port 127.0.0.1)
python3 "$ROOT/tests/interop/fake_sms_provider.py" "$PROVIDER_HOLD" "$PROVIDER_OK" \
    "$BASE/provider.log" >"$BASE/provider.out" 2>&1 &
PIDS+=("$!")
touch "$BASE/provider.log"

# The gateway's configuration for a case: trunk "main" to CALLEE_PORT.
write_config() { # DIR CALLEE_PORT ATTEMPTS
    cat >"$1/hotline.toml" <<EOF
[database]
url = "sqlite://$1/hotline.db"

[sms_outbox]
provider = "generic"
url = "http://127.0.0.1:$PROVIDER_OK/messages"
secret = "outbound"
poll_interval_ms = 200

[outbound]
enabled = true
poll_secs = 1

[outbound.trunks.main]
uri = "sip:{number}@127.0.0.1:$2"
ring_timeout_secs = 3

[outbound.confirm]
enabled = true
trunks = ["main"]
window = "00:00-23:59"
attempts = $3
busy_retry_secs = 2
no_answer_retry_secs = 1
failure_retry_secs = 1
EOF
}

# Creates a fault ticket for the customer and resolves it (in DIR, whose
# hotline.toml the CLI reads); prints its number.
resolved_ticket() { # DIR
    (
        cd "$1"
        local number
        number=$("$HOTLINE_BIN" ticket create --type fault_report --category bandwidth \
            --phone "$CUSTOMER" --description "专线中断" | awk '{print $2; exit}')
        for action in dispatch accept resolve; do
            "$HOTLINE_BIN" ticket transition "$number" "$action" --by wang.fang >/dev/null
        done
        echo "$number"
    )
}

# Starts SIPp as the callee: SCENARIO (already in DIR) for CALLS calls.
start_callee() { # DIR SCENARIO PORT MEDIA_PORT CALLS
    local cmd=(sipp -sf "$1/$2" -i 127.0.0.1 -p "$3" -mi 127.0.0.1 -mp "$4" -m "$5"
        -nostdin -timeout 80s -timeout_error
        -trace_msg -message_file "$1/callee_messages.log"
        -trace_err -error_file "$1/callee_errors.log"
        -trace_logs -log_file "$1/callee_actions.log")
    echo "${cmd[*]}" >"$1/callee.cmd"
    timeout --foreground --kill-after=5 90 "${cmd[@]}" >"$1/callee.out" 2>&1 &
    CALLEE_PID=$!
    PIDS+=("$CALLEE_PID")
}

# The ticket's history lines about outbound calls.
attempt_lines() { # DIR NUMBER
    (cd "$1" && "$HOTLINE_BIN" ticket show "$2") | grep -E 'outbound_call' || true
}

# Waits until the ticket's history shows COUNT attempts, or 60 s.
wait_attempts() { # DIR NUMBER COUNT
    local i
    for i in $(seq 1 120); do
        [ "$(attempt_lines "$1" "$2" | wc -l)" -ge "$3" ] && return 0
        sleep 0.5
    done
    return 1
}

ticket_status() { # DIR NUMBER
    (cd "$1" && "$HOTLINE_BIN" ticket show "$2") | awk '$1 == "status" {print $2; exit}'
}

# Texts the fake provider accepted for this ticket's resolution.
restored_texts() { # NUMBER
    grep -c "answer resolved:$1:" "$BASE/provider.log" || true
}

# RTP towards PORT in PCAP, PCMU decoded to an 8 kHz WAV.
rtp_to_wav() { # PCAP PORT OUT
    tshark -r "$1" -d "udp.port==$2,rtp" -Y "udp.dstport==$2 && rtp.p_type == 0" \
        -T fields -e rtp.payload 2>/dev/null |
        python3 -W ignore -c '
import audioop, sys, wave
pcm = b"".join(audioop.ulaw2lin(bytes.fromhex(l.strip().replace(":", "")), 2)
               for l in sys.stdin if l.strip())
with wave.open(sys.argv[1], "wb") as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(8000); w.writeframes(pcm)
' "$3"
}

run_case() { # NAME SCENARIO CALLS ATTEMPTS [KEY STATUS REASON]
    local name=$1 scenario=$2 calls=$3 attempts=$4 key=${5:-} status=${6:-} reason=${7:-}
    local dir=$BASE/$name
    mkdir -p "$dir"
    WORK=$dir
    local callee_port callee_media sip
    callee_port=$(free_port 127.0.0.1)
    callee_media=$(free_port 127.0.0.1)
    sip=$(free_port 127.0.0.1)
    write_config "$dir" "$callee_port" "$attempts"
    sed -e "s|KEY_PCAP|$PCAPS/dtmf_2833_${key:-1}.pcap|" -e "s|LISTEN_MS|${LISTEN_MS:-14000}|" \
        -e "s|STATUS|$status|" -e "s|REASON|$reason|" \
        "$ROOT/tests/interop/scenarios/$scenario" >"$dir/$scenario"
    CAPTURE_PID=""
    if [ "$name" = a-press-1 ]; then
        tshark -i lo -f "udp dst port $callee_media" -w "$dir/callee.pcap" -q >"$dir/tshark.log" 2>&1 &
        CAPTURE_PID=$!
        PIDS+=("$CAPTURE_PID")
        sleep 1
    fi
    (cd "$dir" && start_gateway 127.0.0.1 "$sip" HOTLINE_IVR_DIALPLANS_DIR="$ROOT/dialplans") || {
        fail "$name: the gateway did not start"
        return
    }
    start_callee "$dir" "$scenario" "$callee_port" "$callee_media" "$calls"
    NUMBER=$(resolved_ticket "$dir")
    log "$name: ticket $NUMBER resolved; the confirmation call is queued"
    local callee_rc=0
    wait "$CALLEE_PID" || callee_rc=$?
    [ "$callee_rc" -eq 0 ] || fail "$name: SIPp callee exited $callee_rc ($(tail -n 3 "$dir/callee_errors.log" 2>/dev/null | tr '\n' ' '))"
    if [ -n "${THEN_KEY:-}" ]; then
        sed -e "s|KEY_PCAP|$PCAPS/dtmf_2833_$THEN_KEY.pcap|" -e "s|LISTEN_MS|${LISTEN_MS:-14000}|" \
            "$ROOT/tests/interop/scenarios/outbound_answer_key.xml" >"$dir/then.xml"
        mv "$dir/callee_messages.log" "$dir/callee_messages.first.log" 2>/dev/null || true
        start_callee "$dir" then.xml "$callee_port" "$callee_media" 1
        callee_rc=0
        wait "$CALLEE_PID" || callee_rc=$?
        [ "$callee_rc" -eq 0 ] || fail "$name: the second SIPp callee exited $callee_rc"
    fi
    if [ -n "$CAPTURE_PID" ]; then
        sleep 0.5
        kill "$CAPTURE_PID" 2>/dev/null || true
        wait "$CAPTURE_PID" 2>/dev/null || true
        rtp_to_wav "$dir/callee.pcap" "$callee_media" "$dir/callee_heard.wav"
    fi
    CALLEE_MEDIA=$callee_media
    CASE_DIR=$dir
}

# Checks a case's outcome: ATTEMPTS history lines with CAUSES in order,
# the ticket's STATUS and TEXTS restored-texts sent.
check_case() { # NAME CAUSES STATUS TEXTS
    local name=$1 causes=$2 status=$3 texts=$4 count
    count=$(wc -w <<<"$causes")
    wait_attempts "$CASE_DIR" "$NUMBER" "$count" || fail "$name: fewer than $count attempts on the ticket"
    # The fallback text goes out a moment after the last attempt.
    sleep 2
    attempt_lines "$CASE_DIR" "$NUMBER" | tee "$CASE_DIR/attempts.txt"
    local seen
    seen=$(grep -oE 'attempt [0-9]+ via main: [a-z_]+' "$CASE_DIR/attempts.txt" | awk '{print $5}' | xargs)
    [ "$seen" = "$causes" ] || fail "$name: attempts ended [$seen], expected [$causes]"
    local got
    got=$(ticket_status "$CASE_DIR" "$NUMBER")
    [ "$got" = "$status" ] || fail "$name: ticket is $got, expected $status"
    local sent
    sent=$(restored_texts "$NUMBER")
    [ "$sent" = "$texts" ] || fail "$name: $sent 'is it restored?' texts sent, expected $texts"
    stop_gateway || fail "$name: the gateway did not stop cleanly"
    log "$name: attempts [$seen], ticket $got, texts $sent"
}

run_case a-press-1 outbound_answer_key.xml 1 3 1
check_case a-press-1 "completed" confirmed 0
# The customer heard the ticket number: its digits' prompts, back to back
# as the gateway says a number, found in what the callee received.
mapfile -t DIGIT_WAVS < <(grep -o . <<<"$NUMBER" | sed "s|.*|$ROOT/prompts/zh/digits/&.wav|")
sox "${DIGIT_WAVS[@]}" "$CASE_DIR/number_expected.wav"
HEARD=$("$TOOLS/wav-similarity" "$CASE_DIR/callee_heard.wav" "$CASE_DIR/number_expected.wav" --min 0.8 2>&1 | tail -n 1 || true)
log "a-press-1: ticket number in the callee's audio: $HEARD"
grep -q -- "-> MATCH" <<<"$HEARD" || fail "a-press-1: the ticket number was not heard ($HEARD)"

run_case b-press-2 outbound_answer_key.xml 1 3 2
check_case b-press-2 "completed" in_progress 0

# Busy: one SIPp answers 486 and exits; the next, on the same port,
# answers the retry 2 s later (THEN_KEY).
THEN_KEY=1 run_case c-busy-then-answer outbound_final.xml 1 3 "" 486 "Busy Here"
check_case c-busy-then-answer "busy completed" confirmed 0

run_case d-no-answer outbound_no_answer.xml 2 2
check_case d-no-answer "no_answer no_answer" resolved 1

run_case e-decline outbound_final.xml 1 3 "" 603 Decline
check_case e-decline "declined" resolved 1

if [ "$FAILURES" -gt 0 ]; then
    log "outbound_confirm: $FAILURES failure(s); logs in $BASE"
    exit 1
fi
log "outbound_confirm: all cases passed"
