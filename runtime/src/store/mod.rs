//! Durable runs: the [`Store`] trait, its SQLite implementation ([`SqliteStore`]), and
//! the suite of checks every implementation must pass ([`suite`]).
//!
//! A store keeps plans by hash, each run's hash-chained events, the steps that wait for
//! decisions, the results of actions by idempotency key, and refusals that belong to no
//! run. Every change of a run is one [`Store::append`]: its events, its new head and status,
//! what it waits for and the action results it got, in one transaction that fails if another
//! process appended first (`expected_seq`), so several runtime processes can share a store.
//!
//! Which process executes a run, and which calls an action's handler for a key, is decided
//! by leases in the store: an owner holds a lease until a time of the store's clock, renews
//! it while it works, and loses it when it stops renewing; another process takes an
//! expired lease over ([`Store::claim_run`], [`Store::claim_interrupted`],
//! [`Store::claim_action`]).

#[cfg(feature = "postgres")]
mod postgres;
mod sqlite;
pub mod suite;

use serde_json::Value as Json;

use crate::event::Status;

#[cfg(feature = "postgres")]
pub use postgres::{PostgresOptions, PostgresStore, shown_url};
pub use sqlite::SqliteStore;

/// A stored run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunRecord {
    pub id: String,
    pub plan: String,
    pub flow: String,
    pub status: Status,
    /// When it started (RFC 3339).
    pub created: String,
    /// The number of events.
    pub seq: u64,
    /// The hash of the last event.
    pub head: String,
    /// The signature of `head`, hex, when the deployment signs evidence.
    pub signature: Option<String>,
    /// Who started it.
    pub principal: String,
    /// While the run executes: the lease of the runtime executing it, so that other
    /// processes leave it alone while that runtime renews it, and resume it once it does not.
    /// Written by [`Store::append`] from [`Commit::lease`], not from this field.
    pub owner: Option<Lease>,
}

/// A runtime's hold on a run it executes or on an action key whose handler it calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The runtime holding it (`host/pid/nonce`, for people to read; compared as a whole).
    pub owner: String,
    /// How long it had to run when it was read, in milliseconds of the store's clock
    /// (zero or less: it expired, and any runtime may take it over).
    pub remaining_ms: i64,
}

impl Lease {
    pub fn expired(&self) -> bool {
        self.remaining_ms <= 0
    }
}

/// A batch of cases queued for workers: the plan they run, on whose behalf, and how.
#[derive(Clone, Debug, PartialEq)]
pub struct QueuedBatch {
    pub id: String,
    pub plan: String,
    /// The principal the cases run for (their roles are the deployment's).
    pub principal: String,
    /// How the cases run: `{"clock"?, "durable", "shadow"?}`.
    pub options: Json,
    /// When it was queued (RFC 3339).
    pub created: String,
    /// How many cases it has.
    pub cases: u64,
}

/// A queued case, as a worker takes it: its batch, its number there, and its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedCase {
    pub batch: String,
    pub n: u64,
    pub body: String,
}

