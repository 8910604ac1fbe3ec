//! Approval matrices as decision tables (`E2003`, `E2004`, `W2001`).
//!
//! A matrix's rows are tried in order and the first whose condition holds decides. The
//! analysis proves that some row always applies, and that every row applies somewhere,
//! or gives a concrete counterexample. Conditions are split into atoms over variables:
//! enum and Bool values (fields, `let`s, `degraded(x)`…) and comparisons of numbers, money
//! and durations with constants, params or each other. Params are variables too, so the
//! result holds whatever value a what-if replay gives them. Any other condition becomes
//! an opaque Bool atom: it may be true or false independently of everything else, so a
//! matrix that depends on one is exhaustive only if it would be for both values, which in
//! practice means it needs an `otherwise` row.

use std::collections::BTreeMap;

use flow_diagnostics::{Code, Diagnostic, FileId, Span};
use flow_syntax::ast::{BinaryOp, Decimal, SmolStr, UnaryOp};

use crate::db::Db;
use crate::hir::{Expr, ExprKind, Flow, Literal, Ref, Row, StepKind};
use crate::print::{self, Names};
use crate::ty::{Currency, Ty};

/// How many cases the analysis of one matrix may look at before it gives up.
const BUDGET: usize = 200_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unit {
    Number,
    Money(Option<Currency>),
    Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    Bool,
    Enum(Vec<SmolStr>),
    Num { integer: bool, unit: Unit },
}

#[derive(Clone, Debug)]
struct Var {
    /// How the variable is written, e.g. `request.amount`.
    text: String,
    kind: Kind,
    /// Whether the variable is a condition the analysis cannot see into.
    opaque: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Clone, Debug)]
enum Operand {
    Const(Decimal),
    Var(usize),
}

#[derive(Clone, Debug)]
enum Cond {
    Const(bool),
    Not(Box<Cond>),
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Bool(usize),
    EnumIs(usize, usize),
    Cmp(usize, Cmp, Operand),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Value {
    Bool(bool),
    Enum(usize),
    Num(Decimal),
}

/// What the analysis of one matrix found: the cases its rows cover and miss.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Cases no row covers, each as `variable == value` conditions.
    pub missing: Vec<Vec<String>>,
    /// Whether a missing case depends on a condition beyond the analysis.
    pub missing_needs_otherwise: bool,
    /// Rows (by index) that never apply, and whether their own condition can never hold.
    pub dead: Vec<(usize, bool)>,
    /// Whether the analysis stopped at its budget.
    pub too_complex: bool,
    /// Amounts of no declared currency (`Money`) compared with an amount in one
    /// (`100 USD`): the variable and that currency. An amount in another currency makes
    /// the comparison fail, so no row applies to it.
    pub currencies: Vec<(String, String)>,
}

struct Builder<'a> {
    names: Names<'a>,
    vars: Vec<Var>,
    by_text: BTreeMap<String, usize>,
    /// Plain `Money` variables compared with an amount of a currency, and that currency.
    currencies: Vec<(usize, String)>,
}

