//! The runtime an application embeds: plans, providers, handlers and a store; starting runs,
//! deciding, overriding, resuming after a crash, and exporting evidence, with every
//! operation checked against the plan's grants.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use ed25519_dalek::SigningKey;
use flow_ir::VerifiedPlan;
use flow_ir::expr::Timestamp;
use flow_ir::plan::{GrantKind, NodeKind};
use flow_ir::ty::Ty;
use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::Value as Json;
use smol_str::SmolStr;

use crate::analysis::{Analysis, Engine};
use crate::digest;
use crate::engine::{self, DecisionInput, Interrupted, Journal, Refusal, Services, State};
use crate::event::{Environment, Event, Named, Slot, SourceCheck, Started, Status};
use crate::evidence;
use crate::labels;
use crate::provider::{ActionHandler, ModelProvider};
use crate::replay::Stored;
use crate::stats::{RunFacts, Stats};
use crate::store::{ActionResult, RawEvent, RunRecord, ShadowRecord, Store, StoredEvent, Waiting};
use crate::value::{self, DecodeError, Value};
use crate::whatif::{Change, WhatIf};

/// Someone acting on runs: an id and the roles the deployment gives it. Embedders pass a
/// principal they authenticated; the CLI reads them from a principals file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub id: String,
    pub roles: Vec<String>,
}

/// Why an operation did not happen.
#[derive(Debug)]
pub enum Error {
    /// The acting principal lacks a grant; the refusal was recorded.
    Refused { grant: String, message: String },
    /// The request is wrong: unknown run or step, a decision that does not fit, an input
    /// that does not fit its type.
    Invalid(String),
    /// The store or the deployment cannot be used.
    Environment(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Refused { grant, message } => write!(f, "refused: {message} (missing grant: `{grant}`)"),
            Error::Invalid(message) | Error::Environment(message) => f.write_str(message),
        }
    }
}

impl From<crate::store::StoreError> for Error {
    fn from(error: crate::store::StoreError) -> Error {
        Error::Environment(error.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// How a run stands, with its explanation.
#[derive(Clone, Debug, PartialEq)]
pub struct RunView {
    pub run: String,
    pub flow: String,
    pub status: Status,
    /// One line on why: the deciding gate, the failure, what the run waits for.
    pub summary: String,
    /// Steps waiting for a decision: name, kind, roles that may decide.
    pub pending: Vec<(String, String, Vec<String>)>,
    /// Outputs emitted, as JSON (labelled fields marked).
    pub outputs: BTreeMap<String, Json>,
    /// What each output carries besides its value: `overridden: g` for a gate overridden
    /// before it, `degraded: x` for a degraded step it depends on.
    pub marks: BTreeMap<String, Vec<String>>,
    /// Why, in full: the deciding gate or matrix row with the operand values, the approvals
    /// still outstanding and who can give them, what failed, was degraded or overridden.
    pub why: Vec<String>,
}

/// Options of a new run.
#[derive(Clone, Debug, Default)]
pub struct StartOptions {
    /// The run's clock; the current time when absent.
    pub clock: Option<Timestamp>,
    /// Params set to other values than their defaults (JSON).
    pub params: Vec<(String, Json)>,
}

/// Who may be named in a run's inputs: the ids of the deployment's principals.
#[derive(Clone, Debug, Default)]
pub struct Directory {
    ids: BTreeSet<String>,
}

impl Directory {
    pub fn new(ids: impl IntoIterator<Item = impl AsRef<str>>) -> Directory {
        Directory { ids: ids.into_iter().map(|id| value::principal_id(id.as_ref())).collect() }
    }

    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains(&value::principal_id(id))
    }
}

/// What a replay changes: nothing (an exact replay), params, the plan.
#[derive(Clone, Default)]
pub struct ReplayChanges {
    /// Another plan of the same flow.
    pub plan: Option<Arc<Analysis>>,
    /// Params set to other values (JSON; for another plan, the others keep its defaults).
    pub params: Vec<(String, Json)>,
    /// Asks the configured provider where a model's request changed, instead of holding
    /// the step as needing re-inference.
    pub live: bool,
}

impl ReplayChanges {
    pub fn is_none(&self) -> bool {
        self.plan.is_none() && self.params.is_empty()
    }
}

/// Which stored runs a bulk replay takes.
#[derive(Clone, Debug, Default)]
pub struct RunFilter {
    pub flow: Option<String>,
    /// Runs started at or after this time (RFC 3339, or a date `2026-11-01`).
    pub since: Option<String>,
    /// A bulk replay keeps every run that does not reproduce, with its changes.
    pub details: bool,
}

/// One run in a bulk replay.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunReplay {
    pub run: String,
    /// The outcome recorded and the outcome replayed.
    pub before: String,
    pub after: String,
    /// Every step and the outcome as recorded.
    pub exact: bool,
    pub changes: Vec<Change>,
    /// Why the run could not be replayed.
    pub error: Option<String>,
}

impl RunReplay {
    /// An exact replay: one that differs stops there, and ends `diverged`.
    fn exact(replay: crate::replay::Replay, recorded: Status) -> RunReplay {
        let after = if replay.divergence.is_none() { replay.status.as_str() } else { "diverged" };
        RunReplay {
            exact: replay.divergence.is_none(),
            changes: replay
                .divergence
                .map(|d| Change { node: d.node.unwrap_or_default(), before: d.recorded, after: d.replayed })
                .into_iter()
                .collect(),
            run: replay.run,
            before: recorded.as_str().to_owned(),
            after: after.to_owned(),
            error: None,
        }
    }

    fn failed(record: &RunRecord, error: String) -> RunReplay {
        RunReplay {
            run: record.id.clone(),
            before: record.status.as_str().to_owned(),
            after: String::new(),
            exact: false,
            changes: Vec::new(),
            error: Some(error),
        }
    }

    fn what_if(whatif: WhatIf) -> RunReplay {
        RunReplay {
            exact: whatif.exact(),
            run: whatif.run,
            before: whatif.before,
            after: whatif.after,
            changes: whatif.changes,
            error: None,
        }
    }
}

/// What a bulk replay found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReplaySummary {
    /// Runs replayed (not counting those that could not be).
    pub runs: usize,
    /// Runs whose every step and outcome came out as recorded.
    pub exact: usize,
    /// Runs that would end with another outcome.
    pub changed: usize,
    /// How many runs went from one outcome to another, by (from, to).
    pub transitions: BTreeMap<(String, String), usize>,
    /// Runs selected that `who` may not replay (skipped).
    pub not_allowed: usize,
    /// Runs that could not be replayed, with why.
    pub errors: Vec<(String, String)>,
    /// With [`RunFilter::details`], every run that does not reproduce (or could not be
    /// replayed), in the store's order.
    pub details: Vec<RunReplay>,
}

impl ReplaySummary {
    fn add(&mut self, run: RunReplay, details: bool) {
        if let Some(error) = &run.error {
            self.errors.push((run.run.clone(), error.clone()));
        } else {
            self.runs += 1;
            self.exact += usize::from(run.exact);
            if run.before != run.after {
                self.changed += 1;
                *self.transitions.entry((run.before.clone(), run.after.clone())).or_default() += 1;
            }
        }
        if details && !run.exact {
            self.details.push(run);
        }
    }
}

/// Shadow runs against their production runs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ShadowReport {
    pub runs: usize,
    /// Shadows that reached the production run's outcome.
    pub agree: usize,
    /// How many went from the production outcome to another, by (production, candidate).
    pub transitions: BTreeMap<(String, String), usize>,
    /// Shadow runs by candidate plan.
    pub candidates: BTreeMap<String, usize>,
    /// Shadows of runs `who` may not replay (left out).
    pub not_allowed: usize,
    pub shadows: Vec<ShadowRecord>,
}

/// The runtime.
pub struct Runtime {
    pub(crate) store: Box<dyn Store>,
    models: BTreeMap<String, Arc<dyn ModelProvider>>,
    provider_kinds: BTreeMap<String, Arc<dyn ModelProvider>>,
    systems: BTreeMap<String, Arc<dyn ActionHandler>>,
    signing: Option<SigningKey>,
    /// The public keys (hex) whose signatures this runtime believes: its own, and those
    /// trusted besides (earlier keys of the deployment). Empty: any key whose signature
    /// verifies (integrity, without knowing who signed).
    trusted: Vec<String>,
    plans: Mutex<BTreeMap<String, Arc<Analysis>>>,
    /// The environment recorded in each run, by plan hash.
    environments: Mutex<BTreeMap<String, Arc<Environment>>>,
    engine: Engine,
    /// The principals runs may name; without one, any id is taken as given.
    directory: Option<Directory>,
    /// A runtime for tests: a run may choose its clock and name any principal without the
    /// grants (its evidence still says the clock was chosen).
    testing: bool,
}

/// The current time.
pub fn now() -> Timestamp {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Timestamp { seconds: since.as_secs() as i64, nanos: since.subsec_nanos() }
}

/// This process's id (read once: it is a system call).
fn pid() -> u32 {
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *PID.get_or_init(std::process::id)
}

/// This process, as a run's owner: `host/pid`.
fn process_id() -> String {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| format!("{}/{}", host(), pid())).clone()
}

/// How long a run may go without storing anything before a process on another host takes
/// it for interrupted.
const LEASE_SECONDS: i64 = 600;

/// Whether the process that owns an executing run is gone: on this host, its pid is not
/// alive; elsewhere, it stored nothing for [`LEASE_SECONDS`].
fn owner_gone((owner, heartbeat): &(String, String)) -> bool {
    if *owner == process_id() {
        return false;
    }
    let (owner_host, pid) = owner.rsplit_once('/').unwrap_or((owner, ""));
    if owner_host == host() && cfg!(target_os = "linux") {
        return !std::path::Path::new("/proc").join(pid).exists();
    }
    let last = flow_ir::time::parse_timestamp(heartbeat).map_or(0, |(seconds, _)| seconds);
    now().seconds - last > LEASE_SECONDS
}

