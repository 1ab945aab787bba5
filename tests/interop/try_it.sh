#!/usr/bin/env bash
# The README's "Try it" section, run as written, so that it cannot drift
# from what the gateway does. The commands are read from README.md itself:
#
#   1. the first block must be `export HOTLINE_SMS_GENERIC_SECRET=…` and
#      `cargo run --release -- serve`: the gateway is started with that
#      secret, the shipped dialplans and prompts (on free loopback ports
#      instead of 5060/8080, which other processes may hold here);
#   2. every command of the second block runs in order with the same
#      secret, `cargo run --release --` standing for $HOTLINE_BIN and
#      127.0.0.1:5060 for the gateway's SIP port: the SIPp call must
#      succeed (and the gateway log it), `sms test` must print the reply
#      that opens a ticket, `ticket list` must show that one ticket in the
#      category its words name (bandwidth), `token create` must print a
#      token;
#   3. that token logs in to /console (the login form's CSRF cookie, then
#      the board, which lists the ticket).
#
# Usage: tests/interop/try_it.sh   (needs sipp from sip-tester, curl, python3)
# Env:   HOTLINE_BIN (default target/release/hotline), INTEROP_WORK
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=${INTEROP_WORK:-$ROOT/target/interop}/try_it
rm -rf "$WORK"
mkdir -p "$WORK"
# shellcheck source=tests/interop/lib.sh
. "$ROOT/tests/interop/lib.sh"
trap kill_gateway EXIT

require_tools sipp curl python3
[ -x "$HOTLINE_BIN" ] || { echo "$HOTLINE_BIN not found: run cargo build --release"; exit 2; }
# The commands run in $WORK.
HOTLINE_BIN=$(realpath "$HOTLINE_BIN")

# The two code blocks of the section, one command per line (comments and
# blank lines dropped).
python3 - "$ROOT/README.md" "$WORK" <<'PY'
import sys
text = open(sys.argv[1], encoding="utf-8").read()
section = text.split("## Try it", 1)[1].split("\n## ", 1)[0]
blocks, current = [], []
for line in section.splitlines():
    if line.startswith("    "):
        current.append(line[4:])
    elif current and line.strip() == "":
        blocks.append(current)
        current = []
if current:
    blocks.append(current)
assert len(blocks) == 2, f"expected two code blocks in Try it, found {len(blocks)}"
for name, block in zip(["serve", "try"], blocks):
    commands = [l for l in block if l.strip() and not l.lstrip().startswith("#")]
    with open(f"{sys.argv[2]}/{name}.txt", "w", encoding="utf-8") as out:
        out.write("\n".join(commands) + "\n")
PY
mapfile -t SERVE <"$WORK/serve.txt"
[[ ${#SERVE[@]} -eq 2 && ${SERVE[0]} == "export HOTLINE_SMS_GENERIC_SECRET="* && ${SERVE[1]} == "cargo run --release -- serve" ]] \
    || { log "FAIL: the README's gateway block changed: ${SERVE[*]}"; exit 1; }
SECRET=${SERVE[0]#export HOTLINE_SMS_GENERIC_SECRET=}

PORT=$(free_port 127.0.0.1)
HTTP_PORT=$(free_port 127.0.0.1)
export HOTLINE_IVR_DIALPLANS_DIR=$ROOT/dialplans
start_gateway 127.0.0.1 "$PORT" HOTLINE_SMS_GENERIC_SECRET="$SECRET" \
    HOTLINE_HTTP_LISTEN="127.0.0.1:$HTTP_PORT"

FAILED=0
fail() { log "FAIL: $*"; FAILED=1; }
n=0
while IFS= read -r command; do
    n=$((n + 1))
    run=${command//cargo run --release --/\"\$HOTLINE_BIN\"}
    run=${run//127.0.0.1:5060/127.0.0.1:$PORT}
    log "run: $command"
    (cd "$WORK" && env -u HOTLINE_IVR_DIALPLANS_DIR HOTLINE_BIN="$HOTLINE_BIN" \
        HOTLINE_SMS_GENERIC_SECRET="$SECRET" HOTLINE_HTTP_LISTEN="127.0.0.1:$HTTP_PORT" \
        HOTLINE_DATABASE_URL="sqlite://$WORK/hotline.db" \
        timeout --kill-after=5 60 bash -c "export -n HOTLINE_BIN; $run") \
        >"$WORK/step$n.out" 2>&1 || fail "exit status $? from: $command (see $WORK/step$n.out)"
    case $command in
        sipp*)
            grep -aq 'Successful call.*|.* 1 *$' "$WORK/step$n.out" || fail "the SIPp call did not succeed"
            grep -q 'incoming call from="sipp" dialled="10000"' "$WORK/gateway.log" || fail "no call in the gateway log"
            grep -q 'call ended.*reason="remote_bye"' "$WORK/gateway.log" || fail "the call did not end by SIPp's BYE"
            ;;
        *"sms test"*)
            grep -q '^reply: 您的客户报障已受理，工单号[0-9]\{10\}' "$WORK/step$n.out" || fail "no ticket reply: $(cat "$WORK/step$n.out")"
            ;;
        *"ticket list"*)
            grep -q '(1 ticket(s))' "$WORK/step$n.out" || fail "not one ticket: $(cat "$WORK/step$n.out")"
            grep -Eq '^[0-9]{10} +new +fault_report +bandwidth ' "$WORK/step$n.out" || fail "not a bandwidth fault: $(cat "$WORK/step$n.out")"
            NUMBER=$(grep -Eo '^[0-9]{10}' "$WORK/step$n.out" | head -1)
            ;;
        *"token create"*)
            TOKEN=$(grep -Eo 'hl_[0-9a-f]{64}' "$WORK/step$n.out" | head -1)
            [ -n "$TOKEN" ] || fail "no token printed"
            ;;
    esac
done <"$WORK/try.txt"
[ "$n" -ge 4 ] || fail "only $n commands in the README's Try it block"

# "open http://127.0.0.1:8080/console and log in with it"
JAR=$WORK/cookies
BASE=http://127.0.0.1:$HTTP_PORT
curl -sf -c "$JAR" -b "$JAR" "$BASE/console/login" -o "$WORK/login.html" || fail "no login page"
CSRF=$(grep -o 'name="csrf" value="[0-9a-f]*"' "$WORK/login.html" | sed 's/.*value="//;s/"$//')
code=$(curl -s -c "$JAR" -b "$JAR" -o /dev/null -w '%{http_code}' \
    --data-urlencode "token=${TOKEN:-}" --data-urlencode "csrf=$CSRF" "$BASE/console/login")
[ "$code" = 303 ] || fail "console login answered $code"
curl -sf -b "$JAR" "$BASE/console/board" -o "$WORK/board.html" || fail "no board after login"
grep -q "${NUMBER:-no ticket}" "$WORK/board.html" || fail "the board does not list ticket ${NUMBER:-}"

stop_gateway || FAILED=1
if [ "$FAILED" -eq 0 ]; then
    log "PASS: the README's Try it commands work as written (ticket $NUMBER)"
else
    log "FAIL: see $WORK"
fi
exit "$FAILED"
