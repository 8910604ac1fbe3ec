//! Integrity, stated as a property: any change to a stored run — an event edited, dropped,
//! swapped or replaced, a column outside the chain, a run deleted or rolled back, a refusal
//! edited, a recorded action result forged or deleted — by someone with write access to the store
//! file, who recomputes every hash they can (the run's chain, the store's log and its
//! checkpoint) but does not hold the deployment's key, is detected: by loading the run or
//! by `Runtime::audit`; where the deployment does not sign, by an audit against a
//! checkpoint kept from before the change. A whole store rolled back to an earlier copy is
//! detected only against a checkpoint kept from later, with or without signing.
//!
//! `PROPTEST_CASES` sets the number of cases (CI runs the default of 512); the documented
//! long run is `PROPTEST_CASES=100000 cargo test -p flow-tests --release --lib integrity`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use flow_runtime::checkpoint::{Checkpoint, Entry, Frontier, Kind};
use flow_runtime::store::SqliteStore;
use flow_runtime::{Runtime, StartOptions, Status};
use proptest::prelude::*;
use rusqlite::{Connection, params};
use serde_json::Value as Json;

use crate::guarantees::{decision, pay, payment_world, principal, runtime_with};

const KEY: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";

/// A store with runs in every state, a refusal, an action result, and a copy of it from
/// before its last changes.
struct Base {
    dir: PathBuf,
    runs: Vec<String>,
    /// The store's checkpoint at the end, as an auditor keeps it.
    checkpoint: Checkpoint,
    signed: bool,
}

impl Base {
    fn store(&self) -> PathBuf {
        self.dir.join("runs.db")
    }

    fn earlier(&self) -> PathBuf {
        self.dir.join("earlier.db")
    }

    /// A runtime on a store file, as the deployment opens it.
    fn runtime(&self, path: &Path) -> Runtime {
        let store = SqliteStore::open(path).expect("the store opens");
        let mut runtime = Runtime::new(Box::new(store));
        if self.signed {
            runtime.set_signing_key(flow_runtime::evidence::signing_key(KEY).expect("a key"));
        }
        let world = payment_world();
        runtime.register_model("scorer", world.clone());
        runtime.register_system("ledger", world);
        runtime
    }
}

/// Copies a store file (its changes checkpointed into it) to `to`.
fn copy_store(from: &Path, to: &Path) {
    let db = Connection::open(from).expect("opens");
    db.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").expect("checkpoints");
    drop(db);
    std::fs::copy(from, to).expect("copies");
}

fn build(signed: bool) -> Base {
    let dir = std::env::temp_dir().join(format!("flow-integrity-{}-{signed}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a directory");
    let mut base =
        Base { dir, runs: Vec::new(), checkpoint: Checkpoint::of(&Frontier::default(), String::new(), None), signed };
    let world = payment_world();
    let (memory, analysis) = runtime_with(crate::guarantees::PAYMENT, &world);
    drop(memory);
    let runtime = base.runtime(&base.store());
    let analysis = runtime.install(analysis.plan.clone()).expect("installs");
    let officer = principal("olga", &["officer"]);
    let manager = principal("mia", &["manager"]);
    // Completed at once, booked (an action result).
    base.runs.push(pay(&runtime, &analysis, "50 USD", "acme").run);
    // Waits for the officer, then for a manager.
    let large = pay(&runtime, &analysis, "5000 USD", "acme").run;
    base.runs.push(large.clone());
    // Blocked.
    base.runs.push(pay(&runtime, &analysis, "50 USD", "listed").run);
    copy_store(&base.store(), &base.earlier());
    runtime.decide(&large, "large", &officer, &decision("approve", "ok")).expect("decides");
    let view = runtime.decide(&large, "sign", &manager, &decision("approve", "ok")).expect("decides");
    assert_eq!(view.status, Status::Completed);
    // Waits for a manager.
    base.runs.push(pay(&runtime, &analysis, "500 USD", "acme").run);
    // A refusal that belongs to no run.
    let refused = runtime.start(&analysis, &principal("mallory", &[]), &[], &StartOptions::default());
    assert!(matches!(refused, Err(flow_runtime::Error::Refused { .. })));
    let audit = runtime.audit(None).expect("audits");
    assert!(audit.is_clean(), "{:?}", audit.problems);
    base.checkpoint = audit.checkpoint.expect("a checkpoint");
    drop(runtime);
    base
}

fn base(signed: bool) -> &'static Base {
    static SIGNED: OnceLock<Base> = OnceLock::new();
    static UNSIGNED: OnceLock<Base> = OnceLock::new();
    if signed { SIGNED.get_or_init(|| build(true)) } else { UNSIGNED.get_or_init(|| build(false)) }
}

