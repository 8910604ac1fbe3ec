//! Information flow (`E2008`, `E2022`).
//!
//! Every value carries the labels of the data it was computed from, field by field: a
//! record carries its fields' labels separately, so reading `request.amount` does not pick
//! up the label of `request.justification`. A value may reach a model or a system only if
//! it is cleared for the value's labels, and a record or output field only if the field
//! is declared with them. Each label remembers the way it travelled, so that a leak is
//! reported with the path from the labelled field to the place it leaks.
//!
//! Functions are analysed at each call with the labels of the actual arguments, so a
//! function that returns what it is given carries its caller's labels.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use flow_diagnostics::{Code, Diagnostic, FileId, Label, Span};
use flow_syntax::ast::SmolStr;

use crate::db::{Db, DeclId};
use crate::flows::fn_bodies;
use crate::hir::{Builtin, Expr, ExprKind, Flow, Part, Ref, StepKind};
use crate::print::{self, Names};
use crate::signatures::{self, Decl};
use crate::ty::Ty;
use flow_syntax::ast::GateLevel;

/// One step of the way a label travelled.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Hop {
    file: FileId,
    span: Span,
    text: String,
}

/// Labels, each with the way it travelled (shortest kept).
type Labels = BTreeMap<DeclId, Rc<Vec<Hop>>>;

/// The longest trail kept; longer ones keep their start and end.
const MAX_TRAIL: usize = 10;

/// How deep records are followed field by field; below, labels are joined (never dropped).
const MAX_DEPTH: usize = 64;

/// How many places a record's labels are kept for field by field; a larger record carries
/// every label of its fields as a whole.
const MAX_DECLARED: usize = 4096;

/// How deep calls are inlined; below, a call carries every label of its arguments (a
/// function reads only its parameters), which is coarser but never loses one.
const MAX_INLINING: usize = 32;

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
struct Taint {
    /// Labels of the value as a whole.
    here: Labels,
    /// Labels of a record's fields, by name.
    fields: BTreeMap<SmolStr, Taint>,
    /// Labels of a list's elements.
    elem: Option<Box<Taint>>,
}

fn merge(into: &mut Labels, from: &Labels) {
    for (label, trail) in from {
        match into.get(label) {
            Some(existing) if existing.len() <= trail.len() => {}
            _ => {
                into.insert(*label, trail.clone());
            }
        }
    }
}

impl Taint {
    fn flat(here: Labels) -> Taint {
        Taint { here, ..Taint::default() }
    }

    /// How many places it keeps labels for.
    fn size(&self) -> usize {
        1 + self.fields.values().map(Taint::size).sum::<usize>() + self.elem.as_ref().map_or(0, |e| e.size())
    }

    fn is_clean(&self) -> bool {
        self.here.is_empty()
            && self.fields.values().all(Taint::is_clean)
            && self.elem.as_ref().is_none_or(|e| e.is_clean())
    }

    /// Every label anywhere in the value.
    fn full(&self) -> Labels {
        let mut labels = self.here.clone();
        for field in self.fields.values() {
            merge(&mut labels, &field.full());
        }
        if let Some(elem) = &self.elem {
            merge(&mut labels, &elem.full());
        }
        labels
    }

    fn field(&self, name: &str) -> Taint {
        let mut taint = self.fields.get(name).cloned().unwrap_or_default();
        merge(&mut taint.here, &self.here);
        taint
    }

    fn join(mut self, other: &Taint) -> Taint {
        merge(&mut self.here, &other.here);
        for (name, field) in &other.fields {
            let joined = self.fields.remove(name).unwrap_or_default().join(field);
            self.fields.insert(name.clone(), joined);
        }
        self.elem = match (self.elem.take(), &other.elem) {
            (Some(a), Some(b)) => Some(Box::new(a.join(b))),
            (a, b) => a.or_else(|| b.clone()),
        };
        self
    }

    /// Adds a hop to the trail of every label.
    fn hop(mut self, hop: &Hop) -> Taint {
        for trail in self.here.values_mut() {
            if trail.len() < MAX_TRAIL {
                Rc::make_mut(trail).push(hop.clone());
            } else if let Some(last) = Rc::make_mut(trail).last_mut() {
                *last = hop.clone();
            }
        }
        self.fields = std::mem::take(&mut self.fields).into_iter().map(|(k, v)| (k, v.hop(hop))).collect();
        self.elem = self.elem.map(|e| Box::new(e.hop(hop)));
        self
    }

    /// Removes `labels` (already reported) from the value.
    fn without(mut self, labels: &BTreeSet<DeclId>) -> Taint {
        self.here.retain(|label, _| !labels.contains(label));
        self.fields = std::mem::take(&mut self.fields).into_iter().map(|(k, v)| (k, v.without(labels))).collect();
        self.elem = self.elem.map(|e| Box::new(e.without(labels)));
        self
    }
}

