//! The shared store on PostgreSQL: several runtime processes, on any hosts, on one database.
//!
//! The same tables as SQLite's, prefixed `flow_` so that a database shared with other
//! applications keeps them apart, and the same contract (`store::suite`). Each append is
//! one transaction at READ COMMITTED: the run's row is locked (`FOR UPDATE`) and the
//! sequence it expects checked, events are unique by run and sequence (a racing first
//! append loses on that constraint), and appends to the store's log are serialised by a
//! transaction-scoped advisory lock, so the log has one order whoever writes.

use std::sync::Mutex;

use postgres::error::SqlState;
use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, Transaction};
use serde_json::Value as Json;

use super::{
    ActionClaim, ActionResult, Commit, Held, Lease, Part, PendingStep, QueuedBatch, QueuedCase, RawEvent, Refusal,
    Result, RunRecord, ShadowRecord, Signer, Store, StoreError, Waiting,
};
use crate::event::Status;

/// A store on PostgreSQL: a pool of connections, each reopened (with backoff) when the
/// database dropped it.
pub struct PostgresStore {
    url: String,
    shown: String,
    options: PostgresOptions,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    pool: Vec<Mutex<Option<Client>>>,
    next: std::sync::atomic::AtomicUsize,
}

/// How a [`PostgresStore`] connects.
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    /// Connections kept open: as many operations as run at once (a worker's threads, the
    /// thread that renews leases).
    pub pool: usize,
    /// How long a connection lost (the database restarting, the network gone) is tried
    /// again, with backoff, before an operation fails with a clear error.
    pub reconnect: std::time::Duration,
    /// Certificates (PEM) of authorities trusted to sign the database's certificate, beside
    /// Mozilla's roots: a company's own CA, or a self-signed server certificate.
    pub ca: Option<std::path::PathBuf>,
}

impl Default for PostgresOptions {
    fn default() -> PostgresOptions {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        PostgresOptions { pool: cores + 1, reconnect: std::time::Duration::from_secs(10), ca: None }
    }
}

/// A connection of the pool, held for one operation.
struct Conn<'a>(std::sync::MutexGuard<'a, Option<Client>>);

impl std::ops::Deref for Conn<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.0.as_ref().unwrap_or_else(|| unreachable!("a connection is open while it is held"))
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.0.as_mut().unwrap_or_else(|| unreachable!("a connection is open while it is held"))
    }
}

/// Whether connecting failed for a reason that may pass: the server unreachable, starting
/// up, shutting down or full — not refused credentials, a database that does not exist, or a
/// certificate that does not verify.
fn may_pass(error: &postgres::Error) -> bool {
    use std::io::ErrorKind;
    match error.code() {
        Some(code) => [
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::TOO_MANY_CONNECTIONS,
        ]
        .contains(code),
        None => {
            let io = std::error::Error::source(error).and_then(|source| source.downcast_ref::<std::io::Error>());
            io.is_some_and(|io| {
                matches!(
                    io.kind(),
                    ErrorKind::ConnectionRefused
                        | ErrorKind::ConnectionReset
                        | ErrorKind::ConnectionAborted
                        | ErrorKind::NotFound
                        | ErrorKind::TimedOut
                        | ErrorKind::BrokenPipe
                        | ErrorKind::UnexpectedEof
                        | ErrorKind::AddrNotAvailable
                        | ErrorKind::HostUnreachable
                        | ErrorKind::NetworkUnreachable
                )
            })
        }
    }
}

/// The schema this version writes: [`BASE`] (schema 1), then each of [`MIGRATIONS`].
const SCHEMA_VERSION: i32 = 1 + MIGRATIONS.len() as i32;

/// What takes a store from schema `1 + i` to the next: all the steps a store needs in the
/// transaction that opens it, under the lock that one process holds at a time. A new store
/// is created at schema 1 and migrated like any other, so that every migration runs on
/// every test's store.
const MIGRATIONS: &[&str] = &[
    // 2: leases (a time of the database's clock, in milliseconds) instead of `host/pid` and a
    // heartbeat; claims of action keys. A run that executed under schema 1 is taken for
    // interrupted: stop every process before migrating.
    "ALTER TABLE flow_runs ADD COLUMN lease_until BIGINT;
     UPDATE flow_runs SET lease_until = 0 WHERE owner IS NOT NULL;
     ALTER TABLE flow_runs DROP COLUMN heartbeat;
     CREATE INDEX flow_runs_executing ON flow_runs (created, id) WHERE status = 'running';
     CREATE TABLE flow_action_claims (
       system TEXT NOT NULL, key TEXT NOT NULL, run TEXT NOT NULL, owner TEXT NOT NULL,
       lease_until BIGINT NOT NULL, PRIMARY KEY (system, key)
     );",
    // 3: batches of cases queued for workers.
    "CREATE TABLE flow_batches (
       id TEXT PRIMARY KEY, plan TEXT NOT NULL, principal TEXT NOT NULL, options TEXT NOT NULL,
       created TEXT NOT NULL, cases BIGINT NOT NULL
     );
     CREATE TABLE flow_queue (
       batch TEXT NOT NULL, n BIGINT NOT NULL, body TEXT NOT NULL, owner TEXT, lease_until BIGINT,
       done BOOLEAN NOT NULL DEFAULT false, outcome TEXT, PRIMARY KEY (batch, n)
     );
     CREATE INDEX flow_queue_open ON flow_queue (batch, n) WHERE NOT done;",
    // 4: notices for webhook endpoints, queued with the events they tell.
    "CREATE TABLE flow_deliveries (
       n BIGSERIAL PRIMARY KEY, endpoint TEXT NOT NULL, id TEXT NOT NULL, kind TEXT NOT NULL, data TEXT NOT NULL,
       created TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
       next_at BIGINT NOT NULL, owner TEXT, lease_until BIGINT, error TEXT, UNIQUE (endpoint, id)
     );
     CREATE INDEX flow_deliveries_due ON flow_deliveries (next_at, n) WHERE state = 'pending';",
    // 5: when a waiting step's next timer (a reminder, a deadline) falls, in seconds.
    "ALTER TABLE flow_waiting ADD COLUMN due BIGINT;
     CREATE INDEX flow_waiting_due ON flow_waiting (due, run) WHERE due IS NOT NULL;",
    // 6: the counts monitors keep, by flow, series and minute, and the commits' tallies not
    // yet folded into them; the alerts they raise.
    "CREATE TABLE flow_monitor_counts (
       flow TEXT NOT NULL, series TEXT NOT NULL, minute BIGINT NOT NULL, counted BIGINT NOT NULL,
       total BIGINT NOT NULL, PRIMARY KEY (flow, series, minute)
     );
     CREATE TABLE flow_alerts (
       id TEXT PRIMARY KEY, flow TEXT NOT NULL, monitor TEXT NOT NULL, severity TEXT NOT NULL,
       routes TEXT NOT NULL, condition TEXT NOT NULL, raised TEXT NOT NULL, value TEXT NOT NULL,
       resolved TEXT, cleared TEXT
     );
     CREATE UNIQUE INDEX flow_alerts_open ON flow_alerts (flow, monitor) WHERE resolved IS NULL;
     CREATE TABLE flow_monitor_pending (n BIGSERIAL PRIMARY KEY, tallies TEXT NOT NULL);
     CREATE TABLE flow_monitor_checks (run TEXT PRIMARY KEY, flow TEXT NOT NULL, minute BIGINT NOT NULL);",
    // 7: the release log; the store's log by kind, for its last release entry.
    "CREATE TABLE flow_releases (
       seq BIGINT PRIMARY KEY, at TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL, body TEXT NOT NULL,
       public_key TEXT, signature TEXT
     );
     CREATE INDEX flow_log_by_kind ON flow_log (kind, n);",
];

/// The database's clock, in milliseconds since the Unix epoch: every process on every host
/// reads leases by this one clock.
const NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// The key of the advisory lock that serialises appends to the log (any constant: "flow").
const LOG_LOCK: i64 = 0x666c_6f77;

/// The advisory lock folds of the monitors' counts take turns under.
const MONITOR_LOCK: i64 = 0x666c_6f78;

