//! Monitors over the store: what each commit adds to the counts of the monitors of its
//! run's plan ([`tallies`], stored in the commit's transaction as one row), and their
//! evaluation ([`Runtime::evaluate_monitors`]), which folds the rows of the commits since the
//! last one into per-minute counts and raises and resolves alerts.
//!
//! A monitor's value over a window is the sum of the counts of the window's minutes, so an
//! evaluation reads the commits since the last one and one row per minute of each window,
//! whatever the number of runs stored. Counts go to the minute of the commit that recorded
//! what they count, by the runtime's clock: a run's start, an inference, a gate, the opening
//! and end of a human step. A monitor counts the runs of the plans that declare it, from when they
//! declare it; its series ([`Monitor::series`]) goes on across versions that count alike.

use flow_ir::expr::Timestamp;
use flow_ir::monitor::{Metric, Monitor};
use flow_ir::plan::GateLevel;
use serde_json::json;
use smol_str::SmolStr;

use crate::analysis::Analysis;
use crate::error::Result;
use crate::event::{Event, Status};
use crate::state::State;
use crate::store::{Alert, Notice, Tally};
use crate::value::Value;

/// The human step an event opens, if any.
fn opening(event: &Event<Value>) -> Option<&SmolStr> {
    match event {
        Event::ReviewOpened { node, .. } | Event::ApprovalRequired { node, .. } => Some(node),
        Event::Gate { node, level: GateLevel::Soft, holds: true, .. } => Some(node),
        _ => None,
    }
}

/// The human step an event ends, if any.
fn ending(event: &Event<Value>) -> Option<&SmolStr> {
    match event {
        Event::ReviewDecided { node, .. }
        | Event::GateDecided { node, .. }
        | Event::ApprovalCompleted { node, .. }
        | Event::TimedOut { node, .. } => Some(node),
        _ => None,
    }
}

/// Whether a run of the plan is watched by monitors (its log keeps a [`Watch`]).
pub(crate) fn watched(analysis: &Analysis) -> bool {
    !analysis.body().monitors.is_empty()
}

/// Whether the plan's monitors need to know when steps opened (a latency is watched).
pub(crate) fn watches_latency(analysis: &Analysis) -> bool {
    analysis.body().monitors.iter().any(|m| m.metric == Metric::Latency)
}

/// What a run's log keeps for its plan's monitors, rebuilt from its events when it is
/// loaded: when its waiting steps opened, and the status it last stopped with (a blocked
/// run settles `blocked` again each time it is advanced, and stops once).
#[derive(Clone, Debug, Default)]
pub(crate) struct Watch {
    opened: Vec<(SmolStr, i64)>,
    stopped: Option<Status>,
}

/// What one event meant for the monitors.
#[derive(Clone, Copy, Debug, Default)]
struct Noted<'e> {
    /// The step it ended, and how long the step waited (seconds).
    ended: Option<(&'e str, i64)>,
    /// The status the run stopped with, when the event is a new stop.
    stopped: Option<Status>,
}

impl Watch {
    /// Notes an event of the run, recorded at `recorded` (seconds; the time of openings is
    /// needed only when a latency is watched).
    fn note<'e>(&mut self, event: &'e Event<Value>, recorded: i64) -> Noted<'e> {
        let mut noted = Noted::default();
        if let Some(node) = opening(event) {
            self.opened.retain(|(n, _)| n != node);
            self.opened.push((node.clone(), recorded));
        }
        match event {
            // A step with deadlines waits from the instant its timers run from.
            Event::TimerSet { node, opened } => {
                self.opened.retain(|(n, _)| n != node);
                self.opened.push((node.clone(), opened.seconds));
            }
            Event::Settled { status: Status::Pending | Status::Running, .. } => self.stopped = None,
            Event::Settled { status, .. } => {
                if self.stopped != Some(*status) {
                    noted.stopped = Some(*status);
                }
                self.stopped = Some(*status);
            }
            _ => {}
        }
        if let Some(node) = ending(event)
            && let Some(i) = self.opened.iter().position(|(n, _)| n == node)
        {
            let (_, from) = self.opened.swap_remove(i);
            // A deadline ended the step at its instant, whenever its timer was fired.
            let end = match event {
                Event::TimedOut { at, .. } => at.seconds,
                _ => recorded,
            };
            noted.ended = Some((node.as_str(), end - from));
        }
        noted
    }

    /// Notes a stored event, recorded at `at` (RFC 3339; `None` when no latency is watched).
    pub(crate) fn stored(&mut self, event: &Event<Value>, at: Option<&str>) {
        let recorded = at.and_then(flow_ir::time::parse_timestamp).map_or(0, |(seconds, _)| seconds);
        self.note(event, recorded);
    }
}

