//! The dashboard: the golden and governance signals of a flow (or of every flow) day by day
//! over a window — runs by outcome, approval, override, degraded and blocked rates, decision
//! latency, review volume — as charts drawn on the server, and the same numbers as a table.
//! Counts and durations only, never a value of a run.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use flow_runtime::RunFilter;
use flow_runtime::stats::{FlowStats, percentile};
use serde::Deserialize;

use super::charts;
use super::{Viewer, html, problem_page, segment};
use crate::Service;

/// The longest window the dashboard draws, in days.
const MOST_DAYS: u32 = 366;
/// How long the counts of a window are shown again before they are counted anew, in
/// seconds: a page reloaded by many people at once checks the runs once a minute.
const REUSED_FOR: i64 = 60;

/// The counts of the window last counted, and when; a shorter window is cut out of a longer
/// one. One request counts at a time: the others wait for its counts rather than count too.
#[derive(Default)]
pub struct Cache {
    counted: std::sync::Mutex<Option<Counted>>,
    counting: tokio::sync::Mutex<()>,
}

impl Cache {
    /// The counts from day `since` on, when counted less than a minute before `now`.
    fn fresh(&self, since: &str, now: i64) -> Option<Arc<Vec<(String, flow_runtime::stats::Stats)>>> {
        let counted = self.counted.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        counted
            .as_ref()
            .filter(|(from, at, _)| from.as_str() <= since && now.saturating_sub(*at) < REUSED_FOR)
            .map(|c| c.2.clone())
    }
}

type Counted = (String, i64, Arc<Vec<(String, flow_runtime::stats::Stats)>>);

#[derive(Deserialize)]
pub(super) struct DashboardQuery {
    flow: Option<String>,
    days: Option<u32>,
}

/// A chart: its heading and its picture.
struct Chart {
    heading: &'static str,
    svg: String,
}

/// A day's numbers, as the table under the charts shows them.
struct Row {
    day: String,
    runs: u64,
    outcomes: String,
    approval: String,
    overrides: String,
    degraded: String,
    blocked: String,
    latency: String,
    reviews: u64,
    /// Runs whose evidence chain checks, of the day's.
    evidence: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage<'a> {
    signed_in: Option<&'a Viewer>,
    /// The flow shown (`None`: every flow), and the flows to choose from with their pages.
    flow: Option<String>,
    flows: Vec<(String, String)>,
    all_href: String,
    days: u32,
    /// Other windows, with their pages.
    windows: Vec<(u32, String)>,
    first: String,
    last: String,
    runs: u64,
    /// Runs of the window whose evidence does not check (counted as the store's record says).
    unchecked: u64,
    charts: Vec<Chart>,
    rows: Vec<Row>,
    /// The monitors' alerts: open ones first, then the latest resolved.
    alerts: Vec<flow_runtime::store::Alert>,
}

const OUTCOMES: [(&str, &str); 7] = [
    ("completed", "#15803d"),
    ("rejected", "#7c3aed"),
    ("pending", "#b45309"),
    ("blocked", "#b91c1c"),
    ("failed", "#111827"),
    ("cancelled", "#6b7280"),
    ("running", "#0891b2"),
];

fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "—".to_owned(), |r| format!("{:.0}%", r * 100.0))
}

/// A duration (milliseconds) in the unit a person reads it in.
fn duration(ms: f64) -> String {
    match ms {
        ms if ms < 1_000.0 => format!("{ms:.0} ms"),
        ms if ms < 60_000.0 => format!("{:.1} s", ms / 1_000.0),
        ms if ms < 3_600_000.0 => format!("{:.0} min", ms / 60_000.0),
        ms => format!("{:.1} h", ms / 3_600_000.0),
    }
}

/// The day `back` days before `today` (`YYYY-MM-DD`), UTC.
fn day_before(now: i64, back: u32) -> String {
    let at = flow_ir::expr::Timestamp { seconds: now - i64::from(back) * 86_400, nanos: 0 };
    at.to_string().get(..10).unwrap_or_default().to_owned()
}

