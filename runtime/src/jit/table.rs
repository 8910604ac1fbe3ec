//! Large approval matrices as decision tables: compiled in time linear in their rows rather
//! than to code, and decided by a few lookups rather than by testing rows in turn.
//!
//! A matrix qualifies when it has at least [`MIN_ROWS`] rows and each row's condition is
//! absent (`otherwise`) or a conjunction (`and`) of *tests*: a place of a node's value held
//! in the frame (`app.score`, not inside a function, not optional) compared with a constant
//! of its kind — whole numbers, durations, decimals, money of the place's declared currency,
//! instants, and, with `==` and `!=` only, flags and variants — or a flag place alone (`app.vip`,
//! `not app.vip`). Such tests cannot fail and have no effects, so a row holds exactly when
//! each of its tests does, in any order, and the first row that holds is the one the
//! interpreter finds by testing rows in turn.
//!
//! **The table.** Each place is a *column*. Its constants, sorted, cut the line of values
//! into *regions*: below the first constant, each constant, between two, above the last
//! (`2k + 1` regions for `k` constants); every test of a column holds on whole regions. For
//! each region the table keeps the set of rows whose tests of that column all hold there, as
//! a bitset over rows, and a bitset of the rows that do not test the column. Deciding reads
//! each column's value, finds its region by binary search, and goes through the rows 64 at a
//! time, intersecting the columns' sets: the first row left is the answer.
//!
//! A table larger than [`MAX_WORDS`] (pathological matrices whose constants are nearly all
//! different) is not built: the matrix is compiled to code as smaller ones are.

use flow_ir::expr::{BinaryOp, Expr, ExprKind, Literal};
use flow_ir::plan::Row;
use flow_ir::ty::{Currency, Ty};
use rust_decimal::Decimal;
use smol_str::SmolStr;

use super::{Kind, Layout, Rep, Tables, decimal_of};

/// Matrices with fewer rows are compiled to code: they compile fast enough, and decide
/// faster as code.
pub(crate) const MIN_ROWS: usize = 64;

/// The most 64-bit words the tables of one plan may take (32 MiB): a matrix whose table does
/// not fit in what the plan's other tables left is compiled to code.
pub(crate) const MAX_WORDS: usize = 4 << 20;

/// A constant or a value of a column, as it orders: whole numbers, durations, flags,
/// variants and instants (as nanoseconds) as integers; decimals and money as decimals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Key {
    Int(i128),
    Decimal(Decimal),
}

/// A test of a column: `value OP constant`.
#[derive(Clone, Copy)]
struct Test {
    op: BinaryOp,
    constant: Key,
}

/// A place the rows test, as the frame holds it.
struct Column {
    node: u32,
    path: Vec<SmolStr>,
    rep: Rep,
    currency: Option<Currency>,
    /// Its frame offset, once laid out.
    offset: u32,
    /// Its constants, sorted, without repeats.
    constants: Vec<Key>,
    /// By region, the rows whose tests of the column hold there (`words` words each).
    regions: Vec<u64>,
    /// The rows that do not test the column.
    free: Vec<u64>,
}

/// A matrix as a decision table.
pub(crate) struct Table {
    columns: Vec<Column>,
    /// Words per bitset: one bit per row.
    words: usize,
    rows: usize,
}

/// A row's tests: by column, in the order the row makes them.
type RowTests = Vec<(usize, Test)>;

/// What a matrix's rows test, before the columns are laid out in the frame; `None` when the
/// matrix does not qualify.
pub(crate) struct Plan {
    columns: Vec<Column>,
    /// For each row: `None` for `otherwise`, else its tests.
    rows: Vec<Option<RowTests>>,
}

/// What reading a matrix's rows needs of the code being compiled: the numbers of variant
/// names, the nodes the frame holds, and how values of each type are held.
pub(crate) struct Places<'a> {
    pub tables: &'a mut Tables,
    pub node_index: &'a dyn Fn(&str) -> Option<u32>,
    pub rep_of: &'a dyn Fn(&Ty) -> Rep,
}

