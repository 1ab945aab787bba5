# Shared helpers for the interop suites (sourced, not executed).
#
# start_gateway VAR=VALUE...  starts the release gateway with the given
#   environment on top of a loopback-only default configuration, writes its
#   log to $WORK/gateway.log, sets GW_PID; fails if it does not answer an
#   OPTIONS ping within 15 s.
# stop_gateway                SIGTERM, waits (bounded), fails unless exit 0
#                             and the log has no panic.
# free_port [family]          prints a port free for both UDP and TCP.
# sip_ping HOST PORT udp|tcp  one OPTIONS, succeeds on a 200.
# require_tools TOOL...       exits 2 (not installed) unless every TOOL is
#                             on PATH.
# require_shared_tool NAME    exits 2 unless ../shared/tools (or
#                             SHARED_TOOLS) has the executable NAME.
# fail MESSAGE                logs a failed check and counts it (FAILURES).
# result LOGDIR               prints RESULT: PASS, or RESULT: FAIL with the
#                             count and LOGDIR and exits 1.
#
# Expects ROOT (the repository) and WORK (a scratch directory) to be set.

HOTLINE_BIN=${HOTLINE_BIN:-$ROOT/target/release/hotline}
# The gateway reads every HOTLINE_* variable as a setting and refuses
# unknown ones: this one must not reach it.
export -n HOTLINE_BIN
INTEROP_DIR=$ROOT/tests/interop
GW_PID=""

require_tools() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "$tool is not installed"; exit 2; }
    done
}

require_shared_tool() {
    local tools=${SHARED_TOOLS:-$ROOT/../shared/tools}
    [ -x "$tools/$1" ] || { echo "shared tools not found at $tools"; exit 2; }
}

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }

# A port that is currently free for UDP and TCP at once on the given
# loopback address (127.0.0.1 or ::1). A race with other processes is
# possible but unlikely; the gateway fails loudly if it happens.
free_port() {
    python3 - "${1:-127.0.0.1}" <<'PY'
import socket, sys
host = sys.argv[1]
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
for _ in range(200):
    t = socket.socket(fam, socket.SOCK_STREAM)
    t.bind((host, 0))
    port = t.getsockname()[1]
    u = socket.socket(fam, socket.SOCK_DGRAM)
    try:
        u.bind((host, port))
    except OSError:
        t.close(); u.close()
        continue
    t.close(); u.close()
    print(port)
    sys.exit(0)
sys.exit("no free port found")
PY
}

have_ipv6_loopback() {
    python3 -c 'import socket; s=socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.bind(("::1", 0))' 2>/dev/null
}

sip_ping() {
    python3 "$INTEROP_DIR/malformed.py" --host "$1" --port "$2" --ping "$3" >/dev/null 2>&1
}

start_gateway() {
    local host=$1 port=$2
    shift 2
    local http_port
    http_port=$(free_port 127.0.0.1)
    log "starting gateway: SIP udp+tcp $host port $port ($*)"
    local rtp_bind=HOTLINE_MEDIA_RTP_BIND
    case $host in *:*) rtp_bind=HOTLINE_MEDIA_RTP_BIND_V6 ;; esac
    # HOTLINE_BIN is the script's, not a setting: the gateway refuses
    # unknown HOTLINE_* variables.
    env -u HOTLINE_BIN HOTLINE_SIP_UDP="$(bracket "$host"):$port" \
        HOTLINE_SIP_TCP="$(bracket "$host"):$port" \
        "$rtp_bind=$host" \
        HOTLINE_HTTP_LISTEN="127.0.0.1:$http_port" \
        HOTLINE_DATABASE_URL="sqlite://$WORK/hotline.db" \
        HOTLINE_PROMPTS_DIR="$ROOT/prompts" \
        HOTLINE_IVR_DIALPLANS_DIR="${HOTLINE_IVR_DIALPLANS_DIR:-$WORK/no-dialplans}" \
        HOTLINE_LOG_LEVEL="${HOTLINE_LOG_LEVEL:-info}" \
        "$@" \
        "$HOTLINE_BIN" serve >"$WORK/gateway.log" 2>&1 &
    GW_PID=$!
    local i
    for i in $(seq 1 150); do
        if ! kill -0 "$GW_PID" 2>/dev/null; then
            log "FAIL: gateway exited during start-up; log:"
            tail -n 40 "$WORK/gateway.log"
            GW_PID=""
            return 1
        fi
        if sip_ping "$host" "$port" udp; then
            log "gateway pid $GW_PID answers OPTIONS after ~$((i / 10)).$((i % 10)) s"
            return 0
        fi
        sleep 0.1
    done
    log "FAIL: gateway did not answer OPTIONS within 15 s; log:"
    tail -n 40 "$WORK/gateway.log"
    return 1
}

bracket() {
    case $1 in *:*) printf '[%s]' "$1" ;; *) printf '%s' "$1" ;; esac
}

# Graceful stop: SIGTERM, then the gateway must exit 0 within 45 s (the
# drain is short when no calls are live).
stop_gateway() {
    [ -n "$GW_PID" ] || return 0
    local pid=$GW_PID status=0 i
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 450); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "FAIL: gateway still running 45 s after SIGTERM; killing it"
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        GW_PID=""
        return 1
    fi
    wait "$pid" || status=$?
    GW_PID=""
    if [ "$status" -ne 0 ]; then
        log "FAIL: gateway exited with status $status after SIGTERM; log tail:"
        tail -n 30 "$WORK/gateway.log"
        return 1
    fi
    log "gateway stopped by SIGTERM with exit status 0"
    # A panic in a spawned task does not end the process; look for one.
    if grep -q 'panicked' "$WORK/gateway.log"; then
        log "FAIL: the gateway log contains a panic:"
        grep -m 5 -A 3 'panicked' "$WORK/gateway.log"
        return 1
    fi
}

# For `trap ... EXIT`: never leave the gateway behind.
FAILURES=0
fail() { log "FAIL: $*"; FAILURES=$((FAILURES + 1)); }

result() {
    if [ "$FAILURES" -eq 0 ]; then
        echo "RESULT: PASS"
    else
        echo "RESULT: FAIL ($FAILURES failures; logs in $1)"
        exit 1
    fi
}

kill_gateway() {
    if [ -n "$GW_PID" ] && kill -0 "$GW_PID" 2>/dev/null; then
        kill -KILL "$GW_PID" 2>/dev/null || true
        wait "$GW_PID" 2>/dev/null || true
    fi
    GW_PID=""
}
