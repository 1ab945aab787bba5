#!/usr/bin/env python3
"""Writes the fuzz targets' seed inputs to fuzz/seeds/TARGET/ from the
project's own test data and shipped files: the RFC 4475 torture messages
(tests/data/rfc4475), SIP dialogs as our tests run them, the SDP in those
messages, RTP/RFC 4733/RTCP packets, SIP INFO bodies, SMS texts and webhook
bodies from tests/sms_webhooks.rs, the shipped dialplans and sla.toml, and
customer CSVs from the store tests. Each seed is laid out as its target
reads input (see the target's header comment). Run from anywhere:

    python3 fuzz/make_seeds.py

then `fuzz/run.sh --merge TARGET` folds new seeds into the kept corpus."""

import json
import pathlib
import struct
import urllib.parse

FUZZ = pathlib.Path(__file__).resolve().parent
ROOT = FUZZ.parent
SEEDS = FUZZ / "seeds"


def write(target, name, data):
    folder = SEEDS / target
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (folder / name).write_bytes(data)


def crlf(text):
    return text.strip("\n").replace("\n", "\r\n") + "\r\n"


# --- SIP -----------------------------------------------------------------

SDP_OFFER = crlf("""
v=0
o=caller 1 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 40000 RTP/AVP 0 8 101
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=sendrecv
""")

SDP_HOLD = SDP_OFFER.replace("a=sendrecv", "a=sendonly")

SDP_SRTP = crlf("""
v=0
o=caller 2 2 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 40000 RTP/SAVP 0 101
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:32
a=rtpmap:101 telephone-event/8000
a=sendrecv
""")


def request(method, cseq, body="", content_type="application/sdp", to_tag="", extra="",
            branch=None, transport="UDP"):
    branch = branch or f"z9hG4bK-{method.lower()}-{cseq}"
    to = "<sip:10000@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    head = [
        f"{method} sip:10000@127.0.0.1:5060 SIP/2.0",
        f"Via: SIP/2.0/{transport} 127.0.0.1:5061;branch={branch};rport",
        "Max-Forwards: 70",
        "From: \"Caller\" <sip:13800138000@127.0.0.1>;tag=caller1",
        f"To: {to}",
        "Call-ID: fuzz-call-1@127.0.0.1",
        f"CSeq: {cseq} {method}",
        "Contact: <sip:13800138000@127.0.0.1:5061>",
    ]
    head += [line for line in extra.split("\n") if line]
    if body:
        head.append(f"Content-Type: {content_type}")
    head.append(f"Content-Length: {len(body.encode())}")
    return "\r\n".join(head) + "\r\n\r\n" + body


INVITE = request("INVITE", 1, SDP_OFFER)
ACK = request("ACK", 1, to_tag="$tag", branch="z9hG4bK-ack-1")
ACK_ERROR = request("ACK", 1, branch="z9hG4bK-invite-1")
CANCEL = request("CANCEL", 1, branch="z9hG4bK-invite-1")
INFO_RELAY = request("INFO", 2, "Signal=5\r\nDuration=160\r\n", "application/dtmf-relay", "$tag")
INFO_BARE = request("INFO", 3, "#", "application/dtmf", "$tag")
REINVITE_HOLD = request("INVITE", 4, SDP_HOLD, to_tag="$tag")
ACK_REINVITE = request("ACK", 4, to_tag="$tag", branch="z9hG4bK-ack-4")
REINVITE_EMPTY = request("INVITE", 5, to_tag="$tag")
UPDATE = request("UPDATE", 6, SDP_OFFER, to_tag="$tag")
NOTIFY_TRYING = request(
    "NOTIFY", 7, "SIP/2.0 100 Trying\r\n", "message/sipfrag;version=2.0", "$tag",
    "Event: refer\nSubscription-State: active;expires=60")
NOTIFY_OK = request(
    "NOTIFY", 8, "SIP/2.0 200 OK\r\n", "message/sipfrag;version=2.0", "$tag",
    "Event: refer\nSubscription-State: terminated;reason=noresource")
BYE = request("BYE", 9, to_tag="$tag")
OPTIONS = request("OPTIONS", 1)
INVITE_SRTP = request("INVITE", 1, SDP_SRTP)
INVITE_OFFERLESS = request("INVITE", 1)


def endpoint_seed(control, *messages):
    return bytes([control]) + b"\0".join(m.encode() for m in messages)


