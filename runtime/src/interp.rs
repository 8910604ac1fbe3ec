//! The interpreter of the expression IR: the reference semantics of Flow expressions.
//!
//! Arithmetic is exact (`rust_decimal`, never binary floating point). Overflow, division by
//! zero and money of two currencies are errors of the step, never wrong answers. `now()`
//! reads the run's recorded clock, so a replay computes the same values.

use std::fmt;

use flow_ir::PlanBody;
use flow_ir::expr::{BinaryOp, Builtin, Expr, ExprKind, Literal, Money, Part, Timestamp};
use flow_ir::plan::NodeKind;
use rust_decimal::Decimal;

use crate::value::Value;

/// Why an expression has no value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EvalError {
    /// A result too large to represent (`i64` for whole numbers and durations, 96 bits of
    /// mantissa for decimals, an instant outside the years 0000 to 9999): what overflowed,
    /// without values (`` `*` of decimals ``), and the operands (`12.5 * 3`).
    Overflow {
        what: String,
        operands: Option<String>,
    },
    DivisionByZero {
        what: String,
        operands: Option<String>,
    },
    /// A product or quotient of amounts that are not zero, too small to hold (it would
    /// round to zero, past 28 decimal places).
    Underflow {
        what: String,
        operands: Option<String>,
    },
    /// Money of two currencies met in one comparison or sum.
    CurrencyMismatch {
        op: &'static str,
        left: Money,
        right: Money,
    },
    /// A value of the wrong shape: a verified plan never causes one, so this is a bug of the
    /// runtime (or of a value that did not come through [`crate::value::decode`]).
    Internal(String),
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EvalError::Overflow { what, .. } if what == INSTANT => {
                f.write_str("overflow: the instant falls outside the years 0000 to 9999")
            }
            EvalError::Overflow { what, .. } => write!(f, "overflow: {what} is too large"),
            EvalError::DivisionByZero { what, .. } => write!(f, "division by zero ({what})"),
            EvalError::Underflow { what, .. } => {
                write!(f, "underflow: {what} is too small to hold (it would round to zero)")
            }
            EvalError::CurrencyMismatch { op, .. } => {
                write!(f, "currency mismatch: `{op}` of amounts in two currencies, which Flow never converts")
            }
            EvalError::Internal(what) => write!(f, "internal error of the runtime: {what}"),
        }
    }
}

impl EvalError {
    pub fn overflow(what: impl Into<String>) -> EvalError {
        EvalError::Overflow { what: what.into(), operands: None }
    }

    /// The error with the values it involved (`division by zero in 12.5 / 0`), which may
    /// carry labels: evidence keeps it labelled with what the step reads, and the error
    /// itself ([`fmt::Display`]) names no value.
    pub fn detail(&self) -> Option<String> {
        match self {
            EvalError::Overflow { operands: Some(operands), .. } => {
                Some(format!("overflow: `{operands}` is too large"))
            }
            EvalError::DivisionByZero { operands: Some(operands), .. } => {
                Some(format!("division by zero in `{operands}`"))
            }
            EvalError::Underflow { operands: Some(operands), .. } => {
                Some(format!("underflow: `{operands}` rounds to zero"))
            }
            EvalError::CurrencyMismatch { op, left, right } => {
                Some(format!("currency mismatch: `{left} {op} {right}` mixes {} and {}", left.currency, right.currency))
            }
            _ => None,
        }
    }

    /// Whether the error comes from the values (and so belongs to the step), rather than
    /// from a bug.
    pub fn is_domain(&self) -> bool {
        !matches!(self, EvalError::Internal(_))
    }
}

type Result<T> = std::result::Result<T, EvalError>;

/// What expressions of a run read besides their operands.
pub trait Scope {
    /// The value of a node, once it has one.
    fn node(&self, name: &str) -> Option<&Value>;
    /// Whether the `infer` step used its fallback.
    fn degraded(&self, name: &str) -> bool;
    /// The run's recorded clock.
    fn clock(&self) -> Timestamp;
    /// Who started the run (`started_by()`), where there is a run.
    fn starter(&self) -> Option<&str> {
        None
    }
    /// What a `Node` or `Field` expression reads, when known in advance: a node index
    /// for [`Scope::node_at`], or a field's position in its record.
    fn resolved(&self, _expr: &Expr) -> Option<u32> {
        None
    }
    /// The value of the node of this index.
    fn node_at(&self, _index: u32) -> Option<&Value> {
        None
    }
}

