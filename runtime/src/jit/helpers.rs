//! The functions compiled code calls: operations on handles (texts, lists, records), the
//! interpreter's operations where native code detected an error or does not compute
//! itself (decimal arithmetic), and errors. Each takes and gives 64-bit words: numbers,
//! handles, and pointers to words.
//!
//! Every helper receives a pointer to the [`Call`] of the evaluation it serves; words it
//! reads by pointer were written by the compiled code for it, with the rep it is told.

use flow_ir::expr::{BinaryOp, Builtin};

use super::{Native, Rep, decimal_of};
use crate::interp::{self, EvalError, Scope};
use crate::value::Value;

/// One evaluation of compiled code: what it reads, the values it builds, and its error.
pub(crate) struct Call<'a> {
    native: &'a Native,
    scope: &'a dyn Scope,
    /// Values built during the evaluation; handles point into these boxes.
    #[expect(clippy::vec_box, reason = "handles point into the boxes: values must not move when the vector grows")]
    arena: Vec<Box<Value>>,
    error: Option<EvalError>,
}

impl<'a> Call<'a> {
    pub fn new(native: &'a Native, scope: &'a dyn Scope) -> Call<'a> {
        Call { native, scope, arena: Vec::new(), error: None }
    }

    pub fn take_error(&mut self) -> EvalError {
        self.error.take().unwrap_or_else(|| EvalError::Internal("compiled code failed without an error".to_owned()))
    }

    fn alloc(&mut self, value: Value) -> u64 {
        let boxed = Box::new(value);
        let handle = &*boxed as *const Value as u64;
        self.arena.push(boxed);
        handle
    }

    fn fail(&mut self, error: EvalError) -> u64 {
        self.error = Some(error);
        1
    }

    fn internal(&mut self, what: impl Into<String>) -> u64 {
        self.fail(EvalError::Internal(what.into()))
    }

    /// The value of `words` as `rep`.
    ///
    /// # Safety
    /// `words` points to `rep.words()` words; handles among them point to live values.
    unsafe fn load(&self, rep: u64, words: *const u64) -> Option<Value> {
        let rep = Rep::from_code(rep)?;
        // SAFETY: the caller's contract.
        unsafe { self.native.tables.load(rep, std::slice::from_raw_parts(words, rep.words())) }
    }

    /// Writes `value` as `rep` to `out`, keeping it alive in the arena when it is a
    /// handle's.
    ///
    /// # Safety
    /// `out` points to `rep.words()` writable words.
    unsafe fn store(&mut self, rep: u64, value: Value, out: *mut u64) -> u64 {
        let Some(rep) = Rep::from_code(rep) else { return self.internal("an unknown representation") };
        // SAFETY: the caller's contract.
        let out = unsafe { std::slice::from_raw_parts_mut(out, rep.words()) };
        let native = self.native;
        let owned;
        let value: &Value = if rep.kind == super::Kind::Handle && value != Value::Absent {
            let handle = self.alloc(value);
            // SAFETY: just allocated in the arena, which outlives the evaluation.
            unsafe { &*(handle as *const Value) }
        } else {
            owned = value;
            &owned
        };
        if native.tables.store(rep, value, out) { 0 } else { self.internal("a value of an unexpected shape") }
    }
}

/// Runs `f` on the call, catching panics (a helper must not unwind into native code).
fn with<'c>(call: *mut Call<'c>, f: impl FnOnce(&mut Call<'c>) -> u64) -> u64 {
    // SAFETY: compiled code passes the pointer it was called with: a live, exclusive
    // `Call` for the duration of the evaluation.
    let call = unsafe { &mut *call };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(call))) {
        Ok(result) => result,
        Err(_) => call.internal("a helper of compiled code panicked"),
    }
}

fn op_of(code: u64) -> Option<BinaryOp> {
    BinaryOp::ALL.get(code as usize).copied()
}

