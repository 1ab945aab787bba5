#!/usr/bin/env bash
# Makes the speech recognition test set (tests/data/speech/*.wav and
# manifest.csv) with espeak-ng and sox: each phrase of the 10000 main
# menu's grammar said by several voices at several speeds, plus other
# speech and noise that must NOT be recognised as a choice. Every file
# goes through G.711 µ-law and back at 8 kHz, as a caller's audio does.
#
#   tests/data/speech/make.sh      (needs espeak-ng and sox)
#
# manifest.csv: file,key,language,what  (key "-": must not match)
set -euo pipefail
DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rm -f "$DIR"/*.wav
echo "file,key,language,what" >"$DIR/manifest.csv"

# 8 kHz mono 16-bit through µ-law, a quarter second of silence each side.
finish() { # IN OUT
    sox -D "$1" -r 8000 -c 1 -b 16 -e signed-integer "$tmp/a.wav" remix - gain -h rate -v 8000 norm -6 pad 0.25 0.25
    sox -D "$tmp/a.wav" -e u-law "$tmp/u.wav"
    sox -D "$tmp/u.wav" -e signed-integer -b 16 "$2"
}

n=0
say() { # KEY LANGUAGE VOICE SPEED TEXT
    n=$((n + 1))
    local name
    name=$(printf '%03d' "$n")-$2-${1/-/other}.wav
    espeak-ng -v "$3" -s "$4" -w "$tmp/s.wav" -- "$5"
    finish "$tmp/s.wav" "$DIR/$name"
    echo "$name,$1,$2,$5 ($3 $4)" >>"$DIR/manifest.csv"
}

ZH_VOICES=(cmn-latn-pinyin cmn-latn-pinyin+f2 cmn-latn-pinyin+m3 cmn-latn-pinyin+f4 cmn-latn-pinyin+m7)
EN_VOICES=(en-us en-us+f2 en-us+m3 en-us+f4 en)
SPEEDS=(130 160 190)
for voice in "${ZH_VOICES[@]}"; do
    for speed in "${SPEEDS[@]}"; do
        say 9 zh "$voice" "$speed" "故障"
        say 9 zh "$voice" "$speed" "报障"
        say 1 zh "$voice" "$speed" "查询"
        say 0 zh "$voice" "$speed" "人工"
    done
done
for voice in "${EN_VOICES[@]}"; do
    for speed in "${SPEEDS[@]}"; do
        say 9 en "$voice" "$speed" "fault"
        say 9 en "$voice" "$speed" "report a fault"
        say 1 en "$voice" "$speed" "status"
        say 0 en "$voice" "$speed" "agent"
    done
done
# Other speech: not a choice of this menu.
for voice in cmn-latn-pinyin cmn-latn-pinyin+f2 cmn-latn-pinyin+m3; do
    for text in "我想查一下话费" "你好" "请问营业时间" "谢谢再见" "二零二四年"; do
        say - zh "$voice" 160 "$text"
    done
done
for voice in en-us en-us+f2 en; do
    for text in "hello" "what time do you close" "I want to pay my bill" "thank you goodbye" "my name is John"; do
        say - en "$voice" 160 "$text"
    done
done
# Noise: a line's hiss and hum, a burst, a door.
noise() { # NAME SOX-SYNTH-ARGS...
    n=$((n + 1))
    local name
    name=$(printf '%03d' "$n")-noise.wav
    sox -D -n -r 8000 -c 1 -b 16 -e signed-integer "$tmp/n.wav" synth "${@:2}"
    finish "$tmp/n.wav" "$DIR/$name"
    echo "$name,-,none,$1" >>"$DIR/manifest.csv"
}
noise "white noise 1 s" 1 whitenoise vol 0.3
noise "pink noise 1.5 s" 1.5 pinknoise vol 0.4
noise "brown noise 1 s" 1 brownnoise vol 0.5
noise "50 Hz hum 1 s" 1 sine 50 vol 0.5
noise "1 kHz tone 0.5 s" 0.5 sine 1000 vol 0.3
noise "white noise burst 0.2 s" 0.2 whitenoise vol 0.8
noise "pink noise 3 s" 3 pinknoise vol 0.2
noise "tremolo noise 2 s" 2 whitenoise vol 0.3 tremolo 4 80
echo "$(($(wc -l <"$DIR/manifest.csv") - 1)) files in $DIR"
