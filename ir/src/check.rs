//! The type checker of the expression IR. A plan file writes an expression's type only
//! where its operands do not determine it (literals, enum variants, record values,
//! widenings and `if`s); the checker computes every other type, records it in the
//! expression, and checks the written ones: every expression's type follows from its parts
//! by the language's rules, names resolve, and an optional is read as present only where an
//! enclosing condition proved it present.
//!
//! The rules are those of the compiler (`docs/language.md`), with conversions explicit:
//! numbers meet numbers of the same type (the compiler widens whole numbers where a
//! decimal is involved), and a narrowed optional is an `Unwrap`.

use smol_str::SmolStr;

use crate::expr::{BinaryOp, Builtin, Expr, ExprKind, Part};
use crate::plan::{NodeKind, Param, PlanBody};
use crate::ty::{Currency, Ty};

#[derive(Clone, Debug, PartialEq, Eq)]
enum Root {
    Node(SmolStr),
    Param(u32),
    Local(u32),
}

/// A value a condition can prove present: a root and a path of fields.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Place {
    root: Root,
    fields: Vec<SmolStr>,
}

fn place_of(expr: &Expr) -> Option<Place> {
    match &expr.kind {
        ExprKind::Node(n) => Some(Place { root: Root::Node(n.clone()), fields: Vec::new() }),
        ExprKind::Param(i) => Some(Place { root: Root::Param(*i), fields: Vec::new() }),
        ExprKind::Local(d) => Some(Place { root: Root::Local(*d), fields: Vec::new() }),
        ExprKind::Field { base, field } => {
            let mut place = place_of(base)?;
            place.fields.push(field.clone());
            Some(place)
        }
        ExprKind::Unwrap(inner) => place_of(inner),
        _ => None,
    }
}

/// The places proved present when `condition` is `value`.
fn facts_when(condition: &Expr, value: bool) -> Vec<Place> {
    match (&condition.kind, value) {
        (ExprKind::Builtin { builtin: Builtin::IsPresent, args }, true) => {
            args.first().and_then(place_of).into_iter().collect()
        }
        (ExprKind::Not(operand), _) => facts_when(operand, !value),
        (ExprKind::Binary { op: BinaryOp::And, lhs, rhs }, true)
        | (ExprKind::Binary { op: BinaryOp::Or, lhs, rhs }, false) => {
            let mut facts = facts_when(lhs, value);
            facts.extend(facts_when(rhs, value));
            facts
        }
        _ => Vec::new(),
    }
}

/// Where an expression is checked.
pub(crate) struct Context<'p> {
    pub body: &'p PlanBody,
    pub names: &'p crate::verify::Names,
    /// The parameters of the function whose body is checked; `None` in a flow.
    pub fn_params: Option<&'p [Param]>,
    /// A param's default: no node, no clock.
    pub constant: bool,
}

pub(crate) struct Checker<'p> {
    cx: Context<'p>,
    locals: Vec<Ty>,
    facts: Vec<Place>,
}

type Result<T = ()> = std::result::Result<T, String>;

/// Whether `ty` is a type a plan may give a value: declared names resolve, step types name
/// steps of their kind.
pub(crate) fn check_type(body: &PlanBody, ty: &Ty) -> Result {
    match ty {
        Ty::List(inner) | Ty::Optional(inner) => {
            if matches!(**inner, Ty::Optional(_)) && matches!(ty, Ty::Optional(_)) {
                return Err(format!("`{ty}` is optional twice"));
            }
            check_type(body, inner)
        }
        Ty::Named(name) if body.record(name).is_none() && body.enumeration(name).is_none() => {
            Err(format!("type `{name}` is not declared in the plan"))
        }
        Ty::Outcome(step) | Ty::Reason(step) | Ty::Review(step) => match body.node(step).map(|n| &n.kind) {
            Some(NodeKind::Review { .. }) => Ok(()),
            _ => Err(format!("`{ty}` names no review step")),
        },
        Ty::Approval(step) => match body.node(step).map(|n| &n.kind) {
            Some(NodeKind::Approval { .. }) => Ok(()),
            _ => Err(format!("`{ty}` names no approval step")),
        },
        _ => Ok(()),
    }
}

