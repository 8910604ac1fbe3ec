//! One credit policy three ways — the Flow plan `runtime/benches/rules.flow` (ten
//! gates and an approval matrix), the same rules as Cedar policies, and as one CEL program —
//! with generated applications and the decision each gives, so the benchmarks compare
//! engines that provably decide alike (`tests/peers.rs` checks it on every case the
//! benchmarks use, and more).
//!
//! A decision: the blocking gate that stopped the application (the first in the plan's
//! order), or else the info gates that held and the matrix row that applies (1: automatic,
//! 2: one manager, 3: one director). Money is exact everywhere: decimals in Flow, cents
//! (whole numbers) in Cedar and CEL.

use std::collections::HashMap;
use std::sync::Arc;

use flow_ir::plan::{GateLevel, NodeKind};
use flow_runtime::analysis::Analysis;
use flow_runtime::state::State;
use flow_runtime::store::SqliteStore;
use flow_runtime::value::Value;
use flow_runtime::{Engine, Principal, Runtime, StartOptions, Status};
use serde_json::{Value as Json, json};

/// The compiled plan of `runtime/benches/rules.flow`.
pub const PLAN: &[u8] = include_bytes!("../../runtime/benches/rules.plan.json");

/// The gates in the plan's order (independent steps run in name order), and whether each
/// blocks.
pub const GATES: [(&str, bool); 10] = [
    ("defaulted", true),
    ("indebted", false),
    ("large_corporate", false),
    ("large_retail", false),
    ("low_score", false),
    ("new_customer", false),
    ("over_limit", false),
    ("prime", false),
    ("stretched", false),
    ("unverified", true),
];

/// The rules as Cedar policies: blocking gates forbid, the rest permit; each carries its
/// gate's or row's name. Matrix rows are made exclusive, as first-match makes them.
pub const CEDAR: &str = r#"
@id("low_score") permit(principal, action, resource) when { context.score < 600 };
@id("over_limit") permit(principal, action, resource) when { context.amount > 5000000 };
@id("defaulted") forbid(principal, action, resource) when { context.defaults > 3 };
@id("unverified") forbid(principal, action, resource) when { !context.verified };
@id("indebted") permit(principal, action, resource) when { context.existing_debt > context.income };
@id("new_customer") permit(principal, action, resource) when { context.age_days < 90 };
@id("large_corporate") permit(principal, action, resource)
  when { context.segment == "corporate" && context.amount > 100000000 };
@id("prime") permit(principal, action, resource)
  when { context.score >= 800 && context.defaults == 0 && context.segment != "corporate"
         && context.age_days >= 365 && context.amount <= 25000000 };
@id("stretched") permit(principal, action, resource) when { context.amount > context.income * 5 };
@id("large_retail") permit(principal, action, resource)
  when { context.segment == "retail" && context.amount > 10000000 };
@id("row1") permit(principal, action, resource) when { context.score >= 700 && context.amount <= 5000000 };
@id("row2") permit(principal, action, resource)
  when { context.score >= 600 && !(context.score >= 700 && context.amount <= 5000000) };
@id("row3") permit(principal, action, resource) when { context.score < 600 };
"#;

/// The rules as one CEL program: each gate's condition in the plan's order, and the row.
pub const CEL: &str = r#"{
  "gates": [
    app.defaults > 3,
    app.existing_debt > app.income,
    app.segment == "corporate" && app.amount > 100000000,
    app.segment == "retail" && app.amount > 10000000,
    app.score < 600,
    app.age_days < 90,
    app.amount > 5000000,
    app.score >= 800 && app.defaults == 0 && app.segment != "corporate" && app.age_days >= 365 && app.amount <= 25000000,
    app.amount > app.income * 5,
    !app.verified
  ],
  "row": app.score >= 700 && app.amount <= 5000000 ? 1 : (app.score >= 600 ? 2 : 3)
}"#;

/// A generated credit application; amounts in cents.
#[derive(Clone, Debug)]
pub struct Case {
    pub id: u64,
    pub amount: i64,
    pub income: i64,
    pub existing_debt: i64,
    pub score: i64,
    pub segment: &'static str,
    pub age_days: i64,
    pub defaults: i64,
    pub verified: bool,
}

