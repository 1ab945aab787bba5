#!/usr/bin/env bash
# SIP over TLS with third-party TLS stacks: OpenSSL's s_client (which
# verifies the gateway's chain and IP address) and baresip (libre over
# OpenSSL, a real softphone), against the gateway with a TLS listener on
# 127.0.0.1 and ::1, a certificate signed by a CA made here with openssl,
# and the shipped dialplans:
#
#   openssl-tls13   OPTIONS over TLS 1.3 to 127.0.0.1: the chain verifies
#                   against the CA and the certificate's IP SAN (-verify_ip);
#                   200 OK with our Via kept
#   openssl-tls12   the same over TLS 1.2
#   openssl-ipv6    the same to the [::1] listener (skipped without IPv6)
#   ivr-greeting    baresip calls 10000 over TLS (transport=tls), stays 9 s
#                   and records what it hears: wav-similarity must find
#                   prompts/zh/welcome.wav in it with a score >= 0.9
#   one-connection  one baresip places 3 calls at once: all answered, all on
#                   one TLS connection (ss counts the gateway's side)
#   connections     3 baresip processes, one call each: 3 TLS connections,
#                   each caller hears the greeting (>= 0.9)
#   sigterm         the gateway then stops on SIGTERM with exit status 0
#
# SIPp over TLS (-t l1) is not part of it: Debian's sip-tester is built
# without TLS, and its source tarballs could not be fetched here to build
# one with -DUSE_SSL=1 (see docs/testing.md). baresip 1.0 does not check
# the server's certificate (it connects with any CA file); the OpenSSL
# runs are the ones that check ours.
#
# Usage: tests/interop/sip_tls.sh   (after `cargo build --release`, or with
# HOTLINE_BIN=target/debug/hotline as CI runs it; needs openssl, baresip,
# sox, python3 and ../shared/tools/wav-similarity). Takes about 40 s.
# Env:   HOTLINE_BIN, INTEROP_WORK (logs in $INTEROP_WORK/sip_tls),
#        SHARED_TOOLS (default ../shared/tools)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=${INTEROP_WORK:-$ROOT/target/interop}/sip_tls
TOOLS=${SHARED_TOOLS:-$ROOT/../shared/tools}
rm -rf "$WORK"
mkdir -p "$WORK"
# shellcheck source=tests/interop/lib.sh
. "$ROOT/tests/interop/lib.sh"
BARESIP_PIDS=()
cleanup() {
    local pid
    for pid in "${BARESIP_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    kill_gateway
}
trap cleanup EXIT

require_tools openssl baresip sox ss python3
[ -x "$HOTLINE_BIN" ] || { echo "$HOTLINE_BIN not found: run cargo build --release"; exit 2; }
require_shared_tool wav-similarity
PROMPT=$ROOT/prompts/zh/welcome.wav

# A CA and the gateway's certificate (P-256), valid for 127.0.0.1, ::1
# and localhost.
PKI=$WORK/pki
mkdir -p "$PKI"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$PKI/ca-key.pem" -out "$PKI/ca.pem" -days 7 -subj "/CN=hotline interop CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    2>"$PKI/openssl.log"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$PKI/gateway-key.pem" -out "$PKI/gateway.csr" -subj "/CN=localhost" 2>>"$PKI/openssl.log"
printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
    "extendedKeyUsage=serverAuth,clientAuth" "basicConstraints=CA:FALSE" >"$PKI/gateway.ext"
openssl x509 -req -in "$PKI/gateway.csr" -CA "$PKI/ca.pem" -CAkey "$PKI/ca-key.pem" \
    -CAcreateserial -days 7 -extfile "$PKI/gateway.ext" -out "$PKI/gateway.pem" 2>>"$PKI/openssl.log"
cat "$PKI/gateway.pem" "$PKI/ca.pem" >"$PKI/gateway-chain.pem"

PORT=$(free_port 127.0.0.1)
TLS_PORT=$(free_port 127.0.0.1)
TLS_LISTEN="127.0.0.1:$TLS_PORT"
TLS6_PORT=""
if have_ipv6_loopback; then
    TLS6_PORT=$(free_port ::1)
    TLS_LISTEN="$TLS_LISTEN,[::1]:$TLS6_PORT"