/// A part of what a store holds, as [`Store::import`] copies it into another store, as it
/// was: a plan; a run with its events, what it waits for and the action results it recorded;
/// a refusal; a shadow; and, last, the log with its checkpoint.
pub enum Part<'a> {
    Plan { hash: &'a str, bytes: &'a [u8] },
    Run { record: &'a RunRecord, events: &'a [RawEvent], waiting: &'a [Waiting], results: &'a [ActionResult] },
    Refusal(&'a Refusal),
    Release(&'a ReleaseEntry),
    Shadow(&'a ShadowRecord),
    Log { entries: &'a [crate::checkpoint::Entry], checkpoint: &'a crate::checkpoint::Checkpoint },
}

/// The frontier of a log's entries, as text, checked against the checkpoint that covers
/// them: a store imports only a log whose checkpoint is its root.
pub(crate) fn imported_frontier(
    entries: &[crate::checkpoint::Entry],
    checkpoint: &crate::checkpoint::Checkpoint,
) -> Result<String> {
    let mut frontier = crate::checkpoint::Frontier::default();
    for entry in entries {
        frontier.push(entry.leaf());
    }
    if checkpoint.size != entries.len() as u64 || checkpoint.root_bytes() != Some(frontier.root()) {
        return Err(StoreError::Changed(
            "the log to import is not the one its checkpoint covers: nothing was imported of it".into(),
        ));
    }
    Ok(frontier.to_text())
}

/// What a runtime holds a lease on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Held {
    /// A run it executes.
    Run(String),
    /// An action key whose handler it calls: system, key.
    Action(String, String),
    /// A queued case it runs: batch, number.
    Case(String, u64),
}

/// What [`Store::claim_action`] found.
#[derive(Clone, Debug, PartialEq)]
pub enum ActionClaim {
    /// The claimant may call the handler: nobody else holds the key.
    Claimed,
    /// Another runtime holds the key and is calling the handler (its lease is live).
    Held(Lease),
    /// A result is recorded for the key: nobody calls the handler again.
    Done(ActionResult),
}

/// One stored event of a run's chain.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    pub seq: u64,
    /// When it was recorded (RFC 3339, wall clock).
    pub at: String,
    pub prev: String,
    pub hash: String,
    pub body: Json,
}

/// A stored event as read, its body not yet parsed (bulk readers parse on other threads).
#[derive(Clone, Debug, PartialEq)]
pub struct RawEvent {
    pub seq: u64,
    pub at: String,
    pub prev: String,
    pub hash: String,
    pub body: String,
}

impl RawEvent {
    pub fn parse(self, run: &str) -> Result<StoredEvent> {
        let body = serde_json::from_str(&self.body).map_err(|e| {
            StoreError::Unusable(format!("event {} of run `{run}` in the store is not JSON: {e}", self.seq))
        })?;
        Ok(StoredEvent { seq: self.seq, at: self.at, prev: self.prev, hash: self.hash, body })
    }
}

/// A shadow run: a candidate plan executed on a production run's inputs, without actions.
#[derive(Clone, Debug, PartialEq)]
pub struct ShadowRecord {
    /// The production run.
    pub run: String,
    /// The candidate plan's hash (the plan is kept in the store).
    pub candidate: String,
    pub flow: String,
    /// When the shadow ran (RFC 3339).
    pub created: String,
    /// The production run's status when the shadow ran, and the candidate's outcome.
    pub production: String,
    pub outcome: String,
    /// The steps whose results differ: `[{"node", "before", "after"}]`, values with their
    /// label marks (redacted when shown).
    pub changes: Json,
    /// The signature of [`ShadowRecord::digest`] by the deployment's key, hex, when it signs.
    pub signature: Option<String>,
}

impl ShadowRecord {
    /// The Merkle digest of the record (everything but its signature).
    pub fn digest(&self) -> String {
        crate::digest::digest(&serde_json::json!({
            "run": self.run, "candidate": self.candidate, "flow": self.flow, "created": self.created,
            "production": self.production, "outcome": self.outcome, "changes": self.changes,
        }))
    }
}

/// A step waiting for a decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiting {
    pub run: String,
    pub flow: String,
    pub step: String,
    /// `review`, `gate` (soft) or `approval`.
    pub kind: String,
    /// Who may decide.
    pub roles: Vec<String>,
    /// When the step's next timer (a reminder, a deadline) falls, in seconds since the Unix
    /// epoch; absent for a step without deadlines.
    pub due: Option<i64>,
}

/// A pending run and one of its waiting steps, as [`Store::pending_steps`] lists them.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingStep {
    pub run: String,
    pub plan: String,
    /// When the run began (RFC 3339).
    pub created: String,
    /// The step, when the store lists one for the run.
    pub waiting: Option<Waiting>,
}