/// `l op r` by the interpreter, for operands and result in native words. Returns 0, or 1
/// with the error in the call.
pub extern "C" fn binary(call: *mut Call<'_>, op: u64, reps: u64, l: *const u64, r: *const u64, out: *mut u64) -> u64 {
    with(call, |call| {
        let (lrep, rrep, orep) = (reps & 0xffff, reps >> 16 & 0xffff, reps >> 32 & 0xffff);
        // SAFETY: compiled code passes its operands' words with their reps.
        let (l, r) = unsafe { (call.load(lrep, l), call.load(rrep, r)) };
        let (Some(op), Some(l), Some(r)) = (op_of(op), l, r) else { return call.internal("bad operands") };
        match interp::binary(op, l, r) {
            // SAFETY: compiled code passes room for the result's words.
            Ok(value) => unsafe { call.store(orep, value, out) },
            Err(error) => call.fail(error),
        }
    })
}

/// `-a` by the interpreter.
pub extern "C" fn negate(call: *mut Call<'_>, rep: u64, a: *const u64, out: *mut u64) -> u64 {
    with(call, |call| {
        // SAFETY: as for `binary`.
        let Some(a) = (unsafe { call.load(rep, a) }) else { return call.internal("bad operand") };
        match interp::negate(a) {
            // SAFETY: as for `binary`.
            Ok(value) => unsafe { call.store(rep, value, out) },
            Err(error) => call.fail(error),
        }
    })
}

/// Compares two decimals: -1, 0 or 1.
pub extern "C" fn decimal_cmp(a0: u64, a1: u64, b0: u64, b1: u64) -> u64 {
    decimal_of([a0, a1]).cmp(&decimal_of([b0, b1])) as i64 as u64
}

/// The value of node `index` (named `name`) as a handle; 0 with an error when it has none.
pub extern "C" fn node(call: *mut Call<'_>, index: u64, name: u64) -> u64 {
    with(call, |call| {
        let name = call.native.tables.names.get(name as usize).cloned().unwrap_or_default();
        let value = match call.scope.node_at(index as u32) {
            Some(value) => Some(value),
            None => call.scope.node(&name),
        };
        match value {
            Some(value) => value as *const Value as u64,
            None => {
                call.internal(format!("`{name}` has no value yet"));
                0
            }
        }
    })
}

/// Field `name` of the record `handle` points to; 0 with an error when there is none.
pub extern "C" fn field(call: *mut Call<'_>, handle: u64, name: u64) -> u64 {
    with(call, |call| {
        let name = call.native.tables.names.get(name as usize).cloned().unwrap_or_default();
        // SAFETY: handles point to live values.
        let base = unsafe { (handle as *const Value).as_ref() };
        match base.and_then(|b| b.field(&name)) {
            Some(value) => value as *const Value as u64,
            None => {
                call.internal(format!("a value without field `{name}`"));
                0
            }
        }
    })
}

/// The value `handle` points to, as `rep` words in `out`.
pub extern "C" fn unpack(call: *mut Call<'_>, handle: u64, rep: u64, out: *mut u64) -> u64 {
    with(call, |call| {
        // SAFETY: handles point to live values (in the scope or the arena).
        let Some(value) = (unsafe { (handle as *const Value).as_ref() }) else { return call.internal("no value") };
        let Some(rep) = Rep::from_code(rep) else { return call.internal("an unknown representation") };
        // SAFETY: compiled code passes room for `rep`'s words.
        let out = unsafe { std::slice::from_raw_parts_mut(out, rep.words()) };
        if call.native.tables.store(rep, value, out) { 0 } else { call.internal("a value of an unexpected shape") }
    })
}

/// A handle to the value of `rep` words at `words`.
pub extern "C" fn pack(call: *mut Call<'_>, rep: u64, words: *const u64) -> u64 {
    with(call, |call| {
        // SAFETY: compiled code passes `rep`'s words.
        match unsafe { call.load(rep, words) } {
            Some(value) => call.alloc(value),
            None => {
                call.internal("words of no value");
                0
            }
        }
    })
}

