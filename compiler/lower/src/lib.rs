//! Lowering checked flows to plans, and the proofs on the plan graph (`E2001`, `E2017`,
//! `E2018`–`E2021`, `W2002`) reported as diagnostics at source spans.
//!
//! **API boundary.** [`lower_file`] is a salsa query over the front end's database: for a
//! file that checks without errors (it and everything it imports), it lowers every flow to
//! a sealed [`flow_ir::Plan`] and verifies it with the runtime's own verifier
//! ([`flow_ir::verify`]), so that what the compiler accepts is exactly what the runtime
//! will load. [`file_diagnostics`] is every diagnostic about a file: the front end's and
//! the plan's. `flowc check` and the language server call it, so they agree.
//!
//! Verification failures that a correct flow can cause (a cycle through the governance or
//! edited-value edges the compiler adds, an item that depends on nothing the run receives)
//! are diagnostics in the steward's words; any other failure would be a bug of this crate
//! and is reported as such rather than hidden.

mod lower;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use flow_diagnostics::{Code, Diagnostic, FileId, Span};
use flow_ir::plan::{DescriptionKey, EdgeKind, NodeKind};
use flow_ir::separation::{self, Directory};
use flow_ir::{Plan, VerifiedPlan, VerifyError};
use flow_sema::{Db, SourceFile, check_file, imports};
use flow_syntax::ast::SmolStr;

pub use lower::{Lowered, LoweredTest, TestDecision, TestExpect, lower_test};

/// The lines of a file, for the source map's line and column numbers.
#[salsa::tracked(returns(ref))]
pub fn line_index(db: &dyn Db, file: SourceFile) -> flow_diagnostics::LineIndex {
    flow_diagnostics::LineIndex::new(file.text(db))
}

/// What produced a plan, as recorded in it.
pub const COMPILER: &str = concat!("flowc ", env!("CARGO_PKG_VERSION"));

/// One flow of a file, lowered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoweredFlow {
    pub name: SmolStr,
    /// The sealed and verified plan; `None` when it did not verify (the diagnostics say why).
    pub plan: Option<VerifiedPlan>,
    /// The files of the plan's source map, in its order.
    pub files: Vec<FileId>,
}

impl LoweredFlow {
    /// Where a plan item was written, by its description key.
    pub fn span(&self, key: DescriptionKey<'_>) -> Option<(FileId, Span)> {
        span_in(&self.plan.as_ref()?.plan().source_map, &self.files, key)
    }
}

