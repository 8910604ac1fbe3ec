#!/bin/sh
# The pages' benchmark of docs/benchmarks.md: the inbox of a manager for whom 10,000 steps
# wait, and the page of a run with about 500 events, each asked for ROUNDS times of
# `flowc serve` over HTTP on a SQLite store, after three requests not measured; and, beside
# them, the dashboard over those runs and the stewards' pages (release build; the client, a
# Python script, shares the machine). The pictures alone are measured by
# `cargo bench -p flow-lower --bench plan -- svg`.
#
#   bench/web/run.sh [WAITING] [ROUNDS]      # default 10000 waiting steps, 100 rounds
set -eu
N=${1:-10000}
R=${2:-100}
root=$(cd "$(dirname "$0")/../.." && pwd)
cargo build --release --locked -p flow-cli >&2
flowc=$root/target/release/flowc
work=$(mktemp -d /tmp/flow-web-bench.XXXXXX)
server=
trap 'if [ -n "$server" ]; then kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; fi; rm -rf "$work"' EXIT
cd "$work"
printf '[principals]\ncarl = ["clerk"]\nmax = ["manager"]\n' > flow-principals.toml
printf '[serve]\ndeployers = ["manager"]\n' > flow.toml

# N runs, each waiting for one review by a manager.
"$flowc" build "$root/bench/stores/review.flow" -o review.plan.json >/dev/null
python3 -c "
import json, sys
for i in range(int(sys.argv[1])): print(json.dumps({'inputs': {'request': {'id': f'r{i}'}}}))" "$N" > cases.jsonl
"$flowc" run review.plan.json --batch cases.jsonl --as carl --store "$work/.flow/runs.db" > /dev/null

# A run of about 500 events: 245 values, each with an info gate, and a review.
python3 - > long.flow <<'PY'
print("role clerk\nrole manager\n\ntype Request {\n  id: Text\n  n: Int\n}\n")
print('flow long {\n  version "1.0.0"\n  owner manager\n  steward manager\n')
print("  input request: Request\n  output approved: Bool\n\n  access {\n    trigger by clerk\n    read evidence by manager\n  }\n")
for i in range(245):
    print(f"  let x{i} = request.n + {i}\n  gate g{i}: info when x{i} > 1000")
print("\n  review check by manager\n    outcomes approve, reject\n    reasons ok\n")
print("  emit approved = check.outcome == approve\n}")
PY
"$flowc" build long.flow -o long.plan.json >/dev/null
echo '{"id": "long", "n": 5000}' > long.json
long=$("$flowc" run long.plan.json --as carl --input request=long.json --store "$work/.flow/runs.db" \
  | sed -n 's/^run \([^:]*\): pending$/\1/p')
events=$("$flowc" evidence "$long" --as max --store "$work/.flow/runs.db" \
  | python3 -c 'import json, sys; print(len(json.load(sys.stdin)["events"]))')
token=$("$flowc" token create --as max --note bench --format json | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')

"$flowc" serve --listen 127.0.0.1:0 2> serve.log &
server=$!
address=
for _ in $(seq 600); do
  address=$(sed -n 's|^flowc: serving the API on http://\([^/]*\)/v1.*|\1|p' serve.log)
  [ -n "$address" ] && break
  kill -0 "$server" 2>/dev/null || { cat serve.log >&2; exit 1; }
  sleep 0.1
done
[ -n "$address" ] || { echo "the server did not start" >&2; exit 1; }

echo "| page | size | p50 ms | p95 ms | spread ms |"
echo "|---|---|---|---|---|"
python3 "$root/bench/web/measure.py" "$address" "$token" "$R" \
  "inbox, $N steps waiting=/ui/inbox" \
  "run page, $events events=/ui/runs/$long" \
  "decide page of that run=/ui/runs/$long/steps/check" \
  "dashboard, every flow, 30 days ($((N + 1)) runs), counted anew=/ui/dashboard?days=30|/ui/dashboard?days=29" \
  "dashboard, the same again within a minute (counts reused)=/ui/dashboard?days=30" \
  "flows=/ui/flows" \
  "a version's page (governance, forms)=/ui/plans/$("$flowc" build "$root/bench/stores/review.flow" -o /dev/null | sed -n 's/^hash //p')"
