//! Differential tests of native code against the interpreter: random well-typed
//! expressions and approval matrices over random values — edge values included (the
//! largest and smallest whole numbers, zero, decimals of every scale up to the largest
//! mantissa, negative money, money of two currencies, empty text, absent optionals) — must
//! give identical values and identical errors with both engines.
//!
//! 10,000 cases by default; `FLOW_JIT_CASES=1000000 cargo test --release -p flow-tests
//! native_code_` runs a million (`docs/benchmarks.md`).

use flow_ir::PlanBody;
use flow_ir::expr::{BinaryOp, Branch, Builtin, Expr, ExprKind, Literal, Money, Named, Part, Timestamp};
use flow_ir::plan::{Node, NodeKind, Requirement, Row};
use flow_ir::ty::{Currency, Ty};
use flow_runtime::interp::{self, Scope};
use flow_runtime::jit::Native;
use flow_runtime::value::Value;
use rust_decimal::Decimal;
use smol_str::SmolStr;

use crate::runtime::Rng;

/// The declarations the expressions read: one input of every kind of value, from a source
/// (for `age` and `stale`), a param, and two functions.
const FIXTURE: &str = r#"
role clerk
enum Tier { low, mid, high }
type Sub {
  k: Int
  note: Text?
}
type Case {
  i: Int
  j: Int
  d: Decimal
  e: Decimal
  m: Money
  n: Money
  usd: Money[USD]
  t: Timestamp
  u: Timestamp
  w: Duration
  s: Text
  r: Text
  tier: Tier
  flag: Bool
  oi: Int?
  od: Decimal?
  om: Money?
  ints: List[Int]
  texts: List[Text]
  sub: Sub?
  who: Principal
  seen: Timestamp
}
source registry: Case {
  authority "test"
  freshness 7d
  as_of seen
}
fn twice(x: Int) -> Int = x + x
fn scale(x: Decimal, y: Decimal) -> Decimal = if x > y then x * y else x - y
flow diff {
  version "1.0.0"
  owner clerk
  steward clerk
  input c: Case from registry
  output o: Bool
  param p: Int = 3
  access {
    trigger by clerk
  }
  let doubled = twice(p)
  let scaled = scale(c.d, c.e)
  emit o = c.flag
}
"#;

fn fixture() -> PlanBody {
    let checked = crate::check_fixture("main.flow", FIXTURE.as_bytes());
    assert!(checked.clean(), "{:?}", checked.diagnostics);
    let plan = crate::plans(&checked).into_iter().flatten().next().expect("the fixture compiles");
    plan.body().clone()
}

fn e(ty: Ty, kind: ExprKind) -> Expr {
    Expr::new(ty, kind)
}

fn lit(literal: Literal) -> Expr {
    e(literal.ty(), ExprKind::Lit(literal))
}

fn bin(ty: Ty, op: BinaryOp, lhs: Expr, rhs: Expr) -> Expr {
    e(ty, ExprKind::Binary { op, lhs: Box::new(lhs), rhs: Box::new(rhs) })
}

fn money_ty() -> Ty {
    Ty::Money(None)
}

fn named(name: &str) -> Ty {
    Ty::Named(name.into())
}

fn currency(code: &str) -> Currency {
    Currency::new(code).expect("a currency")
}

/// A field of the input `c`.
fn field(ty: Ty, name: &str) -> Expr {
    let base = e(named("Case"), ExprKind::Node("c".into()));
    e(ty, ExprKind::Field { base: Box::new(base), field: name.into() })
}

const BIG: &str = "79228162514264337593543950335";

/// Random expressions of a type.
struct Exprs {
    rng: Rng,
    /// The types of the items of enclosing `any`/`all`, innermost last.
    locals: Vec<Ty>,
}

impl Exprs {
    fn decimal(&mut self) -> Decimal {
        // Mantissas of 64 bits too: native products are exact only where they fit in 96.
        let choices = [
            "0",
            "0.1",
            "0.10",
            "-2.5",
            "1",
            "3",
            "1000000",
            "0.0000000000000000000000000001",
            BIG,
            "-7.125",
            "18446744073709551615",
            "-4294967296.5",
        ];
        let text = choices[self.rng.below(choices.len())];
        let d: Decimal = text.parse().unwrap_or_default();
        if self.rng.below(4) == 0 {
            d
        } else {
            Decimal::new(self.rng.next() as i64 % 100_000, self.rng.below(6) as u32)
        }
    }

