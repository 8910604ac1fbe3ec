#!/bin/sh
# The service benchmark of docs/benchmarks.md, side by side in one run: runs started per
# second and the latency of a start at 1, 16 and 128 concurrent clients, over HTTP against
# `flowc serve` and in-process through the runtime, both on a SQLite store (each start a
# stored run of the rules-only benchmark plan); and the latency of a decision on a pending
# run over HTTP while 16 clients start runs; and, as the floor under every request, an
# authenticated GET /v1/me at one client. Release builds; the server and the load generator
# share the machine.
#
#   bench/serve/run.sh [SECONDS]      # default 10 seconds per pass
set -eu
S=${1:-10}
root=$(cd "$(dirname "$0")/../.." && pwd)
cargo build --release --locked -p flow-cli -p flow-bench >&2
flowc=$root/target/release/flowc
load=$root/target/release/flow-load
work=$(mktemp -d /tmp/flow-serve-bench.XXXXXX)
server=
trap 'if [ -n "$server" ]; then kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; fi; rm -rf "$work"' EXIT
cd "$work"
printf '[principals]\ncarl = ["clerk"]\nmax = ["manager"]\nolga = ["steward"]\nana = []\naud = ["auditor"]\n' > flow-principals.toml
printf '[serve]\ndeployers = ["steward"]\nmax_body = 1048576\n' > flow.toml
"$flowc" build "$root/bench/stores/review.flow" -o review.plan.json >/dev/null
plan=$root/runtime/benches/rules.plan.json
token() { "$flowc" token create --as "$1" 2>/dev/null; }
carl=$(token carl) max=$(token max) olga=$(token olga)

# Quiet: one log line per request would be most of the server's work here.
"$flowc" serve --listen 127.0.0.1:0 2> serve.log &
server=$!
address=
for _ in $(seq 600); do
  address=$(sed -n 's|^flowc: serving the API on http://\([^/]*\)/v1.*|\1|p' serve.log)
  [ -n "$address" ] && break
  sleep 0.1
done
[ -n "$address" ] || { cat serve.log >&2; exit 1; }
url=http://$address
install() { curl -sS -H "Authorization: Bearer $olga" -H 'Content-Type: application/json' --data-binary "@$1" "$url/v1/plans" | sed -E 's/.*"plan":"([^"]+)".*/\1/'; }
rules=$(install "$plan")
review=$(install review.plan.json)

row() { # JSON
  python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(f\"| {d['mode']} | {d['clients']} | {d['runs_per_s']:.0f} | {d['p50_ms']:.2f} | {d['p95_ms']:.2f} | {d['p99_ms']:.2f} | {d['errors']} |\")" "$1"
}
echo "| path | clients | started runs/s | p50 ms | p95 ms | p99 ms | errors |"
echo "|---|---|---|---|---|---|---|"
for clients in 1 16 128; do
  row "$("$load" http "$url" "$carl" "$rules" "$clients" "$S")"
  row "$("$load" in-process "$work/inproc-$clients.db" "$plan" "$clients" "$S")"
done
# The floor under every request: one that asks the runtime nothing (the caller, from its
# token), over the same connection, server and client.
row "$("$load" get "$url" "$carl" /v1/me 1 "$S")"

# A decision on a pending run while 16 clients start runs.
: > pending.txt
for i in $(seq 100); do
  curl -sS -H "Authorization: Bearer $carl" -H 'Content-Type: application/json' \
    -d "{\"plan\": \"$review\", \"inputs\": {\"request\": {\"id\": \"p$i\"}}}" "$url/v1/runs" \
    | sed -E 's/.*"run":"([^"]+)".*/\1/' >> pending.txt
  echo >> pending.txt
done
"$load" http "$url" "$carl" "$rules" 16 "$S" > under-load.json &
loader=$!
sleep 1
decisions=$("$load" decide "$url" "$max" pending.txt 20)
wait $loader
python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(f\"\ndecision over HTTP under load (16 clients starting runs): p50 {d['p50_ms']:.2f} ms, p95 {d['p95_ms']:.2f} ms, max {d['max_ms']:.2f} ms ({d['decisions']} decisions)\")" "$decisions"
