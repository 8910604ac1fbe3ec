//! Runs: started, advanced by the executor, decided, overridden and resumed, each change
//! committed through the run's log.

use super::Runtime;
use crate::analysis::Analysis;
use crate::decision::{self, DecisionInput, Refusal};
use crate::digest;
use crate::error::{Error, Result};
use crate::event::{Event, SourceCheck, Started, Status};
use crate::evidence;
use crate::exec::{self, Interrupted, Journal, Services};
use crate::identity::{Principal, new_run_id, now};
use crate::log::{Loaded, Log, Prepared};
use crate::narrative::RunView;
use crate::state::State;
use crate::store::{ActionClaim, Held};
use crate::value::{self, Value};
use flow_ir::expr::Timestamp;
use flow_ir::plan::{GrantKind, NodeKind};
use serde_json::Value as Json;
use smol_str::SmolStr;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What [`Runtime::tick`] did: the runs whose timers fired (and how many), and those it
/// could not read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tick {
    pub fired: Vec<(String, usize)>,
    pub failed: Vec<(String, String)>,
}

/// A run's inputs as they are given: JSON, read against their declared types as the run
/// starts, or values already read ([`crate::read::case_inputs`]).
pub(super) enum Given<'a> {
    Json(&'a [(String, Json)]),
    Read(Vec<(String, Value)>),
}

/// Options of a new run.
#[derive(Clone, Debug, Default)]
pub struct StartOptions {
    /// The run's clock; the current time when absent.
    pub clock: Option<Timestamp>,
    /// Params set to other values than their defaults (JSON).
    pub params: Vec<(String, Json)>,
}

pub(crate) struct RunJournal<'a> {
    runtime: &'a Runtime,
    analysis: &'a Analysis,
    log: &'a mut Log,
    run: String,
    /// What this execution holds: the run, and the action keys it claimed.
    holds: Vec<Held>,
    /// Claimed action keys, by step, whose calls are not over.
    calling: Vec<(SmolStr, String, String)>,
    /// Claimed action keys whose calls are over: the next commit gives their claims up.
    released: Vec<(String, String)>,
}

impl RunJournal<'_> {
    /// Ends this execution's holds: they are no longer renewed, and, when the run stopped
    /// before it settled (`unsettled`), those still held in the store are given up so that
    /// another process may go on at once.
    fn end(self, unsettled: bool) {
        if self.holds.is_empty() && self.calling.is_empty() && self.released.is_empty() {
            return;
        }
        self.runtime.leases.drop_holds(&self.holds);
        let actions = self.calling.into_iter().map(|(_, system, key)| (system, key)).chain(self.released);
        let mut release: Vec<Held> = actions.map(|(system, key)| Held::Action(system, key)).collect();
        if unsettled {
            release.extend(self.holds.into_iter().filter(|hold| matches!(hold, Held::Run(_))));
        }
        if !release.is_empty() {
            // Best effort: what is not given up runs out with its lease.
            let _ = self.runtime.store.release(&self.runtime.leases.owner, &release);
        }
    }

    /// The last commit of the execution, prepared and not stored; the claims it gives up
    /// go with it.
    fn prepare(&mut self, state: &State) -> Result<Option<Prepared>> {
        let prepared = self.log.prepare(&self.runtime.committer(&self.released), self.analysis, state)?;
        self.released.clear();
        Ok(prepared)
    }
}