const BASE: &str = "
CREATE TABLE IF NOT EXISTS flow_schema (id INTEGER PRIMARY KEY CHECK (id = 0), version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS flow_plans (hash TEXT PRIMARY KEY, bytes BYTEA NOT NULL);
CREATE TABLE IF NOT EXISTS flow_runs (
  id TEXT PRIMARY KEY, plan TEXT NOT NULL, flow TEXT NOT NULL, status TEXT NOT NULL,
  created TEXT NOT NULL, seq BIGINT NOT NULL, head TEXT NOT NULL, signature TEXT,
  principal TEXT NOT NULL, owner TEXT, heartbeat TEXT
);
CREATE INDEX IF NOT EXISTS flow_runs_by_status ON flow_runs (status);
CREATE TABLE IF NOT EXISTS flow_events (
  run TEXT NOT NULL, seq BIGINT NOT NULL, at TEXT NOT NULL, prev TEXT NOT NULL,
  hash TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (run, seq)
);
CREATE TABLE IF NOT EXISTS flow_waiting (
  run TEXT NOT NULL, step TEXT NOT NULL, flow TEXT NOT NULL, kind TEXT NOT NULL, roles TEXT NOT NULL,
  PRIMARY KEY (run, step)
);
CREATE TABLE IF NOT EXISTS flow_action_results (
  system TEXT NOT NULL, key TEXT NOT NULL, result TEXT NOT NULL, run TEXT NOT NULL, seq BIGINT NOT NULL,
  args TEXT NOT NULL, PRIMARY KEY (system, key)
);
CREATE TABLE IF NOT EXISTS flow_refusals (
  seq BIGINT PRIMARY KEY, at TEXT NOT NULL, principal TEXT NOT NULL, operation TEXT NOT NULL,
  grant_ TEXT NOT NULL, message TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS flow_shadows (
  run TEXT NOT NULL, candidate TEXT NOT NULL, flow TEXT NOT NULL, created TEXT NOT NULL,
  production TEXT NOT NULL, outcome TEXT NOT NULL, changes TEXT NOT NULL, signature TEXT,
  PRIMARY KEY (run, candidate)
);
CREATE TABLE IF NOT EXISTS flow_log (
  n BIGINT PRIMARY KEY, kind TEXT NOT NULL, subject TEXT NOT NULL, seq BIGINT NOT NULL, hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS flow_checkpoint (
  id INTEGER PRIMARY KEY CHECK (id = 0), size BIGINT NOT NULL, root TEXT NOT NULL, at TEXT NOT NULL,
  public_key TEXT, signature TEXT, frontier TEXT NOT NULL
);
";

const RUN_COLUMNS: &str = "id, plan, flow, status, created, seq, head, signature, principal, owner, \
     lease_until - (extract(epoch from clock_timestamp()) * 1000)::bigint";

/// A store's connection string as it may be shown: rebuilt from what it says (user, hosts,
/// ports, database), never with its password, whatever form the password was given in
/// (`postgres://u:p@h/d`, `?password=…`, `password=… ` or `password = '…'` in the `key=value`
/// form). One that does not parse is not shown at all.
pub fn shown_url(url: &str) -> String {
    let Ok(config) = url.parse::<postgres::Config>() else {
        return "(a connection string that does not parse; not shown)".to_owned();
    };
    let user = config.get_user().unwrap_or_default();
    let password = if config.get_password().is_some() { ":***" } else { "" };
    let at = if user.is_empty() && password.is_empty() { String::new() } else { format!("{user}{password}@") };
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let host = match host {
                postgres::config::Host::Tcp(name) => name.clone(),
                postgres::config::Host::Unix(path) => path.display().to_string(),
            };
            // The ports given, one for every host or one for all.
            match ports.get(i).or(ports.first()) {
                Some(port) => format!("{host}:{port}"),
                None => host,
            }
        })
        .collect();
    let database = config.get_dbname().map_or(String::new(), |name| format!("/{name}"));
    format!("postgres://{at}{}{database}", hosts.join(","))
}

fn unusable(what: &str) -> impl Fn(postgres::Error) -> StoreError + '_ {
    move |error| StoreError::Unusable(format!("{what}: {}", describe(&error)))
}

/// What went wrong, as PostgreSQL says it (never with the connection's URL).
fn describe(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => db.message().to_owned(),
        None => match std::error::Error::source(error) {
            Some(source) => format!("{error}: {source}"),
            None => error.to_string(),
        },
    }
}

fn is_unique_violation(error: &postgres::Error) -> bool {
    error.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`,
    /// or `host=… user=…`), creating the store's tables when they are missing. A store of
    /// a newer schema is refused; nothing is written then.
    pub fn open(url: &str) -> Result<PostgresStore> {
        PostgresStore::open_with(url, &PostgresOptions::default())
    }

    /// As [`PostgresStore::open`], connecting as `options` say.
    pub fn open_with(url: &str, options: &PostgresOptions) -> Result<PostgresStore> {
        let shown = shown_url(url);
        // Not handed to the client unparsed: what it would say of a bad string may quote it.
        if let Err(error) = url.parse::<postgres::Config>() {
            let error = describe(&error);
            return Err(StoreError::Unusable(format!(
                "the run store's connection string does not parse ({}): write `postgres://USER@HOST/DATABASE` or \
                 `host=… dbname=…`",
                error.split(':').next().unwrap_or("invalid")
            )));
        }
        let tls = tls(options.ca.as_deref())?;
        let mut client = connect(url, &shown, options.reconnect, &tls)?;
        let not_a_store =
            |e: postgres::Error| StoreError::Unusable(format!("`{shown}` is not a usable run store: {}", describe(&e)));
        let mut tx = client.transaction().map_err(not_a_store)?;
        // One process creates the tables at a time.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOG_LOCK]).map_err(not_a_store)?;
        let exists: bool =
            tx.query_one("SELECT to_regclass('flow_schema') IS NOT NULL", &[]).map_err(not_a_store)?.get(0);
        if !exists {
            // A database shared with other applications may hold tables of the same names
            // that are not a run store's: refused, not taken over.
            let taken: i64 = tx
                .query_one(
                    "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() \
                     AND table_name LIKE 'flow\\_%'",
                    &[],
                )
                .map_err(not_a_store)?
                .get(0);
            if taken > 0 {
                return Err(StoreError::Unusable(format!(
                    "`{shown}` has tables named `flow_…` but no run store's schema version: they belong to something \
                     else; use another database or schema"
                )));
            }
        }
        let mut version = 1;
        if exists {
            let found: Option<i32> = tx
                .query_opt("SELECT version FROM flow_schema WHERE id = 0", &[])
                .map_err(not_a_store)?
                .map(|row| row.get(0));
            match found {
                Some(found) if found > SCHEMA_VERSION => {
                    return Err(StoreError::Unusable(format!(
                        "`{shown}` was written by a newer version of Flow (schema {found}; this version knows \
                         schemas up to {SCHEMA_VERSION}): use that version"
                    )));
                }
                Some(found) if found >= 1 => version = found,
                found => {
                    return Err(StoreError::Unusable(format!(
                        "`{shown}` is not a run store of any version: its schema version is {}",
                        found.map_or("missing".to_owned(), |v| v.to_string())
                    )));
                }
            }
        } else {
            tx.batch_execute(BASE).map_err(not_a_store)?;
            tx.execute("INSERT INTO flow_schema (id, version) VALUES (0, 1)", &[]).map_err(not_a_store)?;
        }
        // Under the same lock: one process migrates, the others find it done.
        while version < SCHEMA_VERSION {
            let next = version + 1;
            tx.batch_execute(MIGRATIONS[(version - 1) as usize]).map_err(|e| {
                StoreError::Unusable(format!(
                    "`{shown}` could not be migrated from schema {version} to {next}: {}",
                    describe(&e)
                ))
            })?;
            tx.execute("UPDATE flow_schema SET version = $1 WHERE id = 0", &[&next]).map_err(not_a_store)?;
            version = next;
        }
        tx.commit().map_err(not_a_store)?;
        let mut pool: Vec<Mutex<Option<Client>>> = (1..options.pool.max(1)).map(|_| Mutex::new(None)).collect();
        pool.insert(0, Mutex::new(Some(client)));
        Ok(PostgresStore {
            url: url.to_owned(),
            shown,
            options: options.clone(),
            tls,
            pool,
            next: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// A connection of the pool — a free one when there is one — open: reopened when the
    /// database dropped it.
    fn client(&self) -> Result<Conn<'_>> {
        // A panic while holding a connection leaves the database consistent: an open
        // transaction rolls back when it is dropped.
        let free = self.pool.iter().find_map(|slot| slot.try_lock().ok());
        let mut slot = match free {
            Some(slot) => slot,
            None => {
                let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.pool[n % self.pool.len()].lock().unwrap_or_else(std::sync::PoisonError::into_inner)
            }
        };
        if slot.as_ref().is_none_or(Client::is_closed) {
            *slot = None;
            *slot = Some(connect(&self.url, &self.shown, self.options.reconnect, &self.tls)?);
        }
        Ok(Conn(slot))
    }

    /// Whether a connection of the pool was lost.
    fn lost(&self) -> bool {
        self.pool.iter().any(|slot| slot.try_lock().is_ok_and(|client| client.as_ref().is_some_and(Client::is_closed)))
    }

    /// A read, tried once more on a connection opened again when the first failed because
    /// its connection was lost (a read changes nothing, so trying it again is safe; a
    /// write is not tried again: whether it committed is not known).
    fn read<T>(&self, read: impl Fn() -> Result<T>) -> Result<T> {
        match read() {
            Err(StoreError::Unusable(_)) if self.lost() => read(),
            other => other,
        }
    }
}

