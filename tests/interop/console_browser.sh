#!/usr/bin/env bash
# The web console in a real browser: the gateway with a scratch
# config and SQLite file, an agent's and a supervisor's token from
# `hotline token create`, a fault ticket for a mobile customer opened
# through the staff API; then headless Chromium (Debian's chromium and
# chromium-driver, driven by Selenium from PyPI in a venv under target/)
# logs in, opens the ticket from the board, resolves it and sees the
# customer's SMS queued on the page; the dashboard opens for the
# supervisor. See console_browser.py for every check.
#
# Usage: tests/interop/console_browser.sh   (after `cargo build --release`,
# or with HOTLINE_BIN=target/debug/hotline). Screenshots (CI artifacts):
# target/console-screens/{board,ticket,dashboard}.png; log:
# $INTEROP_WORK/console_browser/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=${INTEROP_WORK:-$ROOT/target/interop}/console_browser
VENV=${CONSOLE_VENV:-$ROOT/target/console-venv}
SCREENS=${CONSOLE_SCREENS:-$ROOT/target/console-screens}
rm -rf "$WORK"
mkdir -p "$WORK" "$SCREENS"
# shellcheck source=tests/interop/lib.sh
. "$ROOT/tests/interop/lib.sh"
trap kill_gateway EXIT

[ -x "$HOTLINE_BIN" ] || { echo "no gateway binary at $HOTLINE_BIN (cargo build --release, or HOTLINE_BIN=target/debug/hotline)"; exit 2; }
for tool in chromium chromedriver; do
    command -v "$tool" >/dev/null || { echo "$tool is missing (apt-get install chromium chromium-driver)"; exit 2; }
done
if ! "$VENV/bin/python" -c 'import selenium' 2>/dev/null; then
    log "installing selenium into $VENV"
    python3 -m venv "$VENV" || { echo "python3 -m venv failed (apt-get install python3-venv)"; exit 2; }
    "$VENV/bin/pip" install --quiet 'selenium>=4.20,<5' >"$WORK/pip.log" 2>&1 ||
        { echo "pip install selenium failed:"; tail -n 20 "$WORK/pip.log"; exit 2; }
fi

SETTINGS=(HOTLINE_DATABASE_URL="sqlite://$WORK/hotline.db" HOTLINE_TICKETS_SLA_FILE="$ROOT/sla.toml")
HTTP_PORT=$(free_port 127.0.0.1)
start_gateway 127.0.0.1 "$(free_port 127.0.0.1)" "${SETTINGS[@]}" \
    HOTLINE_HTTP_LISTEN="127.0.0.1:$HTTP_PORT"
BASE=http://127.0.0.1:$HTTP_PORT
token() {
    env "${SETTINGS[@]}" "$HOTLINE_BIN" token create --name "$1" --role "$2" |
        grep -oE 'hl_[0-9a-f]{64}' | head -n 1
}
AGENT=$(token li.na agent)
SUPERVISOR=$(token zhang.wei supervisor)
[ -n "$AGENT" ] && [ -n "$SUPERVISOR" ] || { log "FAIL: hotline token create printed no token"; exit 1; }

# The customer's ticket, opened through the API like a supervisor's tool
# would; its description must come out of the page as text.
TICKET=$(python3 - "$BASE" "$SUPERVISOR" <<'PY'
import json, sys, urllib.request
base, token = sys.argv[1:]
body = {"type": "fault_report", "category": "virtual_network", "contact_phone": "13800138000",
        "service_number": "VN-0001", "description": "专线中断 <script>alert('x')</script>"}
request = urllib.request.Request(f"{base}/api/v1/tickets", data=json.dumps(body).encode(),
    headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
with urllib.request.urlopen(request, timeout=10) as answer:
    print(json.load(answer)["number"])
# A few more, so that the dashboard's charts have something to show.
for channel, category, level in (("voice", "bandwidth", "group"), ("sms", "toll_free", "local_a"),
                                 ("api", "virtual_network", "local_b"), ("voice", "ict", "provincial")):
    body = {"type": "complaint", "category": category, "contact_phone": "02088880000",
            "description": f"{channel} seed", "channel": channel, "level": level}
    request = urllib.request.Request(f"{base}/api/v1/tickets", data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).close()
PY
)
log "ticket $TICKET opened for 13800138000"

status=0
SE_OFFLINE=true timeout --kill-after=10 120 "$VENV/bin/python" "$ROOT/tests/interop/console_browser.py" \
    "$BASE" "$AGENT" "$SUPERVISOR" "$TICKET" "$SCREENS" 2>&1 | tee "$WORK/browser.out" || status=$?
stop_gateway || status=1
for shot in board dashboard; do
    [ -s "$SCREENS/$shot.png" ] || { log "FAIL: no screenshot $SCREENS/$shot.png"; status=1; }
done
if [ "$status" -eq 0 ]; then
    log "PASS: the console works in Chromium; screenshots in $SCREENS"
else
    log "FAIL: see $WORK/browser.out and $WORK/gateway.log"
fi
exit "$status"
