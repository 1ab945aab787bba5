#!/usr/bin/env bash
# Scale-out interop: two gateways (127.0.0.2 and 127.0.0.3) sharing one
# PostgreSQL scratch schema, behind Kamailio with the shipped configuration
# (packaging/kamailio/kamailio.cfg; only its listen socket and dispatcher
# list path substituted). SIPp callers (../shared/tools/sipp-ivr-call) talk
# to Kamailio only.
#
#   1. calls     calls through Kamailio are answered by both instances
#                (counted per instance from each gateway's log); a fault
#                report (100009) creates exactly one ticket;
#   2. route     that fault call's BYE, sent by the gateway, reaches the
#                caller through Kamailio (its top Via is Kamailio's), the
#                200 carried Kamailio's Record-Route and the Contact of the
#                instance that answered;
#   3. kill -9   one instance is killed in the middle of a run of calls and
#                fault reports: every failed call was up on the dead instance,
#                every other call (new ones included) is answered within 6 s
#                (2 s probing interval + one 2 s retry + margin), and every
#                fault report that was read out has exactly one ticket;
#   4. drain     SIGTERM to one instance under load: no call fails (its
#                probes and new INVITEs get 503, Kamailio moves on), it
#                takes no new call, its live calls finish, it exits 0.
#   5. sms       SMS webhooks alternate between the instances: fault texts
#                open their tickets, one sender's rate limit holds across
#                both (told once); the outbox of an instance killed while a
#                provider held its texts: every queued text is accepted by
#                the provider exactly once (fake_sms_provider.py counts
#                idempotency keys), the held ones resent after the lease.
#
# Usage: tests/interop/scale_out.sh   (as root; needs sip-tester, psql,
# python3, Kamailio (installed with apt-get when missing), PostgreSQL at
# DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test); exits 2
# when something it needs is missing)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TOOLS=${SHARED_TOOLS:-$ROOT/../shared/tools}
WORK=${INTEROP_WORK:-$ROOT/target/interop}/scale_out
rm -rf "$WORK"
mkdir -p "$WORK"
# shellcheck source=tests/interop/lib.sh
. "$ROOT/tests/interop/lib.sh"

require_tools sipp psql python3
require_shared_tool sipp-ivr-call
if ! command -v kamailio >/dev/null || ! command -v kamcmd >/dev/null; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "kamailio is not installed (and installing it needs root)"
        exit 2
    fi
    log "installing kamailio"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kamailio ||
        { echo "cannot install kamailio"; exit 2; }
fi

DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
if ! psql "$DATABASE_URL" -qAtc 'SELECT 1' >/dev/null 2>&1; then
    echo "PostgreSQL is not reachable at DATABASE_URL (${DATABASE_URL%%@*}@…)"
    exit 2
fi
SCHEMA=hotline_scale_out_$$
psql "$DATABASE_URL" -qc "DROP SCHEMA IF EXISTS $SCHEMA CASCADE; CREATE SCHEMA $SCHEMA" >/dev/null
case $DATABASE_URL in *\?*) SEP='&' ;; *) SEP='?' ;; esac
DB_URL="${DATABASE_URL}${SEP}options=-c%20search_path%3D${SCHEMA}"

GW_IP=(127.0.0.2 127.0.0.3)
GW_PORT=("$(free_port 127.0.0.2)" "$(free_port 127.0.0.3)")
GW_HTTP=("$(free_port 127.0.0.2)" "$(free_port 127.0.0.3)")
GW_PID=("" "")
GW_LOG=("$WORK/gw1.log" "$WORK/gw2.log")
KAM_PORT=$(free_port 127.0.0.1)
KAM="127.0.0.1:$KAM_PORT"
KAM_PID=""
CALLER_PIDS=()

