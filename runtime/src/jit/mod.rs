//! Native code for a plan's expressions and approval matrices, compiled with cranelift when
//! the plan is loaded (once per plan hash), with exactly the interpreter's results and
//! errors ([`crate::interp`] stays the reference semantics).
//!
//! **Values for native code.** Every value of a scalar type has a fixed number of 64-bit
//! words ([`Rep`]): `Bool`, `Int`, `Duration` and enum variants one, `Decimal` two (its
//! 96-bit mantissa, scale and sign), `Timestamp` two (seconds, nanoseconds), `Money` three
//! (a decimal and its currency code); an optional has a presence word first. The places
//! that expressions read (`request.amount`, `risk.tier`, the clock, `degraded(step)`) are
//! laid out in a [`Frame`] of such words, written when a node gets its value — not when an
//! expression reads it — so a gate's comparisons are loads and compares. Texts, lists and
//! records are *handles*: pointers to [`Value`]s, read and built by helper functions the
//! compiled code calls ([`helpers`]).
//!
//! **Errors.** Native arithmetic detects overflow and currency mismatch, and then calls the
//! interpreter's own function for the operation, which produces the error — so messages are
//! the interpreter's by construction. Decimal arithmetic (and so division by zero) is the
//! interpreter's (`rust_decimal`) through a helper call; decimal comparisons are native.
//!
//! **Large matrices.** An approval matrix of 64 rows or more whose rows compare places with
//! constants is not compiled to code but to a decision table ([`table`]): built in time about
//! linear in its rows, decided by a lookup per column.
//!
//! **Fallback.** A plan the compiler cannot translate, or a host cranelift does not
//! support, runs on the interpreter, and the run's evidence says so ([`Native::compile`]
//! gives the reason). A node whose value does not fit the frame's layout (which a verified
//! plan with decoded values never gives) makes the expressions reading it run on the
//! interpreter.

// Native code is called through function pointers, and helpers read the words and values
// it passes by pointer: `unsafe` is confined to this module and `helpers`, each use with
// its reason.
#![allow(unsafe_code, reason = "calling JIT-compiled code and reading the memory it passes")]

mod codegen;
mod helpers;
mod table;

use flow_ir::PlanBody;
use flow_ir::expr::{Expr, Money, Timestamp};
use flow_ir::plan::NodeKind;
use flow_ir::ty::{Currency, Ty};
use rust_decimal::Decimal;
use rustc_hash::FxHashMap;
use smol_str::SmolStr;

use crate::interp::{EvalError, Scope};
use crate::value::Value;

/// The kind of a native value: how many words it has and what they mean.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Bool,
    Int,
    Duration,
    Decimal,
    Money,
    Timestamp,
    /// The variant's number in the plan's table of variant names.
    Variant,
    /// A pointer to a [`Value`]: texts, principals, lists, records.
    Handle,
}

/// How a value of a type is held by native code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Rep {
    pub kind: Kind,
    /// A presence word (0 or 1) comes first.
    pub optional: bool,
}

const KINDS: [Kind; 8] =
    [Kind::Bool, Kind::Int, Kind::Duration, Kind::Decimal, Kind::Money, Kind::Timestamp, Kind::Variant, Kind::Handle];

impl Kind {
    pub fn words(self) -> usize {
        match self {
            Kind::Bool | Kind::Int | Kind::Duration | Kind::Variant | Kind::Handle => 1,
            Kind::Decimal | Kind::Timestamp => 2,
            Kind::Money => 3,
        }
    }
}

impl Rep {
    pub fn words(self) -> usize {
        self.kind.words() + usize::from(self.optional)
    }

    /// The rep as one number, passed to helpers.
    pub fn code(self) -> u64 {
        let kind = KINDS.iter().position(|k| *k == self.kind).unwrap_or(0) as u64;
        kind | (u64::from(self.optional) << 8)
    }

    pub fn from_code(code: u64) -> Option<Rep> {
        Some(Rep { kind: *KINDS.get((code & 0xff) as usize)?, optional: code & 0x100 != 0 })
    }

