//! Whether a run's events are events of its plan, as evidence JSON (possibly redacted):
//! each is an event this runtime writes, about a node of the plan of the right kind, in an
//! order the plan allows (a step after everything it waits for, a decision on a step that
//! waits for it, nothing after the run ended), and every value is marked with exactly the
//! labels the plan gives it — so a redaction marker can stand only where the plan labels
//! a value, with those labels, never in place of who decided or of an unlabelled value.

use flow_ir::NodeId;
use flow_ir::plan::{GateLevel, NodeKind, PlanBody};
use flow_ir::ty::Ty;
use serde_json::Value as Json;
use smol_str::SmolStr;

use crate::analysis::Analysis;
use crate::event::Event;

/// The problems of `events` (bodies, in order) against the plan of `an`, each naming the
/// event (from 0) it is about.
pub fn problems(analysis: &Analysis, events: &[Json]) -> Vec<String> {
    problems_across(analysis, &[], events)
}

/// [`problems`] of a run that may have migrated: its events are of plan `first` until a
/// `migrated` event, then of the plan it names, which must be the next of `later`, a plan
/// the run could migrate to ([`crate::migration::problems`]) while it waited.
pub fn problems_across(first: &Analysis, later: &[&Analysis], events: &[Json]) -> Vec<String> {
    let mut out = Vec::new();
    let mut analysis = first;
    let mut later = later.iter();
    let mut order = Order::new(analysis);
    for (i, body) in events.iter().enumerate() {
        let event: Event<Json> = match serde_json::from_value(body.clone()) {
            Ok(event) => event,
            Err(error) => {
                out.push(format!("event {i} is not an event of a run: {error}"));
                continue;
            }
        };
        if let Event::Migrated(migrated) = &event {
            let next = later.next().copied();
            // Waiting for a person: a step waits, no blocking gate holds, the run has not ended.
            let waiting = order.phases.contains(&Phase::Waiting)
                && !order.phases.contains(&Phase::Blocked)
                && !order.ended
                && order.settled == Some(crate::event::Status::Pending);
            match migration_problem(analysis, next, migrated, waiting) {
                Some(why) => out.push(format!("event {i} {why}")),
                None => {
                    if let Some(next) = next {
                        order = order.migrated(next);
                        analysis = next;
                    }
                }
            }
            continue;
        }
        if let Some(node) = event.node()
            && analysis.plan.node_id(node).is_none()
        {
            out.push(format!("event {i} is about `{node}`, which is not a step of the plan"));
            continue;
        }
        if let Event::Failed { node, returned: Some(returned), .. } = &event {
            let labels = analysis.failure_labels(node);
            if let Err(why) = wrapped(returned, labels, &mut |_| Ok(())) {
                out.push(format!("event {i}: what the handler of `{node}` returned {why}"));
            }
        }
        let mut marks: Vec<String> = Vec::new();
        let _ = event.clone().map_values(&mut |slot, json: Json| -> Result<(), ()> {
            match crate::event::codec::slot_type(analysis, slot, true) {
                None => marks.push(format!("has a value the plan gives no type ({slot:?})")),
                Some((ty, labels)) => {
                    if let Err(why) = marked(analysis.body(), &json, &ty, &labels) {
                        marks.push(format!("{} {why}", place(slot)));
                    }
                }
            }
            Ok(())
        });
        out.extend(marks.into_iter().map(|m| format!("event {i}: {m}")));
        if let Err(why) = order.next(i, &event) {
            out.push(format!("event {i} {why}"));
        }
    }
    if later.next().is_some() {
        out.push("the evidence carries a plan no migration of the run names".to_owned());
    }
    out
}

/// Why a recorded migration is not one the runtime makes, if it is not: from the plan the
/// run was on, while it waited for a person, to `next`, a plan it may migrate to, in a
/// deployment whose digest is the one recorded.
fn migration_problem(
    current: &Analysis,
    next: Option<&Analysis>,
    migrated: &crate::event::Migrated,
    waiting: bool,
) -> Option<String> {
    let Some(next) = next else {
        return Some(format!("migrates to plan {}, which the evidence does not carry", migrated.to));
    };
    Some(if *migrated.from != **current.hash() || *migrated.to != **next.hash() {
        format!(
            "migrates from plan {} to {}, not from the run's plan to the next the evidence carries",
            migrated.from, migrated.to
        )
    } else if !waiting {
        "migrates a run that is not waiting for a person".to_owned()
    } else if migrated.flow_version != next.body().flow.version.as_str() {
        "names another version than its plan's".to_owned()
    } else if migrated.deployment != crate::deployment::digest_of(&migrated.environment, Some(&migrated.release)) {
        "records a deployment digest that is not the digest of the environment and release it records".to_owned()
    } else {
        let problems = crate::migration::problems(current, next);
        if problems.is_empty() {
            return None;
        }
        format!("migrates where runs may not: {}", problems.join("; "))
    })
}

