#!/usr/bin/env bash
# The fuzz targets, built with the stable toolchain (no cargo-fuzz, no
# nightly): libfuzzer-sys links libFuzzer, and rustc's SanitizerCoverage
# pass, switched on for our own crates by rustc-wrapper.sh, gives it
# coverage and comparison feedback. Without AddressSanitizer (which needs
# nightly); the targets are safe Rust, where a bug shows as a panic, and
# panics abort the run.
#
#   fuzz/run.sh --build                 build every target
#   fuzz/run.sh TARGET SECONDS [ARGS]   fuzz TARGET for SECONDS on its kept
#                                       corpus; new inputs are added to
#                                       fuzz/corpus/TARGET (ARGS go to
#                                       libFuzzer, e.g. -runs=10000000)
#   fuzz/run.sh --all SECONDS           every target for SECONDS on the kept
#                                       corpus, which is left as it is (the
#                                       CI smoke test); fails on the first
#                                       crash
#   fuzz/run.sh --merge TARGET          minimise fuzz/corpus/TARGET (with
#                                       fuzz/seeds/TARGET) by coverage
#   fuzz/run.sh --list                  the targets
#
# Crashes, hangs and their inputs go to target/fuzz-artifacts/TARGET/;
# rerun one with `fuzz/run.sh TARGET 0 FILE` or turn it into a unit test.
# The build goes to target/fuzz (9.5 minutes of CPU from scratch).
set -euo pipefail

FUZZ_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$FUZZ_DIR")
TARGET_DIR=${FUZZ_TARGET_DIR:-$ROOT/target/fuzz}
ARTIFACTS=${FUZZ_ARTIFACTS:-$ROOT/target/fuzz-artifacts}
HOST=$(rustc -vV | sed -n 's/^host: //p')
BIN_DIR=${FUZZ_BIN_DIR:-$TARGET_DIR/$HOST/release}

# Each target and the longest input it is given (bytes): the shipped
# dialplan is 13 KB, a SIP dialog a few messages.
declare -A MAX_LEN=(
    [sip_endpoint]=8192
    [sip_message]=4096
    [sdp_parse]=2048
    [media_session]=4096
    [dtmf_info]=256
    [sms_command]=1024
    [sms_webhook]=4096
    [dialplan]=16384
    [sla_policy]=8192
    [customer_csv]=4096
)
TARGETS=(sip_endpoint sip_message sdp_parse media_session dtmf_info sms_command
    sms_webhook dialplan sla_policy customer_csv)

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 2
}

build() {
    # The wrapper instruments our own crates; --target keeps RUSTFLAGS off
    # build scripts and proc macros.
    RUSTC_WRAPPER=$FUZZ_DIR/rustc-wrapper.sh \
        RUSTFLAGS="--cfg fuzzing ${FUZZ_RUSTFLAGS:-}" \
        CARGO_TARGET_DIR=$TARGET_DIR \
        cargo build --release --locked --manifest-path "$FUZZ_DIR/Cargo.toml" \
        --target "$HOST" --bins
}

check_target() {
    [ -n "${MAX_LEN[$1]:-}" ] || {
        echo "unknown target $1 (targets: ${TARGETS[*]})" >&2
        exit 2
    }
}

# run TARGET CORPUS_DIRS... -- LIBFUZZER_ARGS...
run() {
    local target=$1
    shift
    mkdir -p "$ARTIFACTS/$target"
    "$BIN_DIR/$target" -max_len="${MAX_LEN[$target]}" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$ARTIFACTS/$target/" "$@"
}

case ${1:-} in
--build)
    build
    ;;
--list)
    printf '%s\n' "${TARGETS[@]}"
    ;;
--all)
    seconds=${2:?usage: fuzz/run.sh --all SECONDS}
    build
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    for target in "${TARGETS[@]}"; do
        echo "==> $target: ${seconds}s on fuzz/corpus/$target"
        mkdir -p "$scratch/$target"
        # New inputs go to the first directory, a scratch one, so the kept
        # corpus is only read.
        if ! run "$target" "$scratch/$target" "$FUZZ_DIR/corpus/$target" \
            -max_total_time="$seconds" >"$scratch/$target.log" 2>&1; then
            tail -n 40 "$scratch/$target.log"
            echo "FAIL: $target crashed; input in $ARTIFACTS/$target/" >&2
            cp "$scratch/$target.log" "$ARTIFACTS/$target/smoke.log"
            exit 1
        fi
        grep -E '^stat::number_of_executed_units|^Done' "$scratch/$target.log" || true
    done
    echo "all ${#TARGETS[@]} targets ran ${seconds}s each without a crash"
    ;;
--merge)
    target=${2:?usage: fuzz/run.sh --merge TARGET}
    check_target "$target"
    build
    merged=$(mktemp -d)
    mkdir -p "$FUZZ_DIR/corpus/$target" "$FUZZ_DIR/seeds/$target"
    run "$target" -merge=1 "$merged" "$FUZZ_DIR/corpus/$target" "$FUZZ_DIR/seeds/$target"
    rm -rf "$FUZZ_DIR/corpus/$target"
    mv "$merged" "$FUZZ_DIR/corpus/$target"
    chmod 755 "$FUZZ_DIR/corpus/$target"
    echo "fuzz/corpus/$target: $(find "$FUZZ_DIR/corpus/$target" -type f | wc -l) inputs"
    ;;
"" | -h | --help)
    usage
    ;;
*)
    target=$1
    seconds=${2:?usage: fuzz/run.sh TARGET SECONDS [LIBFUZZER_ARGS]}
    shift 2
    check_target "$target"
    [ -n "${FUZZ_NO_BUILD:-}" ] || build
    mkdir -p "$FUZZ_DIR/corpus/$target" "$FUZZ_DIR/seeds/$target"
    # A file argument reruns that input; otherwise fuzz the corpus.
    if [ $# -gt 0 ] && [ -f "$1" ]; then
        run "$target" "$@"
    else
        run "$target" "$FUZZ_DIR/corpus/$target" "$FUZZ_DIR/seeds/$target" \
            -max_total_time="$seconds" "$@"
    fi
    ;;
esac