    fn int(&mut self) -> i64 {
        match self.rng.below(8) {
            0 => i64::MAX,
            1 => i64::MIN,
            2 => 0,
            3 => -1,
            4 => 1,
            _ => (self.rng.next() % 2_000) as i64 - 1_000,
        }
    }

    fn money(&mut self) -> Money {
        Money { amount: self.decimal(), currency: currency(if self.rng.below(5) == 0 { "USD" } else { "EUR" }) }
    }

    fn timestamp(&mut self) -> Timestamp {
        Timestamp {
            seconds: 1_790_000_000 + (self.rng.next() % 20_000_000) as i64,
            nanos: if self.rng.below(3) == 0 { 500_000_000 } else { 0 },
        }
    }

    fn text(&mut self) -> String {
        ["", "a", "Ünïcødé", "draft", "A Draft", "x y"][self.rng.below(6)].to_owned()
    }

    /// A random expression of type `ty`, at most `depth` levels deep.
    fn of(&mut self, ty: &Ty, depth: u32) -> Expr {
        // Locals of the type, read often where there are some.
        if let Some(i) = self.locals.iter().rev().position(|t| t == ty)
            && self.rng.below(3) == 0
        {
            return e(ty.clone(), ExprKind::Local(i as u32));
        }
        if depth == 0 || self.rng.below(4) == 0 {
            return self.leaf(ty);
        }
        let d = depth - 1;
        if self.rng.below(8) == 0 {
            return self.conditional(ty, d);
        }
        match ty {
            Ty::Bool => self.condition(d),
            Ty::Int => match self.rng.below(8) {
                0 => e(Ty::Int, ExprKind::Neg(Box::new(self.of(&Ty::Int, d)))),
                1 => {
                    let arg = if self.rng.below(2) == 0 { self.of(&Ty::Text, d) } else { self.list_of_ints(d) };
                    e(Ty::Int, ExprKind::Builtin { builtin: Builtin::Len, args: vec![arg] })
                }
                2 => e(Ty::Int, ExprKind::Call { function: "twice".into(), args: vec![self.of(&Ty::Int, d)] }),
                3 => self.present_or(&Ty::Int, "oi", d),
                4 => {
                    // `c.sub.k` where `c.sub` is proved present, or a new record's field.
                    let sub = named("Sub");
                    if self.rng.below(2) == 0 {
                        let optional = field(sub.clone().optional(), "sub");
                        let present = e(
                            Ty::Bool,
                            ExprKind::Builtin { builtin: Builtin::IsPresent, args: vec![optional.clone()] },
                        );
                        let unwrapped = e(sub, ExprKind::Unwrap(Box::new(optional)));
                        let k = e(Ty::Int, ExprKind::Field { base: Box::new(unwrapped), field: "k".into() });
                        let otherwise = self.of(&Ty::Int, d);
                        e(
                            Ty::Int,
                            ExprKind::If {
                                branches: vec![Branch { condition: present, then: k }],
                                otherwise: Box::new(otherwise),
                            },
                        )
                    } else {
                        let record = self.record(d);
                        e(Ty::Int, ExprKind::Field { base: Box::new(record), field: "k".into() })
                    }
                }
                _ => {
                    let op = *self.rng.pick(&[BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul]);
                    bin(Ty::Int, op, self.of(&Ty::Int, d), self.of(&Ty::Int, d))
                }
            },
            Ty::Decimal => match self.rng.below(9) {
                0 => e(Ty::Decimal, ExprKind::Neg(Box::new(self.of(&Ty::Decimal, d)))),
                1 => e(Ty::Decimal, ExprKind::Widen(Box::new(self.of(&Ty::Int, d)))),
                2 => bin(Ty::Decimal, BinaryOp::Div, self.of(&money_ty(), d), self.of(&money_ty(), d)),
                3 => bin(Ty::Decimal, BinaryOp::Div, self.of(&Ty::Duration, d), self.of(&Ty::Duration, d)),
                4 => e(
                    Ty::Decimal,
                    ExprKind::Call {
                        function: "scale".into(),
                        args: vec![self.of(&Ty::Decimal, d), self.of(&Ty::Decimal, d)],
                    },
                ),
                5 => self.present_or(&Ty::Decimal, "od", d),
                _ => {
                    let op = *self.rng.pick(&[BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div]);
                    bin(Ty::Decimal, op, self.of(&Ty::Decimal, d), self.of(&Ty::Decimal, d))
                }
            },
            Ty::Money(_) => match self.rng.below(7) {
                0 => e(money_ty(), ExprKind::Neg(Box::new(self.of(&money_ty(), d)))),
                1 => bin(money_ty(), BinaryOp::Mul, self.of(&money_ty(), d), self.of(&Ty::Decimal, d)),
                2 => bin(money_ty(), BinaryOp::Mul, self.of(&Ty::Decimal, d), self.of(&money_ty(), d)),
                3 => bin(money_ty(), BinaryOp::Div, self.of(&money_ty(), d), self.of(&Ty::Decimal, d)),
                4 => self.present_or(&money_ty(), "om", d),
                _ => {
                    let op = *self.rng.pick(&[BinaryOp::Add, BinaryOp::Sub]);
                    bin(money_ty(), op, self.of(&money_ty(), d), self.of(&money_ty(), d))
                }
            },
            Ty::Duration => match self.rng.below(7) {
                0 => e(Ty::Duration, ExprKind::Neg(Box::new(self.of(&Ty::Duration, d)))),
                1 => bin(Ty::Duration, BinaryOp::Sub, self.of(&Ty::Timestamp, d), self.of(&Ty::Timestamp, d)),
                2 => bin(Ty::Duration, BinaryOp::Mul, self.of(&Ty::Duration, d), self.of(&Ty::Int, d)),
                3 => bin(Ty::Duration, BinaryOp::Mul, self.of(&Ty::Int, d), self.of(&Ty::Duration, d)),
                4 => e(Ty::Duration, ExprKind::Age("c".into())),
                _ => {
                    let op = *self.rng.pick(&[BinaryOp::Add, BinaryOp::Sub]);
                    bin(Ty::Duration, op, self.of(&Ty::Duration, d), self.of(&Ty::Duration, d))
                }
            },
            Ty::Timestamp => match self.rng.below(4) {
                0 => e(Ty::Timestamp, ExprKind::Now),
                1 => bin(Ty::Timestamp, BinaryOp::Add, self.of(&Ty::Duration, d), self.of(&Ty::Timestamp, d)),
                _ => {
                    let op = *self.rng.pick(&[BinaryOp::Add, BinaryOp::Sub]);
                    bin(Ty::Timestamp, op, self.of(&Ty::Timestamp, d), self.of(&Ty::Duration, d))
                }
            },
            Ty::Text => match self.rng.below(3) {
                0 => e(Ty::Text, ExprKind::Builtin { builtin: Builtin::Lower, args: vec![self.of(&Ty::Text, d)] }),
                _ => {
                    let mut parts = vec![Part::Text("at ".to_owned())];
                    for _ in 0..1 + self.rng.below(3) {
                        let ty = self.any_type();
                        parts.push(Part::Expr(self.of(&ty, d)));
                        parts.push(Part::Text(" / ".to_owned()));
                    }
                    e(Ty::Text, ExprKind::Interpolate(parts))
                }
            },
            Ty::Optional(inner) => {
                if self.rng.below(2) == 0 {
                    self.of(inner, d)
                } else {
                    self.leaf(ty)
                }
            }
            _ => self.leaf(ty),
        }
    }

