//! Several runtimes on one store, as several processes are, on SQLite and on PostgreSQL: a
//! run executing in one is not changed by another (`E3005`, run-busy); of two changes of one
//! run made at once, the second to commit is refused whole (`E3009`, run-conflict) instead
//! of forking the run's history; a run whose process stopped renewing its lease is resumed
//! by exactly one other; and two runs racing on one idempotency key call the handler once.
//! Each runtime here has its own connection to the store, as a process has.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use flow_runtime::provider::{ActionHandler, ActionRequest, ModelProvider, ModelReply, ModelRequest, ProviderError};
use flow_runtime::store::{PostgresStore, SqliteStore, Store};
use flow_runtime::{DecisionInput, ErrorKind, Runtime, StartOptions, Status};
use serde_json::json;

use crate::guarantees::principal;

/// Deciding the review `first` calls the model, which (in the test) lets another process
/// decide the same review before the first process commits, as when two reviewers answer
/// at once.
const FLOW: &str = r#"
role clerk
role manager

type Request {
  id: Text
}

type Score {
  low: Bool
}

model scorer {
  provider "command"
  name "scorer"
  version "1.0.0"
  digest "sha256:0000000000000000000000000000000000000000000000000000000000000001"
  input (approved: Bool)
  output Score
}

flow twice {
  version "1.0.0"
  owner manager
  steward manager

  input request: Request
  output done: Bool

  access {
    trigger by clerk
  }

  review first by manager
    outcomes approve, reject
    reasons ok

  review second by manager
    outcomes approve, reject
    reasons ok

  infer score = scorer(approved: first.outcome == approve)
    fallback Score { low: false }

  gate doubtful: info when degraded(score)

  emit done = second.outcome == approve
}
"#;

/// A model whose call runs `meanwhile` once, as another process would act while this one
/// waits for the model.
struct Meanwhile(Mutex<Option<Box<dyn FnOnce() + Send>>>);

impl ModelProvider for Meanwhile {
    fn describe(&self) -> String {
        "a model that is slow enough for another process".to_owned()
    }

    fn infer(&self, _request: &ModelRequest<'_>) -> Result<ModelReply, ProviderError> {
        if let Some(act) = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
            act();
        }
        Ok(ModelReply { output: json!({"low": true}), attempts: 1 })
    }
}

fn store_path(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("flow-processes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a directory for the stores");
        dir
    });
    dir.join(name)
}