impl Builder<'_> {
    fn var(&mut self, text: String, kind: Kind, opaque: bool) -> usize {
        if let Some(&index) = self.by_text.get(&text) {
            return index;
        }
        let index = self.vars.len();
        self.by_text.insert(text.clone(), index);
        self.vars.push(Var { text, kind, opaque });
        index
    }

    /// The variable a place (a reference followed by fields) stands for, if it is one the
    /// analysis understands.
    fn place(&mut self, expr: &Expr) -> Option<usize> {
        let is_place = {
            let mut e = expr;
            loop {
                match &e.kind {
                    ExprKind::Ref(Ref::Local(_)) => break false,
                    ExprKind::Ref(_) => break true,
                    ExprKind::Field { base, .. } => e = base,
                    _ => break false,
                }
            }
        };
        if !is_place {
            return None;
        }
        let kind = self.kind(&expr.ty)?;
        let text = print::expr(self.names, expr);
        Some(self.var(text, kind, false))
    }

    fn kind(&self, ty: &Ty) -> Option<Kind> {
        Some(match ty {
            Ty::Bool => Kind::Bool,
            Ty::Enum(e) => Kind::Enum(self.names.variants(e)),
            Ty::Int => Kind::Num { integer: true, unit: Unit::Number },
            Ty::Decimal => Kind::Num { integer: false, unit: Unit::Number },
            Ty::Money(currency) => Kind::Num { integer: false, unit: Unit::Money(*currency) },
            Ty::Duration => Kind::Num { integer: true, unit: Unit::Duration },
            _ => return None,
        })
    }

    fn constant(expr: &Expr) -> Option<Decimal> {
        match &expr.kind {
            ExprKind::Lit(Literal::Int(n)) => Some(Decimal::from(*n)),
            ExprKind::Lit(Literal::Decimal(d)) => Some(*d),
            ExprKind::Lit(Literal::Money { amount, .. }) => Some(*amount),
            ExprKind::Lit(Literal::Duration(seconds)) => Some(Decimal::from(*seconds)),
            ExprKind::Unary { op: UnaryOp::Neg, operand } => Builder::constant(operand).map(|d| -d),
            _ => None,
        }
    }

    fn opaque(&mut self, expr: &Expr) -> Cond {
        let text = print::expr(self.names, expr);
        Cond::Bool(self.var(text, Kind::Bool, true))
    }

    fn cond(&mut self, expr: &Expr) -> Cond {
        match &expr.kind {
            ExprKind::Lit(Literal::Bool(b)) => Cond::Const(*b),
            ExprKind::Unary { op: UnaryOp::Not, operand } => Cond::Not(Box::new(self.cond(operand))),
            ExprKind::Binary { op: BinaryOp::And, lhs, rhs } => Cond::And(vec![self.cond(lhs), self.cond(rhs)]),
            ExprKind::Binary { op: BinaryOp::Or, lhs, rhs } => Cond::Or(vec![self.cond(lhs), self.cond(rhs)]),
            ExprKind::Binary { op, lhs, rhs } if op.is_comparison() => {
                self.comparison(*op, lhs, rhs).unwrap_or_else(|| self.opaque(expr))
            }
            ExprKind::Ref(_) | ExprKind::Field { .. } if expr.ty == Ty::Bool => match self.place(expr) {
                Some(var) => Cond::Bool(var),
                None => self.opaque(expr),
            },
            _ => self.opaque(expr),
        }
    }

    fn comparison(&mut self, op: BinaryOp, lhs: &Expr, rhs: &Expr) -> Option<Cond> {
        let cmp = match op {
            BinaryOp::Eq => Cmp::Eq,
            BinaryOp::Ne => Cmp::Ne,
            BinaryOp::Lt => Cmp::Lt,
            BinaryOp::Le => Cmp::Le,
            BinaryOp::Gt => Cmp::Gt,
            _ => Cmp::Ge,
        };
        let negate = |cond: Cond, cmp: Cmp| if cmp == Cmp::Ne { Cond::Not(Box::new(cond)) } else { cond };
        // An enum or Bool place against a constant.
        for (place, other) in [(lhs, rhs), (rhs, lhs)] {
            match (&place.ty, &other.kind) {
                (Ty::Enum(_), ExprKind::Variant(_, index)) if matches!(cmp, Cmp::Eq | Cmp::Ne) => {
                    let var = self.place(place)?;
                    return Some(negate(Cond::EnumIs(var, *index as usize), cmp));
                }
                (Ty::Bool, ExprKind::Lit(Literal::Bool(value))) if matches!(cmp, Cmp::Eq | Cmp::Ne) => {
                    let var = self.place(place)?;
                    let atom = if *value { Cond::Bool(var) } else { Cond::Not(Box::new(Cond::Bool(var))) };
                    return Some(negate(atom, cmp));
                }
                _ => {}
            }
        }
        // Numbers: a place against a constant or another place.
        self.kind(&lhs.ty).filter(|k| matches!(k, Kind::Num { .. }))?;
        for (place, other) in [(lhs, rhs), (rhs, lhs)] {
            if matches!(place.ty, Ty::Money(None))
                && let ExprKind::Lit(Literal::Money { currency, .. }) = &other.kind
                && let Some(var) = self.place(place)
                && !self.currencies.iter().any(|(v, _)| *v == var)
            {
                self.currencies.push((var, currency.to_string()));
            }
        }
        match (self.place(lhs), self.place(rhs)) {
            (Some(l), Some(r)) => Some(Cond::Cmp(l, cmp, Operand::Var(r))),
            (Some(l), None) => Some(Cond::Cmp(l, cmp, Operand::Const(Builder::constant(rhs)?))),
            (None, Some(r)) => Some(Cond::Cmp(r, flip(cmp), Operand::Const(Builder::constant(lhs)?))),
            (None, None) => None,
        }
    }
}

