//! Translation of the expression IR to cranelift IR.
//!
//! Every compiled function has one signature, `(call, frame, args, out) -> status`: it reads
//! places from the frame, the arguments of a plan function from `args`, writes its result's
//! words to `out`, and returns 0, or 1 after a helper recorded the error in the call. A
//! value is a list of `i64` words ([`super::Rep`]); control flow joins pass them as block
//! parameters. Subexpressions are evaluated in the interpreter's order, with the same
//! short-circuits, so the first error is the same error.

use std::collections::BTreeSet;

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{I64, I128};
use cranelift_codegen::ir::{
    AbiParam, Block, BlockArg, FuncRef, InstBuilder, MemFlagsData, Signature, StackSlot, StackSlotData, StackSlotKind,
    Value,
};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{FuncId, Linkage, Module as _};
use flow_ir::PlanBody;
use flow_ir::expr::{BinaryOp, Builtin, Expr, ExprKind, Literal, Part};
use flow_ir::plan::{NodeKind, Row};
use flow_ir::ty::Ty;
use rustc_hash::FxHashMap;
use smol_str::SmolStr;

use super::{Kind, Layout, Rep, Tables, decimal_words, helpers};
use crate::value::Value as RunValue;

type Words = Vec<Value>;
type Result<T> = std::result::Result<T, String>;

/// 10^0 to 10^18, for comparing decimals of different scales natively.
static POWERS_OF_TEN: [u64; 19] = {
    let mut powers = [1u64; 19];
    let mut i = 1;
    while i < 19 {
        powers[i] = powers[i - 1] * 10;
        i += 1;
    }
    powers
};

/// The helpers compiled code calls: symbol, address, number of arguments.
fn helper_table() -> [(&'static str, *const u8, usize); 16] {
    [
        ("flow_binary", helpers::binary as *const u8, 6),
        ("flow_negate", helpers::negate as *const u8, 4),
        ("flow_decimal_cmp", helpers::decimal_cmp as *const u8, 4),
        ("flow_node", helpers::node as *const u8, 3),
        ("flow_field", helpers::field as *const u8, 3),
        ("flow_unpack", helpers::unpack as *const u8, 4),
        ("flow_pack", helpers::pack as *const u8, 3),
        ("flow_builtin", helpers::builtin as *const u8, 6),
        ("flow_list_len", helpers::list_len as *const u8, 1),
        ("flow_list_item", helpers::list_item as *const u8, 2),
        ("flow_concat", helpers::concat as *const u8, 3),
        ("flow_record", helpers::record as *const u8, 3),
        ("flow_widen", helpers::widen as *const u8, 2),
        ("flow_internal", helpers::internal as *const u8, 2),
        ("flow_overflow", helpers::overflow as *const u8, 2),
        ("flow_started_by", helpers::started_by as *const u8, 3),
    ]
}

/// The nodes a compiled function reads: from the frame (their places), and as values
/// through the run's scope (handles: texts, principals, lists, records).
pub(crate) struct Reads {
    pub frame: Vec<u32>,
    pub values: Vec<u32>,
}

/// A plan's code being compiled.
pub(crate) struct Module<'p> {
    body: &'p PlanBody,
    node_index: &'p dyn Fn(&str) -> Option<u32>,
    module: JITModule,
    helpers: FxHashMap<&'static str, FuncId>,
    /// The plan's functions, declared when first called.
    functions: FxHashMap<SmolStr, FuncId>,
    /// Functions declared and not yet defined.
    pending: Vec<SmolStr>,
    layout: Layout,
    tables: Tables,
    count: u32,
}