cleanup() {
    local pid
    for pid in "${GW_PID[@]}" "${CALLER_PIDS[@]}" "$KAM_PID"; do
        [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    psql "$DATABASE_URL" -qc "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# start_instance I [VAR=VALUE...]: gateway I on GW_IP[I] (with the extra
# settings given), logging to GW_LOG[I]; waits until it answers OPTIONS
# (15 s at most).
start_instance() {
    local i=$1 ip=${GW_IP[$1]} n
    shift
    env -u HOTLINE_BIN \
        HOTLINE_SIP_UDP="$ip:${GW_PORT[$i]}" \
        HOTLINE_SIP_TCP="$ip:${GW_PORT[$i]}" \
        HOTLINE_SIP_ADVERTISED_ADDRESS="$ip" \
        HOTLINE_MEDIA_RTP_BIND="$ip" \
        HOTLINE_HTTP_LISTEN="$ip:${GW_HTTP[$i]}" \
        HOTLINE_DATABASE_URL="$DB_URL" \
        HOTLINE_PROMPTS_DIR="$ROOT/prompts" \
        HOTLINE_IVR_DIALPLANS_DIR="$ROOT/dialplans" \
        HOTLINE_TICKETS_SLA_FILE="$ROOT/sla.toml" \
        HOTLINE_MEDIA_TIMEOUT_SECS=6 \
        HOTLINE_SHUTDOWN_DRAIN_TIMEOUT_SECS=30 \
        HOTLINE_LOG_LEVEL=info \
        "$@" "$HOTLINE_BIN" serve >"${GW_LOG[$i]}" 2>&1 &
    GW_PID[i]=$!
    for n in $(seq 1 150); do
        if ! kill -0 "${GW_PID[$i]}" 2>/dev/null; then
            log "FAIL: gateway $ip exited during start-up:"; tail -n 20 "${GW_LOG[$i]}"
            exit 1
        fi
        if [ "$(options_status "$ip" "${GW_PORT[$i]}")" = 200 ]; then
            log "gateway $ip:${GW_PORT[$i]} (pid ${GW_PID[$i]}) answers after ~$((n / 10)) s"
            return 0
        fi
        sleep 0.1
    done
    log "FAIL: gateway $ip did not answer OPTIONS within 15 s"; tail -n 20 "${GW_LOG[$i]}"
    exit 1
}

# One OPTIONS over UDP to IP PORT; prints the status code of the answer
# (none: no answer within a second). lib.sh's sip_ping only talks to
# 127.0.0.1 and ::1.
options_status() {
    python3 - "$1" "$2" <<'PY'
import socket, sys, uuid
host, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((host, 0))
s.settimeout(1.0)
me = "%s:%d" % s.getsockname()
tag = uuid.uuid4().hex
s.sendto((f"OPTIONS sip:{host}:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{tag};rport\r\n"
          f"Max-Forwards: 70\r\nFrom: <sip:ping@{me}>;tag={tag[:8]}\r\nTo: <sip:{host}:{port}>\r\n"
          f"Call-ID: {tag}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode(), (host, port))
try:
    print(s.recv(65535).split(b" ", 2)[1].decode())
except (OSError, IndexError):
    print("none")
PY
}

gw_uri() { echo "sip:${GW_IP[$1]}:${GW_PORT[$1]}"; }

# The dispatcher's flags for a gateway (AP: active, IP: inactive; both probed).
ds_flags() {
    kamcmd dispatcher.list 2>/dev/null | awk -v uri="URI: $1" '$0 ~ uri { getline; print $2; exit }'
}

# wait_ds URI PREFIX SECS: waits until the flags start with PREFIX; prints
# the milliseconds it took, fails after SECS.
wait_ds() {
    local start now
    start=$(date +%s%3N)
    while true; do
        now=$(date +%s%3N)
        case $(ds_flags "$1") in "$2"*) echo $((now - start)); return 0 ;; esac
        [ $((now - start)) -lt $(($3 * 1000)) ] || return 1
        sleep 0.1
    done
}

# Call-IDs a SIPp run used, and those a gateway log shows as incoming
# (ever, or still up: incoming and never ended).
run_call_ids() { tr -d '\r' <"$1/messages.log" | sed -n 's/^Call-ID: //p' | sort -u; }
incoming_ids() { grep -a 'incoming call' "$1" | grep -oE 'call_id=[^}]+' | cut -d= -f2 | sort -u; }
ended_ids() { grep -a 'call ended' "$1" | grep -oE 'call_id=[^ ]+' | cut -d= -f2 | sort -u; }
calls_on() { comm -12 <(run_call_ids "$1") <(incoming_ids "$2") | wc -l; }

# json FILE KEY: one top-level value of sipp-ivr-call's --json output.
json() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

# Load: N calls at RATE per second to 10000, each hung up by the caller
# after 4 s (below the gateways' 6 s media timeout), answered within 6 s.
load() {
    local name=$1 calls=$2 rate=$3
    mkdir -p "$WORK/$name"
    timeout --foreground 120 "$TOOLS/sipp-ivr-call" --target "$KAM" --dest 10000 \
        --calls "$calls" --rate "$rate" --delay 1 --hold 3 --hangup client \
        --answer-timeout 6 --workdir "$WORK/$name" --json >"$WORK/$name.json" 2>"$WORK/$name.err" || true
}

# A fault report from PHONE: 100009, a service number, confirm, category 1,
# and # to skip describing the fault. The gateway ends the call after the
# read-back (6 s without RTP).
fault_report() {
    local name=$1 phone=$2
    mkdir -p "$WORK/$name"
    timeout --foreground 120 "$TOOLS/sipp-ivr-call" --target "$KAM" --dest 100009 \
        --from-user "$phone" --digits "55512345#,1,1,#" --delay 2 --hold 15 --hangup server \
        --answer-timeout 6 --workdir "$WORK/$name" >"$WORK/$name.out" 2>&1
}

tickets_of() {
    HOTLINE_DATABASE_URL="$DB_URL" HOTLINE_TICKETS_SLA_FILE="$ROOT/sla.toml" \
        "$HOTLINE_BIN" ticket list --phone "$1" | grep -cE '^[0-9]{10} ' || true
}

FAILED=0
SUMMARY=()
pass() { log "PASS $1: $2"; SUMMARY+=("$1 PASS ($2)"); }
fail() { log "FAIL $1: $2"; SUMMARY+=("$1 FAIL ($2)"); FAILED=1; }

# ---- Gateways (one after the other: the first migrates the schema) and Kamailio.
start_instance 0
start_instance 1
printf '1 %s 0 0 name=gw1\n1 %s 0 0 name=gw2\n' "$(gw_uri 0)" "$(gw_uri 1)" >"$WORK/dispatcher.list"
sed -e "s|^#!substdef \"!HOTLINE_LISTEN!.*|#!substdef \"!HOTLINE_LISTEN!udp:$KAM!g\"|" \
    -e "s|^#!substdef \"!HOTLINE_DISPATCHER_LIST!.*|#!substdef \"!HOTLINE_DISPATCHER_LIST!$WORK/dispatcher.list!g\"|" \
    "$ROOT/packaging/kamailio/kamailio.cfg" >"$WORK/kamailio.cfg"
if [ "$(diff "$ROOT/packaging/kamailio/kamailio.cfg" "$WORK/kamailio.cfg" | grep -c '^>')" -ne 2 ]; then
    echo "FAIL: the shipped kamailio.cfg lost its two marked substdef lines"; exit 1
fi
mkdir -p /run/kamailio # kamcmd's control socket lives here
kamailio -DD -E -f "$WORK/kamailio.cfg" >"$WORK/kamailio.log" 2>&1 &
KAM_PID=$!
for i in 0 1; do
    if ! wait_ds "$(gw_uri $i)" AP 15 >/dev/null; then
        echo "FAIL: Kamailio does not see gateway $(gw_uri $i) active; log tail:"
        tail -n 20 "$WORK/kamailio.log"; exit 1
    fi
done
log "Kamailio on $KAM (pid $KAM_PID) sees both gateways active"

# ---- 1 and 2: calls reach both instances; a fault report; its BYE via Kamailio.
log "1: 10 calls and a fault report through Kamailio"
fault_report fault 13800138000 &
FAULT_PID=$!
CALLER_PIDS+=("$FAULT_PID")
load calls 10 5
fault_ok=0
wait "$FAULT_PID" && fault_ok=1
ok=$(json "$WORK/calls.json" successful_calls)
on1=$(calls_on "$WORK/calls" "${GW_LOG[0]}")
on2=$(calls_on "$WORK/calls" "${GW_LOG[1]}")
if [ "$ok" -eq 10 ] && [ "$on1" -ge 1 ] && [ "$on2" -ge 1 ] && [ $((on1 + on2)) -eq 10 ]; then
    pass calls "10/10 answered: $on1 on ${GW_IP[0]}, $on2 on ${GW_IP[1]}"
else
    fail calls "$ok/10 answered: $on1 on ${GW_IP[0]}, $on2 on ${GW_IP[1]}"
fi
count=$(tickets_of 13800138000)
if [ "$fault_ok" -eq 1 ] && [ "$count" -eq 1 ]; then
    pass fault "hung up by the gateway after the read-back; 1 ticket"
else
    fail fault "caller ok=$fault_ok, tickets=$count"; tail -n 5 "$WORK/fault.out"
fi
# The caller's view of the fault call: the 200's Record-Route and Contact,
# and the top Via of the BYE the gateway sent.
python3 - "$WORK/fault/messages.log" "$KAM" "${GW_IP[0]}:${GW_PORT[0]}" "${GW_IP[1]}:${GW_PORT[1]}" >"$WORK/route.txt" <<'PY' || true
import re, sys
log, proxy, gateways = open(sys.argv[1], errors="replace").read(), sys.argv[2], sys.argv[3:]
blocks = re.split(r"\n-{10,}[^\n]*\n", log.replace("\r", ""))
def received(start):
    return [b.split(":\n", 1)[1].strip() for b in blocks
            if "message received" in b.split("\n", 1)[0] and ":\n" in b
            and b.split(":\n", 1)[1].strip().startswith(start)]
ok200 = [m for m in received("SIP/2.0 200") if "INVITE" in (re.findall(r"^CSeq: (.*)$", m, re.M) or [""])[0]]
byes = received("BYE ")
problems = []
if not ok200:
    problems.append("no 200 to the INVITE")
else:
    rr = re.findall(r"^Record-Route: (.*)$", ok200[0], re.M)
    contact = re.findall(r"^Contact: (.*)$", ok200[0], re.M)
    if not rr or proxy not in rr[0]:
        problems.append("200 without Kamailio's Record-Route: %s" % rr)
    if not contact or not any("@%s>" % g in contact[0] for g in gateways):
        problems.append("200's Contact names no instance: %s" % contact)
if not byes:
    problems.append("no BYE received")
else:
    vias = re.findall(r"^Via: (.*)$", byes[0], re.M)
    if len(vias) < 2 or proxy not in vias[0] or not any(g in vias[1] for g in gateways):
        problems.append("BYE did not come through Kamailio: Via %s" % vias)
print("; ".join(problems) if problems else "ok")
PY
if [ "$(cat "$WORK/route.txt")" = ok ]; then
    pass route "the 200 carried Kamailio's Record-Route and the instance's Contact; the gateway's BYE came via $KAM"
else
    fail route "$(cat "$WORK/route.txt")"
fi

# ---- 3: kill -9 of one instance in the middle of a run.
log "3: 4 fault reports, then 30 calls; kill -9 of ${GW_IP[1]} 3 s into the calls"
# The fault reports' INVITEs go out one by one before the calls' (round
# robin spreads them; which instance each lands on is not fixed).
FAULT_PIDS=()
for n in 1 2 3 4; do
    fault_report "kill-fault$n" "1380013810$n" &
    FAULT_PIDS+=("$!")
    CALLER_PIDS+=("$!")
    sleep 0.4
done
load kill 30 5 &
LOAD_PID=$!
CALLER_PIDS+=("$LOAD_PID")
sleep 3
KILLED_AT=$(date +%s%3N)
kill -KILL "${GW_PID[1]}"
wait "${GW_PID[1]}" 2>/dev/null || true
GW_PID[1]=""
if marked=$(wait_ds "$(gw_uri 1)" I 10); then
    log "Kamailio marked the dead instance inactive after $marked ms"
else
    marked="never"
fi
wait "$LOAD_PID" || true
fault_results=()
for n in 1 2 3 4; do
    if wait "${FAULT_PIDS[$((n - 1))]}"; then fault_results+=(1); else fault_results+=(0); fi
done
# The run's calls the dead instance had up when it died: incoming, never ended.
comm -12 <(comm -23 <(incoming_ids "${GW_LOG[1]}") <(ended_ids "${GW_LOG[1]}")) \
    <(run_call_ids "$WORK/kill") >"$WORK/lost-ids.txt"
python3 - "$WORK/kill.json" "$WORK/lost-ids.txt" >"$WORK/kill.txt" <<'PY' || true
import json, sys
res = json.load(open(sys.argv[1]))
lost = {line.strip().split("-", 1)[0] for line in open(sys.argv[2]) if line.strip()}
calls = res["per_call"]
failed = [n for n in map(str, range(1, res["calls"] + 1)) if not calls.get(n, {}).get("ok")]
unexplained = [n for n in failed if n not in lost]
print(len(failed), res["successful_calls"], ",".join(unexplained) or "-")
PY
read -r failed ok unexplained <"$WORK/kill.txt" || { failed=?; ok=?; unexplained=?; }
# The longest wait from INVITE to 200 among the run's calls sent after the kill.
slowest=$(python3 - "$WORK/kill/messages.log" "$KILLED_AT" <<'PY'
import re, sys
from datetime import datetime, timezone
text = open(sys.argv[1], errors="replace").read().replace("\r", "")
killed = float(sys.argv[2]) / 1000
sent, answered = {}, {}
for stamp, body in re.findall(r"^-{10,} (\d{4}-\d\d-\d\d [\d:.]+)\n(.*?)(?=^-{10,}|\Z)", text, re.M | re.S):
    at = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()
    call = re.search(r"^Call-ID: (\S+)", body, re.M)
    cseq = re.search(r"^CSeq: \d+ (\w+)", body, re.M)
    if not call or not cseq or cseq.group(1) != "INVITE":
        continue
    if "message sent" in body and "\nINVITE " in body:
        sent.setdefault(call.group(1), at)
    elif "message received" in body and "\nSIP/2.0 200" in body:
        answered.setdefault(call.group(1), at)
waits = [answered[c] - t for c, t in sent.items() if t >= killed and c in answered]
print("%.1f %d" % (max(waits), len(waits)) if waits else "- 0")
PY
)
read -r slowest after_kill <<<"$slowest"
lost=$(wc -l <"$WORK/lost-ids.txt")
if [ "$unexplained" = "-" ] && [ "$lost" -ge 1 ] && [ "$marked" != never ] && [ "$after_kill" -ge 1 ] &&
    python3 -c "import sys; sys.exit(not float('$slowest') <= 5.0)" 2>/dev/null; then
    pass kill "$ok/30 answered, $failed failed, all of them up on the killed instance ($lost calls were up there); $after_kill calls after the kill answered in at most $slowest s; marked inactive after $marked ms"
else
    fail kill "$ok/30 answered, $failed failed; not up on the killed instance: $unexplained; calls after the kill: $after_kill, slowest answer $slowest s (at most 5 s wanted); marked inactive: $marked ms"
fi
tickets_ok=1
details=()
for n in 1 2 3 4; do
    count=$(tickets_of "1380013810$n")
    details+=("caller $n: ok=${fault_results[$((n - 1))]} tickets=$count")
    if [ "${fault_results[$((n - 1))]}" -eq 1 ] && [ "$count" -ne 1 ]; then tickets_ok=0; fi
    if [ "$count" -gt 1 ]; then tickets_ok=0; fi
done
read_out=$(printf '%s\n' "${fault_results[@]}" | grep -c 1 || true)
if [ "$tickets_ok" -eq 1 ] && [ "$read_out" -ge 1 ]; then
    pass tickets "$read_out of 4 fault reports read out, each with exactly one ticket (${details[*]})"
else
    fail tickets "${details[*]}"
fi

# ---- 4: SIGTERM (drain) of one instance under load.
log "4: ${GW_IP[1]} back; 30 calls; SIGTERM to ${GW_IP[0]} after 3 s"
GW_LOG[1]=$WORK/gw2-restarted.log
start_instance 1
wait_ds "$(gw_uri 1)" AP 10 >/dev/null || fail drain "the restarted instance was not marked active"
load drain 30 5 &
LOAD_PID=$!
CALLER_PIDS+=("$LOAD_PID")
sleep 3
up_at_term=$(($(incoming_ids "${GW_LOG[0]}" | wc -l) - $(ended_ids "${GW_LOG[0]}" | wc -l)))
kill -TERM "${GW_PID[0]}"
sleep 0.3
probe=$(options_status "${GW_IP[0]}" "${GW_PORT[0]}")
if marked=$(wait_ds "$(gw_uri 0)" I 10); then
    log "Kamailio marked the draining instance inactive after $marked ms"
else
    marked="never"
fi
status=0
for n in $(seq 1 400); do
    kill -0 "${GW_PID[0]}" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "${GW_PID[0]}" 2>/dev/null; then
    status=timeout
    kill -KILL "${GW_PID[0]}"
fi
wait "${GW_PID[0]}" || status=$?
GW_PID[0]=""
wait "$LOAD_PID" || true
ok=$(json "$WORK/drain.json" successful_calls)
after_term=$(sed -n '/draining: new calls get 503/,$p' "${GW_LOG[0]}" | grep -ac 'incoming call' || true)
still_up=$(comm -23 <(incoming_ids "${GW_LOG[0]}") <(ended_ids "${GW_LOG[0]}") | wc -l)
failovers=$(grep -ac "gateway $(gw_uri 0) failed (503)" "$WORK/kamailio.log" || true)
if [ "$ok" -eq 30 ] && [ "$status" = 0 ] && [ "$after_term" -eq 0 ] && [ "$still_up" -eq 0 ] &&
    [ "$marked" != never ] && [ "$probe" = 503 ]; then
    pass drain "30/30 answered; OPTIONS got 503; $failovers INVITEs refused 503 and failed over; marked inactive after $marked ms; $up_at_term calls up at SIGTERM finished, no new call taken; exit 0"
else
    fail drain "$ok/30 answered; OPTIONS got $probe; exit status $status; new calls taken while draining: $after_term; calls not finished: $still_up; marked inactive: $marked ms"
fi

# ---- 5: SMS webhooks over both instances, and the outbox when one dies.
# The outbox of the first instance posts to a provider port that never
# answers; once it has sent a text, that instance is killed (-9) with the
# texts it claimed; the others' lease (4 s) runs out and they are sent by
# the instances restarted with a provider that answers. Every queued text
# must reach that provider's answering side exactly once (by idempotency
# key). Then texts from one sender alternate between the instances: the
# rate limit (5 a minute) holds across them, and the sender is told once.
log "5: SMS over both instances; the outbox when an instance dies holding texts"
kill -TERM "${GW_PID[1]}"
wait "${GW_PID[1]}" || fail stop "${GW_IP[1]} exited with $? after SIGTERM before step 5"
GW_PID[1]=""
PROVIDER_HOLD=$(free_port 127.0.0.1)
PROVIDER_OK=$(free_port 127.0.0.1)
python3 "$ROOT/tests/interop/fake_sms_provider.py" "$PROVIDER_HOLD" "$PROVIDER_OK" \
    "$WORK/provider.log" >"$WORK/provider.out" 2>&1 &
CALLER_PIDS+=("$!")
sms_env() { # PROVIDER_PORT
    echo HOTLINE_SMS_GENERIC_SECRET=scale-out HOTLINE_SMS_MAX_PER_SENDER_PER_MINUTE=5 \
        HOTLINE_SMS_OUTBOX_PROVIDER=generic HOTLINE_SMS_OUTBOX_URL="http://127.0.0.1:$1/messages" \
        HOTLINE_SMS_OUTBOX_SECRET=scale-out HOTLINE_SMS_OUTBOX_LEASE_SECS=4 \
        HOTLINE_SMS_OUTBOX_REQUEST_TIMEOUT_MS=3000 HOTLINE_SMS_OUTBOX_POLL_INTERVAL_MS=200
}
psql_count() { psql "$DB_URL" -qAtc "$1"; }
queued=$(psql_count "SELECT count(*) FROM outbox")
GW_LOG[0]=$WORK/gw1-holding.log
# shellcheck disable=SC2046
start_instance 0 $(sms_env "$PROVIDER_HOLD")
for n in $(seq 1 100); do
    [ -s "$WORK/provider.log" ] && break
    sleep 0.1
done
sleep 0.5
kill -KILL "${GW_PID[0]}"
wait "${GW_PID[0]}" 2>/dev/null || true
GW_PID[0]=""
held=$(grep -c '^hold ' "$WORK/provider.log" || true)
log "the holding instance sent $held of $queued queued texts before kill -9"
GW_LOG[0]=$WORK/gw1-sms.log
GW_LOG[1]=$WORK/gw2-sms.log
# shellcheck disable=SC2046
start_instance 0 $(sms_env "$PROVIDER_OK")
# shellcheck disable=SC2046
start_instance 1 $(sms_env "$PROVIDER_OK")
sms() { # INSTANCE FROM ID TEXT: the reply, as the provider would get it
    HOTLINE_HTTP_LISTEN="${GW_IP[$1]}:${GW_HTTP[$1]}" HOTLINE_SMS_GENERIC_SECRET=scale-out \
        "$HOTLINE_BIN" sms test --from "$2" --id "$3" "$4" 2>&1
}
opened=0
for n in 1 2 3 4 5 6; do
    reply=$(sms $((n % 2)) "1390013900$n" "fault-$n" "报障 专线中断 $n")
    sed -n 's/^reply: //p' <<<"$reply" | grep -qE '[0-9]{10}' && opened=$((opened + 1))
done
told=0 quiet=0 normal=0
for n in 1 2 3 4 5 6 7; do
    reply=$(sms $((n % 2)) 13700137000 "help-$n" "HELP")
    case $reply in
        *"try again in"*) told=$((told + 1)) ;;
        *"no reply is sent"*) quiet=$((quiet + 1)) ;;
        *"reply: "*) normal=$((normal + 1)) ;;
        *) log "sms: unexpected answer: $reply" ;;
    esac
