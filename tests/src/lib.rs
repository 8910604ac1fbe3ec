//! Shared helpers of the test suite: multi-file fixtures, checking a set of in-memory
//! files (front end, lowering and plan proofs, as `flowc check` does), rendering
//! diagnostics without colour, and a readable dump of checked flows.
//!
//! A fixture is one text. Lines of the form `//- path` start a new file; the text before
//! the first such line is the main file. Files named `*.flow` are loaded as flows, a file
//! named `flow-principals.toml` is the directory of principals (as `flowc check
//! --principals` reads it), and others (prompts) are plain files.

#[cfg(test)]
mod editors;
#[cfg(test)]
mod examples;
#[cfg(test)]
mod flows;
#[cfg(test)]
mod formatting;
#[cfg(test)]
mod guarantees;
#[cfg(test)]
mod integrity;
#[cfg(test)]
mod jit;
#[cfg(test)]
mod migration;
#[cfg(test)]
mod monitors;
#[cfg(test)]
mod noninterference;
#[cfg(test)]
mod plans;
pub mod postgres;
#[cfg(test)]
mod processes;
#[cfg(test)]
mod registry;
#[cfg(test)]
mod releases;
#[cfg(test)]
mod retrieval;
#[cfg(test)]
mod robust;
#[cfg(test)]
mod runtime;
#[cfg(test)]
mod stores;
#[cfg(test)]
mod tidy;
#[cfg(test)]
mod timers;

use std::collections::BTreeMap;

use flow_diagnostics::{Diagnostic, Sources};
use flow_sema::{Database, Db, ReadError, SourceFile};

/// The files of a fixture: `(path, contents)`, the main file first.
pub fn fixture_files(main_path: &str, text: &str) -> Vec<(String, String)> {
    fixture_bytes(main_path, text.as_bytes())
        .into_iter()
        .map(|(path, bytes)| (path, String::from_utf8_lossy(&bytes).into_owned()))
        .collect()
}

/// The files of a fixture given as bytes, so that a file may be other than UTF-8.
pub fn fixture_bytes(main_path: &str, text: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut files = vec![(main_path.to_owned(), Vec::new())];
    for line in text.split_inclusive(|b| *b == b'\n') {
        let marker = line.strip_prefix(b"//- ").map(|rest| String::from_utf8_lossy(rest).trim().to_owned());
        match marker {
            Some(path) => files.push((path, Vec::new())),
            None => files.last_mut().map_or((), |(_, contents)| contents.extend_from_slice(line)),
        }
    }
    files
}

/// The principals file of a fixture, if it has one.
pub fn fixture_principals(files: &[(String, Vec<u8>)]) -> Option<flow_ir::separation::Directory> {
    #[derive(serde::Deserialize)]
    struct PrincipalsFile {
        principals: BTreeMap<String, Vec<String>>,
    }
    let (_, bytes) = files.iter().find(|(path, _)| path.ends_with("flow-principals.toml"))?;
    let file: PrincipalsFile = toml::from_str(&String::from_utf8_lossy(bytes)).ok()?;
    Some(flow_ir::separation::Directory::new(file.principals))
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

    /// Whether the fixture checks clean but for `W2003` (a human step without a deadline):
    /// fixtures about other things than deadlines leave their steps as they were written
    /// before deadlines, which only warns.
    pub fn clean(&self) -> bool {
        self.diagnostics.iter().all(|d| d.code == flow_diagnostics::Code::W2003)
    }

    /// The diagnostics but `W2003`, rendered.
    pub fn render_without_deadlines(&self) -> String {
        let kept: Vec<Diagnostic> =
            self.diagnostics.iter().filter(|d| d.code != flow_diagnostics::Code::W2003).cloned().collect();
        flow_diagnostics::render(&kept, &self.sources, false)
    }
}

/// Reads the files of a fixture by their normalised paths, as the loader reads a disk.
pub fn fixture_reader(files: &[(String, Vec<u8>)]) -> impl Fn(&str) -> Result<Vec<u8>, ReadError> + use<> {
    let map: BTreeMap<String, Vec<u8>> =
        files.iter().map(|(path, bytes)| (flow_sema::normalize(path), bytes.clone())).collect();
    move |path| match map.get(path) {
        Some(bytes) => Ok(bytes.clone()),
        // A path that other files are under is a directory.
        None if map.keys().any(|other| other.starts_with(&format!("{path}/"))) => Err(ReadError::IsDirectory),
        None => Err(ReadError::NotFound),
    }
}