impl Journal for RunJournal<'_> {
    fn record(&mut self, event: Event<Value>) {
        if !self.log.durable {
            self.log.observe_owned(&self.analysis.body().flow.name, event);
            return;
        }
        if let Event::ActionCompleted { node, .. } | Event::Failed { node, .. } = &event
            && let Some(i) = self.calling.iter().position(|(step, _, _)| step == node)
        {
            let (_, system, key) = self.calling.swap_remove(i);
            self.released.push((system, key));
        }
        self.log.pending.push(event);
    }

    fn flush(&mut self, state: &State) -> Result<()> {
        if !self.log.durable && self.log.pending.is_empty() {
            // Nothing to store or observe (`Log::prepare` would find so).
            return Ok(());
        }
        self.log.commit(&self.runtime.committer(&self.released), self.analysis, state)?;
        self.released.clear();
        Ok(())
    }

    fn keeps_evidence(&self) -> bool {
        self.log.durable
    }

    fn action_result(&mut self, _step: &str, system: &str, key: &str) -> Result<Option<exec::Earlier>> {
        let Some(stored) = self.runtime.store.action_result(system, key)? else {
            return Ok(None);
        };
        self.runtime.recorded_result(&stored)?;
        Ok(Some(exec::Earlier { result: stored.result, request: exec::Request::Digest(stored.args) }))
    }

    fn claim_action(&mut self, state: &State, step: &str, system: &str, key: &str) -> Result<Option<exec::Earlier>> {
        if !self.log.durable {
            return Ok(None);
        }
        // The results of this run's earlier calls are stored, and their claims given up,
        // before it waits for another key: two runs each holding the key the other waits for
        // would wait forever.
        let unstored = self.log.pending.iter().any(|e| matches!(e, Event::ActionCompleted { reused: false, .. }));
        if unstored || !self.released.is_empty() {
            self.flush(state)?;
        }
        let leases = &self.runtime.leases;
        let run = self.run.as_str();
        let mut pause = std::time::Duration::from_millis(20);
        loop {
            match self.runtime.store.claim_action(system, key, run, &leases.owner, leases.ttl_ms())? {
                ActionClaim::Claimed => {
                    let hold = Held::Action(system.to_owned(), key.to_owned());
                    leases.hold(&self.runtime.store, &hold);
                    self.holds.push(hold);
                    self.calling.push((step.into(), system.to_owned(), key.to_owned()));
                    return Ok(None);
                }
                ActionClaim::Done(stored) => {
                    self.runtime.recorded_result(&stored)?;
                    let request = exec::Request::Digest(stored.args);
                    return Ok(Some(exec::Earlier { result: stored.result, request }));
                }
                // Another run or process is calling the handler with this key: its result,
                // once recorded, answers this call too; if it stops renewing its claim, the
                // claim runs out and this run takes it. Meanwhile this run's own lease is
                // renewed.
                ActionClaim::Held(lease) => {
                    let left = std::time::Duration::from_millis(lease.remaining_ms.max(1) as u64);
                    std::thread::sleep(pause.min(left));
                    pause = (pause * 2).min(std::time::Duration::from_secs(1));
                }
            }
        }
    }
}

impl Runtime {
    /// Starts a run of `an` for `who`, executes it as far as it goes and stores it.
    pub fn start(
        &self,
        analysis: &Arc<Analysis>,
        who: &Principal,
        inputs: &[(String, Json)],
        options: &StartOptions,
    ) -> Result<RunView> {
        self.new_run(analysis, who, Given::Json(inputs), options, true, (None, None))
    }

    /// Starts a run of `analysis` for `who` for each of `cases` (a run's inputs), as
    /// [`Runtime::start`] starts one, and stores their last commits together, in one
    /// transaction (a run that calls an action commits before and after the call on its
    /// own). What each case gave, in order: its run, or why it did not start (refused, inputs
    /// that do not fit — refusals are recorded as `start` records them). A run is reported
    /// only once it is stored: when the transaction fails, the error is returned and none of
    /// the group's runs is (nothing is acknowledged that is not stored).
    pub fn start_all(
        &self,
        analysis: &Arc<Analysis>,
        who: &Principal,
        cases: &[Vec<(String, Json)>],
        options: &StartOptions,
    ) -> Result<Vec<Result<RunView>>> {
        let mut started = Vec::with_capacity(cases.len());
        let mut deferred: Vec<Prepared> = Vec::with_capacity(cases.len());
        for inputs in cases {
            match self.new_run(analysis, who, Given::Json(inputs), options, true, (None, Some(&mut deferred))) {
                Err(error) if !error.kind().is_request() => return Err(error),
                result => started.push(result),
            }
        }
        if !deferred.is_empty() {
            let signer = self.signer();
            let commits: Vec<_> = deferred.iter().map(|prepared| prepared.commit(signer)).collect();
            self.store.append_all(&commits)?;
        }
        Ok(started)
    }