    /// The rep of values of `ty` in plan `body`.
    pub fn of(body: &PlanBody, ty: &Ty) -> Rep {
        let (ty, optional) = match ty {
            Ty::Optional(inner) => (inner.unwrap_optional(), true),
            other => (other, false),
        };
        let kind = match ty {
            Ty::Bool => Kind::Bool,
            Ty::Int => Kind::Int,
            Ty::Duration => Kind::Duration,
            Ty::Decimal => Kind::Decimal,
            Ty::Money(_) => Kind::Money,
            Ty::Timestamp => Kind::Timestamp,
            Ty::Named(name) if body.enums.iter().any(|e| e.name == *name) => Kind::Variant,
            Ty::Outcome(_) | Ty::Reason(_) => Kind::Variant,
            _ => Kind::Handle,
        };
        Rep { kind, optional }
    }
}

/// A decimal's words: the low 64 bits of its mantissa; then its high 32 bits, with the
/// flags (scale in bits 48–55, sign in bit 63) above them.
pub(crate) fn decimal_words(d: Decimal) -> [u64; 2] {
    let b = d.serialize();
    let word = |i: usize| u64::from(u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]));
    let (flags, lo, mid, hi) = (word(0), word(4), word(8), word(12));
    [lo | mid << 32, hi | flags << 32]
}

pub(crate) fn decimal_of(words: [u64; 2]) -> Decimal {
    let mut b = [0u8; 16];
    b[0..4].copy_from_slice(&((words[1] >> 32) as u32).to_le_bytes());
    b[4..8].copy_from_slice(&(words[0] as u32).to_le_bytes());
    b[8..12].copy_from_slice(&((words[0] >> 32) as u32).to_le_bytes());
    b[12..16].copy_from_slice(&(words[1] as u32).to_le_bytes());
    Decimal::deserialize(b)
}

fn currency_word(currency: Currency) -> u64 {
    currency.code().into_iter().fold(0, |word, byte| word << 8 | u64::from(byte))
}

fn currency_of(word: u64) -> Option<Currency> {
    let bytes = [(word >> 16) as u8, (word >> 8) as u8, word as u8];
    Currency::new(std::str::from_utf8(&bytes).ok()?)
}

/// The names the compiled code refers to by number.
#[derive(Default)]
pub(crate) struct Tables {
    /// Variant names, numbered.
    pub variants: Vec<SmolStr>,
    variant_ids: FxHashMap<SmolStr, u64>,
    /// Field and node names, numbered.
    pub names: Vec<SmolStr>,
    name_ids: FxHashMap<SmolStr, u64>,
    /// Messages of internal errors, numbered.
    pub messages: Vec<String>,
    /// Record values built by the code: the record type's fields, those given (in order)
    /// and the optional ones left out.
    pub records: Vec<(Vec<SmolStr>, Vec<SmolStr>)>,
    /// Constant values (text literals) the code points to.
    #[expect(clippy::vec_box, reason = "the code points into the boxes: values must not move when the vector grows")]
    pub constants: Vec<Box<Value>>,
}

impl Tables {
    pub fn variant(&mut self, name: &SmolStr) -> u64 {
        if let Some(id) = self.variant_ids.get(name) {
            return *id;
        }
        let id = self.variants.len() as u64;
        self.variants.push(name.clone());
        self.variant_ids.insert(name.clone(), id);
        id
    }

    pub fn name(&mut self, name: &SmolStr) -> u64 {
        if let Some(id) = self.name_ids.get(name) {
            return *id;
        }
        let id = self.names.len() as u64;
        self.names.push(name.clone());
        self.name_ids.insert(name.clone(), id);
        id
    }

    pub fn message(&mut self, message: String) -> u64 {
        self.messages.push(message);
        self.messages.len() as u64 - 1
    }

    /// Writes `value` as `rep` into `out`; `false` when it is not of that shape. A handle
    /// points to `value` itself.
    pub fn store(&self, rep: Rep, value: &Value, out: &mut [u64]) -> bool {
        let out = if rep.optional {
            if *value == Value::Absent {
                out.fill(0);
                return true;
            }
            out[0] = 1;
            &mut out[1..]
        } else {
            out
        };
        match (rep.kind, value) {
            (Kind::Bool, Value::Bool(b)) => out[0] = u64::from(*b),
            (Kind::Int, Value::Int(i)) | (Kind::Duration, Value::Duration(i)) => out[0] = *i as u64,
            (Kind::Decimal, Value::Decimal(d)) => out[..2].copy_from_slice(&decimal_words(*d)),
            (Kind::Money, Value::Money(m)) => {
                out[..2].copy_from_slice(&decimal_words(m.amount));
                out[2] = currency_word(m.currency);
            }
            (Kind::Timestamp, Value::Timestamp(t)) => {
                out[0] = t.seconds as u64;
                out[1] = u64::from(t.nanos);
            }
            (Kind::Variant, Value::Variant(v)) => match self.variant_ids.get(v) {
                Some(id) => out[0] = *id,
                None => return false,
            },
            (Kind::Handle, value) if *value != Value::Absent => out[0] = value as *const Value as u64,
            _ => return false,
        }
        true
    }

