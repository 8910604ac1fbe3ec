//! Checking function bodies and flows: types, names within a flow, the flow's header and
//! access grants, every step, and the flow checks that need no plan graph (`E2001`,
//! `E2002`, `E2009`–`E2016`; approval matrices and information flow have modules of their
//! own).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use flow_diagnostics::{Code, Diagnostic, FileId, Label, Span};
use flow_syntax::ast::{
    self, ExprKind as A, FlowItemKind, GateClause, GateLevel, GrantKind, ItemKind, ReqTerm, ReviewClauseKind, SmolStr,
};
use std::collections::VecDeque;

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

mod monitors;

use crate::db::{Db, DeclId, SourceFile};
use crate::hir::{self, Edit, Flow, Function, Grant, GrantTarget, Ref, Requirement, Row, Step, StepKind};
use crate::names::{DefKind, scope};
use crate::resolve::Resolver;
use crate::signatures::{self, Decl, decls};
use crate::suggest;
use crate::ty::{StepRef, StepResult, Ty};
use crate::typeck::{Binding, Checker, ReviewEnums, quoted_list};

/// The checked functions of a file.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct FnBodies {
    /// By item index.
    pub functions: Vec<Option<Function>>,
    pub diagnostics: Vec<Diagnostic>,
    pub used_files: BTreeSet<FileId>,
}

/// The typed bodies of a file's functions.
#[salsa::tracked(returns(ref))]
pub fn fn_bodies(db: &dyn Db, file: SourceFile) -> FnBodies {
    let parse = crate::names::parse(db, file);
    let scope = scope(db, file);
    let id = file.id(db);
    let mut result = FnBodies::default();
    for (index, item) in parse.file.items.iter().enumerate() {
        let (ItemKind::Fn(ast_fn), Some(Some(Decl::Fn(sig)))) = (&item.kind, decls(db, file).items.get(index)) else {
            result.functions.push(None);
            continue;
        };
        let mut checker = Checker::new(db, Resolver::new(id, file.text(db), scope));
        for (position, param) in sig.params.iter().enumerate() {
            checker
                .values
                .insert(param.name.clone(), Binding::FnParam { index: position as u32, ty: param.ty.clone() });
        }
        let body = checker.check(&ast_fn.body, &sig.ret, &|| format!("the result of function `{}`", sig.name));
        result.diagnostics.append(&mut checker.res.diagnostics);
        result.used_files.append(&mut checker.res.used_files);
        result.functions.push(Some(Function {
            id: DeclId { file: id, index: index as u32 },
            name: sig.name.clone(),
            params: sig.params.iter().map(|p| (p.name.clone(), p.ty.clone())).collect(),
            ret: sig.ret.clone(),
            body,
        }));
    }
    result
}

/// The checked flows of a file, with every diagnostic of their checks.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CheckedFile {
    pub flows: Vec<Flow>,
    /// The file's `test` blocks that could be checked against a flow.
    pub tests: Vec<hir::Test>,
    pub diagnostics: Vec<Diagnostic>,
    pub used_files: BTreeSet<FileId>,
}

#[salsa::tracked(returns(ref))]
pub fn check_file(db: &dyn Db, file: SourceFile) -> CheckedFile {
    let parse = crate::names::parse(db, file);
    let scope = scope(db, file);
    let id = file.id(db);
    let mut result = CheckedFile::default();
    let mut res = Resolver::new(id, file.text(db), scope);
    check_sources(db, file, &mut res);
    result.diagnostics.append(&mut res.diagnostics);
    for (index, item) in parse.file.items.iter().enumerate() {
        let ItemKind::Flow(flow) = &item.kind else { continue };
        let checker = Checker::new(db, Resolver::new(id, file.text(db), scope));
        let flow_id = DeclId { file: id, index: index as u32 };
        let (checked, mut diagnostics, used) = FlowChecker::new(checker, flow_id).check(item, flow);
        let mut extra = Vec::new();
        crate::matrix::check_flow(db, id, &checked, &mut extra);
        crate::ifc::check_flow(db, id, &checked, &mut extra);
        diagnostics.extend(extra);
        result.diagnostics.extend(diagnostics);
        result.used_files.extend(used);
        result.flows.push(checked);
    }
    // A test is named by its text: two of one name would share a snapshot.
    let mut test_names: BTreeMap<&str, Span> = BTreeMap::new();
    for (index, item) in parse.file.items.iter().enumerate() {
        let ItemKind::Test(test) = &item.kind else { continue };
        if let Some(first) = test_names.insert(&test.name.value, test.name.span) {
            result.diagnostics.push(
                Diagnostic::new(
                    Code::E1003,
                    id,
                    test.name.span,
                    format!("test \"{}\" is declared twice", test.name.value),
                )
                .with_label(id, first, "first declared here")
                .with_help("give each test of a file its own name"),
            );
            continue;
        }
        let res = Resolver::new(id, file.text(db), scope);
        let test_id = DeclId { file: id, index: index as u32 };
        let (checked, diagnostics) = crate::test_blocks::check_test(db, res, test_id, test, item.span, &result.flows);
        result.diagnostics.extend(diagnostics);
        result.tests.extend(checked);
    }
    result
}

/// Validates the `as_of` field of each source declared in the file.
fn check_sources(db: &dyn Db, file: SourceFile, res: &mut Resolver<'_>) {
    for decl in decls(db, file).items.iter().flatten() {
        let Decl::Source(sig) = decl else { continue };
        let Some((field, span)) = &sig.as_of else { continue };
        let Ty::Record(record) = &sig.ty else {
            if !sig.ty.is_error() {
                res.error(
                    Code::E1002,
                    *span,
                    format!("`as_of` names a field of a record, but source `{}` gives `{}`", sig.name, sig.ty),
                );
            }
            continue;
        };
        let Some(record_sig) = signatures::record(db, record.id) else { continue };
        match record_sig.field(field) {
            Some((_, found)) if matches!(found.ty.unwrap_optional(), Ty::Timestamp | Ty::Error) => {}
            Some((_, found)) => {
                res.error(
                    Code::E1002,
                    *span,
                    format!("`as_of` names a field of type `Timestamp`, but `{field}` is `{}`", found.ty),
                );
            }
            None => {
                let help = suggest::help(field, record_sig.fields.iter().map(|f| f.name.as_str()));
                res.error(Code::E1007, *span, format!("`{}` has no field `{field}`", record.name)).help = help;
            }
        }
    }
}

/// Whether `version` reads as a semantic version: `MAJOR.MINOR.PATCH`, with an optional
/// pre-release or build suffix.
fn is_semver(version: &str) -> bool {
    let core = version.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    let suffix_ok = version[core.len()..].chars().all(|c| c.is_ascii_alphanumeric() || "-+.".contains(c));
    parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit())) && suffix_ok
}

struct PendingStep<'f> {
    ast: &'f ast::FlowItem,
    name: ast::Ident,
}

struct FlowChecker<'a> {
    c: Checker<'a>,
    flow: Flow,
    /// Flow-level names and where they are declared.
    declared: BTreeMap<SmolStr, Span>,
    /// The flow items that did not parse, to stay quiet about their absence.
    unparsed: Vec<ast::Unparsed>,
}

