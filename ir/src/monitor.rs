//! Monitors: conditions over the recent runs of a flow, and whom an alert goes to.
//!
//! Every metric is a count, or a ratio of two counts, of what the runs' events tell: runs
//! started, inferences and the degraded ones among them, blocking gates that held and those
//! overridden, human steps opened and those escalated, timed out or decided later than a
//! threshold; and of what checking each run that ended finds: evidence that checks, runs
//! that do not replay. So a window's value is a sum over the counts of its minutes, kept as the runs
//! commit, and a condition is decided exactly, in integers.

use serde::{Deserialize, Serialize};
use smol_str::SmolStr;

/// The longest window a monitor may look back over, in seconds (a year).
pub const LONGEST_WINDOW: i64 = 366 * 86_400;

/// The routes every flow may name besides its roles: the team that runs the platform, the
/// governance owners, the flow's business owner.
pub const CHANNELS: [&str; 3] = ["platform", "governance", "owner"];

/// The statuses a run may stop with, as `outcome(…)` names them.
pub const FINAL_STATUSES: [&str; 5] = ["completed", "blocked", "rejected", "failed", "cancelled"];

/// The quantiles a latency may be watched at, in percent.
pub const QUANTILES: [u8; 4] = [50, 90, 95, 99];

/// What a monitor measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Runs started.
    Runs,
    /// Runs that stopped with a status, among the runs that stopped (a run blocked, then
    /// overridden, stops twice).
    Outcome,
    /// Inferences degraded to their fallback, among inferences (of one step, or of all).
    Degraded,
    /// Blocking gates that held, among those evaluated (of one gate, or of all).
    Blocked,
    /// Blocking gates that held and were overridden, among those that held.
    Overrides,
    /// Human steps a deadline escalated, among those opened.
    Escalated,
    /// Human steps a deadline decided or blocked, among those opened.
    TimedOut,
    /// The time from a human step's opening to its end, at a quantile.
    Latency,
    /// Runs whose evidence checks (its chain, its record, its signature), among the runs
    /// checked when they ended.
    Evidence,
    /// Runs that ended and do not replay exactly from their evidence.
    ReplayFailures,
}

/// What a metric's threshold is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Measure {
    /// A number of runs (`10`).
    Count,
    /// A percentage (`5%`), kept in millionths.
    Rate,
    /// A duration (`24h`), kept in seconds.
    Duration,
}

/// What a metric is of: `degraded(risk)` names an infer step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subject {
    /// Nothing: `runs`.
    Nothing,
    /// A status a run ends with (required).
    Status,
    /// An infer step with a fallback (optional: all of them).
    Inference,
    /// A blocking gate (optional: all of them).
    BlockingGate,
    /// A review, soft gate or approval with a deadline that escalates (required).
    Escalating,
    /// A review, soft gate or approval with a deadline that ends it (required).
    Ending,
    /// A review, soft gate or approval (required).
    HumanStep,
}

impl Metric {
    pub const ALL: [Metric; 10] = [
        Metric::Runs,
        Metric::Outcome,
        Metric::Degraded,
        Metric::Blocked,
        Metric::Overrides,
        Metric::Escalated,
        Metric::TimedOut,
        Metric::Latency,
        Metric::Evidence,
        Metric::ReplayFailures,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::Runs => "runs",
            Metric::Outcome => "outcome",
            Metric::Degraded => "degraded",
            Metric::Blocked => "blocked",
            Metric::Overrides => "overrides",
            Metric::Escalated => "escalated",
            Metric::TimedOut => "timed_out",
            Metric::Latency => "latency",
            Metric::Evidence => "evidence",
            Metric::ReplayFailures => "replay_failures",
        }
    }

    pub fn parse(name: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == name)
    }

    pub fn measure(self) -> Measure {
        match self {
            Metric::Runs | Metric::ReplayFailures => Measure::Count,
            Metric::Latency => Measure::Duration,
            _ => Measure::Rate,
        }
    }

    /// What the metric is of, and whether it must name it.
    pub fn subject(self) -> (Subject, bool) {
        match self {
            Metric::Runs | Metric::Evidence | Metric::ReplayFailures => (Subject::Nothing, false),
            Metric::Outcome => (Subject::Status, true),
            Metric::Degraded => (Subject::Inference, false),
            Metric::Blocked | Metric::Overrides => (Subject::BlockingGate, false),
            Metric::Escalated => (Subject::Escalating, true),
            Metric::TimedOut => (Subject::Ending, true),
            Metric::Latency => (Subject::HumanStep, true),
        }
    }

    /// What it measures, in words.
    pub fn explain(self) -> &'static str {
        match self {
            Metric::Runs => "runs started",
            Metric::Outcome => "runs that stopped with the status, among runs that stopped",
            Metric::Degraded => "inferences degraded to their fallback, among inferences",
            Metric::Blocked => "blocking gates that held, among those evaluated",
            Metric::Overrides => "blocking gates that held and were overridden, among those that held",
            Metric::Escalated => "openings of the step a deadline escalated, among its openings",
            Metric::TimedOut => "openings of the step a deadline decided or blocked, among its openings",
            Metric::Latency => "the time from the step's opening to its end, at the quantile",
            Metric::Evidence => "runs whose evidence checks, among the runs checked when they ended",
            Metric::ReplayFailures => "runs that ended and do not replay exactly",
        }
    }

    /// Whether it is counted by checking each run that ends: its evidence verified and the
    /// run replayed, once, by whoever evaluates the monitors next.
    pub fn checks_runs(self) -> bool {
        matches!(self, Metric::Evidence | Metric::ReplayFailures)
    }
}