/// What the forger changes.
#[derive(Clone, Debug)]
enum Forgery {
    /// One leaf of an event's body (a boolean flipped, a number or text changed).
    Edit {
        run: usize,
        event: usize,
        leaf: usize,
    },
    Drop {
        run: usize,
        event: usize,
    },
    Swap {
        run: usize,
        event: usize,
    },
    /// An event replaced by another run's.
    Replace {
        run: usize,
        event: usize,
        from: usize,
        from_event: usize,
    },
    /// A column of the run's record outside its chain.
    Column {
        run: usize,
        column: usize,
    },
    /// The run's rows deleted (and, with `log`, its entries taken out of the log).
    Delete {
        run: usize,
        log: bool,
    },
    /// The run's rows as they were in the earlier copy (with that copy's signature).
    Rollback {
        run: usize,
    },
    /// The refusal edited, or removed.
    Refusal {
        remove: bool,
    },
    /// The refusal edited and the refusals' chain recomputed, the log untouched.
    RefusalRechained,
    /// The recorded action result changed, or deleted.
    ActionResult {
        delete: bool,
    },
}

fn forgery() -> impl Strategy<Value = Forgery> {
    let run = 0..4usize;
    prop_oneof![
        (run.clone(), 1..40usize, 0..64usize).prop_map(|(run, event, leaf)| Forgery::Edit { run, event, leaf }),
        (run.clone(), 1..40usize).prop_map(|(run, event)| Forgery::Drop { run, event }),
        (run.clone(), 1..40usize).prop_map(|(run, event)| Forgery::Swap { run, event }),
        (run.clone(), 0..40usize, 0..4usize, 0..40usize).prop_map(|(run, event, from, from_event)| Forgery::Replace {
            run,
            event,
            from,
            from_event
        }),
        (run.clone(), 0..5usize).prop_map(|(run, column)| Forgery::Column { run, column }),
        (run.clone(), any::<bool>()).prop_map(|(run, log)| Forgery::Delete { run, log }),
        Just(Forgery::Rollback { run: 1 }),
        any::<bool>().prop_map(|remove| Forgery::Refusal { remove }),
        Just(Forgery::RefusalRechained),
        any::<bool>().prop_map(|delete| Forgery::ActionResult { delete }),
    ]
}

fn events_of(db: &Connection, run: &str) -> Vec<(String, String)> {
    let mut statement = db.prepare("SELECT at, body FROM events WHERE run = ?1 ORDER BY seq").expect("reads");
    let rows = statement.query_map([run], |r| Ok((r.get(0)?, r.get(1)?))).expect("reads");
    rows.map(|r| r.expect("a row")).collect()
}

/// Writes a run's events as `events`, chained again, with its record's number and head;
/// returns the heads after each event.
fn rechain(db: &Connection, run: &str, events: &[(String, String)]) -> Vec<String> {
    db.execute("DELETE FROM events WHERE run = ?1", [run]).expect("deletes");
    let mut prev = flow_runtime::digest::GENESIS.to_owned();
    let mut heads = Vec::new();
    for (seq, (at, body)) in events.iter().enumerate() {
        let json: Json = serde_json::from_str(body).unwrap_or(Json::String(body.clone()));
        let hash = flow_runtime::digest::event_hash(&prev, seq as u64, at, &json);
        db.execute(
            "INSERT INTO events (run, seq, at, prev, hash, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![run, seq as i64, at, prev, hash, body],
        )
        .expect("inserts");
        prev = hash.clone();
        heads.push(hash);
    }
    db.execute("UPDATE runs SET seq = ?1, head = ?2 WHERE id = ?3", params![events.len() as i64, prev, run])
        .expect("updates");
    heads
}

