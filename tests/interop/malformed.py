#!/usr/bin/env python3
"""Malformed-input suite for the hotline SIP gateway (Python 3 stdlib only).

Sends broken SIP to a running gateway over UDP and TCP and checks that it
stays up and keeps answering:

  * random garbage: pure random bytes, a SIP request line followed by random
    bytes, and byte-level mutations of a valid OPTIONS (fixed seed);
  * every proper prefix of a valid INVITE (UDP: one datagram each; TCP: one
    connection each, half-closed after the prefix);
  * wrong Content-Length: larger and smaller than the body, negative,
    non-numeric, huge;
  * oversized messages: 70 KB over TCP (long header, long body, endless
    header section), 65000 and 65507 bytes over UDP;
  * each mandatory header (Via, From, To, Call-ID, CSeq) removed, for
    INVITE and OPTIONS;
  * a TCP connection that sends half a message and closes, and one that
    sends a header section without end and stays open while other clients
    are served.

Then an OPTIONS over UDP and over TCP must get a 200, and (with --pid) the
process must still be alive and must not have leaked file descriptors.

Expectations: a message that is malformed and carries a Via may get no
answer or a "400 <reason phrase>", nothing else (no 5xx, no 2xx). Where
the gateway can always answer (intact Via, framed input: a missing
From/To/Call-ID/CSeq, an unusable Content-Length over UDP, or a
non-numeric/negative/huge one over TCP) the 400 is required. Messages
that are odd but legal (Content-Length smaller than a UDP body, a 65000-byte
datagram, random mutations that may still be valid) may get any answer
except a 500 / 5xx other than 501/505/513, and it must carry a reason
phrase. A 2xx to an INVITE is cleaned up with ACK and BYE.

Everything goes to --host (default 127.0.0.1) only.

  malformed.py --port 5070 [--tcp-port P] [--pid PID] [--seed N]
  malformed.py --port 5070 --ping udp|tcp        # one OPTIONS, exit 0 on 200

Exit status: 0 when every check passed, 1 otherwise, 2 on usage errors.
"""

import argparse
import concurrent.futures
import os
import random
import select
import socket
import sys
import time

REJECT = "reject"  # no answer, or 400 with a reason phrase
MUST_400 = "must400"  # exactly a 400 with a reason phrase (the gateway can
# always route it: the Via is intact and the input was framed)
ANY = "any"  # any answer with a reason phrase except a server error
ALLOWED_5XX = {501, 505, 513}