impl Plan {
    /// The matrix's tests, when every row is a conjunction of tests of places the frame
    /// holds.
    ///
    /// `budget` is what the plan's tables may still take, in words: what this one takes is
    /// taken from it.
    pub(crate) fn of(rows: &[Row], places: &mut Places<'_>, budget: &mut usize) -> Option<Plan> {
        if rows.len() < MIN_ROWS {
            return None;
        }
        let mut plan = Plan { columns: Vec::new(), rows: Vec::with_capacity(rows.len()) };
        for row in rows {
            let Some(condition) = &row.condition else {
                plan.rows.push(None);
                continue;
            };
            let mut tests = Vec::new();
            plan.conjunction(condition, &mut tests, places)?;
            // By column, so that building the table reads each row's tests once.
            tests.sort_by_key(|(column, _)| *column);
            plan.rows.push(Some(tests));
        }
        // Each constant once (a hash set), then sorted: rows repeat their constants, and
        // comparing decimals is what sorting costs.
        let mut distinct: Vec<rustc_hash::FxHashSet<Key>> = vec![Default::default(); plan.columns.len()];
        for (c, test) in plan.rows.iter().flatten().flatten() {
            distinct[*c].insert(test.constant);
        }
        for (column, distinct) in plan.columns.iter_mut().zip(distinct) {
            column.constants = distinct.into_iter().collect();
            column.constants.sort_unstable();
        }
        let regions: usize = plan.columns.iter().map(|c| 2 * c.constants.len() + 2).sum();
        let words = regions.checked_mul(rows.len().div_ceil(64))?;
        *budget = budget.checked_sub(words)?;
        Some(plan)
    }

    /// Adds the tests of conjunction `expr` to `tests`; `None` when it is not one of tests.
    fn conjunction(&mut self, expr: &Expr, tests: &mut RowTests, places: &mut Places<'_>) -> Option<()> {
        // Plans nest expressions up to 1,024 levels deep.
        stacker::maybe_grow(256 * 1024, 2 * 1024 * 1024, || self.conjunction_inner(expr, tests, places))
    }

    fn conjunction_inner(&mut self, expr: &Expr, tests: &mut RowTests, places: &mut Places<'_>) -> Option<()> {
        match &expr.kind {
            ExprKind::Binary { op: BinaryOp::And, lhs, rhs } => {
                self.conjunction(lhs, tests, places)?;
                self.conjunction(rhs, tests, places)
            }
            // A flag alone, or negated: `app.vip`, `not app.vip`.
            ExprKind::Not(inner) if inner.ty == Ty::Bool => {
                let column = self.column(inner, places)?;
                tests.push((column, Test { op: BinaryOp::Eq, constant: Key::Int(0) }));
                Some(())
            }
            ExprKind::Node(_) | ExprKind::Field { .. } if expr.ty == Ty::Bool => {
                let column = self.column(expr, places)?;
                tests.push((column, Test { op: BinaryOp::Eq, constant: Key::Int(1) }));
                Some(())
            }
            ExprKind::Binary { op, lhs, rhs } if op.is_comparison() => {
                // `constant OP place` is `place OP' constant`.
                let (place, constant, op) = match (constant_of(lhs, places.tables), constant_of(rhs, places.tables)) {
                    (None, Some(constant)) => (lhs, constant, *op),
                    (Some(constant), None) => (rhs, constant, flipped(*op)),
                    _ => return None,
                };
                let column = self.column(place, places)?;
                let rep = self.columns[column].rep;
                let fits = match (rep.kind, &place.ty, constant_ty(lhs, rhs)) {
                    (Kind::Bool | Kind::Variant, _, _) => matches!(op, BinaryOp::Eq | BinaryOp::Ne),
                    (Kind::Money, Ty::Money(Some(declared)), Some(Ty::Money(Some(currency)))) => *declared == currency,
                    (Kind::Money, _, _) => false,
                    (_, ty, Some(constant)) => *ty == constant,
                    _ => false,
                };
                fits.then(|| tests.push((column, Test { op, constant })))
            }
            _ => None,
        }
    }