/// Where a leak happens, for the message.
enum Sink<'s> {
    Model(&'s str),
    System(&'s str, &'s str),
    Field {
        field: &'s str,
        record: &'s str,
    },
    Output {
        output: &'s str,
        path: String,
    },
    /// Whether a model is called at all.
    ModelCall(&'s str),
    /// The query a corpus's retriever is sent.
    Corpus(&'s str),
    /// Whether a corpus is searched at all.
    CorpusCall(&'s str),
    /// Whether a system's action is called at all.
    SystemCall(&'s str, &'s str),
    /// An action's idempotency key, which evidence, the run's status and errors show to
    /// everyone who may see the run.
    IdempotencyKey(&'s str),
}

/// What a step calls outside the run.
enum Callee {
    Model(SmolStr),
    Corpus(SmolStr),
    System(SmolStr, SmolStr),
}

/// A function's body analysed: the function, the outermost call it is analysed for, the
/// depth, and the labels of the arguments.
type Inlined = (DeclId, (FileId, Span), usize, Vec<Taint>);

/// The outermost call being analysed, when the analysis is inside a function.
#[derive(Clone)]
struct CallSite {
    file: FileId,
    span: Span,
    function: String,
}

struct Env {
    params: Vec<Taint>,
    locals: Vec<Taint>,
    call_site: Option<CallSite>,
    /// The function whose body this is, for printing.
    fn_params: Vec<(SmolStr, Ty)>,
}

struct Analyzer<'a> {
    db: &'a dyn Db,
    file: FileId,
    flow: &'a Flow,
    /// What the flow's inputs and params carry: their types' declared labels.
    inputs: Vec<Taint>,
    params: Vec<Taint>,
    steps: Vec<Taint>,
    /// Functions being inlined, to stop at recursion (reported elsewhere).
    inlining: Vec<DeclId>,
    /// What each function's body gave, by the outermost call it is analysed for, the depth
    /// and the arguments' labels: a body is analysed once for each, so that functions that
    /// call each other many times take time in proportion to the flow, not to the calls.
    inlined: std::collections::HashMap<Inlined, Taint>,
    /// The labels each record type carries by declaration ([`Analyzer::declared`]), by
    /// record and how deep it was met, each found once: records nested two fields to a
    /// level have exponentially many places.
    declared_records: std::cell::RefCell<std::collections::HashMap<(DeclId, usize), Taint>>,
    /// The soft and blocking gates analysed so far, with the labels of their conditions.
    gate_labels: Vec<(usize, Labels)>,
    /// The labels the flow's owner may view, which its `declassify` may take off.
    declassifiable: BTreeSet<DeclId>,
    reported: BTreeSet<(FileId, Span, DeclId)>,
    out: Vec<Diagnostic>,
}

impl<'a> Analyzer<'a> {
    fn label_name(&self, label: DeclId) -> String {
        signatures::decl_name(self.db, label)
    }

    /// The labels a value of type `ty` carries by declaration: its record fields' labels,
    /// recursively.
    fn declared(&self, ty: &Ty, seen: &mut Vec<DeclId>) -> Taint {
        match ty {
            Ty::Optional(inner) => self.declared(inner, seen),
            Ty::List(inner) => Taint { elem: Some(Box::new(self.declared(inner, seen))), ..Taint::default() },
            // Records nest as deep as their declarations chain (they cannot contain
            // themselves); past that depth, every label anywhere below is put on the value
            // as a whole, which is coarser but never loses one.
            Ty::Record(_) if seen.len() >= MAX_DEPTH => Taint::flat(self.deep_labels(ty)),
            Ty::Record(record) if !seen.contains(&record.id) => {
                // By depth too: how deep it is decides where its fields are joined.
                let key = (record.id, seen.len());
                if let Some(taint) = self.declared_records.borrow().get(&key) {
                    return taint.clone();
                }
                let Some(sig) = signatures::record(self.db, record.id) else { return Taint::default() };
                seen.push(record.id);
                let mut taint = Taint::default();
                for field in &sig.fields {
                    let mut field_taint = self.declared(&field.ty, seen);
                    for label in &field.labels {
                        let hop = Hop {
                            file: record.id.file,
                            span: field.span,
                            text: format!(
                                "`{}` of `{}` is labelled `{}`",
                                field.name,
                                sig.name,
                                self.label_name(*label)
                            ),
                        };
                        field_taint.here.insert(*label, Rc::new(vec![hop]));
                    }
                    if !field_taint.is_clean() {
                        taint.fields.insert(field.name.clone(), field_taint);
                    }
                }
                seen.pop();
                // Field by field up to a size; past it, every label below on the value as
                // a whole, which is coarser but never loses one.
                let taint = if taint.size() > MAX_DECLARED { Taint::flat(self.deep_labels(ty)) } else { taint };
                self.declared_records.borrow_mut().insert(key, taint.clone());
                taint
            }
            _ => Taint::default(),
        }
    }

    /// Every label declared anywhere inside values of `ty`, each with the field that
    /// declares it, found without recursion.
    fn deep_labels(&self, ty: &Ty) -> Labels {
        let mut labels = Labels::new();
        let mut stack = vec![ty.clone()];
        let mut seen = BTreeSet::new();
        while let Some(ty) = stack.pop() {
            match ty {
                Ty::Optional(inner) | Ty::List(inner) => stack.push(*inner),
                Ty::Record(record) if seen.insert(record.id) => {
                    let Some(sig) = signatures::record(self.db, record.id) else { continue };
                    for field in &sig.fields {
                        for label in &field.labels {
                            let hop = Hop {
                                file: record.id.file,
                                span: field.span,
                                text: format!(
                                    "`{}` of `{}` is labelled `{}`",
                                    field.name,
                                    sig.name,
                                    self.label_name(*label)
                                ),
                            };
                            labels.entry(*label).or_insert_with(|| Rc::new(vec![hop]));
                        }
                        stack.push(field.ty.clone());
                    }
                }
                _ => {}
            }
        }
        labels
    }

    fn names<'n>(&'n self, env: &'n Env) -> Names<'n> {
        Names {
            db: self.db,
            flow: if env.call_site.is_some() { None } else { Some(self.flow) },
            fn_params: &env.fn_params,
        }
    }

    fn taint(&mut self, expr: &Expr, env: &mut Env, file: FileId) -> Taint {
        // Calls are inlined 32 deep into bodies each nesting operators 256 deep: stack to
        // spare, on whatever thread the checker runs.
        stacker::maybe_grow(256 * 1024, 2 * 1024 * 1024, || self.taint_here(expr, env, file))
    }

    fn taint_here(&mut self, expr: &Expr, env: &mut Env, file: FileId) -> Taint {
        match &expr.kind {
            ExprKind::Lit(_) | ExprKind::Variant(..) | ExprKind::Error => Taint::default(),
            ExprKind::Interpolation(parts) => {
                let mut labels = Labels::new();
                for part in parts {
                    if let Part::Expr(e) = part {
                        merge(&mut labels, &self.taint(e, env, file).full());
                    }
                }
                Taint::flat(labels)
            }
            ExprKind::Ref(_) | ExprKind::Field { .. } => self.place(expr, env, file),
            ExprKind::Call { function, args } => {
                let args: Vec<Taint> = args.iter().map(|a| self.taint(a, env, file)).collect();
                self.inline(*function, args, expr.span, env, file)
            }
            ExprKind::Builtin { builtin: Builtin::Declassify, args } => {
                let Some(value) = args.first() else { return Taint::default() };
                let taint = self.taint(value, env, file);
                if let Some(site) = &env.call_site {
                    // The flow's owner answers for a declassification: it is written in the
                    // flow, where the owner's grants are known, never in a shared function.
                    let diagnostic = Diagnostic::new(
                        Code::E2022,
                        site.file,
                        site.span,
                        format!("function `{}` declassifies data; only a flow's steps may", site.function),
                    )
                    .with_label(file, expr.span, "declassified here")
                    .with_help("call `declassify` in the flow, on what the function returns");
                    if self.reported.insert((site.file, site.span, self.flow.id)) {
                        self.out.push(diagnostic);
                    }
                    return taint;
                }
                let mut kept = Labels::new();
                for (label, trail) in taint.full() {
                    if !self.declassifiable.contains(&label) {
                        self.refuse_declassify(label, &trail, expr.span, file, env);
                        kept.insert(label, trail);
                    }
                }
                // What the owner may view is no longer labelled; what they may not stays.
                Taint::flat(kept)
            }
            ExprKind::Builtin { builtin, args } => match builtin {
                Builtin::Now | Builtin::StartedBy | Builtin::Degraded | Builtin::Declassify => Taint::default(),
                Builtin::Age | Builtin::Stale => {
                    let arg = args.first().map(|a| self.taint(a, env, file)).unwrap_or_default();
                    let as_of = args.first().and_then(|a| self.as_of_field(a));
                    Taint::flat(as_of.map_or_else(|| arg.full(), |field| arg.field(&field).full()))
                }
                _ => {
                    let mut labels = Labels::new();
                    for arg in args {
                        merge(&mut labels, &self.taint(arg, env, file).full());
                    }
                    Taint::flat(labels)
                }
            },
            ExprKind::Quantifier { list, body, .. } => {
                let list = self.taint(list, env, file);
                let elem = list.elem.as_deref().cloned().unwrap_or_default().join(&Taint::flat(list.here.clone()));
                env.locals.push(elem);
                let body = self.taint(body, env, file);
                env.locals.pop();
                let mut labels = list.here.clone();
                merge(&mut labels, &body.full());
                Taint::flat(labels)
            }
            ExprKind::Record { record, fields } => {
                let Some(sig) = signatures::record(self.db, record.id).cloned() else { return Taint::default() };
                let mut taint = Taint::default();
                for (field, value) in sig.fields.iter().zip(fields) {
                    let Some(value) = value else { continue };
                    let mut value_taint = self.taint(value, env, file);
                    let allowed: BTreeSet<DeclId> = field.labels.iter().copied().collect();
                    let leaks = self.leaks(&value_taint, &field.ty, &allowed, String::new());
                    if !leaks.is_empty() {
                        let sink = Sink::Field { field: &field.name, record: &sig.name };
                        let mut reported = BTreeSet::new();
                        for (label, trail, _) in &leaks {
                            reported.insert(*label);
                            self.report(&sink, *label, trail, value.span, file, env);
                        }
                        value_taint = value_taint.without(&reported);
                    }
                    if !value_taint.is_clean() {
                        let hop = Hop {
                            file,
                            span: value.span,
                            text: format!("it is put into field `{}` of `{}` here", field.name, sig.name),
                        };
                        taint.fields.insert(field.name.clone(), value_taint.hop(&hop));
                    }
                }
                taint
            }
            ExprKind::Unary { operand, .. } => Taint::flat(self.taint(operand, env, file).full()),
            ExprKind::Binary { lhs, rhs, .. } => {
                let mut labels = self.taint(lhs, env, file).full();
                merge(&mut labels, &self.taint(rhs, env, file).full());
                Taint::flat(labels)
            }
            ExprKind::List(items) => {
                let mut labels = Labels::new();
                for item in items {
                    merge(&mut labels, &self.taint(item, env, file).full());
                }
                Taint::flat(labels)
            }
            ExprKind::If { branches, otherwise } => {
                let mut conditions = Labels::new();
                let mut result: Option<Taint> = None;
                for (condition, then) in branches {
                    merge(&mut conditions, &self.taint(condition, env, file).full());
                    let value = self.taint(then, env, file);
                    result = Some(match result {
                        Some(r) => r.join(&value),
                        None => value,
                    });
                }
                let otherwise = self.taint(otherwise, env, file);
                let mut result = match result {
                    Some(r) => r.join(&otherwise),
                    None => otherwise,
                };
                merge(&mut result.here, &conditions);
                result
            }
        }
    }

    /// The `as_of` field of the source an input comes from.
    fn as_of_field(&self, arg: &Expr) -> Option<String> {
        let ExprKind::Ref(Ref::Input(index)) = arg.kind else { return None };
        let source = self.flow.inputs.get(index as usize)?.source?;
        match signatures::decl(self.db, source)? {
            Decl::Source(sig) => sig.as_of.as_ref().map(|(name, _)| name.to_string()),
            _ => None,
        }
    }

    /// A reference followed by fields: the labels of what is read, with a hop at the read
    /// when it carries any.
    fn place(&mut self, expr: &Expr, env: &mut Env, file: FileId) -> Taint {
        let mut path = Vec::new();
        let mut root = expr;
        while let ExprKind::Field { base, name, .. } = &root.kind {
            path.push(name.as_str());
            root = base;
        }
        let ExprKind::Ref(r) = root.kind else {
            // A field of a computed value, such as a function's result.
            let mut taint = self.taint(root, env, file);
            for name in path.iter().rev() {
                taint = taint.field(name);
            }
            return taint;
        };
        let root_taint = match r {
            Ref::Input(i) => self.inputs.get(i as usize),
            Ref::Param(i) => self.params.get(i as usize),
            Ref::Step(i) => self.steps.get(i as usize),
            Ref::FnParam(i) => env.params.get(i as usize),
            Ref::Local(depth) => env.locals.iter().rev().nth(depth as usize),
        };
        let mut taint = select(root_taint, &path);
        if !taint.is_clean() && matches!(r, Ref::Input(_) | Ref::Param(_) | Ref::Step(_)) && env.call_site.is_none() {
            let text = print::expr(self.names(env), expr);
            let hop = Hop { file, span: expr.span, text: format!("`{text}` is read here") };
            taint = taint.hop(&hop);
        }
        taint
    }

    fn inline(&mut self, function: DeclId, args: Vec<Taint>, span: Span, env: &Env, file: FileId) -> Taint {
        if self.inlining.contains(&function) || self.inlining.len() >= MAX_INLINING {
            // A recursive call (reported elsewhere) or one too deep: the result carries
            // everything its arguments do.
            let mut labels = Labels::new();
            for arg in &args {
                merge(&mut labels, &arg.full());
            }
            return Taint::flat(labels);
        }
        let Some(source) = self.db.workspace().file(self.db, function.file) else { return Taint::default() };
        let db = self.db;
        let Some(Some(body)) = fn_bodies(db, source).functions.get(function.index as usize) else {
            return Taint::default();
        };
        let call_site = env.call_site.clone().unwrap_or(CallSite { file, span, function: body.name.to_string() });
        let key = (function, (call_site.file, call_site.span), self.inlining.len(), args);
        let result = match self.inlined.get(&key) {
            Some(result) => result.clone(),
            None => {
                let mut inner = Env {
                    params: key.3.clone(),
                    locals: Vec::new(),
                    call_site: Some(call_site),
                    fn_params: body.params.clone(),
                };
                self.inlining.push(function);
                let result = self.taint(&body.body, &mut inner, function.file);
                self.inlining.pop();
                self.inlined.insert(key, result.clone());
                result
            }
        };
        if result.is_clean() {
            return result;
        }
        let hop = Hop { file, span, text: format!("function `{}` returns it here", body.name) };
        result.hop(&hop)
    }

    /// The labels of `value` that a place of type `ty`, declared with `allowed`, may not
    /// hold: each with its trail and the field path where it does not fit.
    fn leaks(
        &self,
        value: &Taint,
        ty: &Ty,
        allowed: &BTreeSet<DeclId>,
        path: String,
    ) -> Vec<(DeclId, Rc<Vec<Hop>>, String)> {
        let mut out = Vec::new();
        for (label, trail) in &value.here {
            if !allowed.contains(label) {
                out.push((*label, trail.clone(), path.clone()));
            }
        }
        match ty.unwrap_optional() {
            Ty::Record(record) => {
                if let Some(sig) = signatures::record(self.db, record.id) {
                    for field in &sig.fields {
                        let Some(child) = value.fields.get(&field.name) else { continue };
                        let mut inner = allowed.clone();
                        inner.extend(field.labels.iter().copied());
                        let child_path =
                            if path.is_empty() { field.name.to_string() } else { format!("{path}.{}", field.name) };
                        out.extend(self.leaks(child, &field.ty, &inner, child_path));
                    }
                }
            }
            Ty::List(inner_ty) => {
                if let Some(elem) = &value.elem {
                    out.extend(self.leaks(elem, inner_ty, allowed, path));
                }
            }
            _ => {
                // A scalar holds everything its value carries.
                for child in value.fields.values() {
                    for (label, trail) in child.full() {
                        if !allowed.contains(&label) {
                            out.push((label, trail, path.clone()));
                        }
                    }
                }
            }
        }
        out
    }

    /// Reports a declassification of `label` that the flow's owner may not make: the owner
    /// is not granted `view` of it.
    fn refuse_declassify(&mut self, label: DeclId, trail: &Rc<Vec<Hop>>, span: Span, file: FileId, env: &Env) {
        let (primary_file, primary_span) = match &env.call_site {
            Some(site) => (site.file, site.span),
            None => (file, span),
        };
        if !self.reported.insert((primary_file, primary_span, label)) {
            return;
        }
        let name = self.label_name(label);
        let owner = self.flow.owner.map(|o| signatures::decl_name(self.db, o)).unwrap_or_else(|| "?".to_owned());
        let mut diagnostic = Diagnostic::new(
            Code::E2022,
            primary_file,
            primary_span,
            format!("flow `{}` may not declassify `{name}` data: its owner `{owner}` may not view it", self.flow.name),
        )
        .with_primary_message(format!("`{name}` data is declassified here"))
        .with_help(format!(
            "a flow declassifies only what its owner is granted to view: add `view {name} by {owner}` to its access \
             rules if the owner answers for it, or declassify less"
        ));
        for hop in trail.iter() {
            if (hop.file, hop.span) != (primary_file, primary_span) {
                diagnostic.secondary.push(Label::new(hop.file, hop.span, hop.text.clone()));
            }
        }
        self.out.push(diagnostic);
    }

    fn report(&mut self, sink: &Sink<'_>, label: DeclId, trail: &Rc<Vec<Hop>>, span: Span, file: FileId, env: &Env) {
        let name = self.label_name(label);
        let (primary_file, primary_span) = match &env.call_site {
            Some(site) => (site.file, site.span),
            None => (file, span),
        };
        if !self.reported.insert((primary_file, primary_span, label)) {
            return;
        }
        let inside = env.call_site.as_ref().map(|s| format!(" inside function `{}`", s.function)).unwrap_or_default();
        let (message, help) = match sink {
            Sink::Model(model) => (
                format!("`{name}` data reaches model `{model}`, which is not cleared for it"),
                format!("add `clearance {name}` to model `{model}` if it may receive this data, or pass it less"),
            ),
            Sink::Corpus(corpus) => (
                format!("`{name}` data reaches the retriever of corpus `{corpus}`, which is not cleared for it"),
                format!(
                    "add `clearance {name}` to corpus `{corpus}` if its retriever may receive this data, or query less"
                ),
            ),
            Sink::CorpusCall(corpus) => (
                format!("whether corpus `{corpus}` is searched depends on `{name}` data, and it is not cleared for it"),
                format!(
                    "add `clearance {name}` to corpus `{corpus}`, or make the condition that holds the run before the \
                     search read less"
                ),
            ),
            Sink::System(system, action) => (
                format!("`{name}` data reaches system `{system}` (action `{action}`), which is not cleared for it"),
                format!("add `clearance {name}` to system `{system}` if it may receive this data, or pass it less"),
            ),
            Sink::Field { field, record } => (
                format!("`{name}` data reaches field `{field}` of `{record}`{inside}, which is not labelled `@{name}`"),
                format!("declare the field as `{field}: … @{name}` if it may hold this data, or leave the data out"),
            ),
            Sink::ModelCall(model) => (
                format!("whether model `{model}` is called depends on `{name}` data, and it is not cleared for it"),
                format!(
                    "add `clearance {name}` to model `{model}`, or make the condition that holds the run before the \
                     call read less"
                ),
            ),
            Sink::SystemCall(system, action) => (
                format!(
                    "whether system `{system}` is called (action `{action}`) depends on `{name}` data, and it is not \
                     cleared for it"
                ),
                format!(
                    "add `clearance {name}` to system `{system}`, or make the conditions that decide the call read less"
                ),
            ),
            Sink::IdempotencyKey(step) => (
                format!(
                    "`{name}` data becomes the idempotency key of action `{step}`, and keys carry no labels: \
                     evidence, the run's status and errors show them to everyone who may see the run"
                ),
                "key the action by data that carries no label (a request's id), or by `declassify(…, \"why\")` \
                 if the flow's owner may show it"
                    .to_string(),
            ),
            Sink::Output { output, path } => {
                let place = if path.is_empty() { String::new() } else { format!(" in field `{path}`") };
                (
                    format!("`{name}` data reaches output `{output}`{place}, which is not labelled `@{name}`"),
                    format!(
                        "label that field `@{name}` in its type if the output may carry this data, or leave the data out"
                    ),
                )
            }
        };
        let mut diagnostic = Diagnostic::new(Code::E2008, primary_file, primary_span, message)
            .with_primary_message(format!("`{name}` data flows in here"))
            .with_help(help);
        for hop in trail.iter() {
            if (hop.file, hop.span) != (primary_file, primary_span) {
                diagnostic.secondary.push(Label::new(hop.file, hop.span, hop.text.clone()));
            }
        }
        if env.call_site.is_some() {
            diagnostic.secondary.push(Label::new(file, span, "the function puts it here".to_string()));
        }
        self.out.push(diagnostic);
    }

    /// Checks that a model or system called by step `index` is cleared for the conditions
    /// of the gates that stop or hold the run before it: every soft and blocking gate, but
    /// those the step feeds (`feeding`: an `infer` step, which runs before the gates that
    /// need it).
    fn check_gates(&mut self, index: usize, feeding: Option<usize>, clearance: &[DeclId], sink: Sink<'_>) {
        let gates = self.gate_labels.clone();
        let env = Env { params: Vec::new(), locals: Vec::new(), call_site: None, fn_params: Vec::new() };
        let span = self.flow.steps[index].name_span;
        for (gate, labels) in gates {
            if feeding.is_some_and(|step| self.depends(gate, step)) {
                continue;
            }
            for (label, trail) in labels {
                if !clearance.contains(&label) {
                    let gate_name = self.flow.steps[gate].name.clone();
                    let hop = Hop {
                        file: self.file,
                        span: self.flow.steps[gate].name_span,
                        text: format!("gate `{gate_name}` decides on it before the call"),
                    };
                    let mut trail = (*trail).clone();
                    trail.push(hop);
                    self.report(&sink, label, &Rc::new(trail), span, self.file, &env);
                }
            }
        }
    }

    /// Whether step `step` reads step `on`, directly or through other steps.
    fn depends(&self, step: usize, on: usize) -> bool {
        let mut stack = vec![step];
        let mut seen = BTreeSet::new();
        while let Some(s) = stack.pop() {
            if s == on {
                return true;
            }
            if !seen.insert(s) {
                continue;
            }
            for expr in self.flow.steps[s].kind.exprs() {
                for r in expr.refs() {
                    if let Ref::Step(target) = r {
                        stack.push(target as usize);
                    }
                }
            }
        }
        false
    }

    fn check_sink(&mut self, sink: Sink<'_>, expr: &Expr, clearance: &[DeclId]) -> Taint {
        let mut env = Env { params: Vec::new(), locals: Vec::new(), call_site: None, fn_params: Vec::new() };
        let taint = self.taint(expr, &mut env, self.file);
        for (label, trail) in taint.full() {
            if !clearance.contains(&label) {
                self.report(&sink, label, &trail, expr.span, self.file, &env);
            }
        }
        taint
    }

    fn run(&mut self) {
        let mut env = Env { params: Vec::new(), locals: Vec::new(), call_site: None, fn_params: Vec::new() };
        self.inputs = self.flow.inputs.iter().map(|input| self.declared(&input.ty, &mut Vec::new())).collect();
        self.params = self.flow.params.iter().map(|param| self.declared(&param.ty, &mut Vec::new())).collect();
        self.steps = vec![Taint::default(); self.flow.steps.len()];
        // The models, corpora and systems called: by step, the step they must not be
        // checked against (an `infer` or `retrieve` feeding a gate), clearance, callee.
        let mut calls: Vec<(usize, Option<usize>, Vec<DeclId>, Callee)> = Vec::new();
        for index in step_order(self.flow) {
            let step = &self.flow.steps[index];
            let hop =
                Hop { file: self.file, span: step.name_span, text: format!("it flows into `{}` here", step.name) };
            let taint = match &step.kind {
                StepKind::Let { value } => {
                    let taint = self.taint(value, &mut env, self.file);
                    if taint.is_clean() { taint } else { taint.hop(&hop) }
                }
                StepKind::Infer { model, args, fallback } => {
                    let Some(Decl::Model(sig)) = model.and_then(|id| signatures::decl(self.db, id)).cloned() else {
                        continue;
                    };
                    for arg in args {
                        self.check_sink(Sink::Model(&sig.name), arg, &sig.clearance);
                    }
                    // Rules first: a model is called only once the gates it does not feed let
                    // the run through, so whether it is called reveals their conditions.
                    calls.push((index, Some(index), sig.clearance.clone(), Callee::Model(sig.name.clone())));
                    let mut taint = self.declared(&sig.output, &mut Vec::new());
                    if let Some(fallback) = fallback {
                        taint = taint.join(&self.taint(fallback, &mut env, self.file));
                    }
                    taint
                }
                // What a search finds carries the corpus's labels and, since it depends on
                // the query, the query's.
                StepKind::Retrieve { corpus, query, .. } => {
                    let Some(Decl::Corpus(sig)) = corpus.and_then(|id| signatures::decl(self.db, id)).cloned() else {
                        continue;
                    };
                    let sent = self.check_sink(Sink::Corpus(&sig.name), query, &sig.clearance);
                    calls.push((index, Some(index), sig.clearance.clone(), Callee::Corpus(sig.name.clone())));
                    let mut taint = self.declared(&Ty::List(Box::new(sig.ty.clone())), &mut Vec::new());
                    let origin = Rc::new(vec![Hop {
                        file: self.file,
                        span: step.name_span,
                        text: format!("documents of corpus `{}` carry it", sig.name),
                    }]);
                    let mut here: Labels = sig.labels.iter().map(|label| (*label, origin.clone())).collect();
                    merge(&mut here, &sent.full());
                    merge(&mut taint.here, &here);
                    if taint.is_clean() { taint } else { taint.hop(&hop) }
                }
                StepKind::Action { system, action, args, condition, idempotency } => {
                    let Some(Decl::System(sig)) = system.and_then(|id| signatures::decl(self.db, id)).cloned() else {
                        continue;
                    };
                    let Some(target) = action.and_then(|a| sig.actions.get(a as usize)) else { continue };
                    for arg in args.iter().chain(idempotency) {
                        self.check_sink(Sink::System(&sig.name, &target.name), arg, &sig.clearance);
                    }
                    if let Some(key) = idempotency {
                        self.check_sink(Sink::IdempotencyKey(&step.name), key, &[]);
                    }
                    // Whether the system is called at all reveals the action's condition
                    // and that every gate before it let the run through.
                    let sink = || Sink::SystemCall(&sig.name, &target.name);
                    let mut taint = self.declared(&target.ret, &mut Vec::new());
                    if let Some(condition) = condition {
                        let revealed = self.check_sink(sink(), condition, &sig.clearance);
                        // So does whether the action's result is present.
                        merge(&mut taint.here, &revealed.full());
                    }
                    calls.push((
                        index,
                        None,
                        sig.clearance.clone(),
                        Callee::System(sig.name.clone(), target.name.clone()),
                    ));
                    taint
                }
                StepKind::Emit { output, value } => {
                    let taint = self.taint(value, &mut env, self.file);
                    if !matches!(value.kind, ExprKind::Record { .. })
                        && let Some(out) = output.and_then(|o| self.flow.outputs.get(o as usize))
                    {
                        for (label, trail, path) in self.leaks(&taint, &out.ty, &BTreeSet::new(), String::new()) {
                            let sink = Sink::Output { output: &out.name, path };
                            self.report(&sink, label, &trail, value.span, self.file, &env);
                        }
                    }
                    Taint::default()
                }
                // A review's outcome says whether its condition held (`skipped`), and an
                // approval's which row applied (`requirement`, `approvers`, `approved`): they
                // carry the labels of what decided.
                StepKind::Review { .. } | StepKind::Approval { .. } => {
                    let mut labels = Labels::new();
                    for expr in step.kind.exprs() {
                        merge(&mut labels, &self.taint(expr, &mut env, self.file).full());
                    }
                    let taint = Taint::flat(labels);
                    if taint.is_clean() { taint } else { taint.hop(&hop) }
                }
                other => {
                    for expr in other.exprs() {
                        let taint = self.taint(expr, &mut env, self.file);
                        if matches!(other, StepKind::Gate { kind, .. } if *kind != GateLevel::Info) {
                            self.gate_labels.push((index, taint.full()));
                        }
                    }
                    Taint::default()
                }
            };
            self.steps[index] = taint;
        }
        // Once every gate's condition is known.
        for (index, feeding, clearance, callee) in calls {
            let sink = match &callee {
                Callee::System(system, action) => Sink::SystemCall(system, action),
                Callee::Model(model) => Sink::ModelCall(model),
                Callee::Corpus(corpus) => Sink::CorpusCall(corpus),
            };
            self.check_gates(index, feeding, &clearance, sink);
        }
    }
}

/// The labels of the value at `path` (innermost field last in reading order, so the path is
/// walked from its end) below `root`: the subtree there, with the labels of everything
/// around it on the way. Walks by reference and copies only what is selected.
fn select(root: Option<&Taint>, path: &[&str]) -> Taint {
    let Some(mut node) = root else { return Taint::default() };
    let mut here = node.here.clone();
    for name in path.iter().rev() {
        match node.fields.get(*name) {
            Some(child) => {
                merge(&mut here, &child.here);
                node = child;
            }
            None => return Taint::flat(here),
        }
    }
    Taint { here, fields: node.fields.clone(), elem: node.elem.clone() }
}

/// The steps in an order where each comes after the steps it reads; steps in a cycle
/// (reported elsewhere) are left out.
fn step_order(flow: &Flow) -> Vec<usize> {
    let mut graph: petgraph::graph::DiGraph<usize, ()> = petgraph::graph::DiGraph::new();
    let nodes: Vec<_> = (0..flow.steps.len()).map(|i| graph.add_node(i)).collect();
    for (index, step) in flow.steps.iter().enumerate() {
        for expr in step.kind.exprs() {
            for r in expr.refs() {
                if let Ref::Step(target) = r
                    && let Some(node) = nodes.get(target as usize)
                {
                    graph.add_edge(nodes[index], *node, ());
                }
            }
        }
    }
    petgraph::algo::tarjan_scc(&graph)
        .into_iter()
        .filter(|c| c.len() == 1 && !graph.contains_edge(c[0], c[0]))
        .map(|c| graph[c[0]])
        .collect()
}

/// The labels the flow's owner role (or a role it extends) is granted `view` of.
fn declassifiable(db: &dyn Db, flow: &Flow) -> BTreeSet<DeclId> {
    let Some(owner) = flow.owner else { return BTreeSet::new() };
    // The owner and every role it extends, transitively.
    let mut held = vec![owner];
    let mut i = 0;
    while let Some(&role) = held.get(i) {
        if let Some(Decl::Role(sig)) = signatures::decl(db, role) {
            for extended in &sig.extends {
                if !held.contains(extended) {
                    held.push(*extended);
                }
            }
        }
        i += 1;
    }
    let mut out = BTreeSet::new();
    for grant in &flow.grants {
        if grant.kind == flow_syntax::ast::GrantKind::View && grant.roles.iter().any(|r| held.contains(r)) {
            for target in &grant.targets {
                if let crate::hir::GrantTarget::Label(label) = target {
                    out.insert(*label);
                }
            }
        }
    }
    out
}

/// Checks the information flow of one flow.
pub fn check_flow(db: &dyn Db, file: FileId, flow: &Flow, out: &mut Vec<Diagnostic>) {
    let mut analyzer = Analyzer {
        db,
        file,
        flow,
        inputs: Vec::new(),
        params: Vec::new(),
        steps: Vec::new(),
        inlining: Vec::new(),
        inlined: std::collections::HashMap::new(),
        declared_records: Default::default(),
        gate_labels: Vec::new(),
        declassifiable: declassifiable(db, flow),
        reported: BTreeSet::new(),
        out: Vec::new(),
    };
    analyzer.run();
    out.append(&mut analyzer.out);
}
