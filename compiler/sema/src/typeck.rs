//! The expression type checker, shared by function bodies and flows.
//!
//! Checking is bidirectional in one small way: an expected type, when known, lets a bare
//! name such as `high` resolve to a variant of the expected enum. Everything else is
//! inferred bottom-up and then compared with what the context wants. Optionals must be
//! checked before use: `is_present(x)` in a condition narrows `x` in the branch it guards.

use flow_syntax::ast::SmolStr;
use std::collections::{BTreeMap, BTreeSet};

use flow_diagnostics::{Code, Diagnostic, Span};
use flow_syntax::ast::{self, BinaryOp, ExprKind as A, StrPart, UnaryOp};

use crate::db::{Db, DeclId};
use crate::hir::{Builtin, Expr, ExprKind, Literal, Part, Ref};
use crate::names::DefKind;
use crate::resolve::Resolver;
use crate::signatures::{self, Decl, SourceSig};
use crate::suggest;
use crate::ty::{Currency, EnumKind, EnumRef, StepResult, Ty};

/// What a value name of the flow or function denotes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Binding {
    Input {
        index: u32,
        ty: Ty,
        source: Option<DeclId>,
    },
    Param {
        index: u32,
        ty: Ty,
    },
    FnParam {
        index: u32,
        ty: Ty,
    },
    /// A step that gives a value (`let`, `infer`, `review`, `approval`, `action`).
    Step {
        index: u32,
        ty: Ty,
        keyword: &'static str,
    },
    /// A gate: it guards, but gives no value.
    Gate,
    /// An output: written by `emit`, never read.
    Output,
}

/// A value that a condition proved present: a reference and a path of fields.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Place {
    root: Ref,
    fields: Vec<SmolStr>,
}

/// The outcomes and reasons of a review, for its enum types.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ReviewEnums {
    pub outcomes: Vec<SmolStr>,
    pub reasons: Vec<SmolStr>,
    pub conditional: bool,
}

/// What a value is for, in the steward's words ("a gate condition", "field `tier` of
/// `Decision`"). Formatted only when a message needs it: checking is on the hot path and
/// errors are rare.
pub trait Describe {
    fn describe(&self) -> String;
}

impl Describe for str {
    fn describe(&self) -> String {
        self.to_owned()
    }
}

impl<F: Fn() -> String> Describe for F {
    fn describe(&self) -> String {
        self()
    }
}

pub const BUILTINS: &[&str] = &[
    "now",
    "age",
    "stale",
    "len",
    "any",
    "all",
    "contains",
    "lower",
    "is_present",
    "degraded",
    "started_by",
    "declassify",
];

/// The expression checker. The caller sets up the names in scope.
pub struct Checker<'a> {
    pub db: &'a dyn Db,
    pub res: Resolver<'a>,
    pub values: BTreeMap<SmolStr, Binding>,
    /// Reviews of the flow, by step index.
    pub reviews: BTreeMap<u32, ReviewEnums>,
    /// Names of infer steps, by step index, for `degraded`.
    pub infers: BTreeMap<u32, String>,
    /// `let`s not typed yet, by step index. Reading one records it in `waiting_for`.
    pub untyped_lets: BTreeSet<u32>,
    pub waiting_for: BTreeSet<u32>,
    /// Names that flow items would have declared but for a syntax error.
    pub unparsed: BTreeSet<SmolStr>,
    locals: Vec<(SmolStr, Ty)>,
    facts: Vec<Place>,
    /// Whether the values checked are a test's: a text literal may stand for a `Principal`
    /// (its id), and lists may be written.
    pub test_values: bool,
}

