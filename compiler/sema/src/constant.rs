//! Evaluating the constant expressions of param defaults, to find the ones that fail —
//! division by zero, overflow, an instant past the year 9999 — at compile time, at the
//! param, rather than in every run.
//!
//! The arithmetic is the runtime's, rule for rule (`runtime/src/interp.rs`): whole
//! numbers in 64 bits with checked operations, `Int / Int` and every mix with decimals as
//! exact 96-bit decimals (`rust_decimal`'s checked operations, rounding to 28 decimal
//! places, and a product or quotient of non-zero amounts that rounds to zero an error),
//! durations in whole seconds, instants in the years 0000 to 9999. Only failures matter
//! here: an expression this cannot evaluate (a comparison, an `if`) is left to the runtime.

use flow_syntax::ast::{BinaryOp, Decimal, UnaryOp};

use crate::hir::{Expr, ExprKind, Literal};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Const {
    Int(i64),
    Dec(Decimal),
    Money(Decimal),
    Duration(i64),
    Instant(i64),
}

/// Why a constant expression fails, when it does (`None`: it does not, or this cannot
/// tell).
pub fn failure(expr: &Expr) -> Option<String> {
    eval(expr).err()
}

/// The first second of the year 0000 and the last of 9999, as `flow_ir::time` has them.
const FIRST: i64 = -62_167_219_200;
const LAST: i64 = 253_402_300_799;

fn eval(expr: &Expr) -> Result<Option<Const>, String> {
    Ok(Some(match &expr.kind {
        ExprKind::Lit(Literal::Int(n)) => Const::Int(*n),
        ExprKind::Lit(Literal::Decimal(d)) => Const::Dec(*d),
        ExprKind::Lit(Literal::Money { amount, .. }) => Const::Money(*amount),
        ExprKind::Lit(Literal::Duration(seconds)) => Const::Duration(*seconds),
        ExprKind::Lit(Literal::Timestamp(t)) => Const::Instant(t.seconds),
        ExprKind::Unary { op: UnaryOp::Neg, operand } => {
            let overflow = || "overflow: a negation is too large".to_owned();
            match eval(operand)? {
                Some(Const::Int(n)) => Const::Int(n.checked_neg().ok_or_else(overflow)?),
                Some(Const::Duration(n)) => Const::Duration(n.checked_neg().ok_or_else(overflow)?),
                Some(Const::Dec(d)) => Const::Dec(-d),
                Some(Const::Money(d)) => Const::Money(-d),
                _ => return Ok(None),
            }
        }
        ExprKind::Binary { op, lhs, rhs } if !op.is_comparison() && !matches!(op, BinaryOp::And | BinaryOp::Or) => {
            let (Some(l), Some(r)) = (eval(lhs)?, eval(rhs)?) else { return Ok(None) };
            return binary(*op, l, r);
        }
        _ => return Ok(None),
    }))
}

fn int(op: BinaryOp, l: i64, r: i64) -> Result<i64, String> {
    match op {
        BinaryOp::Add => l.checked_add(r),
        BinaryOp::Sub => l.checked_sub(r),
        BinaryOp::Mul => l.checked_mul(r),
        _ => None,
    }
    .ok_or_else(|| format!("overflow: `{l} {} {r}` is too large", op.as_str()))
}

fn decimal(op: BinaryOp, l: Decimal, r: Decimal) -> Result<Decimal, String> {
    let shown = format!("`{l} {} {r}`", op.as_str());
    let result = match op {
        BinaryOp::Add => l.checked_add(r),
        BinaryOp::Sub => l.checked_sub(r),
        BinaryOp::Mul => l.checked_mul(r),
        BinaryOp::Div if r.is_zero() => return Err(format!("division by zero in {shown}")),
        BinaryOp::Div => l.checked_div(r),
        _ => None,
    }
    .ok_or_else(|| format!("overflow: {shown} is too large"))?;
    if result.is_zero() && matches!(op, BinaryOp::Mul | BinaryOp::Div) && !l.is_zero() && !r.is_zero() {
        return Err(format!("underflow: {shown} rounds to zero"));
    }
    Ok(result)
}

/// `l op r`, `None` for a combination the runtime's types do not allow (never in a
/// checked flow).
fn binary(op: BinaryOp, l: Const, r: Const) -> Result<Option<Const>, String> {
    use BinaryOp::*;
    use Const::{Dec, Duration, Instant, Int, Money};
    let number = |c: Const| match c {
        Int(n) => Some(Decimal::from(n)),
        Dec(d) => Some(d),
        _ => None,
    };
    Ok(Some(match (op, l, r) {
        (Div, Int(a), Int(b)) => Dec(decimal(Div, Decimal::from(a), Decimal::from(b))?),
        (_, Int(a), Int(b)) => Int(int(op, a, b)?),
        (_, Int(_) | Dec(_), Int(_) | Dec(_)) => {
            Dec(decimal(op, number(l).unwrap_or_default(), number(r).unwrap_or_default())?)
        }
        (Add | Sub, Money(a), Money(b)) => Money(decimal(op, a, b)?),
        (Div, Money(a), Money(b)) => Dec(decimal(Div, a, b)?),
        (Mul | Div, Money(a), b) if number(b).is_some() => Money(decimal(op, a, number(b).unwrap_or_default())?),
        (Mul, a, Money(b)) if number(a).is_some() => Money(decimal(Mul, number(a).unwrap_or_default(), b)?),
        (Add | Sub, Duration(a), Duration(b)) => Duration(int(op, a, b)?),
        (Mul, Duration(a), Int(b)) | (Mul, Int(b), Duration(a)) => Duration(int(Mul, a, b)?),
        (Div, Duration(a), Duration(b)) => Dec(decimal(Div, Decimal::from(a), Decimal::from(b))?),
        (Add, Instant(t), Duration(d)) | (Add, Duration(d), Instant(t)) => instant(t.checked_add(d))?,
        (Sub, Instant(t), Duration(d)) => instant(t.checked_sub(d))?,
        (Sub, Instant(a), Instant(b)) => Duration(int(Sub, a, b)?),
        _ => return Ok(None),
    }))
}

fn instant(seconds: Option<i64>) -> Result<Const, String> {
    match seconds {
        Some(s) if (FIRST..=LAST).contains(&s) => Ok(Const::Instant(s)),
        _ => Err("overflow: the instant falls outside the years 0000 to 9999".to_owned()),
    }
}