fn flip(cmp: Cmp) -> Cmp {
    match cmp {
        Cmp::Lt => Cmp::Gt,
        Cmp::Le => Cmp::Ge,
        Cmp::Gt => Cmp::Lt,
        Cmp::Ge => Cmp::Le,
        other => other,
    }
}

fn compare(a: Decimal, cmp: Cmp, b: Decimal) -> bool {
    match cmp {
        Cmp::Eq => a == b,
        Cmp::Ne => a != b,
        Cmp::Lt => a < b,
        Cmp::Le => a <= b,
        Cmp::Gt => a > b,
        Cmp::Ge => a >= b,
    }
}

fn eval(cond: &Cond, values: &[Option<Value>]) -> Option<bool> {
    match cond {
        Cond::Const(b) => Some(*b),
        Cond::Not(inner) => eval(inner, values).map(|b| !b),
        Cond::And(parts) => {
            let mut all = Some(true);
            for part in parts {
                match eval(part, values) {
                    Some(false) => return Some(false),
                    None => all = None,
                    Some(true) => {}
                }
            }
            all
        }
        Cond::Or(parts) => {
            let mut any = Some(false);
            for part in parts {
                match eval(part, values) {
                    Some(true) => return Some(true),
                    None => any = None,
                    Some(false) => {}
                }
            }
            any
        }
        Cond::Bool(var) => match values[*var]? {
            Value::Bool(b) => Some(b),
            _ => None,
        },
        Cond::EnumIs(var, variant) => match values[*var]? {
            Value::Enum(v) => Some(v == *variant),
            _ => None,
        },
        Cond::Cmp(var, cmp, operand) => {
            let Value::Num(a) = values[*var]? else { return None };
            let b = match operand {
                Operand::Const(c) => *c,
                Operand::Var(other) => match values[*other]? {
                    Value::Num(b) => b,
                    _ => return None,
                },
            };
            Some(compare(a, *cmp, b))
        }
    }
}

/// The first variable of `cond` that has no value yet.
fn unassigned(cond: &Cond, values: &[Option<Value>]) -> Option<usize> {
    match cond {
        Cond::Const(_) => None,
        Cond::Not(inner) => unassigned(inner, values),
        Cond::And(parts) | Cond::Or(parts) => parts.iter().find_map(|p| unassigned(p, values)),
        Cond::Bool(var) | Cond::EnumIs(var, _) => values[*var].is_none().then_some(*var),
        Cond::Cmp(var, _, operand) => {
            if values[*var].is_none() {
                return Some(*var);
            }
            match operand {
                Operand::Var(other) if values[*other].is_none() => Some(*other),
                _ => None,
            }
        }
    }
}

