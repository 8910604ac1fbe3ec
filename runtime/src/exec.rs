//! The executor: how a run advances through the plan's DAG, rules first, calling models and
//! systems through the services it is given and recording an event for each step.

use crate::analysis::{Analysis, is_rule};
use crate::error::Error;
use crate::event::{Event, Named};
use crate::interp::{self, EvalError, Scope};
use crate::provider::{ActionHandler, ActionRequest, ModelProvider, ModelReply, ModelRequest, ProviderError};
use crate::retrieval::{RetrievalRequest, Retriever};
use crate::state::{ApprovalWait, Phase, State, has_slots, requirement_text, summary};
use crate::value::{self, Value};
use flow_ir::NodeId;
use flow_ir::expr::Expr;
use flow_ir::plan::{Mismatch, NodeKind};
use rustc_hash::FxHashMap;
use serde_json::Value as Json;
use smol_str::SmolStr;

/// What the executor needs from its caller: recording events durably, and earlier action
/// results.
pub trait Journal {
    fn record(&mut self, event: Event<Value>);
    /// Makes every recorded event durable (before an action's handler is called).
    fn flush(&mut self, state: &State) -> Result<(), Error>;
    /// Whether the events are kept as evidence; when not (a run evaluated in memory), the
    /// executor leaves out what only evidence needs (the operands of conditions).
    fn keeps_evidence(&self) -> bool {
        true
    }
    /// The result an earlier call of `system` with this idempotency key gave, checked
    /// against the evidence of the run that recorded it.
    fn action_result(&mut self, step: &str, system: &str, key: &str) -> Result<Option<Earlier>, Error>;
    /// Claims the call of `system`'s handler with `key` for this run, just before it is
    /// called, so that no other run or process calls it with that key meanwhile: `None` when
    /// this run may call it (waiting while another holds the key), or the result another
    /// call recorded meanwhile. A journal that keeps nothing claims nothing.
    fn claim_action(
        &mut self,
        _state: &State,
        _step: &str,
        _system: &str,
        _key: &str,
    ) -> Result<Option<Earlier>, Error> {
        Ok(None)
    }
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
    /// The retriever a `retrieve` step (by name) searches a corpus with.
    pub retriever: &'a dyn Fn(&str, &flow_ir::plan::Corpus) -> Option<&'a dyn Retriever>,
    pub system: &'a dyn Fn(&str) -> Option<&'a dyn ActionHandler>,
    /// What evaluates expressions.
    pub engine: crate::analysis::Engine,
    /// Steps the caller keeps from executing now: they stay not run, and so does what
    /// depends on them (a what-if replay holds a model whose request changed, and an action
    /// that would run other than it did). `None` holds nothing.
    pub hold: Option<&'a Hold<'a>>,
    /// When a step with deadlines that begins to wait opened (its timers run from then):
    /// now, for a run executing; as recorded, for a replay. `None`: its timers are not set.
    pub opened: &'a dyn Fn(&str) -> Option<flow_ir::expr::Timestamp>,
}

/// Whether to hold a step: asked with the step's name and what it is about to ask.
pub type Hold<'a> = dyn Fn(&SmolStr, Held<'_>) -> bool + 'a;

/// A step that is about to call outside, as [`Services::hold`] is asked about it.
pub enum Held<'r> {
    Model(&'r ModelRequest<'r>),
    Retrieval(&'r RetrievalRequest<'r>),
    Action(&'r ActionRequest<'r>),
}

impl Services<'_> {
    fn holds(&self, node: &SmolStr, step: Held<'_>) -> bool {
        self.hold.is_some_and(|hold| hold(node, step))
    }
}

/// Why advancing stopped without a settled run: the store failed.
#[derive(Debug)]
pub struct Interrupted(pub Error);

