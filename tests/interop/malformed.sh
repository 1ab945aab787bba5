#!/usr/bin/env bash
# Malformed-input suite: starts the release gateway on a free loopback port
# (UDP and TCP), runs tests/interop/malformed.py against it (garbage,
# truncated INVITEs, wrong Content-Length, oversized messages, missing
# mandatory headers, broken TCP streams), then requires that the gateway
# is still alive, still answers OPTIONS (checked by the script), and stops
# on SIGTERM with exit status 0.
#
# Usage: tests/interop/malformed.sh        (after `cargo build --release`)
# Env:   HOTLINE_BIN, INTEROP_WORK (logs go to $INTEROP_WORK/malformed)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=${INTEROP_WORK:-$ROOT/target/interop}/malformed
rm -rf "$WORK"
mkdir -p "$WORK"
# shellcheck source=tests/interop/lib.sh
. "$ROOT/tests/interop/lib.sh"
trap kill_gateway EXIT

[ -x "$HOTLINE_BIN" ] || { echo "$HOTLINE_BIN not found: run cargo build --release"; exit 2; }

PORT=$(free_port 127.0.0.1)
# No per-source INVITE limit: the suite sends several hundred INVITE-like
# datagrams per second from one address, and a 503 would hide the answer
# under test. A short drain in case a call answered by mistake is still up.
start_gateway 127.0.0.1 "$PORT" \
    HOTLINE_SIP_INVITES_PER_SECOND_PER_SOURCE=0 \
    HOTLINE_SHUTDOWN_DRAIN_TIMEOUT_SECS=5

FAILED=0
rc=0
timeout --foreground --kill-after=5 240 python3 "$INTEROP_DIR/malformed.py" --host 127.0.0.1 --port "$PORT" --pid "$GW_PID" \
    2>&1 | tee "$WORK/malformed.out" || rc=$?
if [ "$rc" -ne 0 ]; then
    log "FAIL: malformed.py exited with status $rc"
    FAILED=1
fi
if ! kill -0 "$GW_PID" 2>/dev/null; then
    log "FAIL: the gateway process died; log tail:"
    tail -n 40 "$WORK/gateway.log"
    GW_PID=""
    FAILED=1
fi
stop_gateway || FAILED=1

if [ "$FAILED" -ne 0 ]; then
    echo "malformed suite: RESULT: FAIL (logs in $WORK)"
    exit 1
fi
echo "malformed suite: RESULT: PASS (logs in $WORK)"