/// Rewrites the store's log as `change` makes it, and its checkpoint (unsigned: the forger
/// has no key).
fn rewrite_log(db: &Connection, change: impl FnOnce(&mut Vec<Entry>)) {
    let mut entries: Vec<Entry> = {
        let mut statement = db.prepare("SELECT kind, subject, seq, hash FROM log ORDER BY n").expect("reads");
        let rows = statement.query_map([], |r| {
            Ok(Entry {
                kind: Kind::parse(&r.get::<_, String>(0)?).expect("a kind"),
                subject: r.get(1)?,
                seq: r.get::<_, i64>(2)? as u64,
                hash: r.get(3)?,
            })
        });
        rows.expect("reads").map(|r| r.expect("a row")).collect()
    };
    change(&mut entries);
    db.execute("DELETE FROM log", []).expect("deletes");
    let mut frontier = Frontier::default();
    for (n, entry) in entries.iter().enumerate() {
        db.execute(
            "INSERT INTO log (n, kind, subject, seq, hash) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![n as i64, entry.kind.as_str(), entry.subject, entry.seq as i64, entry.hash],
        )
        .expect("inserts");
        frontier.push(entry.leaf());
    }
    let checkpoint = Checkpoint::of(&frontier, "2026-12-02T00:00:00Z".to_owned(), None);
    db.execute(
        "UPDATE checkpoint SET size = ?1, root = ?2, frontier = ?3, public_key = NULL, signature = NULL",
        params![checkpoint.size as i64, checkpoint.root, frontier.to_text()],
    )
    .expect("updates");
}

/// The log's last entry of `run` made its new number of events and head.
fn relog_run(db: &Connection, run: &str) {
    let (seq, head): (i64, String) =
        db.query_row("SELECT seq, head FROM runs WHERE id = ?1", [run], |r| Ok((r.get(0)?, r.get(1)?))).expect("a run");
    rewrite_log(db, |entries| {
        entries.retain(|e| !(e.kind == Kind::Run && e.subject == run));
        entries.push(Entry { kind: Kind::Run, subject: run.to_owned(), seq: seq as u64, hash: head });
    });
}

/// Changes one leaf (the `n`-th, counting from 0, modulo their number) of a JSON value.
fn change_leaf(json: &mut Json, n: usize) -> bool {
    fn count(json: &Json) -> usize {
        match json {
            Json::Object(o) => o.values().map(count).sum(),
            Json::Array(a) => a.iter().map(count).sum(),
            _ => 1,
        }
    }
    fn change(json: &mut Json, n: &mut usize) -> bool {
        match json {
            Json::Object(o) => o.values_mut().any(|v| change(v, n)),
            Json::Array(a) => a.iter_mut().any(|v| change(v, n)),
            leaf if *n == 0 => {
                *leaf = match leaf {
                    Json::Bool(b) => Json::Bool(!*b),
                    Json::Number(n) => Json::from(n.as_i64().unwrap_or(0) + 1),
                    Json::String(s) => Json::String(format!("{s}x")),
                    _ => Json::Bool(true),
                };
                true
            }
            _ => {
                *n -= 1;
                false
            }
        }
    }
    let leaves = count(json);
    leaves > 0 && change(json, &mut (n % leaves))
}

