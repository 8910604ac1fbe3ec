//! What is told about runs: their status, what waits for whom, a run's values, its story
//! and its evidence, each redacted for the viewer.

use super::Runtime;
use crate::analysis::Analysis;
use crate::error::{Error, Result};
use crate::event::{Event, Status};
use crate::evidence;
use crate::identity::{Principal, now};
use crate::labels;
use crate::log::Loaded;
use crate::narrative::RunView;
use crate::state::{self, State};
use crate::store::{StoredEvent, Waiting};
use crate::value::Value;
use flow_ir::expr::Timestamp;
use flow_ir::plan::GrantKind;
use rustc_hash::FxHashMap;
use serde_json::Value as Json;
use smol_str::SmolStr;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A run's page: how it stands, its story, and what became of each node
/// ([`Runtime::page`]).
pub struct RunPage {
    pub view: RunView,
    pub narrative: String,
    pub marks: BTreeMap<String, flow_ir::render::Mark>,
    pub analysis: Arc<Analysis>,
}

/// A page of the steps waiting for a principal ([`Runtime::inbox`]).
#[derive(Debug)]
pub struct Inbox {
    /// How many steps wait for them in all, as the store lists them.
    pub total: usize,
    pub items: Vec<InboxItem>,
    /// Runs that could not be read (their plan or evidence does not load): left out, so that
    /// one run does not keep everyone from their inbox; listed, so that it is not unseen.
    pub unreadable: Vec<(String, String)>,
}

/// A step waiting for a principal, checked against its run.
#[derive(Debug)]
pub struct InboxItem {
    pub waiting: Waiting,
    /// When the run began (RFC 3339).
    pub created: String,
    /// Why the run waits, as far as the principal may see (`RunView::why`).
    pub why: Vec<String>,
}

/// A run's events, and the values of the expressions asked for (or why one has none).
pub type Inspection = (Vec<Event<Value>>, Vec<std::result::Result<Value, String>>);

/// A run's values as they stand, where an output reads as what was emitted (an `emit`
/// step itself gives nothing).
pub(crate) struct Inspected<'r> {
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

