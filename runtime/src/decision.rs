//! People's decisions and overrides, checked against the plan and the step that waits for
//! them before they become events.

use crate::analysis::Analysis;
use crate::event::{Decision, Event};
use crate::state::{Phase, State, approver_roles, matched, outstanding, slots, waiting};
use crate::value::{self, Value};
use flow_ir::PlanBody;
use flow_ir::expr::Expr;
use flow_ir::plan::NodeKind;
use flow_ir::ty::Ty;
use rustc_hash::FxHashSet;
use serde_json::Value as Json;
use smol_str::SmolStr;

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
    /// The principal holds the grant, but separation of duties forbids them the step;
    /// recorded.
    Duties { grant: String, message: String },
    /// The decision itself is wrong (unknown outcome, a step the run has not reached); not
    /// recorded.
    Invalid(String),
    /// The step was decided (or the gate overridden) already: the request came too late;
    /// not recorded.
    Settled(String),
}

pub(crate) fn code_ok(code: &str) -> bool {
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
    if state.cancelled.is_some() {
        return Err(Refusal::Settled(format!("run `{}` was cancelled: nothing waits for a decision", state.run)));
    }
    if let Some((_, gate)) = state.phases.iter().zip(&body.nodes).find(|(p, _)| **p == Phase::Blocked) {
        let message = match &gate.kind {
            NodeKind::Gate { level: flow_ir::plan::GateLevel::Block, .. } => format!(
                "run `{}` is blocked by gate `{}`: nothing can be decided until it is overridden",
                state.run, gate.name
            ),
            _ => format!(
                "run `{}` was blocked at `{}` by its deadline: nothing more can be decided",
                state.run, gate.name
            ),
        };
        return invalid(message);
    }
    if state.phases[id.index()] == Phase::Done {
        return Err(Refusal::Settled(format!("step `{step}` is not waiting for a decision: it is decided or done")));
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
        authenticated: None,
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
    // The roles a deadline escalated the step to may decide it too.
    let escalated: &[SmolStr] = state.timer(id.index()).map_or(&[], |t| &t.escalated);
    let with_escalated = |wanted: &[SmolStr]| {
        let mut all = wanted.to_vec();
        all.extend(escalated.iter().cloned());
        all
    };
    match &node.kind {
        NodeKind::Review { roles: wanted, outcomes, reasons, edits: editable, .. } => {
            let used = may(&with_escalated(wanted), format!("decide {step}"))?;
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
            let used = may(&with_escalated(approvers), format!("decide {step}"))?;
            check_gate_decision(step, input, &reason)?;
            Ok(vec![Event::GateDecided { node: node.name.clone(), decision: decision(used) }])
        }
        NodeKind::Approval { .. } => {
            let Some(wait) = state.approval(id.index()) else { return invalid(format!("`{step}` is not waiting")) };
            let needed: Vec<SmolStr> = outstanding(body, wait).into_iter().map(|(r, _)| r).collect();
            // Whoever holds no role the approval asks for is refused access first, as for a
            // review or a gate, before separation of duties is considered: the refusal names
            // the grant they lack.
            let mut asked: Vec<SmolStr> = Vec::new();
            for role in slots(&wait.terms) {
                if !asked.contains(&role) {
                    asked.push(role);
                }
            }
            may(&with_escalated(&asked), format!("decide {step}"))?;
            check_gate_decision(step, input, &reason)?;
            // A principal of a role the approval was escalated to may fill any slot still open
            // (the quorum and separation of duties stand).
            let senior = !crate::analysis::roles_used(body, roles, escalated).is_empty();
            if wait.excluded.iter().any(|p| p == principal) {
                return Err(Refusal::Duties {
                    grant: format!("decide {step}"),
                    message: format!(
                        "separation of duties: {principal} may not decide `{step}`, which is distinct from them"
                    ),
                });
            }
            if wait.approvals.iter().any(|(p, _)| p == principal) {
                return Err(Refusal::Duties {
                    grant: format!("decide {step}"),
                    message: format!(
                        "separation of duties: {principal} has already approved `{step}`; no principal counts twice"
                    ),
                });
            }
            let used = match may(&needed, format!("decide {step}")) {
                Ok(used) => used,
                Err(_) if senior && !needed.is_empty() => crate::analysis::roles_used(body, roles, escalated),
                Err(refused) => return Err(refused),
            };
            let mut events = vec![Event::ApprovalDecided { node: node.name.clone(), decision: decision(used.clone()) }];
            let mut approvals = wait.approvals.clone();
            approvals.push((principal.to_owned(), approver_roles(body, &wait.terms, escalated, roles)));
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

pub(crate) fn check_gate_decision(step: &str, input: &DecisionInput, reason: &Option<String>) -> Result<(), Refusal> {
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
pub(crate) fn decides_principal(analysis: &Analysis, path: &flow_ir::plan::EditPath) -> Option<SmolStr> {
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
        // A model, a retriever or a system that answers with a principal: all it is sent
        // decides.
        let answers = matches!(node.kind, NodeKind::Infer { .. } | NodeKind::Retrieve { .. } | NodeKind::Action { .. })
            && holds_principal(body, &node.ty);
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
pub(crate) fn holds_principal(body: &PlanBody, ty: &Ty) -> bool {
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

/// The type of the place a review may edit (`risk.tier`).
pub fn edit_type(analysis: &Analysis, path: &flow_ir::plan::EditPath) -> Option<Ty> {
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
    if state.phases[id.index()] == Phase::Done {
        return Err(Refusal::Settled(format!("gate `{gate}` no longer blocks this run: it was overridden or passed")));
    }
    if state.cancelled.is_some() {
        return Err(Refusal::Settled(format!("run `{}` was cancelled: its gates are not overridden", state.run)));
    }
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
    Ok(Event::GateOverridden { node: gate.into(), decision: coded(principal, used, "override", reason, basis)? })
}

/// A decision given with a reason code (an override, a cancellation, a resume), the code
/// checked.
fn coded(
    principal: &str,
    roles: Vec<String>,
    outcome: &str,
    reason: &str,
    basis: Option<&str>,
) -> Result<Decision, Refusal> {
    if !code_ok(reason) {
        return Err(Refusal::Invalid(format!("`{reason}` is not a reason code: letters, digits, `_` and `-` only")));
    }
    Ok(Decision {
        principal: principal.to_owned(),
        roles,
        outcome: outcome.to_owned(),
        reason: Some(reason.to_owned()),
        basis: basis.map(str::to_owned).filter(|b| !b.is_empty()),
        authenticated: None,
    })
}

/// Checks the grant of `kind` (`cancel`, `resume`) for `roles`: the roles that allow it.
fn run_grant(
    analysis: &Analysis,
    kind: flow_ir::plan::GrantKind,
    principal: &str,
    roles: &[String],
) -> Result<Vec<String>, Refusal> {
    let grantees = analysis.grantees(kind, None);
    let used = crate::analysis::roles_used(analysis.body(), roles, &grantees);
    if used.is_empty() {
        let who: Vec<&str> = grantees.iter().map(SmolStr::as_str).collect();
        let grant = kind.as_str();
        return Err(Refusal::Access {
            grant: grant.to_owned(),
            message: format!(
                "{principal} may not {grant} runs of `{}`: the flow grants `{grant}` to {}",
                analysis.body().flow.name,
                if who.is_empty() { "no role".to_owned() } else { who.join(", ") }
            ),
        });
    }
    Ok(used)
}

/// Checks a cancellation of a run that has not ended and returns its event.
pub fn cancel(
    analysis: &Analysis,
    state: &State,
    principal: &str,
    roles: &[String],
    reason: &str,
    basis: Option<&str>,
) -> Result<Event<Value>, Refusal> {
    if state.status.is_final() || state.cancelled.is_some() {
        return Err(Refusal::Settled(format!(
            "run `{}` is {}: it cannot be cancelled",
            state.run,
            state.status.as_str()
        )));
    }

    let used = run_grant(analysis, flow_ir::plan::GrantKind::Cancel, principal, roles)?;
    Ok(Event::Cancelled { decision: coded(principal, used, "cancel", reason, basis)? })
}

/// Checks a resume of a failed run and returns its event: its failed step is tried again.
pub fn resume(
    analysis: &Analysis,
    state: &State,
    principal: &str,
    roles: &[String],
    reason: &str,
) -> Result<Event<Value>, Refusal> {
    let Some((node, _)) = state.failure.as_ref().filter(|_| state.cancelled.is_none()) else {
        let why = format!("run `{}` is {}: only a failed run is resumed", state.run, state.status.as_str());
        return Err(if state.status.is_final() { Refusal::Settled(why) } else { Refusal::Invalid(why) });
    };
    let used = run_grant(analysis, flow_ir::plan::GrantKind::Resume, principal, roles)?;
    Ok(Event::Resumed { node: node.clone(), decision: coded(principal, used, "resume", reason, None)? })
}
