#!/usr/bin/env bash
# RUSTC_WRAPPER for the fuzz build (see run.sh): adds SanitizerCoverage
# instrumentation to our own code only, the `hotline` library and the fuzz
# targets. Dependencies (tokio, sqlx, csv, toml, …) still run, and a panic
# in them still ends the run, but they give libFuzzer no feedback: their
# counters and comparison hooks would cost every execution (csv's parser
# builder alone took half the time) and guide it through code that is not
# ours. Stable rustc has no per-crate flags, hence the wrapper.
rustc=$1
shift
ours=0
prev=
for arg in "$@"; do
    if [ "$prev" = --crate-name ] && [ "$arg" = hotline ]; then ours=1; fi
    case $arg in */fuzz_targets/*.rs) ours=1 ;; esac
    prev=$arg
done
if [ "$ours" = 1 ]; then
    exec "$rustc" "$@" -Cpasses=sancov-module \
        -Cllvm-args=-sanitizer-coverage-level=4 \
        -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
        -Cllvm-args=-sanitizer-coverage-pc-table \
        -Cllvm-args=-sanitizer-coverage-trace-compares
fi
exec "$rustc" "$@"