    /// `if is_present(c.F) then unwrap(c.F) (op …) else …`.
    fn present_or(&mut self, ty: &Ty, name: &str, d: u32) -> Expr {
        let optional = field(ty.clone().optional(), name);
        let present = e(Ty::Bool, ExprKind::Builtin { builtin: Builtin::IsPresent, args: vec![optional.clone()] });
        let then = e(ty.clone(), ExprKind::Unwrap(Box::new(optional)));
        let then = if self.rng.below(2) == 0 && *ty != Ty::Decimal {
            bin(ty.clone(), BinaryOp::Add, then, self.of(ty, d))
        } else {
            then
        };
        let otherwise = self.of(ty, d);
        e(
            ty.clone(),
            ExprKind::If { branches: vec![Branch { condition: present, then }], otherwise: Box::new(otherwise) },
        )
    }

    fn conditional(&mut self, ty: &Ty, d: u32) -> Expr {
        let branches = (0..1 + self.rng.below(2))
            .map(|_| Branch { condition: self.of(&Ty::Bool, d), then: self.of(ty, d) })
            .collect();
        e(ty.clone(), ExprKind::If { branches, otherwise: Box::new(self.of(ty, d)) })
    }

    fn record(&mut self, d: u32) -> Expr {
        let mut fields = vec![];
        if self.rng.below(2) == 0 {
            fields.push(Named { name: "k".into(), value: self.of(&Ty::Int, d) });
        } else {
            fields.push(Named { name: "k".into(), value: self.of(&Ty::Int, d) });
            fields.push(Named { name: "note".into(), value: self.of(&Ty::Text, d) });
        }
        e(named("Sub"), ExprKind::Record(fields))
    }

