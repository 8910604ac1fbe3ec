//! Loading `.flow` files and plan files for a command: the files, their diagnostics (the
//! front end's and the plan proofs', as the language server sees them), and the plans.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use flow_diagnostics::{Diagnostic, Sources};
use flow_ir::VerifiedPlan;
use flow_ir::separation::Directory;
use flow_lower::LoweredFlow;
use flow_sema::{Database, Db, ReadError, SourceFile};

/// The file in a directory that lists what `flowc fmt` leaves alone under it.
pub const FMT_IGNORE_FILE: &str = ".flowfmtignore";

/// The `.flow` files under `path`, sorted; `path` itself when it is a file. Names starting
/// with `.` are skipped, and so, when `honour_ignore_files`, is every path that the
/// `.flowfmtignore` of a directory on the way lists.
pub fn collect(path: &str, honour_ignore_files: bool, out: &mut Vec<String>) -> anyhow::Result<()> {
    walk(path, honour_ignore_files, &[], out)
}

fn walk(path: &str, honour_ignore_files: bool, ignored: &[PathBuf], out: &mut Vec<String>) -> anyhow::Result<()> {
    let metadata = std::fs::metadata(path).with_context(|| format!("cannot read `{path}`"))?;
    if !metadata.is_dir() {
        out.push(path.to_owned());
        return Ok(());
    }
    let mut ignored = ignored.to_vec();
    if honour_ignore_files {
        ignored.extend(ignore_file(Path::new(path))?);
    }
    let mut entries: Vec<_> = std::fs::read_dir(path)
        .with_context(|| format!("cannot read the directory `{path}`"))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .collect();
    entries.sort();
    for entry in entries {
        let name = entry.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') || ignored.iter().any(|skip| entry.starts_with(skip)) {
            continue;
        }
        let Some(text) = entry.to_str() else { continue };
        if entry.is_dir() {
            walk(text, honour_ignore_files, &ignored, out)?;
        } else if Path::new(name).extension().is_some_and(|e| e == "flow") {
            out.push(text.to_owned());
        }
    }
    Ok(())
}

/// The paths that `directory`'s ignore file lists: one path relative to the directory per
/// line; empty lines and lines starting with `#` are skipped.
fn ignore_file(directory: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let file = directory.join(FMT_IGNORE_FILE);
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error).with_context(|| format!("cannot read `{}`", file.display())),
    };
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| directory.join(line.trim_end_matches('/')))
        .collect())
}

/// The loaded files of one command.
pub struct Session {
    pub db: Database,
    pub sources: Sources,
    pub files: Vec<SourceFile>,
    /// The files named on the command line (or found under its directories).
    pub roots: Vec<SourceFile>,
}

impl Session {
    /// Loads the `.flow` files under `paths` and everything they import.
    pub fn load(paths: &[String]) -> anyhow::Result<Session> {
        let mut root_paths = Vec::new();
        for path in paths {
            collect(path, false, &mut root_paths)?;
        }
        let mut db = Database::default();
        let (roots, failed) = db.load(&root_paths, &mut flow_sema::read_from_disk);
        if let Some((path, error)) = failed.first() {
            match error {
                ReadError::NotFound => bail!("cannot read `{path}`: no such file"),
                ReadError::IsDirectory => bail!("cannot read `{path}`: it is a directory"),
                ReadError::Other(reason) => bail!("cannot read `{path}`: {reason}"),
            }
        }
        let files: Vec<SourceFile> = db.workspace().sources(&db).iter().copied().collect();
        let mut sources = Sources::default();
        for file in &files {
            sources.add(file.id(&db), file.path(&db).clone(), file.text(&db).clone());
        }
        Ok(Session { db, sources, files, roots })
    }

    /// A session of one source held in memory, named `name` (its imports are not found:
    /// there are no files beside it).
    pub fn from_text(name: &str, text: &str) -> Session {
        let mut db = Database::default();
        let mut read = |path: &str| if path == name { Ok(text.as_bytes().to_vec()) } else { Err(ReadError::NotFound) };
        let (roots, _) = db.load(&[name.to_owned()], &mut read);
        let files: Vec<SourceFile> = db.workspace().sources(&db).iter().copied().collect();
        let mut sources = Sources::default();
        for file in &files {
            sources.add(file.id(&db), file.path(&db).clone(), file.text(&db).clone());
        }
        Session { db, sources, files, roots }
    }

    /// The workspace's final diagnostics ([`flow_lower::workspace_diagnostics`]): every
    /// loaded file's, with what `checks` adds, by file path and position.
    pub fn diagnostics(&self, checks: &flow_lower::Checks<'_>) -> Vec<Diagnostic> {
        flow_lower::workspace_diagnostics(&self.db, &self.roots, &flow_lower::Checks { parallel: true, ..*checks })
    }

    /// The lowered flows of the root files, with the file each is in.
    pub fn flows(&self) -> Vec<(SourceFile, &LoweredFlow)> {
        self.roots
            .iter()
            .flat_map(|file| flow_lower::lower_file(&self.db, *file).flows.iter().map(move |flow| (*file, flow)))
            .collect()
    }

    /// The one flow a command works on: the one named, or the only one.
    pub fn choose(&self, name: Option<&str>, path: &str) -> anyhow::Result<(SourceFile, &LoweredFlow)> {
        let flows = self.flows();
        let names: Vec<String> = flows.iter().map(|(_, f)| format!("`{}`", f.name)).collect();
        match name {
            Some(name) => match flows.into_iter().find(|(_, f)| f.name == name) {
                Some(found) => Ok(found),
                None if names.is_empty() => bail!("`{path}` declares no flow"),
                None => bail!("`{path}` has no flow `{name}`; it declares {}", names.join(", ")),
            },
            None => match flows.as_slice() {
                [one] => Ok(*one),
                [] => bail!("`{path}` declares no flow"),
                _ => bail!("`{path}` declares several flows ({}); choose one with `--flow NAME`", names.join(", ")),
            },
        }
    }
}

/// A principals file: who holds which roles.
#[derive(serde::Deserialize)]
struct PrincipalsFile {
    principals: BTreeMap<String, Vec<String>>,
}

/// Reads a principals file (`[principals]`, `id = ["role", …]`).
pub fn read_principals(path: &str) -> anyhow::Result<Directory> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the principals file `{path}`"))?;
    let file: PrincipalsFile =
        toml::from_str(&text).with_context(|| format!("the principals file `{path}` is not valid"))?;
    Ok(Directory::new(file.principals))
}

/// Reads and verifies a plan file; a refusal is the input's error (exit 1), with every
/// reason.
pub fn read_plan(path: &str) -> anyhow::Result<Result<VerifiedPlan, String>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read `{path}`"))?;
    Ok(flow_ir::load(&bytes).map_err(|errors| {
        let lines: Vec<String> = errors.0.iter().map(|e| format!("{path}: [{}] {e}", e.code())).collect();
        format!("{}\nthe plan `{path}` is refused", lines.join("\n"))
    }))
}