/// A new run id: 64 bits mixed from the time, the process and a counter, so ids of runs
/// started by several processes at once do not collide.
fn new_run_id() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let t = now();
    let mut x = (t.seconds as u64).wrapping_mul(1_000_000_007)
        ^ u64::from(t.nanos).rotate_left(20)
        ^ u64::from(pid()).rotate_left(44)
        ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    // splitmix64's finaliser spreads every input bit over the id.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    format!("r-{:016x}", x ^ (x >> 31))
}

fn host() -> String {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty())
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_owned()))
            .unwrap_or_else(|| "unknown".to_owned())
    })
    .clone()
}

impl Runtime {
    pub fn new(store: Box<dyn Store>) -> Runtime {
        Runtime {
            store,
            models: BTreeMap::new(),
            provider_kinds: BTreeMap::new(),
            systems: BTreeMap::new(),
            signing: None,
            trusted: Vec::new(),
            plans: Mutex::new(BTreeMap::new()),
            environments: Mutex::new(BTreeMap::new()),
            engine: Engine::default(),
            directory: None,
            testing: false,
        }
    }

    /// The deployment's principals: every `Principal` a run's inputs name must be one of
    /// them (after [`value::principal_id`]), or the run is refused with the input's path.
    pub fn set_directory(&mut self, directory: Directory) {
        self.directory = Some(directory);
    }

    /// Makes this a runtime for tests (`flowc test`): runs may choose their clock and name
    /// principals other than the starter without the `set clock` and `trigger on behalf`
    /// grants. Never for a deployment.
    pub fn set_testing(&mut self, testing: bool) {
        self.testing = testing;
    }

    /// What evaluates expressions and approval matrices from now on: native code by
    /// default (where this build and host have it), or the interpreter. Both give the same
    /// results; each run's evidence records which started it.
    pub fn set_engine(&mut self, engine: Engine) {
        self.engine = engine;
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The provider for one model, by the model's name in the plan.
    pub fn register_model(&mut self, model: &str, provider: Arc<dyn ModelProvider>) {
        self.models.insert(model.to_owned(), provider);
        self.environments = Mutex::default();
    }

    /// The provider for every model declaring this provider kind and having none of its own.
    pub fn register_provider(&mut self, kind: &str, provider: Arc<dyn ModelProvider>) {
        self.provider_kinds.insert(kind.to_owned(), provider);
        self.environments = Mutex::default();
    }

    /// The handler of a system's actions.
    pub fn register_system(&mut self, system: &str, handler: Arc<dyn ActionHandler>) {
        self.systems.insert(system.to_owned(), handler);
        self.environments = Mutex::default();
    }

    /// Signs the head of every run started from now on with this key.
    pub fn set_signing_key(&mut self, key: SigningKey) {
        self.trust_key(&evidence::public_key_hex(&key));
        self.signing = Some(key);
    }

    /// Believes signatures by this public key (hex) too: a key the deployment signed with
    /// before. Once a runtime has a key or trusts one, a run, checkpoint or shadow signed by
    /// any other key is refused.
    pub fn trust_key(&mut self, public_key: &str) {
        if !self.trusted.iter().any(|k| k == public_key) {
            self.trusted.push(public_key.to_owned());
        }
    }

    /// Whether a signature by `public_key` is believed.
    pub(crate) fn believes(&self, public_key: &str) -> bool {
        self.trusted.is_empty() || self.trusted.iter().any(|k| k == public_key)
    }

    /// What signs the store's checkpoints, when this runtime signs evidence.
    fn signer(&self) -> Option<crate::store::Signer<'_>> {
        self.signing.as_ref().map(|key| crate::store::Signer { key, trusted: &self.trusted })
    }

    /// Whether this runtime signs evidence.
    pub(crate) fn signs(&self) -> bool {
        self.signing.is_some()
    }

    /// Checks a stored shadow's signature: by a key this runtime believes, over the
    /// shadow's digest; a runtime that signs believes no unsigned shadow.
    pub(crate) fn check_shadow(&self, shadow: &ShadowRecord) -> Result<()> {
        let digest = shadow.digest();
        let what = format!("the shadow of run `{}` by candidate {}", shadow.run, shadow.candidate);
        match &shadow.signature {
            None if self.signs() => {
                Err(Error::Environment(format!("{what} is not signed, but this deployment signs evidence")))
            }
            None => Ok(()),
            Some(_) if self.trusted.is_empty() => Ok(()),
            Some(signature) => {
                if self.trusted.iter().any(|key| crate::checkpoint::shadow_signature_verifies(key, &digest, signature))
                {
                    Ok(())
                } else {
                    Err(Error::Environment(format!(
                        "{what} is not signed by a key this deployment trusts: the store was changed"
                    )))
                }
            }
        }
    }

    pub fn store(&self) -> &dyn Store {
        &*self.store
    }

    /// Keeps a verified plan in the store (by hash) and returns it ready to run.
    pub fn install(&self, plan: VerifiedPlan) -> Result<Arc<Analysis>> {
        let hash = plan.hash().to_owned();
        if let Some(analysis) = self.cached(&hash) {
            return Ok(analysis);
        }
        let analysis = Arc::new(Analysis::new(plan));
        let leaks = analysis.leaks();
        if !leaks.is_empty() {
            return Err(Error::Invalid(format!(
                "the plan {hash} lets labelled data go where it may not, so it is not installed:\n{}",
                leaks.join("\n")
            )));
        }
        let bytes = flow_ir::encode::to_json(analysis.plan.plan());
        self.store.put_plan(&hash, bytes.as_bytes())?;
        self.lock_plans().insert(hash, analysis.clone());
        Ok(analysis)
    }

