//! The engine: a run's state, how each event changes it, and how a run advances through the
//! plan's DAG.
//!
//! **Invariant:** a run's state changes only through [`State::apply`] of an event, both while
//! it executes and when it is rebuilt from the store after a crash, so the two cannot
//! disagree. The executor creates events; the caller records them.

use flow_ir::expr::{Expr, Timestamp};
use flow_ir::plan::{GateLevel, NodeKind, Requirement};
use flow_ir::ty::Ty;
use flow_ir::{NodeId, PlanBody};
use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::Value as Json;
use smol_str::SmolStr;

use crate::analysis::Analysis;
use crate::event::{Decision, Event, Named, Status};
use crate::interp::{self, EvalError, Scope};
use crate::provider::{ActionHandler, ActionRequest, ModelProvider, ModelReply, ModelRequest, ProviderError};
use crate::value::{self, Value};

/// Where a node of a run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    NotRun,
    Done,
    /// Waiting for a decision: a review, a soft gate that held, an approval.
    Waiting,
    /// A blocking gate that held.
    Blocked,
    Failed,
}

/// An approval waiting for approvers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalWait {
    pub row: u32,
    pub requirement: String,
    pub terms: Vec<Requirement>,
    pub excluded: Vec<String>,
    /// Who approved so far, with their roles.
    pub approvals: Vec<(String, Vec<String>)>,
}

/// The state of a run.
#[derive(Clone, Debug)]
pub struct State {
    pub run: String,
    pub principal: String,
    pub clock: Timestamp,
    pub values: Vec<Option<Value>>,
    pub phases: Vec<Phase>,
    pub degraded: Vec<bool>,
    pub overridden: Vec<bool>,
    /// The approvals that wait, by node index (few: no allocation for runs without).
    approvals: Vec<(usize, ApprovalWait)>,
    pub action_attempts: Vec<u32>,
    /// The soft gate that was rejected, and by whom.
    pub rejected: Option<(SmolStr, String)>,
    pub failure: Option<(SmolStr, String)>,
    pub status: Status,
    body_nodes: usize,
}

impl Scope for (&State, &Analysis) {
    fn node(&self, name: &str) -> Option<&Value> {
        let id = self.1.id(name)?;
        self.0.values[id.index()].as_ref()
    }

    fn resolved(&self, expr: &Expr) -> Option<u32> {
        self.1.resolved(expr)
    }

    fn node_at(&self, index: u32) -> Option<&Value> {
        self.0.values.get(index as usize)?.as_ref()
    }

    fn degraded(&self, name: &str) -> bool {
        self.1.id(name).is_some_and(|id| self.0.degraded[id.index()])
    }

    fn clock(&self) -> Timestamp {
        self.0.clock
    }

    fn starter(&self) -> Option<&str> {
        Some(&self.0.principal)
    }
}

/// The record a review gives when it did not run.
fn skipped_review() -> Value {
    Value::Record(vec![
        ("basis".into(), Value::Absent),
        ("outcome".into(), Value::Variant("skipped".into())),
        ("reason".into(), Value::Absent),
        ("reviewer".into(), Value::Absent),
    ])
}

fn set_path(target: &mut Value, path: &[SmolStr], new: Value) -> bool {
    match path.split_first() {
        None => {
            *target = new;
            true
        }
        Some((field, rest)) => target.field_mut(field).is_some_and(|inner| set_path(inner, rest, new)),
    }
}

impl State {
    pub fn new(analysis: &Analysis) -> State {
        let n = analysis.body().nodes.len();
        State {
            run: String::new(),
            principal: String::new(),
            clock: Timestamp { seconds: 0, nanos: 0 },
            values: vec![None; n],
            phases: vec![Phase::NotRun; n],
            degraded: vec![false; n],
            overridden: vec![false; n],
            approvals: Vec::new(),
            action_attempts: vec![0; n],
            rejected: None,
            failure: None,
            status: Status::Running,
            body_nodes: n,
        }
    }

    fn id(&self, analysis: &Analysis, node: &str) -> usize {
        // INVARIANT: events name nodes of the run's plan (checked when they are decoded).
        analysis.id(node).map_or(self.body_nodes, NodeId::index)
    }

    fn done(&mut self, i: usize, value: Value) {
        if i < self.body_nodes {
            self.values[i] = Some(value);
            self.phases[i] = Phase::Done;
        }
    }

    fn phase(&mut self, i: usize, phase: Phase) {
        if i < self.body_nodes {
            self.phases[i] = phase;
        }
    }

    /// What the approval of node index `i` waits for, while it waits.
    pub fn approval(&self, i: usize) -> Option<&ApprovalWait> {
        self.approvals.iter().find(|(node, _)| *node == i).map(|(_, wait)| wait)
    }

    pub fn value(&self, analysis: &Analysis, node: &str) -> Option<&Value> {
        analysis.id(node).and_then(|id| self.values[id.index()].as_ref())
    }

    pub fn phase_of(&self, analysis: &Analysis, node: &str) -> Option<Phase> {
        analysis.id(node).map(|id| self.phases[id.index()])
    }