struct Explorer<'a> {
    vars: &'a [Var],
    rows: &'a [Cond],
    /// For each numeric variable, the group it is compared within and the candidate values
    /// of every member, jointly.
    groups: Vec<Vec<usize>>,
    group_of: BTreeMap<usize, usize>,
    candidates: Vec<Vec<Vec<Decimal>>>,
    used: Vec<bool>,
    missing: Vec<Vec<Option<Value>>>,
    leaves: usize,
}

impl Explorer<'_> {
    /// Explores the cases below the current partial assignment. `alive` holds the rows
    /// (in order) that are not yet known to be false: assigning more values only turns
    /// unknown conditions into known ones, so rows false here stay false below.
    fn explore(&mut self, values: &mut Vec<Option<Value>>, alive: &[usize]) {
        if self.leaves >= BUDGET {
            return;
        }
        self.leaves += 1;
        for (position, &index) in alive.iter().enumerate() {
            match eval(&self.rows[index], values) {
                Some(false) => continue,
                Some(true) => {
                    self.used[index] = true;
                    return;
                }
                None => {
                    let Some(var) = unassigned(&self.rows[index], values) else { return };
                    let still_alive: Vec<usize> = alive[position..]
                        .iter()
                        .copied()
                        .filter(|&row| eval(&self.rows[row], values) != Some(false))
                        .collect();
                    self.split(var, values, &still_alive);
                    return;
                }
            }
        }
        if self.missing.len() < 8 {
            self.missing.push(values.clone());
        }
    }

    fn split(&mut self, var: usize, values: &mut Vec<Option<Value>>, alive: &[usize]) {
        match &self.vars[var].kind {
            Kind::Bool => {
                for b in [true, false] {
                    values[var] = Some(Value::Bool(b));
                    self.explore(values, alive);
                }
                values[var] = None;
            }
            Kind::Enum(variants) => {
                for index in 0..variants.len() {
                    values[var] = Some(Value::Enum(index));
                    self.explore(values, alive);
                }
                values[var] = None;
            }
            Kind::Num { .. } => {
                let group = self.group_of[&var];
                let members = self.groups[group].clone();
                let candidates = self.candidates[group].clone();
                let mut assignment = vec![0usize; members.len()];
                'tuples: loop {
                    for (slot, member) in members.iter().enumerate() {
                        values[*member] = Some(Value::Num(candidates[slot][assignment[slot]]));
                    }
                    self.explore(values, alive);
                    if self.leaves >= BUDGET {
                        break;
                    }
                    for slot in 0..members.len() {
                        assignment[slot] += 1;
                        if assignment[slot] < candidates[slot].len() {
                            continue 'tuples;
                        }
                        assignment[slot] = 0;
                    }
                    break;
                }
                for member in members {
                    values[member] = None;
                }
            }
        }
    }
}

