#!/usr/bin/env python3
"""Writes N signed generic-JSON SMS webhooks for tests/bench/sms_load.sh.

Each line is `timestamp TAB signature TAB body`: a FAULT text from its own
sender (so per-sender rate limits never refuse it) with a unique id (so each
creates a ticket), signed as docs/sms.md says: X-Hotline-Signature =
v1=<hex HMAC-SHA256(secret, "<timestamp>." + body)>.

Usage: sms_requests.py SECRET COUNT RUN_ID > requests.tsv
"""
import hashlib
import hmac
import json
import sys
import time


def main() -> None:
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    secret = sys.argv[1].encode()
    count = int(sys.argv[2])
    run = sys.argv[3]
    ts = str(int(time.time()))
    out = sys.stdout
    for i in range(count):
        body = json.dumps(
            {
                "id": f"bench-{run}-{i}",
                "from": f"13{i % 10}{i:08d}"[:11],
                "to": "10000",
                "text": f"FAULT line {i} is down",
            },
            separators=(",", ":"),
        )
        sig = hmac.new(secret, f"{ts}.{body}".encode(), hashlib.sha256).hexdigest()
        out.write(f"{ts}\tv1={sig}\t{body}\n")


if __name__ == "__main__":
    main()
