//! `flowc graph FILE`: a flow's DAG for people, in DOT or Mermaid; and obtaining a
//! verified plan from a `.flow` file or a plan file, which `graph` and `diff` share.

use std::process::ExitCode;

use flow_diagnostics::Diagnostic;
use flow_ir::VerifiedPlan;
use flow_ir::render::{GraphFormat, Layer};

use crate::Format;
use crate::build_plan::report_diagnostics;
use crate::session::{Session, read_plan};

/// The verified plan of `path`: compiled when it is a `.flow` file (the flow `flow`, or
/// its only one), read and verified otherwise. `Err` carries the exit code after the
/// reasons were printed: the input has errors.
pub fn obtain(path: &str, flow: Option<&str>, format: Format) -> anyhow::Result<Result<VerifiedPlan, ExitCode>> {
    if !path.ends_with(".flow") {
        return Ok(read_plan(path)?.map_err(|reasons| {
            eprintln!("{reasons}");
            ExitCode::from(1)
        }));
    }
    let session = Session::load(&[path.to_owned()])?;
    let diagnostics = session.diagnostics(&flow_lower::Checks::default());
    if diagnostics.iter().any(Diagnostic::is_error) {
        report_diagnostics(&session, &diagnostics, format);
        return Ok(Err(ExitCode::from(1)));
    }
    let (_, lowered) = session.choose(flow, path)?;
    match lowered.plan.clone() {
        Some(plan) => Ok(Ok(plan)),
        None => anyhow::bail!("flow `{}` did not compile to a plan", lowered.name),
    }
}

pub fn run(path: &str, flow: Option<&str>, format: GraphFormat, layer: Layer) -> anyhow::Result<ExitCode> {
    let verified = match obtain(path, flow, Format::Human)? {
        Ok(verified) => verified,
        Err(code) => return Ok(code),
    };
    crate::print(&flow_ir::render::graph(&verified, format, layer));
    Ok(ExitCode::SUCCESS)
}
