#!/usr/bin/env python3
"""A webhook receiver for tests, as a provider's endpoint would be: it checks Chorus's signature
and records what it accepts. Python's standard library only; one thread per connection.

  python3 webhook_receiver.py --port P --secret S --record FILE [--fail-first N] [--max-age S]

POST /hook      checks X-Chorus-Signature (t=<unix s>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>):
                400 when a Chorus header is missing or malformed, 401 when the signature is wrong,
                the timestamp differs from X-Chorus-Timestamp or is older than --max-age seconds
                (default 300). Then the first N requests of each notification id get 500
                (--fail-first, default 0); the others are accepted (200) and recorded in FILE as
                one JSON line {"id", "body", "timestamp"} each. A repeated id is recorded again:
                deduplication is the caller's and the receiver's business, which tests count.
POST /status/C  answers status C (for the caller's classification of answers).
anything else   404.

Prints "listening on <port>" once it accepts connections; one line per request after that.
"""

import argparse
import hashlib
import hmac
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SIGNATURE = re.compile(r"^t=(\d+),v1=([0-9a-f]{64})$")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--record", required=True)
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--max-age", type=int, default=300)
    args = parser.parse_args()

    lock = threading.Lock()
    attempts = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def answer(self, status, text):
            data = json.dumps({"status": status, "message": text}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, fmt, *fmt_args):
            print("%s %s" % (self.address_string(), fmt % fmt_args), flush=True)

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            m = re.fullmatch(r"/status/(\d{3})", self.path)
            if m:
                return self.answer(int(m.group(1)), "as asked")
            if self.path != "/hook":
                return self.answer(404, "no such hook")
            notification_id = self.headers.get("X-Chorus-Notification-Id")
            timestamp = self.headers.get("X-Chorus-Timestamp")
            signature = SIGNATURE.match(self.headers.get("X-Chorus-Signature", ""))
            if not notification_id or not timestamp or not signature:
                return self.answer(400, "missing or malformed X-Chorus headers")
            t, v1 = signature.groups()
            expected = hmac.new(args.secret.encode(), t.encode() + b"." + body,
                                hashlib.sha256).hexdigest()
            if not hmac.compare_digest(expected, v1):
                return self.answer(401, "bad signature")
            if t != timestamp or abs(time.time() - int(t)) > args.max_age:
                return self.answer(401, "stale or mismatched timestamp")
            with lock:
                attempts[notification_id] = attempts.get(notification_id, 0) + 1
                if attempts[notification_id] <= args.fail_first:
                    return self.answer(500, "failing as asked")
                with open(args.record, "a", encoding="utf-8") as out:
                    out.write(json.dumps({"id": notification_id,
                                          "body": body.decode("utf-8", "replace"),
                                          "timestamp": int(t)}) + "\n")
            return self.answer(200, "recorded")

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print("listening on %d" % args.port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