    fn list_of_ints(&mut self, _d: u32) -> Expr {
        field(Ty::List(Box::new(Ty::Int)), "ints")
    }

    fn any_type(&mut self) -> Ty {
        [Ty::Bool, Ty::Int, Ty::Decimal, money_ty(), Ty::Duration, Ty::Timestamp, Ty::Text, named("Tier")]
            [self.rng.below(8)]
        .clone()
    }

    fn condition(&mut self, d: u32) -> Expr {
        match self.rng.below(10) {
            0 => e(Ty::Bool, ExprKind::Not(Box::new(self.of(&Ty::Bool, d)))),
            1 | 2 => {
                let op = *self.rng.pick(&[BinaryOp::And, BinaryOp::Or]);
                bin(Ty::Bool, op, self.of(&Ty::Bool, d), self.of(&Ty::Bool, d))
            }
            3 => {
                let name = *self.rng.pick(&["oi", "od", "om", "sub"]);
                let ty = match name {
                    "oi" => Ty::Int,
                    "od" => Ty::Decimal,
                    "om" => money_ty(),
                    _ => named("Sub"),
                };
                let optional = field(ty.optional(), name);
                e(Ty::Bool, ExprKind::Builtin { builtin: Builtin::IsPresent, args: vec![optional] })
            }
            4 => e(
                Ty::Bool,
                ExprKind::Builtin {
                    builtin: Builtin::Contains,
                    args: vec![self.of(&Ty::Text, d), self.of(&Ty::Text, d)],
                },
            ),
            5 => {
                let (list, item) = if self.rng.below(2) == 0 {
                    (field(Ty::List(Box::new(Ty::Int)), "ints"), Ty::Int)
                } else {
                    (field(Ty::List(Box::new(Ty::Text)), "texts"), Ty::Text)
                };
                self.locals.push(item);
                let body = self.of(&Ty::Bool, d);
                self.locals.pop();
                e(
                    Ty::Bool,
                    ExprKind::Quantifier {
                        all: self.rng.below(2) == 0,
                        var: "x".into(),
                        list: Box::new(list),
                        body: Box::new(body),
                    },
                )
            }
            6 => e(Ty::Bool, ExprKind::Stale("c".into())),
            _ => {
                let ty = [
                    Ty::Int,
                    Ty::Decimal,
                    money_ty(),
                    Ty::Duration,
                    Ty::Timestamp,
                    Ty::Bool,
                    named("Tier"),
                    Ty::Text,
                    Ty::Principal,
                ][self.rng.below(9)]
                .clone();
                let ordered = matches!(ty, Ty::Int | Ty::Decimal | Ty::Money(_) | Ty::Duration | Ty::Timestamp);
                let ops: &[BinaryOp] = if ordered {
                    &[BinaryOp::Eq, BinaryOp::Ne, BinaryOp::Lt, BinaryOp::Le, BinaryOp::Gt, BinaryOp::Ge]
                } else {
                    &[BinaryOp::Eq, BinaryOp::Ne]
                };
                let op = *self.rng.pick(ops);
                bin(Ty::Bool, op, self.of(&ty, d), self.of(&ty, d))
            }
        }
    }