/// Evaluates `expr` in `scope`.
pub fn eval(plan: &PlanBody, scope: &dyn Scope, expr: &Expr) -> Result<Value> {
    eval_with(plan, scope, &[], expr)
}

/// Evaluates `expr` in `scope`, its `Param(i)` references reading `args[i]` (a function's
/// arguments; a test's example fields).
pub fn eval_with(plan: &PlanBody, scope: &dyn Scope, args: &[Value], expr: &Expr) -> Result<Value> {
    let mut cx = Cx { plan, scope, frame: args, locals: Vec::new(), depth: 0 };
    cx.eval(expr)
}

struct Cx<'a> {
    plan: &'a PlanBody,
    scope: &'a dyn Scope,
    /// The arguments of the function being evaluated.
    frame: &'a [Value],
    /// The items of enclosing `any`/`all`, innermost last.
    locals: Vec<Value>,
    /// How deeply `eval` recurses.
    depth: u32,
}

fn internal<T>(what: impl Into<String>) -> Result<T> {
    Err(EvalError::Internal(what.into()))
}

impl Cx<'_> {
    /// The value at a place (`request.vendor.rating`), borrowed, when `expr` is one.
    fn place<'v>(&'v self, expr: &Expr) -> Option<&'v Value> {
        match &expr.kind {
            ExprKind::Node(name) => match self.scope.resolved(expr) {
                Some(index) => self.scope.node_at(index),
                None => self.scope.node(name),
            },
            ExprKind::Field { base, field } => {
                let base = self.place(base)?;
                if let (Some(position), Value::Record(fields)) = (self.scope.resolved(expr), base)
                    && let Some((name, value)) = fields.get(position as usize)
                    && name == field
                {
                    return Some(value);
                }
                base.field(field)
            }
            ExprKind::Param(i) => self.frame.get(*i as usize),
            _ => None,
        }
    }

    fn eval(&mut self, expr: &Expr) -> Result<Value> {
        if let Some(value) = self.place(expr) {
            return Ok(value.clone());
        }
        // Plans nest expressions up to 1,024 levels: every 16 levels, continue on a fresh
        // stack segment when this one runs low, as `flow-ir` does for its own recursions.
        self.depth += 1;
        let value = if self.depth.is_multiple_of(16) {
            stacker::maybe_grow(256 * 1024, 2 * 1024 * 1024, || self.eval_inner(expr))
        } else {
            self.eval_inner(expr)
        };
        self.depth -= 1;
        value
    }

    fn eval_inner(&mut self, expr: &Expr) -> Result<Value> {
        Ok(match &expr.kind {
            ExprKind::Lit(literal) => match literal {
                Literal::Int(i) => Value::Int(*i),
                Literal::Decimal(d) => Value::Decimal(*d),
                Literal::Money(m) => Value::Money(*m),
                Literal::Duration(d) => Value::Duration(*d),
                Literal::Timestamp(t) => Value::Timestamp(*t),
                Literal::Bool(b) => Value::Bool(*b),
                Literal::Text(t) => Value::Text(t.clone()),
            },
            ExprKind::Interpolate(parts) => {
                let mut out = String::new();
                for part in parts {
                    match part {
                        Part::Text(text) => out.push_str(text),
                        Part::Expr(e) => {
                            use std::fmt::Write;
                            let value = self.eval(e)?;
                            let _ = write!(out, "{value}");
                        }
                    }
                }
                Value::Text(out)
            }
            ExprKind::Node(name) => return internal(format!("`{name}` has no value yet")),
            ExprKind::Param(i) => return internal(format!("no argument {i}")),
            ExprKind::Local(i) => {
                let at = self.locals.len().checked_sub(*i as usize + 1);
                match at.and_then(|at| self.locals.get(at)) {
                    Some(value) => value.clone(),
                    None => return internal(format!("no item {i} of `any`/`all`")),
                }
            }
            ExprKind::Variant(v) => Value::Variant(v.clone()),
            ExprKind::Field { base, field } => {
                let base = self.eval(base)?;
                match base.field(field) {
                    Some(value) => value.clone(),
                    None => return internal(format!("a value without field `{field}`")),
                }
            }
            ExprKind::Unwrap(inner) => match self.eval(inner)? {
                Value::Absent => return internal("an optional proved present is absent"),
                value => value,
            },
            ExprKind::Widen(inner) => widen(self.eval(inner)?),
            // Labels are the analysis's business: the value is the value.
            ExprKind::Declassify { value, .. } => self.eval(value)?,
            ExprKind::Call { function, args } => {
                let Some(function) = self.plan.function(function) else {
                    return internal(format!("no function `{function}`"));
                };
                let mut values = Vec::with_capacity(args.len());
                for arg in args {
                    values.push(self.eval(arg)?);
                }
                let mut inner =
                    Cx { plan: self.plan, scope: self.scope, frame: &values, locals: Vec::new(), depth: self.depth };
                inner.eval(&function.body)?
            }
            ExprKind::Builtin { builtin, args } => self.builtin(*builtin, args)?,
            ExprKind::Now => Value::Timestamp(self.scope.clock()),
            ExprKind::StartedBy => match self.scope.starter() {
                Some(id) => Value::Principal(id.into()),
                None => return internal("`started_by()` outside a run"),
            },
            ExprKind::Age(input) => Value::Duration(self.age(input)?),
            ExprKind::Stale(input) => {
                let age = self.age(input)?;
                let freshness = self.source(input)?.freshness;
                Value::Bool(freshness.is_some_and(|limit| age > limit))
            }
            ExprKind::Degraded(step) => Value::Bool(self.scope.degraded(step)),
            ExprKind::Quantifier { all, list, body, .. } => {
                let Value::List(items) = self.eval(list)? else { return internal("`any`/`all` of a non-list") };
                let mut result = *all;
                for item in items {
                    self.locals.push(item);
                    let holds = self.eval(body).and_then(bool_of);
                    self.locals.pop();
                    if holds? != *all {
                        result = !*all;
                        break;
                    }
                }
                Value::Bool(result)
            }
            ExprKind::List(items) => Value::List(items.iter().map(|i| self.eval(i)).collect::<Result<_>>()?),
            ExprKind::Record(fields) => {
                let mut out = Vec::with_capacity(fields.len());
                for field in fields {
                    out.push((field.name.clone(), self.eval(&field.value)?));
                }
                // Absent optional fields are left out of the IR; a record value has them all.
                if let flow_ir::ty::Ty::Named(name) = &expr.ty
                    && let Some(record) = self.plan.record(name)
                {
                    for declared in &record.fields {
                        if !out.iter().any(|(n, _)| *n == declared.name) {
                            out.push((declared.name.clone(), Value::Absent));
                        }
                    }
                }
                Value::record(out)
            }
            ExprKind::Not(inner) => Value::Bool(!bool_of(self.eval(inner)?)?),
            ExprKind::Neg(inner) => negate(self.eval(inner)?)?,
            ExprKind::Binary { op: BinaryOp::And, lhs, rhs } => {
                Value::Bool(bool_of(self.eval(lhs)?)? && bool_of(self.eval(rhs)?)?)
            }
            ExprKind::Binary { op: BinaryOp::Or, lhs, rhs } => {
                Value::Bool(bool_of(self.eval(lhs)?)? || bool_of(self.eval(rhs)?)?)
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let (l, r) = (self.eval(lhs)?, self.eval(rhs)?);
                binary(*op, l, r)?
            }
            ExprKind::If { branches, otherwise } => {
                for branch in branches {
                    if bool_of(self.eval(&branch.condition)?)? {
                        return self.eval(&branch.then);
                    }
                }
                self.eval(otherwise)?
            }
        })
    }

    fn source(&self, input: &str) -> Result<&flow_ir::plan::Source> {
        match self.plan.node(input).map(|n| &n.kind) {
            Some(NodeKind::Input { source: Some(source) }) => match self.plan.source(source) {
                Some(source) => Ok(source),
                None => internal(format!("no source `{source}`")),
            },
            _ => internal(format!("`{input}` comes from no source")),
        }
    }

    /// How old the input's record is, in seconds.
    fn age(&self, input: &str) -> Result<i64> {
        let source = self.source(input)?;
        let Some(as_of) = &source.as_of else { return internal(format!("source `{}` has no `as_of`", source.name)) };
        match self.scope.node(input).and_then(|record| record.field(as_of)) {
            Some(Value::Timestamp(at)) => age(self.scope.clock(), *at),
            _ => internal(format!("`{input}.{as_of}` is not a timestamp")),
        }
    }

    fn builtin(&mut self, builtin: Builtin, args: &[Expr]) -> Result<Value> {
        let mut values = Vec::with_capacity(args.len());
        for arg in args {
            values.push(self.eval(arg)?);
        }
        builtin_of(builtin, &values.iter().collect::<Vec<_>>())
    }
}