/// How connections are encrypted: TLS with rustls, the server's certificate verified against
/// Mozilla's roots and the authorities of `ca` (PEM). Whether TLS is used is the connection
/// string's `sslmode`: `require` insists on it, `prefer` (the default) uses it when the
/// server offers it, `disable` does not; a Unix socket never uses it.
fn tls(ca: Option<&std::path::Path>) -> Result<tokio_postgres_rustls::MakeRustlsConnect> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(ca) = ca {
        let shown = ca.display();
        let certificates = CertificateDer::pem_file_iter(ca)
            .and_then(|certificates| certificates.collect::<std::result::Result<Vec<_>, _>>())
            .map_err(|e| StoreError::Unusable(format!("cannot read the certificates of `{shown}`: {e}")))?;
        if certificates.is_empty() {
            return Err(StoreError::Unusable(format!("`{shown}` holds no certificate (PEM)")));
        }
        for certificate in certificates {
            roots
                .add(certificate)
                .map_err(|e| StoreError::Unusable(format!("a certificate of `{shown}` cannot be trusted: {e}")))?;
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Unusable(format!("TLS cannot be set up: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// Connects to `url`, trying again with backoff for `reconnect` while the failure may pass.
fn connect(
    url: &str,
    shown: &str,
    reconnect: std::time::Duration,
    tls: &tokio_postgres_rustls::MakeRustlsConnect,
) -> Result<Client> {
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(50);
    let mut config: postgres::Config =
        url.parse().map_err(|_| StoreError::Unusable(format!("the connection string of `{shown}` does not parse")))?;
    // One attempt on a host that does not answer waits this long, not the system's minutes.
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(10));
    }
    loop {
        match config.connect(tls.clone()) {
            Ok(client) => return Ok(client),
            Err(error) if may_pass(&error) && started.elapsed() + pause <= reconnect => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_secs(2));
            }
            Err(error) => {
                let tried = if may_pass(&error) {
                    format!(" (tried again for {:.0}s)", started.elapsed().as_secs_f64())
                } else {
                    String::new()
                };
                return Err(StoreError::Unusable(format!(
                    "cannot connect to the run store `{shown}`{tried}: {}",
                    describe(&error)
                )));
            }
        }
    }
}

/// Appends `entry` to the log inside `tx` and replaces the checkpoint (signed with `key`).
/// Appends `entries` to the log inside `tx` and replaces the checkpoint (signed with `key`),
/// under the lock that gives the log one order whoever writes.
fn log_append(tx: &mut Transaction<'_>, entries: &[crate::checkpoint::Entry], key: Option<Signer<'_>>) -> Result<()> {
    use crate::checkpoint::Checkpoint;
    let write = unusable("cannot write the store's log");
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOG_LOCK]).map_err(&write)?;
    let current = tx
        .query_opt("SELECT size, root, at, public_key, signature, frontier FROM flow_checkpoint WHERE id = 0", &[])
        .map_err(&write)?
        .map(|row| {
            let checkpoint = Checkpoint {
                size: row.get::<_, i64>(0) as u64,
                root: row.get(1),
                at: row.get(2),
                public_key: row.get(3),
                signature: row.get(4),
            };
            (checkpoint, row.get::<_, String>(5))
        });
    // Only a signing deployment checks that the checkpoint covers the log as it stands.
    let last: Option<i64> = match key {
        Some(_) => tx.query_one("SELECT max(n) FROM flow_log", &[]).map_err(&write)?.get(0),
        None => None,
    };
    let next = super::extend_log(current, last.map(|n| n as u64), entries, key)?;
    let numbers: Vec<i64> = (0..entries.len()).map(|i| (next.n + i as u64) as i64).collect();
    let kinds: Vec<&str> = entries.iter().map(|e| e.kind.as_str()).collect();
    let subjects: Vec<&str> = entries.iter().map(|e| e.subject.as_str()).collect();
    let seqs: Vec<i64> = entries.iter().map(|e| e.seq as i64).collect();
    let hashes: Vec<&str> = entries.iter().map(|e| e.hash.as_str()).collect();
    let checkpoint = &next.checkpoint;
    // The entries and the new checkpoint in one statement.
    tx.execute(
        "WITH entries AS (INSERT INTO flow_log (n, kind, subject, seq, hash) \
           SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[])) \
         INSERT INTO flow_checkpoint (id, size, root, at, public_key, signature, frontier) \
         VALUES (0, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (id) DO UPDATE SET size = $6, root = $7, at = $8, public_key = $9, signature = $10, \
         frontier = $11",
        &[
            &numbers,
            &kinds,
            &subjects,
            &seqs,
            &hashes,
            &(checkpoint.size as i64),
            &checkpoint.root,
            &checkpoint.at,
            &checkpoint.public_key,
            &checkpoint.signature,
            &next.frontier,
        ],
    )
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::Changed("the store's log does not end where its checkpoint says".into())
        } else {
            write(e)
        }
    })?;
    Ok(())
}

/// Queues notices in a transaction, named `refusals.SEQ` when `refusal` is given; an
/// endpoint that has a notice of the same id keeps it.
fn queue_notices(tx: &mut Transaction<'_>, notices: &[super::Notice], refusal: Option<u64>) -> Result<()> {
    if notices.is_empty() {
        return Ok(());
    }
    let created = crate::identity::now().to_string();
    let (mut endpoints, mut ids, mut kinds, mut data) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for notice in notices {
        endpoints.push(notice.endpoint.as_str());
        ids.push(refusal.map_or_else(|| notice.id.clone(), |seq| format!("refusals.{seq}")));
        kinds.push(notice.kind.as_str());
        data.push(notice.data.to_string());
    }
    tx.execute(
        &format!(
            "INSERT INTO flow_deliveries (endpoint, id, kind, data, created, next_at) \
             SELECT e, i, k, d, $5, {NOW_MS} FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS q(e, i, k, d) \
             ON CONFLICT (endpoint, id) DO NOTHING"
        ),
        &[&endpoints, &ids, &kinds, &data, &created],
    )
    .map_err(unusable("cannot queue a notice"))?;
    Ok(())
}

const DELIVERY_COLUMNS: &str = "endpoint, id, kind, data, created, state, attempts, error";

fn delivery_from_row(row: &postgres::Row) -> Result<super::Delivery> {
    let notice = super::Notice { endpoint: row.get(0), id: row.get(1), kind: row.get(2), data: Json::Null };
    let what = format!("notice `{}` for endpoint `{}`", notice.id, notice.endpoint);
    let data = serde_json::from_str(row.get(3))
        .map_err(|e| StoreError::Unusable(format!("the data of {what} is not JSON: {e}")))?;
    let state: &str = row.get(5);
    let state = super::DeliveryState::parse(state)
        .ok_or_else(|| StoreError::Unusable(format!("{what} has an unknown state `{state}`")))?;
    Ok(super::Delivery {
        notice: super::Notice { data, ..notice },
        created: row.get(4),
        state,
        attempts: row.get::<_, i32>(6) as u32,
        error: row.get(7),
    })
}

fn raw_event(row: &postgres::Row, first: usize) -> RawEvent {
    RawEvent {
        seq: row.get::<_, i64>(first) as u64,
        at: row.get(first + 1),
        prev: row.get(first + 2),
        hash: row.get(first + 3),
        body: row.get(first + 4),
    }
}

fn run_from_row(row: &postgres::Row) -> Result<RunRecord> {
    let status: String = row.get(3);
    let status = Status::parse(&status).ok_or_else(|| {
        StoreError::Unusable(format!("run `{}` has an unknown status `{status}`", row.get::<_, String>(0)))
    })?;
    Ok(RunRecord {
        id: row.get(0),
        plan: row.get(1),
        flow: row.get(2),
        status,
        created: row.get(4),
        seq: row.get::<_, i64>(5) as u64,
        head: row.get(6),
        signature: row.get(7),
        principal: row.get(8),
        owner: match (row.get::<_, Option<String>>(9), row.get::<_, Option<i64>>(10)) {
            (Some(owner), Some(remaining_ms)) => Some(Lease { owner, remaining_ms }),
            _ => None,
        },
    })
}

impl Store for PostgresStore {
    fn put_plan(&self, hash: &str, bytes: &[u8]) -> Result<()> {
        self.client()?
            .execute(
                "INSERT INTO flow_plans (hash, bytes) VALUES ($1, $2) ON CONFLICT (hash) DO NOTHING",
                &[&hash, &bytes],
            )
            .map_err(unusable("cannot store the plan"))?;
        Ok(())
    }

    fn plan(&self, hash: &str) -> Result<Option<Vec<u8>>> {
        self.read(|| {
            let row = self
                .client()?
                .query_opt("SELECT bytes FROM flow_plans WHERE hash = $1", &[&hash])
                .map_err(unusable("cannot read the plan"))?;
            Ok(row.map(|row| row.get(0)))
        })
    }

    fn plans(&self) -> Result<Vec<String>> {
        self.read(|| {
            let rows = self
                .client()?
                .query("SELECT hash FROM flow_plans ORDER BY hash", &[])
                .map_err(unusable("cannot read the plans"))?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })
    }

