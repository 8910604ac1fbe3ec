//! How expressions are written in a plan file: one JSON array per expression, the
//! operation first, then the operands. `["+", a, b]` adds; `["node", "vendor"]` reads a
//! node; `["field", ["node", "vendor"], "rating"]` reads a field. Arrays keep plan files
//! small and fast to read, and shallow: one level of nesting per level of expression.
//!
//! Types are written only where the operands do not determine them, right after the
//! operation: literals, enum variants, record values, widenings and `if`s. The verifier
//! computes the others. A literal's value is written as its type says: `["lit", "Int", 7]`,
//! `["lit", "Money[USD]", "10000 USD"]`, `["lit", "Duration", "24h"]`, `["lit",
//! "Timestamp", "2026-04-11T13:35:00Z"]`, `["lit", "Decimal", "0.7"]` (decimals as text, so
//! that no digit is lost to binary floating point).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use smol_str::SmolStr;

use crate::expr::{BinaryOp, Branch, Builtin, Expr, ExprKind, Literal, Money, Named, Part, Timestamp};
use crate::time;
use crate::ty::{Text, Ty};

/// Whether an expression of this kind writes its type: its operands do not determine it.
fn writes_type(kind: &ExprKind) -> bool {
    matches!(
        kind,
        ExprKind::Lit(_)
            | ExprKind::Variant(_)
            | ExprKind::Record(_)
            | ExprKind::List(_)
            | ExprKind::Widen(_)
            | ExprKind::If { .. }
    )
}

/// Whether an expression with this tag writes its type.
fn tag_writes_type(tag: &str) -> bool {
    matches!(tag, "lit" | "variant" | "record" | "list" | "widen" | "if")
}

/// The operation tag of an expression.
fn tag(kind: &ExprKind) -> &'static str {
    match kind {
        ExprKind::Lit(_) => "lit",
        ExprKind::Interpolate(_) => "text",
        ExprKind::Node(_) => "node",
        ExprKind::Param(_) => "param",
        ExprKind::Local(_) => "local",
        ExprKind::Variant(_) => "variant",
        ExprKind::Field { .. } => "field",
        ExprKind::Unwrap(_) => "unwrap",
        ExprKind::Declassify { .. } => "declassify",
        ExprKind::Widen(_) => "widen",
        ExprKind::Call { .. } => "call",
        ExprKind::Builtin { builtin, .. } => builtin.name(),
        ExprKind::Now => "now",
        ExprKind::StartedBy => "started_by",
        ExprKind::Age(_) => "age",
        ExprKind::Stale(_) => "stale",
        ExprKind::Degraded(_) => "degraded",
        ExprKind::Quantifier { all: true, .. } => "all",
        ExprKind::Quantifier { all: false, .. } => "any",
        ExprKind::Record(_) => "record",
        ExprKind::List(_) => "list",
        ExprKind::Not(_) => "not",
        ExprKind::Neg(_) => "neg",
        ExprKind::Binary { op, .. } => op.as_str(),
        ExprKind::If { .. } => "if",
    }
}

/// A record value's fields, written as an object.
struct Fields<'a>(&'a [Named]);

impl Serialize for Fields<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for field in self.0 {
            map.serialize_entry(field.name.as_str(), &field.value)?;
        }
        map.end()
    }
}

/// A part of a text: a string, or an expression.
struct WirePart<'a>(&'a Part);

impl Serialize for WirePart<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Part::Text(text) => serializer.serialize_str(text),
            Part::Expr(expr) => expr.serialize(serializer),
        }
    }
}

fn literal_value<S: SerializeSeq>(seq: &mut S, literal: &Literal) -> Result<(), S::Error> {
    match literal {
        Literal::Int(n) => seq.serialize_element(n),
        Literal::Decimal(d) => seq.serialize_element(&d.to_string()),
        Literal::Money(money) => seq.serialize_element(&money.to_string()),
        Literal::Duration(seconds) => seq.serialize_element(&time::format_duration(*seconds)),
        Literal::Timestamp(t) => seq.serialize_element(&t.to_string()),
        Literal::Bool(b) => seq.serialize_element(b),
        Literal::Text(text) => seq.serialize_element(text),
    }
}

