#!/bin/sh
# The store benchmark of docs/benchmarks.md, side by side in one run: stored runs per second
# of the rules-only benchmark flow on SQLite (one process) and on PostgreSQL with 1, 2 and 4
# worker processes (`flowc run --queue --detach`, then `flowc worker --until-idle`), the
# latency of a decision on a pending run under that load (`flow-decisions`), the database
# statements per stored run on PostgreSQL (pg_stat_statements), and bulk exact replay
# reading from PostgreSQL. Commits are durable: SQLite with synchronous=FULL, PostgreSQL with
# fsync and synchronous_commit on. PostgreSQL runs in a throwaway cluster in a temporary
# directory (as `nobody` when run as root), stopped at the end.
#
#   bench/stores/run.sh [CASES]      # default 20000 cases per pass
set -eu
N=${1:-20000}
root=$(cd "$(dirname "$0")/../.." && pwd)
cargo build --release --locked -p flow-cli -p flow-bench >&2
flowc=$root/target/release/flowc
bin=$(dirname "$(readlink -f "$(command -v pg_ctl || ls /usr/lib/postgresql/*/bin/pg_ctl | tail -1)")")
work=$(mktemp -d /tmp/flow-store-bench.XXXXXX)
chmod 755 "$work"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi; }
port=$((20000 + $$ % 20000))
mkdir "$work/pg" && chown "$(id -u nobody 2>/dev/null || id -u)" "$work/pg" 2>/dev/null || true
as_pg "$bin/initdb" -D "$work/pg/data" -U flow --auth=trust -E UTF8 >/dev/null
as_pg "$bin/pg_ctl" -D "$work/pg/data" -l "$work/pg/log" -w start \
  -o "-k $work/pg -p $port -c listen_addresses='' -c shared_preload_libraries=pg_stat_statements -c max_connections=100" >/dev/null
trap 'as_pg "$bin/pg_ctl" -D "$work/pg/data" -m fast stop >/dev/null; rm -rf "$work"' EXIT
server="host=$work/pg port=$port user=flow"
sql() { "$bin/psql" -qtAX -d "$server dbname=$1" -c "$2"; }

cd "$work"
printf '[principals]\ncarl = ["clerk"]\naud = ["auditor"]\nana = []\nmax = ["manager"]\n' > principals.toml
"$root/target/release/flow-cases" "$N" > cases.jsonl
"$flowc" build "$root/bench/stores/review.flow" -o review.plan.json >/dev/null
plan=$root/runtime/benches/rules.plan.json
now() { date +%s.%N; }
rate() { echo "$1 $2 $3" | awk '{ printf "%.0f", $1 / ($3 - $2) }'; }

# The probe: PROBES pending runs decided one every PAUSE ms while the load runs.
PROBES=100
PAUSE=20
probe() { # STORE
  "$root/target/release/flow-decisions" "$1" review.plan.json $PROBES $PAUSE > probe.json 2> probe.err &
  probe_pid=$!
  until grep -q "runs wait" probe.err 2>/dev/null; do
    kill -0 $probe_pid 2>/dev/null || { cat probe.err >&2; exit 2; }
    sleep 0.05
  done
}
latency() { # after `wait $probe_pid`, in this shell
  python3 -c "import json; d = json.load(open('probe.json')); print(f\"{d['p50_ms']:.1f} / {d['p95_ms']:.1f} ms\")" || cat probe.err >&2
}

echo "| store | processes | stored runs/s | decision p50 / p95 under load |"
echo "|---|---|---|---|"

# SQLite: one process, its threads (run --batch), durable commits.
probe "$work/runs.db"
start=$(now)
FLOW_STORE_SYNC_FULL=1 "$flowc" run "$plan" --batch cases.jsonl --as carl --store "$work/runs.db" \
  --principals principals.toml --format json > sqlite.json
end=$(now)
wait $probe_pid
echo "| SQLite (synchronous=FULL), \`run --batch\` | 1 | $(rate "$N" "$start" "$end") | $(latency) |"

# SQLite through the queue: one worker, whose runs are committed in groups.
"$flowc" run "$plan" --batch cases.jsonl --as carl --queue --detach --store "$work/queued.db" \
  --principals principals.toml --format json > queued.json
probe "$work/queued.db"
start=$(now)
FLOW_STORE_SYNC_FULL=1 "$flowc" worker --until-idle --store "$work/queued.db" --principals principals.toml > /dev/null
end=$(now)
wait $probe_pid
echo "| SQLite (synchronous=FULL), queue | 1 worker | $(rate "$N" "$start" "$end") | $(latency) |"

for W in 1 2 4; do
  sql postgres "CREATE DATABASE b$W" >/dev/null
  url="$server dbname=b$W"
  sql "b$W" "CREATE EXTENSION pg_stat_statements" >/dev/null
  "$flowc" run "$plan" --batch cases.jsonl --as carl --queue --detach --store "$url" \
    --principals principals.toml --format json > queued.json
  probe "$url"
  sql "b$W" "SELECT pg_stat_statements_reset()" >/dev/null
  start=$(now)
  pids=""
  for _ in $(seq "$W"); do
    "$flowc" worker --until-idle --store "$url" --principals principals.toml --format json > /dev/null &
    pids="$pids $!"
  done
  for pid in $pids; do wait "$pid"; done
  end=$(now)
  wait $probe_pid
  line="| PostgreSQL | $W worker$( [ "$W" = 1 ] || echo s) | $(rate "$N" "$start" "$end") | $(latency) |"
  echo "$line"
  calls=$(sql "b$W" "SELECT sum(calls) FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'b$W')")
  echo "$W $calls" >> statements.txt
done

echo
while read -r W calls; do
  echo "PostgreSQL, $W worker(s): $calls statements for $N stored runs and $PROBES decisions: $(echo "$calls $N" | awk '{ printf "%.1f", $1 / $2 }') per run"
done < statements.txt

start=$(now)
"$flowc" replay --all --as aud --store "$server dbname=b2" --principals principals.toml --format json > replay.json
end=$(now)
echo "Bulk exact replay from PostgreSQL: $(rate "$N" "$start" "$end") runs/s ($(python3 -c "import json; d = json.load(open('replay.json')); print({k: d[k] for k in d if k in ('runs', 'exact', 'changed')})"))"
