#!/usr/bin/env bash
# Fault-report flow under load: SIPp callers dial 100009 at a fixed rate,
# key a service number and # by RFC 2833, hear their new ticket's number
# read back, and are hung up by the gateway
# (tests/bench/dialplans/fault_flow.toml). A rate passes when every call
# succeeds (the gateway's BYE arrives within HOLD s, default 30) and every
# call's ticket is in the store.
#
#   tests/bench/fault_flow.sh SECONDS RATE [RATE ...]
#
# The caller is a lean SIPp scenario (tests/bench/fault_flow_caller.py):
# no message tracing, and all keys of a call in one pcap, so that the load
# tool, which shares the machine's two cores, costs as little as it can.
# DTMF=sipp sends the keys with SIPp's own play_dtmf instead (payload type
# 96); at 375/s that overloads SIPp (see docs/benchmarks.md). KEEP=1
# keeps the work directory (SQLite file, gateway log, SIPp's stats).
#
# The run happens in network namespaces of its own. On loopback, every UDP
# packet delivered on the machine is also offered to each raw socket, and
# SIPp opens one per pcap being played (about 800 at 375 calls/s): `perf`
# put a third of the gateway's CPU in that walk (`raw_local_deliver`), a
# cost of the co-located load tool alone. So the callers' media address is
# routed away from SIPp's namespace:
#
#   gateway ns  10.200.0.1 --veth-- 10.200.0.2 callers ns (SIPp, SIP and keys;
#        |                                     media address 10.200.1.2)
#        +--veth-- sink ns (the gateway's RTP to 10.200.1.2 ends here,
#                           dropped: nobody forwards it)
#
# Needs a release build (cargo build --release), sip-tester, python3,
# iproute2; root (network namespaces, and SIPp plays pcaps through a raw
# socket).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
GATEWAY_IP=10.200.0.1
CALLER_IP=10.200.0.2
CALLER_MEDIA_IP=10.200.1.2
if [ -z "${FAULT_FLOW_NETNS:-}" ]; then
    ns=hotline-bench-$$
    trap 'for n in gw callers sink; do ip netns del "$ns-$n" 2>/dev/null || true; done' EXIT
    for n in gw callers sink; do
        ip netns add "$ns-$n"
        ip -n "$ns-$n" link set lo up
        # Reverse-path filtering would drop the keys: they come from the
        # callers' media address, which the gateway routes to the sink.
        ip netns exec "$ns-$n" sysctl -q -w net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
    done
    ip link add "gw$$" netns "$ns-gw" type veth peer name callers netns "$ns-callers"
    ip link add "sink$$" netns "$ns-gw" type veth peer name gateway netns "$ns-sink"
    ip -n "$ns-gw" addr add "$GATEWAY_IP/24" dev "gw$$"
    ip -n "$ns-callers" addr add "$CALLER_IP/24" dev callers
    ip -n "$ns-callers" addr add "$CALLER_MEDIA_IP/32" dev callers
    for link in "gw gw$$" "gw sink$$" "callers callers" "sink gateway"; do
        read -r n dev <<<"$link"
        ip -n "$ns-$n" link set "$dev" up
        ip netns exec "$ns-$n" sysctl -q -w "net.ipv4.conf.$dev.rp_filter=0"
    done
    ip -n "$ns-gw" route add "$CALLER_MEDIA_IP/32" dev "sink$$"
    ip -n "$ns-callers" route add "$GATEWAY_IP/32" dev callers src "$CALLER_IP"
    ip -n "$ns-sink" addr add 10.200.2.1/24 dev gateway
    ip netns exec "$ns-gw" env FAULT_FLOW_NETNS="$ns" "$0" "$@"
    exit