pub(crate) struct Exec<'a, 'j> {
    analysis: &'a Analysis,
    state: &'a mut State,
    journal: &'j mut dyn Journal,
    /// Whether the journal keeps the events as evidence ([`Journal::keeps_evidence`]).
    evidence: bool,
    /// Answers of models called ahead, together with the one being executed, by step.
    prefetched: FxHashMap<SmolStr, (Result<ModelReply, ProviderError>, u64)>,
    /// Steps the caller held in this advance ([`Services::hold`]).
    held: Vec<NodeId>,
    /// The plan's native code and the run's values laid out for it, when it runs natively.
    #[cfg(feature = "jit")]
    native: Option<(&'a crate::jit::Native, crate::jit::Frame)>,
    /// What [`crate::jit::Native::gates`] gave in this advance, once a gate asked (`None`
    /// inside: it could not say, and each gate is tested on its own).
    #[cfg(feature = "jit")]
    gates: Option<Option<u64>>,
}

/// Runs `f`, with how long it took in microseconds.
pub(crate) fn timed<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let started = std::time::Instant::now();
    let value = f();
    (value, started.elapsed().as_micros() as u64)
}

/// Calls at the same time the models of `step` and of every other `infer` step that is
/// ready to run now (all it waits for is done): they do not depend on each other, and
/// model calls are what makes a run slow. The answers wait in `exec.prefetched` until each
/// step executes, in the plan's order, so events stay in that order.
pub(crate) fn call_ready_models(exec: &mut Exec<'_, '_>, step: &SmolStr, services: &Services<'_>) {
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
                let frame = native.frame(&state.values, state.degraded_steps(), state.clock);
                (native, frame)
            }),
            crate::analysis::Engine::Interpreter => None,
        };
        #[cfg(not(feature = "jit"))]
        let _ = services;
        Exec {
            analysis,
            state,
            evidence: journal.keeps_evidence(),
            journal,
            prefetched: FxHashMap::default(),
            held: Vec::new(),
            #[cfg(feature = "jit")]
            native,
            #[cfg(feature = "jit")]
            gates: None,
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
            native.sync(frame, i, &self.state.values, self.state.degraded_steps());
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

    /// Whether gate `id`'s condition holds. Natively, the gates that read only inputs and
    /// params are decided together, at the first of them this advance steps: what they
    /// read does not change while a run advances, so each reads as it would on its own.
    fn test_gate(&mut self, id: NodeId, condition: &Expr) -> Result<bool, EvalError> {
        #[cfg(feature = "jit")]
        if let Some((native, frame)) = &self.native
            && let Some(bit) = native.gate_bit(id.index())
        {
            let scope = (&*self.state, self.analysis);
            let gates = *self.gates.get_or_insert_with(|| native.gates(&scope, frame).and_then(Result::ok));
            if let Some(gates) = gates {
                return Ok(gates >> bit & 1 == 1);
            }
        }
        #[cfg(not(feature = "jit"))]
        let _ = id;
        self.test(condition)
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
        if !self.evidence {
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
pub(crate) struct Failure {
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
    // The steps that began to wait with deadlines start their timers.
    for node in crate::timers::unset(analysis, exec.state) {
        if let Some(opened) = (services.opened)(&node) {
            exec.emit(Event::TimerSet { node, opened });
        }
    }
    let status = exec.state.current_status();
    let summary = if exec.evidence { summary(analysis, exec.state, status) } else { String::new() };
    exec.emit(Event::Settled { status, summary });
    Ok(())
}

/// Executes the steps that can run, rules first: every rule as soon as what it reads is
/// there, and a model call, human step or effect only when the gates allow it
/// ([`next_step`]), one at a time, so that a gate it enables is evaluated before the next.
pub(crate) fn run_steps(exec: &mut Exec<'_, '_>, services: &Services<'_>) -> Result<(), Interrupted> {
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
pub(crate) fn next_step(exec: &Exec<'_, '_>, only: Option<NodeId>) -> Option<NodeId> {
    let analysis = exec.analysis;
    let phases = &exec.state.phases;
    // The gates not yet evaluated, as a set.
    let mut open = analysis.no_gates();
    let mut deciding = false;
    for (g, gate) in analysis.gates().enumerate() {
        match phases[gate] {
            Phase::Waiting => deciding = true,
            Phase::NotRun => open[g / 64] |= 1 << (g % 64),
            _ => {}
        }
    }
    let candidates =
        || analysis.steps().iter().filter(|id| only.is_none_or(|o| o == **id)).filter(|id| exec.ready(**id));
    if !deciding && let Some(id) = candidates().find(|id| analysis.feeds_all(id.index(), &open)) {
        return Some(*id);
    }
    if only.is_some() {
        // Asked ahead (a model call made at the same time as another): only where it is
        // allowed without the exception below.
        return None;
    }
    candidates().find(|id| analysis.feeds_any(id.index(), &open)).copied()
}

pub(crate) fn step(exec: &mut Exec<'_, '_>, id: NodeId, services: &Services<'_>) -> Result<(), Interrupted> {
    let analysis = exec.analysis;
    let node = analysis.plan.node(id);
    let name = &node.name;
    match &node.kind {
        // Given when the run starts.
        NodeKind::Input { .. } | NodeKind::Param { .. } => {}
        NodeKind::Let { value } => match exec.eval(value) {
            // No evidence kept: the state changes as the event would change it (`State::apply`).
            Ok(value) if !exec.evidence => exec.state.done(id.index(), value),
            Ok(value) => {
                let operands = exec.operands(name);
                exec.emit(Event::Evaluated { node: name.clone(), value, operands });
            }
            Err(error) => exec.fail(name, error),
        },
        NodeKind::Gate { level, condition, .. } => match exec.test_gate(id, condition) {
            Ok(holds) if !exec.evidence => exec.state.gate(id.index(), *level, holds),
            Ok(holds) => {
                let operands = exec.operands(name);
                exec.emit(Event::Gate { node: name.clone(), level: *level, holds, operands });
            }
            Err(error) => exec.fail(name, error),
        },
        NodeKind::Infer { model, args, fallback } => infer(exec, name, model, args, fallback.as_ref(), services),
        NodeKind::Retrieve { corpus, query, top } => retrieve(exec, name, corpus, query, *top, services),
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
            if !has_slots(&row.requirement) {
                if !exec.evidence {
                    exec.state.approval_completed(id.index(), true, &[], requirement);
                    return Ok(());
                }
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
                    Ok(Value::Principal(p)) => excluded.push(String::from(p)),
                    Ok(Value::List(items)) => excluded.extend(items.into_iter().filter_map(|v| match v {
                        Value::Principal(p) => Some(String::from(p)),
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
            if !exec.evidence {
                let terms = row.requirement.clone();
                let wait = ApprovalWait { row: row_number, requirement, terms, excluded, approvals: Vec::new() };
                exec.state.approval_required(id.index(), wait);
                return Ok(());
            }
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
pub(crate) fn marks(analysis: &Analysis, state: &State, emit: NodeId) -> Vec<String> {
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
        if seen[i] && state.overridden(i) {
            out.push(format!("overridden: {}", node.name));
        }
        if seen[i] && state.degraded(i) {
            out.push(format!("degraded: {}", node.name));
        }
    }
    out
}

pub(crate) fn infer(
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

/// How the failure of a `retrieve` step whose corpus has no retriever begins (a replay
/// tells that failure from the others by it).
pub(crate) const NO_RETRIEVER: &str = "no retriever is configured for corpus";

/// Executes a `retrieve` step: asks the corpus's retriever, checks the snapshot it searched
/// against the pinned one (and its age against the corpus's freshness), and checks each
/// document against the corpus's type.
fn retrieve(
    exec: &mut Exec<'_, '_>,
    name: &SmolStr,
    corpus_name: &SmolStr,
    query: &Expr,
    top: u32,
    services: &Services<'_>,
) {
    let analysis = exec.analysis;
    let body = analysis.body();
    let Some(corpus) = body.corpus(corpus_name) else {
        return exec.fail(name, format!("no corpus `{corpus_name}`"));
    };
    let query = match exec.eval(query) {
        Ok(Value::Text(text)) => text,
        // The verifier proves the query is text; what it is otherwise is kept as labelled detail.
        Ok(other) => {
            return exec.fail(
                name,
                Failure { error: "the query is not text".to_owned(), detail: Some(format!("the query is {other}")) },
            );
        }
        Err(error) => return exec.fail(name, error),
    };
    let request = RetrievalRequest { step: name, corpus, query: &query, top, clock: exec.state.clock };
    if services.holds(name, Held::Retrieval(&request)) {
        return;
    }
    let Some(retriever) = (services.retriever)(name, corpus) else {
        return exec.fail(
            name,
            format!(
                "{NO_RETRIEVER} `{corpus_name}` (retriever \"{}\"); configure `[corpora.{corpus_name}]`",
                corpus.retriever
            ),
        );
    };
    let (reply, latency_us) = timed(|| retriever.retrieve(&request));
    let mut retrieved = crate::event::Retrieved {
        node: name.clone(),
        corpus: corpus.name.clone(),
        retriever: retriever.describe(),
        authority: corpus.authority.clone(),
        pinned: corpus.snapshot.clone(),
        snapshot: None,
        as_of: None,
        top,
        query: Value::Text(query.clone()),
        documents: Value::List(Vec::new()),
        latency_us,
        attempts: 1,
        error: None,
        value: None,
        degraded: false,
        refused: false,
        reason: None,
    };
    let reply = match reply {
        Ok(reply) => reply,
        Err(error) => {
            retrieved.attempts = error.attempts;
            retrieved.error = Some(Value::Text(error.message.clone()));
            exec.emit(Event::Retrieved(Box::new(retrieved)));
            return exec.fail(
                name,
                Failure {
                    error: format!("the retriever of corpus `{corpus_name}` failed"),
                    detail: Some(error.message),
                },
            );
        }
    };
    retrieved.attempts = reply.attempts;
    retrieved.snapshot = Some(reply.snapshot.clone());
    retrieved.as_of = reply.as_of;
    let mut documents = Vec::with_capacity(reply.documents.len());
    let mut found = Vec::with_capacity(reply.documents.len());
    let mut unfit = None;
    if reply.documents.len() > top as usize {
        unfit = Some(format!("the retriever gave {} documents, more than the {top} asked for", reply.documents.len()));
    }
    for (i, document_found) in reply.documents.iter().enumerate() {
        match value::decode(body, &document_found.document, &corpus.document, "$") {
            Ok(document) => {
                let digest = crate::digest::digest(&document.to_json());
                found.push((document_found.id.clone(), digest));
                documents.push(document);
            }
            Err(error) => {
                unfit.get_or_insert_with(|| {
                    let id = &document_found.id;
                    format!("document {} (`{id}`) does not fit `{}`: {error}", i + 1, corpus.document)
                });
            }
        }
    }
    if let Some(unfit) = unfit {
        // Recorded as a failed search: what did not fit is not kept.
        retrieved.snapshot = None;
        retrieved.as_of = None;
        retrieved.error = Some(Value::Text(unfit.clone()));
        exec.emit(Event::Retrieved(Box::new(retrieved)));
        return exec.fail(
            name,
            Failure { error: format!("the retriever of corpus `{corpus_name}` failed"), detail: Some(unfit) },
        );
    }
    retrieved.documents = crate::event::Retrieved::documents_of(&found);
    retrieved.value = Some(Value::List(documents));
    let mut mismatch = Vec::new();
    if reply.snapshot != corpus.snapshot {
        mismatch.push(format!("it searched snapshot `{}`, but the flow pins `{}`", reply.snapshot, corpus.snapshot));
    }
    if let Some(freshness) = corpus.freshness {
        match reply.as_of {
            None => mismatch.push("the retriever does not say how old the snapshot is".to_owned()),
            Some(as_of) if exec.state.clock.seconds.saturating_sub(as_of.seconds) > freshness => {
                mismatch.push(format!(
                    "the snapshot is of {as_of}, older than the corpus's freshness of {}",
                    flow_ir::time::format_duration(freshness)
                ))
            }
            Some(_) => {}
        }
    }
    if mismatch.is_empty() {
        exec.emit(Event::Retrieved(Box::new(retrieved)));
        return;
    }
    let reason = format!("corpus `{corpus_name}`: {}", mismatch.join("; "));
    retrieved.reason = Some(reason.clone());
    match corpus.on_mismatch {
        Mismatch::Degrade => {
            retrieved.degraded = true;
            exec.emit(Event::Retrieved(Box::new(retrieved)));
        }
        Mismatch::Refuse => {
            retrieved.refused = true;
            exec.emit(Event::Retrieved(Box::new(retrieved)));
            exec.fail(name, format!("{reason}, and the corpus refuses another snapshot"));
        }
    }
}

/// Completes an action step with the result an earlier call with its key recorded, unless
/// that call was another request.
#[expect(clippy::too_many_arguments, reason = "the parts of an action call")]
fn reuse(
    exec: &mut Exec<'_, '_>,
    name: &SmolStr,
    system: &SmolStr,
    action: &SmolStr,
    args: &[Named<Value>],
    key: &str,
    earlier: Earlier,
    decode: &dyn Fn(&Json) -> Result<Value, value::DecodeError>,
) {
    let analysis = exec.analysis;
    let digest = call_digest(&analysis.body().flow.name, action, args);
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
        Ok(result) => exec.emit(Event::ActionCompleted {
            node: name.clone(),
            key: key.to_owned(),
            result,
            reused: true,
            tries: 1,
        }),
        // What did not fit may quote the stored value: it is the failure's labelled detail.
        Err(error) => exec.fail(
            name,
            Failure {
                error: format!("the stored result for key `{key}` does not fit its type at {}", error.path),
                detail: Some(format!("the stored result for key `{key}` does not fit: {error}")),
            },
        ),
    }
}

#[expect(clippy::too_many_arguments, reason = "the parts of an action node")]
pub(crate) fn act(
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
        reuse(exec, name, system, action, &args, &key, earlier, &decode);
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
    if let Some(earlier) = exec.journal.claim_action(exec.state, name, system, &key).map_err(Interrupted)? {
        reuse(exec, name, system, action, &args, &key, earlier, &decode);
        return Ok(());
    }
    let attempt = exec.state.attempts(id.index()) + 1;
    exec.emit(Event::ActionStarted {
        node: name.clone(),
        system: system.clone(),
        action: action.clone(),
        key: key.clone(),
        args,
        attempt,
    });
    exec.journal.flush(exec.state).map_err(Interrupted)?;
    let (called, tries) = handler.call_counted(&request);
    match called {
        Ok(json) => match decode(&json) {
            Ok(result) => exec.emit(Event::ActionCompleted { node: name.clone(), key, result, reused: false, tries }),
            Err(error) => exec.emit(Event::Failed {
                node: name.clone(),
                error: format!("`{system}.{action}` returned a result that does not fit its type at {}", error.path),
                detail: Some(Value::Text(format!("`{system}.{action}` returned a result that does not fit: {error}"))),
                // Cut where it nests deeper than evidence is read back: a type is found not
                // to fit long before that depth, so replaying the cut result fails alike.
                returned: Some(
                    serde_json::json!({"$labels": analysis.failure_labels(name), "$value": cut(&json, RETURNED_DEPTH)}),
                ),
                key_taken: false,
            }),
        },
        Err(error) => exec.fail(name, Failure { error: format!("`{system}.{action}` failed"), detail: Some(error) }),
    }
    Ok(())
}

/// How deep a handler's result that does not fit is kept in its failure's event: evidence
/// is read with `serde_json`'s limit of 128 levels, and the event and the labelled wrapper
/// take three.
const RETURNED_DEPTH: usize = 100;

/// `json` with each part nested deeper than `depth` arrays and objects replaced by a text
/// that says so (recursing no deeper than `depth`: the value came from outside).
fn cut(json: &serde_json::Value, depth: usize) -> serde_json::Value {
    use serde_json::Value as Json;
    match json {
        Json::Array(_) | Json::Object(_) if depth == 0 => {
            Json::String(format!("$cut: nested deeper than {RETURNED_DEPTH} levels"))
        }
        Json::Array(items) => Json::Array(items.iter().map(|item| cut(item, depth - 1)).collect()),
        Json::Object(fields) => Json::Object(fields.iter().map(|(k, v)| (k.clone(), cut(v, depth - 1))).collect()),
        other => other.clone(),
    }
}
