#!/usr/bin/env bash
# Regenerates the voice prompts listed in prompts/manifest.toml.
#
# For each [[prompt]] entry (name, voice, text) it speaks the text with
# espeak-ng (voice `voice`, 150 words per minute) and converts the result
# with sox to what the gateway plays without conversion: 8 kHz, mono,
# 16-bit signed PCM WAV, with espeak-ng's leading and trailing silence cut
# to a fixed length, peak-normalised to -3 dBFS, written to
# prompts/<name>.wav. Dithering is off, so the same espeak-ng and sox
# versions always produce the same bytes.
#
# Usage: scripts/make-prompts.sh [NAME...]
#   With no NAME, every prompt in the manifest is generated; otherwise only
#   the named ones (e.g. zh/welcome).
# Env:   PROMPTS_DIR (default: prompts/ next to this script's directory)
# Needs: espeak-ng, sox, python3 >= 3.11 (tomllib, to read the manifest).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROMPTS_DIR=${PROMPTS_DIR:-$ROOT/prompts}
MANIFEST=$PROMPTS_DIR/manifest.toml
RATE_WPM=150
PEAK_DB=-3

# Below this level (of full scale) a prompt's first and last samples
# count as silence and are cut.
SILENCE_THRESHOLD=0.5%

die() { printf 'make-prompts: %s\n' "$*" >&2; exit 1; }

# Seconds of silence before and after a prompt. The say vocabulary (digits,
# numbers, money, dates, times, durations) is played in runs, one piece
# after another: a number read digit by digit should sound like one
# utterance, so its pieces get a short gap. Sentences get a pause after
# them, as a speaker would leave.
padding() {
    case $1 in
        */digits/* | */numbers/* | */money/* | */date/* | */time/* | */duration/*) echo 0.02 0.1 ;;
        *) echo 0.05 0.25 ;;
    esac
}

for tool in espeak-ng sox python3; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done
[[ -f $MANIFEST ]] || die "no manifest at $MANIFEST"

# The manifest as NUL-separated name, voice, text triples, validated:
# every field present and non-empty, names unique, relative, and made of
# safe path characters.
read_manifest() {
    python3 - "$MANIFEST" <<'PY'
import re, sys, tomllib

path = sys.argv[1]
try:
    with open(path, "rb") as f:
        manifest = tomllib.load(f)
except (OSError, tomllib.TOMLDecodeError) as e:
    sys.exit(f"make-prompts: {path}: {e}")
entries = manifest.get("prompt")
if not isinstance(entries, list) or not entries:
    sys.exit(f"make-prompts: {path}: no [[prompt]] entries")
seen = set()
for i, entry in enumerate(entries, 1):
    fields = []
    for key in ("name", "voice", "text"):
        value = entry.get(key)
        if not isinstance(value, str) or not value.strip() or "\0" in value:
            sys.exit(f"make-prompts: {path}: prompt #{i}: missing or empty {key}")
        fields.append(value)
    name = fields[0]
    if not re.fullmatch(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*", name):
        sys.exit(f"make-prompts: {path}: prompt #{i}: bad name {name!r} "
                 "(use letters, digits, _ and - separated by /)")
    if name in seen:
        sys.exit(f"make-prompts: {path}: prompt {name!r} listed twice")
    seen.add(name)
    sys.stdout.write("\0".join(fields) + "\0")
PY
}

entries=$(mktemp)
tmp=$(mktemp -d)
trap 'rm -rf "$entries" "$tmp"' EXIT
read_manifest >"$entries"

wanted=("$@")
is_wanted() {
    local name=$1 w
    ((${#wanted[@]} == 0)) && return 0
    for w in "${wanted[@]}"; do [[ $w == "$name" ]] && return 0; done
    return 1
}

made=()
while IFS= read -r -d '' name && IFS= read -r -d '' voice && IFS= read -r -d '' text; do
    is_wanted "$name" || continue
    out=$PROMPTS_DIR/$name.wav
    mkdir -p "$(dirname "$out")"
    if [[ $voice == tone ]]; then
        # A tone, not speech (the beep before a recording): text is the
        # frequency in Hz and the length in seconds; 10 ms fades, 0.1 s of
        # silence first.
        read -r hz secs <<<"$text"
        sox -D -n -r 8000 -c 1 -b 16 -e signed-integer "$out" \
            synth "$secs" sine "$hz" fade 0.01 "$secs" 0.01 pad 0.1 0 norm "$PEAK_DB" \
            || die "$name: sox failed"
        printf '%-14s %5.2f s  %s\n' "$name" "$(soxi -D "$out")" "${out#"$ROOT"/}"
        made+=("$name")
        continue
    fi
    espeak-ng -v "$voice" -s "$RATE_WPM" -w "$tmp/speech.wav" -- "$text" \
        || die "$name: espeak-ng failed (voice $voice)"
    # -D: no dither (deterministic); gain -h: headroom so that resampling
    # cannot clip; rate -v: very-high-quality anti-aliased resampler;
    # silence ... reverse silence ... reverse trims espeak-ng's own leading
    # and trailing silence (about 0.4 s a prompt) and pad puts back a fixed,
    # short one; norm last so the final peak is exact.
    sox -D "$tmp/speech.wav" -r 8000 -c 1 -b 16 -e signed-integer "$tmp/out.wav" \
        remix - gain -h rate -v 8000 \
        silence 1 0.01 "$SILENCE_THRESHOLD" reverse silence 1 0.01 "$SILENCE_THRESHOLD" reverse \
        pad $(padding "$name") norm "$PEAK_DB" \
        || die "$name: sox failed"
    mv "$tmp/out.wav" "$out"
    printf '%-14s %5.2f s  %s\n' "$name" "$(soxi -D "$out")" "${out#"$ROOT"/}"
    made+=("$name")
done <"$entries"

for w in "${wanted[@]}"; do
    [[ " ${made[*]} " == *" $w "* ]] || die "$w is not in $MANIFEST"
done
((${#made[@]} > 0)) || die "nothing generated"
