//! A run's state, and how each event changes it; what a run waits for.
//!
//! **Invariant:** a run's state changes only as its events say: through [`State::apply`] of
//! an event, both while it executes and when it is rebuilt from the store after a crash, so
//! the two cannot disagree. The executor creates events; the caller records them. A run that
//! keeps no evidence (evaluated in memory) skips the events of its rules, gates and
//! approval matrices and makes the change their events would make, through the functions
//! `apply` calls for them ([`State::done`], [`State::gate`], [`State::approval_required`],
//! [`State::approval_completed`]), and takes its first event's values ([`State::start`]).

use crate::analysis::Analysis;
use crate::event::{Event, Started, Status};
use crate::interp::Scope;
use crate::value::Value;
use flow_ir::expr::{Expr, Timestamp};
use flow_ir::plan::{GateLevel, NodeKind, Requirement};
use flow_ir::ty::Ty;
use flow_ir::{NodeId, PlanBody};
use smol_str::SmolStr;

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

/// The timers of a waiting step with deadlines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepTimer {
    /// When the step began to wait: its timers run from then.
    pub opened: Timestamp,
    /// How many of its timers ([`flow_ir::plan::Timing::schedule`]) fired.
    pub fired: usize,
    /// The roles deadlines escalated it to, who may decide it too.
    pub escalated: Vec<SmolStr>,
    /// When a deadline decided or blocked the step.
    pub timed_out: Option<Timestamp>,
}

/// The state of a run.
#[derive(Clone, Debug)]
pub struct State {
    pub run: String,
    pub principal: String,
    pub clock: Timestamp,
    pub values: Vec<Option<Value>>,
    pub phases: Vec<Phase>,
    /// Which steps gave a degraded answer, which gates were overridden, and how many times
    /// each action was started, by node index: empty until one is set (most runs set none),
    /// so read them through [`State::degraded`], [`State::overridden`] and
    /// [`State::attempts`].
    degraded: Vec<bool>,
    overridden: Vec<bool>,
    /// The approvals that wait, by node index (few: no allocation for runs without).
    approvals: Vec<(usize, ApprovalWait)>,
    /// The timers of steps with deadlines, by node index (few, as approvals).
    timers: Vec<(usize, StepTimer)>,
    action_attempts: Vec<u32>,
    /// The soft gate that was rejected, and by whom.
    pub rejected: Option<(SmolStr, String)>,
    pub failure: Option<(SmolStr, String)>,
    /// Who cancelled the run.
    pub cancelled: Option<String>,
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
        self.1.id(name).is_some_and(|id| self.0.degraded(id.index()))
    }

    fn clock(&self) -> Timestamp {
        self.0.clock
    }

    fn starter(&self) -> Option<&str> {
        Some(&self.0.principal)
    }
}

/// The record an approval gives when it ends: `approved` or not, by `approvers`, under
/// `requirement`.
pub(crate) fn approval_record(approved: bool, approvers: &[String], requirement: String) -> Value {
    Value::Record(vec![
        ("approved".into(), Value::Bool(approved)),
        ("approvers".into(), Value::List(approvers.iter().map(|p| Value::Principal(p.into())).collect())),
        ("requirement".into(), Value::Text(requirement)),
    ])
}

/// The record a review gives when it did not run.
pub(crate) fn skipped_review() -> Value {
    Value::Record(vec![
        ("basis".into(), Value::Absent),
        ("outcome".into(), Value::Variant("skipped".into())),
        ("reason".into(), Value::Absent),
        ("reviewer".into(), Value::Absent),
    ])
}

/// Sets node `i`'s entry of a per-node vector that is empty until an entry is set (a node
/// beyond the plan's body, `n` nodes, has none).
fn set<T: Clone + Default + PartialEq>(entries: &mut Vec<T>, i: usize, n: usize, value: T) {
    if i >= n || (i >= entries.len() && value == T::default()) {
        return;
    }
    if entries.len() < n {
        entries.resize(n, T::default());
    }
    entries[i] = value;
}