def fam(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def hostport(host, port):
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Msg:
    """Builds requests with controllable headers; every request gets a
    Call-ID, branch and From tag of its own."""

    serial = 0
    run = "%08x" % random.SystemRandom().randrange(1 << 32)

    def __init__(self, args):
        self.host = args.host
        self.port = args.port

    def next_id(self, label):
        Msg.serial += 1
        return f"{label}-{Msg.serial:06d}-{os.getpid()}-{Msg.run}"

    def sdp(self, lport, pad=0):
        lines = [
            "v=0",
            f"o=malformed 1 1 IN {'IP6' if ':' in self.host else 'IP4'} {self.host}",
            "s=-",
            f"c=IN {'IP6' if ':' in self.host else 'IP4'} {self.host}",
            "t=0 0",
            f"m=audio {20000 + lport % 1000 * 2} RTP/AVP 0 8 101",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:8 PCMA/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-15",
        ]
        if pad:
            lines.append("a=x-pad:" + "p" * pad)
        lines.append("a=sendrecv")
        return ("\r\n".join(lines) + "\r\n").encode()

    def request(self, method, lport, transport, label, body=b"", omit=(),
                content_length=None, extra=(), content_length_first=False):
        """Returns (bytes, call_id). `content_length` overrides the value
        (a string, written verbatim); `omit` removes headers by name."""
        call_id = self.next_id(label)
        branch = "z9hG4bK" + call_id.replace("-", "")
        target = hostport(self.host, self.port)
        me = hostport(self.host, lport)
        cl = str(len(body)) if content_length is None else content_length
        headers = [
            ("Via", f"SIP/2.0/{transport} {me};branch={branch};rport"),
            ("From", f"\"malformed\" <sip:malformed@{me}>;tag={call_id.replace('-', '')[-16:]}"),
            ("To", f"<sip:10000@{target}>"),
            ("Call-ID", call_id),
            ("CSeq", f"1 {method}"),
            ("Max-Forwards", "70"),
            ("Contact", f"<sip:malformed@{me};transport={transport.lower()}>"),
        ]
        if body:
            headers.append(("Content-Type", "application/sdp"))
        headers.extend(extra)
        cl_header = ("Content-Length", cl)
        if content_length_first:
            # Right after Via: every proper prefix then either lacks a
            # mandatory header or has a shorter body than announced.
            headers.insert(1, cl_header)
        else:
            headers.append(cl_header)
        lines = [f"{method} sip:10000@{target} SIP/2.0"]
        lines += [f"{n}: {v}" for n, v in headers if n not in omit]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body, call_id


def parse_responses(data):
    """Splits a byte stream (or one datagram) into (code, reason, headers,
    raw) tuples; a response that cannot be parsed gives code None."""
    out = []
    while data:
        data = data.lstrip(b"\r\n")
        if not data:
            break
        end = data.find(b"\r\n\r\n")
        if end < 0:
            out.append((None, "", {}, data))
            break
        head = data[:end].decode("utf-8", "replace")
        lines = head.split("\r\n")
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers.setdefault(name.strip().lower(), value.strip())
        try:
            length = int(headers.get("content-length", headers.get("l", "0")))
        except ValueError:
            length = 0
        raw = data[: end + 4 + length]
        data = data[end + 4 + length:]
        parts = lines[0].split(" ", 2)
        if len(parts) >= 2 and parts[0] == "SIP/2.0" and parts[1].isdigit():
            out.append((int(parts[1]), parts[2].strip() if len(parts) > 2 else "", headers, raw))
        else:
            out.append((None, lines[0], headers, raw))
    return out


class Results:
    def __init__(self):
        self.categories = {}
        self.failures = []

    verbose = False

    def record(self, category, name, expectation, responses, note=None):
        if self.verbose:
            answers = ", ".join(f"{r[0]} {r[1]}" for r in responses) or "no answer"
            print(f"  [{category}] {name}: {answers}" + (f" ({note})" if note else ""))
        cat = self.categories.setdefault(category, {"sent": 0, "answered": 0, "codes": {}, "failed": 0})
        cat["sent"] += 1
        if responses:
            cat["answered"] += 1
        problems = []
        for code, reason, _headers, raw in responses:
            key = str(code) if code is not None else "unparseable"
            cat["codes"][key] = cat["codes"].get(key, 0) + 1
            if code is None:
                problems.append(f"unparseable answer {raw[:60]!r}")
            elif not reason:
                problems.append(f"{code} without a reason phrase")
            elif expectation in (REJECT, MUST_400) and code != 400 and code >= 200:
                problems.append(f"answered {code} {reason} (expected no answer or 400)")
            elif expectation in (REJECT, MUST_400) and code < 200 and code != 100:
                problems.append(f"answered {code} {reason} (expected no answer or 400)")
            elif expectation == ANY and code >= 500 and code not in ALLOWED_5XX:
                problems.append(f"answered {code} {reason} (server error)")
        if expectation == MUST_400 and not any(r[0] == 400 for r in responses):
            problems.append("no 400 answer")
        if note:
            problems.append(note)
        if problems:
            cat["failed"] += 1
            self.failures.append(f"{category}/{name}: " + "; ".join(problems))

    def summary(self):
        lines = []
        for category, cat in self.categories.items():
            codes = ", ".join(f"{k}x{v}" for k, v in sorted(cat["codes"].items())) or "none"
            lines.append(
                f"  {category:<28} sent {cat['sent']:>4}  answered {cat['answered']:>4}  "
                f"answers: {codes}  failed {cat['failed']}"
            )
        return "\n".join(lines)


# ---------------------------------------------------------------- UDP ---

def udp_socket(host):
    s = socket.socket(fam(host), socket.SOCK_DGRAM)
    s.bind((host, 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.setblocking(False)
    return s


def cleanup_call(send, response, call_id, host, lport, transport, target):
    """ACK and BYE a call the gateway answered with 2xx."""
    headers = response[2]
    to = headers.get("to") or headers.get("t", "")
    from_ = headers.get("from") or headers.get("f", "")
    contact = headers.get("contact") or headers.get("m", f"<sip:10000@{target}>")
    uri = contact.split("<", 1)[-1].split(">", 1)[0] if "<" in contact else contact.split(";")[0]
    me = hostport(host, lport)
    for cseq, method in ((1, "ACK"), (2, "BYE")):
        branch = f"z9hG4bKcleanup{method}{random.randrange(1 << 30)}"
        msg = (
            f"{method} {uri} SIP/2.0\r\nVia: SIP/2.0/{transport} {me};branch={branch};rport\r\n"
            f"From: {from_}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n"
            f"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        send(msg)


def run_udp(args, results, category, cases, wait=0.8, max_wait=4.0, batch=128):
    """cases: list of (name, expectation, builder) where builder(lport)
    returns (payload, call_id or None). One socket per case so every answer
    is attributed; sockets are processed in batches."""
    target = hostport(args.host, args.port)
    for start in range(0, len(cases), batch):
        chunk = cases[start:start + batch]
        socks = []
        for name, expectation, builder in chunk:
            s = udp_socket(args.host)
            payload, call_id = builder(s.getsockname()[1])
            socks.append((s, name, expectation, call_id, []))
            try:
                s.sendto(payload, (args.host, args.port))
            except OSError as e:
                results.record(category, name, expectation, [], note=f"send failed: {e}")
                socks[-1] = (None,) + socks[-1][1:]
                s.close()
            if args.pace:
                time.sleep(args.pace)
        by_fd = {entry[0].fileno(): entry for entry in socks if entry[0] is not None}
        cleaned = set()
        deadline = time.monotonic() + max_wait
        quiet_until = time.monotonic() + wait
        while by_fd and time.monotonic() < min(deadline, quiet_until):
            ready, _, _ = select.select(list(by_fd), [], [], 0.05)
            for fd in ready:
                s, name, expectation, call_id, got = by_fd[fd]
                try:
                    data = s.recv(70000)
                except OSError:
                    continue
                for resp in parse_responses(data):
                    code = resp[0]
                    if code == 100:
                        continue
                    if code is not None and 200 <= code < 300 and call_id and \
                            " INVITE" in resp[2].get("cseq", "") and call_id not in cleaned:
                        cleaned.add(call_id)
                        cleanup_call(lambda m, s=s: s.sendto(m, (args.host, args.port)),
                                     resp, call_id, args.host, s.getsockname()[1], "UDP", target)
                    got.append(resp)
                quiet_until = time.monotonic() + wait
        for s, name, expectation, call_id, got in socks:
            if s is None:
                continue
            # Drop duplicate retransmitted finals of the same code.
            seen, unique = set(), []
            for r in got:
                key = (r[0], r[2].get("cseq"))
                if key not in seen:
                    seen.add(key)
                    unique.append(r)
            unique = [r for r in unique if "BYE" not in r[2].get("cseq", "") and "ACK" not in r[2].get("cseq", "")]
            results.record(category, name, expectation, unique)
            s.close()


# ---------------------------------------------------------------- TCP ---

def tcp_case(args, name, expectation, builder, mode="wait", wait=1.0):
    """One connection. mode "wait": send, then read until a final answer,
    EOF, or `wait` seconds of silence. mode "halfclose": send, shut down our
    write side, read until the gateway closes (must happen within 3 s).
    Returns (name, expectation, responses, note)."""
    note = None
    got = b""
    try:
        s = socket.socket(fam(args.host), socket.SOCK_STREAM)
        s.settimeout(3)
        s.connect((args.host, args.port_tcp))
    except OSError as e:
        return name, expectation, [], f"connect failed: {e}"
    try:
        payload, call_id = builder(s.getsockname()[1])
        try:
            s.sendall(payload)
        except OSError:
            pass  # the gateway may close early on oversized input
        if mode == "halfclose":
            try:
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        deadline = time.monotonic() + (3.0 if mode == "halfclose" else wait)
        closed = False
        while time.monotonic() < deadline:
            ready, _, _ = select.select([s], [], [], 0.05)
            if not ready:
                continue
            try:
                data = s.recv(70000)
            except OSError:
                closed = True
                break
            if not data:
                closed = True
                break
            got += data
            parsed = parse_responses(got)
            finals = [r for r in parsed if r[0] is not None and r[0] >= 200]
            if mode == "wait" and finals:
                ok2xx = [r for r in finals if r[0] < 300 and " INVITE" in r[2].get("cseq", "")]
                if ok2xx and call_id:
                    cleanup_call(lambda m: s.sendall(m), ok2xx[0], call_id, args.host,
                                 s.getsockname()[1], "TCP", hostport(args.host, args.port_tcp))
                    time.sleep(0.2)
                break
            if mode == "wait":
                deadline = max(deadline, time.monotonic() + 0.3)
        if mode == "halfclose" and not closed:
            note = "gateway did not close the connection within 3 s after our FIN"
    finally:
        s.close()
    responses = [r for r in parse_responses(got) if r[0] != 100]
    return name, expectation, responses, note


def run_tcp(args, results, category, cases, mode="wait", wait=1.0, workers=24):
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(tcp_case, args, name, expectation, builder, mode, wait)
                   for name, expectation, builder in cases]
        for fut in futures:
            name, expectation, responses, note = fut.result()
            results.record(category, name, expectation, responses, note)


# ---------------------------------------------------------------- ping ---

def options_ping(args, transport, timeout=1.0):
    builder = Msg(args)
    target_port = args.port if transport == "udp" else args.port_tcp
    if transport == "udp":
        s = udp_socket(args.host)
        payload, _ = builder.request("OPTIONS", s.getsockname()[1], "UDP", "ping")
        s.sendto(payload, (args.host, target_port))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([s], [], [], 0.05)
            if ready:
                for code, reason, _h, _r in parse_responses(s.recv(70000)):
                    if code is not None and code >= 200:
                        s.close()
                        return code, reason
        s.close()
        return None, "no answer"
    try:
        s = socket.create_connection((args.host, target_port), timeout=timeout)
    except OSError as e:
        return None, f"connect failed: {e}"
    try:
        payload, _ = builder.request("OPTIONS", s.getsockname()[1], "TCP", "ping")
        s.sendall(payload)
        got = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([s], [], [], 0.05)
            if ready:
                data = s.recv(70000)
                if not data:
                    break
                got += data
                for code, reason, _h, _r in parse_responses(got):
                    if code is not None and code >= 200:
                        return code, reason
        return None, "no answer"
    finally:
        s.close()


# ---------------------------------------------------------------- main ---

def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True, help="gateway UDP port (and TCP unless --tcp-port)")
    parser.add_argument("--tcp-port", type=int, dest="port_tcp")
    parser.add_argument("--pid", type=int, help="gateway process id: check it stays alive, count its fds")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--garbage", type=int, default=300, help="garbage datagrams (default 300)")
    parser.add_argument("--pace", type=float, default=0.001, help="seconds between UDP sends")
    parser.add_argument("--verbose", action="store_true", help="print every case and its answers")
    parser.add_argument("--ping", choices=["udp", "tcp"], help="only send one OPTIONS; exit 0 on 200")
    args = parser.parse_args()
    args.port_tcp = args.port_tcp or args.port
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        parser.error("only loopback targets are allowed")

    if args.ping:
        code, reason = options_ping(args, args.ping)
        print(f"OPTIONS over {args.ping}: {code} {reason}")
        return 0 if code == 200 else 1

    started = time.monotonic()
    rng = random.Random(args.seed)
    m = Msg(args)
    results = Results()
    results.verbose = args.verbose
    fatal = []

    for transport in ("udp", "tcp"):
        code, reason = options_ping(args, transport)
        if code != 200:
            print(f"FAIL: gateway does not answer OPTIONS over {transport} before the test: {code} {reason}")
            return 1
    fds_before = fd_count(args.pid) if args.pid else None

    # 1. garbage --------------------------------------------------------
    garbage = []
    for i in range(args.garbage):
        kind = i % 3
        if kind == 0:
            data = bytes(rng.randrange(256) for _ in range(rng.randint(1, 1400)))
            garbage.append((f"random-{i}", REJECT, lambda lport, d=data: (d, None)))
        elif kind == 1:
            start = rng.choice([b"INVITE sip:10000@x SIP/2.0\r\n", b"OPTIONS sip:x SIP/2.0\r\n",
                                b"SIP/2.0 200 OK\r\n", b"BYE sip:a@b SIP/2.0\r\nVia: "])
            data = start + bytes(rng.randrange(256) for _ in range(rng.randint(0, 1200)))
            garbage.append((f"sip-start-{i}", REJECT, lambda lport, d=data: (d, None)))
        else:
            flips = [(rng.random(), rng.randrange(256)) for _ in range(rng.randint(1, 8))]

            def mutated(lport, flips=flips):
                payload, call_id = m.request("OPTIONS", lport, "UDP", "mut")
                b = bytearray(payload)
                for where, value in flips:
                    b[int(where * len(b))] = value
                return bytes(b), call_id
            garbage.append((f"mutated-{i}", ANY, mutated))
    run_udp(args, results, "udp garbage", garbage)
    tcp_garbage = []
    for i in range(30):
        data = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4000)))
        if i % 2:
            data = b"INVITE sip:10000@x SIP/2.0\r\n" + data
        tcp_garbage.append((f"tcp-random-{i}", REJECT, lambda lport, d=data: (d, None)))
    run_tcp(args, results, "tcp garbage", tcp_garbage, mode="halfclose")

    # 2. truncated INVITEs ----------------------------------------------
    def invite(lport, transport, label, **kw):
        return m.request("INVITE", lport, transport, label, body=m.sdp(lport), content_length_first=True, **kw)

    full_len = len(invite(40000, "UDP", "len")[0])

    def prefix_builder(n, transport):
        def build(lport):
            payload, call_id = invite(lport, transport, "trunc")
            return payload[:n], call_id
        return build
    run_udp(args, results, "udp truncated INVITE",
            [(f"prefix-{n}", REJECT, prefix_builder(n, "UDP")) for n in range(1, full_len)])
    run_tcp(args, results, "tcp truncated INVITE",
            [(f"prefix-{n}", REJECT, prefix_builder(n, "TCP")) for n in range(1, full_len)],
            mode="halfclose")

    # 3. wrong Content-Length -------------------------------------------
    def cl_case(value, transport, method="INVITE"):
        def build(lport):
            body = m.sdp(lport)
            v = value(len(body)) if callable(value) else value
            return m.request(method, lport, transport, "cl", body=body, content_length=v)
        return build
    # (name, UDP expectation, TCP expectation, value). Over TCP a larger
    # Content-Length just waits for more bytes (no answer until we give
    # up), and "smaller" leaves the rest of the body as the next message.
    cl_values = [
        ("bigger", MUST_400, REJECT, lambda n: str(n + 50)),
        ("bigger-by-1", MUST_400, REJECT, lambda n: str(n + 1)),
        ("smaller", ANY, ANY, lambda n: str(n - 20)),
        ("zero-with-body", ANY, ANY, "0"),
        ("negative", MUST_400, MUST_400, "-5"),
        ("non-numeric", MUST_400, MUST_400, "abc"),
        ("numeric-then-junk", MUST_400, MUST_400, lambda n: f"{n}x"),
        ("huge-overflow", MUST_400, MUST_400, "99999999999999999999999"),
        ("huge", MUST_400, MUST_400, "4294967296000"),
        ("empty", MUST_400, MUST_400, ""),
    ]
    udp_cl, tcp_cl = [], []
    for method in ("INVITE", "OPTIONS"):
        for name, udp_expect, tcp_expect, value in cl_values:
            udp_cl.append((f"{method}-{name}", udp_expect, cl_case(value, "UDP", method)))
            tcp_cl.append((f"{method}-{name}", tcp_expect, cl_case(value, "TCP", method)))
    run_udp(args, results, "udp Content-Length", udp_cl)
    run_tcp(args, results, "tcp Content-Length", tcp_cl, wait=1.5)

    # 4. oversized ------------------------------------------------------
    def big_header(size, transport):
        def build(lport):
            base, _ = m.request("OPTIONS", lport, transport, "big")
            pad = size - len(base) - len("X-Pad: \r\n")
            return m.request("OPTIONS", lport, transport, "big", extra=[("X-Pad", "x" * pad)])
        return build

    def big_body(size, transport, content_length=None):
        def build(lport):
            base, _ = m.request("INVITE", lport, transport, "bigbody", body=m.sdp(lport))
            pad = size - len(base) - len("a=x-pad:\r\n")
            return m.request("INVITE", lport, transport, "bigbody", body=m.sdp(lport, pad=pad),
                             content_length=content_length)
        return build

    def endless_header(size):
        def build(lport):
            base, _ = m.request("OPTIONS", lport, "TCP", "endless")
            head = base[: base.find(b"\r\n\r\n") + 2]
            return head + b"X-Endless: " + b"y" * (size - len(head) - 11), None
        return build
    run_udp(args, results, "udp oversized", [
        ("options-65000", ANY, big_header(65000, "UDP")),
        ("options-65507", ANY, big_header(65507, "UDP")),
        ("invite-65000", ANY, big_body(65000, "UDP")),
    ])
    run_tcp(args, results, "tcp oversized 70KB", [
        ("options-header-70000", REJECT, big_header(70000, "TCP")),
        ("invite-body-70000", REJECT, big_body(70000, "TCP")),
        ("header-without-end-70000", REJECT, endless_header(70000)),
        ("options-header-1MB", REJECT, big_header(1 << 20, "TCP")),
    ], wait=2.0)

    # 5. missing mandatory headers --------------------------------------
    def missing(method, header, transport):
        def build(lport):
            body = m.sdp(lport) if method == "INVITE" else b""
            return m.request(method, lport, transport, "missing", body=body, omit=(header,))
        return build
    mandatory = ["Via", "From", "To", "Call-ID", "CSeq"]
    # Without a Via there is nowhere to route an answer: none, or a 400.
    run_udp(args, results, "udp missing header",
            [(f"{meth}-no-{h}", REJECT if h == "Via" else MUST_400, missing(meth, h, "UDP"))
             for meth in ("INVITE", "OPTIONS") for h in mandatory])
    run_tcp(args, results, "tcp missing header",
            [(f"{meth}-no-{h}", REJECT if h == "Via" else MUST_400, missing(meth, h, "TCP"))
             for meth in ("INVITE", "OPTIONS") for h in mandatory])

    # 6. TCP: half a message, then close; header section without end -----
    def half(lport):
        payload, call_id = invite(lport, "TCP", "half")
        return payload[: len(payload) // 2], call_id
    run_tcp(args, results, "tcp half message + close", [("half-invite", REJECT, half)], mode="halfclose")

    stalled = []
    for i in range(5):
        s = socket.create_connection((args.host, args.port_tcp), timeout=3)
        payload, _ = m.request("OPTIONS", s.getsockname()[1], "TCP", "stall")
        s.sendall(payload[: payload.find(b"\r\n\r\n") + 2])  # no empty line, ever
        stalled.append(s)
    time.sleep(0.5)
    during = [options_ping(args, t) for t in ("udp", "tcp")]
    time.sleep(1.5)
    got = b""
    for s in stalled:
        s.setblocking(False)
        try:
            got += s.recv(70000)
        except (BlockingIOError, OSError):
            pass
        s.close()
    note = None
    if any(code != 200 for code, _ in during):
        note = f"OPTIONS from other clients while 5 connections stalled: {during}"
    results.record("tcp header without end", "5 stalled connections", REJECT,
                   [r for r in parse_responses(got)], note)

    # 7. still alive? ---------------------------------------------------
    time.sleep(1.0)
    for transport in ("udp", "tcp"):
        code, reason = options_ping(args, transport, timeout=2.0)
        if code != 200:
            fatal.append(f"OPTIONS over {transport} after the test: {code} {reason}")
        else:
            print(f"after the test: OPTIONS over {transport} -> {code} {reason}")
    if args.pid:
        if not alive(args.pid):
            fatal.append(f"gateway process {args.pid} is gone")
        else:
            time.sleep(1.0)
            fds_after = fd_count(args.pid)
            print(f"gateway pid {args.pid} alive; open fds before {fds_before}, after {fds_after}")
            if fds_before is not None and fds_after is not None and fds_after > fds_before + 10:
                fatal.append(f"gateway fd count grew from {fds_before} to {fds_after} (leaked connections?)")

    total = sum(c["sent"] for c in results.categories.values())
    print(f"\nmalformed-input suite: {total} cases in {time.monotonic() - started:.1f} s")
    print(results.summary())
    for failure in results.failures[:50]:
        print("FAIL: " + failure)
    if len(results.failures) > 50:
        print(f"... and {len(results.failures) - 50} more failures")
    for failure in fatal:
        print("FAIL: " + failure)
    ok = not results.failures and not fatal
    print(f"RESULT: {'PASS' if ok else 'FAIL'} ({len(results.failures)} case failures, {len(fatal)} fatal)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