    /// Starts a run of `analysis` for `who` once per `key`: the run's id is derived from the
    /// principal, the flow and the key, so a start asked again with the key (a client that
    /// timed out, a retry through another process) finds the run the first one started
    /// instead of starting another. Returns the run and whether this call started it. A
    /// start asked again must ask for the same run — plan, inputs, params and chosen clock —
    /// or it is refused (`E3002`) and nothing is started; with `any_version` (the caller
    /// asked for the flow, not for a version of it), a run of the key on another version of
    /// the flow answers it too, its inputs and params compared as that version reads them,
    /// so that a retry after a new version was installed finds the run it retries.
    pub fn start_once(
        &self,
        analysis: &Arc<Analysis>,
        who: &Principal,
        inputs: &[(String, Json)],
        options: &StartOptions,
        key: &str,
        any_version: bool,
    ) -> Result<(RunView, bool)> {
        let mut hasher = blake3::Hasher::new();
        for part in ["flow idempotency key", &value::principal_id(&who.id), &analysis.body().flow.name, key] {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
        let id = format!("r-{}", &hasher.finalize().to_hex()[..16]);
        if self.store.run(&id)?.is_none() {
            match self.new_run(analysis, who, Given::Json(inputs), options, true, (Some(id.clone()), None)) {
                Ok(view) => return Ok((view, true)),
                // Another start with this key committed first: it is the run.
                Err(error) if error.kind() == crate::ErrorKind::Conflict && self.store.run(&id)?.is_some() => {}
                Err(error) => return Err(error),
            }
        }
        let (analysis_of_run, loaded, events) = self.load_events(&id, false)?;
        let Some(Event::Started(started)) = events.first() else {
            return Err(Error::Tampered(format!("run `{id}` does not begin with its start")));
        };
        let read = &analysis_of_run;
        let same = (any_version || read.hash() == analysis.hash())
            && started.principal == value::principal_id(&who.id)
            && self.inputs(read, inputs).is_ok_and(|given| started.inputs == given)
            && self.params(read, &options.params).is_ok_and(|given| started.params == given)
            && options.clock.is_some() == started.clock_chosen
            && options.clock.is_none_or(|clock| started.clock == clock);
        if !same {
            return Err(Error::Input(format!(
                "the idempotency key `{key}` was used for another request (run `{id}`: its plan, inputs, params \
                 or clock differ); use a new key for a new run"
            )));
        }
        Ok((self.view(&analysis_of_run, &loaded, Some(who)), false))
    }

    /// Runs a plan in memory, storing nothing: the same engine and the same checks as
    /// [`Runtime::start`], for decisions whose evidence the caller does not keep (backtests,
    /// benchmarks). A run that would wait for people ends `pending`.
    ///
    /// With native code, a plan whose steps are gates that read only its inputs and params,
    /// approval matrices and emits ([`Analysis::decides_straight`]) has its runs decided
    /// straight: the inputs read into the native frame, the gates, matrices and emits
    /// decided by their native code, the view made from what held, with the answer
    /// [`Runtime::evaluate_stepwise`] gives. Anything else goes step by step.
    pub fn evaluate(
        &self,
        analysis: &Arc<Analysis>,
        who: &Principal,
        inputs: &[(String, Json)],
        options: &StartOptions,
    ) -> Result<RunView> {
        if let Some(view) = self.evaluate_straight(analysis, who, inputs, options) {
            return Ok(view);
        }
        self.evaluate_stepwise(analysis, who, inputs, options)
    }

    /// [`Runtime::evaluate`] through the executor, step by step, for every plan: the
    /// reference a straight decision is held to.
    pub fn evaluate_stepwise(
        &self,
        analysis: &Arc<Analysis>,
        who: &Principal,
        inputs: &[(String, Json)],
        options: &StartOptions,
    ) -> Result<RunView> {
        self.new_run(analysis, who, Given::Json(inputs), options, false, (None, None))
    }

    /// The straight decision alone ([`Runtime::evaluate`]): the view of a run of `inputs`
    /// kept in memory when it is decided straight; `None` where it goes step by step.
    pub fn evaluate_straight(
        &self,
        analysis: &Analysis,
        who: &Principal,
        inputs: &[(String, Json)],
        options: &StartOptions,
    ) -> Option<RunView> {
        #[cfg(feature = "jit")]
        return self.straight(analysis, who, crate::straight::Inputs::Json(inputs), options);
        #[cfg(not(feature = "jit"))]
        {
            let _ = (analysis, who, inputs, options);
            None
        }
    }

    /// [`Runtime::evaluate_straight`] of inputs already read against their declared types
    /// ([`Runtime::evaluate_read`]).
    pub fn evaluate_read_straight(
        &self,
        analysis: &Analysis,
        who: &Principal,
        inputs: &[(String, Value)],
        options: &StartOptions,
    ) -> Option<RunView> {
        #[cfg(feature = "jit")]
        return self.straight(analysis, who, crate::straight::Inputs::Read(inputs), options);
        #[cfg(not(feature = "jit"))]
        {
            let _ = (analysis, who, inputs, options);
            None
        }
    }

    /// The view of the run of a case line, `{"inputs": {…}}` (as a backtest gives its
    /// cases), kept in memory and decided straight, its text read into the native frame
    /// without a JSON tree or values in between; `None` where the line is to be read and run
    /// the general way ([`crate::read::case_inputs`] then [`Runtime::evaluate_read`], or
    /// [`crate::value::parse_exact`] then [`Runtime::evaluate`]), which gives the same view
    /// wherever this one gives any.
    pub fn evaluate_case_straight(
        &self,
        analysis: &Analysis,
        who: &Principal,
        line: &str,
        options: &StartOptions,
    ) -> Option<RunView> {
        #[cfg(feature = "jit")]
        return self.straight(analysis, who, crate::straight::Inputs::Line(line), options);
        #[cfg(not(feature = "jit"))]
        {
            let _ = (analysis, who, line, options);
            None
        }
    }

    /// The status of the run of a case line, `{"inputs": {…}}`, decided straight as
    /// [`Runtime::evaluate_case_straight`] decides it, without making its view (no run id,
    /// summary or outputs): what a backtest that keeps no runs counts. `None` where that
    /// gives none.
    pub fn decide_case_straight(
        &self,
        analysis: &Analysis,
        who: &Principal,
        line: &str,
        options: &StartOptions,
    ) -> Option<Status> {
        #[cfg(feature = "jit")]
        return self
            .straight_ending(analysis, who, crate::straight::Inputs::Line(line), options, |_, ending| ending.status());
        #[cfg(not(feature = "jit"))]
        {
            let _ = (analysis, who, line, options);
            None
        }
    }

    /// The view of a run of `inputs` kept in memory and decided straight
    /// ([`crate::straight`]), when it can be.
    #[cfg(feature = "jit")]
    fn straight(
        &self,
        analysis: &Analysis,
        who: &Principal,
        inputs: crate::straight::Inputs<'_>,
        options: &StartOptions,
    ) -> Option<RunView> {
        use crate::straight::Ending;
        self.straight_ending(analysis, who, inputs, options, |who, ending| {
            let body = analysis.body();
            let mut summary = String::with_capacity(64);
            let status = ending.status();
            let (pending, outputs) = match ending {
                Ending::Blocked(gate) => {
                    crate::state::write_blocked(&mut summary, std::iter::once(&body.nodes[gate]));
                    (Vec::new(), BTreeMap::new())
                }
                Ending::Passed(ref waiting, ref emitted) => {
                    let views = if emitted.is_empty() { Vec::new() } else { analysis.views(&who.roles) };
                    let value_of = |name: &str| emitted.iter().find(|(n, _)| n == name).map(|(_, v)| v);
                    let outputs = super::views::outputs(analysis, &views, value_of);
                    if waiting.is_empty() {
                        crate::state::write_completed(&mut summary, body);
                        (Vec::new(), outputs)
                    } else {
                        let waiting = ending.waiting(body);
                        crate::state::write_waiting(&mut summary, &waiting);
                        (super::views::pending(waiting), outputs)
                    }
                }
            };
            // No output is marked: nothing was overridden or degraded in a run just started.
            RunView {
                run: new_run_id(),
                flow: body.flow.name.as_str().to_owned(),
                status,
                summary,
                pending,
                outputs,
                marks: BTreeMap::new(),
                why: Vec::new(),
            }
        })
    }

    /// What `made` makes of how a run of `inputs` kept in memory and decided straight
    /// ([`crate::straight`]) ends, given the principal, when it can be decided so: after the
    /// checks of a start its way (the grant to trigger, the release, the inputs and their
    /// principals).
    #[cfg(feature = "jit")]
    fn straight_ending<T>(
        &self,
        analysis: &Analysis,
        who: &Principal,
        inputs: crate::straight::Inputs<'_>,
        options: &StartOptions,
        made: impl FnOnce(&Principal, crate::straight::Ending<'_>) -> T,
    ) -> Option<T> {
        if self.engine != crate::analysis::Engine::Jit || !options.params.is_empty() {
            return None;
        }
        let (straight, native) = analysis.straight()?;
        let who = who.normalized();
        if !analysis.granted(&who.roles, GrantKind::Trigger, None) || !matches!(self.release_of(analysis), Ok(Ok(_))) {
            return None;
        }
        let clock = options.clock.unwrap_or_else(now);
        let directory = self.directory();
        let known = |id: &str| directory.as_ref().is_none_or(|d| d.contains(id));
        let ending = straight.decide(analysis, native, inputs, (clock, &who.id), &known)?;
        Some(made(&who, ending))
    }

    /// [`Runtime::evaluate`] of inputs already read against their declared types
    /// ([`crate::read::case_inputs`], as a backtest reads its cases), with the same checks
    /// of names and principals.
    pub fn evaluate_read(
        &self,
        analysis: &Arc<Analysis>,
        who: &Principal,
        inputs: Vec<(String, Value)>,
        options: &StartOptions,
    ) -> Result<RunView> {
        if let Some(view) = self.evaluate_read_straight(analysis, who, &inputs, options) {
            return Ok(view);
        }
        self.new_run(analysis, who, Given::Read(inputs), options, false, (None, None))
    }

    /// A new run, stored (`durable`, with its refusal recorded) or not, with a new id or
    /// `id` (a queued case's, so that a case taken twice starts one run: the second start
    /// conflicts).
    pub(super) fn new_run(
        &self,
        analysis: &Arc<Analysis>,
        who: &Principal,
        inputs: Given<'_>,
        options: &StartOptions,
        durable: bool,
        (id, defer): (Option<String>, Option<&mut Vec<Prepared>>),
    ) -> Result<RunView> {
        // Whoever it is, refused or not, is recorded under the id the run would name.
        let who = &who.normalized();
        if !analysis.granted(&who.roles, GrantKind::Trigger, None) {
            let roles = analysis.grantees(GrantKind::Trigger, None);
            let message = format!(
                "{} may not start `{}`: the flow grants `trigger` to {}",
                who.id,
                analysis.body().flow.name,
                if roles.is_empty() { "no role".to_owned() } else { roles.join(", ") }
            );
            return Err(if durable {
                self.refuse(None, who, "trigger", "trigger".to_owned(), message, true)
            } else {
                Error::Refused { grant: "trigger".to_owned(), message, missing: true }
            });
        }
        let mut started = self.started(analysis, who, inputs, options, durable)?;
        if let Some(id) = id {
            started.run = id;
        }
        // In an environment under release control, a run starts only on the plan its flow's
        // last release published there (a run kept in memory too: it calls the same models
        // and systems); a run kept names that release.
        match self.release_of(analysis)? {
            Ok(release) => started.release = release,
            Err(message) if durable => {
                return Err(self.refuse(None, who, "trigger", "release".to_owned(), message, true));
            }
            Err(message) => return Err(Error::Refused { grant: "release".to_owned(), message, missing: true }),
        }
        if durable {
            started.deployment = Some(self.deployment_digest(analysis, &started.environment, started.release.as_ref()));
        }
        if let Some(refusal) = self.start_refusal(analysis, who, &started, options, durable) {
            let (grant, message) = refusal;
            return Err(if durable {
                self.refuse(None, who, "trigger", grant, message, true)
            } else {
                Error::Refused { grant, message, missing: true }
            });
        }
        // A stored run's creation is the time of its first commit, which its first event
        // records.
        let mut loaded = match durable {
            true => {
                let mut loaded = Loaded::new(analysis, started.run.clone(), who.id.clone(), String::new());
                loaded.record(analysis, Event::Started(Box::new(started)));
                loaded
            }
            false => Loaded::in_memory(analysis, started),
        };
        match defer {
            None => self.advance(analysis, &mut loaded)?,
            Some(deferred) => deferred.extend(self.advance_to(analysis, &mut loaded, true)?),
        }
        Ok(self.view_ending(analysis, loaded, Some(who)))
    }

    /// The first event of a run; `durable` when its evidence is kept. A run kept in memory
    /// records no event: its first gives its state only the run's id, principal, clock,
    /// inputs and params (`State::start`) and its log the signing key, so the rest (the
    /// principal's roles, the sources' checks, the inputs' digests, the declassifications)
    /// is left out of it.
    pub(super) fn started(
        &self,
        analysis: &Analysis,
        who: &Principal,
        inputs: Given<'_>,
        options: &StartOptions,
        durable: bool,
    ) -> Result<Started<Value>> {
        let body = analysis.body();
        // Of unlabelled inputs only: the digest of a labelled one would let anyone who may
        // see the run test guesses of it. (Inputs already read come only to runs kept in
        // memory, which keep no digests.)
        let input_digests = match &inputs {
            Given::Json(inputs) if durable => inputs
                .iter()
                .filter(|(name, _)| {
                    analysis.node_labels(name).is_empty()
                        && body.node(name).is_some_and(|node| analysis.type_labels(&node.ty).is_empty())
                })
                .map(|(n, j)| (n.clone(), digest::digest(j)))
                .collect(),
            _ => BTreeMap::new(),
        };
        let values = match inputs {
            Given::Json(inputs) => self.inputs(analysis, inputs)?,
            Given::Read(inputs) => self.inputs_read(analysis, inputs)?,
        };
        let params = self.params(analysis, &options.params)?;
        let clock = options.clock.unwrap_or_else(now);
        let mut sources = Vec::new();
        for node in body.nodes.iter().filter(|_| durable) {
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
        Ok(Started {
            run: new_run_id(),
            plan: analysis.hash().clone(),
            flow: body.flow.name.clone(),
            flow_version: body.flow.version.as_str().into(),
            principal: who.id.clone(),
            roles: if durable { who.roles.clone() } else { Vec::new() },
            authenticated: who.authenticated.clone().filter(|_| durable),
            clock,
            clock_chosen: options.clock.is_some(),
            inputs: values,
            input_digests,
            params,
            sources,
            environment: self.environment(analysis),
            signing_key: self.signing.as_ref().map(evidence::public_key_hex),
            engine: analysis.engine_name(self.engine),
            declassifications: match durable {
                true => analysis
                    .declassifications()
                    .into_iter()
                    .map(|(node, labels, reason)| crate::event::Declassification { node, labels, reason })
                    .collect(),
                false => Vec::new(),
            },
            release: None,
            deployment: None,
        })
    }

    /// Executes a run as far as it goes, holding its lease (renewed meanwhile) while it
    /// executes.
    pub(super) fn advance(&self, analysis: &Analysis, loaded: &mut Loaded) -> Result<()> {
        self.advance_to(analysis, loaded, false).map(|_| ())
    }

    /// [`Runtime::advance`]; with `defer`, its last commit is not stored but returned, for
    /// the caller to store with other runs' in one transaction (commits before an action's
    /// call are stored as they are made, whatever `defer` says).
    pub(super) fn advance_to(&self, analysis: &Analysis, loaded: &mut Loaded, defer: bool) -> Result<Option<Prepared>> {
        self.advance_at(analysis, loaded, defer, None)
    }

    /// [`Runtime::advance_to`], the steps that begin to wait with deadlines counting them
    /// from `opened` (now, when absent: a deadline that fired gives its own instant).
    pub(super) fn advance_at(
        &self,
        analysis: &Analysis,
        loaded: &mut Loaded,
        defer: bool,
        opened: Option<Timestamp>,
    ) -> Result<Option<Prepared>> {
        let model = |m: &flow_ir::plan::Model| self.model_provider(m);
        let system = |s: &str| self.systems.get(s).map(|h| &**h);
        let opened = opened.unwrap_or_else(|| self.now());
        let opened = move |_: &str| Some(opened);
        let retriever = |_: &str, c: &flow_ir::plan::Corpus| self.retriever(c);
        let services = Services {
            model: &model,
            retriever: &retriever,
            system: &system,
            engine: self.engine,
            hold: None,
            opened: &opened,
        };
        let Loaded { state, log } = loaded;
        let mut holds = Vec::new();
        if log.durable {
            // Another execution of this runtime executes the run (another thread decided or
            // resumed it meanwhile): as from another process, this one waits its turn.
            if !self.leases.enter(&self.store, &state.run) {
                return Err(Error::Busy(format!(
                    "run `{}` is executing in this process; try again when it has stopped",
                    state.run
                )));
            }
            holds.push(Held::Run(state.run.clone()));
        }
        // The run's id names it in the action keys it claims, which only a stored run does.
        let run = if log.durable { state.run.clone() } else { String::new() };
        let mut journal =
            RunJournal { runtime: self, analysis, log, run, holds, calling: Vec::new(), released: Vec::new() };
        let advanced = match exec::advance(analysis, state, &services, &mut journal) {
            // A run that claimed an action key commits at once: its claim is renewed only
            // while it executes, and must not run out before its result is stored.
            Ok(()) if defer && !journal.holds.iter().any(|hold| matches!(hold, Held::Action(..))) => {
                journal.prepare(state)
            }
            Ok(()) => journal.flush(state).map(|()| None),
            Err(Interrupted(error)) => Err(error),
        };
        journal.end(advanced.is_err() || state.current_status() == Status::Running);
        advanced
    }

    /// Decides a waiting review, soft gate or approval, and continues the run. The run's
    /// deadlines that passed before now fire first: a decision that comes after a deadline
    /// is taken after it (and refused, and recorded, when the deadline decided the step).
    pub fn decide(&self, run: &str, step: &str, who: &Principal, input: &DecisionInput) -> Result<RunView> {
        let who = &who.normalized();
        let (analysis, mut loaded) = self.load_to_continue(run)?;
        if loaded.state.status.is_final() {
            return Err(Error::Settled(format!(
                "run `{run}` is {}: nothing waits for a decision",
                loaded.state.status.as_str()
            )));
        }
        // Whatever fell due before now happens first; a change by another process meanwhile
        // fails the decision (it is tried again on the run as it is).
        let fired = self.fire_due(&analysis, &mut loaded, self.now(), false)?;
        let ended = loaded.state.halted() || loaded.state.current_status().is_final();
        let decided = decision::decide(&analysis, &loaded.state, step, &who.id, &who.roles, input);
        // A deadline that decided this step, or (having fired just now) ended the run, came
        // first: the decision is too late, and recorded as such.
        let too_late = match &decided {
            Err(Refusal::Settled(_)) => analysis.id(step).and_then(|id| loaded.state.timer(id.index())?.timed_out),
            _ if fired > 0 && ended => loaded.state.timers_timed_out().last().map(|at| **at),
            _ => None,
        };
        if let Some(at) = too_late {
            let message = format!("a deadline decided at {at} before this decision of `{step}` came: it came too late");
            return Err(self.refuse(
                Some((&analysis, &mut loaded)),
                who,
                "decide",
                "before the deadline".to_owned(),
                message,
                false,
            ));
        }
        self.continue_run(&analysis, loaded, who, "decide", decided)
    }

    /// Fires the run's timers due at or before `now`, in order, each at its own instant, and
    /// continues the run after each deadline that decides a step; returns how many fired.
    /// With `partial`, a change by another process after some timers fired returns what
    /// fired (they are stored) rather than the conflict.
    pub(super) fn fire_due(
        &self,
        analysis: &Analysis,
        loaded: &mut Loaded,
        now: Timestamp,
        partial: bool,
    ) -> Result<usize> {
        let mut fired = 0;
        while let Some(due) = crate::timers::next(analysis, &loaded.state) {
            if due.at > now {
                break;
            }
            let Some(event) = crate::timers::event(analysis, &loaded.state, &due) else { break };
            loaded.record(analysis, event);
            match self.advance_at(analysis, loaded, false, Some(due.at)) {
                Ok(_) => fired += 1,
                // Another process changed the run since: what fired before stays fired, and
                // the rest is theirs (or the next tick's).
                Err(error)
                    if partial
                        && fired > 0
                        && matches!(error.kind(), crate::ErrorKind::Conflict | crate::ErrorKind::Busy) =>
                {
                    return Ok(fired);
                }
                Err(error) => return Err(error),
            }
        }
        Ok(fired)
    }

    /// Fires the timers of every run whose next timer is due at or before `now` (reminders,
    /// escalations, deadlines that decide or block), a thousand runs at a time until none is
    /// left, whichever process calls it: a run that another process holds or changed
    /// meanwhile is left to it. A run that does not load (its plan or evidence does not
    /// check) is left as it is and named, and the others' timers still fire; the store
    /// failing stops it.
    pub fn tick(&self, now: Timestamp) -> Result<Tick> {
        let mut tick = Tick::default();
        // Through the due runs in order, a page at a time: a run left as it was (another
        // process's, or one that does not load) is passed, not read again.
        let mut after: Option<(i64, String)> = None;
        loop {
            let due = self.store.due_runs(now.seconds, after.as_ref().map(|(at, run)| (*at, run.as_str())), 1_000)?;
            let Some((last, at)) = due.last().cloned() else { return Ok(tick) };
            after = Some((at, last));
            for (run, _) in due {
                let fired = self
                    .load_to_continue(&run)
                    .and_then(|(analysis, mut loaded)| self.fire_due(&analysis, &mut loaded, now, true));
                match fired {
                    Ok(0) => {}
                    Ok(fired) => tick.fired.push((run, fired)),
                    // Another process fired them, or executes the run: it is theirs.
                    Err(error) if matches!(error.kind(), crate::ErrorKind::Conflict | crate::ErrorKind::Busy) => {}
                    Err(error) if error.kind() == crate::ErrorKind::Store => return Err(error),
                    Err(error) => tick.failed.push((run, error.to_string())),
                }
            }
        }
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
        let who = &who.normalized();
        let (analysis, loaded) = self.load(run, true)?;
        let mut overridden =
            decision::override_gate(&analysis, &loaded.state, gate, &who.id, &who.roles, reason, basis);
        // The language lets a blocking gate be overridden "with a reason code and a basis":
        // the basis is what an auditor reads for why the block did not apply. Required of a
        // new override only: replay takes a recorded one as it was given.
        if overridden.is_ok() && basis.is_none_or(|b| b.trim().is_empty()) {
            overridden = Err(Refusal::Invalid(format!(
                "an override of `{gate}` needs a basis: the text that says why the gate does not apply"
            )));
        }
        self.continue_run(&analysis, loaded, who, "override", overridden.map(|event| vec![event]))
    }

    /// Cancels a run that has not ended, for `who` granted `cancel`, with a reason code and a
    /// basis: nothing of the flow runs after it; what ran stays recorded.
    pub fn cancel(&self, run: &str, who: &Principal, reason: &str, basis: Option<&str>) -> Result<RunView> {
        let who = &who.normalized();
        let (analysis, loaded, events) = self.load_events(run, true)?;
        // A run interrupted while it executed is resumed first (by any process, once its
        // lease runs out): an action it was calling is called again with its key rather than
        // left without an answer in its evidence.
        // (Refusals recorded since it settled change nothing of it.)
        let last = events.iter().rev().find(|e| !matches!(e, Event::Refused { .. } | Event::Migrated(_)));
        if !matches!(last, Some(Event::Settled { .. })) {
            return Err(Error::Busy(format!(
                "run `{run}` was interrupted while it executed: cancel it once it has been resumed (within a lease)"
            )));
        }
        let mut cancelled = decision::cancel(&analysis, &loaded.state, &who.id, &who.roles, reason, basis);
        if cancelled.is_ok() && basis.is_none_or(|b| b.trim().is_empty()) {
            cancelled = Err(Refusal::Invalid(format!(
                "a cancellation of run `{run}` needs a basis: the text that says why the run is withdrawn"
            )));
        }
        self.continue_run(&analysis, loaded, who, "cancel", cancelled.map(|event| vec![event]))
    }

    /// Lets a failed run try its failed step again, for `who` granted `resume`, with a reason
    /// code: an action is called again with its idempotency key (so a system that took the
    /// first call does not repeat its effect), a model is asked again.
    pub fn resume_failed(&self, run: &str, who: &Principal, reason: &str) -> Result<RunView> {
        let who = &who.normalized();
        let (analysis, loaded) = self.load(run, true)?;
        let resumed = decision::resume(&analysis, &loaded.state, &who.id, &who.roles, reason);
        self.continue_run(&analysis, loaded, who, "resume", resumed.map(|event| vec![event]))
    }

    /// Records what a principal's `operation` caused and continues the run, or records why
    /// it was refused.
    pub(super) fn continue_run(
        &self,
        analysis: &Analysis,
        mut loaded: Loaded,
        who: &Principal,
        operation: &str,
        caused: std::result::Result<Vec<Event<Value>>, Refusal>,
    ) -> Result<RunView> {
        match caused {
            Ok(events) => {
                for mut event in events {
                    event.set_authenticated(who.authenticated.as_deref());
                    loaded.record(analysis, event);
                }
                self.advance(analysis, &mut loaded)?;
                self.refresh_shadows(&loaded.state.run).map_err(|error| {
                    error.map_message(|why| {
                        format!(
                            "the decision was recorded, but the shadow runs of run `{}` could not be brought up \
                             to date: {why}",
                            loaded.state.run
                        )
                    })
                })?;
                Ok(self.view(analysis, &loaded, Some(who)))
            }
            Err(Refusal::Invalid(message)) => Err(Error::Decision(message)),
            Err(Refusal::Settled(message)) => Err(Error::Settled(message)),
            Err(Refusal::Access { grant, message }) => {
                Err(self.refuse(Some((analysis, &mut loaded)), who, operation, grant, message, true))
            }
            Err(Refusal::Duties { grant, message }) => {
                Err(self.refuse(Some((analysis, &mut loaded)), who, operation, grant, message, false))
            }
        }
    }
}

impl Runtime {
    /// Resumes every run that a crash interrupted while it executed (the lease of the
    /// process that executed it ran out), one at a time, each claimed so that no other
    /// process resumes it too; returns their ids. A run that cannot be resumed (it does not
    /// load, or fails as it goes on) does not hold up the others: they are resumed, then
    /// the first such error is returned, and the run is left to its lease.
    pub fn resume_interrupted(&self) -> Result<Vec<String>> {
        let mut resumed = Vec::new();
        let mut tried = std::collections::BTreeSet::new();
        let mut first_error = None;
        while let Some(run) = self.store.claim_interrupted(&self.leases.owner, self.leases.ttl_ms())? {
            // Claimed again after it failed in this pass (its lease given up): it stays
            // claimed for a lease, and this pass goes on with the others.
            if !tried.insert(run.clone()) {
                continue;
            }
            let advanced =
                self.load(&run, true).and_then(|(analysis, mut loaded)| self.advance(&analysis, &mut loaded));
            match advanced {
                Ok(()) => resumed.push(run),
                Err(error) if error.kind() == crate::ErrorKind::Store => return Err(error),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(resumed),
        }
    }
}