    /// The value of `words` read as `rep`; `None` for words no value has (a bug).
    ///
    /// # Safety
    /// A handle word must point to a live [`Value`].
    pub unsafe fn load(&self, rep: Rep, words: &[u64]) -> Option<Value> {
        let words = if rep.optional {
            if words[0] == 0 {
                return Some(Value::Absent);
            }
            &words[1..]
        } else {
            words
        };
        Some(match rep.kind {
            Kind::Bool => Value::Bool(words[0] != 0),
            Kind::Int => Value::Int(words[0] as i64),
            Kind::Duration => Value::Duration(words[0] as i64),
            Kind::Decimal => Value::Decimal(decimal_of([words[0], words[1]])),
            Kind::Money => {
                Value::Money(Money { amount: decimal_of([words[0], words[1]]), currency: currency_of(words[2])? })
            }
            Kind::Timestamp => {
                Value::Timestamp(Timestamp { seconds: words[0] as i64, nanos: u32::try_from(words[1]).ok()? })
            }
            Kind::Variant => Value::Variant(self.variants.get(words[0] as usize)?.clone()),
            Kind::Handle => {
                let pointer = words[0] as *const Value;
                if pointer.is_null() {
                    return None;
                }
                // SAFETY: the caller's contract: handles point to live values.
                unsafe { (*pointer).clone() }
            }
        })
    }
}

/// A place of a node's value that compiled code reads from the frame.
#[derive(Debug)]
pub(crate) struct Place {
    pub path: Vec<SmolStr>,
    /// Where each field of `path` sits in its record by the types (`u32::MAX` where they do
    /// not say): tried first, by its name, before the record is searched.
    pub hints: Vec<u32>,
    pub rep: Rep,
    /// The currency its type declares (`Money[USD]`): a value in another makes the node's
    /// expressions run on the interpreter, which reports the mismatch where it meets it.
    pub currency: Option<Currency>,
    /// Its first word in the frame.
    pub offset: u32,
}

/// Where things are in a [`Frame`].
#[derive(Debug, Default)]
pub(crate) struct Layout {
    pub places: Vec<Place>,
    /// The places of each node, by node index.
    pub by_node: Vec<Vec<u32>>,
    /// The frame word of `degraded(step)`, by node index.
    pub degraded: Vec<Option<u32>>,
    /// The clock's two words (seconds, nanoseconds) are the frame's first.
    pub words: u32,
}

impl Layout {
    const CLOCK: u32 = 0;

    fn new(nodes: usize) -> Layout {
        Layout { by_node: vec![Vec::new(); nodes], degraded: vec![None; nodes], words: 2, ..Layout::default() }
    }

    /// The frame offset of a place, laid out on first use.
    pub fn place(
        &mut self,
        node: u32,
        (path, hints): (&[SmolStr], Vec<u32>),
        rep: Rep,
        currency: Option<Currency>,
    ) -> u32 {
        let known = self.by_node[node as usize].iter().map(|p| &self.places[*p as usize]);
        if let Some(place) = known.into_iter().find(|p| p.path == path && p.rep == rep && p.currency == currency) {
            return place.offset;
        }
        let offset = self.words;
        self.words += rep.words() as u32;
        self.by_node[node as usize].push(self.places.len() as u32);
        self.places.push(Place { path: path.to_vec(), hints, rep, currency, offset });
        offset
    }

    pub fn degraded(&mut self, node: u32) -> u32 {
        if let Some(word) = self.degraded[node as usize] {
            return word;
        }
        let word = self.words;
        self.words += 1;
        self.degraded[node as usize] = Some(word);
        word
    }
}