/// Values worth trying for a numeric variable compared with `constants` within a group of
/// `n` variables: every constant, and `n` distinct values in each gap between constants
/// and beyond them (whole numbers for whole-number variables). Halving and doubling keep
/// the values round, so that counterexamples read well (`2_500 USD`, not `1_666.67 USD`).
fn candidates(constants: &[Decimal], n: usize, integer: bool) -> Vec<Decimal> {
    let n = n.max(1);
    let one = Decimal::ONE;
    // Doubling stops where decimals end: beyond, there is no other value to try.
    let powers: Vec<Decimal> = (1..=n)
        .scan(one, |power, _| {
            *power = power.checked_mul(Decimal::TWO)?;
            Some(*power)
        })
        .collect();
    // Whole-number variables are never worth a fraction: its neighbours instead.
    let constants: Vec<Decimal> = if integer {
        let mut whole: Vec<Decimal> = constants.iter().flat_map(|c| [c.floor(), c.ceil()]).collect();
        whole.sort();
        whole.dedup();
        whole
    } else {
        constants.to_vec()
    };
    let constants = constants.as_slice();
    let round = |value: Decimal| if integer { value.floor() } else { value };
    // `n` distinct values in the open interval, preferring round ones, then neighbours
    // of the bounds (whole numbers only where they fit).
    let spread = |round_points: Vec<Decimal>, low: Option<Decimal>, high: Option<Decimal>| -> Vec<Decimal> {
        let inside = |v: &Decimal| low.is_none_or(|l| *v > l) && high.is_none_or(|h| *v < h);
        let mut points: Vec<Decimal> = Vec::new();
        for point in round_points.into_iter().map(round) {
            if inside(&point) && !points.contains(&point) && points.len() < n {
                points.push(point);
            }
        }
        let mut step = one;
        while points.len() < n {
            let next = match (low, high) {
                (Some(l), _) if integer => l.checked_add(step),
                (None, Some(h)) if integer => h.checked_sub(step),
                (Some(l), Some(h)) => h
                    .checked_sub(l)
                    .and_then(|d| d.checked_mul(step))
                    .and_then(|d| d.checked_div(Decimal::from(n as u64 + 1)))
                    .and_then(|d| l.checked_add(d)),
                (Some(l), None) => l.checked_add(step),
                (None, Some(h)) => h.checked_sub(step),
                (None, None) => step.checked_mul(Decimal::ONE_HUNDRED),
            };
            let Some(next) = next.filter(|next| inside(next)) else { break };
            if !points.contains(&next) {
                points.push(next);
            }
            step += one;
        }
        points
    };
    let mut out: Vec<Decimal> = constants.to_vec();
    match (constants.first(), constants.last()) {
        (Some(&min), Some(&max)) => {
            let below = powers
                .iter()
                .filter_map(
                    |p| if min > Decimal::ZERO { min.checked_div(*p) } else { min.checked_sub(p / Decimal::TWO) },
                )
                .collect();
            out.extend(spread(below, None, Some(min)));
            let above = powers
                .iter()
                .filter_map(
                    |p| if max > Decimal::ZERO { max.checked_mul(*p) } else { max.checked_add(p / Decimal::TWO) },
                )
                .collect();
            out.extend(spread(above, Some(max), None));
            for pair in constants.windows(2) {
                let (a, b) = (pair[0], pair[1]);
                let between = powers
                    .iter()
                    .filter_map(|p| b.checked_sub(a)?.checked_div(*p).and_then(|d| a.checked_add(d)))
                    .collect();
                out.extend(spread(between, Some(a), Some(b)));
            }
        }
        _ => out.extend((0..n).map(|k| Decimal::from(k as u64 * 100))),
    }
    out.sort();
    out.dedup();
    out
}

