//! Running the `test` blocks of flows: each test (each example of it) through a
//! [`Runtime`] on a store in memory, with mock model providers and action handlers (routed
//! by `ActionRequest::step`), its expectations checked with `Runtime::inspect` (the run's
//! events, and conditions evaluated on its values), and the coverage of gates, approval
//! rows and review branches taken from the events.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use flow_ir::VerifiedPlan;
use flow_ir::expr::{BinaryOp, Expr, ExprKind, Timestamp};
use flow_ir::plan::NodeKind;
use flow_lower::{LoweredTest, TestExpect};
use flow_runtime::event::Event;
use flow_runtime::interp::{self, Scope};
use flow_runtime::provider::{ActionHandler, ActionRequest, ModelProvider, ModelReply, ModelRequest, ProviderError};
use flow_runtime::retrieval::{Found, RetrievalReply, RetrievalRequest, Retriever};
use flow_runtime::store::SqliteStore;
use flow_runtime::value::Value;
use flow_runtime::{DecisionInput, Principal, RunView, Runtime, StartOptions, Status};
use flow_sema::SourceFile;
use serde_json::Value as Json;

/// What the tests of a workspace gave: each run's outcome, and the coverage of each flow.
pub struct Run {
    pub outcomes: Vec<Outcome>,
    /// By (file, flow).
    pub coverage: BTreeMap<(String, String), Coverage>,
}

impl Run {
    /// The share of all flows' branches that some test exercised, in percent (100 when
    /// there are none).
    pub fn percent(&self) -> f64 {
        let total: usize = self.coverage.values().map(|c| c.all.len()).sum();
        let hit: usize = self.coverage.values().map(|c| c.hit.intersection(&c.all).count()).sum();
        if total == 0 { 100.0 } else { 100.0 * hit as f64 / total as f64 }
    }

    /// How many runs failed.
    pub fn failed(&self) -> usize {
        self.outcomes.iter().filter(|o| !o.failures.is_empty()).count()
    }
}

/// One run of a test: the test, or one of its examples.
pub struct Outcome {
    pub file: String,
    pub flow: String,
    /// The test's name, with the example's number when it has examples.
    pub name: String,
    /// Where the test (or the example) is written: `file:line:column`.
    pub at: String,
    pub failures: Vec<String>,
    /// The path the run took, one line per step that decided something.
    pub path: Vec<String>,
    /// Each output as emitted (labelled fields marked): `output name = JSON`.
    pub outputs: Vec<String>,
}

impl Outcome {
    /// What a snapshot keeps of the run: its path and its outputs.
    pub fn trace(&self) -> Vec<String> {
        self.path.iter().chain(&self.outputs).cloned().collect()
    }
}

/// What the tests of one flow exercised, against everything it could.
#[derive(Default)]
pub struct Coverage {
    /// Every branch of the flow: `gate g held`, `approval a row 2`, `review r approve`, …
    pub all: BTreeSet<String>,
    pub hit: BTreeSet<String>,
}

/// Runs the `test` blocks of the flows in `roots` (files that check clean, with what they
/// import, in `db`) through the runtime, each on a store in memory with the test's answers
/// for models and systems; `progress` is told how many of the files are done.
pub fn run(db: &flow_sema::Database, roots: &[SourceFile], progress: &dyn Fn(usize, usize)) -> Run {
    let mut outcomes = Vec::new();
    let mut coverage: BTreeMap<(String, String), Coverage> = BTreeMap::new();
    for (done, &file) in roots.iter().enumerate() {
        progress(done, roots.len());
        let checked = flow_sema::check_file(db, file);
        let lowered = flow_lower::lower_file(db, file);
        let path = file.path(db).to_string();
        // Every flow of the file counts toward coverage, tested or not.
        for flow in &lowered.flows {
            if let Some(plan) = &flow.plan {
                coverage.entry((path.clone(), flow.name.to_string())).or_insert_with(|| branches(plan));
            }
        }
        let lines = flow_lower::line_index(db, file);
        let text = file.text(db);
        for test in &checked.tests {
            let Some(flow) = checked.flows.iter().find(|f| f.id == test.flow) else { continue };
            let Some(plan) = lowered.flows.iter().find(|f| f.name == flow.name).and_then(|f| f.plan.as_ref()) else {
                continue;
            };
            let lowered_test = flow_lower::lower_test(db, file, flow, test);
            let cover = coverage.entry((path.clone(), flow.name.to_string())).or_insert_with(|| branches(plan));
            let at = |span: flow_diagnostics::Span| {
                let position = lines.line_col(text, span.start);
                format!("{path}:{}:{}", position.line, position.column)
            };
            let rows: Vec<Option<usize>> = if lowered_test.rows.is_empty() {
                vec![None]
            } else {
                (0..lowered_test.rows.len()).map(Some).collect()
            };
            for row in rows {
                let name = match row {
                    Some(i) => format!("{} (example {})", lowered_test.name, i + 1),
                    None => lowered_test.name.clone(),
                };
                let span = row.map_or(lowered_test.span, |i| lowered_test.rows[i].0);
                let mut outcome = Outcome {
                    file: path.clone(),
                    flow: flow.name.to_string(),
                    name,
                    at: at(span),
                    failures: Vec::new(),
                    path: Vec::new(),
                    outputs: Vec::new(),
                };
                execute(plan, &lowered_test, row, &mut outcome, &mut cover.hit, &at);
                outcomes.push(outcome);
            }
        }
    }
    Run { outcomes, coverage }
}