impl<'a> Checker<'a> {
    pub fn new(db: &'a dyn Db, res: Resolver<'a>) -> Checker<'a> {
        Checker {
            db,
            res,
            values: BTreeMap::new(),
            reviews: BTreeMap::new(),
            infers: BTreeMap::new(),
            untyped_lets: BTreeSet::new(),
            waiting_for: BTreeSet::new(),
            unparsed: BTreeSet::new(),
            locals: Vec::new(),
            facts: Vec::new(),
            test_values: false,
        }
    }

    fn error(&mut self, code: Code, span: Span, message: impl Into<String>) -> &mut Diagnostic {
        self.res.error(code, span, message)
    }

    /// Whether `name` would be declared but for a syntax error, already reported.
    pub fn is_unparsed(&self, name: &str) -> bool {
        self.unparsed.contains(name) || self.res.scope.is_unparsed(name)
    }

    /// Checks `expr` where a value of type `expected` is wanted. `context` says what the
    /// value is for, in the steward's words ("a gate condition", "field `tier` of …").
    pub fn check<C: Describe + ?Sized>(&mut self, expr: &ast::Expr, expected: &Ty, context: &C) -> Expr {
        if let A::If { branches, otherwise } = &expr.kind {
            // Each branch is checked on its own, so a mistake points at its branch.
            let describe = || context.describe();
            return self.if_expr(expr.span, branches, otherwise, Some(expected), Some(&describe));
        }
        let mut hir = self.infer(expr, Some(expected));
        self.coerce(&mut hir, expected, context);
        hir
    }

    /// Reports when `hir` does not fit `expected`, and then gives it the error type.
    pub fn coerce<C: Describe + ?Sized>(&mut self, hir: &mut Expr, expected: &Ty, context: &C) {
        if self.reject_step_value(hir) {
            return;
        }
        if hir.ty.fits(expected) {
            return;
        }
        // In a test, a principal is written as its id: a text without interpolation.
        if self.test_values
            && matches!(expected.unwrap_optional(), Ty::Principal)
            && matches!(hir.kind, ExprKind::Lit(Literal::Text(_)))
        {
            hir.ty = Ty::Principal;
            return;
        }
        let found = hir.ty.clone();
        let context = context.describe();
        match (&found, expected) {
            (Ty::Optional(inner), _) if inner.fits(expected) => {
                self.unchecked_optional(hir.span, &found);
            }
            (Ty::Money(Some(a)), Ty::Money(Some(b))) => {
                self.error(Code::E1009, hir.span, format!("{context} must be in {b}, but this is in {a}")).help =
                    Some("amounts in different currencies are never converted silently".to_owned());
            }
            (Ty::Money(None), Ty::Money(Some(b))) => {
                self.error(Code::E1009, hir.span, format!("{context} must be `Money[{b}]`, but the currency of this amount is only known when the flow runs"))
                    .help = Some(format!("declare the value as `Money[{b}]`"));
            }
            (Ty::Nothing, _) => {
                self.error(
                    Code::E1002,
                    hir.span,
                    format!("{context} must be `{expected}`, but this action gives no value"),
                );
            }
            _ => {
                let diagnostic =
                    self.error(Code::E1002, hir.span, format!("{context} must be `{expected}`, but this is `{found}`"));
                diagnostic.help = mismatch_help(&found, expected);
            }
        }
        hir.ty = Ty::Error;
    }

    /// Review and approval results are not values; only their fields are.
    fn reject_step_value(&mut self, hir: &mut Expr) -> bool {
        let Ty::Step(step) = &hir.ty else { return false };
        let (what, fields) = match step.kind {
            StepResult::Review => ("review", "`outcome`, `reason`, `reviewer` or `basis`"),
            StepResult::Approval => ("approval", "`approved`, `approvers` or `requirement`"),
        };
        let message = format!("{what} `{}` is not a value by itself", step.name);
        self.error(Code::E1015, hir.span, message).help = Some(format!(
            "use one of its fields: {fields}, such as `{}.{}`",
            step.name,
            if what == "review" { "outcome" } else { "approved" }
        ));
        hir.ty = Ty::Error;
        true
    }

    fn unchecked_optional(&mut self, span: Span, ty: &Ty) {
        let text = self.res.scope_text(span);
        let shown = if text.is_empty() { "this value".to_owned() } else { format!("`{text}`") };
        self.error(Code::E1010, span, format!("{shown} may be absent (it is `{ty}`)")).help =
            Some(if text.is_empty() {
                "check it first with `is_present(…)`".to_owned()
            } else {
                format!("check it first: `if is_present({text}) then … else …`")
            });
    }

    /// Infers the type of `expr`. `hint` is the type the context would like, used only to
    /// resolve bare enum variants.
    pub fn infer(&mut self, expr: &ast::Expr, hint: Option<&Ty>) -> Expr {
        let span = expr.span;
        let (kind, ty) = match &expr.kind {
            A::Int(value) => (ExprKind::Lit(Literal::Int(*value)), Ty::Int),
            A::Decimal(value) | A::Percent(value) => (ExprKind::Lit(Literal::Decimal(*value)), Ty::Decimal),
            A::Money { amount, currency } => match Currency::new(currency) {
                Some(currency) => {
                    (ExprKind::Lit(Literal::Money { amount: *amount, currency }), Ty::Money(Some(currency)))
                }
                None => (ExprKind::Error, Ty::Error),
            },
            A::Duration(seconds) => (ExprKind::Lit(Literal::Duration(*seconds)), Ty::Duration),
            A::Timestamp(instant) => (ExprKind::Lit(Literal::Timestamp(*instant)), Ty::Timestamp),
            A::Bool(value) => (ExprKind::Lit(Literal::Bool(*value)), Ty::Bool),
            A::Text(parts) => self.text(parts),
            A::Name(name) => return self.name(name, hint),
            A::Variant { ty, variant } => self.qualified_variant(ty, variant),
            A::Field { base, field } => return self.field(span, base, field),
            A::Call { callee, args } => return self.call(span, callee, args),
            A::Record { ty, fields } => self.record(ty, fields),
            A::List(items) => self.list(span, items, hint),
            A::Unary { op, operand, .. } => self.unary(*op, operand),
            A::Binary { op, op_span, lhs, rhs } => self.binary(*op, *op_span, lhs, rhs),
            A::If { branches, otherwise } => return self.if_expr(span, branches, otherwise, hint, None),
            A::Error => (ExprKind::Error, Ty::Error),
        };
        Expr { kind, ty, span }
    }

    /// `[a, b]`: written only in a test's values; its items are of one type, the hint's
    /// item type when there is one, else the first item's.
    fn list(&mut self, span: Span, items: &[ast::Expr], hint: Option<&Ty>) -> (ExprKind, Ty) {
        if !self.test_values {
            self.error(Code::E1020, span, "a list is written only in a test: a flow's lists come from its inputs")
                .help = Some("read the list from an input or a step's result".to_owned());
            return (ExprKind::Error, Ty::Error);
        }
        let expected = match hint.map(Ty::unwrap_optional) {
            Some(Ty::List(item)) => Some((**item).clone()),
            _ => None,
        };
        let mut checked = Vec::with_capacity(items.len());
        let mut item_ty = expected;
        for item in items {
            let value = match &item_ty {
                Some(ty) => self.check(item, ty, "an item of the list"),
                None => self.infer(item, None),
            };
            if item_ty.is_none() {
                item_ty = Some(value.ty.clone());
            }
            checked.push(value);
        }
        let Some(item_ty) = item_ty else {
            self.error(Code::E1002, span, "the type of this empty list is not known here").help =
                Some("write it where a list of a known type is expected, such as a record's field".to_owned());
            return (ExprKind::Error, Ty::Error);
        };
        (ExprKind::List(checked), Ty::List(Box::new(item_ty)))
    }

    fn text(&mut self, parts: &[StrPart]) -> (ExprKind, Ty) {
        if let [StrPart::Text(text)] = parts {
            return (ExprKind::Lit(Literal::Text(text.clone())), Ty::Text);
        }
        if parts.is_empty() {
            return (ExprKind::Lit(Literal::Text(String::new())), Ty::Text);
        }
        let mut hir_parts = Vec::new();
        for part in parts {
            match part {
                StrPart::Text(text) => hir_parts.push(Part::Text(text.clone())),
                StrPart::Expr(expr) => {
                    let mut hir = self.infer(expr, None);
                    if !self.reject_step_value(&mut hir) {
                        match &hir.ty {
                            Ty::Optional(_) => {
                                let ty = hir.ty.clone();
                                self.unchecked_optional(hir.span, &ty);
                            }
                            Ty::Record(_) | Ty::List(_) | Ty::Nothing => {
                                let message = format!("a `{}` cannot be written into text", hir.ty);
                                self.error(Code::E1002, hir.span, message).help =
                                    Some("interpolate one of its fields instead".to_owned());
                            }
                            _ => {}
                        }
                    }
                    hir_parts.push(Part::Expr(hir));
                }
            }
        }
        (ExprKind::Interpolation(hir_parts), Ty::Text)
    }

    // -----------------------------------------------------------------------------------
    // Names.

    fn name(&mut self, name: &ast::Ident, hint: Option<&Ty>) -> Expr {
        let span = name.span;
        let text = name.text.as_str();
        if let Some(depth) = self.locals.iter().rev().position(|(local, _)| local == text) {
            let ty = self.locals[self.locals.len() - 1 - depth].1.clone();
            return Expr { kind: ExprKind::Ref(Ref::Local(depth as u32)), ty, span };
        }
        // A bare variant of the expected enum wins over other names.
        if let Some(Ty::Enum(expected)) = hint.map(Ty::unwrap_optional)
            && let Some(index) = self.variants(expected).iter().position(|v| v == text)
        {
            return Expr {
                kind: ExprKind::Variant(expected.clone(), index as u32),
                ty: Ty::Enum(expected.clone()),
                span,
            };
        }
        if let Some(binding) = self.values.get(text) {
            let found = match binding {
                Binding::Input { index, ty, .. } => Some((Ref::Input(*index), ty.clone())),
                Binding::Param { index, ty } => Some((Ref::Param(*index), ty.clone())),
                Binding::FnParam { index, ty } => Some((Ref::FnParam(*index), ty.clone())),
                Binding::Step { index, ty, .. } => {
                    let index = *index;
                    if self.untyped_lets.contains(&index) {
                        self.waiting_for.insert(index);
                        Some((Ref::Step(index), Ty::Error))
                    } else {
                        Some((Ref::Step(index), ty.clone()))
                    }
                }
                Binding::Gate | Binding::Output => None,
            };
            let Some((r, ty)) = found else {
                let gate = matches!(self.values.get(text), Some(Binding::Gate));
                if gate {
                    self.error(Code::E1015, span, format!("gate `{text}` gives no value")).help =
                        Some("a gate guards the flow; read the condition it tests instead".to_owned());
                } else {
                    let message = format!("`{text}` is an output; outputs are written by `emit`, not read");
                    self.error(Code::E1015, span, message);
                }
                return Expr::error(span);
            };
            let ty = if ty.is_optional() { self.narrow(&Place { root: r, fields: Vec::new() }, ty) } else { ty };
            return Expr { kind: ExprKind::Ref(r), ty, span };
        }
        if let Some(def) = self.res.lookup(text) {
            let advice = match def.kind {
                DefKind::Model => format!("call it in an `infer` step: `infer result = {text}(…)`"),
                DefKind::Corpus => format!("search it in a `retrieve` step: `retrieve found = {text}(query) top 3`"),
                DefKind::Fn => format!("call it with its arguments: `{text}(…)`"),
                DefKind::System => "call one of its actions in an `action` step".to_owned(),
                _ => String::new(),
            };
            let diagnostic =
                self.error(Code::E1015, span, format!("`{text}` is {}, not a value", def.kind.described()));
            if !advice.is_empty() {
                diagnostic.help = Some(advice);
            }
            return Expr::error(span);
        }
        if self.is_unparsed(text) {
            return Expr::error(span);
        }
        let mut candidates: Vec<String> = self.values.keys().map(ToString::to_string).collect();
        candidates.extend(self.locals.iter().map(|(n, _)| n.to_string()));
        if let Some(Ty::Enum(expected)) = hint.map(Ty::unwrap_optional) {
            candidates.extend(self.variants(expected).iter().map(ToString::to_string));
        }
        let mut help = suggest::help(text, candidates.iter().map(String::as_str));
        if help.is_none()
            && let Some(Ty::Enum(expected)) = hint.map(Ty::unwrap_optional)
        {
            let variants = self.variants(expected);
            help = Some(format!("a `{}` is one of {}", expected.name, quoted_list(variants)));
        }
        if help.is_none() {
            help = self.variant_owner_help(text);
        }
        self.error(Code::E1001, span, format!("cannot find `{text}`")).help = help;
        Expr::error(span)
    }

    /// A hint naming the enums that have a variant called `text`.
    fn variant_owner_help(&mut self, text: &str) -> Option<String> {
        let enums: Vec<(SmolStr, DeclId)> = self
            .res
            .scope
            .defs
            .iter()
            .filter(|(_, def)| def.kind == DefKind::Enum)
            .map(|(name, def)| (name.clone(), def.id))
            .collect();
        let owners: Vec<String> = enums
            .into_iter()
            .filter(|(_, id)| match signatures::decl(self.db, *id) {
                Some(Decl::Enum(sig)) => sig.variants.iter().any(|v| v.name == text),
                _ => false,
            })
            .map(|(name, _)| format!("`{name}.{text}`"))
            .collect();
        (!owners.is_empty()).then(|| format!("to name the variant, write {}", owners.join(" or ")))
    }

    /// The variant names of an enum.
    pub fn variants(&self, e: &EnumRef) -> Vec<SmolStr> {
        match &e.kind {
            EnumKind::Decl(id) => match signatures::decl(self.db, *id) {
                Some(Decl::Enum(sig)) => sig.variants.iter().map(|v| v.name.clone()).collect(),
                _ => Vec::new(),
            },
            EnumKind::Outcome { step, .. } => {
                let review = self.reviews.get(step).cloned().unwrap_or_default();
                let mut outcomes = review.outcomes;
                if review.conditional {
                    outcomes.push(SmolStr::new_static("skipped"));
                }
                outcomes
            }
            EnumKind::Reason { step, .. } => self.reviews.get(step).map(|r| r.reasons.clone()).unwrap_or_default(),
        }
    }

    fn qualified_variant(&mut self, ty: &ast::Ident, variant: &ast::Ident) -> (ExprKind, Ty) {
        let Some(def) = self.res.lookup(&ty.text) else {
            if self.res.scope.is_unparsed(&ty.text) {
                return (ExprKind::Error, Ty::Error);
            }
            let help = suggest::help(&ty.text, self.res.scope.names_of(&[DefKind::Enum]));
            self.error(Code::E1001, ty.span, format!("cannot find enum `{}`", ty.text)).help = help;
            return (ExprKind::Error, Ty::Error);
        };
        if def.kind != DefKind::Enum {
            let message = format!("`{}` is {}, not an enum", ty.text, def.kind.described());
            self.error(Code::E1015, ty.span, message);
            return (ExprKind::Error, Ty::Error);
        }
        let e = EnumRef { kind: EnumKind::Decl(def.id), name: ty.text.as_str().into() };
        let variants = self.variants(&e);
        match variants.iter().position(|v| *v == variant.text) {
            Some(index) => (ExprKind::Variant(e.clone(), index as u32), Ty::Enum(e)),
            None => {
                let help = suggest::help(&variant.text, variants.iter().map(SmolStr::as_str))
                    .or_else(|| Some(format!("its variants are {}", quoted_list(variants.iter().cloned()))));
                self.error(
                    Code::E1013,
                    variant.span,
                    format!("enum `{}` has no variant `{}`", ty.text, variant.text),
                )
                .help = help;
                (ExprKind::Error, Ty::Error)
            }
        }
    }

    /// The type of a place after narrowing: `T` where a condition proved an optional
    /// place present.
    fn narrow(&self, place: &Place, ty: Ty) -> Ty {
        match ty {
            Ty::Optional(inner) if self.facts.contains(place) => *inner,
            other => other,
        }
    }

    // -----------------------------------------------------------------------------------
    // Fields.

    fn field(&mut self, span: Span, base: &ast::Expr, field: &ast::Ident) -> Expr {
        let mut base = self.infer(base, None);
        let name = field.text.as_str();
        if base.ty.is_error() {
            return Expr {
                kind: ExprKind::Field { base: Box::new(base), name: SmolStr::new(name), index: None },
                ty: Ty::Error,
                span,
            };
        }
        if let Ty::Optional(_) = base.ty {
            let ty = base.ty.clone();
            self.unchecked_optional(base.span, &ty);
            base.ty = Ty::Error;
            return Expr {
                kind: ExprKind::Field { base: Box::new(base), name: SmolStr::new(name), index: None },
                ty: Ty::Error,
                span,
            };
        }
        let (index, ty) = match &base.ty {
            Ty::Record(record) => match signatures::record(self.db, record.id) {
                Some(sig) => match sig.field(name) {
                    Some((index, found)) => (Some(index as u32), found.ty.clone()),
                    None => {
                        let help = suggest::help(name, sig.fields.iter().map(|f| f.name.as_str())).or_else(|| {
                            Some(format!(
                                "its fields are {}",
                                quoted_list(sig.fields.iter().map(|f| f.name.to_string()))
                            ))
                        });
                        self.error(Code::E1007, field.span, format!("`{}` has no field `{name}`", record.name)).help =
                            help;
                        (None, Ty::Error)
                    }
                },
                None => (None, Ty::Error),
            },
            Ty::Step(step) => {
                let step = step.clone();
                match self.step_field(&step, name) {
                    Some(ty) => (None, ty),
                    None => {
                        let fields: &[&str] = match step.kind {
                            StepResult::Review => &["outcome", "reason", "reviewer", "basis"],
                            StepResult::Approval => &["approved", "approvers", "requirement"],
                        };
                        let what = if step.kind == StepResult::Review { "review" } else { "approval" };
                        let help = suggest::help(name, fields.iter().copied()).or_else(|| {
                            Some(format!("its fields are {}", quoted_list(fields.iter().map(|f| (*f).to_owned()))))
                        });
                        self.error(Code::E1007, field.span, format!("{what} `{}` has no field `{name}`", step.name))
                            .help = help;
                        (None, Ty::Error)
                    }
                }
            }
            other => {
                let message = format!("a `{other}` has no fields, so it has no `{name}`");
                self.error(Code::E1007, field.span, message);
                (None, Ty::Error)
            }
        };
        // Only an optional field can have been proved present.
        let ty = match place_of(&base).filter(|_| ty.is_optional()) {
            Some(mut place) => {
                place.fields.push(SmolStr::new(name));
                self.narrow(&place, ty)
            }
            None => ty,
        };
        Expr { kind: ExprKind::Field { base: Box::new(base), name: SmolStr::new(name), index }, ty, span }
    }

    fn step_field(&self, step: &crate::ty::StepRef, name: &str) -> Option<Ty> {
        let maybe = |ty: Ty| if step.conditional { ty.optional() } else { ty };
        let enum_of =
            |kind: EnumKind, suffix: &str| Ty::Enum(EnumRef { kind, name: format!("{}.{suffix}", step.name).into() });
        Some(match (step.kind, name) {
            (StepResult::Review, "outcome") => {
                enum_of(EnumKind::Outcome { flow: step.flow, step: step.step }, "outcome")
            }
            (StepResult::Review, "reason") => {
                maybe(enum_of(EnumKind::Reason { flow: step.flow, step: step.step }, "reason"))
            }
            (StepResult::Review, "reviewer") if step.timed => Ty::Principal.optional(),
            (StepResult::Review, "reviewer") => maybe(Ty::Principal),
            (StepResult::Review, "basis") => Ty::Text.optional(),
            (StepResult::Approval, "approved") => Ty::Bool,
            (StepResult::Approval, "approvers") => Ty::List(Box::new(Ty::Principal)),
            (StepResult::Approval, "requirement") => Ty::Text,
            _ => return None,
        })
    }

    // -----------------------------------------------------------------------------------
    // Records.

    fn record(&mut self, ty: &ast::Ident, fields: &[ast::FieldInit]) -> (ExprKind, Ty) {
        let record_ty = match self.res.lookup(&ty.text) {
            Some(def) if def.kind == DefKind::Record => self.res.named_type(&ty.text),
            Some(def) => {
                let message = format!("`{}` is {}, not a record type", ty.text, def.kind.described());
                self.error(Code::E1015, ty.span, message);
                None
            }
            None if self.res.scope.is_unparsed(&ty.text) => None,
            None => {
                let help = suggest::help(&ty.text, self.res.scope.names_of(&[DefKind::Record]));
                self.error(Code::E1001, ty.span, format!("cannot find type `{}`", ty.text)).help = help;
                None
            }
        };
        let Some(Ty::Record(record)) = record_ty else {
            // Still check the values, to report what is wrong inside.
            for field in fields {
                self.infer(&field.value, None);
            }
            return (ExprKind::Error, Ty::Error);
        };
        let Some(sig) = signatures::record(self.db, record.id).cloned() else {
            return (ExprKind::Error, Ty::Error);
        };
        let mut values: Vec<Option<Expr>> = vec![None; sig.fields.len()];
        let mut given: BTreeMap<&str, Span> = BTreeMap::new();
        for init in fields {
            let name = init.name.text.as_str();
            if let Some(first) = given.insert(name, init.name.span) {
                let file = self.res.file;
                self.error(Code::E1018, init.name.span, format!("field `{name}` is given twice"))
                    .secondary
                    .push(flow_diagnostics::Label::new(file, first, "first given here"));
                self.infer(&init.value, None);
                continue;
            }
            match sig.field(name) {
                Some((index, field)) => {
                    let value = self.check(&init.value, &field.ty, &|| format!("field `{name}` of `{}`", sig.name));
                    values[index] = Some(value);
                }
                None => {
                    let help = suggest::help(name, sig.fields.iter().map(|f| f.name.as_str()));
                    self.error(Code::E1007, init.name.span, format!("`{}` has no field `{name}`", sig.name)).help =
                        help;
                    self.infer(&init.value, None);
                }
            }
        }
        let missing: Vec<String> = sig
            .fields
            .iter()
            .zip(&values)
            .filter(|(field, value)| {
                value.is_none() && !field.ty.is_optional() && !given.contains_key(field.name.as_str())
            })
            .map(|(field, _)| field.name.to_string())
            .collect();
        if !missing.is_empty() {
            let noun = if missing.len() == 1 { "field" } else { "fields" };
            let example = missing.iter().map(|m| format!("{m}: …")).collect::<Vec<_>>().join(", ");
            self.error(
                Code::E1008,
                ty.span,
                format!("`{}` is missing {noun} {}", sig.name, quoted_list(missing.iter().cloned())),
            )
            .help = Some(format!("add {example}"));
        }
        (ExprKind::Record { record: record.clone(), fields: values }, Ty::Record(record))
    }

    // -----------------------------------------------------------------------------------
    // Operators.

    fn unary(&mut self, op: UnaryOp, operand: &ast::Expr) -> (ExprKind, Ty) {
        let mut hir = self.infer(operand, None);
        let ty = match op {
            UnaryOp::Not => {
                self.coerce(&mut hir, &Ty::Bool, "the operand of `not`");
                Ty::Bool
            }
            UnaryOp::Neg => {
                self.reject_step_value(&mut hir);
                match &hir.ty {
                    Ty::Int | Ty::Decimal | Ty::Money(_) | Ty::Duration | Ty::Error => hir.ty.clone(),
                    Ty::Optional(_) => {
                        let ty = hir.ty.clone();
                        self.unchecked_optional(hir.span, &ty);
                        Ty::Error
                    }
                    other => {
                        let message = format!("cannot negate a `{other}`");
                        self.error(Code::E1011, hir.span, message);
                        Ty::Error
                    }
                }
            }
        };
        (ExprKind::Unary { op, operand: Box::new(hir) }, ty)
    }

    fn binary(&mut self, op: BinaryOp, op_span: Span, lhs: &ast::Expr, rhs: &ast::Expr) -> (ExprKind, Ty) {
        if matches!(op, BinaryOp::And | BinaryOp::Or) {
            let mut lhs = self.infer(lhs, Some(&Ty::Bool));
            self.coerce(&mut lhs, &Ty::Bool, &|| format!("each side of `{}`", op.as_str()));
            let facts = facts_when(&lhs, op == BinaryOp::And);
            let saved = self.facts.len();
            self.facts.extend(facts);
            let rhs = self.check(rhs, &Ty::Bool, &|| format!("each side of `{}`", op.as_str()));
            self.facts.truncate(saved);
            return (ExprKind::Binary { op, lhs: Box::new(lhs), rhs: Box::new(rhs) }, Ty::Bool);
        }
        // For comparisons, a bare name on the left may be a variant of the right side's enum.
        let lhs_is_bare_unknown = matches!(&lhs.kind, A::Name(n) if !self.is_value_name(&n.text));
        let (mut l, mut r) = if op.is_comparison() && lhs_is_bare_unknown {
            let r = self.infer(rhs, None);
            let hint = r.ty.clone();
            (self.infer(lhs, Some(&hint)), r)
        } else {
            let l = self.infer(lhs, None);
            let hint = l.ty.clone();
            let r = self.infer(rhs, Some(&hint));
            (l, r)
        };
        let rejected_l = self.reject_step_value(&mut l);
        let rejected_r = self.reject_step_value(&mut r);
        if rejected_l || rejected_r || l.ty.is_error() || r.ty.is_error() {
            let ty = if op.is_comparison() { Ty::Bool } else { Ty::Error };
            return (ExprKind::Binary { op, lhs: Box::new(l), rhs: Box::new(r) }, ty);
        }
        let optional_side =
            [&l, &r].into_iter().find(|side| side.ty.is_optional()).map(|side| (side.span, side.ty.clone()));
        if let Some((span, ty)) = optional_side {
            self.unchecked_optional(span, &ty);
            let ty = if op.is_comparison() { Ty::Bool } else { Ty::Error };
            return (ExprKind::Binary { op, lhs: Box::new(l), rhs: Box::new(r) }, ty);
        }
        let ty = match binary_type(op, &l.ty, &r.ty) {
            Ok(ty) => ty,
            Err(problem) => {
                let (code, message, help) = match problem {
                    Problem::Currency(a, b) => (
                        Code::E1009,
                        format!("cannot {} amounts in {a} and {b}", verb(op)),
                        Some("amounts in different currencies are never converted silently".to_owned()),
                    ),
                    Problem::Operands => (
                        Code::E1011,
                        format!(
                            "cannot {} `{}` {} `{}`",
                            verb(op),
                            l.ty,
                            if op.is_comparison() { "with" } else { "and" },
                            r.ty
                        ),
                        operand_help(op, &l.ty, &r.ty),
                    ),
                };
                let file = self.res.file;
                let diagnostic = self.error(code, op_span, message);
                diagnostic.help = help;
                diagnostic.secondary.push(flow_diagnostics::Label::new(file, l.span, format!("this is `{}`", l.ty)));
                diagnostic.secondary.push(flow_diagnostics::Label::new(file, r.span, format!("this is `{}`", r.ty)));
                if op.is_comparison() { Ty::Bool } else { Ty::Error }
            }
        };
        (ExprKind::Binary { op, lhs: Box::new(l), rhs: Box::new(r) }, ty)
    }

    fn is_value_name(&self, name: &str) -> bool {
        self.values.contains_key(name) || self.locals.iter().any(|(n, _)| n == name)
    }

    /// An `if`; with `context`, every branch is checked against `hint` as the expected type.
    fn if_expr(
        &mut self,
        span: Span,
        branches: &[(ast::Expr, ast::Expr)],
        otherwise: &ast::Expr,
        hint: Option<&Ty>,
        context: Option<&dyn Describe>,
    ) -> Expr {
        let saved = self.facts.len();
        let mut hir_branches = Vec::new();
        let mut result: Option<Ty> = None;
        let mut mismatch = false;
        let mut joined = |this: &mut Self, value: &Expr, result: &mut Option<Ty>| match result {
            None => *result = Some(value.ty.clone()),
            Some(current) => match join(current, &value.ty) {
                Some(ty) => *result = Some(ty),
                None if !mismatch => {
                    mismatch = true;
                    let message =
                        format!("the branches of this `if` give different types: `{current}` and `{}`", value.ty);
                    this.error(Code::E1002, value.span, message).help =
                        Some("every branch must give the same type".to_owned());
                    *result = Some(Ty::Error);
                }
                None => {}
            },
        };
        for (condition, then) in branches {
            let condition = self.check(condition, &Ty::Bool, "an `if` condition");
            let when_true = facts_when(&condition, true);
            let when_false = facts_when(&condition, false);
            let before = self.facts.len();
            self.facts.extend(when_true);
            let value = self.branch(then, hint, result.as_ref(), context);
            self.facts.truncate(before);
            joined(self, &value, &mut result);
            self.facts.extend(when_false);
            hir_branches.push((condition, value));
        }
        let otherwise = self.branch(otherwise, hint, result.as_ref(), context);
        joined(self, &otherwise, &mut result);
        self.facts.truncate(saved);
        let ty = match (context, hint) {
            (Some(_), Some(expected)) if !result.as_ref().is_some_and(Ty::is_error) => expected.clone(),
            _ => result.unwrap_or(Ty::Error),
        };
        Expr { kind: ExprKind::If { branches: hir_branches, otherwise: Box::new(otherwise) }, ty, span }
    }

    /// One branch of an `if`: checked against the expected type when there is a context,
    /// inferred otherwise.
    fn branch(
        &mut self,
        expr: &ast::Expr,
        hint: Option<&Ty>,
        so_far: Option<&Ty>,
        context: Option<&dyn Describe>,
    ) -> Expr {
        match (context, hint) {
            (Some(context), Some(expected)) => self.check(expr, expected, context),
            _ => {
                let mut value = self.infer(expr, hint.or(so_far));
                self.reject_step_value(&mut value);
                value
            }
        }
    }

    // -----------------------------------------------------------------------------------
    // Calls.

    fn call(&mut self, span: Span, callee: &ast::Ident, args: &[ast::Arg]) -> Expr {
        let name = callee.text.as_str();
        if matches!(name, "any" | "all") {
            return self.quantifier(span, name == "all", callee, args);
        }
        let builtin = match name {
            "now" => Some(Builtin::Now),
            "started_by" => Some(Builtin::StartedBy),
            "declassify" => Some(Builtin::Declassify),
            "age" => Some(Builtin::Age),
            "stale" => Some(Builtin::Stale),
            "len" => Some(Builtin::Len),
            "contains" => Some(Builtin::Contains),
            "lower" => Some(Builtin::Lower),
            "is_present" => Some(Builtin::IsPresent),
            "degraded" => Some(Builtin::Degraded),
            _ => None,
        };
        if let Some(builtin) = builtin {
            return self.builtin(span, builtin, args);
        }
        match self.res.lookup(name) {
            Some(def) if def.kind == DefKind::Fn => self.fn_call(span, def.id, callee, args),
            Some(def) => {
                let help = match def.kind {
                    DefKind::Model => Some(format!("models are called in an `infer` step: `infer result = {name}(…)`")),
                    DefKind::Corpus => Some(format!(
                        "corpora are searched in a `retrieve` step: `retrieve found = {name}(query) top 3`"
                    )),
                    DefKind::System => Some("systems are called in an `action` step".to_owned()),
                    _ => None,
                };
                let diagnostic = self.error(
                    Code::E1015,
                    callee.span,
                    format!("`{name}` is {}, not a function", def.kind.described()),
                );
                diagnostic.help = help;
                self.check_args_loosely(args);
                Expr::error(span)
            }
            None => {
                if !self.res.scope.is_unparsed(name) {
                    let candidates: Vec<&str> =
                        BUILTINS.iter().copied().chain(self.res.scope.names_of(&[DefKind::Fn])).collect();
                    let help = suggest::help(name, candidates);
                    self.error(Code::E1001, callee.span, format!("cannot find function `{name}`")).help = help;
                }
                self.check_args_loosely(args);
                Expr::error(span)
            }
        }
    }

    fn check_args_loosely(&mut self, args: &[ast::Arg]) {
        for arg in args {
            if arg.lambda.is_none() {
                self.infer(&arg.value, None);
            }
        }
    }

    fn arity(&mut self, span: Span, name: &str, args: &[ast::Arg], expected: usize, shape: &str) -> bool {
        if let Some(arg) = args.iter().find(|a| a.name.is_some() || a.lambda.is_some())
            && (!(name == "any" || name == "all") || arg.name.is_some())
        {
            let message = format!("`{name}` takes its arguments by position: `{shape}`");
            self.error(Code::E1012, arg.span, message);
            return false;
        }
        if args.len() != expected {
            let noun = if expected == 1 { "argument" } else { "arguments" };
            let message = format!(
                "`{name}` takes {expected} {noun}, but {} {} given",
                args.len(),
                if args.len() == 1 { "is" } else { "are" }
            );
            self.error(Code::E1012, span, message).help = Some(format!("write `{shape}`"));
            return false;
        }
        true
    }

    fn builtin(&mut self, span: Span, builtin: Builtin, args: &[ast::Arg]) -> Expr {
        let name = builtin.name();
        let (count, shape) = match builtin {
            Builtin::Now => (0, "now()"),
            Builtin::StartedBy => (0, "started_by()"),
            Builtin::Declassify => (2, "declassify(value, \"why\")"),
            Builtin::Age => (1, "age(input)"),
            Builtin::Stale => (1, "stale(input)"),
            Builtin::Len => (1, "len(list)"),
            Builtin::Contains => (2, "contains(text, part)"),
            Builtin::Lower => (1, "lower(text)"),
            Builtin::IsPresent => (1, "is_present(value)"),
            Builtin::Degraded => (1, "degraded(step)"),
        };
        if !self.arity(span, name, args, count, shape) {
            self.check_args_loosely(args);
            return Expr::error(span);
        }
        let (hir_args, ty) = match builtin {
            Builtin::Now => (Vec::new(), Ty::Timestamp),
            Builtin::StartedBy => (Vec::new(), Ty::Principal),
            Builtin::Declassify => {
                let mut value = self.infer(&args[0].value, None);
                self.reject_step_value(&mut value);
                let ty = value.ty.clone();
                let reason = self.infer(&args[1].value, None);
                let written = matches!(&reason.kind, ExprKind::Lit(Literal::Text(text)) if !text.trim().is_empty());
                if !written && !reason.ty.is_error() {
                    self.error(Code::E1002, reason.span, "the reason for a declassification is a text written here")
                        .help = Some(
                        "say why the value may be shown: `declassify(count, \"a count names no one\")`".to_owned(),
                    );
                }
                (vec![value, reason], ty)
            }
            Builtin::Age | Builtin::Stale => {
                let arg = &args[0].value;
                let hir = self.infer(arg, None);
                self.freshness_target(builtin, &hir, arg.span);
                (vec![hir], if builtin == Builtin::Age { Ty::Duration } else { Ty::Bool })
            }
            Builtin::Len => {
                let mut hir = self.infer(&args[0].value, None);
                self.reject_step_value(&mut hir);
                match &hir.ty {
                    Ty::List(_) | Ty::Text | Ty::Error => {}
                    Ty::Optional(_) => {
                        let ty = hir.ty.clone();
                        self.unchecked_optional(hir.span, &ty);
                    }
                    other => {
                        let message = format!(
                            "`len` counts the items of a list or the characters of a text, but this is `{other}`"
                        );
                        self.error(Code::E1002, hir.span, message);
                    }
                }
                (vec![hir], Ty::Int)
            }
            Builtin::Contains => {
                let text = self.check(&args[0].value, &Ty::Text, "the text searched by `contains`");
                let part = self.check(&args[1].value, &Ty::Text, "the text `contains` looks for");
                (vec![text, part], Ty::Bool)
            }
            Builtin::Lower => (vec![self.check(&args[0].value, &Ty::Text, "the argument of `lower`")], Ty::Text),
            Builtin::IsPresent => {
                let mut hir = self.infer(&args[0].value, None);
                // `is_present(x)` on a value already proved present is fine; on a value that
                // can never be absent it is a mistake.
                let narrowed_place = place_of(&hir).is_some_and(|p| self.facts.contains(&p));
                if !hir.ty.is_optional() && !hir.ty.is_error() && !narrowed_place && !self.reject_step_value(&mut hir) {
                    let message = format!(
                        "`is_present` checks an optional value, but this is `{}` and is always present",
                        hir.ty
                    );
                    self.error(Code::E1002, hir.span, message);
                }
                (vec![hir], Ty::Bool)
            }
            Builtin::Degraded => {
                let arg = &args[0].value;
                let ok = match &arg.kind {
                    A::Name(step) => match self.values.get(&step.text) {
                        Some(Binding::Step { index, .. }) if self.infers.contains_key(index) => {
                            let index = *index;
                            let hir = Expr { kind: ExprKind::Ref(Ref::Step(index)), ty: Ty::Bool, span: arg.span };
                            return Expr { kind: ExprKind::Builtin { builtin, args: vec![hir] }, ty: Ty::Bool, span };
                        }
                        _ => false,
                    },
                    _ => false,
                };
                if !ok {
                    self.error(Code::E1015, arg.span, "`degraded` takes the name of an `infer` or `retrieve` step")
                        .help = Some("write `degraded(risk)` for `infer risk = …`".to_owned());
                }
                (vec![Expr::error(arg.span)], Ty::Bool)
            }
        };
        Expr { kind: ExprKind::Builtin { builtin, args: hir_args }, ty, span }
    }

    /// Checks the argument of `age` or `stale`: an input that comes from a source that
    /// says how old its records are (and, for `stale`, how fresh they must be).
    fn freshness_target(&mut self, builtin: Builtin, hir: &Expr, span: Span) {
        let name = builtin.name();
        let input = match &hir.kind {
            ExprKind::Ref(Ref::Input(index)) => self.values.iter().find_map(|(input_name, b)| match b {
                Binding::Input { index: i, source, .. } if i == index => Some((input_name.clone(), *source)),
                _ => None,
            }),
            _ => None,
        };
        let Some((input_name, source)) = input else {
            if !hir.ty.is_error() {
                self.error(
                    Code::E2013,
                    span,
                    format!("`{name}` takes the name of a flow input that comes `from` a source"),
                );
            }
            return;
        };
        let Some(source) = source else {
            self.error(
                Code::E2013,
                span,
                format!(
                    "`{name}({input_name})` needs to know how old `{input_name}` is, but it does not come from a source"
                ),
            )
            .help = Some(format!("declare where it comes from: `input {input_name}: … from source_name`"));
            return;
        };
        let Some(Decl::Source(sig)) = signatures::decl(self.db, source).cloned() else { return };
        let missing = missing_freshness(&sig, builtin);
        if let Some(missing) = missing {
            self.error(
                Code::E2013,
                span,
                format!(
                    "`{name}({input_name})` needs the `{missing}` of source `{}`, which it does not declare",
                    sig.name
                ),
            )
            .help = Some(match missing {
                "freshness" => "add `freshness 24h` to the source".to_owned(),
                _ => "add `as_of updated_at`: the field that says when the record was last updated".to_owned(),
            });
        }
    }

    fn quantifier(&mut self, span: Span, all: bool, callee: &ast::Ident, args: &[ast::Arg]) -> Expr {
        let name = if all { "all" } else { "any" };
        let shape = format!("{name}(list, item => condition)");
        if args.len() != 2 || args[0].lambda.is_some() || args[0].name.is_some() || args[1].lambda.is_none() {
            self.error(Code::E1012, callee.span, format!("`{name}` takes a list and a condition on each item")).help =
                Some(format!("write `{shape}`"));
            self.check_args_loosely(args);
            return Expr::error(span);
        }
        let mut list = self.infer(&args[0].value, None);
        self.reject_step_value(&mut list);
        let element = match &list.ty {
            Ty::List(element) => (**element).clone(),
            Ty::Error => Ty::Error,
            Ty::Optional(_) => {
                let ty = list.ty.clone();
                self.unchecked_optional(list.span, &ty);
                Ty::Error
            }
            other => {
                let message = format!("`{name}` needs a list, but this is `{other}`");
                self.error(Code::E1002, list.span, message);
                Ty::Error
            }
        };
        let var: SmolStr = args[1].lambda.as_ref().map(|v| v.text.clone()).unwrap_or_default();
        self.locals.push((var.clone(), element));
        let body = self.check(&args[1].value, &Ty::Bool, &|| format!("the condition of `{name}`"));
        self.locals.pop();
        Expr { kind: ExprKind::Quantifier { all, list: Box::new(list), var, body: Box::new(body) }, ty: Ty::Bool, span }
    }

    fn fn_call(&mut self, span: Span, function: DeclId, callee: &ast::Ident, args: &[ast::Arg]) -> Expr {
        let Some(Decl::Fn(sig)) = signatures::decl(self.db, function).cloned() else { return Expr::error(span) };
        let what = format!("function `{}`", sig.name);
        let params: Vec<(SmolStr, Ty)> = sig.params.iter().map(|p| (p.name.clone(), p.ty.clone())).collect();
        let hir_args = self.match_args(span, callee.span, &what, &params, args, false);
        match hir_args {
            Some(args) => Expr { kind: ExprKind::Call { function, args }, ty: sig.ret.clone(), span },
            None => Expr { kind: ExprKind::Error, ty: sig.ret.clone(), span },
        }
    }

    /// Matches call arguments to parameters, by position or by name; with `named_only`, by
    /// name only (models). Returns the checked arguments in parameter order.
    pub fn match_args(
        &mut self,
        call_span: Span,
        name_span: Span,
        what: &str,
        params: &[(SmolStr, Ty)],
        args: &[ast::Arg],
        named_only: bool,
    ) -> Option<Vec<Expr>> {
        let mut ok = true;
        if let Some(lambda) = args.iter().find(|a| a.lambda.is_some()) {
            self.error(
                Code::E1012,
                lambda.span,
                format!("{what} takes no `item => …` condition; only `any` and `all` do"),
            );
            return None;
        }
        let named = args.iter().filter(|a| a.name.is_some()).count();
        if named_only && named < args.len() {
            let positional = args.iter().find(|a| a.name.is_none()).map_or(call_span, |a| a.span);
            let example = params.first().map_or("name: value".to_owned(), |(p, _)| format!("{p}: …"));
            self.error(Code::E1012, positional, format!("{what} takes its arguments by name")).help = Some(format!(
                "name each argument, such as `{example}`; a model receives only the data it is given by name"
            ));
            self.check_args_loosely(args);
            return None;
        }
        let mut slots: Vec<Option<Expr>> = vec![None; params.len()];
        if named == 0 {
            if args.len() != params.len() {
                let expected = params.len();
                let message = format!(
                    "{what} takes {expected} argument{}, but {} {} given",
                    if expected == 1 { "" } else { "s" },
                    args.len(),
                    if args.len() == 1 { "is" } else { "are" }
                );
                let shape = params.iter().map(|(n, t)| format!("{n}: {t}")).collect::<Vec<_>>().join(", ");
                self.error(Code::E1012, name_span, message).help = Some(format!("its parameters are ({shape})"));
                self.check_args_loosely(args);
                return None;
            }
            for (index, (arg, (param, ty))) in args.iter().zip(params).enumerate() {
                slots[index] = Some(self.check(&arg.value, ty, &|| format!("argument `{param}` of {what}")));
            }
        } else if named < args.len() {
            let positional = args.iter().find(|a| a.name.is_none()).map_or(call_span, |a| a.span);
            self.error(
                Code::E1012,
                positional,
                format!("the arguments of {what} are either all named or all by position"),
            );
            self.check_args_loosely(args);
            return None;
        } else {
            for arg in args {
                let Some(arg_name) = &arg.name else { continue };
                match params.iter().position(|(p, _)| *p == arg_name.text) {
                    Some(index) if slots[index].is_some() => {
                        self.error(Code::E1018, arg_name.span, format!("argument `{}` is given twice", arg_name.text));
                        self.infer(&arg.value, None);
                        ok = false;
                    }
                    Some(index) => {
                        let (param, ty) = &params[index];
                        slots[index] = Some(self.check(&arg.value, ty, &|| format!("argument `{param}` of {what}")));
                    }
                    None => {
                        let help =
                            suggest::help(&arg_name.text, params.iter().map(|(p, _)| p.as_str())).or_else(|| {
                                Some(format!(
                                    "its parameters are {}",
                                    quoted_list(params.iter().map(|(p, _)| p.clone()))
                                ))
                            });
                        self.error(
                            Code::E1012,
                            arg_name.span,
                            format!("{what} has no parameter `{}`", arg_name.text),
                        )
                        .help = help;
                        self.infer(&arg.value, None);
                        ok = false;
                    }
                }
            }
            let missing: Vec<String> =
                params.iter().zip(&slots).filter(|(_, slot)| slot.is_none()).map(|((p, _), _)| p.to_string()).collect();
            if !missing.is_empty() && ok {
                let noun = if missing.len() == 1 { "argument" } else { "arguments" };
                self.error(
                    Code::E1012,
                    name_span,
                    format!("{what} is missing the {noun} {}", quoted_list(missing.iter().cloned())),
                );
                ok = false;
            }
        }
        if !ok {
            return None;
        }
        Some(slots.into_iter().map(|slot| slot.unwrap_or_else(|| Expr::error(call_span))).collect())
    }
}

