//! Every store passes the store suite (`flow_runtime::store::suite`): SQLite on a file and
//! PostgreSQL, each through several handles at once as several processes would hold it.

use crate::postgres;

#[test]
fn sqlite_passes_the_store_suite() {
    let dir = std::env::temp_dir().join(format!("flow-store-suite-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("runs.db");
    let open = || -> flow_runtime::store::Result<Box<dyn flow_runtime::store::Store>> {
        Ok(Box::new(flow_runtime::store::SqliteStore::open(&path)?))
    };
    let failures = flow_runtime::store::suite::check(&open);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn postgres_passes_the_store_suite() {
    let Some(database) = postgres::database("suite") else { return };
    let open = || -> flow_runtime::store::Result<Box<dyn flow_runtime::store::Store>> {
        Ok(Box::new(flow_runtime::store::PostgresStore::open(&database)?))
    };
    let failures = flow_runtime::store::suite::check(&open);
    assert!(failures.is_empty(), "{failures:#?}");
}

/// A store that breaks one promise of the contract.
struct Mutant {
    inner: flow_runtime::store::SqliteStore,
    breaks: Promise,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Promise {
    /// Takes an append whatever the run's events are.
    Ordering,
    /// Reads every run to the end, asked to stop or not.
    Stopping,
    /// Forgets the checkpoint.
    Checkpoint,
    /// Lets anyone claim a run, leased or not.
    Lease,
    /// Lets every call claim an action key that has no result.
    ActionKey,
}

mod mutant {
    use flow_runtime::store::{
        ActionClaim, ActionResult, Commit, Held, Lease, QueuedBatch, QueuedCase, RawEvent, Refusal, Result, RunRecord,
        ShadowRecord, Signer, Store, StoreError, Waiting,
    };

    use super::{Mutant, Promise};

    impl Store for Mutant {
        fn put_plan(&self, hash: &str, bytes: &[u8]) -> Result<()> {
            self.inner.put_plan(hash, bytes)
        }
        fn plan(&self, hash: &str) -> Result<Option<Vec<u8>>> {
            self.inner.plan(hash)
        }
        fn plans(&self) -> Result<Vec<String>> {
            self.inner.plans()
        }
        fn append_all(&self, commits: &[Commit<'_>]) -> Result<()> {
            match self.inner.append_all(commits) {
                Err(StoreError::Conflict(_)) if self.breaks == Promise::Ordering => Ok(()),
                other => other,
            }
        }
        fn run(&self, id: &str) -> Result<Option<RunRecord>> {
            self.inner.run(id)
        }
        fn runs(&self, status: Option<flow_runtime::Status>) -> Result<Vec<RunRecord>> {
            self.inner.runs(status)
        }
        fn events(&self, run: &str) -> Result<Vec<RawEvent>> {
            self.inner.events(run)
        }
        fn scan_events(&self, f: &mut dyn FnMut(&str, Vec<RawEvent>) -> bool) -> Result<()> {
            let stopping = self.breaks != Promise::Stopping;
            self.inner.scan_events(&mut |run, events| f(run, events) || !stopping)
        }
        fn waiting(&self) -> Result<Vec<Waiting>> {
            self.inner.waiting()
        }
        fn pending_steps(&self) -> Result<Vec<flow_runtime::store::PendingStep>> {
            self.inner.pending_steps()
        }
        fn due_runs(&self, now: i64, after: Option<(i64, &str)>, limit: usize) -> Result<Vec<(String, i64)>> {
            self.inner.due_runs(now, after, limit)
        }
        fn action_result(&self, system: &str, key: &str) -> Result<Option<ActionResult>> {
            self.inner.action_result(system, key)
        }
        fn action_results(&self) -> Result<Vec<ActionResult>> {
            self.inner.action_results()
        }
        fn record_refusal(
            &self,
            refusal: [&str; 5],
            key: Option<Signer<'_>>,
            notices: &[flow_runtime::store::Notice],
        ) -> Result<()> {
            self.inner.record_refusal(refusal, key, notices)
        }
        fn refusals(&self) -> Result<Vec<Refusal>> {
            self.inner.refusals()
        }
        fn append_release(
            &self,
            entry: &flow_runtime::release::Entry,
            key: Option<Signer<'_>>,
            notices: &[flow_runtime::store::Notice],
        ) -> Result<()> {
            self.inner.append_release(entry, key, notices)
        }
        fn releases(&self, from: u64) -> Result<flow_runtime::store::ReleaseEntries> {
            self.inner.releases(from)
        }
        fn put_shadow(&self, shadow: &ShadowRecord, key: Option<Signer<'_>>) -> Result<()> {
            self.inner.put_shadow(shadow, key)
        }
        fn shadows(&self, run: Option<&str>) -> Result<Vec<ShadowRecord>> {
            self.inner.shadows(run)
        }
        fn log(&self) -> Result<Vec<flow_runtime::checkpoint::Entry>> {
            self.inner.log()
        }
        fn checkpoint(&self) -> Result<Option<flow_runtime::checkpoint::Checkpoint>> {
            if self.breaks == Promise::Checkpoint { Ok(None) } else { self.inner.checkpoint() }
        }
        fn claim_run(&self, run: &str, owner: &str, ttl_ms: i64) -> Result<Option<Lease>> {
            match self.inner.claim_run(run, owner, ttl_ms)? {
                Some(_) if self.breaks == Promise::Lease => Ok(None),
                other => Ok(other),
            }
        }
        fn claim_interrupted(&self, owner: &str, ttl_ms: i64) -> Result<Option<String>> {
            self.inner.claim_interrupted(owner, ttl_ms)
        }
        fn claim_action(&self, system: &str, key: &str, run: &str, owner: &str, ttl_ms: i64) -> Result<ActionClaim> {
            match self.inner.claim_action(system, key, run, owner, ttl_ms)? {
                ActionClaim::Held(_) if self.breaks == Promise::ActionKey => Ok(ActionClaim::Claimed),
                other => Ok(other),
            }
        }
        fn renew(&self, owner: &str, held: &[Held], ttl_ms: i64) -> Result<()> {
            self.inner.renew(owner, held, ttl_ms)
        }
        fn release(&self, owner: &str, held: &[Held]) -> Result<()> {
            self.inner.release(owner, held)
        }
        fn enqueue(&self, batch: &QueuedBatch, cases: &[(u64, String)]) -> Result<()> {
            self.inner.enqueue(batch, cases)
        }
        fn batch(&self, id: &str) -> Result<Option<QueuedBatch>> {
            self.inner.batch(id)
        }
        fn take_cases(&self, owner: &str, ttl_ms: i64, limit: usize) -> Result<Vec<QueuedCase>> {
            self.inner.take_cases(owner, ttl_ms, limit)
        }
        fn finish_cases(&self, owner: &str, done: &[(String, u64, serde_json::Value)]) -> Result<()> {
            self.inner.finish_cases(owner, done)
        }
        fn outcomes(&self, batch: &str) -> Result<Vec<(u64, Option<serde_json::Value>)>> {
            self.inner.outcomes(batch)
        }
        fn take_deliveries(
            &self,
            endpoints: &[String],
            owner: &str,
            ttl_ms: i64,
            limit: usize,
        ) -> Result<Vec<flow_runtime::store::Delivery>> {
            self.inner.take_deliveries(endpoints, owner, ttl_ms, limit)
        }
        fn finish_delivery(
            &self,
            owner: &str,
            endpoint: &str,
            id: &str,
            attempt: &flow_runtime::store::Attempt,
        ) -> Result<()> {
            self.inner.finish_delivery(owner, endpoint, id, attempt)
        }
        fn deliveries(
            &self,
            state: Option<flow_runtime::store::DeliveryState>,
        ) -> Result<Vec<flow_runtime::store::Delivery>> {
            self.inner.deliveries(state)
        }
        fn is_empty(&self) -> Result<bool> {
            self.inner.is_empty()
        }
        fn monitor_window(&self, flow: &str, series: &str, after: i64) -> Result<(i64, i64)> {
            self.inner.monitor_window(flow, series, after)
        }
        fn monitor_totals(&self) -> Result<Vec<flow_runtime::store::Tally>> {
            self.inner.monitor_totals()
        }
        fn fold_monitor_counts(&self, before: i64) -> Result<()> {
            self.inner.fold_monitor_counts(before)
        }
        fn fold_monitor_pending(&self) -> Result<usize> {
            self.inner.fold_monitor_pending()
        }
        fn monitor_checks(&self, limit: usize) -> Result<Vec<(String, String, i64)>> {
            self.inner.monitor_checks(limit)
        }
        fn finish_monitor_check(&self, run: &str, tallies: &[flow_runtime::store::Tally]) -> Result<bool> {
            self.inner.finish_monitor_check(run, tallies)
        }
        fn raise_alert(
            &self,
            alert: &flow_runtime::store::Alert,
            notices: &[flow_runtime::store::Notice],
        ) -> Result<bool> {
            self.inner.raise_alert(alert, notices)
        }
        fn resolve_alert(
            &self,
            id: &str,
            at: &str,
            value: &str,
            notices: &[flow_runtime::store::Notice],
        ) -> Result<bool> {
            self.inner.resolve_alert(id, at, value, notices)
        }
        fn alerts(&self, open_only: bool, limit: usize) -> Result<Vec<flow_runtime::store::Alert>> {
            self.inner.alerts(open_only, limit)
        }
        fn import(&self, parts: &[flow_runtime::store::Part<'_>]) -> Result<()> {
            self.inner.import(parts)
        }
    }
}

/// The suite is not a formality: a store that breaks one promise fails the checks of it.
#[test]
fn a_store_that_breaks_a_promise_fails_the_suite() {
    for (breaks, check) in [
        (Promise::Ordering, "an append that expects other events writes nothing"),
        (Promise::Stopping, "reading every run visits them in order"),
        (Promise::Checkpoint, "the log covers every change"),
        (Promise::Lease, "a run's lease is its holder's until it runs out"),
        (Promise::ActionKey, "two handles racing for an action key"),
    ] {
        let dir = std::env::temp_dir().join(format!("flow-store-mutant-{}-{breaks:?}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("runs.db");
        let open = || -> flow_runtime::store::Result<Box<dyn flow_runtime::store::Store>> {
            Ok(Box::new(Mutant { inner: flow_runtime::store::SqliteStore::open(&path)?, breaks }))
        };
        let failures = flow_runtime::store::suite::check(&open);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(failures.iter().any(|f| f.starts_with(check)), "{breaks:?}: {failures:#?}");
    }
}

/// A store's URL is shown without its password, in every error that names it.
#[test]
fn a_stores_password_is_never_shown() {
    use flow_runtime::store::shown_url;
    for (url, shown) in [
        ("postgres://ana:s3cret@db.example:5432/flows", "postgres://ana:***@db.example:5432/flows"),
        ("postgresql://ana:s3cret@db/flows?sslmode=require", "postgres://ana:***@db:5432/flows"),
        ("postgres://ana@db/flows?password=s3cret", "postgres://ana:***@db:5432/flows"),
        ("postgres://ana:s3cr%2Fet@db/flows", "postgres://ana:***@db:5432/flows"),
        ("postgres://ana@db/flows", "postgres://ana@db:5432/flows"),
        ("postgres://db", "postgres://db:5432"),
        ("host=db user=ana password=s3cret dbname=flows", "postgres://ana:***@db/flows"),
        ("host=db user=ana password = 's3cret and more' dbname=flows", "postgres://ana:***@db/flows"),
        ("host=/run/pg port=5433 user=ana password=s3cret dbname=flows", "postgres://ana:***@/run/pg:5433/flows"),
        ("host='db user=ana password=s3cret", "(a connection string that does not parse; not shown)"),
    ] {
        assert_eq!(shown_url(url), shown, "{url}");
    }
    let options =
        flow_runtime::store::PostgresOptions { pool: 1, reconnect: std::time::Duration::from_millis(300), ca: None };
    let refused = flow_runtime::store::PostgresStore::open_with("postgres://ana:s3cret@127.0.0.1:1/flows", &options);
    let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("postgres://ana:***@127.0.0.1:1/flows") && !message.contains("s3cret"), "{message}");
}

/// A database that holds tables of a run store's names that are not a run store's, or a
/// store of another schema version, is refused when opened, and left as it was.
#[test]
fn postgres_refuses_a_database_that_is_not_its_store() {
    let Some(database) = postgres::database("foreign") else { return };
    let mut client = ::postgres::Client::connect(&database, ::postgres::NoTls).expect("connects");
    client.batch_execute("CREATE TABLE flow_runs (x INTEGER)").expect("creates");
    let refused = flow_runtime::store::PostgresStore::open(&database).err().map(|e| e.to_string());
    assert!(refused.as_deref().is_some_and(|m| m.contains("belong to something else")), "{refused:?}");
    let made: i64 = client
        .query_one("SELECT count(*) FROM information_schema.tables WHERE table_name LIKE 'flow%'", &[])
        .expect("counts")
        .get(0);
    assert_eq!(made, 1, "nothing was created");
    client.batch_execute("DROP TABLE flow_runs").expect("drops");
    drop(flow_runtime::store::PostgresStore::open(&database).expect("a store now"));
    client.batch_execute("UPDATE flow_schema SET version = 99").expect("ages the store");
    let newer = flow_runtime::store::PostgresStore::open(&database).err().map(|e| e.to_string());
    assert!(newer.as_deref().is_some_and(|m| m.contains("newer version of Flow (schema 99")), "{newer:?}");
}

/// A flow with a review: a run of it waits for a decision.
const REVIEWED: &str = r#"
role clerk

type Request {
  id: Text
}

flow reviewed {
  version "1.0.0"
  owner clerk
  steward clerk

  input request: Request
  output done: Bool

  access {
    trigger by clerk
  }

  review check by clerk
    outcomes approve, reject
    reasons ok

  emit done = check.outcome == approve
}
"#;

fn reviewed(
    store: Box<dyn flow_runtime::store::Store>,
) -> (flow_runtime::Runtime, std::sync::Arc<flow_runtime::analysis::Analysis>) {
    let checked = crate::check_fixture("main.flow", REVIEWED.as_bytes());
    assert!(checked.clean(), "{}", checked.render());
    let plan = crate::plans(&checked).into_iter().flatten().next().expect("the flow compiles");
    let runtime = flow_runtime::Runtime::new(store);
    let analysis = runtime.install(plan).expect("the plan installs");
    (runtime, analysis)
}

/// A store left by an older version (schema 3 of SQLite, 1 of PostgreSQL: before leases,
/// queues, notices, timers, monitors and releases) is migrated when opened, through every later schema, not refused: its runs verify, a waiting one is decided, and the
/// store is at the current version after.
#[test]
fn a_store_of_an_older_schema_is_migrated_and_keeps_its_runs() {
    use flow_runtime::store::{PostgresStore, SqliteStore, Store};
    let dir = std::env::temp_dir().join(format!("flow-store-migrated-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("runs.db");
    // How each store is opened, and what takes it back to the schema before leases.
    type Ager<'a> = Box<dyn Fn() + 'a>;
    type Opener<'a> = Box<dyn Fn() -> Box<dyn Store> + 'a>;
    type Version<'a> = Box<dyn Fn() -> i64 + 'a>;
    let mut stores: Vec<(Opener<'_>, Ager<'_>, Version<'_>)> = vec![(
        Box::new(|| Box::new(SqliteStore::open(&path).expect("opens"))),
        Box::new(|| {
            let db = rusqlite::Connection::open(&path).expect("opens");
            db.execute_batch(
                "ALTER TABLE runs ADD COLUMN heartbeat TEXT; ALTER TABLE runs DROP COLUMN lease_until;
                 DROP TABLE action_claims; DROP TABLE batches; DROP TABLE queue; DROP TABLE deliveries;
                 DROP INDEX waiting_due; ALTER TABLE waiting DROP COLUMN due;
                 DROP TABLE monitor_counts; DROP TABLE alerts; DROP TABLE monitor_pending; DROP TABLE monitor_checks;
                 DROP TABLE releases; DROP INDEX log_by_kind;
                 PRAGMA user_version = 3;",
            )
            .expect("ages the store");
        }),
        Box::new(|| {
            let db = rusqlite::Connection::open(&path).expect("opens");
            db.pragma_query_value(None, "user_version", |row| row.get(0)).expect("reads")
        }),
    )];
    if let Some(url) = postgres::database("migrated") {
        let (open, age, version) = (url.clone(), url.clone(), url);
        stores.push((
            Box::new(move || Box::new(PostgresStore::open(&open).expect("opens"))),
            Box::new(move || {
                let mut client = ::postgres::Client::connect(&age, ::postgres::NoTls).expect("connects");
                client
                    .batch_execute(
                        "ALTER TABLE flow_runs ADD COLUMN heartbeat TEXT; ALTER TABLE flow_runs DROP COLUMN lease_until;
                         DROP INDEX flow_runs_executing; DROP TABLE flow_action_claims;
                         DROP TABLE flow_batches; DROP TABLE flow_queue; DROP TABLE flow_deliveries;
                         DROP INDEX flow_waiting_due; ALTER TABLE flow_waiting DROP COLUMN due;
                         DROP TABLE flow_monitor_counts; DROP TABLE flow_alerts; DROP TABLE flow_monitor_pending;
                         DROP TABLE flow_monitor_checks; DROP TABLE flow_releases;
                         DROP INDEX flow_log_by_kind;
                         UPDATE flow_schema SET version = 1;",
                    )
                    .expect("ages the store");
            }),
            Box::new(move || {
                let mut client = ::postgres::Client::connect(&version, ::postgres::NoTls).expect("connects");
                i64::from(client.query_one("SELECT version FROM flow_schema", &[]).expect("reads").get::<_, i32>(0))
            }),
        ));
    }
    for (open, age, version) in &stores {
        let current = {
            let (runtime, analysis) = reviewed(open());
            let clerk = flow_runtime::Principal::new("cleo", vec!["clerk".into()]);
            for id in ["M1", "M2"] {
                let inputs = [("request".to_owned(), serde_json::json!({"id": id}))];
                runtime.start(&analysis, &clerk, &inputs, &flow_runtime::StartOptions::default()).expect("starts");
            }
            version()
        };
        age();
        assert!([1, 3].contains(&version()) && version() < current, "aged to the first schema migrated from");
        let (runtime, _) = reviewed(open());
        assert_eq!(version(), current, "migrated");
        let audit = runtime.audit(None).expect("audits");
        assert!(audit.problems.is_empty() && audit.runs == 2, "{:?}", audit.problems);
        let waiting = runtime.store().waiting().expect("lists");
        let clerk = flow_runtime::Principal::new("cleo", vec!["clerk".into()]);
        let input = flow_runtime::DecisionInput {
            outcome: "approve".into(),
            reason: Some("ok".into()),
            basis: None,
            edits: Vec::new(),
        };
        let decided = runtime.decide(&waiting[0].run, "check", &clerk, &input).expect("decides");
        assert_eq!(decided.status, flow_runtime::Status::Completed);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A SQLite database that is not a run store, or a store of a newer version, is refused
/// when opened and left as it was.
#[test]
fn sqlite_refuses_a_database_that_is_not_its_store() {
    let dir = std::env::temp_dir().join(format!("flow-store-foreign-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creates");
    let path = dir.join("other.db");
    let db = rusqlite::Connection::open(&path).expect("opens");
    db.execute_batch("CREATE TABLE notes (x TEXT)").expect("creates");
    let refused = flow_runtime::store::SqliteStore::open(&path).err().map(|e| e.to_string());
    assert!(refused.as_deref().is_some_and(|m| m.contains("is not a run store")), "{refused:?}");
    let tables: i64 = db.query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0)).expect("counts");
    assert_eq!(tables, 1, "nothing was created");
    let store = dir.join("runs.db");
    drop(flow_runtime::store::SqliteStore::open(&store).expect("a store"));
    rusqlite::Connection::open(&store).expect("opens").pragma_update(None, "user_version", 99).expect("ages");
    let newer = flow_runtime::store::SqliteStore::open(&store).err().map(|e| e.to_string());
    assert!(newer.as_deref().is_some_and(|m| m.contains("newer version of Flow (schema 99")), "{newer:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A completed run of one event, and its events, for appending straight to a store.
fn settled_run(id: &str) -> (flow_runtime::store::RunRecord, Vec<flow_runtime::store::RawEvent>) {
    let run = flow_runtime::store::RunRecord {
        id: id.to_owned(),
        plan: "blake3:plan".into(),
        flow: "f".into(),
        status: flow_runtime::event::Status::Completed,
        created: "2026-12-03T00:00:00Z".into(),
        seq: 1,
        head: format!("h-{id}"),
        signature: None,
        principal: "ana".into(),
        owner: None,
    };
    let events = vec![flow_runtime::store::RawEvent {
        seq: 1,
        at: "2026-12-03T00:00:00Z".into(),
        prev: "genesis".into(),
        hash: format!("h-{id}"),
        body: serde_json::json!({"event": "settled"}).to_string(),
    }];
    (run, events)
}

/// Appends a new run of [`settled_run`].
fn append_settled(store: &dyn flow_runtime::store::Store, id: &str) -> flow_runtime::store::Result<()> {
    let (run, events) = settled_run(id);
    store.append(&flow_runtime::store::Commit {
        run: &run,
        expected_seq: 0,
        events: &events,
        waiting: &[],
        results: &[],
        key: None,
        lease: None,
        released: &[],
        notices: &[],
        tallies: &[],
        check: None,
    })
}

/// A store file gets its commits out of the write-ahead log soon after they land, by a
/// thread of its own, rather than when the log has grown long — by a commit that then waits
/// for it, with every commit behind it: the database file alone soon holds them all.
#[test]
fn sqlite_commits_reach_the_database_file_soon_after_they_land() {
    use flow_runtime::store::SqliteStore;
    let dir = std::env::temp_dir().join(format!("flow-store-checkpoint-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("runs.db");
    let store = SqliteStore::open(&path).expect("a store");
    const RUNS: i64 = 100;
    for i in 0..RUNS {
        append_settled(&store, &format!("r-checkpointed-{i}")).expect("appends");
    }
    // The file alone, as a copy without its log, read while the store stays open.
    let copy = dir.join("copy.db");
    let in_the_file = || -> Option<i64> {
        let _ = std::fs::remove_file(dir.join("copy.db-wal"));
        std::fs::copy(&path, &copy).ok()?;
        rusqlite::Connection::open(&copy).ok()?.query_row("SELECT count(*) FROM runs", [], |row| row.get(0)).ok()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut seen = in_the_file();
    while seen != Some(RUNS) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
        seen = in_the_file();
    }
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(seen, Some(RUNS), "the database file holds the runs once checkpointed");
}

/// Appends that arrive while the connection is busy are committed together: four threads
/// held up behind a long read take one transaction between them, and every one lands.
#[test]
fn sqlite_appends_that_arrive_together_share_a_transaction() {
    use flow_runtime::store::{SqliteStore, Store};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = std::env::temp_dir().join(format!("flow-store-groups-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = SqliteStore::open(&dir.join("runs.db")).expect("a store");
    append_settled(&store, "r-grouped-first").expect("appends");
    let before = store.commit_groups();
    let go = std::sync::Barrier::new(5);
    let waiting = AtomicUsize::new(0);
    let appended: Vec<flow_runtime::store::Result<()>> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let (store, go, waiting) = (&store, &go, &waiting);
                scope.spawn(move || {
                    go.wait();
                    waiting.fetch_add(1, Ordering::SeqCst);
                    append_settled(store, &format!("r-grouped-{i}"))
                })
            })
            .collect();
        // A read that holds the connection while the four arrive behind it.
        store
            .scan_events(&mut |_, _| {
                go.wait();
                while waiting.load(Ordering::SeqCst) < 4 {
                    std::thread::yield_now();
                }
                std::thread::sleep(std::time::Duration::from_millis(300));
                false
            })
            .expect("reads");
        threads.into_iter().map(|t| t.join().expect("appends")).collect()
    });
    let after = store.commit_groups();
    for i in 0..4 {
        assert!(store.run(&format!("r-grouped-{i}")).expect("reads").is_some(), "run {i} landed");
    }
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(appended.iter().all(Result::is_ok), "{appended:?}");
    assert_eq!((after.0 - before.0, after.1 - before.1), (1, 4), "one transaction for the four appends");
}

/// A store over TLS: the server's certificate is verified — refused at once, naming the
/// certificate, without the authority that signed it; with it (`ca`), the connection is
/// encrypted and the store passes the suite.
#[test]
fn postgres_over_tls_verifies_the_servers_certificate() {
    use flow_runtime::store::{PostgresOptions, PostgresStore};
    let Some(cluster) = postgres::Cluster::own_tls("tls") else { return };
    let port = cluster.tls_port.expect("a TLS port");
    let url = format!("host=localhost port={port} user=flow dbname=postgres sslmode=require");
    let started = std::time::Instant::now();
    let options = PostgresOptions { pool: 2, reconnect: std::time::Duration::from_secs(5), ca: None };
    let refused = PostgresStore::open_with(&url, &options).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(refused.contains("cannot connect to the run store") && refused.contains("certificate"), "{refused}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "a certificate that does not verify is not tried again"
    );
    let options = PostgresOptions { ca: Some(cluster.dir.join("ca.crt")), ..options };
    let open = || -> flow_runtime::store::Result<Box<dyn flow_runtime::store::Store>> {
        Ok(Box::new(PostgresStore::open_with(&url, &options)?))
    };
    let store = open().expect("opens over TLS");
    let mut admin = ::postgres::Client::connect(&cluster.database(), ::postgres::NoTls).expect("connects");
    let encrypted: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) WHERE ssl AND client_port > 0",
            &[],
        )
        .expect("reads")
        .get(0);
    assert!(encrypted >= 1, "the store's connection is encrypted");
    drop(store);
    let failures = flow_runtime::store::suite::check(&open);
    assert!(failures.is_empty(), "{failures:#?}");
}