    pub(crate) fn lock_plans(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<Analysis>>> {
        self.plans.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn cached(&self, hash: &str) -> Option<Arc<Analysis>> {
        self.lock_plans().get(hash).cloned()
    }

    /// The plan of this hash, from the store, verified again.
    pub fn plan(&self, hash: &str) -> Result<Arc<Analysis>> {
        if let Some(analysis) = self.cached(hash) {
            return Ok(analysis);
        }
        let bytes =
            self.store.plan(hash)?.ok_or_else(|| Error::Environment(format!("the store has no plan {hash}")))?;
        let plan = flow_ir::load(&bytes)
            .map_err(|e| Error::Environment(format!("the stored plan {hash} does not verify:\n{e}")))?;
        if plan.hash() != hash {
            return Err(Error::Environment(format!("the plan stored as {hash} has hash {}", plan.hash())));
        }
        let analysis = Arc::new(Analysis::new(plan));
        let leaks = analysis.leaks();
        if !leaks.is_empty() {
            return Err(Error::Environment(format!(
                "the stored plan {hash} lets labelled data go where it may not:\n{}",
                leaks.join("\n")
            )));
        }
        self.lock_plans().insert(hash.to_owned(), analysis.clone());
        Ok(analysis)
    }

    fn environment(&self, analysis: &Analysis) -> Arc<Environment> {
        let mut cache = self.environments.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        cache
            .entry(analysis.plan.hash().to_owned())
            .or_insert_with(|| Arc::new(self.describe_environment(analysis)))
            .clone()
    }

    fn describe_environment(&self, analysis: &Analysis) -> Environment {
        let mut providers = BTreeMap::new();
        for model in &analysis.body().models {
            if let Some(p) = self.model_provider(model) {
                providers.insert(format!("model {}", model.name), p.describe());
            }
        }
        for system in &analysis.body().systems {
            if let Some(h) = self.systems.get(system.name.as_str()) {
                providers.insert(format!("system {}", system.name), h.describe());
            }
        }
        Environment {
            runtime: format!("flow-runtime {}", env!("CARGO_PKG_VERSION")),
            build: format!(
                "{}-{} {}",
                std::env::consts::ARCH,
                std::env::consts::OS,
                if cfg!(debug_assertions) { "debug" } else { "release" }
            ),
            host: host(),
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
            providers,
        }
    }

    fn model_provider(&self, model: &flow_ir::plan::Model) -> Option<&dyn ModelProvider> {
        self.models.get(model.name.as_str()).or_else(|| self.provider_kinds.get(model.provider.as_str())).map(|p| &**p)
    }

    /// Refuses an operation: records it (in the run's chain when there is a run) and
    /// returns the error.
    fn refuse(
        &self,
        run: Option<(&Analysis, &mut Loaded)>,
        who: &Principal,
        operation: &str,
        grant: String,
        message: String,
    ) -> Error {
        let event = Event::Refused {
            operation: operation.to_owned(),
            principal: who.id.clone(),
            roles: who.roles.clone(),
            grant: grant.clone(),
            message: message.clone(),
        };
        let recorded = match run {
            Some((analysis, loaded)) => {
                loaded.record(analysis, event);
                loaded.log.commit(self, analysis, &loaded.state).map_err(|e| e.to_string())
            }
            None => self
                .store
                .record_refusal([&now().to_string(), &who.id, operation, &grant, &message], self.signer())
                .map_err(|e| e.to_string()),
        };
        match recorded {
            Ok(()) => Error::Refused { grant, message },
            Err(error) => Error::Environment(format!("{message}; and the refusal could not be recorded: {error}")),
        }
    }

    /// Reads the inputs of a run, each checked against its declared type.
    fn inputs(&self, analysis: &Analysis, given: &[(String, Json)]) -> Result<Vec<Named<Value>>> {
        let body = analysis.body();
        let declared: Vec<&flow_ir::plan::Node> =
            body.nodes.iter().filter(|n| matches!(n.kind, NodeKind::Input { .. })).collect();
        if let Some((name, _)) = given.iter().find(|(n, _)| !declared.iter().any(|d| d.name == n)) {
            let names: Vec<&str> = declared.iter().map(|d| d.name.as_str()).collect();
            return Err(Error::Invalid(format!("the flow has no input `{name}`; its inputs are {}", names.join(", "))));
        }
        let mut inputs = Vec::new();
        for node in declared {
            let value = match given.iter().find(|(n, _)| n == node.name.as_str()) {
                Some((_, json)) => {
                    let path = format!("$.{}", node.name);
                    let value = value::decode(body, json, &node.ty, &path).map_err(input_error)?;
                    if let Some(directory) = &self.directory {
                        let mut named = Vec::new();
                        value::principals(&value, &path, &mut named);
                        if let Some((path, id)) = named.iter().find(|(_, id)| !directory.contains(id)) {
                            return Err(Error::Invalid(format!(
                                "input {path}: `{id}` is not a principal of this deployment"
                            )));
                        }
                    }
                    value
                }
                None if node.ty.is_optional() => Value::Absent,
                None => {
                    return Err(Error::Invalid(format!(
                        "input `{}` of type `{}` is missing (give it with `--input {}=FILE.json`)",
                        node.name, node.ty, node.name
                    )));
                }
            };
            inputs.push(Named { name: node.name.clone(), value });
        }
        Ok(inputs)
    }

    fn params(&self, analysis: &Analysis, set: &[(String, Json)]) -> Result<Vec<Named<Value>>> {
        let body = analysis.body();
        let mut params = Vec::new();
        for (name, _) in set {
            if !body.nodes.iter().any(|n| n.name == name.as_str() && matches!(n.kind, NodeKind::Param { .. })) {
                return Err(Error::Invalid(format!("the flow has no param `{name}`")));
            }
        }
        for (name, default) in analysis.param_defaults() {
            let value = match set.iter().find(|(n, _)| n == name.as_str()) {
                Some((_, json)) => {
                    let ty = body.node(name).map_or(Ty::Nothing, |n| n.ty.clone());
                    value::decode(body, json, &ty, &format!("$.{name}")).map_err(input_error)?
                }
                None => default.clone().map_err(|e| Error::Invalid(format!("param `{name}`: {e}")))?,
            };
            params.push(Named { name: name.clone(), value });
        }
        Ok(params)
    }

    /// Starts a run of `an` for `who`, executes it as far as it goes and stores it.
    pub fn start(
        &self,
        analysis: &Arc<Analysis>,
        who: &Principal,
        inputs: &[(String, Json)],
        options: &StartOptions,
    ) -> Result<RunView> {
        self.new_run(analysis, who, inputs, options, true)
    }

    /// Runs a plan in memory, storing nothing: the same engine and the same checks as
    /// [`Runtime::start`], for decisions whose evidence the caller does not keep (backtests,
    /// benchmarks). A run that would wait for people ends `pending`.
    pub fn evaluate(
        &self,
        analysis: &Arc<Analysis>,
        who: &Principal,
        inputs: &[(String, Json)],
        options: &StartOptions,
    ) -> Result<RunView> {
        self.new_run(analysis, who, inputs, options, false)
    }

    /// A new run, stored (`durable`, with its refusal recorded) or not.
    fn new_run(
        &self,
        analysis: &Arc<Analysis>,
        who: &Principal,
        inputs: &[(String, Json)],
        options: &StartOptions,
        durable: bool,
    ) -> Result<RunView> {
        if !analysis.granted(&who.roles, GrantKind::Trigger, None) {
            let roles = analysis.grantees(GrantKind::Trigger, None);
            let message = format!(
                "{} may not start `{}`: the flow grants `trigger` to {}",
                who.id,
                analysis.body().flow.name,
                if roles.is_empty() { "no role".to_owned() } else { roles.join(", ") }
            );
            return Err(if durable {
                self.refuse(None, who, "trigger", "trigger".to_owned(), message)
            } else {
                Error::Refused { grant: "trigger".to_owned(), message }
            });
        }
        let who = &Principal { id: value::principal_id(&who.id), roles: who.roles.clone() };
        let started = self.started(analysis, who, inputs, options, durable)?;
        if let Some(refusal) = self.start_refusal(analysis, who, &started, options, durable) {
            let (grant, message) = refusal;
            return Err(if durable {
                self.refuse(None, who, "trigger", grant, message)
            } else {
                Error::Refused { grant, message }
            });
        }
        // A stored run's creation is the time of its first commit, which its first event
        // records.
        let mut loaded = Loaded::new(analysis, started.run.clone(), who.id.clone(), String::new());
        loaded.log.durable = durable;
        loaded.record(analysis, Event::Started(Box::new(started)));
        self.advance(analysis, &mut loaded)?;
        Ok(self.view(analysis, &loaded, Some(who)))
    }

    /// Why `who` may not start this run, when they may not: for a stored run, choosing its
    /// clock needs `set clock`, and naming other principals in its inputs `trigger on
    /// behalf` (a run kept in memory only, a backtest, needs neither: nobody decides it).
    fn start_refusal(
        &self,
        analysis: &Analysis,
        who: &Principal,
        started: &Started<Value>,
        options: &StartOptions,
        durable: bool,
    ) -> Option<(String, String)> {
        if self.testing {
            return None;
        }
        let flow = &analysis.body().flow.name;
        let grantees = |kind: GrantKind| {
            let roles = analysis.grantees(kind, None);
            if roles.is_empty() { "no role".to_owned() } else { roles.join(", ") }
        };
        if durable && options.clock.is_some() && !analysis.granted(&who.roles, GrantKind::Clock, None) {
            return Some((
                GrantKind::Clock.as_str().to_owned(),
                format!(
                    "{} may not choose the clock of a run of `{flow}`: the flow grants `set clock` to {}",
                    who.id,
                    grantees(GrantKind::Clock)
                ),
            ));
        }
        let mut named = Vec::new();
        for input in &started.inputs {
            value::principals(&input.value, &format!("$.{}", input.name), &mut named);
        }
        let others: Vec<String> =
            named.iter().filter(|(_, id)| *id != who.id).map(|(path, id)| format!("{id} ({path})")).collect();
        if durable && !others.is_empty() && !analysis.granted(&who.roles, GrantKind::OnBehalf, None) {
            return Some((
                GrantKind::OnBehalf.as_str().to_owned(),
                format!(
                    "{} may not start a run of `{flow}` on behalf of {}: the flow grants `trigger on behalf` to {}",
                    who.id,
                    others.join(", "),
                    grantees(GrantKind::OnBehalf)
                ),
            ));
        }
        None
    }

    /// The first event of a run; `durable` when its evidence is kept (the inputs' digests are
    /// computed only then).
    fn started(
        &self,
        analysis: &Analysis,
        who: &Principal,
        inputs: &[(String, Json)],
        options: &StartOptions,
        durable: bool,
    ) -> Result<Started<Value>> {
        let body = analysis.body();
        let values = self.inputs(analysis, inputs)?;
        let params = self.params(analysis, &options.params)?;
        let clock = options.clock.unwrap_or_else(now);
        let mut sources = Vec::new();
        for node in &body.nodes {
            let NodeKind::Input { source: Some(source_name) } = &node.kind else { continue };
            let Some(source) = body.source(source_name) else { continue };
            let record = values.iter().find(|v| v.name == node.name).map(|v| &v.value);
            let as_of = source.as_of.as_ref().and_then(|f| record.and_then(|r| r.field(f)));
            let age = match as_of {
                Some(Value::Timestamp(at)) => Some(clock.seconds - at.seconds),
                _ => None,
            };
            sources.push(SourceCheck {
                input: node.name.clone(),
                source: source.name.clone(),
                authority: source.authority.clone(),
                as_of: as_of.map(|v| v.to_string()),
                age: age.map(flow_ir::time::format_duration),
                freshness: source.freshness.map(flow_ir::time::format_duration),
                stale: matches!((age, source.freshness), (Some(age), Some(limit)) if age > limit),
            });
        }
        // Of unlabelled inputs only: the digest of a labelled one would let anyone who may
        // see the run test guesses of it.
        let input_digests = if durable {
            inputs
                .iter()
                .filter(|(name, _)| {
                    analysis.node_labels(name).is_empty()
                        && body.node(name).is_some_and(|node| analysis.type_labels(&node.ty).is_empty())
                })
                .map(|(n, j)| (n.clone(), digest::digest(j)))
                .collect()
        } else {
            BTreeMap::new()
        };
        Ok(Started {
            run: new_run_id(),
            plan: analysis.hash().clone(),
            flow: body.flow.name.clone(),
            flow_version: body.flow.version.as_str().into(),
            principal: who.id.clone(),
            roles: who.roles.clone(),
            clock,
            clock_chosen: options.clock.is_some(),
            inputs: values,
            input_digests,
            params,
            sources,
            environment: self.environment(analysis),
            signing_key: self.signing.as_ref().map(evidence::public_key_hex),
            engine: analysis.engine_label(self.engine).into(),
            declassifications: analysis
                .declassifications()
                .into_iter()
                .map(|(node, labels, reason)| crate::event::Declassification { node, labels, reason })
                .collect(),
        })
    }

    fn advance(&self, analysis: &Analysis, loaded: &mut Loaded) -> Result<()> {
        let model = |m: &flow_ir::plan::Model| self.model_provider(m);
        let system = |s: &str| self.systems.get(s).map(|h| &**h);
        let services = Services { model: &model, system: &system, engine: self.engine, hold: None };
        let Loaded { state, log } = loaded;
        let mut journal = RunJournal { runtime: self, analysis, log };
        match engine::advance(analysis, state, &services, &mut journal) {
            Ok(()) => journal.flush(state).map_err(Error::Environment),
            Err(Interrupted(message)) => Err(Error::Environment(message)),
        }
    }

    /// Loads a stored run: its plan and its state rebuilt from its events, after checking
    /// their hash chain, so that a store changed behind the runtime's back is refused rather
    /// than believed. To `change` it, a run that another live process executes is not
    /// loaded.
    fn load(&self, run: &str, change: bool) -> Result<(Arc<Analysis>, Loaded)> {
        self.load_events(run, change).map(|(analysis, loaded, _)| (analysis, loaded))
    }

    /// As [`Runtime::load`], with the run's events as recorded.
    pub(crate) fn load_events(&self, run: &str, change: bool) -> Result<(Arc<Analysis>, Loaded, Vec<Event<Value>>)> {
        let record = self.store.run(run)?.ok_or_else(|| Error::Invalid(format!("no run `{run}` in the store")))?;
        self.load_record(record, change)
    }

    fn load_record(&self, record: RunRecord, change: bool) -> Result<(Arc<Analysis>, Loaded, Vec<Event<Value>>)> {
        let run = record.id.as_str();
        if change
            && record.status == Status::Running
            && let Some(owner) = record.owner.as_ref().filter(|o| !owner_gone(o))
        {
            return Err(Error::Invalid(format!(
                "run `{run}` is executing in process {}; try again when it has stopped",
                owner.0
            )));
        }
        let analysis = self.plan(&record.plan)?;
        let events = self.store.events(run)?;
        let first_at = events.first().map(|e| e.at.clone()).unwrap_or_default();
        let decoded = self.verified(&analysis, &record, events)?;
        self.believed(&record, &decoded, &first_at)?;
        let mut loaded = Loaded::new(&analysis, record.id.clone(), record.principal.clone(), record.created.clone());
        loaded.log.seq = record.seq;
        loaded.log.head = record.head.clone();
        loaded.log.signature = record.signature.clone();
        for event in &decoded {
            loaded.log.observe(&analysis.body().flow.name, event);
            loaded.state.apply(&analysis, event);
        }
        loaded.state.status = record.status;
        Ok((analysis, loaded, decoded))
    }

    /// Checks what the store says of a run outside its chain against the chain: the run,
    /// plan, flow, starter and creation its first event records, the status its events
    /// lead to, and the signature of its head (by a key this runtime believes; a runtime
    /// that signs believes no unsigned run).
    fn believed(&self, record: &RunRecord, events: &[Event<Value>], first_at: &str) -> Result<()> {
        let Some(Event::Started(started)) = events.first() else {
            return Err(Error::Environment(format!(
                "the record of run `{}` in the store does not begin with its start: the store was changed",
                record.id
            )));
        };
        self.believed_start(record, started, first_at)?;
        let status = status_of(events);
        if status != record.status {
            return Err(Error::Environment(format!(
                "the record of run `{}` in the store says it is {}, but its events leave it {}: the store was changed",
                record.id,
                record.status.as_str(),
                status.as_str()
            )));
        }
        Ok(())
    }

    /// [`Runtime::believed`] but for the status: what can be checked of a run from its first
    /// event, the record and the signature of its head.
    fn believed_start(&self, record: &RunRecord, started: &Started<Value>, first_at: &str) -> Result<()> {
        let run = record.id.as_str();
        let corrupted = |what: String| {
            Err(Error::Environment(format!("the record of run `{run}` in the store {what}: the store was changed")))
        };
        if started.run != record.id
            || *started.plan != *record.plan
            || started.flow != record.flow
            || started.principal != record.principal
            || record.created != first_at
        {
            return corrupted(
                "does not match the start its events record (run, plan, flow, who started it or when)".to_owned(),
            );
        }
        match (&started.signing_key, &record.signature) {
            (Some(key), Some(signature)) => {
                if !self.believes(key) {
                    return Err(Error::Environment(format!(
                        "run `{run}` is signed with the key {key}, which this deployment does not trust \
                         (`[evidence] trusted_keys`)"
                    )));
                }
                if !evidence::head_signature_verifies(key, &record.head, signature) {
                    return corrupted("has a head whose signature does not verify".to_owned());
                }
            }
            (Some(_), None) => return corrupted("is signed, but its head has no signature".to_owned()),
            (None, _) if self.signing.is_some() => {
                return Err(Error::Environment(format!(
                    "run `{run}` is not signed, but this deployment signs evidence: it was started without the \
                     key, or its signature was removed; it is not believed"
                )));
            }
            (None, _) => {}
        }
        Ok(())
    }

    /// The result recorded for an action's idempotency key, checked against the evidence of
    /// the run that recorded it: that run's chain (and signature) verifies, and its event
    /// says the same, for the same call.
    pub(crate) fn recorded_result(&self, stored: &ActionResult) -> Result<()> {
        let (analysis, _, events) = self.load_events(&stored.run, false)?;
        let forged = || {
            Err(Error::Environment(format!(
                "the result stored for idempotency key `{}` of system `{}` is not what run `{}` recorded: the \
                 store was changed",
                stored.key, stored.system, stored.run
            )))
        };
        let at = stored.seq as usize;
        let Some(Event::ActionCompleted { node, key, result, reused: false }) = events.get(at) else { return forged() };
        if *key != stored.key || result.to_json() != stored.result {
            return forged();
        }
        let call = events[..at].iter().rev().find_map(|e| match e {
            Event::ActionStarted { node: n, system, action, key, args, .. } if n == node => {
                Some((system, action, key, args))
            }
            _ => None,
        });
        match call {
            Some((system, action, key, args))
                if *system == stored.system
                    && *key == stored.key
                    && engine::call_digest(&analysis.body().flow.name, action, args) == stored.args =>
            {
                Ok(())
            }
            _ => forged(),
        }
    }

    /// A run's stored events, checked against its record and their hash chain, and read.
    fn verified(&self, analysis: &Analysis, record: &RunRecord, events: Vec<RawEvent>) -> Result<Vec<Event<Value>>> {
        let run = record.id.as_str();
        chain_checked(record, &events)?;
        let mut decoded = Vec::with_capacity(events.len());
        for stored in &events {
            let event = decode_event_text(analysis, &stored.body)
                .map_err(|e| Error::Environment(format!("event {} of run `{run}` cannot be read: {e}", stored.seq)))?;
            decoded.push(event);
        }
        Ok(decoded)
    }

    /// A run's stored events, parsed, with what `views` does not clear redacted.
    fn redacted_events(&self, run: &str, views: &[SmolStr]) -> Result<Vec<StoredEvent>> {
        let mut events =
            self.store.events(run)?.into_iter().map(|e| e.parse(run)).collect::<std::result::Result<Vec<_>, _>>()?;
        for event in &mut events {
            labels::redact(&mut event.body, views);
        }
        Ok(events)
    }

    /// Executes a stored run again from its evidence against its pinned plan and compares
    /// every event (`crate::replay`). Needs the `replay` grant; the run's hash chain is
    /// checked first, and a run whose evidence does not verify is refused.
    pub fn replay(&self, run: &str, who: &Principal) -> Result<crate::replay::Replay> {
        let (analysis, mut loaded, events) = self.load_events(run, false)?;
        self.check_run_grant(&analysis, &mut loaded, who, GrantKind::Replay, "replay")?;
        let mut replay = crate::replay::replay(&analysis, &events, self.engine);
        if let Some(divergence) = &mut replay.divergence {
            let views = analysis.views(&who.roles);
            labels::redact(&mut divergence.recorded, &views);
            labels::redact(&mut divergence.replayed, &views);
        }
        Ok(replay)
    }

    /// Replays a stored run with `changes` (`crate::whatif`): what would have changed, step
    /// by step, redacted for `who`. Needs the `replay` grant and a run whose chain verifies.
    pub fn what_if(&self, run: &str, who: &Principal, changes: &ReplayChanges) -> Result<WhatIf> {
        let (analysis, mut loaded, events) = self.load_events(run, false)?;
        self.check_run_grant(&analysis, &mut loaded, who, GrantKind::Replay, "replay")?;
        self.what_if_events(&analysis, &events, Some(who), changes)
    }

    fn what_if_events(
        &self,
        analysis: &Analysis,
        events: &[Event<Value>],
        who: Option<&Principal>,
        changes: &ReplayChanges,
    ) -> Result<WhatIf> {
        let new = changes.plan.as_deref().unwrap_or(analysis);
        if new.body().flow.name != analysis.body().flow.name {
            return Err(Error::Invalid(format!(
                "the plan replayed is of flow `{}`; the run is of flow `{}`",
                new.body().flow.name,
                analysis.body().flow.name
            )));
        }
        let mut widened = widens(analysis, new, changes.live);
        // A plan read from a file was verified, but its information flow is proved here, as
        // when a plan is installed: the candidate's labels decide what this replay shows.
        widened.extend(new.leaks());
        if !widened.is_empty() {
            return Err(Error::Invalid(format!(
                "the candidate plan may only narrow what the run's plan allows, and it widens it: {}",
                widened.join("; ")
            )));
        }
        let live = |m: &flow_ir::plan::Model| self.model_provider(m);
        let whatif_changes = crate::whatif::Changes {
            plan: changes.plan.as_deref(),
            params: &changes.params,
            live: if changes.live { Some(&live) } else { None },
        };
        let mut whatif =
            crate::whatif::what_if(analysis, events, &whatif_changes, self.engine).map_err(Error::Invalid)?;
        if let Some(who) = who {
            // Access comes from the run's plan: a candidate may take views away, never add.
            let old_views = analysis.views(&who.roles);
            let new_views: Vec<SmolStr> =
                new.views(&who.roles).into_iter().filter(|label| old_views.contains(label)).collect();
            for change in &mut whatif.changes {
                labels::redact(&mut change.before, &old_views);
                labels::redact(&mut change.after, &new_views);
            }
        }
        Ok(whatif)
    }

    /// Executes `candidate` (installed, of the same flow) on the inputs of the stored run
    /// `run` as a shadow: without actions, with the recorded model answers where the
    /// candidate asks the same and its providers where it asks otherwise; and stores what it
    /// gives beside the run.
    pub fn shadow(&self, run: &str, candidate: &Arc<Analysis>) -> Result<ShadowRecord> {
        let (analysis, _, events) = self.load_events(run, false)?;
        let changes = ReplayChanges { plan: Some(candidate.clone()), params: Vec::new(), live: true };
        let whatif = self.what_if_events(&analysis, &events, None, &changes)?;
        let changes: Vec<Json> = whatif
            .changes
            .iter()
            .map(|c| serde_json::json!({"node": c.node, "before": c.before, "after": c.after}))
            .collect();
        let shadow = ShadowRecord {
            run: run.to_owned(),
            candidate: candidate.hash().to_string(),
            flow: analysis.body().flow.name.to_string(),
            created: now().to_string(),
            production: whatif.before,
            outcome: whatif.after,
            changes: Json::Array(changes),
            signature: None,
        };
        self.store.put_shadow(&shadow, self.signer())?;
        Ok(shadow)
    }

    /// Executes a run's shadows again (after a decision on it), so that each folds in what
    /// people have decided since: a decision is reused where the candidate's step opens on
    /// the same values, as in a what-if.
    fn refresh_shadows(&self, run: &str) -> Result<()> {
        for shadow in self.store.shadows(Some(run))? {
            let candidate = self.plan(&shadow.candidate)?;
            self.shadow(run, &candidate)?;
        }
        Ok(())
    }

    /// The stored shadow runs (of `filter`'s flow, run since `filter.since`, of candidates
    /// whose hash starts with `candidate`) whose production run `who` may replay, compared
    /// with their production outcomes; the steps that differ redacted for `who`.
    pub fn shadow_report(&self, who: &Principal, filter: &RunFilter, candidate: Option<&str>) -> Result<ShadowReport> {
        let mut report = ShadowReport::default();
        for mut shadow in self.store.shadows(None)? {
            if filter.flow.as_ref().is_some_and(|f| &shadow.flow != f)
                || filter.since.as_ref().is_some_and(|since| shadow.created.as_str() < since.as_str())
                || candidate.is_some_and(|c| !shadow.candidate.starts_with(c))
            {
                continue;
            }
            let record =
                self.store.run(&shadow.run)?.ok_or_else(|| Error::Environment(format!("no run `{}`", shadow.run)))?;
            let analysis = self.plan(&record.plan)?;
            if !analysis.granted(&who.roles, GrantKind::Replay, None) {
                report.not_allowed += 1;
                continue;
            }
            labels::redact(&mut shadow.changes, &analysis.views(&who.roles));
            report.runs += 1;
            if shadow.production == shadow.outcome {
                report.agree += 1;
            } else {
                *report.transitions.entry((shadow.production.clone(), shadow.outcome.clone())).or_default() += 1;
            }
            *report.candidates.entry(shadow.candidate.clone()).or_default() += 1;
            report.shadows.push(shadow);
        }
        if report.runs == 0 && report.not_allowed > 0 {
            return Err(Error::Refused {
                grant: "replay".to_owned(),
                message: format!("{} may replay none of the {} runs shadowed", who.id, report.not_allowed),
            });
        }
        Ok(report)
    }

    /// Replays every stored run that `who` may replay (of `flow`, started `since`): exactly,
    /// or with `changes`; runs on every core. A run that cannot be replayed (its evidence
    /// does not verify) is reported with why, and the others go on.
    pub fn replay_all(&self, who: &Principal, filter: &RunFilter, changes: &ReplayChanges) -> Result<ReplaySummary> {
        let flow = match (&changes.plan, &filter.flow) {
            (Some(plan), Some(flow)) if plan.body().flow.name != flow.as_str() => {
                return Err(Error::Invalid(format!(
                    "the plan replayed is of flow `{}`, not `{flow}`",
                    plan.body().flow.name
                )));
            }
            (Some(plan), _) => Some(plan.body().flow.name.to_string()),
            (None, flow) => flow.clone(),
        };
        let mut summary = ReplaySummary::default();
        let mut allowed = Vec::new();
        for (record, analysis) in self.select(filter, flow.as_deref())? {
            if analysis.granted(&who.roles, GrantKind::Replay, None) {
                allowed.push(record);
            } else {
                summary.not_allowed += 1;
            }
        }
        if allowed.is_empty() && summary.not_allowed > 0 {
            return Err(Error::Refused {
                grant: "replay".to_owned(),
                message: format!("{} may replay none of the {} runs selected", who.id, summary.not_allowed),
            });
        }
        let replayed = self.each_run(&allowed, |record, raw| self.replay_record(record, raw, who, changes))?;
        for (record, run) in allowed.iter().zip(replayed) {
            let run = run.unwrap_or_else(|| {
                RunReplay::failed(record, "no events were read for it, or its replay stopped".to_owned())
            });
            summary.add(run, filter.details);
        }
        Ok(summary)
    }

    /// Metrics over the stored runs selected by `filter` (`crate::stats`): golden signals
    /// and governance metrics per flow, counts and durations only, never values. Every
    /// run's chain is checked and the run replayed exactly, on every core.
    pub fn stats(&self, filter: &RunFilter) -> Result<Stats> {
        let records: Vec<RunRecord> = self.select(filter, None)?.into_iter().map(|(record, _)| record).collect();
        let facts = self.each_run(&records, |record, raw| self.run_facts(record, raw))?;
        let facts: Vec<RunFacts> = facts
            .into_iter()
            .zip(&records)
            .map(|(facts, record)| facts.unwrap_or_else(|| RunFacts::of(record)))
            .collect();
        Ok(Stats::of(&facts))
    }

    fn run_facts(&self, record: &RunRecord, raw: Vec<RawEvent>) -> RunFacts {
        let mut facts = RunFacts::of(record);
        let at: Vec<String> = raw.iter().map(|e| e.at.clone()).collect();
        let first_at = at.first().cloned().unwrap_or_default();
        let events = self.plan(&record.plan).and_then(|analysis| {
            let events = self.verified(&analysis, record, raw)?;
            self.believed(record, &events, &first_at)?;
            Ok((events, analysis))
        });
        if let Ok((events, analysis)) = events {
            facts.complete = true;
            facts.observe(&events, &at);
            facts.replayed = Some(crate::replay::replay(&analysis, &events, self.engine).divergence.is_none());
        }
        facts
    }

    /// The runs selected by `filter` (and of `flow`, when given), oldest first, with their
    /// plans loaded.
    pub(crate) fn select(&self, filter: &RunFilter, flow: Option<&str>) -> Result<Vec<(RunRecord, Arc<Analysis>)>> {
        let flow = flow.or(filter.flow.as_deref());
        let mut out = Vec::new();
        for record in self.store.runs(None)? {
            if flow.is_some_and(|f| record.flow != f)
                || filter.since.as_ref().is_some_and(|since| record.created.as_str() < since.as_str())
            {
                continue;
            }
            let analysis = self.plan(&record.plan)?;
            out.push((record, analysis));
        }
        Ok(out)
    }

    /// `f` of each of `records` with its stored events (unparsed), in one pass over the
    /// store, on every core: the results in the order of `records` (`None` for a run of
    /// which no events were read).
    pub(crate) fn each_run<T: Send>(
        &self,
        records: &[RunRecord],
        f: impl Fn(&RunRecord, Vec<RawEvent>) -> T + Sync,
    ) -> Result<Vec<Option<T>>> {
        let index: FxHashMap<&str, usize> = records.iter().enumerate().map(|(i, r)| (r.id.as_str(), i)).collect();
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (sender, receiver) = std::sync::mpsc::sync_channel::<Vec<(usize, Vec<RawEvent>)>>(workers * 4);
        let receiver = Mutex::new(receiver);
        let f = &f;
        let done: Vec<(usize, T)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    let receiver = &receiver;
                    scope.spawn(move || {
                        let mut out = Vec::new();
                        loop {
                            let batch = receiver.lock().unwrap_or_else(std::sync::PoisonError::into_inner).recv();
                            let Ok(batch) = batch else { break };
                            out.extend(batch.into_iter().map(|(i, raw)| (i, f(&records[i], raw))));
                        }
                        out
                    })
                })
                .collect();
            let mut batch = Vec::with_capacity(64);
            let scanned = self.store.scan_events(&mut |run, events| {
                if let Some(&i) = index.get(run) {
                    batch.push((i, events));
                    if batch.len() == 64 {
                        return sender.send(std::mem::take(&mut batch)).is_ok();
                    }
                }
                true
            });
            if !batch.is_empty() {
                let _ = sender.send(batch);
            }
            drop(sender);
            let done = handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect();
            scanned.map(|()| done)
        })?;
        let mut out: Vec<Option<T>> = (0..records.len()).map(|_| None).collect();
        for (i, value) in done {
            out[i] = Some(value);
        }
        Ok(out)
    }

    fn replay_record(
        &self,
        record: &RunRecord,
        raw: Vec<RawEvent>,
        who: &Principal,
        changes: &ReplayChanges,
    ) -> RunReplay {
        let replayed = self.plan(&record.plan).and_then(|analysis| {
            if changes.is_none() {
                // Only the events replay needs are read; the rest are compared as stored.
                chain_checked(record, &raw)?;
                let unreadable = |e: String| Error::Environment(format!("run `{}`: {e}", record.id));
                // Believed as loading believes a run; its status is what the replay settles.
                let first = raw.first().ok_or_else(|| unreadable("it has no events".to_owned()))?;
                match decode_event_text(&analysis, &first.body).map_err(unreadable)? {
                    Event::Started(started) => self.believed_start(record, &started, &first.at)?,
                    _ => return Err(unreadable("its first event is not its start".to_owned())),
                }
                let stored =
                    Stored::new(&analysis, raw.iter().map(|e| e.body.as_str()).collect()).map_err(unreadable)?;
                let replay = crate::replay::replay_recording(&analysis, &stored, self.engine).map_err(unreadable)?;
                Ok(RunReplay::exact(replay, record.status))
            } else {
                let first_at = raw.first().map(|e| e.at.clone()).unwrap_or_default();
                let events = self.verified(&analysis, record, raw)?;
                self.believed(record, &events, &first_at)?;
                self.what_if_events(&analysis, &events, Some(who), changes).map(RunReplay::what_if)
            }
        });
        replayed.unwrap_or_else(|error| RunReplay::failed(record, error.to_string()))
    }

    fn check_run_grant(
        &self,
        analysis: &Analysis,
        loaded: &mut Loaded,
        who: &Principal,
        kind: GrantKind,
        operation: &str,
    ) -> Result<()> {
        if analysis.granted(&who.roles, kind, None) {
            return Ok(());
        }
        let roles = analysis.grantees(kind, None);
        let message = format!(
            "{} may not {operation} run `{}`: the flow grants `{}` to {}",
            who.id,
            loaded.state.run,
            kind.as_str(),
            if roles.is_empty() { "no role".to_owned() } else { roles.join(", ") }
        );
        Err(self.refuse(Some((analysis, loaded)), who, operation, kind.as_str().to_owned(), message))
    }

    /// Decides a waiting review, soft gate or approval, and continues the run.
    pub fn decide(&self, run: &str, step: &str, who: &Principal, input: &DecisionInput) -> Result<RunView> {
        let who = &Principal { id: value::principal_id(&who.id), roles: who.roles.clone() };
        let (analysis, loaded) = self.load(run, true)?;
        if loaded.state.status.is_final() {
            return Err(Error::Invalid(format!(
                "run `{run}` is {}: nothing waits for a decision",
                loaded.state.status.as_str()
            )));
        }
        let decided = engine::decide(&analysis, &loaded.state, step, &who.id, &who.roles, input);
        self.continue_run(&analysis, loaded, who, "decide", decided)
    }

    /// Overrides a blocking gate, and continues the run.
    pub fn override_gate(
        &self,
        run: &str,
        gate: &str,
        who: &Principal,
        reason: &str,
        basis: Option<&str>,
    ) -> Result<RunView> {
        let who = &Principal { id: value::principal_id(&who.id), roles: who.roles.clone() };
        let (analysis, loaded) = self.load(run, true)?;
        let overridden = engine::override_gate(&analysis, &loaded.state, gate, &who.id, &who.roles, reason, basis);
        self.continue_run(&analysis, loaded, who, "override", overridden.map(|event| vec![event]))
    }

    /// Records what a principal's `operation` caused and continues the run, or records why
    /// it was refused.
    fn continue_run(
        &self,
        analysis: &Analysis,
        mut loaded: Loaded,
        who: &Principal,
        operation: &str,
        caused: std::result::Result<Vec<Event<Value>>, Refusal>,
    ) -> Result<RunView> {
        match caused {
            Ok(events) => {
                for event in events {
                    loaded.record(analysis, event);
                }
                self.advance(analysis, &mut loaded)?;
                self.refresh_shadows(&loaded.state.run).map_err(|e| {
                    Error::Environment(format!(
                        "the decision was recorded, but the shadow runs of run `{}` could not be brought up to \
                         date: {e}",
                        loaded.state.run
                    ))
                })?;
                Ok(self.view(analysis, &loaded, Some(who)))
            }
            Err(Refusal::Invalid(message)) => Err(Error::Invalid(message)),
            Err(Refusal::Access { grant, message }) => {
                Err(self.refuse(Some((analysis, &mut loaded)), who, operation, grant, message))
            }
        }
    }

    /// A stored run's events, read back into values (its chain checked), and `expr` (of
    /// the run's plan; `Param(i)` reading `args[i]`) evaluated on the run's values as they
    /// stand: what a flow's tests check a run with. No access check: for the embedding
    /// application and the test runner, not for principals.
    pub fn inspect(&self, run: &str, exprs: &[&flow_ir::expr::Expr], args: &[Value]) -> Result<Inspection> {
        let (analysis, loaded, events) = self.load_events(run, false)?;
        let emitted: FxHashMap<&str, &Value> = events
            .iter()
            .filter_map(|e| match e {
                Event::Emitted { node, value, .. } => Some((node.as_str(), value)),
                _ => None,
            })
            .collect();
        let scope = Inspected { run: (&loaded.state, &*analysis), emitted };
        let values = exprs
            .iter()
            .map(|expr| crate::interp::eval_with(analysis.body(), &scope, args, expr).map_err(|e| e.to_string()))
            .collect();
        Ok((events, values))
    }

    /// How a run stands; outputs are shown only as far as `who` may view them.
    pub fn status(&self, run: &str, who: Option<&Principal>) -> Result<RunView> {
        let (analysis, loaded) = self.load(run, false)?;
        Ok(self.view(&analysis, &loaded, who))
    }

    /// Resumes every run that a crash interrupted while it executed (its owner process is
    /// gone); returns their ids.
    pub fn resume_interrupted(&self) -> Result<Vec<String>> {
        let mut resumed = Vec::new();
        for record in self.store.runs(Some(Status::Running))? {
            if !record.owner.as_ref().is_none_or(owner_gone) {
                continue;
            }
            let (analysis, mut loaded) = self.load(&record.id, true)?;
            self.advance(&analysis, &mut loaded)?;
            resumed.push(record.id);
        }
        Ok(resumed)
    }

    /// The steps waiting for decisions; with a principal, only those they may decide. The
    /// store's list of waiting steps only says which runs to look at: each is loaded (its
    /// evidence checked) and what it waits for is read from its events.
    pub fn pending(&self, who: Option<&Principal>) -> Result<Vec<Waiting>> {
        let mut runs: Vec<String> = self.store.waiting()?.into_iter().map(|w| w.run).collect();
        runs.extend(self.store.runs(Some(Status::Pending))?.into_iter().map(|r| r.id));
        runs.sort();
        runs.dedup();
        let mut out = Vec::new();
        for run in runs {
            let (analysis, loaded) = self.load(&run, false)?;
            for (step, kind, roles) in engine::waiting(&analysis, &loaded.state) {
                if let Some(who) = who {
                    let wanted: Vec<SmolStr> = roles.iter().map(SmolStr::new).collect();
                    if crate::analysis::roles_used(analysis.body(), &who.roles, &wanted).is_empty() {
                        continue;
                    }
                }
                out.push(Waiting {
                    run: run.clone(),
                    flow: analysis.body().flow.name.to_string(),
                    step: step.to_string(),
                    kind: kind.to_owned(),
                    roles,
                });
            }
        }
        Ok(out)
    }

    /// The evidence bundle of a run, redacted for `who`'s `view` grants; needs `read
    /// evidence` (a refusal is recorded).
    pub fn evidence(&self, run: &str, who: &Principal) -> Result<Json> {
        let (analysis, mut loaded) = self.load(run, false)?;
        self.check_run_grant(&analysis, &mut loaded, who, GrantKind::ReadEvidence, "read evidence of")?;
        self.bundle(&analysis, run, who)
    }

    fn bundle(&self, analysis: &Analysis, run: &str, who: &Principal) -> Result<Json> {
        let views = analysis.views(&who.roles);
        let events = self.redacted_events(run, &views)?;
        let record = self.store.run(run)?.ok_or_else(|| Error::Invalid(format!("no run `{run}`")))?;
        let plan_bytes = self.store.plan(&record.plan)?.unwrap_or_default();
        let plan: Json = serde_json::from_slice(&plan_bytes)
            .map_err(|e| Error::Environment(format!("the stored plan is not JSON: {e}")))?;
        let public_key =
            events.first().and_then(|e| e.body.get("signing_key")).and_then(Json::as_str).map(str::to_owned);
        let signature = match (&public_key, &record.signature) {
            (Some(key), Some(value)) => Some((key.as_str(), value.as_str())),
            _ => None,
        };
        let exported_at = now().to_string();
        let log = self.log_proof(&record)?;
        Ok(evidence::bundle(evidence::BundleParts {
            run,
            plan_hash: &record.plan,
            plan,
            events: &events,
            signature,
            exported_by: &who.id,
            views: views.iter().map(|v| v.to_string()).collect(),
            exported_at: &exported_at,
            log,
        }))
    }

    /// The inclusion proof of a run's head in the store's log, under its checkpoint, as a
    /// bundle carries it; `None` when the log does not hold the head (a run stored before
    /// the log existed cannot be: stores of earlier versions are refused).
    fn log_proof(&self, record: &RunRecord) -> Result<Option<Json>> {
        use crate::checkpoint::{Entry, Kind};
        let entries = self.store.log()?;
        let Some(checkpoint) = self.store.checkpoint()? else { return Ok(None) };
        if checkpoint.size != entries.len() as u64 {
            return Err(Error::Environment(format!(
                "the store's checkpoint covers {} entries, but its log has {}: the store was changed",
                checkpoint.size,
                entries.len()
            )));
        }
        let wanted = Entry { kind: Kind::Run, subject: record.id.clone(), seq: record.seq, hash: record.head.clone() };
        let Some(index) = entries.iter().rposition(|e| *e == wanted) else {
            return Err(Error::Environment(format!(
                "the store's log does not hold the head of run `{}`: the store was changed",
                record.id
            )));
        };
        let leaves: Vec<[u8; 32]> = entries.iter().map(Entry::leaf).collect();
        let proof = crate::checkpoint::inclusion_proof(index, &leaves);
        Ok(Some(serde_json::json!({
            "index": index,
            "proof": crate::checkpoint::proof_to_hex(&proof),
            "checkpoint": checkpoint,
        })))
    }

    /// The run told for a person on one page, redacted for `who` (every labelled value
    /// hidden without a principal).
    pub fn show(&self, run: &str, who: Option<&Principal>) -> Result<String> {
        let (analysis, events, view) = self.narrative_parts(run, who)?;
        Ok(crate::narrative::show(&analysis, &events, &view))
    }

    fn narrative_parts(
        &self,
        run: &str,
        who: Option<&Principal>,
    ) -> Result<(Arc<Analysis>, Vec<StoredEvent>, RunView)> {
        let (analysis, loaded) = self.load(run, false)?;
        let views = who.map(|w| analysis.views(&w.roles)).unwrap_or_default();
        let events = self.redacted_events(run, &views)?;
        Ok((analysis.clone(), events, self.view(&analysis, &loaded, who)))
    }

    /// How the run stands, with its outputs redacted for `who` (all labelled parts hidden
    /// without a principal).
    fn view(&self, analysis: &Analysis, loaded: &Loaded, who: Option<&Principal>) -> RunView {
        let views = who.map(|w| analysis.views(&w.roles)).unwrap_or_default();
        let state = &loaded.state;
        let status = state.current_status();
        let mut outputs = BTreeMap::new();
        for output in &analysis.body().outputs {
            if let Some(value) = loaded.log.outputs.get(output.name.as_str()) {
                let mut json =
                    labels::encode(analysis.body(), value, &output.ty, analysis.node_labels(&output.name), false);
                labels::redact(&mut json, &views);
                outputs.insert(output.name.to_string(), json);
            }
        }
        RunView {
            run: state.run.clone(),
            flow: analysis.body().flow.name.to_string(),
            status,
            summary: engine::summary(analysis, state, status),
            pending: engine::waiting(analysis, state)
                .into_iter()
                .map(|(s, k, r)| (s.to_string(), k.to_owned(), r))
                .collect(),
            outputs,
            marks: loaded.log.marks.clone(),
            why: if loaded.log.durable { crate::narrative::why(analysis, state, &views) } else { Vec::new() },
        }
    }
}