impl<'p> Module<'p> {
    pub fn new(body: &'p PlanBody, node_index: &'p dyn Fn(&str) -> Option<u32>) -> Result<Module<'p>> {
        let isa = cranelift_native::builder().map_err(|e| format!("cranelift does not support this machine: {e}"))?;
        let mut flags = settings::builder();
        for (name, value) in [("opt_level", "speed"), ("use_colocated_libcalls", "false"), ("is_pic", "false")] {
            flags.set(name, value).map_err(|e| format!("cranelift setting `{name}`: {e}"))?;
        }
        let isa = isa.finish(settings::Flags::new(flags)).map_err(|e| format!("cranelift: {e}"))?;
        let mut builder = JITBuilder::with_isa(isa, cranelift_module::default_libcall_names());
        for (name, address, _) in helper_table() {
            builder.symbol(name, address);
        }
        let mut module = JITModule::new(builder);
        let mut helpers = FxHashMap::default();
        for (name, _, arity) in helper_table() {
            let signature = signature(&module, arity);
            let id = module.declare_function(name, Linkage::Import, &signature).map_err(|e| e.to_string())?;
            helpers.insert(name, id);
        }
        let mut tables = Tables::default();
        for e in &body.enums {
            for variant in &e.variants {
                tables.variant(variant);
            }
        }
        tables.variant(&"skipped".into());
        for node in &body.nodes {
            if let NodeKind::Review { outcomes, reasons, .. } = &node.kind {
                for variant in outcomes.iter().chain(reasons) {
                    tables.variant(variant);
                }
            }
        }
        Ok(Module {
            body,
            node_index,
            module,
            helpers,
            functions: FxHashMap::default(),
            pending: Vec::new(),
            layout: Layout::new(body.nodes.len()),
            tables,
            count: 0,
        })
    }

    fn declare(&mut self) -> Result<FuncId> {
        self.count += 1;
        let signature = signature(&self.module, 4);
        self.module
            .declare_function(&format!("flow_{}", self.count), Linkage::Local, &signature)
            .map_err(|e| e.to_string())
    }

    /// The names the code refers to by number, to number more.
    pub fn tables(&mut self) -> &mut Tables {
        &mut self.tables
    }

    /// Compiles a root expression: its function, and the nodes it reads.
    pub fn expr(&mut self, expr: &Expr) -> Result<(FuncId, Reads)> {
        let id = self.declare()?;
        let rep = Rep::of(self.body, &expr.ty);
        let reads = self.define(id, &[], false, |g| {
            let words = g.expr(expr)?;
            g.coerce(g.rep(&expr.ty), rep, words)
        })?;
        Ok((id, reads))
    }

    /// Compiles the conditions of several gates into one function: bit `k` of its result
    /// says whether the `k`th holds (64 at most). Every condition is evaluated, in order; the
    /// first error is the function's.
    pub fn gates(&mut self, conditions: &[&Expr]) -> Result<(FuncId, Reads)> {
        if conditions.len() > 64 {
            return Err(format!("{} gates in one block; 64 fit", conditions.len()));
        }
        let id = self.declare()?;
        let reads = self.define(id, &[], false, |g| {
            let mut mask = g.iconst(0);
            for (k, condition) in conditions.iter().enumerate() {
                let holds = g.expr(condition)?[0];
                let bit = g.b.ins().ishl_imm_s(holds, k as i64);
                mask = g.b.ins().bor(mask, bit);
            }
            Ok(vec![mask])
        })?;
        Ok((id, reads))
    }

    /// Compiles an approval matrix: the position of the first row that holds, or -1.
    ///
    /// Rows of large matrices repeat the same tests (`app.segment == retail`, `app.score >=
    /// 700`). Tests that cannot fail — comparisons of places and constants of whole numbers,
    /// decimals, instants, durations, flags, variants, and money of one declared currency —
    /// are computed once, at the start, in any order (that changes no result: they have no
    /// effects and no errors), and the rows, in order, combine them without branching; the
    /// first row that holds decides. Other conditions are evaluated as everywhere else.
    pub fn matrix(&mut self, rows: &[Row]) -> Result<(FuncId, Reads)> {
        let id = self.declare()?;
        let reads = self.define(id, &[], false, |g| {
            let mut tests: Vec<&Expr> = Vec::new();
            let mut distinct: FxHashMap<&Expr, i32> = FxHashMap::default();
            for condition in rows.iter().filter_map(|r| r.condition.as_ref()) {
                g.collect_tests(condition, &mut tests, &mut distinct);
            }
            if !distinct.is_empty() {
                let mut first: Vec<&Expr> = vec![tests[0]; distinct.len()];
                for (test, at) in &distinct {
                    first[*at as usize] = test;
                }
                let mut values = Vec::with_capacity(first.len());
                for test in first {
                    values.push(g.expr(test)?[0]);
                }
                let slot = g.b.create_sized_stack_slot(StackSlotData::new(
                    StackSlotKind::ExplicitSlot,
                    (values.len() * 8) as u32,
                    3,
                ));
                for (i, value) in values.iter().enumerate() {
                    g.b.ins().stack_store(I64, *value, slot, (i * 8) as i32);
                }
                g.kept = Some(slot);
                for test in tests {
                    g.tests.insert(test as *const Expr as usize, distinct[test]);
                }
            }
            let found = g.b.create_block();
            let row = g.b.append_block_param(found, I64);
            for (r, row) in rows.iter().enumerate() {
                let position = g.b.ins().iconst(I64, r as i64);
                let Some(condition) = &row.condition else {
                    g.b.ins().jump(found, &[BlockArg::from(position)]);
                    // Rows after an unconditional one never apply; the compiler reports them.
                    let dead = g.b.create_block();
                    g.b.switch_to_block(dead);
                    continue;
                };
                let holds = g.expr(condition)?[0];
                let next = g.b.create_block();
                g.b.ins().brif(holds, found, &[BlockArg::from(position)], next, &[]);
                g.b.switch_to_block(next);
            }
            let none = g.b.ins().iconst(I64, -1);
            g.b.ins().jump(found, &[BlockArg::from(none)]);
            g.b.switch_to_block(found);
            Ok(vec![row])
        })?;
        Ok((id, reads))
    }

    /// The function id of plan function `name`, declared (and queued for definition) on
    /// first use.
    fn function(&mut self, name: &SmolStr) -> Result<FuncId> {
        if let Some(id) = self.functions.get(name) {
            return Ok(*id);
        }
        let id = self.declare()?;
        self.functions.insert(name.clone(), id);
        self.pending.push(name.clone());
        Ok(id)
    }

    /// Defines function `id` with the code `emit` gives; the nodes it reads.
    fn define(
        &mut self,
        id: FuncId,
        params: &[Rep],
        in_function: bool,
        emit: impl FnOnce(&mut Gen<'_, 'p, '_>) -> Result<Words>,
    ) -> Result<Reads> {
        let config = self.module.target_config();
        let mut ctx = self.module.make_context();
        ctx.func.signature = signature(&self.module, 4);
        let mut fctx = FunctionBuilderContext::new();
        let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        let [call, frame, args, out] = b.block_params(entry) else { return Err("a bad signature".to_owned()) };
        let (call, frame, args, out) = (*call, *frame, *args, *out);
        let err = b.create_block();
        let mut offsets = Vec::with_capacity(params.len());
        let mut at = 0;
        for param in params {
            offsets.push((at, *param));
            at += param.words() as i32;
        }
        let mut g = Gen {
            m: self,
            b,
            call,
            frame,
            args,
            err,
            params: offsets,
            locals: Vec::new(),
            reads: BTreeSet::new(),
            values: BTreeSet::new(),
            refs: FxHashMap::default(),
            in_function,
            tests: FxHashMap::default(),
            kept: None,
        };
        let words = emit(&mut g)?;
        for (i, word) in words.iter().enumerate() {
            g.b.ins().store(MemFlagsData::trusted(), *word, out, (i * 8) as i32);
        }
        let ok = g.b.ins().iconst(I64, 0);
        g.b.ins().return_(&[ok]);
        g.b.switch_to_block(err);
        let failed = g.b.ins().iconst(I64, 1);
        g.b.ins().return_(&[failed]);
        let reads = Reads { frame: g.reads.into_iter().collect(), values: g.values.into_iter().collect() };
        g.b.seal_all_blocks();
        g.b.finalize(config);
        self.module.define_function(id, &mut ctx).map_err(|e| format!("cranelift: {e:?}"))?;
        Ok(reads)
    }

    /// Defines the plan functions called, and makes the code executable.
    pub fn finish(mut self) -> Result<(JITModule, Layout, Tables)> {
        while let Some(name) = self.pending.pop() {
            let body = self.body;
            let Some(function) = body.function(&name) else { return Err(format!("no function `{name}`")) };
            let id = self.functions[&name];
            let params: Vec<Rep> = function.params.iter().map(|p| Rep::of(body, &p.ty)).collect();
            let result = Rep::of(body, &function.result);
            self.define(id, &params, true, |g| {
                let words = g.expr(&function.body)?;
                g.coerce(g.rep(&function.body.ty), result, words)
            })?;
        }
        self.module.finalize_definitions().map_err(|e| format!("cranelift: {e}"))?;
        Ok((self.module, self.layout, self.tables))
    }
}

fn signature(module: &JITModule, arity: usize) -> Signature {
    let mut signature = module.make_signature();
    signature.params.extend(std::iter::repeat_n(AbiParam::new(I64), arity));
    signature.returns.push(AbiParam::new(I64));
    signature
}

/// One function being generated.
struct Gen<'m, 'p, 'f> {
    m: &'m mut Module<'p>,
    b: FunctionBuilder<'f>,
    call: Value,
    frame: Value,
    args: Value,
    /// Returns 1: an error was recorded.
    err: Block,
    /// The word offset and rep of each parameter in `args`.
    params: Vec<(i32, Rep)>,
    /// The items of enclosing `any`/`all`, innermost last.
    locals: Vec<(Rep, Words)>,
    reads: BTreeSet<u32>,
    /// The nodes whose values it reads through the run's scope (as handles).
    values: BTreeSet<u32>,
    refs: FxHashMap<FuncId, FuncRef>,
    /// In a plan function: nodes are not read from the frame.
    in_function: bool,
    /// In an approval matrix: the tests its rows share, computed once at its start, by
    /// address, and where they are kept.
    tests: FxHashMap<usize, i32>,
    kept: Option<StackSlot>,
}