def sip_seeds():
    torture = sorted((ROOT / "tests/data/rfc4475").glob("*.dat"))
    for path in torture:
        message = path.read_bytes()
        write("sip_message", path.name, message)
        # Over UDP and as a TCP stream, each followed by an ACK and a BYE
        # in case it set up a call.
        write("sip_endpoint", path.stem + "_udp", bytes([0x10]) + message)
        write("sip_endpoint", path.stem + "_tcp", bytes([0x11]) + message)
        if b"\r\n\r\nv=0" in message:
            write("sdp_parse", path.stem + ".sdp", message.split(b"\r\n\r\n", 1)[1])
    dialogs = {
        # bit 0 TCP, 1 reject, 2 REFER after the ACK, 3 hang up ourselves,
        # 4-7 seconds between messages / 2.
        "call_info_hold_bye": (0x10, INVITE, ACK, INFO_RELAY, INFO_BARE, REINVITE_HOLD,
                               ACK_REINVITE, UPDATE, BYE),
        "call_info_hold_bye_tcp": (0x11, INVITE.replace("UDP", "TCP"), ACK, INFO_RELAY,
                                   REINVITE_HOLD, ACK_REINVITE, BYE),
        "offerless_reinvite": (0x10, INVITE_OFFERLESS, ACK, REINVITE_EMPTY, BYE),
        "refer_notify": (0x14, INVITE, ACK, NOTIFY_TRYING, NOTIFY_OK, BYE),
        "refer_notify_tcp": (0x15, INVITE, ACK, NOTIFY_TRYING, NOTIFY_OK),
        "cancel": (0x00, INVITE, CANCEL, ACK_ERROR),
        "rejected": (0x12, INVITE, ACK_ERROR),
        "our_hangup": (0x18, INVITE, ACK),
        "no_ack": (0xf0, INVITE),
        "options": (0x00, OPTIONS),
        "srtp_offer": (0x10, INVITE_SRTP, ACK, BYE),
    }
    for name, (control, *messages) in dialogs.items():
        write("sip_endpoint", name, endpoint_seed(control, *messages))
        for message in messages:
            write("sip_message", name + "_" + message.split(" ", 1)[0].lower(),
                  message.replace("$tag", "a1b2c3d4e5f60718"))
    for name, sdp in {"offer": SDP_OFFER, "hold": SDP_HOLD, "srtp": SDP_SRTP}.items():
        write("sdp_parse", name + ".sdp", sdp)
    write("sdp_parse", "ipv6.sdp", SDP_OFFER.replace("IN IP4 127.0.0.1", "IN IP6 ::1"))
    write("sdp_parse", "video.sdp", SDP_OFFER + "m=video 40002 RTP/AVP 96\r\n"
          "a=rtpmap:96 H264/90000\r\n")


# --- media ---------------------------------------------------------------

def rtp(payload_type, sequence, timestamp, payload, marker=False, ssrc=0x11223344):
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | payload_type,
                       sequence & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc) + payload


def record(control, datagram):
    return bytes([control, len(datagram)]) + datagram


def media_seeds():
    silence = bytes([0xFF]) * 160
    # setup: bit 0 PCMA, 1 no telephone-event (in-band), 2-3 ptime, 4
    # symmetric RTP, 5 bridged.
    audio = b"".join(record(0x04, rtp(0, n, n * 160, silence, n == 0)) for n in range(8))
    write("media_session", "pcmu_audio", bytes([0x14]) + audio)
    write("media_session", "pcmu_bridged", bytes([0x34]) + audio)
    presses = b""
    for n, (end, duration) in enumerate([(0, 160), (0, 320), (1, 480), (1, 480), (1, 480)]):
        event = struct.pack("!BBH", 5, (0x80 if end else 0) | 10, duration)
        presses += record(0x04, rtp(101, 100 + n, 8000, event, n == 0))
    write("media_session", "rfc4733_key", bytes([0x14]) + presses)
    # An RTCP sender report and a receiver report, from the caller.
    sender_report = struct.pack("!BBHIIIIII", 0x80, 200, 6, 0x11223344, 0, 0, 0, 10, 1600)
    receiver_report = struct.pack("!BBHI", 0x81, 201, 7, 0x11223344) + bytes(24)
    write("media_session", "rtcp", bytes([0x14]) + record(0x00, sender_report)
          + record(0x04, receiver_report))
    # Another source, a renegotiation to hold and back, keys sent by us.
    mixed = (record(0x02, rtp(0, 1, 160, silence)) + record(0x0c, rtp(0, 2, 320, silence))
             + record(0x34, rtp(8, 3, 480, silence)) + record(0xf0, b"")
             + record(0x3c, rtp(0, 4, 640, silence)))
    write("media_session", "hold_keys_others", bytes([0x11]) + mixed)
    # In-band: a PCMU '1' tone (697 + 1209 Hz) for 60 ms.
    import math

    def ulaw(sample):
        sign = 0x80 if sample < 0 else 0
        sample = min(abs(sample), 32635) + 132
        exponent = max(0, sample.bit_length() - 8)
        mantissa = (sample >> (exponent + 3)) & 0x0F
        return ~(sign | (exponent << 4) | mantissa) & 0xFF

    tone = bytes(ulaw(int(6000 * (math.sin(2 * math.pi * 697 * n / 8000)
                                   + math.sin(2 * math.pi * 1209 * n / 8000))))
                 for n in range(480))
    inband = b"".join(record(0x04, rtp(0, n, n * 160, tone[n * 160:(n + 1) * 160]))
                      for n in range(3))
    write("media_session", "inband_tone", bytes([0x16]) + inband)

    for name, (content_type, body) in {
        "relay": ("application/dtmf-relay", "Signal=9\r\nDuration=160\r\n"),
        "relay_star": ("application/dtmf-relay; charset=utf-8", "signal = 10\nduration=100"),
        "bare": ("application/dtmf", "#"),
        "bare_letter": ("Application/DTMF", "d\r\n"),
        "other": ("text/plain", "5"),
    }.items():
        write("dtmf_info", name, content_type.encode() + b"\0" + body.encode())