    /// A literal, a field of `c`, or the param.
    fn leaf(&mut self, ty: &Ty) -> Expr {
        let read = self.rng.below(2) == 0;
        match ty {
            Ty::Bool => {
                if read {
                    field(Ty::Bool, "flag")
                } else {
                    lit(Literal::Bool(self.rng.below(2) == 0))
                }
            }
            Ty::Int => match self.rng.below(4) {
                0 => field(Ty::Int, "i"),
                1 => field(Ty::Int, "j"),
                2 => e(Ty::Int, ExprKind::Node("p".into())),
                _ => lit(Literal::Int(self.int())),
            },
            Ty::Decimal => match self.rng.below(3) {
                0 => field(Ty::Decimal, "d"),
                1 => field(Ty::Decimal, "e"),
                _ => lit(Literal::Decimal(self.decimal())),
            },
            Ty::Money(_) => match self.rng.below(3) {
                0 => field(money_ty(), "m"),
                1 => field(money_ty(), "n"),
                _ => lit(Literal::Money(self.money())),
            },
            Ty::Duration => {
                if read {
                    field(Ty::Duration, "w")
                } else {
                    lit(Literal::Duration(self.int()))
                }
            }
            Ty::Timestamp => match self.rng.below(3) {
                0 => field(Ty::Timestamp, "t"),
                1 => field(Ty::Timestamp, "u"),
                _ => lit(Literal::Timestamp(self.timestamp())),
            },
            Ty::Text => match self.rng.below(3) {
                0 => field(Ty::Text, "s"),
                1 => field(Ty::Text, "r"),
                _ => lit(Literal::Text(self.text())),
            },
            Ty::Principal => field(Ty::Principal, "who"),
            Ty::Named(name) if name == "Tier" => {
                if read {
                    field(named("Tier"), "tier")
                } else {
                    e(named("Tier"), ExprKind::Variant(["low", "mid", "high"][self.rng.below(3)].into()))
                }
            }
            Ty::Optional(inner) => match &**inner {
                Ty::Int => field(ty.clone(), "oi"),
                Ty::Decimal => field(ty.clone(), "od"),
                _ => field(ty.clone(), "om"),
            },
            other => panic!("no leaf of type {other}"),
        }
    }
}

/// Random values of `Case`.
fn case_value(g: &mut Exprs) -> Value {
    let optional = |g: &mut Exprs, value: Value| if g.rng.below(3) == 0 { Value::Absent } else { value };
    let (oi, od, om) = (Value::Int(g.int()), Value::Decimal(g.decimal()), Value::Money(g.money()));
    let texts: Vec<Value> = (0..g.rng.below(4)).map(|_| Value::Text(g.text())).collect();
    let ints: Vec<Value> = (0..g.rng.below(4)).map(|_| Value::Int(g.int())).collect();
    let sub = Value::record(vec![
        ("k".into(), Value::Int(g.int())),
        ("note".into(), if g.rng.below(2) == 0 { Value::Absent } else { Value::Text(g.text()) }),
    ]);
    let fields: Vec<(SmolStr, Value)> = vec![
        ("i".into(), Value::Int(g.int())),
        ("j".into(), Value::Int(g.int())),
        ("d".into(), Value::Decimal(g.decimal())),
        ("e".into(), Value::Decimal(g.decimal())),
        ("m".into(), Value::Money(g.money())),
        ("n".into(), Value::Money(g.money())),
        ("usd".into(), Value::Money(Money { amount: g.decimal(), currency: currency("USD") })),
        ("t".into(), Value::Timestamp(g.timestamp())),
        ("u".into(), Value::Timestamp(g.timestamp())),
        ("w".into(), Value::Duration(g.int())),
        ("s".into(), Value::Text(g.text())),
        ("r".into(), Value::Text(g.text())),
        ("tier".into(), Value::Variant(["low", "mid", "high"][g.rng.below(3)].into())),
        ("flag".into(), Value::Bool(g.rng.below(2) == 0)),
        ("oi".into(), optional(g, oi)),
        ("od".into(), optional(g, od)),
        ("om".into(), optional(g, om)),
        ("ints".into(), Value::List(ints)),
        ("texts".into(), Value::List(texts)),
        ("sub".into(), optional(g, sub)),
        ("who".into(), Value::Principal(["ann", "bob"][g.rng.below(2)].into())),
        ("seen".into(), Value::Timestamp(g.timestamp())),
    ];
    Value::record(fields)
}