/// Where a candidate plan gives more than the run's plan: a label it does not declare, a
/// field of a record both declare with fewer labels, a place inside a value the replay
/// reads from the recording (an input, a model's answer, an action's result, a value a
/// reviewer's recorded edit wrote) with fewer labels than the run's plan gives it, whatever
/// its types are named; and when models are asked (`live`), a model the run's plan does
/// not declare, or one cleared for more than there.
fn widens(pinned_analysis: &Analysis, candidate_analysis: &Analysis, live: bool) -> Vec<String> {
    let (pinned, candidate) = (pinned_analysis.body(), candidate_analysis.body());
    let mut out = Vec::new();
    let edited: FxHashSet<&SmolStr> = pinned
        .nodes
        .iter()
        .filter_map(|n| match &n.kind {
            NodeKind::Review { edits, .. } => Some(edits.iter().map(|e| &e.node)),
            _ => None,
        })
        .flatten()
        .collect();
    for node in &pinned.nodes {
        // What the run recorded and a replay reuses: its inputs and the params it was
        // started with, its models' answers and its systems' results.
        let recorded = matches!(
            node.kind,
            NodeKind::Input { .. } | NodeKind::Param { .. } | NodeKind::Infer { .. } | NodeKind::Action { .. }
        );
        if !recorded && !edited.contains(&node.name) {
            continue;
        }
        let Some(other) = candidate.node(&node.name) else { continue };
        let whole = (pinned_analysis.node_labels(&node.name), candidate_analysis.node_labels(&node.name));
        out.extend(lost_labels((pinned, candidate), (&node.ty, &other.ty), whole, &node.name));
    }
    for label in &pinned.labels {
        if !candidate.labels.contains(label) {
            out.push(format!("it does not declare label `{label}`"));
        }
    }
    for record in &candidate.records {
        let Some(before) = pinned.record(&record.name) else { continue };
        for field in &record.fields {
            let Some(was) = before.field(&field.name) else { continue };
            let dropped: Vec<&str> =
                was.labels.iter().filter(|l| !field.labels.contains(l)).map(SmolStr::as_str).collect();
            if !dropped.is_empty() {
                out.push(format!("field `{}.{}` loses {}", record.name, field.name, dropped.join(", ")));
            }
        }
    }
    if live {
        for model in &candidate.models {
            match pinned.model(&model.name) {
                None => out
                    .push(format!("model `{}` is not the run's plan's, and would be sent the run's data", model.name)),
                Some(was) if was.provider != model.provider => out.push(format!(
                    "model `{}` names provider \"{}\", not the run's plan's \"{}\"",
                    model.name, model.provider, was.provider
                )),
                Some(was) => {
                    let more: Vec<&str> =
                        model.clearance.iter().filter(|l| !was.clearance.contains(l)).map(SmolStr::as_str).collect();
                    if !more.is_empty() {
                        out.push(format!("model `{}` is cleared for {} besides", model.name, more.join(", ")));
                    }
                }
            }
        }
    }
    out
}

