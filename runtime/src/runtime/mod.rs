//! The runtime an application embeds: plans, providers, handlers and a store; starting runs,
//! deciding, overriding, resuming after a crash, and exporting evidence, with every
//! operation checked against the plan's grants.
//!
//! The [`Runtime`] and its set-up are here; its operations are in the modules below, one
//! job each.

mod access;
mod audit;
mod copy;
mod history;
mod inputs;
mod load;
mod queue;
mod releases;
mod run;
mod views;

use crate::analysis::{Analysis, Engine};
use crate::error::{Error, Result};
use crate::event::Environment;
use crate::evidence;
use crate::identity::{Directory, host};
use crate::provider::{ActionHandler, ModelProvider};
use crate::store::{ShadowRecord, Store};
use ed25519_dalek::SigningKey;
use flow_ir::VerifiedPlan;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub use audit::Audit;
pub use copy::Copied;
pub use history::{ReplayChanges, ReplaySummary, RunFilter, RunReplay, ShadowReport};
pub use queue::{BatchOptions, BatchState};
pub use releases::{Proposal, ReleaseControl, ReleaseLog, RunDeployment};
pub use run::{StartOptions, Tick};
pub use views::{Inbox, InboxItem, RunPage};

/// The runtime.
pub struct Runtime {
    pub(crate) store: Arc<dyn Store>,
    /// Who this runtime is to other processes on the store, and the leases it holds.
    pub(crate) leases: crate::lease::Leases,
    models: BTreeMap<String, Arc<dyn ModelProvider>>,
    provider_kinds: BTreeMap<String, Arc<dyn ModelProvider>>,
    systems: BTreeMap<String, Arc<dyn ActionHandler>>,
    /// The retriever of each corpus, by corpus name.
    corpora: BTreeMap<String, Arc<dyn crate::retrieval::Retriever>>,
    signing: Option<SigningKey>,
    /// The public keys (hex) whose signatures this runtime believes: its own, and those
    /// trusted besides (earlier keys of the deployment). Empty: any key whose signature
    /// verifies (integrity, without knowing who signed).
    trusted: Vec<String>,
    plans: Mutex<BTreeMap<String, Arc<Analysis>>>,
    /// The environment recorded in each run, by plan hash.
    environments: Mutex<BTreeMap<String, Arc<Environment>>>,
    /// The digest of the deployment runs of each plan start in, with the release it was
    /// computed for (reset with `environments`).
    deployments: Mutex<BTreeMap<String, (Option<crate::event::ReleaseRef>, String)>>,
    engine: Engine,
    /// The principals runs may name; without one, any id is taken as given.
    directory: std::sync::RwLock<Option<Arc<Directory>>>,
    /// A runtime for tests: a run may choose its clock and name any principal without the
    /// grants (its evidence still says the clock was chosen).
    testing: bool,
    /// Told how far an operation over many stored runs (a bulk replay, the metrics) is.
    progress: Option<Arc<Progress>>,
    /// The webhook endpoints notices are queued for.
    pub(crate) webhooks: Option<Arc<crate::notify::Webhooks>>,
    /// What the time is, for deadlines: the system clock, or a test's.
    clock: Option<Arc<Clock>>,
    /// When (minute) this runtime last folded the monitors' old counts.
    pub(crate) monitors_folded: std::sync::atomic::AtomicI64,
    /// The publishing rules and the environment runs start in.
    release_control: Option<ReleaseControl>,
    /// The release log as this runtime last read it, checked.
    releases: Mutex<(crate::release::Registry, bool)>,
}

/// A source of the current time (a test's clock, which it moves on).
pub type Clock = dyn Fn() -> flow_ir::expr::Timestamp + Send + Sync;

/// Told, as an operation over many stored runs goes, how many of how many are done: from
/// the threads that do them, at most a few times a second is up to the listener.
pub type Progress = dyn Fn(usize, usize) + Send + Sync;

impl Runtime {
    pub fn new(store: Box<dyn Store>) -> Runtime {
        Runtime {
            store: Arc::from(store),
            leases: crate::lease::Leases::new(),
            models: BTreeMap::new(),
            provider_kinds: BTreeMap::new(),
            systems: BTreeMap::new(),
            corpora: BTreeMap::new(),
            signing: None,
            trusted: Vec::new(),
            plans: Mutex::new(BTreeMap::new()),
            environments: Mutex::new(BTreeMap::new()),
            deployments: Mutex::new(BTreeMap::new()),
            engine: Engine::default(),
            directory: std::sync::RwLock::new(None),
            testing: false,
            progress: None,
            webhooks: None,
            clock: None,
            monitors_folded: std::sync::atomic::AtomicI64::new(i64::MIN / 2),
            release_control: None,
            releases: Mutex::default(),
        }
    }