/// What a commit adds for the monitors.
pub(crate) struct Counted {
    /// One per series its events count in.
    pub(crate) tallies: Vec<Tally>,
    /// The run ended in this minute, and is to be checked (evidence, replay).
    pub(crate) check: Option<i64>,
}

/// What `events`, recorded now in one commit of a run of `analysis`, add to the counts of
/// its plan's monitors, one tally per series; and whether the run ended, to be checked.
/// `watch` is the run's, kept up to date. Nothing for a plan without monitors.
pub(crate) fn tallies(
    analysis: &Analysis,
    state: &State,
    events: &[Event<Value>],
    watch: &mut Watch,
    now: Timestamp,
) -> Counted {
    let monitors = &analysis.body().monitors;
    if monitors.is_empty() {
        return Counted { tallies: Vec::new(), check: None };
    }
    let checks = monitors.iter().any(|m| m.metric.checks_runs());
    let mut check = None;
    // Monitors that count the same series (two windows of one metric) count it once.
    let mut series: Vec<(String, &Monitor, (i64, i64))> = Vec::with_capacity(monitors.len());
    for monitor in monitors {
        let name = monitor.series();
        if !series.iter().any(|(s, _, _)| *s == name) {
            series.push((name, monitor, (0, 0)));
        }
    }
    for event in events {
        let noted = watch.note(event, now.seconds);
        if checks && noted.stopped.is_some_and(Status::is_final) {
            check = Some(now.seconds.div_euclid(60));
        }
        for (_, monitor, sum) in &mut series {
            let (counted, of) = count(analysis, state, monitor, event, noted);
            *sum = (sum.0 + counted, sum.1 + of);
        }
    }
    let flow = analysis.body().flow.name.as_str();
    let tallies = series
        .into_iter()
        .filter(|(_, _, sum)| *sum != (0, 0))
        .map(|(series, _, (counted, of))| Tally {
            flow: flow.to_owned(),
            series,
            minute: now.seconds.div_euclid(60),
            counted,
            of,
        })
        .collect();
    Counted { tallies, check }
}

/// What one event adds to one monitor's counts: (counted, of), given what it meant
/// (`noted`: the step it ended and how long that waited, a new stop).
fn count(analysis: &Analysis, state: &State, monitor: &Monitor, event: &Event<Value>, noted: Noted<'_>) -> (i64, i64) {
    let subject = monitor.subject.as_deref();
    let of = |node: &str| subject.is_none_or(|s| s == node);
    match (monitor.metric, event) {
        (Metric::Runs, Event::Started(_)) => (1, 0),
        // A run stops when it is decided, fails, is cancelled or blocked (a blocked run that
        // is overridden goes on, and stops again; one cancelled stops again too).
        (Metric::Outcome, _) => match noted.stopped {
            Some(status) => (i64::from(subject == Some(status.as_str())), 1),
            None => (0, 0),
        },
        (Metric::Degraded, Event::Inferred { node, degraded, .. }) if of(node) => (i64::from(*degraded), 1),
        // A search that gave its documents, degraded (another snapshot taken) or not.
        (Metric::Degraded, Event::Retrieved(r)) if of(&r.node) && r.value.is_some() && !r.refused => {
            (i64::from(r.degraded), 1)
        }
        (Metric::Blocked, Event::Gate { node, level: GateLevel::Block, holds, .. }) if of(node) => {
            (i64::from(*holds), 1)
        }
        (Metric::Overrides, Event::Gate { node, level: GateLevel::Block, holds: true, .. }) if of(node) => (0, 1),
        (Metric::Overrides, Event::GateOverridden { node, .. }) if of(node) => (1, 0),
        (Metric::Escalated, Event::Escalated { node, at, .. }) if of(node) => {
            (i64::from(first_escalation(analysis, state, node, at)), 0)
        }
        (Metric::TimedOut, Event::TimedOut { node, .. }) if of(node) => (1, 0),
        (Metric::Escalated | Metric::TimedOut, event) if opening(event).is_some_and(|n| of(n)) => (0, 1),
        (Metric::Latency, _) => match noted.ended {
            Some((node, waited)) if of(node) => (i64::from(waited > monitor.threshold), 1),
            _ => (0, 0),
        },
        _ => (0, 0),
    }
}

