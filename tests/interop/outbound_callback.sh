#!/usr/bin/env bash
# The callback path (回呼) end to end with SIPp on every side: a caller
# (../shared/tools/sipp-ivr-call, number 13800138000) dials 10000 and keys
# 0; the agents (a SIPp UAS on transfer target "agents", mode bridge) are
# busy (486); the caller hears "all agents busy, press 1", keys 1, hears
# the request read back and hangs up. The request is a
# consultation ticket with a callback job. delay_secs (4) later the gateway
# calls the caller back through trunk "main" (a SIPp UAS standing for the
# caller's phone, tests/interop/scenarios/callback_customer.xml), says who
# calls and bridges them to the agents, now answering
# (callback_agent.xml), whose INVITE must carry the ticket (X-Ticket-Number,
# the same number the customer's INVITE named) and the caller
# (X-Caller). The agent hangs up after 3 s; the customer's leg is ended.
# Then the job must be done (outcome completed, one attempt), and the
# ticket's history must show the request and the completed attempt.
#
# Usage: tests/interop/outbound_callback.sh   (after `cargo build --release`,
# or with HOTLINE_BIN=target/debug/hotline as CI runs it; needs sip-tester
# and python3, as root for SIPp's play_pcap_audio). Takes about 40 s.
# Env:   HOTLINE_BIN, INTEROP_WORK (logs in $INTEROP_WORK/outbound_callback),
#        SHARED_TOOLS (default ../shared/tools)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BASE=${INTEROP_WORK:-$ROOT/target/interop}/outbound_callback
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

require_tools sipp python3
[ -x "$HOTLINE_BIN" ] || { echo "$HOTLINE_BIN not found: run cargo build --release"; exit 2; }
require_shared_tool sipp-ivr-call
CALLER=13800138000

SIP=$(free_port 127.0.0.1)
AGENT_PORT=$(free_port 127.0.0.1)
AGENT_MEDIA=$(free_port 127.0.0.1)
CUSTOMER_PORT=$(free_port 127.0.0.1)
CUSTOMER_MEDIA=$(free_port 127.0.0.1)

cat >"$BASE/hotline.toml" <<EOF
[database]
url = "sqlite://$BASE/hotline.db"

[transfer]
ring_timeout_secs = 10

[transfer.targets.agents]
uri = "sip:agents@127.0.0.1:$AGENT_PORT"
mode = "bridge"

[outbound]
enabled = true
poll_secs = 1

[outbound.trunks.main]
uri = "sip:{number}@127.0.0.1:$CUSTOMER_PORT"
ring_timeout_secs = 10

[outbound.callback]
enabled = true
trunks = ["main"]
window = "00:00-23:59"
attempts = 2
delay_secs = 4
no_answer_retry_secs = 2
EOF

# SIPp as a UAS: SCENARIO (in $BASE) on PORT for one call; sets UAS_PID.
start_uas() { # NAME SCENARIO PORT MEDIA_PORT
    local cmd=(sipp -sf "$BASE/$2" -i 127.0.0.1 -p "$3" -mi 127.0.0.1 -mp "$4" -m 1
        -nostdin -timeout 90s -timeout_error
        -trace_msg -message_file "$BASE/$1_messages.log"
        -trace_err -error_file "$BASE/$1_errors.log"
        -trace_logs -log_file "$BASE/$1_actions.log")
    echo "${cmd[*]}" >"$BASE/$1.cmd"
    timeout --foreground --kill-after=5 100 "${cmd[@]}" >"$BASE/$1.out" 2>&1 &
    UAS_PID=$!
    PIDS+=("$UAS_PID")
}

wait_uas() { # NAME PID
    local rc=0
    wait "$2" || rc=$?
    [ "$rc" -eq 0 ] || fail "$1: SIPp exited $rc ($(tail -n 3 "$BASE/$1_errors.log" 2>/dev/null | tr '\n' ' '))"
}

