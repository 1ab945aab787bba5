#!/usr/bin/env bash
# Overload interop suite: an INVITE flood far beyond the gateway's limits,
# while calls are up and a monitor pings it.
#
# The gateway runs with sip.max_calls = 30 and a per-source INVITE rate of
# 5/s, trusting 127.0.0.1 and 127.0.0.2 only. Then:
#
#   quiet     examples/media_load holds 10 calls (RTP both ways, placed at
#             4/s, within 127.0.0.1's rate) for 10 s
#             alone: their audio timing without a flood, for comparison;
#   flood     media_load holds 10 calls for 20 s again, and from the 3rd
#             second of holding on, for 10 s:
#             - SIPp floods INVITEs from 127.0.0.2 at 200/s (6.7x max_calls
#               per second, 40x the per-source rate; 2000 in all,
#               scenarios/overload_invite.xml): every INVITE must get a
#               final answer, a 503's Retry-After must be 1..60 s, the
#               admitted calls (5/s, held 5 s: more than the 20 places
#               left) are ACKed, held and ended with BYE, so the gateway
#               refuses both for the rate and for capacity;
#             - SIPp floods INVITEs from 127.0.0.3 (untrusted) at 100/s
#               (1000): every one must get 403;
#             - SIPp pings OPTIONS from 127.0.0.1 at 20/s for 15 s
#               (scenarios/overload_options.xml): every ping must be
#               answered 200 within 1 s;
#             - the gateway's resident memory is sampled every 0.5 s.
#
# Passes when: both floods and the pings complete with no failed call;
# the gateway counts refusals for capacity, rate and acl; the calls held
# through the flood lose no packet and their packets late by more than
# 5 ms stay under OVERLOAD_MAX_LATE_PER_1000 (default 50) per 1000; the
# resident memory never grows by more than OVERLOAD_MAX_RSS_GROWTH_MIB
# (default 64) MiB over its value before the flood; the gateway stops on
# SIGTERM with exit status 0. The figures (answers by kind, ping response
# times, lateness quiet and under flood, memory) are printed and kept in
# $WORK/summary.txt.
#
# Usage: tests/interop/overload.sh   (after cargo build --release --bin hotline --example media_load)
# Env:   HOTLINE_BIN (default target/release/hotline); MEDIA_LOAD_BIN
#        (default: examples/media_load next to HOTLINE_BIN);
#        INTEROP_WORK (default target/interop): logs in $INTEROP_WORK/overload
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=${INTEROP_WORK:-$ROOT/target/interop}/overload
rm -rf "$WORK"
mkdir -p "$WORK"
# shellcheck source=tests/interop/lib.sh
. "$ROOT/tests/interop/lib.sh"
MEDIA_LOAD_BIN=${MEDIA_LOAD_BIN:-$(dirname "$HOTLINE_BIN")/examples/media_load}
export -n MEDIA_LOAD_BIN
MAX_LATE=${OVERLOAD_MAX_LATE_PER_1000:-50}
MAX_RSS_GROWTH=${OVERLOAD_MAX_RSS_GROWTH_MIB:-64}
export -n OVERLOAD_MAX_LATE_PER_1000 OVERLOAD_MAX_RSS_GROWTH_MIB
BACKGROUND=()
cleanup() {
    local pid
    for pid in "${BACKGROUND[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    kill_gateway
}
trap cleanup EXIT

command -v sipp >/dev/null || { echo "sipp is not installed (apt-get install sip-tester)"; exit 2; }
[ -x "$HOTLINE_BIN" ] || { echo "$HOTLINE_BIN not found: run cargo build --release"; exit 2; }
[ -x "$MEDIA_LOAD_BIN" ] || { echo "$MEDIA_LOAD_BIN not found: cargo build --example media_load"; exit 2; }

PORT=$(free_port 127.0.0.1)
HTTP_PORT=$(free_port 127.0.0.1)
start_gateway 127.0.0.1 "$PORT" HOTLINE_HTTP_LISTEN="127.0.0.1:$HTTP_PORT" \
    HOTLINE_SIP_MAX_CALLS=30 HOTLINE_SIP_INVITES_PER_SECOND_PER_SOURCE=5 \
    HOTLINE_SIP_TRUSTED_NETWORKS="127.0.0.1/32,127.0.0.2/32" \
    HOTLINE_CALLS_MAX_DURATION_SECS=600 HOTLINE_CALLS_LOOP_GREETING=true \
    HOTLINE_SHUTDOWN_DRAIN_TIMEOUT_SECS=5 HOTLINE_LOG_LEVEL=warn