    /// Changes the state as the event says.
    pub fn apply(&mut self, analysis: &Analysis, event: &Event<Value>) {
        match event {
            Event::Started(started) => {
                self.run = started.run.clone();
                self.principal = started.principal.clone();
                self.clock = started.clock;
                for named in started.inputs.iter().chain(&started.params) {
                    let i = self.id(analysis, &named.name);
                    self.done(i, named.value.clone());
                }
                self.status = Status::Running;
            }
            Event::Evaluated { node, value, .. } | Event::Emitted { node, value, .. } => {
                let i = self.id(analysis, node);
                let value = if matches!(event, Event::Emitted { .. }) { Value::Nothing } else { value.clone() };
                self.done(i, value);
            }
            Event::Gate { node, level, holds, .. } => {
                let i = self.id(analysis, node);
                let phase = match (level, holds) {
                    (_, false) | (GateLevel::Info, true) => Phase::Done,
                    (GateLevel::Soft, true) => Phase::Waiting,
                    (GateLevel::Block, true) if self.overridden.get(i) == Some(&true) => Phase::Done,
                    (GateLevel::Block, true) => Phase::Blocked,
                };
                if phase == Phase::Done {
                    self.done(i, Value::Nothing);
                } else {
                    self.phase(i, phase);
                }
            }
            Event::GateDecided { node, decision } => {
                let i = self.id(analysis, node);
                self.done(i, Value::Nothing);
                if decision.outcome == "reject" {
                    self.rejected = Some((node.clone(), decision.principal.clone()));
                }
            }
            Event::GateOverridden { node, .. } => {
                let i = self.id(analysis, node);
                if i < self.body_nodes {
                    self.overridden[i] = true;
                }
                self.done(i, Value::Nothing);
            }
            Event::ModelCalled { .. } | Event::Refused { .. } => {}
            Event::Inferred { node, value, degraded, .. } => {
                let i = self.id(analysis, node);
                if i < self.body_nodes {
                    self.degraded[i] = *degraded;
                }
                self.done(i, value.clone());
            }
            Event::ReviewSkipped { node, .. } => {
                let i = self.id(analysis, node);
                self.done(i, skipped_review());
            }
            Event::ReviewOpened { node, .. } | Event::ApprovalRequired { node, .. } => {
                let i = self.id(analysis, node);
                self.phase(i, Phase::Waiting);
                if let Event::ApprovalRequired { row, requirement, terms, excluded, .. } = event
                    && i < self.body_nodes
                {
                    self.approvals.retain(|(node, _)| *node != i);
                    self.approvals.push((
                        i,
                        ApprovalWait {
                            row: *row,
                            requirement: requirement.clone(),
                            terms: terms.clone(),
                            excluded: excluded.clone(),
                            approvals: Vec::new(),
                        },
                    ));
                }
            }
            Event::ReviewDecided { node, decision, edits } => {
                let i = self.id(analysis, node);
                let text = |t: &Option<String>| t.clone().map_or(Value::Absent, Value::Text);
                let record = Value::Record(vec![
                    ("basis".into(), text(&decision.basis)),
                    ("outcome".into(), Value::Variant(decision.outcome.as_str().into())),
                    ("reason".into(), decision.reason.clone().map_or(Value::Absent, |r| Value::Variant(r.into()))),
                    ("reviewer".into(), Value::Principal(decision.principal.as_str().into())),
                ]);
                self.done(i, record);
                for edit in edits {
                    let mut parts = edit.field.split('.').map(SmolStr::new);
                    let Some(target) = parts.next() else { continue };
                    let path: Vec<SmolStr> = parts.collect();
                    let t = self.id(analysis, &target);
                    if let Some(Some(value)) = self.values.get_mut(t) {
                        set_path(value, &path, edit.after.clone());
                    }
                }
            }
            Event::ApprovalDecided { node, decision } => {
                let i = self.id(analysis, node);
                if decision.outcome == "approve"
                    && let Some(wait) = self.approvals.iter_mut().find(|(node, _)| *node == i).map(|(_, w)| w)
                {
                    wait.approvals.push((decision.principal.clone(), decision.roles.clone()));
                }
            }
            Event::ApprovalCompleted { node, approved, approvers, requirement, .. } => {
                let i = self.id(analysis, node);
                let record = Value::Record(vec![
                    ("approved".into(), Value::Bool(*approved)),
                    ("approvers".into(), Value::List(approvers.iter().map(|p| Value::Principal(p.into())).collect())),
                    ("requirement".into(), Value::Text(requirement.clone())),
                ]);
                self.done(i, record);
            }
            Event::ActionSkipped { node, .. } => {
                let i = self.id(analysis, node);
                let nothing = analysis.id(node).is_some_and(|id| analysis.plan.node(id).ty == Ty::Nothing);
                self.done(i, if nothing { Value::Nothing } else { Value::Absent });
            }
            Event::ActionStarted { node, .. } => {
                let i = self.id(analysis, node);
                if let Some(attempts) = self.action_attempts.get_mut(i) {
                    *attempts += 1;
                }
            }
            Event::ActionCompleted { node, result, .. } => {
                let i = self.id(analysis, node);
                self.done(i, result.clone());
            }
            Event::Failed { node, error, .. } => {
                let i = self.id(analysis, node);
                self.phase(i, Phase::Failed);
                self.failure = Some((node.clone(), error.clone()));
            }
            Event::Settled { status, .. } => self.status = *status,
        }
    }

    /// Whether the run can go no further now: a soft gate rejected it, a step failed, or a
    /// blocking gate holds (until it is overridden).
    pub fn halted(&self) -> bool {
        self.failure.is_some() || self.rejected.is_some() || self.phases.contains(&Phase::Blocked)
    }

    /// How the run stands now.
    pub fn current_status(&self) -> Status {
        if self.failure.is_some() {
            Status::Failed
        } else if self.rejected.is_some() {
            Status::Rejected
        } else if self.phases.contains(&Phase::Blocked) {
            Status::Blocked
        } else if self.phases.contains(&Phase::Waiting) {
            Status::Pending
        } else if self.phases.iter().all(|p| *p == Phase::Done) {
            Status::Completed
        } else {
            Status::Running
        }
    }
}

/// What the executor needs from its caller: recording events durably, and earlier action
/// results.
pub trait Journal {
    fn record(&mut self, event: Event<Value>);
    /// Makes every recorded event durable (before an action's handler is called).
    fn flush(&mut self, state: &State) -> Result<(), String>;
    /// Whether the events are kept as evidence; when not (a run evaluated in memory), the
    /// executor leaves out what only evidence needs (the operands of conditions).
    fn keeps_evidence(&self) -> bool {
        true
    }
    /// The result an earlier call of `system` with this idempotency key gave, checked
    /// against the evidence of the run that recorded it.
    fn action_result(&mut self, step: &str, system: &str, key: &str) -> Result<Option<Earlier>, String>;
}

/// A result an action's handler gave earlier for an idempotency key.
pub struct Earlier {
    pub result: Json,
    /// The request it answers: a key answers only the request it was used for.
    pub request: Request,
}

/// The request an earlier result of an idempotency key answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Not known (a result recorded as reused, whose request was checked then).
    Unknown,
    /// The digest of the flow, the action and the arguments ([`call_digest`]).
    Digest(String),
    /// Another request than this call's (a recorded run's conflict, replayed).
    Another,
}

/// The providers and handlers a run may call.
pub struct Services<'a> {
    pub model: &'a dyn Fn(&flow_ir::plan::Model) -> Option<&'a dyn ModelProvider>,
    pub system: &'a dyn Fn(&str) -> Option<&'a dyn ActionHandler>,
    /// What evaluates expressions.
    pub engine: crate::analysis::Engine,
    /// Steps the caller keeps from executing now: they stay not run, and so does what
    /// depends on them (a what-if replay holds a model whose request changed, and an action
    /// that would run other than it did). `None` holds nothing.
    pub hold: Option<&'a Hold<'a>>,
}

/// Whether to hold a step: asked with the step's name and what it is about to ask.
pub type Hold<'a> = dyn Fn(&SmolStr, Held<'_>) -> bool + 'a;

/// A step that is about to call outside, as [`Services::hold`] is asked about it.
pub enum Held<'r> {
    Model(&'r ModelRequest<'r>),
    Action(&'r ActionRequest<'r>),
}

impl Services<'_> {
    fn holds(&self, node: &SmolStr, step: Held<'_>) -> bool {
        self.hold.is_some_and(|hold| hold(node, step))
    }
}

/// Why advancing stopped without a settled run: the store failed.
#[derive(Debug)]
pub struct Interrupted(pub String);

struct Exec<'a, 'j> {
    analysis: &'a Analysis,
    state: &'a mut State,
    journal: &'j mut dyn Journal,
    /// Answers of models called ahead, together with the one being executed, by step.
    prefetched: FxHashMap<SmolStr, (Result<ModelReply, ProviderError>, u64)>,
    /// Steps the caller held in this advance ([`Services::hold`]).
    held: Vec<NodeId>,
    /// The plan's native code and the run's values laid out for it, when it runs natively.
    #[cfg(feature = "jit")]
    native: Option<(&'a crate::jit::Native, crate::jit::Frame)>,
}

/// Runs `f`, with how long it took in microseconds.
fn timed<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let started = std::time::Instant::now();
    let value = f();
    (value, started.elapsed().as_micros() as u64)
}

