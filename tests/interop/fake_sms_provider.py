#!/usr/bin/env python3
"""A fake SMS provider for the interop suites: the generic JSON webhook the
gateway's outbox posts to (docs/sms-outbox.md), on two loopback ports.

  fake_sms_provider.py HOLD_PORT ANSWER_PORT LOG

ANSWER_PORT accepts every message (200, {"message_id": ...}); HOLD_PORT reads
the request and never answers, standing for a provider that is slow while
the gateway that sent it dies. Every request is logged as one line,
"answer KEY" or "hold KEY" (KEY: the Idempotency-Key header), so a test can
count how often each text reached the provider and was accepted.
"""
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOLD_PORT, ANSWER_PORT, LOG = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
lock = threading.Lock()
accepted = 0


def record(kind, key):
    with lock, open(LOG, "a") as log:
        log.write(f"{kind} {key}\n")


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        global accepted
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        key = self.headers.get("Idempotency-Key", "-")
        if self.server.server_port == HOLD_PORT:
            record("hold", key)
            time.sleep(600)
            return
        record("answer", key)
        with lock:
            accepted += 1
            body = b'{"message_id": "fake-%d"}' % accepted
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


servers = [ThreadingHTTPServer(("127.0.0.1", port), Handler) for port in (HOLD_PORT, ANSWER_PORT)]
for server in servers:
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
print("fake SMS provider: hold on", HOLD_PORT, "answer on", ANSWER_PORT, flush=True)
threading.Event().wait()
