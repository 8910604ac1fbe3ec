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
}

mod mutant {
    use flow_runtime::store::{
        ActionResult, Commit, RawEvent, Refusal, Result, RunRecord, ShadowRecord, Signer, Store, StoreError, Waiting,
    };

    use super::{Mutant, Promise};

    impl Store for Mutant {
        fn put_plan(&self, hash: &str, bytes: &[u8]) -> Result<()> {
            self.inner.put_plan(hash, bytes)
        }
        fn plan(&self, hash: &str) -> Result<Option<Vec<u8>>> {
            self.inner.plan(hash)
        }
        fn append(&self, commit: &Commit<'_>) -> Result<()> {
            match self.inner.append(commit) {
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
        fn action_result(&self, system: &str, key: &str) -> Result<Option<ActionResult>> {
            self.inner.action_result(system, key)
        }
        fn action_results(&self) -> Result<Vec<ActionResult>> {
            self.inner.action_results()
        }
        fn record_refusal(&self, refusal: [&str; 5], key: Option<Signer<'_>>) -> Result<()> {
            self.inner.record_refusal(refusal, key)
        }
        fn refusals(&self) -> Result<Vec<Refusal>> {
            self.inner.refusals()
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
    }
}

/// The suite is not a formality: a store that breaks one promise fails the checks of it.
#[test]
fn a_store_that_breaks_a_promise_fails_the_suite() {
    for (breaks, check) in [
        (Promise::Ordering, "an append that expects other events writes nothing"),
        (Promise::Stopping, "reading every run visits them in order"),
        (Promise::Checkpoint, "the log covers every change"),
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
    assert_eq!(shown_url("postgres://ana:s3cret@db.example:5432/flows"), "postgres://ana:***@db.example:5432/flows");
    assert_eq!(shown_url("postgresql://ana:p@ss@db/flows?sslmode=require"), "postgresql://ana:***@db/flows");
    assert_eq!(shown_url("postgres://ana@db/flows"), "postgres://ana@db/flows");
    assert_eq!(shown_url("postgres://db"), "postgres://db");
    assert_eq!(
        shown_url("host=db user=ana password=s3cret dbname=flows"),
        "host=db user=ana password=*** dbname=flows"
    );
    let refused = flow_runtime::store::PostgresStore::open("postgres://ana:s3cret@127.0.0.1:1/flows");
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
    assert!(newer.as_deref().is_some_and(|m| m.contains("schema 99, expected 1")), "{newer:?}");
}
