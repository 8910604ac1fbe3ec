#!/usr/bin/env python3
"""Local stand-ins for the example flows' models, run through the `command` provider.

Reads {"model": {name, version, digest}, "prompt": TEXT, "input": {...}} on stdin and
prints the model's output as JSON. Deterministic rules, so the examples run with no
network and no key; a deployment points `flow.toml` at the real model instead.
"""
import json
import sys


def money(text):
    amount, _currency = text.rsplit(" ", 1)
    return float(amount.replace("_", ""))


def spend_risk(i):
    amount = money(i["amount"])
    text = i["justification"].lower()
    if i["vendor_rating"] <= 2 or amount > 100_000:
        return {"tier": "high", "confidence": "0.91", "rationale": "large amount or weak vendor"}
    if "urgent" in text or "exception" in text:
        return {"tier": "medium", "confidence": "0.62", "rationale": "the justification asks for an exception"}
    if amount > 25_000:
        return {"tier": "medium", "confidence": "0.84", "rationale": "mid-sized purchase from a sound vendor"}
    return {"tier": "low", "confidence": "0.93", "rationale": "routine purchase from a well-rated vendor"}


def fraud_screen(i):
    score = min(0.99, 0.1 + 0.15 * i["prior_claims"] + (0.3 if money(i["amount"]) > 20_000 else 0))
    severity = "severe" if score > 0.7 else "moderate" if score > 0.4 else "minor"
    return {"score": f"{score:.2f}", "severity": severity, "summary": f"{i['prior_claims']} prior claims"}


def exception_classifier(i):
    code = i["error_code"].upper()
    if code.startswith("AC") or code.startswith("BE"):
        return {"root_cause": "data_error", "remedy": "repair", "explanation": f"{code}: account data"}
    if code.startswith("AM") or i["attempts"] >= 3:
        return {"root_cause": "bank_rejected", "remedy": "return_funds", "explanation": f"{code}: rejected by the bank"}
    return {"root_cause": "transient", "remedy": "retry", "explanation": f"{code}: transient failure"}


def alert_triage(i):
    amount = money(i["amount"])
    if i["rule"] == "sanctions_match" or i["customer_risk"] == "high":
        return {"priority": "p1", "suspicion": "0.88", "reasoning": "sanctions or high-risk customer"}
    if amount > 50_000 or i["prior_alerts"] > 2:
        return {"priority": "p2", "suspicion": "0.64", "reasoning": "large amount or repeated alerts"}
    return {"priority": "p3", "suspicion": "0.21", "reasoning": "isolated alert, ordinary amount"}


def clause_extractor(i):
    text = i["text"].lower()
    unlimited = "unlimited" in text
    return {
        "liability_capped": "cap" in text,
        "unlimited_indemnity": unlimited,
        "processes_personal_data": "personal data" in text,
        "termination_notice_days": 90 if "90 days" in text else 30,
        "risk": "critical" if unlimited else "elevated" if money(i["value"]) > 500_000 else "standard",
        "summary": "clauses read by the local extractor",
    }


def variance_commentary(i):
    change = abs(float(i["change"]))
    plausible = change < 0.1 or len(i["commentary"]) > 40
    return {"plausible": plausible, "drivers": i["commentary"][:80], "confidence": "0.8" if plausible else "0.4"}


def exception_advisor(i):
    request, passages = i["request"], i["passages"]
    ltv = float(request["loan_to_value"])
    cites = ", ".join(p["id"] for p in passages)
    collateral = any("loan to value" in p["text"].lower() for p in passages)
    within = collateral and ltv <= 0.9
    why = "within the collateral policy's exception band" if within else "outside what the passages allow"
    return {"within_policy": within, "cites": cites, "rationale": f"loan to value {ltv:.0%}: {why}"}


MODELS = {
    "acme-risk-classifier": spend_risk,
    "acme-claims-fraud-screen": fraud_screen,
    "acme-payment-exception-classifier": exception_classifier,
    "acme-aml-alert-triage": alert_triage,
    "acme-clause-extractor": clause_extractor,
    "acme-variance-commentary": variance_commentary,
    "acme-exception-advisor": exception_advisor,
}

request = json.load(sys.stdin)
name = request["model"]["name"]
if name not in MODELS:
    sys.exit(f"no local model named {name}")
json.dump(MODELS[name](request["input"]), sys.stdout)