impl<'p> Checker<'p> {
    pub fn new(cx: Context<'p>) -> Checker<'p> {
        Checker { cx, locals: Vec::new(), facts: Vec::new() }
    }

    fn is_record(&self, ty: &Ty) -> bool {
        matches!(ty, Ty::Named(name) if self.cx.body.record(name).is_some())
    }

    /// Types `expr` and checks that it fits `expected`.
    pub fn check_fits(&mut self, expr: &mut Expr, expected: &Ty) -> Result {
        self.check(expr)?;
        if !expr.ty.fits(expected) {
            return Err(format!("is `{}`, where `{expected}` is wanted", expr.ty));
        }
        Ok(())
    }

    /// Types an expression whose value is used: neither a review's or an approval's result
    /// (only their fields are values) nor nothing.
    pub fn check(&mut self, expr: &mut Expr) -> Result {
        self.infer(expr)?;
        match &expr.ty {
            Ty::Review(_) | Ty::Approval(_) => Err(format!("`{}` is not a value by itself", expr.ty)),
            Ty::Nothing => Err("gives no value".to_owned()),
            _ => Ok(()),
        }
    }

    /// Computes the type of `expr` from its parts and records it; for the kinds whose type
    /// the plan writes, checks the written type.
    fn infer(&mut self, expr: &mut Expr) -> Result {
        let ty = crate::with_stack(|| self.type_of(expr))?;
        match ty {
            Some(ty) => expr.ty = ty,
            None => check_type(self.cx.body, &expr.ty)?,
        }
        Ok(())
    }

    /// The type of `expr`, or `None` when the plan writes it (and it was checked).
    fn type_of(&mut self, expr: &mut Expr) -> Result<Option<Ty>> {
        let body = self.cx.body;
        let written = expr.ty.clone();
        let stale = matches!(expr.kind, ExprKind::Stale(_));
        let shown = if matches!(expr.kind, ExprKind::Age(_) | ExprKind::Stale(_)) {
            crate::print::expr(expr)
        } else {
            String::new()
        };
        Ok(Some(match &mut expr.kind {
            ExprKind::Lit(literal) => {
                return if literal.ty() == written {
                    Ok(None)
                } else {
                    Err(format!("a literal of type `{}` is written as `{written}`", literal.ty()))
                };
            }
            ExprKind::Interpolate(parts) => {
                for part in parts {
                    if let Part::Expr(e) = part {
                        self.check(e)?;
                        let writable = !(e.ty.is_optional() || matches!(e.ty, Ty::List(_)) || self.is_record(&e.ty));
                        if !writable {
                            return Err(format!("a `{}` cannot be written into text", e.ty));
                        }
                    }
                }
                Ty::Text
            }
            ExprKind::Node(name) => {
                if self.cx.constant {
                    return Err(format!("a param's default is a constant, but it reads `{name}`"));
                }
                if self.cx.fn_params.is_some() {
                    return Err(format!("a function reads only its parameters, but this reads `{name}`"));
                }
                let Some(node) = self.cx.names.get(name).map(|i| &body.nodes[i]) else {
                    return Err(format!("there is no node `{name}`"));
                };
                if matches!(node.kind, NodeKind::Gate { .. } | NodeKind::Emit { .. }) {
                    return Err(format!("{} `{name}` gives no value", node.kind.keyword()));
                }
                node.ty.clone()
            }
            ExprKind::Param(index) => {
                let Some(params) = self.cx.fn_params else {
                    return Err("a function parameter is read outside a function".to_owned());
                };
                match params.get(*index as usize) {
                    Some(param) => param.ty.clone(),
                    None => return Err(format!("the function has no parameter {index}")),
                }
            }
            ExprKind::Local(depth) => match self.locals.iter().rev().nth(*depth as usize) {
                Some(ty) => ty.clone(),
                None => return Err(format!("there is no item of `any` or `all` at depth {depth}")),
            },
            ExprKind::Variant(variant) => {
                return match body.variants(&written) {
                    Some(variants) if variants.contains(variant) => Ok(None),
                    Some(_) => Err(format!("`{written}` has no variant `{variant}`")),
                    None => Err(format!("`{written}` is not an enum")),
                };
            }
            ExprKind::Field { base, field } => {
                self.infer(base)?;
                if base.ty.is_optional() {
                    return Err(format!("`{}` may be absent; it is read without a proof that it is present", base.ty));
                }
                match body.field_type(&base.ty, field) {
                    Some(ty) => ty.into_owned(),
                    None => return Err(format!("`{}` has no field `{field}`", base.ty)),
                }
            }
            ExprKind::Declassify { value, reason } => {
                if reason.trim().is_empty() {
                    return Err("a declassification gives no reason".to_owned());
                }
                self.check(value)?;
                value.ty.clone()
            }
            ExprKind::Unwrap(inner) => {
                self.check(inner)?;
                let Ty::Optional(unwrapped) = &inner.ty else {
                    return Err(format!("only an optional value is unwrapped, but this is `{}`", inner.ty));
                };
                let proved = place_of(inner).is_some_and(|place| self.facts.contains(&place));
                if !proved {
                    return Err(format!(
                        "`{}` may be absent here: no enclosing condition proves it present",
                        crate::print::expr(inner)
                    ));
                }
                (**unwrapped).clone()
            }
            ExprKind::Widen(inner) => {
                self.check(inner)?;
                return if inner.ty.widens_to(&written) {
                    Ok(None)
                } else {
                    Err(format!("`{}` does not widen to `{written}`", inner.ty))
                };
            }
            ExprKind::Call { function, args } => {
                let Some(target) = body.function(function) else {
                    return Err(format!("there is no function `{function}`"));
                };
                if args.len() != target.params.len() {
                    return Err(format!(
                        "function `{function}` takes {} arguments, but {} are given",
                        target.params.len(),
                        args.len()
                    ));
                }
                for (arg, param) in args.iter_mut().zip(&target.params) {
                    self.check_fits(arg, &param.ty).map_err(|e| format!("argument `{}` {e}", param.name))?;
                }
                target.result.clone()
            }
            ExprKind::Builtin { builtin, args } => self.builtin(*builtin, args)?,
            ExprKind::Now => {
                if self.cx.constant {
                    return Err("a param's default is a constant, but it reads the clock".to_owned());
                }
                Ty::Timestamp
            }
            ExprKind::StartedBy => {
                if self.cx.constant {
                    return Err("a param's default is a constant, but it reads who started the run".to_owned());
                }
                Ty::Principal
            }
            ExprKind::Age(input) | ExprKind::Stale(input) => {
                if self.cx.constant || self.cx.fn_params.is_some() {
                    return Err(format!("`{shown}` may only be read by the flow's steps"));
                }
                let source = match body.node(input).map(|n| &n.kind) {
                    Some(NodeKind::Input { source: Some(source) }) => body.source(source),
                    _ => return Err(format!("`{input}` is not an input that comes from a source")),
                };
                let Some(source) = source else { return Err(format!("the source of `{input}` is not declared")) };
                if source.as_of.is_none() || (stale && source.freshness.is_none()) {
                    return Err(format!("source `{}` does not say how old or fresh its records are", source.name));
                }
                if stale { Ty::Bool } else { Ty::Duration }
            }
            ExprKind::Degraded(step) => {
                if self.cx.constant || self.cx.fn_params.is_some() {
                    return Err(format!("`degraded({step})` may only be read by the flow's steps"));
                }
                match body.node(step).map(|n| &n.kind) {
                    Some(NodeKind::Infer { .. } | NodeKind::Retrieve { .. }) => Ty::Bool,
                    _ => {
                        return Err(format!("`degraded` takes an `infer` or `retrieve` step, and `{step}` is not one"));
                    }
                }
            }
            ExprKind::Quantifier { list, body: condition, .. } => {
                self.check(list)?;
                let Ty::List(item) = &list.ty else {
                    return Err(format!("`any` and `all` need a list, not `{}`", list.ty));
                };
                self.locals.push((**item).clone());
                let result = self.check_fits(condition, &Ty::Bool).map_err(|e| format!("the condition {e}"));
                self.locals.pop();
                result?;
                Ty::Bool
            }
            ExprKind::List(items) => {
                let Ty::List(item) = &written else { return Err(format!("`{written}` is not a list")) };
                for (i, value) in items.iter_mut().enumerate() {
                    self.check_fits(value, item).map_err(|e| format!("item {} {e}", i + 1))?;
                }
                written.clone()
            }
            ExprKind::Record(fields) => {
                let Ty::Named(name) = &written else { return Err(format!("`{written}` is not a record")) };
                let Some(record) = body.record(name) else { return Err(format!("`{name}` is not a record")) };
                if !fields.windows(2).all(|w| w[0].name < w[1].name) {
                    return Err(format!("the fields of this `{name}` are not in name order"));
                }
                for init in fields.iter_mut() {
                    let Some(field) = record.field(&init.name) else {
                        return Err(format!("`{name}` has no field `{}`", init.name));
                    };
                    self.check_fits(&mut init.value, &field.ty).map_err(|e| format!("field `{}` {e}", init.name))?;
                }
                let missing: Vec<&str> = record
                    .fields
                    .iter()
                    .filter(|f| !f.ty.is_optional() && !fields.iter().any(|i| i.name == f.name))
                    .map(|f| f.name.as_str())
                    .collect();
                if !missing.is_empty() {
                    return Err(format!("`{name}` is missing {}", missing.join(", ")));
                }
                return Ok(None);
            }
            ExprKind::Not(operand) => {
                self.check_fits(operand, &Ty::Bool).map_err(|e| format!("the operand of `not` {e}"))?;
                Ty::Bool
            }
            ExprKind::Neg(operand) => {
                self.check(operand)?;
                match operand.ty {
                    Ty::Int | Ty::Decimal | Ty::Money(_) | Ty::Duration => operand.ty.clone(),
                    _ => return Err(format!("a `{}` cannot be negated", operand.ty)),
                }
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let op = *op;
                if matches!(op, BinaryOp::And | BinaryOp::Or) {
                    self.check_fits(lhs, &Ty::Bool)?;
                    let saved = self.facts.len();
                    self.facts.extend(facts_when(lhs, op == BinaryOp::And));
                    let result = self.check_fits(rhs, &Ty::Bool);
                    self.facts.truncate(saved);
                    result?;
                    Ty::Bool
                } else {
                    self.check(lhs)?;
                    self.check(rhs)?;
                    match self.binary_type(op, &lhs.ty, &rhs.ty) {
                        Some(ty) => ty,
                        None => {
                            return Err(format!("cannot apply `{}` to `{}` and `{}`", op.as_str(), lhs.ty, rhs.ty));
                        }
                    }
                }
            }
            ExprKind::If { branches, otherwise } => {
                let saved = self.facts.len();
                let mut result = Ok(());
                for branch in branches.iter_mut() {
                    result = self.check_fits(&mut branch.condition, &Ty::Bool).map_err(|e| format!("a condition {e}"));
                    if result.is_err() {
                        break;
                    }
                    let before = self.facts.len();
                    self.facts.extend(facts_when(&branch.condition, true));
                    result = self.check_fits(&mut branch.then, &written).map_err(|e| format!("a branch {e}"));
                    self.facts.truncate(before);
                    if result.is_err() {
                        break;
                    }
                    self.facts.extend(facts_when(&branch.condition, false));
                }
                if result.is_ok() {
                    result = self.check_fits(otherwise, &written).map_err(|e| format!("the `else` branch {e}"));
                }
                self.facts.truncate(saved);
                return result.map(|()| None);
            }
        }))
    }

    fn builtin(&mut self, builtin: Builtin, args: &mut [Expr]) -> Result<Ty> {
        let arity = match builtin {
            Builtin::Contains => 2,
            _ => 1,
        };
        if args.len() != arity {
            return Err(format!("`{}` takes {arity} arguments, but {} are given", builtin.name(), args.len()));
        }
        match builtin {
            Builtin::Len => {
                self.check(&mut args[0])?;
                if !matches!(args[0].ty, Ty::List(_) | Ty::Text) {
                    return Err(format!("`len` counts a list or a text, not a `{}`", args[0].ty));
                }
                Ok(Ty::Int)
            }
            Builtin::Contains => {
                for arg in args.iter_mut() {
                    self.check(arg)?;
                    if arg.ty != Ty::Text {
                        return Err(format!("`contains` takes two texts, not a `{}`", arg.ty));
                    }
                }
                Ok(Ty::Bool)
            }
            Builtin::Lower => {
                self.check(&mut args[0])?;
                if args[0].ty != Ty::Text {
                    return Err(format!("`lower` takes a text, not a `{}`", args[0].ty));
                }
                Ok(Ty::Text)
            }
            Builtin::IsPresent => {
                self.check(&mut args[0])?;
                if !args[0].ty.is_optional() {
                    return Err(format!("`is_present` takes an optional value, not a `{}`", args[0].ty));
                }
                Ok(Ty::Bool)
            }
        }
    }

    /// The type of `l op r` for operators other than `and` and `or`.
    fn binary_type(&self, op: BinaryOp, l: &Ty, r: &Ty) -> Option<Ty> {
        use BinaryOp::*;
        use Ty::*;
        let same_currency = |a: &Option<Currency>, b: &Option<Currency>| match (a, b) {
            (Some(x), Some(y)) => (x == y).then_some(Some(*x)),
            _ => Some(None),
        };
        let comparable =
            |t: &Ty| !matches!(t, List(_) | Optional(_) | Review(_) | Approval(_) | Nothing) && !self.is_record(t);
        Some(match (op, l, r) {
            (Eq | Ne, Money(a), Money(b)) => {
                same_currency(a, b)?;
                Bool
            }
            (Eq | Ne, a, b) if a == b && comparable(a) => Bool,
            (Lt | Le | Gt | Ge, Int, Int) | (Lt | Le | Gt | Ge, Decimal, Decimal) => Bool,
            (Lt | Le | Gt | Ge, Money(a), Money(b)) => {
                same_currency(a, b)?;
                Bool
            }
            (Lt | Le | Gt | Ge, Timestamp, Timestamp) | (Lt | Le | Gt | Ge, Duration, Duration) => Bool,
            (Add | Sub | Mul, Int, Int) => Int,
            (Add | Sub | Mul | Div, Decimal, Decimal) => Decimal,
            (Add | Sub, Money(a), Money(b)) => Money(same_currency(a, b)?),
            (Mul, Money(c), Decimal) | (Mul, Decimal, Money(c)) | (Div, Money(c), Decimal) => Money(*c),
            (Div, Money(a), Money(b)) => {
                same_currency(a, b)?;
                Decimal
            }
            (Add, Timestamp, Duration) | (Add, Duration, Timestamp) | (Sub, Timestamp, Duration) => Timestamp,
            (Sub, Timestamp, Timestamp) => Duration,
            (Add | Sub, Duration, Duration) => Duration,
            (Mul, Duration, Int) | (Mul, Int, Duration) => Duration,
            (Div, Duration, Duration) => Decimal,
            _ => return None,
        })
    }
}
