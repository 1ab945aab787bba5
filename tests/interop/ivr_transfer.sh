#!/usr/bin/env bash
# IVR → agent by REFER (blind transfer, RFC 3515), the shipped 10000 plan
# driven by SIPp.
#
#   refer   a SIPp caller (tests/interop/scenarios/transfer_caller.xml) dials
#           10000 from 13800138000 (not on file) and presses 0 by RFC 2833;
#           the plan transfers to target "agents" (configured here, in
#           hotline.toml, as sip:agents@127.0.0.1:<a free port>). The
#           scenario receives the REFER, checks with <ereg> that its
#           Refer-To carries X-Customer-Level=local_c, X-Caller, a context
#           token and the token as User-to-User data (escaped), and
#           Referred-By the gateway's 10000; answers 202 and, as a phone
#           does, calls the Refer-To's URI with those headers. There a
#           second SIPp acting as the agent queue
#           (tests/interop/scenarios/transfer_queue.xml) checks the headers
#           in its INVITE and answers 200. The caller then NOTIFYs the
#           gateway a "SIP/2.0 200 OK" sipfrag (Subscription-State:
#           terminated) and expects its BYE. Both SIPps must pass, the queue
#           must have seen the caller's token, the store must hold the
#           token's context (caller, local_c, target agents) and the call
#           record must say "transferred".
#
# Usage: tests/interop/ivr_transfer.sh   (after `cargo build --release`;
# needs sip-tester and python3; run as root: play_pcap_audio uses a raw socket)
# Env:   HOTLINE_BIN, INTEROP_WORK (logs in $INTEROP_WORK/ivr_transfer)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=${INTEROP_WORK:-$ROOT/target/interop}/ivr_transfer
rm -rf "$WORK"
mkdir -p "$WORK"
# shellcheck source=tests/interop/lib.sh
. "$ROOT/tests/interop/lib.sh"
trap kill_gateway EXIT

command -v sipp >/dev/null || { echo "sipp is not installed (apt-get install sip-tester)"; exit 2; }
[ -x "$HOTLINE_BIN" ] || { echo "$HOTLINE_BIN not found: run cargo build --release"; exit 2; }
PCAP=/usr/share/sip-tester/dtmf_2833_0.pcap
[ -r "$PCAP" ] || { echo "$PCAP not found (sip-tester)"; exit 2; }

PORT=$(free_port 127.0.0.1)
QUEUE_PORT=$(free_port 127.0.0.1)
# The transfer targets live in the config file (a map has no environment
# form); the gateway reads hotline.toml from its working directory.
cat >"$WORK/hotline.toml" <<TOML
[transfer]
timeout_secs = 15

[transfer.targets.agents]
uri = "sip:agents@127.0.0.1:$QUEUE_PORT"
mode = "refer"

[transfer.targets.agents_priority]
uri = "sip:agents-priority@127.0.0.1:$QUEUE_PORT"
mode = "refer"
TOML
cd "$WORK"
export HOTLINE_IVR_DIALPLANS_DIR=$ROOT/dialplans
start_gateway 127.0.0.1 "$PORT" HOTLINE_CALLS_MAX_DURATION_SECS=120 \
    HOTLINE_TICKETS_SLA_FILE="$ROOT/sla.toml"

FAILED=0
SUMMARY=()

# The agent queue: a SIPp UAS on the target's port, in the background.
QUEUE_MEDIA_PORT=$(free_port 127.0.0.1)
queue_cmd=(sipp -sf "$ROOT/tests/interop/scenarios/transfer_queue.xml"
    -i 127.0.0.1 -p "$QUEUE_PORT" -mi 127.0.0.1 -mp "$QUEUE_MEDIA_PORT" -m 1
    -nostdin -timeout 80s -timeout_error
    -trace_msg -message_file "$WORK/queue_messages.log"
    -trace_err -error_file "$WORK/queue_errors.log"
    -trace_logs -log_file "$WORK/queue_actions.log"
    -trace_screen -screen_file "$WORK/queue_screen.log")
echo "${queue_cmd[*]}" >"$WORK/queue.cmd"
log "queue: ${queue_cmd[*]}"
timeout --foreground --kill-after=5 95 "${queue_cmd[@]}" >"$WORK/queue.out" 2>&1 &
QUEUE_PID=$!
sleep 0.5