/// Loads the files (the first is the root) and checks everything loaded.
pub fn check_files(files: &[(String, Vec<u8>)]) -> Checked {
    let read = fixture_reader(files);
    let mut db = Database::default();
    let roots = vec![files[0].0.clone()];
    db.load(&roots, &mut |path| read(path));
    let loaded: Vec<SourceFile> = db.workspace().sources(&db).iter().copied().collect();
    let mut sources = Sources::default();
    let mut diagnostics = Vec::new();
    for file in &loaded {
        sources.add(file.id(&db), file.path(&db).clone(), file.text(&db).clone());
        diagnostics.extend(flow_lower::file_diagnostics(&db, *file).iter().cloned());
    }
    if let Some(directory) = fixture_principals(files) {
        for file in &loaded {
            for flow in &flow_lower::lower_file(&db, *file).flows {
                let Some(verified) = &flow.plan else { continue };
                let at = (file.id(&db), flow_diagnostics::Span::default());
                diagnostics.extend(flow_lower::separation_diagnostics(flow, verified, &directory, at));
            }
        }
        flow_diagnostics::sort(&mut diagnostics);
    }
    Checked { db, diagnostics, sources, files: loaded }
}

/// Checks a fixture text.
pub fn check_fixture(main_path: &str, text: &[u8]) -> Checked {
    check_files(&fixture_bytes(main_path, text))
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
                StepKind::Retrieve { corpus, query, top } => {
                    let corpus = corpus.map_or_else(|| "?".to_owned(), |c| flow_sema::decl_name(db, c));
                    format!("= {corpus}({}) top {top}", print::expr(names, query))
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
    let checked_file = flow_sema::check_file(db, file);
    for test in &checked_file.tests {
        use flow_sema::hir::{ExpectKind, TestMock};
        let Some(flow) = checked_file.flows.iter().find(|f| f.id == test.flow) else { continue };
        let names = Names { db, flow: Some(flow), fn_params: &test.columns };
        let expr = |e: &flow_sema::hir::Expr| print::expr(names, e);
        let mock = |m: &TestMock| match m {
            TestMock::Returns(value) => format!("returns {}", expr(value)),
            TestMock::Fails => "fails".to_owned(),
        };
        let step = |index: u32| flow.steps.get(index as usize).map_or("?", |s| s.name.as_str());
        out.push_str(&format!("test {:?} runs {}\n", test.name, flow.name));
        if let Some(clock) = &test.clock {
            out.push_str(&format!("  at {}\n", expr(clock)));
        }
        for (index, value) in &test.given {
            out.push_str(&format!("  given {} = {}\n", flow.inputs[*index as usize].name, expr(value)));
        }
        for (index, value) in &test.params {
            out.push_str(&format!("  param {} = {}\n", flow.params[*index as usize].name, expr(value)));
        }
        for (model, m) in &test.models {
            out.push_str(&format!("  model {} {}\n", flow_sema::decl_name(db, *model), mock(m)));
        }
        for (index, m) in &test.actions {
            out.push_str(&format!("  action {} {}\n", step(*index), mock(m)));
        }
        for decision in &test.steps {
            let roles: Vec<String> = decision.roles.iter().map(|r| flow_sema::decl_name(db, *r)).collect();
            let what = match &decision.overrides {
                Some(reason) => format!("override: {reason:?}"),
                None => format!("{} because {:?}", decision.outcome, decision.reason),
            };
            out.push_str(&format!(
                "  {} by {} as [{}]: {what}\n",
                step(decision.step),
                decision.principal,
                roles.join(", ")
            ));
        }
        for expectation in &test.expectations {
            let text = match &expectation.kind {
                ExpectKind::Outcome(outcome) => format!("outcome {outcome}"),
                ExpectKind::Gate { step: index, held } => format!("gate {} held: {held}", step(*index)),
                ExpectKind::Action { step: index, ran } => format!("action {} ran: {ran}", step(*index)),
                ExpectKind::Holds(condition) => expr(condition),
            };
            out.push_str(&format!("  expect {text}\n"));
        }
        for row in &test.rows {
            let values: Vec<String> = test
                .columns
                .iter()
                .zip(&row.values)
                .map(|((name, _), value)| format!("{name}: {}", expr(value)))
                .collect();
            out.push_str(&format!("  example {{ {} }}\n", values.join(", ")));
        }
    }
    out
}

/// The plans of the main file's flows, in order; `None` for a flow that did not compile.
pub fn plans(checked: &Checked) -> Vec<Option<flow_ir::VerifiedPlan>> {
    let Some(file) = checked.files.first().copied() else { return Vec::new() };
    flow_lower::lower_file(&checked.db, file).flows.iter().map(|f| f.plan.clone()).collect()
}

/// The node `/nodes/[name=triage]` style pointer segment: an array element by its `name`.
fn select<'v>(value: &'v mut serde_json::Value, segment: &str) -> Option<&'v mut serde_json::Value> {
    if let Some(name) = segment.strip_prefix("[name=").and_then(|s| s.strip_suffix(']')) {
        return value.as_array_mut()?.iter_mut().find(|item| item["name"] == name);
    }
    if let Some(index) = segment.strip_prefix('[').and_then(|s| s.strip_suffix(']'))
        && let Some((from, to)) = index.split_once("->")
    {
        // `[from->to]`: the edge from `from` to `to`.
        return value.as_array_mut()?.iter_mut().find(|item| item[0] == from && item[1] == to);
    }
    match value {
        serde_json::Value::Array(items) => items.get_mut(segment.parse::<usize>().ok()?),
        serde_json::Value::Object(map) => map.get_mut(segment),
        _ => None,
    }
}