/// The words of a run's state that compiled code reads: the clock, `degraded` flags, and
/// each place of a node's value, written when the node gets its value.
#[derive(Clone, Debug)]
pub struct Frame {
    /// The layout's words, then a bit for each node (by index): whether its places hold its
    /// value (it has one, and of the expected shape). One allocation for both.
    words: Vec<u64>,
    /// Where the nodes' bits begin.
    valid_at: usize,
}

impl Frame {
    fn valid(&self, node: usize) -> bool {
        self.words.get(self.valid_at + node / 64).is_some_and(|word| word >> (node % 64) & 1 == 1)
    }

    fn set_valid(&mut self, node: usize, valid: bool) {
        if let Some(word) = self.words.get_mut(self.valid_at + node / 64) {
            let bit = 1 << (node % 64);
            if valid { *word |= bit } else { *word &= !bit }
        }
    }
}

type Function = unsafe extern "C" fn(*mut helpers::Call<'_>, *const u64, *const u64, *mut u64) -> u64;

/// A compiled expression or approval matrix.
struct Entry {
    function: Function,
    /// The nodes whose places it reads from the frame.
    reads: Vec<u32>,
    /// The nodes whose values it reads through the run's scope.
    values: Vec<u32>,
    /// The rep of its result.
    rep: Rep,
}

/// The native code of one condition ([`Native::condition`]).
#[derive(Clone, Copy)]
pub struct Condition<'n> {
    native: &'n Native,
    entry: &'n Entry,
}

impl Condition<'_> {
    /// Whether the condition holds; `None` when it reads a node the frame does not hold.
    pub fn test(&self, scope: &dyn Scope, frame: &Frame) -> Option<Result<bool, EvalError>> {
        self.native.run(self.entry, scope, frame, |out| out[0] != 0)
    }
}

/// A plan's expressions and approval matrices as native code.
pub struct Native {
    /// Compiled expressions, by address (they are the plan's, which the analysis owns).
    exprs: FxHashMap<usize, Entry>,
    /// Approval matrices, by node index: the first row that holds, or none.
    matrices: FxHashMap<u32, Entry>,
    /// Large approval matrices as decision tables, by node index, with the nodes they read.
    tables_of_matrices: FxHashMap<u32, (table::Table, Vec<u32>)>,
    /// The gates whose conditions read only inputs and params, decided together by one
    /// call ([`Native::gates`]), and each one's bit in its result, by node index.
    gates: Option<(Entry, Vec<Option<u8>>)>,
    layout: Layout,
    tables: Tables,
    /// Owns the code the entries point to; freed when the `Native` is dropped.
    module: Option<cranelift_jit::JITModule>,
}

// SAFETY: the module's code and data are written once, before `compile` returns, and only
// executed afterwards; the tables are immutable. Compiled code keeps no state between calls.
unsafe impl Send for Native {}
// SAFETY: as above: calls share nothing mutable.
unsafe impl Sync for Native {}

impl Drop for Native {
    fn drop(&mut self) {
        self.exprs.clear();
        self.matrices.clear();
        self.tables_of_matrices.clear();
        self.gates = None;
        if let Some(module) = self.module.take() {
            // SAFETY: the function pointers into the module were just dropped, and
            // `Native` hands none out.
            unsafe { module.free_memory() };
        }
    }
}

impl std::fmt::Debug for Native {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Native")
            .field("exprs", &self.exprs.len())
            .field("matrices", &self.matrices.len())
            .field("frame_words", &self.layout.words)
            .finish()
    }
}

/// Every expression of the plan that the engine evaluates on its own: all but the
/// conditions of approval rows, which run as their matrix.
fn roots(kind: &NodeKind) -> Vec<&Expr> {
    match kind {
        NodeKind::Approval { distinct_from, .. } => distinct_from.iter().collect(),
        NodeKind::Param { .. } => Vec::new(),
        other => other.exprs(),
    }
}

