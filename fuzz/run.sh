#!/usr/bin/env bash
# Runs one fuzz target for a bounded time: fuzz/run.sh TARGET [SECONDS]
# (targets: sip_endpoint, sdp_parse, sms_command). Needs the nightly toolchain and
# cargo-fuzz (`cargo install cargo-fuzz`). New corpus entries go to
# fuzz/corpus/TARGET (not committed); fuzz/seeds/TARGET is read only.
set -euo pipefail
cd "$(dirname "$0")"
target=${1:?usage: fuzz/run.sh TARGET [SECONDS]}
seconds=${2:-60}
mkdir -p "corpus/$target" "seeds/$target"
exec cargo +nightly fuzz run "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -max_len=8192
