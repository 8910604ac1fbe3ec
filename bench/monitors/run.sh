#!/bin/sh
# The monitors' benchmark of docs/benchmarks.md: a SQLite store of RUNS runs of
# `watched.flow` spread over 30 days of the runtime's clock; then ROUNDS times NEW runs more
# and the evaluation of its seven monitors that follows, timed; then ROUNDS evaluations with
# nothing new (release build).
#
#   bench/monitors/run.sh [RUNS] [NEW] [ROUNDS]     # default 1000000 10000 10
set -eu
RUNS=${1:-1000000}
NEW=${2:-10000}
ROUNDS=${3:-10}
root=$(cd "$(dirname "$0")/../.." && pwd)
cargo build --release --locked -p flow-cli -p flow-bench >&2
work=$(mktemp -d /tmp/flow-monitors-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$root/target/release/flowc" build "$root/bench/monitors/watched.flow" -o "$work/watched.plan.json" >/dev/null
"$root/target/release/flow-monitors" "$work/runs.db" "$work/watched.plan.json" "$RUNS" "$NEW" 30 "$ROUNDS"
# Beside it, what counting costs a start: NEW runs on a fresh store of the same flow
# without its monitors, then with them.
awk '/^  monitor /{skip=1; next} skip && /^    /{next} {skip=0; print}' "$root/bench/monitors/watched.flow" > "$work/unwatched.flow"
"$root/target/release/flowc" build "$work/unwatched.flow" -o "$work/unwatched.plan.json" >/dev/null
"$root/target/release/flow-monitors" "$work/without.db" "$work/unwatched.plan.json" 0 "$NEW" 30 1
"$root/target/release/flow-monitors" "$work/with.db" "$work/watched.plan.json" 0 "$NEW" 30 1
