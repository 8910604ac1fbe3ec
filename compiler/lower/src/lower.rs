//! Lowering one checked flow (`hir::Flow`) to a plan body: nodes, the expression IR with
//! explicit conversions, and every declaration the flow uses, each under one name.

use std::collections::{BTreeMap, BTreeSet};

use flow_diagnostics::{FileId, LineIndex, Span};
use flow_ir::expr::{self as ir, Branch, Named, Part};
use flow_ir::plan::{
    self, DescriptionKey, EditPath, EvidencePolicy, FlowHeader, GrantKind, Node, NodeKind, Origin, PlanBody,
    Requirement, Row, SourceMap,
};
use flow_ir::ty::Ty;
use flow_sema::hir::{self, Ref};
use flow_sema::ty as sema_ty;
use flow_sema::{Db, Decl, DeclId, DefKind, Entry, SourceFile, decl, decl_name, fn_bodies, item_names, parse, scope};
use flow_syntax::ast::{self, SmolStr};

/// Names in the plan for declarations: the name written in the flow's file where it sees
/// the declaration, and also for a declaration it does not see (one that only an imported
/// function uses) when no other declaration of the files it reaches has that name;
/// otherwise `Name@path`. The rule depends on what the files declare, not on the order in
/// which lowering meets them, so reordering a flow never renames anything.
struct Names {
    by_id: BTreeMap<DeclId, SmolStr>,
    /// How many declarations of the flow's file and everything it imports, directly or not,
    /// have each name.
    declared: BTreeMap<SmolStr, usize>,
    /// The directory of the flow's file, against which other files are named.
    dir: String,
}

/// `path` relative to the directory `dir` (both normalised as the loader normalises them),
/// so that a plan does not depend on where the compiler was run.
pub(crate) fn relative_to(dir: &str, path: &str) -> String {
    let parts =
        |p: &str| -> Vec<String> { p.split('/').filter(|s| !s.is_empty() && *s != ".").map(str::to_owned).collect() };
    let (from, to) = (parts(dir), parts(path));
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut out: Vec<String> = std::iter::repeat_n("..".to_owned(), from.len() - common).collect();
    out.extend(to[common..].iter().cloned());
    out.join("/")
}

/// A lowered flow: its body, descriptions and source map, and the spans of what the source
/// map locates.
pub struct Lowered {
    pub body: PlanBody,
    pub descriptions: BTreeMap<String, String>,
    pub source_map: SourceMap,
    /// The files of the source map's `files`, in the same order.
    pub files: Vec<FileId>,
    /// The prompts that are not UTF-8 text, with where they are named.
    pub bad_prompts: Vec<(String, FileId, Span)>,
}

pub struct Lowerer<'a> {
    db: &'a dyn Db,
    /// The file that declares the flow.
    file: SourceFile,
    flow: &'a hir::Flow,
    names: Names,
    records: BTreeSet<DeclId>,
    enums: BTreeSet<DeclId>,
    roles: BTreeSet<DeclId>,
    labels: BTreeSet<DeclId>,
    sources: BTreeSet<DeclId>,
    models: BTreeSet<DeclId>,
    corpora: BTreeSet<DeclId>,
    systems: BTreeMap<DeclId, BTreeSet<u32>>,
    functions: BTreeSet<DeclId>,
    /// The item types of the enclosing `any`/`all`, innermost last.
    locals: Vec<Ty>,
    /// The parameter types of the function being lowered.
    fn_params: Vec<Ty>,
    descriptions: BTreeMap<String, String>,
    files: Vec<String>,
    /// Each file met so far: its index in the source map, its lines, its text.
    file_index: BTreeMap<FileId, (u32, &'a LineIndex, &'a str)>,
    origins: BTreeMap<SmolStr, Origin>,
    file_ids: Vec<FileId>,
    /// A buffer for description keys.
    key: String,
    /// The syntax items of each file met so far.
    items: BTreeMap<FileId, &'a [ast::Item]>,
}