/// Why a recorded search is not one the runtime makes for the step `kind` of `body`, if it
/// is not: the corpus, pin and `top` of the plan; documents exactly when the search did not
/// fail, with the snapshot searched; degraded or refused only as the corpus says, with a
/// reason; and a snapshot other than the pinned one never taken silently.
fn retrieval_problem(
    body: &PlanBody,
    kind: &NodeKind,
    r: &crate::event::Retrieved<Json>,
    clock: Option<flow_ir::expr::Timestamp>,
) -> Option<String> {
    let NodeKind::Retrieve { corpus, top, .. } = kind else { return None };
    let Some(declared) = body.corpus(corpus) else { return Some(format!("searches corpus `{corpus}`, undeclared")) };
    let policy = declared.on_mismatch;
    // Whether the search was of another snapshot, or of one too old at the run's clock.
    let mismatch = r.snapshot.as_ref().is_some_and(|s| *s != declared.snapshot)
        || declared.freshness.is_some_and(|freshness| match (r.as_of, clock) {
            (Some(as_of), Some(clock)) => clock.seconds.saturating_sub(as_of.seconds) > freshness,
            _ => true,
        });
    // The documents found and the documents given, where both are visible (labelled values
    // are wrapped; redacted ones are not lists).
    let visible = |json: &Json| json.get("$value").cloned().unwrap_or_else(|| json.clone());
    let pairs = visible(&r.documents).as_array().map(Vec::len);
    let given = r.value.as_ref().map(visible).as_ref().and_then(Json::as_array).map(Vec::len);
    Some(if r.corpus != *corpus || r.pinned != declared.snapshot || r.top != *top {
        "does not name the plan's corpus, pinned snapshot and number of documents".to_owned()
    } else if r.value.is_some() == r.error.is_some() || r.value.is_some() != r.snapshot.is_some() {
        "is neither a failure nor an answer with its snapshot".to_owned()
    } else if r.value.is_none() && (pairs.is_some_and(|n| n > 0) || r.degraded || r.refused) {
        "is a failure with documents, or degraded or refused".to_owned()
    } else if pairs.zip(given).is_some_and(|(found, given)| found != given) || given.is_some_and(|n| n > *top as usize)
    {
        "does not list the documents it gives, or gives more than asked for".to_owned()
    } else if (r.degraded || r.refused) != r.reason.is_some() || (r.degraded && r.refused) {
        "is degraded or refused without its reason".to_owned()
    } else if (r.degraded && policy != flow_ir::plan::Mismatch::Degrade)
        || (r.refused && policy != flow_ir::plan::Mismatch::Refuse)
    {
        format!("is not what the corpus does with a mismatch (`on mismatch {}`)", policy.as_str())
    } else if r.value.is_some() && mismatch != (r.degraded || r.refused) {
        match mismatch {
            true => "took another snapshot than the pinned one, or one too old, as if it were".to_owned(),
            false => "is degraded or refused, though the snapshot is the pinned one and fresh".to_owned(),
        }
    } else {
        return None;
    })
}

fn place(slot: crate::event::Slot<'_>) -> String {
    use crate::event::Slot;
    match slot {
        Slot::Input(n) => format!("input `{n}`"),
        Slot::Param(n) => format!("param `{n}`"),
        Slot::Node(n) => format!("the value of `{n}`"),
        Slot::Output(n) => format!("output `{n}`"),
        Slot::Operand(n, p) => format!("operand `{p}` of `{n}`"),
        Slot::ModelArg(n, a) => format!("argument `{a}` of `{n}`"),
        Slot::ActionArg(n, a) => format!("argument `{a}` of `{n}`"),
        Slot::Edit(f) => format!("edit of `{f}`"),
        Slot::Failure(n) => format!("the failure of `{n}`"),
        Slot::Query(n) => format!("the query of `{n}`"),
        Slot::Found(n) => format!("the documents found by `{n}`"),
    }
}