/// Calls at the same time the models of `step` and of every other `infer` step that is
/// ready to run now (all it waits for is done): they do not depend on each other, and
/// model calls are what makes a run slow. The answers wait in `exec.prefetched` until each
/// step executes, in the plan's order, so events stay in that order.
fn call_ready_models(exec: &mut Exec<'_, '_>, step: &SmolStr, services: &Services<'_>) {
    let analysis = exec.analysis;
    let body = analysis.body();
    let mut calls = Vec::new();
    for &id in analysis.plan.order() {
        let node = analysis.plan.node(id);
        let NodeKind::Infer { model, args, .. } = &node.kind else { continue };
        // Only steps the gates allow now, as the step being executed is.
        let allowed = node.name == *step || next_step(exec, Some(id)).is_some();
        if !allowed || exec.prefetched.contains_key(&node.name) {
            continue;
        }
        let (Some(model), Ok(args)) = (body.model(model), exec.named_args(args)) else { continue };
        let Some(provider) = (services.model)(model) else { continue };
        let request = ModelRequest {
            step: &node.name,
            model,
            prompt: model.prompt.as_ref().map(|p| p.text.as_str()),
            input: args_json(&args),
        };
        if services.holds(&node.name, Held::Model(&request)) {
            continue;
        }
        calls.push((node.name.clone(), provider, request));
    }
    if calls.len() < 2 {
        // Only `step` itself: its caller calls it.
        return;
    }
    let answers: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = calls
            .iter()
            .map(|(name, provider, request)| (name, scope.spawn(move || timed(|| provider.infer(request)))))
            .collect();
        handles
            .into_iter()
            .map(|(name, handle)| {
                let answer = handle.join().unwrap_or_else(|_| {
                    (Err(ProviderError { message: "the provider panicked".to_owned(), attempts: 1 }), 0)
                });
                (name.clone(), answer)
            })
            .collect()
    });
    exec.prefetched.extend(answers);
    debug_assert!(exec.prefetched.contains_key(step));
}

impl<'a, 'j> Exec<'a, 'j> {
    fn new(
        analysis: &'a Analysis,
        state: &'a mut State,
        journal: &'j mut dyn Journal,
        services: &Services<'_>,
    ) -> Self {
        #[cfg(feature = "jit")]
        let native = match services.engine {
            crate::analysis::Engine::Jit => analysis.native().ok().map(|native| {
                let frame = native.frame(&state.values, &state.degraded, state.clock);
                (native, frame)
            }),
            crate::analysis::Engine::Interpreter => None,
        };
        #[cfg(not(feature = "jit"))]
        let _ = services;
        Exec {
            analysis,
            state,
            journal,
            prefetched: FxHashMap::default(),
            held: Vec::new(),
            #[cfg(feature = "jit")]
            native,
        }
    }

    /// Whether node `id` can run: it has not, is not held, and everything it waits for is
    /// done.
    fn ready(&self, id: NodeId) -> bool {
        self.state.phases[id.index()] == Phase::NotRun
            && !self.held.contains(&id)
            && self.analysis.plan.predecessors(id).iter().all(|(p, _)| self.state.phases[p.index()] == Phase::Done)
    }

    fn emit(&mut self, event: Event<Value>) {
        self.state.apply(self.analysis, &event);
        self.journal.record(event);
    }

    /// Lays out node `i`'s value (and degraded flag) for native code, after its step: a step's
    /// events are about its own node.
    fn executed(&mut self, i: usize) {
        #[cfg(feature = "jit")]
        if let Some((native, frame)) = &mut self.native {
            native.sync(frame, i, &self.state.values, &self.state.degraded);
        }
        #[cfg(not(feature = "jit"))]
        let _ = i;
    }

    fn eval(&self, expr: &Expr) -> Result<Value, EvalError> {
        let scope = (&*self.state, self.analysis);
        #[cfg(feature = "jit")]
        if let Some((native, frame)) = &self.native
            && let Some(result) = native.eval(expr, &scope, frame)
        {
            return result;
        }
        interp::eval(self.analysis.body(), &scope, expr)
    }

    /// Whether a condition holds.
    fn test(&self, condition: &Expr) -> Result<bool, EvalError> {
        #[cfg(feature = "jit")]
        if let Some((native, frame)) = &self.native
            && let Some(result) = native.test(condition, &(&*self.state, self.analysis), frame)
        {
            return result;
        }
        Ok(self.eval(condition)?.as_bool().unwrap_or(false))
    }

    /// The first row of approval step `id`'s matrix that holds.
    fn matrix(&self, id: NodeId, rows: &[flow_ir::plan::Row]) -> Result<Option<usize>, EvalError> {
        #[cfg(feature = "jit")]
        if let Some((native, frame)) = &self.native
            && let Some(result) = native.matrix(id.0, &(&*self.state, self.analysis), frame)
        {
            return result;
        }
        let _ = id;
        for (r, row) in rows.iter().enumerate() {
            let holds = match &row.condition {
                None => true,
                Some(condition) => self.test(condition)?,
            };
            if holds {
                return Ok(Some(r));
            }
        }
        Ok(None)
    }

    fn operands(&self, node: &str) -> Vec<Named<Value>> {
        if !self.journal.keeps_evidence() {
            return Vec::new();
        }
        let scope = (&*self.state, self.analysis);
        self.analysis
            .operands(node)
            .iter()
            .map(|op| Named {
                name: op.place.as_str().into(),
                value: match &op.fact {
                    Some(fact) => interp::eval(self.analysis.body(), &scope, fact).unwrap_or(Value::Absent),
                    None => op.value(scope.node(&op.node)).cloned().unwrap_or(Value::Absent),
                },
            })
            .collect()
    }

    fn fail(&mut self, node: &SmolStr, failure: impl Into<Failure>) {
        let Failure { error, detail } = failure.into();
        self.emit(Event::Failed {
            node: node.clone(),
            error,
            detail: detail.map(Value::Text),
            returned: None,
            key_taken: false,
        });
    }

    fn named_args(&self, args: &[flow_ir::expr::Named]) -> Result<Vec<Named<Value>>, EvalError> {
        args.iter().map(|a| Ok(Named { name: a.name.clone(), value: self.eval(&a.value)? })).collect()
    }
}

/// Why a step failed: what failed, without values, and the failure with the values it
/// involved or as a model or system told it (recorded labelled: [`crate::event::Slot::Failure`]).
struct Failure {
    error: String,
    detail: Option<String>,
}

impl From<EvalError> for Failure {
    fn from(error: EvalError) -> Failure {
        Failure { detail: error.detail(), error: error.to_string() }
    }
}

impl From<String> for Failure {
    fn from(error: String) -> Failure {
        Failure { error, detail: None }
    }
}

impl From<&str> for Failure {
    fn from(error: &str) -> Failure {
        Failure { error: error.to_owned(), detail: None }
    }
}

/// The digest of a request to a system: the flow, the action called and its arguments as
/// values (an amount written `100.00 USD` is the amount `100 USD`, so a key answers the
/// same request however its amounts are written). A key's recorded result answers only the
/// request it was recorded for: another flow's, or another action's with the same key and
/// arguments, is another request.
pub(crate) fn call_digest(flow: &str, action: &str, args: &[Named<Value>]) -> String {
    fn normal(value: &Value) -> Value {
        match value {
            Value::Money(m) => {
                Value::Money(flow_ir::expr::Money { amount: m.amount.normalize(), currency: m.currency })
            }
            Value::Decimal(d) => Value::Decimal(d.normalize()),
            Value::List(items) => Value::List(items.iter().map(normal).collect()),
            Value::Record(fields) => Value::Record(fields.iter().map(|(n, v)| (n.clone(), normal(v))).collect()),
            other => other.clone(),
        }
    }
    let normalized: Vec<Named<Value>> =
        args.iter().map(|a| Named { name: a.name.clone(), value: normal(&a.value) }).collect();
    crate::digest::digest(&serde_json::json!({"flow": flow, "action": action, "args": args_json(&normalized)}))
}