impl<'a> Lowerer<'a> {
    pub fn new(db: &'a dyn Db, file: SourceFile, flow: &'a hir::Flow) -> Lowerer<'a> {
        let path = file.path(db);
        let dir = path.rfind('/').map_or(String::new(), |slash| path[..slash].to_owned());
        let mut names = Names { by_id: BTreeMap::new(), declared: BTreeMap::new(), dir };
        for (name, def) in &scope(db, file).defs {
            if def.kind != DefKind::Flow {
                names.by_id.insert(def.id, name.clone());
            }
        }
        for current in crate::import_closure(db, file) {
            for item in item_names(db, current).iter().filter(|i| i.kind != DefKind::Flow) {
                *names.declared.entry(item.name.clone()).or_default() += 1;
            }
        }
        Lowerer {
            db,
            file,
            flow,
            names,
            records: BTreeSet::new(),
            enums: BTreeSet::new(),
            roles: BTreeSet::new(),
            labels: BTreeSet::new(),
            sources: BTreeSet::new(),
            models: BTreeSet::new(),
            corpora: BTreeSet::new(),
            systems: BTreeMap::new(),
            functions: BTreeSet::new(),
            locals: Vec::new(),
            fn_params: Vec::new(),
            descriptions: BTreeMap::new(),
            files: Vec::new(),
            file_index: BTreeMap::new(),
            origins: BTreeMap::new(),
            file_ids: Vec::new(),
            key: String::new(),
            items: BTreeMap::new(),
        }
    }

    fn name(&mut self, id: DeclId) -> SmolStr {
        if let Some(name) = self.names.by_id.get(&id) {
            return name.clone();
        }
        let plain = SmolStr::new(decl_name(self.db, id));
        let name = if self.names.declared.get(&plain).copied().unwrap_or(0) > 1 {
            let path = self.db.workspace().file(self.db, id.file).map(|f| f.path(self.db).clone()).unwrap_or_default();
            SmolStr::new(format!("{plain}@{}", relative_to(&self.names.dir, &path)))
        } else {
            plain
        };
        self.names.by_id.insert(id, name.clone());
        name
    }

    fn role(&mut self, id: DeclId) -> SmolStr {
        self.roles.insert(id);
        self.name(id)
    }

    fn label(&mut self, id: DeclId) -> SmolStr {
        self.labels.insert(id);
        self.name(id)
    }

    fn roles(&mut self, ids: &[DeclId]) -> Vec<SmolStr> {
        let mut names: Vec<SmolStr> = ids.iter().map(|id| self.role(*id)).collect();
        names.sort();
        names.dedup();
        names
    }

    /// The monitors as the plan holds them: by name, routes (channels and roles) sorted.
    fn monitors(&mut self, monitors: &[hir::Monitor]) -> Vec<flow_ir::monitor::Monitor> {
        let monitors = monitors.iter().map(|m| {
            let mut routes = self.roles(&m.roles);
            routes.extend(m.channels.iter().cloned());
            routes.sort();
            routes.dedup();
            flow_ir::monitor::Monitor {
                name: m.name.clone(),
                metric: m.metric,
                subject: m.subject.clone(),
                quantile: m.quantile,
                window: m.window,
                above: m.above,
                threshold: m.threshold,
                severity: m.severity,
                routes,
            }
        });
        sorted_by_name(monitors.collect::<Vec<_>>(), |m| &m.name)
    }

    /// A step's deadlines as the plan holds them: escalation roles by name, sorted.
    fn timing(&mut self, timing: &hir::Timing, is_review: bool) -> plan::Timing {
        let deadlines = timing
            .deadlines
            .iter()
            .map(|d| plan::Deadline {
                after: d.after,
                then: match &d.then {
                    hir::Timeout::Escalate(roles) => plan::Timeout::Escalate { roles: self.roles(roles) },
                    // `deadline` is the default code: written as none.
                    hir::Timeout::Decide { outcome, reason } => plan::Timeout::Decide {
                        outcome: outcome.clone(),
                        reason: reason.clone().filter(|r| r != "deadline" || is_review),
                    },
                    hir::Timeout::Block => plan::Timeout::Block,
                },
            })
            .collect();
        plan::Timing { deadlines, reminders: timing.reminders.clone(), forever: timing.forever }
    }

    fn step_name(&self, index: u32) -> SmolStr {
        self.flow.steps.get(index as usize).map(|s| s.name.clone()).unwrap_or_default()
    }

    /// Records where an item was written, under its description key.
    fn locate(&mut self, key: DescriptionKey<'_>, file: FileId, span: Span, docs: Option<&String>) {
        use std::fmt::Write;
        self.key.clear();
        let _ = write!(self.key, "{key}");
        if let Some(docs) = docs {
            self.descriptions.insert(self.key.clone(), docs.clone());
        }
        if !self.file_index.contains_key(&file) {
            let Some(source) = self.db.workspace().file(self.db, file) else { return };
            let text: &'a str = source.text(self.db);
            self.file_index.insert(file, (self.files.len() as u32, crate::line_index(self.db, source), text));
            self.files.push(source.path(self.db).clone());
            self.file_ids.push(file);
        }
        let Some((index, lines, text)) = self.file_index.get(&file) else { return };
        let (index, at) = (*index, lines.line_col(text, span.start));
        let origin = Origin { file: index, start: span.start, end: span.end, line: at.line, column: at.column };
        self.origins.insert(SmolStr::new(&self.key), origin);
    }

    /// The syntax item that declares `id`: for its doc comment and span.
    fn item(&mut self, id: DeclId) -> Option<&'a ast::Item> {
        let items = match self.items.get(&id.file) {
            Some(items) => *items,
            None => {
                let file = self.db.workspace().file(self.db, id.file)?;
                let items: &'a [ast::Item] = &parse(self.db, file).file.items;
                self.items.insert(id.file, items);
                items
            }
        };
        items.get(id.index as usize)
    }

    fn locate_decl(&mut self, key: DescriptionKey<'_>, id: DeclId) {
        if let Some(item) = self.item(id) {
            let span = item.kind.name().map_or(item.span, |n| n.span);
            self.locate(key, id.file, span, item.docs.as_ref());
        }
    }

    // -------------------------------------------------------------------------------------
    // Types.

    fn ty(&mut self, ty: &sema_ty::Ty) -> Ty {
        use sema_ty::Ty as S;
        match ty {
            S::Bool => Ty::Bool,
            S::Int => Ty::Int,
            S::Decimal => Ty::Decimal,
            S::Money(c) => Ty::Money(*c),
            S::Text => Ty::Text,
            S::Timestamp => Ty::Timestamp,
            S::Duration => Ty::Duration,
            S::Principal => Ty::Principal,
            S::List(inner) => Ty::List(Box::new(self.ty(inner))),
            S::Optional(inner) => Ty::Optional(Box::new(self.ty(inner))),
            S::Record(record) => {
                self.records.insert(record.id);
                Ty::Named(self.name(record.id))
            }
            S::Enum(e) => match &e.kind {
                sema_ty::EnumKind::Decl(id) => {
                    self.enums.insert(*id);
                    Ty::Named(self.name(*id))
                }
                sema_ty::EnumKind::Outcome { step, .. } => Ty::Outcome(self.step_name(*step)),
                sema_ty::EnumKind::Reason { step, .. } => Ty::Reason(self.step_name(*step)),
            },
            S::Step(step) => match step.kind {
                sema_ty::StepResult::Review => Ty::Review(self.step_name(step.step)),
                sema_ty::StepResult::Approval => Ty::Approval(self.step_name(step.step)),
            },
            S::Nothing | S::Error => Ty::Nothing,
        }
    }

    // -------------------------------------------------------------------------------------
    // Expressions.

    /// `expr` where a value of type `target` is wanted: widened if it is a whole number
    /// where a decimal is wanted.
    fn coerce(expr: ir::Expr, target: &Ty) -> ir::Expr {
        if !expr.ty.fits(target) && expr.ty.widens_to(target) {
            ir::Expr::new(target.clone(), ir::ExprKind::Widen(Box::new(expr)))
        } else {
            expr
        }
    }

    fn lowered_to(&mut self, expr: &hir::Expr, target: &Ty) -> ir::Expr {
        let lowered = self.expr(expr);
        Self::coerce(lowered, target)
    }

    /// A place read with its declared type, unwrapped where a condition proved it present
    /// (the checker gave it the type without `?`).
    fn narrow(&mut self, place: ir::Expr, checked: &sema_ty::Ty) -> ir::Expr {
        match &place.ty {
            Ty::Optional(inner) if !checked.is_optional() && !checked.is_error() => {
                let inner = (**inner).clone();
                ir::Expr::new(inner, ir::ExprKind::Unwrap(Box::new(place)))
            }
            _ => place,
        }
    }

    fn declared(&mut self, r: Ref) -> (Ty, ir::ExprKind) {
        let flow = self.flow;
        match r {
            Ref::Input(i) => {
                let input = &flow.inputs[i as usize];
                (self.ty(&input.ty), ir::ExprKind::Node(input.name.clone()))
            }
            Ref::Param(i) => {
                let param = &flow.params[i as usize];
                (self.ty(&param.ty), ir::ExprKind::Node(param.name.clone()))
            }
            Ref::Step(i) => {
                let step = &flow.steps[i as usize];
                (self.ty(&step.ty), ir::ExprKind::Node(step.name.clone()))
            }
            Ref::FnParam(i) => (self.fn_params.get(i as usize).cloned().unwrap_or(Ty::Nothing), ir::ExprKind::Param(i)),
            Ref::Local(depth) => {
                let ty = self.locals.iter().rev().nth(depth as usize).cloned().unwrap_or(Ty::Nothing);
                (ty, ir::ExprKind::Local(depth))
            }
        }
    }

    /// The declared type of field `name` of a value of (checked) type `base`.
    fn field_type(&mut self, base: &sema_ty::Ty, name: &str) -> Ty {
        match base {
            sema_ty::Ty::Record(record) => {
                let field =
                    flow_sema::record(self.db, record.id).and_then(|sig| sig.field(name)).map(|(_, f)| f.ty.clone());
                field.map_or(Ty::Nothing, |ty| self.ty(&ty))
            }
            sema_ty::Ty::Step(step) => {
                let name_of = self.step_name(step.step);
                let maybe = |ty: Ty| if step.conditional { ty.optional() } else { ty };
                match (step.kind, name) {
                    (sema_ty::StepResult::Review, "outcome") => Ty::Outcome(name_of),
                    (sema_ty::StepResult::Review, "reason") => maybe(Ty::Reason(name_of)),
                    (sema_ty::StepResult::Review, "reviewer") => maybe(Ty::Principal),
                    (sema_ty::StepResult::Review, "basis") => Ty::Text.optional(),
                    (sema_ty::StepResult::Approval, "approved") => Ty::Bool,
                    (sema_ty::StepResult::Approval, "approvers") => Ty::List(Box::new(Ty::Principal)),
                    (sema_ty::StepResult::Approval, "requirement") => Ty::Text,
                    _ => Ty::Nothing,
                }
            }
            _ => Ty::Nothing,
        }
    }

    fn variant(&mut self, e: &sema_ty::EnumRef, index: u32) -> SmolStr {
        match &e.kind {
            sema_ty::EnumKind::Decl(id) => match decl(self.db, *id) {
                Some(Decl::Enum(sig)) => sig.variants.get(index as usize).map(|v| v.name.clone()).unwrap_or_default(),
                _ => SmolStr::default(),
            },
            sema_ty::EnumKind::Outcome { step, .. } | sema_ty::EnumKind::Reason { step, .. } => {
                match self.flow.steps.get(*step as usize).map(|s| &s.kind) {
                    Some(hir::StepKind::Review { outcomes, reasons, condition, .. }) => {
                        let list: Vec<SmolStr> = match e.kind {
                            sema_ty::EnumKind::Outcome { .. } => {
                                let skipped = condition.as_ref().map(|_| SmolStr::new_static("skipped"));
                                outcomes.iter().cloned().chain(skipped).collect()
                            }
                            _ => reasons.clone(),
                        };
                        list.get(index as usize).cloned().unwrap_or_default()
                    }
                    _ => SmolStr::default(),
                }
            }
        }
    }

    fn literal(literal: &hir::Literal) -> ir::Literal {
        match literal {
            hir::Literal::Int(n) => ir::Literal::Int(*n),
            hir::Literal::Decimal(d) => ir::Literal::Decimal(*d),
            hir::Literal::Money { amount, currency: c } => {
                ir::Literal::Money(ir::Money { amount: *amount, currency: *c })
            }
            hir::Literal::Duration(seconds) => ir::Literal::Duration(*seconds),
            hir::Literal::Timestamp(t) => ir::Literal::Timestamp(*t),
            hir::Literal::Bool(b) => ir::Literal::Bool(*b),
            hir::Literal::Text(text) => ir::Literal::Text(text.clone()),
        }
    }

    fn widen_number(expr: ir::Expr) -> ir::Expr {
        if expr.ty == Ty::Int { Self::coerce(expr, &Ty::Decimal) } else { expr }
    }

    pub fn expr(&mut self, expr: &hir::Expr) -> ir::Expr {
        use hir::ExprKind as H;
        use ir::ExprKind as I;
        let ty = self.ty(&expr.ty);
        let kind = match &expr.kind {
            H::Lit(literal) => I::Lit(Self::literal(literal)),
            H::Interpolation(parts) => I::Interpolate(
                parts
                    .iter()
                    .map(|part| match part {
                        hir::Part::Text(text) => Part::Text(text.clone()),
                        hir::Part::Expr(e) => Part::Expr(self.expr(e)),
                    })
                    .collect(),
            ),
            H::Ref(r) => {
                let (declared, kind) = self.declared(*r);
                return self.narrow(ir::Expr::new(declared, kind), &expr.ty);
            }
            H::Variant(e, index) => I::Variant(self.variant(e, *index)),
            H::Field { base, name, .. } => {
                let declared = self.field_type(&base.ty, name);
                let base = self.expr(base);
                let place = ir::Expr::new(declared, I::Field { base: Box::new(base), field: name.clone() });
                return self.narrow(place, &expr.ty);
            }
            H::Call { function, args } => {
                let params: Vec<Ty> = match decl(self.db, *function) {
                    Some(Decl::Fn(sig)) => {
                        let tys: Vec<sema_ty::Ty> = sig.params.iter().map(|p| p.ty.clone()).collect();
                        tys.iter().map(|t| self.ty(t)).collect()
                    }
                    _ => Vec::new(),
                };
                self.functions.insert(*function);
                let args = args
                    .iter()
                    .enumerate()
                    .map(|(i, a)| match params.get(i) {
                        Some(target) => self.lowered_to(a, target),
                        None => self.expr(a),
                    })
                    .collect();
                I::Call { function: self.name(*function), args }
            }
            H::Builtin { builtin, args } => {
                let node_arg = |args: &[hir::Expr]| match args.first().map(|a| &a.kind) {
                    Some(H::Ref(Ref::Input(i))) => self.flow.inputs[*i as usize].name.clone(),
                    Some(H::Ref(Ref::Step(i))) => self.flow.steps[*i as usize].name.clone(),
                    _ => SmolStr::default(),
                };
                match builtin {
                    hir::Builtin::Now => I::Now,
                    hir::Builtin::StartedBy => I::StartedBy,
                    hir::Builtin::Declassify => {
                        let reason = match args.get(1).map(|a| &a.kind) {
                            Some(H::Lit(hir::Literal::Text(text))) => text.as_str().into(),
                            _ => SmolStr::default(),
                        };
                        let value =
                            args.first().map(|a| self.expr(a)).unwrap_or_else(|| ir::Expr::new(Ty::Nothing, I::Now));
                        I::Declassify { value: Box::new(value), reason }
                    }
                    hir::Builtin::Age => I::Age(node_arg(args)),
                    hir::Builtin::Stale => I::Stale(node_arg(args)),
                    hir::Builtin::Degraded => I::Degraded(node_arg(args)),
                    hir::Builtin::Len | hir::Builtin::Contains | hir::Builtin::Lower => I::Builtin {
                        builtin: match builtin {
                            hir::Builtin::Len => ir::Builtin::Len,
                            hir::Builtin::Contains => ir::Builtin::Contains,
                            _ => ir::Builtin::Lower,
                        },
                        args: args.iter().map(|a| self.expr(a)).collect(),
                    },
                    hir::Builtin::IsPresent => {
                        // The place itself, optional: not as narrowed by an enclosing proof.
                        let args = args
                            .iter()
                            .map(|a| match self.expr(a) {
                                ir::Expr { kind: I::Unwrap(inner), .. } => *inner,
                                other => other,
                            })
                            .collect();
                        I::Builtin { builtin: ir::Builtin::IsPresent, args }
                    }
                }
            }
            H::Quantifier { all, list, var, body } => {
                let list = self.expr(list);
                let item = match &list.ty {
                    Ty::List(item) => (**item).clone(),
                    _ => Ty::Nothing,
                };
                self.locals.push(item);
                let body = self.expr(body);
                self.locals.pop();
                I::Quantifier { all: *all, var: var.clone(), list: Box::new(list), body: Box::new(body) }
            }
            H::List(items) => I::List(items.iter().map(|i| self.expr(i)).collect()),
            H::Record { record, fields } => {
                let sig = flow_sema::record(self.db, record.id).cloned();
                let mut named = Vec::new();
                for (index, value) in fields.iter().enumerate() {
                    let (Some(value), Some(field)) = (value, sig.as_ref().and_then(|s| s.fields.get(index))) else {
                        continue;
                    };
                    let target = self.ty(&field.ty);
                    named.push(Named { name: field.name.clone(), value: self.lowered_to(value, &target) });
                }
                named.sort_by(|a, b| a.name.cmp(&b.name));
                I::Record(named)
            }
            H::Unary { op: ast::UnaryOp::Not, operand } => I::Not(Box::new(self.expr(operand))),
            H::Unary { op: ast::UnaryOp::Neg, operand } => I::Neg(Box::new(self.expr(operand))),
            H::Binary { op, lhs, rhs } => {
                let op = *op;
                let mut l = self.expr(lhs);
                let mut r = self.expr(rhs);
                use ir::BinaryOp as B;
                if !matches!(op, B::And | B::Or) {
                    let money = |t: &Ty| matches!(t, Ty::Money(_));
                    if l.ty.is_number() && r.ty.is_number() {
                        if l.ty == Ty::Decimal || r.ty == Ty::Decimal || op == B::Div {
                            l = Self::widen_number(l);
                            r = Self::widen_number(r);
                        }
                    } else if money(&l.ty) && r.ty.is_number() && matches!(op, B::Mul | B::Div) {
                        r = Self::widen_number(r);
                    } else if l.ty.is_number() && money(&r.ty) && op == B::Mul {
                        l = Self::widen_number(l);
                    }
                }
                I::Binary { op, lhs: Box::new(l), rhs: Box::new(r) }
            }
            H::If { branches, otherwise } => {
                let branches = branches
                    .iter()
                    .map(|(condition, then)| Branch {
                        condition: self.expr(condition),
                        then: self.lowered_to(then, &ty),
                    })
                    .collect();
                I::If { branches, otherwise: Box::new(self.lowered_to(otherwise, &ty)) }
            }
            // The front end reported it; lowering runs only on files without errors.
            H::Error => I::Lit(ir::Literal::Bool(false)),
        };
        ir::Expr::new(ty, kind)
    }

    // -------------------------------------------------------------------------------------
    // The flow.

    pub fn lower(mut self) -> Lowered {
        let db = self.db;
        let flow = self.flow;
        let file_id = self.file.id(db);
        self.locate(DescriptionKey::Flow, file_id, flow.span, flow.docs.as_ref());
        let mut nodes = Vec::new();
        for input in &flow.inputs {
            let ty = self.ty(&input.ty);
            let source = input.source.map(|id| {
                self.sources.insert(id);
                self.name(id)
            });
            self.locate(DescriptionKey::Node(&input.name), file_id, input.span, input.docs.as_ref());
            nodes.push(Node {
                name: input.name.clone(),
                ty,
                kind: NodeKind::Input { source },
                regardless: Vec::new(),
                timing: None,
            });
        }
        for param in &flow.params {
            let ty = self.ty(&param.ty);
            let default = self.lowered_to(&param.default, &ty);
            self.locate(DescriptionKey::Node(&param.name), file_id, param.span, param.docs.as_ref());
            nodes.push(Node {
                name: param.name.clone(),
                ty,
                kind: NodeKind::Param { default },
                regardless: Vec::new(),
                timing: None,
            });
        }
        let mut outputs = Vec::new();
        for output in &flow.outputs {
            let ty = self.ty(&output.ty);
            self.locate(DescriptionKey::Output(&output.name), file_id, output.span, output.docs.as_ref());
            outputs.push(plan::Output { name: output.name.clone(), ty });
        }
        for step in &flow.steps {
            let ty = self.ty(&step.ty);
            let kind = self.step(step, &ty);
            self.locate(DescriptionKey::Node(&step.name), file_id, step.name_span, step.docs.as_ref());
            if let hir::StepKind::Approval { rows, .. } = &step.kind {
                for (index, row) in rows.iter().enumerate() {
                    self.locate(DescriptionKey::Row(&step.name, index + 1), file_id, row.span, None);
                }
            }
            let mut regardless: Vec<SmolStr> = step.regardless.iter().map(|&s| self.step_name(s)).collect();
            regardless.sort();
            let is_review = matches!(step.kind, hir::StepKind::Review { .. });
            let timing = step.timing.as_ref().map(|timing| self.timing(timing, is_review));
            nodes.push(Node { name: step.name.clone(), ty, kind, regardless, timing });
        }
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        outputs.sort_by(|a, b| a.name.cmp(&b.name));
        let grants = self.grants();
        let owner = flow.owner.map(|id| self.role(id)).unwrap_or_default();
        let steward = flow.steward.map(|id| self.role(id)).unwrap_or_default();
        let functions = self.functions();
        let models = self.models();
        let corpora = self.corpora();
        let systems = self.systems();
        let sources = self.sources();
        // Records and enums last: the other declarations add to them.
        let (records, enums) = self.types();
        let monitors = self.monitors(&flow.monitors);
        let roles = self.role_table();
        let labels = self.label_table();
        let mut body = PlanBody {
            flow: FlowHeader {
                name: flow.name.clone(),
                version: flow.version.clone().unwrap_or_default(),
                owner,
                steward,
                migrate_waiting: flow.migrate_waiting,
            },
            outputs,
            nodes,
            edges: Vec::new(),
            grants,
            evidence: EvidencePolicy { retain: flow.retain },
            roles,
            labels,
            records,
            enums,
            sources,
            models: models.0,
            corpora,
            systems,
            functions,
            monitors,
        };
        body.edges = flow_ir::derive::edges(&body);
        let prompts = models.1;
        let bad_prompts = models.2;
        Lowered {
            body,
            descriptions: self.descriptions,
            source_map: SourceMap { files: self.files, origins: self.origins, prompts },
            files: self.file_ids,
            bad_prompts,
        }
    }

    fn step(&mut self, step: &hir::Step, ty: &Ty) -> NodeKind {
        match &step.kind {
            hir::StepKind::Let { value } => NodeKind::Let { value: self.lowered_to(value, ty) },
            hir::StepKind::Gate { kind, condition, approvers, message } => NodeKind::Gate {
                level: *kind,
                condition: self.expr(condition),
                approvers: self.roles(approvers),
                message: message.clone(),
            },
            hir::StepKind::Infer { model, args, fallback } => {
                // Unresolved only in files with errors, which are not lowered; the verifier
                // refuses what this stands for.
                let Some(model) = *model else {
                    return NodeKind::Let { value: ir::Expr::new(Ty::Nothing, ir::ExprKind::Now) };
                };
                self.models.insert(model);
                let (inputs, output): (Vec<(SmolStr, sema_ty::Ty)>, sema_ty::Ty) = match decl(self.db, model) {
                    Some(Decl::Model(sig)) => {
                        (sig.inputs.iter().map(|p| (p.name.clone(), p.ty.clone())).collect(), sig.output.clone())
                    }
                    _ => (Vec::new(), sema_ty::Ty::Error),
                };
                let mut named = Vec::new();
                for ((name, input_ty), value) in inputs.iter().zip(args) {
                    let target = self.ty(input_ty);
                    named.push(Named { name: name.clone(), value: self.lowered_to(value, &target) });
                }
                named.sort_by(|a, b| a.name.cmp(&b.name));
                let output = self.ty(&output);
                let fallback = fallback.as_ref().map(|f| self.lowered_to(f, &output));
                NodeKind::Infer { model: self.name(model), args: named, fallback }
            }
            hir::StepKind::Retrieve { corpus, query, top } => {
                // As for models above.
                let Some(corpus) = *corpus else {
                    return NodeKind::Let { value: ir::Expr::new(Ty::Nothing, ir::ExprKind::Now) };
                };
                self.corpora.insert(corpus);
                NodeKind::Retrieve { corpus: self.name(corpus), query: self.lowered_to(query, &Ty::Text), top: *top }
            }
            hir::StepKind::Review { roles, condition, outcomes, reasons, edits } => {
                let mut outcomes = outcomes.clone();
                outcomes.sort();
                let mut reasons = reasons.clone();
                reasons.sort();
                let mut edits: Vec<EditPath> =
                    edits.iter().map(|e| EditPath { node: self.step_name(e.step), fields: e.fields.clone() }).collect();
                edits.sort();
                edits.dedup();
                NodeKind::Review {
                    roles: self.roles(roles),
                    condition: condition.as_ref().map(|c| self.expr(c)),
                    outcomes,
                    reasons,
                    edits,
                }
            }
            hir::StepKind::Approval { rows, distinct_from } => NodeKind::Approval {
                rows: rows
                    .iter()
                    .map(|row| {
                        let mut requirement: Vec<Requirement> = row
                            .requirement
                            .iter()
                            .map(|term| match term {
                                hir::Requirement::Auto => Requirement::Auto,
                                hir::Requirement::Count { count, role } => {
                                    Requirement::Count { count: *count, role: self.role(*role) }
                                }
                                hir::Requirement::AllOf(roles) => Requirement::AllOf(self.roles(roles)),
                            })
                            .collect();
                        requirement.sort();
                        requirement.dedup();
                        Row { condition: row.condition.as_ref().map(|c| self.expr(c)), requirement }
                    })
                    .collect(),
                distinct_from: distinct_from.iter().map(|e| self.expr(e)).collect(),
            },
            hir::StepKind::Action { system, action, args, condition, idempotency } => {
                // As for models above.
                let (Some(system), Some(action)) = (*system, *action) else {
                    return NodeKind::Let { value: ir::Expr::new(Ty::Nothing, ir::ExprKind::Now) };
                };
                self.systems.entry(system).or_default().insert(action);
                let (action_name, params): (SmolStr, Vec<(SmolStr, sema_ty::Ty)>) = match decl(self.db, system) {
                    Some(Decl::System(sig)) => match sig.actions.get(action as usize) {
                        Some(a) => (a.name.clone(), a.params.iter().map(|p| (p.name.clone(), p.ty.clone())).collect()),
                        None => (SmolStr::default(), Vec::new()),
                    },
                    _ => (SmolStr::default(), Vec::new()),
                };
                let mut named = Vec::new();
                for ((name, param_ty), value) in params.iter().zip(args) {
                    let target = self.ty(param_ty);
                    named.push(Named { name: name.clone(), value: self.lowered_to(value, &target) });
                }
                named.sort_by(|a, b| a.name.cmp(&b.name));
                NodeKind::Action {
                    system: self.name(system),
                    action: action_name,
                    args: named,
                    condition: condition.as_ref().map(|c| self.expr(c)),
                    idempotency: idempotency.as_ref().map(|k| self.expr(k)),
                }
            }
            hir::StepKind::Emit { output, value } => {
                let target = output
                    .and_then(|o| self.flow.outputs.get(o as usize))
                    .map(|o| o.ty.clone())
                    .unwrap_or(sema_ty::Ty::Error);
                let target = self.ty(&target);
                NodeKind::Emit { value: self.lowered_to(value, &target) }
            }
        }
    }

    fn grants(&mut self) -> Vec<plan::Grant> {
        let mut merged: BTreeMap<(GrantKind, Option<SmolStr>), BTreeSet<SmolStr>> = BTreeMap::new();
        for grant in &self.flow.grants {
            let kind = grant.kind;
            let roles: Vec<SmolStr> = self.roles(&grant.roles);
            let targets: Vec<Option<SmolStr>> = if matches!(kind, GrantKind::View | GrantKind::Override) {
                grant
                    .targets
                    .iter()
                    .map(|t| match t {
                        hir::GrantTarget::Label(id) => Some(self.label(*id)),
                        hir::GrantTarget::Gate(step) => Some(self.step_name(*step)),
                    })
                    .collect()
            } else {
                vec![None]
            };
            for target in targets {
                merged.entry((kind, target)).or_default().extend(roles.iter().cloned());
            }
        }
        merged
            .into_iter()
            .filter(|(_, roles)| !roles.is_empty())
            .map(|((kind, target), roles)| plan::Grant { kind, target, roles: roles.into_iter().collect() })
            .collect()
    }

    /// The functions the flow calls, and those they call.
    fn functions(&mut self) -> Vec<plan::Function> {
        let mut done: BTreeMap<DeclId, plan::Function> = BTreeMap::new();
        while let Some(id) = self.functions.iter().copied().find(|id| !done.contains_key(id)) {
            let Some(file) = self.db.workspace().file(self.db, id.file) else {
                self.functions.remove(&id);
                continue;
            };
            let Some(Some(function)) = fn_bodies(self.db, file).functions.get(id.index as usize) else {
                self.functions.remove(&id);
                continue;
            };
            let params: Vec<plan::Param> =
                function.params.iter().map(|(name, ty)| plan::Param { name: name.clone(), ty: self.ty(ty) }).collect();
            let result = self.ty(&function.ret);
            self.fn_params = params.iter().map(|p| p.ty.clone()).collect();
            let body = self.lowered_to(&function.body, &result);
            self.fn_params.clear();
            let name = self.name(id);
            self.locate_decl(DescriptionKey::Function(&name), id);
            done.insert(id, plan::Function { name, params, result, body });
        }
        sorted_by_name(done.into_values(), |f| &f.name)
    }

    /// The models the flow calls, the prompt file of each by model name, and the prompts
    /// that are not UTF-8 text.
    #[expect(clippy::type_complexity, reason = "three results of one pass, named in the doc comment")]
    fn models(&mut self) -> (Vec<plan::Model>, BTreeMap<String, String>, Vec<(String, FileId, Span)>) {
        let mut models = Vec::new();
        let mut prompts = BTreeMap::new();
        let mut bad = Vec::new();
        for id in self.models.clone() {
            let Some(Decl::Model(sig)) = decl(self.db, id) else { continue };
            let name = self.name(id);
            self.locate_decl(DescriptionKey::Model(&name), id);
            let prompt = sig.prompt.as_ref().and_then(|prompt| {
                prompts.insert(name.to_string(), prompt.path.clone());
                let bytes = match self.db.workspace().entry(self.db, &prompt.path) {
                    Some(Entry::Asset(bytes)) => bytes,
                    _ => return None,
                };
                match String::from_utf8(bytes.to_vec()) {
                    Ok(text) => Some(plan::Prompt { hash: flow_ir::encode::blake3_text(text.as_bytes()), text }),
                    Err(_) => {
                        bad.push((prompt.path.clone(), id.file, prompt.span));
                        None
                    }
                }
            });
            let inputs: Vec<plan::Param> =
                sig.inputs.iter().map(|p| plan::Param { name: p.name.clone(), ty: self.ty(&p.ty) }).collect();
            let clearance = sig.clearance.iter().map(|l| self.label(*l)).collect();
            let output = self.ty(&sig.output);
            models.push(plan::Model {
                name,
                provider: sig.provider.clone().unwrap_or_default(),
                model_name: sig.model_name.clone().unwrap_or_default(),
                version: sig.version.clone().unwrap_or_default(),
                digest: sig.digest.clone().unwrap_or_default(),
                prompt,
                inputs: sorted_by_name(inputs, |p| &p.name),
                output,
                clearance: sorted(clearance),
            });
        }
        (sorted_by_name(models, |m| &m.name), prompts, bad)
    }

    /// The corpora the flow searches.
    fn corpora(&mut self) -> Vec<plan::Corpus> {
        let mut corpora = Vec::new();
        for id in self.corpora.clone() {
            let Some(Decl::Corpus(sig)) = decl(self.db, id) else { continue };
            let name = self.name(id);
            self.locate_decl(DescriptionKey::Corpus(&name), id);
            let labels = sig.labels.iter().map(|l| self.label(*l)).collect();
            let clearance = sig.clearance.iter().map(|l| self.label(*l)).collect();
            corpora.push(plan::Corpus {
                name,
                retriever: sig.retriever.clone().unwrap_or_default(),
                authority: sig.authority.clone().unwrap_or_default(),
                snapshot: sig.snapshot.clone().unwrap_or_default(),
                document: self.ty(&sig.ty),
                labels: sorted(labels),
                clearance: sorted(clearance),
                freshness: sig.freshness,
                on_mismatch: match sig.on_mismatch {
                    ast::MismatchPolicy::Refuse => plan::Mismatch::Refuse,
                    ast::MismatchPolicy::Degrade => plan::Mismatch::Degrade,
                },
            });
        }
        sorted_by_name(corpora, |c| &c.name)
    }

    fn systems(&mut self) -> Vec<plan::System> {
        let mut systems = Vec::new();
        for (id, used) in self.systems.clone() {
            let Some(Decl::System(sig)) = decl(self.db, id) else { continue };
            let name = self.name(id);
            self.locate_decl(DescriptionKey::System(&name), id);
            let mut actions = Vec::new();
            for index in used {
                let Some(action) = sig.actions.get(index as usize) else { continue };
                let params: Vec<plan::Param> =
                    action.params.iter().map(|p| plan::Param { name: p.name.clone(), ty: self.ty(&p.ty) }).collect();
                let result = self.ty(&action.ret);
                self.locate(DescriptionKey::Action(&name, &action.name), id.file, action.span, action.docs.as_ref());
                actions.push(plan::Action {
                    name: action.name.clone(),
                    params: sorted_by_name(params, |p| &p.name),
                    result,
                });
            }
            let clearance = sig.clearance.iter().map(|l| self.label(*l)).collect();
            systems.push(plan::System {
                name,
                clearance: sorted(clearance),
                actions: sorted_by_name(actions, |a| &a.name),
            });
        }
        sorted_by_name(systems, |s| &s.name)
    }

    fn sources(&mut self) -> Vec<plan::Source> {
        let mut sources = Vec::new();
        for id in self.sources.clone() {
            let Some(Decl::Source(sig)) = decl(self.db, id) else { continue };
            let name = self.name(id);
            self.locate_decl(DescriptionKey::Source(&name), id);
            let ty = self.ty(&sig.ty);
            sources.push(plan::Source {
                name,
                ty,
                authority: sig.authority.clone().unwrap_or_default(),
                freshness: sig.freshness,
                as_of: sig.as_of.as_ref().map(|(field, _)| field.clone()),
            });
        }
        sorted_by_name(sources, |s| &s.name)
    }

    /// The records and enums used, and those their fields use.
    fn types(&mut self) -> (Vec<plan::Record>, Vec<plan::Enum>) {
        let mut records: BTreeMap<DeclId, plan::Record> = BTreeMap::new();
        while let Some(id) = self.records.iter().copied().find(|id| !records.contains_key(id)) {
            let Some(sig) = flow_sema::record(self.db, id).cloned() else {
                self.records.remove(&id);
                continue;
            };
            let name = self.name(id);
            self.locate_decl(DescriptionKey::Record(&name), id);
            let mut fields = Vec::new();
            for field in &sig.fields {
                let ty = self.ty(&field.ty);
                let labels = field.labels.iter().map(|l| self.label(*l)).collect();
                self.locate(DescriptionKey::Field(&name, &field.name), id.file, field.span, field.docs.as_ref());
                fields.push(plan::Field { name: field.name.clone(), ty, labels: sorted(labels) });
            }
            records.insert(id, plan::Record { name, fields: sorted_by_name(fields, |f| &f.name) });
        }
        let mut enums = Vec::new();
        for id in self.enums.clone() {
            let Some(Decl::Enum(sig)) = decl(self.db, id) else { continue };
            let name = self.name(id);
            self.locate_decl(DescriptionKey::Enum(&name), id);
            for variant in &sig.variants {
                self.locate(
                    DescriptionKey::Variant(&name, &variant.name),
                    id.file,
                    variant.span,
                    variant.docs.as_ref(),
                );
            }
            enums.push(plan::Enum { name, variants: sorted(sig.variants.iter().map(|v| v.name.clone()).collect()) });
        }
        (sorted_by_name(records.into_values(), |r| &r.name), sorted_by_name(enums, |e| &e.name))
    }

    /// The roles named, the visible roles that extend them (whose holders inherit their
    /// grants), and every role these extend.
    fn role_table(&mut self) -> Vec<plan::Role> {
        let extends = |db: &dyn Db, id: DeclId| -> Vec<DeclId> {
            match decl(db, id) {
                Some(Decl::Role(sig)) => sig.extends.clone(),
                _ => Vec::new(),
            }
        };
        let inherits = |db: &dyn Db, from: DeclId, to: &BTreeSet<DeclId>| {
            let mut stack = vec![from];
            let mut seen = BTreeSet::new();
            while let Some(current) = stack.pop() {
                if to.contains(&current) {
                    return true;
                }
                if seen.insert(current) {
                    stack.extend(extends(db, current));
                }
            }
            false
        };
        let named = self.roles.clone();
        let visible: Vec<DeclId> =
            scope(self.db, self.file).defs.values().filter(|d| d.kind == DefKind::Role).map(|d| d.id).collect();
        let mut all: BTreeSet<DeclId> = named.clone();
        all.extend(visible.into_iter().filter(|id| inherits(self.db, *id, &named)));
        let mut stack: Vec<DeclId> = all.iter().copied().collect();
        while let Some(id) = stack.pop() {
            for parent in extends(self.db, id) {
                if all.insert(parent) {
                    stack.push(parent);
                }
            }
        }
        let mut roles = Vec::new();
        for id in all {
            let name = self.role(id);
            self.locate_decl(DescriptionKey::Role(&name), id);
            let parents: Vec<SmolStr> = extends(self.db, id).into_iter().map(|p| self.name(p)).collect();
            roles.push(plan::Role { name, extends: sorted(parents) });
        }
        sorted_by_name(roles, |r| &r.name)
    }

    fn label_table(&mut self) -> Vec<SmolStr> {
        let mut labels = Vec::new();
        for id in self.labels.clone() {
            let name = self.name(id);
            self.locate_decl(DescriptionKey::Label(&name), id);
            labels.push(name);
        }
        sorted(labels)
    }
}

