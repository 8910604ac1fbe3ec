//! `flowc check PATH…`.

use std::process::ExitCode;

use flow_diagnostics::Diagnostic;

use crate::Format;
use crate::output::{self, Report};
use crate::session::{Session, read_principals};

pub fn run(paths: &[String], strict: bool, format: Format, principals: Option<&str>) -> anyhow::Result<ExitCode> {
    let directory = principals.map(read_principals).transpose()?;
    let session = Session::load(paths)?;
    let checks = flow_lower::Checks { strict, principals: directory.as_ref(), ..Default::default() };
    let diagnostics = session.diagnostics(&checks);
    let report = Report { diagnostics: &diagnostics, sources: &session.sources, files: session.files.len() };
    let text = match format {
        Format::Human => output::human(&report, crate::use_color()),
        Format::Json => output::json(&report),
        Format::Sarif => output::sarif(&report),
    };
    crate::print(&text);
    let failed = diagnostics.iter().any(Diagnostic::is_error);
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