    /// The column of place `expr`, added on first use; `None` when it is not a place the
    /// frame holds as a scalar.
    fn column(&mut self, expr: &Expr, places: &Places<'_>) -> Option<usize> {
        // Only fields of fields: never through an optional (`Unwrap`), whose frame words are
        // zeros when it is absent.
        let mut at = expr;
        let mut path = Vec::new();
        let node = loop {
            match &at.kind {
                ExprKind::Field { base, field } => {
                    path.push(field.clone());
                    at = base;
                }
                ExprKind::Node(node) => break node,
                _ => return None,
            }
        };
        path.reverse();
        let node = (places.node_index)(node)?;
        let rep = (places.rep_of)(&expr.ty);
        if rep.optional || rep.kind == Kind::Handle {
            return None;
        }
        let currency = match &expr.ty {
            Ty::Money(currency) => *currency,
            _ => None,
        };
        if let Some(i) = self.columns.iter().position(|c| c.node == node && c.path == path && c.rep == rep) {
            return Some(i);
        }
        self.columns.push(Column {
            node,
            path,
            rep,
            currency,
            offset: 0,
            constants: Vec::new(),
            regions: Vec::new(),
            free: Vec::new(),
        });
        Some(self.columns.len() - 1)
    }

    /// Lays the columns out in the frame and builds the table, with the nodes it reads.
    pub(crate) fn build(mut self, layout: &mut Layout) -> (Table, Vec<u32>) {
        let rows = self.rows.len();
        let words = rows.div_ceil(64);
        let positions: Vec<rustc_hash::FxHashMap<Key, usize>> = self
            .columns
            .iter()
            .map(|column| column.constants.iter().enumerate().map(|(i, key)| (*key, i)).collect())
            .collect();
        for column in &mut self.columns {
            column.offset = layout.place(column.node, (&column.path, Vec::new()), column.rep, column.currency);
            column.regions = vec![0; (2 * column.constants.len() + 1) * words];
            column.free = vec![0; words];
        }
        // Every row is free of every column until it tests it (no bit past the last row).
        for column in &mut self.columns {
            column.free.fill(u64::MAX);
            if let Some(last) = column.free.last_mut()
                && !rows.is_multiple_of(64)
            {
                *last = (1u64 << (rows % 64)) - 1;
            }
        }
        let mut excluded: Vec<usize> = Vec::new();
        for (r, row) in self.rows.iter().enumerate() {
            let bit = 1u64 << (r % 64);
            let tests = row.as_deref().unwrap_or_default();
            // The row's tests of one column at a time (they are sorted by column).
            for group in tests.chunk_by(|a, b| a.0 == b.0) {
                let c = group[0].0;
                let column = &mut self.columns[c];
                column.free[r / 64] &= !bit;
                // The regions every test holds on: an interval, less the constants `!=` names.
                let last = 2 * column.constants.len();
                let (mut low, mut high) = (0, last);
                excluded.clear();
                for (_, test) in group {
                    let at = 2 * positions[c].get(&test.constant).copied().unwrap_or_default() + 1;
                    let (from, to) = match test.op {
                        BinaryOp::Eq => (at, at),
                        BinaryOp::Lt => (0, at - 1),
                        BinaryOp::Le => (0, at),
                        BinaryOp::Gt => (at + 1, last),
                        BinaryOp::Ge => (at, last),
                        _ => {
                            excluded.push(at);
                            (0, last)
                        }
                    };
                    (low, high) = (low.max(from), high.min(to));
                }
                for region in low..=high {
                    column.regions[region * words + r / 64] |= bit;
                }
                for region in excluded.iter().copied().filter(|region| (low..=high).contains(region)) {
                    column.regions[region * words + r / 64] &= !bit;
                }
            }
        }
        let mut reads: Vec<u32> = self.columns.iter().map(|c| c.node).collect();
        reads.sort_unstable();
        reads.dedup();
        (Table { columns: self.columns, words, rows }, reads)
    }
}

