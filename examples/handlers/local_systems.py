#!/usr/bin/env python3
"""A local stand-in for the example flows' systems, run through the `command` handler.

Reads {"system", "action", "args", "idempotency_key"} on stdin and prints the action's
result. Like a real system it is idempotent: it keeps a ledger (`.flow/ledger.jsonl`
beside this deployment), and a key it has seen gets the earlier result, with no second
effect.
"""
import hashlib
import json
import os
import sys

request = json.load(sys.stdin)
key = request["idempotency_key"]
ledger = os.path.join(".flow", "ledger.jsonl")
os.makedirs(".flow", exist_ok=True)
if os.path.exists(ledger):
    with open(ledger) as f:
        for line in f:
            entry = json.loads(line)
            if entry["system"] == request["system"] and entry["key"] == key:
                json.dump(entry["result"], sys.stdout)
                sys.exit(0)

ref = hashlib.sha256(f"{request['system']}/{key}".encode()).hexdigest()[:8].upper()
results = {
    "create_purchase_order": {"number": f"PO-{ref}"},
    "pay": f"PAY-{ref}",
    "retry_payment": {"reference": f"RTY-{ref}"},
    "return_funds": {"reference": f"RET-{ref}"},
    "open_case": {"case_id": f"CASE-{ref}"},
    "submit_report": {"case_id": f"FIU-{ref}"},
    "record_review": {"record_id": f"CLM-{ref}"},
    "publish_forecast": {"version_id": f"FC-{ref}"},
}
if request["action"] not in results:
    sys.exit(f"no local action named {request['action']}")
result = results[request["action"]]
with open(ledger, "a") as f:
    f.write(json.dumps({"system": request["system"], "key": key, "action": request["action"], "result": result}) + "\n")
    f.flush()
    os.fsync(f.fileno())
json.dump(result, sys.stdout)
