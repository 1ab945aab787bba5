#!/usr/bin/env bash
# Outbound call benchmark: CALLS fault tickets are resolved (with the CLI,
# before the gateway starts), each queueing its confirmation call; the
# gateway's worker then places all of them through one trunk capped at
# MAX_CONCURRENT calls up and CPS new calls a second, to a SIPp UAS that
# answers every call at once and hangs up HOLD_MS later without a key
# (tests/interop/scenarios/outbound_bench_callee.xml). One attempt per job,
# so every job must end "failed: exhausted:answered_silent".
#
#   tests/bench/outbound_load.sh [CALLS] [CPS] [MAX_CONCURRENT] [HOLD_MS]
#                                (defaults 200, 20, 200, 15000)
#
# From the store's attempt rows (the gateway's own clock) it reports: jobs
# that ended, with which outcome; the most calls up at once; the most
# calls started in any 1-second window; the first-to-last start span; and
# the gateway's CPU. The caps hold when peak_concurrent <= MAX_CONCURRENT
# and max_starts_per_1s <= CPS (calls are paced 1/CPS apart).
#
# Needs a release build (cargo build --release), sipp, python3.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CALLS=${1:-200}
CPS=${2:-20}
MAX_CONCURRENT=${3:-200}
HOLD_MS=${4:-15000}
WORK=$(mktemp -d)
# shellcheck source=../interop/lib.sh
source "$ROOT/tests/interop/lib.sh"
HOTLINE_BIN=$(cd "$(dirname "$HOTLINE_BIN")" && pwd)/$(basename "$HOTLINE_BIN")
SIPP_PID=""
trap 'kill_gateway; [ -n "$SIPP_PID" ] && kill "$SIPP_PID" 2>/dev/null; rm -rf "$WORK"' EXIT
command -v sipp >/dev/null || { echo "sipp is not installed (apt-get install sip-tester)"; exit 2; }
ulimit -n 65536 2>/dev/null || true

CALLEE_PORT=$(free_port 127.0.0.1)
CALLEE_MEDIA=$(free_port 127.0.0.1)
SIP=$(free_port 127.0.0.1)
cat >"$WORK/hotline.toml" <<EOF
[calls]
max_duration_secs = 120

[outbound]
enabled = true
poll_secs = 1

[outbound.trunks.main]
uri = "sip:{number}@127.0.0.1:$CALLEE_PORT"
max_concurrent = $MAX_CONCURRENT
calls_per_second = $CPS
ring_timeout_secs = 10

[outbound.confirm]
enabled = true
trunks = ["main"]
window = "00:00-23:59"
attempts = 1
entry = "${OUTBOUND_ENTRY:-confirm}"
EOF
export HOTLINE_DATABASE_URL="sqlite://$WORK/hotline.db"
cd "$WORK"
"$HOTLINE_BIN" migrate >/dev/null
log "resolving $CALLS fault tickets (each queues its confirmation call)"
python3 - "$HOTLINE_BIN" "$CALLS" <<'PY'
import subprocess, sys
binary, calls = sys.argv[1], int(sys.argv[2])
for i in range(calls):
    phone = f"138{i:08d}"
    out = subprocess.run([binary, "ticket", "create", "--type", "fault_report",
                          "--category", "bandwidth", "--phone", phone,
                          "--description", "bench"], check=True,
                         capture_output=True, text=True).stdout
    number = out.split()[1]
    for action in ("dispatch", "accept", "resolve"):
        subprocess.run([binary, "ticket", "transition", number, action],
                       check=True, capture_output=True)
PY
sed "s|HOLD_MS|$HOLD_MS|" "$ROOT/tests/interop/scenarios/outbound_bench_callee.xml" >"$WORK/callee.xml"
sipp -sf "$WORK/callee.xml" -i 127.0.0.1 -p "$CALLEE_PORT" -mi 127.0.0.1 -mp "$CALLEE_MEDIA" \
    -m "$CALLS" -nostdin -timeout 600s -trace_err -error_file "$WORK/sipp_errors.log" \
    >"$WORK/sipp.out" 2>&1 &
SIPP_PID=$!
START=$(date +%s.%N)
start_gateway 127.0.0.1 "$SIP" HOTLINE_DATABASE_URL="sqlite://$WORK/hotline.db" \
    HOTLINE_IVR_DIALPLANS_DIR="$ROOT/dialplans" HOTLINE_LOG_LEVEL=warn >/dev/null
# Every job ends: done or failed.
for _ in $(seq 1 600); do
    open=$(python3 -c "
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
print(db.execute(\"SELECT count(*) FROM outbound_calls WHERE state IN ('queued', 'placing')\").fetchone()[0])
" "$WORK/hotline.db")
    [ "$open" -eq 0 ] && break
    sleep 1
done
END=$(date +%s.%N)
cpu=$(awk '{print $14 + $15}' "/proc/$GW_PID/stat")
rss=$(awk '/VmHWM/ {print $2}' "/proc/$GW_PID/status")
stop_gateway >/dev/null || true
sipp_rc=0
wait "$SIPP_PID" || sipp_rc=$?
SIPP_PID=""
python3 - "$WORK/hotline.db" "$CALLS" <<PY
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
calls = int(sys.argv[2])
jobs = db.execute("SELECT state, outcome, count(*) FROM outbound_calls GROUP BY 1, 2").fetchall()
rows = db.execute("SELECT started_at, ended_at FROM outbound_attempts").fetchall()
starts = sorted(r[0] for r in rows)
events = sorted([(s, 1) for s, _ in rows] + [(e, -1) for _, e in rows])
up = peak = 0
for _, delta in events:
    up += delta
    peak = max(peak, up)
window = j = 0
for i, s in enumerate(starts):
    while starts[j] <= s - 1000:
        j += 1
    window = max(window, i - j + 1)
span = (starts[-1] - starts[0]) / 1000 if starts else 0
ended = sum(n for state, _, n in jobs if state in ("done", "failed"))
print(f"jobs={calls} ended={ended} outcomes={[(s, o, n) for s, o, n in jobs]} attempts={len(rows)}"
      f" peak_concurrent={peak} max_starts_per_1s={window} start_span_s={span:.1f}"
      f" wall_s={float('$END') - float('$START'):.1f} gateway_cpu_s={$cpu / $(getconf CLK_TCK):.2f}"
      f" peak_rss_kib=$rss sipp_exit=$sipp_rc")
PY
