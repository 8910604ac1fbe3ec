//! Metrics over the store: golden signals and governance metrics of the stored runs, per
//! flow, from their events (counts and durations only, never values).
//!
//! Every run's chain is checked (evidence completeness) and the run is replayed exactly
//! (replay success rate), in the same pass.

use std::collections::BTreeMap;
use std::fmt::Write;

use flow_ir::plan::GateLevel;
use serde_json::{Value as Json, json};

use crate::event::{Event, Status};
use crate::value::Value;

/// What one run contributes.
#[derive(Clone, Debug)]
pub(crate) struct RunFacts {
    pub flow: String,
    pub status: Status,
    pub created: String,
    /// The chain verifies, ends at the run's head, and every event reads.
    pub complete: bool,
    /// Replayed exactly (`None`: not replayed, its evidence being incomplete).
    pub replayed: Option<bool>,
    /// From the run's start to the storing of its first `settled`: how long the runtime took
    /// to decide, or to route the run to people.
    pub execution_us: Option<u64>,
    /// From the run's start to the storing of its final `settled`, for runs that ended:
    /// people's time included.
    pub decision_us: Option<u64>,
    pub degraded: bool,
    pub reviews_opened: u64,
    pub reviews_decided: u64,
    /// Approvals that needed people, and how many of them approved.
    pub approvals: u64,
    pub approved: u64,
    /// Blocking gates that held, and how many of them were overridden.
    pub blocks: u64,
    pub overrides: u64,
}

fn micros(at: &str) -> Option<i128> {
    flow_ir::time::parse_timestamp(at).map(|(s, n)| i128::from(s) * 1_000_000 + i128::from(n) / 1_000)
}

impl RunFacts {
    pub(crate) fn of(record: &crate::store::RunRecord) -> RunFacts {
        RunFacts {
            flow: record.flow.clone(),
            status: record.status,
            created: record.created.clone(),
            complete: false,
            replayed: None,
            execution_us: None,
            decision_us: None,
            degraded: false,
            reviews_opened: 0,
            reviews_decided: 0,
            approvals: 0,
            approved: 0,
            blocks: 0,
            overrides: 0,
        }
    }

    /// The facts of a run read from its events, with the time each was stored (events are
    /// stored a batch at a time: a batch's time is when it was stored); the run's start is
    /// its record's.
    pub(crate) fn observe(&mut self, events: &[Event<Value>], at: &[String]) {
        let start = micros(&self.created);
        let since_start = |i: usize| Some((micros(&at[i])? - start?).max(0) as u64);
        let mut first_settled = None;
        let mut last_settled = None;
        for (i, event) in events.iter().enumerate() {
            match event {
                Event::Settled { status, .. } => {
                    first_settled = first_settled.or(Some(i));
                    last_settled = Some((i, *status));
                }
                Event::Inferred { degraded: true, .. } => self.degraded = true,
                Event::Retrieved(retrieved) if retrieved.degraded => self.degraded = true,
                Event::ReviewOpened { .. } => self.reviews_opened += 1,
                Event::ReviewDecided { .. } => self.reviews_decided += 1,
                Event::ApprovalCompleted { approved, approvers, .. } if *approved && approvers.is_empty() => {}
                Event::ApprovalCompleted { approved, .. } => {
                    self.approvals += 1;
                    self.approved += u64::from(*approved);
                }
                Event::Gate { level: GateLevel::Block, holds: true, .. } => self.blocks += 1,
                Event::GateOverridden { .. } => self.overrides += 1,
                _ => {}
            }
        }
        self.execution_us = first_settled.and_then(since_start);
        self.decision_us = match last_settled {
            Some((i, status)) if status.is_final() => since_start(i),
            _ => None,
        };
    }
}

/// A percentile (`q` in 0..=1) of sorted values, nearest rank.
pub fn percentile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// The metrics of one flow (or of all of them).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FlowStats {
    pub flow: String,
    pub runs: u64,
    pub by_status: BTreeMap<&'static str, u64>,
    /// When the first and the last run started (RFC 3339).
    pub first: String,
    pub last: String,
    pub execution_us: Vec<u64>,
    pub decision_us: Vec<u64>,
    pub degraded_runs: u64,
    pub reviews_opened: u64,
    pub reviews_decided: u64,
    pub approvals: u64,
    pub approved: u64,
    pub blocked_runs: u64,
    pub blocks: u64,
    pub overrides: u64,
    pub complete: u64,
    pub replayed: u64,
    pub replayed_exactly: u64,
}