/// The result of an action, by system and idempotency key, with where it was recorded:
/// the run, and the number of its `action_completed` event, so that whoever reuses it can
/// check it against that run's chain; and the digest of the arguments it was called with,
/// so that a key is never reused for another request.
#[derive(Clone, Debug, PartialEq)]
pub struct ActionResult {
    pub system: String,
    pub key: String,
    pub result: Json,
    pub run: String,
    pub seq: u64,
    /// The digest of the call's arguments (`digest::digest` of their JSON).
    pub args: String,
}

/// A refusal that belongs to no run (starting one), in the store's chain of such refusals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub seq: u64,
    pub at: String,
    pub principal: String,
    pub operation: String,
    pub grant: String,
    pub message: String,
    pub prev: String,
    pub hash: String,
}

/// One change of a run, as [`Store::append`] stores it atomically.
pub struct Commit<'a> {
    pub run: &'a RunRecord,
    /// The number of events the run has before this commit (0: a new run).
    pub expected_seq: u64,
    /// Its events, chained, with their bodies as the store keeps them (JSON text).
    pub events: &'a [RawEvent],
    /// What the run waits for now (replacing what it waited for).
    pub waiting: &'a [Waiting],
    /// The results of actions it got.
    pub results: &'a [ActionResult],
    /// Signs the store's new checkpoint, when the deployment signs evidence.
    pub key: Option<Signer<'a>>,
    /// While the run executes (its status is `running`): the runtime executing it and how
    /// long its lease lasts, in milliseconds from the store's clock. `None` clears the lease.
    pub lease: Option<(&'a str, i64)>,
    /// Action keys (system, key) claimed by this run whose calls are over without a result
    /// to record (the handler failed): their claims are given up.
    pub released: &'a [(String, String)],
    /// Notifications of the commit's events to webhook endpoints, queued with them (an
    /// endpoint that has a notice of the same id keeps it).
    pub notices: &'a [Notice],
    /// What the commit's events add to the counts of the monitors of the run's plan, kept
    /// with it until [`Store::fold_monitor_pending`].
    pub tallies: &'a [Tally],
    /// The run ended in this minute and its plan's monitors check ended runs: it is listed
    /// for [`Store::monitor_checks`].
    pub check: Option<i64>,
}

/// What one commit adds to a monitor's counts: of one series of one flow
/// ([`flow_ir::monitor::Monitor::series`]), in one minute (since the Unix epoch, by the
/// runtime's clock). A window's value is the sum of its minutes'.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tally {
    pub flow: String,
    pub series: String,
    pub minute: i64,
    /// What the monitor counts (runs, degraded inferences, late ends, …).
    pub counted: i64,
    /// What that is counted among (inferences, ends, …); 0 for a count.
    pub of: i64,
}

/// A commit's tallies as the store keeps them until they are folded into the counts: JSON,
/// `[[flow, series, minute, counted, of], …]`.
pub(crate) fn encode_tallies(tallies: &[Tally]) -> String {
    let rows: Vec<Json> =
        tallies.iter().map(|t| serde_json::json!([t.flow, t.series, t.minute, t.counted, t.of])).collect();
    Json::Array(rows).to_string()
}

/// Counts (counted, of) by flow, series and minute, in that order.
pub(crate) type Sums = std::collections::BTreeMap<(String, String, i64), (i64, i64)>;

/// The tallies of the commits `texts` (as [`encode_tallies`] wrote them), summed.
pub(crate) fn sum_tallies<'t>(texts: impl IntoIterator<Item = &'t str>) -> Result<Sums> {
    type Row = (String, String, i64, i64, i64);
    let mut sums = Sums::new();
    for text in texts {
        let rows: Vec<Row> = serde_json::from_str(text)
            .map_err(|e| StoreError::Unusable(format!("the monitors' pending counts are not readable: {e}")))?;
        for (flow, series, minute, counted, of) in rows {
            let sum = sums.entry((flow, series, minute)).or_default();
            *sum = (sum.0.saturating_add(counted), sum.1.saturating_add(of));
        }
    }
    Ok(sums)
}