done
# A retry of the first text, to the other instance: answered, not counted.
retry=$(sms 0 13700137000 help-1 "HELP")
if [ "$opened" -eq 6 ] && [ "$normal" -eq 5 ] && [ "$told" -eq 1 ] && [ "$quiet" -eq 1 ] &&
    ! grep -q "try again" <<<"$retry"; then
    pass sms "6 fault texts over both instances opened 6 tickets; one sender's 7 texts alternating between them: 5 answered, 1 told to wait, 1 withheld (the limit of 5 a minute held across instances); a retry to the other instance answered as before"
else
    fail sms "tickets opened: $opened/6; alternating texts: $normal answered, $told told, $quiet withheld (want 5, 1, 1); retry: $retry"
fi
total=$(psql_count "SELECT count(*) FROM outbox")
for n in $(seq 1 300); do
    [ "$(psql_count "SELECT count(*) FROM outbox WHERE status NOT IN ('sent', 'delivered')")" -eq 0 ] && break
    sleep 0.1
done
python3 - "$WORK/provider.log" "$total" "$(psql_count 'SELECT dedup_key FROM outbox' | sort | tr '\n' ' ')" \
    >"$WORK/outbox.txt" <<'PY' || true
import collections, sys
lines = [l.split(" ", 1) for l in open(sys.argv[1]).read().splitlines() if " " in l]
answered = collections.Counter(k for kind, k in lines if kind == "answer")
held = {k for kind, k in lines if kind == "hold"}
queued = set(sys.argv[3].split())
problems = []
if len(queued) != int(sys.argv[2]):
    problems.append("outbox rows changed while counting")