impl Native {
    /// Compiles every expression and approval matrix of the plan; the reason when it
    /// cannot (an unsupported host, or an expression the translator does not handle).
    pub fn compile(body: &PlanBody, node_index: &dyn Fn(&str) -> Option<u32>) -> Result<Native, String> {
        let mut cx = codegen::Module::new(body, node_index)?;
        let mut exprs = Vec::new();
        let mut matrices = Vec::new();
        let mut planned = Vec::new();
        let rep_of = |ty: &Ty| Rep::of(body, ty);
        let mut budget = table::MAX_WORDS;
        for (i, node) in body.nodes.iter().enumerate() {
            for expr in roots(&node.kind) {
                let (id, reads) = cx.expr(expr)?;
                exprs.push((expr as *const Expr as usize, id, reads, Rep::of(body, &expr.ty)));
            }
            if let NodeKind::Approval { rows, .. } = &node.kind {
                let mut places = table::Places { tables: cx.tables(), node_index, rep_of: &rep_of };
                match table::Plan::of(rows, &mut places, &mut budget) {
                    Some(plan) => planned.push((i as u32, plan)),
                    None => {
                        let (id, reads) = cx.matrix(rows)?;
                        matrices.push((i as u32, id, reads));
                    }
                }
            }
        }
        // The gates whose conditions read only inputs and params, which no step changes
        // while a run advances: one call decides them all, when an advance steps the first
        // of them (`exec::Exec::test_gate`). Each keeps its own code too, for a call that
        // fails (the gates are then tested one by one, to meet the error where it is).
        let given: Vec<bool> =
            body.nodes.iter().map(|n| matches!(n.kind, NodeKind::Input { .. } | NodeKind::Param { .. })).collect();
        let mut block: Vec<(usize, &Expr)> = Vec::new();
        for (i, node) in body.nodes.iter().enumerate() {
            if let NodeKind::Gate { condition, .. } = &node.kind
                && block.len() < 64
                && condition.nodes_read().iter().all(|n| node_index(n).is_some_and(|j| given[j as usize]))
            {
                block.push((i, condition));
            }
        }
        let gates = match block.len() {
            0 | 1 => None,
            _ => {
                let conditions: Vec<&Expr> = block.iter().map(|(_, c)| *c).collect();
                let (id, reads) = cx.gates(&conditions)?;
                let mut bits = vec![None; body.nodes.len()];
                for (k, (i, _)) in block.iter().enumerate() {
                    bits[*i] = Some(k as u8);
                }
                Some((id, reads, bits))
            }
        };
        let (module, mut layout, tables) = cx.finish()?;
        let tables_of_matrices = planned.into_iter().map(|(node, plan)| (node, plan.build(&mut layout))).collect();
        let function = |id| -> Function {
            // SAFETY: every function was defined with the signature of `Function`
            // (`codegen::Module::signature`), and `finish` finalized the module.
            unsafe { std::mem::transmute::<*const u8, Function>(module.get_finalized_function(id)) }
        };
        let entry = |id, reads: codegen::Reads, rep| Entry {
            function: function(id),
            reads: reads.frame,
            values: reads.values,
            rep,
        };
        let exprs = exprs.into_iter().map(|(address, id, reads, rep)| (address, entry(id, reads, rep))).collect();
        let index = Rep { kind: Kind::Int, optional: false };
        let matrices = matrices.into_iter().map(|(node, id, reads)| (node, entry(id, reads, index))).collect();
        let gates = gates.map(|(id, reads, bits)| (entry(id, reads, index), bits));
        Ok(Native { exprs, matrices, tables_of_matrices, gates, layout, tables, module: Some(module) })
    }

    /// A frame for a run's values, degraded flags and clock.
    pub fn frame(&self, values: &[Option<Value>], degraded: &[bool], clock: Timestamp) -> Frame {
        let mut frame = self.blank_frame(values.len(), clock);
        for node in 0..values.len() {
            // A node without a value, not degraded, is what a fresh frame already says.
            if values[node].is_some() || degraded.get(node) == Some(&true) {
                self.sync(&mut frame, node, values, degraded);
            }
        }
        frame
    }

    /// A frame for a run of `nodes` nodes none of which has a value yet, at `clock`.
    pub fn blank_frame(&self, nodes: usize, clock: Timestamp) -> Frame {
        let valid_at = self.layout.words as usize;
        let mut frame = Frame { words: vec![0; valid_at + nodes.div_ceil(64)], valid_at };
        self.set_clock(&mut frame, clock);
        frame
    }

    pub fn set_clock(&self, frame: &mut Frame, clock: Timestamp) {
        let at = Layout::CLOCK as usize;
        frame.words[at] = clock.seconds as u64;
        frame.words[at + 1] = u64::from(clock.nanos);
    }