fi
start_gateway 127.0.0.1 "$PORT" \
    HOTLINE_SIP_TLS="$TLS_LISTEN" \
    HOTLINE_SIP_TLS_CERT_FILE="$PKI/gateway-chain.pem" \
    HOTLINE_SIP_TLS_KEY_FILE="$PKI/gateway-key.pem" \
    HOTLINE_IVR_DIALPLANS_DIR="$ROOT/dialplans" \
    HOTLINE_CALLS_MAX_DURATION_SECS=120 \
    HOTLINE_SHUTDOWN_DRAIN_TIMEOUT_SECS=5

FAILED=0
SUMMARY=()
record() {
    local name=$1 verdict=$2
    SUMMARY+=("$(printf '%-15s %s' "$name" "$verdict")")
    log "$name: $verdict"
    [[ $verdict == PASS* || $verdict == SKIPPED* ]] || FAILED=1
}

# OPTIONS through s_client: openssl_options NAME HOST PORT [s_client args...]
openssl_options() {
    local name=$1 host=$2 port=$3
    shift 3
    local out=$WORK/$name.out
    printf 'OPTIONS sip:10000@%s SIP/2.0\r\nVia: SIP/2.0/TLS %s:5999;branch=z9hG4bK-%s\r\nMax-Forwards: 70\r\nFrom: <sip:probe@%s>;tag=%s\r\nTo: <sip:10000@%s>\r\nCall-ID: %s@interop\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n' \
        "$(bracket "$host")" "$(bracket "$host")" "$name" "$(bracket "$host")" "$name" \
        "$(bracket "$host")" "$name" >"$WORK/$name.request"
    local rc=0
    (cat "$WORK/$name.request"; sleep 2) |
        timeout 10 openssl s_client -connect "$(bracket "$host"):$port" -CAfile "$PKI/ca.pem" \
            -verify_return_error -verify_ip "$host" -brief "$@" >"$out" 2>&1 || rc=$?
    local protocol
    protocol=$(grep -m1 -o 'Protocol version: [A-Za-z0-9.]*' "$out" || true)
    if [ "$rc" -ne 0 ]; then
        record "$name" "FAIL s_client exit $rc: $(tail -n 3 "$out" | tr '\n' ' ')"
    elif ! grep -q 'Verification: OK' "$out"; then
        record "$name" "FAIL the chain did not verify: $(head -n 5 "$out" | tr '\n' ' ')"
    elif ! grep -q '^SIP/2.0 200 OK' "$out"; then
        record "$name" "FAIL no 200 OK: $(tail -n 5 "$out" | tr '\n' ' ')"
    elif ! grep -q "^Via: SIP/2.0/TLS .*branch=z9hG4bK-$name" "$out"; then
        record "$name" "FAIL the 200 does not carry our Via"
    else
        record "$name" "PASS $protocol, chain and IP verified, 200 OK"
    fi
}

openssl_options openssl-tls13 127.0.0.1 "$TLS_PORT" -tls1_3
openssl_options openssl-tls12 127.0.0.1 "$TLS_PORT" -tls1_2
if [ -n "$TLS6_PORT" ]; then
    openssl_options openssl-ipv6 ::1 "$TLS6_PORT"
else
    record openssl-ipv6 "SKIPPED: no IPv6 loopback on this machine"
fi

# 60 s of silence for baresip's microphone (aufile ends the call at its end).
sox -n -r 8000 -c 1 -b 16 "$WORK/mic.wav" trim 0 60

# baresip_start NAME SECONDS CALLS [MEDIAENC]: a baresip with its own config
# in $WORK/NAME that dials 10000 over TLS CALLS times at start and quits
# after SECONDS (with MEDIAENC, e.g. srtp-mand, its media is encrypted);
# its PID is appended to BARESIP_PIDS.
baresip_start() {
    local name=$1 seconds=$2 calls=$3 mediaenc=${4:-}
    local dir=$WORK/$name sip_port i
    mkdir -p "$dir/cfg" "$dir/snd"
    sip_port=$(free_port 127.0.0.1)
    cat >"$dir/cfg/config" <<EOF
poll_method		epoll
sip_listen		127.0.0.1:$sip_port
sip_cafile		$PKI/ca.pem
call_max_calls		8
audio_player		aubridge,nowhere
audio_source		aufile,$WORK/mic.wav
audio_alert		aubridge,nowhere-alert
ringback_disabled	yes
module_path		/usr/lib/baresip/modules
module			g711.so
module			aufile.so
module			aubridge.so
module			sndfile.so
module			srtp.so
snd_path		$dir/snd
module_tmp		account.so
module_app		menu.so
net_interface		127.0.0.1
EOF
    echo "<sip:13800138000@127.0.0.1;transport=tls>;regint=0;audio_codecs=PCMU;ptime=20${mediaenc:+;mediaenc=$mediaenc}" >"$dir/cfg/accounts"
    : >"$dir/cfg/contacts"
    local args=(-f "$dir/cfg" -t "$seconds")
    for i in $(seq 1 "$calls"); do
        args+=(-e "/dial sip:10000@127.0.0.1:$TLS_PORT;transport=tls")
    done
    (cd "$dir" && exec baresip "${args[@]}" </dev/null >"$dir/baresip.log" 2>&1) &
    BARESIP_PIDS+=($!)
}