/// Whether an escalation at `at` is the step's first (so that a step escalated twice is
/// counted once among its openings).
fn first_escalation(analysis: &Analysis, state: &State, node: &str, at: &Timestamp) -> bool {
    let timer = analysis.id(node).and_then(|id| state.timer(id.index()));
    let first = analysis
        .body()
        .node(node)
        .and_then(|n| n.timing.as_ref())
        .and_then(|t| t.deadlines.iter().find(|d| !d.then.is_final()));
    match (timer, first) {
        (Some(timer), Some(first)) => crate::timers::after(timer.opened, first.after) == *at,
        _ => false,
    }
}

/// What could not be read or evaluated, and why.
pub type Failures = Vec<(String, String)>;

/// A monitor as the store's evaluation sees it: the flow's newest plan declaring it.
#[derive(Clone, Debug)]
pub struct Watched {
    pub flow: String,
    pub version: String,
    pub monitor: Monitor,
}

/// One monitor's state after an evaluation.
#[derive(Clone, Debug)]
pub struct Reading {
    pub watched: Watched,
    pub counted: i64,
    pub of: i64,
    /// `None`: a ratio with nothing to be a ratio of.
    pub holds: Option<bool>,
    /// The alert open for it after the evaluation, if any.
    pub alert: Option<Alert>,
}

impl Reading {
    pub fn value(&self) -> String {
        self.watched.monitor.value_text(self.counted, self.of)
    }
}

/// A series whose stored counts differ from what the runs' evidence says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recount {
    pub flow: String,
    pub series: String,
    /// (counted, of), over all time.
    pub stored: (i64, i64),
    pub recounted: (i64, i64),
}

/// What one evaluation did.
#[derive(Clone, Debug, Default)]
pub struct Evaluation {
    pub readings: Vec<Reading>,
    pub raised: Vec<Alert>,
    pub resolved: Vec<Alert>,
    /// What could not be evaluated, and why: a plan of the store that does not load, a
    /// monitor whose counts could not be read. The others were evaluated.
    pub failed: Failures,
}

/// Orders versions: `2.10.0` after `2.9.1`, a release after its pre-releases (`2.0.0`
/// after `2.0.0-rc1`).
fn version_key(version: &str) -> (Vec<u64>, bool, String) {
    let (core, pre) = match version.split_once('+').map_or(version, |(v, _)| v).split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (version.split_once('+').map_or(version, |(v, _)| v), None),
    };
    (core.split('.').map(|part| part.parse().unwrap_or(0)).collect(), pre.is_none(), pre.unwrap_or_default().to_owned())
}