    fn append_all(&self, commits: &[Commit<'_>]) -> Result<()> {
        let Some(first) = commits.first() else { return Ok(()) };
        let mut client = self.client()?;
        let mut tx = client.transaction().map_err(unusable("cannot write the run store"))?;
        let write = unusable("cannot write the run");
        // A unique violation of one run's events or record: another process appended first.
        let conflict = |e: postgres::Error| {
            if is_unique_violation(&e) { StoreError::Conflict(first.run.id.clone()) } else { write(e) }
        };
        for commit in commits {
            let Commit { run, expected_seq, waiting, results, lease, released, notices, check, .. } = *commit;
            let (owner, ttl) = (lease.map(|(owner, _)| owner), lease.map(|(_, ttl)| ttl));
            let record: [&(dyn postgres::types::ToSql + Sync); 11] = [
                &run.id,
                &run.plan,
                &run.flow,
                &run.status.as_str(),
                &run.created,
                &(run.seq as i64),
                &run.head,
                &run.signature,
                &run.principal,
                &owner,
                &ttl,
            ];
            if expected_seq == 0 {
                // A new run: its record is unique, so of two processes creating it, the
                // second fails here.
                tx.execute(
                    &format!(
                        "INSERT INTO flow_runs (id, plan, flow, status, created, seq, head, signature, principal, \
                         owner, lease_until) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, {NOW_MS} + $11)"
                    ),
                    &record,
                )
                .map_err(|e| if is_unique_violation(&e) { StoreError::Conflict(run.id.clone()) } else { write(e) })?;
            } else {
                // The run's row locked, and the sequence it expects checked.
                let updated = tx
                    .execute(
                        &format!(
                            "UPDATE flow_runs SET plan = $2, flow = $3, status = $4, created = $5, seq = $6, \
                             head = $7, signature = $8, principal = $9, owner = $10, lease_until = {NOW_MS} + $11 \
                             WHERE id = $1 AND seq = $12"
                        ),
                        &[&record[..], &[&(expected_seq as i64)]].concat(),
                    )
                    .map_err(&write)?;
                if updated != 1 {
                    return Err(StoreError::Conflict(run.id.clone()));
                }
                tx.execute("DELETE FROM flow_waiting WHERE run = $1", &[&run.id]).map_err(&write)?;
            }
            for w in waiting {
                tx.execute(
                    "INSERT INTO flow_waiting (run, step, flow, kind, roles, due) VALUES ($1, $2, $3, $4, $5, $6)",
                    &[&w.run, &w.step, &w.flow, &w.kind, &w.roles.join(" "), &w.due],
                )
                .map_err(&write)?;
            }
            for r in results {
                tx.execute(
                    "INSERT INTO flow_action_results (system, key, result, run, seq, args) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (system, key) DO NOTHING",
                    &[&r.system, &r.key, &r.result.to_string(), &r.run, &(r.seq as i64), &r.args],
                )
                .map_err(&write)?;
            }
            let claims = results.iter().map(|r| (r.system.as_str(), r.key.as_str()));
            for (system, key) in claims.chain(released.iter().map(|(s, k)| (s.as_str(), k.as_str()))) {
                tx.execute(
                    "DELETE FROM flow_action_claims WHERE system = $1 AND key = $2 AND run = $3",
                    &[&system, &key, &run.id],
                )
                .map_err(&write)?;
            }
            queue_notices(&mut tx, notices, None)?;
            if let Some(minute) = check {
                tx.execute(
                    "INSERT INTO flow_monitor_checks (run, flow, minute) VALUES ($1, $2, $3) \
                     ON CONFLICT (run) DO UPDATE SET minute = excluded.minute",
                    &[&run.id, &run.flow, &minute],
                )
                .map_err(&write)?;
            }
        }
        // Every commit's events in one statement; unique by run and sequence.
        let events = commits.iter().flat_map(|c| c.events.iter().map(move |e| (c.run.id.as_str(), e)));
        let (mut runs, mut seqs, mut ats, mut prevs, mut hashes, mut bodies) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (run, event) in events {
            runs.push(run);
            seqs.push(event.seq as i64);
            ats.push(event.at.as_str());
            prevs.push(event.prev.as_str());
            hashes.push(event.hash.as_str());
            bodies.push(event.body.as_str());
        }
        if !runs.is_empty() {
            tx.execute(
                "INSERT INTO flow_events (run, seq, at, prev, hash, body) \
                 SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[])",
                &[&runs, &seqs, &ats, &prevs, &hashes, &bodies],
            )
            .map_err(conflict)?;
        }
        let entries: Vec<_> = commits.iter().filter_map(super::commit_entry).collect();
        if !entries.is_empty() {
            // Only one signer signs a group: the commits of one runtime.
            log_append(&mut tx, &entries, commits.iter().find_map(|c| c.key))?;
        }
        // The monitors' tallies, a row per commit, folded into the counts later.
        let tallies: Vec<String> =
            commits.iter().filter(|c| !c.tallies.is_empty()).map(|c| super::encode_tallies(c.tallies)).collect();
        if !tallies.is_empty() {
            tx.execute("INSERT INTO flow_monitor_pending (tallies) SELECT * FROM unnest($1::text[])", &[&tallies])
                .map_err(&write)?;
        }
        tx.commit().map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict(first.run.id.clone())
            } else {
                StoreError::Unusable(format!("cannot commit to the run store: {}", describe(&e)))
            }
        })
    }

    fn run(&self, id: &str) -> Result<Option<RunRecord>> {
        self.read(|| {
            let row = self
                .client()?
                .query_opt(&format!("SELECT {RUN_COLUMNS} FROM flow_runs WHERE id = $1"), &[&id])
                .map_err(unusable("cannot read the run"))?;
            row.as_ref().map(run_from_row).transpose()
        })
    }

    fn runs(&self, status: Option<Status>) -> Result<Vec<RunRecord>> {
        self.read(|| {
            let status = status.map(Status::as_str);
            let rows = self
                .client()?
                .query(
                    &format!(
                        "SELECT {RUN_COLUMNS} FROM flow_runs WHERE $1::TEXT IS NULL OR status = $1 ORDER BY created, id"
                    ),
                    &[&status],
                )
                .map_err(unusable("cannot read the runs"))?;
            rows.iter().map(run_from_row).collect()
        })
    }

    fn events(&self, run: &str) -> Result<Vec<RawEvent>> {
        self.read(|| {
            let rows = self
                .client()?
                .query("SELECT seq, at, prev, hash, body FROM flow_events WHERE run = $1 ORDER BY seq", &[&run])
                .map_err(unusable("cannot read the events"))?;
            Ok(rows.iter().map(|row| raw_event(row, 0)).collect())
        })
    }

    fn scan_events(&self, f: &mut dyn FnMut(&str, Vec<RawEvent>) -> bool) -> Result<()> {
        let mut client = self.client()?;
        let read = unusable("cannot read the events");
        // Rows stream from the server: every run's events are never all in memory at once.
        let mut rows = client
            .query_raw(
                "SELECT run, seq, at, prev, hash, body FROM flow_events ORDER BY run, seq",
                std::iter::empty::<i32>(),
            )
            .map_err(&read)?;
        let mut run = String::new();
        let mut events = Vec::new();
        while let Some(row) = rows.next().map_err(&read)? {
            let this: &str = row.get(0);
            if this != run {
                if !events.is_empty() && !f(&run, std::mem::take(&mut events)) {
                    return Ok(());
                }
                this.clone_into(&mut run);
            }
            events.push(raw_event(&row, 1));
        }
        if !events.is_empty() {
            f(&run, events);
        }
        Ok(())
    }

    fn waiting(&self) -> Result<Vec<Waiting>> {
        self.read(|| {
            let rows = self
                .client()?
                .query("SELECT run, step, flow, kind, roles, due FROM flow_waiting ORDER BY run, step", &[])
                .map_err(unusable("cannot read the waiting steps"))?;
            Ok(rows
                .iter()
                .map(|row| Waiting {
                    run: row.get(0),
                    step: row.get(1),
                    flow: row.get(2),
                    kind: row.get(3),
                    roles: row.get::<_, String>(4).split_whitespace().map(str::to_owned).collect(),
                    due: row.get(5),
                })
                .collect())
        })
    }

    fn due_runs(&self, now: i64, after: Option<(i64, &str)>, limit: usize) -> Result<Vec<(String, i64)>> {
        let (from, from_run) = after.unwrap_or((i64::MIN, ""));
        self.read(|| {
            let rows = self
                .client()?
                .query(
                    "SELECT run, MIN(due) AS next FROM flow_waiting WHERE due <= $1 GROUP BY run \
                     HAVING (MIN(due), run) > ($2, $3) ORDER BY next, run LIMIT $4",
                    &[&now, &from, &from_run, &(limit as i64)],
                )
                .map_err(unusable("cannot read the waiting steps' timers"))?;
            Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
        })
    }

    fn pending_steps(&self) -> Result<Vec<PendingStep>> {
        self.read(|| {
            let rows = self
                .client()?
                .query(
                    "SELECT r.id, r.plan, r.created, w.flow, w.step, w.kind, w.roles, w.due FROM flow_runs r \
                     LEFT JOIN flow_waiting w ON w.run = r.id WHERE r.status = $1 ORDER BY r.created, r.id, w.step",
                    &[&Status::Pending.as_str()],
                )
                .map_err(unusable("cannot read the waiting steps"))?;
            Ok(rows
                .iter()
                .map(|row| {
                    let run: String = row.get(0);
                    let waiting = row.get::<_, Option<String>>(4).map(|step| Waiting {
                        run: run.clone(),
                        flow: row.get(3),
                        step,
                        kind: row.get(5),
                        roles: row.get::<_, String>(6).split_whitespace().map(str::to_owned).collect(),
                        due: row.get(7),
                    });
                    PendingStep { run, plan: row.get(1), created: row.get(2), waiting }
                })
                .collect())
        })
    }

    fn action_result(&self, system: &str, key: &str) -> Result<Option<ActionResult>> {
        self.read(|| {
            let row = self
                .client()?
                .query_opt(
                    "SELECT system, key, result, run, seq, args FROM flow_action_results WHERE system = $1 AND key = $2",
                    &[&system, &key],
                )
                .map_err(unusable("cannot read the action result"))?;
            row.as_ref().map(action_result).transpose()
        })
    }

    fn action_results(&self) -> Result<Vec<ActionResult>> {
        self.read(|| {
            let rows = self
                .client()?
                .query("SELECT system, key, result, run, seq, args FROM flow_action_results ORDER BY system, key", &[])
                .map_err(unusable("cannot read the action results"))?;
            rows.iter().map(action_result).collect()
        })
    }

    fn record_refusal(&self, refusal: [&str; 5], key: Option<Signer<'_>>, notices: &[super::Notice]) -> Result<()> {
        let [at, principal, operation, grant, message] = refusal;
        let mut client = self.client()?;
        let mut tx = client.transaction().map_err(unusable("cannot record the refusal"))?;
        // The refusals' chain is extended under the log's lock, so it has one order too.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOG_LOCK]).map_err(unusable("cannot record the refusal"))?;
        // The chain goes on only from the refusal the log recorded last: one rewritten
        // behind the log is not extended (and, in a signing deployment, not signed over).
        let (last, logged) = chain_ends(&mut tx, "flow_refusals", crate::checkpoint::Kind::Refusal)?;
        let (seq, prev, hash) = super::next_refusal(last, logged, refusal)?;
        tx.execute(
            "INSERT INTO flow_refusals (seq, at, principal, operation, grant_, message, prev, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[&(seq as i64), &at, &principal, &operation, &grant, &message, &prev, &hash],
        )
        .map_err(unusable("cannot record the refusal"))?;
        let entry = crate::checkpoint::Entry {
            kind: crate::checkpoint::Kind::Refusal,
            subject: "refusals".to_owned(),
            seq,
            hash,
        };
        log_append(&mut tx, std::slice::from_ref(&entry), key)?;
        queue_notices(&mut tx, notices, Some(seq))?;
        tx.commit().map_err(unusable("cannot record the refusal"))
    }

    fn append_release(
        &self,
        entry: &super::ReleaseEntry,
        key: Option<Signer<'_>>,
        notices: &[super::Notice],
    ) -> Result<()> {
        let mut client = self.client()?;
        let mut tx = client.transaction().map_err(unusable("cannot record the release step"))?;
        // The release log is extended under the log's lock, so it has one order too.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOG_LOCK])
            .map_err(unusable("cannot record the release step"))?;
        let (last, logged) = chain_ends(&mut tx, "flow_releases", crate::checkpoint::Kind::Release)?;
        let logged_entry = super::next_release(last, logged, entry)?;
        insert_release(&mut tx, entry).map_err(unusable("cannot record the release step"))?;
        log_append(&mut tx, std::slice::from_ref(&logged_entry), key)?;
        queue_notices(&mut tx, notices, None)?;
        tx.commit().map_err(unusable("cannot record the release step"))
    }

    fn releases(&self, from: u64) -> Result<super::ReleaseEntries> {
        self.read(|| {
            // One snapshot: the entries and the log's last release entry of one moment.
            let mut client = self.client()?;
            let mut client = client
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .map_err(unusable("cannot read the release log"))?;
            let rows = client
                .query(
                    "SELECT seq, at, prev, hash, body, public_key, signature FROM flow_releases WHERE seq >= $1 \
                     ORDER BY seq",
                    &[&(from as i64)],
                )
                .map_err(unusable("cannot read the release log"))?;
            let entries = rows
                .iter()
                .map(|row| super::ReleaseEntry {
                    seq: row.get::<_, i64>(0) as u64,
                    at: row.get(1),
                    prev: row.get(2),
                    hash: row.get(3),
                    body: row.get(4),
                    signature: match (row.get::<_, Option<String>>(5), row.get::<_, Option<String>>(6)) {
                        (Some(key), Some(value)) => Some((key, value)),
                        _ => None,
                    },
                })
                .collect();
            let logged = client
                .query_opt(
                    "SELECT seq, hash FROM flow_log WHERE kind = $1 ORDER BY n DESC LIMIT 1",
                    &[&crate::checkpoint::Kind::Release.as_str()],
                )
                .map_err(unusable("cannot read the store's log"))?
                .map(|row| (row.get::<_, i64>(0) as u64, row.get::<_, String>(1)));
            client.commit().map_err(unusable("cannot read the release log"))?;
            Ok((entries, logged))
        })
    }

    fn refusals(&self) -> Result<Vec<Refusal>> {
        self.read(|| {
            let rows = self
                .client()?
                .query(
                    "SELECT seq, at, principal, operation, grant_, message, prev, hash FROM flow_refusals ORDER BY seq",
                    &[],
                )
                .map_err(unusable("cannot read the refusals"))?;
            Ok(rows
                .iter()
                .map(|row| Refusal {
                    seq: row.get::<_, i64>(0) as u64,
                    at: row.get(1),
                    principal: row.get(2),
                    operation: row.get(3),
                    grant: row.get(4),
                    message: row.get(5),
                    prev: row.get(6),
                    hash: row.get(7),
                })
                .collect())
        })
    }

    fn put_shadow(&self, shadow: &ShadowRecord, key: Option<Signer<'_>>) -> Result<()> {
        let digest = shadow.digest();
        let signature = key.map(|signer| crate::checkpoint::sign_shadow(signer.key, &digest));
        let mut client = self.client()?;
        let mut tx = client.transaction().map_err(unusable("cannot store the shadow run"))?;
        tx.execute(
            "INSERT INTO flow_shadows (run, candidate, flow, created, production, outcome, changes, signature) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (run, candidate) DO UPDATE SET flow = $3, created = $4, production = $5, outcome = $6, \
             changes = $7, signature = $8",
            &[
                &shadow.run,
                &shadow.candidate,
                &shadow.flow,
                &shadow.created,
                &shadow.production,
                &shadow.outcome,
                &shadow.changes.to_string(),
                &signature,
            ],
        )
        .map_err(unusable("cannot store the shadow run"))?;
        let entry = crate::checkpoint::Entry {
            kind: crate::checkpoint::Kind::Shadow,
            subject: format!("{}/{}", shadow.run, shadow.candidate),
            seq: 0,
            hash: digest,
        };
        log_append(&mut tx, std::slice::from_ref(&entry), key)?;
        tx.commit().map_err(unusable("cannot store the shadow run"))
    }

    fn shadows(&self, run: Option<&str>) -> Result<Vec<ShadowRecord>> {
        self.read(|| {
            let rows = self
                .client()?
                .query(
                    "SELECT run, candidate, flow, created, production, outcome, changes, signature FROM flow_shadows \
                     WHERE $1::TEXT IS NULL OR run = $1 ORDER BY created, run",
                    &[&run],
                )
                .map_err(unusable("cannot read the shadow runs"))?;
            rows.iter()
                .map(|row| {
                    let run: String = row.get(0);
                    let changes = serde_json::from_str(row.get::<_, &str>(6)).map_err(|e| {
                        StoreError::Unusable(format!("the shadow of run `{run}` in the store is not JSON: {e}"))
                    })?;
                    Ok(ShadowRecord {
                        run,
                        candidate: row.get(1),
                        flow: row.get(2),
                        created: row.get(3),
                        production: row.get(4),
                        outcome: row.get(5),
                        changes,
                        signature: row.get(7),
                    })
                })
                .collect()
        })
    }

    fn log(&self) -> Result<Vec<crate::checkpoint::Entry>> {
        self.read(|| {
            let rows = self
                .client()?
                .query("SELECT kind, subject, seq, hash FROM flow_log ORDER BY n", &[])
                .map_err(unusable("cannot read the store's log"))?;
            rows.iter()
                .map(|row| {
                    let kind: String = row.get(0);
                    let kind = crate::checkpoint::Kind::parse(&kind).ok_or_else(|| {
                        StoreError::Changed(format!("the store's log has an entry of no kind: `{kind}`"))
                    })?;
                    Ok(crate::checkpoint::Entry {
                        kind,
                        subject: row.get(1),
                        seq: row.get::<_, i64>(2) as u64,
                        hash: row.get(3),
                    })
                })
                .collect()
        })
    }

    fn checkpoint(&self) -> Result<Option<crate::checkpoint::Checkpoint>> {
        self.read(|| {
            let row = self
                .client()?
                .query_opt("SELECT size, root, at, public_key, signature FROM flow_checkpoint WHERE id = 0", &[])
                .map_err(unusable("cannot read the store's checkpoint"))?;
            Ok(row.map(|row| crate::checkpoint::Checkpoint {
                size: row.get::<_, i64>(0) as u64,
                root: row.get(1),
                at: row.get(2),
                public_key: row.get(3),
                signature: row.get(4),
            }))
        })
    }

    fn claim_run(&self, run: &str, owner: &str, ttl_ms: i64) -> Result<Option<Lease>> {
        let failed = unusable("cannot claim the run");
        let mut client = self.client()?;
        let mut tx = client.transaction().map_err(&failed)?;
        let row = tx
            .query_opt(
                &format!("SELECT status, owner, lease_until - {NOW_MS} FROM flow_runs WHERE id = $1 FOR UPDATE"),
                &[&run],
            )
            .map_err(&failed)?;
        let Some(row) = row else { return Ok(None) };
        if row.get::<_, &str>(0) != Status::Running.as_str() {
            return Ok(None);
        }
        let (holder, remaining): (Option<String>, Option<i64>) = (row.get(1), row.get(2));
        if let (Some(holder), Some(remaining_ms)) = (holder, remaining)
            && holder != owner
            && remaining_ms > 0
        {
            return Ok(Some(Lease { owner: holder, remaining_ms }));
        }
        tx.execute(
            &format!("UPDATE flow_runs SET owner = $1, lease_until = {NOW_MS} + $2 WHERE id = $3"),
            &[&owner, &ttl_ms, &run],
        )
        .map_err(&failed)?;
        tx.commit().map_err(&failed)?;
        Ok(None)
    }

    fn claim_interrupted(&self, owner: &str, ttl_ms: i64) -> Result<Option<String>> {
        // A run another process is claiming right now is skipped, not waited for: each
        // process takes a different interrupted run.
        let row = self
            .client()?
            .query_opt(
                &format!(
                    "UPDATE flow_runs SET owner = $1, lease_until = {NOW_MS} + $2 WHERE id = (\
                       SELECT id FROM flow_runs WHERE status = 'running' \
                       AND (lease_until IS NULL OR lease_until <= {NOW_MS}) \
                       ORDER BY created, id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id"
                ),
                &[&owner, &ttl_ms],
            )
            .map_err(unusable("cannot claim an interrupted run"))?;
        Ok(row.map(|row| row.get(0)))
    }

    fn claim_action(&self, system: &str, key: &str, run: &str, owner: &str, ttl_ms: i64) -> Result<ActionClaim> {
        let failed = unusable("cannot claim the action");
        let mut client = self.client()?;
        let mut tx = client.transaction().map_err(&failed)?;
        // The claim first, the result after: a result recorded by a racing holder commits
        // with the removal of its claim, so a claim taken after that removal reads the result.
        let taken = tx
            .query_opt(
                &format!(
                    "INSERT INTO flow_action_claims (system, key, run, owner, lease_until) \
                     VALUES ($1, $2, $3, $4, {NOW_MS} + $5) ON CONFLICT (system, key) DO UPDATE \
                     SET run = $3, owner = $4, lease_until = {NOW_MS} + $5 \
                     WHERE flow_action_claims.lease_until <= {NOW_MS} \
                     OR (flow_action_claims.owner = $4 AND flow_action_claims.run = $3) RETURNING owner"
                ),
                &[&system, &key, &run, &owner, &ttl_ms],
            )
            .map_err(&failed)?;
        if taken.is_none() {
            let holder = tx
                .query_opt(
                    &format!(
                        "SELECT owner, lease_until - {NOW_MS} FROM flow_action_claims WHERE system = $1 AND key = $2"
                    ),
                    &[&system, &key],
                )
                .map_err(&failed)?;
            // Gone since: another claimant ended it; the next attempt will see how.
            let lease = holder.map_or(Lease { owner: String::new(), remaining_ms: 1 }, |row| Lease {
                owner: row.get(0),
                remaining_ms: row.get::<_, i64>(1).max(1),
            });
            return Ok(ActionClaim::Held(lease));
        }
        let result = tx
            .query_opt(
                "SELECT system, key, result, run, seq, args FROM flow_action_results WHERE system = $1 AND key = $2",
                &[&system, &key],
            )
            .map_err(&failed)?;
        if let Some(row) = result {
            // Not claimed after all: the transaction rolls back.
            return Ok(ActionClaim::Done(action_result(&row)?));
        }
        tx.commit().map_err(&failed)?;
        Ok(ActionClaim::Claimed)
    }

    fn renew(&self, owner: &str, held: &[Held], ttl_ms: i64) -> Result<()> {
        let failed = unusable("cannot renew leases");
        let mut client = self.client()?;
        let mut tx = client.transaction().map_err(&failed)?;
        for held in held {
            match held {
                Held::Run(run) => tx.execute(
                    &format!("UPDATE flow_runs SET lease_until = {NOW_MS} + $1 WHERE owner = $2 AND id = $3"),
                    &[&ttl_ms, &owner, run],
                ),
                Held::Action(system, key) => tx.execute(
                    &format!(
                        "UPDATE flow_action_claims SET lease_until = {NOW_MS} + $1 \
                         WHERE owner = $2 AND system = $3 AND key = $4"
                    ),
                    &[&ttl_ms, &owner, system, key],
                ),
                Held::Case(batch, n) => tx.execute(
                    &format!(
                        "UPDATE flow_queue SET lease_until = {NOW_MS} + $1 \
                         WHERE owner = $2 AND batch = $3 AND n = $4 AND NOT done"
                    ),
                    &[&ttl_ms, &owner, batch, &(*n as i64)],
                ),
            }
            .map_err(&failed)?;
        }
        tx.commit().map_err(&failed)
    }

    fn release(&self, owner: &str, held: &[Held]) -> Result<()> {
        let failed = unusable("cannot release leases");
        let mut client = self.client()?;
        let mut tx = client.transaction().map_err(&failed)?;
        for held in held {
            match held {
                Held::Run(run) => {
                    tx.execute("UPDATE flow_runs SET lease_until = 0 WHERE owner = $1 AND id = $2", &[&owner, run])
                }
                Held::Action(system, key) => tx.execute(
                    "DELETE FROM flow_action_claims WHERE owner = $1 AND system = $2 AND key = $3",
                    &[&owner, system, key],
                ),
                Held::Case(batch, n) => tx.execute(
                    "UPDATE flow_queue SET lease_until = 0 WHERE owner = $1 AND batch = $2 AND n = $3",
                    &[&owner, batch, &(*n as i64)],
                ),
            }
            .map_err(&failed)?;
        }
        tx.commit().map_err(&failed)
    }

    fn enqueue(&self, batch: &QueuedBatch, cases: &[(u64, String)]) -> Result<()> {
        let failed = unusable("cannot queue the batch");
        let mut client = self.client()?;
        let mut tx = client.transaction().map_err(&failed)?;
        tx.execute(
            "INSERT INTO flow_batches (id, plan, principal, options, created, cases) VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &batch.id,
                &batch.plan,
                &batch.principal,
                &batch.options.to_string(),
                &batch.created,
                &(batch.cases as i64),
            ],
        )
        .map_err(&failed)?;
        // Many rows a statement: a batch of a million cases is a few thousand round trips.
        for chunk in cases.chunks(1000) {
            let numbers: Vec<i64> = chunk.iter().map(|(n, _)| *n as i64).collect();
            let bodies: Vec<&str> = chunk.iter().map(|(_, body)| body.as_str()).collect();
            tx.execute(
                "INSERT INTO flow_queue (batch, n, body) SELECT $1, n, body FROM unnest($2::bigint[], $3::text[]) AS c(n, body)",
                &[&batch.id, &numbers, &bodies],
            )
            .map_err(&failed)?;
        }
        tx.commit().map_err(&failed)
    }

    fn batch(&self, id: &str) -> Result<Option<QueuedBatch>> {
        self.read(|| {
            let row = self
                .client()?
                .query_opt("SELECT plan, principal, options, created, cases FROM flow_batches WHERE id = $1", &[&id])
                .map_err(unusable("cannot read the batch"))?;
            row.map(|row| {
                let options = serde_json::from_str(row.get::<_, &str>(2))
                    .map_err(|e| StoreError::Unusable(format!("the options of batch `{id}` are not JSON: {e}")))?;
                Ok(QueuedBatch {
                    id: id.to_owned(),
                    plan: row.get(0),
                    principal: row.get(1),
                    options,
                    created: row.get(3),
                    cases: row.get::<_, i64>(4) as u64,
                })
            })
            .transpose()
        })
    }

    fn take_cases(&self, owner: &str, ttl_ms: i64, limit: usize) -> Result<Vec<QueuedCase>> {
        let rows = self
            .client()?
            .query(
                &format!(
                    "UPDATE flow_queue AS q SET owner = $1, lease_until = {NOW_MS} + $2 FROM (\
                       SELECT batch, n FROM flow_queue WHERE NOT done \
                       AND (lease_until IS NULL OR lease_until <= {NOW_MS}) \
                       ORDER BY batch, n LIMIT $3 FOR UPDATE SKIP LOCKED) AS free \
                     WHERE q.batch = free.batch AND q.n = free.n RETURNING q.batch, q.n, q.body"
                ),
                &[&owner, &ttl_ms, &(limit as i64)],
            )
            .map_err(unusable("cannot take queued cases"))?;
        let mut cases: Vec<QueuedCase> = rows
            .iter()
            .map(|row| QueuedCase { batch: row.get(0), n: row.get::<_, i64>(1) as u64, body: row.get(2) })
            .collect();
        cases.sort_by(|a, b| (&a.batch, a.n).cmp(&(&b.batch, b.n)));
        Ok(cases)
    }

    fn finish_cases(&self, _owner: &str, done: &[(String, u64, Json)]) -> Result<()> {
        let failed = unusable("cannot record the cases' outcomes");
        let batches: Vec<&str> = done.iter().map(|(batch, _, _)| batch.as_str()).collect();
        let numbers: Vec<i64> = done.iter().map(|(_, n, _)| *n as i64).collect();
        let outcomes: Vec<String> = done.iter().map(|(_, _, outcome)| outcome.to_string()).collect();
        self.client()?
            .execute(
                "UPDATE flow_queue AS q SET done = true, outcome = c.outcome, owner = NULL, lease_until = NULL \
                 FROM unnest($1::text[], $2::bigint[], $3::text[]) AS c(batch, n, outcome) \
                 WHERE q.batch = c.batch AND q.n = c.n AND NOT q.done",
                &[&batches, &numbers, &outcomes],
            )
            .map_err(&failed)?;
        Ok(())
    }

    fn outcomes(&self, batch: &str) -> Result<Vec<(u64, Option<Json>)>> {
        self.read(|| {
            let rows = self
                .client()?
                .query("SELECT n, outcome FROM flow_queue WHERE batch = $1 ORDER BY n", &[&batch])
                .map_err(unusable("cannot read the batch's outcomes"))?;
            rows.iter()
                .map(|row| {
                    let n = row.get::<_, i64>(0) as u64;
                    let outcome = row.get::<_, Option<&str>>(1).map(serde_json::from_str).transpose().map_err(|e| {
                        StoreError::Unusable(format!("the outcome of case {n} of batch `{batch}` is not JSON: {e}"))
                    })?;
                    Ok((n, outcome))
                })
                .collect()
        })
    }

    fn take_deliveries(
        &self,
        endpoints: &[String],
        owner: &str,
        ttl_ms: i64,
        limit: usize,
    ) -> Result<Vec<super::Delivery>> {
        let rows = self
            .client()?
            .query(
                &format!(
                    "UPDATE flow_deliveries AS d SET owner = $1, lease_until = {NOW_MS} + $2 FROM (\
                       SELECT n FROM flow_deliveries WHERE state = 'pending' AND next_at <= {NOW_MS} \
                       AND (lease_until IS NULL OR lease_until <= {NOW_MS}) AND endpoint = ANY($4) \
                       ORDER BY next_at, n LIMIT $3 FOR UPDATE SKIP LOCKED) AS due \
                     WHERE d.n = due.n RETURNING d.endpoint, d.id, d.kind, d.data, d.created, d.state, d.attempts, \
                     d.error, d.next_at, d.n"
                ),
                &[&owner, &ttl_ms, &(limit as i64), &endpoints],
            )
            .map_err(unusable("cannot take notices to deliver"))?;
        let mut due: Vec<(i64, i64, super::Delivery)> = rows
            .iter()
            .map(|row| Ok((row.get::<_, i64>(8), row.get::<_, i64>(9), delivery_from_row(row)?)))
            .collect::<Result<_>>()?;
        due.sort_by_key(|(next, n, _)| (*next, *n));
        Ok(due.into_iter().map(|(_, _, delivery)| delivery).collect())
    }

    fn finish_delivery(&self, owner: &str, endpoint: &str, id: &str, attempt: &super::Attempt) -> Result<()> {
        let (state, next, error) = attempt.recorded();
        let state = state.as_str();
        self.client()?
            .execute(
                &format!(
                    "UPDATE flow_deliveries SET state = $1, attempts = attempts + 1, next_at = {NOW_MS} + $2, \
                     error = $3, owner = NULL, lease_until = NULL WHERE endpoint = $4 AND id = $5 \
                     AND state = 'pending' AND owner = $6"
                ),
                &[&state, &next, &error, &endpoint, &id, &owner],
            )
            .map_err(unusable("cannot record a notice's delivery"))?;
        Ok(())
    }

    fn deliveries(&self, state: Option<super::DeliveryState>) -> Result<Vec<super::Delivery>> {
        self.read(|| {
            let state = state.map(super::DeliveryState::as_str);
            let rows = self
                .client()?
                .query(
                    &format!(
                        "SELECT {DELIVERY_COLUMNS} FROM flow_deliveries WHERE $1::TEXT IS NULL OR state = $1 ORDER BY n"
                    ),
                    &[&state],
                )
                .map_err(unusable("cannot read the notices"))?;
            rows.iter().map(delivery_from_row).collect()
        })
    }

    fn monitor_window(&self, flow: &str, series: &str, after_minute: i64) -> Result<(i64, i64)> {
        self.read(|| {
            let row = self
                .client()?
                .query_one(
                    "SELECT COALESCE(SUM(counted), 0)::bigint, COALESCE(SUM(total), 0)::bigint \
                     FROM flow_monitor_counts WHERE flow = $1 AND series = $2 AND minute > $3",
                    &[&flow, &series, &after_minute],
                )
                .map_err(unusable("cannot read the monitors' counts"))?;
            Ok((row.get(0), row.get(1)))
        })
    }

    fn monitor_totals(&self) -> Result<Vec<super::Tally>> {
        self.read(|| {
            let rows = self
                .client()?
                .query(
                    "SELECT flow, series, SUM(counted)::bigint, SUM(total)::bigint FROM flow_monitor_counts \
                     GROUP BY flow, series ORDER BY flow, series",
                    &[],
                )
                .map_err(unusable("cannot read the monitors' counts"))?;
            Ok(rows
                .iter()
                .map(|row| super::Tally {
                    flow: row.get(0),
                    series: row.get(1),
                    minute: 0,
                    counted: row.get(2),
                    of: row.get(3),
                })
                .collect())
        })
    }

    fn fold_monitor_pending(&self) -> Result<usize> {
        let failed = unusable("cannot fold the monitors' pending counts");
        let mut client = self.client()?;
        let mut tx = client.transaction().map_err(&failed)?;
        // Folds take turns; commits only add pending rows, and those not committed yet are
        // not seen, so not deleted: the next fold takes them.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MONITOR_LOCK]).map_err(&failed)?;
        let rows = tx.query("DELETE FROM flow_monitor_pending RETURNING tallies", &[]).map_err(&failed)?;
        let texts: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
        let sums = super::sum_tallies(texts.iter().map(String::as_str))?;
        if !sums.is_empty() {
            let (mut flows, mut series, mut minutes, mut counted, mut totals) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for ((flow, s, minute), (c, t)) in sums {
                flows.push(flow);
                series.push(s);
                minutes.push(minute);
                counted.push(c);
                totals.push(t);
            }
            tx.execute(
                "INSERT INTO flow_monitor_counts (flow, series, minute, counted, total) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[]) \
                 ON CONFLICT (flow, series, minute) DO UPDATE SET \
                 counted = flow_monitor_counts.counted + excluded.counted, \
                 total = flow_monitor_counts.total + excluded.total",
                &[&flows, &series, &minutes, &counted, &totals],
            )
            .map_err(&failed)?;
        }
        tx.commit().map_err(&failed)?;
        Ok(texts.len())
    }

    fn monitor_checks(&self, limit: usize) -> Result<Vec<(String, String, i64)>> {
        self.read(|| {
            let rows = self
                .client()?
                .query(
                    "SELECT run, flow, minute FROM flow_monitor_checks ORDER BY minute, run LIMIT $1",
                    &[&(limit as i64)],
                )
                .map_err(unusable("cannot read the runs to check"))?;
            Ok(rows.iter().map(|row| (row.get(0), row.get(1), row.get(2))).collect())
        })
    }

    fn finish_monitor_check(&self, run: &str, tallies: &[super::Tally]) -> Result<bool> {
        let failed = unusable("cannot record a run's check");
        let mut client = self.client()?;
        let mut tx = client.transaction().map_err(&failed)?;
        // Of two handles taking one run off at once, the second waits for the first and
        // finds it gone.
        let taken = tx.execute("DELETE FROM flow_monitor_checks WHERE run = $1", &[&run]).map_err(&failed)?;
        if taken == 1 && !tallies.is_empty() {
            tx.execute("INSERT INTO flow_monitor_pending (tallies) VALUES ($1)", &[&super::encode_tallies(tallies)])
                .map_err(&failed)?;
        }
        tx.commit().map_err(&failed)?;
        Ok(taken == 1)
    }

    fn fold_monitor_counts(&self, before_minute: i64) -> Result<()> {
        let failed = unusable("cannot fold the monitors' counts");
        let mut client = self.client()?;
        let mut tx = client.transaction().map_err(&failed)?;
        // Folds take turns.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MONITOR_LOCK]).map_err(&failed)?;
        tx.execute(
            "INSERT INTO flow_monitor_counts (flow, series, minute, counted, total) \
             SELECT flow, series, 0, SUM(counted), SUM(total) FROM flow_monitor_counts \
             WHERE minute > 0 AND minute <= $1 GROUP BY flow, series \
             ON CONFLICT (flow, series, minute) DO UPDATE SET \
             counted = flow_monitor_counts.counted + excluded.counted, \
             total = flow_monitor_counts.total + excluded.total",
            &[&before_minute],
        )
        .map_err(&failed)?;
        tx.execute("DELETE FROM flow_monitor_counts WHERE minute > 0 AND minute <= $1", &[&before_minute])
            .map_err(&failed)?;
        tx.commit().map_err(&failed)
    }

    fn raise_alert(&self, alert: &super::Alert, notices: &[super::Notice]) -> Result<bool> {
        let failed = unusable("cannot record the alert");
        let mut client = self.client()?;
        let mut tx = client.transaction().map_err(&failed)?;
        let raised = tx
            .execute(
                "INSERT INTO flow_alerts (id, flow, monitor, severity, routes, condition, raised, value) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
                &[
                    &alert.id,
                    &alert.flow,
                    &alert.monitor,
                    &alert.severity,
                    &alert.routes.join(" "),
                    &alert.condition,
                    &alert.raised,
                    &alert.value,
                ],
            )
            .map_err(&failed)?;
        if raised == 1 {
            queue_notices(&mut tx, notices, None)?;
        }
        tx.commit().map_err(&failed)?;
        Ok(raised == 1)
    }

    fn resolve_alert(&self, id: &str, at: &str, value: &str, notices: &[super::Notice]) -> Result<bool> {
        let failed = unusable("cannot resolve the alert");
        let mut client = self.client()?;
        let mut tx = client.transaction().map_err(&failed)?;
        let resolved = tx
            .execute(
                "UPDATE flow_alerts SET resolved = $2, cleared = $3 WHERE id = $1 AND resolved IS NULL",
                &[&id, &at, &value],
            )
            .map_err(&failed)?;
        if resolved == 1 {
            queue_notices(&mut tx, notices, None)?;
        }
        tx.commit().map_err(&failed)?;
        Ok(resolved == 1)
    }

    fn alerts(&self, open_only: bool, limit: usize) -> Result<Vec<super::Alert>> {
        self.read(|| {
            let rows = self
                .client()?
                .query(
                    "SELECT id, flow, monitor, severity, routes, condition, raised, value, resolved, cleared \
                     FROM flow_alerts WHERE resolved IS NULL OR NOT $1 \
                     ORDER BY resolved IS NOT NULL, COALESCE(resolved, raised) DESC, id LIMIT $2",
                    &[&open_only, &(limit as i64)],
                )
                .map_err(unusable("cannot read the alerts"))?;
            Ok(rows
                .iter()
                .map(|row| super::Alert {
                    id: row.get(0),
                    flow: row.get(1),
                    monitor: row.get(2),
                    severity: row.get(3),
                    routes: row.get::<_, String>(4).split_whitespace().map(str::to_owned).collect(),
                    condition: row.get(5),
                    raised: row.get(6),
                    value: row.get(7),
                    resolved: row.get(8),
                    cleared: row.get(9),
                })
                .collect())
        })
    }

    fn is_empty(&self) -> Result<bool> {
        let row = self
            .client()?
            .query_one(
                "SELECT (SELECT count(*) FROM flow_plans) + (SELECT count(*) FROM flow_runs) \
                 + (SELECT count(*) FROM flow_refusals) + (SELECT count(*) FROM flow_shadows) \
                 + (SELECT count(*) FROM flow_log)",
                &[],
            )
            .map_err(unusable("cannot read the store"))?;
        Ok(row.get::<_, i64>(0) == 0)
    }

    fn import(&self, parts: &[Part<'_>]) -> Result<()> {
        let failed = unusable("cannot import into the store");
        let mut client = self.client()?;
        let mut tx = client.transaction().map_err(&failed)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOG_LOCK]).map_err(&failed)?;
        for part in parts {
            match *part {
                Part::Plan { hash, bytes } => {
                    tx.execute(
                        "INSERT INTO flow_plans (hash, bytes) VALUES ($1, $2) ON CONFLICT (hash) DO NOTHING",
                        &[&hash, &bytes],
                    )
                    .map_err(&failed)?;
                }
                Part::Run { record, events, waiting, results } => {
                    tx.execute(
                        "INSERT INTO flow_runs (id, plan, flow, status, created, seq, head, signature, principal) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                        &[
                            &record.id,
                            &record.plan,
                            &record.flow,
                            &record.status.as_str(),
                            &record.created,
                            &(record.seq as i64),
                            &record.head,
                            &record.signature,
                            &record.principal,
                        ],
                    )
                    .map_err(&failed)?;
                    let seqs: Vec<i64> = events.iter().map(|e| e.seq as i64).collect();
                    let ats: Vec<&str> = events.iter().map(|e| e.at.as_str()).collect();
                    let prevs: Vec<&str> = events.iter().map(|e| e.prev.as_str()).collect();
                    let hashes: Vec<&str> = events.iter().map(|e| e.hash.as_str()).collect();
                    let bodies: Vec<&str> = events.iter().map(|e| e.body.as_str()).collect();
                    tx.execute(
                        "INSERT INTO flow_events (run, seq, at, prev, hash, body) \
                         SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[])",
                        &[&record.id, &seqs, &ats, &prevs, &hashes, &bodies],
                    )
                    .map_err(&failed)?;
                    for w in waiting {
                        tx.execute(
                            "INSERT INTO flow_waiting (run, step, flow, kind, roles, due) VALUES ($1, $2, $3, $4, $5, $6)",
                            &[&w.run, &w.step, &w.flow, &w.kind, &w.roles.join(" "), &w.due],
                        )
                        .map_err(&failed)?;
                    }
                    for r in results {
                        tx.execute(
                            "INSERT INTO flow_action_results (system, key, result, run, seq, args) \
                             VALUES ($1, $2, $3, $4, $5, $6)",
                            &[&r.system, &r.key, &r.result.to_string(), &r.run, &(r.seq as i64), &r.args],
                        )
                        .map_err(&failed)?;
                    }
                }
                Part::Refusal(r) => {
                    tx.execute(
                        "INSERT INTO flow_refusals (seq, at, principal, operation, grant_, message, prev, hash) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                        &[&(r.seq as i64), &r.at, &r.principal, &r.operation, &r.grant, &r.message, &r.prev, &r.hash],
                    )
                    .map_err(&failed)?;
                }
                Part::Release(entry) => insert_release(&mut tx, entry).map_err(&failed)?,
                Part::Shadow(shadow) => {
                    tx.execute(
                        "INSERT INTO flow_shadows (run, candidate, flow, created, production, outcome, changes, \
                         signature) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                        &[
                            &shadow.run,
                            &shadow.candidate,
                            &shadow.flow,
                            &shadow.created,
                            &shadow.production,
                            &shadow.outcome,
                            &shadow.changes.to_string(),
                            &shadow.signature,
                        ],
                    )
                    .map_err(&failed)?;
                }
                Part::Log { entries, checkpoint } => {
                    let frontier = super::imported_frontier(entries, checkpoint)?;
                    let ns: Vec<i64> = (0..entries.len() as i64).collect();
                    let kinds: Vec<&str> = entries.iter().map(|e| e.kind.as_str()).collect();
                    let subjects: Vec<&str> = entries.iter().map(|e| e.subject.as_str()).collect();
                    let seqs: Vec<i64> = entries.iter().map(|e| e.seq as i64).collect();
                    let hashes: Vec<&str> = entries.iter().map(|e| e.hash.as_str()).collect();
                    tx.execute(
                        "INSERT INTO flow_log (n, kind, subject, seq, hash) \
                         SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[])",
                        &[&ns, &kinds, &subjects, &seqs, &hashes],
                    )
                    .map_err(&failed)?;
                    tx.execute(
                        "INSERT INTO flow_checkpoint (id, size, root, at, public_key, signature, frontier) \
                         VALUES (0, $1, $2, $3, $4, $5, $6)",
                        &[
                            &(checkpoint.size as i64),
                            &checkpoint.root,
                            &checkpoint.at,
                            &checkpoint.public_key,
                            &checkpoint.signature,
                            &frontier,
                        ],
                    )
                    .map_err(&failed)?;
                }
            }
        }
        tx.commit().map_err(&failed)
    }
}