fn marker_keys(object: &serde_json::Map<String, Json>) -> bool {
    ["$labels", "$salt", "$value", "$redacted"].iter().any(|key| object.contains_key(*key))
}

/// Whether `json` is `{"$labels": labels, "$salt": s, "$value": v}` (then `inner(v)`), with
/// a salt of 16 bytes in hex, or the redaction marker `{"$labels": labels, "$redacted":
/// "blake3:…"}`.
fn wrapped(json: &Json, labels: &[SmolStr], inner: &mut dyn FnMut(&Json) -> Result<(), String>) -> Result<(), String> {
    let Some(object) = json.as_object().filter(|o| o.contains_key("$labels")) else {
        return Err(format!("is not marked with the labels the plan gives it ({})", names(labels)));
    };
    let mut marked: Vec<&str> = object["$labels"].as_array().into_iter().flatten().filter_map(Json::as_str).collect();
    marked.sort_unstable();
    marked.dedup();
    let mut wanted: Vec<&str> = labels.iter().map(SmolStr::as_str).collect();
    wanted.sort_unstable();
    wanted.dedup();
    if marked != wanted {
        return Err(format!("is marked {}, but the plan gives it {}", marked.join(", "), names(labels)));
    }
    match (object.get("$value"), object.get("$redacted"), object.get("$salt")) {
        (Some(value), None, Some(Json::String(salt))) if object.len() == 3 && is_salt(salt) => inner(value),
        (Some(_), None, _) => Err("is a labelled value without its salt".to_owned()),
        (None, Some(Json::String(digest)), None) if object.len() == 2 && crate::digest::is_digest(digest) => Ok(()),
        _ => Err("is marked, but is neither a labelled value nor a redaction marker".to_owned()),
    }
}