/// A deterministic generator (splitmix64).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Case {
    /// Case `i` of a fixed sequence spread over every gate and row.
    pub fn generate(i: u64) -> Case {
        let r = |k: u64, n: u64| mix(i.wrapping_mul(16) + k) % n;
        Case {
            id: i,
            amount: (1_000 + r(0, 2_000_000) as i64) * 100 + r(1, 100) as i64,
            income: (20_000 + r(2, 180_000) as i64) * 100,
            existing_debt: r(3, 300_000) as i64 * 100,
            score: 450 + r(4, 400) as i64,
            segment: ["retail", "business", "corporate"][r(5, 3) as usize],
            age_days: r(6, 2_000) as i64,
            defaults: if r(7, 10) == 0 { 4 } else { r(8, 3) as i64 },
            verified: r(9, 20) != 0,
        }
    }

    fn money(cents: i64) -> String {
        format!("{}.{:02} USD", cents / 100, cents % 100)
    }

    /// The Flow input `app`.
    pub fn flow_json(&self) -> Json {
        json!({
            "id": format!("A{}", self.id), "applicant": "ana", "amount": Case::money(self.amount),
            "income": Case::money(self.income), "score": self.score, "segment": self.segment,
            "existing_debt": Case::money(self.existing_debt), "age_days": self.age_days,
            "defaults": self.defaults, "verified": self.verified
        })
    }

    /// The application as Cedar's context and CEL's `app`: amounts in cents.
    pub fn peer_json(&self) -> Json {
        json!({
            "amount": self.amount, "income": self.income, "existing_debt": self.existing_debt,
            "score": self.score, "segment": self.segment, "age_days": self.age_days,
            "defaults": self.defaults, "verified": self.verified
        })
    }
}

