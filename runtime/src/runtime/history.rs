//! Runs replayed: exactly, with other params or another plan (what-if), in bulk, as shadow
//! runs of a candidate plan, and the metrics over the store.

use super::{Progress, Runtime};
use crate::analysis::Analysis;
use crate::error::{Error, Result};
use crate::event::codec::decode_event_text;
use crate::event::{Event, Status};
use crate::identity::{Principal, now};
use crate::labels;
use crate::log::chain_checked;
use crate::replay::Stored;
use crate::stats::{RunFacts, Stats};
use crate::store::{RawEvent, RunRecord, ShadowRecord};
use crate::value::Value;
use crate::whatif::{Change, WhatIf};
use flow_ir::plan::{GrantKind, NodeKind};
use flow_ir::ty::Ty;
use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::Value as Json;
use smol_str::SmolStr;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// What a replay changes: nothing (an exact replay), params, the plan.
#[derive(Clone, Default)]
pub struct ReplayChanges {
    /// Another plan of the same flow.
    pub plan: Option<Arc<Analysis>>,
    /// Params set to other values (JSON; for another plan, the others keep its defaults).
    pub params: Vec<(String, Json)>,
    /// Asks the configured provider where a model's request changed, instead of holding
    /// the step as needing re-inference.
    pub live: bool,
}

impl ReplayChanges {
    pub fn is_none(&self) -> bool {
        self.plan.is_none() && self.params.is_empty()
    }
}

/// Which stored runs a bulk replay takes.
#[derive(Clone, Debug, Default)]
pub struct RunFilter {
    pub flow: Option<String>,
    /// Runs started at or after this time (RFC 3339, or a date `2026-11-01`).
    pub since: Option<String>,
    /// A bulk replay keeps every run that does not reproduce, with its changes.
    pub details: bool,
}

/// One run in a bulk replay.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunReplay {
    pub run: String,
    /// The outcome recorded and the outcome replayed.
    pub before: String,
    pub after: String,
    /// Every step and the outcome as recorded.
    pub exact: bool,
    pub changes: Vec<Change>,
    /// Why the run could not be replayed.
    pub error: Option<String>,
}

impl RunReplay {
    pub fn to_json(&self) -> Json {
        serde_json::json!({
            "run": self.run, "exact": self.exact, "before": self.before, "after": self.after,
            "changes": self.changes.iter().map(Change::to_json).collect::<Vec<_>>(), "error": self.error,
        })
    }

    /// An exact replay: one that differs stops there, and ends `diverged`.
    fn exact(replay: crate::replay::Replay, recorded: Status) -> RunReplay {
        let after = if replay.divergence.is_none() { replay.status.as_str() } else { "diverged" };
        RunReplay {
            exact: replay.divergence.is_none(),
            changes: replay
                .divergence
                .map(|d| Change { node: d.node.unwrap_or_default(), before: d.recorded, after: d.replayed })
                .into_iter()
                .collect(),
            run: replay.run,
            before: recorded.as_str().to_owned(),
            after: after.to_owned(),
            error: None,
        }
    }

    fn failed(record: &RunRecord, error: String) -> RunReplay {
        RunReplay {
            run: record.id.clone(),
            before: record.status.as_str().to_owned(),
            after: String::new(),
            exact: false,
            changes: Vec::new(),
            error: Some(error),
        }
    }

    fn what_if(whatif: WhatIf) -> RunReplay {
        RunReplay {
            exact: whatif.exact(),
            run: whatif.run,
            before: whatif.before,
            after: whatif.after,
            changes: whatif.changes,
            error: None,
        }
    }
}

/// What a bulk replay found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReplaySummary {
    /// Runs replayed (not counting those that could not be).
    pub runs: usize,
    /// Runs whose every step and outcome came out as recorded.
    pub exact: usize,
    /// Runs that would end with another outcome.
    pub changed: usize,
    /// How many runs went from one outcome to another, by (from, to).
    pub transitions: BTreeMap<(String, String), usize>,
    /// Runs selected that `who` may not replay (skipped).
    pub not_allowed: usize,
    /// Runs that could not be replayed, with why.
    pub errors: Vec<(String, String)>,
    /// With [`RunFilter::details`], every run that does not reproduce (or could not be
    /// replayed), in the store's order.
    pub details: Vec<RunReplay>,
}

