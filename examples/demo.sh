#!/usr/bin/env bash
# The spend approval example end to end, as its people would use it: compile the flow to a
# plan, start a run (it stops at a pending review), decide the review and the approval, and
# show the completed run; then export its evidence for an auditor and verify it, replay it,
# and see what another threshold would have changed.
#
# The run store, the principals and the deployment (`flow.toml`: a local model and a local
# ERP, both small Python programs) are this directory's: `.flow/runs.db`,
# `flow-principals.toml`, `flow.toml`.
set -euo pipefail
cd "$(dirname "$0")"
# The first build compiles every dependency (several minutes on two cores); cargo shows
# its progress.
echo "building flowc (release)…" >&2
cargo build --release -p flow-cli
flowc() { ../target/release/flowc "$@"; }
# Commands in bold on a terminal, plain when piped or with NO_COLOR set.
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
step() { printf '\n%s$ flowc %s%s\n' "$bold" "$*" "$plain"; flowc "$@"; }
run_of() { sed -E 's/.*"run":"([^"]+)".*/\1/'; }

mkdir -p .flow
# The flow's own tests (in the file, after the flow) run first, with the coverage of its branches.
step test spend_approval.flow --min-coverage 100
step build spend_approval.flow -o .flow/spend_approval.plan.json
# The run's clock is the current time (choosing another needs the flow's `set clock`
# grant), so the example's vendor record is stamped as updated an hour ago: fresh master
# data, as the vendor master would deliver it.
an_hour_ago=$(date -u -d '1 hour ago' +%Y-%m-%dT%H:%M:%SZ)
sed -E "s/\"updated_at\": \"[^\"]*\"/\"updated_at\": \"$an_hour_ago\"/" inputs/vendor.json > .flow/vendor.json
start=(run .flow/spend_approval.plan.json --input request=inputs/request.json --input vendor=.flow/vendor.json --as ana)
printf '\n%s$ flowc %s%s\n' "$bold" "${start[*]}" "$plain"
run=$(flowc "${start[@]}" --format json | run_of)
flowc status "$run"
step pending
step decide "$run" triage --as max --outcome approve --reason budget_ok --basis "Renewal is in this year's budget"
step decide "$run" spend --as mia --outcome approve --reason within_budget
step decide "$run" spend --as fin --outcome approve --reason within_budget
step show "$run" --as aud
step evidence "$run" --as aud -o ".flow/$run.evidence.json"
step verify ".flow/$run.evidence.json"
# The auditor replays the run from its evidence, then asks what a higher automatic limit
# would have changed.
step replay "$run" --as aud
step replay "$run" --as aud --set 'auto_limit=50000 USD'