/// Every branch of a flow that tests can exercise.
fn branches(plan: &VerifiedPlan) -> Coverage {
    let mut coverage = Coverage::default();
    for node in &plan.body().nodes {
        let name = &node.name;
        match &node.kind {
            NodeKind::Gate { .. } => {
                coverage.all.insert(format!("gate `{name}` held"));
                coverage.all.insert(format!("gate `{name}` passed"));
            }
            NodeKind::Approval { rows, .. } => {
                for row in 1..=rows.len() {
                    coverage.all.insert(format!("approval `{name}` row {row}"));
                }
            }
            NodeKind::Review { condition, outcomes, .. } => {
                if condition.is_some() {
                    coverage.all.insert(format!("review `{name}` skipped"));
                }
                for outcome in outcomes {
                    coverage.all.insert(format!("review `{name}` {outcome}"));
                }
            }
            _ => {}
        }
        // Every deadline that escalates, decides or blocks is a path tests can take.
        for deadline in node.timing.iter().flat_map(|t| &t.deadlines) {
            coverage.all.insert(deadline_branch(node, &deadline.then));
        }
    }
    coverage
}

/// The coverage branch of a deadline: `review `check` at its deadline: escalate to director`.
fn deadline_branch(node: &flow_ir::plan::Node, then: &flow_ir::plan::Timeout) -> String {
    format!("{} `{}` at its deadline: {}", node.kind.keyword(), node.name, then.describe())
}

/// Constants of a test: no run's values, the test's clock.
struct Constants(Timestamp);

impl Scope for Constants {
    fn node(&self, _name: &str) -> Option<&Value> {
        None
    }
    fn degraded(&self, _name: &str) -> bool {
        false
    }
    fn clock(&self) -> Timestamp {
        self.0
    }
}

/// A corpus that finds what the test says, in the snapshot the flow pins, published at the
/// run's clock; each document's identifier is its place in the list (`1`, `2`, …).
struct MockCorpus(Option<Json>);

impl Retriever for MockCorpus {
    fn describe(&self) -> String {
        "the test's documents".to_owned()
    }

    fn retrieve(&self, request: &RetrievalRequest<'_>) -> Result<RetrievalReply, ProviderError> {
        let Some(found) = &self.0 else {
            return Err(ProviderError { message: "the retriever fails, as the test says".to_owned(), attempts: 1 });
        };
        let documents = found.as_array().into_iter().flatten().enumerate();
        Ok(RetrievalReply {
            snapshot: request.corpus.snapshot.clone(),
            as_of: Some(request.clock),
            documents: documents
                .take(request.top as usize)
                .map(|(i, document)| Found { id: (i + 1).to_string(), document: document.clone() })
                .collect(),
            attempts: 1,
        })
    }
}

/// A model that answers what the test says.
struct MockModel(Option<Json>);

impl ModelProvider for MockModel {
    fn describe(&self) -> String {
        "the test's answer".to_owned()
    }

    fn infer(&self, _request: &ModelRequest<'_>) -> Result<ModelReply, ProviderError> {
        match &self.0 {
            Some(output) => Ok(ModelReply { output: output.clone(), attempts: 1 }),
            None => Err(ProviderError { message: "the model fails, as the test says".to_owned(), attempts: 1 }),
        }
    }
}