/// How many runs went from one outcome to another, as JSON.
fn transitions_json(transitions: &BTreeMap<(String, String), usize>) -> Vec<Json> {
    transitions.iter().map(|((from, to), count)| serde_json::json!({"from": from, "to": to, "count": count})).collect()
}

impl ReplaySummary {
    /// The summary as JSON, as `flowc replay --all --format json` and the API give it.
    pub fn to_json(&self, details: bool) -> Json {
        let errors: Vec<Json> =
            self.errors.iter().map(|(run, error)| serde_json::json!({"run": run, "error": error})).collect();
        let mut out = serde_json::json!({
            "runs": self.runs, "exact": self.exact, "changed": self.changed,
            "transitions": transitions_json(&self.transitions), "not_allowed": self.not_allowed, "errors": errors,
        });
        if details {
            out["details"] = self.details.iter().map(RunReplay::to_json).collect();
        }
        out
    }

    fn add(&mut self, run: RunReplay, details: bool) {
        if let Some(error) = &run.error {
            self.errors.push((run.run.clone(), error.clone()));
        } else {
            self.runs += 1;
            self.exact += usize::from(run.exact);
            if run.before != run.after {
                self.changed += 1;
                *self.transitions.entry((run.before.clone(), run.after.clone())).or_default() += 1;
            }
        }
        if details && !run.exact {
            self.details.push(run);
        }
    }
}

/// Shadow runs against their production runs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ShadowReport {
    pub runs: usize,
    /// Shadows that reached the production run's outcome.
    pub agree: usize,
    /// How many went from the production outcome to another, by (production, candidate).
    pub transitions: BTreeMap<(String, String), usize>,
    /// Shadow runs by candidate plan.
    pub candidates: BTreeMap<String, usize>,
    /// Shadows of runs `who` may not replay (left out).
    pub not_allowed: usize,
    pub shadows: Vec<ShadowRecord>,
}

impl ShadowReport {
    /// The report as JSON, as `flowc shadow-report --format json` and the API give it: with
    /// `details`, every shadow that differs from its production run.
    pub fn to_json(&self, details: bool) -> Json {
        let mut out = serde_json::json!({
            "runs": self.runs, "agree": self.agree, "differ": self.runs - self.agree,
            "transitions": transitions_json(&self.transitions), "candidates": self.candidates,
            "not_allowed": self.not_allowed,
        });
        if details {
            out["details"] = self
                .shadows
                .iter()
                .filter(|s| s.outcome != s.production || s.changes != serde_json::json!([]))
                .map(|s| {
                    serde_json::json!({
                        "candidate": s.candidate, "production": s.production, "outcome": s.outcome,
                        "changes": s.changes, "run": s.run,
                    })
                })
                .collect();
        }
        out
    }
}

/// Where a candidate plan gives more than the run's plan: a label it does not declare, a
/// field of a record both declare with fewer labels, a place inside a value the replay
/// reads from the recording (an input, a model's answer, an action's result, a value a
/// reviewer's recorded edit wrote) with fewer labels than the run's plan gives it, whatever
/// its types are named; and when models are asked (`live`), a model the run's plan does
/// not declare, or one cleared for more than there.
pub(crate) fn widens(pinned_analysis: &Analysis, candidate_analysis: &Analysis, live: bool) -> Vec<String> {
    let (pinned, candidate) = (pinned_analysis.body(), candidate_analysis.body());
    let mut out = Vec::new();
    let edited: FxHashSet<&SmolStr> = pinned
        .nodes
        .iter()
        .filter_map(|n| match &n.kind {
            NodeKind::Review { edits, .. } => Some(edits.iter().map(|e| &e.node)),
            _ => None,
        })
        .flatten()
        .collect();
    for node in &pinned.nodes {
        // What the run recorded and a replay reuses: its inputs and the params it was
        // started with, its models' answers and its systems' results.
        let recorded = matches!(
            node.kind,
            NodeKind::Input { .. }
                | NodeKind::Param { .. }
                | NodeKind::Infer { .. }
                | NodeKind::Retrieve { .. }
                | NodeKind::Action { .. }
        );
        if !recorded && !edited.contains(&node.name) {
            continue;
        }
        let Some(other) = candidate.node(&node.name) else { continue };
        let whole = (pinned_analysis.node_labels(&node.name), candidate_analysis.node_labels(&node.name));
        out.extend(lost_labels((pinned, candidate), (&node.ty, &other.ty), whole, &node.name));
    }
    for label in &pinned.labels {
        if !candidate.labels.contains(label) {
            out.push(format!("it does not declare label `{label}`"));
        }
    }
    for record in &candidate.records {
        let Some(before) = pinned.record(&record.name) else { continue };
        for field in &record.fields {
            let Some(was) = before.field(&field.name) else { continue };
            let dropped: Vec<&str> =
                was.labels.iter().filter(|l| !field.labels.contains(l)).map(SmolStr::as_str).collect();
            if !dropped.is_empty() {
                out.push(format!("field `{}.{}` loses {}", record.name, field.name, dropped.join(", ")));
            }
        }
    }
    if live {
        for model in &candidate.models {
            match pinned.model(&model.name) {
                None => out
                    .push(format!("model `{}` is not the run's plan's, and would be sent the run's data", model.name)),
                Some(was) if was.provider != model.provider => out.push(format!(
                    "model `{}` names provider \"{}\", not the run's plan's \"{}\"",
                    model.name, model.provider, was.provider
                )),
                Some(was) => {
                    let more: Vec<&str> =
                        model.clearance.iter().filter(|l| !was.clearance.contains(l)).map(SmolStr::as_str).collect();
                    if !more.is_empty() {
                        out.push(format!("model `{}` is cleared for {} besides", model.name, more.join(", ")));
                    }
                }
            }
        }
    }
    out
}