impl FlowStats {
    fn add(&mut self, facts: &RunFacts) {
        self.runs += 1;
        *self.by_status.entry(facts.status.as_str()).or_default() += 1;
        if self.first.is_empty() || facts.created < self.first {
            self.first = facts.created.clone();
        }
        if facts.created > self.last {
            self.last = facts.created.clone();
        }
        self.execution_us.extend(facts.execution_us);
        self.decision_us.extend(facts.decision_us);
        self.degraded_runs += u64::from(facts.degraded);
        self.reviews_opened += facts.reviews_opened;
        self.reviews_decided += facts.reviews_decided;
        self.approvals += facts.approvals;
        self.approved += facts.approved;
        self.blocked_runs += u64::from(facts.blocks > 0);
        self.blocks += facts.blocks;
        self.overrides += facts.overrides;
        self.complete += u64::from(facts.complete);
        self.replayed += u64::from(facts.replayed.is_some());
        self.replayed_exactly += u64::from(facts.replayed == Some(true));
    }

    fn status(&self, status: Status) -> u64 {
        self.by_status.get(status.as_str()).copied().unwrap_or(0)
    }

    /// Runs per hour between the first and the last start (`None` with fewer than two).
    pub fn throughput_per_hour(&self) -> Option<f64> {
        let span = micros(&self.last)? - micros(&self.first)?;
        (self.runs > 1 && span > 0).then(|| self.runs as f64 * 3_600_000_000.0 / span as f64)
    }

    /// The share of runs that did not fail, among those that stopped (not `running`).
    pub fn success_rate(&self) -> Option<f64> {
        let stopped = self.runs - self.status(Status::Running);
        ratio(stopped - self.status(Status::Failed), stopped)
    }

    /// Runs with a step degraded to its fallback, among all runs.
    pub fn fallback_rate(&self) -> Option<f64> {
        ratio(self.degraded_runs, self.runs)
    }

    /// Approvals that needed people and were approved, among those that needed people.
    pub fn approval_rate(&self) -> Option<f64> {
        ratio(self.approved, self.approvals)
    }

    /// Runs in which a blocking gate held.
    pub fn blocked_run_rate(&self) -> Option<f64> {
        ratio(self.blocked_runs, self.runs)
    }

    /// Blocking gates that held and were overridden.
    pub fn override_rate(&self) -> Option<f64> {
        ratio(self.overrides, self.blocks)
    }

    /// Runs whose evidence chain verifies and reads whole.
    pub fn evidence_completeness(&self) -> Option<f64> {
        ratio(self.complete, self.runs)
    }

    /// Runs that replay exactly, among those replayed.
    pub fn replay_success_rate(&self) -> Option<f64> {
        ratio(self.replayed_exactly, self.replayed)
    }

    /// The metrics as one JSON object (durations in milliseconds, rates from 0 to 1).
    pub fn to_json(&self) -> Json {
        let ms = |us: Option<u64>| us.map(|us| us as f64 / 1000.0);
        let latency = |values: &[u64]| json!({"p50": ms(percentile(values, 0.5)), "p95": ms(percentile(values, 0.95)), "count": values.len()});
        json!({
            "flow": self.flow,
            "runs": self.runs,
            "statuses": self.by_status,
            "first_started": self.first,
            "last_started": self.last,
            "throughput_per_hour": self.throughput_per_hour(),
            "success_rate": self.success_rate(),
            "execution_latency_ms": latency(&self.execution_us),
            "decision_latency_ms": latency(&self.decision_us),
            "fallback_runs": self.degraded_runs,
            "fallback_rate": self.fallback_rate(),
            "reviews_opened": self.reviews_opened,
            "reviews_decided": self.reviews_decided,
            "approval_rate": self.approval_rate(),
            "blocked_run_rate": self.blocked_run_rate(),
            "override_rate": self.override_rate(),
            "evidence_completeness": self.evidence_completeness(),
            "replay_success_rate": self.replay_success_rate(),
        })
    }
}