impl Runtime {
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
            .map(|expr| {
                crate::interp::eval_with(analysis.body(), &scope, args, expr).map_err(|error| {
                    // A step the run has not reached has no value: that is where the run
                    // stands, not a fault of the runtime.
                    let mut unreached: Vec<String> = expr
                        .nodes_read()
                        .into_iter()
                        .filter(|node| crate::interp::Scope::node(&scope, node).is_none())
                        .map(|node| format!("`{node}`"))
                        .collect();
                    unreached.dedup();
                    match error {
                        crate::interp::EvalError::Internal(_) if !unreached.is_empty() => format!(
                            "it reads {}, which the run has not reached (it is {})",
                            unreached.join(", "),
                            loaded.state.current_status().as_str()
                        ),
                        error => error.to_string(),
                    }
                })
            })
            .collect();
        Ok((events, values))
    }

    /// How a run stands; outputs are shown only as far as `who` may view them.
    pub fn status(&self, run: &str, who: Option<&Principal>) -> Result<RunView> {
        let (analysis, loaded) = self.load(run, false)?;
        Ok(self.view(&analysis, &loaded, who))
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
            for (step, kind, roles) in state::waiting(&analysis, &loaded.state) {
                if let Some(who) = who {
                    let wanted: Vec<SmolStr> = roles.iter().map(SmolStr::new).collect();
                    if crate::analysis::roles_used(analysis.body(), &who.roles, &wanted).is_empty() {
                        continue;
                    }
                }
                out.push(Waiting {
                    run: run.clone(),
                    flow: analysis.body().flow.name.to_string(),
                    due: crate::timers::due_of(&analysis, &loaded.state, &step),
                    step: step.to_string(),
                    kind: kind.to_owned(),
                    roles,
                });
            }
        }
        Ok(out)
    }

    /// One page of the steps waiting for `who`, those whose next reminder or deadline falls
    /// first at the top, then the oldest runs first: `take` steps after
    /// the first `skip`, and how many wait in all. Which steps wait for whom is read from
    /// the store's list of waiting steps (so that ten thousand waiting runs are not loaded to
    /// show fifty); each step on the page is then checked against its run, loaded with its
    /// evidence checked, and left out unless the run's events say it waits for `who`: a
    /// list changed behind the runtime's back may hide a step, never show one that does not
    /// wait for `who`. A
    /// pending run the list does not name is loaded whole, as [`Runtime::pending`] does.
    pub fn inbox(&self, who: &Principal, skip: usize, take: usize) -> Result<Inbox> {
        let mine = |analysis: &Analysis, roles: &[String]| {
            let wanted: Vec<SmolStr> = roles.iter().map(SmolStr::new).collect();
            !crate::analysis::roles_used(analysis.body(), &who.roles, &wanted).is_empty()
        };
        // The steps for `who`, with when their run began, in the store's order (oldest runs
        // first, then by run and step).
        let mut listed: Vec<(String, Waiting)> = Vec::new();
        let mut plan: Option<Arc<Analysis>> = None;
        let mut unreadable: Vec<(String, String)> = Vec::new();
        // A run that does not load is left out and named; the store failing fails the page.
        let mut unread = |run: &str, error: Error| -> Result<()> {
            if error.kind() == crate::ErrorKind::Store {
                return Err(error);
            }
            if !unreadable.iter().any(|(r, _)| r == run) {
                unreadable.push((run.to_owned(), error.to_string()));
            }
            Ok(())
        };
        for pending in self.store.pending_steps()? {
            if plan.as_ref().is_none_or(|a| a.plan.hash() != pending.plan) {
                plan = match self.plan(&pending.plan) {
                    Ok(analysis) => Some(analysis),
                    Err(error) => {
                        unread(&pending.run, error)?;
                        None
                    }
                };
            }
            let Some(analysis) = &plan else { continue };
            match pending.waiting {
                Some(waiting) if mine(analysis, &waiting.roles) => listed.push((pending.created, waiting)),
                Some(_) => {}
                None => {
                    let (analysis, loaded) = match self.load(&pending.run, false) {
                        Ok(loaded) => loaded,
                        Err(error) => {
                            unread(&pending.run, error)?;
                            continue;
                        }
                    };
                    for (step, kind, roles) in state::waiting(&analysis, &loaded.state) {
                        if mine(&analysis, &roles) {
                            let flow = analysis.body().flow.name.to_string();
                            let step = step.to_string();
                            let due = crate::timers::due_of(&analysis, &loaded.state, &step);
                            let waiting =
                                Waiting { run: pending.run.clone(), flow, step, kind: kind.to_owned(), roles, due };
                            listed.push((pending.created.clone(), waiting));
                        }
                    }
                }
            }
        }
        // The steps whose next reminder or deadline falls first, then the others, the oldest
        // runs first (a stable sort keeps the store's order among equals).
        listed.sort_by(|(a_created, a), (b_created, b)| {
            (a.due.is_none(), a.due, a_created).cmp(&(b.due.is_none(), b.due, b_created))
        });
        let total = listed.len();
        let mut items = Vec::new();
        // The run last loaded: its id, its flow, the steps that wait in it for `who`, why.
        let mut read: Option<ReadRun> = None;
        for (created, waiting) in listed.into_iter().skip(skip).take(take) {
            // A run loaded once for its steps next to one another on the page (a run whose
            // steps fall due at other times may be loaded again further down).
            if read.as_ref().is_none_or(|(run, ..)| *run != waiting.run) {
                let (analysis, loaded) = match self.load(&waiting.run, false) {
                    Ok(loaded) => loaded,
                    Err(error) => {
                        unread(&waiting.run, error)?;
                        read = None;
                        continue;
                    }
                };
                // The steps the run's events say wait, for whom.
                let steps = state::waiting(&analysis, &loaded.state)
                    .into_iter()
                    .filter(|(_, _, roles)| mine(&analysis, roles))
                    .map(|step| {
                        let due = crate::timers::due_of(&analysis, &loaded.state, &step.0);
                        (step, due)
                    })
                    .collect();
                let why = self.view(&analysis, &loaded, Some(who)).why;
                read = Some((waiting.run.clone(), analysis.body().flow.name.to_string(), steps, why));
            }
            let Some((_, flow, steps, why)) = &read else { continue };
            let Some(((_, kind, roles), due)) = steps.iter().find(|((step, _, _), _)| *step == waiting.step) else {
                continue;
            };
            // What the page says of the step is the run's, not the list's.
            let waiting =
                Waiting { kind: (*kind).to_owned(), roles: roles.clone(), flow: flow.clone(), due: *due, ..waiting };
            items.push(InboxItem { waiting, created, why: why.clone() });
        }
        Ok(Inbox { total, items, unreadable })
    }

    /// The values the review `step` of `run` may edit, as they stand, each as JSON redacted
    /// for `who`'s `view` grants (a labelled place they may not view holds only its labels):
    /// what a person deciding sees beside each field. Nothing for a step that edits nothing.
    pub fn edit_values(&self, run: &str, step: &str, who: &Principal) -> Result<Vec<(String, Json)>> {
        let (analysis, loaded) = self.load(run, false)?;
        let body = analysis.body();
        let Some(flow_ir::plan::NodeKind::Review { edits, .. }) = body.node(step).map(|n| &n.kind) else {
            return Ok(Vec::new());
        };
        let views = analysis.views(&who.roles);
        let mut out = Vec::new();
        for path in edits {
            let (Some(value), Some(node)) = (loaded.state.value(&analysis, &path.node), body.node(&path.node)) else {
                continue;
            };
            let mut json = labels::encode(body, value, &node.ty, analysis.node_labels(&path.node), false);
            labels::redact(&mut json, &views);
            let mut at = &json;
            for field in &path.fields {
                // Through a labelled value the viewer may see, to its fields; a redacted one
                // stays as it is (its labels, no value).
                if at.get("$redacted").is_some() {
                    break;
                }
                at = at.get("$value").unwrap_or(at);
                at = at.get(field.as_str()).unwrap_or(&Json::Null);
            }
            out.push((path.to_string(), at.clone()));
        }
        Ok(out)
    }

    /// The evidence bundle of a run, redacted for `who`'s `view` grants; needs `read
    /// evidence` (a refusal is recorded).
    pub fn evidence(&self, run: &str, who: &Principal) -> Result<Json> {
        let (analysis, loaded) = self.load(run, false)?;
        self.check_run_grant(&analysis, &loaded, who, GrantKind::ReadEvidence, "read evidence of")?;
        self.bundle(&analysis, run, who)
    }

    pub(super) fn bundle(&self, analysis: &Analysis, run: &str, who: &Principal) -> Result<Json> {
        let views = analysis.views(&who.roles);
        // The record (head, signature, place in the log) and the events must be of one
        // moment: read again when another process appended between the two reads.
        let mut attempts = 0;
        let (events, record) = loop {
            let record = self.store.run(run)?.ok_or_else(|| Error::UnknownRun(format!("no run `{run}`")))?;
            let events = self.redacted_events(run, &views)?;
            attempts += 1;
            if events.len() as u64 == record.seq {
                break (events, record);
            }
            if attempts == 8 {
                return Err(Error::Conflict(format!(
                    "run `{run}` kept changing while its evidence was read; try again"
                )));
            }
        };
        // The plan the run started on, and those it migrated to, in order.
        let stored_plan = |hash: &str| -> Result<Json> {
            let bytes = self.store.plan(hash)?.unwrap_or_default();
            serde_json::from_slice(&bytes).map_err(|e| Error::Tampered(format!("the stored plan is not JSON: {e}")))
        };
        let started = events.first().and_then(|e| e.body.get("plan")).and_then(Json::as_str);
        let plan_hash = started.unwrap_or(&record.plan).to_owned();
        let plan = stored_plan(&plan_hash)?;
        let later_plans = events
            .iter()
            .filter(|e| e.body.get("event").and_then(Json::as_str) == Some("migrated"))
            .map(|e| stored_plan(e.body.get("to").and_then(Json::as_str).unwrap_or_default()))
            .collect::<Result<Vec<_>>>()?;
        let public_key =
            events.first().and_then(|e| e.body.get("signing_key")).and_then(Json::as_str).map(str::to_owned);
        let signature = match (&public_key, &record.signature) {
            (Some(key), Some(value)) => Some((key.as_str(), value.as_str())),
            _ => None,
        };
        let exported_at = now().to_string();
        let head = crate::checkpoint::Entry {
            kind: crate::checkpoint::Kind::Run,
            subject: record.id.clone(),
            seq: record.seq,
            hash: record.head.clone(),
        };
        let log = Self::log_proof(&*self.store, &head, &format!("the head of run `{}`", record.id))?;
        Ok(evidence::bundle(evidence::BundleParts {
            run,
            plan_hash: &plan_hash,
            plan,
            later_plans,
            events: &events,
            signature,
            exported_by: &who.id,
            views: views.iter().map(|v| v.to_string()).collect(),
            exported_at: &exported_at,
            log,
        }))
    }

    /// The inclusion proof of `wanted` (a run's head, the release log's last entry) in the
    /// store's log, under its checkpoint, as a bundle carries it; `None` for a store whose
    /// log is empty.
    pub(super) fn log_proof(
        store: &dyn crate::store::Store,
        wanted: &crate::checkpoint::Entry,
        what: &str,
    ) -> Result<Option<Json>> {
        use crate::checkpoint::Entry;
        // The log and its checkpoint are read again when another process appended between
        // the two reads.
        let (mut entries, mut checkpoint) = (store.log()?, store.checkpoint()?);
        for _ in 0..8 {
            if checkpoint.as_ref().is_none_or(|c| c.size == entries.len() as u64) {
                break;
            }
            checkpoint = store.checkpoint()?;
            entries = store.log()?;
        }
        let Some(checkpoint) = checkpoint else { return Ok(None) };
        if checkpoint.size != entries.len() as u64 {
            return Err(Error::Tampered(format!(
                "the store's checkpoint covers {} entries, but its log has {}: the store was changed",
                checkpoint.size,
                entries.len()
            )));
        }
        let Some(index) = entries.iter().rposition(|e| e == wanted) else {
            return Err(Error::Tampered(format!("the store's log does not hold {what}: the store was changed")));
        };
        let leaves: Vec<[u8; 32]> = entries.iter().map(Entry::leaf).collect();
        let proof = crate::checkpoint::inclusion_proof(index, &leaves);
        Ok(Some(serde_json::json!({
            "index": index,
            "proof": crate::checkpoint::proof_to_hex(&proof),
            "checkpoint": checkpoint,
        })))
    }

    /// The path the run took through its plan, as its events tell it: what became of each
    /// node it reached (nodes it did not reach are not named), and the plan, for a picture
    /// of it (`flow_ir::render::svg_of_run`). Names no value; `who` must be able to see the
    /// run at all.
    pub fn path(
        &self,
        run: &str,
        who: Option<&Principal>,
    ) -> Result<(Arc<Analysis>, BTreeMap<String, flow_ir::render::Mark>)> {
        let (analysis, events, _) = self.narrative_parts(run, who)?;
        let marks = marks_of(&analysis, &events);
        Ok((analysis, marks))
    }

    /// A run's page, from one reading of the run: how it stands, its story and the path it
    /// took ([`Runtime::status`], [`Runtime::show`] and [`Runtime::path`] at once), redacted
    /// for `who`.
    pub fn page(&self, run: &str, who: &Principal) -> Result<RunPage> {
        let (analysis, events, view) = self.narrative_parts(run, Some(who))?;
        let narrative = crate::narrative::show(&analysis, &events, &view);
        let marks = marks_of(&analysis, &events);
        Ok(RunPage { view, narrative, marks, analysis })
    }

    /// The run told for a person on one page, redacted for `who` (every labelled value
    /// hidden without a principal).
    pub fn show(&self, run: &str, who: Option<&Principal>) -> Result<String> {
        let (analysis, events, view) = self.narrative_parts(run, who)?;
        Ok(crate::narrative::show(&analysis, &events, &view))
    }

    pub(super) fn narrative_parts(
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
    pub(super) fn view(&self, analysis: &Analysis, loaded: &Loaded, who: Option<&Principal>) -> RunView {
        self.view_of(analysis, loaded, who, loaded.state.run.clone())
    }

    /// [`Runtime::view`] of a run done with: its id taken rather than copied.
    pub(super) fn view_ending(&self, analysis: &Analysis, mut loaded: Loaded, who: Option<&Principal>) -> RunView {
        let run = std::mem::take(&mut loaded.state.run);
        self.view_of(analysis, &loaded, who, run)
    }

    /// The view of `loaded`, whose id is `run`.
    fn view_of(&self, analysis: &Analysis, loaded: &Loaded, who: Option<&Principal>, run: String) -> RunView {
        // The labels `who` may see, for the outputs and the explanation.
        let needed = loaded.log.durable || !loaded.log.outputs.is_empty();
        let views = who.filter(|_| needed).map(|w| analysis.views(&w.roles)).unwrap_or_default();
        let state = &loaded.state;
        let status = state.current_status();
        let outputs = outputs(analysis, &views, |name| loaded.log.outputs.get(name));
        let waiting = state::waiting(analysis, state);
        RunView {
            run,
            flow: analysis.body().flow.name.as_str().to_owned(),
            status,
            summary: state::summary_of(analysis, state, status, &waiting),
            pending: pending(waiting),
            outputs,
            marks: loaded.log.marks.clone(),
            why: if loaded.log.durable { crate::narrative::why(analysis, state, &views) } else { Vec::new() },
        }
    }
}