/// The systems of a test: each action step returns what the test says.
struct MockSystems {
    results: BTreeMap<String, Option<Json>>,
    /// Action steps that ran without a result in the test.
    unmocked: Mutex<Vec<String>>,
}

impl ActionHandler for MockSystems {
    fn describe(&self) -> String {
        "the test's results".to_owned()
    }

    fn call(&self, request: &ActionRequest<'_>) -> Result<Json, String> {
        match self.results.get(request.step) {
            Some(Some(result)) => Ok(result.clone()),
            Some(None) => Err("the call fails, as the test says".to_owned()),
            None => {
                self.unmocked.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(request.step.to_owned());
                Err(format!("the test gives action `{}` no result", request.step))
            }
        }
    }
}

/// Runs one test (one example of it) and records what failed, the path taken and the
/// branches exercised.
fn execute(
    plan: &VerifiedPlan,
    test: &LoweredTest,
    row: Option<usize>,
    outcome: &mut Outcome,
    hit: &mut BTreeSet<String>,
    at: &dyn Fn(flow_diagnostics::Span) -> String,
) {
    let body = plan.body();
    let default_clock = Timestamp { seconds: flow_sema::test_blocks::DEFAULT_CLOCK, nanos: 0 };
    // The example's values first: the test's other values read them.
    let constants = Constants(default_clock);
    let mut args = Vec::new();
    if let Some(i) = row {
        for (column, expr) in test.columns.iter().zip(&test.rows[i].1) {
            match interp::eval(body, &constants, expr) {
                Ok(value) => args.push(value),
                Err(error) => return outcome.failures.push(format!("example field `{column}`: {error}")),
            }
        }
    }
    let eval = |what: &str, expr: &Expr, clock: Timestamp| {
        interp::eval_with(body, &Constants(clock), &args, expr).map_err(|error| format!("{what}: {error}"))
    };
    let clock = match &test.clock {
        None => default_clock,
        Some(expr) => match eval("the clock", expr, default_clock) {
            Ok(Value::Timestamp(clock)) => clock,
            Ok(other) => return outcome.failures.push(format!("the clock is not an instant: {other:?}")),
            Err(error) => return outcome.failures.push(error),
        },
    };
    let json_of = |what: String, expr: &Expr| eval(&what, expr, clock).map(|value| value.to_json());
    let values = |items: &[(_, Expr)], what: &str| -> Result<Vec<(String, Json)>, String> {
        items.iter().map(|(name, expr)| Ok((format!("{name}"), json_of(format!("{what} `{name}`"), expr)?))).collect()
    };
    let given = values(&test.given, "input");
    let params = values(&test.params, "param");
    let (given, params) = match (given, params) {
        (Ok(given), Ok(params)) => (given, params),
        (Err(error), _) | (_, Err(error)) => return outcome.failures.push(error),
    };
    let mut runtime = match SqliteStore::open(std::path::Path::new(":memory:")) {
        Ok(store) => Runtime::new(Box::new(store)),
        Err(error) => return outcome.failures.push(format!("no store in memory: {error}")),
    };
    runtime.set_testing(true);
    // The test's time: the run's clock, moved on by `after`.
    let now = Arc::new(Mutex::new(clock));
    let read = now.clone();
    runtime.set_clock(Arc::new(move || *read.lock().unwrap_or_else(std::sync::PoisonError::into_inner)));
    // What each mock returns (`None`: it fails), by model or action step.
    let mocks = |mocks: &[(_, Option<Expr>)], what: &str| -> Result<BTreeMap<String, Option<Json>>, String> {
        mocks
            .iter()
            .map(|(name, mock): &(_, Option<Expr>)| {
                let name = format!("{name}");
                let result = match mock {
                    Some(expr) => Some(json_of(format!("what {what} `{name}` returns"), expr)?),
                    None => None,
                };
                Ok((name, result))
            })
            .collect()
    };
    let (models, corpora, results) =
        match (mocks(&test.models, "model"), mocks(&test.corpora, "corpus"), mocks(&test.actions, "action")) {
            (Ok(models), Ok(corpora), Ok(results)) => (models, corpora, results),
            (Err(error), _, _) | (_, Err(error), _) | (_, _, Err(error)) => return outcome.failures.push(error),
        };
    for (model, answer) in models {
        runtime.register_model(&model, Arc::new(MockModel(answer)));
    }
    for (corpus, found) in corpora {
        runtime.register_retriever(&corpus, Arc::new(MockCorpus(found)));
    }
    let systems = Arc::new(MockSystems { results, unmocked: Mutex::default() });
    for system in &body.systems {
        runtime.register_system(&system.name, systems.clone());
    }
    let analysis = match runtime.install(plan.clone()) {
        Ok(analysis) => analysis,
        Err(error) => return outcome.failures.push(format!("the plan does not install: {error}")),
    };
    // The run is started by someone holding every role: a test is about the flow, not
    // about who may start it.
    // A test's run is started by a principal holding every role, who may choose its clock
    // and name anyone in its inputs (`Runtime::set_testing`).
    let starter = Principal::new("flow-test".to_owned(), body.roles.iter().map(|r| r.name.to_string()).collect());
    let options = StartOptions { clock: Some(clock), params };
    let mut view = match runtime.start(&analysis, &starter, &given, &options) {
        Ok(view) => view,
        Err(error) => return outcome.failures.push(format!("the run does not start: {error}")),
    };
    for decision in &test.decisions {
        if let Some(seconds) = decision.after {
            let moved = {
                let mut now = now.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                now.seconds = now.seconds.saturating_add(seconds);
                *now
            };
            // Instants are written with four-digit years.
            if moved.seconds > 253_402_300_799 {
                outcome.failures.push(format!("`after` ({}) moves the clock past the year 9999", at(decision.span)));
                break;
            }
            let ticked = runtime.tick(moved).map_err(|e| e.to_string()).and_then(|tick| match tick.failed.first() {
                Some((_, why)) => Err(why.clone()),
                None => runtime.status(&view.run, Some(&starter)).map_err(|e| e.to_string()),
            });
            match ticked {
                Ok(next) => view = next,
                Err(error) => {
                    outcome.failures.push(format!("`after` ({}): the timers do not fire: {error}", at(decision.span)));
                    break;
                }
            }
            continue;
        }
        let who = Principal::new(decision.principal.clone(), decision.roles.clone());
        let waiting = match &decision.overrides {
            Some(_) => view.status == Status::Blocked && view.summary.contains(&format!("`{}`", decision.step)),
            None => view.pending.iter().any(|(step, _, _)| *step == decision.step),
        };
        let what = match &decision.overrides {
            Some(_) => format!("override {}", decision.step),
            None => format!("decide {}", decision.step),
        };
        if !waiting {
            outcome.failures.push(format!(
                "`{what}` ({}): step `{}` is not waiting for it; the run is {}: {}",
                at(decision.span),
                decision.step,
                view.status.as_str(),
                view.summary
            ));
            break;
        }
        let next = match &decision.overrides {
            Some(basis) => runtime.override_gate(&view.run, &decision.step, &who, "test", Some(basis)),
            None => {
                let input = DecisionInput {
                    outcome: decision.outcome.clone(),
                    reason: decision.reason.clone(),
                    basis: None,
                    edits: Vec::new(),
                };
                runtime.decide(&view.run, &decision.step, &who, &input)
            }
        };
        match next {
            Ok(next) => view = next,
            Err(error) => {
                let why = match &error {
                    flow_runtime::Error::Refused { .. } => error.to_string(),
                    _ => format!("not taken: {error}"),
                };
                outcome.failures.push(format!("`{what}` ({}) is {why} [{}]", at(decision.span), error.code()));
                break;
            }
        }
    }
    // The run as it ends, seen by the starter (who holds every role): outputs unredacted,
    // whoever decided last.
    match runtime.status(&view.run, Some(&starter)) {
        Ok(seen) => view = seen,
        Err(error) => outcome.failures.push(format!("the run cannot be read back: {error}")),
    }
    let unmocked = systems.unmocked.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    for step in unmocked {
        outcome
            .failures
            .push(format!("action `{step}` ran, but the test gives it no result: add `action {step} returns …`"));
    }
    check_expectations(plan, &runtime, test, &args, &view, outcome, hit, at);
}