sed -e "s|STATUS|486|" -e "s|REASON|Busy Here|" \
    "$ROOT/tests/interop/scenarios/outbound_final.xml" >"$BASE/agent_busy.xml"
cp "$ROOT/tests/interop/scenarios/callback_agent.xml" "$ROOT/tests/interop/scenarios/callback_customer.xml" "$BASE/"

(cd "$BASE" && start_gateway 127.0.0.1 "$SIP" HOTLINE_IVR_DIALPLANS_DIR="$ROOT/dialplans") || {
    echo "RESULT: FAIL (the gateway did not start)"
    exit 1
}
# The agents are busy for the first call; the customer's phone waits for
# the callback from the start.
start_uas agent_busy agent_busy.xml "$AGENT_PORT" "$AGENT_MEDIA"
BUSY_PID=$UAS_PID
start_uas customer callback_customer.xml "$CUSTOMER_PORT" "$CUSTOMER_MEDIA"
CUSTOMER_PID=$UAS_PID

# 0 at 1 s ("transferring", the agents' 486), then 1 seven seconds later,
# during "all agents busy, press 1"; the caller hears the request read
# back (ticket number, "an agent will call you back") and hangs up.
log "caller: 0, agents busy, then 1"
"$TOOLS/sipp-ivr-call" --target "127.0.0.1:$SIP" --dest 10000 --from-user "$CALLER" \
    --digits "0,1" --gap 7 --hold 15 --hangup client --workdir "$BASE/caller" \
    >"$BASE/caller.out" 2>&1 &
CALLER_PID=$!
PIDS+=("$CALLER_PID")
# Once the busy agent has answered its one call, the agents answer: the
# callback comes delay_secs (4) after the caller's 1.
wait_uas agent_busy "$BUSY_PID"
start_uas agent callback_agent.xml "$AGENT_PORT" "$AGENT_MEDIA"
AGENT_PID=$UAS_PID
caller_rc=0
wait "$CALLER_PID" || caller_rc=$?
[ "$caller_rc" -eq 0 ] || fail "caller: sipp-ivr-call exited $caller_rc ($(tail -n 1 "$BASE/caller.out"))"
log "caller: $(grep -E '^  call 1' "$BASE/caller.out" || true)"
log "waiting for the callback"
wait_uas customer "$CUSTOMER_PID"
wait_uas agent "$AGENT_PID"

customer_ticket=$(sed -n 's/.*customer INVITE for ticket \([0-9]*\).*/\1/p' "$BASE/customer_actions.log" | head -n 1)
agent_ticket=$(sed -n 's/.*agent INVITE for ticket \([0-9]*\).*/\1/p' "$BASE/agent_actions.log" | head -n 1)
log "the customer's INVITE named ticket [$customer_ticket], the agent's [$agent_ticket]"
[ -n "$customer_ticket" ] || fail "the callback INVITE named no ticket"
[ "$customer_ticket" = "$agent_ticket" ] || fail "the agent got ticket [$agent_ticket], not [$customer_ticket]"

# The attempt is recorded when the bridged call ends: give it a moment.
history=""
for _ in $(seq 1 40); do
    history=$(cd "$BASE" && "$HOTLINE_BIN" ticket show "$customer_ticket" 2>/dev/null || true)
    grep -q 'outbound_call' <<<"$history" && break
    sleep 0.5
done
echo "$history" >"$BASE/ticket.txt"
grep -q 'callback_requested' <<<"$history" || fail "no callback_requested on the ticket's history"
attempts=$(grep -c 'outbound_call' <<<"$history" || true)
[ "$attempts" -eq 1 ] || fail "$attempts outbound_call lines on the history, expected 1"
grep 'outbound_call' <<<"$history" | grep -q 'completed' || fail "the attempt is not completed: $(grep outbound_call <<<"$history")"
log "ticket $customer_ticket history: $(grep -E 'callback_requested|outbound_call' <<<"$history" | tr -s ' ' | tr '\n' ';')"

stop_gateway || fail "the gateway did not stop cleanly"
result "$BASE"
