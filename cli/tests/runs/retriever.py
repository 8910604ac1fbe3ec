#!/usr/bin/env python3
"""A retriever for the tests: `python3 retriever.py` answers one search on stdin (the
`command` retriever); `python3 retriever.py serve` answers searches as `POST`s (the `http`
retriever) on a free port, which it prints first.

It searches two fixed documents. `SNAPSHOT` names the snapshot it says it searched
(default `v7`); `FAIL_FIRST=N` makes the server answer 503 to its first N requests;
`BROKEN=1` makes it answer without a snapshot; with `SECRET`, the server refuses (401) a
search whose `Flow-Signature` is not the HMAC-SHA256 of `TIMESTAMP.BODY` under it.
"""
import hashlib
import hmac
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

DOCUMENTS = [
    {"id": "ltv", "text": "Loans up to 90% loan to value with audited accounts"},
    {"id": "travel", "text": "Travel is booked through the desk"},
]


def search(request):
    words = set(request["query"].lower().split())
    found = [d for d in DOCUMENTS if words & set(d["text"].lower().split())][: request["top"]]
    answer = {"documents": [{"id": d["id"], "document": d} for d in found], "as_of": "2026-11-01T00:00:00Z"}
    if not os.environ.get("BROKEN"):
        answer["snapshot"] = os.environ.get("SNAPSHOT", "v7")
    return answer


if len(sys.argv) > 1 and sys.argv[1] == "serve":
    failures = [int(os.environ.get("FAIL_FIRST", "0"))]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["content-length"]))
            secret = os.environ.get("SECRET")
            if secret:
                stamp = self.headers.get("flow-timestamp", "")
                mac = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
                if self.headers.get("flow-signature") != f"v1={mac}":
                    self.send_response(401)
                    self.end_headers()
                    return
            if failures[0] > 0:
                failures[0] -= 1
                self.send_response(503)
                self.end_headers()
                return
            answer = json.dumps(search(json.loads(body))).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()
else:
    json.dump(search(json.load(sys.stdin)), sys.stdout)
