//! Printing typed expressions and values back in the language's own syntax, for messages.

use flow_syntax::ast::{Decimal, SmolStr, UnaryOp};

use crate::db::Db;
use crate::hir::{Expr, ExprKind, Flow, Literal, Part, Ref, StepKind};
use crate::signatures::{self, Decl};
use crate::ty::{EnumKind, EnumRef};

/// The names that references in an expression stand for.
#[derive(Clone, Copy)]
pub struct Names<'a> {
    pub db: &'a dyn Db,
    pub flow: Option<&'a Flow>,
    pub fn_params: &'a [(SmolStr, crate::ty::Ty)],
}

impl Names<'_> {
    /// The variant names of `e`, in order: an enum's declared variants, a review's
    /// outcomes (with `skipped` when it has a condition) or its reasons.
    pub fn variants(&self, e: &EnumRef) -> Vec<SmolStr> {
        match &e.kind {
            EnumKind::Decl(id) => match signatures::decl(self.db, *id) {
                Some(Decl::Enum(sig)) => sig.variants.iter().map(|v| v.name.clone()).collect(),
                _ => Vec::new(),
            },
            EnumKind::Outcome { step, .. } | EnumKind::Reason { step, .. } => {
                match self.flow.and_then(|f| f.steps.get(*step as usize)).map(|s| &s.kind) {
                    Some(StepKind::Review { outcomes, reasons, condition, .. }) => match e.kind {
                        EnumKind::Outcome { .. } => {
                            let skipped = condition.as_ref().map(|_| SmolStr::new_static("skipped"));
                            outcomes.iter().cloned().chain(skipped).collect()
                        }
                        _ => reasons.clone(),
                    },
                    _ => Vec::new(),
                }
            }
        }
    }

    /// The name of variant `index` of `e`.
    pub fn variant(&self, e: &EnumRef, index: u32) -> String {
        self.variants(e).get(index as usize).map_or_else(|| "?".to_owned(), ToString::to_string)
    }

    fn of(&self, r: Ref, locals: &[String]) -> String {
        let flow_name = |list: Option<String>| list.unwrap_or_else(|| "?".to_owned());
        match r {
            Ref::Input(i) => flow_name(self.flow.and_then(|f| f.inputs.get(i as usize)).map(|x| x.name.to_string())),
            Ref::Param(i) => flow_name(self.flow.and_then(|f| f.params.get(i as usize)).map(|x| x.name.to_string())),
            Ref::Step(i) => flow_name(self.flow.and_then(|f| f.steps.get(i as usize)).map(|x| x.name.to_string())),
            Ref::FnParam(i) => self.fn_params.get(i as usize).map_or_else(|| "?".to_owned(), |p| p.0.to_string()),
            Ref::Local(depth) => locals.iter().rev().nth(depth as usize).cloned().unwrap_or_else(|| "?".to_owned()),
        }
    }
}

/// Writes `n` with `_` between groups of three digits when it has five or more digits, as
/// amounts are written in flows (`10_000`).
pub fn decimal(value: Decimal) -> String {
    let text = value.normalize().to_string();
    let (sign, unsigned) = text.strip_prefix('-').map_or(("", text.as_str()), |rest| ("-", rest));
    let (whole, fraction) = unsigned.split_once('.').map_or((unsigned, None), |(w, f)| (w, Some(f)));
    let grouped = if whole.len() >= 5 {
        let mut out = String::new();
        for (i, c) in whole.chars().enumerate() {
            if i > 0 && (whole.len() - i) % 3 == 0 {
                out.push('_');
            }
            out.push(c);
        }
        out
    } else {
        whole.to_owned()
    };
    match fraction {
        Some(fraction) => format!("{sign}{grouped}.{fraction}"),
        None => format!("{sign}{grouped}"),
    }
}

/// A number of seconds in the largest unit that divides it: `48h`, `7d`, `90s`.
pub fn duration(seconds: i64) -> String {
    for (unit, size) in [("y", 365 * 86_400), ("w", 7 * 86_400), ("d", 86_400), ("h", 3_600), ("m", 60)] {
        if seconds != 0 && seconds % size == 0 {
            return format!("{}{unit}", seconds / size);
        }
    }
    format!("{seconds}s")
}