/// One store several runtimes open, as several processes would: a SQLite file, or a
/// PostgreSQL database.
#[derive(Clone, Debug)]
enum Shared {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Shared {
    fn open(&self) -> Box<dyn Store> {
        match self {
            Shared::Sqlite(path) => Box::new(SqliteStore::open(path).expect("the store opens")),
            Shared::Postgres(url) => Box::new(PostgresStore::open(url).expect("the store opens")),
        }
    }
}

/// A store named `name` on each kind: a SQLite file, and a PostgreSQL database when the
/// tests have a server.
fn shared(name: &str) -> Vec<Shared> {
    let mut stores = vec![Shared::Sqlite(store_path(&format!("{name}.db")))];
    stores.extend(crate::postgres::database(name).map(Shared::Postgres));
    stores
}

/// A runtime on `store`, with `model` as the flow's model.
fn runtime(store: &Shared, model: Arc<dyn ModelProvider>) -> (Runtime, Arc<flow_runtime::analysis::Analysis>) {
    runtime_on(store.open(), FLOW, model)
}

fn runtime_on(
    store: Box<dyn Store>,
    flow: &str,
    model: Arc<dyn ModelProvider>,
) -> (Runtime, Arc<flow_runtime::analysis::Analysis>) {
    let checked = crate::check_fixture("main.flow", flow.as_bytes());
    assert!(checked.clean(), "{}", checked.render());
    let plan = crate::plans(&checked).into_iter().flatten().next().expect("the flow compiles");
    let mut runtime = Runtime::new(store);
    runtime.register_model("scorer", model);
    let analysis = runtime.install(plan).expect("the plan installs");
    (runtime, analysis)
}

fn approve() -> DecisionInput {
    DecisionInput { outcome: "approve".to_owned(), reason: Some("ok".to_owned()), basis: None, edits: Vec::new() }
}

#[test]
fn of_two_changes_made_at_once_the_second_to_commit_is_refused() {
    for store in shared("conflict") {
        two_changes_at_once(&store);
    }
}

fn two_changes_at_once(path: &Shared) {
    let other: Arc<OnceLock<Runtime>> = Arc::new(OnceLock::new());
    let run_id: Arc<OnceLock<String>> = Arc::new(OnceLock::new());
    let decided_meanwhile = Arc::new(Mutex::new(None));
    let meanwhile = {
        let (other, run_id, decided) = (other.clone(), run_id.clone(), decided_meanwhile.clone());
        Meanwhile(Mutex::new(Some(Box::new(move || {
            let (Some(other), Some(run)) = (other.get(), run_id.get()) else { return };
            let result = other.decide(run, "first", &principal("mia", &["manager"]), &approve());
            *decided.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(result.map(|v| v.status));
        }))))
    };
    let (first, analysis) = runtime(path, Arc::new(meanwhile));
    let clerk = principal("cleo", &["clerk"]);
    let view = first.start(&analysis, &clerk, &[("request".to_owned(), json!({"id": "R1"}))], &StartOptions::default());
    let run = view.expect("the run starts").run;
    run_id.set(run.clone()).expect("set once");
    let second = runtime(path, Arc::new(Meanwhile(Mutex::new(None)))).0;
    assert!(other.set(second).is_ok());

    // Deciding `first` calls the model; meanwhile the other process decides `first` too.
    let refused = first.decide(&run, "first", &principal("max", &["manager"]), &approve());
    let meanwhile = decided_meanwhile.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
    assert_eq!(meanwhile.map(|r| r.map_err(|e| e.to_string())), Some(Ok(Status::Pending)), "the other decided first");
    let error = refused.expect_err("the second commit is refused");
    assert_eq!(error.kind(), ErrorKind::Conflict, "{error}");
    assert_eq!(error.code(), "E3009");

    // The run holds the other's decision, once, and not the refused one: it waits for
    // `second`, and asked again, the first process finds `first` decided.
    let now = other.get().expect("set").status(&run, None).expect("the run loads");
    assert_eq!(now.status, Status::Pending);
    assert_eq!(now.pending.iter().map(|p| p.0.as_str()).collect::<Vec<_>>(), ["second"]);
    let decisions = crate::guarantees::path(&first, &run);
    assert_eq!(decisions.iter().filter(|e| e.starts_with("review_decided")).count(), 1, "{decisions:?}");
    let again = first.decide(&run, "first", &principal("max", &["manager"]), &approve());
    assert_eq!(again.expect_err("decided already").kind(), ErrorKind::Settled);
    let done = first.decide(&run, "second", &principal("max", &["manager"]), &approve()).expect("decides");
    assert_eq!(done.status, Status::Completed);
}

/// While a process executes a run (here: calls its action's handler), another process's
/// change of it is refused as busy, naming the process and its lease; once the first has
/// finished, the run is settled, and the other sees it so.
#[test]
fn a_run_executing_in_another_process_is_not_changed() {
    for store in shared("busy") {
        let other: Arc<OnceLock<Runtime>> = Arc::new(OnceLock::new());
        let run_id: Arc<Mutex<Option<String>>> = Arc::default();
        let meanwhile_result = Arc::new(Mutex::new(None));
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let meanwhile: Box<dyn FnOnce() + Send> = {
            let (other, run_id, result) = (other.clone(), run_id.clone(), meanwhile_result.clone());
            Box::new(move || {
                let Some(other) = other.get() else { return };
                // The run's id is not known yet to whoever started it: the store has it.
                let run = other.store().runs(Some(Status::Running)).expect("lists").pop().expect("a run executes");
                *run_id.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(run.id.clone());
                let overridden = other.override_gate(&run.id, "g", &principal("cleo", &["clerk"]), "r", Some("b"));
                *result.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(overridden);
            })
        };
        let (first, analysis) = acting(&store, Slow::new(calls.clone(), Some(meanwhile)));
        assert!(other.set(acting(&store, Slow::new(calls.clone(), None)).0).is_ok());
        let inputs = [("key".to_owned(), json!("K-busy"))];
        let view = first.start(&analysis, &principal("cleo", &["clerk"]), &inputs, &StartOptions::default());
        assert_eq!(view.expect("the run completes").status, Status::Completed, "{store:?}");
        let meanwhile = meanwhile_result.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        let error = meanwhile.expect("the handler was called").expect_err("the run is busy");
        assert_eq!(error.kind(), ErrorKind::Busy, "{store:?}: {error}");
        assert!(error.to_string().contains("is executing in process "), "{error}");
        assert!(error.to_string().contains("its lease runs out in"), "{error}");
        let run = run_id.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone().expect("seen");
        let now = other.get().expect("set").status(&run, None).expect("loads");
        assert_eq!(now.status, Status::Completed, "{store:?}");
    }
}

/// A store that a test can cut off from its runtime, as a network partition or a dead
/// process would: every operation fails while it is cut.
struct Cuttable {
    inner: Box<dyn Store>,
    cut: Arc<std::sync::atomic::AtomicBool>,
}

mod cuttable {
    use flow_runtime::store::{
        ActionClaim, ActionResult, Commit, Held, Lease, QueuedBatch, QueuedCase, RawEvent, Refusal, Result, RunRecord,
        ShadowRecord, Signer, Store, StoreError, Waiting,
    };