/// Each place inside a value of type `types.0` (of the run's plan, carrying `whole` as a
/// whole there) that, read as a value of `types.1` (of the candidate, carrying `whole.1`),
/// carries fewer labels (`at`, `at.field`, `at[]` for a list's items), and the labels it
/// loses. For each label, a walk over pairs of types, each pair once: as deep as records
/// nest, in time bounded by the labels and the types rather than by their places (which
/// nested records make exponentially many).
fn lost_labels(
    plans: (&flow_ir::PlanBody, &flow_ir::PlanBody),
    types: (&Ty, &Ty),
    whole: (&[SmolStr], &[SmolStr]),
    at: &str,
) -> Vec<String> {
    let (pinned, candidate) = plans;
    let mut lost: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for label in &pinned.labels {
        let mut seen: FxHashSet<(&Ty, &Ty)> = FxHashSet::default();
        // A place: the two types, whether the run's plan gives it the label and the
        // candidate does not (owed), whether the candidate gives it the label, and its name.
        let owed = whole.0.contains(label) && !whole.1.contains(label);
        let mut stack = vec![(types.0, types.1, owed, whole.1.contains(label), at.to_owned())];
        while let Some((was, now, owed, given, at)) = stack.pop() {
            if owed {
                lost.entry(at).or_default().push(label);
                continue;
            }
            // Given here, the label is on everything inside too: nothing below loses it.
            if given || !seen.insert((was, now)) {
                continue;
            }
            match (was.unwrap_optional(), now.unwrap_optional()) {
                (Ty::List(was), Ty::List(now)) => stack.push((was, now, false, false, format!("{at}[]"))),
                (Ty::Named(was), Ty::Named(now)) => {
                    let (Some(was), Some(now)) = (pinned.record(was), candidate.record(now)) else { continue };
                    for field in &was.fields {
                        let Some(other) = now.field(&field.name) else { continue };
                        let given = other.labels.contains(label);
                        let owed = field.labels.contains(label) && !given;
                        stack.push((&field.ty, &other.ty, owed, given, format!("{at}.{}", field.name)));
                    }
                }
                _ => {}
            }
        }
    }
    lost.into_iter().map(|(at, labels)| format!("`{at}` loses {}", labels.join(", "))).collect()
}

