#!/usr/bin/env bash
# SIPp interop suite: SIPp's built-in `uac` scenario (INVITE with SDP,
# 100/180/183 optional, 200, ACK, 100 ms pause, BYE, 200) against the
# release gateway, on free loopback ports:
#
#   udp        200 calls over UDP, 50 calls/s
#   tcp        200 calls over TCP (-t t1: one connection), 50 calls/s
#   tcp-tn     200 calls over TCP, one connection per call (-t tn), 50 calls/s
#   udp-lost   200 calls over UDP, 20 calls/s, SIPp drops 10% of the
#              messages it sends and receives (-lost 10); every call must
#              still complete through retransmissions
#   ipv6       10 calls over UDP to a [::1] listener (skipped when the
#              machine has no IPv6 loopback)
#
# A run passes when SIPp exits 0 and its statistics file reports every
# call successful and none failed. The gateway must then stop on SIGTERM
# with exit status 0.
#
# Usage: tests/interop/sipp_uac.sh        (after `cargo build --release`)
# Env:   HOTLINE_BIN (default target/release/hotline),
#        INTEROP_WORK (default target/interop): logs go to $INTEROP_WORK/sipp_uac
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=${INTEROP_WORK:-$ROOT/target/interop}/sipp_uac
rm -rf "$WORK"
mkdir -p "$WORK"
# shellcheck source=tests/interop/lib.sh
. "$ROOT/tests/interop/lib.sh"
trap kill_gateway EXIT

command -v sipp >/dev/null || { echo "sipp is not installed (apt-get install sip-tester)"; exit 2; }
[ -x "$HOTLINE_BIN" ] || { echo "$HOTLINE_BIN not found: run cargo build --release"; exit 2; }

PORT=$(free_port 127.0.0.1)
UDP_LISTEN="127.0.0.1:$PORT"
TCP_LISTEN="127.0.0.1:$PORT"
PORT6=""
if have_ipv6_loopback; then
    PORT6=$(free_port ::1)
    UDP_LISTEN="$UDP_LISTEN,[::1]:$PORT6"
    TCP_LISTEN="$TCP_LISTEN,[::1]:$PORT6"
fi

# A short drain: after the lossy run a few calls may still wait for an ACK
# that SIPp never resent (see run "udp-lost" below); SIGTERM then ends
# them with BYE after 5 s instead of 30.
start_gateway 127.0.0.1 "$PORT" \
    HOTLINE_SIP_UDP="$UDP_LISTEN" HOTLINE_SIP_TCP="$TCP_LISTEN" \
    HOTLINE_SHUTDOWN_DRAIN_TIMEOUT_SECS=5

FAILED=0
SUMMARY=()
fds() { ls "/proc/$GW_PID/fd" 2>/dev/null | wc -l; }
FDS_BEFORE=$(fds)

