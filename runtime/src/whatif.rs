//! What-if replay: a stored run executed again with other params or another plan, and what
//! that changes, step by step.
//!
//! The run's inputs and clock are those recorded. Deterministic steps are computed again. A
//! model's answer is reused where the step sends the same request (same model reference,
//! same inputs) and is otherwise *needed again*: the step is held, and so is what depends on
//! it (or, `live`, the model is asked). A person's decision is reused where the decided step
//! opened on the same inputs (the same operands, the same matrix row), and the same checks
//! pass again under the plan replayed; otherwise the step *needs a new decision*. Actions
//! never run: one that would run as recorded (same idempotency key, same arguments) gives
//! its recorded result; one that would run otherwise is held.

use flow_ir::plan::{Model, NodeKind};
use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::{Value as Json, json};
use smol_str::SmolStr;

use crate::analysis::{Analysis, Engine};
use crate::event::{Event, Status};
use crate::exec::{self, Held, Services};
use crate::provider::{ActionHandler, ModelProvider, ModelReply, ModelRequest, ProviderError};
use crate::replay::{Collect, Recorded, comparable, decide_again, request_key, search_key};
use crate::retrieval::Retriever;
use crate::state::{self, Phase, State};
use crate::value::{self, Value};

/// What a what-if replay changes.
#[derive(Clone, Debug, PartialEq)]
pub struct WhatIf {
    pub run: String,
    /// The outcome recorded: a status (`completed`, `pending`…).
    pub before: String,
    /// The outcome the replay reaches: a status, or `undetermined` when the run neither
    /// ended nor is blocked and it holds a step (one that a new inference or an action's
    /// new result would decide).
    pub after: String,
    /// The steps whose result changes, in the order of the plan replayed.
    pub changes: Vec<Change>,
}

impl WhatIf {
    /// Whether nothing changes: every step and the outcome as recorded.
    pub fn exact(&self) -> bool {
        self.changes.is_empty() && self.before == self.after
    }

    /// The what-if as JSON: the outcome before and after, and the steps that change.
    pub fn to_json(&self) -> Json {
        json!({
            "run": self.run, "exact": self.exact(), "before": self.before, "after": self.after,
            "outcome_changed": self.before != self.after,
            "changes": self.changes.iter().map(Change::to_json).collect::<Vec<_>>(),
        })
    }
}

/// One step's result before and after.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub node: String,
    /// As recorded (`null`: the step did not run).
    pub before: Json,
    /// As replayed (`null`: the step would not be reached).
    pub after: Json,
}

impl Change {
    pub fn to_json(&self) -> Json {
        json!({"node": self.node, "before": self.before, "after": self.after})
    }
}

/// What a what-if replay changes: other param values, another plan, or both.
pub struct Changes<'a> {
    /// The plan to replay against (the run's own when `None`).
    pub plan: Option<&'a Analysis>,
    /// Params set, as JSON (a bare word is text): `auto_limit` = `"5000 USD"`.
    pub params: &'a [(String, Json)],
    /// Asks the model of a step whose request changed, instead of holding the step.
    pub live: Option<&'a Live<'a>>,
}

/// The provider of a model, asked live.
pub type Live<'a> = dyn Fn(&Model) -> Option<&'a dyn ModelProvider> + Sync + 'a;

/// The recorded answers, and the live providers when asked for.
struct Answers<'r, 'l> {
    recorded: &'r Recorded,
    live: Option<&'l Live<'l>>,
}

impl ModelProvider for Answers<'_, '_> {
    fn describe(&self) -> String {
        "the recorded answers".to_owned()
    }

    fn infer(&self, request: &ModelRequest<'_>) -> Result<ModelReply, ProviderError> {
        match (self.recorded.models.get(&request_key(request)), self.live.and_then(|live| live(request.model))) {
            (None, Some(provider)) => provider.infer(request),
            _ => self.recorded.infer(request),
        }
    }
}

