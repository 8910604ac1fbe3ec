#!/usr/bin/env bash
# Runs every fuzz target for SECONDS seconds each (default 15), from seed corpora made from
# the repository's own flows, plans, inputs and evidence (`fuzz/corpus`, not kept). Installs
# cargo-fuzz when it is missing. Without a sanitizer (`-s none`), so that it runs on a stable
# toolchain: libFuzzer still finds panics, hangs (`-timeout`) and runaway memory.
#
#   fuzz/run.sh            # 15 s each: the smoke run of the test command
#   fuzz/run.sh 3600       # an hour each
#   fuzz/run.sh 600 check  # one target
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-15}
only=${2:-}
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --version 0.13.2
fi

corpus=fuzz/corpus
rm -rf fuzz/artifacts
mkdir -p "$corpus"
flows=$(find tests/corpus examples -name '*.flow' -type f | sort)
for target in parse check format lsp_session; do
  mkdir -p "$corpus/$target"
  for f in $flows; do cp "$f" "$corpus/$target/$(echo "$f" | tr '/' '_')"; done
done
mkdir -p "$corpus/plan_load" "$corpus/evidence_verify" "$corpus/input_decode" "$corpus/json_exact" \
  "$corpus/lsp_transport" "$corpus/literals" "$corpus/conformance" "$corpus/release_log" "$corpus/retrieval_answer"
cp fuzz/seeds/releases/*.json "$corpus/release_log/"
cp fuzz/seeds/retrieval/*.json "$corpus/retrieval_answer/"
cp fuzz/seeds/*.plan.json runtime/benches/rules.plan.json "$corpus/plan_load/"
cp fuzz/seeds/evidence/*.json "$corpus/evidence_verify/"
for f in examples/inputs/*.json; do
  cp "$f" "$corpus/input_decode/$(basename "$f")"
  cp "$f" "$corpus/json_exact/$(basename "$f")"
done
python3 - "$corpus/conformance" fuzz/seeds/evidence/*.json <<'PY'
import json, sys
for i, path in enumerate(sys.argv[2:]):
    events = [e["event"] for e in json.load(open(path))["events"]]
    open(f"{sys.argv[1]}/events-{i}.json", "w").write(json.dumps(events))
PY
body='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}'
printf 'Content-Length: %d\r\n\r\n%s' "${#body}" "$body" > "$corpus/lsp_transport/initialize"
printf 'Content-Length: 3\r\n\r\nnot' > "$corpus/lsp_transport/malformed"
for literal in '2026-04-11T13:35:00Z' '2026-04-11T15:35:00.25+02:00' '0000-01-01' '72h' '7d' '12.50 EUR' '10_000 USD'; do
  printf '%s' "$literal" > "$corpus/literals/$(echo "$literal" | tr -c 'A-Za-z0-9' '_')"
done

targets=$(cargo fuzz list --fuzz-dir fuzz)
if [ -n "$only" ]; then targets=$only; fi
cargo fuzz build --fuzz-dir fuzz -s none
for target in $targets; do
  echo "== fuzz $target for ${seconds}s"
  cargo fuzz run --fuzz-dir fuzz -s none "$target" "$corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 2>&1 \
    | grep -E '^(Done|#[0-9]+ +DONE|stat::number_of_executed_units|==|SUMMARY|thread|panicked)' || true
  # A finding leaves an artifact and a non-zero status: fail.
  if [ -n "$(ls -A "fuzz/artifacts/$target" 2>/dev/null)" ]; then
    echo "fuzz target $target found a failure: fuzz/artifacts/$target" >&2
    exit 1
  fi
done