/// Applies one JSON Patch operation (`add`, `remove`, `replace`) to `value`. Path segments
/// may also be `[name=x]` (the array element named `x`) or `[a->b]` (the edge from `a` to
/// `b`). Returns a description of the problem when the path does not exist.
pub fn apply_patch(value: &mut serde_json::Value, patch: &serde_json::Value) -> Result<(), String> {
    let op = patch["op"].as_str().ok_or("a patch needs an `op`")?;
    let path = patch["path"].as_str().ok_or("a patch needs a `path`")?;
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (last, parents) = segments.split_last().ok_or("an empty path")?;
    let mut target = value;
    for segment in parents {
        target = select(target, segment).ok_or_else(|| format!("`{path}`: no `{segment}`"))?;
    }
    let new = patch.get("value").cloned();
    match (op, target) {
        ("remove", serde_json::Value::Array(items)) => {
            let before = items.len();
            if let Some(index) = last.parse::<usize>().ok().filter(|i| *i < items.len()) {
                items.remove(index);
            } else {
                let found = select(&mut serde_json::Value::Array(items.clone()), last).cloned();
                items.retain(|item| Some(item) != found.as_ref());
            }
            if items.len() == before {
                return Err(format!("`{path}`: nothing to remove"));
            }
        }
        ("remove", serde_json::Value::Object(map)) => {
            map.shift_remove(*last).ok_or_else(|| format!("`{path}`: nothing to remove"))?;
        }
        ("add", serde_json::Value::Array(items)) => {
            let value = new.ok_or("`add` needs a `value`")?;
            match last.parse::<usize>() {
                Ok(index) if index <= items.len() => items.insert(index, value),
                _ => items.push(value),
            }
        }
        ("add", serde_json::Value::Object(map)) => {
            map.insert((*last).to_owned(), new.ok_or("`add` needs a `value`")?);
        }
        ("replace", parent) => {
            let slot = select(parent, last).ok_or_else(|| format!("`{path}`: nothing to replace"))?;
            *slot = new.ok_or("`replace` needs a `value`")?;
        }
        (op, _) => return Err(format!("`{path}`: cannot `{op}` here")),
    }
    Ok(())
}

/// Seals a patched plan again: its hash is recomputed, as a forger who knows the format
/// would. The value is left as it is when it no longer reads as a plan.
pub fn rehash(value: &mut serde_json::Value) {
    if let Ok(plan) = serde_json::from_value::<flow_ir::Plan>(value.clone()) {
        value["hash"] = serde_json::Value::String(flow_ir::encode::content_hash(
            plan.format_version,
            &plan.language_version,
            &plan.plan,
        ));
    }
}