/// The setting of `source` that `builtin` needs and the source lacks.
fn missing_freshness(source: &SourceSig, builtin: Builtin) -> Option<&'static str> {
    if source.as_of.is_none() {
        return Some("as_of");
    }
    (builtin == Builtin::Stale && source.freshness.is_none()).then_some("freshness")
}

/// The place an expression reads: a reference followed by fields.
fn place_of(expr: &Expr) -> Option<Place> {
    match &expr.kind {
        ExprKind::Ref(r) => Some(Place { root: *r, fields: Vec::new() }),
        ExprKind::Field { base, name, .. } => {
            let mut place = place_of(base)?;
            place.fields.push(name.clone());
            Some(place)
        }
        _ => None,
    }
}

/// The places proved present when `condition` evaluates to `value`.
fn facts_when(condition: &Expr, value: bool) -> Vec<Place> {
    match (&condition.kind, value) {
        (ExprKind::Builtin { builtin: Builtin::IsPresent, args }, true) => {
            args.first().and_then(place_of).into_iter().collect()
        }
        (ExprKind::Unary { op: UnaryOp::Not, operand }, _) => facts_when(operand, !value),
        (ExprKind::Binary { op: BinaryOp::And, lhs, rhs }, true)
        | (ExprKind::Binary { op: BinaryOp::Or, lhs, rhs }, false) => {
            let mut facts = facts_when(lhs, value);
            facts.extend(facts_when(rhs, value));
            facts
        }
        _ => Vec::new(),
    }
}