/// A built-in function of handles `a` (and `b`), its result as `rep` words in `out`.
pub extern "C" fn builtin(call: *mut Call<'_>, which: u64, a: u64, b: u64, rep: u64, out: *mut u64) -> u64 {
    with(call, |call| {
        let Some(builtin) = Builtin::ALL.get(which as usize).copied() else { return call.internal("bad builtin") };
        // SAFETY: handles point to live values; `b` is 0 for functions of one argument.
        let args: Vec<&Value> = unsafe { [a, b].iter().filter_map(|h| (*h as *const Value).as_ref()).collect() };
        match interp::builtin_of(builtin, &args) {
            // SAFETY: compiled code passes room for the result's words.
            Ok(value) => unsafe { call.store(rep, value, out) },
            Err(error) => call.fail(error),
        }
    })
}

/// The number of items of the list `handle` points to.
pub extern "C" fn list_len(handle: u64) -> u64 {
    // SAFETY: handles point to live values.
    match unsafe { (handle as *const Value).as_ref() } {
        Some(Value::List(items)) => items.len() as u64,
        _ => 0,
    }
}

/// A handle to item `i` of the list `handle` points to.
pub extern "C" fn list_item(handle: u64, i: u64) -> u64 {
    // SAFETY: handles point to live values.
    match unsafe { (handle as *const Value).as_ref() } {
        Some(Value::List(items)) => items.get(i as usize).map_or(0, |v| v as *const Value as u64),
        _ => 0,
    }
}

/// The text of `n` handles at `parts`, each written as interpolation writes it.
pub extern "C" fn concat(call: *mut Call<'_>, parts: *const u64, n: u64) -> u64 {
    with(call, |call| {
        use std::fmt::Write;
        // SAFETY: compiled code passes `n` handles.
        let parts = unsafe { std::slice::from_raw_parts(parts, n as usize) };
        let mut out = String::new();
        for part in parts {
            // SAFETY: handles point to live values.
            if let Some(value) = unsafe { (*part as *const Value).as_ref() } {
                let _ = write!(out, "{value}");
            }
        }
        call.alloc(Value::Text(out))
    })
}

/// A record of the record table's entry `shape`, with the field values at `fields`.
pub extern "C" fn record(call: *mut Call<'_>, shape: u64, fields: *const u64) -> u64 {
    with(call, |call| {
        let native = call.native;
        let Some((given, absent)) = native.tables.records.get(shape as usize) else {
            call.internal("no record shape");
            return 0;
        };
        // SAFETY: compiled code passes one handle per given field.
        let handles = unsafe { std::slice::from_raw_parts(fields, given.len()) };
        let mut out = Vec::with_capacity(given.len() + absent.len());
        for (name, handle) in given.iter().zip(handles) {
            // SAFETY: handles point to live values.
            let value = unsafe { (*handle as *const Value).as_ref() }.cloned().unwrap_or(Value::Absent);
            out.push((name.clone(), value));
        }
        out.extend(absent.iter().map(|name| (name.clone(), Value::Absent)));
        call.alloc(Value::record(out))
    })
}

/// Whole numbers widened to decimals through the list `handle` points to.
pub extern "C" fn widen(call: *mut Call<'_>, handle: u64) -> u64 {
    with(call, |call| {
        // SAFETY: handles point to live values.
        let value = unsafe { (handle as *const Value).as_ref() }.cloned().unwrap_or(Value::Absent);
        call.alloc(interp::widen(value))
    })
}

/// Fails the evaluation with internal error message `message`.
pub extern "C" fn internal(call: *mut Call<'_>, message: u64) -> u64 {
    with(call, |call| {
        let message = call.native.tables.messages.get(message as usize).cloned().unwrap_or_default();
        call.internal(message)
    })
}

/// Who started the run (`started_by()`), as a value of representation `rep` into `out`.
pub extern "C" fn started_by(call: *mut Call<'_>, rep: u64, out: *mut u64) -> u64 {
    with(call, |call| match call.scope.starter() {
        // SAFETY: compiled code passes room for the result's words.
        Some(id) => {
            let value = Value::Principal(id.into());
            unsafe { call.store(rep, value, out) }
        }
        None => call.internal("`started_by()` outside a run"),
    })
}

/// Fails the evaluation with an overflow of `message`.
pub extern "C" fn overflow(call: *mut Call<'_>, message: u64) -> u64 {
    with(call, |call| {
        let message = call.native.tables.messages.get(message as usize).cloned().unwrap_or_default();
        call.fail(EvalError::overflow(message))
    })
}
