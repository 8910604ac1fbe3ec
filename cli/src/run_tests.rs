//! `flowc test PATH…`: the `test` blocks of `.flow` files, run by `flow-test-runner`, with
//! its report in the chosen format and the exit code: `1` when a test fails, a snapshot is
//! stale or the coverage is below the minimum.

use std::process::ExitCode;

use flow_diagnostics::Diagnostic;
use flow_test_runner::{report, snapshots};
use serde_json::Value as Json;

use crate::output::{self, Report};
use crate::session::Session;

/// How `flowc test` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TestFormat {
    Human,
    Json,
    Junit,
}

pub struct Options<'a> {
    pub paths: &'a [String],
    pub format: TestFormat,
    /// Fail when the coverage of gates, rows and review branches is below this percentage.
    pub min_coverage: Option<f64>,
    /// Compare each run's decision trace with its snapshot (`FLOW_FILE.snap`).
    pub snapshot: bool,
    /// With `snapshot`: write the snapshots instead of comparing them.
    pub update: bool,
}

pub fn run(options: &Options<'_>) -> anyhow::Result<ExitCode> {
    let session = Session::load(options.paths)?;
    let diagnostics = session.diagnostics(&flow_lower::Checks::default());
    if diagnostics.iter().any(Diagnostic::is_error) {
        // Tests run only against flows (and tests) that check clean.
        let report = Report { diagnostics: &diagnostics, sources: &session.sources, files: session.files.len() };
        crate::print(&output::human(&report, crate::use_color()));
        return Ok(ExitCode::from(1));
    }
    let progress = crate::progress::Progress::new("files");
    let mut run = flow_test_runner::run(&session.db, &session.roots, &|done, total| progress.update(done, total));
    progress.finish();
    let mut problems = Vec::new();
    if options.snapshot {
        match snapshots::compare(&mut run.outcomes, options.update, &mut problems) {
            Ok(()) => {}
            Err(snapshots::Fault::Io(message)) => anyhow::bail!("{message}"),
            Err(snapshots::Fault::Corrupt { path, text, diagnostic }) => {
                let mut sources = flow_diagnostics::Sources::default();
                sources.add(diagnostic.primary.file, path, text);
                let report = Report { diagnostics: std::slice::from_ref(&*diagnostic), sources: &sources, files: 1 };
                crate::print(&output::human(&report, crate::use_color()));
                return Ok(ExitCode::from(1));
            }
        }
    }
    let percent = run.percent();
    let below = options.min_coverage.is_some_and(|min| percent + 1e-9 < min);
    let stale = problems.iter().any(|(_, failing)| *failing);
    let text = match options.format {
        TestFormat::Human => {
            let mut text = report::human(&run.outcomes, &run.coverage, percent, options.min_coverage);
            for (problem, _) in &problems {
                text.push_str(&format!("{problem}\n"));
            }
            text
        }
        TestFormat::Json => {
            let mut json = report::to_json(&run.outcomes, &run.coverage, percent);
            json["snapshots"] = problems.iter().map(|(p, _)| Json::String(p.clone())).collect();
            format!("{json}\n")
        }
        TestFormat::Junit => report::junit(&run.outcomes),
    };
    crate::print(&text);
    Ok(if run.failed() > 0 || below || stale { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
