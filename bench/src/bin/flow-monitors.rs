//! The monitors' benchmark (`bench/monitors/run.sh`): builds a SQLite store of RUNS runs of
//! a plan with monitors, spread evenly over DAYS days of the runtime's clock (so that every
//! minute of every window has counts, as a busy flow's store has), then ROUNDS times starts
//! NEW more runs at the end and times the evaluation of every monitor that follows; then
//! ROUNDS evaluations with nothing new. Prints JSON: `{"runs", "new", "rounds", "build_s",
//! "new_runs_per_s", "after_new_p50_ms", "after_new_min_ms", "after_new_max_ms",
//! "idle_p50_ms", "monitors", "series"}`.
//!
//! `flow-monitors STORE.db PLAN.json RUNS NEW DAYS ROUNDS`

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use flow_ir::expr::Timestamp;
use flow_runtime::store::SqliteStore;
use flow_runtime::{Principal, Runtime, StartOptions};
use serde_json::{Value as Json, json};

/// When the store's history starts.
const T0: i64 = 1_800_000_000;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [store, plan, runs, new, days, rounds] => {
            let number = |text: &str| text.parse::<u64>().map_err(|_| format!("`{text}` is not a whole number"));
            (|| run(store, plan, number(runs)?, number(new)?, number(days)?, number(rounds)?))()
        }
        _ => Err("usage: flow-monitors STORE.db PLAN.json RUNS NEW DAYS ROUNDS".to_owned()),
    };
    match result {
        Ok(json) => {
            use std::io::Write;
            match writeln!(std::io::stdout(), "{json}") {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::from(1),
            }
        }
        Err(error) => {
            eprintln!("flow-monitors: {error}");
            ExitCode::from(2)
        }
    }
}

/// A request of the generated history: one in ten blocked, one in five waiting for review.
fn request(n: u64) -> Vec<(String, Json)> {
    let request = json!({"id": format!("R{n}"), "blocked": n % 10 == 3, "large": n % 5 == 1});
    vec![("request".to_owned(), request)]
}

fn run(store: &str, plan: &str, runs: u64, new: u64, days: u64, rounds: u64) -> Result<Json, String> {
    let opened = SqliteStore::open(std::path::Path::new(store)).map_err(|e| e.to_string())?;
    let mut runtime = Runtime::new(Box::new(opened));
    let now = Arc::new(AtomicI64::new(T0));
    let clock = now.clone();
    runtime.set_clock(Arc::new(move || Timestamp { seconds: clock.load(Ordering::Relaxed), nanos: 0 }));
    let bytes = std::fs::read(plan).map_err(|e| format!("cannot read `{plan}`: {e}"))?;
    let plan = flow_ir::load(&bytes).map_err(|e| format!("`{plan}` is not a plan: {e}"))?;
    let analysis = runtime.install(plan).map_err(|e| e.to_string())?;
    let clerk = Principal::new("carl", vec!["clerk".to_owned()]);
    let span = (days * 86_400) as i64;
    let start = |n: u64| -> Result<(), String> {
        now.store(T0 + (n as i64 * span) / (runs + new).max(1) as i64, Ordering::Relaxed);
        runtime.start(&analysis, &clerk, &request(n), &StartOptions::default()).map(|_| ()).map_err(|e| e.to_string())
    };
    let built = Instant::now();
    for n in 0..runs {
        start(n)?;
        if n % 100_000 == 99_999 {
            eprintln!("flow-monitors: {} runs stored ({:.0}s)", n + 1, built.elapsed().as_secs_f64());
        }
    }
    let build_s = built.elapsed().as_secs_f64();
    runtime.evaluate_monitors().map_err(|e| e.to_string())?;
    // ROUNDS times: NEW runs more at the end of the history, then one evaluation, timed.
    let mut after_new = Vec::new();
    let mut new_s = 0.0;
    let mut monitors = 0;
    for round in 0..rounds {
        let added = Instant::now();
        for n in runs + round * new..runs + (round + 1) * new {
            start(n)?;
        }
        new_s += added.elapsed().as_secs_f64();
        let at = Instant::now();
        let evaluation = runtime.evaluate_monitors().map_err(|e| e.to_string())?;
        after_new.push(at.elapsed().as_secs_f64() * 1000.0);
        monitors = evaluation.readings.len();
    }
    // And with nothing new.
    let mut idle = Vec::new();
    for _ in 0..rounds {
        let at = Instant::now();
        runtime.evaluate_monitors().map_err(|e| e.to_string())?;
        idle.push(at.elapsed().as_secs_f64() * 1000.0);
    }
    after_new.sort_by(f64::total_cmp);
    idle.sort_by(f64::total_cmp);
    let rows = runtime.store().monitor_totals().map_err(|e| e.to_string())?.len();
    Ok(json!({
        "runs": runs,
        "new": new,
        "rounds": rounds,
        "build_s": build_s,
        "new_runs_per_s": (new * rounds) as f64 / new_s,
        "after_new_p50_ms": after_new.get(after_new.len() / 2),
        "after_new_min_ms": after_new.first(),
        "after_new_max_ms": after_new.last(),
        "idle_p50_ms": idle.get(idle.len() / 2),
        "monitors": monitors,
        "series": rows,
    }))
}
