#!/usr/bin/env bash
# A change of the spend approval reaching production through releases (docs/releases.md):
# a deployment that is `prod` refuses runs of a flow nobody released; the steward proposes
# the flow in dev and publishes it alone, promotes it to staging (one compliance officer
# approves) and to prod (a compliance officer and the CFO approve, never the steward);
# prod then runs that version, and each run names its release. The release log is exported
# and verified without the store. Then a version that says `migrate waiting` is released
# while the run waits: at its next decision the run continues on it.
#
# The publishing rules are `flow-governance.toml`; the prod deployment is written to
# `.flow/release/flow.toml` (this directory's `flow.toml`, with `[release] environment =
# "prod"`), its store `.flow/release/runs.db`, started afresh each time.
set -euo pipefail
cd "$(dirname "$0")"
# `FLOWC` names a flowc already built; otherwise it is built (release).
if [ -z "${FLOWC:-}" ]; then
  echo "building flowc (release)…" >&2
  cargo build --release -p flow-cli
  FLOWC=../target/release/flowc
fi
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
dir=.flow/release
rm -rf "$dir"
mkdir -p "$dir"
# The deployment's models and systems, run from this directory; the environment it is.
sed -E 's#"(models|handlers)/#"../../\1/#' flow.toml > "$dir/flow.toml"
printf '\n[release]\nenvironment = "prod"\ngovernance = "../../flow-governance.toml"\n' >> "$dir/flow.toml"
flowc() { "$FLOWC" "$@" --config "$dir/flow.toml" --store "$dir/runs.db" --principals flow-principals.toml; }
step() { printf '\n%s$ flowc %s%s\n' "$bold" "$*" "$plain"; flowc "$@"; }
an_hour_ago=$(date -u -d '1 hour ago' +%Y-%m-%dT%H:%M:%SZ)
sed -E "s/\"updated_at\": \"[^\"]*\"/\"updated_at\": \"$an_hour_ago\"/" inputs/vendor.json > "$dir/vendor.json"
start=(run spend_approval.flow --input request=inputs/request.json --input "vendor=$dir/vendor.json" --as ana)

# Nothing is released: prod refuses the run, and records the refusal.
printf '\n%s$ flowc %s%s\n' "$bold" "${start[*]}" "$plain"
if flowc "${start[@]}"; then echo "prod ran an unreleased flow" >&2; exit 1; fi

step release propose spend_approval.flow --env dev --as pat --reason "Auto-approve renewals under 10,000 USD"
step release publish rel-1 --as pat
step release propose --flow spend_approval --env staging --as pat --reason "Promote after the dev trial"
printf '\n%s# the steward may not approve their own release (four eyes): refused and recorded%s\n' "$bold" "$plain"
if flowc release approve rel-2 --as pat --reason "mine"; then echo "the author approved" >&2; exit 1; fi
step release approve rel-2 --as cleo --reason "Matches spending policy 4.2"
step release publish rel-2 --as pat
step release propose --flow spend_approval --env prod --as pat --reason "Promote: staging ran clean for a week"
step release approve rel-3 --as cleo --reason "Compliance: policy 4.2"
step release approve rel-3 --as cfo --reason "Finance: limits as budgeted"
step release publish rel-3 --as pat

# Prod now runs the published version; the run names its release and approvers.
printf '\n%s$ flowc %s%s\n' "$bold" "${start[*]}" "$plain"
run=$(flowc "${start[@]}" --format json | sed -E 's/.*"run":"([^"]+)".*/\1/')
step evidence "$run" --as aud -o "$dir/$run.evidence.json"
python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["events"][0]["event"]["release"], indent=2))' "$dir/$run.evidence.json"
step release log
step release log --export "$dir/releases.json" --as aud
printf '\n%s$ flowc verify %s%s\n' "$bold" "$dir/releases.json" "$plain"
"$FLOWC" verify "$dir/releases.json"
step refusals

# The run waits for its manager's triage on 2.1.0. Version 2.2.0 lowers the `large` threshold and
# says `migrate waiting`: once it is live in prod, the waiting run moves to it at its next
# decision, and its evidence says so (docs/releases.md, "Waiting runs and a new version").
# (`large` already ran for this run: only the steps after the triage run as 2.2.0 says.)
step status "$run"
mkdir -p "$dir/next"
cp -r common prompts "$dir/next/"
sed -e 's/version "2.1.0"/version "2.2.0"/' \
    -e 's/^  steward policy_steward$/  steward policy_steward\n  migrate waiting/' \
    -e 's/gate large: info when request.amount > 50_000 USD/gate large: info when request.amount > 40_000 USD/' \
    spend_approval.flow > "$dir/next/spend_approval.flow"
step diff spend_approval.flow "$dir/next/spend_approval.flow" || [ $? -eq 3 ]
step release propose "$dir/next/spend_approval.flow" --env dev --as pat --reason "Flag large purchases from 40,000 USD"
step release publish rel-4 --as pat
flowc release propose --flow spend_approval --env staging --as pat --reason "Promote" > /dev/null
flowc release approve rel-5 --as cleo --reason "Policy 4.3" > /dev/null
flowc release publish rel-5 --as pat > /dev/null
flowc release propose --flow spend_approval --env prod --as pat --reason "Promote" > /dev/null
flowc release approve rel-6 --as cleo --reason "Policy 4.3" > /dev/null
flowc release approve rel-6 --as cfo --reason "Limits unchanged" > /dev/null
step release publish rel-6 --as pat
step decide "$run" triage --as max --outcome approve --reason budget_ok
printf '\n%s$ flowc show %s --as aud | grep MIGRATED%s\n' "$bold" "$run" "$plain"
flowc show "$run" --as aud | grep MIGRATED
step evidence "$run" --as aud -o "$dir/$run.evidence.json"
printf '\n%s$ flowc verify %s%s\n' "$bold" "$dir/$run.evidence.json" "$plain"
"$FLOWC" verify "$dir/$run.evidence.json"
step replay "$run" --as aud