fn span_in(source_map: &flow_ir::plan::SourceMap, files: &[FileId], key: DescriptionKey<'_>) -> Option<(FileId, Span)> {
    let origin = source_map.origins.get(key.to_string().as_str())?;
    let file = files.get(origin.file as usize)?;
    Some((*file, Span { start: origin.start, end: origin.end }))
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct LoweredFile {
    /// In the order of the file; empty when the front end reported errors.
    pub flows: Vec<LoweredFlow>,
    pub diagnostics: Vec<Diagnostic>,
}

/// The file and every file it imports, directly or not, each once.
fn import_closure(db: &dyn Db, file: SourceFile) -> Vec<SourceFile> {
    let mut seen = BTreeSet::new();
    let mut files = Vec::new();
    let mut stack = vec![file];
    while let Some(current) = stack.pop() {
        if seen.insert(current.id(db)) {
            files.push(current);
            stack.extend(imports(db, current).imports.iter().filter_map(|i| i.target));
        }
    }
    files
}

/// Whether the file and every file it imports check without errors.
fn is_clean(db: &dyn Db, file: SourceFile) -> bool {
    import_closure(db, file).into_iter().all(|f| !flow_sema::file_diagnostics(db, f).iter().any(Diagnostic::is_error))
}

/// The plans of a file's flows, verified, with the diagnostics of lowering and of the
/// proofs on their graphs.
#[salsa::tracked(returns(ref))]
pub fn lower_file(db: &dyn Db, file: SourceFile) -> LoweredFile {
    let mut result = LoweredFile::default();
    if !is_clean(db, file) {
        return result;
    }
    for flow in &check_file(db, file).flows {
        let lowered = lower::Lowerer::new(db, file, flow).lower();
        let mut flow_diagnostics = Vec::new();
        for (path, prompt_file, span) in &lowered.bad_prompts {
            flow_diagnostics.push(
                Diagnostic::new(
                    Code::E2020,
                    *prompt_file,
                    *span,
                    format!("the prompt file `{path}` is not UTF-8 text"),
                )
                .with_help("save the prompt as UTF-8 text: the model receives it as text"),
            );
        }
        let files = lowered.files;
        let source_map = lowered.source_map;
        let fallback = (file.id(db), flow.span);
        let sealed = flow_ir::seal_and_verify(lowered.body, COMPILER.to_owned(), lowered.descriptions, source_map);
        let verified = match sealed {
            Ok(verified) => {
                let map = &verified.plan().source_map;
                let at = |key: DescriptionKey<'_>| span_in(map, &files, key).unwrap_or(fallback);
                silent_fallbacks(&verified, &at, &mut flow_diagnostics);
                Some(verified)
            }
            Err(failed) => {
                let (plan, errors) = *failed;
                let at = |key: DescriptionKey<'_>| span_in(&plan.source_map, &files, key).unwrap_or(fallback);
                for error in &errors.0 {
                    flow_diagnostics.push(verify_diagnostic(&plan, error, &at));
                }
                None
            }
        };
        // A plan that a prompt could not be embedded into is not a plan of the flow.
        let plan = verified.filter(|_| lowered.bad_prompts.is_empty());
        result.diagnostics.extend(flow_diagnostics);
        result.flows.push(LoweredFlow { name: flow.name.clone(), plan, files });
    }
    result
}

/// Every diagnostic about one file, sorted by position: the front end's, and those of
/// lowering its flows and proving their plans.
#[salsa::tracked(returns(ref))]
pub fn file_diagnostics(db: &dyn Db, file: SourceFile) -> Vec<Diagnostic> {
    let mut diagnostics = flow_sema::file_diagnostics(db, file).clone();
    diagnostics.extend(lower_file(db, file).diagnostics.iter().cloned());
    flow_diagnostics::sort(&mut diagnostics);
    diagnostics
}

/// What a workspace's final diagnostics include beyond every file's own.
#[derive(Clone, Copy, Debug, Default)]
pub struct Checks<'a> {
    /// Warnings are errors (`flowc check --strict`).
    pub strict: bool,
    /// Separation of duties proved against these principals (E2019), for the flows of the
    /// root files that compiled to a plan.
    pub principals: Option<&'a Directory>,
    /// Only this flow is proved against the principals (`flowc build --flow NAME`).
    pub flow: Option<&'a str>,
    /// The files are checked on every core, each thread with its own handle on the
    /// database: worth it when the workspace is new to the database, not after one edit
    /// (salsa re-checks only what the edit touched).
    pub parallel: bool,
}

