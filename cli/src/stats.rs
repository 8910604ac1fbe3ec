//! `flowc stats`: metrics over the run store, for people, scripts and Prometheus.

use std::process::ExitCode;

use clap::ValueEnum;
use flow_runtime::RunFilter;
use flow_runtime::stats::FlowStats;

use crate::deploy::Deployment;
use crate::runs::{fail, open};

/// How `flowc stats` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StatsFormat {
    /// A page per flow, for people.
    Human,
    /// One JSON object.
    Json,
    /// The Prometheus text exposition format.
    Prometheus,
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "n/a".to_owned(), |r| format!("{:.1}%", r * 100.0))
}

fn duration(us: Option<u64>) -> String {
    match us {
        None => "n/a".to_owned(),
        Some(us) if us < 1_000 => format!("{us} µs"),
        Some(us) if us < 1_000_000 => format!("{:.1} ms", us as f64 / 1e3),
        Some(us) => format!("{:.1} s", us as f64 / 1e6),
    }
}

fn latency(values: &[u64]) -> String {
    let at = |q| flow_runtime::stats::percentile(values, q);
    format!("p50 {}, p95 {} ({} runs)", duration(at(0.5)), duration(at(0.95)), values.len())
}

fn page(stats: &FlowStats) -> String {
    let statuses: Vec<String> = stats.by_status.iter().map(|(s, n)| format!("{s} {n}")).collect();
    let mut text = format!(
        "flow {}: {} runs ({}), started {} … {}\n",
        stats.flow,
        stats.runs,
        statuses.join(", "),
        stats.first,
        stats.last
    );
    let rows = [
        ("golden signals", String::new()),
        ("  throughput", stats.throughput_per_hour().map_or_else(|| "n/a".to_owned(), |t| format!("{t:.1} runs/h"))),
        ("  success rate", percent(stats.success_rate())),
        ("  execution latency", latency(&stats.execution_us)),
        ("  decision latency", latency(&stats.decision_us)),
        ("  fallback usage", format!("{} runs ({})", stats.degraded_runs, percent(stats.fallback_rate()))),
        ("  review volume", format!("{} opened, {} decided", stats.reviews_opened, stats.reviews_decided)),
        ("governance", String::new()),
        (
            "  approval rate",
            format!("{} ({} approvals needing people)", percent(stats.approval_rate()), stats.approvals),
        ),
        ("  blocked-run rate", format!("{} ({} runs)", percent(stats.blocked_run_rate()), stats.blocked_runs)),
        (
            "  override rate",
            format!(
                "{} ({} of {} blocking gates that held)",
                percent(stats.override_rate()),
                stats.overrides,
                stats.blocks
            ),
        ),
        (
            "  evidence completeness",
            format!("{} ({} of {} runs)", percent(stats.evidence_completeness()), stats.complete, stats.runs),
        ),
        (
            "  replay success rate",
            format!(
                "{} ({} of {} replayed)",
                percent(stats.replay_success_rate()),
                stats.replayed_exactly,
                stats.replayed
            ),
        ),
    ];
    for (name, value) in rows {
        let line = if value.is_empty() { format!("  {name}\n") } else { format!("  {name:<24}{value}\n") };
        text.push_str(&line);
    }
    text
}

/// `flowc stats [--flow NAME] [--since DATE] [--format human|json|prometheus]`.
pub fn stats(
    deployment: &Deployment,
    flow: Option<&str>,
    since: Option<&str>,
    format: StatsFormat,
) -> anyhow::Result<ExitCode> {
    let filter = RunFilter {
        flow: flow.map(str::to_owned),
        since: since.map(crate::replays::since).transpose()?,
        details: false,
    };
    let mut runtime = open(deployment)?;
    let progress = crate::progress::of_runtime(&mut runtime);
    let stats = runtime.stats(&filter);
    progress.finish();
    let stats = match stats {
        Ok(stats) => stats,
        Err(error) => return fail(error, format == StatsFormat::Json),
    };
    match format {
        StatsFormat::Json => crate::print(&format!("{}\n", stats.to_json())),
        StatsFormat::Prometheus => crate::print(&stats.to_prometheus()),
        StatsFormat::Human if stats.flows.is_empty() => crate::print("no runs in the store match\n"),
        StatsFormat::Human => {
            let pages: Vec<String> = stats.flows.iter().map(page).collect();
            crate::print(&pages.join("\n"));
        }
    }
    Ok(ExitCode::SUCCESS)
}
