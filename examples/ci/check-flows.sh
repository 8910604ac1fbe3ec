#!/usr/bin/env bash
# The checks of a repository of flows, as CI runs them (examples/ci/flows.yml, docs/ci.md):
#
#   check-flows.sh FLOWS MIN_COVERAGE [FLOW_FILE=APPROVED_PLAN…]
#
# Writes `flows.sarif` (every diagnostic, for code scanning) and `flow-tests.xml` (JUnit) in
# the working directory, then fails on the first problem: an error or warning, a file not
# formatted as `flowc fmt` formats it, a failing test, a run whose decision trace differs from its snapshot (`FLOW_FILE.snap`), coverage
# below MIN_COVERAGE percent, or a flow whose meaning changed since its plan was approved. `FLOWC` names the `flowc` to use (default: the one on the PATH).
set -uo pipefail
flowc="${FLOWC:-flowc}"
if [ $# -lt 2 ]; then
  echo "usage: check-flows.sh FLOWS MIN_COVERAGE [FLOW_FILE=APPROVED_PLAN…]" >&2
  exit 2
fi
flows="$1"
min_coverage="$2"
shift 2

"$flowc" check --format sarif "$flows" > flows.sarif
"$flowc" test "$flows" --format junit > flow-tests.xml

set -e
echo "== check (warnings are errors)"
"$flowc" check --strict "$flows"
echo "== formatting"
"$flowc" fmt --check "$flows"
echo "== test (coverage of at least $min_coverage%, traces as in their snapshots)"
"$flowc" test "$flows" --min-coverage "$min_coverage" --snapshot
echo "== approved plans"
for pair in "$@"; do
  flow="${pair%%=*}"
  plan="${pair#*=}"
  # Exit 3: the flow's meaning changed since its plan was approved.
  "$flowc" diff "$plan" "$flow"
done
