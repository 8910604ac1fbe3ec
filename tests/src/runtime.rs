//! The runtime against every plan the compiler produces (the examples and the lowering
//! corpus): with random inputs, random model answers and failures, random handler results
//! and random decisions, a verified plan never makes the interpreter meet a value of the
//! wrong shape. Errors of the values themselves (overflow, division by zero, currencies
//! that differ at run time) are allowed: they are the step's, and recorded.

use std::sync::Arc;

use flow_ir::PlanBody;
use flow_ir::plan::NodeKind;
use flow_ir::ty::Ty;
use flow_runtime::provider::{ActionHandler, ActionRequest, ModelProvider, ModelReply, ModelRequest, ProviderError};
use flow_runtime::store::SqliteStore;
use flow_runtime::{DecisionInput, Principal, ReplayChanges, RunFilter, Runtime, StartOptions, Status};
use serde_json::{Value as Json, json};

use crate::examples::example_paths;
use crate::plans::{plan_of, workspace};

/// A small deterministic generator (xorshift), so a failure names its seed.
#[derive(Clone)]
pub(crate) struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// A random JSON value of type `ty`, edge values included.
pub(crate) fn random_json(rng: &mut Rng, body: &PlanBody, ty: &Ty, depth: usize) -> Json {
    match ty {
        Ty::Optional(inner) => {
            if rng.below(4) == 0 {
                Json::Null
            } else {
                random_json(rng, body, inner, depth)
            }
        }
        Ty::Bool => json!(rng.below(2) == 0),
        Ty::Int => {
            let any = rng.next() as i64 % 10_000;
            json!(*rng.pick(&[0, 1, -1, 2, 5, 90, 1_000, i64::MAX, i64::MIN, any]))
        }
        Ty::Decimal => {
            json!(*rng.pick(&["0", "0.5", "0.69", "0.7", "0.99", "1", "-1.25", "79228162514264337593543950335"]))
        }
        Ty::Money(currency) => {
            let code = currency.map(|c| c.to_string()).unwrap_or_else(|| rng.pick(&["USD", "EUR"]).to_string());
            let amount = *rng.pick(&[
                "0",
                "0.01",
                "-5",
                "999.99",
                "10000",
                "25000.5",
                "60000",
                "250000",
                "79228162514264337593543950335",
            ]);
            json!(format!("{amount} {code}"))
        }
        Ty::Text => json!(*rng.pick(&["", "a", "Urgent exception", "unlimited liability, personal data", "ünïcødé"])),
        Ty::Timestamp => json!(*rng.pick(&[
            "2026-11-30T08:00:00Z",
            "2026-11-01T00:00:00Z",
            "1970-01-01T00:00:00Z",
            "2030-01-01T12:30:00.5Z"
        ])),
        Ty::Duration => json!(*rng.pick(&["0s", "1h", "72h", "7d", "-30m"])),
        Ty::Principal => json!(*rng.pick(&["p1", "p2", "someone"])),
        Ty::List(item) => {
            let n = if depth > 3 { 0 } else { rng.below(4) };
            Json::Array((0..n).map(|_| random_json(rng, body, item, depth + 1)).collect())
        }
        Ty::Named(name) => match body.record(name) {
            Some(record) => Json::Object(
                record
                    .fields
                    .iter()
                    .filter_map(|f| {
                        let value = random_json(rng, body, &f.ty, depth + 1);
                        (!value.is_null()).then(|| (f.name.to_string(), value))
                    })
                    .collect(),
            ),
            None => json!(rng.pick(&body.variants(ty).unwrap_or_default()).as_str()),
        },
        _ => Json::Null,
    }
}

pub(crate) struct RandomModel {
    body: PlanBody,
    rng: std::sync::Mutex<Rng>,
}

impl ModelProvider for RandomModel {
    fn describe(&self) -> String {
        "random".to_owned()
    }

    fn infer(&self, request: &ModelRequest<'_>) -> Result<ModelReply, ProviderError> {
        let mut rng = self.rng.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match rng.below(5) {
            0 => Err(ProviderError { message: "down".to_owned(), attempts: 1 }),
            1 => Ok(ModelReply { output: json!({"nonsense": true}), attempts: 2 }),
            _ => Ok(ModelReply { output: random_json(&mut rng, &self.body, &request.model.output, 0), attempts: 1 }),
        }
    }
}

impl ActionHandler for RandomModel {
    fn describe(&self) -> String {
        "random".to_owned()
    }

    fn call(&self, request: &ActionRequest<'_>) -> Result<Json, String> {
        let mut rng = self.rng.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let result = self
            .body
            .system(request.system)
            .and_then(|s| s.actions.iter().find(|a| a.name == request.action))
            .map(|a| a.result.clone())
            .unwrap_or(Ty::Nothing);
        match rng.below(8) {
            0 => Err("unavailable".to_owned()),
            // A result of a shape no action declares: the step fails, and its run replays.
            1 => Ok(json!({"unexpected": [1, "two"]})),
            _ => Ok(random_json(&mut rng, &self.body, &result, 0)),
        }
    }
}

/// Every plan the compiler makes of the examples and the lowering corpus, and of random
/// flows that check clean (`crate::flows`).
pub(crate) fn all_plans() -> Vec<flow_ir::VerifiedPlan> {
    let mut plans = Vec::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for path in example_paths() {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_owned();
        if path.parent().and_then(|p| p.file_name()).is_some_and(|d| d == "examples") {
            plans.push(plan_of(&workspace(&name)));
        }
    }
    let corpus = root.join("tests/corpus/lower/ok");
    let mut cases: Vec<_> =
        std::fs::read_dir(&corpus).into_iter().flatten().filter_map(Result::ok).map(|e| e.path()).collect();
    cases.sort();
    for case in cases.iter().filter(|p| p.extension().is_some_and(|e| e == "flow")) {
        let text = std::fs::read(case).unwrap_or_default();
        let checked = crate::check_fixture("main.flow", &text);
        plans.extend(crate::plans(&checked).into_iter().flatten());
    }
    // And random flows: `FLOW_RANDOM_FLOWS` of them (24 by default).
    let random = std::env::var("FLOW_RANDOM_FLOWS").ok().and_then(|n| n.parse().ok()).unwrap_or(24);
    plans.extend(crate::flows::random_plans(random, 0xf10e));
    plans
}

/// The plan, with `trigger`, `replay`, `set clock` and `trigger on behalf` granted to its
/// owner's role when it grants them to no one (a flow without the grant cannot be started or
/// replayed: access is denied by default; the cases choose their clock and name principals).
pub(crate) fn with_trigger(plan: flow_ir::VerifiedPlan) -> flow_ir::VerifiedPlan {
    use flow_ir::plan::{Grant, GrantKind};
    let missing: Vec<GrantKind> = [GrantKind::Trigger, GrantKind::Replay, GrantKind::Clock, GrantKind::OnBehalf]
        .into_iter()
        .filter(|kind| !plan.body().grants.iter().any(|g| g.kind == *kind))
        .collect();
    if missing.is_empty() {
        return plan;
    }
    let mut body = plan.body().clone();
    for kind in missing {
        body.grants.push(Grant { kind, target: None, roles: vec![body.flow.owner.clone()] });
    }
    body.grants.sort();
    flow_ir::seal_and_verify(body, String::new(), Default::default(), Default::default())
        .unwrap_or_else(|failed| panic!("{}", failed.1))
}