/// The final diagnostics of a workspace, as `flowc check`, `flowc build` and the language
/// server report them: every loaded file's ([`file_diagnostics`]), separation of duties
/// for the flows of `roots` (with [`Checks::principals`]), warnings made errors under
/// [`Checks::strict`], sorted by file path and position, each once (a problem of a shared
/// declaration, a prompt, is found from every flow that uses it).
pub fn workspace_diagnostics(db: &flow_sema::Database, roots: &[SourceFile], checks: &Checks<'_>) -> Vec<Diagnostic> {
    let files: Vec<SourceFile> = db.workspace().sources(db).iter().copied().collect();
    let mut diagnostics =
        if checks.parallel { diagnostics_in_parallel(db, &files) } else { diagnostics_of(db, &files) };
    if checks.strict {
        for diagnostic in &mut diagnostics {
            diagnostic.severity = flow_diagnostics::Severity::Error;
        }
    }
    if let Some(directory) = checks.principals {
        for file in roots {
            for flow in &lower_file(db, *file).flows {
                let Some(verified) = &flow.plan else { continue };
                if checks.flow.is_some_and(|name| name != flow.name) {
                    continue;
                }
                let at = flow.span(DescriptionKey::Flow).unwrap_or((file.id(db), Span::default()));
                diagnostics.extend(separation_diagnostics(flow, verified, directory, at));
            }
        }
    }
    let paths: std::collections::HashMap<FileId, &str> =
        files.iter().map(|file| (file.id(db), file.path(db).as_str())).collect();
    let path = |file: FileId| paths.get(&file).copied().unwrap_or_default();
    diagnostics.sort_by(|a, b| (path(a.primary.file), a.sort_key()).cmp(&(path(b.primary.file), b.sort_key())));
    diagnostics.dedup();
    diagnostics
}

fn diagnostics_of(db: &dyn Db, files: &[SourceFile]) -> Vec<Diagnostic> {
    files.iter().flat_map(|file| file_diagnostics(db, *file).iter().cloned()).collect()
}

/// The diagnostics of `files`, checked on as many threads as the machine has cores (each
/// with its own handle on the database; salsa shares what they compute).
fn diagnostics_in_parallel(db: &flow_sema::Database, files: &[SourceFile]) -> Vec<Diagnostic> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from).min(files.len().max(1));
    if threads < 2 || files.len() < 8 {
        return diagnostics_of(db, files);
    }
    let chunk = files.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                let db = db.clone();
                scope.spawn(move || diagnostics_of(&db, part))
            })
            .collect();
        // A thread that panicked (a bug) leaves its files unchecked rather than the caller dead.
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    })
}