pub(super) async fn dashboard(
    State(service): State<Arc<Service>>,
    viewer: Viewer,
    Query(query): Query<DashboardQuery>,
) -> Response {
    let days = query.days.unwrap_or(30).clamp(1, MOST_DAYS);
    let now = super::now();
    let window: Vec<String> = (0..days).rev().map(|back| day_before(now, back)).collect();
    let since = window.first().cloned().unwrap_or_default();
    let cache = &service.pages.dashboard;
    let mut cached = cache.fresh(&since, now);
    let _counting = match cached {
        Some(_) => None,
        None => {
            let counting = cache.counting.lock().await;
            // Counted while this request waited its turn?
            cached = cache.fresh(&since, now);
            Some(counting)
        }
    };
    let daily = match cached {
        Some(daily) => daily,
        None => {
            let filter = RunFilter { flow: None, since: Some(since.clone()), details: false };
            let read =
                crate::api::blocking(&service, None, move |service| Ok(service.runtime.daily_stats(&filter)?)).await;
            match read {
                Ok(daily) => {
                    let daily = Arc::new(daily);
                    *cache.counted.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                        Some((since, now, daily.clone()));
                    daily
                }
                Err(problem) => return problem_page(Some(&viewer), &problem),
            }
        }
    };
    let mut names: Vec<String> = daily.iter().flat_map(|(_, s)| s.flows.iter().map(|f| f.flow.clone())).collect();
    names.sort();
    names.dedup();
    let flow = query.flow.filter(|f| !f.is_empty());
    // The chosen flow's numbers for each day of the window (none on a day without runs).
    let per_day: Vec<Option<&FlowStats>> = window
        .iter()
        .map(|day| {
            let stats = &daily.iter().find(|(d, _)| d == day)?.1;
            match &flow {
                Some(flow) => stats.flows.iter().find(|f| f.flow == *flow),
                None => Some(&stats.all),
            }
        })
        .collect();
    let count = |f: &dyn Fn(&FlowStats) -> u64| per_day.iter().map(|d| d.map_or(0, f)).collect::<Vec<u64>>();
    let rate = |f: &dyn Fn(&FlowStats) -> Option<f64>| per_day.iter().map(|d| d.and_then(f)).collect::<Vec<_>>();
    let ms = |q: f64| {
        per_day.iter().map(|d| d.and_then(|s| percentile(&s.decision_us, q)).map(|us| us as f64 / 1000.0)).collect()
    };
    let outcomes: Vec<(&str, &str, Vec<u64>)> = OUTCOMES
        .iter()
        .map(|(status, colour)| (*status, *colour, count(&|s| s.by_status.get(status).copied().unwrap_or(0))))
        .filter(|(_, _, counts)| counts.iter().any(|c| *c > 0))
        .collect();
    let as_percent = |v: f64| format!("{:.0}%", v * 100.0);
    let charts = vec![
        Chart { heading: "Runs, by how they stand", svg: charts::bars("runs per day by outcome", &window, &outcomes) },
        Chart {
            heading: "Approval rate",
            svg: charts::lines(
                "approvals that needed people and were approved",
                &window,
                &[("approved", "#15803d", rate(&FlowStats::approval_rate))],
                Some(1.0),
                &as_percent,
            ),
        },
        Chart {
            heading: "Override rate",
            svg: charts::lines(
                "blocking gates that held and were overridden",
                &window,
                &[("overridden", "#b91c1c", rate(&FlowStats::override_rate))],
                Some(1.0),
                &as_percent,
            ),
        },
        Chart {
            heading: "Degraded rate",
            svg: charts::lines(
                "runs with a step degraded (a model's fallback, a search of another snapshot)",
                &window,
                &[("degraded", "#b45309", rate(&FlowStats::fallback_rate))],
                Some(1.0),
                &as_percent,
            ),
        },
        Chart {
            heading: "Blocked rate",
            svg: charts::lines(
                "runs in which a blocking gate held",
                &window,
                &[("blocked", "#7f1d1d", rate(&FlowStats::blocked_run_rate))],
                Some(1.0),
                &as_percent,
            ),
        },
        Chart {
            heading: "Decision latency",
            svg: charts::lines(
                "from a run's start to its end, people's time included",
                &window,
                &[("p50", "#1d4ed8", ms(0.5)), ("p95", "#7c3aed", ms(0.95))],
                None,
                &duration,
            ),
        },
        Chart {
            heading: "Review volume",
            svg: charts::bars(
                "reviews opened and decided per day",
                &window,
                &[
                    ("still open", "#b45309", count(&|s| s.reviews_opened.saturating_sub(s.reviews_decided))),
                    ("decided", "#1d4ed8", count(&|s| s.reviews_decided.min(s.reviews_opened))),
                ],
            ),
        },
    ];
    let rows = window
        .iter()
        .zip(&per_day)
        .filter_map(|(day, stats)| {
            let s = (*stats)?;
            let outcomes: Vec<String> = s.by_status.iter().map(|(k, v)| format!("{v} {k}")).collect();
            let p = |q| percentile(&s.decision_us, q).map_or_else(|| "—".to_owned(), |us| duration(us as f64 / 1000.0));
            Some(Row {
                day: day.clone(),
                runs: s.runs,
                outcomes: outcomes.join(", "),
                approval: percent(s.approval_rate()),
                overrides: percent(s.override_rate()),
                degraded: percent(s.fallback_rate()),
                blocked: percent(s.blocked_run_rate()),
                latency: format!("{} / {}", p(0.5), p(0.95)),
                reviews: s.reviews_opened,
                evidence: format!("{} of {}", s.complete, s.runs),
            })
        })
        .collect::<Vec<_>>();
    let alerts = match crate::api::blocking(&service, None, |service| {
        Ok(service.runtime.store().alerts(false, 1_000).map_err(flow_runtime::Error::from)?)
    })
    .await
    {
        // Open ones first, then the latest resolved: fifty of the flow's.
        Ok(alerts) => alerts.into_iter().filter(|a| flow.as_ref().is_none_or(|f| *f == a.flow)).take(50).collect(),
        Err(problem) => return problem_page(Some(&viewer), &problem),
    };
    let href = |flow: Option<&str>, days: u32| match flow {
        Some(flow) => format!("/ui/dashboard?flow={}&days={days}", segment(flow)),
        None => format!("/ui/dashboard?days={days}"),
    };
    let page = DashboardPage {
        signed_in: Some(&viewer),
        flows: names.iter().map(|n| (n.clone(), href(Some(n), days))).collect(),
        all_href: href(None, days),
        windows: [7, 30, 90, 365].into_iter().map(|d| (d, href(flow.as_deref(), d))).collect(),
        first: window.first().cloned().unwrap_or_default(),
        last: window.last().cloned().unwrap_or_default(),
        runs: rows.iter().map(|r| r.runs).sum(),
        unchecked: per_day.iter().flatten().map(|s| s.runs - s.complete).sum(),
        flow,
        days,
        charts,
        rows,
        alerts,
    };
    html(StatusCode::OK, &page)
}