/// The constant `expr` is, as a key, if it is one.
fn constant_of(expr: &Expr, tables: &mut Tables) -> Option<Key> {
    Some(match &expr.kind {
        ExprKind::Lit(Literal::Int(i) | Literal::Duration(i)) => Key::Int(i128::from(*i)),
        ExprKind::Lit(Literal::Bool(b)) => Key::Int(i128::from(*b)),
        ExprKind::Lit(Literal::Decimal(d)) => Key::Decimal(*d),
        ExprKind::Lit(Literal::Money(m)) => Key::Decimal(m.amount),
        ExprKind::Lit(Literal::Timestamp(t)) => Key::Int(nanos(t.seconds, t.nanos)),
        ExprKind::Variant(name) => Key::Int(i128::from(tables.variant(name))),
        _ => return None,
    })
}

/// The type of whichever of `lhs` and `rhs` is a constant.
fn constant_ty(lhs: &Expr, rhs: &Expr) -> Option<Ty> {
    [lhs, rhs].into_iter().find(|e| matches!(e.kind, ExprKind::Lit(_) | ExprKind::Variant(_))).map(|e| match &e.kind {
        // A variant is of the place's enum: the place's type is taken for it.
        ExprKind::Variant(_) => [lhs, rhs]
            .into_iter()
            .find(|e| !matches!(e.kind, ExprKind::Variant(_)))
            .map_or(e.ty.clone(), |p| p.ty.clone()),
        _ => e.ty.clone(),
    })
}

fn flipped(op: BinaryOp) -> BinaryOp {
    match op {
        BinaryOp::Lt => BinaryOp::Gt,
        BinaryOp::Le => BinaryOp::Ge,
        BinaryOp::Gt => BinaryOp::Lt,
        BinaryOp::Ge => BinaryOp::Le,
        other => other,
    }
}

fn nanos(seconds: i64, nanos: u32) -> i128 {
    i128::from(seconds) * 1_000_000_000 + i128::from(nanos)
}

impl Table {
    /// The first row that holds for the values in `frame`'s words (their nodes held: the
    /// caller checks), or `None`.
    pub(crate) fn first(&self, frame: &[u64]) -> Option<usize> {
        let mut regions = [0usize; 8];
        let mut many = Vec::new();
        let regions: &mut [usize] = if self.columns.len() <= 8 {
            &mut regions[..self.columns.len()]
        } else {
            many.resize(self.columns.len(), 0);
            &mut many
        };
        for (column, region) in self.columns.iter().zip(regions.iter_mut()) {
            let words = &frame[column.offset as usize..][..column.rep.words()];
            let value = match column.rep.kind {
                Kind::Decimal | Kind::Money => Key::Decimal(decimal_of([words[0], words[1]])),
                Kind::Timestamp => Key::Int(nanos(words[0] as i64, words[1] as u32)),
                _ => Key::Int(i128::from(words[0] as i64)),
            };
            *region = match column.constants.binary_search(&value) {
                Ok(at) => 2 * at + 1,
                Err(at) => 2 * at,
            } * self.words;
        }
        for w in 0..self.words {
            let mut left = u64::MAX;
            for (column, region) in self.columns.iter().zip(regions.iter()) {
                left &= column.regions[region + w] | column.free[w];
            }
            if left != 0 {
                let row = w * 64 + left.trailing_zeros() as usize;
                return (row < self.rows).then_some(row);
            }
        }
        None
    }
}