/// Applies a forgery to the store at `path`; `false` when it changes nothing here.
fn forge(base: &Base, path: &Path, forgery: &Forgery) -> bool {
    let db = Connection::open(path).expect("opens");
    let run_id = |i: usize| base.runs[i % base.runs.len()].clone();
    match forgery {
        Forgery::Edit { run, event, leaf } => {
            let run = run_id(*run);
            let mut events = events_of(&db, &run);
            let event = event % events.len();
            let mut json: Json = serde_json::from_str(&events[event].1).expect("JSON");
            if !change_leaf(&mut json, *leaf) {
                return false;
            }
            events[event].1 = json.to_string();
            rechain(&db, &run, &events);
            relog_run(&db, &run);
        }
        Forgery::Drop { run, event } => {
            let run = run_id(*run);
            let mut events = events_of(&db, &run);
            events.remove(1 + event % (events.len() - 1));
            rechain(&db, &run, &events);
            relog_run(&db, &run);
        }
        Forgery::Swap { run, event } => {
            let run = run_id(*run);
            let mut events = events_of(&db, &run);
            let i = 1 + event % (events.len() - 2);
            if events[i].1 == events[i + 1].1 {
                return false;
            }
            events.swap(i, i + 1);
            rechain(&db, &run, &events);
            relog_run(&db, &run);
        }
        Forgery::Replace { run, event, from, from_event } => {
            let (run, from) = (run_id(*run), run_id(*from));
            let mut events = events_of(&db, &run);
            let others = events_of(&db, &from);
            let i = event % events.len();
            let replacement = others[from_event % others.len()].1.clone();
            if events[i].1 == replacement {
                return false;
            }
            events[i].1 = replacement;
            rechain(&db, &run, &events);
            relog_run(&db, &run);
        }
        Forgery::Column { run, column } => {
            let run = run_id(*run);
            let (column, value) = [
                ("plan", "blake3:0000000000000000000000000000000000000000000000000000000000000001"),
                ("status", "completed"),
                ("flow", "other"),
                ("principal", "mallory"),
                ("created", "2020-01-01T00:00:00Z"),
            ][column % 5];
            let changed = db
                .execute(&format!("UPDATE runs SET {column} = ?1 WHERE id = ?2 AND {column} != ?1"), [value, &run])
                .expect("updates");
            if changed == 0 {
                return false;
            }
        }
        Forgery::Delete { run, log } => {
            let run = run_id(*run);
            for table in ["events", "waiting"] {
                db.execute(&format!("DELETE FROM {table} WHERE run = ?1"), [&run]).expect("deletes");
            }
            db.execute("DELETE FROM action_results WHERE run = ?1", [&run]).expect("deletes");
            db.execute("DELETE FROM runs WHERE id = ?1", [&run]).expect("deletes");
            if *log {
                rewrite_log(&db, |entries| entries.retain(|e| !(e.kind == Kind::Run && e.subject == run)));
            }
        }
        Forgery::Rollback { run } => {
            let run = run_id(*run);
            db.execute("ATTACH DATABASE ?1 AS earlier", [base.earlier().to_string_lossy()]).expect("attaches");
            db.execute("DELETE FROM events WHERE run = ?1", [&run]).expect("deletes");
            db.execute("INSERT INTO events SELECT * FROM earlier.events WHERE run = ?1", [&run]).expect("copies");
            db.execute("DELETE FROM runs WHERE id = ?1", [&run]).expect("deletes");
            db.execute("INSERT INTO runs SELECT * FROM earlier.runs WHERE id = ?1", [&run]).expect("copies");
        }
        Forgery::Refusal { remove } => {
            if *remove {
                db.execute("DELETE FROM refusals", []).expect("deletes");
            } else {
                db.execute("UPDATE refusals SET principal = 'someone'", []).expect("updates");
            }
        }
        Forgery::RefusalRechained => rechain_refusals(&db),
        Forgery::ActionResult { delete } => {
            let changed = if *delete {
                db.execute("DELETE FROM action_results", []).expect("deletes")
            } else {
                db.execute("UPDATE action_results SET result = '{\"number\": \"FORGED\"}'", []).expect("updates")
            };
            if changed == 0 {
                return false;
            }
        }
    }
    true
}

/// Changes who was refused and recomputes the refusals' chain, keeping their number.
fn rechain_refusals(db: &Connection) {
    let rows: Vec<(i64, [String; 5])> = {
        let mut statement = db
            .prepare("SELECT seq, at, principal, operation, grant, message FROM refusals ORDER BY seq")
            .expect("reads");
        let rows = statement
            .query_map([], |r| Ok((r.get(0)?, [r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?])))
            .expect("reads");
        rows.map(|r| r.expect("a row")).collect()
    };
    let mut prev = flow_runtime::digest::GENESIS.to_owned();
    for (seq, mut parts) in rows {
        parts[1] = "someone".to_owned();
        let hash = flow_runtime::checkpoint::refusal_hash(&prev, seq as u64, parts.each_ref().map(String::as_str));
        db.execute(
            "UPDATE refusals SET principal = ?1, prev = ?2, hash = ?3 WHERE seq = ?4",
            params![parts[1], prev, hash, seq],
        )
        .expect("updates");
        prev = hash;
    }
}

/// Whether loading a run, or the audit (with `earlier`), finds something wrong.
fn detected(base: &Base, path: &Path, earlier: Option<&Checkpoint>) -> bool {
    let runtime = base.runtime(path);
    base.runs.iter().any(|run| runtime.status(run, None).is_err())
        || runtime.audit(earlier).map_or(true, |audit| !audit.is_clean())
}

