#!/usr/bin/env python3
"""Writes the SIPp caller of tests/bench/fault_flow.sh into a directory:

  fault_flow.xml   the scenario: INVITE, 200, ACK, then the keys, then the
                   gateway's BYE is awaited (a call the gateway does not hang
                   up within --hold seconds fails);
  keys.pcap        every key of the call as RFC 2833 telephone-events, one
                   RTP stream, played by one `play_pcap_audio`.

Why not ../shared/tools/sipp-ivr-call: that tool is built to check one call
closely. It traces every SIP message and action to files and plays one pcap
per key (SIPp starts a thread per `play_pcap_audio`), which at 375 calls/s
makes SIPp itself the bottleneck on this two-core machine. The keys here are
the same events on the wire, from the same kind of pcap.

  fault_flow_caller.py DIR KEYS [--first-key-after S] [--key-interval S] [--hold S]
"""
import argparse
import os
import random
import struct

EVENT_CODES = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}
PACKET_INTERVAL = 0.02  # s between the packets of one event
TONE_PACKETS = 7  # 140 ms of tone, like SIPp's stock dtmf_2833_*.pcap
END_COPIES = 3  # RFC 4733 §2.5.1.4: the end packet is sent three times
TELEPHONE_EVENT_PT = 101
# Placeholders: SIPp rewrites addresses and ports to the call's media.
SOURCE = (bytes([192, 168, 0, 3]), 49176)
DESTINATION = (bytes([192, 168, 0, 1]), 10000)


def ipv4_checksum(header: bytes) -> int:
    total = sum(struct.unpack("!10H", header))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def frame(payload: bytes, ident: int) -> bytes:
    udp = struct.pack("!HHHH", SOURCE[1], DESTINATION[1], 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), ident & 0xFFFF, 0, 64, 17, 0,
                     SOURCE[0], DESTINATION[0])
    ip = ip[:10] + struct.pack("!H", ipv4_checksum(ip)) + ip[12:]
    ethernet = bytes.fromhex("0050bf990336000d8714ac24") + b"\x08\x00"
    return ethernet + ip + udp


def key_packets(keys: str, interval: float):
    """(seconds from the start, RTP packet) for every key, in sending order."""
    ssrc = random.getrandbits(32)
    seq = random.randrange(1000, 30000)
    timestamp0 = random.randrange(1 << 20, 1 << 30)
    for index, key in enumerate(keys):
        start = index * interval
        timestamp = timestamp0 + int(round(start * 8000))
        for n in range(TONE_PACKETS + END_COPIES):
            end = n >= TONE_PACKETS
            step = min(n, TONE_PACKETS)
            marker = 0x80 if n == 0 else 0
            rtp = struct.pack("!BBHII", 0x80, marker | TELEPHONE_EVENT_PT, seq & 0xFFFF,
                              timestamp & 0xFFFFFFFF, ssrc)
            duration = (step + 1) * int(PACKET_INTERVAL * 8000)
            event = struct.pack("!BBH", EVENT_CODES[key], (0x80 if end else 0) | 10, duration)
            yield start + step * PACKET_INTERVAL, rtp + event
            if not end:
                seq += 1
        seq += 1


def write_pcap(path: str, keys: str, interval: float) -> None:
    with open(path, "wb") as out:
        # pcap global header: magic, v2.4, GMT offset, accuracy, snaplen, Ethernet
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for ident, (at, rtp) in enumerate(key_packets(keys, interval)):
            data = frame(rtp, ident)
            seconds = int(at)
            out.write(struct.pack("<IIII", seconds, int(round((at - seconds) * 1e6)), len(data), len(data)))
            out.write(data)


SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="fault flow caller">
<send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "13800138000" <sip:13800138000@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:13800138000@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=sipp 1 1 IN IP[local_ip_type] [local_ip]
s=fault flow caller
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 {event_pt}
a=rtpmap:0 PCMU/8000
a=rtpmap:{event_pt} telephone-event/8000
a=fmtp:{event_pt} 0-15
a=ptime:20
a=sendrecv
]]></send>
<recv response="100" optional="true"/>
<recv response="180" optional="true"/>
<recv response="200" rrs="true"/>
<send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
[routes]
From: "13800138000" <sip:13800138000@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Contact: <sip:13800138000@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

]]></send>
<pause milliseconds="{first_key_ms}"/>
<nop><action>{play_keys}</action></nop>
<recv request="BYE" timeout="{hold_ms}"/>
<send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:13800138000@[local_ip]:[local_port]>
Content-Length: 0

]]></send>
</scenario>
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir")
    parser.add_argument("keys", help="keys to press, from 0-9 * #")
    parser.add_argument("--dtmf", choices=("pcap", "sipp"), default="pcap",
                        help="pcap: one play_pcap_audio of keys.pcap; sipp: SIPp's own play_dtmf")
    parser.add_argument("--first-key-after", type=float, default=0.5, help="s after the ACK")
    parser.add_argument("--key-interval", type=float, default=0.25, help="s between keys")
    parser.add_argument("--hold", type=float, default=30, help="s to wait for the gateway's BYE")
    args = parser.parse_args()
    if not args.keys or any(k not in EVENT_CODES for k in args.keys):
        parser.error("keys must be from 0-9 * #")
    os.makedirs(args.dir, exist_ok=True)
    if args.dtmf == "pcap":
        write_pcap(os.path.join(args.dir, "keys.pcap"), args.keys, args.key_interval)
        event_pt, play_keys = TELEPHONE_EVENT_PT, '<exec play_pcap_audio="keys.pcap"/>'
    else:
        # play_dtmf sends each key for the given ms, then as long a gap,
        # as telephone-events with payload type 96.
        tone_ms = int(args.key_interval * 1000 / 2)
        event_pt, play_keys = 96, '<exec play_dtmf="%s,%d"/>' % (args.keys, tone_ms)
    scenario = (SCENARIO.replace("{first_key_ms}", str(int(args.first_key_after * 1000)))
                .replace("{hold_ms}", str(int(args.hold * 1000)))
                .replace("{event_pt}", str(event_pt))
                .replace("{play_keys}", play_keys))
    with open(os.path.join(args.dir, "fault_flow.xml"), "w") as out:
        out.write(scenario)

if __name__ == "__main__":
    main()
