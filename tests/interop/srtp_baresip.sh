#!/usr/bin/env bash
# SRTP interop suite: baresip (Debian baresip-core, its srtp module: SDES
# keys, libre's own SRTP) calls the gateway with media.srtp = "required".
#
#   srtp-mand    baresip offers RTP/SAVP with a=crypto (mediaenc=srtp-mand),
#                records what it decrypts; wav-similarity must score it
#                against prompts/zh/welcome.wav at 0.9 or more; its two
#                RFC 4733 keys (sent as SRTP) must each be logged once; and on
#                the wire (tshark) the gateway's RTP must be SRTP: an 80-bit
#                tag after 160 bytes of payload, no payload in the clear
#                (no frame of 160 equal bytes, as G.711 silence would be),
#                and the payloads decoded as if they were plain µ-law must
#                NOT match the prompt (wav-similarity below 0.5)
#   srtp-mandf   the same offer as RTP/SAVPF, recording scored the same way
#   plain        baresip without SRTP: the call must be refused (488, the
#                gateway logs "SRTP is required")
#
# Usage: tests/interop/srtp_baresip.sh   (after `cargo build`; HOTLINE_BIN
# names the gateway binary; needs baresip-core, tshark, sox, python3; run as
# root for the capture)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TOOLS=${SHARED_TOOLS:-$ROOT/../shared/tools}
WORK=${INTEROP_WORK:-$ROOT/target/interop}/srtp_baresip
rm -rf "$WORK"
mkdir -p "$WORK"
# shellcheck source=tests/interop/lib.sh
. "$ROOT/tests/interop/lib.sh"
trap kill_gateway EXIT

require_tools baresip tshark sox python3
[ -f /usr/lib/baresip/modules/srtp.so ] || { echo "baresip's srtp module is missing"; exit 2; }
require_shared_tool wav-similarity
CALLER=$ROOT/tests/interop/baresip-ivr-call

PROMPT=$ROOT/prompts/zh/welcome.wav
PORT=$(free_port 127.0.0.1)
start_gateway 127.0.0.1 "$PORT" HOTLINE_CALLS_GREETING=zh/welcome HOTLINE_CALLS_MAX_DURATION_SECS=60 \
    HOTLINE_MEDIA_SRTP=required
FAILED=0
SUMMARY=()

keys_logged() { grep -c 'key pressed.*source="\?rfc4733' "$WORK/gateway.log" || true; }

# wire_check PCAP: the gateway's RTP in the capture is SRTP, not plain G.711.
wire_check() {
    local pcap=$1 name=$2
    tshark -r "$pcap" -T fields -e udp.srcport -e udp.dstport -e udp.payload >"$WORK/$name.udp" 2>/dev/null
    python3 - "$WORK/$name.udp" "$WORK/$name.wire.wav" <<'PY'
import sys, wave
rows = [line.split("\t") for line in open(sys.argv[1]) if line.strip()]
packets = [(int(s), int(d), bytes.fromhex(p.strip())) for s, d, p in rows if p.strip()]
# The gateway's RTP port is the one in its SDP answer (the 200 OK).
port = None
for _, _, payload in packets:
    text = payload.decode("latin-1")
    if text.startswith("SIP/2.0 200") and "m=audio " in text:
        port = int(text.split("m=audio ", 1)[1].split()[0])
if port is None:
    sys.exit("no SDP answer in the capture")
rtp = [p for s, _, p in packets if s == port and len(p) > 12 and p[0] >> 6 == 2 and p[1] & 0x7F == 0]
if len(rtp) < 200:
    sys.exit("only %d RTP packets from the gateway's port %d" % (len(rtp), port))
sizes = {len(p) for p in rtp}
if sizes != {12 + 160 + 10}:
    sys.exit("RTP sizes %s, wanted 182 (header, 160 bytes, 80-bit tag)" % sorted(sizes))
flat = [p for p in rtp if len(set(p[12:172])) == 1]
if flat:
    sys.exit("%d packets carry 160 equal bytes: G.711 in the clear" % len(flat))
# Decode the (encrypted) payloads as if they were plain u-law.
def ulaw(b):
    b = ~b & 0xFF
    t = ((b & 0x0F) << 3) + 0x84
    t <<= (b & 0x70) >> 4
    return (0x84 - t) if b & 0x80 else (t - 0x84)
samples = bytearray()
for p in rtp:
    for b in p[12:172]:
        samples += int(ulaw(b)).to_bytes(2, "little", signed=True)
w = wave.open(sys.argv[2], "wb")
w.setnchannels(1); w.setsampwidth(2); w.setframerate(8000); w.writeframes(bytes(samples)); w.close()
print("wire: %d SRTP packets of 182 bytes from port %d, none with a clear G.711 frame" % (len(rtp), port))
PY
}