/// A built-in function of evaluated arguments.
pub(crate) fn builtin_of(builtin: Builtin, values: &[&Value]) -> Result<Value> {
    Ok(match (builtin, values) {
        (Builtin::Len, [Value::List(items)]) => Value::Int(items.len() as i64),
        (Builtin::Len, [Value::Text(text)]) => Value::Int(text.chars().count() as i64),
        (Builtin::Contains, [Value::Text(text), Value::Text(part)]) => Value::Bool(text.contains(part.as_str())),
        (Builtin::Lower, [Value::Text(text)]) => Value::Text(text.to_lowercase()),
        (Builtin::IsPresent, [value]) => Value::Bool(**value != Value::Absent),
        (builtin, values) => return internal(format!("`{}` of {values:?}", builtin.name())),
    })
}

/// `now - at` in whole seconds.
fn age(now: Timestamp, at: Timestamp) -> Result<i64> {
    let mut seconds = now.seconds.checked_sub(at.seconds).ok_or_else(|| EvalError::overflow("an age"))?;
    // Whole seconds toward zero, so that `a - b` is `-(b - a)`.
    if seconds > 0 && now.nanos < at.nanos {
        seconds -= 1;
    } else if seconds < 0 && now.nanos > at.nanos {
        seconds += 1;
    }
    Ok(seconds)
}