impl crate::Runtime {
    /// The monitors of the flows in the store: each flow's, from its newest version in the
    /// store (by semantic version); and the plans that do not load, with why.
    pub fn monitors(&self) -> Result<(Vec<Watched>, Failures)> {
        let mut newest: std::collections::BTreeMap<String, std::sync::Arc<Analysis>> = Default::default();
        let mut failed = Vec::new();
        for hash in self.store.plans()? {
            let analysis = match self.plan(&hash) {
                Ok(analysis) => analysis,
                Err(error) => {
                    failed.push((format!("plan {hash}"), error.to_string()));
                    continue;
                }
            };
            let flow = analysis.body().flow.name.to_string();
            let newer = newest.get(&flow).is_none_or(|current| {
                let (a, b) = (&analysis.body().flow.version, &current.body().flow.version);
                (version_key(a), analysis.plan.hash()) > (version_key(b), current.plan.hash())
            });
            if newer {
                newest.insert(flow, analysis);
            }
        }
        let watched = newest
            .into_iter()
            .flat_map(|(flow, analysis)| {
                let version = analysis.body().flow.version.clone();
                analysis
                    .body()
                    .monitors
                    .iter()
                    .map(|m| Watched { flow: flow.clone(), version: version.clone(), monitor: m.clone() })
                    .collect::<Vec<_>>()
            })
            .collect();
        Ok((watched, failed))
    }

    /// Evaluates every monitor over its window ending now (by this runtime's clock): raises
    /// an alert for each whose condition holds and has none open, resolves the open alert of
    /// each whose condition no longer holds (or that has no data, or that no flow declares
    /// any more), and queues the notices of both for the webhook endpoints of their routes.
    /// Two processes evaluating at once raise each alert once (the store keeps one open alert
    /// per flow and monitor). A monitor that cannot be evaluated is named in `failed`; the
    /// others are evaluated.
    pub fn evaluate_monitors(&self) -> Result<Evaluation> {
        let now = self.now();
        let minute = now.seconds.div_euclid(60);
        let mut open: std::collections::BTreeMap<(String, String), Alert> = self
            .store
            .alerts(true, usize::MAX >> 1)?
            .into_iter()
            .map(|a| ((a.flow.clone(), a.monitor.clone()), a))
            .collect();
        let (watched, failed) = self.monitors()?;
        let mut evaluation = Evaluation { failed, ..Evaluation::default() };
        // The runs that ended since the last evaluation, checked for the monitors that count
        // them; then the commits' tallies since, into the counts: what changed.
        self.check_ended_runs(&watched, &mut evaluation)?;
        self.store.fold_monitor_pending()?;
        // Once an hour (of this process), the minutes no window reaches are folded away.
        let longest = flow_ir::monitor::LONGEST_WINDOW / 60 + 24 * 60;
        if minute - self.monitors_folded.load(std::sync::atomic::Ordering::Relaxed) >= 60 {
            self.store.fold_monitor_counts(minute - longest)?;
            self.monitors_folded.store(minute, std::sync::atomic::Ordering::Relaxed);
        }
        for watched in watched {
            let monitor = &watched.monitor;
            let key = (watched.flow.clone(), monitor.name.to_string());
            let existing = open.remove(&key);
            let after = minute - monitor.window / 60;
            let (counted, of) = match self.store.monitor_window(&watched.flow, &monitor.series(), after) {
                Ok(counts) => counts,
                Err(error) => {
                    evaluation.failed.push((format!("monitor {}/{}", watched.flow, monitor.name), error.to_string()));
                    continue;
                }
            };
            let holds = monitor.holds(counted, of);
            let value = monitor.value_text(counted, of);
            let alert = match (holds, existing) {
                (Some(true), Some(existing)) => Some(existing),
                (Some(true), None) => {
                    let raised = Alert {
                        id: format!("{}/{}/{}", watched.flow, monitor.name, alert_stamp(now)),
                        flow: watched.flow.clone(),
                        monitor: monitor.name.to_string(),
                        severity: monitor.severity.as_str().to_owned(),
                        routes: monitor.routes.iter().map(ToString::to_string).collect(),
                        condition: monitor.describe(),
                        raised: now.to_string(),
                        value: value.clone(),
                        resolved: None,
                        cleared: None,
                    };
                    let notices = self.alert_notices(&raised, "alert.raised");
                    if self.store.raise_alert(&raised, &notices)? {
                        evaluation.raised.push(raised.clone());
                        Some(raised)
                    } else {
                        // Another process raised it first: it is the one open.
                        self.store
                            .alerts(true, usize::MAX >> 1)?
                            .into_iter()
                            .find(|a| (&a.flow, &a.monitor) == (&key.0, &key.1))
                    }
                }
                (_, Some(existing)) => {
                    self.resolve(existing, now, &value, &mut evaluation)?;
                    None
                }
                (_, None) => None,
            };
            evaluation.readings.push(Reading { watched, counted, of, holds, alert });
        }
        // Alerts of monitors no flow declares any more (removed, or renamed in a newer
        // version) end with them, unless a plan did not load (it may declare them).
        if !evaluation.failed.iter().any(|(what, _)| what.starts_with("plan ")) {
            for (_, alert) in open {
                self.resolve(alert, now, "the monitor is no longer declared", &mut evaluation)?;
            }
        }
        Ok(evaluation)
    }

