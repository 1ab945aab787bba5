#!/usr/bin/env bash
# Fault-report flow under load: SIPp callers (../shared/tools/sipp-ivr-call,
# RFC 2833 keys from SIPp's pcaps) dial 100009 at a fixed rate, key a
# service number and #, hear their new ticket's number read back, and are
# hung up by the gateway (tests/bench/dialplans/fault_flow.toml). A rate
# passes when every call succeeds and every call's ticket is in the store.
#
#   tests/bench/fault_flow.sh SECONDS RATE [RATE ...]
#
# DTMF=pcap (default) sends each key with SIPp's play_pcap_audio (a thread
# per key); DTMF=sipp with SIPp's own play_dtmf (PT 96). Both are RFC 2833
# events on the wire.
#
# Needs a release build (cargo build --release), sip-tester, python3; root.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TOOLS=${SHARED_TOOLS:-$ROOT/../shared/tools}
WORK=$(mktemp -d)
# shellcheck source=../interop/lib.sh
source "$ROOT/tests/interop/lib.sh"
trap 'kill_gateway; [ -n "${KEEP:-}" ] || rm -rf "$WORK"' EXIT
[ $# -ge 2 ] || { echo "usage: $0 SECONDS RATE [RATE ...]" >&2; exit 2; }
SECONDS_PER_RATE=$1
shift
ulimit -n 65536 2>/dev/null || true

for rate in "$@"; do
    calls=$((rate * SECONDS_PER_RATE))
    rm -f "$WORK"/hotline.db*
    port=$(free_port 127.0.0.1)
    HOTLINE_IVR_DIALPLANS_DIR="$ROOT/tests/bench/dialplans" start_gateway 127.0.0.1 "$port" \
        HOTLINE_SIP_INVITES_PER_SECOND_PER_SOURCE=0 HOTLINE_SIP_MAX_CALLS=20000 \
        HOTLINE_TICKETS_SLA_FILE="$ROOT/sla.toml" HOTLINE_LOG_LEVEL=warn >/dev/null
    cpu_before=$(awk '{print $14 + $15}' "/proc/$GW_PID/stat")
    started=$(date +%s.%N)
    result=$(timeout --foreground $((SECONDS_PER_RATE * 4 + 120)) "$TOOLS/sipp-ivr-call" \
        --target "127.0.0.1:$port" --dest 100009 --from-user 13800138000 \
        --digits "55512345#" --delay 0.5 --hold 20 --hangup server --dtmf "${DTMF:-pcap}" ${MAX_CONCURRENT:+--max-concurrent $MAX_CONCURRENT} \
        --calls "$calls" --rate "$rate" 2>&1 | grep -E '^sipp-ivr-call: .*calls=' | tail -n 1 || true)
    elapsed=$(echo "$(date +%s.%N) - $started" | bc)
    cpu_after=$(awk '{print $14 + $15}' "/proc/$GW_PID/stat")
    tickets=$(HOTLINE_DATABASE_URL="sqlite://$WORK/hotline.db" HOTLINE_TICKETS_SLA_FILE="$ROOT/sla.toml" \
        "$HOTLINE_BIN" ticket list --limit 1000000 | tail -n 1 | tr -dc '0-9')
    rss=$(awk '/VmHWM/ {print $2}' "/proc/$GW_PID/status")
    stop_gateway >/dev/null || true
    ticks=$(getconf CLK_TCK)
    cpu=$(echo "scale=1; ($cpu_after - $cpu_before) * 100 / $ticks / $elapsed" | bc)
    echo "dtmf=${DTMF:-pcap} rate=$rate calls=$calls tickets=$tickets gateway_cpu_pct=$cpu peak_rss_kib=$rss :: $result"
done