/// The outputs a view gives (`value_of` an output's value, once emitted): labelled values
/// redacted but for the labels in `views`.
pub(super) fn outputs<'v>(
    analysis: &Analysis,
    views: &[SmolStr],
    value_of: impl Fn(&str) -> Option<&'v Value>,
) -> BTreeMap<String, Json> {
    let mut outputs = BTreeMap::new();
    for output in &analysis.body().outputs {
        if let Some(value) = value_of(output.name.as_str()) {
            let mut json =
                labels::encode(analysis.body(), value, &output.ty, analysis.node_labels(&output.name), false);
            labels::redact(&mut json, views);
            outputs.insert(output.name.as_str().to_owned(), json);
        }
    }
    outputs
}

/// The steps a run waits for, as its view gives them.
pub(super) fn pending(waiting: Vec<state::WaitingStep>) -> Vec<(String, String, Vec<String>)> {
    waiting.into_iter().map(|(s, k, r)| (String::from(s), k.to_owned(), r)).collect()
}

/// What became of each node of a run, from its events (redacted or not: only their kinds,
/// nodes and outcomes are read).
fn marks_of(analysis: &Analysis, events: &[StoredEvent]) -> BTreeMap<String, flow_ir::render::Mark> {
    use flow_ir::render::Mark;
    let mut marks = BTreeMap::new();
    for node in &analysis.body().nodes {
        if matches!(node.kind, flow_ir::plan::NodeKind::Input { .. } | flow_ir::plan::NodeKind::Param { .. }) {
            marks.insert(node.name.to_string(), Mark::Ran);
        }
    }
    for event in events {
        let body = &event.body;
        let Some(node) = body.get("node").and_then(Json::as_str) else { continue };
        let holds = body.get("holds").and_then(Json::as_bool) == Some(true);
        let outcome = body.pointer("/decision/outcome").and_then(Json::as_str);
        let mark = match body.get("event").and_then(Json::as_str).unwrap_or_default() {
            "evaluated" | "inferred" | "emitted" | "action_completed" | "review_decided" | "gate_overridden" => {
                Mark::Ran
            }
            "gate" => match body.get("level").and_then(Json::as_str) {
                _ if !holds => Mark::Ran,
                Some("block") => Mark::Held,
                Some("soft") => Mark::Waiting,
                _ => Mark::Ran,
            },
            // A search that gave its documents (what follows a failed or refused one says so).
            "retrieved" if body.get("value").is_some() && body.get("refused") != Some(&Json::Bool(true)) => Mark::Ran,
            "gate_decided" if outcome == Some("approve") => Mark::Ran,
            "gate_decided" => Mark::Held,
            "review_skipped" | "action_skipped" => Mark::Skipped,
            "review_opened" | "approval_required" | "action_started" => Mark::Waiting,
            "approval_completed" if body.get("approved").and_then(Json::as_bool) == Some(true) => Mark::Ran,
            "approval_completed" => Mark::Held,
            "failed" => Mark::Failed,
            _ => continue,
        };
        marks.insert(node.to_owned(), mark);
    }
    // A cancelled run waits for nobody: what it waited for was not reached.
    if events.iter().any(|e| e.body.get("event").and_then(Json::as_str) == Some("cancelled")) {
        marks.retain(|_, mark| *mark != Mark::Waiting);
    }
    marks
}

/// A run the inbox read: its id, its flow, the steps that wait in it for the viewer with when
/// their next timer falls, and why it waits.
type ReadRun = (String, String, Vec<(state::WaitingStep, Option<i64>)>, Vec<String>);