/// Each place inside a value of type `types.0` (of the run's plan, carrying `whole` as a
/// whole there) that, read as a value of `types.1` (of the candidate, carrying `whole.1`),
/// carries fewer labels (`at`, `at.field`, `at[]` for a list's items), and the labels it
/// loses. For each label, a walk over pairs of types, each pair once: as deep as records
/// nest, in time bounded by the labels and the types rather than by their places (which
/// nested records make exponentially many).
pub(crate) fn lost_labels(
    plans: (&flow_ir::PlanBody, &flow_ir::PlanBody),
    types: (&Ty, &Ty),
    whole: (&[SmolStr], &[SmolStr]),
    at: &str,
) -> Vec<String> {
    let (pinned, candidate) = plans;
    let mut lost: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for label in &pinned.labels {
        let mut seen: FxHashSet<(&Ty, &Ty)> = FxHashSet::default();
        // A place: the two types, whether the run's plan gives it the label and the
        // candidate does not (owed), whether the candidate gives it the label, and its name.
        let owed = whole.0.contains(label) && !whole.1.contains(label);
        let mut stack = vec![(types.0, types.1, owed, whole.1.contains(label), at.to_owned())];
        while let Some((was, now, owed, given, at)) = stack.pop() {
            if owed {
                lost.entry(at).or_default().push(label);
                continue;
            }
            // Given here, the label is on everything inside too: nothing below loses it.
            if given || !seen.insert((was, now)) {
                continue;
            }
            match (was.unwrap_optional(), now.unwrap_optional()) {
                (Ty::List(was), Ty::List(now)) => stack.push((was, now, false, false, format!("{at}[]"))),
                (Ty::Named(was), Ty::Named(now)) => {
                    let (Some(was), Some(now)) = (pinned.record(was), candidate.record(now)) else { continue };
                    for field in &was.fields {
                        let Some(other) = now.field(&field.name) else { continue };
                        let given = other.labels.contains(label);
                        let owed = field.labels.contains(label) && !given;
                        stack.push((&field.ty, &other.ty, owed, given, format!("{at}.{}", field.name)));
                    }
                }
                _ => {}
            }
        }
    }
    lost.into_iter().map(|(at, labels)| format!("`{at}` loses {}", labels.join(", "))).collect()
}

impl Runtime {
    /// Replays a run's events (read and believed) on the plans they were recorded under:
    /// `analysis`, the run's plan now, and, when it migrated, the plans before.
    pub(crate) fn replay_events(
        &self,
        analysis: &Arc<Analysis>,
        events: &[Event<Value>],
    ) -> Result<crate::replay::Replay> {
        if !events.iter().any(|event| matches!(event, Event::Migrated(_))) {
            return Ok(crate::replay::replay(analysis, events, self.engine));
        }
        let mut plans = Vec::new();
        for event in events {
            match event {
                Event::Started(started) => plans.push(self.plan(&started.plan)?),
                Event::Migrated(migrated) => plans.push(self.plan(&migrated.to)?),
                _ => {}
            }
        }
        let Some((first, later)) = plans.split_first() else {
            return Ok(crate::replay::replay(analysis, events, self.engine));
        };
        let later: Vec<&Analysis> = later.iter().map(|plan| &**plan).collect();
        Ok(crate::replay::replay_across(first, &later, events, self.engine))
    }

