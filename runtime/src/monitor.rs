//! Monitors over the store: what each commit adds to the counts of the monitors of its
//! run's plan ([`tallies`], stored in the commit's transaction), and their evaluation
//! ([`Runtime::evaluate_monitors`]), which raises and resolves alerts.
//!
//! A monitor's value over a window is the sum of the counts of the window's minutes, so
//! evaluating every monitor reads one row per minute of its window, whatever the number of
//! runs stored or changed. Counts go to the minute of the commit that recorded what they
//! count, by the runtime's clock: a run's start, an inference, a gate, the opening and end
//! of a human step. A monitor counts the runs of the plans that declare it, from when they
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

/// When a step began to wait: its timers' instant when it has deadlines (the run's own
/// clock), else `recorded`, when its opening was recorded.
pub(crate) fn opened_at(analysis: &Analysis, state: &State, node: &str, recorded: i64) -> i64 {
    analysis.id(node).and_then(|id| state.timer(id.index())).map_or(recorded, |timer| timer.opened.seconds)
}

/// Whether the plan's monitors need to know when steps opened (a latency is watched).
pub(crate) fn watches_latency(analysis: &Analysis) -> bool {
    analysis.body().monitors.iter().any(|m| m.metric == Metric::Latency)
}

/// Notes that a stored event opened a step, recorded at `at` (RFC 3339).
pub(crate) fn note_opening(
    analysis: &Analysis,
    state: &State,
    event: &Event<Value>,
    at: &str,
    opened: &mut Vec<(SmolStr, i64)>,
) {
    if let Some(node) = opening(event) {
        let recorded = flow_ir::time::parse_timestamp(at).map_or(0, |(seconds, _)| seconds);
        opened.push((node.clone(), opened_at(analysis, state, node, recorded)));
    }
    if let Some(node) = ending(event) {
        opened.retain(|(n, _)| n != node);
    }
}

/// What `events`, recorded now in one commit of a run of `analysis`, add to the counts of
/// its plan's monitors. `opened` holds when the run's waiting steps opened, and is kept up
/// to date. Nothing for a plan without monitors.
pub(crate) fn tallies(
    analysis: &Analysis,
    state: &State,
    events: &[Event<Value>],
    opened: &mut Vec<(SmolStr, i64)>,
    now: Timestamp,
) -> Vec<Tally> {
    let monitors = &analysis.body().monitors;
    if monitors.is_empty() {
        return Vec::new();
    }
    let mut sums = vec![(0i64, 0i64); monitors.len()];
    for event in events {
        if let Some(node) = opening(event) {
            opened.push((node.clone(), opened_at(analysis, state, node, now.seconds)));
        }
        let mut ended = None;
        if let Some(node) = ending(event)
            && let Some(i) = opened.iter().position(|(n, _)| n == node)
        {
            let (_, at) = opened.swap_remove(i);
            // A deadline ended the step at its instant, whenever its timer was fired.
            let end = match event {
                Event::TimedOut { at, .. } => at.seconds,
                _ => now.seconds,
            };
            ended = Some((node.as_str(), end - at));
        }
        for (monitor, sum) in monitors.iter().zip(&mut sums) {
            let (counted, of) = count(analysis, state, monitor, event, ended);
            *sum = (sum.0 + counted, sum.1 + of);
        }
    }
    let flow = analysis.body().flow.name.as_str();
    monitors
        .iter()
        .zip(sums)
        .filter(|(_, sum)| *sum != (0, 0))
        .map(|(monitor, (counted, of))| Tally {
            flow: flow.to_owned(),
            series: monitor.series(),
            minute: now.seconds.div_euclid(60),
            counted,
            of,
        })
        .collect()
}

