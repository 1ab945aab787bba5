#!/usr/bin/env bash
# Call setup rate benchmark: SIPp's built-in `uac` scenario against the
# release gateway on loopback, at one or more fixed rates.
#
#   tests/bench/sipp_call_rate.sh [SECONDS] RATE [RATE ...]
#
# For each rate it runs SIPp for SECONDS (default 20) with RATE new calls per
# second (INVITE, 100, 200, ACK, BYE, 200; no pause), and prints calls
# attempted/succeeded/failed, the rate really achieved (calls over the
# wall time SIPp took), the gateway's CPU use over the run (from
# /proc/PID/stat), its peak RSS (VmHWM) and SIPp's own CPU use. Needs sipp (Debian sip-tester)
# and a release build (cargo build --release). SIPP_EXTRA adds SIPp options
# (for example SIPP_EXTRA="-buff_size 4194304").
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d)
# shellcheck source=../interop/lib.sh
source "$ROOT/tests/interop/lib.sh"
trap 'kill_gateway; rm -rf "$WORK"' EXIT

SECONDS_PER_RUN=20
if [ $# -ge 2 ]; then SECONDS_PER_RUN=$1; shift; fi
[ $# -ge 1 ] || { echo "usage: $0 [SECONDS] RATE [RATE ...]" >&2; exit 2; }

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

printf '%-8s %-9s %-9s %-7s %-10s %-9s %-12s %-10s %s\n' rate attempted succeeded failed achieved/s cpu_% peak_rss_MiB sipp_cpu_% sipp_exit
for rate in "$@"; do
    port=$(free_port 127.0.0.1)
    start_gateway 127.0.0.1 "$port" HOTLINE_SIP_INVITES_PER_SECOND_PER_SOURCE=0 HOTLINE_SIP_MAX_CALLS=100000 \
        HOTLINE_LOG_LEVEL=warn >/dev/null
    total=$((rate * SECONDS_PER_RUN))
    before=$(ticks "$GW_PID"); t0=$(date +%s.%N)
    set +e
    (cd "$WORK" && timeout $((SECONDS_PER_RUN * 3 + 60)) /usr/bin/time -f '%U %S' -o sipp_time sipp -sn uac "127.0.0.1:$port" -s 10000 -i 127.0.0.1 \
        -p "$(free_port 127.0.0.1)" -r "$rate" -m "$total" -l 5000 -d 0 -nostdin -timeout $((SECONDS_PER_RUN * 3 + 30))s \
        -trace_stat -stf stats.csv -trace_err -error_file errors.log ${SIPP_EXTRA:-} >/dev/null 2>&1)
    status=$?
    set -e
    t1=$(date +%s.%N); after=$(ticks "$GW_PID")
    rss_kib=$(awk '/VmHWM/ {print $2}' "/proc/$GW_PID/status")
    # Last line of SIPp's stat file: cumulative counters.
    read -r attempted ok failed < <(python3 - "$WORK/stats.csv" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1]), delimiter=';'))
head, last = rows[0], rows[-1]
col = lambda name: int(last[head.index(name)])
print(col("TotalCallCreated"), col("SuccessfulCall(C)"), col("FailedCall(C)"))
PY
)
    cpu=$(python3 -c "print(round(100*($after-$before)/$hz/($t1-$t0), 1))")
    achieved=$(python3 -c "print(round($attempted/($t1-$t0)))")
    sipp_cpu=$(python3 -c "u,s=open('$WORK/sipp_time').read().split()[-2:]; print(round(100*(float(u)+float(s))/($t1-$t0),1))")
    printf '%-8s %-9s %-9s %-7s %-10s %-9s %-12s %-10s %s\n' "$rate" "$attempted" "$ok" "$failed" "$achieved" "$cpu" \
        "$(python3 -c "print(round($rss_kib/1024, 1))")" "$sipp_cpu" "$status"
    if [ -s "$WORK/errors.log" ]; then head -n 5 "$WORK/errors.log" | sed 's/^/    sipp error: /'; fi
    stop_gateway >/dev/null
    rm -f "$WORK"/stats.csv "$WORK"/errors.log "$WORK"/sipp_time
done
