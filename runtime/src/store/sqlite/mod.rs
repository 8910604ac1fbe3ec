//! The embedded store on SQLite.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value as Json;

use super::{
    ActionClaim, ActionResult, Commit, Held, Lease, Part, PendingStep, QueuedBatch, QueuedCase, RawEvent, Refusal,
    Result, RunRecord, ShadowRecord, Signer, Store, StoreError, Waiting,
};
use crate::event::Status;

mod writer;

/// The embedded store: one SQLite file in WAL mode (`.flow/runs.db` for the CLI), or memory.
/// One connection serves the process; appends that arrive together commit together (see
/// [`writer`]).
pub struct SqliteStore {
    writer: writer::Writer,
}

/// The schema this version writes: [`BASE`] (schema 3), then each of [`MIGRATIONS`].
const SCHEMA_VERSION: i64 = BASE_VERSION + MIGRATIONS.len() as i64;

/// The oldest schema a store is migrated from; older stores were written before stores
/// were migrated, and are refused.
const BASE_VERSION: i64 = 3;

/// What takes a store from schema `BASE_VERSION + i` to the next, in one transaction each. A
/// new store is created at [`BASE_VERSION`] and migrated like any other, so that every
/// migration runs on every test's store.
const MIGRATIONS: &[&str] = &[
    // 4: leases (a time of the store's clock, in milliseconds) instead of `host/pid` and a
    // heartbeat; claims of action keys. A run that executed under schema 3 is taken for
    // interrupted: stop every process before migrating.
    "ALTER TABLE runs ADD COLUMN lease_until INTEGER;
     UPDATE runs SET lease_until = 0 WHERE owner IS NOT NULL;
     ALTER TABLE runs DROP COLUMN heartbeat;
     CREATE TABLE action_claims (
       system TEXT NOT NULL, key TEXT NOT NULL, run TEXT NOT NULL, owner TEXT NOT NULL,
       lease_until INTEGER NOT NULL, PRIMARY KEY (system, key)
     ) WITHOUT ROWID;",
    // 5: batches of cases queued for workers.
    "CREATE TABLE batches (
       id TEXT PRIMARY KEY, plan TEXT NOT NULL, principal TEXT NOT NULL, options TEXT NOT NULL,
       created TEXT NOT NULL, cases INTEGER NOT NULL
     );
     CREATE TABLE queue (
       batch TEXT NOT NULL, n INTEGER NOT NULL, body TEXT NOT NULL, owner TEXT, lease_until INTEGER,
       done INTEGER NOT NULL DEFAULT 0, outcome TEXT, PRIMARY KEY (batch, n)
     ) WITHOUT ROWID;
     CREATE INDEX queue_open ON queue (batch, n) WHERE NOT done;",
    // 6: notices for webhook endpoints, queued with the events they tell.
    "CREATE TABLE deliveries (
       n INTEGER PRIMARY KEY, endpoint TEXT NOT NULL, id TEXT NOT NULL, kind TEXT NOT NULL, data TEXT NOT NULL,
       created TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
       next_at INTEGER NOT NULL, owner TEXT, lease_until INTEGER, error TEXT, UNIQUE (endpoint, id)
     );
     CREATE INDEX deliveries_due ON deliveries (next_at, n) WHERE state = 'pending';",
    // 7: when a waiting step's next timer (a reminder, a deadline) falls, in seconds.
    "ALTER TABLE waiting ADD COLUMN due INTEGER;
     CREATE INDEX waiting_due ON waiting (due, run) WHERE due IS NOT NULL;",
    // 8: the counts monitors keep, by flow, series and minute, and the commits' tallies not
    // yet folded into them; the alerts they raise.
    "CREATE TABLE monitor_counts (
       flow TEXT NOT NULL, series TEXT NOT NULL, minute INTEGER NOT NULL, counted INTEGER NOT NULL,
       total INTEGER NOT NULL, PRIMARY KEY (flow, series, minute)
     ) WITHOUT ROWID;
     CREATE TABLE alerts (
       id TEXT PRIMARY KEY, flow TEXT NOT NULL, monitor TEXT NOT NULL, severity TEXT NOT NULL,
       routes TEXT NOT NULL, condition TEXT NOT NULL, raised TEXT NOT NULL, value TEXT NOT NULL,
       resolved TEXT, cleared TEXT
     );
     CREATE UNIQUE INDEX alerts_open ON alerts (flow, monitor) WHERE resolved IS NULL;
     CREATE TABLE monitor_pending (n INTEGER PRIMARY KEY, tallies TEXT NOT NULL);
     CREATE TABLE monitor_checks (run TEXT PRIMARY KEY, flow TEXT NOT NULL, minute INTEGER NOT NULL) WITHOUT ROWID;",
    // 9: the release log; the store's log by kind, for its last release entry.
    "CREATE TABLE releases (
       seq INTEGER PRIMARY KEY, at TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL, body TEXT NOT NULL,
       public_key TEXT, signature TEXT
     );
     CREATE INDEX log_by_kind ON log (kind, n);",
];

/// The store's clock: milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    since.as_millis() as i64
}

const BASE: &str = "
CREATE TABLE IF NOT EXISTS plans (hash TEXT PRIMARY KEY, bytes BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
  id TEXT PRIMARY KEY, plan TEXT NOT NULL, flow TEXT NOT NULL, status TEXT NOT NULL,
  created TEXT NOT NULL, seq INTEGER NOT NULL, head TEXT NOT NULL, signature TEXT,
  principal TEXT NOT NULL, owner TEXT, heartbeat TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status);
