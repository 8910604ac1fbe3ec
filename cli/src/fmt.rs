//! `flowc fmt [--check] PATH…`: canonical formatting of `.flow` files, comments kept.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use flow_diagnostics::{FileId, Sources};
use flow_syntax::format::{FormatError, format};
use serde_json::json;

use crate::DataFormat;

/// What became of one file.
enum Status {
    Unchanged,
    /// Rewritten (or, with `--check`, would be); the lines that change.
    Changed(Vec<String>),
    /// Not formatted: syntax errors (rendered) or a formatter failure.
    Failed(String),
}

pub fn run(paths: &[String], check: bool, format_: DataFormat) -> anyhow::Result<ExitCode> {
    if paths.iter().any(|path| path == "-") {
        if paths.len() > 1 {
            anyhow::bail!("`-` (standard input) cannot be combined with other paths");
        }
        return stdin(check);
    }
    let mut files = Vec::new();
    for path in paths {
        crate::session::collect(path, true, &mut files)?;
    }
    let mut results = Vec::new();
    for file in &files {
        let bytes = std::fs::read(file).with_context(|| format!("cannot read `{file}`"))?;
        let status = match String::from_utf8(bytes) {
            Err(error) => {
                Status::Failed(format!("{file}: not UTF-8 text (at byte {})\n", error.utf8_error().valid_up_to()))
            }
            Ok(text) => match format(&text, FileId(0)) {
                Err(error) => Status::Failed(describe(file, &text, &error)),
                Ok(formatted) if formatted == text => Status::Unchanged,
                Ok(formatted) => {
                    if !check {
                        write(file, &formatted)?;
                    }
                    Status::Changed(changed_lines(&text, &formatted))
                }
            },
        };
        results.push((file.as_str(), status));
    }
    let failed = results.iter().any(|(_, status)| matches!(status, Status::Failed(_)));
    let changed = results.iter().filter(|(_, status)| matches!(status, Status::Changed(_))).count();
    match format_ {
        DataFormat::Human => crate::print(&human(&results, check)),
        DataFormat::Json => {
            let files: Vec<_> = results
                .iter()
                .map(|(file, status)| match status {
                    Status::Unchanged => json!({"file": file, "status": "unchanged"}),
                    Status::Changed(_) if check => json!({"file": file, "status": "would change"}),
                    Status::Changed(_) => json!({"file": file, "status": "formatted"}),
                    Status::Failed(why) => json!({"file": file, "status": "error", "error": why}),
                })
                .collect();
            crate::print(&format!("{}\n", json!({ "files": files })));
        }
    }
    Ok(if failed || (check && changed > 0) { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// `flowc fmt -`: standard input to standard output.
fn stdin(check: bool) -> anyhow::Result<ExitCode> {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).context("cannot read standard input as UTF-8")?;
    match format(&text, FileId(0)) {
        Err(error) => {
            eprint!("{}", describe("<stdin>", &text, &error));
            Ok(ExitCode::from(1))
        }
        Ok(formatted) if check => {
            if formatted == text {
                return Ok(ExitCode::SUCCESS);
            }
            eprint!("{}", human(&[("<stdin>", Status::Changed(changed_lines(&text, &formatted)))], true));
            Ok(ExitCode::from(1))
        }
        Ok(formatted) => {
            crate::print(&formatted);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn human(results: &[(&str, Status)], check: bool) -> String {
    let mut out = String::new();
    let mut changed = 0;
    let mut failed = 0;
    for (file, status) in results {
        match status {
            Status::Unchanged => {}
            Status::Changed(lines) => {
                changed += 1;
                if check {
                    out.push_str(&format!("would reformat {file}\n"));
                    for line in lines {
                        out.push_str(&format!("    {line}\n"));
                    }
                } else {
                    out.push_str(&format!("formatted {file}\n"));
                }
            }
            Status::Failed(why) => {
                failed += 1;
                out.push_str(why);
            }
        }
    }
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    let files = results.len();
    let verb = if check { "would be reformatted" } else { "reformatted" };
    out.push_str(&format!("{files} file{}: {changed} {verb}", plural(files)));
    if failed > 0 {
        out.push_str(&format!(", {failed} not formatted (errors above)"));
    }
    out.push('\n');
    out
}

/// Why `file` could not be formatted, for people.
fn describe(file: &str, text: &str, error: &FormatError) -> String {
    match error {
        FormatError::Syntax(diagnostics) => {
            // Each file is formatted on its own, as file 0.
            let mut sources = Sources::default();
            sources.add(FileId(0), file, text);
            let mut out = flow_diagnostics::render(diagnostics, &sources, crate::use_color());
            out.push_str(&format!("{file}: not formatted: it has syntax errors\n"));
            out
        }
        FormatError::Internal(why) => {
            format!("{file}: not formatted: the formatter failed its own check ({why}); the file is unchanged\n")
        }
    }
}

/// The lines that formatting changes, as `-`/`+` lines with their line numbers, for
/// `--check`: the region between the common first and last lines, at most 40 lines.
fn changed_lines(old: &str, new: &str) -> Vec<String> {
    const SHOWN: usize = 40;
    let old: Vec<&str> = old.lines().collect();
    let new: Vec<&str> = new.lines().collect();
    let prefix = old.iter().zip(&new).take_while(|(a, b)| a == b).count();
    let suffix = old[prefix..].iter().rev().zip(new[prefix..].iter().rev()).take_while(|(a, b)| a == b).count();
    let mut lines = vec![format!("from line {}:", prefix + 1)];
    lines.extend(old[prefix..old.len() - suffix].iter().map(|line| format!("- {line}")));
    lines.extend(new[prefix..new.len() - suffix].iter().map(|line| format!("+ {line}")));
    if lines.len() > SHOWN + 1 {
        let more = lines.len() - SHOWN - 1;
        lines.truncate(SHOWN + 1);
        lines.push(format!("… and {more} more lines"));
    }
    lines
}

/// Replaces `file`'s text: written beside it and renamed over it, so that a failure leaves
/// the file as it was.
fn write(file: &str, text: &str) -> anyhow::Result<()> {
    let path = Path::new(file);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let temporary = path.with_file_name(format!(".{name}.fmt-{}", std::process::id()));
    let result = (|| {
        std::fs::write(&temporary, text)?;
        let permissions = std::fs::metadata(path)?.permissions();
        std::fs::set_permissions(&temporary, permissions)?;
        std::fs::rename(&temporary, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result.with_context(|| format!("cannot write `{file}`"))
}