/// The recorded run's start with the changes made: the plan's hash, its params, the inputs
/// read as the plan replayed types them.
fn restart(
    old: &Analysis,
    new: &Analysis,
    recorded: &crate::event::Started<Value>,
    set: &[(String, Json)],
) -> Result<crate::event::Started<Value>, String> {
    let body = new.body();
    let mut started = recorded.clone();
    started.plan = new.hash().clone();
    if !std::ptr::eq(old, new) {
        started.inputs = Vec::new();
        for node in body.nodes.iter().filter(|n| matches!(n.kind, NodeKind::Input { .. })) {
            let json = recorded.inputs.iter().find(|i| i.name == node.name).map_or(Json::Null, |i| i.value.to_json());
            let value = value::decode(body, &json, &node.ty, &format!("$.{}", node.name))
                .map_err(|e| format!("the recorded input `{}` does not fit the plan replayed: {e}", node.name))?;
            started.inputs.push(crate::event::Named { name: node.name.clone(), value });
        }
        // A param keeps the value the run was started with where that was not the default
        // of the run's plan (and fits the new plan); otherwise it takes the new plan's default.
        started.params = Vec::new();
        for (name, default) in new.param_defaults() {
            let given = recorded.params.iter().find(|p| p.name == *name).filter(|p| {
                let old_default = old.param_defaults().iter().find(|(n, _)| n == name).map(|(_, d)| d);
                old_default.is_some_and(|d| d.as_ref().ok() != Some(&p.value))
            });
            let ty = body.node(name).map(|n| n.ty.clone());
            let kept = given.zip(ty).and_then(|(p, ty)| value::decode(body, &p.value.to_json(), &ty, "$").ok());
            let value = match kept {
                Some(value) => value,
                None => default.clone().map_err(|e| format!("param `{name}`: {e}"))?,
            };
            started.params.push(crate::event::Named { name: name.clone(), value });
        }
    }
    for (name, json) in set {
        let Some(param) = started.params.iter_mut().find(|p| p.name == name.as_str()) else {
            return Err(format!("the flow has no param `{name}`"));
        };
        let ty = body.node(name).map(|n| n.ty.clone()).ok_or_else(|| format!("the flow has no param `{name}`"))?;
        param.value = value::decode(body, json, &ty, &format!("$.{name}")).map_err(|e| format!("--set {name}: {e}"))?;
    }
    Ok(started)
}

/// The event that opened a decision on `node`: the gate that held, the review opened, the
/// approval's row.
fn opening<'e>(events: &'e [Event<Value>], node: &str) -> Option<&'e Event<Value>> {
    events.iter().rev().find(|e| {
        e.node().is_some_and(|n| n == node)
            && matches!(e, Event::Gate { .. } | Event::ReviewOpened { .. } | Event::ApprovalRequired { .. })
    })
}

/// What a person decided on: the values the step opened on, compared as values (`10000 USD`
/// is `10000.00 USD`), and for an approval only what its row that applied read, with its
/// requirement and who may not approve — not the rows it did not reach.
fn context<'e>(analysis: &Analysis, opened: &'e Event<Value>) -> Option<Vec<(String, &'e Value)>> {
    let named = |operands: &'e [crate::event::Named<Value>], keep: &dyn Fn(&str) -> bool| {
        operands.iter().filter(|o| keep(&o.name)).map(|o| (o.name.to_string(), &o.value)).collect::<Vec<_>>()
    };
    match opened {
        Event::Gate { operands, holds: true, .. } => Some(named(operands, &|_| true)),
        Event::ReviewOpened { operands, roles, .. } => {
            let mut out = named(operands, &|_| true);
            out.push((format!("roles {}", roles.join(", ")), &Value::Nothing));
            Some(out)
        }
        Event::ApprovalRequired { node, row, terms, operands, excluded, .. } => {
            let id = analysis.id(node)?;
            let NodeKind::Approval { rows, .. } = &analysis.plan.node(id).kind else { return None };
            let read: Vec<String> = match rows.get(*row as usize - 1).and_then(|r| r.condition.as_ref()) {
                Some(condition) => {
                    let mut places: Vec<String> = condition
                        .places_read()
                        .into_iter()
                        .map(|(root, path)| {
                            std::iter::once(root.as_str())
                                .chain(path.iter().map(|f| f.as_str()))
                                .collect::<Vec<_>>()
                                .join(".")
                        })
                        .collect();
                    condition.walk(&mut |e| match &e.kind {
                        flow_ir::expr::ExprKind::Stale(n) => places.push(format!("stale({n})")),
                        flow_ir::expr::ExprKind::Age(n) => places.push(format!("age({n})")),
                        flow_ir::expr::ExprKind::Degraded(n) => places.push(format!("degraded({n})")),
                        _ => {}
                    });
                    places
                }
                None => Vec::new(),
            };
            let mut out = named(operands, &|name| read.iter().any(|r| r == name));
            out.push((format!("requirement {}", state::requirement_text(terms)), &Value::Nothing));
            out.push((format!("excluded {}", excluded.join(", ")), &Value::Nothing));
            Some(out)
        }
        _ => None,
    }
}