/// What the policy decides about one application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Stopped by this blocking gate (the first in the plan's order that holds).
    Blocked(&'static str),
    /// The info gates that held, in the plan's order, and the matrix row (1–3).
    Decided { fired: Vec<&'static str>, row: u32 },
}

impl Decision {
    /// The decision from every gate's condition, in the plan's order, and the row.
    fn of(holds: impl Fn(usize) -> bool, row: u32) -> Decision {
        if let Some((gate, _)) =
            GATES.iter().enumerate().map(|(i, g)| (g, holds(i))).find(|((_, block), h)| *block && *h)
        {
            return Decision::Blocked(gate.0);
        }
        let fired = GATES.iter().enumerate().filter(|(i, (_, block))| !block && holds(*i)).map(|(_, g)| g.0).collect();
        Decision::Decided { fired, row }
    }

    /// What the whole run shows of the decision: the blocking gate, or the row (the info
    /// gates are not part of a run's outcome).
    pub fn outcome(&self) -> (Option<&'static str>, Option<u32>) {
        match self {
            Decision::Blocked(gate) => (Some(gate), None),
            Decision::Decided { row, .. } => (None, Some(*row)),
        }
    }
}

/// The Flow plan, loaded into a runtime with an in-memory store, with `engine`.
pub struct Flow {
    pub runtime: Runtime,
    pub analysis: Arc<Analysis>,
    pub who: Principal,
    pub options: StartOptions,
    /// The input node's index.
    input: usize,
    /// Each gate's node index, in `GATES` order; the matrix's.
    gates: Vec<flow_ir::NodeId>,
    matrix: flow_ir::NodeId,
}

/// A gate's condition, ready to test ([`Flow::gate_test`]).
pub type GateTest<'f> = Box<dyn Fn(&Prepared) -> bool + 'f>;

/// The application decoded for the plan: every node's value before the steps run.
pub struct Prepared {
    state: State,
    frame: Option<flow_runtime::jit::Frame>,
}

impl Flow {
    pub fn new(engine: Engine) -> Result<Flow, String> {
        Flow::with_plan(flow_ir::load(PLAN).map_err(|e| e.to_string())?, engine)
    }

    /// Another plan of the same flow (such as [`big_matrix`]'s).
    pub fn with_plan(plan: flow_ir::VerifiedPlan, engine: Engine) -> Result<Flow, String> {
        let store = SqliteStore::open(std::path::Path::new(":memory:")).map_err(|e| e.to_string())?;
        let mut runtime = Runtime::new(Box::new(store));
        runtime.set_engine(engine);
        let analysis = runtime.install(plan).map_err(|e| e.to_string())?;
        let id = |name: &str| analysis.id(name).ok_or_else(|| format!("the plan has no `{name}`"));
        let gates = GATES.iter().map(|(name, _)| id(name)).collect::<Result<Vec<_>, _>>()?;
        let (input, matrix) = (id("app")?.index(), id("sign")?);
        let options = StartOptions {
            clock: flow_ir::time::parse_timestamp("2026-11-30T10:00:00Z")
                .map(|(seconds, nanos)| flow_ir::expr::Timestamp { seconds, nanos }),
            params: Vec::new(),
        };
        let who = Principal::new("carl".to_owned(), vec!["clerk".to_owned()]);
        Ok(Flow { runtime, analysis, who, options, input, gates, matrix })
    }

    /// The nodes of the plan's gates in its order (checked against [`GATES`] by the tests).
    pub fn gate_order(&self) -> Vec<String> {
        let body = self.analysis.body();
        self.analysis
            .plan
            .order()
            .iter()
            .map(|id| &body.nodes[id.index()])
            .filter(|n| matches!(n.kind, NodeKind::Gate { .. }))
            .map(|n| n.name.to_string())
            .collect()
    }

    /// The application decoded and laid out for the plan's code: what a run does before its
    /// first step.
    pub fn prepare(&self, case: &Case) -> Result<Prepared, String> {
        let body = self.analysis.body();
        let ty = &body.nodes[self.input].ty;
        let value = flow_runtime::value::decode(body, &case.flow_json(), ty, "app").map_err(|e| e.to_string())?;
        let mut state = State::new(&self.analysis);
        state.values[self.input] = Some(value);
        for (name, default) in self.analysis.param_defaults() {
            if let (Some(id), Ok(value)) = (self.analysis.id(name), default) {
                state.values[id.index()] = Some(value.clone());
            }
        }
        let frame = match self.runtime.engine() {
            Engine::Jit => self
                .analysis
                .native()
                .ok()
                .map(|native| native.frame(&state.values, state.degraded_steps(), state.clock)),
            Engine::Interpreter => None,
        };
        Ok(Prepared { state, frame })
    }

    /// Whether a condition of the plan holds for a prepared application, by the runtime's
    /// engine.
    pub fn eval(&self, prepared: &Prepared, expr: &flow_ir::expr::Expr) -> bool {
        let scope = (&prepared.state, &*self.analysis);
        if let Some(frame) = &prepared.frame
            && let Ok(native) = self.analysis.native()
            && let Some(result) = native.test(expr, &scope, frame)
        {
            return matches!(result, Ok(true));
        }
        matches!(flow_runtime::interp::eval(self.analysis.body(), &scope, expr), Ok(Value::Bool(true)))
    }

    /// Gate `gate`'s condition tested as the engine tests it, the lookup of its code done
    /// once: what `flowc` runs for one gate (the `gate` benchmark).
    pub fn gate_test(&self, gate: &str) -> Option<GateTest<'_>> {
        let condition = self.condition(gate)?;
        match self.analysis.native() {
            Ok(native) if self.runtime.engine() == Engine::Jit => {
                let code = native.condition(condition)?;
                Some(Box::new(move |prepared: &Prepared| {
                    let (scope, frame) = ((&prepared.state, &*self.analysis), prepared.frame.as_ref());
                    frame.and_then(|frame| code.test(&scope, frame)).is_some_and(|r| r == Ok(true))
                }))
            }
            _ => Some(Box::new(move |prepared: &Prepared| {
                let scope = (&prepared.state, &*self.analysis);
                matches!(flow_runtime::interp::eval(self.analysis.body(), &scope, condition), Ok(Value::Bool(true)))
            })),
        }
    }

    /// The condition of gate `gate`.
    pub fn condition(&self, gate: &str) -> Option<&flow_ir::expr::Expr> {
        match &self.analysis.body().nodes[self.analysis.id(gate)?.index()].kind {
            NodeKind::Gate { condition, .. } => Some(condition),
            _ => None,
        }
    }

    /// The decision logic alone on a prepared application: the ten gate conditions and the
    /// matrix, by the runtime's engine.
    pub fn decide(&self, prepared: &Prepared) -> Decision {
        let body = self.analysis.body();
        let mut holds = [false; GATES.len()];
        // Natively, the gates that read only the input and the param in one call, as a run
        // decides them.
        let together = match (&prepared.frame, self.analysis.native()) {
            (Some(frame), Ok(native)) => {
                native.gates(&(&prepared.state, &*self.analysis), frame).and_then(Result::ok).map(|bits| (native, bits))
            }
            _ => None,
        };
        for (i, id) in self.gates.iter().enumerate() {
            let NodeKind::Gate { condition, level, .. } = &body.nodes[id.index()].kind else { continue };
            holds[i] = match together.and_then(|(native, bits)| Some(bits >> native.gate_bit(id.index())? & 1 == 1)) {
                Some(held) => held,
                None => self.eval(prepared, condition),
            };
            if *level == GateLevel::Block && holds[i] {
                break;
            }
        }
        Decision::of(|i| holds[i], self.row(prepared))
    }

    /// The matrix row (from 1) that applies to a prepared application; 0 for none.
    pub fn row(&self, prepared: &Prepared) -> u32 {
        let NodeKind::Approval { rows, .. } = &self.analysis.body().nodes[self.matrix.index()].kind else { return 0 };
        if let Some(frame) = &prepared.frame
            && let Ok(native) = self.analysis.native()
            && let Some(Ok(Some(row))) = native.matrix(self.matrix.0, &(&prepared.state, &*self.analysis), frame)
        {
            return row as u32 + 1;
        }
        rows.iter()
            .position(|r| r.condition.as_ref().is_none_or(|c| self.eval(prepared, c)))
            .map_or(0, |r| r as u32 + 1)
    }

    /// A whole decision in process from the application's JSON, as `flowc run` makes it
    /// (inputs decoded and checked, every step, events, outputs; no store): the blocking
    /// gate or the row.
    pub fn run(&self, case: &Case) -> Result<(Option<&'static str>, Option<u32>), String> {
        self.run_inputs(&Flow::inputs(case))
    }

    /// The run's inputs for an application.
    pub fn inputs(case: &Case) -> [(String, Json); 1] {
        [("app".to_owned(), case.flow_json())]
    }

    /// As [`Flow::run`], from the inputs' JSON.
    pub fn run_inputs(&self, inputs: &[(String, Json)]) -> Result<(Option<&'static str>, Option<u32>), String> {
        let view =
            self.runtime.evaluate(&self.analysis, &self.who, inputs, &self.options).map_err(|e| e.to_string())?;
        Ok(match view.status {
            Status::Blocked => {
                // The summary names the gates between backquotes: "blocked by gate `defaulted`".
                let summary = view.summary.as_str();
                let named = |g: &str| {
                    summary
                        .match_indices(g)
                        .any(|(at, _)| summary[..at].ends_with('`') && summary[at + g.len()..].starts_with('`'))
                };
                (GATES.iter().map(|g| g.0).find(|g| named(g)), None)
            }
            Status::Completed => (None, Some(1)),
            Status::Pending if view.pending.first().is_some_and(|p| p.2 == ["manager"]) => (None, Some(2)),
            Status::Pending => (None, Some(3)),
            other => return Err(format!("{}: {}", other.as_str(), view.summary)),
        })
    }
}

