//! Benchmarks of the runtime on a rules-only flow of ten gates, one approval matrix and one
//! emit (`rules.flow`): a decision in process without a store (with each engine); a run stored durably in
//! SQLite (WAL); and a decision on a pending approval that completes the run.
//!
//! `cargo bench -p flow-runtime --bench runtime`; results in `docs/benchmarks.md`.

#![expect(clippy::unwrap_used, reason = "benchmarks fail loudly")]

use std::sync::Arc;

use flow_runtime::analysis::Analysis;
use flow_runtime::store::SqliteStore;
use flow_runtime::{DecisionInput, Principal, Runtime, StartOptions, Status};
use serde_json::{Value as Json, json};

fn main() {
    divan::main();
}

fn clerk() -> Principal {
    Principal::new("carl".to_owned(), vec!["clerk".to_owned()])
}

/// An application; `score` decides the matrix row (700 and more: automatic).
fn application(i: u64, score: i64) -> Vec<(String, Json)> {
    let segment = ["retail", "business", "corporate"][i as usize % 3];
    vec![(
        "app".to_owned(),
        json!({
            "id": format!("A{i}"), "applicant": "ana", "amount": format!("{}.00 USD", 1_000 + i % 40_000),
            "income": "80000.00 USD", "score": score, "segment": segment,
            "existing_debt": "12000.00 USD", "age_days": 400, "defaults": 0, "verified": true
        }),
    )]
}

fn runtime(store: &str) -> (Runtime, Arc<Analysis>) {
    let plan = flow_ir::load(include_bytes!("rules.plan.json")).unwrap();
    let runtime = Runtime::new(Box::new(SqliteStore::open(std::path::Path::new(store)).unwrap()));
    let analysis = runtime.install(plan).unwrap();
    (runtime, analysis)
}

fn options() -> StartOptions {
    StartOptions {
        clock: flow_ir::time::parse_timestamp("2026-11-30T10:00:00Z")
            .map(|(seconds, nanos)| flow_ir::expr::Timestamp { seconds, nanos }),
        params: Vec::new(),
    }
}

/// One decision in process, nothing stored: inputs read and checked, ten gates, the
/// matrix, the emit; with the interpreter step by step (the run's state, its first event),
/// with native code decided straight (`runtime/src/straight.rs`).
#[divan::bench(args = ["interp", "jit"], sample_count = 200, sample_size = 200)]
fn decision_in_process(bencher: divan::Bencher<'_, '_>, engine: &str) {
    let (mut runtime, analysis) = runtime(":memory:");
    runtime.set_engine(engine.parse().unwrap());
    let inputs = application(7, 750);
    let (who, options) = (clerk(), options());
    bencher.bench_local(|| {
        let view = runtime.evaluate(&analysis, &who, &inputs, &options).unwrap();
        assert_eq!(view.status, Status::Completed);
        view
    });
}