    use super::Cuttable;

    impl Cuttable {
        fn reach(&self) -> Result<&dyn Store> {
            if self.cut.load(std::sync::atomic::Ordering::SeqCst) {
                Err(StoreError::Unusable("the store cannot be reached (cut by the test)".into()))
            } else {
                Ok(self.inner.as_ref())
            }
        }
    }

    impl Store for Cuttable {
        fn put_plan(&self, hash: &str, bytes: &[u8]) -> Result<()> {
            self.reach()?.put_plan(hash, bytes)
        }
        fn plan(&self, hash: &str) -> Result<Option<Vec<u8>>> {
            self.reach()?.plan(hash)
        }
        fn plans(&self) -> Result<Vec<String>> {
            self.reach()?.plans()
        }
        fn append_all(&self, commits: &[Commit<'_>]) -> Result<()> {
            self.reach()?.append_all(commits)
        }
        fn run(&self, id: &str) -> Result<Option<RunRecord>> {
            self.reach()?.run(id)
        }
        fn runs(&self, status: Option<flow_runtime::Status>) -> Result<Vec<RunRecord>> {
            self.reach()?.runs(status)
        }
        fn events(&self, run: &str) -> Result<Vec<RawEvent>> {
            self.reach()?.events(run)
        }
        fn scan_events(&self, f: &mut dyn FnMut(&str, Vec<RawEvent>) -> bool) -> Result<()> {
            self.reach()?.scan_events(f)
        }
        fn waiting(&self) -> Result<Vec<Waiting>> {
            self.reach()?.waiting()
        }
        fn pending_steps(&self) -> Result<Vec<flow_runtime::store::PendingStep>> {
            self.reach()?.pending_steps()
        }
        fn due_runs(&self, now: i64, after: Option<(i64, &str)>, limit: usize) -> Result<Vec<(String, i64)>> {
            self.reach()?.due_runs(now, after, limit)
        }
        fn action_result(&self, system: &str, key: &str) -> Result<Option<ActionResult>> {
            self.reach()?.action_result(system, key)
        }
        fn action_results(&self) -> Result<Vec<ActionResult>> {
            self.reach()?.action_results()
        }
        fn record_refusal(
            &self,
            refusal: [&str; 5],
            key: Option<Signer<'_>>,
            notices: &[flow_runtime::store::Notice],
        ) -> Result<()> {
            self.reach()?.record_refusal(refusal, key, notices)
        }
        fn refusals(&self) -> Result<Vec<Refusal>> {
            self.reach()?.refusals()
        }
        fn append_release(
            &self,
            entry: &flow_runtime::release::Entry,
            key: Option<Signer<'_>>,
            notices: &[flow_runtime::store::Notice],
        ) -> Result<()> {
            self.reach()?.append_release(entry, key, notices)
        }
        fn releases(&self, from: u64) -> Result<flow_runtime::store::ReleaseEntries> {
            self.reach()?.releases(from)
        }
        fn put_shadow(&self, shadow: &ShadowRecord, key: Option<Signer<'_>>) -> Result<()> {
            self.reach()?.put_shadow(shadow, key)
        }
        fn shadows(&self, run: Option<&str>) -> Result<Vec<ShadowRecord>> {
            self.reach()?.shadows(run)
        }
        fn log(&self) -> Result<Vec<flow_runtime::checkpoint::Entry>> {
            self.reach()?.log()
        }
        fn checkpoint(&self) -> Result<Option<flow_runtime::checkpoint::Checkpoint>> {
            self.reach()?.checkpoint()
        }
        fn claim_run(&self, run: &str, owner: &str, ttl_ms: i64) -> Result<Option<Lease>> {
            self.reach()?.claim_run(run, owner, ttl_ms)
        }
        fn claim_interrupted(&self, owner: &str, ttl_ms: i64) -> Result<Option<String>> {
            self.reach()?.claim_interrupted(owner, ttl_ms)
        }
        fn claim_action(&self, system: &str, key: &str, run: &str, owner: &str, ttl_ms: i64) -> Result<ActionClaim> {
            self.reach()?.claim_action(system, key, run, owner, ttl_ms)
        }
        fn renew(&self, owner: &str, held: &[Held], ttl_ms: i64) -> Result<()> {
            self.reach()?.renew(owner, held, ttl_ms)
        }
        fn release(&self, owner: &str, held: &[Held]) -> Result<()> {
            self.reach()?.release(owner, held)
        }
        fn enqueue(&self, batch: &QueuedBatch, cases: &[(u64, String)]) -> Result<()> {
            self.reach()?.enqueue(batch, cases)
        }
        fn batch(&self, id: &str) -> Result<Option<QueuedBatch>> {
            self.reach()?.batch(id)
        }
        fn take_cases(&self, owner: &str, ttl_ms: i64, limit: usize) -> Result<Vec<QueuedCase>> {
            self.reach()?.take_cases(owner, ttl_ms, limit)
        }
        fn finish_cases(&self, owner: &str, done: &[(String, u64, serde_json::Value)]) -> Result<()> {
            self.reach()?.finish_cases(owner, done)
        }
        fn outcomes(&self, batch: &str) -> Result<Vec<(u64, Option<serde_json::Value>)>> {
            self.reach()?.outcomes(batch)
        }
        fn take_deliveries(
            &self,
            endpoints: &[String],
            owner: &str,
            ttl_ms: i64,
            limit: usize,
        ) -> Result<Vec<flow_runtime::store::Delivery>> {
            self.reach()?.take_deliveries(endpoints, owner, ttl_ms, limit)
        }
        fn finish_delivery(
            &self,
            owner: &str,
            endpoint: &str,
            id: &str,
            attempt: &flow_runtime::store::Attempt,
        ) -> Result<()> {
            self.reach()?.finish_delivery(owner, endpoint, id, attempt)
        }
        fn deliveries(
            &self,
            state: Option<flow_runtime::store::DeliveryState>,
        ) -> Result<Vec<flow_runtime::store::Delivery>> {
            self.reach()?.deliveries(state)
        }
        fn is_empty(&self) -> Result<bool> {
            self.reach()?.is_empty()
        }
        fn monitor_window(&self, flow: &str, series: &str, after: i64) -> Result<(i64, i64)> {
            self.reach()?.monitor_window(flow, series, after)
        }
        fn monitor_totals(&self) -> Result<Vec<flow_runtime::store::Tally>> {
            self.reach()?.monitor_totals()
        }
        fn fold_monitor_counts(&self, before: i64) -> Result<()> {
            self.reach()?.fold_monitor_counts(before)
        }
        fn fold_monitor_pending(&self) -> Result<usize> {
            self.reach()?.fold_monitor_pending()
        }
        fn monitor_checks(&self, limit: usize) -> Result<Vec<(String, String, i64)>> {
            self.reach()?.monitor_checks(limit)
        }
        fn finish_monitor_check(&self, run: &str, tallies: &[flow_runtime::store::Tally]) -> Result<bool> {
            self.reach()?.finish_monitor_check(run, tallies)
        }
        fn raise_alert(
            &self,
            alert: &flow_runtime::store::Alert,
            notices: &[flow_runtime::store::Notice],
        ) -> Result<bool> {
            self.reach()?.raise_alert(alert, notices)
        }
        fn resolve_alert(
            &self,
            id: &str,
            at: &str,
            value: &str,
            notices: &[flow_runtime::store::Notice],
        ) -> Result<bool> {
            self.reach()?.resolve_alert(id, at, value, notices)
        }
        fn alerts(&self, open_only: bool, limit: usize) -> Result<Vec<flow_runtime::store::Alert>> {
            self.reach()?.alerts(open_only, limit)
        }
        fn import(&self, parts: &[flow_runtime::store::Part<'_>]) -> Result<()> {
            self.reach()?.import(parts)
        }
    }
}

/// A process cut off from the store while it executes a run (its action's handler is slow)
/// stops renewing its leases; once they have run out, of two other processes resuming
/// interrupted runs at once exactly one takes the run over and finishes it — calling the
/// handler again with the same idempotency key, as after a crash — and the cut-off process,
/// back, cannot commit over it: the run's history has one branch, and it verifies.
#[test]
fn a_process_that_stops_renewing_loses_its_run_to_exactly_one_other() {
    for store in shared("lease") {
        let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let resumed: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
        let others: Arc<OnceLock<[Runtime; 2]>> = Arc::new(OnceLock::new());
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let meanwhile: Box<dyn FnOnce() + Send> = {
            let (cut, resumed, others) = (cut.clone(), resumed.clone(), others.clone());
            Box::new(move || {
                let Some(others) = others.get() else { return };
                cut.store(true, std::sync::atomic::Ordering::SeqCst);
                // Longer than the lease: it runs out.
                std::thread::sleep(std::time::Duration::from_millis(600));
                let barrier = std::sync::Barrier::new(2);
                let outcomes: Vec<Vec<String>> = std::thread::scope(|scope| {
                    let racers: Vec<_> = others
                        .iter()
                        .map(|other| {
                            let barrier = &barrier;
                            scope.spawn(move || {
                                barrier.wait();
                                other.resume_interrupted().expect("resumes")
                            })
                        })
                        .collect();
                    racers.into_iter().map(|r| r.join().expect("no panic")).collect()
                });
                *resumed.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = outcomes;
                cut.store(false, std::sync::atomic::Ordering::SeqCst);
            })
        };
        let cuttable = Cuttable { inner: store.open(), cut: cut.clone() };
        let (mut first, analysis) = runtime_on(Box::new(cuttable), ACTING, Arc::new(Meanwhile(Mutex::new(None))));
        first.register_system("ledger", Arc::new(Slow::new(calls.clone(), Some(meanwhile))));
        first.set_lease(std::time::Duration::from_millis(300));
        let quick = || acting(&store, Slow::new(calls.clone(), None)).0;
        assert!(others.set([quick(), quick()]).is_ok());
        let inputs = [("key".to_owned(), json!("K-lease"))];
        let lost = first.start(&analysis, &principal("cleo", &["clerk"]), &inputs, &StartOptions::default());
        let error = lost.expect_err("the cut-off process cannot commit over the run taken from it");
        assert_eq!(error.kind(), ErrorKind::Conflict, "{store:?}: {error}");
        let resumed = resumed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let takers: Vec<&Vec<String>> = resumed.iter().filter(|r| !r.is_empty()).collect();
        assert_eq!(takers.len(), 1, "{store:?}: exactly one process resumed the run: {resumed:?}");
        let run = takers[0][0].clone();
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2, "called again, with the same key");
        let others = others.get().expect("set");
        let now = others[0].status(&run, None).expect("the run loads");
        assert_eq!(now.status, Status::Completed, "{store:?}");
        let path = crate::guarantees::path(&others[0], &run);
        assert_eq!(path.iter().filter(|e| e.starts_with("action_started")).count(), 2, "{path:?}");
        assert_eq!(path.iter().filter(|e| e.starts_with("action_completed")).count(), 1, "{path:?}");
        let audit = others[0].audit(None).expect("audits");
        assert!(audit.problems.is_empty(), "{store:?}: {:?}", audit.problems);
    }
}

/// Runs started together (`start_all`) are stored in one transaction, each reported only once
/// it is stored: a case that does not fit is reported and the others still start; when the
/// store cannot take the group, the error is returned and none of its runs is stored.
#[test]
fn runs_started_together_are_stored_together_or_not_at_all() {
    for store in shared("together") {
        let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let cuttable = Cuttable { inner: store.open(), cut: cut.clone() };
        let (runtime, analysis) = runtime_on(Box::new(cuttable), FLOW, Arc::new(Meanwhile(Mutex::new(None))));
        let clerk = principal("cleo", &["clerk"]);
        let case = |id: serde_json::Value| vec![("request".to_owned(), json!({ "id": id }))];
        let cases = [case(json!("T1")), case(json!(7)), case(json!("T2")), case(json!("T3"))];
        let started = runtime.start_all(&analysis, &clerk, &cases, &StartOptions::default()).expect("stored");
        assert_eq!(started.len(), 4, "{store:?}");
        let error = started[1].as_ref().expect_err("an id that is not text does not fit");
        assert_eq!(error.kind(), ErrorKind::Input, "{store:?}: {error}");
        for view in started.iter().filter_map(|r| r.as_ref().ok()) {
            assert_eq!(view.status, Status::Pending, "{store:?}");
            let now = runtime.status(&view.run, None).expect("the run is stored and loads");
            assert_eq!(now.status, Status::Pending, "{store:?}");
        }
        let stored = runtime.store().runs(None).expect("lists").len();
        assert_eq!(stored, 3, "{store:?}");

        cut.store(true, std::sync::atomic::Ordering::SeqCst);
        let lost =
            runtime.start_all(&analysis, &clerk, &[case(json!("T4")), case(json!("T5"))], &StartOptions::default());
        cut.store(false, std::sync::atomic::Ordering::SeqCst);
        let error = lost.expect_err("the store cannot take the group: nothing is reported started");
        assert_eq!(error.kind(), ErrorKind::Store, "{store:?}: {error}");
        assert_eq!(runtime.store().runs(None).expect("lists").len(), stored, "{store:?}: nothing of the group stored");
        let audit = runtime.audit(None).expect("audits");
        assert!(audit.problems.is_empty(), "{store:?}: {:?}", audit.problems);
    }
}

/// A flow whose action's idempotency key is an input: runs of the same key share one call.
const ACTING: &str = r#"
role clerk

type Receipt {
  id: Text
}

system ledger {
  action book(id: Text) -> Receipt
}

flow acting {
  version "1.0.0"
  owner clerk
  steward clerk

  input key: Text
  output receipt: Receipt?

  access {
    trigger by clerk
  }

  action booking = ledger.book(key)
    idempotency key

  emit receipt = booking
}
"#;

/// A handler that takes a while, counts its calls, and runs `meanwhile` during its first.
struct Slow {
    calls: Arc<std::sync::atomic::AtomicUsize>,
    meanwhile: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl Slow {
    fn new(calls: Arc<std::sync::atomic::AtomicUsize>, meanwhile: Option<Box<dyn FnOnce() + Send>>) -> Slow {
        Slow { calls, meanwhile: Mutex::new(meanwhile) }
    }
}

impl ActionHandler for Slow {
    fn describe(&self) -> String {
        "a slow ledger".to_owned()
    }

