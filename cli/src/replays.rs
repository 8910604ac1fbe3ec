//! `flowc replay`: one stored run or all of them, exactly or with other params or another
//! plan.
//!
//! Exit codes: `0` the replay ran (and, without changes, reproduced every run), `1` a run
//! replayed without changes came out otherwise, or a refusal or bad request, `2` the store
//! cannot be used or some run's evidence could not be replayed.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::bail;
use flow_runtime::analysis::Analysis;
use flow_runtime::whatif::Change;
use flow_runtime::{Engine, ReplayChanges, ReplaySummary, RunFilter, Runtime};
use serde_json::{Value as Json, json};

use crate::DataFormat;
use crate::deploy::{self, Deployment};
use crate::runs::{fail, open, plan};

pub struct Options<'a> {
    pub who: Option<&'a str>,
    pub engine: Option<Engine>,
    pub flow: Option<&'a str>,
    pub plan: Option<&'a str>,
    pub set: &'a [String],
    pub live: bool,
    pub format: DataFormat,
}

/// The runtime to replay with, and the changes asked for (`Err`: the exit, a plan that did
/// not compile having been reported).
fn prepare(
    deployment: &Deployment,
    options: &Options<'_>,
) -> anyhow::Result<Result<(Runtime, ReplayChanges), ExitCode>> {
    let mut changes = ReplayChanges { live: options.live, ..ReplayChanges::default() };
    for set in options.set {
        let Some((name, value)) = set.split_once('=') else { bail!("`--set {set}` is not PARAM=VALUE") };
        let value = match serde_json::from_str::<Json>(value) {
            Ok(_) => flow_runtime::value::parse_exact(value).map_err(|e| anyhow::anyhow!("`--set {set}`: {e}"))?,
            Err(_) => Json::String(value.to_owned()),
        };
        changes.params.push((name.trim().to_owned(), value));
    }
    if let Some(file) = options.plan {
        match plan(file, options.flow)? {
            Ok(plan) => changes.plan = Some(Arc::new(Analysis::new(plan))),
            Err(code) => return Ok(Err(code)),
        }
    }
    let mut runtime = open(deployment)?;
    if let Some(engine) = options.engine {
        runtime.set_engine(engine);
    }
    Ok(Ok((runtime, changes)))
}

/// A step's result as a person reads it.
fn shown(json: &Json, absent: &str) -> String {
    match json {
        Json::Null => absent.to_owned(),
        json => flow_runtime::labels::display(json),
    }
}

fn print_changes(changes: &[Change]) {
    let width = changes.iter().map(|c| c.node.len()).max().unwrap_or(0).max(4);
    let mut text = format!("  {:width$}  before → after\n", "step");
    for change in changes {
        text.push_str(&format!(
            "  {:width$}  {} → {}\n",
            change.node,
            shown(&change.before, "did not run"),
            shown(&change.after, "not reached")
        ));
    }
    crate::print(&text);
}