fn sorted(mut names: Vec<SmolStr>) -> Vec<SmolStr> {
    names.sort();
    names.dedup();
    names
}

fn sorted_by_name<T>(items: impl IntoIterator<Item = T>, name: impl Fn(&T) -> &SmolStr) -> Vec<T> {
    let mut items: Vec<T> = items.into_iter().collect();
    items.sort_by(|a, b| name(a).cmp(name(b)));
    items
}

/// A `test` block in the plan's terms, for `flowc test`: its values and conditions as plan
/// expressions (`Param(i)` reads example field `i`), its steps and models by name.
#[derive(Clone, Debug)]
pub struct LoweredTest {
    pub name: String,
    /// The span of the test's name.
    pub span: Span,
    /// The flow it runs.
    pub flow: SmolStr,
    pub clock: Option<ir::Expr>,
    /// Inputs and params by name.
    pub given: Vec<(SmolStr, ir::Expr)>,
    pub params: Vec<(SmolStr, ir::Expr)>,
    /// What models answer, by model name; `None`: the model fails.
    pub models: Vec<(SmolStr, Option<ir::Expr>)>,
    /// What searches of corpora find, by corpus name; `None`: the retriever fails.
    pub corpora: Vec<(SmolStr, Option<ir::Expr>)>,
    /// What action steps' systems return, by step name; `None`: the call fails.
    pub actions: Vec<(SmolStr, Option<ir::Expr>)>,
    pub decisions: Vec<TestDecision>,
    pub expectations: Vec<(Span, TestExpect)>,
    /// The examples' fields, and each example's values; no examples: one run.
    pub columns: Vec<SmolStr>,
    pub rows: Vec<(Span, Vec<ir::Expr>)>,
}