    /// Executes a stored run again from its evidence against its pinned plan and compares
    /// every event (`crate::replay`). Needs the `replay` grant; the run's hash chain is
    /// checked first, and a run whose evidence does not verify is refused.
    pub fn replay(&self, run: &str, who: &Principal) -> Result<crate::replay::Replay> {
        let (analysis, loaded, events) = self.load_events(run, false)?;
        self.check_run_grant(&analysis, &loaded, who, GrantKind::Replay, "replay")?;
        let mut replay = self.replay_events(&analysis, &events)?;
        if let Some(divergence) = &mut replay.divergence {
            let views = analysis.views(&who.roles);
            labels::redact(&mut divergence.recorded, &views);
            labels::redact(&mut divergence.replayed, &views);
        }
        Ok(replay)
    }

    /// Replays a stored run with `changes` (`crate::whatif`): what would have changed, step
    /// by step, redacted for `who`. Needs the `replay` grant and a run whose chain verifies.
    pub fn what_if(&self, run: &str, who: &Principal, changes: &ReplayChanges) -> Result<WhatIf> {
        let (analysis, loaded, events) = self.load_events(run, false)?;
        self.check_run_grant(&analysis, &loaded, who, GrantKind::Replay, "replay")?;
        self.what_if_events(&analysis, &events, Some(who), changes)
    }

    pub(super) fn what_if_events(
        &self,
        analysis: &Analysis,
        events: &[Event<Value>],
        who: Option<&Principal>,
        changes: &ReplayChanges,
    ) -> Result<WhatIf> {
        if events.iter().any(|event| matches!(event, Event::Migrated(_))) {
            return Err(Error::Input(
                "the run migrated to another version while it waited: a what-if of a migrated run is not supported \
                 yet (replay it exactly)"
                    .to_owned(),
            ));
        }
        let new = changes.plan.as_deref().unwrap_or(analysis);
        if new.body().flow.name != analysis.body().flow.name {
            return Err(Error::Plan(format!(
                "the plan replayed is of flow `{}`; the run is of flow `{}`",
                new.body().flow.name,
                analysis.body().flow.name
            )));
        }
        let mut widened = widens(analysis, new, changes.live);
        // A plan read from a file was verified, but its information flow is proved here, as
        // when a plan is installed: the candidate's labels decide what this replay shows.
        widened.extend(new.leaks());
        if !widened.is_empty() {
            return Err(Error::Plan(format!(
                "the candidate plan may only narrow what the run's plan allows, and it widens it: {}",
                widened.join("; ")
            )));
        }
        let live = |m: &flow_ir::plan::Model| self.model_provider(m);
        let whatif_changes = crate::whatif::Changes {
            plan: changes.plan.as_deref(),
            params: &changes.params,
            live: if changes.live { Some(&live) } else { None },
        };
        let mut whatif = crate::whatif::what_if(analysis, events, &whatif_changes, self.engine).map_err(Error::Plan)?;
        if let Some(who) = who {
            // Access comes from the run's plan: a candidate may take views away, never add.
            let old_views = analysis.views(&who.roles);
            let new_views: Vec<SmolStr> =
                new.views(&who.roles).into_iter().filter(|label| old_views.contains(label)).collect();
            for change in &mut whatif.changes {
                labels::redact(&mut change.before, &old_views);
                labels::redact(&mut change.after, &new_views);
            }
        }
        Ok(whatif)
    }