/// A principal holding every role of the plan.
pub(crate) fn everyone(body: &PlanBody, id: &str) -> Principal {
    Principal::new(id.to_owned(), body.roles.iter().map(|r| r.name.to_string()).collect())
}

/// A runtime on `store` whose every model and system of `body` answers at random (from
/// `seed`).
fn answered_at_random(store: SqliteStore, body: &PlanBody, seed: u64) -> Runtime {
    let mut runtime = Runtime::new(Box::new(store));
    // One instant for every run's steps: what two runtimes record is compared.
    runtime.set_clock(Arc::new(|| flow_ir::expr::Timestamp { seconds: 1_796_100_000, nanos: 0 }));
    let random = Arc::new(RandomModel { body: body.clone(), rng: std::sync::Mutex::new(Rng(seed)) });
    for model in &body.models {
        runtime.register_model(&model.name, random.clone());
    }
    for system in &body.systems {
        runtime.register_system(&system.name, random.clone());
    }
    runtime
}

/// Runs every plan on 60 random cases with `engine`, deciding whatever waits at random:
/// the views of every step of every run, and how many runs ended in each status.
fn run_all(engine: flow_runtime::Engine) -> (Vec<String>, std::collections::BTreeMap<&'static str, usize>) {
    let plans = all_plans();
    assert!(plans.len() >= 10, "{} plans", plans.len());
    let mut outcomes = std::collections::BTreeMap::<&str, usize>::new();
    let mut transcript = Vec::new();

    for (p, plan) in plans.into_iter().enumerate() {
        let plan = with_trigger(plan);
        let body = plan.body().clone();
        let store = SqliteStore::open(std::path::Path::new(":memory:")).expect("an in-memory store");
        let mut runtime = answered_at_random(store, &body, 0x2545_f491_4f6c_dd1d + p as u64);
        runtime.set_engine(engine);
        let analysis = runtime.install(plan).expect("the plan installs");
        let inputs: Vec<&flow_ir::plan::Node> =
            body.nodes.iter().filter(|n| matches!(n.kind, NodeKind::Input { .. })).collect();
        let mut started = 0;
        for case in 0..60u64 {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (case << 8) ^ p as u64);
            let given: Vec<(String, Json)> =
                inputs.iter().map(|n| (n.name.to_string(), random_json(&mut rng, &body, &n.ty, 0))).collect();
            let who = everyone(&body, "p1");
            let seed = format!("plan {} case {case}", body.flow.name);
            let options = StartOptions {
                clock: Some(flow_ir::expr::Timestamp { seconds: 1_796_000_000, nanos: 0 }),
                params: Vec::new(),
            };
            let mut view = match runtime.start(&analysis, &who, &given, &options) {
                Ok(view) => view,
                // Random inputs may not fit (an empty principal id cannot occur; currencies can).
                Err(flow_runtime::Error::Input(message)) => {
                    transcript.push(format!("{seed}: {message}"));
                    continue;
                }
                Err(error) => panic!("{seed}: {error}"),
            };
            // Decide whatever waits, with random outcomes, until the run settles.
            for _ in 0..12 {
                assert!(!view.summary.contains("internal error"), "{seed}: {}", view.summary);
                transcript
                    .push(format!("{seed}: {} {:?} {:?} {:?}", view.summary, view.outputs, view.why, view.pending));
                match view.status {
                    Status::Pending => {}
                    Status::Blocked => {
                        let gate = body.nodes.iter().find(|n| view.summary.contains(&format!("gate `{}`", n.name)));
                        let Some(gate) = gate else { break };
                        match runtime.override_gate(&view.run, &gate.name, &who, "test", Some("a random run")) {
                            Ok(next) => view = next,
                            Err(_) => break,
                        }
                        continue;
                    }
                    _ => break,
                }
                let (step, kind, _) = view.pending[0].clone();
                let node = body.node(&step).expect("a waiting step is a node");
                let (outcome, reason) = match &node.kind {
                    NodeKind::Review { outcomes, reasons, .. } => {
                        (rng.pick(outcomes).to_string(), reasons.first().map(|r| r.to_string()))
                    }
                    _ => (rng.pick(&["approve", "approve", "reject"]).to_string(), Some("test".to_owned())),
                };
                let input = DecisionInput { outcome, reason, basis: None, edits: Vec::new() };
                let decider = everyone(&body, ["p1", "p2", "p3"][rng.below(3)]);
                view = match runtime.decide(&view.run, &step, &decider, &input) {
                    Ok(next) => next,
                    // Separation of duties or counting twice: another principal decides.
                    Err(flow_runtime::Error::Refused { .. }) => {
                        runtime.decide(&view.run, &step, &everyone(&body, "p4"), &input).unwrap_or(view)
                    }
                    Err(error) => panic!("{seed}: deciding {kind} {step}: {error}"),
                };
            }
            assert!(!view.summary.contains("internal error"), "{seed}: {}", view.summary);
            transcript.push(format!("{seed}: {} {:?} {:?}", view.summary, view.outputs, view.why));
            let events = runtime.inspect(&view.run, &[], &[]).expect("the run loads").0;
            if let Err(why) = governance_dominates(&body, &events) {
                panic!("{seed}: {why}");
            }
            // Events are written straight to text, labelled values and all: the text of their
            // JSON value.
            let mut text = Vec::new();
            for event in &events {
                flow_runtime::event::codec::encode_event_text(&analysis, event, &mut text);
                let value = flow_runtime::event::codec::encode_event_unsalted(&analysis, event.clone());
                assert_eq!(String::from_utf8_lossy(&text), value.to_string(), "{seed}");
            }
            // The run replays exactly from its evidence, and a what-if that changes nothing
            // (the same plan again) reuses every answer and decision and changes nothing.
            let replay = runtime.replay(&view.run, &who).expect("the run replays");
            assert_eq!(replay.divergence, None, "{seed}");
            assert_eq!(replay.status, view.status, "{seed}");
            let same = ReplayChanges { plan: Some(analysis.clone()), ..ReplayChanges::default() };
            let whatif = runtime.what_if(&view.run, &who, &same).expect("the what-if runs");
            assert!(whatif.exact(), "{seed}: {whatif:?}");
            // Every step's value, as the run's page shows them (without the run's id and times).
            let page = runtime.show(&view.run, Some(&who)).expect("the run shows");
            // The web page's one reading of the run says what the three readings say.
            let one = runtime.page(&view.run, &who).expect("the run's page");
            let status = runtime.status(&view.run, Some(&who)).expect("the run's status");
            assert_eq!(one.narrative, page, "{seed}");
            assert_eq!(one.marks, runtime.path(&view.run, Some(&who)).expect("the path").1, "{seed}");
            assert_eq!(
                (one.view.status, &one.view.why, &one.view.outputs),
                (status.status, &status.why, &status.outputs)
            );
            let ran_on = page.lines().find(|l| l.contains(", engine ")).unwrap_or_default();
            assert!(ran_on.ends_with(&format!("engine {}", engine.as_str())), "{seed}: {ran_on}");
            let page: Vec<String> = page
                .lines()
                .filter(|l| {
                    // What differs between two executions: the run, the engine, times, the head.
                    !l.contains(&view.run)
                        && !l.contains(", engine ")
                        && !l.contains("head blake3:")
                        && !l.trim_start().starts_with("20")
                })
                // A model call's latency is the machine's, not the run's.
                .map(without_latency)
                .collect();
            transcript.push(format!("{seed}: {}", page.join("\n")));
            *outcomes.entry(view.status.as_str()).or_default() += 1;
            started += 1;
        }
        // Replayed in bulk, where the events replay only compares are compared as stored,
        // every run reproduces too.
        let all = runtime
            .replay_all(&everyone(&body, "p1"), &RunFilter::default(), &ReplayChanges::default())
            .expect("the runs replay");
        assert_eq!((all.runs, all.exact, &all.errors), (started, started, &Vec::new()), "plan {}", body.flow.name);
    }
    (transcript, outcomes)
}