fn input_error(error: DecodeError) -> Error {
    Error::Invalid(format!("input {}: {}", error.path, error.message))
}

/// A run's events, and the values of the expressions asked for (or why one has none).
pub type Inspection = (Vec<Event<Value>>, Vec<std::result::Result<Value, String>>);

/// A run's values as they stand, where an output reads as what was emitted (an `emit`
/// step itself gives nothing).
struct Inspected<'r> {
    run: (&'r State, &'r Analysis),
    emitted: FxHashMap<&'r str, &'r Value>,
}

impl crate::interp::Scope for Inspected<'_> {
    fn node(&self, name: &str) -> Option<&Value> {
        self.emitted.get(name).copied().or_else(|| self.run.node(name))
    }

    fn degraded(&self, name: &str) -> bool {
        self.run.degraded(name)
    }

    fn clock(&self) -> Timestamp {
        self.run.clock()
    }

    fn starter(&self) -> Option<&str> {
        self.run.starter()
    }
}

/// The status a run's events leave it in: that of its last `settled` event, unless a step
/// came after it (the run stopped while executing).
fn status_of(events: &[Event<Value>]) -> Status {
    let mut status = Status::Running;
    for event in events {
        match event {
            Event::Settled { status: settled, .. } => status = *settled,
            Event::Refused { .. } | Event::Started(_) => {}
            _ => status = Status::Running,
        }
    }
    status
}