CREATE TABLE IF NOT EXISTS events (
  run TEXT NOT NULL, seq INTEGER NOT NULL, at TEXT NOT NULL, prev TEXT NOT NULL,
  hash TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (run, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS waiting (
  run TEXT NOT NULL, step TEXT NOT NULL, flow TEXT NOT NULL, kind TEXT NOT NULL, roles TEXT NOT NULL,
  PRIMARY KEY (run, step)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS action_results (
  system TEXT NOT NULL, key TEXT NOT NULL, result TEXT NOT NULL, run TEXT NOT NULL, seq INTEGER NOT NULL,
  args TEXT NOT NULL, PRIMARY KEY (system, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS refusals (
  seq INTEGER PRIMARY KEY, at TEXT NOT NULL, principal TEXT NOT NULL, operation TEXT NOT NULL,
  grant TEXT NOT NULL, message TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS shadows (
  run TEXT NOT NULL, candidate TEXT NOT NULL, flow TEXT NOT NULL, created TEXT NOT NULL,
  production TEXT NOT NULL, outcome TEXT NOT NULL, changes TEXT NOT NULL, signature TEXT,
  PRIMARY KEY (run, candidate)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log (
  n INTEGER PRIMARY KEY, kind TEXT NOT NULL, subject TEXT NOT NULL, seq INTEGER NOT NULL, hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoint (
  id INTEGER PRIMARY KEY CHECK (id = 0), size INTEGER NOT NULL, root TEXT NOT NULL, at TEXT NOT NULL,
  public_key TEXT, signature TEXT, frontier TEXT NOT NULL
);
";

/// The JSON of a commit as text, written before the connection is taken: the commits of a
/// group wait for each other's statements, not for each other's serialisation.
struct Texts {
    results: Vec<String>,
    notices: Vec<String>,
    tallies: Option<String>,
}

impl Texts {
    fn of(commit: &Commit<'_>) -> Texts {
        Texts {
            results: commit.results.iter().map(|r| r.result.to_string()).collect(),
            notices: notice_texts(commit.notices),
            tallies: (!commit.tallies.is_empty()).then(|| super::encode_tallies(commit.tallies)),
        }
    }
}

fn notice_texts(notices: &[super::Notice]) -> Vec<String> {
    notices.iter().map(|n| n.data.to_string()).collect()
}

/// One commit of [`Store::append_all`], inside its transaction, but for the log.
fn append_in(tx: &Connection, commit: &Commit<'_>, texts: &Texts) -> Result<()> {
    let Commit { run, expected_seq, events, waiting, results, key: _, lease, released, notices, tallies: _, check } =
        *commit;
    // A new run's record is inserted, and conflicts with any record of its id; another
    // run's must have `expected_seq` events.
    let new = expected_seq == 0;
    if !new {
        let current: Option<i64> = tx
            .prepare_cached("SELECT seq FROM runs WHERE id = ?1")
            .and_then(|mut s| s.query_row([&run.id], |row| row.get(0)))
            .optional()
            .map_err(unusable("cannot read the run"))?;
        if current != Some(expected_seq as i64) {
            return Err(StoreError::Conflict(run.id.clone()));
        }
    }
    let write = unusable("cannot write the run");
    let conflict = |e: rusqlite::Error| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::ConstraintViolation) => StoreError::Conflict(run.id.clone()),
        _ => write(e),
    };
    {
        let mut insert = tx
            .prepare_cached("INSERT INTO events (run, seq, at, prev, hash, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
            .map_err(&write)?;
        for event in events {
            insert
                .execute(params![run.id, event.seq as i64, event.at, event.prev, event.hash, event.body])
                .map_err(conflict)?;
        }
    }
    tx.prepare_cached(if new {
        "INSERT INTO runs (id, plan, flow, status, created, seq, head, signature, principal, owner, lease_until) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
    } else {
        "INSERT OR REPLACE INTO runs (id, plan, flow, status, created, seq, head, signature, principal, owner, \
             lease_until) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
    })
    .and_then(|mut s| {
        s.execute(params![
            run.id,
            run.plan,
            run.flow,
            run.status.as_str(),
            run.created,
            run.seq as i64,
            run.head,
            run.signature,
            run.principal,
            lease.map(|(owner, _)| owner),
            lease.map(|(_, ttl)| now_ms() + ttl)
        ])
    })
    .map_err(|e| if new { conflict(e) } else { write(e) })?;
    // Of a new run too: rows a changed store holds for its id are not its own.
    tx.prepare_cached("DELETE FROM waiting WHERE run = ?1").and_then(|mut s| s.execute([&run.id])).map_err(&write)?;
    for w in waiting {
        tx.prepare_cached("INSERT INTO waiting (run, step, flow, kind, roles, due) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
            .and_then(|mut s| s.execute(params![w.run, w.step, w.flow, w.kind, w.roles.join(" "), w.due]))
            .map_err(&write)?;
    }
    for (r, result) in results.iter().zip(&texts.results) {
        tx.prepare_cached(
            "INSERT OR IGNORE INTO action_results (system, key, result, run, seq, args) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .and_then(|mut s| s.execute(params![r.system, r.key, result, r.run, r.seq as i64, r.args]))
        .map_err(&write)?;
    }
    let claims = results.iter().map(|r| (r.system.as_str(), r.key.as_str()));
    for (system, key) in claims.chain(released.iter().map(|(s, k)| (s.as_str(), k.as_str()))) {
        tx.prepare_cached("DELETE FROM action_claims WHERE system = ?1 AND key = ?2 AND run = ?3")
            .and_then(|mut s| s.execute(params![system, key, run.id]))
            .map_err(&write)?;
    }
    queue_notices(tx, notices, &texts.notices, None)?;
    if let Some(text) = &texts.tallies {
        tx.prepare_cached("INSERT INTO monitor_pending (tallies) VALUES (?1)")
            .and_then(|mut s| s.execute([text]))
            .map_err(&write)?;
    }
    if let Some(minute) = check {
        tx.prepare_cached("INSERT OR REPLACE INTO monitor_checks (run, flow, minute) VALUES (?1, ?2, ?3)")
            .and_then(|mut s| s.execute(params![run.id, run.flow, minute]))
            .map_err(&write)?;
    }
    Ok(())
}

const ALERT_COLUMNS: &str = "id, flow, monitor, severity, routes, condition, raised, value, resolved, cleared";

fn alert_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<super::Alert> {
    Ok(super::Alert {
        id: row.get(0)?,
        flow: row.get(1)?,
        monitor: row.get(2)?,
        severity: row.get(3)?,
        routes: row.get::<_, String>(4)?.split_whitespace().map(str::to_owned).collect(),
        condition: row.get(5)?,
        raised: row.get(6)?,
        value: row.get(7)?,
        resolved: row.get(8)?,
        cleared: row.get(9)?,
    })
}

/// Queues notices in a transaction, named `refusals.SEQ` when `refusal` is given; an
/// endpoint that has a notice of the same id keeps it.
fn queue_notices(tx: &Connection, notices: &[super::Notice], data: &[String], refusal: Option<u64>) -> Result<()> {
    let created = crate::identity::now().to_string();
    for (notice, data) in notices.iter().zip(data) {
        let id = refusal.map_or_else(|| notice.id.clone(), |seq| format!("refusals.{seq}"));
        tx.prepare_cached(
            "INSERT OR IGNORE INTO deliveries (endpoint, id, kind, data, created, next_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .and_then(|mut s| s.execute(params![notice.endpoint, id, notice.kind, data, created, now_ms()]))
        .map_err(unusable("cannot queue a notice"))?;
    }
    Ok(())
}

fn delivery_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(super::Delivery, String, String)> {
    Ok((
        super::Delivery {
            notice: super::Notice { endpoint: row.get(0)?, id: row.get(1)?, kind: row.get(2)?, data: Json::Null },
            created: row.get(4)?,
            state: super::DeliveryState::Pending,
            attempts: row.get::<_, i64>(6)? as u32,
            error: row.get(7)?,
        },
        row.get(3)?,
        row.get(5)?,
    ))
}

const DELIVERY_COLUMNS: &str = "endpoint, id, kind, data, created, state, attempts, error";

/// A delivery as read, its data and state parsed.
fn with_data((mut delivery, data, state): (super::Delivery, String, String)) -> Result<super::Delivery> {
    let what = format!("notice `{}` for endpoint `{}`", delivery.notice.id, delivery.notice.endpoint);
    delivery.notice.data = serde_json::from_str(&data)
        .map_err(|e| StoreError::Unusable(format!("the data of {what} is not JSON: {e}")))?;
    delivery.state = super::DeliveryState::parse(&state)
        .ok_or_else(|| StoreError::Unusable(format!("{what} has an unknown state `{state}`")))?;
    Ok(delivery)
}

/// Brings a store to [`SCHEMA_VERSION`]: creates an empty one at [`BASE_VERSION`], then
/// applies each migration in a transaction of its own that first reads the version again,
/// so that processes opening one store at once migrate it once, and a store interrupted
/// while it migrates is left at a version. Refuses a store of a newer version, one from
/// before migrations, and a database that is not a run store, changing nothing.
fn migrate(conn: &mut Connection) -> Result<()> {
    loop {
        let failed = |e: rusqlite::Error| StoreError::Unusable(format!("is not a usable run store: {e}"));
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(failed)?;
        let version: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(failed)?;
        let tables: i64 = tx
            .query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table'", [], |row| row.get(0))
            .map_err(failed)?;
        let version = match (tables, version) {
            (0, _) => {
                tx.execute_batch(BASE).map_err(failed)?;
                BASE_VERSION
            }
            (_, 0) => {
                return Err(StoreError::Unusable(
                    "is not a run store: it is a SQLite database with tables of something else".to_owned(),
                ));
            }
            (_, version) if version > SCHEMA_VERSION => {
                return Err(StoreError::Unusable(format!(
                    "was written by a newer version of Flow (schema {version}; this version knows schemas up to \
                     {SCHEMA_VERSION}): use that version"
                )));
            }
            (_, version) if version < BASE_VERSION => {
                return Err(StoreError::Unusable(format!(
                    "is a run store of schema {version}, from before stores were migrated (schema {BASE_VERSION}); \
                     this version cannot open it"
                )));
            }
            (_, version) => version,
        };
        if version == SCHEMA_VERSION {
            tx.pragma_update(None, "user_version", version).map_err(failed)?;
            return tx.commit().map_err(failed);
        }
        let next = version + 1;
        tx.execute_batch(MIGRATIONS[(version - BASE_VERSION) as usize])
            .and_then(|()| tx.pragma_update(None, "user_version", next))
            .and_then(|()| tx.commit())
            .map_err(|e| StoreError::Unusable(format!("could not be migrated from schema {version} to {next}: {e}")))?;
    }
}

fn read_action_result(conn: &Connection, system: &str, key: &str) -> Result<Option<ActionResult>> {
    let row: Option<(String, String, i64, String)> = conn
        .query_row(
            "SELECT result, run, seq, args FROM action_results WHERE system = ?1 AND key = ?2",
            [system, key],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .optional()
        .map_err(unusable("cannot read action results"))?;
    row.map(|(text, run, seq, args)| {
        let result = serde_json::from_str(&text)
            .map_err(|e| StoreError::Unusable(format!("a stored action result is not JSON: {e}")))?;
        Ok(ActionResult { system: system.to_owned(), key: key.to_owned(), result, run, seq: seq as u64, args })
    })
    .transpose()
}

/// The lease of a live holder, or `None` when `owner` may take it: nobody holds it, it
/// expired, or `owner` holds it.
fn held_by_another(holder: Option<(String, i64)>, owner: &str) -> Option<Lease> {
    let (holder, until) = holder?;
    let remaining_ms = until - now_ms();
    (holder != owner && remaining_ms > 0).then_some(Lease { owner: holder, remaining_ms })
}

/// Appends `entry` to the log inside `tx` and replaces the checkpoint (signed with `key`).
/// Appends `entries` to the log inside `tx` and replaces the checkpoint (signed with `key`).
fn log_append(tx: &Connection, entries: &[crate::checkpoint::Entry], key: Option<Signer<'_>>) -> Result<()> {
    use crate::checkpoint::Checkpoint;
    let write = unusable("cannot write the store's log");
    let current: Option<(Checkpoint, String)> = tx
        .query_row("SELECT size, root, at, public_key, signature, frontier FROM checkpoint WHERE id = 0", [], |row| {
            let checkpoint = Checkpoint {
                size: row.get::<_, i64>(0)? as u64,
                root: row.get(1)?,
                at: row.get(2)?,
                public_key: row.get(3)?,
                signature: row.get(4)?,
            };
            Ok((checkpoint, row.get(5)?))
        })
        .optional()
        .map_err(&write)?;
    // Only a signing deployment checks that the checkpoint covers the log as it stands.
    let last: Option<i64> = match key {
        Some(_) => tx.query_row("SELECT max(n) FROM log", [], |row| row.get(0)).map_err(&write)?,
        None => None,
    };
    let next = super::extend_log(current, last.map(|n| n as u64), entries, key)?;
    for (i, entry) in entries.iter().enumerate() {
        let n = (next.n + i as u64) as i64;
        tx.prepare_cached("INSERT INTO log (n, kind, subject, seq, hash) VALUES (?1, ?2, ?3, ?4, ?5)")
            .and_then(|mut st| st.execute(params![n, entry.kind.as_str(), entry.subject, entry.seq as i64, entry.hash]))
            .map_err(|e| match e.sqlite_error_code() {
                Some(rusqlite::ErrorCode::ConstraintViolation) => {
                    StoreError::Changed("the store's log does not end where its checkpoint says".into())
                }
                _ => write(e),
            })?;
    }
    let checkpoint = &next.checkpoint;
    tx.prepare_cached(
        "INSERT OR REPLACE INTO checkpoint (id, size, root, at, public_key, signature, frontier) \
         VALUES (0, ?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .and_then(|mut st| {
        st.execute(params![
            checkpoint.size as i64,
            checkpoint.root,
            checkpoint.at,
            checkpoint.public_key,
            checkpoint.signature,
            next.frontier
        ])
    })
    .map_err(&write)?;
    Ok(())
}

fn unusable(what: &str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |error| StoreError::Unusable(format!("{what}: {error}"))
}

impl SqliteStore {
    /// Opens (creating when missing) the store at `path`; `:memory:` keeps it in memory.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        let shown = path.display().to_string();
        let in_memory = path.as_os_str() == ":memory:";
        let conn = if in_memory {
            Connection::open_in_memory()
        } else {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .map_err(|e| StoreError::Unusable(format!("cannot create `{}`: {e}", parent.display())))?;
            }
            Connection::open(path)
        }
        .map_err(|e| StoreError::Unusable(format!("cannot open the run store `{shown}`: {e}")))?;
        let not_a_store = |e: rusqlite::Error| {
            StoreError::Unusable(format!("`{shown}` is not a usable run store (corrupted or not SQLite?): {e}"))
        };
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(not_a_store)?;
        // A new store's pages are of 8 KB (SQLite's default is 4): a run's events span fewer
        // pages and split them less often, which makes a group of commits about a sixth
        // faster and a lone commit a twentieth slower (`docs/benchmarks.md`). A store that
        // exists keeps the size it was created with.
        conn.pragma_update(None, "page_size", 8192).map_err(not_a_store)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(not_a_store)?;
        // WAL with `synchronous = NORMAL` loses no committed transaction when the process
        // dies; `FULL` also survives power loss at the cost of an fsync per commit.
        let sync = if std::env::var_os("FLOW_STORE_SYNC_FULL").is_some() { "FULL" } else { "NORMAL" };
        conn.pragma_update(None, "synchronous", sync).map_err(not_a_store)?;
        // A group of commits dirties a few pages per run; with SQLite's default cache (2 MB)
        // a large group spills pages to the log before it commits, writing some twice.
        conn.pragma_update(None, "cache_size", -16_384).map_err(not_a_store)?;
        // A commit runs a dozen statements, more than rusqlite keeps by default.
        conn.set_prepared_statement_cache_capacity(64);
        let mut conn = conn;
        migrate(&mut conn).map_err(|e| match e {
            StoreError::Unusable(why) => StoreError::Unusable(format!("`{shown}` {why}")),
            other => other,
        })?;
        let writer =
            if in_memory { writer::Writer::new(conn, None) } else { writer::Writer::new(conn, Some((path, sync))) };
        Ok(SqliteStore { writer })
    }

    /// How many transactions this handle's appends took, and how many appends there were:
    /// appends that arrive together share one (see [`writer`]).
    pub fn commit_groups(&self) -> (u64, u64) {
        self.writer.groups()
    }

    fn conn(&self) -> Result<writer::Connected<'_>> {
        self.writer.conn()
    }
}

/// An event from the columns `seq, at, prev, hash, body`, starting at column `first`.
fn raw_event(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<RawEvent> {
    Ok(RawEvent {
        seq: row.get::<_, i64>(first)? as u64,
        at: row.get(first + 1)?,
        prev: row.get(first + 2)?,
        hash: row.get(first + 3)?,
        body: row.get(first + 4)?,
    })
}

fn run_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(RunRecord, String)> {
    let status: String = row.get(3)?;
    Ok((
        RunRecord {
            id: row.get(0)?,
            plan: row.get(1)?,
            flow: row.get(2)?,
            status: Status::Running,
            created: row.get(4)?,
            seq: row.get::<_, i64>(5)? as u64,
            head: row.get(6)?,
            signature: row.get(7)?,
            principal: row.get(8)?,
            owner: match (row.get::<_, Option<String>>(9)?, row.get::<_, Option<i64>>(10)?) {
                (Some(owner), Some(until)) => Some(Lease { owner, remaining_ms: until - now_ms() }),
                _ => None,
            },
        },
        status,
    ))
}

fn with_status((mut run, status): (RunRecord, String)) -> Result<RunRecord> {
    run.status = Status::parse(&status)
        .ok_or_else(|| StoreError::Unusable(format!("run `{}` has an unknown status `{status}`", run.id)))?;
    Ok(run)
}

const RUN_COLUMNS: &str = "id, plan, flow, status, created, seq, head, signature, principal, owner, lease_until";

impl Store for SqliteStore {
    fn put_plan(&self, hash: &str, bytes: &[u8]) -> Result<()> {
        self.conn()?
            .execute("INSERT OR IGNORE INTO plans (hash, bytes) VALUES (?1, ?2)", params![hash, bytes])
            .map_err(unusable("cannot store the plan"))?;
        Ok(())
    }

    fn plan(&self, hash: &str) -> Result<Option<Vec<u8>>> {
        self.conn()?
            .query_row("SELECT bytes FROM plans WHERE hash = ?1", [hash], |row| row.get(0))
            .optional()
            .map_err(unusable("cannot read the plan"))
    }

    fn plans(&self) -> Result<Vec<String>> {
        let conn = self.conn()?;
        let mut statement =
            conn.prepare("SELECT hash FROM plans ORDER BY hash").map_err(unusable("cannot read the plans"))?;
        let hashes = statement
            .query_map([], |row| row.get(0))
            .and_then(Iterator::collect)
            .map_err(unusable("cannot read the plans"))?;
        Ok(hashes)
    }

    fn append_all(&self, commits: &[Commit<'_>]) -> Result<()> {
        self.writer.append(commits)
    }

    fn run(&self, id: &str) -> Result<Option<RunRecord>> {
        let row = self
            .conn()?
            .query_row(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"), [id], run_from_row)
            .optional()
            .map_err(unusable("cannot read the run"))?;
        row.map(with_status).transpose()
    }

    fn runs(&self, status: Option<Status>) -> Result<Vec<RunRecord>> {
        let conn = self.conn()?;
        let mut statement = conn
            .prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE ?1 IS NULL OR status = ?1 ORDER BY created, id"
            ))
            .map_err(unusable("cannot read the runs"))?;
        let rows = statement
            .query_map([status.map(Status::as_str)], run_from_row)
            .map_err(unusable("cannot read the runs"))?;
        rows.map(|row| with_status(row.map_err(unusable("cannot read a run"))?)).collect()
    }

    fn events(&self, run: &str) -> Result<Vec<RawEvent>> {
        let conn = self.conn()?;
        let mut statement = conn
            .prepare_cached("SELECT seq, at, prev, hash, body FROM events WHERE run = ?1 ORDER BY seq")
            .map_err(unusable("cannot read the events"))?;
        let rows = statement.query_map([run], |row| raw_event(row, 0)).map_err(unusable("cannot read the events"))?;
        rows.collect::<rusqlite::Result<_>>().map_err(unusable("cannot read an event"))
    }

    fn scan_events(&self, f: &mut dyn FnMut(&str, Vec<RawEvent>) -> bool) -> Result<()> {
        let conn = self.conn()?;
        let mut statement = conn
            .prepare("SELECT run, seq, at, prev, hash, body FROM events ORDER BY run, seq")
            .map_err(unusable("cannot read the events"))?;
        let mut rows = statement.query([]).map_err(unusable("cannot read the events"))?;
        let mut run = String::new();
        let mut events = Vec::new();
        while let Some(row) = rows.next().map_err(unusable("cannot read an event"))? {
            let this = row.get_ref(0).and_then(|r| Ok(r.as_str()?)).map_err(unusable("cannot read an event"))?;
            if this != run {
                if !events.is_empty() && !f(&run, std::mem::take(&mut events)) {
                    return Ok(());
                }
                this.clone_into(&mut run);
            }
            events.push(raw_event(row, 1).map_err(unusable("cannot read an event"))?);
        }
        if !events.is_empty() {
            f(&run, events);
        }
        Ok(())
    }

    fn waiting(&self) -> Result<Vec<Waiting>> {
        let conn = self.conn()?;
        let mut statement = conn
            .prepare("SELECT run, flow, step, kind, roles, due FROM waiting ORDER BY run, step")
            .map_err(unusable("cannot read the waiting steps"))?;
        let rows = statement
            .query_map([], |row| {
                let roles: String = row.get(4)?;
                Ok(Waiting {
                    run: row.get(0)?,
                    flow: row.get(1)?,
                    step: row.get(2)?,
                    kind: row.get(3)?,
                    roles: roles.split_whitespace().map(str::to_owned).collect(),
                    due: row.get(5)?,
                })
            })
            .map_err(unusable("cannot read the waiting steps"))?;
        rows.map(|r| r.map_err(unusable("cannot read a waiting step"))).collect()
    }

    fn due_runs(&self, now: i64, after: Option<(i64, &str)>, limit: usize) -> Result<Vec<(String, i64)>> {
        let conn = self.conn()?;
        let mut statement = conn
            .prepare(
                "SELECT run, MIN(due) AS next FROM waiting WHERE due <= ?1 GROUP BY run \
                 HAVING (next, run) > (?2, ?3) ORDER BY next, run LIMIT ?4",
            )
            .map_err(unusable("cannot read the waiting steps' timers"))?;
        let (from, from_run) = after.unwrap_or((i64::MIN, ""));
        let rows = statement
            .query_map(params![now, from, from_run, limit as i64], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(unusable("cannot read the waiting steps' timers"))?;
        rows.map(|r| r.map_err(unusable("cannot read a waiting step's timer"))).collect()
    }

    fn pending_steps(&self) -> Result<Vec<PendingStep>> {
        let conn = self.conn()?;
        let mut statement = conn
            .prepare_cached(
                "SELECT r.id, r.plan, r.created, w.flow, w.step, w.kind, w.roles, w.due FROM runs r \
                 LEFT JOIN waiting w ON w.run = r.id WHERE r.status = ?1 ORDER BY r.created, r.id, w.step",
            )
            .map_err(unusable("cannot read the waiting steps"))?;
        let rows = statement
            .query_map([Status::Pending.as_str()], |row| {
                let run: String = row.get(0)?;
                let step: Option<String> = row.get(4)?;
                let waiting = match step {
                    Some(step) => Some(Waiting {
                        run: run.clone(),
                        flow: row.get(3)?,
                        step,
                        kind: row.get(5)?,
                        roles: row.get::<_, String>(6)?.split_whitespace().map(str::to_owned).collect(),
                        due: row.get(7)?,
                    }),
                    None => None,
                };
                Ok(PendingStep { run, plan: row.get(1)?, created: row.get(2)?, waiting })
            })
            .map_err(unusable("cannot read the waiting steps"))?;
        rows.map(|r| r.map_err(unusable("cannot read a waiting step"))).collect()
    }

    fn action_result(&self, system: &str, key: &str) -> Result<Option<ActionResult>> {
        read_action_result(&*self.conn()?, system, key)
    }

    fn action_results(&self) -> Result<Vec<ActionResult>> {
        let conn = self.conn()?;
        let mut statement = conn
            .prepare("SELECT system, key, result, run, seq, args FROM action_results ORDER BY system, key")
            .map_err(unusable("cannot read action results"))?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, i64>(4)?,
                    row.get::<_, String>(5)?,
                ))
            })
            .map_err(unusable("cannot read action results"))?;
        let mut out = Vec::new();
        for row in rows {
            let (system, key, text, run, seq, args) = row.map_err(unusable("cannot read an action result"))?;
            let result = serde_json::from_str(&text)
                .map_err(|e| StoreError::Unusable(format!("a stored action result is not JSON: {e}")))?;
            out.push(ActionResult { system, key, result, run, seq: seq as u64, args });
        }
        Ok(out)
    }

    fn record_refusal(&self, refusal: [&str; 5], key: Option<Signer<'_>>, notices: &[super::Notice]) -> Result<()> {
        let [at, principal, operation, grant, message] = refusal;
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(unusable("cannot record the refusal"))?;
        // The chain goes on only from the refusal the log recorded last: one rewritten
        // behind the log is not extended (and, in a signing deployment, not signed over).
        let (last, logged) = chain_ends(&tx, "refusals", crate::checkpoint::Kind::Refusal)?;
        let (seq, prev, hash) = super::next_refusal(last, logged, refusal)?;
        tx.execute(
            "INSERT INTO refusals (seq, at, principal, operation, grant, message, prev, hash) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![seq as i64, at, principal, operation, grant, message, prev, hash],
        )
        .map_err(unusable("cannot record the refusal"))?;
        let entry = crate::checkpoint::Entry {
            kind: crate::checkpoint::Kind::Refusal,
            subject: "refusals".to_owned(),
            seq,
            hash,
        };
        log_append(&tx, std::slice::from_ref(&entry), key)?;
        queue_notices(&tx, notices, &notice_texts(notices), Some(seq))?;
        tx.commit().map_err(unusable("cannot record the refusal"))
    }

    fn append_release(
        &self,
        entry: &super::ReleaseEntry,
        key: Option<Signer<'_>>,
        notices: &[super::Notice],
    ) -> Result<()> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(unusable("cannot record the release step"))?;
        let (last, logged) = chain_ends(&tx, "releases", crate::checkpoint::Kind::Release)?;
        let logged_entry = super::next_release(last, logged, entry)?;
        insert_release(&tx, entry).map_err(unusable("cannot record the release step"))?;
        log_append(&tx, std::slice::from_ref(&logged_entry), key)?;
        queue_notices(&tx, notices, &notice_texts(notices), None)?;
        tx.commit().map_err(unusable("cannot record the release step"))
    }

    fn releases(&self, from: u64) -> Result<super::ReleaseEntries> {
        // One read transaction: the entries and the log's last release entry of one moment.
        let mut conn = self.conn()?;
        let conn = conn.transaction().map_err(unusable("cannot read the release log"))?;
        let mut statement = conn
            .prepare(
                "SELECT seq, at, prev, hash, body, public_key, signature FROM releases WHERE seq >= ?1 ORDER BY seq",
            )
            .map_err(unusable("cannot read the release log"))?;
        let rows = statement
            .query_map([from as i64], |row| {
                let signature = match (row.get::<_, Option<String>>(5)?, row.get::<_, Option<String>>(6)?) {
                    (Some(key), Some(value)) => Some((key, value)),
                    _ => None,
                };
                Ok(super::ReleaseEntry {
                    seq: row.get::<_, i64>(0)? as u64,
                    at: row.get(1)?,
                    prev: row.get(2)?,
                    hash: row.get(3)?,
                    body: row.get(4)?,
                    signature,
                })
            })
            .map_err(unusable("cannot read the release log"))?;
        let entries = rows.map(|r| r.map_err(unusable("cannot read the release log"))).collect::<Result<Vec<_>>>()?;
        drop(statement);
        let logged: Option<(i64, String)> = conn
            .query_row(
                "SELECT seq, hash FROM log WHERE kind = ?1 ORDER BY n DESC LIMIT 1",
                [crate::checkpoint::Kind::Release.as_str()],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(unusable("cannot read the store's log"))?;
        Ok((entries, logged.map(|(seq, hash)| (seq as u64, hash))))
    }

    fn refusals(&self) -> Result<Vec<Refusal>> {
        let conn = self.conn()?;
        let mut statement = conn
            .prepare("SELECT seq, at, principal, operation, grant, message, prev, hash FROM refusals ORDER BY seq")
            .map_err(unusable("cannot read refusals"))?;
        let rows = statement
            .query_map([], |row| {
                Ok(Refusal {
                    seq: row.get::<_, i64>(0)? as u64,
                    at: row.get(1)?,
                    principal: row.get(2)?,
                    operation: row.get(3)?,
                    grant: row.get(4)?,
                    message: row.get(5)?,
                    prev: row.get(6)?,
                    hash: row.get(7)?,
                })
            })
            .map_err(unusable("cannot read refusals"))?;
        rows.map(|r| r.map_err(unusable("cannot read a refusal"))).collect()
    }

    fn put_shadow(&self, shadow: &ShadowRecord, key: Option<Signer<'_>>) -> Result<()> {
        let digest = shadow.digest();
        let signature = key.map(|signer| crate::checkpoint::sign_shadow(signer.key, &digest));
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(unusable("cannot store the shadow run"))?;
        tx.execute(
            "INSERT OR REPLACE INTO shadows (run, candidate, flow, created, production, outcome, changes, signature) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                shadow.run,
                shadow.candidate,
                shadow.flow,
                shadow.created,
                shadow.production,
                shadow.outcome,
                shadow.changes.to_string(),
                signature
            ],
        )
        .map_err(unusable("cannot store the shadow run"))?;
        let entry = crate::checkpoint::Entry {
            kind: crate::checkpoint::Kind::Shadow,
            subject: format!("{}/{}", shadow.run, shadow.candidate),
            seq: 0,
            hash: digest,
        };
        log_append(&tx, std::slice::from_ref(&entry), key)?;
        tx.commit().map_err(unusable("cannot store the shadow run"))
    }

    fn log(&self) -> Result<Vec<crate::checkpoint::Entry>> {
        let conn = self.conn()?;
        let mut statement = conn
            .prepare("SELECT n, kind, subject, seq, hash FROM log ORDER BY n")
            .map_err(unusable("cannot read the log"))?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, i64>(3)?,
                    row.get::<_, String>(4)?,
                ))
            })
            .map_err(unusable("cannot read the log"))?;
        let mut out = Vec::new();
        for row in rows {
            let (n, kind, subject, seq, hash) = row.map_err(unusable("cannot read the log"))?;
            let kind = crate::checkpoint::Kind::parse(&kind).ok_or_else(|| {
                StoreError::Unusable(format!("entry {n} of the store's log has an unknown kind `{kind}`"))
            })?;
            if n as usize != out.len() {
                return Err(StoreError::Unusable(format!("the store's log has no entry {}", out.len())));
            }
            out.push(crate::checkpoint::Entry { kind, subject, seq: seq as u64, hash });
        }
        Ok(out)
    }

    fn checkpoint(&self) -> Result<Option<crate::checkpoint::Checkpoint>> {
        self.conn()?
            .query_row("SELECT size, root, at, public_key, signature FROM checkpoint WHERE id = 0", [], |row| {
                Ok(crate::checkpoint::Checkpoint {
                    size: row.get::<_, i64>(0)? as u64,
                    root: row.get(1)?,
                    at: row.get(2)?,
                    public_key: row.get(3)?,
                    signature: row.get(4)?,
                })
            })
            .optional()
            .map_err(unusable("cannot read the store's checkpoint"))
    }

    fn shadows(&self, run: Option<&str>) -> Result<Vec<ShadowRecord>> {
        let conn = self.conn()?;
        let which = if run.is_some() { "WHERE run = ?1" } else { "WHERE ?1 IS NULL" };
        let mut statement = conn
            .prepare(&format!(
                "SELECT run, candidate, flow, created, production, outcome, changes, signature FROM shadows \
                 {which} ORDER BY created, run"
            ))
            .map_err(unusable("cannot read the shadow runs"))?;
        let rows = statement
            .query_map([run], |row| {
                Ok((
                    ShadowRecord {
                        run: row.get(0)?,
                        candidate: row.get(1)?,
                        flow: row.get(2)?,
                        created: row.get(3)?,
                        production: row.get(4)?,
                        outcome: row.get(5)?,
                        changes: Json::Null,
                        signature: row.get(7)?,
                    },
                    row.get::<_, String>(6)?,
                ))
            })
            .map_err(unusable("cannot read the shadow runs"))?;
        let mut out = Vec::new();
        for row in rows {
            let (mut shadow, changes) = row.map_err(unusable("cannot read a shadow run"))?;
            shadow.changes = serde_json::from_str(&changes).map_err(|e| {
                StoreError::Unusable(format!("the shadow of run `{}` in the store is not JSON: {e}", shadow.run))
            })?;
            out.push(shadow);
        }
        Ok(out)
    }

    fn claim_run(&self, run: &str, owner: &str, ttl_ms: i64) -> Result<Option<Lease>> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(unusable("cannot claim the run"))?;
        let row: Option<(String, Option<String>, Option<i64>)> = tx
            .query_row("SELECT status, owner, lease_until FROM runs WHERE id = ?1", [run], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .optional()
            .map_err(unusable("cannot claim the run"))?;
        let Some((status, holder, until)) = row else { return Ok(None) };
        if status != Status::Running.as_str() {
            return Ok(None);
        }
        if let Some(lease) = held_by_another(holder.zip(until), owner) {
            return Ok(Some(lease));
        }
        tx.execute(
            "UPDATE runs SET owner = ?1, lease_until = ?2 WHERE id = ?3",
            params![owner, now_ms() + ttl_ms, run],
        )
        .map_err(unusable("cannot claim the run"))?;
        tx.commit().map_err(unusable("cannot claim the run"))?;
        Ok(None)
    }

    fn claim_interrupted(&self, owner: &str, ttl_ms: i64) -> Result<Option<String>> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(unusable("cannot claim an interrupted run"))?;
        let now = now_ms();
        let run: Option<String> = tx
            .query_row(
                "SELECT id FROM runs WHERE status = ?1 AND (lease_until IS NULL OR lease_until <= ?2) \
                 ORDER BY created, id LIMIT 1",
                params![Status::Running.as_str(), now],
                |row| row.get(0),
            )
            .optional()
            .map_err(unusable("cannot claim an interrupted run"))?;
        if let Some(run) = &run {
            tx.execute("UPDATE runs SET owner = ?1, lease_until = ?2 WHERE id = ?3", params![owner, now + ttl_ms, run])
                .map_err(unusable("cannot claim an interrupted run"))?;
        }
        tx.commit().map_err(unusable("cannot claim an interrupted run"))?;
        Ok(run)
    }

    fn claim_action(&self, system: &str, key: &str, run: &str, owner: &str, ttl_ms: i64) -> Result<ActionClaim> {
        let mut conn = self.conn()?;
        let failed = unusable("cannot claim the action");
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(&failed)?;
        let holder: Option<(String, String, i64)> = tx
            .query_row(
                "SELECT owner, run, lease_until FROM action_claims WHERE system = ?1 AND key = ?2",
                [system, key],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()
            .map_err(&failed)?;
        // A claim is this claimant's only when the same runtime claimed it for the same run.
        if let Some((holder, holder_run, until)) = holder
            && !(holder == owner && holder_run == run)
            && until > now_ms()
        {
            return Ok(ActionClaim::Held(Lease { owner: holder, remaining_ms: until - now_ms() }));
        }
        if let Some(result) = read_action_result(&tx, system, key)? {
            return Ok(ActionClaim::Done(result));
        }
        tx.execute(
            "INSERT OR REPLACE INTO action_claims (system, key, run, owner, lease_until) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![system, key, run, owner, now_ms() + ttl_ms],
        )
        .map_err(&failed)?;
        tx.commit().map_err(&failed)?;
        Ok(ActionClaim::Claimed)
    }

    fn renew(&self, owner: &str, held: &[Held], ttl_ms: i64) -> Result<()> {
        let mut conn = self.conn()?;
        let failed = unusable("cannot renew leases");
        let tx = conn.transaction().map_err(&failed)?;
        let until = now_ms() + ttl_ms;
        for held in held {
            match held {
                Held::Run(run) => tx.execute(
                    "UPDATE runs SET lease_until = ?1 WHERE owner = ?2 AND id = ?3",
                    params![until, owner, run],
                ),
                Held::Action(system, key) => tx.execute(
                    "UPDATE action_claims SET lease_until = ?1 WHERE owner = ?2 AND system = ?3 AND key = ?4",
                    params![until, owner, system, key],
                ),
                Held::Case(batch, n) => tx.execute(
                    "UPDATE queue SET lease_until = ?1 WHERE owner = ?2 AND batch = ?3 AND n = ?4 AND NOT done",
                    params![until, owner, batch, *n as i64],
                ),
            }
            .map_err(&failed)?;
        }
        tx.commit().map_err(&failed)
    }

    fn release(&self, owner: &str, held: &[Held]) -> Result<()> {
        let mut conn = self.conn()?;
        let failed = unusable("cannot release leases");
        let tx = conn.transaction().map_err(&failed)?;
        for held in held {
            match held {
                Held::Run(run) => {
                    tx.execute("UPDATE runs SET lease_until = 0 WHERE owner = ?1 AND id = ?2", params![owner, run])
                }
                Held::Action(system, key) => tx.execute(
                    "DELETE FROM action_claims WHERE owner = ?1 AND system = ?2 AND key = ?3",
                    params![owner, system, key],
                ),
                Held::Case(batch, n) => tx.execute(
                    "UPDATE queue SET lease_until = 0 WHERE owner = ?1 AND batch = ?2 AND n = ?3",
                    params![owner, batch, *n as i64],
                ),
            }
            .map_err(&failed)?;
        }
        tx.commit().map_err(&failed)
    }

    fn enqueue(&self, batch: &QueuedBatch, cases: &[(u64, String)]) -> Result<()> {
        let mut conn = self.conn()?;
        let failed = unusable("cannot queue the batch");
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(&failed)?;
        tx.execute(
            "INSERT INTO batches (id, plan, principal, options, created, cases) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                batch.id,
                batch.plan,
                batch.principal,
                batch.options.to_string(),
                batch.created,
                batch.cases as i64
            ],
        )
        .map_err(&failed)?;
        {
            let mut insert = tx.prepare("INSERT INTO queue (batch, n, body) VALUES (?1, ?2, ?3)").map_err(&failed)?;
            for (n, body) in cases {
                insert.execute(params![batch.id, *n as i64, body]).map_err(&failed)?;
            }
        }
        tx.commit().map_err(&failed)
    }

    fn batch(&self, id: &str) -> Result<Option<QueuedBatch>> {
        let row: Option<(String, String, String, String, i64)> = self
            .conn()?
            .query_row("SELECT plan, principal, options, created, cases FROM batches WHERE id = ?1", [id], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))
            })
            .optional()
            .map_err(unusable("cannot read the batch"))?;
        row.map(|(plan, principal, options, created, cases)| {
            let options = serde_json::from_str(&options)
                .map_err(|e| StoreError::Unusable(format!("the options of batch `{id}` are not JSON: {e}")))?;
            Ok(QueuedBatch { id: id.to_owned(), plan, principal, options, created, cases: cases as u64 })
        })
        .transpose()
    }

    fn take_cases(&self, owner: &str, ttl_ms: i64, limit: usize) -> Result<Vec<QueuedCase>> {
        let mut conn = self.conn()?;
        let failed = unusable("cannot take queued cases");
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(&failed)?;
        let now = now_ms();
        let taken: Vec<QueuedCase> = {
            let mut select = tx
                .prepare_cached(
                    "SELECT batch, n, body FROM queue WHERE NOT done AND (lease_until IS NULL OR lease_until <= ?1) \
                     ORDER BY batch, n LIMIT ?2",
                )
                .map_err(&failed)?;
            let rows = select
                .query_map(params![now, limit as i64], |row| {
                    Ok(QueuedCase { batch: row.get(0)?, n: row.get::<_, i64>(1)? as u64, body: row.get(2)? })
                })
                .map_err(&failed)?;
            rows.collect::<rusqlite::Result<_>>().map_err(&failed)?
        };
        for case in &taken {
            tx.prepare_cached("UPDATE queue SET owner = ?1, lease_until = ?2 WHERE batch = ?3 AND n = ?4")
                .and_then(|mut s| s.execute(params![owner, now + ttl_ms, case.batch, case.n as i64]))
                .map_err(&failed)?;
        }
        tx.commit().map_err(&failed)?;
        Ok(taken)
    }

    fn finish_cases(&self, _owner: &str, done: &[(String, u64, Json)]) -> Result<()> {
        let mut conn = self.conn()?;
        let failed = unusable("cannot record the cases' outcomes");
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(&failed)?;
        for (batch, n, outcome) in done {
            tx.prepare_cached(
                "UPDATE queue SET done = 1, outcome = ?1, owner = NULL, lease_until = NULL \
                 WHERE batch = ?2 AND n = ?3 AND NOT done",
            )
            .and_then(|mut s| s.execute(params![outcome.to_string(), batch, *n as i64]))
            .map_err(&failed)?;
        }
        tx.commit().map_err(&failed)
    }

    fn outcomes(&self, batch: &str) -> Result<Vec<(u64, Option<Json>)>> {
        let conn = self.conn()?;
        let failed = unusable("cannot read the batch's outcomes");
        let mut statement =
            conn.prepare("SELECT n, outcome FROM queue WHERE batch = ?1 ORDER BY n").map_err(&failed)?;
        let rows = statement
            .query_map([batch], |row| Ok((row.get::<_, i64>(0)? as u64, row.get::<_, Option<String>>(1)?)))
            .map_err(&failed)?;
        let mut out = Vec::new();
        for row in rows {
            let (n, outcome) = row.map_err(&failed)?;
            let outcome = outcome.map(|text| serde_json::from_str(&text)).transpose().map_err(|e| {
                StoreError::Unusable(format!("the outcome of case {n} of batch `{batch}` is not JSON: {e}"))
            })?;
            out.push((n, outcome));
        }
        Ok(out)
    }

    fn take_deliveries(
        &self,
        endpoints: &[String],
        owner: &str,
        ttl_ms: i64,
        limit: usize,
    ) -> Result<Vec<super::Delivery>> {
        let mut conn = self.conn()?;
        let failed = unusable("cannot take notices to deliver");
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(&failed)?;
        let now = now_ms();
        let taken: Vec<super::Delivery> = {
            let mut select = tx
                .prepare_cached(&format!(
                    "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE state = 'pending' AND next_at <= ?1 \
                     AND (lease_until IS NULL OR lease_until <= ?1) \
                     AND endpoint IN (SELECT value FROM json_each(?3)) ORDER BY next_at, n LIMIT ?2"
                ))
                .map_err(&failed)?;
            let endpoints = serde_json::to_string(endpoints).unwrap_or_default();
            let rows = select.query_map(params![now, limit as i64, endpoints], delivery_from_row).map_err(&failed)?;
            rows.map(|row| with_data(row.map_err(&failed)?)).collect::<Result<_>>()?
        };
        for delivery in &taken {
            tx.prepare_cached("UPDATE deliveries SET owner = ?1, lease_until = ?2 WHERE endpoint = ?3 AND id = ?4")
                .and_then(|mut s| s.execute(params![owner, now + ttl_ms, delivery.notice.endpoint, delivery.notice.id]))
                .map_err(&failed)?;
        }
        tx.commit().map_err(&failed)?;
        Ok(taken)
    }

    fn finish_delivery(&self, owner: &str, endpoint: &str, id: &str, attempt: &super::Attempt) -> Result<()> {
        let (state, next, error) = attempt.recorded();
        let state = state.as_str();
        self.conn()?
            .prepare_cached(
                "UPDATE deliveries SET state = ?1, attempts = attempts + 1, next_at = ?2, error = ?3, owner = NULL, \
                 lease_until = NULL WHERE endpoint = ?4 AND id = ?5 AND state = 'pending' AND owner = ?6",
            )
            .and_then(|mut s| s.execute(params![state, now_ms() + next, error, endpoint, id, owner]))
            .map_err(unusable("cannot record a notice's delivery"))?;
        Ok(())
    }

    fn deliveries(&self, state: Option<super::DeliveryState>) -> Result<Vec<super::Delivery>> {
        let conn = self.conn()?;
        let failed = unusable("cannot read the notices");
        let mut statement = conn
            .prepare_cached(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE ?1 IS NULL OR state = ?1 ORDER BY n"
            ))
            .map_err(&failed)?;
        let rows =
            statement.query_map([state.map(super::DeliveryState::as_str)], delivery_from_row).map_err(&failed)?;
        rows.map(|row| with_data(row.map_err(&failed)?)).collect()
    }

    fn is_empty(&self) -> Result<bool> {
        let count: i64 = self
            .conn()?
            .query_row(
                "SELECT (SELECT count(*) FROM plans) + (SELECT count(*) FROM runs) + (SELECT count(*) FROM refusals) \
                 + (SELECT count(*) FROM shadows) + (SELECT count(*) FROM log)",
                [],
                |row| row.get(0),
            )
            .map_err(unusable("cannot read the store"))?;
        Ok(count == 0)
    }

    fn monitor_window(&self, flow: &str, series: &str, after_minute: i64) -> Result<(i64, i64)> {
        self.conn()?
            .prepare_cached(
                "SELECT COALESCE(SUM(counted), 0), COALESCE(SUM(total), 0) FROM monitor_counts \
                 WHERE flow = ?1 AND series = ?2 AND minute > ?3",
            )
            .and_then(|mut s| s.query_row(params![flow, series, after_minute], |row| Ok((row.get(0)?, row.get(1)?))))
            .map_err(unusable("cannot read the monitors' counts"))
    }

    fn monitor_totals(&self) -> Result<Vec<super::Tally>> {
        let conn = self.conn()?;
        let mut statement = conn
            .prepare(
                "SELECT flow, series, SUM(counted), SUM(total) FROM monitor_counts GROUP BY flow, series \
                 ORDER BY flow, series",
            )
            .map_err(unusable("cannot read the monitors' counts"))?;
        let rows = statement
            .query_map([], |row| {
                Ok(super::Tally {
                    flow: row.get(0)?,
                    series: row.get(1)?,
                    minute: 0,
                    counted: row.get(2)?,
                    of: row.get(3)?,
                })
            })
            .map_err(unusable("cannot read the monitors' counts"))?;
        rows.map(|r| r.map_err(unusable("cannot read the monitors' counts"))).collect()
    }

    fn fold_monitor_pending(&self) -> Result<usize> {
        let mut conn = self.conn()?;
        let failed = unusable("cannot fold the monitors' pending counts");
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(&failed)?;
        let pending: Vec<(i64, String)> = {
            let mut statement = tx.prepare("SELECT n, tallies FROM monitor_pending ORDER BY n").map_err(&failed)?;
            let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?))).map_err(&failed)?;
            rows.collect::<rusqlite::Result<_>>().map_err(&failed)?
        };
        let Some((last, _)) = pending.last() else { return Ok(0) };
        let sums = super::sum_tallies(pending.iter().map(|(_, text)| text.as_str()))?;
        for ((flow, series, minute), (counted, of)) in sums {
            tx.prepare_cached(
                "INSERT INTO monitor_counts (flow, series, minute, counted, total) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (flow, series, minute) DO UPDATE SET counted = counted + excluded.counted, \
                 total = total + excluded.total",
            )
            .and_then(|mut s| s.execute(params![flow, series, minute, counted, of]))
            .map_err(&failed)?;
        }
        tx.execute("DELETE FROM monitor_pending WHERE n <= ?1", [last]).map_err(&failed)?;
        tx.commit().map_err(&failed)?;
        Ok(pending.len())
    }

    fn monitor_checks(&self, limit: usize) -> Result<Vec<(String, String, i64)>> {
        let conn = self.conn()?;
        let mut statement = conn
            .prepare_cached("SELECT run, flow, minute FROM monitor_checks ORDER BY minute, run LIMIT ?1")
            .map_err(unusable("cannot read the runs to check"))?;
        let rows = statement
            .query_map([limit as i64], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .map_err(unusable("cannot read the runs to check"))?;
        rows.map(|r| r.map_err(unusable("cannot read a run to check"))).collect()
    }

    fn finish_monitor_check(&self, run: &str, tallies: &[super::Tally]) -> Result<bool> {
        let mut conn = self.conn()?;
        let failed = unusable("cannot record a run's check");
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(&failed)?;
        let taken = tx.execute("DELETE FROM monitor_checks WHERE run = ?1", [run]).map_err(&failed)?;
        if taken == 1 && !tallies.is_empty() {
            tx.execute("INSERT INTO monitor_pending (tallies) VALUES (?1)", [super::encode_tallies(tallies)])
                .map_err(&failed)?;
        }
        tx.commit().map_err(&failed)?;
        Ok(taken == 1)
    }

    fn fold_monitor_counts(&self, before_minute: i64) -> Result<()> {
        let mut conn = self.conn()?;
        let failed = unusable("cannot fold the monitors' counts");
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(&failed)?;
        tx.execute(
            "INSERT INTO monitor_counts (flow, series, minute, counted, total) \
             SELECT flow, series, 0, SUM(counted), SUM(total) FROM monitor_counts \
             WHERE minute > 0 AND minute <= ?1 GROUP BY flow, series \
             ON CONFLICT (flow, series, minute) DO UPDATE SET counted = counted + excluded.counted, \
             total = total + excluded.total",
            [before_minute],
        )
        .map_err(&failed)?;
        tx.execute("DELETE FROM monitor_counts WHERE minute > 0 AND minute <= ?1", [before_minute]).map_err(&failed)?;
        tx.commit().map_err(&failed)
    }

    fn raise_alert(&self, alert: &super::Alert, notices: &[super::Notice]) -> Result<bool> {
        let mut conn = self.conn()?;
        let failed = unusable("cannot record the alert");
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(&failed)?;
        let raised = tx
            .execute(
                "INSERT OR IGNORE INTO alerts (id, flow, monitor, severity, routes, condition, raised, value) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    alert.id,
                    alert.flow,
                    alert.monitor,
                    alert.severity,
                    alert.routes.join(" "),
                    alert.condition,
                    alert.raised,
                    alert.value
                ],
            )
            .map_err(&failed)?;
        if raised == 1 {
            queue_notices(&tx, notices, &notice_texts(notices), None)?;
        }
        tx.commit().map_err(&failed)?;
        Ok(raised == 1)
    }

    fn resolve_alert(&self, id: &str, at: &str, value: &str, notices: &[super::Notice]) -> Result<bool> {
        let mut conn = self.conn()?;
        let failed = unusable("cannot resolve the alert");
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(&failed)?;
        let resolved = tx
            .execute(
                "UPDATE alerts SET resolved = ?2, cleared = ?3 WHERE id = ?1 AND resolved IS NULL",
                params![id, at, value],
            )
            .map_err(&failed)?;
        if resolved == 1 {
            queue_notices(&tx, notices, &notice_texts(notices), None)?;
        }
        tx.commit().map_err(&failed)?;
        Ok(resolved == 1)
    }

    fn alerts(&self, open_only: bool, limit: usize) -> Result<Vec<super::Alert>> {
        let conn = self.conn()?;
        let mut statement = conn
            .prepare_cached(&format!(
                "SELECT {ALERT_COLUMNS} FROM alerts WHERE resolved IS NULL OR NOT ?1 \
                 ORDER BY resolved IS NOT NULL, COALESCE(resolved, raised) DESC, id LIMIT ?2"
            ))
            .map_err(unusable("cannot read the alerts"))?;
        let rows = statement
            .query_map(params![open_only, limit as i64], alert_from_row)
            .map_err(unusable("cannot read the alerts"))?;
        rows.map(|r| r.map_err(unusable("cannot read an alert"))).collect()
    }

    fn import(&self, parts: &[Part<'_>]) -> Result<()> {
        let mut conn = self.conn()?;
        let failed = unusable("cannot import into the store");
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(&failed)?;
        for part in parts {
            match *part {
                Part::Plan { hash, bytes } => {
                    tx.execute("INSERT OR IGNORE INTO plans (hash, bytes) VALUES (?1, ?2)", params![hash, bytes])
                        .map_err(&failed)?;
                }
                Part::Run { record, events, waiting, results } => {
                    tx.execute(
                        "INSERT INTO runs (id, plan, flow, status, created, seq, head, signature, principal) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                        params![
                            record.id,
                            record.plan,
                            record.flow,
                            record.status.as_str(),
                            record.created,
                            record.seq as i64,
                            record.head,
                            record.signature,
                            record.principal
                        ],
                    )
                    .map_err(&failed)?;
                    let mut insert = tx
                        .prepare_cached(
                            "INSERT INTO events (run, seq, at, prev, hash, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        )
                        .map_err(&failed)?;
                    for e in events {
                        insert
                            .execute(params![record.id, e.seq as i64, e.at, e.prev, e.hash, e.body])
                            .map_err(&failed)?;
                    }
                    for w in waiting {
                        tx.execute(
                            "INSERT INTO waiting (run, step, flow, kind, roles, due) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                            params![w.run, w.step, w.flow, w.kind, w.roles.join(" "), w.due],
                        )
                        .map_err(&failed)?;
                    }
                    for r in results {
                        tx.execute(
                            "INSERT INTO action_results (system, key, result, run, seq, args) \
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                            params![r.system, r.key, r.result.to_string(), r.run, r.seq as i64, r.args],
                        )
                        .map_err(&failed)?;
                    }
                }
                Part::Refusal(r) => {
                    tx.execute(
                        "INSERT INTO refusals (seq, at, principal, operation, grant, message, prev, hash) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                        params![r.seq as i64, r.at, r.principal, r.operation, r.grant, r.message, r.prev, r.hash],
                    )
                    .map_err(&failed)?;
                }
                Part::Release(entry) => insert_release(&tx, entry).map_err(&failed)?,
                Part::Shadow(shadow) => {
                    tx.execute(
                        "INSERT INTO shadows (run, candidate, flow, created, production, outcome, changes, signature) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                        params![
                            shadow.run,
                            shadow.candidate,
                            shadow.flow,
                            shadow.created,
                            shadow.production,
                            shadow.outcome,
                            shadow.changes.to_string(),
                            shadow.signature
                        ],
                    )
                    .map_err(&failed)?;
                }
                Part::Log { entries, checkpoint } => {
                    let frontier = super::imported_frontier(entries, checkpoint)?;
                    for (n, entry) in entries.iter().enumerate() {
                        tx.prepare_cached("INSERT INTO log (n, kind, subject, seq, hash) VALUES (?1, ?2, ?3, ?4, ?5)")
                            .and_then(|mut s| {
                                s.execute(params![
                                    n as i64,
                                    entry.kind.as_str(),
                                    entry.subject,
                                    entry.seq as i64,
                                    entry.hash
                                ])
                            })
                            .map_err(&failed)?;
                    }
                    tx.execute(
                        "INSERT INTO checkpoint (id, size, root, at, public_key, signature, frontier) \
                         VALUES (0, ?1, ?2, ?3, ?4, ?5, ?6)",
                        params![
                            checkpoint.size as i64,
                            checkpoint.root,
                            checkpoint.at,
                            checkpoint.public_key,
                            checkpoint.signature,
                            frontier
                        ],
                    )
                    .map_err(&failed)?;
                }
            }
        }
        tx.commit().map_err(&failed)
    }
}

fn insert_release(tx: &rusqlite::Transaction<'_>, entry: &super::ReleaseEntry) -> rusqlite::Result<()> {
    let (key, value) = entry.signature.clone().unzip();
    tx.execute(
        "INSERT INTO releases (seq, at, prev, hash, body, public_key, signature) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![entry.seq as i64, entry.at, entry.prev, entry.hash, entry.body, key, value],
    )
    .map(|_| ())
}

/// The last entry (number and hash) of a chain the store keeps beside runs (`refusals`,
/// `releases`), and the last entry of its kind the store's log recorded.
fn chain_ends(tx: &Connection, table: &str, kind: crate::checkpoint::Kind) -> Result<(Ending, Ending)> {
    let last = tx
        .query_row(&format!("SELECT seq, hash FROM {table} ORDER BY seq DESC LIMIT 1"), [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()
        .map_err(unusable("cannot read the store"))?;
    let logged = tx
        .query_row("SELECT seq, hash FROM log WHERE kind = ?1 ORDER BY n DESC LIMIT 1", [kind.as_str()], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()
        .map_err(unusable("cannot read the store's log"))?;
    Ok((last, logged))
}

/// The number and hash of a chain's last entry, when it has one.
type Ending = Option<(i64, String)>;