/// Analyses one matrix.
fn analyse(names: Names<'_>, rows: &[Row]) -> Option<(Coverage, Vec<Var>)> {
    let mut builder = Builder { names, vars: Vec::new(), by_text: BTreeMap::new(), currencies: Vec::new() };
    let mut conds = Vec::new();
    for row in rows {
        match &row.condition {
            None => conds.push(Cond::Const(true)),
            Some(condition) => {
                let mut broken = false;
                condition.walk(&mut |e| broken |= e.ty.is_error() || matches!(e.kind, ExprKind::Error));
                if broken {
                    // Already reported; the analysis would only add noise.
                    return None;
                }
                conds.push(builder.cond(condition));
            }
        }
    }
    let currencies: Vec<(String, String)> =
        builder.currencies.iter().map(|(var, currency)| (builder.vars[*var].text.clone(), currency.clone())).collect();
    let vars = builder.vars;
    // Group numeric variables compared with each other; collect each group's constants.
    let mut parent: Vec<usize> = (0..vars.len()).collect();
    fn find(parent: &mut [usize], x: usize) -> usize {
        let mut root = x;
        while parent[root] != root {
            root = parent[root];
        }
        parent[x] = root;
        root
    }
    let mut constants: BTreeMap<usize, Vec<Decimal>> = BTreeMap::new();
    fn atoms<'c>(cond: &'c Cond, out: &mut Vec<&'c Cond>) {
        match cond {
            Cond::Not(inner) => atoms(inner, out),
            Cond::And(parts) | Cond::Or(parts) => parts.iter().for_each(|p| atoms(p, out)),
            other => out.push(other),
        }
    }
    let mut all_atoms = Vec::new();
    for cond in &conds {
        atoms(cond, &mut all_atoms);
    }
    for atom in &all_atoms {
        if let Cond::Cmp(a, _, Operand::Var(b)) = atom {
            let (ra, rb) = (find(&mut parent, *a), find(&mut parent, *b));
            parent[ra] = rb;
        }
    }
    for atom in &all_atoms {
        if let Cond::Cmp(a, _, Operand::Const(c)) = atom {
            let root = find(&mut parent, *a);
            constants.entry(root).or_default().push(*c);
        }
    }
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut group_of = BTreeMap::new();
    let mut roots: BTreeMap<usize, usize> = BTreeMap::new();
    for (index, var) in vars.iter().enumerate() {
        if !matches!(var.kind, Kind::Num { .. }) {
            continue;
        }
        let root = find(&mut parent, index);
        let group = *roots.entry(root).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[group].push(index);
        group_of.insert(index, group);
    }
    let candidate_lists: Vec<Vec<Vec<Decimal>>> = groups
        .iter()
        .map(|members| {
            let root = find(&mut parent, members[0]);
            let mut consts = constants.get(&root).cloned().unwrap_or_default();
            consts.sort();
            consts.dedup();
            members
                .iter()
                .map(|m| {
                    let integer = matches!(vars[*m].kind, Kind::Num { integer: true, .. });
                    candidates(&consts, members.len(), integer)
                })
                .collect()
        })
        .collect();
    let mut explorer = Explorer {
        vars: &vars,
        rows: &conds,
        groups,
        group_of,
        candidates: candidate_lists,
        used: vec![false; conds.len()],
        missing: Vec::new(),
        leaves: 0,
    };
    let mut values = vec![None; vars.len()];
    let all_rows: Vec<usize> = (0..conds.len()).collect();
    explorer.explore(&mut values, &all_rows);
    let too_complex = explorer.leaves >= BUDGET;
    let mut analysis = Coverage { too_complex, currencies, ..Coverage::default() };
    if too_complex {
        return Some((analysis, vars));
    }
    for case in &explorer.missing {
        let mut conditions = Vec::new();
        for (index, value) in case.iter().enumerate() {
            let Some(value) = value else { continue };
            let var = &vars[index];
            analysis.missing_needs_otherwise |= var.opaque;
            conditions.push(describe(var, *value));
        }
        analysis.missing.push(conditions);
    }
    for (index, used) in explorer.used.iter().enumerate() {
        if !used {
            // Is the row's own condition satisfiable at all?
            let alone = [conds[index].clone()];
            let mut solo = Explorer {
                vars: &vars,
                rows: &alone,
                groups: explorer.groups.clone(),
                group_of: explorer.group_of.clone(),
                candidates: explorer.candidates.clone(),
                used: vec![false],
                missing: Vec::new(),
                leaves: 0,
            };
            let mut values = vec![None; vars.len()];
            solo.explore(&mut values, &[0]);
            analysis.dead.push((index, !solo.used[0]));
        }
    }
    Some((analysis, vars))
}

/// `risk.tier == high`, `request.amount = 10_000 USD`.
fn describe(var: &Var, value: Value) -> String {
    match (&var.kind, value) {
        (Kind::Bool, Value::Bool(b)) => format!("{} == {b}", var.text),
        (Kind::Enum(variants), Value::Enum(index)) => {
            format!("{} == {}", var.text, variants.get(index).map_or("?", SmolStr::as_str))
        }
        (Kind::Num { unit, .. }, Value::Num(n)) => {
            let shown = match unit {
                Unit::Number => print::decimal(n),
                Unit::Money(Some(currency)) => format!("{} {currency}", print::decimal(n)),
                Unit::Money(None) => format!("{} (in the amount's currency)", print::decimal(n)),
                Unit::Duration => print::duration(n.trunc().to_string().parse().unwrap_or(0)),
            };
            format!("{} = {shown}", var.text)
        }
        _ => var.text.clone(),
    }
}