fn decision_of(event: &Event<Value>) -> bool {
    matches!(
        event,
        Event::GateDecided { .. }
            | Event::GateOverridden { .. }
            | Event::ReviewDecided { .. }
            | Event::ApprovalDecided { .. }
            | Event::Resumed { .. }
            | Event::Reminded { .. }
            | Event::Escalated { .. }
            | Event::TimedOut { .. }
    )
}

/// Replays the run recorded in `events` (against its plan `old`) with `changes`.
pub fn what_if(
    old: &Analysis,
    events: &[Event<Value>],
    changes: &Changes<'_>,
    engine_choice: Engine,
) -> Result<WhatIf, String> {
    let new = changes.plan.unwrap_or(old);
    let Some(Event::Started(recorded_start)) = events.first() else {
        return Err("the run has no `started` event".to_owned());
    };
    let started = restart(old, new, recorded_start, changes.params)?;
    let recorded = Recorded::of(events);
    // Models whose steps degraded without a call: no provider was configured for them.
    let unprovided: FxHashSet<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::Inferred { node, degraded: true, .. }
                if !events.iter().any(|c| matches!(c, Event::ModelCalled { node: n, .. } if n == node)) =>
            {
                old.id(node).and_then(|id| match &old.plan.node(id).kind {
                    NodeKind::Infer { model, .. } => Some(model.as_str()),
                    _ => None,
                })
            }
            _ => None,
        })
        .collect();
    let answers = Answers { recorded: &recorded, live: changes.live };
    let model = |m: &Model| (!unprovided.contains(m.name.as_str())).then_some(&answers as &dyn ModelProvider);
    let system = |_: &str| Some(&recorded as &dyn ActionHandler);
    // A search is answered as recorded for the same step, query, corpus, pin and `top`;
    // another is held. A step that had no retriever has none again.
    let retriever = |step: &str, _: &flow_ir::plan::Corpus| {
        recorded.searches(step, true).unwrap_or(true).then_some(&recorded as &dyn Retriever)
    };
    let held: std::cell::RefCell<FxHashMap<SmolStr, Json>> = Default::default();
    let hold = |node: &SmolStr, step: Held<'_>| {
        let description = match step {
            Held::Model(request) => {
                if recorded.models.contains_key(&request_key(request))
                    || changes.live.is_some_and(|live| live(request.model).is_some())
                {
                    return false;
                }
                json!("needs re-inference")
            }
            Held::Retrieval(request) => {
                // Searched as recorded, or never searched for want of a retriever (which it
                // has none of again).
                if recorded.retrievals.contains_key(&search_key(request))
                    || recorded.searches(node, false) == Some(false)
                {
                    return false;
                }
                json!("needs a new search")
            }
            Held::Action(request) => {
                let as_recorded = events.iter().any(|e| match e {
                    Event::ActionStarted { node: n, key, .. } => {
                        n == node && key == request.idempotency_key && recorded.actions.contains_key(key)
                    }
                    _ => false,
                }) && action_args(events, node).as_ref() == Some(&request.args);
                if as_recorded {
                    return false;
                }
                let other = events.iter().any(|e| matches!(e, Event::ActionStarted { node: n, .. } if n == node));
                let what = format!("{}.{}", request.system, request.action);
                json!(if other {
                    format!("would run `{what}` with other arguments")
                } else {
                    format!("would run `{what}`")
                })
            }
        };
        held.borrow_mut().insert(node.clone(), description);
        true
    };
    let opened = |node: &str| recorded.opened.get(node).copied();
    let services = Services {
        model: &model,
        retriever: &retriever,
        system: &system,
        engine: engine_choice,
        hold: Some(&hold),
        opened: &opened,
    };

    let mut state = State::new(new);
    let mut produced = vec![Event::Started(Box::new(started))];
    state.apply(new, &produced[0]);
    // People's decisions, in the order they were made, each where its step waits again.
    let decisions: Vec<&Event<Value>> = events.iter().filter(|e| decision_of(e)).collect();
    let mut used = vec![false; decisions.len()];
    let mut needs_decision: FxHashSet<SmolStr> = FxHashSet::default();
    let advance = |state: &mut State, produced: &mut Vec<Event<Value>>| -> Result<(), String> {
        let mut journal = Collect { start: None, events: Vec::new(), recorded: &recorded, cut_off: false };
        exec::advance(new, state, &services, &mut journal).map_err(|e| e.0.to_string())?;
        produced.append(&mut journal.events);
        Ok(())
    };
    advance(&mut state, &mut produced)?;
    loop {
        let next = decisions.iter().enumerate().find_map(|(k, decision)| {
            let node = decision.node()?;
            let phase = state.phase_of(new, node)?;
            // A resume applies where its step failed again.
            let open = match decision {
                Event::Resumed { .. } => phase == Phase::Failed,
                _ => matches!(phase, Phase::Waiting | Phase::Blocked) && !needs_decision.contains(node),
            };
            (!used[k] && open).then_some((k, node, phase))
        });
        let Some((k, node, phase)) = next else { break };
        used[k] = true;
        // A resume needs only that its step failed again; a decision, that its step opened
        // on the same values.
        let same_opening = match (opening(events, node), opening(&produced, node)) {
            _ if matches!(decisions[k], Event::Resumed { .. }) => true,
            (Some(before), Some(after)) => context(old, before) == context(new, after),
            _ => false,
        };
        match decide_again(new, &state, decisions[k]).filter(|_| same_opening) {
            Some(Ok(made)) => {
                for event in made {
                    state.apply(new, &event);
                    produced.push(event);
                }
                advance(&mut state, &mut produced)?;
            }
            // A blocking gate that holds otherwise now blocks: only a decision step waits.
            _ if phase == Phase::Blocked => {}
            _ => {
                needs_decision.insert(node.clone());
            }
        }
    }
    // A run that was cancelled is cancelled again where it has not ended: no decision came
    // after the cancellation.
    if let Some(cancelled) = events.iter().find(|e| matches!(e, Event::Cancelled { .. }))
        && !state.current_status().is_final()
        && let Some(Ok(made)) = decide_again(new, &state, cancelled)
    {
        for event in made {
            state.apply(new, &event);
            produced.push(event);
        }
        advance(&mut state, &mut produced)?;
    }
    let held = held.into_inner();
    let before = steps(old, events, &FxHashMap::default(), &FxHashSet::default());
    let after = steps(new, &produced, &held, &needs_decision);
    let mut diff = Vec::new();
    let names = new
        .plan
        .order()
        .iter()
        .map(|&id| &new.plan.node(id).name)
        .chain(old.plan.order().iter().map(|&id| &old.plan.node(id).name).filter(|n| new.id(n).is_none()));
    for name in names {
        let (b, a) = (before.get(name), after.get(name));
        if b != a {
            let json = |analysis: &Analysis, account: Option<&Account<'_>>| {
                account.map_or(Json::Null, |a| a.to_json(analysis, name))
            };
            diff.push(Change { node: name.to_string(), before: json(old, b), after: json(new, a) });
        }
    }
    let recorded_status = events
        .iter()
        .rev()
        .find_map(|e| match e {
            Event::Settled { status, .. } => Some(*status),
            _ => None,
        })
        .unwrap_or(Status::Running);
    let status = state.current_status();
    // A held step decides what follows it: unless the run ended or stopped anyway, its
    // outcome is open.
    let open = matches!(status, Status::Running | Status::Pending);
    let after_outcome = if open && !held.is_empty() { "undetermined" } else { status.as_str() };
    Ok(WhatIf {
        run: recorded_start.run.clone(),
        before: recorded_status.as_str().to_owned(),
        after: after_outcome.to_owned(),
        changes: diff,
    })
}