SIP_PORT=$(free_port 127.0.0.1)
MEDIA_PORT=$(free_port 127.0.0.1)
cmd=(sipp -sf "$ROOT/tests/interop/scenarios/transfer_caller.xml" -s 10000 "127.0.0.1:$PORT"
    -i 127.0.0.1 -p "$SIP_PORT" -mi 127.0.0.1 -mp "$MEDIA_PORT" -m 1 -l 1
    -nostdin -timeout 60s -timeout_error
    -trace_msg -message_file "$WORK/sipp_messages.log"
    -trace_err -error_file "$WORK/sipp_errors.log"
    -trace_logs -log_file "$WORK/sipp_actions.log"
    -trace_screen -screen_file "$WORK/sipp_screen.log")
echo "${cmd[*]}" >"$WORK/sipp.cmd"
log "refer: ${cmd[*]}"
rc=0
timeout --foreground --kill-after=5 90 "${cmd[@]}" >"$WORK/sipp.out" 2>&1 || rc=$?
queue_rc=0
wait "$QUEUE_PID" || queue_rc=$?
token=$(sed -n 's/.*context token: \([0-9a-f]\{24\}\).*/\1/p' "$WORK/sipp_actions.log" 2>/dev/null | head -n 1)
queue_token=$(sed -n 's/.*queue token: \([0-9a-f]\{24\}\).*/\1/p' "$WORK/queue_actions.log" 2>/dev/null | head -n 1)
if [ "$queue_rc" -ne 0 ] || [ -z "$token" ] || [ "$queue_token" != "$token" ]; then
    log "FAIL queue: sipp exit $queue_rc, token at the queue '${queue_token}', caller's '${token}'"
    SUMMARY+=("queue     FAIL sipp exit $queue_rc, token '${queue_token}' vs '${token}'"); FAILED=1
    [ -s "$WORK/queue_errors.log" ] && head -n 30 "$WORK/queue_errors.log"
    tail -n 15 "$WORK/queue.out" | tr -d '\033' || true
else
    log "SIPp queue: INVITE with the context headers (token $queue_token), 200, ACK, BYE"
    SUMMARY+=("queue     PASS the transferred caller's INVITE carried the context (token $queue_token)")
fi
if [ "$rc" -eq 0 ]; then
    log "SIPp caller: REFER checked, 202, call to the queue, NOTIFY 200 sipfrag, BYE received"
    refer_line=$(grep -m 1 '^REFER\|Refer-To:' "$WORK/sipp_messages.log" || true)
    log "gateway's ${refer_line:-REFER (see sipp_messages.log)}"
    # The token resolves in the store, and the call is recorded as transferred
    # (the record is written as the call ends: allow it a moment).
    verdict=""
    for _ in $(seq 1 20); do
        verdict=$(python3 - "$WORK/hotline.db" "$token" <<'PY'
import sqlite3, sys
db, token = sqlite3.connect(sys.argv[1]), sys.argv[2]
ctx = db.execute("SELECT caller, level, target, ticket_number FROM transfer_contexts WHERE token = ?",
                 (token,)).fetchone()
call = db.execute("SELECT disposition FROM calls WHERE caller = '13800138000' ORDER BY id DESC").fetchone()
ok = ctx is not None and ctx[:3] == ("13800138000", "local_c", "agents") and call == ("transferred",)
print(("PASS" if ok else "FAIL") + f" context {ctx}, call record disposition {call}")
PY
) || verdict="FAIL cannot read the store"
        [[ $verdict == PASS* ]] && break
        sleep 0.25
    done
    log "store: $verdict"
    if [[ $verdict == PASS* ]]; then
        SUMMARY+=("refer     PASS token $token: $verdict")
    else
        SUMMARY+=("refer     FAIL $verdict"); FAILED=1
    fi
else
    log "FAIL refer: sipp exit $rc"
    SUMMARY+=("refer     FAIL sipp exit $rc"); FAILED=1
    [ -s "$WORK/sipp_errors.log" ] && head -n 30 "$WORK/sipp_errors.log"
    tail -n 15 "$WORK/sipp.out" | tr -d '\033' || true
    grep -i 'transfer\|REFER' "$WORK/gateway.log" | tail -n 10 || true
fi

stop_gateway || FAILED=1
echo
echo "IVR transfer suite (logs in $WORK):"
printf '  %s\n' "${SUMMARY[@]}"
if [ "$FAILED" -ne 0 ]; then echo "RESULT: FAIL"; exit 1; fi
echo "RESULT: PASS"