# Waits for every baresip started so far.
baresip_wait() {
    local pid
    for pid in "${BARESIP_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    BARESIP_PIDS=()
}

# The gateway's established connections on its IPv4 TLS port.
tls_connections() {
    ss -Htn state established "( sport = :$TLS_PORT )" | wc -l
}

established() { grep -c 'Call established' "$WORK/$1/baresip.log" || true; }

# score NAME: the greeting's score in NAME's recording of what it heard.
score() {
    local wav
    wav=$(ls "$WORK/$1"/snd/dump-*-dec.wav 2>/dev/null | head -n 1)
    [ -n "$wav" ] || { echo "no recording"; return 0; }
    "$TOOLS/wav-similarity" "$wav" "$PROMPT" --min 0.9 2>&1 | tail -n 1
}

baresip_start ivr-greeting 9 1
baresip_wait
greeting=$(score ivr-greeting)
if [ "$(established ivr-greeting)" -ne 1 ]; then
    record ivr-greeting "FAIL the call was not established: $(grep -m3 -i 'fail\|error\|closed' "$WORK/ivr-greeting/baresip.log" | tr '\n' ' ')"
elif [[ $greeting != *"-> MATCH"* ]]; then
    record ivr-greeting "FAIL greeting not heard: $greeting"
else
    record ivr-greeting "PASS answered over TLS, greeting heard: $greeting"
fi

# What trunks do: SIP over TLS carrying the SDES keys of an SRTP call.
baresip_start tls-srtp 9 1 srtp-mand
baresip_wait
greeting=$(score tls-srtp)
if [ "$(established tls-srtp)" -ne 1 ]; then
    record tls-srtp "FAIL the call was not established: $(grep -m3 -i 'fail\|error\|closed\|srtp' "$WORK/tls-srtp/baresip.log" | tr '\n' ' ')"
elif ! grep -q 'media is SRTP' "$WORK/gateway.log"; then
    record tls-srtp "FAIL the gateway did not log an SRTP call"
elif [[ $greeting != *"-> MATCH"* ]]; then
    record tls-srtp "FAIL greeting not heard over SRTP: $greeting"
else
    record tls-srtp "PASS SRTP over TLS (RTP/SAVP, SDES), greeting heard: $greeting"
fi

baresip_start one-connection 8 3
sleep 4
one_conn=$(tls_connections)
baresip_wait
calls=$(established one-connection)
if [ "$calls" -eq 3 ] && [ "$one_conn" -eq 1 ]; then
    record one-connection "PASS 3 calls answered on $one_conn TLS connection"
else
    record one-connection "FAIL $calls of 3 calls answered, $one_conn TLS connections (want 1)"
fi

for i in 1 2 3; do
    baresip_start "connection-$i" 9 1
done
sleep 4
several=$(tls_connections)
baresip_wait
verdicts=""
ok=1
for i in 1 2 3; do
    s=$(score "connection-$i")
    [ "$(established "connection-$i")" -eq 1 ] && [[ $s == *"-> MATCH"* ]] || ok=0
    verdicts+=" [$i: $(printf '%s' "$s" | grep -o 'score=[0-9.]*' || echo "$s")]"
done
if [ "$ok" -eq 1 ] && [ "$several" -eq 3 ]; then
    record connections "PASS 3 calls on $several TLS connections, greeting heard by each:$verdicts"
else
    record connections "FAIL $several TLS connections (want 3);$verdicts"
fi

calls_in=$(grep -c 'incoming call' "$WORK/gateway.log" || true)
log "gateway log: $calls_in incoming calls"
if stop_gateway; then
    record sigterm "PASS gateway exited 0 after SIGTERM"
else
    record sigterm "FAIL gateway did not exit 0 after SIGTERM"
fi

echo
echo "SIP over TLS suite (logs in $WORK):"
printf '  %s\n' "${SUMMARY[@]}"
if [ "$FAILED" -ne 0 ]; then
    echo "RESULT: FAIL"
    exit 1
fi
echo "RESULT: PASS"