impl<'a> FlowChecker<'a> {
    fn new(c: Checker<'a>, id: DeclId) -> FlowChecker<'a> {
        let flow = Flow {
            id,
            name: SmolStr::default(),
            span: Span::default(),
            docs: None,
            version: None,
            owner: None,
            steward: None,
            inputs: Vec::new(),
            outputs: Vec::new(),
            params: Vec::new(),
            grants: Vec::new(),
            steps: Vec::new(),
            retain: None,
            migrate_waiting: false,
            monitors: Vec::new(),
        };
        FlowChecker { c, flow, declared: BTreeMap::new(), unparsed: Vec::new() }
    }

    fn file(&self) -> FileId {
        self.c.res.file
    }

    /// Whether an item starting with `keyword` (and declaring `name`, if given) did not
    /// parse: its syntax error stands for whatever its absence would cause.
    fn is_unparsed(&self, keyword: &str, name: Option<&str>) -> bool {
        self.unparsed.iter().any(|u| {
            u.keyword.as_deref() == Some(keyword)
                && name.is_none_or(|name| u.name.as_ref().is_some_and(|n| n.text == name))
        })
    }

    fn error(&mut self, code: Code, span: Span, message: impl Into<String>) -> &mut Diagnostic {
        self.c.res.error(code, span, message)
    }

    /// Declares a flow-level name; reports a duplicate.
    fn declare(&mut self, name: &ast::Ident) -> bool {
        if let Some(first) = self.declared.get(&name.text) {
            let first = *first;
            let file = self.file();
            self.error(
                Code::E1003,
                name.span,
                format!("`{}` is declared more than once in flow `{}`", name.text, self.flow.name),
            )
            .secondary
            .push(Label::new(file, first, "first declared here"));
            return false;
        }
        self.declared.insert(name.text.clone(), name.span);
        true
    }

    fn check(mut self, item: &ast::Item, flow: &ast::FlowDecl) -> (Flow, Vec<Diagnostic>, BTreeSet<FileId>) {
        self.flow.name = flow.name.text.clone();
        self.flow.span = item.span;
        self.flow.docs = item.docs.clone();
        let mut versions: Vec<&ast::StrLit> = Vec::new();
        let mut owners: Vec<&ast::Ident> = Vec::new();
        let mut stewards: Vec<&ast::Ident> = Vec::new();
        let mut grants: Vec<&ast::Grant> = Vec::new();
        let mut params: Vec<(&ast::FlowItem, &ast::Ident, &ast::TypeRef, &ast::Expr)> = Vec::new();
        let mut steps: Vec<PendingStep<'_>> = Vec::new();
        let mut retains: Vec<&ast::Duration> = Vec::new();
        let mut monitors: Vec<&ast::Monitor> = Vec::new();
        let mut migrations: Vec<Span> = Vec::new();

        for flow_item in &flow.items {
            match &flow_item.kind {
                FlowItemKind::Version(version) => versions.push(version),
                FlowItemKind::Owner(role) => owners.push(role),
                FlowItemKind::Steward(role) => stewards.push(role),
                FlowItemKind::MigrateWaiting => migrations.push(flow_item.span),
                FlowItemKind::Input { name, ty, source } => {
                    let ty = self.c.res.resolve_type(ty);
                    let source_id = source.as_ref().and_then(|s| self.input_source(name, &ty, s));
                    if self.declare(name) {
                        let index = self.flow.inputs.len() as u32;
                        self.c
                            .values
                            .insert(name.text.clone(), Binding::Input { index, ty: ty.clone(), source: source_id });
                    }
                    self.flow.inputs.push(hir::Input {
                        name: name.text.clone(),
                        span: name.span,
                        ty,
                        source: source_id,
                        docs: flow_item.docs.clone(),
                    });
                }
                FlowItemKind::Output { name, ty } => {
                    let ty = self.c.res.resolve_type(ty);
                    if self.declare(name) {
                        self.c.values.insert(name.text.clone(), Binding::Output);
                    }
                    self.flow.outputs.push(hir::Output {
                        name: name.text.clone(),
                        span: name.span,
                        ty,
                        docs: flow_item.docs.clone(),
                    });
                }
                FlowItemKind::Param { name, ty, default } => params.push((flow_item, name, ty, default)),
                FlowItemKind::Access(list) => grants.extend(list),
                FlowItemKind::Evidence(settings) => {
                    retains.extend(settings.iter().map(|ast::EvidenceSetting::Retain(d)| d));
                }
                FlowItemKind::Emit { name, .. } => steps.push(PendingStep { ast: flow_item, name: name.clone() }),
                FlowItemKind::Monitor(monitor) => monitors.push(monitor),
                FlowItemKind::Error(unparsed) => {
                    self.c.unparsed.extend(unparsed.name.as_ref().map(|n| n.text.clone()));
                    self.unparsed.push(unparsed.clone());
                }
                kind => {
                    if let Some(name) = kind.name() {
                        steps.push(PendingStep { ast: flow_item, name: name.clone() });
                    }
                }
            }
        }
        // Params: their defaults are constants, so they can be checked before the steps.
        for (flow_item, name, ty, default) in params {
            let ty = self.c.res.resolve_type(ty);
            let default = self.c.check(default, &ty, &|| format!("the default of param `{}`", name.text));
            self.require_constant(&default, &name.text);
            if self.declare(name) {
                let index = self.flow.params.len() as u32;
                self.c.values.insert(name.text.clone(), Binding::Param { index, ty: ty.clone() });
            }
            self.flow.params.push(hir::Param {
                name: name.text.clone(),
                span: name.span,
                ty,
                default,
                docs: flow_item.docs.clone(),
            });
        }
        self.declare_steps(&steps);
        self.check_steps(&steps);
        self.check_cycles();
        self.check_emits(&flow.name);
        self.check_header(&flow.name, &versions, &owners, &stewards);
        for grant in grants {
            self.check_grant(grant);
        }
        self.check_monitors(&monitors);
        if let [first, rest @ ..] = retains.as_slice() {
            self.flow.retain = Some(first.seconds);
            for again in rest {
                let file = self.file();
                self.error(Code::E1018, again.span, "the evidence block sets `retain` twice")
                    .secondary
                    .push(Label::new(file, first.span, "first set here"));
            }
        }
        if let [first, rest @ ..] = migrations.as_slice() {
            self.flow.migrate_waiting = true;
            for again in rest {
                let file = self.file();
                self.error(Code::E1018, *again, "the flow says `migrate waiting` twice").secondary.push(Label::new(
                    file,
                    *first,
                    "first said here",
                ));
            }
        }
        let FlowChecker { c, flow, .. } = self;
        (flow, c.res.diagnostics, c.res.used_files)
    }

    fn input_source(&mut self, name: &ast::Ident, ty: &Ty, source: &ast::Ident) -> Option<DeclId> {
        let def = self.c.res.resolve(source, &[DefKind::Source], "source")?;
        if let Some(Decl::Source(sig)) = signatures::decl(self.c.db, def.id)
            && !sig.ty.is_error()
            && !ty.is_error()
            && &sig.ty != ty
        {
            let message = format!("input `{}` is `{ty}`, but source `{}` gives `{}`", name.text, source.text, sig.ty);
            self.error(Code::E1002, source.span, message);
        }
        Some(def.id)
    }

    fn require_constant(&mut self, default: &hir::Expr, param: &str) {
        let mut offending: Option<(Span, String)> = None;
        default.walk(&mut |expr| {
            if offending.is_some() {
                return;
            }
            match &expr.kind {
                hir::ExprKind::Ref(_) => offending = Some((expr.span, "it reads another value of the flow".to_owned())),
                hir::ExprKind::Builtin { builtin: hir::Builtin::Now, .. } => {
                    offending = Some((expr.span, "`now()` changes from run to run".to_owned()));
                }
                hir::ExprKind::Builtin { builtin: hir::Builtin::StartedBy, .. } => {
                    offending = Some((expr.span, "`started_by()` changes from run to run".to_owned()));
                }
                _ => {}
            }
        });
        if let Some((span, why)) = offending {
            self.error(Code::E1017, span, format!("the default of param `{param}` must be a constant, but {why}"))
                .help = Some("write a literal value, such as `10_000 USD`".to_owned());
        } else if let Some(why) = crate::constant::failure(default) {
            self.error(Code::E1021, default.span, format!("the default of param `{param}` fails: {why}")).help =
                Some("a param's default is computed when the plan is loaded; every run would fail with it".to_owned());
        }
    }

    /// Gives each step its index and, where it is known before checking, its type.
    fn declare_steps(&mut self, steps: &[PendingStep<'_>]) {
        let flow_id = self.flow.id;
        for (index, pending) in steps.iter().enumerate() {
            let index = index as u32;
            let (ty, binding) = match &pending.ast.kind {
                FlowItemKind::Let { ty: Some(ty), .. } => {
                    let ty = self.c.res.resolve_type(ty);
                    (ty.clone(), Some(Binding::Step { index, ty, keyword: "let" }))
                }
                FlowItemKind::Let { .. } => (Ty::Error, Some(Binding::Step { index, ty: Ty::Error, keyword: "let" })),
                FlowItemKind::Gate(_) => (Ty::Nothing, Some(Binding::Gate)),
                FlowItemKind::Infer(infer) => {
                    self.c.infers.insert(index, infer.name.text.to_string());
                    let ty = match self.c.res.lookup(&infer.model.text) {
                        Some(def) if def.kind == DefKind::Model => match signatures::decl(self.c.db, def.id) {
                            Some(Decl::Model(sig)) => sig.output.clone(),
                            _ => Ty::Error,
                        },
                        _ => Ty::Error,
                    };
                    (ty.clone(), Some(Binding::Step { index, ty, keyword: "infer" }))
                }
                FlowItemKind::Retrieve(retrieve) => {
                    self.c.infers.insert(index, retrieve.name.text.to_string());
                    let ty = match self.c.res.lookup(&retrieve.corpus.text) {
                        Some(def) if def.kind == DefKind::Corpus => match signatures::decl(self.c.db, def.id) {
                            Some(Decl::Corpus(sig)) if !sig.ty.is_error() => Ty::List(Box::new(sig.ty.clone())),
                            _ => Ty::Error,
                        },
                        _ => Ty::Error,
                    };
                    (ty.clone(), Some(Binding::Step { index, ty, keyword: "retrieve" }))
                }
                FlowItemKind::Review(review) => {
                    let conditional = review.clauses.iter().any(|c| matches!(c.kind, ReviewClauseKind::When(_)));
                    let mut enums = ReviewEnums { conditional, ..ReviewEnums::default() };
                    for clause in &review.clauses {
                        match &clause.kind {
                            ReviewClauseKind::Outcomes(names) if enums.outcomes.is_empty() => {
                                enums.outcomes = unique_names(names);
                            }
                            ReviewClauseKind::Reasons(names) if enums.reasons.is_empty() => {
                                enums.reasons = unique_names(names);
                            }
                            _ => {}
                        }
                    }
                    self.c.reviews.insert(index, enums);
                    let ty = Ty::Step(StepRef {
                        flow: flow_id,
                        step: index,
                        kind: StepResult::Review,
                        name: Arc::from(review.name.text.as_str()),
                        conditional,
                        timed: review.clauses.iter().any(|c| {
                            matches!(
                                &c.kind,
                                ReviewClauseKind::Timing(ast::TimingClause::Within {
                                    then: ast::Timeout::Decide { .. },
                                    ..
                                })
                            )
                        }),
                    });
                    (ty.clone(), Some(Binding::Step { index, ty, keyword: "review" }))
                }
                FlowItemKind::Approval(approval) => {
                    let ty = Ty::Step(StepRef {
                        flow: flow_id,
                        step: index,
                        kind: StepResult::Approval,
                        name: Arc::from(approval.name.text.as_str()),
                        conditional: false,
                        timed: false,
                    });
                    (ty.clone(), Some(Binding::Step { index, ty, keyword: "approval" }))
                }
                FlowItemKind::Action(action) => {
                    let ty = self.action_result(action);
                    (ty.clone(), Some(Binding::Step { index, ty, keyword: "action" }))
                }
                _ => (Ty::Nothing, None),
            };
            let is_emit = matches!(pending.ast.kind, FlowItemKind::Emit { .. });
            if !is_emit
                && self.declare(&pending.name)
                && let Some(binding) = binding
            {
                self.c.values.insert(pending.name.text.clone(), binding);
            }
            self.flow.steps.push(Step {
                name: pending.name.text.clone(),
                span: pending.ast.span,
                name_span: pending.name.span,
                docs: pending.ast.docs.clone(),
                ty,
                kind: StepKind::Let { value: hir::Expr::error(pending.ast.span) },
                regardless: Vec::new(),
                timing: None,
            });
        }
    }

    /// The type an action step gives: its result, optional when the action may be skipped.
    fn action_result(&mut self, action: &ast::Action) -> Ty {
        let Some(def) = self.c.res.lookup(&action.system.text) else { return Ty::Error };
        let Some(Decl::System(sig)) = signatures::decl(self.c.db, def.id) else { return Ty::Error };
        let Some(found) = sig.actions.iter().find(|a| a.name == action.operation.text) else { return Ty::Error };
        let conditional = action.clauses.iter().any(|c| matches!(c, ast::ActionClause::When(..)));
        match (&found.ret, conditional) {
            (Ty::Nothing, _) => Ty::Nothing,
            (ty, true) => ty.clone().optional(),
            (ty, false) => ty.clone(),
        }
    }

    fn check_steps(&mut self, steps: &[PendingStep<'_>]) {
        // `let`s are typed in the order of their dependencies, so that a `let` may read one
        // written below it. A syntactic guess orders them first; a `let` that turns out to
        // read a `let` not typed yet is typed again after it. What remains after no more
        // progress is made reads itself through a cycle, reported below from the resolved
        // references.
        let mut waiting: Vec<usize> = self.let_order(steps);
        self.c.untyped_lets = waiting.iter().map(|&i| i as u32).collect();
        loop {
            let mut progress = false;
            let mut still_waiting = Vec::new();
            for index in waiting {
                let mark = self.c.res.diagnostics.len();
                self.c.waiting_for.clear();
                let hir = self.type_let(&steps[index]);
                if self.c.waiting_for.is_empty() {
                    self.finish_let(steps, index, hir);
                    progress = true;
                } else {
                    // Its reads of untyped `let`s gave errors; forget what they caused.
                    self.c.res.diagnostics.truncate(mark);
                    still_waiting.push(index);
                }
            }
            waiting = still_waiting;
            if waiting.is_empty() || !progress {
                break;
            }
        }
        // The rest are in (or depend on) cycles: type them with the others unknown.
        self.c.untyped_lets.clear();
        for index in waiting {
            let hir = self.type_let(&steps[index]);
            self.finish_let(steps, index, hir);
        }
        for (index, pending) in steps.iter().enumerate() {
            let kind = match &pending.ast.kind {
                FlowItemKind::Let { .. } => continue,
                FlowItemKind::Gate(gate) => self.gate(gate),
                FlowItemKind::Infer(infer) => self.infer(index, infer),
                FlowItemKind::Retrieve(retrieve) => self.retrieve(index, retrieve),
                FlowItemKind::Review(review) => self.review(review),
                FlowItemKind::Approval(approval) => self.approval(approval),
                FlowItemKind::Action(action) => self.action(action),
                FlowItemKind::Emit { name, value, .. } => self.emit(name, value),
                _ => continue,
            };
            self.flow.steps[index].kind = kind;
            let timing: Vec<&ast::TimingClause> = match &pending.ast.kind {
                FlowItemKind::Gate(gate) => gate
                    .clauses
                    .iter()
                    .filter_map(|c| match c {
                        GateClause::Timing(t) => Some(t),
                        _ => None,
                    })
                    .collect(),
                FlowItemKind::Review(review) => review
                    .clauses
                    .iter()
                    .filter_map(|c| match &c.kind {
                        ReviewClauseKind::Timing(t) => Some(t),
                        _ => None,
                    })
                    .collect(),
                FlowItemKind::Approval(approval) => approval.timing.iter().collect(),
                _ => continue,
            };
            self.flow.steps[index].timing = self.timing(index, &timing);
        }
        // Once every step's kind is known, wherever it is written.
        for (index, pending) in steps.iter().enumerate() {
            let regardless = match &pending.ast.kind {
                FlowItemKind::Action(action) => action
                    .clauses
                    .iter()
                    .filter_map(|c| match c {
                        ast::ActionClause::Regardless(_, names) => Some(names),
                        _ => None,
                    })
                    .flatten()
                    .collect::<Vec<_>>(),
                FlowItemKind::Emit { regardless: Some((_, names)), .. } => names.iter().collect(),
                _ => Vec::new(),
            };
            self.flow.steps[index].regardless = self.regardless(&regardless);
        }
    }

    fn type_let(&mut self, pending: &PendingStep<'_>) -> hir::Expr {
        let FlowItemKind::Let { ty, value, .. } = &pending.ast.kind else { return hir::Expr::error(pending.ast.span) };
        match ty {
            Some(_) => {
                let declared = self.c.res.resolve_type_quiet(ty.as_ref());
                self.c.check(value, &declared, &|| format!("`let {}`", pending.name.text))
            }
            None => {
                let mut hir = self.c.infer(value, None);
                if let Ty::Step(_) = hir.ty {
                    let ty = hir.ty.clone();
                    self.c.coerce(&mut hir, &ty, "");
                }
                hir
            }
        }
    }

    fn finish_let(&mut self, steps: &[PendingStep<'_>], index: usize, hir: hir::Expr) {
        let FlowItemKind::Let { ty, .. } = &steps[index].ast.kind else { return };
        let ty = if ty.is_some() { self.flow.steps[index].ty.clone() } else { hir.ty.clone() };
        self.c.untyped_lets.remove(&(index as u32));
        self.flow.steps[index].ty = ty.clone();
        self.flow.steps[index].kind = StepKind::Let { value: hir };
        let name = &steps[index].name;
        if self.declared.get(&name.text) == Some(&name.span)
            && let Some(Binding::Step { ty: bound, .. }) = self.c.values.get_mut(&name.text)
        {
            *bound = ty;
        }
    }

    /// A first guess at the order in which to type the `let`s, from the names each reads:
    /// dependencies first.
    fn let_order(&mut self, steps: &[PendingStep<'_>]) -> Vec<usize> {
        let lets: BTreeMap<&str, usize> = steps
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s.ast.kind, FlowItemKind::Let { .. }))
            .map(|(i, s)| (s.name.text.as_str(), i))
            .collect();
        let mut graph: DiGraph<usize, ()> = DiGraph::new();
        let nodes: BTreeMap<usize, _> = lets.values().map(|&i| (i, graph.add_node(i))).collect();
        for (&index, &node) in &nodes {
            let FlowItemKind::Let { value, .. } = &steps[index].ast.kind else { continue };
            for name in names_read(value) {
                if let Some(&target) = lets.get(name) {
                    graph.add_edge(node, nodes[&target], ());
                }
            }
        }
        // Tarjan's algorithm yields components dependencies first.
        let mut order = Vec::new();
        for component in petgraph::algo::tarjan_scc(&graph) {
            let mut members: Vec<usize> = component.iter().map(|n| graph[*n]).collect();
            members.sort();
            order.extend(members);
        }
        order
    }

    fn report_cycle(&mut self, graph: &DiGraph<usize, Span>, component: &[NodeIndex], members: &[usize]) {
        let file = self.file();
        let first = members.iter().copied().min().unwrap_or(0);
        let cycle = cycle_path(graph, component, first);
        let name = |step: usize| format!("`{}`", self.flow.steps[step].name);
        let mut text: Vec<String> = cycle.iter().map(|(step, _)| name(*step)).collect();
        text.push(name(first));
        let start = self.flow.steps[first].name_span;
        let message = format!("these items depend on each other in a cycle: {}", text.join(" → "));
        let mut diagnostic = Diagnostic::new(Code::E2001, file, start, message).with_help(
            "a flow runs each item after the items it reads; break the cycle by removing one of these reads",
        );
        for (position, (step, read_span)) in cycle.iter().enumerate() {
            let next = cycle.get(position + 1).map_or(first, |(next, _)| *next);
            diagnostic = diagnostic.with_label(file, *read_span, format!("{} reads {} here", name(*step), name(next)));
        }
        self.c.res.report(diagnostic);
    }

    fn check_cycles(&mut self) {
        // Every step's reads, from the checked expressions: cycles through steps other than
        // `let`s (a `let` reading an `infer` that reads the `let`).
        let mut graph: DiGraph<usize, Span> = DiGraph::new();
        let nodes: Vec<_> = (0..self.flow.steps.len()).map(|i| graph.add_node(i)).collect();
        for (index, step) in self.flow.steps.iter().enumerate() {
            for expr in step.kind.exprs() {
                expr.walk(&mut |e| {
                    if let hir::ExprKind::Ref(Ref::Step(target)) = e.kind {
                        graph.add_edge(nodes[index], nodes[target as usize], e.span);
                    }
                });
            }
        }
        for component in petgraph::algo::tarjan_scc(&graph) {
            let cyclic = component.len() > 1 || graph.contains_edge(component[0], component[0]);
            if !cyclic {
                continue;
            }
            let members: Vec<usize> = component.iter().map(|n| graph[*n]).collect();
            self.report_cycle(&graph, &component, &members);
        }
    }

    fn gate(&mut self, gate: &ast::Gate) -> StepKind {
        let condition = self.c.check(&gate.condition, &Ty::Bool, "a gate condition");
        let mut approvers = Vec::new();
        let mut approve_span: Option<Span> = None;
        let mut message: Option<(String, Span)> = None;
        let file = self.file();
        for clause in &gate.clauses {
            match clause {
                GateClause::ApproveBy { span, roles } => {
                    if let Some(first) = approve_span {
                        self.error(Code::E1018, *span, format!("gate `{}` says `approve by` twice", gate.name.text))
                            .secondary
                            .push(Label::new(file, first, "first said here"));
                        continue;
                    }
                    approve_span = Some(*span);
                    if gate.kind != GateLevel::Soft {
                        let message = format!(
                            "only a `soft` gate is approved; gate `{}` is `{}`",
                            gate.name.text,
                            gate.kind.as_str()
                        );
                        self.error(Code::E2014, *span, message).help = Some(match gate.kind {
                            GateLevel::Block => {
                                "a `block` gate is overridden through an `override` grant in the `access` block"
                                    .to_owned()
                            }
                            _ => "an `info` gate only records a finding; make it `soft` to ask for approval".to_owned(),
                        });
                    }
                    approvers = roles.iter().filter_map(|r| self.c.res.resolve_role(r)).collect();
                }
                GateClause::Timing(_) => {}
                GateClause::Message(text) => {
                    if let Some((_, first)) = &message {
                        let first = *first;
                        self.error(Code::E1018, text.span, format!("gate `{}` has two messages", gate.name.text))
                            .secondary
                            .push(Label::new(file, first, "first message"));
                        continue;
                    }
                    message = Some((text.value.clone(), text.span));
                }
            }
        }
        if gate.kind == GateLevel::Soft && approve_span.is_none() {
            self.error(
                Code::E2009,
                gate.kind_span,
                format!("soft gate `{}` does not say who may approve it", gate.name.text),
            )
            .help = Some("add `approve by role_name`".to_owned());
        }
        StepKind::Gate { kind: gate.kind, condition, approvers, message: message.map(|(m, _)| m) }
    }

    fn infer(&mut self, index: usize, infer: &ast::Infer) -> StepKind {
        let model = self.c.res.resolve(&infer.model, &[DefKind::Model], "model");
        let sig = model.and_then(|def| match signatures::decl(self.c.db, def.id) {
            Some(Decl::Model(sig)) => Some(sig.clone()),
            _ => None,
        });
        let Some((model, sig)) = model.zip(sig) else {
            for arg in &infer.args {
                self.c.infer(&arg.value, None);
            }
            if let Some(fallback) = &infer.fallback {
                self.c.infer(fallback, None);
            }
            return StepKind::Infer { model: None, args: Vec::new(), fallback: None };
        };
        let params: Vec<(SmolStr, Ty)> = sig.inputs.iter().map(|p| (p.name.clone(), p.ty.clone())).collect();
        let what = format!("model `{}`", sig.name);
        let args =
            self.c.match_args(infer.call_span, infer.model.span, &what, &params, &infer.args, true).unwrap_or_default();
        let fallback = infer.fallback.as_ref().map(|fallback| {
            let step = self.flow.steps[index].name.clone();
            self.c.check(fallback, &sig.output, &|| format!("the fallback of `{step}`"))
        });
        StepKind::Infer { model: Some(model.id), args, fallback }
    }

    fn retrieve(&mut self, index: usize, retrieve: &ast::Retrieve) -> StepKind {
        let corpus = self.c.res.resolve(&retrieve.corpus, &[DefKind::Corpus], "corpus");
        let step = self.flow.steps[index].name.clone();
        let query = self.c.check(&retrieve.query, &Ty::Text, &|| format!("the query of `{step}`"));
        StepKind::Retrieve { corpus: corpus.map(|def| def.id), query, top: retrieve.top.unwrap_or(1) }
    }

    fn review(&mut self, review: &ast::Review) -> StepKind {
        let file = self.file();
        let roles: Vec<DeclId> = review.roles.iter().filter_map(|r| self.c.res.resolve_role(r)).collect();
        let mut seen: BTreeMap<&'static str, Span> = BTreeMap::new();
        let mut condition = None;
        let mut outcomes = Vec::new();
        let mut reasons = Vec::new();
        let mut edits = Vec::new();
        let conditional = review.clauses.iter().any(|c| matches!(c.kind, ReviewClauseKind::When(_)));
        for clause in &review.clauses {
            let keyword = clause.kind.keyword();
            if matches!(clause.kind, ReviewClauseKind::Timing(_)) {
                continue;
            }
            if let Some(first) = seen.insert(keyword, clause.span) {
                self.error(Code::E1018, clause.span, format!("review `{}` says `{keyword}` twice", review.name.text))
                    .secondary
                    .push(Label::new(file, first, "first said here"));
                continue;
            }
            match &clause.kind {
                ReviewClauseKind::When(expr) => condition = Some(self.c.check(expr, &Ty::Bool, "a review condition")),
                ReviewClauseKind::Outcomes(names) => {
                    outcomes = self.unique_list(names, "outcome");
                    if conditional && let Some(skipped) = names.iter().find(|n| n.text == "skipped") {
                        self.error(
                            Code::E1003,
                            skipped.span,
                            "`skipped` is already the outcome of a review whose condition does not hold",
                        )
                        .help = Some("choose another name for this outcome".to_owned());
                    }
                }
                ReviewClauseKind::Reasons(names) => reasons = self.unique_list(names, "reason"),
                ReviewClauseKind::Timing(_) => {}
                ReviewClauseKind::MayEdit(paths) => {
                    for path in paths {
                        if let Some(edit) = self.edit_target(path) {
                            edits.push(edit);
                        }
                    }
                }
            }
        }
        for (keyword, example) in
            [("outcomes", "outcomes approve, reject"), ("reasons", "reasons budget_ok, missing_docs")]
        {
            if !seen.contains_key(keyword) {
                self.error(
                    Code::E2011,
                    review.name.span,
                    format!("review `{}` does not list its `{keyword}`", review.name.text),
                )
                .help = Some(format!("add `{example}`"));
            }
        }
        StepKind::Review { roles, condition, outcomes, reasons, edits }
    }

    fn unique_list(&mut self, names: &[ast::Ident], what: &str) -> Vec<SmolStr> {
        let file = self.file();
        let mut seen: BTreeMap<&str, Span> = BTreeMap::new();
        let mut list = Vec::new();
        for name in names {
            if let Some(first) = seen.insert(&name.text, name.span) {
                self.error(Code::E1003, name.span, format!("{what} `{}` is listed twice", name.text))
                    .secondary
                    .push(Label::new(file, first, "first listed here"));
                continue;
            }
            list.push(name.text.clone());
        }
        list
    }

    /// A field that a review may edit: a path into the output of an `infer` or a `let`.
    fn edit_target(&mut self, path: &ast::Path) -> Option<Edit> {
        let (root, fields) = path.segments.split_first()?;
        let binding = self.c.values.get(&root.text).cloned();
        let (step, mut ty) = match binding {
            Some(Binding::Step { index, ty, keyword: "infer" | "let" }) => (index, ty),
            Some(_) => {
                let message =
                    format!("a review may edit the result of an `infer` or a `let`, but `{}` is not one", root.text);
                self.error(Code::E2012, root.span, message).help = Some(
                    "inputs, params and human decisions are recorded as they are; they cannot be edited".to_owned(),
                );
                return None;
            }
            None if self.c.is_unparsed(&root.text) => return None,
            None => {
                let help = suggest::help(&root.text, self.c.values.keys().map(SmolStr::as_str));
                self.error(Code::E1001, root.span, format!("cannot find `{}`", root.text)).help = help;
                return None;
            }
        };
        for field in fields {
            let next = match &ty {
                Ty::Record(record) => signatures::record(self.c.db, record.id)
                    .and_then(|sig| sig.field(&field.text).map(|(_, f)| f.ty.clone())),
                Ty::Error => return None,
                _ => None,
            };
            match next {
                Some(next) => ty = next,
                None => {
                    self.error(Code::E1007, field.span, format!("`{ty}` has no field `{}`", field.text));
                    return None;
                }
            }
        }
        Some(Edit { step, fields: fields.iter().map(|f| f.text.clone()).collect(), ty, span: path.span })
    }

    fn approval(&mut self, approval: &ast::Approval) -> StepKind {
        let mut rows = Vec::new();
        for row in &approval.rows {
            let condition = row.condition.as_ref().map(|c| self.c.check(c, &Ty::Bool, "an approval row's condition"));
            let requirement = self.requirement(row);
            rows.push(Row { span: row.span, condition, requirement });
        }
        if approval.rows.is_empty() {
            self.error(
                Code::E2003,
                approval.name.span,
                format!("approval matrix `{}` has no rows", approval.name.text),
            )
            .help = Some("add rows such as `when amount < 1_000 USD => auto`".to_owned());
        }
        let mut distinct_from = Vec::new();
        for expr in &approval.distinct_from {
            let mut hir = self.c.infer(expr, None);
            let ok = matches!(hir.ty.unwrap_optional(), Ty::Principal | Ty::Error)
                || matches!(&hir.ty, Ty::List(inner) if **inner == Ty::Principal);
            if !ok {
                let message = format!("`distinct from` names principals, but this is `{}`", hir.ty);
                self.error(Code::E1002, hir.span, message).help =
                    Some("name the person who must not approve, such as `request.requester`".to_owned());
                hir.ty = Ty::Error;
            }
            distinct_from.push(hir);
        }
        StepKind::Approval { rows, distinct_from }
    }

    /// The deadlines of a review, soft gate or approval, checked: positive and increasing,
    /// nothing after one that ends the step, outcomes and reasons the step has, reminders
    /// that fall before a deadline; and a warning for a step that may wait forever without
    /// saying so.
    fn timing(&mut self, index: usize, clauses: &[&ast::TimingClause]) -> Option<hir::Timing> {
        let file = self.file();
        let step = &self.flow.steps[index];
        let (name, name_span) = (step.name.clone(), step.name_span);
        let (what, outcomes, reasons): (&str, Vec<SmolStr>, Option<Vec<SmolStr>>) = match &step.kind {
            StepKind::Review { outcomes, reasons, .. } => ("review", outcomes.clone(), Some(reasons.clone())),
            StepKind::Gate { kind: GateLevel::Soft, .. } => {
                ("soft gate", vec!["approve".into(), "reject".into()], None)
            }
            StepKind::Approval { .. } => ("approval", vec!["approve".into(), "reject".into()], None),
            StepKind::Gate { kind, .. } => {
                if let Some(first) = clauses.first() {
                    let message =
                        format!("only a `soft` gate waits for a decision; gate `{name}` is `{}`", kind.as_str());
                    self.error(Code::E2014, first.span(), message).help =
                        Some("deadlines belong to reviews, soft gates and approvals".to_owned());
                }
                return None;
            }
            _ => return None,
        };
        let reported = self.c.res.diagnostics.len();
        let mut timing = hir::Timing::default();
        let mut forever: Option<Span> = None;
        let mut ended: Option<Span> = None;
        let mut reminders: BTreeMap<i64, Span> = BTreeMap::new();
        for clause in clauses {
            match clause {
                ast::TimingClause::Within { span, after, then } => {
                    if after.seconds <= 0 || after.seconds > flow_ir::plan::LONGEST_DEADLINE {
                        self.error(
                            Code::E2023,
                            after.span,
                            "a deadline must be a positive duration of at most 100 years",
                        )
                        .help = Some("write how long the step may wait, such as `within 48h`".to_owned());
                        continue;
                    }
                    if let Some(first) = ended {
                        self.error(Code::E2023, *span, format!("{what} `{name}` has ended by an earlier deadline"))
                            .secondary
                            .push(Label::new(file, first, "the step ends here"));
                        continue;
                    }
                    if let Some(last) = timing.deadlines.last()
                        && last.after >= after.seconds
                    {
                        let last_span = last.span;
                        self.error(Code::E2023, after.span, "each deadline must come after the one before it")
                            .secondary
                            .push(Label::new(file, last_span, "the deadline before it"));
                        continue;
                    }
                    let then = match then {
                        ast::Timeout::Escalate(roles) => {
                            hir::Timeout::Escalate(roles.iter().filter_map(|r| self.c.res.resolve_role(r)).collect())
                        }
                        ast::Timeout::Block(_) => hir::Timeout::Block,
                        ast::Timeout::Decide { outcome, reason } => {
                            if !outcomes.contains(&outcome.text) {
                                let help = suggest::help(&outcome.text, outcomes.iter().map(SmolStr::as_str));
                                let message = format!(
                                    "`{}` is not an outcome of {what} `{name}`; it has {}",
                                    outcome.text,
                                    outcomes.iter().map(|o| format!("`{o}`")).collect::<Vec<_>>().join(", ")
                                );
                                self.error(Code::E1013, outcome.span, message).help = help;
                                continue;
                            }
                            match (&reasons, reason) {
                                (Some(reasons), Some(reason)) if !reasons.contains(&reason.text) => {
                                    let help = suggest::help(&reason.text, reasons.iter().map(SmolStr::as_str));
                                    let message = format!("`{}` is not a reason of review `{name}`", reason.text);
                                    self.error(Code::E1013, reason.span, message).help = help;
                                    continue;
                                }
                                (Some(reasons), None) => {
                                    let example = reasons.first().map_or("no_answer", SmolStr::as_str);
                                    let message =
                                        format!("a deadline that decides review `{name}` must give one of its reasons");
                                    self.error(Code::E2023, outcome.span, message).help =
                                        Some(format!("write `{} because {example}`", outcome.text));
                                    continue;
                                }
                                _ => {}
                            }
                            hir::Timeout::Decide {
                                outcome: outcome.text.clone(),
                                reason: reason.as_ref().map(|r| r.text.clone()),
                            }
                        }
                    };
                    if !matches!(then, hir::Timeout::Escalate(_)) {
                        ended = Some(*span);
                    }
                    timing.deadlines.push(hir::Deadline { after: after.seconds, then, span: *span });
                }
                ast::TimingClause::Remind { span, before } => {
                    if before.seconds <= 0 || before.seconds > flow_ir::plan::LONGEST_DEADLINE {
                        self.error(
                            Code::E2023,
                            before.span,
                            "a reminder must come a positive duration before its deadline",
                        )
                        .help = Some("write `remind 4h before`".to_owned());
                        continue;
                    }
                    if let Some(first) = reminders.insert(before.seconds, *span) {
                        self.error(Code::E1018, *span, format!("{what} `{name}` says this reminder twice"))
                            .secondary
                            .push(Label::new(file, first, "first said here"));
                    }
                }
                ast::TimingClause::Forever(span) => {
                    if let Some(first) = forever.replace(*span) {
                        self.error(Code::E1018, *span, format!("{what} `{name}` says `may wait forever` twice"))
                            .secondary
                            .push(Label::new(file, first, "first said here"));
                    }
                }
            }
        }
        for (before, span) in &reminders {
            if !timing.deadlines.iter().any(|d| d.after > *before) {
                let message =
                    format!("no deadline of {what} `{name}` is that long after it opens: this reminder is never sent");
                self.error(Code::E2023, *span, message).help = Some(
                    "a reminder is sent that long before each deadline: add `within …` or a shorter reminder"
                        .to_owned(),
                );
            }
        }
        timing.reminders = reminders.into_keys().collect();
        match (forever, ended) {
            (Some(forever), Some(ended)) => {
                self.error(Code::E2023, forever, format!("{what} `{name}` cannot wait forever: a deadline ends it"))
                    .secondary
                    .push(Label::new(file, ended, "the step ends here"));
            }
            // A step whose deadlines are wrong is told so; whether it ends is for after.
            (None, None) if self.c.res.diagnostics.len() == reported => {
                let message = match timing.deadlines.is_empty() {
                    true => format!("{what} `{name}` may wait forever: it has no deadline"),
                    false => format!("{what} `{name}` may wait forever after its last escalation"),
                };
                self.error(Code::W2003, name_span, message).help = Some(
                    "add `within 48h otherwise reject` (or another outcome, `escalate to role`, `block`), or say `may wait forever`"
                        .to_owned(),
                );
            }
            _ => {}
        }
        timing.forever = forever.is_some();
        (!clauses.is_empty()).then_some(timing)
    }

    fn requirement(&mut self, row: &ast::ApprovalRow) -> Vec<Requirement> {
        let file = self.file();
        let mut terms = Vec::new();
        let has_auto = row.requirement.iter().any(|t| matches!(t, ReqTerm::Auto(_)));
        if has_auto && row.requirement.len() > 1 {
            self.error(Code::E2015, row.requirement_span, "`auto` cannot be combined with approvers").help =
                Some("a row either approves automatically or names who must approve".to_owned());
        }
        for term in &row.requirement {
            match term {
                ReqTerm::Auto(_) => terms.push(Requirement::Auto),
                ReqTerm::Count { count, count_span, role, .. } => {
                    let role_id = self.c.res.resolve_role(role);
                    match count {
                        Some(0) => {
                            self.error(Code::E2015, *count_span, "an approval needs at least one approver").help =
                                Some("write `auto` for a row that needs no approver".to_owned());
                        }
                        Some(count) => {
                            if let Some(role) = role_id {
                                terms.push(Requirement::Count { count: *count, role });
                            }
                        }
                        None => {}
                    }
                }
                ReqTerm::All { roles, .. } => {
                    let mut seen: BTreeMap<&str, Span> = BTreeMap::new();
                    let mut ids = Vec::new();
                    for role in roles {
                        if let Some(first) = seen.insert(&role.text, role.span) {
                            self.error(
                                Code::E2015,
                                role.span,
                                format!("role `{}` is named twice in `all of`", role.text),
                            )
                            .secondary
                            .push(Label::new(file, first, "first named here"));
                            continue;
                        }
                        ids.extend(self.c.res.resolve_role(role));
                    }
                    terms.push(Requirement::AllOf(ids));
                }
            }
        }
        terms
    }

    /// The approvals named by `regardless of`, by step index; each must be an approval of
    /// the flow.
    fn regardless(&mut self, names: &[&ast::Ident]) -> Vec<u32> {
        let mut out = Vec::new();
        for name in names {
            match self.flow.steps.iter().position(|s| s.name == name.text) {
                Some(index) if matches!(self.flow.steps[index].kind, StepKind::Approval { .. }) => {
                    out.push(index as u32)
                }
                Some(index) => {
                    let kind = self.flow.steps[index].kind.keyword();
                    self.error(
                        Code::E1015,
                        name.span,
                        format!("`regardless of` names approvals, and `{}` is a {kind}", name.text),
                    )
                    .help = Some(
                        "name an approval: `regardless of` says an action or output happens whether or \
                                  not that approval was approved"
                            .to_owned(),
                    );
                }
                None if self.is_unparsed("approval", Some(&name.text)) => {}
                None => {
                    let approvals: Vec<&str> = self
                        .flow
                        .steps
                        .iter()
                        .filter(|s| matches!(s.kind, StepKind::Approval { .. }))
                        .map(|s| s.name.as_str())
                        .collect();
                    let help = suggest::help(&name.text, approvals.iter().copied());
                    self.error(
                        Code::E1001,
                        name.span,
                        format!("flow `{}` has no approval `{}`", self.flow.name, name.text),
                    )
                    .help = help;
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    fn action(&mut self, action: &ast::Action) -> StepKind {
        let file = self.file();
        let system = self.c.res.resolve(&action.system, &[DefKind::System], "system");
        let sig = system.and_then(|def| match signatures::decl(self.c.db, def.id) {
            Some(Decl::System(sig)) => Some(sig.clone()),
            _ => None,
        });
        let mut condition = None;
        let mut idempotency = None;
        let mut seen: BTreeMap<&str, Span> = BTreeMap::new();
        for clause in &action.clauses {
            let (keyword, span) = match clause {
                ast::ActionClause::When(span, _) => ("when", *span),
                ast::ActionClause::Idempotency(span, _) => ("idempotency", *span),
                ast::ActionClause::Regardless(span, _) => ("regardless", *span),
            };
            if let Some(first) = seen.insert(keyword, span) {
                self.error(Code::E1018, span, format!("action `{}` says `{keyword}` twice", action.name.text))
                    .secondary
                    .push(Label::new(file, first, "first said here"));
                continue;
            }
            match clause {
                ast::ActionClause::When(_, expr) => {
                    condition = Some(self.c.check(expr, &Ty::Bool, "an action condition"))
                }
                ast::ActionClause::Regardless(..) => {}
                ast::ActionClause::Idempotency(_, expr) => {
                    let mut hir = self.c.infer(expr, None);
                    if !matches!(hir.ty, Ty::Text | Ty::Int | Ty::Error) {
                        let message = format!("an idempotency key is `Text` or `Int`, but this is `{}`", hir.ty);
                        self.error(Code::E1002, hir.span, message).help =
                            Some("use an identifier of the request, such as `request.id`".to_owned());
                        hir.ty = Ty::Error;
                    }
                    idempotency = Some(hir);
                }
            }
        }
        let (Some(system), Some(sig)) = (system, sig) else {
            for arg in &action.args {
                self.c.infer(&arg.value, None);
            }
            return StepKind::Action { system: None, action: None, args: Vec::new(), condition, idempotency };
        };
        let Some(position) = sig.actions.iter().position(|a| a.name == action.operation.text) else {
            let help =
                suggest::help(&action.operation.text, sig.actions.iter().map(|a| a.name.as_str())).or_else(|| {
                    Some(format!("its actions are {}", quoted_list(sig.actions.iter().map(|a| a.name.to_string()))))
                });
            self.error(
                Code::E1007,
                action.operation.span,
                format!("system `{}` has no action `{}`", sig.name, action.operation.text),
            )
            .help = help;
            for arg in &action.args {
                self.c.infer(&arg.value, None);
            }
            return StepKind::Action {
                system: Some(system.id),
                action: None,
                args: Vec::new(),
                condition,
                idempotency,
            };
        };
        let target = &sig.actions[position];
        let params: Vec<(SmolStr, Ty)> = target.params.iter().map(|p| (p.name.clone(), p.ty.clone())).collect();
        let what = format!("action `{}.{}`", sig.name, target.name);
        let args = self
            .c
            .match_args(action.call_span, action.operation.span, &what, &params, &action.args, false)
            .unwrap_or_default();
        StepKind::Action { system: Some(system.id), action: Some(position as u32), args, condition, idempotency }
    }

    fn emit(&mut self, name: &ast::Ident, value: &ast::Expr) -> StepKind {
        let Some(output) = self.flow.outputs.iter().position(|o| o.name == name.text) else {
            if self.c.is_unparsed(&name.text) {
                self.c.infer(value, None);
                return StepKind::Emit { output: None, value: hir::Expr::error(value.span) };
            }
            let help = suggest::help(&name.text, self.flow.outputs.iter().map(|o| o.name.as_str()))
                .or_else(|| Some(format!("declare it first: `output {}: TypeName`", name.text)));
            self.error(Code::E1001, name.span, format!("flow `{}` has no output `{}`", self.flow.name, name.text))
                .help = help;
            self.c.infer(value, None);
            return StepKind::Emit { output: None, value: hir::Expr::error(value.span) };
        };
        let ty = self.flow.outputs[output].ty.clone();
        let value = self.c.check(value, &ty, &|| format!("output `{}`", name.text));
        StepKind::Emit { output: Some(output as u32), value }
    }

    fn check_emits(&mut self, flow_name: &ast::Ident) {
        let file = self.file();
        let mut emitted: BTreeMap<u32, Span> = BTreeMap::new();
        let emits: Vec<(u32, Span)> = self
            .flow
            .steps
            .iter()
            .filter_map(|s| match s.kind {
                StepKind::Emit { output: Some(output), .. } => Some((output, s.name_span)),
                _ => None,
            })
            .collect();
        for (output, span) in emits {
            if let Some(first) = emitted.insert(output, span) {
                let name = self.flow.outputs[output as usize].name.clone();
                self.error(Code::E1003, span, format!("output `{name}` is emitted twice")).secondary.push(Label::new(
                    file,
                    first,
                    "first emitted here",
                ));
            }
        }
        let missing: Vec<(SmolStr, Span)> = self
            .flow
            .outputs
            .iter()
            .enumerate()
            .filter(|(i, o)| !emitted.contains_key(&(*i as u32)) && !self.is_unparsed("emit", Some(&o.name)))
            .map(|(_, o)| (o.name.clone(), o.span))
            .collect();
        for (name, span) in missing {
            self.error(Code::E2002, span, format!("output `{name}` is never emitted")).help =
                Some(format!("add `emit {name} = …` to flow `{}`", flow_name.text));
        }
    }

    fn check_header(
        &mut self,
        name: &ast::Ident,
        versions: &[&ast::StrLit],
        owners: &[&ast::Ident],
        stewards: &[&ast::Ident],
    ) {
        let file = self.file();
        match versions {
            [] if self.is_unparsed("version", None) => {}
            [] => {
                self.error(Code::E2011, name.span, format!("flow `{}` has no `version`", name.text)).help =
                    Some("add `version \"1.0.0\"`; every change of policy gets a new version".to_owned());
            }
            [first, rest @ ..] => {
                if !is_semver(&first.value) {
                    self.error(
                        Code::E2016,
                        first.span,
                        format!("`{}` is not a version of the form `MAJOR.MINOR.PATCH`", first.value),
                    )
                    .help = Some("write a semantic version, such as `\"2.1.0\"`".to_owned());
                }
                self.flow.version = Some(first.value.clone());
                for again in rest {
                    self.error(Code::E1018, again.span, format!("flow `{}` says `version` twice", name.text))
                        .secondary
                        .push(Label::new(file, first.span, "first said here"));
                }
            }
        }
        for (keyword, list, what) in [
            ("owner", owners, "accountable for its business outcomes"),
            ("steward", stewards, "accountable for its policy and evidence"),
        ] {
            match list {
                [] if self.is_unparsed(keyword, None) => {}
                [] => {
                    self.error(Code::E2011, name.span, format!("flow `{}` has no `{keyword}`", name.text)).help =
                        Some(format!("add `{keyword} role_name`: the role {what}"));
                }
                [first, rest @ ..] => {
                    let role = self.c.res.resolve_role(first);
                    if keyword == "owner" {
                        self.flow.owner = role;
                    } else {
                        self.flow.steward = role;
                    }
                    for again in rest {
                        self.error(Code::E1018, again.span, format!("flow `{}` says `{keyword}` twice", name.text))
                            .secondary
                            .push(Label::new(file, first.span, "first said here"));
                    }
                }
            }
        }
    }

    fn check_grant(&mut self, grant: &ast::Grant) {
        let roles: Vec<DeclId> = grant.roles.iter().filter_map(|r| self.c.res.resolve_role(r)).collect();
        let mut targets = Vec::new();
        for target in &grant.targets {
            match grant.kind {
                GrantKind::View => targets.extend(self.c.res.resolve_label(target).map(GrantTarget::Label)),
                GrantKind::Override => {
                    let gate = self
                        .flow
                        .steps
                        .iter()
                        .position(|s| s.name == target.text && matches!(s.kind, StepKind::Gate { .. }));
                    match gate {
                        Some(index) => {
                            if let StepKind::Gate { kind, .. } = &self.flow.steps[index].kind
                                && *kind != GateLevel::Block
                            {
                                let message = format!(
                                    "only a `block` gate can be overridden; gate `{}` is `{}`",
                                    target.text,
                                    kind.as_str()
                                );
                                let help = if *kind == GateLevel::Soft {
                                    "a `soft` gate is decided by its `approve by` roles"
                                } else {
                                    "an `info` gate never stops the flow"
                                };
                                self.error(Code::E2010, target.span, message).help = Some(help.to_owned());
                                continue;
                            }
                            targets.push(GrantTarget::Gate(index as u32));
                        }
                        None if self.is_unparsed("gate", Some(&target.text)) => {}
                        None => {
                            let gates: Vec<&str> = self
                                .flow
                                .steps
                                .iter()
                                .filter(|s| matches!(s.kind, StepKind::Gate { .. }))
                                .map(|s| s.name.as_str())
                                .collect();
                            let help = suggest::help(&target.text, gates);
                            self.error(
                                Code::E1001,
                                target.span,
                                format!("flow `{}` has no gate `{}`", self.flow.name, target.text),
                            )
                            .help = help;
                        }
                    }
                }
                _ => {}
            }
        }
        self.flow.grants.push(Grant { kind: grant.kind, span: grant.span, targets, roles });
    }
}

fn unique_names(names: &[ast::Ident]) -> Vec<SmolStr> {
    let mut seen = BTreeSet::new();
    names.iter().filter(|n| seen.insert(n.text.clone())).map(|n| n.text.clone()).collect()
}

/// The shortest cycle through the step `first` within `component`: each step with the
/// span where it reads the next one (the last one reads `first`).
fn cycle_path(graph: &DiGraph<usize, Span>, component: &[NodeIndex], first: usize) -> Vec<(usize, Span)> {
    let in_component: BTreeSet<NodeIndex> = component.iter().copied().collect();
    let Some(start) = component.iter().copied().find(|n| graph[*n] == first) else { return Vec::new() };
    let mut parent: BTreeMap<NodeIndex, (NodeIndex, Span)> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for edge in graph.edges(node) {
            let target = edge.target();
            if target == start {
                let mut path = vec![(graph[node], *edge.weight())];
                let mut current = node;
                while current != start {
                    let (previous, span) = parent[&current];
                    path.push((graph[previous], span));
                    current = previous;
                }
                path.reverse();
                return path;
            }
            if in_component.contains(&target) && !parent.contains_key(&target) {
                parent.insert(target, (node, *edge.weight()));
                queue.push_back(target);
            }
        }
    }
    Vec::new()
}

/// The names an expression reads, leaving out lambda parameters.
fn names_read(expr: &ast::Expr) -> Vec<&str> {
    let mut names = Vec::new();
    let mut stack: Vec<(&ast::Expr, Vec<&str>)> = vec![(expr, Vec::new())];
    while let Some((expr, shadowed)) = stack.pop() {
        if let A::Name(name) = &expr.kind
            && !shadowed.contains(&name.text.as_str())
        {
            names.push(name.text.as_str());
        }
        expr.for_each_child(|child, lambda| {
            let mut inner = shadowed.clone();
            inner.extend(lambda.map(|param| param.text.as_str()));
            stack.push((child, inner));
        });
    }
    names
}