/// Checks every approval matrix of a flow.
pub fn check_flow(db: &dyn Db, file: FileId, flow: &Flow, out: &mut Vec<Diagnostic>) {
    let names = Names { db, flow: Some(flow), fn_params: &[] };
    for step in &flow.steps {
        let StepKind::Approval { rows, .. } = &step.kind else { continue };
        if rows.is_empty() {
            continue;
        }
        let Some((analysis, _)) = analyse(names, rows) else { continue };
        report(file, &step.name, step.name_span, rows, &analysis, out);
    }
}

fn report(file: FileId, name: &str, name_span: Span, rows: &[Row], analysis: &Coverage, out: &mut Vec<Diagnostic>) {
    let has_otherwise = rows.iter().any(|r| r.condition.is_none());
    if analysis.too_complex {
        out.push(
            Diagnostic::new(
                Code::W2001,
                file,
                name_span,
                format!("approval matrix `{name}` is too large to analyse completely"),
            )
            .with_note(format!("the analysis stopped after {BUDGET} cases; dead rows are not reported"))
            .with_help("split it, or use fewer conditions per row"),
        );
        if !has_otherwise {
            out.push(
                Diagnostic::new(
                    Code::E2003,
                    file,
                    name_span,
                    format!("approval matrix `{name}` cannot be shown to cover every case"),
                )
                .with_help("end it with an `otherwise => …` row"),
            );
        }
        return;
    }
    if let Some((var, currency)) = analysis.currencies.first() {
        out.push(
            Diagnostic::new(
                Code::E2003,
                file,
                name_span,
                format!("approval matrix `{name}` does not cover `{var}` in a currency other than {currency}"),
            )
            .with_primary_message("no row applies when this holds")
            .with_note(format!(
                "`{var}` is `Money`, of no declared currency, and comparing an amount in another currency with one \
                 in {currency} fails the step"
            ))
            .with_help(format!(
                "declare it `Money[{currency}]`, so that an amount in another currency is refused as input"
            )),
        );
    }
    if let Some(first) = analysis.missing.first() {
        let case = if first.is_empty() { "any case".to_owned() } else { format!("`{}`", first.join(", ")) };
        let mut diagnostic =
            Diagnostic::new(Code::E2003, file, name_span, format!("approval matrix `{name}` does not cover {case}"))
                .with_primary_message("no row applies when this holds");
        for more in analysis.missing.iter().skip(1).take(3) {
            diagnostic = diagnostic.with_note(format!("nor `{}`", more.join(", ")));
        }
        let numeric = first.iter().any(|c| c.contains(" = "));
        diagnostic = diagnostic.with_help(if analysis.missing_needs_otherwise {
            "some conditions are beyond what the compiler can analyse; end the matrix with an `otherwise => …` row"
                .to_owned()
        } else if numeric {
            "add a row that covers this case, or end the matrix with `otherwise => …`".to_owned()
        } else {
            format!("add a row such as `when {} => …`, or end the matrix with `otherwise => …`", first.join(" and "))
        });
        out.push(diagnostic);
    }
    for (index, never_true) in &analysis.dead {
        let row = &rows[*index];
        let message = format!("row {} of approval matrix `{name}` never applies", index + 1);
        let label = if *never_true {
            "its condition can never hold"
        } else if rows[..*index].iter().any(|r| r.condition.is_none()) {
            "it comes after the `otherwise` row"
        } else {
            "the rows above it already cover every case where its condition holds"
        };
        out.push(
            Diagnostic::new(Code::E2004, file, row.span, message)
                .with_primary_message(label)
                .with_help("remove the row, or change its condition or the rows above it"),
        );
    }
}