/// The arguments a recorded action step sent, as its handler received them.
fn action_args(events: &[Event<Value>], node: &str) -> Option<Json> {
    events.iter().rev().find_map(|e| match e {
        Event::ActionStarted { node: n, args, .. } if n == node => Some(exec::args_json(args)),
        _ => None,
    })
}

/// A step's result: a value (of a `let`, an inference, an output, a param), compared as a
/// value and written with its labels only when shown; or an account, as JSON.
#[derive(Debug)]
enum Account<'e> {
    Value(&'e Value, Option<&'e Event<Value>>),
    Json(Json),
}

impl PartialEq for Account<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Account::Value(a, _), Account::Value(b, _)) => a == b,
            (Account::Json(a), Account::Json(b)) => a == b,
            _ => false,
        }
    }
}

impl Account<'_> {
    fn to_json(&self, analysis: &Analysis, node: &str) -> Json {
        match self {
            Account::Value(_, Some(event)) => comparable(analysis, event)["value"].clone(),
            Account::Value(value, None) => {
                let ty = analysis.body().node(node).map(|n| n.ty.clone()).unwrap_or(flow_ir::ty::Ty::Nothing);
                crate::labels::encode(analysis.body(), value, &ty, analysis.node_labels(node), false)
            }
            Account::Json(json) => json.clone(),
        }
    }
}

