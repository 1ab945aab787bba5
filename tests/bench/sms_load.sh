#!/usr/bin/env bash
# SMS webhook benchmark: wrk posts signed generic-JSON webhooks, each a
# FAULT text from its own sender with a unique id, so that every request
# opens a ticket (with its event and outbox row) and records the text and
# its reply in one transaction. Run against SQLite (a fresh file) and
# PostgreSQL (the server of DATABASE_URL, default the local one, in a
# scratch database, so that its pg_stat_database counters are the run's
# alone: transactions per webhook). Afterwards the tickets in the database
# are counted: one per 200.
#
#   tests/bench/sms_load.sh [SECONDS] [CONNECTIONS]     (defaults 20, 64)
#
# HOTLINE_DATABASE_WRITERS, when set, is passed on to the gateway (the
# PostgreSQL writer connections; docs/operations.md). ONLY=sqlite or
# ONLY=postgres runs one of the two. On PostgreSQL, postgres_cpu_s is the
# CPU time every postgres process of the machine used during the load.
#
# Needs a release build (cargo build --release), wrk, python3, psql.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SECONDS_PER_RUN=${1:-20}
CONNECTIONS=${2:-64}
WRK_THREADS=${WRK_THREADS:-2}
WORK=$(mktemp -d)
PG=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
SCRATCH=hotline_sms_bench_$$
# The same server and credentials, the scratch database.
SCRATCH_URL="${PG%/*}/$SCRATCH"
SECRET=bench-secret
# shellcheck source=../interop/lib.sh
source "$ROOT/tests/interop/lib.sh"
trap 'kill_gateway; rm -rf "$WORK"; psql -q "$PG" -c "DROP DATABASE IF EXISTS $SCRATCH" 2>/dev/null || true' EXIT
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 2; }
ulimit -n 65536 2>/dev/null || true

# CPU ticks (user + system) of every postgres process alive now.
postgres_ticks() {
    local total=0 pid
    for pid in $(pgrep -x postgres); do
        total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
    done
    echo "$total"
}

# Transactions committed in the scratch database so far.
commits() {
    psql -tAq "$PG" -c "SELECT pg_stat_clear_snapshot(); SELECT xact_commit FROM pg_stat_database WHERE datname = '$SCRATCH'" | tail -n 1
}

run() { # NAME DATABASE_URL COUNT_SQL [COMMITS_COMMAND]
    local name=$1 url=$2 count=$3 commits=${4:-}
    local sip http
    sip=$(free_port 127.0.0.1)
    http=$(free_port 127.0.0.1)
    python3 "$ROOT/tests/bench/sms_requests.py" "$SECRET" $((SECONDS_PER_RUN * 12000)) "$name-$$" \
        >"$WORK/requests.tsv"
    start_gateway 127.0.0.1 "$sip" HOTLINE_DATABASE_URL="$url" HOTLINE_HTTP_LISTEN="127.0.0.1:$http" \
        HOTLINE_SMS_GENERIC_SECRET="$SECRET" >/dev/null
    local before=0 pg_before=0
    [ -n "$commits" ] && before=$($commits) && pg_before=$(postgres_ticks)
    local out
    out=$(REQUESTS="$WORK/requests.tsv" WRK_THREADS=$WRK_THREADS wrk -t"$WRK_THREADS" \
        -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --timeout 10s \
        -s "$ROOT/tests/bench/sms_wrk.lua" "http://127.0.0.1:$http")
    local cpu rss pg_cpu=""
    cpu=$(awk '{print $14 + $15}' "/proc/$GW_PID/stat")
    [ -n "$commits" ] && pg_cpu="postgres_cpu_s=$(echo "scale=1; ($(postgres_ticks) - pg_before) / $(getconf CLK_TCK)" | bc)"
    rss=$(awk '/VmHWM/ {print $2}' "/proc/$GW_PID/status")
    stop_gateway >/dev/null || true
    local transactions=""
    if [ -n "$commits" ]; then
        # The statistics collector reports at most every 0.5 s.
        sleep 1
        transactions="transactions=$(($($commits) - before))"
    fi
    local tickets
    tickets=$(eval "$count")
    local rps sent non200
    rps=$(grep -E '^Requests/sec' <<<"$out" | awk '{print $2}')
    sent=$(grep -E '^thread' <<<"$out" | awk '{s += $5} END {print s}')
    non200=$(grep -E '^thread' <<<"$out" | awk '{s += $7} END {print s}')
    ok=$(grep -E '^thread' <<<"$out" | awk '{s += $14} END {print s}')
    echo "$name connections=$CONNECTIONS webhooks=$sent answered_200=$ok non_200=$non200 tickets=$tickets" \
        "webhooks_per_s=$((ok / SECONDS_PER_RUN)) wrk_req_per_s=$rps gateway_cpu_s=$(echo "scale=1; $cpu / $(getconf CLK_TCK)" | bc)" \
        "peak_rss_kib=$rss $pg_cpu $transactions :: $(grep -E '^latency' <<<"$out")"
    grep -E 'ran out [1-9]' <<<"$out" || true
}

[ "${ONLY:-sqlite}" = sqlite ] && run sqlite "sqlite://$WORK/hotline.db" \
    "sqlite3 '$WORK/hotline.db' 'SELECT count(*) FROM tickets' 2>/dev/null || \
     HOTLINE_DATABASE_URL=sqlite://$WORK/hotline.db '$HOTLINE_BIN' ticket list --limit 1000000 | tail -n 1 | tr -dc 0-9"
if [ "${ONLY:-postgres}" != postgres ]; then
    :
elif psql -q "$PG" -c "CREATE DATABASE $SCRATCH" 2>/dev/null; then
    run postgres "$SCRATCH_URL" "psql -tAq '$SCRATCH_URL' -c 'SELECT count(*) FROM tickets'" commits
else
    echo "postgres skipped: cannot reach $PG"
fi