    /// Writes node `node`'s value and degraded flag into the frame.
    pub fn sync(&self, frame: &mut Frame, node: usize, values: &[Option<Value>], degraded: &[bool]) {
        if let Some(Some(word)) = self.layout.degraded.get(node) {
            frame.words[*word as usize] = u64::from(degraded.get(node).copied().unwrap_or(false));
        }
        // A node without places is read by no code from the frame (only a place is a read),
        // so its bit is never asked: most steps (gates, emits) have none.
        match values.get(node) {
            Some(Some(value)) => {
                self.store_node(frame, node, value);
            }
            _ if self.layout.by_node.get(node).is_some_and(|places| !places.is_empty()) => {
                frame.set_valid(node, false);
            }
            _ => {}
        }
    }

    /// Writes node `node`'s value into its places, and marks whether they hold it: `false`
    /// when one does not.
    pub(crate) fn store_node(&self, frame: &mut Frame, node: usize, value: &Value) -> bool {
        let Some(places) = self.layout.by_node.get(node).filter(|places| !places.is_empty()) else { return true };
        let mut valid = true;
        for place in places {
            let place = &self.layout.places[*place as usize];
            let out = &mut frame.words[place.offset as usize..][..place.rep.words()];
            valid &= self.store_place(value, place, out);
        }
        frame.set_valid(node, valid);
        valid
    }

    /// Node `node`'s places, by number, each with its path in the node's value.
    pub(crate) fn places(&self, node: usize) -> impl Iterator<Item = (u32, &[SmolStr])> {
        let places = self.layout.by_node.get(node).map_or(&[][..], Vec::as_slice);
        places.iter().map(|p| (*p, self.layout.places[*p as usize].path.as_slice()))
    }

    /// Writes `value`, the value at place `place`'s path, into the frame as [`Native::sync`]
    /// writes it; `false` when it does not fit there.
    pub(crate) fn store_at(&self, frame: &mut Frame, place: u32, value: &Value) -> bool {
        let Some(place) = self.layout.places.get(place as usize) else { return false };
        let out = &mut frame.words[place.offset as usize..][..place.rep.words()];
        self.store_leaf(value, place, out)
    }

    /// Marks node `node`'s places as holding its value, or not.
    pub(crate) fn set_valid(&self, frame: &mut Frame, node: usize, valid: bool) {
        frame.set_valid(node, valid);
    }

    /// The nodes whose values approval node `node`'s matrix reads through the run's scope,
    /// when it has native code (a decision table reads none).
    pub(crate) fn matrix_values(&self, node: u32) -> Option<&[u32]> {
        match self.tables_of_matrices.contains_key(&node) {
            true => Some(&[]),
            false => self.matrices.get(&node).map(|entry| entry.values.as_slice()),
        }
    }

    /// The nodes whose values the gates decided together read through the run's scope.
    pub(crate) fn gates_values(&self) -> &[u32] {
        self.gates.as_ref().map_or(&[], |(entry, _)| entry.values.as_slice())
    }

    /// The nodes whose values `expr`, one of the plan's, reads through the run's scope, when
    /// it has native code.
    pub(crate) fn expr_values(&self, expr: &Expr) -> Option<&[u32]> {
        self.exprs.get(&(expr as *const Expr as usize)).map(|entry| entry.values.as_slice())
    }

    /// Writes the value at `path` of `value`. A path through an absent optional record
    /// leaves zeros: code reads such a place only where a condition proved the record
    /// present.
    fn store_place(&self, value: &Value, place: &Place, out: &mut [u64]) -> bool {
        let mut value = value;
        for (n, field) in place.path.iter().enumerate() {
            let hinted = place.hints.get(n).and_then(|hint| match value {
                Value::Record(fields) => fields.get(*hint as usize).filter(|(name, _)| name == field),
                _ => None,
            });
            match (value, hinted) {
                (Value::Absent, _) => {
                    out.fill(0);
                    return true;
                }
                (_, Some((_, inner))) => value = inner,
                _ => match value.field(field) {
                    Some(inner) => value = inner,
                    None => return false,
                },
            }
        }
        self.store_leaf(value, place, out)
    }