/// The common type of two `if` branches.
fn join(a: &Ty, b: &Ty) -> Option<Ty> {
    match (a, b) {
        (Ty::Error, _) | (_, Ty::Error) => Some(Ty::Error),
        _ if a == b => Some(a.clone()),
        (Ty::Int, Ty::Decimal) | (Ty::Decimal, Ty::Int) => Some(Ty::Decimal),
        (Ty::Money(x), Ty::Money(y)) if x.is_none() || y.is_none() => Some(Ty::Money(None)),
        (Ty::Optional(inner), other) | (other, Ty::Optional(inner)) => join(inner, other).map(Ty::optional),
        _ => None,
    }
}

enum Problem {
    Currency(Currency, Currency),
    Operands,
}

/// The type of `l op r` by the language's arithmetic rules (`docs/language.md`, "Expressions"; `E1009`, `E1011`).
fn binary_type(op: BinaryOp, l: &Ty, r: &Ty) -> Result<Ty, Problem> {
    use BinaryOp::*;
    use Ty::*;
    let number = |a: &Ty, b: &Ty| if a == &Int && b == &Int { Int } else { Decimal };
    let currency = |a: &Option<Currency>, b: &Option<Currency>| -> Result<Option<Currency>, Problem> {
        match (a, b) {
            (Some(x), Some(y)) if x != y => Err(Problem::Currency(*x, *y)),
            (Some(x), Some(_)) => Ok(Some(*x)),
            _ => Ok(None),
        }
    };
    Ok(match (op, l, r) {
        (Eq | Ne, a, b) if a.is_number() && b.is_number() => Bool,
        (Eq | Ne, Money(a), Money(b)) => {
            currency(a, b)?;
            Bool
        }
        (Eq | Ne, Record(_) | List(_), _) | (Eq | Ne, _, Record(_) | List(_)) => return Err(Problem::Operands),
        (Eq | Ne, a, b) if a == b => Bool,
        (Lt | Le | Gt | Ge, a, b) if a.is_number() && b.is_number() => Bool,
        (Lt | Le | Gt | Ge, Money(a), Money(b)) => {
            currency(a, b)?;
            Bool
        }
        (Lt | Le | Gt | Ge, Timestamp, Timestamp) | (Lt | Le | Gt | Ge, Duration, Duration) => Bool,
        (Add | Sub, a, b) if a.is_number() && b.is_number() => number(a, b),
        (Mul, a, b) if a.is_number() && b.is_number() => number(a, b),
        (Div, a, b) if a.is_number() && b.is_number() => Decimal,
        (Add | Sub, Money(a), Money(b)) => Money(currency(a, b)?),
        (Mul, Money(c), n) | (Mul, n, Money(c)) if n.is_number() => Money(*c),
        (Div, Money(c), n) if n.is_number() => Money(*c),
        (Div, Money(a), Money(b)) => {
            currency(a, b)?;
            Decimal
        }
        (Add, Timestamp, Duration) | (Add, Duration, Timestamp) | (Sub, Timestamp, Duration) => Timestamp,
        (Sub, Timestamp, Timestamp) => Duration,
        (Add | Sub, Duration, Duration) => Duration,
        (Mul, Duration, Int) | (Mul, Int, Duration) => Duration,
        (Div, Duration, Duration) => Decimal,
        _ => return Err(Problem::Operands),
    })
}

