#!/usr/bin/env bash
# The long campaign: fuzz/campaign.sh [RUNS] [TARGET...]
# Runs each target (default: all) in turn, one at a time and at the lowest
# CPU priority (FUZZ_NICE, default 19), for RUNS executions (default 10 million) or at most
# FUZZ_MAX_SECONDS (default 3 hours) each, adding what it finds to the kept
# corpus. The binaries are copied first, so that rebuilding while the
# campaign runs does not touch them. Logs and a summary (target,
# executions, seconds, exec/s, corpus size, coverage, features, result)
# go to target/fuzz-campaign/. Minimise the corpus afterwards with
# `fuzz/run.sh --merge TARGET`.
set -euo pipefail
FUZZ_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$FUZZ_DIR")
runs=${1:-10000000}
shift || true
mapfile -t all < <("$FUZZ_DIR/run.sh" --list)
if [ $# -gt 0 ]; then targets=("$@"); else targets=("${all[@]}"); fi
out=$ROOT/target/fuzz-campaign
mkdir -p "$out/bin"
# FUZZ_NO_BUILD=1: fuzz the binaries the last build left in target/fuzz
# as they are (a campaign split over several runs while the tree changes).
[ -n "${FUZZ_NO_BUILD:-}" ] || "$FUZZ_DIR/run.sh" --build
host=$(rustc -vV | sed -n 's/^host: //p')
for target in "${targets[@]}"; do
    cp "$ROOT/target/fuzz/$host/release/$target" "$out/bin/$target"
done
for target in "${targets[@]}"; do
    log=$out/$target.log
    start=$(date +%s)
    result=ok
    FUZZ_NO_BUILD=1 FUZZ_BIN_DIR=$out/bin nice -n "${FUZZ_NICE:-19}" "$FUZZ_DIR/run.sh" "$target" \
        "${FUZZ_MAX_SECONDS:-10800}" -runs="$runs" >"$log" 2>&1 || result=CRASH
    took=$(($(date +%s) - start))
    stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corpus=$(find "$FUZZ_DIR/corpus/$target" -type f | wc -l)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$target" "$(stat number_of_executed_units)" \
        "$took" "$(stat average_exec_per_sec)" "$corpus" "$cov" "$ft" "$result" |
        tee -a "$out/summary.tsv"
done