#[expect(clippy::too_many_arguments, reason = "the plan, the run and what the test checks, each needed")]
fn check_expectations(
    plan: &VerifiedPlan,
    runtime: &Runtime,
    test: &LoweredTest,
    args: &[Value],
    view: &RunView,
    outcome: &mut Outcome,
    hit: &mut BTreeSet<String>,
    at: &dyn Fn(flow_diagnostics::Span) -> String,
) {
    // Each condition, and the sides of each comparison among its `and`ed parts: a failure
    // shows the values compared.
    let mut exprs: Vec<&Expr> = Vec::new();
    let mut explained: Vec<Vec<(BinaryOp, usize)>> = Vec::new();
    for (_, expectation) in &test.expectations {
        let TestExpect::Holds(condition) = expectation else { continue };
        exprs.push(condition);
        let mut comparisons = Vec::new();
        for part in conjuncts(condition) {
            if let ExprKind::Binary { op, lhs, rhs } = &part.kind
                && matches!(op, BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge)
            {
                comparisons.push((*op, exprs.len()));
                exprs.extend([part, &**lhs, &**rhs]);
            }
        }
        explained.push(comparisons);
    }
    let (events, values) = match runtime.inspect(&view.run, &exprs, args) {
        Ok(inspected) => inspected,
        Err(error) => return outcome.failures.push(format!("the run cannot be read back: {error}")),
    };
    outcome.path = path_of(plan, &events, view, hit);
    outcome.outputs = view.outputs.iter().map(|(name, value)| format!("output {name} = {value}")).collect();
    let mut conditions = explained.into_iter();
    let mut next_condition = 0;
    for (span, expectation) in &test.expectations {
        let failure = match expectation {
            TestExpect::Outcome(expected) => (view.status.as_str() != expected)
                .then(|| format!("expected the run {expected}, but it is {}", view.status.as_str())),
            TestExpect::Gate { step, held } => {
                let found = events.iter().find_map(|e| match e {
                    Event::Gate { node, holds, .. } if node == step => Some(*holds),
                    _ => None,
                });
                let word = |held: bool| if held { "held" } else { "passed" };
                match found {
                    Some(holds) if holds == *held => None,
                    Some(holds) => Some(format!("expected gate `{step}` {}, but it {}", word(*held), word(holds))),
                    None => Some(format!("expected gate `{step}` {}, but the run never reached it", word(*held))),
                }
            }
            TestExpect::Action { step, ran } => {
                let started = events.iter().any(|e| {
                    matches!(e, Event::ActionStarted { node, .. } | Event::ActionCompleted { node, .. } if node == step)
                });
                let skipped = events.iter().any(|e| matches!(e, Event::ActionSkipped { node, .. } if node == step));
                // An action is skipped when its condition did not hold, or when the run ended
                // or stopped before it (a rejection, a block, a failure).
                match (*ran, started, skipped) {
                    (true, true, _) | (false, false, _) => None,
                    (true, _, true) => Some(format!("expected action `{step}` to run, but it was skipped")),
                    (false, true, _) => Some(format!("expected action `{step}` to be skipped, but it ran")),
                    (true, false, false) => {
                        Some(format!("expected action `{step}` to run, but the run never reached it"))
                    }
                }
            }
            TestExpect::Holds(_) => {
                let comparisons = conditions.next().unwrap_or_default();
                let at = next_condition;
                next_condition += 1 + 3 * comparisons.len();
                match values.get(at) {
                    Some(Ok(Value::Bool(true))) => None,
                    Some(Ok(Value::Bool(false))) => {
                        // The first comparison that is false, with its values.
                        let shown = |i: usize| match values.get(i) {
                            Some(Ok(value)) => value.to_json().to_string(),
                            Some(Err(error)) => format!("(no value: {error})"),
                            None => "?".to_owned(),
                        };
                        let false_part = comparisons
                            .iter()
                            .find(|(_, i)| matches!(values.get(*i), Some(Ok(Value::Bool(false)))))
                            .map(|(op, i)| format!(": {} {} {} is false", shown(i + 1), op.as_str(), shown(i + 2)));
                        Some(format!("the condition does not hold{}", false_part.unwrap_or_default()))
                    }
                    Some(Ok(other)) => Some(format!("the condition is not true or false: {other:?}")),
                    Some(Err(error)) => Some(format!("the condition cannot be evaluated: {error}")),
                    None => Some("the condition was not evaluated".to_owned()),
                }
            }
        };
        if let Some(failure) = failure {
            outcome.failures.push(format!("{}: {failure}", at(*span)));
        }
    }
}