pub(crate) fn set_path(target: &mut Value, path: &[SmolStr], new: Value) -> bool {
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
            degraded: Vec::new(),
            overridden: Vec::new(),
            approvals: Vec::new(),
            timers: Vec::new(),
            action_attempts: Vec::new(),
            rejected: None,
            failure: None,
            cancelled: None,
            status: Status::Running,
            body_nodes: n,
        }
    }

    fn id(&self, analysis: &Analysis, node: &str) -> usize {
        // INVARIANT: events name nodes of the run's plan (checked when they are decoded).
        analysis.id(node).map_or(self.body_nodes, NodeId::index)
    }

    /// Node `i`, a rule, gave `value` ([`Event::Evaluated`]); also how an event that ends a
    /// step records its value.
    pub(crate) fn done(&mut self, i: usize, value: Value) {
        if i < self.body_nodes {
            self.values[i] = Some(value);
            self.phases[i] = Phase::Done;
        }
    }

    /// Whether step `i` gave a degraded answer (a model's fallback, a search's).
    pub fn degraded(&self, i: usize) -> bool {
        self.degraded.get(i).copied().unwrap_or(false)
    }

    /// Which steps gave a degraded answer, by node index; a node beyond the end did not.
    pub fn degraded_steps(&self) -> &[bool] {
        &self.degraded
    }

    /// Whether gate `i` was overridden.
    pub fn overridden(&self, i: usize) -> bool {
        self.overridden.get(i).copied().unwrap_or(false)
    }

    /// How many times action `i` was started.
    pub fn attempts(&self, i: usize) -> u32 {
        self.action_attempts.get(i).copied().unwrap_or(0)
    }

    /// Gate `i` of `level` was evaluated and `holds` or not ([`Event::Gate`]).
    pub(crate) fn gate(&mut self, i: usize, level: GateLevel, holds: bool) {
        let phase = match (level, holds) {
            (_, false) | (GateLevel::Info, true) => Phase::Done,
            (GateLevel::Soft, true) => Phase::Waiting,
            (GateLevel::Block, true) if self.overridden(i) => Phase::Done,
            (GateLevel::Block, true) => Phase::Blocked,
        };
        if phase == Phase::Done {
            self.done(i, Value::Nothing);
        } else {
            self.phase(i, phase);
        }
    }

    /// Approval `i` waits for approvers, as `wait` says ([`Event::ApprovalRequired`]).
    pub(crate) fn approval_required(&mut self, i: usize, wait: ApprovalWait) {
        self.phase(i, Phase::Waiting);
        if i < self.body_nodes {
            self.approvals.retain(|(node, _)| *node != i);
            self.approvals.push((i, wait));
        }
    }

    /// Approval `i` ended, `approved` or not, by `approvers` ([`Event::ApprovalCompleted`]).
    pub(crate) fn approval_completed(&mut self, i: usize, approved: bool, approvers: &[String], requirement: String) {
        self.done(i, approval_record(approved, approvers, requirement));
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

    /// The timers of the step of node index `i`, once it waits with deadlines.
    pub fn timer(&self, i: usize) -> Option<&StepTimer> {
        self.timers.iter().find(|(node, _)| *node == i).map(|(_, timer)| timer)
    }

    /// When deadlines decided or blocked steps, in the order they did.
    pub fn timers_timed_out(&self) -> Vec<&Timestamp> {
        let mut at: Vec<&Timestamp> = self.timers.iter().filter_map(|(_, t)| t.timed_out.as_ref()).collect();
        at.sort();
        at
    }

    fn timer_mut(&mut self, i: usize) -> Option<&mut StepTimer> {
        self.timers.iter_mut().find(|(node, _)| *node == i).map(|(_, timer)| timer)
    }

    pub fn value(&self, analysis: &Analysis, node: &str) -> Option<&Value> {
        analysis.id(node).and_then(|id| self.values[id.index()].as_ref())
    }

    pub fn phase_of(&self, analysis: &Analysis, node: &str) -> Option<Phase> {
        analysis.id(node).map(|id| self.phases[id.index()])
    }

    /// [`State::apply`] of a run's first event, taking its values.
    pub fn start(&mut self, analysis: &Analysis, started: Started<Value>) {
        let Started { run, principal, clock, inputs, params, .. } = started;
        let values = inputs.into_iter().chain(params).map(|n| (n.name, n.value));
        self.begin(analysis, (run, principal, clock), values);
    }

    /// The state of a run started by `principal` at `clock`, with its inputs' and params'
    /// values.
    fn begin<N: AsRef<str>>(
        &mut self,
        analysis: &Analysis,
        (run, principal, clock): (String, String, Timestamp),
        values: impl Iterator<Item = (N, Value)>,
    ) {
        self.run = run;
        self.principal = principal;
        self.clock = clock;
        for (name, value) in values {
            let i = self.id(analysis, name.as_ref());
            self.done(i, value);
        }
        self.status = Status::Running;
    }

    /// Changes the state as the event says.
    pub fn apply(&mut self, analysis: &Analysis, event: &Event<Value>) {
        match event {
            Event::Started(started) => {
                let values = started.inputs.iter().chain(&started.params).map(|n| (&n.name, n.value.clone()));
                self.begin(analysis, (started.run.clone(), started.principal.clone(), started.clock), values);
            }
            Event::Evaluated { node, value, .. } => self.done(self.id(analysis, node), value.clone()),
            Event::Emitted { node, .. } => self.done(self.id(analysis, node), Value::Nothing),
            Event::Gate { node, level, holds, .. } => self.gate(self.id(analysis, node), *level, *holds),
            Event::GateDecided { node, decision } => {
                let i = self.id(analysis, node);
                self.done(i, Value::Nothing);
                if decision.outcome == "reject" {
                    self.rejected = Some((node.clone(), decision.principal.clone()));
                }
            }
            Event::GateOverridden { node, .. } => {
                let i = self.id(analysis, node);
                set(&mut self.overridden, i, self.body_nodes, true);
                self.done(i, Value::Nothing);
            }
            Event::ModelCalled { .. } | Event::Refused { .. } => {}
            // The steps waiting take the new version's deadlines from the migration on.
            Event::Migrated(migrated) => {
                for (node, timer) in &mut self.timers {
                    if self.phases.get(*node) == Some(&Phase::Waiting) {
                        *timer = StepTimer { opened: migrated.at, fired: 0, escalated: Vec::new(), timed_out: None };
                    }
                }
            }
            Event::Inferred { node, value, degraded, .. } => {
                let i = self.id(analysis, node);
                set(&mut self.degraded, i, self.body_nodes, *degraded);
                self.done(i, value.clone());
            }
            // A search that failed or was refused gives nothing: the failure that follows says so.
            Event::Retrieved(retrieved) => {
                if let (Some(value), false) = (&retrieved.value, retrieved.refused) {
                    let i = self.id(analysis, &retrieved.node);
                    set(&mut self.degraded, i, self.body_nodes, retrieved.degraded);
                    self.done(i, value.clone());
                }
            }
            Event::ReviewSkipped { node, .. } => {
                let i = self.id(analysis, node);
                self.done(i, skipped_review());
            }
            Event::ReviewOpened { node, .. } => self.phase(self.id(analysis, node), Phase::Waiting),
            Event::ApprovalRequired { node, row, requirement, terms, excluded, .. } => {
                let wait = ApprovalWait {
                    row: *row,
                    requirement: requirement.clone(),
                    terms: terms.clone(),
                    excluded: excluded.clone(),
                    approvals: Vec::new(),
                };
                self.approval_required(self.id(analysis, node), wait);
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
                let escalated = self.timer(i).map(|t| t.escalated.clone()).unwrap_or_default();
                if decision.outcome == "approve"
                    && let Some(wait) = self.approvals.iter_mut().find(|(node, _)| *node == i).map(|(_, w)| w)
                {
                    let roles = approver_roles(analysis.body(), &wait.terms, &escalated, &decision.roles);
                    wait.approvals.push((decision.principal.clone(), roles));
                }
            }
            Event::ApprovalCompleted { node, approved, approvers, requirement, .. } => {
                self.approval_completed(self.id(analysis, node), *approved, approvers, requirement.clone());
            }
            Event::ActionSkipped { node, .. } => {
                let i = self.id(analysis, node);
                let nothing = analysis.id(node).is_some_and(|id| analysis.plan.node(id).ty == Ty::Nothing);
                self.done(i, if nothing { Value::Nothing } else { Value::Absent });
            }
            Event::ActionStarted { node, .. } => {
                let i = self.id(analysis, node);
                let attempts = self.attempts(i) + 1;
                set(&mut self.action_attempts, i, self.body_nodes, attempts);
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
            Event::Cancelled { decision } => self.cancelled = Some(decision.principal.clone()),
            Event::Resumed { node, .. } => {
                let i = self.id(analysis, node);
                self.phase(i, Phase::NotRun);
                self.failure = None;
                self.status = Status::Running;
            }
            Event::Settled { status, .. } => self.status = *status,
            Event::TimerSet { node, opened } => {
                let i = self.id(analysis, node);
                if i < self.body_nodes {
                    self.timers.retain(|(node, _)| *node != i);
                    self.timers
                        .push((i, StepTimer { opened: *opened, fired: 0, escalated: Vec::new(), timed_out: None }));
                }
            }
            Event::Reminded { node, .. } => {
                let i = self.id(analysis, node);
                if let Some(timer) = self.timer_mut(i) {
                    timer.fired += 1;
                }
            }
            Event::Escalated { node, roles, .. } => {
                let i = self.id(analysis, node);
                if let Some(timer) = self.timer_mut(i) {
                    timer.fired += 1;
                    timer.escalated.extend(roles.iter().cloned());
                    timer.escalated.sort();
                    timer.escalated.dedup();
                }
            }
            Event::TimedOut { node, at, outcome, reason } => {
                let i = self.id(analysis, node);
                if let Some(timer) = self.timer_mut(i) {
                    timer.fired += 1;
                    timer.timed_out = Some(*at);
                }
                let kind = analysis.id(node).map(|id| &analysis.plan.node(id).kind);
                match (kind, outcome) {
                    (_, None) => self.phase(i, Phase::Blocked),
                    (Some(NodeKind::Review { .. }), Some(outcome)) => {
                        let record = Value::Record(vec![
                            ("basis".into(), Value::Absent),
                            ("outcome".into(), Value::Variant(outcome.as_str().into())),
                            ("reason".into(), reason.clone().map_or(Value::Absent, |r| Value::Variant(r.into()))),
                            ("reviewer".into(), Value::Absent),
                        ]);
                        self.done(i, record);
                    }
                    (Some(NodeKind::Approval { .. }), Some(outcome)) => {
                        let approvers = self
                            .approval(i)
                            .map(|w| w.approvals.iter().map(|(p, _)| Value::Principal(p.as_str().into())).collect())
                            .unwrap_or_default();
                        let requirement = self.approval(i).map(|w| w.requirement.clone()).unwrap_or_default();
                        let record = Value::Record(vec![
                            ("approved".into(), Value::Bool(outcome == "approve")),
                            ("approvers".into(), Value::List(approvers)),
                            ("requirement".into(), Value::Text(requirement)),
                        ]);
                        self.done(i, record);
                    }
                    (_, Some(outcome)) => {
                        self.done(i, Value::Nothing);
                        if outcome == "reject" {
                            self.rejected = Some((node.clone(), "its deadline".to_owned()));
                        }
                    }
                }
            }
        }
    }

    /// Whether the run can go no further now: a soft gate rejected it, a step failed, or a
    /// blocking gate holds (until it is overridden).
    pub fn halted(&self) -> bool {
        self.cancelled.is_some()
            || self.failure.is_some()
            || self.rejected.is_some()
            || self.phases.contains(&Phase::Blocked)
    }

    /// How the run stands now.
    pub fn current_status(&self) -> Status {
        if self.cancelled.is_some() {
            Status::Cancelled
        } else if self.failure.is_some() {
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

/// The roles an approver's approval counts for: theirs, and, for a principal of a role the
/// approval was escalated to, any role the approval asks for (one slot, still).
pub fn approver_roles(body: &PlanBody, terms: &[Requirement], escalated: &[SmolStr], roles: &[String]) -> Vec<String> {
    let mut counted = roles.to_vec();
    if !crate::analysis::roles_used(body, roles, escalated).is_empty() {
        counted.extend(slots(terms).into_iter().map(String::from));
        counted.sort();
        counted.dedup();
    }
    counted
}

/// The requirement of an approval row, as people read it: `1 of manager, 1 of finance_director`.
pub fn requirement_text(terms: &[Requirement]) -> String {
    let mut out = String::with_capacity(32);
    for (n, term) in terms.iter().enumerate() {
        if n > 0 {
            out.push_str(", ");
        }
        match term {
            Requirement::Auto => out.push_str("auto"),
            Requirement::Count { count, role } => {
                // Every approval step writes it.
                let mut buf = [0u8; 20];
                out.extend(crate::digest::decimal_digits(u64::from(*count), &mut buf).iter().map(|&d| char::from(d)));
                out.push_str(" of ");
                out.push_str(role);
            }
            Requirement::AllOf(roles) => {
                out.push_str("all of ");
                for (r, role) in roles.iter().enumerate() {
                    if r > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(role);
                }
            }
        }
    }
    out
}

/// Whether `terms` ask for any approver ([`slots`] is not empty).
pub fn has_slots(terms: &[Requirement]) -> bool {
    terms.iter().any(|term| match term {
        Requirement::Auto => false,
        Requirement::Count { count, .. } => *count > 0,
        Requirement::AllOf(roles) => !roles.is_empty(),
    })
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
    if wait.approvals.is_empty() {
        // Every slot is open: the roles of the terms, in their order, counted.
        let mut out: Vec<(SmolStr, usize)> = Vec::new();
        let mut open = |role: &SmolStr, count: usize| match out.iter_mut().find(|(r, _)| r == role) {
            Some((_, n)) => *n += count,
            None => out.push((role.clone(), count)),
        };
        for term in &wait.terms {
            match term {
                Requirement::Auto | Requirement::Count { count: 0, .. } => {}
                Requirement::Count { count, role } => open(role, *count as usize),
                Requirement::AllOf(roles) => roles.iter().for_each(|role| open(role, 1)),
            }
        }
        return out;
    }
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

/// One line on how the run stands, without values (they may be labelled).
pub fn summary(analysis: &Analysis, state: &State, status: Status) -> String {
    let waiting = if status == Status::Pending { waiting(analysis, state) } else { Vec::new() };
    summary_of(analysis, state, status, &waiting)
}

/// [`summary`], given the steps the run waits for ([`waiting`]), which a view shows too.
pub fn summary_of(analysis: &Analysis, state: &State, status: Status, waiting: &[WaitingStep]) -> String {
    use std::fmt::Write as _;
    let body = analysis.body();
    let mut out = String::with_capacity(64);
    // Writing to a `String` cannot fail.
    let _ = match status {
        Status::Failed => match &state.failure {
            Some((node, error)) => write!(out, "step `{node}` failed: {error}"),
            None => out.write_str("failed"),
        },
        Status::Rejected => match &state.rejected {
            Some((gate, by)) => write!(out, "gate `{gate}` was rejected by {by}"),
            None => out.write_str("rejected"),
        },
        Status::Blocked => {
            let blocked = body.nodes.iter().enumerate().filter(|(i, _)| state.phases[*i] == Phase::Blocked);
            write_blocked(&mut out, blocked.map(|(_, node)| node));
            Ok(())
        }
        Status::Pending => {
            write_waiting(&mut out, waiting);
            Ok(())
        }
        Status::Completed => {
            write_completed(&mut out, body);
            Ok(())
        }
        Status::Running => out.write_str("running"),
        Status::Cancelled => match &state.cancelled {
            Some(by) => write!(out, "cancelled by {by}"),
            None => out.write_str("cancelled"),
        },
    };
    out
}

/// The summary of a run that the blocking gates `blocked` hold.
pub(crate) fn write_blocked<'n>(out: &mut String, blocked: impl Iterator<Item = &'n flow_ir::plan::Node>) {
    out.push_str("blocked by ");
    for (n, node) in blocked.enumerate() {
        out.push_str(if n == 0 { "gate `" } else { "; gate `" });
        out.push_str(&node.name);
        out.push('`');
        if let NodeKind::Gate { message: Some(message), .. } = &node.kind {
            out.push_str(": ");
            out.push_str(message);
        }
    }
}

/// The summary of a run of `body` that completed.
pub(crate) fn write_completed(out: &mut String, body: &PlanBody) {
    if body.outputs.is_empty() {
        out.push_str("completed");
        return;
    }
    out.push_str("completed; emitted ");
    for (n, output) in body.outputs.iter().enumerate() {
        if n > 0 {
            out.push_str(", ");
        }
        out.push_str(&output.name);
    }
}

/// The summary of a run whose steps `waiting` wait for a decision.
pub(crate) fn write_waiting(out: &mut String, waiting: &[WaitingStep]) {
    out.push_str("waiting for ");
    for (n, (step, _, roles)) in waiting.iter().enumerate() {
        out.push_str(if n == 0 { "`" } else { ", `" });
        out.push_str(step);
        out.push_str("` (");
        for (r, role) in roles.iter().enumerate() {
            if r > 0 {
                out.push_str(", ");
            }
            out.push_str(role);
        }
        out.push(')');
    }
}

/// A step that waits: its name, its kind (`review`, `gate`, `approval`), who may decide it.
pub type WaitingStep = (SmolStr, &'static str, Vec<String>);

/// The steps waiting for a decision, with the roles that may decide now.
pub fn waiting(analysis: &Analysis, state: &State) -> Vec<WaitingStep> {
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
            NodeKind::Review { roles, .. } => ("review", roles.iter().map(|r| r.as_str().to_owned()).collect()),
            NodeKind::Gate { approvers, .. } => ("gate", approvers.iter().map(|r| r.as_str().to_owned()).collect()),
            NodeKind::Approval { .. } => {
                let roles = state
                    .approval(i)
                    .map(|w| outstanding(body, w).into_iter().map(|(r, _)| String::from(r)).collect())
                    .unwrap_or_default();
                ("approval", roles)
            }
            _ => continue,
        };
        let mut roles = roles;
        if let Some(timer) = state.timer(i) {
            roles.extend(timer.escalated.iter().map(ToString::to_string));
            roles.sort();
            roles.dedup();
        }
        out.push((node.name.clone(), kind, roles));
    }
    out
}
