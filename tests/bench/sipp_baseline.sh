#!/usr/bin/env bash
# The ceiling of the measurement itself: SIPp's `uac` against SIPp's
# built-in `uas` on loopback, at each RATE for 20 s.
#
#   tests/bench/sipp_baseline.sh RATE [RATE ...]
set -euo pipefail
WORK=$(mktemp -d)
trap 'pkill -f "sipp -sn uas -i 127.0.0.1 -p 15070" || true; rm -rf "$WORK"' EXIT
cd "$WORK"
for rate in "$@"; do
    sipp -sn uas -i 127.0.0.1 -p 15070 -nostdin -bg >/dev/null 2>&1
    sleep 1
    t0=$(date +%s.%N)
    status=0
    sipp -sn uac 127.0.0.1:15070 -s 10000 -i 127.0.0.1 -p 15072 -r "$rate" -m $((rate * 20)) -l 5000 -d 0 \
        -nostdin -timeout 120s -trace_stat -stf s.csv >/dev/null 2>&1 || status=$?
    t1=$(date +%s.%N)
    pkill -f "sipp -sn uas -i 127.0.0.1 -p 15070" || true
    sleep 1
    python3 - s.csv "$t0" "$t1" "$rate" "$status" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1]), delimiter=';'))
head, last = rows[0], rows[-1]
col = lambda name: int(last[head.index(name)])
elapsed = float(sys.argv[3]) - float(sys.argv[2])
print(f"rate {sys.argv[4]}: created {col('TotalCallCreated')} ok {col('SuccessfulCall(C)')} "
      f"failed {col('FailedCall(C)')} achieved/s {round(col('TotalCallCreated') / elapsed)} sipp_exit {sys.argv[5]}")
PY
    rm -f s.csv
done