/// W2002: an `infer` whose fallback, or a `retrieve` whose other snapshot, may be taken
/// without anyone noticing.
fn silent_fallbacks(
    verified: &VerifiedPlan,
    at: &dyn Fn(DescriptionKey<'_>) -> (FileId, Span),
    out: &mut Vec<Diagnostic>,
) {
    for step in verified.silent_fallbacks() {
        let (file, span) = at(DescriptionKey::Node(&step));
        let retrieve = matches!(verified.body().node(&step).map(|n| &n.kind), Some(NodeKind::Retrieve { .. }));
        let when = if retrieve { "takes another snapshot" } else { "falls back" };
        out.push(
            Diagnostic::new(
                Code::W2002,
                file,
                span,
                format!("when `{step}` {when}, nothing in the flow notices: no gate, review, approval or output reads `degraded({step})`"),
            )
            .with_help(format!(
                "let a person or a rule see it, such as `review … when degraded({step})`, or put `degraded({step})` into the output"
            )),
        );
    }
}

fn node_words(plan: &Plan, name: &str) -> String {
    match plan.plan.node(name).map(|n| &n.kind) {
        Some(NodeKind::Approval { .. }) => format!("approval `{name}`"),
        Some(kind) => format!("{} `{name}`", kind.keyword()),
        None => format!("`{name}`"),
    }
}

/// A verification failure as a diagnostic at the source of the node involved.
fn verify_diagnostic(
    plan: &Plan,
    error: &VerifyError,
    at: &dyn Fn(DescriptionKey<'_>) -> (FileId, Span),
) -> Diagnostic {
    let flow = &plan.plan.flow.name;
    match error {
        VerifyError::Cycle(path) => {
            let Some((first, _)) = path.first() else {
                let (file, span) = at(DescriptionKey::Flow);
                return Diagnostic::new(
                    Code::E2001,
                    file,
                    span,
                    format!("the items of flow `{flow}` depend on each other in a cycle"),
                );
            };
            let mut names: Vec<String> = path.iter().map(|(n, _)| format!("`{n}`")).collect();
            names.push(format!("`{first}`"));
            let (file, span) = at(DescriptionKey::Node(first));
            let mut diagnostic = Diagnostic::new(
                Code::E2001,
                file,
                span,
                format!("these items wait for each other in a cycle: {}", names.join(" → ")),
            )
            .with_help("an action or output waits for every gate, review and approval, so none of them may read an action's result; and whatever reads a field a review may edit runs after that review");
            for (index, (from, kind)) in path.iter().enumerate() {
                let to = path.get(index + 1).map_or(first, |(n, _)| n);
                let why = match kind {
                    EdgeKind::Data => format!("{} reads `{from}`", node_words(plan, to)),
                    EdgeKind::Governance => {
                        format!(
                            "{} waits for {}, as every effect waits for governance",
                            node_words(plan, to),
                            node_words(plan, from)
                        )
                    }
                    EdgeKind::Edited => format!("{} reads a field that review `{from}` may edit", node_words(plan, to)),
                };
                let (label_file, label_span) = at(DescriptionKey::Node(to));
                diagnostic = diagnostic.with_label(label_file, label_span, why);
            }
            diagnostic
        }
        VerifyError::OutcomeUnread { effect: (effect, kind), approval } => {
            let (file, span) = at(DescriptionKey::Node(effect));
            let (approval_file, approval_span) = at(DescriptionKey::Node(approval));
            let what = if *kind == "emit" { "the output is emitted" } else { "the action runs" };
            Diagnostic::new(
                Code::E2021,
                file,
                span,
                format!("{kind} `{effect}` does not read whether approval `{approval}` was approved"),
            )
            .with_label(approval_file, approval_span, "a rejection completes this approval, and the run goes on")
            .with_note(format!("{what} after `{approval}` completes, approved or not"))
            .with_help(format!(
                "make it depend on `{approval}.approved` (`when {approval}.approved`, or a value that reads it), or \
                 write `regardless of {approval}` if it must happen either way"
            ))
        }
        VerifyError::Unreachable(node, _) => {
            let (file, span) = at(DescriptionKey::Node(node));
            let kind = plan.plan.node(node).map(|n| &n.kind);
            let help = match kind {
                Some(NodeKind::Let { .. }) => {
                    "a value that is the same in every run belongs in a `param`, where what-if replays can tune it"
                        .to_owned()
                }
                Some(NodeKind::Gate { .. }) => {
                    "a gate whose condition is the same in every run always or never fires; test the case's inputs"
                        .to_owned()
                }
                _ => "make it read the flow's inputs, params or the decisions of its reviews and approvals".to_owned(),
            };
            Diagnostic::new(
                Code::E2017,
                file,
                span,
                format!("{} depends on nothing the run receives: no input, param or decision", node_words(plan, node)),
            )
            .with_help(help)
        }
        other => {
            // Nothing a flow can say causes these; they are the compiler's own mistakes.
            let (file, span) = at(DescriptionKey::Flow);
            let code = Code::lookup(other.code()).unwrap_or(Code::E2104);
            Diagnostic::new(code, file, span, format!("the plan compiled from flow `{flow}` does not verify: {other}"))
                .with_note("this is a bug in the compiler, not in the flow; please report it with the flow")
        }
    }
}

/// E2019: the steps of a verified plan that the principals of `directory` cannot decide
/// with separation of duties, at the rows or steps concerned.
pub fn separation_diagnostics(
    flow: &LoweredFlow,
    verified: &VerifiedPlan,
    directory: &Directory,
    fallback: (FileId, Span),
) -> Vec<Diagnostic> {
    separation::check(verified, directory)
        .into_iter()
        .map(|problem| {
            let key = match problem.row {
                Some(row) => DescriptionKey::Row(&problem.step, row),
                None => DescriptionKey::Node(&problem.step),
            };
            let (file, span) = flow.span(key).unwrap_or(fallback);
            Diagnostic::new(Code::E2019, file, span, problem.message)
                .with_help("give the roles to more principals, or require fewer distinct approvers")
        })
        .collect()
}