struct Values<'a> {
    body: &'a PlanBody,
    values: Vec<Option<Value>>,
    clock: Timestamp,
}

impl Scope for Values<'_> {
    fn node(&self, name: &str) -> Option<&Value> {
        let i = self.body.nodes.iter().position(|n| n.name == name)?;
        self.values[i].as_ref()
    }

    fn node_at(&self, index: u32) -> Option<&Value> {
        self.values.get(index as usize)?.as_ref()
    }

    fn degraded(&self, _name: &str) -> bool {
        false
    }

    fn clock(&self) -> Timestamp {
        self.clock
    }
}

/// `body` with an approval `matrix` of `rows` appended (its last node), compiled to native
/// code; `what` names the case in a failure.
fn with_matrix(body: &mut PlanBody, rows: &[Row], what: &str) -> Native {
    body.nodes.push(Node {
        name: "matrix".into(),
        ty: Ty::Approval("matrix".into()),
        kind: NodeKind::Approval { rows: rows.to_vec(), distinct_from: Vec::new() },
        regardless: Vec::new(),
        timing: None,
    });
    let names: Vec<SmolStr> = body.nodes.iter().map(|n| n.name.clone()).collect();
    let index = |name: &str| names.iter().position(|n| n == name).map(|i| i as u32);
    Native::compile(body, &index).unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// The first of `rows` whose condition holds, as the interpreter finds it: in turn.
fn first_row(body: &PlanBody, scope: &Values<'_>, rows: &[Row]) -> Result<Option<usize>, interp::EvalError> {
    rows.iter().enumerate().try_fold(None, |found, (r, row)| {
        if found.is_some() {
            return Ok(found);
        }
        match &row.condition {
            None => Ok(Some(r)),
            Some(c) => Ok(interp::eval(body, scope, c)?.as_bool().unwrap_or(false).then_some(r)),
        }
    })
}

fn cases() -> usize {
    std::env::var("FLOW_JIT_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(10_000)
}

/// Expressions per compiled batch, and value sets each is evaluated on.
const BATCH: usize = 50;
const VALUES: usize = 4;

#[test]
fn native_code_gives_the_interpreters_values_and_errors() {
    let fixture = fixture();
    let mut checked = 0;
    let mut errors = 0;
    let mut batch_seed = 0u64;
    while checked < cases() {
        batch_seed += 1;
        let mut g =
            Exprs { rng: Rng(0x9e37_79b9_7f4a_7c15 ^ batch_seed.wrapping_mul(0x2545_f491)), locals: Vec::new() };
        let mut body = fixture.clone();
        let first = body.nodes.len();
        for k in 0..BATCH {
            let ty = g.any_type();
            let ty = if k % 3 == 0 { Ty::Bool } else { ty };
            let depth = 1 + g.rng.below(5) as u32;
            let value = g.of(&ty, depth);
            body.nodes.push(Node {
                name: format!("x{k}").into(),
                ty: value.ty.clone(),
                kind: NodeKind::Let { value },
                regardless: Vec::new(),
                timing: None,
            });
        }
        let mut rows: Vec<Row> = Vec::new();
        for _ in 0..1 + g.rng.below(8) {
            rows.push(Row { condition: Some(g.of(&Ty::Bool, 3)), requirement: vec![Requirement::Auto] });
        }
        if g.rng.below(2) == 0 {
            rows.push(Row { condition: None, requirement: vec![Requirement::Auto] });
        }
        let native = with_matrix(&mut body, &rows, &format!("batch {batch_seed}"));
        let input = body.nodes.iter().position(|n| n.name == "c").expect("input c");
        let param = body.nodes.iter().position(|n| n.name == "p").expect("param p");
        for v in 0..VALUES {
            let mut values = vec![None; body.nodes.len()];
            values[input] = Some(case_value(&mut g));
            values[param] = Some(Value::Int(g.int()));
            let clock = g.timestamp();
            let degraded = vec![false; body.nodes.len()];
            let frame = native.frame(&values, &degraded, clock);
            let scope = Values { body: &body, values, clock };
            for node in &body.nodes[first..first + BATCH] {
                let NodeKind::Let { value: expr } = &node.kind else { continue };
                let expected = interp::eval(&body, &scope, expr);
                let actual = native.eval(expr, &scope, &frame);
                assert_eq!(
                    actual.as_ref(),
                    Some(&expected),
                    "batch {batch_seed}, values {v}: `{}` on {:?}",
                    flow_ir::print::expr(expr),
                    scope.values[input]
                );
                // Equal as values, and bit for bit (a decimal's scale shows in money).
                assert_eq!(format!("{actual:?}"), format!("{:?}", Some(&expected)), "`{}`", flow_ir::print::expr(expr));
                errors += usize::from(expected.is_err());
                checked += 1;
            }
            let expected = first_row(&body, &scope, &rows);
            let actual = native.matrix((body.nodes.len() - 1) as u32, &scope, &frame);
            assert_eq!(actual.as_ref(), Some(&expected), "batch {batch_seed}, values {v}: matrix");
        }
    }
    // Errors are part of what is compared: the generator must reach them.
    assert!(errors * 50 > checked, "only {errors} of {checked} cases failed");
}

/// Large approval matrices (64 rows and more) whose rows test places against constants are
/// decided as decision tables (`runtime/src/jit/table.rs`): random such matrices over ten
/// columns — tests of whole numbers, durations, decimals (negative zero too), money of one
/// currency, instants, variants and flags,
/// every comparison, constants on either side, `otherwise` rows — choose the row the
/// interpreter chooses, for values drawn from the same constants (so that equalities and
/// bounds are met exactly), and a matrix with one row of another shape is compiled to code.
#[test]
fn large_matrices_decide_as_tables_as_the_interpreter_does() {
    let fixture = fixture();
    let ints = [-3i64, -1, 0, 1, 2, 7, i64::MIN, i64::MAX];
    let decimals = ["0", "-0", "0.10", "0.1", "-2.5", "3", "1000000", "0.0000000000000000000000000001", BIG];
    let decimal = |i: usize| decimals[i].parse::<Decimal>().expect("a decimal");
    let instants = [(1_790_000_000, 0), (1_790_000_000, 500_000_000), (1_800_000_000, 0)];
    let ops = [BinaryOp::Eq, BinaryOp::Ne, BinaryOp::Lt, BinaryOp::Le, BinaryOp::Gt, BinaryOp::Ge];
    let mut tabled = 0;
    let mut reached = 0;
    for seed in 1..=120u64 {
        let mut g = Exprs { rng: Rng(0x5851_f42d_4c95_7f2d ^ seed.wrapping_mul(0x9e37_79b9)), locals: Vec::new() };
        let mut body = fixture.clone();
        // A test of one column, the constant on either side.
        let test = |g: &mut Exprs| -> Expr {
            let op = ops[g.rng.below(ops.len())];
            // Ten columns: more than a table keeps its regions for on the stack.
            let (place, constant) = match g.rng.below(10) {
                0 => (field(Ty::Int, "i"), lit(Literal::Int(ints[g.rng.below(ints.len())]))),
                7 => (field(Ty::Int, "j"), lit(Literal::Int(ints[g.rng.below(ints.len())]))),
                8 => (field(Ty::Decimal, "e"), lit(Literal::Decimal(decimal(g.rng.below(decimals.len()))))),
                9 => {
                    let (seconds, nanos) = instants[g.rng.below(instants.len())];
                    (field(Ty::Timestamp, "u"), lit(Literal::Timestamp(Timestamp { seconds, nanos })))
                }
                1 => (field(Ty::Duration, "w"), lit(Literal::Duration(ints[g.rng.below(ints.len())]))),
                2 => (field(Ty::Decimal, "d"), lit(Literal::Decimal(decimal(g.rng.below(decimals.len()))))),
                3 => {
                    let amount = decimal(g.rng.below(decimals.len()));
                    let usd = currency("USD");
                    (field(Ty::Money(Some(usd)), "usd"), lit(Literal::Money(Money { amount, currency: usd })))
                }
                4 => {
                    let (seconds, nanos) = instants[g.rng.below(instants.len())];
                    (field(Ty::Timestamp, "t"), lit(Literal::Timestamp(Timestamp { seconds, nanos })))
                }
                5 => {
                    let variant = ["low", "mid", "high"][g.rng.below(3)];
                    let op = [BinaryOp::Eq, BinaryOp::Ne][g.rng.below(2)];
                    let place = field(named("Tier"), "tier");
                    return bin(Ty::Bool, op, place, e(named("Tier"), ExprKind::Variant(variant.into())));
                }
                _ => {
                    let flag = field(Ty::Bool, "flag");
                    return match g.rng.below(3) {
                        0 => flag,
                        1 => e(Ty::Bool, ExprKind::Not(Box::new(flag))),
                        _ => bin(
                            Ty::Bool,
                            [BinaryOp::Eq, BinaryOp::Ne][g.rng.below(2)],
                            flag,
                            lit(Literal::Bool(g.rng.below(2) == 0)),
                        ),
                    };
                }
            };
            match g.rng.below(2) {
                0 => bin(Ty::Bool, op, place, constant),
                _ => bin(Ty::Bool, op, constant, place),
            }
        };
        let count = 64 + g.rng.below(200);
        let mut rows: Vec<Row> = Vec::with_capacity(count);
        for r in 0..count {
            let condition = match g.rng.below(40) {
                0 if r > 0 => None,
                _ => {
                    let mut condition = test(&mut g);
                    for _ in 0..g.rng.below(4) {
                        condition = bin(Ty::Bool, BinaryOp::And, condition, test(&mut g));
                    }
                    Some(condition)
                }
            };
            rows.push(Row { condition, requirement: vec![Requirement::Auto] });
        }
        // One matrix in eight has a row of another shape: it is compiled to code.
        let other = seed % 8 == 0;
        if other {
            let sum = bin(Ty::Int, BinaryOp::Add, field(Ty::Int, "i"), lit(Literal::Int(1)));
            rows[count / 2].condition = Some(bin(Ty::Bool, BinaryOp::Gt, sum, lit(Literal::Int(2))));
        }
        let native = with_matrix(&mut body, &rows, &format!("seed {seed}"));
        let matrix = (body.nodes.len() - 1) as u32;
        assert_eq!(native.tabled(matrix), !other, "seed {seed}");
        tabled += usize::from(native.tabled(matrix));
        let input = body.nodes.iter().position(|n| n.name == "c").expect("input c");
        let param = body.nodes.iter().position(|n| n.name == "p").expect("param p");
        let mut chosen = std::collections::BTreeSet::new();
        for v in 0..60 {
            let Value::Record(mut fields) = case_value(&mut g) else { panic!("a record") };
            let (seconds, nanos) = instants[g.rng.below(instants.len())];
            let usd = Money { amount: decimal(g.rng.below(decimals.len())), currency: currency("USD") };
            let (u_seconds, u_nanos) = instants[g.rng.below(instants.len())];
            for (name, value) in [
                ("i", Value::Int(ints[g.rng.below(ints.len())])),
                ("j", Value::Int(ints[g.rng.below(ints.len())])),
                ("e", Value::Decimal(decimal(g.rng.below(decimals.len())))),
                ("u", Value::Timestamp(Timestamp { seconds: u_seconds, nanos: u_nanos })),
                ("w", Value::Duration(ints[g.rng.below(ints.len())])),
                ("d", Value::Decimal(decimal(g.rng.below(decimals.len())))),
                ("usd", Value::Money(usd)),
                ("t", Value::Timestamp(Timestamp { seconds, nanos })),
            ] {
                if let Some(slot) = fields.iter_mut().find(|(n, _)| n == name) {
                    slot.1 = value;
                }
            }
            let mut values = vec![None; body.nodes.len()];
            values[input] = Some(Value::Record(fields));
            values[param] = Some(Value::Int(g.int()));
            let clock = g.timestamp();
            let frame = native.frame(&values, &vec![false; body.nodes.len()], clock);
            let scope = Values { body: &body, values, clock };
            let expected = first_row(&body, &scope, &rows);
            let actual = native.matrix(matrix, &scope, &frame);
            assert_eq!(actual.as_ref(), Some(&expected), "seed {seed}, values {v}");
            chosen.insert(format!("{expected:?}"));
        }
        reached += chosen.len();
    }
    assert!(tabled >= 100, "{tabled} matrices as tables");
    // The values reach several rows of each matrix, or none.
    assert!(reached > 4 * 120, "{reached} rows reached in all");
}