/// The rules plan with an approval matrix of `rows` rows instead of its three: one per
/// segment, score band and amount band (five comparisons each), then `otherwise`.
pub fn big_matrix(rows: usize) -> Result<flow_ir::VerifiedPlan, String> {
    use flow_ir::expr::{BinaryOp, Expr, ExprKind, Literal, Money};
    use flow_ir::plan::{Requirement, Row};
    use flow_ir::ty::{Currency, Ty};
    let plan = flow_ir::load(PLAN).map_err(|e| e.to_string())?;
    let mut body = plan.body().clone();
    let usd = Currency::new("USD").ok_or("no USD")?;
    let app = || Expr::new(Ty::Named("Application".into()), ExprKind::Node("app".into()));
    let field = |ty: Ty, name: &str| Expr::new(ty, ExprKind::Field { base: Box::new(app()), field: name.into() });
    let compare =
        |op, lhs: Expr, rhs: Expr| Expr::new(Ty::Bool, ExprKind::Binary { op, lhs: Box::new(lhs), rhs: Box::new(rhs) });
    let and = |lhs, rhs| compare(BinaryOp::And, lhs, rhs);
    let int = |i: i64| Expr::new(Ty::Int, ExprKind::Lit(Literal::Int(i)));
    let money = |dollars: i64| {
        let amount = rust_decimal::Decimal::from(dollars);
        Expr::new(Ty::Money(Some(usd)), ExprKind::Lit(Literal::Money(Money { amount, currency: usd })))
    };
    let mut matrix = Vec::with_capacity(rows);
    for k in 0..rows.saturating_sub(1) as i64 {
        let segment = ["retail", "business", "corporate"][(k % 3) as usize];
        let (band, bucket) = (k / 3 % 25, k / 75);
        let (score_lo, amount_lo) = (600 + band * 10, bucket * 40_000);
        let condition = and(
            and(
                and(
                    compare(
                        BinaryOp::Eq,
                        field(Ty::Named("Segment".into()), "segment"),
                        Expr::new(Ty::Named("Segment".into()), ExprKind::Variant(segment.into())),
                    ),
                    compare(BinaryOp::Ge, field(Ty::Int, "score"), int(score_lo)),
                ),
                compare(BinaryOp::Lt, field(Ty::Int, "score"), int(score_lo + 10)),
            ),
            and(
                compare(BinaryOp::Ge, field(Ty::Money(Some(usd)), "amount"), money(amount_lo)),
                compare(BinaryOp::Lt, field(Ty::Money(Some(usd)), "amount"), money(amount_lo + 40_000)),
            ),
        );
        let role = if k % 2 == 0 { "manager" } else { "director" };
        matrix.push(Row {
            condition: Some(condition),
            requirement: vec![Requirement::Count { count: 1, role: role.into() }],
        });
    }
    matrix.push(Row { condition: None, requirement: vec![Requirement::Count { count: 1, role: "director".into() }] });
    for node in &mut body.nodes {
        if let NodeKind::Approval { rows, .. } = &mut node.kind {
            *rows = std::mem::take(&mut matrix);
        }
    }
    // The new rows do not read the `limit` param.
    body.edges.retain(|e| !(e.from == "limit" && e.to == "sign"));
    flow_ir::seal_and_verify(body, String::new(), Default::default(), Default::default())
        .map_err(|failed| failed.1.to_string())
}