fn bool_of(value: Value) -> Result<bool> {
    match value {
        Value::Bool(b) => Ok(b),
        other => internal(format!("a condition of value {other:?}")),
    }
}

/// Whole numbers to decimals, through lists and optionals.
pub(crate) fn widen(value: Value) -> Value {
    match value {
        Value::Int(i) => Value::Decimal(Decimal::from(i)),
        Value::List(items) => Value::List(items.into_iter().map(widen).collect()),
        other => other,
    }
}

pub(crate) fn negate(value: Value) -> Result<Value> {
    let overflow = || EvalError::overflow("a negation");
    Ok(match value {
        Value::Int(i) => Value::Int(i.checked_neg().ok_or_else(overflow)?),
        Value::Decimal(d) => Value::Decimal(-d),
        Value::Money(m) => Value::Money(Money { amount: -m.amount, currency: m.currency }),
        Value::Duration(d) => Value::Duration(d.checked_neg().ok_or_else(overflow)?),
        other => return internal(format!("`-` of {other:?}")),
    })
}

fn same_currency(op: BinaryOp, l: &Money, r: &Money) -> Result<()> {
    if l.currency == r.currency {
        Ok(())
    } else {
        Err(EvalError::CurrencyMismatch { op: op.as_str(), left: *l, right: *r })
    }
}

fn compare<T: PartialOrd>(op: BinaryOp, l: &T, r: &T) -> bool {
    match op {
        BinaryOp::Eq => l == r,
        BinaryOp::Ne => l != r,
        BinaryOp::Lt => l < r,
        BinaryOp::Le => l <= r,
        BinaryOp::Gt => l > r,
        BinaryOp::Ge => l >= r,
        _ => false,
    }
}

fn checked_decimal(op: BinaryOp, l: Decimal, r: Decimal) -> Result<Decimal> {
    // Worded only for an error.
    let what = || format!("`{}` of decimals", op.as_str());
    let operands = || Some(format!("{l} {} {r}", op.as_str()));
    let result = match op {
        BinaryOp::Add => l.checked_add(r),
        BinaryOp::Sub => l.checked_sub(r),
        BinaryOp::Mul => l.checked_mul(r),
        BinaryOp::Div => {
            if r.is_zero() {
                return Err(EvalError::DivisionByZero { what: what(), operands: operands() });
            }
            l.checked_div(r)
        }
        _ => return internal(what()),
    };
    let result = result.ok_or_else(|| EvalError::Overflow { what: what(), operands: operands() })?;
    // Products and quotients round to 28 decimal places (half to even); one of amounts
    // that are not zero that rounds to zero has lost every digit, which is an error.
    if result.is_zero() && matches!(op, BinaryOp::Mul | BinaryOp::Div) && !l.is_zero() && !r.is_zero() {
        return Err(EvalError::Underflow { what: what(), operands: operands() });
    }
    Ok(result)
}