# run_sipp NAME TARGET LOCAL_IP CALLS RATE TIME_LIMIT [extra sipp args...]
run_sipp() {
    local name=$1 target=$2 ip=$3 calls=$4 rate=$5 limit=$6
    shift 6
    local sip_port media_port rc=0 start end
    sip_port=$(free_port "$ip")
    media_port=$(free_port "$ip")
    local cmd=(sipp -sn uac -s 10000 "$target" -i "$ip" -p "$sip_port" -mp "$media_port"
        -m "$calls" -r "$rate" -l "$calls" -d 100
        -nostdin -timeout "$((limit - 10))s" -timeout_error -recv_timeout 20000
        -trace_stat -stf "$WORK/$name.csv" -fd 1
        -trace_err -error_file "$WORK/${name}_errors.log"
        -trace_screen -screen_file "$WORK/${name}_screen.log"
        "$@")
    echo "${cmd[*]}" >"$WORK/$name.cmd"
    log "run $name: ${cmd[*]}"
    start=$(date +%s.%N)
    (cd "$WORK" && timeout --foreground --kill-after=5 "$limit" "${cmd[@]}" >"$WORK/$name.out" 2>&1) || rc=$?
    end=$(date +%s.%N)
    local verdict
    verdict=$(python3 - "$WORK/$name.csv" "$calls" "$rc" "$start" "$end" <<'PY'
import csv, sys
path, calls, rc, start, end = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
try:
    rows = [r for r in csv.reader(open(path), delimiter=";") if r]
    head, last = rows[0], rows[-1]
    stat = lambda k: last[head.index(k)] if k in head else "?"
    ok_calls, failed = stat("SuccessfulCall(C)"), stat("FailedCall(C)")
    detail = (f"successful {ok_calls}/{calls}, failed {failed}, "
              f"retransmissions {stat('Retransmissions(C)')}, dead-call msgs {stat('DeadCallMsgs(C)')}, "
              f"avg call length {stat('CallLength(C)')}")
    good = rc == 0 and ok_calls == str(calls) and failed == "0"
except (OSError, IndexError, ValueError) as e:
    detail, good = f"no usable statistics file ({e})", False
print(("PASS" if good else "FAIL") + f" sipp exit {rc}, {end - start:.1f} s, " + detail)
PY
)
    SUMMARY+=("$(printf '%-9s %s' "$name" "$verdict")")
    log "$name: $verdict"
    if [[ $verdict != PASS* ]]; then
        FAILED=1
        if [ -s "$WORK/${name}_errors.log" ]; then
            echo "--- first lines of $WORK/${name}_errors.log:"
            head -n 40 "$WORK/${name}_errors.log"
        fi
        echo "--- tail of $WORK/$name.out:"
        tail -n 15 "$WORK/$name.out" | tr -d '\033' || true
    fi
}

run_sipp udp 127.0.0.1:"$PORT" 127.0.0.1 200 50 90
run_sipp tcp 127.0.0.1:"$PORT" 127.0.0.1 200 50 90 -t t1
run_sipp tcp-tn 127.0.0.1:"$PORT" 127.0.0.1 200 50 90 -t tn -max_socket 1000
# 10% loss each way: SIPp retransmits INVITE/BYE from 500 ms, the gateway
# retransmits its 200 until the ACK; -recv_timeout 20 s covers the longest
# legitimate wait (a 200 retransmitted at 0.5, 1.5, 3.5, 7.5, 11.5, 15.5 s).
# SIPp quirk: a response matches a <recv> if its CSeq method was sent
# anywhere earlier in the scenario, so when the ACK and the first BYE are
# both lost, a retransmitted 200/INVITE is taken as the answer to the BYE.
# SIPp then counts the call as successful though the gateway saw neither;
# the gateway ends such a call itself (no ACK after 64*T1: BYE), which SIPp
# logs as "Dead call" messages. Not a gateway fault.
run_sipp udp-lost 127.0.0.1:"$PORT" 127.0.0.1 200 20 180 -lost 10
if [ -n "$PORT6" ]; then
    run_sipp ipv6 "[::1]:$PORT6" ::1 10 10 60
else
    SUMMARY+=("ipv6      SKIPPED: no IPv6 loopback on this machine")
    log "ipv6: skipped, no IPv6 loopback"
fi

# What the gateway saw (informational).
calls_in=$(grep -c 'incoming call' "$WORK/gateway.log" || true)
calls_out=$(grep -c 'call ended' "$WORK/gateway.log" || true)
log "gateway log: $calls_in incoming calls, $calls_out ended before SIGTERM;" \
    "open fds $FDS_BEFORE before the runs, $(fds) after"

if stop_gateway; then
    SUMMARY+=("sigterm   PASS gateway exited 0 after SIGTERM")
else
    SUMMARY+=("sigterm   FAIL gateway did not exit 0 after SIGTERM")
    FAILED=1
fi

echo
echo "SIPp uac suite (logs in $WORK):"
printf '  %s\n' "${SUMMARY[@]}"
if [ "$FAILED" -ne 0 ]; then
    echo "RESULT: FAIL"
    exit 1
fi
echo "RESULT: PASS"