fn verb(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Add => "add",
        BinaryOp::Sub => "subtract",
        BinaryOp::Mul => "multiply",
        BinaryOp::Div => "divide",
        BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => "compare",
        BinaryOp::And | BinaryOp::Or => "combine",
    }
}

fn operand_help(op: BinaryOp, l: &Ty, r: &Ty) -> Option<String> {
    match (l, r) {
        (Ty::Money(Some(c)), n) | (n, Ty::Money(Some(c)))
            if n.is_number() && matches!(op, BinaryOp::Add | BinaryOp::Sub) || n.is_number() && op.is_comparison() =>
        {
            Some(format!("write the amount with its currency, such as `100 {c}`"))
        }
        (Ty::Money(_), Ty::Money(_)) if op == BinaryOp::Mul => {
            Some("multiply an amount by a number, not by another amount".to_owned())
        }
        (Ty::Text, Ty::Text) if op == BinaryOp::Add => Some("join texts with interpolation: `\"{a}{b}\"`".to_owned()),
        (Ty::Enum(_), Ty::Enum(_)) if op.is_comparison() => {
            Some("enum values can only be compared with `==` and `!=`, with values of the same enum".to_owned())
        }
        _ => None,
    }
}

fn mismatch_help(found: &Ty, expected: &Ty) -> Option<String> {
    match (found, expected) {
        (Ty::Decimal, Ty::Int) => Some("a decimal number cannot be used where a whole number is expected".to_owned()),
        (n, Ty::Money(Some(c))) if n.is_number() => {
            Some(format!("write the amount with its currency, such as `100 {c}`"))
        }
        (n, Ty::Money(None)) if n.is_number() => {
            Some("write the amount with its currency, such as `100 USD`".to_owned())
        }
        (Ty::Int, Ty::Duration) => Some("write the duration with its unit, such as `24h` or `7d`".to_owned()),
        _ => None,
    }
}

/// `` `a`, `b` and `c` ``.
pub fn quoted_list<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let quoted: Vec<String> = items.into_iter().map(|i| format!("`{i}`")).collect();
    match quoted.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}