/// The parts of a condition joined by `and`, in order.
fn conjuncts(expr: &Expr) -> Vec<&Expr> {
    match &expr.kind {
        ExprKind::Binary { op: BinaryOp::And, lhs, rhs } => {
            let mut parts = conjuncts(lhs);
            parts.extend(conjuncts(rhs));
            parts
        }
        _ => vec![expr],
    }
}

/// The path a run took, step by step, and the branches it exercised.
fn path_of(plan: &VerifiedPlan, events: &[Event<Value>], view: &RunView, hit: &mut BTreeSet<String>) -> Vec<String> {
    let mut path = Vec::new();
    // The deadline of a step that fired: the one that escalates to these roles, or the last.
    let deadline = |node: &str, roles: Option<Vec<&str>>| {
        let step = plan.body().node(node)?;
        let deadlines = &step.timing.as_ref()?.deadlines;
        let found = match roles {
            Some(roles) => deadlines.iter().find(|d| {
                matches!(&d.then, flow_ir::plan::Timeout::Escalate { roles: r }
                    if r.iter().map(|r| r.as_str()).eq(roles.iter().copied()))
            }),
            None => deadlines.last(),
        };
        found.map(|d| deadline_branch(step, &d.then))
    };
    for event in events {
        let line = match event {
            Event::Reminded { node, at, .. } => format!("`{node}` reminded at {at}"),
            Event::Escalated { node, at, roles } => {
                hit.extend(deadline(node, Some(roles.iter().map(|r| r.as_str()).collect())));
                format!("`{node}` escalated to {} at {at}", roles.join(", "))
            }
            Event::TimedOut { node, at, outcome, .. } => {
                hit.extend(deadline(node, None));
                if let Some(outcome) = outcome
                    && plan.body().node(node).is_some_and(|n| matches!(n.kind, NodeKind::Review { .. }))
                {
                    hit.insert(format!("review `{node}` {outcome}"));
                }
                match outcome {
                    Some(outcome) => format!("`{node}` decided {outcome} by its deadline at {at}"),
                    None => format!("`{node}` blocked the run at its deadline at {at}"),
                }
            }
            Event::Gate { node, holds, .. } => {
                let word = if *holds { "held" } else { "passed" };
                hit.insert(format!("gate `{node}` {word}"));
                format!("gate `{node}` {word}")
            }
            Event::ReviewSkipped { node, .. } => {
                hit.insert(format!("review `{node}` skipped"));
                format!("review `{node}` skipped")
            }
            Event::ReviewOpened { node, .. } => format!("review `{node}` opened"),
            Event::ReviewDecided { node, decision, .. } => {
                hit.insert(format!("review `{node}` {}", decision.outcome));
                format!("review `{node}` decided {} by {}", decision.outcome, decision.principal)
            }
            Event::GateDecided { node, decision } => {
                format!("gate `{node}` decided {} by {}", decision.outcome, decision.principal)
            }
            Event::GateOverridden { node, decision } => format!("gate `{node}` overridden by {}", decision.principal),
            Event::ApprovalRequired { node, row, requirement, .. } => {
                hit.insert(format!("approval `{node}` row {row}"));
                format!("approval `{node}` row {row}: {requirement}")
            }
            Event::ApprovalCompleted { node, row, approved, requirement, .. } => {
                // An `auto` row completes at once, without asking anyone.
                hit.insert(format!("approval `{node}` row {row}"));
                format!(
                    "approval `{node}` {} (row {row}: {requirement})",
                    if *approved { "approved" } else { "rejected" }
                )
            }
            Event::Inferred { node, degraded: true, .. } => format!("infer `{node}` fell back"),
            Event::Retrieved(retrieved) if retrieved.error.is_none() => {
                let found = match retrieved.found().len() {
                    1 => "1 document".to_owned(),
                    n => format!("{n} documents"),
                };
                let how = match (retrieved.degraded, retrieved.refused) {
                    (true, _) => ", degraded",
                    (_, true) => ", refused",
                    _ => "",
                };
                format!("retrieve `{}` found {found}{how}", retrieved.node)
            }
            Event::ActionSkipped { node, .. } => format!("action `{node}` skipped"),
            Event::ActionCompleted { node, .. } => format!("action `{node}` ran"),
            Event::Failed { node, error, detail, .. } => match detail {
                // The test's own values: shown in full.
                Some(detail) => format!("`{node}` failed: {error} — {detail}"),
                None => format!("`{node}` failed: {error}"),
            },
            _ => continue,
        };
        path.push(line);
    }
    path.push(format!("{}: {}", view.status.as_str(), view.summary));
    path
}