fn action_result(row: &postgres::Row) -> Result<ActionResult> {
    let (system, key): (String, String) = (row.get(0), row.get(1));
    let result = serde_json::from_str::<Json>(row.get::<_, &str>(2)).map_err(|e| {
        StoreError::Unusable(format!("the result of `{system}` for key `{key}` in the store is not JSON: {e}"))
    })?;
    Ok(ActionResult { system, key, result, run: row.get(3), seq: row.get::<_, i64>(4) as u64, args: row.get(5) })
}

fn insert_release(tx: &mut Transaction<'_>, entry: &super::ReleaseEntry) -> std::result::Result<(), postgres::Error> {
    let (key, value) = entry.signature.clone().unzip();
    tx.execute(
        "INSERT INTO flow_releases (seq, at, prev, hash, body, public_key, signature) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[&(entry.seq as i64), &entry.at, &entry.prev, &entry.hash, &entry.body, &key, &value],
    )
    .map(|_| ())
}

/// The number and hash of a chain's last entry, when it has one.
type Ending = Option<(i64, String)>;

/// The last entry of a chain the store keeps beside runs (`flow_refusals`,
/// `flow_releases`), and the last entry of its kind the store's log recorded.
fn chain_ends(tx: &mut Transaction<'_>, table: &str, kind: crate::checkpoint::Kind) -> Result<(Ending, Ending)> {
    let last = tx
        .query_opt(&format!("SELECT seq, hash FROM {table} ORDER BY seq DESC LIMIT 1"), &[])
        .map_err(unusable("cannot read the store"))?
        .map(|row| (row.get(0), row.get(1)));
    let logged = tx
        .query_opt("SELECT seq, hash FROM flow_log WHERE kind = $1 ORDER BY n DESC LIMIT 1", &[&kind.as_str()])
        .map_err(unusable("cannot read the store's log"))?
        .map(|row| (row.get(0), row.get(1)));
    Ok((last, logged))
}