fn is_salt(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

fn names(labels: &[SmolStr]) -> String {
    if labels.is_empty() { "no label".to_owned() } else { labels.join(", ") }
}

/// Whether a value of type `ty` carrying `labels` is written as the runtime writes it:
/// wrapped with exactly those labels (or redacted for them), and inside, each record field
/// wrapped with exactly its declared labels; nothing else marked or redacted.
fn marked(body: &PlanBody, json: &Json, ty: &Ty, labels: &[SmolStr]) -> Result<(), String> {
    if !labels.is_empty() {
        return wrapped(json, labels, &mut |inner| marked(body, inner, ty, &[]));
    }
    match (json, ty.unwrap_optional()) {
        (Json::Object(object), _) if marker_keys(object) => {
            Err("is marked or redacted, but the plan gives it no label".to_owned())
        }
        (Json::Object(object), Ty::Named(name)) if body.record(name).is_some() => {
            let record = body.record(name).expect("checked above");
            for (field_name, value) in object {
                let Some(field) = record.field(field_name) else {
                    return Err(format!("has a field `{field_name}` that `{name}` does not declare"));
                };
                marked(body, value, &field.ty, &field.labels).map_err(|why| format!("field `{field_name}` {why}"))?;
            }
            Ok(())
        }
        (Json::Array(items), Ty::List(item)) => items.iter().try_for_each(|v| marked(body, v, item, &[])),
        (Json::Object(object), _) => {
            // A value of another type written as an object (a review's or approval's record):
            // nothing in it may be marked.
            if object.values().any(has_marks) {
                Err("has a part marked the plan does not label".to_owned())
            } else {
                Ok(())
            }
        }
        (Json::Array(items), _) => {
            if items.iter().any(has_marks) {
                Err("has a part marked the plan does not label".to_owned())
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

fn has_marks(json: &Json) -> bool {
    match json {
        Json::Object(object) => marker_keys(object) || object.values().any(has_marks),
        Json::Array(items) => items.iter().any(has_marks),
        _ => false,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    NotRun,
    Started,
    Waiting,
    Blocked,
    Done,
}

/// Where each node stands as the events go by.
struct Order<'a> {
    analysis: &'a Analysis,
    phases: Vec<Phase>,
    /// The run ended (rejected, failed or cancelled): only `settled` and refusals may
    /// follow, and, after a failure, a resume of the failed step.
    ended: bool,
    /// The step whose failure ended the run.
    failed: Option<usize>,
    /// The run's clock, from its start: what a corpus's freshness is judged at.
    clock: Option<flow_ir::expr::Timestamp>,
    /// How the run stood when it last settled, while nothing but refusals came since.
    settled: Option<crate::event::Status>,
}

impl<'a> Order<'a> {
    fn new(analysis: &'a Analysis) -> Order<'a> {
        let phases = vec![Phase::NotRun; analysis.body().nodes.len()];
        Order { analysis, phases, ended: false, failed: None, clock: None, settled: None }
    }

    /// The order of the run on plan `next`, where it stands now: each step as far as it got
    /// (the steps `next` adds have not run).
    fn migrated<'b>(self, next: &'b Analysis) -> Order<'b> {
        let body = self.analysis.body();
        let phases = next
            .body()
            .nodes
            .iter()
            .map(|node| match body.nodes.iter().position(|old| old.name == node.name) {
                Some(n) => self.phases[n],
                None => Phase::NotRun,
            })
            .collect();
        let failed = self.failed.and_then(|n| next.plan.node_id(&body.nodes[n].name)).map(NodeId::index);
        Order { analysis: next, phases, ended: self.ended, failed, clock: self.clock, settled: self.settled }
    }

    /// Whether node index `n` has deadlines.
    fn body_node_timed(&self, n: usize) -> bool {
        self.analysis.body().nodes.get(n).is_some_and(|node| node.timing.is_some())
    }

    fn ready(&self, id: NodeId) -> bool {
        self.analysis.plan.predecessors(id).iter().all(|(p, _)| self.phases[p.index()] == Phase::Done)
    }

    /// Takes event `i` into account, or says why it cannot come now.
    fn next(&mut self, i: usize, event: &Event<Json>) -> Result<(), String> {
        match event {
            Event::Settled { status, .. } => self.settled = Some(*status),
            Event::Refused { .. } => {}
            _ => self.settled = None,
        }
        match event {
            Event::Started(started) if i == 0 => {
                self.clock = Some(started.clock);
                for (n, node) in self.analysis.body().nodes.iter().enumerate() {
                    if matches!(node.kind, NodeKind::Input { .. } | NodeKind::Param { .. }) {
                        self.phases[n] = Phase::Done;
                    }
                }
                return Ok(());
            }
            Event::Started(_) => return Err("starts the run again".to_owned()),
            _ if i == 0 => return Err("comes before the run's start".to_owned()),
            Event::Refused { .. } | Event::Settled { .. } => return Ok(()),
            Event::Resumed { node, .. } => {
                let failed = self.analysis.plan.node_id(node).map(NodeId::index);
                if !self.ended || failed.is_none() || failed != self.failed {
                    return Err(format!("resumes `{node}`, whose failure did not end the run"));
                }
                if let Some(n) = failed {
                    self.phases[n] = Phase::NotRun;
                }
                (self.ended, self.failed) = (false, None);
                return Ok(());
            }
            _ if self.ended => return Err("comes after the run ended".to_owned()),
            Event::Cancelled { .. } => {
                self.ended = true;
                return Ok(());
            }
            _ => {}
        }
        let Some(node) = event.node() else { return Ok(()) };
        let Some(id) = self.analysis.plan.node_id(node) else { return Ok(()) };
        let n = id.index();
        let kind = &self.analysis.plan.node(id).kind;
        let phase = self.phases[n];
        let blocked = self.phases.contains(&Phase::Blocked);
        let step = |this: &Self, allowed: bool| -> Result<(), String> {
            if !allowed {
                return Err(format!("is not an event of `{node}`, a {}", kind.keyword()));
            }
            if blocked {
                return Err(format!("runs `{node}` while a blocking gate holds the run"));
            }
            if phase != Phase::NotRun && phase != Phase::Started {
                return Err(format!("runs `{node}`, which had already run"));
            }
            if !this.ready(id) {
                return Err(format!("runs `{node}` before what it waits for"));
            }
            Ok(())
        };
        let decision = |allowed: bool, wanted: Phase| -> Result<(), String> {
            if !allowed {
                return Err(format!("is not an event of `{node}`, a {}", kind.keyword()));
            }
            // Only an override of the blocking gate itself is decided while it holds the run.
            if blocked && wanted != Phase::Blocked {
                return Err(format!("decides `{node}` while a blocking gate holds the run"));
            }
            if phase != wanted {
                return Err(format!("decides `{node}`, which was not waiting for it"));
            }
            Ok(())
        };
        let mut next = Phase::Done;
        match event {
            Event::Evaluated { .. } => step(self, matches!(kind, NodeKind::Let { .. }))?,
            Event::Gate { level, holds, .. } => {
                let same = matches!(kind, NodeKind::Gate { level: l, .. } if l == level);
                step(self, same)?;
                next = match (level, holds) {
                    (GateLevel::Soft, true) => Phase::Waiting,
                    (GateLevel::Block, true) => Phase::Blocked,
                    _ => Phase::Done,
                };
            }
            Event::GateDecided { decision: d, .. } => {
                decision(matches!(kind, NodeKind::Gate { level: GateLevel::Soft, .. }), Phase::Waiting)?;
                self.ended |= d.outcome == "reject";
            }
            Event::GateOverridden { .. } => {
                decision(matches!(kind, NodeKind::Gate { level: GateLevel::Block, .. }), Phase::Blocked)?
            }
            Event::ModelCalled { .. } => {
                step(self, matches!(kind, NodeKind::Infer { .. }))?;
                next = Phase::Started;
            }
            Event::Inferred { .. } => step(self, matches!(kind, NodeKind::Infer { .. }))?,
            // A search that failed or was refused is followed by the step's failure.
            Event::Retrieved(retrieved) => {
                step(self, matches!(kind, NodeKind::Retrieve { .. }))?;
                if phase != Phase::NotRun {
                    return Err(format!("searches for `{node}` again without a resume"));
                }
                if let Some(why) = retrieval_problem(self.analysis.body(), kind, retrieved, self.clock) {
                    return Err(format!("records a search of `{node}` that {why}"));
                }
                if retrieved.value.is_none() || retrieved.refused {
                    next = Phase::Started;
                }
            }
            Event::ReviewSkipped { .. } => step(self, matches!(kind, NodeKind::Review { condition: Some(_), .. }))?,
            Event::ReviewOpened { .. } => {
                step(self, matches!(kind, NodeKind::Review { .. }))?;
                next = Phase::Waiting;
            }
            Event::ReviewDecided { .. } => decision(matches!(kind, NodeKind::Review { .. }), Phase::Waiting)?,
            Event::ApprovalRequired { .. } => {
                step(self, matches!(kind, NodeKind::Approval { .. }))?;
                next = Phase::Waiting;
            }
            Event::ApprovalDecided { .. } => {
                decision(matches!(kind, NodeKind::Approval { .. }), Phase::Waiting)?;
                next = Phase::Waiting;
            }
            Event::ApprovalCompleted { .. } => {
                // An automatic row completes the approval as it runs.
                if phase == Phase::NotRun {
                    step(self, matches!(kind, NodeKind::Approval { .. }))?;
                } else {
                    decision(matches!(kind, NodeKind::Approval { .. }), Phase::Waiting)?;
                }
            }
            Event::ActionSkipped { .. } => step(self, matches!(kind, NodeKind::Action { condition: Some(_), .. }))?,
            Event::ActionStarted { .. } => {
                step(self, matches!(kind, NodeKind::Action { .. }))?;
                next = Phase::Started;
            }
            Event::ActionCompleted { .. } => step(self, matches!(kind, NodeKind::Action { .. }))?,
            Event::Emitted { .. } => step(self, matches!(kind, NodeKind::Emit { .. }))?,
            Event::Failed { .. } => {
                step(self, true)?;
                self.ended = true;
                self.failed = Some(n);
            }
            Event::TimerSet { .. } | Event::Reminded { .. } | Event::Escalated { .. } => {
                decision(kind.is_governance() && self.body_node_timed(n), Phase::Waiting)?;
                next = Phase::Waiting;
            }
            Event::TimedOut { outcome, .. } => {
                decision(kind.is_governance() && self.body_node_timed(n), Phase::Waiting)?;
                match outcome {
                    None => next = Phase::Blocked,
                    Some(outcome) => self.ended |= outcome == "reject" && matches!(kind, NodeKind::Gate { .. }),
                }
            }
            Event::Started(_)
            | Event::Refused { .. }
            | Event::Settled { .. }
            | Event::Cancelled { .. }
            | Event::Resumed { .. }
            | Event::Migrated(_) => {}
        }
        self.phases[n] = next;
        Ok(())
    }
}