    /// Executes `candidate` (installed, of the same flow) on the inputs of the stored run
    /// `run` as a shadow: without actions, with the recorded model answers where the
    /// candidate asks the same and its providers where it asks otherwise; and stores what it
    /// gives beside the run.
    pub fn shadow(&self, run: &str, candidate: &Arc<Analysis>) -> Result<ShadowRecord> {
        let (analysis, _, events) = self.load_events(run, false)?;
        let changes = ReplayChanges { plan: Some(candidate.clone()), params: Vec::new(), live: true };
        let whatif = self.what_if_events(&analysis, &events, None, &changes)?;
        let changes: Vec<Json> = whatif
            .changes
            .iter()
            .map(|c| serde_json::json!({"node": c.node, "before": c.before, "after": c.after}))
            .collect();
        let shadow = ShadowRecord {
            run: run.to_owned(),
            candidate: candidate.hash().to_string(),
            flow: analysis.body().flow.name.to_string(),
            created: now().to_string(),
            production: whatif.before,
            outcome: whatif.after,
            changes: Json::Array(changes),
            signature: None,
        };
        self.store.put_shadow(&shadow, self.signer())?;
        Ok(shadow)
    }

    /// Executes a run's shadows again (after a decision on it), so that each folds in what
    /// people have decided since: a decision is reused where the candidate's step opens on
    /// the same values, as in a what-if.
    pub(super) fn refresh_shadows(&self, run: &str) -> Result<()> {
        let shadows = self.store.shadows(Some(run))?;
        // A run that migrated to another version is not shadowed further: a what-if of it
        // is not supported yet, and its shadows stay as they were before it migrated.
        if shadows.is_empty() || self.store.events(run)?.iter().any(|e| e.body.starts_with(super::load::MIGRATED)) {
            return Ok(());
        }
        for shadow in shadows {
            let candidate = self.plan(&shadow.candidate)?;
            self.shadow(run, &candidate)?;
        }
        Ok(())
    }

    /// The stored shadow runs (of `filter`'s flow, run since `filter.since`, of candidates
    /// whose hash starts with `candidate`) whose production run `who` may replay, compared
    /// with their production outcomes; the steps that differ redacted for `who`.
    pub fn shadow_report(&self, who: &Principal, filter: &RunFilter, candidate: Option<&str>) -> Result<ShadowReport> {
        let mut report = ShadowReport::default();
        for mut shadow in self.store.shadows(None)? {
            if filter.flow.as_ref().is_some_and(|f| &shadow.flow != f)
                || filter.since.as_ref().is_some_and(|since| shadow.created.as_str() < since.as_str())
                || candidate.is_some_and(|c| !shadow.candidate.starts_with(c))
            {
                continue;
            }
            let record = self.store.run(&shadow.run)?.ok_or_else(|| {
                Error::Tampered(format!("the store has a shadow of run `{}`, but not the run", shadow.run))
            })?;
            let analysis = self.plan(&record.plan)?;
            if !analysis.granted(&who.roles, GrantKind::Replay, None) {
                report.not_allowed += 1;
                continue;
            }
            labels::redact(&mut shadow.changes, &analysis.views(&who.roles));
            report.runs += 1;
            if shadow.production == shadow.outcome {
                report.agree += 1;
            } else {
                *report.transitions.entry((shadow.production.clone(), shadow.outcome.clone())).or_default() += 1;
            }
            *report.candidates.entry(shadow.candidate.clone()).or_default() += 1;
            report.shadows.push(shadow);
        }
        if report.runs == 0 && report.not_allowed > 0 {
            return Err(Error::Refused {
                grant: "replay".to_owned(),
                missing: true,
                message: format!("{} may replay none of the {} runs shadowed", who.id, report.not_allowed),
            });
        }
        Ok(report)
    }

    /// Replays every stored run that `who` may replay (of `flow`, started `since`): exactly,
    /// or with `changes`; runs on every core. A run that cannot be replayed (its evidence
    /// does not verify) is reported with why, and the others go on.
    pub fn replay_all(&self, who: &Principal, filter: &RunFilter, changes: &ReplayChanges) -> Result<ReplaySummary> {
        self.replay_all_telling(who, filter, changes, self.progress.as_deref())
    }

