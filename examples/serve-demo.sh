#!/usr/bin/env bash
# Flow as a service, end to end: starts `flowc serve` on the examples (a SQLite store in a
# temporary folder, the examples' principals with freshly created API tokens, a free local
# port), runs the Python client and the curl client of `clients/` against it — each starts
# a spend approval run, has it decided by the people it waits for, and fetches and verifies
# its evidence — prints what they did, and stops the server.
#
# With --browse, it then starts two runs that wait for people, prints the address of the
# web pages and each person's token to sign in with, and serves until Ctrl-C.
#
# FLOWC=path/to/flowc uses that binary instead of building one.
set -euo pipefail
browse=
if [ "${1:-}" = "--browse" ]; then browse=1; fi
cd "$(dirname "$0")"
examples=$PWD
if [ -z "${FLOWC:-}" ]; then
  # The first build compiles every dependency (several minutes on two cores).
  echo "building flowc (release)…" >&2
  cargo build --release -p flow-cli
  FLOWC=$examples/../target/release/flowc
fi
work=$(mktemp -d)
server=
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
# Ctrl-C or a TERM stops the server too (through the EXIT trap).
trap 'exit 130' INT TERM

# The deployment: the examples' flow, models, systems and principals; the store, the
# tokens file and the plan in the temporary folder. Stewards may install plans.
cp -r flow.toml flow-principals.toml models handlers prompts common inputs spend_approval.flow "$work/"
printf '\n[serve]\ndeployers = ["policy_steward"]\n' >> "$work/flow.toml"
cd "$work"
plan=$("$FLOWC" build spend_approval.flow -o plan.json | sed -n 's/^hash //p')
echo "built the plan of spend_approval.flow: $plan"
python3 - "$FLOWC" pat ana max mia fin aud > tokens.json <<'PY'
import json, subprocess, sys
flowc, people = sys.argv[1], sys.argv[2:]
def token(who):
    out = subprocess.run([flowc, "token", "create", "--as", who, "--note", "serve-demo", "--format", "json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["token"]
print(json.dumps({who: token(who) for who in people}))
PY
echo "created API tokens for pat (steward), ana (requester), max, mia, fin (deciders), aud (auditor)"

"$FLOWC" serve --listen 127.0.0.1:0 2> serve.log &
server=$!
for _ in $(seq 600); do
  address=$(sed -n 's|^flowc: serving the API on http://\([^/]*\)/v1.*|\1|p' serve.log)
  [ -n "$address" ] && break
  kill -0 "$server" 2>/dev/null || { cat serve.log >&2; exit 1; }
  sleep 0.1
done
[ -n "$address" ] || { echo "the server did not start" >&2; cat serve.log >&2; exit 1; }
echo "serving on http://$address (store $work/.flow/runs.db)"
export FLOW_URL="http://$address"

echo; echo "# the Python client (standard library)"
python3 "$examples/clients/flow_client.py" tokens.json plan.json inputs/request.json inputs/vendor.json
echo; echo "# the curl client"
"$examples/clients/flow_client.sh" tokens.json "$plan" inputs/request.json inputs/vendor.json

if [ -n "$browse" ]; then
  runs=()
  for n in 1 2; do
    body=$(python3 - "$plan" "$n" <<'PY'
import datetime, json, sys
plan, n = sys.argv[1:3]
vendor = json.load(open("inputs/vendor.json"))
# Fresh data: an hour old.
an_hour_ago = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
vendor["updated_at"] = an_hour_ago.strftime("%Y-%m-%dT%H:%M:%SZ")
request = json.load(open("inputs/request.json"))
request["id"] += f"-browser-{n}"
print(json.dumps({"plan": plan, "inputs": {"request": request, "vendor": vendor}}))
PY
)
    ana=$(python3 -c 'import json; print(json.load(open("tokens.json"))["ana"])')
    started=$(curl -sS --fail-with-body -H "Authorization: Bearer $ana" -H 'Content-Type: application/json' \
      -d "$body" "$FLOW_URL/v1/runs")
    runs+=("$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["run"])' "$started")")
  done
  echo
  echo "two runs wait for people:"
  for run in "${runs[@]}"; do echo "  $FLOW_URL/ui/runs/$run"; done
  echo "Open $FLOW_URL/ui/ and sign in with a token:"
  python3 -c 'import json; [print(f"  {who:4} {token}") for who, token in json.load(open("tokens.json")).items()]'
  echo "max triages, then mia and fin approve the spend; aud reads the runs' pages above and downloads their evidence."
  echo "serving until Ctrl-C"
  wait "$server" || true
  server=
  exit 0
fi

kill -TERM "$server"
wait "$server"
server=
echo; echo "the server answered $(grep -c 'flow::http: method=' serve.log) requests and stopped"
