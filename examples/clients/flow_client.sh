#!/usr/bin/env bash
# A client of Flow's HTTP API with curl: start a run, poll what waits for each decider,
# decide it, and fetch and verify the run's evidence.
#
#   FLOW_URL=http://127.0.0.1:8080 flow_client.sh TOKENS.json PLAN-HASH REQUEST.json VENDOR.json
#
# TOKENS.json maps principals to API tokens; the principals are those of
# examples/flow-principals.toml (ana starts, max, mia and fin decide, aud audits). Reading
# JSON uses python3, as jq may not be installed.
set -euo pipefail
base=${FLOW_URL:-http://127.0.0.1:8080}
tokens=$1 plan=$2 request=$3 vendor=$4
token() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$tokens" "$1"; }
field() { python3 -c 'import json,sys; v=json.load(sys.stdin); [v:=v[int(k)] if isinstance(v,list) else v[k] for k in sys.argv[1:]]; print(v)' "$@"; }
# curl fails on a status >= 400 (--fail-with-body prints the problem details first).
api() { curl -sS --fail-with-body -H "Authorization: Bearer $(token "$1")" "${@:2}"; }

fresh=$(date -u -d '1 hour ago' +%Y-%m-%dT%H:%M:%SZ)
body=$(python3 - "$plan" "$request" "$vendor" "$fresh" <<'PY'
import json, sys
plan, request, vendor, fresh = sys.argv[1:5]
vendor_record = json.load(open(vendor))
vendor_record["updated_at"] = fresh
request_record = json.load(open(request))
request_record["id"] += "-curl"
print(json.dumps({"plan": plan, "inputs": {"request": request_record, "vendor": vendor_record}}))
PY
)
run=$(api ana -H 'Content-Type: application/json' -H "Idempotency-Key: curl-$$-$(date +%s%N)" -d "$body" "$base/v1/runs" | field run)
echo "curl: started run $run"

decide() {  # WHO STEP JSON
  local waiting
  waiting=$(api "$1" "$base/v1/pending" | python3 -c 'import json,sys; print(" ".join(w["step"] for w in json.load(sys.stdin)["pending"] if w["run"] == sys.argv[1]))' "$run")
  case " $waiting " in *" $2 "*) ;; *) echo "curl: nothing waits for $1 at $2" >&2; exit 1 ;; esac
  status=$(api "$1" -H 'Content-Type: application/json' -d "$3" "$base/v1/runs/$run/steps/$2/decision" | field status)
  echo "curl: $1 decided $2: the run is $status"
}
decide max triage '{"outcome": "approve", "reason": "budget_ok", "basis": "Renewal is in this year'"'"'s budget"}'
decide mia spend '{"outcome": "approve", "reason": "within_budget"}'
decide fin spend '{"outcome": "approve", "reason": "within_budget"}'

api aud -o "$run.evidence.json" "$base/v1/runs/$run/evidence"
verified=$(api aud -H 'Content-Type: application/json' --data-binary "@$run.evidence.json" "$base/v1/evidence/verify" | field verified)
[ "$verified" = True ] || { echo "curl: the evidence of $run does not verify" >&2; exit 1; }
echo "curl: evidence of $run verified"
