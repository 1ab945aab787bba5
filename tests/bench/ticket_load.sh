#!/usr/bin/env bash
# Ticket creation benchmark: one writer and 32 concurrent writers, on SQLite
# (a fresh file) and on PostgreSQL (DATABASE_URL, default the local server,
# in a scratch schema), via examples/ticket_load.rs.
#
#   tests/bench/ticket_load.sh [COUNT]
#
# Needs: cargo build --release --example ticket_load
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TOOL=$ROOT/target/release/examples/ticket_load
COUNT=${1:-20000}
WORK=$(mktemp -d)
PG=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
SCHEMA=hotline_bench_$$
trap 'rm -rf "$WORK"; psql -q "$PG" -c "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" 2>/dev/null || true' EXIT

for writers in 1 32; do
    n=$COUNT
    [ "$writers" -eq 1 ] && n=$((COUNT / 10))
    rm -f "$WORK"/bench.db*
    echo "sqlite     $("$TOOL" "sqlite://$WORK/bench.db" "$writers" "$n")"
done
if psql -q "$PG" -c "CREATE SCHEMA $SCHEMA" 2>/dev/null; then
    for writers in 1 32; do
        n=$COUNT
        [ "$writers" -eq 1 ] && n=$((COUNT / 10))
        echo "postgres   $("$TOOL" "$PG?options=-c%20search_path%3D$SCHEMA" "$writers" "$n")"
    done
else
    echo "postgres   skipped: cannot reach $PG"
fi