#[derive(Clone, Debug)]
pub struct TestDecision {
    pub span: Span,
    pub step: SmolStr,
    pub principal: String,
    pub roles: Vec<String>,
    pub outcome: String,
    pub reason: Option<String>,
    /// An override, with its basis.
    pub overrides: Option<String>,
    /// `after 49h`: time passing (seconds) rather than a decision.
    pub after: Option<i64>,
}

#[derive(Clone, Debug)]
pub enum TestExpect {
    Outcome(String),
    Gate { step: SmolStr, held: bool },
    Action { step: SmolStr, ran: bool },
    Holds(ir::Expr),
}

/// Lowers a checked test of `flow`, a flow of `file`.
pub fn lower_test(db: &dyn Db, file: SourceFile, flow: &hir::Flow, test: &hir::Test) -> LoweredTest {
    let mut lowerer = Lowerer::new(db, file, flow);
    let columns: Vec<Ty> = test.columns.iter().map(|(_, ty)| lowerer.ty(ty)).collect();
    lowerer.fn_params = columns;
    let step = |index: u32| flow.steps.get(index as usize).map_or_else(SmolStr::default, |s| s.name.clone());
    let mock = |lowerer: &mut Lowerer<'_>, m: &hir::TestMock| match m {
        hir::TestMock::Returns(value) => Some(lowerer.expr(value)),
        hir::TestMock::Fails => None,
    };
    LoweredTest {
        name: test.name.clone(),
        span: test.span,
        flow: flow.name.clone(),
        clock: test.clock.as_ref().map(|c| lowerer.expr(c)),
        given: test.given.iter().map(|(i, v)| (flow.inputs[*i as usize].name.clone(), lowerer.expr(v))).collect(),
        params: test.params.iter().map(|(i, v)| (flow.params[*i as usize].name.clone(), lowerer.expr(v))).collect(),
        models: test.models.iter().map(|(m, v)| (SmolStr::new(decl_name(db, *m)), mock(&mut lowerer, v))).collect(),
        corpora: test.corpora.iter().map(|(c, v)| (SmolStr::new(decl_name(db, *c)), mock(&mut lowerer, v))).collect(),
        actions: test.actions.iter().map(|(s, v)| (step(*s), mock(&mut lowerer, v))).collect(),
        decisions: test
            .steps
            .iter()
            .map(|d| TestDecision {
                span: d.span,
                step: step(d.step),
                principal: d.principal.to_string(),
                roles: d.roles.iter().map(|r| decl_name(db, *r)).collect(),
                outcome: d.outcome.to_string(),
                reason: d.reason.as_ref().map(ToString::to_string),
                overrides: d.overrides.clone(),
                after: d.after,
            })
            .collect(),
        expectations: test
            .expectations
            .iter()
            .map(|e| {
                let expect = match &e.kind {
                    hir::ExpectKind::Outcome(outcome) => TestExpect::Outcome(outcome.to_string()),
                    hir::ExpectKind::Gate { step: s, held } => TestExpect::Gate { step: step(*s), held: *held },
                    hir::ExpectKind::Action { step: s, ran } => TestExpect::Action { step: step(*s), ran: *ran },
                    hir::ExpectKind::Holds(condition) => TestExpect::Holds(lowerer.expr(condition)),
                };
                (e.span, expect)
            })
            .collect(),
        columns: test.columns.iter().map(|(name, _)| name.clone()).collect(),
        rows: test.rows.iter().map(|row| (row.span, row.values.iter().map(|v| lowerer.expr(v)).collect())).collect(),
    }
}