/// How urgent an alert is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] = [Severity::Low, Severity::Medium, Severity::High, Severity::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(name: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// `monitor overrides: overrides over 7d above 5% severity high to governance`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Monitor {
    pub name: SmolStr,
    pub metric: Metric,
    /// The step, gate or status the metric is of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<SmolStr>,
    /// For a latency: the quantile, in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantile: Option<u8>,
    /// How far back it looks, in seconds: whole minutes, at most [`LONGEST_WINDOW`].
    pub window: i64,
    /// Alerts when the value is above the threshold (or below it).
    pub above: bool,
    /// A count; a rate in millionths (5% is 50 000); a duration in seconds.
    pub threshold: i64,
    pub severity: Severity,
    /// Roles or [`CHANNELS`], sorted, at least one.
    pub routes: Vec<SmolStr>,
}

impl Monitor {
    /// The metric as the flow writes it: `p95 latency(approve)`, `degraded(risk)`.
    pub fn metric_text(&self) -> String {
        let quantile = self.quantile.map(|q| format!("p{q} ")).unwrap_or_default();
        match &self.subject {
            Some(subject) => format!("{quantile}{}({subject})", self.metric.name()),
            None => format!("{quantile}{}", self.metric.name()),
        }
    }

    /// The threshold as the flow writes it: `5%`, `24h`, `10`.
    pub fn threshold_text(&self) -> String {
        match self.metric.measure() {
            Measure::Count => self.threshold.to_string(),
            Measure::Duration => crate::time::format_duration(self.threshold),
            Measure::Rate => percent(self.threshold),
        }
    }

    /// The condition as the flow writes it: `overrides over 7d above 5%`.
    pub fn describe(&self) -> String {
        let comparison = if self.above { "above" } else { "below" };
        let window = crate::time::format_duration(self.window);
        format!("{} over {window} {comparison} {}", self.metric_text(), self.threshold_text())
    }

    /// What the runs of the flow count for this monitor, named for good: the same series
    /// goes on across versions of the flow as long as what is counted is the same (a
    /// latency counts the ends later than its threshold, so its threshold is part of it, its
    /// quantile not; nor are the window, comparison, severity and routes).
    pub fn series(&self) -> String {
        match (self.metric, &self.subject) {
            (Metric::Latency, Some(step)) => format!("latency({step})>{}s", self.threshold),
            _ => self.metric_text(),
        }
    }

    /// Whether the condition holds for a window's counts: `counted` of `of` (a count's `of`
    /// is unused). `None` when a ratio has nothing to be a ratio of.
    ///
    /// A latency at quantile `q` is above `t` exactly when more than `100 − q` percent of the
    /// step's ends came later than `t` after its opening (nearest rank): `counted` are those,
    /// `of` all ends.
    pub fn holds(&self, counted: i64, of: i64) -> Option<bool> {
        let (counted, of) = (i128::from(counted), i128::from(of));
        let threshold = i128::from(self.threshold);
        match self.metric.measure() {
            Measure::Count => Some(if self.above { counted > threshold } else { counted < threshold }),
            _ if of <= 0 => None,
            Measure::Rate => {
                let value = counted * 1_000_000;
                Some(if self.above { value > threshold * of } else { value < threshold * of })
            }
            Measure::Duration => {
                let slower = 100 - i128::from(self.quantile.unwrap_or(95));
                Some(counted * 100 > slower * of)
            }
        }
    }

    /// A window's value in words: `7.14% (12 of 168)`, `14 runs`, `3 of 40 ends later than 24h`.
    pub fn value_text(&self, counted: i64, of: i64) -> String {
        match self.metric.measure() {
            Measure::Count if self.metric == Metric::ReplayFailures => format!("{counted} runs that do not replay"),
            Measure::Count => format!("{counted} runs"),
            _ if of <= 0 => "no data".to_owned(),
            Measure::Rate => {
                let millionths =
                    (i128::from(counted) * 1_000_000 / i128::from(of)).clamp(0, i128::from(i64::MAX)) as i64;
                format!("{} ({counted} of {of})", percent(millionths))
            }
            Measure::Duration => {
                format!("{counted} of {of} ends later than {}", crate::time::format_duration(self.threshold))
            }
        }
    }
}

/// Millionths as a percentage: `50000` is `5%`, `1` is `0.0001%`.
pub fn percent(millionths: i64) -> String {
    let sign = if millionths < 0 { "-" } else { "" };
    let magnitude = millionths.unsigned_abs();
    let (whole, fraction) = (magnitude / 10_000, magnitude % 10_000);
    if fraction == 0 {
        format!("{sign}{whole}%")
    } else {
        format!("{sign}{whole}.{}%", format!("{fraction:04}").trim_end_matches('0'))
    }
}