impl Serialize for Expr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        crate::with_stack(|| self.write(serializer))
    }
}

impl Expr {
    fn write<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(None)?;
        seq.serialize_element(tag(&self.kind))?;
        if writes_type(&self.kind) {
            seq.serialize_element(&self.ty)?;
        }
        match &self.kind {
            ExprKind::Lit(literal) => literal_value(&mut seq, literal)?,
            ExprKind::Interpolate(parts) => {
                for part in parts {
                    seq.serialize_element(&WirePart(part))?;
                }
            }
            ExprKind::Node(name)
            | ExprKind::Variant(name)
            | ExprKind::Age(name)
            | ExprKind::Stale(name)
            | ExprKind::Degraded(name) => seq.serialize_element(name.as_str())?,
            ExprKind::Param(n) | ExprKind::Local(n) => seq.serialize_element(n)?,
            ExprKind::Field { base, field } => {
                seq.serialize_element(base)?;
                seq.serialize_element(field.as_str())?;
            }
            ExprKind::Unwrap(inner) | ExprKind::Widen(inner) | ExprKind::Not(inner) | ExprKind::Neg(inner) => {
                seq.serialize_element(inner)?;
            }
            ExprKind::Declassify { value, reason } => {
                seq.serialize_element(value)?;
                seq.serialize_element(reason.as_str())?;
            }
            ExprKind::Call { function, args } => {
                seq.serialize_element(function.as_str())?;
                for arg in args {
                    seq.serialize_element(arg)?;
                }
            }
            ExprKind::Builtin { args, .. } | ExprKind::List(args) => {
                for arg in args {
                    seq.serialize_element(arg)?;
                }
            }
            ExprKind::Now | ExprKind::StartedBy => {}
            ExprKind::Quantifier { var, list, body, .. } => {
                seq.serialize_element(var.as_str())?;
                seq.serialize_element(list)?;
                seq.serialize_element(body)?;
            }
            ExprKind::Record(fields) => seq.serialize_element(&Fields(fields))?,
            ExprKind::Binary { lhs, rhs, .. } => {
                seq.serialize_element(lhs)?;
                seq.serialize_element(rhs)?;
            }
            ExprKind::If { branches, otherwise } => {
                for branch in branches {
                    seq.serialize_element(&branch.condition)?;
                    seq.serialize_element(&branch.then)?;
                }
                seq.serialize_element(otherwise)?;
            }
        }
        seq.end()
    }
}

/// A scalar JSON value, for a literal read before its meaning is known.
enum Scalar<'a> {
    Bool(bool),
    Int(i64),
    Text(Cow<'a, str>),
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Scalar<'de>, D::Error> {
        struct ScalarVisitor;
        impl<'de> Visitor<'de> for ScalarVisitor {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a literal value: a boolean, a whole number or a string")
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Bool(b))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Int(n))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Scalar<'de>, E> {
                i64::try_from(n).map(Scalar::Int).map_err(|_| E::custom("the number is too large for an `Int`"))
            }
            fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Text(Cow::Borrowed(text)))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Text(Cow::Owned(text.to_owned())))
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

fn literal<E: de::Error>(ty: &Ty, value: Scalar<'_>) -> Result<Literal, E> {
    let shown = match &value {
        Scalar::Bool(b) => b.to_string(),
        Scalar::Int(n) => n.to_string(),
        Scalar::Text(text) => format!("{text:?}"),
    };
    let wrong = || E::custom(format!("{shown} is not a literal of type `{ty}`"));
    Ok(match (ty, value) {
        (Ty::Int, Scalar::Int(n)) => Literal::Int(n),
        (Ty::Bool, Scalar::Bool(b)) => Literal::Bool(b),
        (Ty::Text, Scalar::Text(text)) => Literal::Text(text.into_owned()),
        (Ty::Decimal, Scalar::Text(text)) => Literal::Decimal(text.parse().map_err(|_| wrong())?),
        (Ty::Money(Some(currency)), Scalar::Text(text)) => {
            let money = Money::parse(&text).ok_or_else(wrong)?;
            if money.currency != *currency {
                return Err(wrong());
            }
            Literal::Money(money)
        }
        (Ty::Duration, Scalar::Text(text)) => Literal::Duration(time::parse_duration(&text).ok_or_else(wrong)?),
        (Ty::Timestamp, Scalar::Text(text)) => {
            let (seconds, nanos) = time::parse_timestamp(&text).ok_or_else(wrong)?;
            Literal::Timestamp(Timestamp { seconds, nanos })
        }
        _ => return Err(wrong()),
    })
}