/// An alert a monitor raised, and its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    /// `FLOW/MONITOR/UNIX-SECONDS` of when it was raised.
    pub id: String,
    pub flow: String,
    pub monitor: String,
    pub severity: String,
    pub routes: Vec<String>,
    /// The monitor's condition, as the flow writes it.
    pub condition: String,
    /// When it was raised (RFC 3339), and the value then.
    pub raised: String,
    pub value: String,
    /// When the condition cleared, and the value then; `None` while it is open.
    pub resolved: Option<String>,
    pub cleared: Option<String>,
}

/// A notification queued for a webhook endpoint in the transaction that records what it
/// tells, so that nothing recorded goes untold and nothing is queued that was not recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    /// The endpoint's name in the deployment.
    pub endpoint: String,
    /// Names what it tells, for good: `RUN.SEQ`, the run and number of its event (a refusal
    /// that belongs to no run gets `refusals.SEQ` from [`Store::record_refusal`]).
    pub id: String,
    /// `step.waiting`, `step.decided`, `gate.blocked`, `gate.overridden`, `run.ended`,
    /// `refusal`.
    pub kind: String,
    /// What it says, as evidence JSON: labelled values marked, redacted when it is sent.
    pub data: Json,
}

/// Where a notice's delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryState {
    /// Not delivered yet: due at its `next` time.
    Pending,
    /// The endpoint answered `2xx`.
    Delivered,
    /// Given up: the endpoint refused it, or did not take it in as many attempts as allowed.
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<DeliveryState> {
        [DeliveryState::Pending, DeliveryState::Delivered, DeliveryState::Failed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// A queued notice with its delivery.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    pub notice: Notice,
    /// When it was queued (RFC 3339).
    pub created: String,
    pub state: DeliveryState,
    /// How many times it was sent.
    pub attempts: u32,
    /// Why the last attempt failed.
    pub error: Option<String>,
}

/// How an attempt to deliver a notice went, as [`Store::finish_delivery`] records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    Delivered,
    /// Failed; try again after this many milliseconds.
    Retry {
        after_ms: i64,
        error: String,
    },
    /// Failed for good.
    GaveUp {
        error: String,
    },
}

impl Attempt {
    /// What a store writes of it: the notice's new state, in how many milliseconds it is
    /// due again, and the error.
    pub(crate) fn recorded(&self) -> (DeliveryState, i64, Option<&str>) {
        match self {
            Attempt::Delivered => (DeliveryState::Delivered, 0, None),
            Attempt::Retry { after_ms, error } => (DeliveryState::Pending, *after_ms, Some(error.as_str())),
            Attempt::GaveUp { error } => (DeliveryState::Failed, 0, Some(error.as_str())),
        }
    }
}

/// What signs the store's checkpoints: the deployment's key, and the public keys (hex) it
/// believes, one of which must have signed the checkpoint it extends.
#[derive(Clone, Copy)]
pub struct Signer<'a> {
    pub key: &'a ed25519_dalek::SigningKey,
    pub trusted: &'a [String],
}

