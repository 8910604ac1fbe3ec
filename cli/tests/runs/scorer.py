#!/usr/bin/env python3
"""The test model: the tier by amount; 13 USD fails, 666 USD answers nonsense."""
import json
import sys
import time

request = json.load(sys.stdin)
amount = float(request["input"]["amount"].split()[0])
time.sleep(float(__import__("os").environ.get("SCORER_SLEEP", "0")))
if amount == 13:
    sys.exit("the scorer is down")
if amount == 666:
    print(json.dumps({"tier": "enormous", "confidence": "x"}))
    sys.exit(0)
if amount < 1000:
    out = {"tier": "low", "confidence": "0.9"}
elif amount < 10000:
    out = {"tier": "medium", "confidence": "0.7"}
else:
    out = {"tier": "high", "confidence": "0.95"}
print(json.dumps(out))