    /// Recounts what every stored run's evidence says for its plan's monitors, commit by
    /// commit as the runtime counted it, and compares it with the store's counts (after a
    /// fold), series by series over all time: the series whose totals differ, as (flow,
    /// series, stored, recounted); and the runs that could not be read. The counts of
    /// `evidence` and `replay_failures` come from checks, not from events, and are not
    /// recounted.
    pub fn recount_monitors(&self) -> Result<(Vec<Recount>, Failures)> {
        self.store.fold_monitor_pending()?;
        let mut recounted: std::collections::BTreeMap<(String, String), (i64, i64)> = Default::default();
        let mut failed = Vec::new();
        for record in self.store.runs(None)? {
            let migrated =
                |raw: &[crate::store::RawEvent]| raw.iter().any(|e| e.body.starts_with(crate::event::MIGRATED));
            let current = match self.plan(&record.plan) {
                Ok(analysis) => analysis,
                Err(error) => {
                    failed.push((format!("run {}", record.id), error.to_string()));
                    continue;
                }
            };
            let raw = self.store.events(&record.id)?;
            // A run that never migrated counts only under its plan's monitors.
            if !watched(&current) && !migrated(&raw) {
                continue;
            }
            let ats: Vec<String> = raw.iter().map(|e| e.at.clone()).collect();
            let events = match self.verified(&current, &record, raw) {
                Ok(events) => events,
                Err(error) => {
                    failed.push((format!("run {}", record.id), error.to_string()));
                    continue;
                }
            };
            // Each commit counted under the plan the run was on when it was made: a commit
            // that migrated the run, under the new one, its state (and what the monitors
            // know of its past) rebuilt under it, as the runtime rebuilt them.
            let started = match events.first() {
                Some(Event::Started(started)) => self.plan(&started.plan),
                _ => Ok(current.clone()),
            };
            let mut analysis = match started {
                Ok(analysis) => analysis,
                Err(error) => {
                    failed.push((format!("run {}", record.id), error.to_string()));
                    continue;
                }
            };
            let mut state = State::new(&analysis);
            let mut watch = Watch::default();
            // The events of one commit share the instant it recorded them.
            let mut from = 0;
            while from < events.len() {
                let to = (from..events.len()).find(|&i| ats[i] != ats[from]).unwrap_or(events.len());
                let moved = events[from..to].iter().find_map(|e| match e {
                    Event::Migrated(migrated) => Some(migrated.to.clone()),
                    _ => None,
                });
                if let Some(to) = moved {
                    analysis = match self.plan(&to) {
                        Ok(next) => next,
                        Err(error) => {
                            failed.push((format!("run {}", record.id), error.to_string()));
                            break;
                        }
                    };
                    (state, watch) = (State::new(&analysis), Watch::default());
                    let latency = watches_latency(&analysis);
                    for (i, event) in events[..from].iter().enumerate() {
                        state.apply(&analysis, event);
                        watch.stored(event, Some(ats[i].as_str()).filter(|_| latency));
                    }
                }
                for event in &events[from..to] {
                    state.apply(&analysis, event);
                }
                if !watched(&analysis) {
                    from = to;
                    continue;
                }
                let Some((seconds, nanos)) = flow_ir::time::parse_timestamp(&ats[from]) else {
                    failed.push((format!("run {}", record.id), format!("event {from} has no instant")));
                    break;
                };
                let now = Timestamp { seconds, nanos };
                for tally in tallies(&analysis, &state, &events[from..to], &mut watch, now).tallies {
                    let sum = recounted.entry((tally.flow, tally.series)).or_default();
                    *sum = (sum.0 + tally.counted, sum.1 + tally.of);
                }
                from = to;
            }
        }
        let checked: Vec<String> = [Metric::Evidence, Metric::ReplayFailures].map(|m| m.name().to_owned()).to_vec();
        let mut stored: std::collections::BTreeMap<(String, String), (i64, i64)> = self
            .store
            .monitor_totals()?
            .into_iter()
            .filter(|t| !checked.contains(&t.series))
            .map(|t| ((t.flow, t.series), (t.counted, t.of)))
            .collect();
        let mut differ = Vec::new();
        for (key, counts) in recounted {
            let kept = stored.remove(&key).unwrap_or((0, 0));
            if kept != counts {
                differ.push(Recount { flow: key.0, series: key.1, stored: kept, recounted: counts });
            }
        }
        for (key, kept) in stored {
            differ.push(Recount { flow: key.0, series: key.1, stored: kept, recounted: (0, 0) });
        }
        Ok((differ, failed))
    }

