#!/usr/bin/env python3
"""A client of Flow's HTTP API in Python's standard library: install a plan, start a run,
poll what waits for each decider, decide it, and fetch and verify the run's evidence.

    FLOW_URL=http://127.0.0.1:8080 python3 flow_client.py TOKENS.json PLAN.json REQUEST.json VENDOR.json

TOKENS.json maps principals to API tokens (`flowc token create --as ID`). The principals
are those of `examples/flow-principals.toml`: pat installs, ana starts, max, mia and fin
decide, aud audits.
"""

import datetime
import json
import os
import sys
import time
import urllib.error
import urllib.request

BASE = os.environ.get("FLOW_URL", "http://127.0.0.1:8080")


def call(method, path, token, body=None, content_type="application/json", headers=None, raw=False):
    """One request; returns (status, parsed JSON or text; the bytes with `raw`). Problems
    (RFC 9457) are returned as answers, not raised: a client reads their `code`."""
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(BASE + path, data=data, method=method)
    request.add_header("Authorization", "Bearer " + token)
    if data is not None:
        request.add_header("Content-Type", content_type)
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, raw_bytes, kind = response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as error:
        status, raw_bytes, kind = error.code, error.read(), error.headers.get("Content-Type", "")
    if raw:
        return status, raw_bytes
    return status, (json.loads(raw_bytes) if "json" in kind else raw_bytes.decode())


def expect(answer, *statuses):
    status, body = answer
    if status not in statuses:
        sys.exit(f"flow_client: unexpected {status}: {body}")
    return body


def main():
    tokens_file, plan_file, request_file, vendor_file = sys.argv[1:5]
    with open(tokens_file) as f:
        tokens = json.load(f)
    with open(plan_file, "rb") as f:
        plan = expect(call("POST", "/v1/plans", tokens["pat"], f.read()), 200, 201)
    print(f"python: installed {plan['flow']} {plan['version']} as {plan['plan'][:19]}…")

    with open(request_file) as f:
        request = json.load(f)
    with open(vendor_file) as f:
        vendor = json.load(f)
    # Fresh master data: the vendor record was updated an hour ago.
    an_hour_ago = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
    vendor["updated_at"] = an_hour_ago.strftime("%Y-%m-%dT%H:%M:%SZ")
    start = {"plan": plan["plan"], "inputs": {"request": request, "vendor": vendor}}
    key = {"Idempotency-Key": f"python-{request['id']}-{time.time_ns()}"}
    run = expect(call("POST", "/v1/runs", tokens["ana"], start, headers=key), 201)
    again = expect(call("POST", "/v1/runs", tokens["ana"], start, headers=key), 200)
    assert again["run"] == run["run"], "the same idempotency key starts one run"
    print(f"python: started run {run['run']}: {run['status']} ({run['summary']})")

    decisions = [
        ("max", "triage", {"outcome": "approve", "reason": "budget_ok", "basis": "Renewal is in this year's budget"}),
        ("mia", "spend", {"outcome": "approve", "reason": "within_budget"}),
        ("fin", "spend", {"outcome": "approve", "reason": "within_budget"}),
    ]
    for who, step, decision in decisions:
        waiting = expect(call("GET", "/v1/pending", tokens[who]), 200)["pending"]
        mine = [w for w in waiting if w["run"] == run["run"] and w["step"] == step]
        if not mine:
            sys.exit(f"flow_client: nothing waits for {who} at {step}: {waiting}")
        print(f"python: {who} sees {step} ({mine[0]['kind']}): {'; '.join(mine[0]['why'])}")
        path = f"/v1/runs/{run['run']}/steps/{step}/decision"
        view = expect(call("POST", path, tokens[who], decision), 200)
        print(f"python: {who} decided {step}: the run is {view['status']}")

    # The bundle's exact bytes are what a verifier checks: keep them as they came.
    bundle = expect(call("GET", f"/v1/runs/{run['run']}/evidence", tokens["aud"], raw=True), 200)
    with open(f"{run['run']}.evidence.json", "wb") as f:
        f.write(bundle)
    verified = expect(call("POST", "/v1/evidence/verify", tokens["aud"], bundle), 200)
    if not verified.get("verified"):
        sys.exit(f"flow_client: the evidence does not verify: {verified}")
    print(f"python: evidence of {run['run']} verified: {verified['events']} events, head {verified['head'][:16]}…")


if __name__ == "__main__":
    main()