    /// Writes `value`, the value at `place`'s path, as its rep.
    fn store_leaf(&self, value: &Value, place: &Place, out: &mut [u64]) -> bool {
        if let (Some(declared), Value::Money(money)) = (place.currency, value)
            && money.currency != declared
        {
            return false;
        }
        place.rep.kind != Kind::Handle && self.tables.store(place.rep, value, out)
    }

    /// Runs `entry` and reads its result words with `read`, while the values they point to
    /// are alive; `None` when it reads a node the frame does not hold.
    fn run<T>(
        &self,
        entry: &Entry,
        scope: &dyn Scope,
        frame: &Frame,
        read: impl FnOnce(&[u64; 4]) -> T,
    ) -> Option<Result<T, EvalError>> {
        if !entry.reads.iter().all(|n| frame.valid(*n as usize)) {
            return None;
        }
        let mut call = helpers::Call::new(self, scope);
        let mut out = [0u64; 4];
        // SAFETY: `entry.function` was compiled for this layout and these tables (the frame
        // has `layout.words` words), writes at most `rep.words()` ≤ 4 words to `out`, and
        // reads handles only from `scope` and `call`'s arena, which outlive the call.
        let status = unsafe { (entry.function)(&mut call, frame.words.as_ptr(), std::ptr::null(), out.as_mut_ptr()) };
        if status != 0 {
            return Some(Err(call.take_error()));
        }
        Some(Ok(read(&out)))
    }

    /// Evaluates `expr`, one of the plan's, natively; `None` when it has no native code, or
    /// reads a node the frame does not hold (the caller interprets it then).
    pub fn eval(&self, expr: &Expr, scope: &dyn Scope, frame: &Frame) -> Option<Result<Value, EvalError>> {
        let entry = self.exprs.get(&(expr as *const Expr as usize))?;
        // SAFETY: handles in the words point into `scope` or the call's arena, both alive
        // while `run` reads them.
        let value = self.run(entry, scope, frame, |out| unsafe { self.tables.load(entry.rep, out) })?;
        Some(value.and_then(|v| v.ok_or_else(|| EvalError::Internal("compiled code gave no value".to_owned()))))
    }

    /// Whether condition `expr`, one of the plan's, holds, natively; `None` as for
    /// [`Native::eval`]. (Conditions are most of what runs: they skip building a value.)
    pub fn test(&self, expr: &Expr, scope: &dyn Scope, frame: &Frame) -> Option<Result<bool, EvalError>> {
        self.condition(expr)?.test(scope, frame)
    }

    /// The native code of condition `expr`, one of the plan's, to test it repeatedly without
    /// looking it up each time.
    pub fn condition(&self, expr: &Expr) -> Option<Condition<'_>> {
        let entry = self.exprs.get(&(expr as *const Expr as usize))?;
        (entry.rep == Rep { kind: Kind::Bool, optional: false }).then_some(Condition { native: self, entry })
    }

    /// Gate `node`'s bit in what [`Native::gates`] gives, when it is one of those gates.
    pub fn gate_bit(&self, node: usize) -> Option<u8> {
        self.gates.as_ref()?.1.get(node).copied().flatten()
    }

    /// Whether each gate whose condition reads only inputs and params holds, as bits (see
    /// [`Native::gate_bit`]); `None` when the plan has no such gates or the frame does not
    /// hold what they read. An error when a condition fails: testing the gates one by one
    /// then meets that error where the interpreter does.
    pub fn gates(&self, scope: &dyn Scope, frame: &Frame) -> Option<Result<u64, EvalError>> {
        let (entry, _) = self.gates.as_ref()?;
        self.run(entry, scope, frame, |out| out[0])
    }

    /// Whether approval node `node`'s matrix is decided as a decision table (`table`) rather
    /// than by code.
    pub fn tabled(&self, node: u32) -> bool {
        self.tables_of_matrices.contains_key(&node)
    }

    /// The first row of approval node `node`'s matrix that holds (by position), natively.
    pub fn matrix(&self, node: u32, scope: &dyn Scope, frame: &Frame) -> Option<Result<Option<usize>, EvalError>> {
        if let Some((table, reads)) = self.tables_of_matrices.get(&node) {
            if !reads.iter().all(|n| frame.valid(*n as usize)) {
                return None;
            }
            return Some(Ok(table.first(&frame.words)));
        }
        let entry = self.matrices.get(&node)?;
        self.run(entry, scope, frame, |out| usize::try_from(out[0] as i64).ok())
    }
}