    /// Checks each run that ended and waits for it (its evidence verified, the run replayed
    /// exactly), for the monitors of its flow that count such checks, by the minute it ended.
    /// A run that cannot be read at all is named in `failed` and taken off the list.
    fn check_ended_runs(&self, watched: &[Watched], evaluation: &mut Evaluation) -> Result<()> {
        for (run, flow, minute) in self.store.monitor_checks(1_000_000)? {
            let mut tallies: Vec<Tally> = Vec::new();
            let record = self.store.run(&run)?;
            let facts = match record {
                Some(record) => {
                    let raw = self.store.events(&run)?;
                    Some(self.run_facts(&record, raw, true))
                }
                None => {
                    evaluation
                        .failed
                        .push((format!("run {run}"), "it is listed to be checked, but not stored".to_owned()));
                    None
                }
            };
            if let Some(facts) = facts {
                for w in watched.iter().filter(|w| w.flow == flow && w.monitor.metric.checks_runs()) {
                    let series = w.monitor.series();
                    if tallies.iter().any(|t| t.series == series) {
                        continue;
                    }
                    let (counted, of) = match w.monitor.metric {
                        Metric::Evidence => (i64::from(facts.complete), 1),
                        _ => (i64::from(facts.replayed != Some(true)), 0),
                    };
                    tallies.push(Tally { flow: flow.clone(), series, minute, counted, of });
                }
            }
            self.store.finish_monitor_check(&run, &tallies)?;
        }
        Ok(())
    }

    fn resolve(&self, alert: Alert, now: Timestamp, value: &str, evaluation: &mut Evaluation) -> Result<()> {
        let mut resolved = alert;
        resolved.resolved = Some(now.to_string());
        resolved.cleared = Some(value.to_owned());
        let notices = self.alert_notices(&resolved, "alert.resolved");
        if self.store.resolve_alert(&resolved.id, &now.to_string(), value, &notices)? {
            evaluation.resolved.push(resolved);
        }
        Ok(())
    }

    /// The notices of an alert for the endpoints of its routes.
    fn alert_notices(&self, alert: &Alert, kind: &str) -> Vec<Notice> {
        let Some(webhooks) = self.webhooks.as_deref() else { return Vec::new() };
        let data = json!({
            "alert": alert.id,
            "flow": alert.flow,
            "monitor": alert.monitor,
            "severity": alert.severity,
            "routes": alert.routes,
            "condition": alert.condition,
            "raised": alert.raised,
            "value": alert.value,
            "resolved": alert.resolved,
            "cleared": alert.cleared,
        });
        let id = format!("{}.{}", alert.id, kind.trim_start_matches("alert."));
        webhooks.for_alert(&id, kind, &alert.flow, &alert.routes, &data)
    }
}

