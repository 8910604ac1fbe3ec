//! `flowc build FILE`: compile one flow to a plan file and print its hash.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use flow_diagnostics::Diagnostic;

use crate::Format;
use crate::output::{self, Report};
use crate::session::{Session, read_principals};

/// Writes `text` to `path` so that a reader sees the old file or the new one, never a
/// part: a temporary file beside it, then a rename. A path that exists and is not a
/// regular file (`/dev/null`, `/dev/stdout`, a named pipe) is written to as it is: renaming
/// over it would replace a device with a file.
pub fn write_atomically(path: &str, text: &str) -> anyhow::Result<()> {
    // A symbolic link is followed: its target is written, the link kept.
    let resolved = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(path).ok(),
        _ => None,
    };
    let target = resolved.as_deref().unwrap_or(Path::new(path));
    if std::fs::metadata(target).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
        return std::fs::OpenOptions::new()
            .write(true)
            .open(target)
            .and_then(|mut file| file.write_all(text.as_bytes()))
            .with_context(|| format!("cannot write `{path}`"));
    }
    let dir = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("plan.json");
    let temporary = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        // A new file, never one already there (nor what a link planted there points to).
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(&temporary)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, target)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result.with_context(|| format!("cannot write `{path}`"))
}

/// Prints diagnostics for a command whose standard output is data: as JSON on standard
/// output with `--format json`, rendered on standard error otherwise.
pub fn report_diagnostics(session: &Session, diagnostics: &[Diagnostic], format: Format) {
    let report = Report { diagnostics, sources: &session.sources, files: session.files.len() };
    match format {
        Format::Json | Format::Sarif => crate::print(&output::json(&report)),
        Format::Human => {
            eprint!("{}", flow_diagnostics::render(diagnostics, &session.sources, crate::use_color_stderr()));
        }
    }
}

pub struct Options<'a> {
    pub file: &'a str,
    pub flow: Option<&'a str>,
    pub output: Option<&'a str>,
    pub principals: Option<&'a str>,
    pub strict: bool,
    pub format: Format,
}

pub fn run(options: &Options<'_>) -> anyhow::Result<ExitCode> {
    let directory = options.principals.map(read_principals).transpose()?;
    if !options.file.ends_with(".flow") {
        bail!("`{}` is not a `.flow` file; `flowc build` compiles a flow", options.file);
    }
    let session = Session::load(&[options.file.to_owned()])?;
    // E2019 (separation of duties against the principals) is an error, with or without
    // `--strict`.
    let checks = flow_lower::Checks {
        strict: options.strict,
        principals: directory.as_ref(),
        flow: options.flow,
        ..Default::default()
    };
    let diagnostics = session.diagnostics(&checks);
    let mut verified = None;
    if !diagnostics.iter().any(Diagnostic::is_error) {
        let (_, flow) = session.choose(options.flow, options.file)?;
        verified = Some(flow.plan.as_ref().context("the flow did not compile to a plan")?);
    }
    if !diagnostics.is_empty() {
        report_diagnostics(
            &session,
            &diagnostics,
            if diagnostics.iter().any(Diagnostic::is_error) { options.format } else { Format::Human },
        );
    }
    let Some(verified) = verified.filter(|_| !diagnostics.iter().any(Diagnostic::is_error)) else {
        return Ok(ExitCode::from(1));
    };
    let plan = verified.plan();
    let flow = &plan.plan.flow;
    let text = flow_ir::encode::to_json(plan);
    let default_path = format!("{}.plan.json", flow.name);
    let path = options.output.unwrap_or(&default_path);
    let summary = format!(
        "built flow `{}` {}: {} nodes, {} edges\n",
        flow.name,
        flow.version,
        plan.plan.nodes.len(),
        plan.plan.edges.len()
    );
    if path == "-" {
        crate::print(&text);
        eprintln!("{summary}hash {}", plan.hash);
        return Ok(ExitCode::SUCCESS);
    }
    write_atomically(path, &text)?;
    match options.format {
        Format::Json => {
            let value = serde_json::json!({
                "flow": flow.name.as_str(),
                "version": flow.version,
                "plan": path,
                "hash": plan.hash,
                "nodes": plan.plan.nodes.len(),
                "edges": plan.plan.edges.len(),
            });
            crate::print(&format!("{value}\n"));
        }
        Format::Human | Format::Sarif => crate::print(&format!("{summary}wrote {path}\nhash {}\n", plan.hash)),
    }
    Ok(ExitCode::SUCCESS)
}