# --- SMS -----------------------------------------------------------------

TEXTS = ["报障：宽带断了，灯一直闪", "Status of ticket 5551234567 please",
         "请帮我查询 ５５５-1234-567，谢谢", "ＹＥＳ！", "HELP", "帮助", "FAULT no signal",
         "取消 2026113000017", "1", "否", "专线中断"]


def sms_seeds():
    for n, text in enumerate(TEXTS):
        write("sms_command", f"text{n}", bytes([3]) + text.encode())
        params = [("ToCountry", "CN"), ("SmsMessageSid", f"SM{n}"), ("NumMedia", "0"),
                  ("Body", text), ("To", "+8610000"), ("MessageSid", f"SM{n}"),
                  ("AccountSid", "AC" + "0" * 32), ("From", "+8613800138000"),
                  ("ApiVersion", "2010-04-01")]
        write("sms_webhook", f"twilio_form{n}", b"\0" + urllib.parse.urlencode(params).encode())
        body = {"MessageSid": f"SMjson{n}", "From": "+8613800138000", "To": "+8610000",
                "Body": text}
        write("sms_webhook", f"twilio_json{n}",
              b"\1" + json.dumps(body, ensure_ascii=False).encode())
        generic = {"id": f"g-{n}", "from": "+8613800138000", "to": "10000", "text": text,
                   "received_at": "2026-11-30T10:00:00+08:00"}
        write("sms_webhook", f"generic{n}",
              b"\2" + json.dumps(generic, ensure_ascii=False).encode())
    write("sms_webhook", "headers",
          b"\3" + b"1767225600\0v1=" + b"ab" * 32 + b"\0{\"id\":\"g\"}")
    write("sms_webhook", "headers_twilio",
          b"\3" + b"bodySHA256=00ff\0" + b"AAAAAAAAAAAAAAAAAAAAAAAAAAA=\0{}")


# --- operator files --------------------------------------------------------

def operator_seeds():
    for path in sorted((ROOT / "dialplans").glob("*.toml")):
        text = path.read_bytes()
        write("dialplan", path.stem, text)
        # Walked: 9, a service number, #, confirm 1, category 2; and 1.
        write("dialplan", path.stem + "_fault", text + b"\0" + bytes(
            [9, 0xa0, 1, 3, 8, 0, 0, 1, 3, 8, 11, 0xa0, 1, 0xa0, 2, 2, 2, 0xa0]))
        write("dialplan", path.stem + "_status", text + b"\0" + bytes([1, 0xa0, 2, 0xf0, 0xf0]))
    write("sla_policy", "sla", (ROOT / "sla.toml").read_bytes())
    for name, csv in {
        "good": "name,level,language,phones,products\n"
                "甲公司,group,zh,13800000001;+8613800000002,broadband:B-1;ict:I-2\n"
                "Beta Ltd,group,en,010-66668888,\n",
        "bad": "name,level,language,phones,products\n甲,group,zh,13800000001,\n"
               "乙,local_a,zh,1380000000x,\n",
        "quoted": "products,phones,language,level,name\n"
                  "\"virtual_network:V-9\",\"13900000009\",zh,group,\"丙, 分公司\"\n",
        "missing_column": "name,level,phones\nx,group,1\n",
    }.items():
        write("customer_csv", name, csv)


if __name__ == "__main__":
    sip_seeds()
    media_seeds()
    sms_seeds()
    operator_seeds()
    for folder in sorted(SEEDS.iterdir()):
        print(f"{folder.name}: {len(list(folder.iterdir()))} seeds")