pub(crate) fn args_json(args: &[Named<Value>]) -> Json {
    Json::Object(args.iter().map(|a| (a.name.to_string(), a.value.to_json())).collect())
}

/// The requirement of an approval row, as people read it: `1 of manager, 1 of finance_director`.
pub fn requirement_text(terms: &[Requirement]) -> String {
    terms
        .iter()
        .map(|t| match t {
            Requirement::Auto => "auto".to_owned(),
            Requirement::Count { count, role } => format!("{count} of {role}"),
            Requirement::AllOf(roles) => format!("all of {}", roles.join(", ")),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The roles of the slots of an approval requirement: one per approver needed.
pub fn slots(terms: &[Requirement]) -> Vec<SmolStr> {
    let mut out = Vec::new();
    for term in terms {
        match term {
            Requirement::Auto => {}
            Requirement::Count { count, role } => out.extend(std::iter::repeat_n(role.clone(), *count as usize)),
            Requirement::AllOf(roles) => out.extend(roles.iter().cloned()),
        }
    }
    out
}

/// The most slots that distinct approvers can fill (each approver fills at most one slot of
/// a role they hold): a bipartite matching by augmenting paths.
pub fn matched(body: &PlanBody, slots: &[SmolStr], approvers: &[(String, Vec<String>)]) -> (usize, Vec<Option<usize>>) {
    fn augment(
        body: &PlanBody,
        a: usize,
        slots: &[SmolStr],
        approvers: &[(String, Vec<String>)],
        slot_of: &mut [Option<usize>],
        seen: &mut [bool],
    ) -> bool {
        for (s, role) in slots.iter().enumerate() {
            if seen[s] || !crate::analysis::holds(body, &approvers[a].1, role) {
                continue;
            }
            seen[s] = true;
            if slot_of[s].is_none_or(|other| augment(body, other, slots, approvers, slot_of, seen)) {
                slot_of[s] = Some(a);
                return true;
            }
        }
        false
    }
    let mut slot_of = vec![None; slots.len()];
    let mut count = 0;
    for a in 0..approvers.len() {
        let mut seen = vec![false; slots.len()];
        if augment(body, a, slots, approvers, &mut slot_of, &mut seen) {
            count += 1;
        }
    }
    (count, slot_of)
}

/// The terms of an approval still unmet, as text: `1 of finance_director`.
pub fn outstanding(body: &PlanBody, wait: &ApprovalWait) -> Vec<(SmolStr, usize)> {
    let slots = slots(&wait.terms);
    let (_, slot_of) = matched(body, &slots, &wait.approvals);
    let mut out: Vec<(SmolStr, usize)> = Vec::new();
    for (s, role) in slots.iter().enumerate() {
        if slot_of[s].is_none() {
            match out.iter_mut().find(|(r, _)| r == role) {
                Some((_, n)) => *n += 1,
                None => out.push((role.clone(), 1)),
            }
        }
    }
    out
}

/// Executes every node that can run, in the plan's order, and records how the run stands.
pub fn advance(
    analysis: &Analysis,
    state: &mut State,
    services: &Services<'_>,
    journal: &mut dyn Journal,
) -> Result<(), Interrupted> {
    if state.status.is_final() {
        return Ok(());
    }
    let mut exec = Exec::new(analysis, state, journal, services);
    // A run that a soft gate's rejection or a failure ended goes no further, and one that a
    // blocking gate stopped goes no further until the gate is overridden, even when a
    // decision arrives for another step meanwhile.
    if !exec.state.halted() {
        run_steps(&mut exec, services)?;
    }
    let status = exec.state.current_status();
    let summary = if exec.journal.keeps_evidence() { summary(analysis, exec.state, status) } else { String::new() };
    exec.emit(Event::Settled { status, summary });
    Ok(())
}

/// Whether a node is a rule: an input, a param, a `let` or a gate, which the run computes
/// itself, as opposed to a step that calls a model, asks people or has an effect.
fn is_rule(kind: &NodeKind) -> bool {
    matches!(kind, NodeKind::Input { .. } | NodeKind::Param { .. } | NodeKind::Let { .. } | NodeKind::Gate { .. })
}

/// Executes the steps that can run, rules first: every rule as soon as what it reads is
/// there, and a model call, human step or effect only when the gates allow it
/// ([`next_step`]), one at a time, so that a gate it enables is evaluated before the next.
fn run_steps(exec: &mut Exec<'_, '_>, services: &Services<'_>) -> Result<(), Interrupted> {
    let analysis = exec.analysis;
    loop {
        for &id in analysis.plan.order() {
            if is_rule(&analysis.plan.node(id).kind) && exec.ready(id) {
                step(exec, id, services)?;
                exec.executed(id.index());
                if exec.state.halted() {
                    return Ok(());
                }
            }
        }
        let Some(id) = next_step(exec, None) else { return Ok(()) };
        step(exec, id, services)?;
        exec.executed(id.index());
        if exec.state.halted() {
            return Ok(());
        }
        if exec.state.phases[id.index()] == Phase::NotRun {
            // The caller holds it (`Services::hold`): it stays not run, as does what
            // depends on it.
            exec.held.push(id);
        }
    }
}

/// The next model call, human step or effect the gates allow, in the plan's order (with
/// `only`, whether that step is allowed). Every gate passes first: a step runs once every
/// gate has been evaluated and none waits for its decision, or where it feeds every gate
/// not yet evaluated (those gates need it); otherwise, only where it feeds some gate not
/// yet evaluated, which cannot be evaluated without it. A step that feeds no gate thus
/// waits until every gate has passed (or was approved or overridden), so a gate that
/// blocks or is rejected stops it.
fn next_step(exec: &Exec<'_, '_>, only: Option<NodeId>) -> Option<NodeId> {
    let analysis = exec.analysis;
    let phases = &exec.state.phases;
    let mut open = Vec::new();
    let mut deciding = false;
    for (g, gate) in analysis.gates().enumerate() {
        match phases[gate] {
            Phase::Waiting => deciding = true,
            Phase::NotRun => open.push(g),
            _ => {}
        }
    }
    let ready = |id: &NodeId| !is_rule(&analysis.plan.node(*id).kind) && exec.ready(*id);
    let candidates = || analysis.plan.order().iter().filter(|id| only.is_none_or(|o| o == **id)).filter(|id| ready(id));
    if !deciding && let Some(id) = candidates().find(|id| open.iter().all(|&g| analysis.feeds(id.index(), g))) {
        return Some(*id);
    }
    if only.is_some() {
        // Asked ahead (a model call made at the same time as another): only where it is
        // allowed without the exception below.
        return None;
    }
    candidates().find(|id| open.iter().any(|&g| analysis.feeds(id.index(), g))).copied()
}

/// One line on how the run stands, without values (they may be labelled).
pub fn summary(analysis: &Analysis, state: &State, status: Status) -> String {
    let body = analysis.body();
    match status {
        Status::Failed => match &state.failure {
            Some((node, error)) => format!("step `{node}` failed: {error}"),
            None => "failed".to_owned(),
        },
        Status::Rejected => match &state.rejected {
            Some((gate, by)) => format!("gate `{gate}` was rejected by {by}"),
            None => "rejected".to_owned(),
        },
        Status::Blocked => {
            let gates: Vec<String> = body
                .nodes
                .iter()
                .enumerate()
                .filter(|(i, _)| state.phases[*i] == Phase::Blocked)
                .map(|(_, n)| match &n.kind {
                    NodeKind::Gate { message: Some(m), .. } => format!("gate `{}`: {m}", n.name),
                    _ => format!("gate `{}`", n.name),
                })
                .collect();
            format!("blocked by {}", gates.join("; "))
        }
        Status::Pending => {
            let steps: Vec<String> =
                waiting(analysis, state).into_iter().map(|w| format!("`{}` ({})", w.0, w.2.join(", "))).collect();
            format!("waiting for {}", steps.join(", "))
        }
        Status::Completed => {
            let outputs: Vec<&str> = body.outputs.iter().map(|o| o.name.as_str()).collect();
            format!("completed; emitted {}", outputs.join(", "))
        }
        Status::Running => "running".to_owned(),
    }
}

/// The steps waiting for a decision: name, kind (`review`, `gate`, `approval`) and the roles
/// that may decide now.
pub fn waiting(analysis: &Analysis, state: &State) -> Vec<(SmolStr, &'static str, Vec<String>)> {
    let body = analysis.body();
    let mut out = Vec::new();
    // A run that is halted waits for no decision: it ended, or only an override moves it.
    if state.halted() {
        return out;
    }
    for (i, node) in body.nodes.iter().enumerate() {
        if state.phases[i] != Phase::Waiting {
            continue;
        }
        let (kind, roles): (&str, Vec<String>) = match &node.kind {
            NodeKind::Review { roles, .. } => ("review", roles.iter().map(|r| r.to_string()).collect()),
            NodeKind::Gate { approvers, .. } => ("gate", approvers.iter().map(|r| r.to_string()).collect()),
            NodeKind::Approval { .. } => {
                let roles = state
                    .approval(i)
                    .map(|w| outstanding(body, w).into_iter().map(|(r, _)| r.to_string()).collect())
                    .unwrap_or_default();
                ("approval", roles)
            }
            _ => continue,
        };
        out.push((node.name.clone(), kind, roles));
    }
    out
}

fn step(exec: &mut Exec<'_, '_>, id: NodeId, services: &Services<'_>) -> Result<(), Interrupted> {
    let analysis = exec.analysis;
    let node = analysis.plan.node(id);
    let name = &node.name;
    match &node.kind {
        // Given when the run starts.
        NodeKind::Input { .. } | NodeKind::Param { .. } => {}
        NodeKind::Let { value } => match exec.eval(value) {
            Ok(value) => {
                let operands = exec.operands(name);
                exec.emit(Event::Evaluated { node: name.clone(), value, operands });
            }
            Err(error) => exec.fail(name, error),
        },
        NodeKind::Gate { level, condition, .. } => match exec.test(condition) {
            Ok(holds) => {
                let operands = exec.operands(name);
                exec.emit(Event::Gate { node: name.clone(), level: *level, holds, operands });
            }
            Err(error) => exec.fail(name, error),
        },
        NodeKind::Infer { model, args, fallback } => infer(exec, name, model, args, fallback.as_ref(), services),
        NodeKind::Review { roles, condition, .. } => {
            let holds = match condition.as_ref().map(|c| exec.test(c)) {
                None => true,
                Some(Ok(holds)) => holds,
                Some(Err(error)) => {
                    exec.fail(name, error);
                    return Ok(());
                }
            };
            let operands = exec.operands(name);
            if holds {
                exec.emit(Event::ReviewOpened { node: name.clone(), roles: roles.clone(), operands });
            } else {
                exec.emit(Event::ReviewSkipped { node: name.clone(), operands });
            }
        }
        NodeKind::Approval { rows, distinct_from } => {
            let chosen = match exec.matrix(id, rows) {
                Ok(chosen) => chosen.and_then(|r| Some((r, rows.get(r)?))),
                Err(error) => {
                    exec.fail(name, error);
                    return Ok(());
                }
            };
            let Some((r, row)) = chosen else {
                // The compiler proved matrices exhaustive; a plan that is not fails its step.
                exec.fail(name, "no row of the approval matrix applies");
                return Ok(());
            };
            let requirement = requirement_text(&row.requirement);
            let row_number = r as u32 + 1;
            if slots(&row.requirement).is_empty() {
                exec.emit(Event::ApprovalCompleted {
                    node: name.clone(),
                    row: row_number,
                    approved: true,
                    approvers: Vec::new(),
                    requirement,
                });
                return Ok(());
            }
            let mut excluded = Vec::new();
            for expr in distinct_from {
                match exec.eval(expr) {
                    Ok(Value::Principal(p)) => excluded.push(p.to_string()),
                    Ok(Value::List(items)) => excluded.extend(items.into_iter().filter_map(|v| match v {
                        Value::Principal(p) => Some(p.to_string()),
                        _ => None,
                    })),
                    Ok(_) => {}
                    Err(error) => {
                        exec.fail(name, error);
                        return Ok(());
                    }
                }
            }
            excluded.sort();
            excluded.dedup();
            let operands = exec.operands(name);
            exec.emit(Event::ApprovalRequired {
                node: name.clone(),
                row: row_number,
                requirement,
                terms: row.requirement.clone(),
                operands,
                excluded,
            });
        }
        NodeKind::Action { system, action, args, condition, idempotency } => {
            return act(exec, id, system, action, args, condition.as_ref(), idempotency.as_ref(), services);
        }
        NodeKind::Emit { value } => match exec.eval(value) {
            Ok(value) => {
                let marks = marks(analysis, exec.state, id);
                exec.emit(Event::Emitted { node: name.clone(), value, marks });
            }
            Err(error) => exec.fail(name, error),
        },
    }
    Ok(())
}

/// What an output carries besides its value: the gates overridden before it and the
/// degraded steps it depends on.
fn marks(analysis: &Analysis, state: &State, emit: NodeId) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen = vec![false; state.phases.len()];
    let mut stack = vec![emit];
    while let Some(id) = stack.pop() {
        for &(p, _) in analysis.plan.predecessors(id) {
            if !std::mem::replace(&mut seen[p.index()], true) {
                stack.push(p);
            }
        }
    }
    for (i, node) in analysis.body().nodes.iter().enumerate() {
        if seen[i] && state.overridden[i] {
            out.push(format!("overridden: {}", node.name));
        }
        if seen[i] && state.degraded[i] {
            out.push(format!("degraded: {}", node.name));
        }
    }
    out
}

fn infer(
    exec: &mut Exec<'_, '_>,
    name: &SmolStr,
    model_name: &SmolStr,
    args: &[flow_ir::expr::Named],
    fallback: Option<&Expr>,
    services: &Services<'_>,
) {
    let analysis = exec.analysis;
    let body = analysis.body();
    let Some(model) = body.model(model_name) else { return exec.fail(name, format!("no model `{model_name}`")) };
    let args = match exec.named_args(args) {
        Ok(args) => args,
        Err(error) => return exec.fail(name, error),
    };
    // What went wrong with the model, as it may be told to everyone, and in full (which
    // may repeat what the provider was sent or answered: recorded labelled).
    let (failed, failure) = match (services.model)(model) {
        None => {
            let text = format!(
                "no provider is configured for model `{model_name}` (provider \"{}\"); configure `[models.{model_name}]`",
                model.provider
            );
            (text.clone(), text)
        }
        Some(provider) => {
            let request = ModelRequest {
                step: name,
                model,
                prompt: model.prompt.as_ref().map(|p| p.text.as_str()),
                input: args_json(&args),
            };
            if services.holds(name, Held::Model(&request)) {
                return;
            }
            let request_digest = crate::digest::digest(&request.to_json());
            let (reply, latency_us) = match exec.prefetched.remove(name) {
                Some(answer) => answer,
                None => {
                    call_ready_models(exec, name, services);
                    exec.prefetched.remove(name).unwrap_or_else(|| timed(|| provider.infer(&request)))
                }
            };
            let (output, response_digest, attempts, error) = match reply {
                Ok(reply) => {
                    let digest = crate::digest::digest(&reply.output);
                    match value::decode(body, &reply.output, &model.output, "$") {
                        Ok(value) => (Some(value), Some(digest), reply.attempts, None),
                        Err(error) => (
                            None,
                            Some(digest),
                            reply.attempts,
                            Some(format!("the output does not fit `{}`: {error}", model.output)),
                        ),
                    }
                }
                Err(error) => (None, None, error.attempts, Some(error.message)),
            };
            exec.emit(Event::ModelCalled {
                node: name.clone(),
                model: model.name.clone(),
                provider: provider.describe(),
                model_name: model.model_name.clone(),
                version: model.version.clone(),
                digest: model.digest.clone(),
                prompt_hash: model.prompt.as_ref().map(|p| p.hash.clone()),
                request_digest: Value::Text(request_digest),
                response_digest: response_digest.map(Value::Text),
                latency_us,
                attempts,
                error: error.clone().map(Value::Text),
                args,
            });
            match output {
                Some(value) => {
                    exec.emit(Event::Inferred { node: name.clone(), value, degraded: false, reason: None });
                    return;
                }
                None => (format!("model `{model_name}` failed"), error.unwrap_or_default()),
            }
        }
    };
    match fallback {
        Some(fallback) => match exec.eval(fallback) {
            Ok(value) => exec.emit(Event::Inferred {
                node: name.clone(),
                value,
                degraded: true,
                reason: Some(Value::Text(failure)),
            }),
            Err(error) => {
                let detail = error.detail().unwrap_or_else(|| error.to_string());
                exec.fail(
                    name,
                    Failure {
                        error: format!("{failed}; and its fallback failed: {error}"),
                        detail: Some(format!("{failure}; and its fallback failed: {detail}")),
                    },
                )
            }
        },
        None => exec.fail(
            name,
            Failure {
                error: format!("{failed}; and the step has no fallback"),
                detail: Some(format!("{failure}; and the step has no fallback")),
            },
        ),
    }
}

#[expect(clippy::too_many_arguments, reason = "the parts of an action node")]
fn act(
    exec: &mut Exec<'_, '_>,
    id: NodeId,
    system: &SmolStr,
    action: &SmolStr,
    args: &[flow_ir::expr::Named],
    condition: Option<&Expr>,
    idempotency: Option<&Expr>,
    services: &Services<'_>,
) -> Result<(), Interrupted> {
    let analysis = exec.analysis;
    let node = analysis.plan.node(id);
    let name = &node.name;
    if let Some(condition) = condition {
        match exec.test(condition) {
            Ok(true) => {}
            Ok(false) => {
                let operands = exec.operands(name);
                exec.emit(Event::ActionSkipped { node: name.clone(), operands });
                return Ok(());
            }
            Err(error) => {
                exec.fail(name, error);
                return Ok(());
            }
        }
    }
    let args = match exec.named_args(args) {
        Ok(args) => args,
        Err(error) => {
            exec.fail(name, error);
            return Ok(());
        }
    };
    let key = match idempotency.map(|k| exec.eval(k)) {
        Some(Ok(key)) => format!("{}/{}", name, key),
        Some(Err(error)) => {
            exec.fail(name, error);
            return Ok(());
        }
        None => format!("{}/{}", exec.state.run, name),
    };
    let result_ty = node.ty.unwrap_optional().clone();
    let decode = |json: &Json| value::decode(analysis.body(), json, &result_ty, "$");
    let request_args = args_json(&args);
    if let Some(earlier) = exec.journal.action_result(name, system, &key).map_err(Interrupted)? {
        let digest = call_digest(&analysis.body().flow.name, action, &args);
        let another = match &earlier.request {
            Request::Unknown => false,
            Request::Digest(recorded) => *recorded != digest,
            Request::Another => true,
        };
        match decode(&earlier.result) {
            // Which request the key answered is not said: its digest would let whoever
            // sees this run confirm a guess of what another run sent.
            _ if another => exec.emit(Event::Failed {
                node: name.clone(),
                detail: None,
                error: format!(
                    "idempotency key `{key}` of system `{system}` was used for another request (another flow, \
                     action or arguments): its recorded result does not answer this call"
                ),
                returned: None,
                key_taken: true,
            }),
            Ok(result) => exec.emit(Event::ActionCompleted { node: name.clone(), key, result, reused: true }),
            Err(error) => exec.fail(name, format!("the stored result for key `{key}` does not fit: {error}")),
        }
        return Ok(());
    }
    let Some(handler) = (services.system)(system) else {
        exec.fail(name, format!("no handler is configured for system `{system}`; configure `[systems.{system}]`"));
        return Ok(());
    };
    let request = ActionRequest { step: name, system, action, args: request_args, idempotency_key: &key };
    if services.holds(name, Held::Action(&request)) {
        return Ok(());
    }
    let attempt = exec.state.action_attempts[id.index()] + 1;
    exec.emit(Event::ActionStarted {
        node: name.clone(),
        system: system.clone(),
        action: action.clone(),
        key: key.clone(),
        args,
        attempt,
    });
    exec.journal.flush(exec.state).map_err(Interrupted)?;
    match handler.call(&request) {
        Ok(json) => match decode(&json) {
            Ok(result) => exec.emit(Event::ActionCompleted { node: name.clone(), key, result, reused: false }),
            Err(error) => exec.emit(Event::Failed {
                node: name.clone(),
                error: format!("`{system}.{action}` returned a result that does not fit its type at {}", error.path),
                detail: Some(Value::Text(format!("`{system}.{action}` returned a result that does not fit: {error}"))),
                returned: Some(serde_json::json!({"$labels": analysis.failure_labels(name), "$value": json})),
                key_taken: false,
            }),
        },
        Err(error) => exec.fail(name, Failure { error: format!("`{system}.{action}` failed"), detail: Some(error) }),
    }
    Ok(())
}

/// A decision as a principal gives it.
#[derive(Clone, Debug, Default)]
pub struct DecisionInput {
    pub outcome: String,
    pub reason: Option<String>,
    pub basis: Option<String>,
    /// `risk.tier` and the new value as JSON (a bare word is read as text).
    pub edits: Vec<(String, String)>,
}

/// Why a decision is not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The principal lacks the grant or role; recorded.
    Access { grant: String, message: String },
    /// The decision itself is wrong (unknown outcome, step not waiting); not recorded.
    Invalid(String),
}

fn code_ok(code: &str) -> bool {
    !code.is_empty() && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Checks a decision on a waiting step and returns the events it causes.
pub fn decide(
    analysis: &Analysis,
    state: &State,
    step: &str,
    principal: &str,
    roles: &[String],
    input: &DecisionInput,
) -> Result<Vec<Event<Value>>, Refusal> {
    let body = analysis.body();
    let invalid = |m: String| Err(Refusal::Invalid(m));
    let Some(id) = analysis.plan.node_id(step) else {
        let steps: Vec<String> = waiting(analysis, state).into_iter().map(|w| format!("`{}`", w.0)).collect();
        return invalid(format!(
            "the flow has no step `{step}`; waiting: {}",
            if steps.is_empty() { "nothing".to_owned() } else { steps.join(", ") }
        ));
    };
    let node = analysis.plan.node(id);
    if let Some((_, gate)) = state.phases.iter().zip(&body.nodes).find(|(p, _)| **p == Phase::Blocked) {
        return invalid(format!(
            "run `{}` is blocked by gate `{}`: nothing can be decided until it is overridden",
            state.run, gate.name
        ));
    }
    if state.phases[id.index()] != Phase::Waiting {
        let now = match state.phases[id.index()] {
            Phase::Done => "it is decided or done",
            Phase::NotRun => "the run has not reached it",
            Phase::Blocked => "it is a blocking gate: override it instead",
            Phase::Failed => "it failed",
            Phase::Waiting => "",
        };
        return invalid(format!("step `{step}` is not waiting for a decision: {now}"));
    }
    let reason = input.reason.clone().filter(|r| !r.is_empty());
    let decision = |roles_used: Vec<String>| Decision {
        principal: principal.to_owned(),
        roles: roles_used,
        outcome: input.outcome.clone(),
        reason: reason.clone(),
        basis: input.basis.clone().filter(|b| !b.is_empty()),
    };
    let may = |wanted: &[SmolStr], grant: String| -> Result<Vec<String>, Refusal> {
        let used = crate::analysis::roles_used(body, roles, wanted);
        if used.is_empty() {
            let wanted: Vec<&str> = wanted.iter().map(SmolStr::as_str).collect();
            return Err(Refusal::Access {
                grant,
                message: format!(
                    "{principal} may not decide `{step}`: it needs a principal holding {} (holds: {})",
                    wanted.join(" or "),
                    if roles.is_empty() { "no role".to_owned() } else { roles.join(", ") }
                ),
            });
        }
        Ok(used)
    };
    match &node.kind {
        NodeKind::Review { roles: wanted, outcomes, reasons, edits: editable, .. } => {
            let used = may(wanted, format!("decide {step}"))?;
            if !outcomes.iter().any(|o| *o == input.outcome) {
                let names: Vec<&str> = outcomes.iter().map(SmolStr::as_str).collect();
                return invalid(format!(
                    "`{}` is not an outcome of `{step}`; expected one of {}",
                    input.outcome,
                    names.join(", ")
                ));
            }
            match &reason {
                Some(r) if !reasons.iter().any(|x| x == r) => {
                    let names: Vec<&str> = reasons.iter().map(SmolStr::as_str).collect();
                    return invalid(format!("`{r}` is not a reason of `{step}`; expected one of {}", names.join(", ")));
                }
                None if !reasons.is_empty() => {
                    let names: Vec<&str> = reasons.iter().map(SmolStr::as_str).collect();
                    return invalid(format!("a decision of `{step}` needs a reason: one of {}", names.join(", ")));
                }
                _ => {}
            }
            let mut edits = Vec::new();
            for (field, written) in &input.edits {
                let Some(path) = editable.iter().find(|p| p.to_string() == *field) else {
                    let names: Vec<String> = editable.iter().map(|p| format!("`{p}`")).collect();
                    return invalid(format!(
                        "`{step}` may not edit `{field}`; it may edit {}",
                        if names.is_empty() { "nothing".to_owned() } else { names.join(", ") }
                    ));
                };
                let Some(before) = state
                    .value(analysis, &path.node)
                    .and_then(|v| path.fields.iter().try_fold(v, |v, f| v.field(f)))
                    .cloned()
                else {
                    return invalid(format!("`{field}` has no value to edit"));
                };
                let ty = edit_type(analysis, path).ok_or_else(|| Refusal::Invalid(format!("`{field}` has no type")))?;
                let json = match serde_json::from_str::<Json>(written) {
                    Ok(_) => value::parse_exact(written)
                        .map_err(|e| Refusal::Invalid(format!("the new value of `{field}`: {e}")))?,
                    Err(_) => Json::String(written.clone()),
                };
                let after = value::decode(body, &json, &ty, field).map_err(|e| {
                    Refusal::Invalid(format!("the new value of `{field}` does not fit `{ty}`: {}", e.message))
                })?;
                // Who a run names is fixed when it starts (by whoever may start it on their
                // behalf): separation of duties and the approvals read it.
                let (mut was, mut now) = (Vec::new(), Vec::new());
                value::principals(&before, field, &mut was);
                value::principals(&after, field, &mut now);
                if was != now {
                    return invalid(format!(
                        "a review may not change who `{field}` names: the principals a run names are fixed when it \
                         starts, and separation of duties reads them"
                    ));
                }
                if let Some(reader) = decides_principal(analysis, path) {
                    return invalid(format!(
                        "a review may not edit `{field}`: `{reader}` reads it to decide whom a value names, and \
                         the principals a run names are fixed when it starts"
                    ));
                }
                edits.push(crate::event::Edit { field: field.clone(), before, after });
            }
            Ok(vec![Event::ReviewDecided { node: node.name.clone(), decision: decision(used), edits }])
        }
        NodeKind::Gate { approvers, .. } => {
            let used = may(approvers, format!("decide {step}"))?;
            check_gate_decision(step, input, &reason)?;
            Ok(vec![Event::GateDecided { node: node.name.clone(), decision: decision(used) }])
        }
        NodeKind::Approval { .. } => {
            let Some(wait) = state.approval(id.index()) else { return invalid(format!("`{step}` is not waiting")) };
            let needed: Vec<SmolStr> = outstanding(body, wait).into_iter().map(|(r, _)| r).collect();
            check_gate_decision(step, input, &reason)?;
            if wait.excluded.iter().any(|p| p == principal) {
                return Err(Refusal::Access {
                    grant: format!("decide {step}"),
                    message: format!(
                        "separation of duties: {principal} may not decide `{step}`, which is distinct from them"
                    ),
                });
            }
            if wait.approvals.iter().any(|(p, _)| p == principal) {
                return Err(Refusal::Access {
                    grant: format!("decide {step}"),
                    message: format!("{principal} has already approved `{step}`; no principal counts twice"),
                });
            }
            let used = may(&needed, format!("decide {step}"))?;
            let mut events = vec![Event::ApprovalDecided { node: node.name.clone(), decision: decision(used.clone()) }];
            let mut approvals = wait.approvals.clone();
            approvals.push((principal.to_owned(), roles.to_vec()));
            let all = slots(&wait.terms);
            let (count, _) = matched(body, &all, &approvals);
            let approvers = |list: &[(String, Vec<String>)]| list.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
            if input.outcome == "reject" {
                events.push(Event::ApprovalCompleted {
                    node: node.name.clone(),
                    row: wait.row,
                    approved: false,
                    approvers: approvers(&wait.approvals),
                    requirement: wait.requirement.clone(),
                });
            } else if count == all.len() {
                events.push(Event::ApprovalCompleted {
                    node: node.name.clone(),
                    row: wait.row,
                    approved: true,
                    approvers: approvers(&approvals),
                    requirement: wait.requirement.clone(),
                });
            }
            Ok(events)
        }
        _ => invalid(format!("step `{step}` is not decided by people")),
    }
}

fn check_gate_decision(step: &str, input: &DecisionInput, reason: &Option<String>) -> Result<(), Refusal> {
    if input.outcome != "approve" && input.outcome != "reject" {
        return Err(Refusal::Invalid(format!(
            "`{}` is not an outcome of `{step}`; expected approve or reject",
            input.outcome
        )));
    }
    match reason {
        None => Err(Refusal::Invalid(format!("a decision of `{step}` needs a reason code (`--reason CODE`)"))),
        Some(r) if !code_ok(r) => {
            Err(Refusal::Invalid(format!("`{r}` is not a reason code: letters, digits, `_` and `-` only")))
        }
        Some(_) => Ok(()),
    }
}

/// Which step of the plan decides whom a value names by reading the place `path` edits,
/// if any: a step with an expression that gives a principal (or a value holding one) and is
/// not just a place, and reads what the edit changes — directly, or through the steps it
/// reads, which read it. A place that is a principal (or a list of them) is not counted: an
/// edit that changes it is refused for that, and its own step's expressions are counted.
fn decides_principal(analysis: &Analysis, path: &flow_ir::plan::EditPath) -> Option<SmolStr> {
    type Place<'p> = (&'p SmolStr, Vec<&'p SmolStr>);
    /// The places `expr` reads, but those that are principals; a step whose fallback it
    /// asks about (`degraded(risk)`), or an input whose age, as the step or input whole.
    fn reads<'p>(expr: &'p Expr, out: &mut Vec<Place<'p>>) {
        if let flow_ir::expr::ExprKind::Degraded(step)
        | flow_ir::expr::ExprKind::Age(step)
        | flow_ir::expr::ExprKind::Stale(step) = &expr.kind
        {
            out.push((step, Vec::new()));
            return;
        }
        if let Some(place) = expr.place() {
            let mut ty = &expr.ty;
            while let Ty::Optional(inner) | Ty::List(inner) = ty {
                ty = inner;
            }
            if *ty != Ty::Principal {
                out.push(place);
            }
            return;
        }
        expr.for_each_child(|child| reads(child, out));
    }
    /// What the expressions under `expr` that give principals read.
    fn naming<'p>(body: &PlanBody, expr: &'p Expr, out: &mut Vec<Place<'p>>) {
        if expr.place().is_some() {
            return;
        }
        // A record or list built here: what decides is what its parts that name principals read.
        let built = matches!(expr.kind, flow_ir::expr::ExprKind::Record(_) | flow_ir::expr::ExprKind::List(_));
        if holds_principal(body, &expr.ty) && !built {
            reads(expr, out);
        } else {
            expr.for_each_child(|child| naming(body, child, out));
        }
    }
    let body = analysis.body();
    // A place the principals of some value depend on, and the step that names them.
    let mut deciding: Vec<(Place<'_>, &SmolStr)> = Vec::new();
    for node in &body.nodes {
        let mut places = Vec::new();
        // A model or a system that answers with a principal: all it is sent decides.
        let answers =
            matches!(node.kind, NodeKind::Infer { .. } | NodeKind::Action { .. }) && holds_principal(body, &node.ty);
        for expr in node.kind.exprs() {
            if answers { reads(expr, &mut places) } else { naming(body, expr, &mut places) }
        }
        deciding.extend(places.into_iter().map(|place| (place, &node.name)));
    }
    // Through the steps read: what they read decides as well.
    let mut followed: FxHashSet<&SmolStr> = FxHashSet::default();
    let mut i = 0;
    while i < deciding.len() {
        let ((root, _), named) = deciding[i];
        i += 1;
        let Some(node) = body.node(root) else { continue };
        if !followed.insert(&node.name) {
            continue;
        }
        let mut places = Vec::new();
        node.kind.exprs().into_iter().for_each(|expr| reads(expr, &mut places));
        deciding.extend(places.into_iter().map(|place| (place, named)));
    }
    let edited: Vec<&SmolStr> = path.fields.iter().collect();
    deciding
        .into_iter()
        .find(|((root, fields), _)| **root == path.node && (fields.starts_with(&edited) || edited.starts_with(fields)))
        .map(|(_, named)| named.clone())
}

/// Whether values of `ty` may hold a principal.
fn holds_principal(body: &PlanBody, ty: &Ty) -> bool {
    let mut seen = FxHashSet::default();
    let mut stack = vec![ty];
    while let Some(ty) = stack.pop() {
        match ty {
            Ty::Principal => return true,
            Ty::Optional(inner) | Ty::List(inner) => stack.push(inner),
            Ty::Named(name) if seen.insert(name) => {
                stack.extend(body.record(name).into_iter().flat_map(|r| r.fields.iter().map(|f| &f.ty)))
            }
            _ => {}
        }
    }
    false
}

fn edit_type(analysis: &Analysis, path: &flow_ir::plan::EditPath) -> Option<Ty> {
    let body = analysis.body();
    let mut ty = body.node(&path.node)?.ty.clone();
    for field in &path.fields {
        ty = body.field_type(ty.unwrap_optional(), field)?.into_owned();
    }
    Some(ty)
}

/// Checks an override of a blocking gate and returns its event.
pub fn override_gate(
    analysis: &Analysis,
    state: &State,
    gate: &str,
    principal: &str,
    roles: &[String],
    reason: &str,
    basis: Option<&str>,
) -> Result<Event<Value>, Refusal> {
    let Some(id) =
        analysis.plan.node_id(gate).filter(|id| matches!(analysis.plan.node(*id).kind, NodeKind::Gate { .. }))
    else {
        return Err(Refusal::Invalid(format!("the flow has no gate `{gate}`")));
    };
    if state.phases[id.index()] != Phase::Blocked {
        return Err(Refusal::Invalid(format!("gate `{gate}` is not blocking this run")));
    }
    let grantees = analysis.grantees(flow_ir::plan::GrantKind::Override, Some(gate));
    let used = crate::analysis::roles_used(analysis.body(), roles, &grantees);
    if used.is_empty() {
        let who: Vec<&str> = grantees.iter().map(SmolStr::as_str).collect();
        return Err(Refusal::Access {
            grant: format!("override {gate}"),
            message: format!(
                "{principal} may not override `{gate}`: the flow grants `override {gate}` to {}",
                if who.is_empty() { "no role".to_owned() } else { who.join(", ") }
            ),
        });
    }
    if !code_ok(reason) {
        return Err(Refusal::Invalid(format!("`{reason}` is not a reason code: letters, digits, `_` and `-` only")));
    }
    Ok(Event::GateOverridden {
        node: gate.into(),
        decision: Decision {
            principal: principal.to_owned(),
            roles: used,
            outcome: "override".to_owned(),
            reason: Some(reason.to_owned()),
            basis: basis.map(str::to_owned).filter(|b| !b.is_empty()),
        },
    })
}