/// Governance dominance, as a property of a run's events: an action is called and an output
/// emitted only when every gate before it passed (or was approved or overridden), every
/// review was decided (or skipped) and every approval completed; nothing but how the run
/// settles follows a failure or a rejection; and while a blocking gate holds, no model is
/// called, no person asked and nothing done.
pub(crate) fn governance_dominates(
    body: &PlanBody,
    events: &[flow_runtime::event::Event<flow_runtime::value::Value>],
) -> Result<(), String> {
    use flow_ir::plan::GateLevel;
    use flow_runtime::event::Event;
    #[derive(Clone, Copy, PartialEq)]
    enum Stand {
        Open,
        Passed,
        Held,
    }
    let governance: Vec<&str> = body.nodes.iter().filter(|n| n.kind.is_governance()).map(|n| n.name.as_str()).collect();
    let mut stand: std::collections::BTreeMap<&str, Stand> = governance.iter().map(|g| (*g, Stand::Open)).collect();
    let mut ended = false;
    for (i, event) in events.iter().enumerate() {
        let blocked = stand.iter().any(|(g, s)| {
            *s == Stand::Held
                && matches!(body.node(g).map(|n| &n.kind), Some(NodeKind::Gate { level: GateLevel::Block, .. }))
        });
        match event {
            Event::Settled { .. } | Event::Refused { .. } | Event::Started(_) => continue,
            _ if ended => return Err(format!("event {i} ({:?}) follows the run's end", event.node())),
            Event::GateOverridden { .. } => {}
            _ if blocked => return Err(format!("event {i} ({:?}) while a blocking gate holds", event.node())),
            _ => {}
        }
        match event {
            Event::Gate { node, level, holds, .. } => {
                let held = *holds && *level != GateLevel::Info;
                stand.insert(node, if held { Stand::Held } else { Stand::Passed });
            }
            Event::GateDecided { node, decision } => {
                if decision.outcome == "reject" {
                    ended = true;
                }
                stand.insert(node, Stand::Passed);
            }
            Event::GateOverridden { node, .. }
            | Event::ReviewSkipped { node, .. }
            | Event::ReviewDecided { node, .. }
            | Event::ApprovalCompleted { node, .. } => {
                stand.insert(node, Stand::Passed);
            }
            Event::Failed { .. } => ended = true,
            Event::ActionStarted { node, .. }
            | Event::ActionCompleted { node, .. }
            | Event::ActionSkipped { node, .. }
            | Event::Emitted { node, .. } => {
                if let Some((g, _)) = stand.iter().find(|(_, s)| **s != Stand::Passed) {
                    return Err(format!("`{node}` (event {i}) before `{g}` passed or was decided"));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// A line of a run's page with a model call's latency (`, 4 ms,`) taken out.
fn without_latency(line: &str) -> String {
    match line.find(" ms, ") {
        Some(end) => {
            let start = line[..end].rfind(", ").map_or(end, |s| s + 2);
            format!("{}_{}", &line[..start], &line[end..])
        }
        None => line.to_owned(),
    }
}

#[test]
fn a_model_calls_latency_is_left_out_of_what_the_engines_compare() {
    let line = "infer risk: model risk_v3 = acme 3.2.1 (sha256:00) via random, 4 ms, 1 attempt";
    assert_eq!(without_latency(line), "infer risk: model risk_v3 = acme 3.2.1 (sha256:00) via random, _ ms, 1 attempt");
    assert_eq!(without_latency("let x = 5"), "let x = 5");
}

#[test]
fn verified_plans_never_meet_a_value_of_the_wrong_shape() {
    let (_, outcomes) = run_all(flow_runtime::Engine::Interpreter);
    // The random cases reach every outcome a flow can have.
    for status in ["completed", "blocked", "rejected", "failed"] {
        assert!(outcomes.contains_key(status), "no run ended {status}: {outcomes:?}");
    }
}

/// Native code and the interpreter take every plan through the same steps to the same
/// values, errors and outcomes.
#[test]
fn native_code_runs_every_plan_as_the_interpreter_does() {
    let (interpreted, _) = run_all(flow_runtime::Engine::Interpreter);
    let (native, _) = run_all(flow_runtime::Engine::Jit);
    assert_eq!(interpreted.len(), native.len());
    for (i, n) in interpreted.iter().zip(&native) {
        assert_eq!(i, n);
    }
}

/// Native code decides the gates that read only inputs and params with one call. Where
/// one of them fails (a division by zero, an overflow) the run fails at that gate as the
/// interpreter's does, a blocking gate stops the run before the gates after it, and a gate
/// that reads a rule is tested on its own: stored runs (their story, `why`, included) and
/// runs kept in memory end as the interpreter's, on every combination of edge values.
#[test]
fn gates_decided_together_fail_and_block_as_each_on_its_own() {
    let text = r#"
role clerk

type Case {
  a: Int
  b: Int
  d: Decimal
}

type Seen {
  small: Bool
}

flow gated {
  version "1.0.0"
  owner clerk
  steward clerk

  input c: Case
  output seen: Seen
  param k: Int = 3

  access {
    trigger by clerk
  }

  gate small: info when c.a < k
  gate ratio: info when c.d / c.b > 2
  gate stop: block when c.a == 7
    message "Seven"
  let doubled = c.a * 2
  gate big: info when c.a * c.b > 100
  gate late: info when doubled > 10
  gate rising: info when c.a + 1 > c.b

  emit seen = Seen { small: c.a < k }
}
"#;
    let checked = crate::check_fixture("main.flow", text.as_bytes());
    let plan = crate::plans(&checked).into_iter().flatten().next().unwrap_or_else(|| panic!("{}", checked.render()));
    let body = plan.body().clone();
    let runtime = |engine| {
        let store = SqliteStore::open(std::path::Path::new(":memory:")).expect("an in-memory store");
        let mut runtime = Runtime::new(Box::new(store));
        runtime.set_clock(Arc::new(|| flow_ir::expr::Timestamp { seconds: 1_796_100_000, nanos: 0 }));
        runtime.set_engine(engine);
        let analysis = runtime.install(plan.clone()).expect("the plan installs");
        (runtime, analysis)
    };
    let (native, native_plan) = runtime(flow_runtime::Engine::Jit);
    let (interpreted, interpreted_plan) = runtime(flow_runtime::Engine::Interpreter);
    // Five of the gates read only the input and the param; `late` reads a rule.
    let compiled = native_plan.native().expect("native code");
    let decided: Vec<&str> = body
        .nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| compiled.gate_bit(*i).is_some())
        .map(|(_, n)| n.name.as_str())
        .collect();
    assert_eq!(decided, ["big", "ratio", "rising", "small", "stop"]);
    let who = Principal::new("ana".to_owned(), vec!["clerk".to_owned()]);
    let options = StartOptions::default();
    let edges = [json!(0), json!(1), json!(-1), json!(7), json!(i64::MAX), json!(i64::MIN)];
    let mut failed = 0;
    for a in &edges {
        for b in &edges {
            let given = vec![("c".to_owned(), json!({"a": a, "b": b, "d": "12.5"}))];
            let view = |v: flow_runtime::RunView| (v.status, v.summary, v.outputs, v.pending, v.why);
            let stored = (
                native.start(&native_plan, &who, &given, &options).map(view),
                interpreted.start(&interpreted_plan, &who, &given, &options).map(view),
            );
            let kept = (
                native.evaluate(&native_plan, &who, &given, &options).map(view),
                interpreted.evaluate(&interpreted_plan, &who, &given, &options).map(view),
            );
            for (what, (n, i)) in [("stored", stored), ("kept in memory", kept)] {
                let (n, i) = (n.expect("native run"), i.expect("interpreted run"));
                assert_eq!(n, i, "{what}: a = {a}, b = {b}");
                failed += usize::from(n.0 == Status::Failed);
            }
        }
    }
    // Division by zero and overflow are met, in both kinds of run.
    assert!(failed >= 8, "{failed} failed runs");
}

/// An input given twice is refused, stored run or not: the run would read the first value
/// while its evidence recorded the digest of the last.
#[test]
fn an_input_given_twice_is_refused() {
    let text = r#"
role clerk

type Case {
  a: Int
}

flow twice {
  version "1.0.0"
  owner clerk
  steward clerk

  input c: Case
  output a: Int

  access {
    trigger by clerk
  }

  emit a = c.a
}
"#;
    let checked = crate::check_fixture("main.flow", text.as_bytes());
    let plan = crate::plans(&checked).into_iter().flatten().next().unwrap_or_else(|| panic!("{}", checked.render()));
    let store = SqliteStore::open(std::path::Path::new(":memory:")).expect("an in-memory store");
    let runtime = Runtime::new(Box::new(store));
    let analysis = runtime.install(plan).expect("the plan installs");
    let who = Principal::new("ana".to_owned(), vec!["clerk".to_owned()]);
    let given = vec![("c".to_owned(), json!({"a": 1})), ("c".to_owned(), json!({"a": 2}))];
    let options = StartOptions::default();
    for result in
        [runtime.start(&analysis, &who, &given, &options), runtime.evaluate(&analysis, &who, &given, &options)]
    {
        let error = result.expect_err("an input given twice");
        assert_eq!(error.to_string(), "input `c` is given twice");
    }
    assert_eq!(runtime.stats(&RunFilter::default()).expect("the stats").all.runs, 0, "nothing stored");
    let once = runtime.start(&analysis, &who, &given[..1], &options).expect("given once");
    assert_eq!(once.outputs["a"], json!(1));
}

/// A run kept in memory (`evaluate`, as backtests run) ends as the same run stored in a new
/// store does: the same status, summary, outputs and waiting steps (or the same refusal),
/// with both engines, over every plan and random cases. (A new store each: stored runs
/// share their actions' idempotency keys, which runs kept in memory do not claim.)
#[test]
fn runs_kept_in_memory_end_as_stored_runs_do() {
    for engine in [flow_runtime::Engine::Interpreter, flow_runtime::Engine::Jit] {
        for (p, plan) in all_plans().into_iter().enumerate() {
            let plan = with_trigger(plan);
            let body = plan.body().clone();
            let inputs: Vec<&flow_ir::plan::Node> =
                body.nodes.iter().filter(|n| matches!(n.kind, NodeKind::Input { .. })).collect();
            for case in 0..12u64 {
                // The same seed: both runtimes' models and systems answer the same calls alike.
                let runtime = || {
                    let store = SqliteStore::open(std::path::Path::new(":memory:")).expect("an in-memory store");
                    let mut runtime = answered_at_random(store, &body, 0x51_7cc1 ^ (case << 8) ^ p as u64);
                    runtime.set_engine(engine);
                    let analysis = runtime.install(plan.clone()).expect("the plan installs");
                    (runtime, analysis)
                };
                let ((kept, in_memory), (stored, analysis)) = (runtime(), runtime());
                let mut rng = Rng(0x2545_f491 ^ (case << 8) ^ p as u64);
                let given: Vec<(String, Json)> =
                    inputs.iter().map(|n| (n.name.to_string(), random_json(&mut rng, &body, &n.ty, 0))).collect();
                let who = everyone(&body, "p1");
                let options = StartOptions {
                    clock: Some(flow_ir::expr::Timestamp { seconds: 1_796_000_000, nanos: 0 }),
                    params: Vec::new(),
                };
                let seed = format!("{} plan {} case {case}", engine.as_str(), body.flow.name);
                let view = |v: flow_runtime::RunView| (v.status, v.summary, v.outputs, v.pending);
                let evaluated = kept.evaluate(&in_memory, &who, &given, &options).map(view);
                let started = stored.start(&analysis, &who, &given, &options).map(view);
                match (evaluated, started) {
                    (Ok(evaluated), Ok(started)) => assert_eq!(evaluated, started, "{seed}"),
                    (Err(evaluated), Err(started)) => assert_eq!(evaluated.to_string(), started.to_string(), "{seed}"),
                    (evaluated, started) => panic!("{seed}: kept in memory {evaluated:?}, stored {started:?}"),
                }
            }
        }
    }
}

/// A case line read straight into values by its inputs' types
/// (`flow_runtime::read::case_inputs`, as `run --batch` reads a backtest's lines) gives
/// what the general reading gives — the line's JSON, then each input decoded — or gives
/// up: on every plan, random inputs and lines changed at random (numbers with fractions,
/// unknown and repeated keys, labelled values, other top-level keys, escapes, broken
/// text), the run it starts ends as the run of the general reading, or both are refused
/// alike.
#[test]
fn case_lines_read_straight_read_as_the_general_reading() {
    let mut read_straight = 0;
    let mut given_up = 0;
    for (p, plan) in all_plans().into_iter().enumerate() {
        let plan = with_trigger(plan);
        let body = plan.body().clone();
        let inputs: Vec<&flow_ir::plan::Node> =
            body.nodes.iter().filter(|n| matches!(n.kind, NodeKind::Input { .. })).collect();
        let who = everyone(&body, "p1");
        let options = StartOptions {
            clock: Some(flow_ir::expr::Timestamp { seconds: 1_796_000_000, nanos: 0 }),
            params: Vec::new(),
        };
        for case in 0..40u64 {
            let mut rng = Rng(0x9a5e ^ (case << 8) ^ (p as u64) << 32);
            let mut given = serde_json::Map::new();
            for node in &inputs {
                let mut value = random_json(&mut rng, &body, &node.ty, 0);
                if rng.below(8) == 0
                    && let Json::Object(fields) = &mut value
                {
                    match rng.below(3) {
                        0 => drop(fields.insert("zz".to_owned(), json!(1))),
                        1 => value = json!({"$labels": ["pii"], "$value": value.clone()}),
                        _ => {
                            // A field left out (a required one: the general reading refuses it).
                            if let Some(first) = fields.keys().next().cloned() {
                                fields.shift_remove(&first);
                            }
                        }
                    }
                }
                if rng.below(20) != 0 {
                    given.insert(node.name.to_string(), value);
                }
            }
            let mut line = json!({"inputs": given}).to_string();
            match rng.below(13) {
                0 => line = line.replacen("{\"inputs\":", "{\"note\": [1, \"x\", {\"y\": null}], \"inputs\":", 1),
                1 => {
                    // A number binary floating point keeps, or one it would change.
                    let note = if rng.below(2) == 0 { "1.5" } else { "1.00000000000000000001" };
                    line = line.replacen("{\"inputs\":", &format!("{{\"note\": {note}, \"inputs\":"), 1);
                }
                2 => line = line.replacen("\"inputs\"", "\"in\\u0070uts\"", 1),
                3 => {
                    // A whole number written with a fraction, or in scientific notation.
                    if let Some(at) = line.find(|c: char| c.is_ascii_digit()) {
                        let end = at + line[at..].find(|c: char| !c.is_ascii_digit()).unwrap_or(0);
                        let number = line[at..end].to_owned();
                        let with = if rng.below(2) == 0 { format!("{number}.0") } else { format!("{number}e0") };
                        line.replace_range(at..end, &with);
                    }
                }
                4 => {
                    // A key given twice.
                    if let Some(at) = line[1..].find("{\"").map(|at| at + 1) {
                        let end = at + line[at..].find(',').unwrap_or(0);
                        if end > at {
                            let pair = line[at + 1..end].to_owned();
                            line.insert_str(end + 1, &format!("{pair},"));
                        }
                    }
                }
                5 => line = line.replacen("{\"inputs\":", "{\"inputs\": 1, \"inputs\":", 1),
                6 if line.len() > 2 => {
                    let mut at = rng.below(line.len() - 1) + 1;
                    while !line.is_char_boundary(at) {
                        at -= 1;
                    }
                    line.remove(at);
                }
                7 => line = format!("{line} x"),
                8 => line = line.replacen("\"inputs\"", "\"input\"", 1),
                9 => {
                    // A key `serde_json` reads specially when its `raw_value` feature is on
                    // (the server turns it on): the general reading refuses these objects.
                    let raw = [
                        "{\"$serde_json::private::RawValue\": 1}",
                        "{\"$serde_json::private::RawValue\": \"1\", \"by\": 2}",
                    ];
                    let note = raw[rng.below(2)];
                    line = if rng.below(2) == 0 {
                        line.replacen("{\"inputs\":", &format!("{{\"note\": {note}, \"inputs\":"), 1)
                    } else {
                        line.replacen("{\"inputs\":", "{\"$serde_json::private::RawValue\": \"{}\", \"inputs\":", 1)
                    };
                }
                _ => {}
            }
            let seed = format!("plan {} case {case}: {line}", body.flow.name);
            let view = |v: flow_runtime::RunView| (v.status, v.summary, v.outputs, v.pending);
            let general = flow_runtime::value::parse_exact(&line).map_err(|e| e.to_string()).and_then(|mut case| {
                match case.get_mut("inputs").map(Json::take) {
                    Some(Json::Object(inputs)) => Ok(inputs.into_iter().collect::<Vec<_>>()),
                    _ => Err("no inputs".to_owned()),
                }
            });
            let Some(straight) = flow_runtime::read::case_inputs(&body, &line) else {
                given_up += 1;
                continue;
            };
            read_straight += 1;
            let general = general.unwrap_or_else(|e| panic!("{seed}: read straight, but the general reading: {e}"));
            // The same seed: both runtimes' models and systems answer the same calls alike.
            let runtime = || {
                let store = SqliteStore::open(std::path::Path::new(":memory:")).expect("an in-memory store");
                let runtime = answered_at_random(store, &body, 0x7e57 ^ (case << 8) ^ p as u64);
                let analysis = runtime.install(plan.clone()).expect("the plan installs");
                (runtime, analysis)
            };
            let ((one, analysis_one), (other, analysis_other)) = (runtime(), runtime());
            let evaluated = one.evaluate(&analysis_one, &who, &general, &options).map(view);
            let read = other.evaluate_read(&analysis_other, &who, straight, &options).map(view);
            match (evaluated, read) {
                (Ok(evaluated), Ok(read)) => assert_eq!(evaluated, read, "{seed}"),
                (Err(evaluated), Err(read)) => assert_eq!(evaluated.to_string(), read.to_string(), "{seed}"),
                (evaluated, read) => panic!("{seed}: the general reading {evaluated:?}, read straight {read:?}"),
            }
        }
    }
    // Both ways are taken often.
    assert!(read_straight > 400 && given_up > 100, "{read_straight} read straight, {given_up} given up");
}

/// Two `infer` steps that do not depend on each other call their models at the same time:
/// each model here answers only once both calls have arrived (or gives up after 20 s), so
/// calls one after the other would both degrade.
#[test]
fn independent_model_calls_overlap() {
    const FLOW: &str = r#"
role clerk
type Score { value: Int }
model first {
  provider "command"
  name "first"
  version "1"
  digest "sha256:0000000000000000000000000000000000000000000000000000000000000001"
  input (n: Int)
  output Score
}
model second {
  provider "command"
  name "second"
  version "1"
  digest "sha256:0000000000000000000000000000000000000000000000000000000000000002"
  input (n: Int)
  output Score
}
type Out { a: Int  b: Int  degraded: Bool }
flow both {
  version "1.0.0"
  owner clerk
  steward clerk
  input n: Int
  output out: Out
  access { trigger by clerk }
  infer a = first(n: n) fallback Score { value: 0 }
  infer b = second(n: n) fallback Score { value: 0 }
  emit out = Out { a: a.value, b: b.value, degraded: degraded(a) or degraded(b) }
}
"#;
    struct Rendezvous(Arc<(std::sync::Mutex<u32>, std::sync::Condvar)>);
    impl ModelProvider for Rendezvous {
        fn describe(&self) -> String {
            "rendezvous".to_owned()
        }
        fn infer(&self, request: &ModelRequest<'_>) -> Result<ModelReply, ProviderError> {
            let (count, arrived) = &*self.0;
            let mut count = count.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            *count += 1;
            arrived.notify_all();
            let (count, timeout) = arrived
                .wait_timeout_while(count, std::time::Duration::from_secs(20), |c| *c < 2)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if timeout.timed_out() && *count < 2 {
                return Err(ProviderError { message: "the other call never came".to_owned(), attempts: 1 });
            }
            Ok(ModelReply { output: json!({"value": request.input["n"]}), attempts: 1 })
        }
    }
    let checked = crate::check_fixture("both.flow", FLOW.as_bytes());
    assert!(checked.clean(), "{}", checked.render());
    let plan = crate::plans(&checked).into_iter().flatten().next().expect("a plan");
    let mut runtime = Runtime::new(Box::new(SqliteStore::open(std::path::Path::new(":memory:")).expect("a store")));
    let meeting = Arc::new(Rendezvous(Arc::default()));
    runtime.register_provider("command", meeting);
    let analysis = runtime.install(plan).expect("installs");
    let who = Principal::new("c".to_owned(), vec!["clerk".to_owned()]);
    let view = runtime.start(&analysis, &who, &[("n".to_owned(), json!(7))], &StartOptions::default()).expect("runs");
    assert_eq!(view.status, Status::Completed);
    assert_eq!(view.outputs["out"], json!({"a": 7, "b": 7, "degraded": false}));
}

/// The inbox, as a property over every plan: with runs left waiting at random points and
/// principals holding random roles, a principal's inbox lists exactly the steps
/// [`Runtime::pending`] finds for them by loading every run, the oldest runs first, and its
/// pages, read one after another, are that list cut in pieces. A row of the store's list of
/// waiting steps that the run's evidence does not bear out is never shown.
#[test]
fn the_inbox_lists_what_waits_for_each_principal_in_pages() {
    let mut broken_runs = 0;
    for (p, plan) in all_plans().into_iter().enumerate() {
        let plan = with_trigger(plan);
        let body = plan.body().clone();
        let path = std::env::temp_dir().join(format!("flow-inbox-{}-{p}.db", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let runtime = answered_at_random(SqliteStore::open(&path).expect("a store"), &body, 0x5eed + p as u64);
        let analysis = runtime.install(plan).expect("the plan installs");
        let inputs: Vec<&flow_ir::plan::Node> =
            body.nodes.iter().filter(|n| matches!(n.kind, NodeKind::Input { .. })).collect();
        let mut rng = Rng(0x1234_5678_9abc_def1 ^ p as u64);
        for case in 0..24u64 {
            let given: Vec<(String, Json)> =
                inputs.iter().map(|n| (n.name.to_string(), random_json(&mut rng, &body, &n.ty, 0))).collect();
            let options = StartOptions {
                // Runs begun a second apart, in an order of their own (not of their ids).
                clock: Some(flow_ir::expr::Timestamp { seconds: 1_796_000_000 - case as i64, nanos: 0 }),
                params: Vec::new(),
            };
            let Ok(mut view) = runtime.start(&analysis, &everyone(&body, "p1"), &given, &options) else { continue };
            // Some decisions, then the run is left as it stands.
            for _ in 0..rng.below(3) {
                let Some((step, _, _)) = view.pending.first().cloned() else { break };
                let outcome = match &body.node(&step).expect("a step").kind {
                    NodeKind::Review { outcomes, .. } => rng.pick(outcomes).to_string(),
                    _ => "approve".to_owned(),
                };
                let reason = match &body.node(&step).expect("a step").kind {
                    NodeKind::Review { reasons, .. } => reasons.first().map(|r| r.to_string()),
                    _ => Some("test".to_owned()),
                };
                let input = DecisionInput { outcome, reason, basis: None, edits: Vec::new() };
                let decider = everyone(&body, ["p1", "p2", "p3"][rng.below(3)]);
                match runtime.decide(&view.run, &step, &decider, &input) {
                    Ok(next) => view = next,
                    Err(_) => break,
                }
            }
        }
        // A row of the store's list that no run bears out: a step of a pending run that does
        // not wait there (an input), listed for every role.
        let roles: Vec<String> = body.roles.iter().map(|r| r.name.to_string()).collect();
        let pending = runtime.store().runs(Some(Status::Pending)).expect("the runs").into_iter().next();
        let input = body.nodes.iter().find(|n| matches!(n.kind, NodeKind::Input { .. }));
        let forged = pending.as_ref().zip(input).map(|(run, node)| (run.id.clone(), node.name.to_string()));
        // A step that waits, listed for every role whoever may decide it.
        rusqlite::Connection::open(&path)
            .expect("the store opens")
            .execute(
                "UPDATE waiting SET roles = ?1 WHERE run || ' ' || step = (SELECT min(run || ' ' || step) FROM waiting)",
                [roles.join(" ")],
            )
            .expect("a row is changed");
        // And every step listed under another flow's name.
        rusqlite::Connection::open(&path)
            .expect("the store opens")
            .execute("UPDATE waiting SET flow = 'forged-flow'", [])
            .expect("rows are changed");
        if let Some((run, step)) = &forged {
            rusqlite::Connection::open(&path)
                .expect("the store opens")
                .execute(
                    "INSERT OR IGNORE INTO waiting (run, step, flow, kind, roles) VALUES (?1, ?2, ?3, 'review', ?4)",
                    [run.as_str(), step.as_str(), body.flow.name.as_str(), roles.join(" ").as_str()],
                )
                .expect("a row is added");
        }
        for n in 0..6 {
            let held: Vec<String> = roles.iter().filter(|_| rng.below(2) == 0).cloned().collect();
            let who = Principal::new(format!("q{n}"), held);
            // What loading every run finds.
            let mut expected: Vec<(String, String)> =
                runtime.pending(Some(&who)).expect("pending").into_iter().map(|w| (w.run, w.step)).collect();
            let whole = runtime.inbox(&who, 0, usize::MAX).expect("the inbox");
            let listed: Vec<(String, String)> =
                whole.items.iter().map(|i| (i.waiting.run.clone(), i.waiting.step.clone())).collect();
            if let Some(forged) = &forged {
                assert!(!listed.contains(forged), "plan {}: the forged row is shown", body.flow.name);
            }
            assert!(
                whole.items.iter().all(|i| i.waiting.flow == body.flow.name),
                "plan {}: a forged flow",
                body.flow.name
            );
            // Those with a timer first, the soonest first; then the oldest runs first.
            let order: Vec<(bool, Option<i64>, &str)> =
                whole.items.iter().map(|i| (i.waiting.due.is_none(), i.waiting.due, i.created.as_str())).collect();
            assert!(order.windows(2).all(|w| w[0] <= w[1]), "plan {}: not in order: {order:?}", body.flow.name);
            let mut sorted = listed.clone();
            sorted.sort();
            expected.sort();
            assert_eq!(sorted, expected, "plan {}: {who:?}", body.flow.name);
            let mut paged = Vec::new();
            for page in 0.. {
                let part = runtime.inbox(&who, page * 4, 4).expect("a page");
                assert_eq!(part.total, whole.total, "plan {}", body.flow.name);
                if part.items.is_empty() && page * 4 >= part.total {
                    break;
                }
                paged.extend(part.items.into_iter().map(|i| (i.waiting.run, i.waiting.step)));
            }
            assert_eq!(paged, listed, "plan {}: pages of {who:?}", body.flow.name);
        }
        // A pending run whose evidence no longer checks: the others are still listed, and it
        // is named as unreadable rather than failing everyone's inbox.
        let everyone_roles = Principal::new("q-all".to_owned(), roles.clone());
        let before = runtime.inbox(&everyone_roles, 0, usize::MAX).expect("the inbox");
        if let Some(broken) = before.items.first().map(|i| i.waiting.run.clone()) {
            rusqlite::Connection::open(&path)
                .expect("the store opens")
                .execute("UPDATE events SET hash = 'forged' WHERE run = ?1 AND seq = 1", [broken.as_str()])
                .expect("an event is changed");
            let after = runtime.inbox(&everyone_roles, 0, usize::MAX).expect("the inbox still shows");
            assert!(after.unreadable.iter().any(|(run, _)| *run == broken), "plan {}: not named", body.flow.name);
            let others = |inbox: &flow_runtime::Inbox| -> Vec<(String, String)> {
                let items = inbox.items.iter().filter(|i| i.waiting.run != broken);
                items.map(|i| (i.waiting.run.clone(), i.waiting.step.clone())).collect()
            };
            assert_eq!(others(&after), others(&before), "plan {}: the other runs", body.flow.name);
            assert!(after.items.iter().all(|i| i.waiting.run != broken), "plan {}: shown", body.flow.name);
            broken_runs += 1;
        }
        let _ = std::fs::remove_file(&path);
    }
    assert!(broken_runs > 0, "no plan had a waiting run to break");
}

/// A random flow of the shape runs kept in memory decide straight (gates over an
/// application and a param, one or two approval matrices, emits), with a chance of what
/// makes the executor step through it instead: a soft gate, a `let`, a condition or an
/// emit that reads a text or a principal, conditions that divide by zero or overflow.
fn straight_flow(rng: &mut Rng) -> String {
    let conditions = [
        "app.score < 600",
        "app.amount > limit",
        "app.defaults > 3",
        "not app.verified",
        "app.debt > app.income",
        "app.segment == corporate and app.amount > 1_000_000 USD",
        "app.score >= 800 and app.defaults == 0 and app.segment != corporate",
        "app.amount > app.income * 5",
        "app.segment == retail or app.rate > 0.5",
        "app.score / (app.defaults - 2) > 100",
        "app.score * 4_000_000_000_000_000 > 5",
        "app.amount + app.debt > 250_000 USD",
        "app.when > now()",
        "is_present(app.extra) and app.extra > 3",
    ];
    let requirements = ["auto", "1 of manager", "2 of manager", "1 of director", "1 of manager, 1 of director"];
    let mut gates = String::new();
    for g in 0..2 + rng.below(6) {
        let level = if rng.below(10) == 0 { "soft" } else { rng.pick(&["info", "block"]) };
        // Now and then a condition that reads a text or a principal (not in the frame).
        let texts = ["app.id == \"p2\"", "app.note == \"a\"", "started_by() == app.applicant"];
        let condition = if rng.below(12) == 0 { rng.pick(&texts) } else { rng.pick(&conditions) };
        let approvers = if level == "soft" { " approve by manager" } else { "" };
        gates.push_str(&format!("  gate g{g}: {level} when {condition}{approvers}\n"));
        if rng.below(3) == 0 {
            gates.push_str(&format!("    message \"Gate {g} holds\"\n"));
        }
    }
    let matrix = |rng: &mut Rng, name: &str| {
        let mut rows = String::new();
        for _ in 0..rng.below(4) {
            rows.push_str(&format!("    when {} => {}\n", rng.pick(&conditions), rng.pick(&requirements)));
        }
        let distinct = if rng.below(4) == 0 { "" } else { "    distinct from app.applicant\n" };
        format!("  approval {name} {{\n{rows}    otherwise => {}\n{distinct}  }}\n", rng.pick(&requirements))
    };
    let mut steps = matrix(rng, "sign");
    let mut approved = "sign.approved".to_owned();
    if rng.below(3) == 0 {
        steps.push_str(&matrix(rng, "countersign"));
        approved.push_str(" and countersign.approved");
    }
    if rng.below(8) == 0 {
        steps.push_str("  let doubled = app.score * 2\n  gate high: block when doubled > 1_500\n");
    }
    // Emits read the approvals' records, the inputs' places, or an input's text (which a
    // straight decision does not hold).
    if rng.below(3) == 0 {
        approved.push_str(" and app.verified");
    }
    let requirement = if rng.below(6) == 0 { "\"{sign.requirement} ({app.id})\"" } else { "sign.requirement" };
    format!(
        "role clerk\nrole manager\nrole director extends manager\n\n\
         enum Segment {{ retail, business, corporate }}\n\n\
         type Application {{\n  id: Text\n  applicant: Principal\n  amount: Money[USD]\n  income: Money[USD]\n  \
         debt: Money[USD]\n  score: Int\n  defaults: Int\n  segment: Segment\n  verified: Bool\n  rate: Decimal\n  \
         note: Text\n  tags: List[Text]\n  caps: List[Decimal]\n  when: Timestamp\n  extra: Int?\n}}\n\n\
         label pii\n\n\
         type Verdict {{\n  approved: Bool\n  requirement: Text @pii\n}}\n\n\
         flow straight {{\n  version \"1.0.0\"\n  owner manager\n  steward director\n\n  input app: Application\n  \
         output verdict: Verdict\n\n  param limit: Money[USD] = 50_000 USD\n\n  \
         access {{\n    trigger by clerk\n    view pii by director\n  }}\n\n{gates}\n{steps}\n  \
         emit verdict = Verdict {{ approved: {approved}, requirement: {requirement} }}\n}}\n"
    )
}

/// A run kept in memory that is decided straight (the inputs read into the native frame,
/// the gates and matrices decided by their native code, the view made from what held)
/// ends as the executor ends it: on random flows of that shape and on every plan of the
/// examples and the corpus, with random inputs, some changed at random (unknown and
/// missing keys, labelled values, wrong types, unknown principals, inputs missing, given
/// twice or unknown), `Runtime::evaluate` gives `Runtime::evaluate_stepwise`'s view, but
/// for the run's id, or its refusal; and so does `Runtime::evaluate_read` of the same
/// inputs read as a backtest reads its lines.
#[test]
fn runs_decided_straight_end_as_runs_stepped_through() {
    // The benchmarks' rules flow is of the shape decided straight.
    let rules =
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../runtime/benches/rules.plan.json"))
            .expect("the rules plan");
    let rules = flow_ir::load(&rules).expect("the rules plan loads");
    let mut plans = vec![rules];
    plans.extend(all_plans());
    let mut rng = Rng(0x057a_19b7);
    let mut straight_plans = 0;
    let mut kept = 0;
    for _ in 0..600 {
        let text = straight_flow(&mut rng);
        let checked = crate::check_fixture("main.flow", text.as_bytes());
        // A random matrix may have a row that never applies, or none that always does.
        if !checked.diagnostics.iter().any(flow_diagnostics::Diagnostic::is_error) {
            plans.extend(crate::plans(&checked).into_iter().flatten());
            kept += 1;
        }
        if kept == 80 {
            break;
        }
    }
    let (mut decided_straight, mut read_straight, mut completed_straight, mut cases) = (0, 0, 0, 0);
    let mut line_straight = 0;
    for (p, plan) in plans.into_iter().enumerate() {
        let plan = with_trigger(plan);
        let body = plan.body().clone();
        // Two runtimes whose models and systems answer alike, one for each way.
        let runtime = || {
            let store = SqliteStore::open(std::path::Path::new(":memory:")).expect("an in-memory store");
            let mut runtime = answered_at_random(store, &body, 0x5eed ^ p as u64);
            runtime.set_engine(flow_runtime::Engine::Jit);
            runtime.set_directory(flow_runtime::Directory::new(["p1", "p2", "clerk"]));
            let analysis = runtime.install(plan.clone()).expect("the plan installs");
            (runtime, analysis)
        };
        let [(runtime, analysis), (reference, analysis_of_reference), (read_runtime, analysis_read)] =
            [runtime(), runtime(), runtime()];
        straight_plans += usize::from(analysis.decides_straight());
        assert!(p > 0 || analysis.decides_straight(), "the rules flow is not decided straight");
        let inputs: Vec<&flow_ir::plan::Node> =
            body.nodes.iter().filter(|n| matches!(n.kind, NodeKind::Input { .. })).collect();
        let count = if analysis.decides_straight() { 300 } else { 6 };
        for case in 0..count {
            let mut rng = Rng(0x2545_f491 ^ (case << 8) ^ (p as u64) << 32);
            let mut given: Vec<(String, Json)> = Vec::new();
            for node in &inputs {
                let mut value = random_json(&mut rng, &body, &node.ty, 0);
                // An absent optional field given as `null`, or left out.
                if body.flow.name == "straight"
                    && let Json::Object(fields) = &mut value
                    && rng.below(2) == 0
                {
                    fields.entry("extra").or_insert(Json::Null);
                }
                if rng.below(6) == 0
                    && let Json::Object(fields) = &mut value
                {
                    let first = fields.keys().next().cloned().unwrap_or_default();
                    match rng.below(6) {
                        0 => drop(fields.insert("zz".to_owned(), json!(1))),
                        1 => value = json!({"$labels": ["pii"], "$value": value.clone()}),
                        2 => drop(fields.shift_remove(&first)),
                        3 => drop(fields.insert(first, json!([true]))),
                        4 => drop(fields.insert("applicant".to_owned(), json!("nobody"))),
                        _ => drop(fields.insert("applicant".to_owned(), json!(" P2"))),
                    }
                }
                match rng.below(24) {
                    0 => {}
                    1 => given.extend([(node.name.to_string(), value.clone()), (node.name.to_string(), value)]),
                    2 => given.extend([(node.name.to_string(), value), ("other".to_owned(), json!(1))]),
                    _ => given.push((node.name.to_string(), value)),
                }
            }
            let who = Principal::new(
                ["p1", "clerk", "p2"][rng.below(3)].to_owned(),
                body.roles.iter().map(|r| r.name.to_string()).filter(|_| rng.below(8) != 0).collect(),
            );
            let options = StartOptions {
                clock: (rng.below(2) == 0).then_some(flow_ir::expr::Timestamp { seconds: 1_796_000_000, nanos: 0 }),
                params: if rng.below(12) == 0 { vec![("limit".to_owned(), json!("10 USD"))] } else { Vec::new() },
            };
            let seed = format!("plan {p} ({}) case {case}", body.flow.name);
            // A redacted value's digest is salted afresh in each run.
            fn unsalted(json: &mut Json) {
                match json {
                    Json::Object(fields) => fields.iter_mut().for_each(|(key, value)| match key.as_str() {
                        "$redacted" => *value = json!("…"),
                        _ => unsalted(value),
                    }),
                    Json::Array(items) => items.iter_mut().for_each(unsalted),
                    _ => {}
                }
            }
            let view = |mut v: flow_runtime::RunView| {
                v.outputs.values_mut().for_each(unsalted);
                (v.flow, v.status, v.summary, v.pending, v.outputs, v.marks, v.why)
            };
            let straight = runtime.evaluate(&analysis, &who, &given, &options);
            let stepwise = reference.evaluate_stepwise(&analysis_of_reference, &who, &given, &options);
            // Decided straight: the view `evaluate` gave (both have no models to answer).
            if let Some(alone) = runtime.evaluate_straight(&analysis, &who, &given, &options) {
                let given = stepwise.as_ref().unwrap_or_else(|e| panic!("{seed}: straight, stepwise {e}"));
                completed_straight += usize::from(alone.status == Status::Completed);
                assert_eq!(view(alone), view(given.clone()), "{seed}: straight");
                decided_straight += 1;
            }
            // The same inputs as a backtest's line, when it reads them straight into values
            // (`run --batch`): decided straight from those values, or stepped through.
            let pairs: Vec<String> = given.iter().map(|(name, json)| format!("{}: {json}", json!(name))).collect();
            let line = format!("{{\"inputs\": {{{}}}}}", pairs.join(", "));
            if let Some(read) = flow_runtime::read::case_inputs(&body, &line) {
                if let Some(alone) = read_runtime.evaluate_read_straight(&analysis_read, &who, &read, &options) {
                    let given = stepwise.as_ref().unwrap_or_else(|e| panic!("{seed}: read straight, stepwise {e}"));
                    assert_eq!(view(alone), view(given.clone()), "{seed}: read straight");
                    read_straight += 1;
                }
                let read = read_runtime.evaluate_read(&analysis_read, &who, read, &options);
                match (&read, &stepwise) {
                    (Ok(read), Ok(stepwise)) => assert_eq!(view(read.clone()), view(stepwise.clone()), "{seed}: read"),
                    (Err(read), Err(stepwise)) => assert_eq!(read.to_string(), stepwise.to_string(), "{seed}: read"),
                    (read, stepwise) => panic!("{seed}: read {read:?}, stepwise {stepwise:?}"),
                }
            }
            // The line decided straight from its text (`run --batch` on a store that keeps no
            // runs), written in one of several ways; held to the general reading of the same
            // text (`parse_exact`, then its `inputs`).
            let line = match rng.below(12) {
                0 => {
                    line.replace(": ", " :\n\t").replace(", ", " ,\r\n").replace("\":", "\" : ").replace(",\"", " , \"")
                }
                1 => line.replacen('{', "{\"note\": [1, {\"a\": \"b\"}, null], ", 1),
                2 => line.replacen("\"inputs\"", "\"\\u0069nputs\"", 1),
                3 => line.replacen('{', "{\"$labels\": 1, ", 1),
                // A number the general reading refuses (binary floating point reads it as 0.1).
                4 => line.replacen('{', "{\"n\": 0.10000000000000001, ", 1),
                5 => line.replace("\"caps\":[", "\"caps\":[0.10000000000000001, "),
                6 => match line.split_once("\"rate\":") {
                    Some((head, tail)) => {
                        let rest = tail.find(",\"").map_or("", |at| &tail[at..]);
                        format!("{head}\"rate\":0.10000000000000001{rest}")
                    }
                    None => line,
                },
                // Keys escaped, inside the inputs and a record; a key that differs from a
                // field's only after its first eight bytes.
                7 => line.replacen("\"app\"", "\"\\u0061pp\"", 1).replacen("\"score\"", "\"\\u0073core\"", 1),
                8 => line.replacen("\"applicant\"", "\"applicanX\"", 1),
                // JSON text hidden under the key `serde_json` reads specially, in a list's place.
                9 => match line.split_once("\"caps\":") {
                    Some((head, tail)) if tail.starts_with('[') => {
                        let end = tail.find(']').map_or(tail.len(), |at| at + 1);
                        let hidden = serde_json::to_string(&tail[..end]).expect("a JSON string");
                        format!("{head}\"caps\":{{\"$serde_json::private::RawValue\":{hidden}}}{}", &tail[end..])
                    }
                    _ => line,
                },
                _ => line,
            };
            let general = || {
                let mut case = flow_runtime::value::parse_exact(&line).ok()?;
                let Json::Object(inputs) = case.get_mut("inputs").map(Json::take)? else { return None };
                let inputs: Vec<(String, Json)> = inputs.into_iter().collect();
                Some(reference.evaluate_stepwise(&analysis_of_reference, &who, &inputs, &options))
            };
            let status = read_runtime.decide_case_straight(&analysis_read, &who, &line, &options);
            match read_runtime.evaluate_case_straight(&analysis_read, &who, &line, &options) {
                Some(alone) => {
                    let given = general().unwrap_or_else(|| panic!("{seed}: line straight, but not read: {line}"));
                    let given = given.unwrap_or_else(|e| panic!("{seed}: line straight, stepwise {e}: {line}"));
                    assert_eq!(status, Some(alone.status), "{seed}: line's status");
                    assert_eq!(view(alone), view(given), "{seed}: line straight: {line}");
                    line_straight += 1;
                }
                None => assert_eq!(status, None, "{seed}: line's status"),
            }
            cases += 1;
            match (straight, stepwise) {
                (Ok(straight), Ok(stepwise)) => {
                    assert!(straight.run.starts_with("r-") && straight.run != stepwise.run, "{seed}");
                    assert_eq!(view(straight), view(stepwise), "{seed}");
                }
                (Err(straight), Err(stepwise)) => assert_eq!(straight.to_string(), stepwise.to_string(), "{seed}"),
                (straight, stepwise) => panic!("{seed}: straight {straight:?}, stepwise {stepwise:?}"),
            }
        }
    }
    // The shapes decided straight are met often, and so are the others.
    assert!(straight_plans >= 20, "only {straight_plans} plans are decided straight");
    assert!(
        decided_straight >= 1_000
            && read_straight >= 1_000
            && line_straight >= 1_000
            && completed_straight >= 200
            && cases - decided_straight >= 2_000,
        "of {cases} cases, {decided_straight} decided straight from JSON ({completed_straight} completed), \
         {read_straight} from values, {line_straight} from a line's text"
    );
}
