#!/usr/bin/env python3
"""The test system over HTTP: checks each call's signature (HMAC-SHA256 of `TIMESTAMP.BODY`
under LEDGER_SECRET, a timestamp within five minutes), books once per Idempotency-Key (every
effect in effects.log), answers 503 to the first FAIL_FIRST calls, and 422 for 777 USD.
Prints the port it listens on, then serves until killed."""
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = os.environ["LEDGER_SECRET"].encode()
failures = int(os.environ.get("FAIL_FIRST", "0"))
lock = threading.Lock()


class Ledger(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        global failures
        body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
        with open("calls.log", "a") as f:
            f.write(self.headers.get("Idempotency-Key", "-") + "\n")
        timestamp = self.headers.get("Flow-Timestamp", "")
        expected = "v1=" + hmac.new(SECRET, f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
        given = self.headers.get("Flow-Signature", "")
        if not hmac.compare_digest(expected, given) or abs(time.time() - int(timestamp or 0)) > 300:
            return self.answer(401, {"error": "bad signature"})
        request = json.loads(body)
        key = self.headers["Idempotency-Key"]
        if key != request["idempotency_key"]:
            return self.answer(400, {"error": "the header and the body name other keys"})
        with lock:
            if failures > 0:
                failures -= 1
                return self.answer(503, {"error": "down for a moment"})
            if request["args"]["amount"].startswith("777"):
                return self.answer(422, {"error": "the ledger refuses this amount"})
            done = {}
            if os.path.exists("effects.log"):
                with open("effects.log") as f:
                    done = dict(line.split() for line in f)
            if key not in done:
                done[key] = "R-" + key
                with open("effects.log", "a") as f:
                    f.write(f"{key} {done[key]}\n")
        self.answer(200, {"number": done[key]})


server = ThreadingHTTPServer(("127.0.0.1", 0), Ledger)
print(server.server_address[1], flush=True)
server.serve_forever()