fn checked_int(op: BinaryOp, l: i64, r: i64) -> Result<i64> {
    let result = match op {
        BinaryOp::Add => l.checked_add(r),
        BinaryOp::Sub => l.checked_sub(r),
        BinaryOp::Mul => l.checked_mul(r),
        _ => return internal(format!("`{}` of whole numbers", op.as_str())),
    };
    result.ok_or_else(|| EvalError::Overflow {
        what: format!("`{}` of whole numbers", op.as_str()),
        operands: Some(format!("{l} {} {r}", op.as_str())),
    })
}

/// What overflows when instant arithmetic leaves the years 0000 to 9999, which RFC 3339
/// text (and so evidence) can hold.
pub const INSTANT: &str = "an instant";

/// A binary operator other than `and`/`or`, on evaluated operands.
pub fn binary(op: BinaryOp, l: Value, r: Value) -> Result<Value> {
    use BinaryOp::*;
    if op.is_comparison() {
        let holds = match (&l, &r) {
            (Value::Int(a), Value::Int(b)) => compare(op, a, b),
            (Value::Decimal(a), Value::Decimal(b)) => compare(op, a, b),
            (Value::Money(a), Value::Money(b)) => {
                same_currency(op, a, b)?;
                compare(op, &a.amount, &b.amount)
            }
            (Value::Timestamp(a), Value::Timestamp(b)) => compare(op, a, b),
            (Value::Duration(a), Value::Duration(b)) => compare(op, a, b),
            (a, b) if matches!(op, Eq | Ne) && same_shape(a, b) => (a == b) == (op == Eq),
            _ => return internal(format!("`{}` of {l:?} and {r:?}", op.as_str())),
        };
        return Ok(Value::Bool(holds));
    }
    let overflow = |what: &str| EvalError::overflow(what);
    Ok(match (op, l, r) {
        (_, Value::Int(a), Value::Int(b)) => Value::Int(checked_int(op, a, b)?),
        (_, Value::Decimal(a), Value::Decimal(b)) => Value::Decimal(checked_decimal(op, a, b)?),
        (Add | Sub, Value::Money(a), Value::Money(b)) => {
            same_currency(op, &a, &b)?;
            Value::Money(Money { amount: checked_decimal(op, a.amount, b.amount)?, currency: a.currency })
        }
        (Div, Value::Money(a), Value::Money(b)) => {
            same_currency(op, &a, &b)?;
            Value::Decimal(checked_decimal(op, a.amount, b.amount)?)
        }
        (Mul | Div, Value::Money(a), Value::Decimal(b)) => {
            Value::Money(Money { amount: checked_decimal(op, a.amount, b)?, currency: a.currency })
        }
        (Mul, Value::Decimal(a), Value::Money(b)) => {
            Value::Money(Money { amount: checked_decimal(op, a, b.amount)?, currency: b.currency })
        }
        (Add, Value::Timestamp(t), Value::Duration(d)) | (Add, Value::Duration(d), Value::Timestamp(t)) => {
            Value::Timestamp(Timestamp {
                seconds: t
                    .seconds
                    .checked_add(d)
                    .filter(|s| flow_ir::time::in_range(*s))
                    .ok_or_else(|| overflow(INSTANT))?,
                nanos: t.nanos,
            })
        }
        (Sub, Value::Timestamp(t), Value::Duration(d)) => Value::Timestamp(Timestamp {
            seconds: t
                .seconds
                .checked_sub(d)
                .filter(|s| flow_ir::time::in_range(*s))
                .ok_or_else(|| overflow(INSTANT))?,
            nanos: t.nanos,
        }),
        (Sub, Value::Timestamp(a), Value::Timestamp(b)) => Value::Duration(age(a, b)?),
        (Add | Sub, Value::Duration(a), Value::Duration(b)) => Value::Duration(checked_int(op, a, b)?),
        (Mul, Value::Duration(a), Value::Int(b)) | (Mul, Value::Int(b), Value::Duration(a)) => {
            Value::Duration(checked_int(op, a, b)?)
        }
        (Div, Value::Duration(a), Value::Duration(b)) => {
            Value::Decimal(checked_decimal(op, Decimal::from(a), Decimal::from(b))?)
        }
        (op, l, r) => return internal(format!("`{}` of {l:?} and {r:?}", op.as_str())),
    })
}

/// Whether two values are of one kind (equality of a verified plan compares like with like).
fn same_shape(a: &Value, b: &Value) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}