/// One run started and completed, stored durably: its chained events, record and head in
/// one SQLite transaction (WAL, `synchronous = NORMAL`) in a file on disk.
#[divan::bench(sample_count = 100, sample_size = 20)]
fn run_stored_in_sqlite(bencher: divan::Bencher<'_, '_>) {
    let dir = std::env::temp_dir().join(format!("flow-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (runtime, analysis) = runtime(dir.join("runs.db").to_str().unwrap());
    starts(bencher, &runtime, &analysis);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs started and completed on one thread and stored as `run_stored_in_sqlite` stores
/// them, `GROUP` at a time (`Runtime::start_all`): their commits in one transaction, each
/// run reported once the transaction is stored. Counted per run.
#[divan::bench(args = [16, 64, 256], sample_count = 50, sample_size = 4)]
fn runs_stored_in_groups(bencher: divan::Bencher<'_, '_>, group: usize) {
    let dir = std::env::temp_dir().join(format!("flow-bench-groups-{}-{group}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (runtime, analysis) = runtime(dir.join("runs.db").to_str().unwrap());
    let (who, options) = (clerk(), StartOptions::default());
    let mut i = 0;
    bencher.counter(divan::counter::ItemsCount::new(group)).bench_local(|| {
        let cases: Vec<_> = (0..group)
            .map(|_| {
                i += 1;
                application(i, 750)
            })
            .collect();
        for view in runtime.start_all(&analysis, &who, &cases, &options).unwrap() {
            assert_eq!(view.unwrap().status, Status::Completed);
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// As `run_stored_in_sqlite`, in an environment under release control: each start checks
/// that the plan is the one its flow's live release published (one indexed read of the
/// store's log) and records the release and the deployment's digest.
#[divan::bench(sample_count = 100, sample_size = 20)]
fn run_stored_under_release_control(bencher: divan::Bencher<'_, '_>) {
    use flow_runtime::release::{AuthorAlone, EnvironmentRule, Governance, Rule};
    let dir = std::env::temp_dir().join(format!("flow-bench-release-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (mut runtime, analysis) = runtime(dir.join("runs.db").to_str().unwrap());
    let governance = Governance {
        environments: vec![EnvironmentRule { name: "prod".to_owned(), controlled: true, approvals: Some(0) }],
        rules: vec![Rule {
            flows: vec!["*".to_owned()],
            folders: Vec::new(),
            authors: vec!["director".to_owned()],
            approvers: vec!["manager".to_owned()],
            approvals: 1,
            author_alone: AuthorAlone::Descriptions,
        }],
    };
    let control = flow_runtime::ReleaseControl {
        governance: Arc::new(governance),
        environment: Some("prod".to_owned()),
        store: None,
    };
    runtime.set_release_control(control).unwrap();
    let director = Principal::new("dora".to_owned(), vec!["director".to_owned()]);
    let proposal = flow_runtime::Proposal {
        plan: Some(analysis.plan.clone()),
        flow: None,
        environment: "prod",
        reason: "the benchmark's",
        source: None,
    };
    let release = runtime.propose(&director, proposal).unwrap();
    runtime.publish_release(&director, &release.id).unwrap();
    starts(bencher, &runtime, &analysis);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Stored runs started and completed, one per iteration, each its own application.
fn starts(bencher: divan::Bencher<'_, '_>, runtime: &Runtime, analysis: &Arc<Analysis>) {
    // A stored run's clock is the current time: choosing it needs a grant the flow gives no one.
    let (who, options) = (clerk(), StartOptions::default());
    let mut i = 0;
    bencher.bench_local(|| {
        i += 1;
        let view = runtime.start(analysis, &who, &application(i, 750), &options).unwrap();
        assert_eq!(view.status, Status::Completed);
    });
}

/// A decision on a pending approval that completes the run: the run loaded from SQLite and
/// its state rebuilt from its events, the decision checked, the rest executed, stored.
#[divan::bench(sample_count = 100, sample_size = 10)]
fn decision_completing_a_pending_run(bencher: divan::Bencher<'_, '_>) {
    let dir = std::env::temp_dir().join(format!("flow-bench-decide-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (runtime, analysis) = runtime(dir.join("runs.db").to_str().unwrap());
    // A stored run's clock is the current time: choosing it needs a grant the flow gives no one.
    let (who, options) = (clerk(), StartOptions::default());
    let manager = Principal::new("max".to_owned(), vec!["manager".to_owned()]);
    let approve =
        DecisionInput { outcome: "approve".to_owned(), reason: Some("ok".to_owned()), ..DecisionInput::default() };
    let mut i = 0;
    bencher
        .with_inputs(|| {
            i += 1;
            let view = runtime.start(&analysis, &who, &application(i, 650), &options).unwrap();
            assert_eq!(view.status, Status::Pending);
            view.run
        })
        .bench_local_refs(|run| {
            let view = runtime.decide(run, "sign", &manager, &approve).unwrap();
            assert_eq!(view.status, Status::Completed);
        });
    let _ = std::fs::remove_dir_all(&dir);
}