/// The Cedar policies, with the name each policy carries.
pub struct Cedar {
    pub policies: cedar_policy::PolicySet,
    names: HashMap<cedar_policy::PolicyId, &'static str>,
    authorizer: cedar_policy::Authorizer,
    entities: cedar_policy::Entities,
    uids: [cedar_policy::EntityUid; 3],
}

impl Cedar {
    pub fn new() -> Result<Cedar, String> {
        let policies: cedar_policy::PolicySet = CEDAR.parse().map_err(|e| format!("{e:?}"))?;
        let known = GATES.iter().map(|g| g.0).chain(["row1", "row2", "row3"]);
        let known: Vec<&'static str> = known.collect();
        let mut names = HashMap::new();
        for policy in policies.policies() {
            let name = policy.annotation("id").and_then(|id| known.iter().find(|k| **k == id));
            let Some(name) = name else { return Err(format!("policy {} has no known @id", policy.id())) };
            names.insert(policy.id().clone(), *name);
        }
        let uid = |text: &str| text.parse::<cedar_policy::EntityUid>().map_err(|e| format!("{e:?}"));
        let uids = [uid(r#"User::"carl""#)?, uid(r#"Action::"decide""#)?, uid(r#"Application::"a""#)?];
        Ok(Cedar {
            policies,
            names,
            authorizer: cedar_policy::Authorizer::new(),
            entities: cedar_policy::Entities::empty(),
            uids,
        })
    }

    /// The request for an application, its context built field by field.
    pub fn request(&self, case: &Case) -> Result<cedar_policy::Request, String> {
        use cedar_policy::RestrictedExpression as E;
        let context = cedar_policy::Context::from_pairs([
            ("amount".to_owned(), E::new_long(case.amount)),
            ("income".to_owned(), E::new_long(case.income)),
            ("existing_debt".to_owned(), E::new_long(case.existing_debt)),
            ("score".to_owned(), E::new_long(case.score)),
            ("segment".to_owned(), E::new_string(case.segment.to_owned())),
            ("age_days".to_owned(), E::new_long(case.age_days)),
            ("defaults".to_owned(), E::new_long(case.defaults)),
            ("verified".to_owned(), E::new_bool(case.verified)),
        ])
        .map_err(|e| format!("{e:?}"))?;
        self.request_with(context)
    }

    /// The request for an application, its context read from JSON.
    pub fn request_from_json(&self, json: &Json) -> Result<cedar_policy::Request, String> {
        let context = cedar_policy::Context::from_json_value(json.clone(), None).map_err(|e| format!("{e:?}"))?;
        self.request_with(context)
    }

    fn request_with(&self, context: cedar_policy::Context) -> Result<cedar_policy::Request, String> {
        let [p, a, r] = self.uids.clone();
        cedar_policy::Request::new(p, a, r, context, None).map_err(|e| format!("{e:?}"))
    }

    pub fn decide(&self, request: &cedar_policy::Request) -> Decision {
        let response = self.authorizer.is_authorized(request, &self.policies, &self.entities);
        let held: Vec<&str> = response.diagnostics().reason().filter_map(|id| self.names.get(id).copied()).collect();
        let row = ["row1", "row2", "row3"].iter().position(|r| held.contains(r)).map_or(0, |r| r as u32 + 1);
        if response.decision() == cedar_policy::Decision::Deny {
            // A deny names the forbidding policies only: the first in the plan's order stops.
            let blocked = GATES.iter().find(|(g, block)| *block && held.contains(g));
            return blocked.map_or(Decision::Decided { fired: Vec::new(), row }, |g| Decision::Blocked(g.0));
        }
        Decision::of(|i| held.contains(&GATES[i].0), row)
    }
}

fn cel_value(json: &Json) -> Result<cel_interpreter::Value, String> {
    use cel_interpreter::Value as V;
    use cel_interpreter::objects::{Key, Map};
    Ok(match json {
        Json::Null => V::Null,
        Json::Bool(b) => V::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => V::Int(i),
            None => V::Float(n.as_f64().ok_or("a number out of range")?),
        },
        Json::String(s) => V::String(Arc::new(s.clone())),
        Json::Array(items) => V::List(Arc::new(items.iter().map(cel_value).collect::<Result<_, _>>()?)),
        Json::Object(fields) => {
            let mut map = HashMap::with_capacity(fields.len());
            for (k, v) in fields {
                map.insert(Key::String(Arc::new(k.clone())), cel_value(v)?);
            }
            V::Map(Map { map: Arc::new(map) })
        }
    })
}

/// The CEL program.
pub struct Cel {
    pub program: cel_interpreter::Program,
}

impl Cel {
    pub fn new() -> Result<Cel, String> {
        Ok(Cel { program: cel_interpreter::Program::compile(CEL).map_err(|e| format!("{e:?}"))? })
    }