/// Checks a run's stored events against its record (their number and head) and their
/// hash chain.
fn chain_checked(record: &RunRecord, events: &[RawEvent]) -> Result<()> {
    let run = record.id.as_str();
    if events.len() as u64 != record.seq || events.last().map_or(digest::GENESIS, |e| e.hash.as_str()) != record.head {
        return Err(Error::Environment(format!("the events of run `{run}` in the store do not end at its head")));
    }
    let mut prev = digest::GENESIS;
    for (i, stored) in events.iter().enumerate() {
        let chained = digest::is_event_hash(&stored.hash, prev, stored.seq, &stored.at, &stored.body).map_err(|e| {
            Error::Environment(format!("event {} of run `{run}` in the store is not JSON: {e}", stored.seq))
        })?;
        if stored.seq != i as u64 || stored.prev != prev || !chained {
            return Err(Error::Environment(format!(
                "the evidence of run `{run}` in the store is corrupted: event {i} does not match its hash chain"
            )));
        }
        prev = &stored.hash;
    }
    Ok(())
}

/// The type of a value in an event, and its labels when `labelled` (decoding needs only
/// the type).
pub(crate) fn slot_type(analysis: &Analysis, slot: Slot<'_>, labelled: bool) -> Option<(Ty, Vec<SmolStr>)> {
    let body = analysis.body();
    let labels = |of: &dyn Fn() -> Vec<SmolStr>| if labelled { of() } else { Vec::new() };
    let place = |text: &str| {
        let mut parts = text.split('.');
        let root = parts.next()?;
        let path: Vec<SmolStr> = parts.map(SmolStr::new).collect();
        Some((crate::analysis::place_type(body, root, &path)?, labels(&|| analysis.path_labels(root, &path))))
    };
    match slot {
        Slot::Input(name) | Slot::Param(name) => Some((body.node(name)?.ty.clone(), Vec::new())),
        Slot::Node(name) => Some((body.node(name)?.ty.clone(), labels(&|| analysis.node_labels(name).to_vec()))),
        Slot::Output(name) => Some((body.output(name)?.ty.clone(), labels(&|| analysis.node_labels(name).to_vec()))),
        // What the analysis knows of the step's operands; a place it does not list (in
        // evidence from elsewhere) is typed from the plan.
        Slot::Operand(node, text) => match analysis.operands(node).iter().find(|o| o.place == text) {
            Some(operand) => Some((operand.ty.clone()?, labels(&|| operand.labels.clone()))),
            None if text.starts_with("stale(") || text.starts_with("degraded(") => Some((Ty::Bool, Vec::new())),
            None if text.starts_with("age(") => Some((Ty::Duration, Vec::new())),
            None => place(text),
        },
        Slot::Edit(text) => place(text),
        Slot::Failure(node) => Some((Ty::Text, labels(&|| analysis.failure_labels(node).to_vec()))),
        Slot::ModelArg(node, arg) => {
            let NodeKind::Infer { model, args, .. } = &body.node(node)?.kind else { return None };
            let param = body.model(model)?.inputs.iter().find(|p| p.name == arg)?;
            args.iter().find(|a| a.name == arg)?;
            Some((param.ty.clone(), labels(&|| analysis.arg_labels(node, arg).to_vec())))
        }
        Slot::ActionArg(node, arg) => {
            let NodeKind::Action { system, action, args, .. } = &body.node(node)?.kind else { return None };
            let target = body.system(system)?.actions.iter().find(|a| a.name == *action)?;
            let param = target.params.iter().find(|p| p.name == arg)?;
            args.iter().find(|a| a.name == arg)?;
            Some((param.ty.clone(), labels(&|| analysis.arg_labels(node, arg).to_vec())))
        }
    }
}

