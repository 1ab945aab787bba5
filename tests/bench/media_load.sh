#!/usr/bin/env bash
# Media load benchmark: N concurrent prompt-playing calls held against the
# release gateway on loopback, measured by examples/media_load.rs.
#
#   tests/bench/media_load.sh [HOLD_SECONDS] N [N ...]
#
# The gateway loops its greeting prompt on every call; the tool places the
# calls at 200/s, sends each call RTP (so the gateway also receives; set
# SEND_RTP= to only receive), then
# measures loss, lateness (>2 ms, >5 ms against the 20 ms clock), jitter,
# the packets due against those that arrived, the gateway's CPU and
# resident memory per call, and the tool's own CPU and read delay. SRTP=1 makes every
# call SRTP (the tool offers RTP/SAVP with an SDES key). Needs a release
# build of the gateway and the example (HOTLINE_BIN and MEDIA_LOAD_TOOL name
# other builds):
#   cargo build --release --bin hotline --example media_load
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d)
# shellcheck source=../interop/lib.sh
source "$ROOT/tests/interop/lib.sh"
trap 'kill_gateway; rm -rf "$WORK"' EXIT

HOLD=30
if [ $# -ge 2 ]; then HOLD=$1; shift; fi
[ $# -ge 1 ] || { echo "usage: $0 [HOLD_SECONDS] N [N ...]" >&2; exit 2; }
TOOL=${MEDIA_LOAD_TOOL:-$ROOT/target/release/examples/media_load}
SRTP=${SRTP-}
# SEND_RTP=1 (default) has the tool send each call RTP too; SEND_RTP= (empty)
# only receives, which leaves more of the machine to the gateway.
SEND_RTP=${SEND_RTP-1}
# The tool receives every call on one socket; let it have a big buffer.
if [ "$(id -u)" -eq 0 ] && [ "$(cat /proc/sys/net/core/rmem_max)" -lt 67108864 ]; then
    sysctl -qw net.core.rmem_max=67108864
fi

for calls in "$@"; do
    port=$(free_port 127.0.0.1)
    start_gateway 127.0.0.1 "$port" \
        HOTLINE_SIP_INVITES_PER_SECOND_PER_SOURCE=0 HOTLINE_SIP_MAX_CALLS=$((calls + 100)) \
        HOTLINE_CALLS_MAX_DURATION_SECS=3600 HOTLINE_CALLS_LOOP_GREETING=true \
        HOTLINE_MEDIA_TIMEOUT_SECS="$([ -n "$SEND_RTP" ] && echo 30 || echo 0)" \
        HOTLINE_PROMPTS_DIR="$ROOT/prompts" HOTLINE_LOG_LEVEL=warn >/dev/null
    echo "N=$calls: $("$TOOL" --gateway "127.0.0.1:$port" --calls "$calls" --rate 200 --hold "$HOLD" \
        ${SEND_RTP:+--send-rtp} ${SRTP:+--srtp} --pid "$GW_PID" 2>"$WORK/tool.err")"
    grep -v '^media_load: [0-9]* of' "$WORK/tool.err" | head -5 || true
    stop_gateway >/dev/null || true
done
