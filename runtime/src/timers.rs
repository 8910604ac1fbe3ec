//! Deadlines of people's steps: when each waiting step's timers fall, and the events they
//! give when they fire.
//!
//! A review, soft gate or approval with deadlines records `timer_set` when it begins to
//! wait; its timers ([`flow_ir::plan::Timing::schedule`]) fall at fixed offsets from then.
//! A timer fires by an event (`reminded`, `escalated`, `timed_out`) whose instant is the
//! instant the timer was due, whoever fires it and however late: so a replay computes the
//! same events, and a decision that arrives after a deadline is taken after it, whichever
//! process records first (the run's chain orders them; the runtime fires what is due before
//! it takes a decision).

use crate::analysis::Analysis;
use crate::event::Event;
use crate::state::{Phase, State};
use crate::value::Value;
use flow_ir::expr::Timestamp;
use flow_ir::plan::{NodeKind, Timeout, Timing};

/// A timer of a waiting step that is due at `at`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Due {
    pub at: Timestamp,
    /// The step's node index.
    pub node: usize,
    /// The deadline (`Ok`) or the reminder before it (`Err`), by index in the step's timing.
    pub kind: Result<usize, usize>,
}

/// `opened` plus `seconds`, saturating at the instants a timestamp can hold.
pub(crate) fn after(opened: Timestamp, seconds: i64) -> Timestamp {
    Timestamp { seconds: opened.seconds.saturating_add(seconds), nanos: opened.nanos }
}

fn timing(analysis: &Analysis, node: usize) -> Option<&Timing> {
    analysis.body().nodes.get(node)?.timing.as_ref()
}

/// When the waiting step `step`'s next timer falls, in seconds (what the store keeps).
pub fn due_of(analysis: &Analysis, state: &State, step: &str) -> Option<i64> {
    let id = analysis.id(step)?;
    next_of(analysis, state, id.index()).map(|due| due.at.seconds)
}

/// The next timer of the step of node index `node`, while it waits with deadlines.
pub fn next_of(analysis: &Analysis, state: &State, node: usize) -> Option<Due> {
    if state.phases.get(node) != Some(&Phase::Waiting) || state.halted() {
        return None;
    }
    let timer = state.timer(node)?;
    let (offset, kind) = *timing(analysis, node)?.schedule().get(timer.fired)?;
    Some(Due { at: after(timer.opened, offset), node, kind })
}

/// The earliest timer of the run's waiting steps (ties by the plan's order of nodes).
pub fn next(analysis: &Analysis, state: &State) -> Option<Due> {
    analysis
        .timed()
        .iter()
        .filter_map(|&node| next_of(analysis, state, node))
        .min_by(|a, b| (a.at, a.node).cmp(&(b.at, b.node)))
}

/// The event that a due timer gives.
pub fn event(analysis: &Analysis, state: &State, due: &Due) -> Option<Event<Value>> {
    let node = analysis.body().nodes.get(due.node)?;
    let timing = node.timing.as_ref()?;
    let name = node.name.clone();
    Some(match due.kind {
        Err(index) => {
            let opened = state.timer(due.node)?.opened;
            Event::Reminded { node: name, at: due.at, deadline: after(opened, timing.deadlines.get(index)?.after) }
        }
        Ok(index) => match &timing.deadlines.get(index)?.then {
            Timeout::Escalate { roles } => Event::Escalated { node: name, at: due.at, roles: roles.clone() },
            Timeout::Block => Event::TimedOut { node: name, at: due.at, outcome: None, reason: None },
            Timeout::Decide { outcome, reason } => {
                // A soft gate or an approval takes a reason code, as people's decisions do.
                let reason = match (&node.kind, reason) {
                    (_, Some(reason)) => Some(reason.to_string()),
                    (NodeKind::Review { .. }, None) => None,
                    (_, None) => Some("deadline".to_owned()),
                };
                Event::TimedOut { node: name, at: due.at, outcome: Some(outcome.to_string()), reason }
            }
        },
    })
}

/// The steps that wait with deadlines and whose timers are not set yet.
pub fn unset(analysis: &Analysis, state: &State) -> Vec<smol_str::SmolStr> {
    // A plan without deadlines costs a run nothing here.
    if analysis.timed().is_empty() || state.halted() {
        return Vec::new();
    }
    let body = analysis.body();
    (analysis.timed().iter())
        .filter(|&&i| state.phases[i] == Phase::Waiting && state.timer(i).is_none())
        .map(|&i| body.nodes[i].name.clone())
        .collect()
}

/// For a replay: whether a recorded timer that fired is the step's next timer, at its
/// instant (`None` for any other event; the executor itself gives `timer_set`, with the
/// instant the recording took from the clock).
pub fn again(analysis: &Analysis, state: &State, event: &Event<Value>) -> Option<bool> {
    let node = match event {
        Event::Reminded { node, .. } | Event::Escalated { node, .. } | Event::TimedOut { node, .. } => node,
        _ => return None,
    };
    if analysis.id(node).is_none() {
        return Some(false);
    }
    // The run's next timer, whichever step it is of: timers fire in the order they fall.
    let Some(due) = next(analysis, state) else { return Some(false) };
    Some(self::event(analysis, state, &due).as_ref() == Some(event))
}