    /// [`Runtime::replay_all`], telling `progress` how many runs are done (a job's own,
    /// where several run at once).
    pub fn replay_all_telling(
        &self,
        who: &Principal,
        filter: &RunFilter,
        changes: &ReplayChanges,
        progress: Option<&Progress>,
    ) -> Result<ReplaySummary> {
        let flow = match (&changes.plan, &filter.flow) {
            (Some(plan), Some(flow)) if plan.body().flow.name != flow.as_str() => {
                return Err(Error::Plan(format!(
                    "the plan replayed is of flow `{}`, not `{flow}`",
                    plan.body().flow.name
                )));
            }
            (Some(plan), _) => Some(plan.body().flow.name.to_string()),
            (None, flow) => flow.clone(),
        };
        let mut summary = ReplaySummary::default();
        let mut allowed = Vec::new();
        for (record, analysis) in self.select(filter, flow.as_deref())? {
            if analysis.granted(&who.roles, GrantKind::Replay, None) {
                allowed.push(record);
            } else {
                summary.not_allowed += 1;
            }
        }
        if allowed.is_empty() && summary.not_allowed > 0 {
            // Recorded, as every refusal is (in the store's chain of refusals of no run).
            let message = format!("{} may replay none of the {} runs selected", who.id, summary.not_allowed);
            let operation = if changes.is_none() { "replay" } else { "what-if" };
            return Err(self.refuse(None, who, operation, "replay".to_owned(), message, true));
        }
        let replayed =
            self.each_run(&allowed, progress, |record, raw| self.replay_record(record, raw, who, changes))?;
        for (record, run) in allowed.iter().zip(replayed) {
            let run = run.unwrap_or_else(|| {
                RunReplay::failed(record, "no events were read for it, or its replay stopped".to_owned())
            });
            summary.add(run, filter.details);
        }
        Ok(summary)
    }

    /// Metrics over the stored runs selected by `filter` (`crate::stats`): golden signals
    /// and governance metrics per flow, counts and durations only, never values. Every
    /// run's chain is checked and the run replayed exactly, on every core.
    pub fn stats(&self, filter: &RunFilter) -> Result<Stats> {
        Ok(Stats::of(&self.facts(filter, true)?))
    }

    /// The metrics of the stored runs `filter` selects, day by day (UTC, by when each run
    /// started), oldest first, each day's as [`Runtime::stats`] gives them but without
    /// replaying the runs (their chains are checked): what a dashboard draws over time.
    pub fn daily_stats(&self, filter: &RunFilter) -> Result<Vec<(String, Stats)>> {
        let mut days: BTreeMap<String, Vec<RunFacts>> = BTreeMap::new();
        for facts in self.facts(filter, false)? {
            days.entry(facts.created.get(..10).unwrap_or_default().to_owned()).or_default().push(facts);
        }
        Ok(days.into_iter().map(|(day, facts)| (day, Stats::of(&facts))).collect())
    }

    /// What each selected run contributes to the metrics, replayed or not.
    fn facts(&self, filter: &RunFilter, replay: bool) -> Result<Vec<RunFacts>> {
        let records: Vec<RunRecord> = self.select(filter, None)?.into_iter().map(|(record, _)| record).collect();
        let facts =
            self.each_run(&records, self.progress.as_deref(), |record, raw| self.run_facts(record, raw, replay))?;
        Ok(facts
            .into_iter()
            .zip(&records)
            .map(|(facts, record)| facts.unwrap_or_else(|| RunFacts::of(record)))
            .collect())
    }

    pub(crate) fn run_facts(&self, record: &RunRecord, raw: Vec<RawEvent>, replay: bool) -> RunFacts {
        let mut facts = RunFacts::of(record);
        let at: Vec<String> = raw.iter().map(|e| e.at.clone()).collect();
        let first_at = at.first().cloned().unwrap_or_default();
        let events = self.plan(&record.plan).and_then(|analysis| {
            let events = self.verified(&analysis, record, raw)?;
            self.believed(record, &events, &first_at)?;
            Ok((events, analysis))
        });
        if let Ok((events, analysis)) = events {
            facts.complete = true;
            facts.observe(&events, &at);
            if replay {
                facts.replayed =
                    Some(self.replay_events(&analysis, &events).is_ok_and(|replay| replay.divergence.is_none()));
            }
        }
        facts
    }

    /// The runs selected by `filter` (and of `flow`, when given), oldest first, with their
    /// plans loaded.
    pub(crate) fn select(&self, filter: &RunFilter, flow: Option<&str>) -> Result<Vec<(RunRecord, Arc<Analysis>)>> {
        let flow = flow.or(filter.flow.as_deref());
        let mut out = Vec::new();
        for record in self.store.runs(None)? {
            if flow.is_some_and(|f| record.flow != f)
                || filter.since.as_ref().is_some_and(|since| record.created.as_str() < since.as_str())
            {
                continue;
            }
            let analysis = self.plan(&record.plan)?;
            out.push((record, analysis));
        }
        Ok(out)
    }

