//! Shared helpers of the test suite: multi-file fixtures, checking a set of in-memory
//! files, rendering diagnostics without colour, and a readable dump of checked flows.
//!
//! A fixture is one text. Lines of the form `//- path` start a new file; the text before
//! the first such line is the main file. Files named `*.flow` are loaded as flows, others
//! (prompts) as plain files.

#[cfg(test)]
mod examples;
#[cfg(test)]
mod registry;
#[cfg(test)]
mod robust;
#[cfg(test)]
mod tidy;

use std::collections::BTreeMap;

use flow_diagnostics::{Diagnostic, Sources};
use flow_sema::{Database, Db, ReadError, SourceFile, file_diagnostics};

/// The files of a fixture: `(path, contents)`, the main file first.
pub fn fixture_files(main_path: &str, text: &str) -> Vec<(String, String)> {
    let mut files = vec![(main_path.to_owned(), String::new())];
    for line in text.split_inclusive('\n') {
        match line.trim_end().strip_prefix("//- ") {
            Some(path) => files.push((path.trim().to_owned(), String::new())),
            None => files.last_mut().map_or((), |(_, contents)| contents.push_str(line)),
        }
    }
    files
}

/// A checked set of files.
pub struct Checked {
    pub db: Database,
    pub diagnostics: Vec<Diagnostic>,
    pub sources: Sources,
    pub files: Vec<SourceFile>,
}

impl Checked {
    pub fn render(&self) -> String {
        flow_diagnostics::render(&self.diagnostics, &self.sources, false)
    }
}

/// Loads the files (the first is the root) and checks everything loaded.
pub fn check_files(files: &[(String, Vec<u8>)]) -> Checked {
    let map: BTreeMap<String, Vec<u8>> =
        files.iter().map(|(path, bytes)| (flow_sema::normalize(path), bytes.clone())).collect();
    let mut db = Database::default();
    let roots = vec![files[0].0.clone()];
    db.load(&roots, &mut |path| match map.get(path) {
        Some(bytes) => Ok(bytes.clone()),
        // A path that other files are under is a directory.
        None if map.keys().any(|other| other.starts_with(&format!("{path}/"))) => Err(ReadError::IsDirectory),
        None => Err(ReadError::NotFound),
    });
    let loaded: Vec<SourceFile> = db.workspace().sources(&db).iter().copied().collect();
    let mut sources = Sources::default();
    let mut diagnostics = Vec::new();
    for file in &loaded {
        sources.add(file.id(&db), file.path(&db).clone(), file.text(&db).clone());
        diagnostics.extend(file_diagnostics(&db, *file).iter().cloned());
    }
    Checked { db, diagnostics, sources, files: loaded }
}

/// Checks a fixture text.
pub fn check_fixture(main_path: &str, text: &str) -> Checked {
    let files: Vec<(String, Vec<u8>)> =
        fixture_files(main_path, text).into_iter().map(|(p, t)| (p, t.into_bytes())).collect();
    check_files(&files)
}

/// A readable summary of every checked function and flow of the main file: signatures,
/// step kinds and types, and expressions in source form.
pub fn dump(checked: &Checked) -> String {
    use flow_sema::hir::StepKind;
    use flow_sema::print::{self, Names};
    let db = &checked.db;
    let Some(file) = checked.files.first().copied() else { return String::new() };
    let mut out = String::new();
    for function in flow_sema::fn_bodies(db, file).functions.iter().flatten() {
        let params: Vec<String> = function.params.iter().map(|(n, t)| format!("{n}: {t}")).collect();
        let names = Names { db, flow: None, fn_params: &function.params };
        out.push_str(&format!(
            "fn {}({}) -> {} = {}\n",
            function.name,
            params.join(", "),
            function.ret,
            print::expr(names, &function.body)
        ));
    }
    for flow in &flow_sema::check_file(db, file).flows {
        let names = Names { db, flow: Some(flow), fn_params: &[] };
        let role = |id: Option<flow_sema::DeclId>| id.map_or("?".to_owned(), |id| flow_sema::decl_name(db, id));
        out.push_str(&format!(
            "flow {} {} (owner {}, steward {})\n",
            flow.name,
            flow.version.as_deref().unwrap_or("?"),
            role(flow.owner),
            role(flow.steward)
        ));
        for input in &flow.inputs {
            let source = input.source.map(|s| format!(" from {}", flow_sema::decl_name(db, s))).unwrap_or_default();
            out.push_str(&format!("  input {}: {}{source}\n", input.name, input.ty));
        }
        for output in &flow.outputs {
            out.push_str(&format!("  output {}: {}\n", output.name, output.ty));
        }
        for param in &flow.params {
            out.push_str(&format!("  param {}: {} = {}\n", param.name, param.ty, print::expr(names, &param.default)));
        }
        for grant in &flow.grants {
            let roles: Vec<String> = grant.roles.iter().map(|r| flow_sema::decl_name(db, *r)).collect();
            out.push_str(&format!(
                "  grant {} ({} targets) by {}\n",
                grant.kind.as_str(),
                grant.targets.len(),
                roles.join(", ")
            ));
        }
        for step in &flow.steps {
            let detail = match &step.kind {
                StepKind::Let { value } => format!("= {}", print::expr(names, value)),
                StepKind::Gate { kind, condition, approvers, .. } => {
                    let approvers: Vec<String> = approvers.iter().map(|r| flow_sema::decl_name(db, *r)).collect();
                    let approvers = if approvers.is_empty() {
                        String::new()
                    } else {
                        format!(" approve by {}", approvers.join(", "))
                    };
                    format!("{} when {}{approvers}", kind.as_str(), print::expr(names, condition))
                }
                StepKind::Infer { model, args, fallback } => {
                    let args: Vec<String> = args.iter().map(|a| print::expr(names, a)).collect();
                    let fallback =
                        fallback.as_ref().map(|f| format!(" fallback {}", print::expr(names, f))).unwrap_or_default();
                    let model = model.map_or_else(|| "?".to_owned(), |m| flow_sema::decl_name(db, m));
                    format!("= {model}({}){fallback}", args.join(", "))
                }
                StepKind::Review { outcomes, reasons, edits, condition, .. } => {
                    let edits: Vec<String> =
                        edits.iter().map(|e| format!("{}: {}", e.fields.join("."), e.ty)).collect();
                    let condition =
                        condition.as_ref().map(|c| format!(" when {}", print::expr(names, c))).unwrap_or_default();
                    format!(
                        "outcomes [{}] reasons [{}] edits [{}]{condition}",
                        outcomes.join(", "),
                        reasons.join(", "),
                        edits.join(", ")
                    )
                }
                StepKind::Approval { rows, distinct_from } => {
                    format!("{} rows, distinct from {} principals", rows.len(), distinct_from.len())
                }
                StepKind::Action { args, condition, .. } => {
                    let args: Vec<String> = args.iter().map(|a| print::expr(names, a)).collect();
                    let condition =
                        condition.as_ref().map(|c| format!(" when {}", print::expr(names, c))).unwrap_or_default();
                    format!("({}){condition}", args.join(", "))
                }
                StepKind::Emit { value, .. } => format!("= {}", print::expr(names, value)),
            };
            let ty = match &step.ty {
                flow_sema::ty::Ty::Nothing | flow_sema::ty::Ty::Step(_) => String::new(),
                ty => format!(": {ty}"),
            };
            out.push_str(&format!("  {} {}{ty} {detail}\n", step.kind.keyword(), step.name));
        }
    }
    out
}