#[derive(Clone, Debug)]
pub enum StoreError {
    /// Another process changed the run first.
    Conflict(String),
    /// The store cannot be used: unreadable, not a run store, not writable.
    Unusable(String),
    /// What the store keeps beside the runs' chains does not check out against them: the
    /// store was changed behind the runtime's back.
    Changed(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Conflict(run) => write!(f, "run `{run}` was changed by another process; try again"),
            StoreError::Unusable(message) | StoreError::Changed(message) => f.write_str(message),
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Where runs are kept.
pub trait Store: Send + Sync {
    fn put_plan(&self, hash: &str, bytes: &[u8]) -> Result<()>;
    fn plan(&self, hash: &str) -> Result<Option<Vec<u8>>>;
    /// The hashes of every plan kept, sorted.
    fn plans(&self) -> Result<Vec<String>>;
    /// Appends the commit's events to its run (creating it when `expected_seq` is 0),
    /// replaces its record and what it waits for, adds its action results, and appends the
    /// run's new head to the log with a new checkpoint, atomically; fails with
    /// [`StoreError::Conflict`] when the run has other than `expected_seq` events.
    fn append(&self, commit: &Commit<'_>) -> Result<()> {
        self.append_all(std::slice::from_ref(commit))
    }
    /// Appends several commits (of different runs) in one transaction, as
    /// [`Store::append`] appends each, their heads added to the log under one new
    /// checkpoint: all of them or, when one conflicts or fails, none. The group commit of
    /// work that runs many cases at once.
    fn append_all(&self, commits: &[Commit<'_>]) -> Result<()>;
    fn run(&self, id: &str) -> Result<Option<RunRecord>>;
    /// The runs with this status (every run with `None`), oldest first.
    fn runs(&self, status: Option<Status>) -> Result<Vec<RunRecord>>;
    /// A run's events, unparsed (bodies are parsed by whoever reads them, outside the
    /// store's lock).
    fn events(&self, run: &str) -> Result<Vec<RawEvent>>;
    /// Every run's events, run after run (in the order of their ids), unparsed: for reading
    /// every run at once. `f` gets each run's id and events, and returns `false` to stop.
    fn scan_events(&self, f: &mut dyn FnMut(&str, Vec<RawEvent>) -> bool) -> Result<()>;
    /// Every waiting step, by run and step.
    fn waiting(&self) -> Result<Vec<Waiting>>;
    /// The pending runs, the oldest first (then by id), each with its waiting steps (by
    /// step), one row per step; a pending run with none listed has one row without a step.
    fn pending_steps(&self) -> Result<Vec<PendingStep>>;
    /// The runs with a waiting step whose next timer falls at or before `now` (seconds since
    /// the Unix epoch), with when the earliest falls, in that order (then by run), after
    /// `after` in that order, at most `limit`.
    fn due_runs(&self, now: i64, after: Option<(i64, &str)>, limit: usize) -> Result<Vec<(String, i64)>>;
    fn action_result(&self, system: &str, key: &str) -> Result<Option<ActionResult>>;
    /// Every recorded action result, by system and key.
    fn action_results(&self) -> Result<Vec<ActionResult>>;
    /// Records a refused operation that belongs to no run (starting one): `[at, principal,
    /// operation, grant, message]`, chained to the refusals before it, and logs it, with
    /// `notices` of it queued, each named `refusals.SEQ` (their `id` is not read).
    fn record_refusal(&self, refusal: [&str; 5], key: Option<Signer<'_>>, notices: &[Notice]) -> Result<()>;
    /// Refusals that belong to no run, in their chain's order.
    fn refusals(&self) -> Result<Vec<Refusal>>;
    /// Appends `entry` to the release log and logs it, with `notices` of it queued, in one
    /// transaction: only when the release log ends just before it (`Conflict` otherwise: another process recorded a
    /// step first) with the entry the store's log recorded last (`Changed` otherwise).
    fn append_release(&self, entry: &ReleaseEntry, key: Option<Signer<'_>>, notices: &[Notice]) -> Result<()>;
    /// The release log from entry `from` on, and the number and hash of the last entry of
    /// it the store's log recorded.
    fn releases(&self, from: u64) -> Result<ReleaseEntries>;
    /// Keeps a shadow run (replacing an earlier shadow of the same run and candidate), with
    /// its signature when `key` is given, and logs its digest.
    fn put_shadow(&self, shadow: &ShadowRecord, key: Option<Signer<'_>>) -> Result<()>;
    /// The shadow runs, oldest first: all of them, or those of one run.
    fn shadows(&self, run: Option<&str>) -> Result<Vec<ShadowRecord>>;
    /// Every entry of the store's log, in order.
    fn log(&self) -> Result<Vec<crate::checkpoint::Entry>>;
    /// The log's latest checkpoint (`None` for an empty store).
    fn checkpoint(&self) -> Result<Option<crate::checkpoint::Checkpoint>>;

    /// Takes the lease of an executing run for `owner`, for `ttl_ms`, when nobody holds it,
    /// its lease expired, or `owner` holds it already; returns the live lease of another
    /// runtime otherwise (and changes nothing). A run that does not execute (`running`) is
    /// not leased: `Ok(None)` changes nothing then.
    fn claim_run(&self, run: &str, owner: &str, ttl_ms: i64) -> Result<Option<Lease>>;
    /// Takes the lease of one executing run whose lease expired (the oldest such run that
    /// no other runtime is claiming at the same moment) for `owner`; its id, or `None`.
    fn claim_interrupted(&self, owner: &str, ttl_ms: i64) -> Result<Option<String>>;
    /// Claims the call of `system`'s handler with `key` by `run` for `owner`: [`ActionClaim::Done`]
    /// when a result is recorded for the key, else [`ActionClaim::Held`] when another runtime
    /// (or another run of this one) holds a live claim, else the claim is taken. A claim ends
    /// when the commit that records its result, or [`Commit::released`], is stored, or when
    /// its lease expires.
    fn claim_action(&self, system: &str, key: &str, run: &str, owner: &str, ttl_ms: i64) -> Result<ActionClaim>;
    /// Extends the leases `owner` holds on `held` by `ttl_ms` from now (those another owner
    /// holds are left alone).
    fn renew(&self, owner: &str, held: &[Held], ttl_ms: i64) -> Result<()>;
    /// Gives up the leases `owner` holds on `held`, so that another runtime may take them
    /// over at once.
    fn release(&self, owner: &str, held: &[Held]) -> Result<()>;

    /// Queues a batch and its cases (numbered, with their text), in one transaction.
    fn enqueue(&self, batch: &QueuedBatch, cases: &[(u64, String)]) -> Result<()>;
    fn batch(&self, id: &str) -> Result<Option<QueuedBatch>>;
    /// Takes up to `limit` cases that are not done and that nobody holds (or whose holder's
    /// lease ran out), oldest batch first, leased to `owner` for `ttl_ms`; cases another
    /// worker is taking at the same moment are skipped, not waited for.
    fn take_cases(&self, owner: &str, ttl_ms: i64, limit: usize) -> Result<Vec<QueuedCase>>;
    /// Marks cases done with their outcomes (`[(batch, n, outcome)]`, JSON), each once: a
    /// case already done keeps its first outcome.
    fn finish_cases(&self, owner: &str, done: &[(String, u64, Json)]) -> Result<()>;
    /// A batch's outcomes by case number (`None`: not done yet).
    fn outcomes(&self, batch: &str) -> Result<Vec<(u64, Option<Json>)>>;

    /// Takes up to `limit` notices for `endpoints` due for delivery (pending, their time
    /// come) that no other process is sending (or whose sender's lease ran out), oldest
    /// first, leased to `owner` for `ttl_ms`; notices another process is taking at the same
    /// moment are skipped.
    fn take_deliveries(&self, endpoints: &[String], owner: &str, ttl_ms: i64, limit: usize) -> Result<Vec<Delivery>>;
    /// Records `owner`'s attempt to deliver an endpoint's notice, and gives up its lease on
    /// it; a notice already delivered or given up, or leased to another owner since (the
    /// lease ran out), stays as it is.
    fn finish_delivery(&self, owner: &str, endpoint: &str, id: &str, attempt: &Attempt) -> Result<()>;
    /// The queued notices in a state (every one with `None`), oldest first.
    fn deliveries(&self, state: Option<DeliveryState>) -> Result<Vec<Delivery>>;

    /// Whether the store holds nothing: no plan, run, refusal, shadow or log entry.
    fn is_empty(&self) -> Result<bool>;
    /// The sums of a series' counts (counted, of) over the minutes after `after_minute`.
    fn monitor_window(&self, flow: &str, series: &str, after_minute: i64) -> Result<(i64, i64)>;
    /// Every series' counts summed over all its minutes (`minute` 0), by flow and series.
    fn monitor_totals(&self) -> Result<Vec<Tally>>;
    /// Adds the tallies of the commits stored since the last fold to the counts, each once
    /// whoever folds at once: how many commits' tallies it folded. Commits store their
    /// tallies as they are (one row each, cheap); windows and totals read the counts.
    fn fold_monitor_pending(&self) -> Result<usize>;
    /// Runs that ended and wait to be checked for the monitors (their evidence verified, the
    /// run replayed): (run, flow, minute it ended), at most `limit`.
    fn monitor_checks(&self, limit: usize) -> Result<Vec<(String, String, i64)>>;
    /// Takes a run off the list of [`Store::monitor_checks`] and keeps what its check counts
    /// for the next fold, in one transaction: false, keeping nothing, when another handle
    /// took it off first.
    fn finish_monitor_check(&self, run: &str, tallies: &[Tally]) -> Result<bool>;
    /// Folds the counts of the minutes up to `before_minute` into minute 0 of their series
    /// (no window reaches back that far): the totals stay, the rows do not grow for ever.
    fn fold_monitor_counts(&self, before_minute: i64) -> Result<()>;
    /// Records an alert raised, and queues its notices, unless an alert of the same flow and
    /// monitor is open: whether it was recorded.
    fn raise_alert(&self, alert: &Alert, notices: &[Notice]) -> Result<bool>;
    /// Resolves the open alert `id` at `at` with the value then, and queues its notices:
    /// whether it was open.
    fn resolve_alert(&self, id: &str, at: &str, value: &str, notices: &[Notice]) -> Result<bool>;
    /// The open alerts, then (unless `open_only`) the latest resolved, at most `limit`.
    fn alerts(&self, open_only: bool, limit: usize) -> Result<Vec<Alert>>;
    /// Copies `parts` of another store into this one as they were there, in one transaction
    /// (runs with their records and events as they are, the log with its entries and its
    /// checkpoint, signature and all, so that every chain and signature still verifies).
    /// Only an empty store is imported into; the caller checks the source before, and this
    /// store after.
    fn import(&self, parts: &[Part<'_>]) -> Result<()>;
}

/// What appending entries to a store's log writes: the number of the first, and the new
/// checkpoint with its frontier (as text).
pub(crate) struct LogStep {
    pub n: u64,
    pub checkpoint: crate::checkpoint::Checkpoint,
    pub frontier: String,
}

/// Extends a store's log by `entries`, from its `current` checkpoint (with its frontier, as
/// text) and the number of its `last` entry (needed only when signing), signing the new
/// checkpoint with `key`: the same rules for every store. A deployment that signs extends
/// only a checkpoint it believes — one signed by a key it trusts, over the root of the
/// frontier it extends, at the end of the log.
pub(crate) fn extend_log(
    current: Option<(crate::checkpoint::Checkpoint, String)>,
    last: Option<u64>,
    entries: &[crate::checkpoint::Entry],
    key: Option<Signer<'_>>,
) -> Result<LogStep> {
    use crate::checkpoint::{Checkpoint, Frontier};
    let mut frontier = match &current {
        None => Frontier::default(),
        Some((checkpoint, text)) => Frontier::from_text(checkpoint.size, text).ok_or_else(|| {
            StoreError::Changed("the store's log checkpoint is corrupted: its frontier does not fit its size".into())
        })?,
    };
    if let Some(signer) = key {
        let refuse = |why: &str| {
            Err(StoreError::Changed(format!(
                "the store's log checkpoint {why}; this deployment signs evidence and extends only a checkpoint it \
                 signed (or a key it trusts did): the store was changed or written without the key (`flowc audit` \
                 says more)"
            )))
        };
        match &current {
            None if last.is_some() => return refuse("is missing, but the log has entries"),
            None => {}
            Some((checkpoint, _)) => {
                if checkpoint.root_bytes() != Some(frontier.root()) {
                    return refuse("is not the root of its own frontier");
                }
                if last.map_or(0, |n| n + 1) != checkpoint.size {
                    return refuse("does not cover the log as it stands");
                }
                match &checkpoint.public_key {
                    None => return refuse("is not signed"),
                    Some(public) if !signer.trusted.iter().any(|k| k == public) => {
                        return refuse("is signed by a key this deployment does not trust");
                    }
                    Some(_) if !checkpoint.signature_verifies() => {
                        return refuse("has a signature that does not verify");
                    }
                    Some(_) => {}
                }
            }
        }
    }
    let n = frontier.size;
    for entry in entries {
        frontier.push(entry.leaf());
    }
    let checkpoint = Checkpoint::of(&frontier, crate::now().to_string(), key.map(|s| s.key));
    Ok(LogStep { n, checkpoint, frontier: frontier.to_text() })
}

/// One stored entry of the release log (`crate::release`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleaseEntry {
    pub seq: u64,
    pub at: String,
    pub prev: String,
    pub hash: String,
    /// The event, as JSON text.
    pub body: String,
    /// The deployment's signature of `hash`: public key and value (hex).
    pub signature: Option<(String, String)>,
}

/// Entries of the release log, and the number and hash of the last one the store's log
/// recorded.
pub type ReleaseEntries = (Vec<ReleaseEntry>, Option<(u64, String)>);

/// Whether the release log may go on with `entry`, from its `last` entry and the one the
/// store's log recorded last (`logged`): the same rules for every store.
pub(crate) fn next_release(
    last: Option<(i64, String)>,
    logged: Option<(i64, String)>,
    entry: &ReleaseEntry,
) -> Result<crate::checkpoint::Entry> {
    if last != logged {
        return Err(StoreError::Changed(
            "the release log does not end with the entry the store's log recorded last: it was changed (`flowc \
             audit` says more)"
                .into(),
        ));
    }
    let (seq, prev) = last.map_or((0, crate::digest::GENESIS.to_owned()), |(seq, hash)| (seq as u64 + 1, hash));
    if entry.seq != seq || entry.prev != prev {
        return Err(StoreError::Conflict(
            "another process recorded a step of the releases first; nothing was recorded: try again".into(),
        ));
    }
    Ok(crate::checkpoint::Entry {
        kind: crate::checkpoint::Kind::Release,
        subject: "releases".to_owned(),
        seq,
        hash: entry.hash.clone(),
    })
}

/// The entry of a commit in the store's log: the run's new head (none for a commit without
/// events).
pub(crate) fn commit_entry(commit: &Commit<'_>) -> Option<crate::checkpoint::Entry> {
    (!commit.events.is_empty()).then(|| crate::checkpoint::Entry {
        kind: crate::checkpoint::Kind::Run,
        subject: commit.run.id.clone(),
        seq: commit.run.seq,
        hash: commit.run.head.clone(),
    })
}

/// The number, previous hash and hash of the next refusal of a store's chain, from the
/// `last` refusal it holds and the one its log recorded last (`logged`): the chain goes on
/// only from the refusal the log recorded, so one rewritten behind the log is not extended
/// (and, in a signing deployment, not signed over).
pub(crate) fn next_refusal(
    last: Option<(i64, String)>,
    logged: Option<(i64, String)>,
    refusal: [&str; 5],
) -> Result<(u64, String, String)> {
    if last != logged {
        return Err(StoreError::Changed(
            "the store's refusals do not end with the refusal its log recorded last: they were changed (`flowc \
             audit` says more)"
                .into(),
        ));
    }
    let (seq, prev) = last.map_or((0, crate::digest::GENESIS.to_owned()), |(seq, hash)| (seq as u64 + 1, hash));
    let hash = crate::checkpoint::refusal_hash(&prev, seq, refusal);
    Ok((seq, prev, hash))
}