    /// Takes the time from `clock` rather than the system's: when steps begin to wait and
    /// which of their deadlines have passed (`flowc test` moves it with `after`).
    pub fn set_clock(&mut self, clock: Arc<Clock>) {
        self.clock = Some(clock);
    }

    /// The current time, as this runtime reads it.
    pub fn now(&self) -> flow_ir::expr::Timestamp {
        self.clock.as_ref().map_or_else(crate::identity::now, |clock| clock())
    }

    /// The deployment's principals: every `Principal` a run's inputs name must be one of
    /// them (after [`value::principal_id`]), or the run is refused with the input's path.
    pub fn set_directory(&mut self, directory: Directory) {
        self.refresh_directory(directory);
    }

    /// Replaces the deployment's principals while the runtime serves (a server that read
    /// the principals file again): runs started from now on are checked against them.
    pub fn refresh_directory(&self, directory: Directory) {
        *self.directory.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(directory));
    }

    /// The deployment's principals, when the runtime has them.
    pub(crate) fn directory(&self) -> Option<Arc<Directory>> {
        self.directory.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// How long this runtime's leases on the runs it executes and the action keys it calls
    /// last unless renewed ([`crate::DEFAULT_LEASE`] by default): how long other processes
    /// wait before they take over what a process that died was doing. It renews them every
    /// third of that while it works. Set it before the runtime executes anything.
    pub fn set_lease(&mut self, lease: std::time::Duration) {
        self.leases.ttl = lease.max(std::time::Duration::from_millis(30));
    }

    /// How long this runtime's leases last unless renewed.
    pub fn lease(&self) -> std::time::Duration {
        self.leases.ttl
    }

    /// Makes this a runtime for tests (`flowc test`): runs may choose their clock and name
    /// principals other than the starter without the `set clock` and `trigger on behalf`
    /// grants. Never for a deployment.
    pub fn set_testing(&mut self, testing: bool) {
        self.testing = testing;
    }

    /// Tells `progress` how far operations over many stored runs are (`replay_all`,
    /// `stats`): runs done, runs in all.
    pub fn set_progress(&mut self, progress: Arc<Progress>) {
        self.progress = Some(progress);
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
        self.deployments = Mutex::default();
    }

    /// The provider for every model declaring this provider kind and having none of its own.
    pub fn register_provider(&mut self, kind: &str, provider: Arc<dyn ModelProvider>) {
        self.provider_kinds.insert(kind.to_owned(), provider);
        self.environments = Mutex::default();
        self.deployments = Mutex::default();
    }

    /// The handler of a system's actions.
    pub fn register_system(&mut self, system: &str, handler: Arc<dyn ActionHandler>) {
        self.systems.insert(system.to_owned(), handler);
        self.environments = Mutex::default();
        self.deployments = Mutex::default();
    }

    /// The retriever that searches a corpus for `retrieve` steps.
    pub fn register_retriever(&mut self, corpus: &str, retriever: Arc<dyn crate::retrieval::Retriever>) {
        self.corpora.insert(corpus.to_owned(), retriever);
        self.environments = Mutex::default();
        self.deployments = Mutex::default();
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
    pub(super) fn signer(&self) -> Option<crate::store::Signer<'_>> {
        self.signing.as_ref().map(|key| crate::store::Signer { key, trusted: &self.trusted })
    }

    /// How this runtime commits a run's events: to its store, signed with its key, holding
    /// the run's lease while it executes, giving up the action claims `released`.
    pub(super) fn committer<'a>(&'a self, released: &'a [(String, String)]) -> crate::log::Committer<'a> {
        crate::log::Committer {
            store: self.store.as_ref(),
            signer: self.signer(),
            lease: (&self.leases.owner, self.leases.ttl_ms()),
            released,
            webhooks: self.webhooks.as_deref(),
            clock: self.clock.as_deref(),
        }
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
                Err(Error::Tampered(format!("{what} is not signed, but this deployment signs evidence")))
            }
            None => Ok(()),
            Some(_) if self.trusted.is_empty() => Ok(()),
            Some(signature) => {
                if self.trusted.iter().any(|key| crate::checkpoint::shadow_signature_verifies(key, &digest, signature))
                {
                    Ok(())
                } else {
                    Err(Error::Tampered(format!(
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
            return Err(Error::Plan(format!(
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

    pub(super) fn cached(&self, hash: &str) -> Option<Arc<Analysis>> {
        self.lock_plans().get(hash).cloned()
    }

    /// The plan of this hash if the store keeps it: from this runtime's cache, or from the
    /// store, verified again.
    pub fn find_plan(&self, hash: &str) -> Result<Option<Arc<Analysis>>> {
        if let Some(analysis) = self.cached(hash) {
            return Ok(Some(analysis));
        }
        if self.store.plan(hash)?.is_none() && self.release_store().plan(hash)?.is_none() {
            return Ok(None);
        }
        self.plan(hash).map(Some)
    }

    /// The plan of this hash, from the store, verified again.
    pub fn plan(&self, hash: &str) -> Result<Arc<Analysis>> {
        if let Some(analysis) = self.cached(hash) {
            return Ok(analysis);
        }
        // A plan a release names may be in the release store only (another environment's):
        // once verified, the run store keeps it too, for the runs started on it.
        let (bytes, fetched) = match self.store.plan(hash)? {
            Some(bytes) => (bytes, false),
            None => {
                let bytes = self
                    .release_store()
                    .plan(hash)?
                    .ok_or_else(|| Error::Store(format!("the store has no plan {hash}")))?;
                (bytes, true)
            }
        };
        let plan = flow_ir::load(&bytes)
            .map_err(|e| Error::Tampered(format!("the stored plan {hash} does not verify:\n{e}")))?;
        if plan.hash() != hash {
            return Err(Error::Tampered(format!("the plan stored as {hash} has hash {}", plan.hash())));
        }
        let analysis = Arc::new(Analysis::new(plan));
        let leaks = analysis.leaks();
        if !leaks.is_empty() {
            return Err(Error::Tampered(format!(
                "the stored plan {hash} lets labelled data go where it may not:\n{}",
                leaks.join("\n")
            )));
        }
        if fetched {
            self.store.put_plan(hash, &bytes)?;
        }
        self.lock_plans().insert(hash.to_owned(), analysis.clone());
        Ok(analysis)
    }

    /// Every plan kept in the store, verified, in the order of their hashes.
    pub fn plans(&self) -> Result<Vec<Arc<Analysis>>> {
        self.store.plans()?.iter().map(|hash| self.plan(hash)).collect()
    }

    pub(super) fn environment(&self, analysis: &Analysis) -> Arc<Environment> {
        let mut cache = self.environments.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(environment) = cache.get(analysis.plan.hash()) {
            return environment.clone();
        }
        cache
            .entry(analysis.plan.hash().to_owned())
            .or_insert_with(|| Arc::new(self.describe_environment(analysis)))
            .clone()
    }

    /// [`crate::deployment::digest_of`] the environment of `analysis`'s runs and `release`,
    /// computed once per plan and release.
    pub(super) fn deployment_digest(
        &self,
        analysis: &Analysis,
        environment: &Environment,
        release: Option<&crate::event::ReleaseRef>,
    ) -> String {
        let mut cache = self.deployments.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let plan = analysis.plan.hash();
        if let Some((of, digest)) = cache.get(plan)
            && of.as_ref() == release
        {
            return digest.clone();
        }
        let digest = crate::deployment::digest_of(environment, release);
        cache.insert(plan.to_string(), (release.cloned(), digest.clone()));
        digest
    }

    pub(super) fn describe_environment(&self, analysis: &Analysis) -> Environment {
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
        for corpus in &analysis.body().corpora {
            if let Some(r) = self.retriever(corpus) {
                providers.insert(format!("corpus {}", corpus.name), r.describe());
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
            environment: self.release_control.as_ref().and_then(|c| c.environment.clone()),
        }
    }

    pub(super) fn retriever(&self, corpus: &flow_ir::plan::Corpus) -> Option<&dyn crate::retrieval::Retriever> {
        self.corpora.get(corpus.name.as_str()).map(|r| &**r)
    }

    pub(super) fn model_provider(&self, model: &flow_ir::plan::Model) -> Option<&dyn ModelProvider> {
        self.models.get(model.name.as_str()).or_else(|| self.provider_kinds.get(model.provider.as_str())).map(|p| &**p)
    }
}