twice = [k for k, n in answered.items() if n > 1]
missing = queued - set(answered)
unknown = set(answered) - queued
if twice: problems.append("accepted more than once: %s" % twice)
if missing: problems.append("never accepted: %s" % sorted(missing))
if unknown: problems.append("accepted but not queued: %s" % sorted(unknown))
if not held: problems.append("the killed instance held no text (nothing tested)")
if held - set(answered): problems.append("held and never resent: %s" % sorted(held - set(answered)))
print("ok %d %d" % (len(queued), len(held)) if not problems else "; ".join(problems))
PY
read -r verdict sent_count held_count <"$WORK/outbox.txt" || verdict=?
if [ "$verdict" = ok ]; then
    pass outbox "$sent_count queued texts each accepted by the provider exactly once; the $held_count the killed instance held were resent by the others after the lease"
else
    fail outbox "$(cat "$WORK/outbox.txt")"
fi

# ---- The end: the instances stop cleanly; nothing panicked.
for i in 0 1; do
    [ -n "${GW_PID[$i]}" ] || continue
    kill -TERM "${GW_PID[$i]}"
    status=0
    wait "${GW_PID[$i]}" || status=$?
    GW_PID[i]=""
    [ "$status" -eq 0 ] || fail stop "${GW_IP[$i]} exited with $status after SIGTERM"
done
if grep -aq panicked "$WORK"/gw*.log; then
    fail panic "$(grep -al panicked "$WORK"/gw*.log | xargs -n1 basename | tr '\n' ' ')"
fi
kill -TERM "$KAM_PID" 2>/dev/null || true
wait "$KAM_PID" 2>/dev/null || true
KAM_PID=""

printf '  %s\n' "${SUMMARY[@]}"
if [ "$FAILED" -ne 0 ]; then echo "RESULT: FAIL"; exit 1; fi
echo "RESULT: PASS"