fn int_cc(op: BinaryOp) -> Option<IntCC> {
    Some(match op {
        BinaryOp::Eq => IntCC::Equal,
        BinaryOp::Ne => IntCC::NotEqual,
        BinaryOp::Lt => IntCC::SignedLessThan,
        BinaryOp::Le => IntCC::SignedLessThanOrEqual,
        BinaryOp::Gt => IntCC::SignedGreaterThan,
        BinaryOp::Ge => IntCC::SignedGreaterThanOrEqual,
        _ => return None,
    })
}

fn op_code(op: BinaryOp) -> i64 {
    BinaryOp::ALL.iter().position(|o| *o == op).unwrap_or(0) as i64
}

impl Gen<'_, '_, '_> {
    fn rep(&self, ty: &Ty) -> Rep {
        Rep::of(self.m.body, ty)
    }

    fn iconst(&mut self, value: i64) -> Value {
        self.b.ins().iconst(I64, value)
    }

    /// Calls helper `name` and gives its result.
    fn helper(&mut self, name: &'static str, args: &[Value]) -> Value {
        let id = self.m.helpers[name];
        self.call_id(id, args)
    }

    fn call_id(&mut self, id: FuncId, args: &[Value]) -> Value {
        let fref = match self.refs.get(&id) {
            Some(fref) => *fref,
            None => {
                let fref = self.m.module.declare_func_in_func(id, self.b.func);
                self.refs.insert(id, fref);
                fref
            }
        };
        let inst = self.b.ins().call(fref, args);
        self.b.inst_results(inst)[0]
    }

    /// Continues when `status` is 0; goes to the error exit otherwise.
    fn check(&mut self, status: Value) {
        let ok = self.b.create_block();
        self.b.ins().brif(status, self.err, &[], ok, &[]);
        self.b.switch_to_block(ok);
    }

    /// Continues when `value` is not 0 (a handle); goes to the error exit otherwise.
    fn check_present(&mut self, value: Value) {
        let ok = self.b.create_block();
        self.b.ins().brif(value, ok, &[], self.err, &[]);
        self.b.switch_to_block(ok);
    }

    /// Fails with the interpreter's internal error `message`.
    fn fail_internal(&mut self, message: String) {
        let id = self.m.tables.message(message);
        let id = self.iconst(id as i64);
        let call = self.call;
        self.helper("flow_internal", &[call, id]);
        self.b.ins().jump(self.err, &[]);
        let dead = self.b.create_block();
        self.b.switch_to_block(dead);
    }

    /// Continues when `holds` is not 0; fails with internal error `message` otherwise.
    fn require(&mut self, holds: Value, message: String) {
        let ok = self.b.create_block();
        let fail = self.b.create_block();
        self.b.ins().brif(holds, ok, &[], fail, &[]);
        self.b.switch_to_block(fail);
        self.fail_internal(message);
        self.b.switch_to_block(ok);
    }

    /// Words to a stack slot: its address.
    fn spill(&mut self, words: &[Value]) -> Value {
        let slot = self.b.create_sized_stack_slot(StackSlotData::new(
            StackSlotKind::ExplicitSlot,
            (words.len().max(1) * 8) as u32,
            3,
        ));
        for (i, word) in words.iter().enumerate() {
            self.b.ins().stack_store(I64, *word, slot, (i * 8) as i32);
        }
        self.b.ins().stack_addr(I64, slot, 0)
    }

    fn reload(&mut self, address: Value, n: usize) -> Words {
        (0..n).map(|i| self.b.ins().load(I64, MemFlagsData::trusted(), address, (i * 8) as i32)).collect()
    }

    /// Room for `n` words: its address.
    fn room(&mut self, n: usize) -> Value {
        let zeros = vec![self.iconst(0); n];
        self.spill(&zeros)
    }

    /// A handle to `words` of `rep`.
    fn handle_of(&mut self, rep: Rep, words: Words) -> Value {
        if rep == (Rep { kind: Kind::Handle, optional: false }) {
            return words[0];
        }
        let address = self.spill(&words);
        let code = self.iconst(rep.code() as i64);
        let call = self.call;
        let handle = self.helper("flow_pack", &[call, code, address]);
        self.check_present(handle);
        handle
    }

    /// The words of `rep` of the value `handle` points to.
    fn unpack_handle(&mut self, handle: Value, rep: Rep) -> Words {
        if rep == (Rep { kind: Kind::Handle, optional: false }) {
            return vec![handle];
        }
        let out = self.room(rep.words());
        let code = self.iconst(rep.code() as i64);
        let call = self.call;
        let status = self.helper("flow_unpack", &[call, handle, code, out]);
        self.check(status);
        self.reload(out, rep.words())
    }

    /// `words` of `from` as `to` (a value where a wider type is expected: `T` as `T?`).
    fn coerce(&mut self, from: Rep, to: Rep, words: Words) -> Result<Words> {
        if from == to {
            return Ok(words);
        }
        if from.kind == to.kind && !from.optional && to.optional {
            let present = self.iconst(1);
            return Ok(std::iter::once(present).chain(words).collect());
        }
        if from.kind == Kind::Handle || to.kind == Kind::Handle {
            let handle = self.handle_of(from, words);
            return Ok(self.unpack_handle(handle, to));
        }
        Err(format!("cannot use a value held as {from:?} as {to:?}"))
    }

    fn bool_of(&mut self, flag: Value) -> Value {
        self.b.ins().uextend(I64, flag)
    }

    fn expr(&mut self, expr: &Expr) -> Result<Words> {
        // Plans nest expressions up to 1,024 levels deep.
        stacker::maybe_grow(256 * 1024, 2 * 1024 * 1024, || self.expr_inner(expr))
    }

    /// The frame's words for `expr` when it is a place of a node's value held there.
    fn frame_place(&mut self, expr: &Expr, rep: Rep) -> Option<Words> {
        if self.in_function
            || rep.kind == Kind::Handle
            || !matches!(expr.kind, ExprKind::Node(_) | ExprKind::Field { .. })
        {
            return None;
        }
        let (node, path) = expr.place()?;
        let node = (self.m.node_index)(node)?;
        let path: Vec<SmolStr> = path.into_iter().cloned().collect();
        let currency = match expr.ty.unwrap_optional() {
            Ty::Money(currency) => *currency,
            _ => None,
        };
        let hints = field_hints(self.m.body, expr);
        let offset = self.m.layout.place(node, (&path, hints), rep, currency);
        self.reads.insert(node);
        Some(self.frame_words(offset, rep.words()))
    }

    fn frame_words(&mut self, offset: u32, n: usize) -> Words {
        let frame = self.frame;
        (0..n)
            .map(|i| self.b.ins().load(I64, MemFlagsData::trusted(), frame, ((offset as usize + i) * 8) as i32))
            .collect()
    }

    fn expr_inner(&mut self, expr: &Expr) -> Result<Words> {
        if let Some(holds) = self.kept_test(expr) {
            return Ok(vec![holds]);
        }
        let rep = self.rep(&expr.ty);
        if let Some(words) = self.frame_place(expr, rep) {
            return Ok(words);
        }
        Ok(match &expr.kind {
            ExprKind::Lit(literal) => self.literal(literal),
            ExprKind::Interpolate(parts) => {
                let mut handles = Vec::with_capacity(parts.len());
                for part in parts {
                    handles.push(match part {
                        Part::Text(text) => self.constant(RunValue::Text(text.clone())),
                        Part::Expr(e) => {
                            let words = self.expr(e)?;
                            let rep = self.rep(&e.ty);
                            self.handle_of(rep, words)
                        }
                    });
                }
                let address = self.spill(&handles);
                let n = self.iconst(handles.len() as i64);
                let call = self.call;
                vec![self.helper("flow_concat", &[call, address, n])]
            }
            ExprKind::Node(name) => {
                let Some(index_of) = (self.m.node_index)(name) else { return Err(format!("no node `{name}`")) };
                let index = self.iconst(i64::from(index_of));
                let name = self.m.tables.name(name);
                let name = self.iconst(name as i64);
                let call = self.call;
                self.values.insert(index_of);
                let handle = self.helper("flow_node", &[call, index, name]);
                self.check_present(handle);
                self.unpack_handle(handle, rep)
            }
            ExprKind::Param(i) => {
                let Some((offset, param)) = self.params.get(*i as usize).copied() else {
                    return Err(format!("no parameter {i}"));
                };
                let args = self.args;
                let words: Words = (0..param.words())
                    .map(|w| self.b.ins().load(I64, MemFlagsData::trusted(), args, (offset + w as i32) * 8))
                    .collect();
                self.coerce(param, rep, words)?
            }
            ExprKind::Local(i) => {
                let at = self.locals.len().checked_sub(*i as usize + 1);
                let Some((local, words)) = at.and_then(|at| self.locals.get(at)).cloned() else {
                    return Err(format!("no item {i} of `any`/`all`"));
                };
                self.coerce(local, rep, words)?
            }
            ExprKind::Variant(v) => {
                let id = self.m.tables.variant(v);
                vec![self.iconst(id as i64)]
            }
            ExprKind::Field { base, field } => {
                let words = self.expr(base)?;
                let base_rep = self.rep(&base.ty);
                let handle = self.handle_of(base_rep, words);
                let name = self.m.tables.name(field);
                let name = self.iconst(name as i64);
                let call = self.call;
                let value = self.helper("flow_field", &[call, handle, name]);
                self.check_present(value);
                self.unpack_handle(value, rep)
            }
            ExprKind::Unwrap(inner) => {
                let words = self.expr(inner)?;
                let inner_rep = self.rep(&inner.ty);
                if !inner_rep.optional {
                    return self.coerce(inner_rep, rep, words);
                }
                self.require(words[0], "an optional proved present is absent".to_owned());
                let value = Rep { kind: inner_rep.kind, optional: false };
                self.coerce(value, rep, words[1..].to_vec())?
            }
            ExprKind::Declassify { value, .. } => self.expr(value)?,
            ExprKind::Widen(inner) => {
                let words = self.expr(inner)?;
                let inner_rep = self.rep(&inner.ty);
                match inner_rep.kind {
                    Kind::Int => {
                        let (present, int) =
                            if inner_rep.optional { (Some(words[0]), words[1]) } else { (None, words[0]) };
                        let decimal = self.widen(int);
                        let from = Rep { kind: Kind::Decimal, optional: inner_rep.optional };
                        let words = present.into_iter().chain(decimal).collect();
                        self.coerce(from, rep, words)?
                    }
                    _ => {
                        let handle = self.handle_of(inner_rep, words);
                        let call = self.call;
                        let widened = self.helper("flow_widen", &[call, handle]);
                        self.unpack_handle(widened, rep)
                    }
                }
            }
            ExprKind::Call { function, args } => {
                let id = self.m.function(function)?;
                let body = self.m.body;
                let Some(target) = body.function(function) else { return Err(format!("no function `{function}`")) };
                let mut words = Vec::new();
                for (arg, param) in args.iter().zip(&target.params) {
                    let value = self.expr(arg)?;
                    let (from, to) = (self.rep(&arg.ty), self.rep(&param.ty));
                    words.extend(self.coerce(from, to, value)?);
                }
                let result = self.rep(&target.result);
                let args = self.spill(&words);
                let out = self.room(result.words());
                let (call, frame) = (self.call, self.frame);
                let status = self.call_id(id, &[call, frame, args, out]);
                self.check(status);
                let value = self.reload(out, result.words());
                self.coerce(result, rep, value)?
            }
            ExprKind::Builtin { builtin: Builtin::IsPresent, args } => {
                let [arg] = args.as_slice() else { return Err("`is_present` takes one argument".to_owned()) };
                let words = self.expr(arg)?;
                let arg_rep = self.rep(&arg.ty);
                if arg_rep.optional { vec![words[0]] } else { vec![self.iconst(1)] }
            }
            ExprKind::Builtin { builtin, args } => {
                let mut handles = Vec::with_capacity(2);
                for arg in args {
                    let words = self.expr(arg)?;
                    let arg_rep = self.rep(&arg.ty);
                    handles.push(self.handle_of(arg_rep, words));
                }
                while handles.len() < 2 {
                    handles.push(self.iconst(0));
                }
                let which = Builtin::ALL.iter().position(|b| b == builtin).unwrap_or(0) as i64;
                let which = self.iconst(which);
                let code = self.iconst(rep.code() as i64);
                let out = self.room(rep.words());
                let call = self.call;
                let status = self.helper("flow_builtin", &[call, which, handles[0], handles[1], code, out]);
                self.check(status);
                self.reload(out, rep.words())
            }
            ExprKind::Now => self.frame_words(Layout::CLOCK, 2),
            ExprKind::StartedBy => {
                let code = self.iconst(rep.code() as i64);
                let out = self.room(rep.words());
                let call = self.call;
                let status = self.helper("flow_started_by", &[call, code, out]);
                self.check(status);
                self.reload(out, rep.words())
            }
            ExprKind::Age(input) => self.age(input)?,
            ExprKind::Stale(input) => {
                let age = self.age(input)?[0];
                let freshness = self.source(input)?.freshness;
                match freshness {
                    Some(limit) => {
                        let stale = self.b.ins().icmp_imm_s(IntCC::SignedGreaterThan, age, limit);
                        vec![self.bool_of(stale)]
                    }
                    None => vec![self.iconst(0)],
                }
            }
            ExprKind::Degraded(step) => {
                let Some(index) = (self.m.node_index)(step) else { return Err(format!("no step `{step}`")) };
                let word = self.m.layout.degraded(index);
                self.frame_words(word, 1)
            }
            ExprKind::Quantifier { all, list, body, .. } => self.quantifier(*all, list, body)?,
            // Lists are written only in tests, which the interpreter evaluates.
            ExprKind::List(_) => return Err("a list literal is not compiled to native code".to_owned()),
            ExprKind::Record(fields) => {
                let mut handles = Vec::with_capacity(fields.len());
                for field in fields {
                    let words = self.expr(&field.value)?;
                    let field_rep = self.rep(&field.value.ty);
                    handles.push(self.handle_of(field_rep, words));
                }
                let given: Vec<SmolStr> = fields.iter().map(|f| f.name.clone()).collect();
                let absent = match &expr.ty {
                    Ty::Named(name) => self.m.body.record(name).map_or_else(Vec::new, |record| {
                        record.fields.iter().filter(|d| !given.contains(&d.name)).map(|d| d.name.clone()).collect()
                    }),
                    _ => Vec::new(),
                };
                self.m.tables.records.push((given, absent));
                let shape = self.iconst(self.m.tables.records.len() as i64 - 1);
                let address = self.spill(&handles);
                let call = self.call;
                let record = self.helper("flow_record", &[call, shape, address]);
                self.check_present(record);
                self.coerce(Rep { kind: Kind::Handle, optional: false }, rep, vec![record])?
            }
            ExprKind::Not(inner) => {
                let words = self.expr(inner)?;
                vec![self.b.ins().bxor_imm_s(words[0], 1)]
            }
            ExprKind::Neg(inner) => {
                let words = self.expr(inner)?;
                let inner_rep = self.rep(&inner.ty);
                self.negate(inner_rep, words)?
            }
            ExprKind::Binary { op: op @ (BinaryOp::And | BinaryOp::Or), lhs, rhs } => {
                let l = self.expr(lhs)?[0];
                let merge = self.b.create_block();
                let result = self.b.append_block_param(merge, I64);
                let right = self.b.create_block();
                if *op == BinaryOp::And {
                    self.b.ins().brif(l, right, &[], merge, &[BlockArg::from(l)]);
                } else {
                    self.b.ins().brif(l, merge, &[BlockArg::from(l)], right, &[]);
                }
                self.b.switch_to_block(right);
                let r = self.expr(rhs)?[0];
                self.b.ins().jump(merge, &[BlockArg::from(r)]);
                self.b.switch_to_block(merge);
                vec![result]
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let l = self.expr(lhs)?;
                let r = self.expr(rhs)?;
                let (lrep, rrep) = (self.rep(&lhs.ty), self.rep(&rhs.ty));
                self.binary(*op, (lrep, l), (rrep, r), rep)?
            }
            ExprKind::If { branches, otherwise } => {
                let merge = self.b.create_block();
                let results: Words = (0..rep.words()).map(|_| self.b.append_block_param(merge, I64)).collect();
                for branch in branches {
                    let holds = self.expr(&branch.condition)?[0];
                    let then = self.b.create_block();
                    let next = self.b.create_block();
                    self.b.ins().brif(holds, then, &[], next, &[]);
                    self.b.switch_to_block(then);
                    let words = self.expr(&branch.then)?;
                    let from = self.rep(&branch.then.ty);
                    let words = self.coerce(from, rep, words)?;
                    let args: Vec<BlockArg> = words.into_iter().map(BlockArg::from).collect();
                    self.b.ins().jump(merge, &args);
                    self.b.switch_to_block(next);
                }
                let words = self.expr(otherwise)?;
                let from = self.rep(&otherwise.ty);
                let words = self.coerce(from, rep, words)?;
                let args: Vec<BlockArg> = words.into_iter().map(BlockArg::from).collect();
                self.b.ins().jump(merge, &args);
                self.b.switch_to_block(merge);
                results
            }
        })
    }

    /// The tests of a matrix condition that may be computed ahead: the comparisons in its
    /// `and`/`or`/`not` structure whose operands are places held in the frame or constants,
    /// of kinds whose comparison cannot fail.
    fn collect_tests<'e>(&self, expr: &'e Expr, tests: &mut Vec<&'e Expr>, distinct: &mut FxHashMap<&'e Expr, i32>) {
        match &expr.kind {
            ExprKind::Binary { op: BinaryOp::And | BinaryOp::Or, lhs, rhs } => {
                self.collect_tests(lhs, tests, distinct);
                self.collect_tests(rhs, tests, distinct);
            }
            ExprKind::Not(inner) => self.collect_tests(inner, tests, distinct),
            ExprKind::Binary { op, lhs, rhs } if op.is_comparison() && self.infallible(lhs, rhs) => {
                if !distinct.contains_key(expr) {
                    distinct.insert(expr, distinct.len() as i32);
                }
                tests.push(expr);
            }
            _ => {}
        }
    }

    /// Whether comparing `lhs` with `rhs` can neither fail nor read anything but the frame.
    fn infallible(&self, lhs: &Expr, rhs: &Expr) -> bool {
        let simple = |e: &Expr| match &e.kind {
            ExprKind::Lit(_) | ExprKind::Variant(_) => true,
            ExprKind::Node(_) | ExprKind::Field { .. } => {
                let rep = self.rep(&e.ty);
                !self.in_function
                    && !rep.optional
                    && rep.kind != Kind::Handle
                    && e.place().is_some_and(|(node, _)| (self.m.node_index)(node).is_some())
            }
            _ => false,
        };
        let kinds = match (&lhs.ty, &rhs.ty) {
            (Ty::Money(Some(a)), Ty::Money(Some(b))) => a == b,
            (Ty::Money(_), _) | (_, Ty::Money(_)) => false,
            (a, b) => a == b && !matches!(self.rep(a).kind, Kind::Handle),
        };
        kinds && simple(lhs) && simple(rhs)
    }

    /// A test of the matrix computed ahead, or a combination of them without branches.
    fn kept_test(&mut self, expr: &Expr) -> Option<Value> {
        let slot = self.kept?;
        if let Some(at) = self.tests.get(&(expr as *const Expr as usize)) {
            return Some(self.b.ins().stack_load(I64, I64, slot, at * 8));
        }
        match &expr.kind {
            ExprKind::Binary { op: op @ (BinaryOp::And | BinaryOp::Or), lhs, rhs } => {
                let l = self.kept_test(lhs)?;
                let r = self.kept_test(rhs)?;
                Some(if *op == BinaryOp::And { self.b.ins().band(l, r) } else { self.b.ins().bor(l, r) })
            }
            ExprKind::Not(inner) => {
                let inner = self.kept_test(inner)?;
                Some(self.b.ins().bxor_imm_s(inner, 1))
            }
            _ => None,
        }
    }

    fn literal(&mut self, literal: &Literal) -> Words {
        match literal {
            Literal::Int(i) | Literal::Duration(i) => vec![self.iconst(*i)],
            Literal::Bool(b) => vec![self.iconst(i64::from(*b))],
            Literal::Decimal(d) => decimal_words(*d).iter().map(|w| self.iconst(*w as i64)).collect(),
            Literal::Money(m) => {
                let [lo, hi] = decimal_words(m.amount);
                let currency = super::currency_word(m.currency);
                [lo, hi, currency].iter().map(|w| self.iconst(*w as i64)).collect()
            }
            Literal::Timestamp(t) => vec![self.iconst(t.seconds), self.iconst(i64::from(t.nanos))],
            Literal::Text(text) => vec![self.constant(RunValue::Text(text.clone()))],
        }
    }

    /// A handle to a constant value, kept by the plan's tables.
    fn constant(&mut self, value: RunValue) -> Value {
        let boxed = Box::new(value);
        let address = &*boxed as *const RunValue as i64;
        self.m.tables.constants.push(boxed);
        self.iconst(address)
    }

    /// `Decimal::from(int)` in words: the magnitude, and the sign in the top bit.
    fn widen(&mut self, int: Value) -> [Value; 2] {
        let magnitude = self.b.ins().iabs(int);
        let negative = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, int, 0);
        let negative = self.bool_of(negative);
        let sign = self.b.ins().ishl_imm_s(negative, 63);
        [magnitude, sign]
    }

    fn source(&self, input: &str) -> Result<&'_ flow_ir::plan::Source> {
        let body = self.m.body;
        match body.node(input).map(|n| &n.kind) {
            Some(NodeKind::Input { source: Some(source) }) => {
                body.source(source).ok_or_else(|| format!("no source `{source}`"))
            }
            _ => Err(format!("`{input}` comes from no source")),
        }
    }

    /// `age(input)`: the clock minus the input's `as_of`, in whole seconds.
    fn age(&mut self, input: &SmolStr) -> Result<Words> {
        let body = self.m.body;
        let source = self.source(input)?;
        let Some(as_of) = source.as_of.clone() else { return Err(format!("source `{}` has no `as_of`", source.name)) };
        let field_ty = match &source.ty {
            Ty::Named(record) => body.record(record).and_then(|r| r.field(&as_of)).map(|f| f.ty.clone()),
            _ => None,
        };
        let Some(field_ty) = field_ty else { return Err(format!("`{input}.{as_of}` is not declared")) };
        let rep = self.rep(&field_ty);
        if rep.kind != Kind::Timestamp || self.in_function {
            return Err(format!("`{input}.{as_of}` is not a timestamp"));
        }
        let Some(node) = (self.m.node_index)(input) else { return Err(format!("no input `{input}`")) };
        let hint = match &source.ty {
            Ty::Named(record) => body.record(record).map_or(u32::MAX, |r| field_index(r, &as_of)),
            _ => u32::MAX,
        };
        let offset = self.m.layout.place(node, (std::slice::from_ref(&as_of), vec![hint]), rep, None);
        self.reads.insert(node);
        let mut words = self.frame_words(offset, rep.words());
        if rep.optional {
            self.require(words[0], format!("`{input}.{as_of}` is not a timestamp"));
            words.remove(0);
        }
        let clock = self.frame_words(Layout::CLOCK, 2);
        Ok(vec![self.difference(&clock, &words)?])
    }

    /// `a - b` of two instants in whole seconds toward zero, failing as the interpreter does.
    fn difference(&mut self, a: &[Value], b: &[Value]) -> Result<Value> {
        let (seconds, overflow) = self.b.ins().ssub_overflow(a[0], b[0]);
        self.on_overflow(overflow, "an age");
        let earlier = self.b.ins().icmp(IntCC::UnsignedLessThan, a[1], b[1]);
        let later = self.b.ins().icmp(IntCC::UnsignedGreaterThan, a[1], b[1]);
        let positive = self.b.ins().icmp_imm_s(IntCC::SignedGreaterThan, seconds, 0);
        let negative = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, seconds, 0);
        let down = self.b.ins().band(positive, earlier);
        let up = self.b.ins().band(negative, later);
        let down = self.bool_of(down);
        let up = self.bool_of(up);
        let seconds = self.b.ins().isub(seconds, down);
        Ok(self.b.ins().iadd(seconds, up))
    }

    /// Fails with an overflow of `what` when `overflow` is set.
    fn on_overflow(&mut self, overflow: Value, what: &str) {
        let fail = self.b.create_block();
        let ok = self.b.create_block();
        self.b.ins().brif(overflow, fail, &[], ok, &[]);
        self.b.switch_to_block(fail);
        let message = self.m.tables.message(what.to_owned());
        let message = self.iconst(message as i64);
        let call = self.call;
        self.helper("flow_overflow", &[call, message]);
        self.b.ins().jump(self.err, &[]);
        self.b.switch_to_block(ok);
    }

    fn quantifier(&mut self, all: bool, list: &Expr, body: &Expr) -> Result<Words> {
        let Ty::List(item) = &list.ty else { return Err("`any`/`all` of a non-list".to_owned()) };
        let item_rep = self.rep(item);
        let words = self.expr(list)?;
        let list_rep = self.rep(&list.ty);
        let handle = self.handle_of(list_rep, words);
        let n = self.helper("flow_list_len", &[handle]);
        let header = self.b.create_block();
        let i = self.b.append_block_param(header, I64);
        let each = self.b.create_block();
        let done = self.b.create_block();
        let result = self.b.append_block_param(done, I64);
        let zero = self.iconst(0);
        self.b.ins().jump(header, &[BlockArg::from(zero)]);
        self.b.switch_to_block(header);
        let more = self.b.ins().icmp(IntCC::SignedLessThan, i, n);
        let unanimous = self.iconst(i64::from(all));
        self.b.ins().brif(more, each, &[], done, &[BlockArg::from(unanimous)]);
        self.b.switch_to_block(each);
        let item_handle = self.helper("flow_list_item", &[handle, i]);
        self.check_present(item_handle);
        let item_words = self.unpack_handle(item_handle, item_rep);
        self.locals.push((item_rep, item_words));
        let holds = self.expr(body);
        self.locals.pop();
        let holds = holds?[0];
        let next = self.b.create_block();
        let decided = self.iconst(i64::from(!all));
        if all {
            self.b.ins().brif(holds, next, &[], done, &[BlockArg::from(decided)]);
        } else {
            self.b.ins().brif(holds, done, &[BlockArg::from(decided)], next, &[]);
        }
        self.b.switch_to_block(next);
        let i_next = self.b.ins().iadd_imm_s(i, 1);
        self.b.ins().jump(header, &[BlockArg::from(i_next)]);
        self.b.switch_to_block(done);
        Ok(vec![result])
    }

    /// The interpreter's `l op r` through a helper, for operands held as words.
    fn generic(&mut self, op: BinaryOp, l: (Rep, &[Value]), r: (Rep, &[Value]), out: Rep) -> Words {
        let (laddr, raddr) = (self.spill(l.1), self.spill(r.1));
        let result = self.room(out.words());
        let op = self.iconst(op_code(op));
        let reps = self.iconst((l.0.code() | r.0.code() << 16 | out.code() << 32) as i64);
        let call = self.call;
        let status = self.helper("flow_binary", &[call, op, reps, laddr, raddr, result]);
        self.check(status);
        self.reload(result, out.words())
    }

    /// When `failed` is set, the interpreter's `l op r`, which fails with its error.
    fn fail_as_interpreter(&mut self, failed: Value, op: BinaryOp, l: (Rep, &[Value]), r: (Rep, &[Value]), out: Rep) {
        let fail = self.b.create_block();
        let ok = self.b.create_block();
        self.b.ins().brif(failed, fail, &[], ok, &[]);
        self.b.switch_to_block(fail);
        self.generic(op, l, r, out);
        self.b.ins().jump(self.err, &[]);
        self.b.switch_to_block(ok);
    }

    fn binary(&mut self, op: BinaryOp, l: (Rep, Words), r: (Rep, Words), out: Rep) -> Result<Words> {
        use Kind::*;
        let ((lrep, lw), (rrep, rw)) = (l, r);
        if lrep.optional || rrep.optional {
            return Ok(self.generic(op, (lrep, &lw), (rrep, &rw), out));
        }
        if let Some(cc) = int_cc(op) {
            let holds = match (lrep.kind, rrep.kind) {
                (Bool, Bool) | (Int, Int) | (Duration, Duration) | (Variant, Variant) => {
                    self.b.ins().icmp(cc, lw[0], rw[0])
                }
                (Decimal, Decimal) => self.decimal_compare(cc, &lw, &rw),
                (Money, Money) => {
                    let mismatch = self.b.ins().icmp(IntCC::NotEqual, lw[2], rw[2]);
                    self.fail_as_interpreter(mismatch, op, (lrep, &lw), (rrep, &rw), out);
                    self.decimal_compare(cc, &lw, &rw)
                }
                (Timestamp, Timestamp) => {
                    let order = self.order(&lw, &rw);
                    self.b.ins().icmp_imm_s(cc, order, 0)
                }
                _ => return Ok(self.generic(op, (lrep, &lw), (rrep, &rw), out)),
            };
            return Ok(vec![self.bool_of(holds)]);
        }
        if op == BinaryOp::Mul && matches!((lrep.kind, rrep.kind), (Decimal | Money, Decimal) | (Decimal, Money)) {
            return Ok(self.decimal_product((lrep, &lw), (rrep, &rw), out));
        }
        let checked = |g: &mut Self, a: Value, b: Value| match op {
            BinaryOp::Add => Some(g.b.ins().sadd_overflow(a, b)),
            BinaryOp::Sub => Some(g.b.ins().ssub_overflow(a, b)),
            BinaryOp::Mul => Some(g.b.ins().smul_overflow(a, b)),
            _ => None,
        };
        let native = match (op, lrep.kind, rrep.kind) {
            (_, Int, Int) | (BinaryOp::Add | BinaryOp::Sub, Duration, Duration) => checked(self, lw[0], rw[0]),
            (BinaryOp::Mul, Duration, Int) | (BinaryOp::Mul, Int, Duration) => checked(self, lw[0], rw[0]),
            (BinaryOp::Add | BinaryOp::Sub, Timestamp, Duration) => checked(self, lw[0], rw[0]),
            (BinaryOp::Add, Duration, Timestamp) => checked(self, rw[0], lw[0]),
            (BinaryOp::Sub, Timestamp, Timestamp) => return Ok(vec![self.difference(&lw, &rw)?]),
            _ => None,
        };
        let Some((value, mut overflow)) = native else { return Ok(self.generic(op, (lrep, &lw), (rrep, &rw), out)) };
        if lrep.kind == Timestamp || rrep.kind == Timestamp {
            // An instant outside the years 0000 to 9999 fails as an overflow too.
            let early = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, value, flow_ir::time::FIRST);
            let late = self.b.ins().icmp_imm_s(IntCC::SignedGreaterThan, value, flow_ir::time::LAST);
            let outside = self.b.ins().bor(early, late);
            overflow = self.b.ins().bor(overflow, outside);
        }
        self.fail_as_interpreter(overflow, op, (lrep, &lw), (rrep, &rw), out);
        Ok(match (lrep.kind, rrep.kind) {
            (Timestamp, _) => vec![value, lw[1]],
            (_, Timestamp) => vec![value, rw[1]],
            _ => vec![value],
        })
    }

    /// `l * r` of decimals or an amount and a decimal. Natively when both mantissas have at
    /// most 64 bits, neither is zero, and their product fits in 96 bits at a scale of at most
    /// 28: `rust_decimal` then gives exactly that product, at the sum of their scales, with
    /// their signs combined (`ops/mul.rs`: no rounding, no rescaling). Otherwise, the
    /// interpreter's operation, which rounds or fails as it does.
    fn decimal_product(&mut self, l: (Rep, &[Value]), r: (Rep, &[Value]), out: Rep) -> Words {
        let (a, b) = (&l.1[..2], &r.1[..2]);
        let high_a = self.b.ins().band_imm_s(a[1], 0xffff_ffff);
        let high_b = self.b.ins().band_imm_s(b[1], 0xffff_ffff);
        let highs = self.b.ins().bor(high_a, high_b);
        let narrow = self.b.ins().icmp_imm_s(IntCC::Equal, highs, 0);
        let zero_a = self.b.ins().icmp_imm_s(IntCC::Equal, a[0], 0);
        let zero_b = self.b.ins().icmp_imm_s(IntCC::Equal, b[0], 0);
        let zero = self.b.ins().bor(zero_a, zero_b);
        let (wide_a, wide_b) = (self.b.ins().uextend(I128, a[0]), self.b.ins().uextend(I128, b[0]));
        let product = self.b.ins().imul(wide_a, wide_b);
        let (low, high) = self.b.ins().isplit(product);
        let beyond = self.b.ins().ushr_imm_s(high, 32);
        let fits = self.b.ins().icmp_imm_s(IntCC::Equal, beyond, 0);
        let scale = |g: &mut Self, w: Value| {
            let shifted = g.b.ins().ushr_imm_s(w, 48);
            g.b.ins().band_imm_s(shifted, 0xff)
        };
        let (scale_a, scale_b) = (scale(self, a[1]), scale(self, b[1]));
        let scale = self.b.ins().iadd(scale_a, scale_b);
        let within = self.b.ins().icmp_imm_s(IntCC::UnsignedLessThanOrEqual, scale, 28);
        let exact = self.b.ins().band(narrow, fits);
        let exact = self.b.ins().band(exact, within);
        let nonzero = self.b.ins().bxor_imm_s(zero, 1);
        let exact = self.b.ins().band(exact, nonzero);

        let fast = self.b.create_block();
        let slow = self.b.create_block();
        let merge = self.b.create_block();
        let results: Words = (0..out.words()).map(|_| self.b.append_block_param(merge, I64)).collect();
        self.b.ins().brif(exact, fast, &[], slow, &[]);

        self.b.switch_to_block(fast);
        let signs = self.b.ins().bxor(a[1], b[1]);
        let sign = self.b.ins().band_imm_s(signs, i64::MIN);
        let scale = self.b.ins().ishl_imm_s(scale, 48);
        let flags = self.b.ins().bor(scale, sign);
        let word = self.b.ins().bor(high, flags);
        let mut words = vec![low, word];
        if out.kind == Kind::Money {
            // The amount's currency.
            words.push(if l.0.kind == Kind::Money { l.1[2] } else { r.1[2] });
        }
        let args: Vec<BlockArg> = words.iter().map(|w| BlockArg::from(*w)).collect();
        self.b.ins().jump(merge, &args);

        self.b.switch_to_block(slow);
        let words = self.generic(BinaryOp::Mul, l, r, out);
        let args: Vec<BlockArg> = words.iter().map(|w| BlockArg::from(*w)).collect();
        self.b.ins().jump(merge, &args);

        self.b.switch_to_block(merge);
        results
    }

    /// -1, 0 or 1 as `a` is before, at or after `b` (instants).
    fn order(&mut self, a: &[Value], b: &[Value]) -> Value {
        let seconds = self.b.ins().icmp(IntCC::SignedLessThan, a[0], b[0]);
        let seconds_after = self.b.ins().icmp(IntCC::SignedGreaterThan, a[0], b[0]);
        let nanos = self.b.ins().icmp(IntCC::UnsignedLessThan, a[1], b[1]);
        let nanos_after = self.b.ins().icmp(IntCC::UnsignedGreaterThan, a[1], b[1]);
        let (minus, plus, zero) = (self.iconst(-1), self.iconst(1), self.iconst(0));
        let by_nanos = self.b.ins().select(nanos_after, plus, zero);
        let by_nanos = self.b.ins().select(nanos, minus, by_nanos);
        let by_seconds = self.b.ins().select(seconds_after, plus, by_nanos);
        self.b.ins().select(seconds, minus, by_seconds)
    }

    /// Compares two decimals natively as 128-bit integers: directly when their scales
    /// agree; else after multiplying the mantissa of the one with the smaller scale by the
    /// power of ten between them, when that mantissa has at most 64 bits and the power is at
    /// most 10^18 (the product then fits); by `rust_decimal` otherwise.
    fn decimal_compare(&mut self, cc: IntCC, a: &[Value], b: &[Value]) -> Value {
        let scale = |g: &mut Self, w: Value| {
            let shifted = g.b.ins().ushr_imm_s(w, 48);
            g.b.ins().band_imm_s(shifted, 0xff)
        };
        let (sa, sb) = (scale(self, a[1]), scale(self, b[1]));
        let same = self.b.ins().icmp(IntCC::Equal, sa, sb);
        let fast = self.b.create_block();
        let differ = self.b.create_block();
        let rescale = self.b.create_block();
        let slow = self.b.create_block();
        let merge = self.b.create_block();
        let result = self.b.append_block_param(merge, I64);
        self.b.ins().brif(same, fast, &[], differ, &[]);

        self.b.switch_to_block(fast);
        let (va, vb) = (self.signed_decimal(a), self.signed_decimal(b));
        let holds = self.b.ins().icmp(cc, va, vb);
        let holds = self.bool_of(holds);
        self.b.ins().jump(merge, &[BlockArg::from(holds)]);

        self.b.switch_to_block(differ);
        let a_smaller = self.b.ins().icmp(IntCC::UnsignedLessThan, sa, sb);
        let (up, down) = (self.b.ins().isub(sb, sa), self.b.ins().isub(sa, sb));
        let diff = self.b.ins().select(a_smaller, up, down);
        let (ha, hb) = (self.b.ins().band_imm_s(a[1], 0xffff_ffff), self.b.ins().band_imm_s(b[1], 0xffff_ffff));
        let small_high = self.b.ins().select(a_smaller, ha, hb);
        let narrow = self.b.ins().icmp_imm_s(IntCC::Equal, small_high, 0);
        let near = self.b.ins().icmp_imm_s(IntCC::UnsignedLessThanOrEqual, diff, 18);
        let fits = self.b.ins().band(narrow, near);
        self.b.ins().brif(fits, rescale, &[], slow, &[]);

        self.b.switch_to_block(rescale);
        let powers = self.iconst(POWERS_OF_TEN.as_ptr() as i64);
        let at = self.b.ins().ishl_imm_s(diff, 3);
        let at = self.b.ins().iadd(powers, at);
        let power = self.b.ins().load(I64, MemFlagsData::trusted(), at, 0);
        let small_low = self.b.ins().select(a_smaller, a[0], b[0]);
        let small_low = self.b.ins().uextend(I128, small_low);
        let power = self.b.ins().uextend(I128, power);
        let magnitude = self.b.ins().imul(small_low, power);
        let negated = self.b.ins().ineg(magnitude);
        let small_sign = self.b.ins().select(a_smaller, a[1], b[1]);
        let negative = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, small_sign, 0);
        let small = self.b.ins().select(negative, negated, magnitude);
        let (va, vb) = (self.signed_decimal(a), self.signed_decimal(b));
        let big = self.b.ins().select(a_smaller, vb, va);
        let left = self.b.ins().select(a_smaller, small, big);
        let right = self.b.ins().select(a_smaller, big, small);
        let holds = self.b.ins().icmp(cc, left, right);
        let holds = self.bool_of(holds);
        self.b.ins().jump(merge, &[BlockArg::from(holds)]);

        self.b.switch_to_block(slow);
        let order = self.helper("flow_decimal_cmp", &[a[0], a[1], b[0], b[1]]);
        let holds = self.b.ins().icmp_imm_s(cc, order, 0);
        let holds = self.bool_of(holds);
        self.b.ins().jump(merge, &[BlockArg::from(holds)]);
        self.b.switch_to_block(merge);
        self.b.ins().icmp_imm_s(IntCC::NotEqual, result, 0)
    }

    /// A decimal's mantissa with its sign, as a 128-bit integer.
    fn signed_decimal(&mut self, w: &[Value]) -> Value {
        let high = self.b.ins().band_imm_s(w[1], 0xffff_ffff);
        let magnitude = self.b.ins().iconcat(w[0], high);
        let negated = self.b.ins().ineg(magnitude);
        let negative = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, w[1], 0);
        self.b.ins().select(negative, negated, magnitude)
    }

    fn negate(&mut self, rep: Rep, words: Words) -> Result<Words> {
        if !rep.optional && matches!(rep.kind, Kind::Int | Kind::Duration) {
            let is_min = self.b.ins().icmp_imm_s(IntCC::Equal, words[0], i64::MIN);
            let fail = self.b.create_block();
            let ok = self.b.create_block();
            self.b.ins().brif(is_min, fail, &[], ok, &[]);
            self.b.switch_to_block(fail);
            self.generic_negate(rep, &words);
            self.b.ins().jump(self.err, &[]);
            self.b.switch_to_block(ok);
            return Ok(vec![self.b.ins().ineg(words[0])]);
        }
        Ok(self.generic_negate(rep, &words))
    }

    fn generic_negate(&mut self, rep: Rep, words: &[Value]) -> Words {
        let address = self.spill(words);
        let out = self.room(rep.words());
        let code = self.iconst(rep.code() as i64);
        let call = self.call;
        let status = self.helper("flow_negate", &[call, code, address, out]);
        self.check(status);
        self.reload(out, rep.words())
    }
}

/// Where each field of a place's path (as [`Expr::place`] reads it) sits in its record,
/// from the types of the bases it is read from; `u32::MAX` where no record type says.
fn field_hints(body: &PlanBody, expr: &Expr) -> Vec<u32> {
    let mut hints = Vec::new();
    let mut at = expr;
    loop {
        match &at.kind {
            ExprKind::Field { base, field } => {
                let hint = match base.ty.unwrap_optional() {
                    Ty::Named(name) => body.record(name).map_or(u32::MAX, |r| field_index(r, field)),
                    _ => u32::MAX,
                };
                hints.push(hint);
                at = base;
            }
            ExprKind::Unwrap(inner) => at = inner,
            _ => break,
        }
    }
    hints.reverse();
    hints
}

/// Where `field` sits among a record's fields (sorted by name), or `u32::MAX`.
fn field_index(record: &flow_ir::plan::Record, field: &str) -> u32 {
    record.fields.binary_search_by(|f| f.name.as_str().cmp(field)).map_or(u32::MAX, |i| i as u32)
}