/// The metrics of every flow, and of all runs together.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    pub flows: Vec<FlowStats>,
    pub all: FlowStats,
}

impl Stats {
    pub(crate) fn of(facts: &[RunFacts]) -> Stats {
        let mut flows: BTreeMap<&str, FlowStats> = BTreeMap::new();
        let mut all = FlowStats { flow: "*".to_owned(), ..FlowStats::default() };
        for run in facts {
            flows
                .entry(&run.flow)
                .or_insert_with(|| FlowStats { flow: run.flow.clone(), ..FlowStats::default() })
                .add(run);
            all.add(run);
        }
        let mut flows: Vec<FlowStats> = flows.into_values().collect();
        for stats in flows.iter_mut().chain(std::iter::once(&mut all)) {
            stats.execution_us.sort_unstable();
            stats.decision_us.sort_unstable();
        }
        Stats { flows, all }
    }

    pub fn to_json(&self) -> Json {
        json!({"flows": self.flows.iter().map(FlowStats::to_json).collect::<Vec<_>>(), "all": self.all.to_json()})
    }

    /// The Prometheus text exposition format (version 0.0.4): one family per metric,
    /// labelled by flow.
    pub fn to_prometheus(&self) -> String {
        let mut out = String::new();
        let label = |flow: &str| flow.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
        let _ = writeln!(out, "# HELP flow_runs Stored runs, by flow and status.\n# TYPE flow_runs gauge");
        for stats in &self.flows {
            for (status, count) in &stats.by_status {
                let _ = writeln!(out, "flow_runs{{flow=\"{}\",status=\"{status}\"}} {count}", label(&stats.flow));
            }
        }
        for (name, help, unit) in [
            ("flow_execution_latency_seconds", "From a run's start to its first settling (the runtime's part).", 1e-6),
            ("flow_decision_latency_seconds", "From a run's start to its outcome, people's time included.", 1e-6),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} summary");
            for stats in &self.flows {
                let values = if name.starts_with("flow_execution") { &stats.execution_us } else { &stats.decision_us };
                let flow = label(&stats.flow);
                for q in [0.5, 0.95] {
                    if let Some(v) = percentile(values, q) {
                        let _ = writeln!(out, "{name}{{flow=\"{flow}\",quantile=\"{q}\"}} {}", v as f64 * unit);
                    }
                }
                let sum: u64 = values.iter().sum();
                let _ = writeln!(out, "{name}_sum{{flow=\"{flow}\"}} {}", sum as f64 * unit);
                let _ = writeln!(out, "{name}_count{{flow=\"{flow}\"}} {}", values.len());
            }
        }
        type Metric = fn(&FlowStats) -> Option<f64>;
        let gauges: [(&str, &str, Metric); 10] = [
            (
                "flow_throughput_runs_per_hour",
                "Runs per hour between the first and the last start.",
                FlowStats::throughput_per_hour,
            ),
            ("flow_success_ratio", "Runs that did not fail, among those that stopped.", FlowStats::success_rate),
            ("flow_fallback_runs", "Runs with a step degraded to its fallback.", |s| Some(s.degraded_runs as f64)),
            ("flow_reviews_opened", "Reviews opened.", |s| Some(s.reviews_opened as f64)),
            ("flow_reviews_decided", "Reviews decided.", |s| Some(s.reviews_decided as f64)),
            ("flow_approval_ratio", "Approvals needing people that were approved.", FlowStats::approval_rate),
            ("flow_blocked_run_ratio", "Runs in which a blocking gate held.", FlowStats::blocked_run_rate),
            ("flow_override_ratio", "Blocking gates that held and were overridden.", FlowStats::override_rate),
            (
                "flow_evidence_completeness_ratio",
                "Runs whose evidence chain verifies and reads whole.",
                FlowStats::evidence_completeness,
            ),
            (
                "flow_replay_success_ratio",
                "Runs that replay exactly, among those replayed.",
                FlowStats::replay_success_rate,
            ),
        ];
        for (name, help, metric) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for stats in &self.flows {
                if let Some(value) = metric(stats) {
                    let _ = writeln!(out, "{name}{{flow=\"{}\"}} {value}", label(&stats.flow));
                }
            }
        }
        out
    }
}