    /// The context for an application, its `app` built field by field.
    pub fn context(&self, case: &Case) -> cel_interpreter::Context<'static> {
        use cel_interpreter::Value as V;
        use cel_interpreter::objects::{Key, Map};
        let fields: HashMap<Key, V> = [
            ("amount", V::Int(case.amount)),
            ("income", V::Int(case.income)),
            ("existing_debt", V::Int(case.existing_debt)),
            ("score", V::Int(case.score)),
            ("segment", V::String(Arc::new(case.segment.to_owned()))),
            ("age_days", V::Int(case.age_days)),
            ("defaults", V::Int(case.defaults)),
            ("verified", V::Bool(case.verified)),
        ]
        .into_iter()
        .map(|(k, v)| (Key::String(Arc::new(k.to_owned())), v))
        .collect();
        let mut context = cel_interpreter::Context::default();
        context.add_variable_from_value("app", V::Map(Map { map: Arc::new(fields) }));
        context
    }

    /// The context for an application, its `app` read from JSON (whole numbers as CEL's
    /// `int`, as the program compares them).
    pub fn context_from_json(&self, json: &Json) -> Result<cel_interpreter::Context<'static>, String> {
        let mut context = cel_interpreter::Context::default();
        context.add_variable_from_value("app", cel_value(json)?);
        Ok(context)
    }

    pub fn decide(&self, context: &cel_interpreter::Context<'_>) -> Result<Decision, String> {
        use cel_interpreter::Value as V;
        use cel_interpreter::objects::Key;
        let V::Map(result) = self.program.execute(context).map_err(|e| format!("{e:?}"))? else {
            return Err("the program gave no map".to_owned());
        };
        let get = |name: &str| result.map.get(&Key::String(Arc::new(name.to_owned())));
        let (Some(V::List(gates)), Some(V::Int(row))) = (get("gates"), get("row")) else {
            return Err("the program's map lacks `gates` or `row`".to_owned());
        };
        let holds: Vec<bool> = gates.iter().map(|g| matches!(g, V::Bool(true))).collect();
        Ok(Decision::of(|i| holds.get(i).copied().unwrap_or(false), *row as u32))
    }
}