/// What names an alert among those of its monitor: when it was raised (seconds), and a
/// random part, so that two raised in one second are two.
fn alert_stamp(now: Timestamp) -> String {
    let mut bytes = [0u8; 4];
    let random = match getrandom::getrandom(&mut bytes) {
        Ok(()) => u32::from_le_bytes(bytes),
        Err(_) => now.nanos ^ crate::identity::pid(),
    };
    format!("{}-{random:08x}", now.seconds)
}

/// A label value as the Prometheus exposition format writes it.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The monitors' counts as Prometheus counters (text exposition format 0.0.4), by flow and
/// series, and the open alerts as a gauge: what the rules of [`prometheus_rules`] read.
pub fn exposition(totals: &[Tally], open: &[Alert]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for (name, help, value) in [
        ("flow_monitor_counted_total", "What a monitor's series counts (runs, degraded inferences, late ends…).", 0),
        ("flow_monitor_of_total", "What a monitor's series counts among (inferences, ends…).", 1),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for t in totals {
            let n = if value == 0 { t.counted } else { t.of };
            let _ = writeln!(out, "{name}{{flow=\"{}\",series=\"{}\"}} {n}", label(&t.flow), label(&t.series));
        }
    }
    let _ = writeln!(
        out,
        "# HELP flow_alerts_open Alerts raised by monitors and not resolved.\n# TYPE flow_alerts_open gauge"
    );
    for a in open {
        let _ = writeln!(
            out,
            "flow_alerts_open{{flow=\"{}\",monitor=\"{}\",severity=\"{}\"}} 1",
            label(&a.flow),
            label(&a.monitor),
            label(&a.severity)
        );
    }
    out
}

/// The monitors as Prometheus alerting rules (a rule file's YAML) over the counters of
/// [`exposition`], for teams that alert through Prometheus: the same conditions, each
/// window's `increase` standing for the store's sum of minutes (the largest of the servers'
/// increases: each exports the whole store's counts).
pub fn prometheus_rules(watched: &[Watched]) -> String {
    use std::fmt::Write;
    // JSON strings are YAML strings: every text is written quoted.
    let quote = |text: &str| serde_json::Value::String(text.to_owned()).to_string();
    if watched.is_empty() {
        return "groups:\n  - name: flow-monitors\n    rules: []\n".to_owned();
    }
    let mut out = String::from("groups:\n  - name: flow-monitors\n    rules:\n");
    for w in watched {
        let m = &w.monitor;
        let selector = format!("{{flow=\"{}\",series=\"{}\"}}", label(&w.flow), label(&m.series()));
        let window = flow_ir::time::format_duration(m.window);
        // Every server exports the store's totals: one server's increase is the store's,
        // and a series not exported yet counts nothing.
        let counted = format!("max(increase(flow_monitor_counted_total{selector}[{window}]))");
        let of = format!("max(increase(flow_monitor_of_total{selector}[{window}]))");
        let comparison = if m.above { ">" } else { "<" };
        let expr = match m.metric.measure() {
            flow_ir::monitor::Measure::Count => format!("({counted} or vector(0)) {comparison} {}", m.threshold),
            flow_ir::monitor::Measure::Rate => {
                format!("({counted} / {of}) {comparison} {}", m.threshold as f64 / 1_000_000.0)
            }
            flow_ir::monitor::Measure::Duration => {
                let slower = 100 - i64::from(m.quantile.unwrap_or(95));
                format!("({counted} / {of}) > {}", slower as f64 / 100.0)
            }
        };
        let _ = writeln!(out, "      - alert: {}", quote(&format!("{}_{}", w.flow, m.name)));
        let _ = writeln!(out, "        expr: {}", quote(&expr));
        let _ = writeln!(out, "        labels:");
        let _ = writeln!(out, "          severity: {}", quote(m.severity.as_str()));
        let _ = writeln!(out, "          flow: {}", quote(&w.flow));
        let _ = writeln!(out, "          monitor: {}", quote(&m.name));
        let _ = writeln!(out, "          routes: {}", quote(&m.routes.join(",")));
        let _ = writeln!(out, "        annotations:");
        let _ = writeln!(out, "          summary: {}", quote(&format!("{} {}: {}", w.flow, w.version, m.describe())));
    }
    out
}