/// `flowc replay RUN [--plan PLAN] [--set PARAM=VALUE…]`.
pub fn one(deployment: &Deployment, run: &str, options: &Options<'_>) -> anyhow::Result<ExitCode> {
    let who = deploy::principal(deployment, options.who)?;
    let (runtime, changes) = match prepare(deployment, options)? {
        Ok(prepared) => prepared,
        Err(code) => return Ok(code),
    };
    if changes.is_none() {
        return exact(&runtime, run, &who, options.format);
    }
    let whatif = match runtime.what_if(run, &who, &changes) {
        Ok(whatif) => whatif,
        Err(error) => return fail(error, options.format == DataFormat::Json),
    };
    match options.format {
        DataFormat::Json => crate::print(&format!("{}\n", whatif.to_json())),
        DataFormat::Human => {
            let outcome = if whatif.before == whatif.after {
                format!("outcome unchanged: {}", whatif.before)
            } else {
                format!("outcome: {} → {}", whatif.before, whatif.after)
            };
            crate::print(&format!("run {}: {outcome}; {} steps change\n", whatif.run, whatif.changes.len()));
            if !whatif.changes.is_empty() {
                print_changes(&whatif.changes);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn exact(runtime: &Runtime, run: &str, who: &flow_runtime::Principal, format: DataFormat) -> anyhow::Result<ExitCode> {
    let replay = match runtime.replay(run, who) {
        Ok(replay) => replay,
        Err(error) => return fail(error, format == DataFormat::Json),
    };
    let exact = replay.divergence.is_none();
    match format {
        DataFormat::Json => crate::print(&format!("{}\n", replay.to_json())),
        DataFormat::Human => match &replay.divergence {
            None => crate::print(&format!(
                "run {}: replayed exactly: {} events, every step's value and the outcome ({}) as recorded (engine {})\n",
                replay.run,
                replay.events,
                replay.status.as_str(),
                replay.engine
            )),
            Some(d) => crate::print(&format!(
                "run {}: the replay differs at event {}{}:\n  recorded: {}\n  replayed: {}\n",
                replay.run,
                d.index,
                d.node.as_ref().map(|n| format!(", step `{n}`")).unwrap_or_default(),
                d.recorded,
                d.replayed
            )),
        },
    }
    Ok(if exact { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// `--since`: a date, or an instant written as the store writes them.
pub(crate) fn since(text: &str) -> anyhow::Result<String> {
    let date = text.len() == 10 && flow_ir::time::parse_timestamp(&format!("{text}T00:00:00Z")).is_some();
    if date {
        return Ok(text.to_owned());
    }
    match flow_ir::time::parse_timestamp(text) {
        Some((seconds, nanos)) => Ok(flow_ir::expr::Timestamp { seconds, nanos }.to_string()),
        None => bail!("`--since {text}` is neither a date (2026-11-01) nor an RFC 3339 instant"),
    }
}

/// `flowc replay --all [--flow NAME] [--since DATE] [--plan PLAN] [--set PARAM=VALUE…]`.
pub fn all(
    deployment: &Deployment,
    since_text: Option<&str>,
    details: bool,
    options: &Options<'_>,
) -> anyhow::Result<ExitCode> {
    let who = deploy::principal(deployment, options.who)?;
    let filter =
        RunFilter { flow: options.flow.map(str::to_owned), since: since_text.map(since).transpose()?, details };
    let (mut runtime, changes) = match prepare(deployment, options)? {
        Ok(prepared) => prepared,
        Err(code) => return Ok(code),
    };
    let progress = crate::progress::of_runtime(&mut runtime);
    let summary = runtime.replay_all(&who, &filter, &changes);
    progress.finish();
    let summary = match summary {
        Ok(summary) => summary,
        Err(error) => return fail(error, options.format == DataFormat::Json),
    };
    match options.format {
        DataFormat::Json => crate::print(&format!("{}\n", summary.to_json(details))),
        DataFormat::Human => print_summary(&summary, details, &changes),
    }
    Ok(if !summary.errors.is_empty() {
        ExitCode::from(2)
    } else if changes.is_none() && summary.exact < summary.runs {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_summary(summary: &ReplaySummary, details: bool, changes: &ReplayChanges) {
    let what = if changes.is_none() { "replayed" } else { "replayed with the changes" };
    let mut text = format!(
        "{what}: {} runs; {} exactly as recorded, {} would end with another outcome\n",
        summary.runs, summary.exact, summary.changed
    );
    for ((from, to), count) in &summary.transitions {
        text.push_str(&format!("  {from} → {to}: {count}\n"));
    }
    if summary.not_allowed > 0 {
        text.push_str(&format!("not replayed: {} runs the principal may not replay\n", summary.not_allowed));
    }
    for (run, error) in &summary.errors {
        text.push_str(&format!("could not replay run {run}: {error}\n"));
    }
    crate::print(&text);
    if details {
        for run in summary.details.iter().filter(|r| r.error.is_none()) {
            crate::print(&format!("run {}: {} → {}\n", run.run, run.before, run.after));
            print_changes(&run.changes);
        }
    }
}

pub struct ShadowOptions<'a> {
    pub who: Option<&'a str>,
    pub flow: Option<&'a str>,
    pub since: Option<&'a str>,
    pub candidate: Option<&'a str>,
    pub details: bool,
    pub format: DataFormat,
}

fn changes_of(json: &Json) -> Vec<Change> {
    json.as_array()
        .into_iter()
        .flatten()
        .map(|c| Change {
            node: c["node"].as_str().unwrap_or_default().to_owned(),
            before: c["before"].clone(),
            after: c["after"].clone(),
        })
        .collect()
}

/// `flowc shadow-report [--flow NAME] [--since DATE] [--candidate HASH] [--details]`.
pub fn shadow_report(deployment: &Deployment, options: &ShadowOptions<'_>) -> anyhow::Result<ExitCode> {
    let who = deploy::principal(deployment, options.who)?;
    let filter = RunFilter {
        flow: options.flow.map(str::to_owned),
        since: options.since.map(since).transpose()?,
        details: options.details,
    };
    let runtime = open(deployment)?;
    let report = match runtime.shadow_report(&who, &filter, options.candidate) {
        Ok(report) => report,
        Err(error) => return fail(error, options.format == DataFormat::Json),
    };
    let differing = report.shadows.iter().filter(|s| s.outcome != s.production || s.changes != json!([]));
    match options.format {
        DataFormat::Json => crate::print(&format!("{}\n", report.to_json(options.details))),
        DataFormat::Human => {
            let mut text = format!(
                "{} shadow runs: {} reach the production outcome, {} another\n",
                report.runs,
                report.agree,
                report.runs - report.agree
            );
            for ((from, to), count) in &report.transitions {
                text.push_str(&format!("  production {from} → candidate {to}: {count}\n"));
            }
            for (candidate, count) in &report.candidates {
                text.push_str(&format!("  candidate {candidate}: {count} runs\n"));
            }
            if report.not_allowed > 0 {
                text.push_str(&format!(
                    "not shown: {} shadows of runs the principal may not replay\n",
                    report.not_allowed
                ));
            }
            crate::print(&text);
            if options.details {
                for shadow in differing {
                    crate::print(&format!(
                        "run {}: production {} → candidate {}\n",
                        shadow.run, shadow.production, shadow.outcome
                    ));
                    print_changes(&changes_of(&shadow.changes));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