    /// `f` of each of `records` with its stored events (unparsed), in one pass over the
    /// store, on every core: the results in the order of `records` (`None` for a run of
    /// which no events were read).
    pub(crate) fn each_run<T: Send>(
        &self,
        records: &[RunRecord],
        progress: Option<&Progress>,
        f: impl Fn(&RunRecord, Vec<RawEvent>) -> T + Sync,
    ) -> Result<Vec<Option<T>>> {
        let index: FxHashMap<&str, usize> = records.iter().enumerate().map(|(i, r)| (r.id.as_str(), i)).collect();
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (sender, receiver) = std::sync::mpsc::sync_channel::<Vec<(usize, Vec<RawEvent>)>>(workers * 4);
        let receiver = Mutex::new(receiver);
        let f = &f;
        let finished = std::sync::atomic::AtomicUsize::new(0);
        let finished = &finished;
        let done: Vec<(usize, T)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    let receiver = &receiver;
                    scope.spawn(move || {
                        let mut out = Vec::new();
                        loop {
                            let batch = receiver.lock().unwrap_or_else(std::sync::PoisonError::into_inner).recv();
                            let Ok(batch) = batch else { break };
                            let size = batch.len();
                            out.extend(batch.into_iter().map(|(i, raw)| (i, f(&records[i], raw))));
                            if let Some(progress) = progress {
                                let now = finished.fetch_add(size, std::sync::atomic::Ordering::Relaxed) + size;
                                progress(now, records.len());
                            }
                        }
                        out
                    })
                })
                .collect();
            let mut batch = Vec::with_capacity(64);
            let scanned = self.store.scan_events(&mut |run, events| {
                if let Some(&i) = index.get(run) {
                    batch.push((i, events));
                    if batch.len() == 64 {
                        return sender.send(std::mem::take(&mut batch)).is_ok();
                    }
                }
                true
            });
            if !batch.is_empty() {
                let _ = sender.send(batch);
            }
            drop(sender);
            let done = handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect();
            scanned.map(|()| done)
        })?;
        let mut out: Vec<Option<T>> = (0..records.len()).map(|_| None).collect();
        for (i, value) in done {
            out[i] = Some(value);
        }
        Ok(out)
    }

    pub(super) fn replay_record(
        &self,
        record: &RunRecord,
        raw: Vec<RawEvent>,
        who: &Principal,
        changes: &ReplayChanges,
    ) -> RunReplay {
        let replayed = self.plan(&record.plan).and_then(|analysis| {
            // A run that migrated is read whole, each event with its plan.
            let migrated = raw.iter().any(|e| e.body.starts_with(super::load::MIGRATED));
            if changes.is_none() && !migrated {
                // Only the events replay needs are read; the rest are compared as stored.
                chain_checked(record, &raw)?;
                let unreadable = |e: String| Error::Tampered(format!("run `{}`: {e}", record.id));
                // Believed as loading believes a run; its status is what the replay settles.
                let first = raw.first().ok_or_else(|| unreadable("it has no events".to_owned()))?;
                match decode_event_text(&analysis, &first.body).map_err(unreadable)? {
                    Event::Started(started) => self.believed_start(record, &started, None, &first.at)?,
                    _ => return Err(unreadable("its first event is not its start".to_owned())),
                }
                let stored =
                    Stored::new(&analysis, raw.iter().map(|e| e.body.as_str()).collect()).map_err(unreadable)?;
                let replay =
                    crate::replay::replay_recording(&analysis, &[], &stored, self.engine).map_err(unreadable)?;
                return Ok(RunReplay::exact(replay, record.status));
            }
            let first_at = raw.first().map(|e| e.at.clone()).unwrap_or_default();
            let events = self.verified(&analysis, record, raw)?;
            self.believed(record, &events, &first_at)?;
            match changes.is_none() {
                true => Ok(RunReplay::exact(self.replay_events(&analysis, &events)?, record.status)),
                false => self.what_if_events(&analysis, &events, Some(who), changes).map(RunReplay::what_if),
            }
        });
        replayed.unwrap_or_else(|error| RunReplay::failed(record, error.to_string()))
    }
}
