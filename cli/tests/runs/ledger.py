#!/usr/bin/env python3
"""The test system: books once per idempotency key (an idempotent endpoint); every call is
logged in calls.log, every effect in effects.log; 777 USD fails, and every call while the
file ledger.down exists."""
import fcntl
import json
import os
import sys
import time

request = json.load(sys.stdin)
key = request["idempotency_key"]
with open("calls.log", "a") as f:
    f.write(key + "\n")
if os.path.exists("ledger.down"):
    sys.exit("the ledger is down")
if request["args"]["amount"].startswith("777"):
    sys.exit("the ledger refuses this amount")
lock = open("effects.lock", "a")
fcntl.flock(lock, fcntl.LOCK_EX)
done = {}
if os.path.exists("effects.log"):
    with open("effects.log") as f:
        for line in f:
            k, number = line.split()
            done[k] = number
if key not in done:
    number = "R-" + key
    with open("effects.log", "a") as f:
        f.write(f"{key} {number}\n")
        f.flush()
        os.fsync(f.fileno())
    done[key] = number
fcntl.flock(lock, fcntl.LOCK_UN)
time.sleep(float(os.environ.get("LEDGER_SLEEP", "0")))
print(json.dumps({"number": done[key]}))