/// An instant in the literal syntax: `@2026-04-11T13:35:00Z`.
pub fn timestamp(seconds: i64, nanos: u32) -> String {
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    let (hour, minute, second) = (of_day / 3_600, of_day % 3_600 / 60, of_day % 60);
    let fraction = if nanos == 0 { String::new() } else { format!(".{nanos:09}").trim_end_matches('0').to_owned() };
    format!("@{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{fraction}Z")
}

pub fn literal(lit: &Literal) -> String {
    match lit {
        Literal::Int(n) => decimal(Decimal::from(*n)),
        Literal::Decimal(d) => decimal(*d),
        Literal::Money { amount, currency } => format!("{} {currency}", decimal(*amount)),
        Literal::Duration(seconds) => duration(*seconds),
        Literal::Timestamp(t) => timestamp(t.seconds, t.nanos),
        Literal::Bool(b) => b.to_string(),
        Literal::Text(text) => format!("{text:?}"),
    }
}

/// The expression in source syntax.
pub fn expr(names: Names<'_>, expr: &Expr) -> String {
    let mut locals = Vec::new();
    write(names, expr, &mut locals)
}

fn write(names: Names<'_>, expr: &Expr, locals: &mut Vec<String>) -> String {
    let go = |e: &Expr, locals: &mut Vec<String>| write(names, e, locals);
    match &expr.kind {
        ExprKind::Lit(lit) => literal(lit),
        ExprKind::Interpolation(parts) => {
            let mut out = String::from("\"");
            for part in parts {
                match part {
                    Part::Text(text) => out.push_str(&text.escape_debug().to_string()),
                    Part::Expr(e) => {
                        out.push('{');
                        out.push_str(&go(e, locals));
                        out.push('}');
                    }
                }
            }
            out.push('"');
            out
        }
        ExprKind::Ref(r) => names.of(*r, locals),
        ExprKind::Variant(e, index) => names.variant(e, *index),
        ExprKind::Field { base, name, .. } => format!("{}.{name}", go(base, locals)),
        ExprKind::Call { function, args } => {
            let args: Vec<String> = args.iter().map(|a| go(a, locals)).collect();
            format!("{}({})", signatures::decl_name(names.db, *function), args.join(", "))
        }
        ExprKind::Builtin { builtin, args } => {
            let args: Vec<String> = args.iter().map(|a| go(a, locals)).collect();
            format!("{}({})", builtin.name(), args.join(", "))
        }
        ExprKind::Quantifier { all, list, var, body } => {
            let list = go(list, locals);
            locals.push(var.to_string());
            let body = go(body, locals);
            locals.pop();
            format!("{}({list}, {var} => {body})", if *all { "all" } else { "any" })
        }
        ExprKind::List(items) => {
            let items: Vec<String> = items.iter().map(|i| go(i, locals)).collect();
            format!("[{}]", items.join(", "))
        }
        ExprKind::Record { record, fields } => {
            let sig = signatures::record(names.db, record.id);
            let written: Vec<String> = fields
                .iter()
                .enumerate()
                .filter_map(|(index, value)| {
                    let value = value.as_ref()?;
                    let name = sig.and_then(|s| s.fields.get(index)).map_or("?", |f| f.name.as_str());
                    Some(format!("{name}: {}", go(value, locals)))
                })
                .collect();
            format!("{} {{ {} }}", record.name, written.join(", "))
        }
        ExprKind::Unary { op, operand } => match op {
            UnaryOp::Not => format!("not {}", go(operand, locals)),
            UnaryOp::Neg => format!("-{}", go(operand, locals)),
        },
        ExprKind::Binary { op, lhs, rhs } => format!("{} {} {}", go(lhs, locals), op.as_str(), go(rhs, locals)),
        ExprKind::If { branches, otherwise } => {
            let mut out = String::new();
            for (i, (condition, then)) in branches.iter().enumerate() {
                if i > 0 {
                    out.push_str(" else ");
                }
                out.push_str(&format!("if {} then {}", go(condition, locals), go(then, locals)));
            }
            out.push_str(&format!(" else {}", go(otherwise, locals)));
            out
        }
        ExprKind::Error => "?".to_owned(),
    }
}