/// A part of a text as read: a string, or an expression.
enum ReadPart {
    Text(String),
    Expr(Expr),
}

impl<'de> Deserialize<'de> for ReadPart {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ReadPart, D::Error> {
        struct PartVisitor;
        impl<'de> Visitor<'de> for PartVisitor {
            type Value = ReadPart;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an expression")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<ReadPart, E> {
                Ok(ReadPart::Text(text.to_owned()))
            }
            fn visit_string<E: de::Error>(self, text: String) -> Result<ReadPart, E> {
                Ok(ReadPart::Text(text))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<ReadPart, A::Error> {
                ExprVisitor.visit_seq(seq).map(ReadPart::Expr)
            }
        }
        deserializer.deserialize_any(PartVisitor)
    }
}

/// A record value's fields, read from an object.
struct ReadFields(Vec<Named>);

impl<'de> Deserialize<'de> for ReadFields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ReadFields, D::Error> {
        struct FieldsVisitor;
        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = ReadFields;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of field values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ReadFields, A::Error> {
                let mut fields = Vec::new();
                while let Some(Text(name)) = map.next_key::<Text<'de>>()? {
                    fields.push(Named { name: SmolStr::new(name), value: map.next_value()? });
                }
                Ok(ReadFields(fields))
            }
        }
        deserializer.deserialize_map(FieldsVisitor)
    }
}

struct ExprVisitor;

/// How deeply expressions may nest in a plan file. The compiler bounds nesting in source
/// (256 operators, 32 brackets), so real plans stay far below this; deeper files are refused
/// while they are read, so that no plan file can exhaust the reader's stack.
pub const MAX_DEPTH: usize = 1024;

thread_local! {
    static DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Counts one level of expression nesting while it is read.
struct DepthGuard;

impl DepthGuard {
    fn enter<E: de::Error>() -> Result<DepthGuard, E> {
        let depth = DEPTH.with(|d| {
            d.set(d.get() + 1);
            d.get()
        });
        let guard = DepthGuard;
        if depth > MAX_DEPTH {
            return Err(E::custom(format!("expressions nest deeper than {MAX_DEPTH} levels")));
        }
        Ok(guard)
    }
}

impl Drop for DepthGuard {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

/// Any value where none may be: refused without reading inside it.
struct Nothing;

impl<'de> Deserialize<'de> for Nothing {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Nothing, D::Error> {
        struct NothingVisitor;
        impl<'de> Visitor<'de> for NothingVisitor {
            type Value = Nothing;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("no further operand")
            }
        }
        deserializer.deserialize_any(NothingVisitor)
    }
}

fn next<'de, T: Deserialize<'de>, A: SeqAccess<'de>>(seq: &mut A, what: &str) -> Result<T, A::Error> {
    seq.next_element()?.ok_or_else(|| de::Error::custom(format!("the expression lacks its {what}")))
}

/// Every remaining element of the array.
fn rest<'de, T: Deserialize<'de>, A: SeqAccess<'de>>(seq: &mut A) -> Result<Vec<T>, A::Error> {
    let mut items = Vec::new();
    while let Some(item) = seq.next_element()? {
        items.push(item);
    }
    Ok(items)
}

fn boxed<'de, A: SeqAccess<'de>>(seq: &mut A, what: &str) -> Result<Box<Expr>, A::Error> {
    next::<Expr, A>(seq, what).map(Box::new)
}

impl<'de> Visitor<'de> for ExprVisitor {
    type Value = Expr;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an expression: an array of its operation, its type and its operands")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Expr, A::Error> {
        crate::with_stack(|| read_expr(seq))
    }
}