    fn call(&self, request: &ActionRequest<'_>) -> Result<serde_json::Value, String> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        match self.meanwhile.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
            Some(act) => act(),
            None => std::thread::sleep(std::time::Duration::from_millis(150)),
        }
        Ok(json!({"id": format!("R-{}", request.idempotency_key)}))
    }
}

/// A runtime of the acting flow on `store`, with `handler` as its ledger.
fn acting(store: &Shared, handler: Slow) -> (Runtime, Arc<flow_runtime::analysis::Analysis>) {
    let (mut runtime, analysis) = runtime_on(store.open(), ACTING, Arc::new(Meanwhile(Mutex::new(None))));
    runtime.register_system("ledger", Arc::new(handler));
    (runtime, analysis)
}

/// Runs in two processes racing on one idempotency key call the handler once: the second
/// waits for the first's claim and reuses its result.
#[test]
fn two_processes_racing_on_one_idempotency_key_call_the_handler_once() {
    for store in shared("racing_key") {
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let processes: Vec<_> = (0..2).map(|_| acting(&store, Slow::new(calls.clone(), None))).collect();
        for round in 0..5 {
            let before = calls.load(std::sync::atomic::Ordering::SeqCst);
            let barrier = std::sync::Barrier::new(2);
            let views: Vec<_> = std::thread::scope(|scope| {
                let racers: Vec<_> = processes
                    .iter()
                    .map(|(runtime, analysis)| {
                        let barrier = &barrier;
                        scope.spawn(move || {
                            barrier.wait();
                            let inputs = [("key".to_owned(), json!(format!("K{round}")))];
                            runtime.start(analysis, &principal("cleo", &["clerk"]), &inputs, &StartOptions::default())
                        })
                    })
                    .collect();
                racers.into_iter().map(|r| r.join().expect("no panic")).collect()
            });
            for view in &views {
                let view = view.as_ref().expect("the run completes");
                assert_eq!(view.status, Status::Completed, "{store:?}");
            }
            let called = calls.load(std::sync::atomic::Ordering::SeqCst) - before;
            assert_eq!(called, 1, "{store:?} round {round}: the handler was called {called} times");
        }
    }
}

/// The database restarts (its connections cut) while three workers run a queued batch, and
/// later stays away for a while: the workers' failed operations fail with a clear error,
/// reads go on over new connections, and once the workers have gone on, every case is done
/// once with one run each, every run finished, and every chain verifies.
#[test]
fn workers_survive_the_database_restarting_and_going_away() {
    let Some(cluster) = crate::postgres::Cluster::own("restart") else { return };
    let url = cluster.database();
    let options =
        flow_runtime::store::PostgresOptions { pool: 3, reconnect: std::time::Duration::from_secs(20), ca: None };
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let worker = || {
        let store = PostgresStore::open_with(&url, &options).expect("the store opens");
        let (mut runtime, analysis) = runtime_on(Box::new(store), ACTING, Arc::new(Meanwhile(Mutex::new(None))));
        runtime.register_system("ledger", Arc::new(Slow::new(calls.clone(), None)));
        runtime.set_lease(std::time::Duration::from_millis(500));
        (runtime, analysis)
    };
    let workers: Vec<_> = (0..3).map(|_| worker()).collect();
    let cases: Vec<(u64, String)> =
        (0..40).map(|n| (n, json!({"inputs": {"key": format!("K{}", n % 30)}}).to_string())).collect();
    let (first, analysis) = &workers[0];
    let batch = first
        .enqueue(
            analysis,
            &principal("cleo", &["clerk"]),
            &cases,
            &flow_runtime::BatchOptions { clock: None, durable: true },
        )
        .expect("queues");
    let directory = |id: &str| (id == "cleo").then(|| principal("cleo", &["clerk"]));
    let errors = std::sync::atomic::AtomicUsize::new(0);
    let finished = || first.batch_state(&batch).is_ok_and(|state| state.finished());
    std::thread::scope(|scope| {
        for (runtime, _) in &workers {
            let (errors, directory, finished) = (&errors, &directory, &finished);
            scope.spawn(move || {
                let started = std::time::Instant::now();
                while started.elapsed() < std::time::Duration::from_secs(90) {
                    // As a supervisor restarts a worker whose operation failed.
                    let worked = runtime.resume_interrupted().and_then(|_| runtime.work(directory, 2));
                    match worked {
                        Ok(0) if finished() => return,
                        Ok(0) => std::thread::sleep(std::time::Duration::from_millis(50)),
                        Ok(_) => {}
                        Err(error) => {
                            assert!(!error.to_string().is_empty());
                            errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            std::thread::sleep(std::time::Duration::from_millis(100));
                        }
                    }
                }
            });
        }
        // Mid-batch, the database restarts.
        while first.batch_state(&batch).map_or(0, |state| state.done) < 10 {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        cluster.ctl("restart").expect("the database restarts");
        let done = first.batch_state(&batch).map_or(0, |state| state.done);
        assert!(done < 40, "the batch was done before the database restarted");
    });
    // A connection the database dropped between operations is noticed and opened again
    // before the next; only an operation cut off in the middle fails (and is run again).
    eprintln!("operations cut off by the restart: {}", errors.load(std::sync::atomic::Ordering::Relaxed));
    let state = first.batch_state(&batch).expect("the batch is there");
    assert_eq!((state.done, state.cases), (40, 40), "{state:?}");
    assert!(state.refused.is_empty(), "{state:?}");
    assert_eq!(state.outcomes.get("completed"), Some(&40), "{state:?}");
    let runs = first.store().runs(None).expect("lists");
    assert_eq!(runs.len(), 40, "one run per case");
    let audit = first.audit(None).expect("audits");
    assert!(audit.problems.is_empty(), "{:?}", audit.problems);
    assert_eq!(first.store().action_results().expect("lists").len(), 30, "one result per key");

    // The database goes away: an operation is tried again for as long as the store was told,
    // then fails with a clear error; once the database is back, it works again.
    let brief =
        flow_runtime::store::PostgresOptions { pool: 1, reconnect: std::time::Duration::from_millis(800), ca: None };
    let (runtime, analysis) = runtime_on(
        Box::new(PostgresStore::open_with(&url, &brief).expect("opens")),
        ACTING,
        Arc::new(Meanwhile(Mutex::new(None))),
    );
    cluster.ctl("stop").expect("the database stops");
    let inputs = [("key".to_owned(), json!("K-away"))];
    let away = runtime.start(&analysis, &principal("cleo", &["clerk"]), &inputs, &StartOptions::default());
    let error = away.expect_err("no database, no run");
    assert_eq!(error.code(), "E3008", "{error}");
    assert!(error.to_string().contains("cannot connect to the run store"), "{error}");
    assert!(error.to_string().contains("tried again for"), "{error}");
    assert!(!error.to_string().contains("password"), "{error}");
    cluster.ctl("start").expect("the database starts again");
    let back = runtime.start(&analysis, &principal("cleo", &["clerk"]), &inputs, &StartOptions::default());
    assert_eq!(back.expect("the run starts once the database is back").status, Status::Failed);
}

/// In a deployment that signs, a worker runs a queued case only as it was queued: someone
/// who can write the store and changes a case's inputs, or queues a batch of their own for
/// whom they please, gets the case refused as changed — no run is started, signed by the
/// deployment, that nobody asked for.
#[test]
fn a_queued_case_changed_or_forged_in_the_store_is_not_run() {
    let path = store_path("sealed.db");
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (mut runtime, analysis) = acting(&Shared::Sqlite(path.clone()), Slow::new(calls.clone(), None));
    let seed = "07".repeat(32);
    runtime.set_signing_key(flow_runtime::evidence::signing_key(&seed).expect("a key"));
    let cases: Vec<(u64, String)> = ["K-s1", "K-s2"]
        .iter()
        .enumerate()
        .map(|(n, key)| (n as u64, json!({"inputs": {"key": key}}).to_string()))
        .collect();
    let options = flow_runtime::BatchOptions { clock: None, durable: true };
    let batch = runtime.enqueue(&analysis, &principal("cleo", &["clerk"]), &cases, &options).expect("queues");
    let db = rusqlite::Connection::open(&path).expect("the store opens");
    let changed = db
        .execute("UPDATE queue SET body = replace(body, 'K-s2', 'K-evil') WHERE batch = ?1 AND n = 1", [&batch])
        .expect("changes a case");
    assert_eq!(changed, 1);
    db.execute_batch(&format!(
        "INSERT INTO batches SELECT 'b-forged', plan, principal, options, created, 1 FROM batches WHERE id = '{batch}';
         INSERT INTO queue (batch, n, body) VALUES ('b-forged', 0, '{{\"case\": \"{{\\\"inputs\\\": {{\\\"key\\\": \\\"K-forged\\\"}}}}\", \"signature\": null}}');"
    ))
    .expect("forges a batch");
    drop(db);
    let directory = |id: &str| (id == "cleo").then(|| principal("cleo", &["clerk"]));
    while runtime.work(&directory, 8).expect("works") > 0 {}
    let state = runtime.batch_state(&batch).expect("the batch");
    assert_eq!(state.outcomes.get("completed"), Some(&1), "{state:?}");
    assert!(
        state.refused.len() == 1 && state.refused[0].1.contains("not signed by a key this deployment trusts"),
        "{state:?}"
    );
    let forged = runtime.batch_state("b-forged").expect("the forged batch");
    assert!(forged.refused.len() == 1 && forged.refused[0].1.contains("the store was changed"), "{forged:?}");
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1, "only the case as queued acted");
    assert_eq!(runtime.store().runs(None).expect("lists").len(), 1, "no run was started for a changed case");
}