/// Each step's result: a value for `let`s, inferences, outputs and params; a short account
/// for gates, reviews, approvals and actions.
fn steps<'e>(
    analysis: &Analysis,
    events: &'e [Event<Value>],
    held: &FxHashMap<SmolStr, Json>,
    needs_decision: &FxHashSet<SmolStr>,
) -> FxHashMap<SmolStr, Account<'e>> {
    let mut out: FxHashMap<SmolStr, Account<'e>> = FxHashMap::default();
    for event in events {
        let Some(node) = event.node() else {
            if let Event::Started(started) = event {
                for param in &started.params {
                    out.insert(param.name.clone(), Account::Value(&param.value, None));
                }
            }
            continue;
        };
        let value = || comparable(analysis, event)["value"].clone();
        let account = match event {
            Event::Evaluated { value, .. } => Account::Value(value, Some(event)),
            Event::Emitted { value, marks, .. } if marks.is_empty() => Account::Value(value, Some(event)),
            Event::Emitted { marks, .. } => Account::Json(json!({"value": value(), "marks": marks})),
            Event::Inferred { value, degraded: false, .. } => Account::Value(value, Some(event)),
            Event::Inferred { .. } => {
                let encoded = comparable(analysis, event);
                Account::Json(json!({"degraded": encoded["reason"], "value": encoded["value"]}))
            }
            Event::Retrieved(retrieved) => match (&retrieved.value, retrieved.degraded || retrieved.refused) {
                (Some(value), false) => Account::Value(value, Some(event)),
                _ => {
                    let encoded = comparable(analysis, event);
                    Account::Json(json!({"degraded": encoded["reason"], "value": encoded["value"]}))
                }
            },
            Event::Gate { holds: true, .. } => Account::Json(json!("holds")),
            Event::Gate { holds: false, .. } => Account::Json(json!("does not hold")),
            Event::GateDecided { decision, .. } => {
                Account::Json(json!(format!("holds; {} by {}", decision.outcome, decision.principal)))
            }
            Event::GateOverridden { decision, .. } => {
                Account::Json(json!(format!("holds; overridden by {}", decision.principal)))
            }
            Event::ReviewSkipped { .. } => Account::Json(json!("skipped")),
            Event::ReviewOpened { .. } => Account::Json(json!("waiting for a decision")),
            Event::ReviewDecided { decision, edits, .. } => {
                let mut text = format!("{} by {}", decision.outcome, decision.principal);
                for edit in edits {
                    text.push_str(&format!("; edited {}", edit.field));
                }
                Account::Json(json!(text))
            }
            Event::ApprovalRequired { row, requirement, .. } => {
                Account::Json(json!(format!("row {row} ({requirement}): waiting")))
            }
            Event::ApprovalCompleted { row, approved, approvers, requirement, .. } => {
                Account::Json(json!(match (approved, approvers.is_empty()) {
                    (true, true) => format!("row {row} ({requirement}): approved"),
                    (true, false) => format!("row {row} ({requirement}): approved by {}", approvers.join(", ")),
                    (false, _) => format!("row {row} ({requirement}): not approved"),
                }))
            }
            Event::ActionSkipped { .. } => Account::Json(json!("would not run")),
            Event::ActionStarted { system, action, .. } => {
                Account::Json(json!(format!("would run `{system}.{action}`")))
            }
            Event::Failed { error, .. } => Account::Json(json!({"failed": error})),
            Event::Resumed { decision, .. } => {
                Account::Json(json!(format!("failed; resumed by {}", decision.principal)))
            }
            Event::TimedOut { outcome: Some(outcome), .. } => {
                Account::Json(json!(format!("{outcome} by its deadline")))
            }
            Event::TimedOut { outcome: None, .. } => Account::Json(json!("blocked by its deadline")),
            Event::ModelCalled { .. }
            | Event::TimerSet { .. }
            | Event::Reminded { .. }
            | Event::Escalated { .. }
            | Event::Cancelled { .. }
            | Event::ApprovalDecided { .. }
            | Event::ActionCompleted { .. }
            | Event::Started(_)
            | Event::Migrated(_)
            | Event::Refused { .. }
            | Event::Settled { .. } => continue,
        };
        out.insert(node.clone(), account);
    }
    for (node, description) in held {
        out.insert(node.clone(), Account::Json(description.clone()));
    }
    for node in needs_decision {
        let account = match out.get(node) {
            Some(Account::Json(Json::String(text))) if text.starts_with("row ") => {
                json!(text.replace(": waiting", ": needs a new decision"))
            }
            _ => json!("needs a new decision"),
        };
        out.insert(node.clone(), Account::Json(account));
    }
    out
}