run_case() { # NAME MEDIAENC
    local name=$1 mediaenc=$2
    local before after wav=$WORK/$name.wav pcap=$WORK/$name.pcap
    before=$(keys_logged)
    log "$name: baresip --mediaenc $mediaenc"
    local attempt
    for attempt in 1 2; do
        if timeout --foreground 120 "$CALLER" --target "127.0.0.1:$PORT" --dest 10000 \
            --digits "1,2" --delay 7 --gap 1 --hold 2 --record "$wav" --pcap "$pcap" \
            --mediaenc "$mediaenc" >"$WORK/$name.out" 2>&1; then
            break
        fi
        if [ "$attempt" -eq 1 ] && grep -q "before ctrl_tcp came up" "$WORK/$name.out"; then
            log "$name: the caller did not start (its port taken?); trying once more"
            continue
        fi
        log "FAIL $name: caller failed"; tail -n 15 "$WORK/$name.out"
        SUMMARY+=("$name FAIL (caller)"); FAILED=1; return
    done
    if ! grep -q "CALL_MENC.*AES_CM_128_HMAC_SHA1_80" "$WORK/$name.out"; then
        log "FAIL $name: baresip did not report SRTP (CALL_MENC)"; grep events "$WORK/$name.out"
        SUMMARY+=("$name FAIL (no SRTP)"); FAILED=1; return
    fi
    sleep 0.5
    after=$(keys_logged)
    local score
    score=$("$TOOLS/wav-similarity" "$wav" "$PROMPT" --min 0.9 2>&1 | tail -n 1 || true)
    if [[ $score != *" MATCH"* || $score == *"NO MATCH"* ]]; then
        log "FAIL $name: recording does not match the prompt: $score"
        SUMMARY+=("$name FAIL ($score)"); FAILED=1; return
    fi
    if [ $((after - before)) -ne 2 ]; then
        log "FAIL $name: gateway logged $((after - before)) keys, wanted 2"
        SUMMARY+=("$name FAIL (keys $((after - before)))"); FAILED=1; return
    fi
    local wire
    if ! wire=$(wire_check "$pcap" "$name" 2>&1); then
        log "FAIL $name: wire check: $wire"
        SUMMARY+=("$name FAIL (wire)"); FAILED=1; return
    fi
    local clear
    clear=$("$TOOLS/wav-similarity" "$WORK/$name.wire.wav" "$PROMPT" --min 0.5 2>&1 | tail -n 1 || true)
    if [[ $clear != *"NO MATCH"* ]]; then
        log "FAIL $name: the wire's payload, read as plain G.711, matches the prompt: $clear"
        SUMMARY+=("$name FAIL (clear on the wire)"); FAILED=1; return
    fi
    log "PASS $name: $score; keys read once each; $wire; as plain G.711: $clear"
    SUMMARY+=("$name PASS ($score)")
}

run_case srtp-mand srtp-mand
run_case srtp-mandf srtp-mandf

log "plain: baresip without SRTP must be refused"
if timeout --foreground 60 "$CALLER" --target "127.0.0.1:$PORT" --dest 10000 --hold 1 \
    --answer-timeout 10 >"$WORK/plain.out" 2>&1; then
    log "FAIL plain: a plain RTP call was answered"; SUMMARY+=("plain FAIL (answered)"); FAILED=1
elif ! grep -q "SRTP is required" "$WORK/gateway.log"; then
    log "FAIL plain: the gateway did not say why"; SUMMARY+=("plain FAIL (no reason)"); FAILED=1
else
    log "PASS plain: refused ($(grep -o 'CALL_CLOSED[^,]*' "$WORK/plain.out" | head -n 1))"
    SUMMARY+=("plain PASS (refused)")
fi

stop_gateway || FAILED=1
printf '  %s\n' "${SUMMARY[@]}"
if [ "$FAILED" -ne 0 ]; then echo "RESULT: FAIL"; exit 1; fi
echo "RESULT: PASS"