FAILED=0
SUMMARY=()
fail() {
    FAILED=1
    SUMMARY+=("FAIL $*")
    log "FAIL: $*"
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$GW_PID/status"; }

# media_load NAME HOLD: holds 10 calls for HOLD seconds, prints its line.
media_load() {
    "$MEDIA_LOAD_BIN" --gateway "127.0.0.1:$PORT" --calls 10 --rate 4 --hold "$2" \
        --send-rtp --pid "$GW_PID" >"$WORK/$1.media" 2>"$WORK/$1.media.err"
}

# sipp_run NAME SCENARIO LOCAL_IP CALLS RATE [extra args]: in the
# background; its pid in LAST_PID.
sipp_run() {
    local name=$1 scenario=$2 ip=$3 calls=$4 rate=$5
    shift 5
    local cmd=(sipp 127.0.0.1:"$PORT" -sf "$INTEROP_DIR/scenarios/$scenario" -s 10000
        -i "$ip" -p "$(free_port "$ip")" -mp "$(free_port "$ip")"
        -m "$calls" -r "$rate" -l 400 -nostdin -timeout 60s -timeout_error
        -recv_timeout 10000 -trace_stat -stf "$WORK/$name.csv" -fd 1
        -trace_counts -trace_err -error_file "$WORK/${name}_errors.log" "$@")
    echo "${cmd[*]}" >"$WORK/$name.cmd"
    (cd "$WORK" && mkdir -p "$name" && cd "$name" && exec "${cmd[@]}" >"$WORK/$name.out" 2>&1) &
    LAST_PID=$!
    BACKGROUND+=("$LAST_PID")
}

# field FILE KEY: the value of KEY=… in media_load's line.
field() { tr ' ' '\n' <"$1" | awk -F= -v k="$2" '$1 == k {print $2}'; }

log "quiet: 10 calls held for 10 s with no flood"
media_load quiet 10
log "quiet: $(cat "$WORK/quiet.media")"

RSS_BEFORE=$(rss_kib)
log "flood: 10 calls held for 20 s; floods and pings from their 3rd second (RSS before ${RSS_BEFORE} KiB)"
# (media_load places its calls in 2.5 s, then holds them.)
media_load flood 20 &
LOAD_PID=$!
BACKGROUND+=("$LOAD_PID")
( while kill -0 "$GW_PID" 2>/dev/null; do rss_kib; sleep 0.5; done ) >"$WORK/rss.log" &
SAMPLER=$!
BACKGROUND+=("$SAMPLER")
sleep 5
sipp_run ping overload_options.xml 127.0.0.1 300 20 -trace_rtt -rtt_freq 1
PING=$LAST_PID
sipp_run flood overload_invite.xml 127.0.0.2 2000 200 -d 5000
FLOOD=$LAST_PID
sipp_run untrusted overload_invite.xml 127.0.0.3 1000 100
UNTRUSTED=$LAST_PID
for pid in "$FLOOD" "$UNTRUSTED" "$PING"; do
    wait "$pid" || true
done
wait "$LOAD_PID" || true
kill "$SAMPLER" 2>/dev/null || true
log "flood: $(cat "$WORK/flood.media")"

# Every SIPp call completed (answered as its scenario expects).
for name in flood untrusted ping; do
    verdict=$(python3 - "$WORK/$name.csv" <<'PY'
import csv, sys
rows = [r for r in csv.reader(open(sys.argv[1]), delimiter=";") if r]
head, last = rows[0], rows[-1]
stat = lambda k: last[head.index(k)]
print(stat("TotalCallCreated"), stat("SuccessfulCall(C)"), stat("FailedCall(C)"))
PY
) || verdict="? ? ?"
    read -r created ok failed <<<"$verdict"
    if [ "$failed" = "0" ] && [ "$ok" = "$created" ] && [ "$ok" != "0" ]; then
        SUMMARY+=("PASS $name: $ok of $created calls completed as expected")
    else
        fail "$name: created $created, successful $ok, failed $failed (see $WORK/${name}_errors.log)"
        head -n 20 "$WORK/${name}_errors.log" 2>/dev/null || true
    fi
done

# What each flood got, from SIPp's per-message counts.
answers() {
    python3 - "$WORK/$1" <<'PY'
import csv, glob, sys
path = glob.glob(sys.argv[1] + "/*_counts.csv")[0]
rows = [r for r in csv.reader(open(path), delimiter=";") if r]
head, last = rows[0], rows[-1]
got = {}
for i, name in enumerate(head):
    # Columns are <index>_<message>_<Sent|Recv|...>; the first 200 is the
    # INVITE's (the second the BYE's).
    parts = name.split("_")
    if len(parts) >= 3 and parts[-1] == "Recv" and parts[1] in ("200", "403", "503"):
        got.setdefault(parts[1], int(last[i] or 0))
print(" ".join(f"{code}={got.get(code, 0)}" for code in ("200", "403", "503")))
PY
}
FLOOD_GOT=$(answers flood)
UNTRUSTED_GOT=$(answers untrusted)
SUMMARY+=("INFO flood from 127.0.0.2 (2000 at 200/s): $FLOOD_GOT")
SUMMARY+=("INFO flood from 127.0.0.3, untrusted (1000 at 100/s): $UNTRUSTED_GOT")
[[ " $UNTRUSTED_GOT " == *" 403=1000 "* ]] || fail "the untrusted flood did not get 1000 403s: $UNTRUSTED_GOT"
refused=$(sed -n 's/.*503=\([0-9]*\).*/\1/p' <<<"$FLOOD_GOT")
[ "${refused:-0}" -ge 1500 ] || fail "the flood got only ${refused:-0} 503s"

# The gateway counted each kind of refusal: every 503 as capacity or
# rate, every untrusted INVITE as acl.
METRICS=$(curl -s "http://127.0.0.1:$HTTP_PORT/metrics" || true)
rejected() {
    awk -v r="reason=\"$1\"" 'index($0, "hotline_calls_rejected_total{") == 1 && index($0, r) {print $NF}' <<<"$METRICS"
}
CAPACITY=$(rejected capacity)
RATE=$(rejected rate)
ACL=$(rejected acl)
SUMMARY+=("INFO hotline_calls_rejected_total: capacity ${CAPACITY:-none}, rate ${RATE:-none}, acl ${ACL:-none}")
[ "${CAPACITY:-0}" != "0" ] && [ "${RATE:-0}" != "0" ] || fail "the flood was not refused for both capacity and rate"
[ $((${CAPACITY:-0} + ${RATE:-0})) -eq "${refused:-0}" ] || fail "capacity + rate refusals are not the flood's 503s"
[ "${ACL:-0}" = "1000" ] || fail "acl refusals: ${ACL:-none}, not the 1000 untrusted INVITEs"

# OPTIONS answered throughout, and how fast.
PING_TIMES=$(python3 - "$WORK/ping" <<'PY'
import csv, glob, statistics, sys
times = []
for path in glob.glob(sys.argv[1] + "/*_rtt.csv"):
    for row in csv.reader(open(path), delimiter=";"):
        try:
            times.append(float(row[1]))
        except (IndexError, ValueError):
            pass
if times:
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    print(f"{len(times)} answered: median {statistics.median(times):.2f} ms, p99 {p99:.2f} ms, max {times[-1]:.2f} ms")
else:
    print("no response times recorded")
PY
)
SUMMARY+=("INFO OPTIONS during the flood: $PING_TIMES")

# The calls held through the flood kept their audio on time.
for run in quiet flood; do
    line=$(cat "$WORK/$run.media")
    SUMMARY+=("INFO $run: answered=$(field "$WORK/$run.media" answered) packets=$(field "$WORK/$run.media" packets) lost=$(field "$WORK/$run.media" lost) late_5ms_per_1000=$(field "$WORK/$run.media" late_5ms_per_1000) jitter_max_ms=$(field "$WORK/$run.media" jitter_max_ms) gateway_cpu_pct=$(field "$WORK/$run.media" gateway_cpu_pct)")
    [ -n "$line" ] || fail "$run: media_load printed nothing (see $WORK/$run.media.err)"
done
[ "$(field "$WORK/flood.media" answered)" = "10" ] || fail "media_load's calls were not all answered"
[ "$(field "$WORK/flood.media" lost)" = "0" ] || fail "calls held through the flood lost packets"
awk -v late="$(field "$WORK/flood.media" late_5ms_per_1000)" -v max="$MAX_LATE" 'BEGIN { exit !(late <= max) }' ||
    fail "calls held through the flood: $(field "$WORK/flood.media" late_5ms_per_1000) packets in 1000 late by more than 5 ms (limit $MAX_LATE)"

# Memory stayed bounded.
RSS_MAX=$(sort -n "$WORK/rss.log" | tail -1)
RSS_AFTER=$(rss_kib)
SUMMARY+=("INFO resident memory: ${RSS_BEFORE} KiB before the flood, at most ${RSS_MAX} KiB during it, ${RSS_AFTER} KiB after")
[ $((RSS_MAX - RSS_BEFORE)) -le $((MAX_RSS_GROWTH * 1024)) ] ||
    fail "resident memory grew by $(((RSS_MAX - RSS_BEFORE) / 1024)) MiB (limit $MAX_RSS_GROWTH)"

if stop_gateway; then
    SUMMARY+=("PASS sigterm: the gateway exited 0")
else
    fail "the gateway did not exit 0 after SIGTERM"
fi

echo
echo "Overload suite (logs in $WORK):"
printf '  %s\n' "${SUMMARY[@]}" | tee "$WORK/summary.txt"
if [ "$FAILED" -ne 0 ]; then
    echo "RESULT: FAIL"
    exit 1
fi
echo "RESULT: PASS"