/// An event as evidence JSON, each labelled value salted afresh.
pub fn encode_event(analysis: &Analysis, event: Event<Value>) -> Json {
    serde_json::to_value(encode_values(analysis, event, true)).unwrap_or(Json::Null)
}

/// An event as evidence JSON without salts: what two encodings of one event compare.
pub(crate) fn encode_event_unsalted(analysis: &Analysis, event: Event<Value>) -> Json {
    serde_json::to_value(encode_values(analysis, event, false)).unwrap_or(Json::Null)
}

/// An event's evidence JSON as the store keeps it (the text of [`encode_event`]) but
/// unsalted, into `out`: equal to the stored text when the event has no labelled value.
pub(crate) fn encode_event_text(analysis: &Analysis, event: &Event<Value>, out: &mut Vec<u8>) {
    out.clear();
    if serde_json::to_writer(&mut *out, &encode_values(analysis, event.clone(), false)).is_err() {
        out.clear();
    }
}

fn encode_values(analysis: &Analysis, event: Event<Value>, salted: bool) -> Event<Json> {
    let mut encode = |slot: Slot<'_>, value: Value| -> std::result::Result<Json, std::convert::Infallible> {
        Ok(match slot_type(analysis, slot, true) {
            Some((ty, labels)) => labels::encode(analysis.body(), &value, &ty, &labels, salted),
            None => value.to_json(),
        })
    };
    let mut event = match event.map_values(&mut encode) {
        Ok(event) => event,
        Err(never) => match never {},
    };
    if salted && let Event::Failed { returned: Some(returned), .. } = &mut event {
        labels::salt(returned);
    }
    event
}

/// An event read back from evidence JSON.
pub fn decode_event(analysis: &Analysis, json: Json) -> std::result::Result<Event<Value>, String> {
    decode_values(analysis, serde_json::from_value(json).map_err(|e| e.to_string())?)
}

/// An event read back from evidence JSON text, as stored.
pub(crate) fn decode_event_text(analysis: &Analysis, text: &str) -> std::result::Result<Event<Value>, String> {
    let event = if text.starts_with(r#"{"event":"started""#) {
        // The first event, and the largest, read as its struct: serde would buffer the
        // whole of an internally tagged enum's content before reading it.
        serde_json::from_str(text).map(|started| Event::Started(Box::new(started)))
    } else {
        serde_json::from_str(text)
    };
    decode_values(analysis, event.map_err(|e| e.to_string())?)
}

fn decode_values(analysis: &Analysis, event: Event<Json>) -> std::result::Result<Event<Value>, String> {
    if let Some(node) = event.node()
        && analysis.plan.node_id(node).is_none()
    {
        return Err(format!("the plan has no node `{node}`"));
    }
    let mut event = event.map_values(&mut |slot, json: Json| {
        let (ty, _) = slot_type(analysis, slot, false).ok_or_else(|| format!("no type for {slot:?}"))?;
        value::decode(analysis.body(), &json, &ty, "$").map_err(|e| e.to_string())
    })?;
    // What a system returned is kept as JSON: as read, without the salt it is stored with.
    if let Event::Failed { returned: Some(returned), .. } = &mut event {
        labels::unsalt(returned);
    }
    Ok(event)
}

/// A run being worked on: its state, and its log.
pub(crate) struct Loaded {
    state: State,
    log: Log,
}

/// A run's log: the events not yet stored, and where its chain stands.
struct Log {
    pending: Vec<Event<Value>>,
    seq: u64,
    head: String,
    signature: Option<String>,
    /// The public key the run was started with, when it is signed.
    signing_key: Option<String>,
    principal: String,
    created: String,
    outputs: BTreeMap<SmolStr, Value>,
    /// What each output carries besides its value (`overridden: g`, `degraded: x`).
    marks: BTreeMap<String, Vec<String>>,
    /// The digest of the arguments of each action step's latest call, by step.
    calls: BTreeMap<SmolStr, String>,
    results: Vec<ActionResult>,
    /// False for runs evaluated in memory: committing only notes outputs.
    durable: bool,
}

impl Loaded {
    /// Applies an event to the run's state and keeps it for the next commit.
    fn record(&mut self, analysis: &Analysis, event: Event<Value>) {
        self.state.apply(analysis, &event);
        self.log.pending.push(event);
    }

    fn new(analysis: &Analysis, run: String, principal: String, created: String) -> Loaded {
        let mut state = State::new(analysis);
        state.run = run;
        Loaded {
            state,
            log: Log {
                pending: Vec::new(),
                seq: 0,
                head: digest::GENESIS.to_owned(),
                signature: None,
                signing_key: None,
                principal,
                created,
                outputs: BTreeMap::new(),
                marks: BTreeMap::new(),
                calls: BTreeMap::new(),
                results: Vec::new(),
                durable: true,
            },
        }
    }
}

impl Log {
    /// Notes what the log keeps of an event besides the state: outputs, the signing key.
    fn observe(&mut self, flow: &str, event: &Event<Value>) {
        match event {
            Event::Started(started) => self.signing_key = started.signing_key.clone(),
            Event::ActionStarted { node, action, args, .. } if self.durable => {
                self.calls.insert(node.clone(), engine::call_digest(flow, action, args));
            }
            Event::Emitted { node, value, marks } => {
                self.outputs.insert(node.clone(), value.clone());
                if !marks.is_empty() {
                    self.marks.insert(node.to_string(), marks.clone());
                }
            }
            _ => {}
        }
    }

    /// Stores the pending events, chained, with the run's new record.
    fn commit(&mut self, runtime: &Runtime, analysis: &Analysis, state: &State) -> Result<()> {
        if !self.durable {
            for event in std::mem::take(&mut self.pending) {
                self.observe(&analysis.body().flow.name, &event);
            }
            return Ok(());
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut stored = Vec::with_capacity(self.pending.len());
        let mut head = self.head.clone();
        let at = now().to_string();
        if self.seq == 0 {
            self.created = at.clone();
        }
        let pending = std::mem::take(&mut self.pending);
        for (i, event) in pending.into_iter().enumerate() {
            self.observe(&analysis.body().flow.name, &event);
            let seq = self.seq + i as u64;
            if let Event::ActionCompleted { node, key, result, reused: false } = &event
                && let Some(NodeKind::Action { system, .. }) = analysis.body().node(node).map(|n| &n.kind)
            {
                self.results.push(ActionResult {
                    system: system.to_string(),
                    key: key.clone(),
                    result: result.to_json(),
                    run: state.run.clone(),
                    seq,
                    args: self.calls.get(node).cloned().unwrap_or_default(),
                });
            }
            let body = encode_event(analysis, event);
            let hash = digest::event_hash(&head, seq, &at, &body);
            stored.push(StoredEvent { seq, at: at.clone(), prev: head.clone(), hash: hash.clone(), body });
            head = hash;
        }
        // A run is signed with the key it was started with, and only with it: a runtime
        // without that key may not change a signed run (its head would go unsigned).
        let signature = match (&self.signing_key, &runtime.signing) {
            (None, _) => None,
            (Some(public), Some(key)) if *public == evidence::public_key_hex(key) => {
                Some(evidence::sign_head(key, &head))
            }
            (Some(public), _) => {
                return Err(Error::Environment(format!(
                    "run `{}` is signed with the evidence key {public}; configure that key to change it",
                    state.run
                )));
            }
        };
        let record_status = state.current_status();
        let record = RunRecord {
            id: state.run.clone(),
            plan: analysis.plan.hash().to_owned(),
            flow: analysis.body().flow.name.to_string(),
            status: record_status,
            created: self.created.clone(),
            seq: self.seq + stored.len() as u64,
            head: head.clone(),
            signature: signature.clone(),
            principal: self.principal.clone(),
            owner: (record_status == Status::Running).then(|| (process_id(), at.clone())),
        };
        let waiting: Vec<Waiting> = engine::waiting(analysis, state)
            .into_iter()
            .map(|(step, kind, roles)| Waiting {
                run: record.id.clone(),
                flow: record.flow.clone(),
                step: step.to_string(),
                kind: kind.to_owned(),
                roles,
            })
            .collect();
        runtime.store.append(&crate::store::Commit {
            run: &record,
            expected_seq: self.seq,
            events: &stored,
            waiting: &waiting,
            results: &self.results,
            key: runtime.signer(),
        })?;
        self.results.clear();
        self.seq = record.seq;
        self.head = head;
        self.signature = signature;
        Ok(())
    }
}

struct RunJournal<'a> {
    runtime: &'a Runtime,
    analysis: &'a Analysis,
    log: &'a mut Log,
}

impl Journal for RunJournal<'_> {
    fn record(&mut self, event: Event<Value>) {
        if self.log.durable {
            self.log.pending.push(event);
        } else {
            self.log.observe(&self.analysis.body().flow.name, &event);
        }
    }

    fn flush(&mut self, state: &State) -> std::result::Result<(), String> {
        self.log.commit(self.runtime, self.analysis, state).map_err(|e| e.to_string())
    }

    fn keeps_evidence(&self) -> bool {
        self.log.durable
    }

    fn action_result(
        &mut self,
        _step: &str,
        system: &str,
        key: &str,
    ) -> std::result::Result<Option<engine::Earlier>, String> {
        let Some(stored) = self.runtime.store.action_result(system, key).map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        self.runtime.recorded_result(&stored).map_err(|e| e.to_string())?;
        Ok(Some(engine::Earlier { result: stored.result, request: engine::Request::Digest(stored.args) }))
    }
}
