#!/usr/bin/env python3
"""A webhook receiver for Flow's notices, with the standard library only.

It does what every receiver must:
  1. check the signature: `Flow-Signature: v1=HEX` is the HMAC-SHA256 of
     `TIMESTAMP.BODY` (the `Flow-Timestamp` header, a dot, the raw body) under the
     endpoint's secret, compared in constant time;
  2. refuse a timestamp more than five minutes from now (a replayed delivery);
  3. drop a notice whose id it has seen (a notice is sent again, under the same id, when
     the server crashed between the answer and its record of it);
  4. answer 2xx quickly, and do the work afterwards.

Usage: FLOW_WEBHOOK_SECRET=... receiver.py [--port N] [--out FILE]
Prints the port it listens on, then each notice it takes (one JSON line each, also
appended to FILE); a duplicate is answered 200 and written as {"duplicate": ID}.
"""
import argparse
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = os.environ.get("FLOW_WEBHOOK_SECRET", "").encode()
TOLERANCE = 300

parser = argparse.ArgumentParser(description="Receives Flow's webhook notices.")
parser.add_argument("--port", type=int, default=0, help="the port to listen on (default: any free port)")
parser.add_argument("--out", help="a file each notice is appended to, as a JSON line")
args = parser.parse_args()
if not SECRET:
    sys.exit("receiver.py: set FLOW_WEBHOOK_SECRET to the endpoint's secret")

lock = threading.Lock()
seen = set()
if args.out and os.path.exists(args.out):
    with open(args.out) as f:
        seen = {json.loads(line).get("id") for line in f if line.strip()}


def signed(timestamp, body, signature):
    expected = "v1=" + hmac.new(SECRET, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


def record(line):
    text = json.dumps(line, sort_keys=True)
    print(text, flush=True)
    if args.out:
        with open(args.out, "a") as f:
            f.write(text + "\n")


class Receiver(BaseHTTPRequestHandler):
    def log_message(self, *_):
        pass

    def answer(self, status, message):
        data = json.dumps({"message": message}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        timestamp = self.headers.get("Flow-Timestamp", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > TOLERANCE:
            return self.answer(401, "no timestamp, or not a fresh one")
        if not signed(timestamp, body, self.headers.get("Flow-Signature", "")):
            return self.answer(401, "the signature does not match")
        notice = json.loads(body)
        with lock:
            if notice["id"] in seen:
                record({"duplicate": notice["id"]})
                return self.answer(200, "seen before")
            seen.add(notice["id"])
            record(notice)
        self.answer(200, "thanks")


server = ThreadingHTTPServer(("127.0.0.1", args.port), Receiver)
print(server.server_address[1], flush=True)
server.serve_forever()