fn read_expr<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Expr, A::Error> {
    let _depth = DepthGuard::enter::<A::Error>()?;
    let Text(tag) = next::<Text<'de>, A>(&mut seq, "operation")?;
    // Computed by the verifier where the plan does not write it.
    let ty: Ty = if tag_writes_type(&tag) { next(&mut seq, "type")? } else { Ty::Nothing };
    let name = |seq: &mut A, what: &str| next::<Text<'de>, A>(seq, what).map(|t| SmolStr::new(t.0));
    let kind = match tag.as_ref() {
        "lit" => {
            let value: Scalar<'_> = next(&mut seq, "value")?;
            ExprKind::Lit(literal(&ty, value)?)
        }
        "text" => ExprKind::Interpolate(
            rest::<ReadPart, A>(&mut seq)?
                .into_iter()
                .map(|p| match p {
                    ReadPart::Text(text) => Part::Text(text),
                    ReadPart::Expr(e) => Part::Expr(e),
                })
                .collect(),
        ),
        "node" => ExprKind::Node(name(&mut seq, "node")?),
        "variant" => ExprKind::Variant(name(&mut seq, "variant")?),
        "age" => ExprKind::Age(name(&mut seq, "input")?),
        "stale" => ExprKind::Stale(name(&mut seq, "input")?),
        "degraded" => ExprKind::Degraded(name(&mut seq, "step")?),
        "param" => ExprKind::Param(next(&mut seq, "position")?),
        "local" => ExprKind::Local(next(&mut seq, "depth")?),
        "field" => {
            let base = boxed(&mut seq, "record")?;
            ExprKind::Field { base, field: name(&mut seq, "field")? }
        }
        "unwrap" => ExprKind::Unwrap(boxed(&mut seq, "operand")?),
        "declassify" => {
            let value = boxed(&mut seq, "value")?;
            ExprKind::Declassify { value, reason: name(&mut seq, "reason")? }
        }
        "widen" => ExprKind::Widen(boxed(&mut seq, "operand")?),
        "not" => ExprKind::Not(boxed(&mut seq, "operand")?),
        "neg" => ExprKind::Neg(boxed(&mut seq, "operand")?),
        "call" => {
            let function = name(&mut seq, "function")?;
            ExprKind::Call { function, args: rest(&mut seq)? }
        }
        "now" => ExprKind::Now,
        "started_by" => ExprKind::StartedBy,
        "any" | "all" => {
            let var = name(&mut seq, "item name")?;
            let list = boxed(&mut seq, "list")?;
            ExprKind::Quantifier { all: tag == "all", var, list, body: boxed(&mut seq, "condition")? }
        }
        "record" => ExprKind::Record(next::<ReadFields, A>(&mut seq, "fields")?.0),
        "list" => ExprKind::List(rest(&mut seq)?),
        "if" => {
            let mut operands: Vec<Expr> = rest(&mut seq)?;
            if operands.len().is_multiple_of(2) {
                return Err(de::Error::custom("an `if` has conditions and branches in pairs, then an `else` branch"));
            }
            let otherwise = Box::new(operands.pop().ok_or_else(|| de::Error::custom("an `if` needs branches"))?);
            let mut branches = Vec::new();
            let mut operands = operands.into_iter();
            while let (Some(condition), Some(then)) = (operands.next(), operands.next()) {
                branches.push(Branch { condition, then });
            }
            ExprKind::If { branches, otherwise }
        }
        other => {
            if let Some(builtin) = Builtin::ALL.into_iter().find(|b| b.name() == other) {
                ExprKind::Builtin { builtin, args: rest(&mut seq)? }
            } else if let Some(op) = BinaryOp::ALL.into_iter().find(|op| op.as_str() == other) {
                let lhs = boxed(&mut seq, "left operand")?;
                ExprKind::Binary { op, lhs, rhs: boxed(&mut seq, "right operand")? }
            } else {
                return Err(de::Error::custom(format!("`{other}` is not an operation of the expression IR")));
            }
        }
    };
    if seq.next_element::<Nothing>()?.is_some() {
        return Err(de::Error::custom(format!("the `{tag}` expression has too many operands")));
    }
    Ok(Expr { ty, kind })
}

impl<'de> Deserialize<'de> for Expr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Expr, D::Error> {
        deserializer.deserialize_seq(ExprVisitor)
    }
}