fn case_path(base: &Base) -> PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    base.dir.join(format!("case-{n}.db"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_change_to_a_store_is_detected(forgery in forgery(), signed in any::<bool>()) {
        let base = base(signed);
        let path = case_path(base);
        copy_store(&base.store(), &path);
        if forge(base, &path, &forgery) {
            let plain = detected(base, &path, None);
            let against_earlier = detected(base, &path, Some(&base.checkpoint));
            // Without the key, a forger can make the store consistent in itself; a checkpoint
            // kept from before still finds it. With the key, the store finds it alone.
            prop_assert!(against_earlier, "{forgery:?} (signed: {signed}) went unnoticed");
            if signed {
                prop_assert!(plain, "{forgery:?} went unnoticed in a signing store");
            }
        }
        let _ = std::fs::remove_file(&path);
    }
}

/// The untouched store passes every check, and a whole store rolled back to an earlier
/// copy passes the checks of its own, but not an audit against a later checkpoint.
#[test]
fn an_intact_store_passes_and_a_whole_store_rolled_back_fails_only_against_a_later_checkpoint() {
    for signed in [false, true] {
        let base = base(signed);
        assert!(!detected(base, &base.store(), Some(&base.checkpoint)), "signed: {signed}");
        let path = case_path(base);
        std::fs::copy(base.earlier(), &path).expect("copies");
        let runtime = base.runtime(&path);
        let own = runtime.audit(None).expect("audits");
        assert!(own.is_clean(), "signed: {signed}: {:?}", own.problems);
        let later = runtime.audit(Some(&base.checkpoint)).expect("audits");
        assert!(
            later.problems.iter().any(|p| p.contains("entries were removed")),
            "signed: {signed}: {:?}",
            later.problems
        );
    }
}

/// A signing deployment never signs a forged head: a run rewritten with a consistent chain
/// is refused before anything is appended, and its stored signature stays the old one.
#[test]
fn a_forged_run_is_never_signed() {
    let base = base(true);
    let path = case_path(base);
    copy_store(&base.store(), &path);
    let pending = base.runs[3].clone();
    assert!(forge(base, &path, &Forgery::Edit { run: 3, event: 1, leaf: 3 }));
    let signature = |path: &Path| -> Option<String> {
        let db = Connection::open(path).expect("opens");
        db.query_row("SELECT signature FROM runs WHERE id = ?1", [&pending], |r| r.get(0)).expect("a run")
    };
    let before = signature(&path);
    let runtime = base.runtime(&path);
    let decided = runtime.decide(&pending, "sign", &principal("mia", &["manager"]), &decision("approve", "ok"));
    assert!(matches!(&decided, Err(flow_runtime::Error::Tampered(m)) if m.contains("does not verify")), "{decided:?}");
    drop(runtime);
    assert_eq!(signature(&path), before);
}

/// Refusals rewritten behind the log (their chain recomputed, their number kept) are found
/// by the audit, and not extended, so not signed over, by the next refusal.
#[test]
fn a_rewritten_refusal_chain_is_found_and_not_extended() {
    for signed in [false, true] {
        let base = base(signed);
        let path = case_path(base);
        copy_store(&base.store(), &path);
        assert!(forge(base, &path, &Forgery::RefusalRechained));
        let runtime = base.runtime(&path);
        let audit = runtime.audit(None).expect("audits");
        assert!(
            audit.problems.iter().any(|p| p.contains("refusal 0 is not the one the store's log recorded")),
            "signed: {signed}: {:?}",
            audit.problems
        );
        let analysis = runtime.install(runtime_with(crate::guarantees::PAYMENT, &payment_world()).1.plan.clone());
        let refused =
            runtime.start(&analysis.expect("installs"), &principal("mallory", &[]), &[], &StartOptions::default());
        assert!(
            matches!(&refused, Err(flow_runtime::Error::Tampered(m)) if m.contains("refusals do not end")),
            "signed: {signed}: {refused:?}"
        );
    }
}

/// A signing deployment extends only a checkpoint it believes: after a forger rewrote the
/// log and its checkpoint (unsigned, or missing), the next run is refused before anything
/// is appended, and the forged checkpoint is not signed over.
#[test]
fn a_laundered_log_is_never_signed_over() {
    let base = base(true);
    let plan = runtime_with(crate::guarantees::PAYMENT, &payment_world()).1.plan.clone();
    for (how, why) in [("rewritten", "is not signed"), ("removed", "is missing, but the log has entries")] {
        let path = case_path(base);
        copy_store(&base.store(), &path);
        assert!(forge(base, &path, &Forgery::Delete { run: 0, log: true }));
        if how == "removed" {
            Connection::open(&path).expect("opens").execute("DELETE FROM checkpoint", []).expect("deletes");
        }
        let checkpoint = |path: &Path| -> Option<(i64, Option<String>)> {
            let db = Connection::open(path).expect("opens");
            db.query_row("SELECT size, signature FROM checkpoint", [], |r| Ok((r.get(0)?, r.get(1)?))).ok()
        };
        let before = checkpoint(&path);
        let runtime = base.runtime(&path);
        let analysis = runtime.install(plan.clone()).expect("installs");
        let input = serde_json::json!({"id": "P-9", "amount": "50 USD", "payee": "acme"});
        let payment = [("payment".to_owned(), input)];
        let started = runtime.start(&analysis, &principal("cleo", &["clerk"]), &payment, &StartOptions::default());
        assert!(matches!(&started, Err(flow_runtime::Error::Tampered(m)) if m.contains(why)), "{how}: {started:?}");
        drop(runtime);
        assert_eq!(checkpoint(&path), before, "{how}: the checkpoint is unchanged");
    }
}

/// A signing deployment believes only runs it (or a key it trusts) signed: a run written
/// into its store by a runtime without the key is refused when loaded, reported by a bulk
/// replay, and not counted as complete evidence by `stats`.
#[test]
fn an_unsigned_run_in_a_signing_store_is_not_believed() {
    let base = base(true);
    let path = case_path(base);
    copy_store(&base.store(), &path);
    let plan = runtime_with(crate::guarantees::PAYMENT, &payment_world()).1.plan.clone();
    let keyless = Base { dir: base.dir.clone(), runs: Vec::new(), checkpoint: base.checkpoint.clone(), signed: false };
    let unsigned = {
        let runtime = keyless.runtime(&path);
        let analysis = runtime.install(plan).expect("installs");
        pay(&runtime, &analysis, "50 USD", "acme").run
    };
    let runtime = base.runtime(&path);
    let loaded = runtime.status(&unsigned, None);
    assert!(matches!(&loaded, Err(flow_runtime::Error::Tampered(m)) if m.contains("is not signed")), "{loaded:?}");
    let stats = runtime.stats(&flow_runtime::RunFilter::default()).expect("counts");
    assert_eq!((stats.all.runs, stats.all.complete), (base.runs.len() as u64 + 1, base.runs.len() as u64));
    let replayed = runtime
        .replay_all(&principal("olga", &["officer"]), &flow_runtime::RunFilter::default(), &Default::default())
        .expect("replays");
    assert!(
        replayed.errors.iter().any(|(run, why)| *run == unsigned && why.contains("is not signed")),
        "{:?} ({} not allowed)",
        replayed.errors,
        replayed.not_allowed
    );
    assert_eq!(replayed.runs, base.runs.len());
}

/// Threads of a signing deployment starting runs on one store file at once (their commits
/// are committed in groups): every run is kept, and the store audits clean — the log covers
/// every run's head, under one checkpoint signed by the deployment's key.
#[test]
fn runs_committed_together_by_a_signing_runtime_audit_clean() {
    let dir = std::env::temp_dir().join(format!("flow-integrity-groups-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let base = Base {
        dir,
        runs: Vec::new(),
        checkpoint: Checkpoint::of(&Frontier::default(), String::new(), None),
        signed: true,
    };
    let world = payment_world();
    let (memory, analysis) = runtime_with(crate::guarantees::PAYMENT, &world);
    drop(memory);
    let runtime = base.runtime(&base.store());
    let analysis = runtime.install(analysis.plan.clone()).expect("installs");
    let started: Vec<String> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| (0..15).map(|_| pay(&runtime, &analysis, "50 USD", "acme").run).collect::<Vec<_>>())
            })
            .collect();
        threads.into_iter().flat_map(|t| t.join().expect("starts")).collect()
    });
    assert_eq!(started.len(), 120);
    let audit = runtime.audit(None).expect("audits");
    assert!(audit.is_clean(), "{:?}", audit.problems);
    assert_eq!(audit.runs, 120);
    let checkpoint = audit.checkpoint.expect("a checkpoint");
    assert!(checkpoint.public_key.is_some() && checkpoint.signature_verifies(), "signed: {checkpoint:?}");
    assert_eq!(checkpoint.size, audit.log);
    drop(runtime);
    let _ = std::fs::remove_dir_all(&base.dir);
}
