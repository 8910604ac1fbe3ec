//! `flowc check PATH…`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use flow_diagnostics::{Diagnostic, Severity, Sources};
use flow_sema::{Database, ReadError, file_diagnostics};

use crate::Format;
use crate::output::{self, Report};

/// Reads a path for the loader.
pub fn read(path: &str) -> Result<Vec<u8>, ReadError> {
    let metadata = std::fs::metadata(path).map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => ReadError::NotFound,
        _ => ReadError::Other(error.to_string()),
    })?;
    if metadata.is_dir() {
        return Err(ReadError::IsDirectory);
    }
    std::fs::read(path).map_err(|error| ReadError::Other(error.to_string()))
}

/// The `.flow` files under `path`, sorted; `path` itself when it is a file.
fn collect(path: &str, out: &mut Vec<String>) -> anyhow::Result<()> {
    let metadata = std::fs::metadata(path).with_context(|| format!("cannot read `{path}`"))?;
    if !metadata.is_dir() {
        out.push(path.to_owned());
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(path)
        .with_context(|| format!("cannot read the directory `{path}`"))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .collect();
    entries.sort();
    for entry in entries {
        let name = entry.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') {
            continue;
        }
        let Some(text) = entry.to_str() else { continue };
        if entry.is_dir() {
            collect(text, out)?;
        } else if Path::new(name).extension().is_some_and(|e| e == "flow") {
            out.push(text.to_owned());
        }
    }
    Ok(())
}

pub fn run(paths: &[String], strict: bool, format: Format) -> anyhow::Result<ExitCode> {
    let mut roots = Vec::new();
    for path in paths {
        collect(path, &mut roots)?;
    }
    let mut db = Database::default();
    let (_, failed) = db.load(&roots, &mut read);
    if let Some((path, error)) = failed.first() {
        match error {
            ReadError::NotFound => bail!("cannot read `{path}`: no such file"),
            ReadError::IsDirectory => bail!("cannot read `{path}`: it is a directory"),
            ReadError::Other(reason) => bail!("cannot read `{path}`: {reason}"),
        }
    }
    // Every loaded `.flow` file, including those reached only through imports.
    let files = db_files(&db);
    let mut sources = Sources::default();
    let mut diagnostics: Vec<Diagnostic> = Vec::new();
    for file in &files {
        sources.add(file.id(&db), file.path(&db).clone(), file.text(&db).clone());
        diagnostics.extend(file_diagnostics(&db, *file).iter().cloned());
    }
    if strict {
        for diagnostic in &mut diagnostics {
            diagnostic.severity = Severity::Error;
        }
    }
    // By file path, then position.
    diagnostics.sort_by(|a, b| {
        (sources.name(a.primary.file), a.sort_key()).cmp(&(sources.name(b.primary.file), b.sort_key()))
    });
    let report = Report { diagnostics: &diagnostics, sources: &sources, files: files.len() };
    let text = match format {
        Format::Human => output::human(&report, crate::use_color()),
        Format::Json => output::json(&report),
        Format::Sarif => output::sarif(&report),
    };
    crate::print(&text);
    let failed = diagnostics.iter().any(Diagnostic::is_error);
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn db_files(db: &Database) -> Vec<flow_sema::SourceFile> {
    use flow_sema::Db;
    db.workspace().sources(db).iter().copied().collect()
}