fi
WORK=$(mktemp -d)
# shellcheck source=../interop/lib.sh
source "$ROOT/tests/interop/lib.sh"
trap 'kill_gateway; [ -n "${KEEP:-}" ] || rm -rf "$WORK"' EXIT
[ $# -ge 2 ] || { echo "usage: $0 SECONDS RATE [RATE ...]" >&2; exit 2; }
SECONDS_PER_RATE=$1
shift
HOLD=${HOLD:-30}
KEYS=55512345#
ulimit -n 65536 2>/dev/null || true
python3 "$ROOT/tests/bench/fault_flow_caller.py" "$WORK" "$KEYS" --hold "$HOLD" --dtmf "${DTMF:-pcap}"
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

for rate in "$@"; do
    calls=$((rate * SECONDS_PER_RATE))
    rm -f "$WORK"/hotline.db* "$WORK"/stats.csv "$WORK"/errors.log
    port=$(free_port 127.0.0.1)
    # As many calls as the open-file limit allows (two RTP sockets each,
    # and about 6,000 descriptors for the rest), at most a HOLD's worth.
    max_calls=$(( ($(ulimit -Hn) - 6000) / 2 ))
    [ "$max_calls" -gt $((rate * (HOLD + 10))) ] && max_calls=$((rate * (HOLD + 10)))
    # SIP on every address of the gateway's namespace: loopback for the
    # start-up check, the veth for the callers.
    HOTLINE_IVR_DIALPLANS_DIR="$ROOT/tests/bench/dialplans" start_gateway 127.0.0.1 "$port" \
        HOTLINE_SIP_UDP="0.0.0.0:$port" HOTLINE_SIP_TCP="0.0.0.0:$port" HOTLINE_MEDIA_RTP_BIND="$GATEWAY_IP" \
        HOTLINE_SIP_TRUSTED_NETWORKS="127.0.0.0/8,$CALLER_IP/32" HOTLINE_SIP_INVITES_PER_SECOND_PER_SOURCE=0 HOTLINE_SIP_MAX_CALLS="$max_calls" \
        HOTLINE_TICKETS_SLA_FILE="$ROOT/sla.toml" HOTLINE_LOG_LEVEL=warn >/dev/null
    before=$(ticks "$GW_PID")
    t0=$(date +%s.%N)
    set +e
    # -l: never let SIPp throttle new calls; a slow gateway must show as
    # long or failed calls, not as a lower rate.
    (cd "$WORK" && timeout $((SECONDS_PER_RATE + HOLD * 3 + 60)) /usr/bin/time -f '%U %S' -o sipp_time \
        ip netns exec "$FAULT_FLOW_NETNS-callers" \
        sipp "$GATEWAY_IP:$port" -sf fault_flow.xml -s 100009 -i "$CALLER_IP" -mi "$CALLER_MEDIA_IP" \
        -mp 20000 -p 5060 -t u1 \
        -r "$rate" -m "$calls" -l $((rate * (HOLD + 10))) -nostdin \
        -timeout $((SECONDS_PER_RATE + HOLD * 2 + 30))s -timeout_error \
        -trace_stat -stf stats.csv -fd 1 -trace_err -error_file errors.log >/dev/null 2>&1)
    sipp_status=$?
    set -e
    t1=$(date +%s.%N)
    after=$(ticks "$GW_PID")
    rss_kib=$(awk '/VmHWM/ {print $2}' "/proc/$GW_PID/status")
    stop_gateway >/dev/null || true
    tickets=$(python3 -c "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute(
        'SELECT count(*) FROM tickets WHERE service_number = ?', (sys.argv[2],)).fetchone()[0])" \
        "$WORK/hotline.db" "${KEYS%#}")
    # Last line of SIPp's stat file: cumulative counters.
    read -r created ok failed < <(python3 - "$WORK/stats.csv" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1]), delimiter=';'))
head, last = rows[0], rows[-1]
col = lambda name: last[head.index(name)]
print(col("TotalCallCreated"), col("SuccessfulCall(C)"), col("FailedCall(C)"))
PY
)
    # How long the gateway kept each call, answer to hang-up, from its call
    # records: against the flow's length on an idle machine, this shows
    # whether prompts kept real time under load.
    call_seconds=$(python3 - "$WORK/hotline.db" <<'PY'
import sqlite3, statistics, sys
rows = sqlite3.connect(sys.argv[1]).execute(
    "SELECT (ended_at - answered_at) / 1000.0 FROM calls WHERE ended_at IS NOT NULL AND answered_at IS NOT NULL"
).fetchall()
lengths = sorted(r[0] for r in rows)
if lengths:
    p99 = lengths[min(len(lengths) - 1, int(len(lengths) * 0.99))]
    print("call_s_median=%.2f call_s_p99=%.2f call_s_max=%.2f" % (statistics.median(lengths), p99, lengths[-1]))
else:
    print("call_s_median=- call_s_p99=- call_s_max=-")
PY
)
    wall=$(python3 -c "print($t1 - $t0)")
    cpu=$(python3 -c "print(round(100 * ($after - $before) / $hz / $wall, 1))")
    sipp_cpu=$(python3 -c "u, s = open('$WORK/sipp_time').read().split()[-2:]; print(round(100 * (float(u) + float(s)) / $wall, 1))")
    verdict=FAIL
    [ "$ok" = "$calls" ] && [ "$failed" = 0 ] && [ "$tickets" = "$calls" ] && verdict=PASS
    echo "dtmf=${DTMF:-pcap} rate=$rate calls=$calls created=$created ok=$ok failed=$failed tickets=$tickets" \
        "$call_seconds gateway_cpu_pct=$cpu sipp_cpu_pct=$sipp_cpu peak_rss_mib=$((rss_kib / 1024))" \
        "sipp_exit=$sipp_status $verdict"
    if [ -s "$WORK/errors.log" ]; then grep -v '^$' "$WORK/errors.log" | head -n 3 | sed 's/^/    sipp error: /'; fi
done