/// What one event adds to one monitor's counts: (counted, of). `ended` is the step the
/// event ends and how long it waited, in seconds.
fn count(
    analysis: &Analysis,
    state: &State,
    monitor: &Monitor,
    event: &Event<Value>,
    ended: Option<(&str, i64)>,
) -> (i64, i64) {
    let subject = monitor.subject.as_deref();
    let of = |node: &str| subject.is_none_or(|s| s == node);
    match (monitor.metric, event) {
        (Metric::Runs, Event::Started(_)) => (1, 0),
        // A run stops when it is decided, fails, is cancelled or blocked (a blocked run that
        // is overridden goes on, and stops again).
        (Metric::Outcome, Event::Settled { status, .. }) if !matches!(status, Status::Pending | Status::Running) => {
            (i64::from(subject == Some(status.as_str())), 1)
        }
        (Metric::Degraded, Event::Inferred { node, degraded, .. }) if of(node) => (i64::from(*degraded), 1),
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
        (Metric::Latency, _) => match ended {
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

/// What one evaluation did.
#[derive(Clone, Debug, Default)]
pub struct Evaluation {
    pub readings: Vec<Reading>,
    pub raised: Vec<Alert>,
    pub resolved: Vec<Alert>,
}

/// Newer versions first: `2.10.0` before `2.9.1`.
fn version_key(version: &str) -> Vec<u64> {
    version.split(['.', '-', '+']).map(|part| part.parse().unwrap_or(0)).collect()
}

impl crate::Runtime {
    /// The monitors of the flows in the store: each flow's, from its newest version in the
    /// store (by semantic version).
    pub fn monitors(&self) -> Result<Vec<Watched>> {
        let mut newest: std::collections::BTreeMap<String, std::sync::Arc<Analysis>> = Default::default();
        for analysis in self.plans()? {
            let flow = analysis.body().flow.name.to_string();
            let newer = newest.get(&flow).is_none_or(|current| {
                let (a, b) = (&analysis.body().flow.version, &current.body().flow.version);
                (version_key(a), analysis.plan.hash()) > (version_key(b), current.plan.hash())
            });
            if newer {
                newest.insert(flow, analysis);
            }
        }
        Ok(newest
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
            .collect())
    }

    /// Evaluates every monitor over its window ending now (by this runtime's clock): raises
    /// an alert for each whose condition holds and has none open, resolves the open alert of
    /// each whose condition no longer holds (or that has no data), and queues the notices
    /// of both for the webhook endpoints of their routes. Two processes evaluating at once
    /// raise each alert once (the store keeps one open alert per flow and monitor).
    pub fn evaluate_monitors(&self) -> Result<Evaluation> {
        let now = self.now();
        let minute = now.seconds.div_euclid(60);
        let mut open: std::collections::BTreeMap<(String, String), Alert> = self
            .store
            .alerts(true, usize::MAX >> 1)?
            .into_iter()
            .map(|a| ((a.flow.clone(), a.monitor.clone()), a))
            .collect();
        let mut evaluation = Evaluation::default();
        for watched in self.monitors()? {
            let monitor = &watched.monitor;
            let after = minute - monitor.window / 60;
            let (counted, of) = self.store.monitor_window(&watched.flow, &monitor.series(), after)?;
            let holds = monitor.holds(counted, of);
            let key = (watched.flow.clone(), monitor.name.to_string());
            let value = monitor.value_text(counted, of);
            let mut alert = open.remove(&key);
            match (holds, alert.take()) {
                (Some(true), Some(existing)) => alert = Some(existing),
                (Some(true), None) => {
                    let raised = Alert {
                        id: format!("{}/{}/{}", watched.flow, monitor.name, now.seconds),
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
                        alert = Some(raised);
                    }
                }
                (_, Some(existing)) => {
                    let mut resolved = existing;
                    resolved.resolved = Some(now.to_string());
                    resolved.cleared = Some(value.clone());
                    let notices = self.alert_notices(&resolved, "alert.resolved");
                    if self.store.resolve_alert(&resolved.id, &now.to_string(), &value, &notices)? {
                        evaluation.resolved.push(resolved);
                    }
                }
                (_, None) => {}
            }
            evaluation.readings.push(Reading { watched, counted, of, holds, alert });
        }
        Ok(evaluation)
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
            a.severity
        );
    }
    out
}

/// The monitors as Prometheus alerting rules (a rule file's YAML) over the counters of
/// [`exposition`], for teams that alert through Prometheus: the same conditions, each
/// window's `increase` standing for the store's sum of minutes.
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
        let counted = format!("sum(increase(flow_monitor_counted_total{selector}[{window}]))");
        let of = format!("sum(increase(flow_monitor_of_total{selector}[{window}]))");
        let comparison = if m.above { ">" } else { "<" };
        let expr = match m.metric.measure() {
            flow_ir::monitor::Measure::Count => format!("{counted} {comparison} {}", m.threshold),
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
