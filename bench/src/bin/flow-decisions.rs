//! The decision probe of the store benchmark (`bench/stores/run.sh`): on the store given,
//! starts COUNT runs of a plan that waits for one review (`bench/stores/review.flow`,
//! built), then decides them one after another, every PAUSE milliseconds, while other
//! processes load the store, and prints the latency of a decision — from the call to the
//! committed result — as JSON: `{"decisions", "p50_ms", "p95_ms", "max_ms"}`.
//!
//! `flow-decisions STORE PLAN COUNT PAUSE_MS`, STORE a SQLite file or a PostgreSQL URL.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flow_runtime::store::{PostgresStore, SqliteStore, Store};
use flow_runtime::{DecisionInput, Principal, Runtime, StartOptions};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [store, plan, count, pause] = args.as_slice() else {
        eprintln!("usage: flow-decisions STORE PLAN COUNT PAUSE_MS");
        return ExitCode::from(2);
    };
    let (Ok(count @ 1..), Ok(pause)) = (count.parse::<usize>(), pause.parse::<u64>()) else {
        eprintln!("flow-decisions: COUNT (at least 1) and PAUSE_MS are whole numbers");
        return ExitCode::from(2);
    };
    match probe(store, plan, count, Duration::from_millis(pause)) {
        Ok(json) => {
            use std::io::Write;
            match writeln!(std::io::stdout(), "{json}") {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::from(1),
            }
        }
        Err(error) => {
            eprintln!("flow-decisions: {error}");
            ExitCode::from(2)
        }
    }
}

fn probe(store: &str, plan: &str, count: usize, pause: Duration) -> Result<serde_json::Value, String> {
    let opened: Box<dyn Store> = if store.starts_with("postgres") || store.contains("dbname=") {
        Box::new(PostgresStore::open(store).map_err(|e| e.to_string())?)
    } else {
        Box::new(SqliteStore::open(std::path::Path::new(store)).map_err(|e| e.to_string())?)
    };
    let runtime = Runtime::new(opened);
    let bytes = std::fs::read(plan).map_err(|e| format!("cannot read `{plan}`: {e}"))?;
    let plan = flow_ir::load(&bytes).map_err(|e| format!("`{plan}` is not a plan: {e}"))?;
    let analysis: Arc<_> = runtime.install(plan).map_err(|e| e.to_string())?;
    let clerk = Principal::new("carl", vec!["clerk".into()]);
    let manager = Principal::new("max", vec!["manager".into()]);
    let mut runs = Vec::with_capacity(count);
    for i in 0..count {
        let inputs = [("request".to_owned(), serde_json::json!({"id": format!("P{i}")}))];
        let view = runtime.start(&analysis, &clerk, &inputs, &StartOptions::default()).map_err(|e| e.to_string())?;
        runs.push(view.run);
    }
    // Ready: the load may start (the script waits for this line on standard error).
    eprintln!("flow-decisions: {count} runs wait");
    std::thread::sleep(pause);
    let input = DecisionInput { outcome: "approve".into(), reason: Some("ok".into()), basis: None, edits: Vec::new() };
    let mut latencies = Vec::with_capacity(count);
    for run in &runs {
        let started = Instant::now();
        runtime.decide(run, "check", &manager, &input).map_err(|e| e.to_string())?;
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        std::thread::sleep(pause);
    }
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    Ok(serde_json::json!({
        "decisions": latencies.len(), "p50_ms": at(0.5), "p95_ms": at(0.95), "max_ms": at(1.0),
    }))
}
