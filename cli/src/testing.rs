//! `flowc test PATH…`: runs the `test` blocks of `.flow` files through the runtime, on a
//! store in memory, and reports failures with the path each run took and the coverage of
//! gates, approval rows and review branches.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use flow_diagnostics::Diagnostic;
use flow_ir::VerifiedPlan;
use flow_ir::expr::{BinaryOp, Expr, ExprKind, Timestamp};
use flow_ir::plan::NodeKind;
use flow_lower::{LoweredTest, TestExpect};
use flow_runtime::event::Event;
use flow_runtime::interp::{self, Scope};
use flow_runtime::provider::{ActionHandler, ActionRequest, ModelProvider, ModelReply, ModelRequest, ProviderError};
use flow_runtime::store::SqliteStore;
use flow_runtime::value::Value;
use flow_runtime::{DecisionInput, Principal, RunView, Runtime, StartOptions, Status};
use serde_json::{Value as Json, json};

use anyhow::Context;

use crate::output::{self, Report};
use crate::session::Session;

/// How `flowc test` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TestFormat {
    Human,
    Json,
    Junit,
}

pub struct Options<'a> {
    pub paths: &'a [String],
    pub format: TestFormat,
    /// Fail when the coverage of gates, rows and review branches is below this percentage.
    pub min_coverage: Option<f64>,
    /// Compare each run's decision trace with its snapshot (`FLOW_FILE.snap`).
    pub snapshot: bool,
    /// With `snapshot`: write the snapshots instead of comparing them.
    pub update: bool,
}

/// One run of a test: the test, or one of its examples.
struct Outcome {
    file: String,
    flow: String,
    /// The test's name, with the example's number when it has examples.
    name: String,
    /// Where the test (or the example) is written: `file:line:column`.
    at: String,
    failures: Vec<String>,
    /// The path the run took, one line per step that decided something.
    path: Vec<String>,
    /// Each output as emitted (labelled fields marked): `output name = JSON`.
    outputs: Vec<String>,
}

impl Outcome {
    /// What a snapshot keeps of the run: its path and its outputs.
    fn trace(&self) -> Vec<String> {
        self.path.iter().chain(&self.outputs).cloned().collect()
    }
}

/// What the tests of one flow exercised, against everything it could.
#[derive(Default)]
struct Coverage {
    /// Every branch of the flow: `gate g held`, `approval a row 2`, `review r approve`, …
    all: BTreeSet<String>,
    hit: BTreeSet<String>,
}

pub fn run(options: &Options<'_>) -> anyhow::Result<ExitCode> {
    let session = Session::load(options.paths)?;
    let diagnostics = session.diagnostics(&flow_lower::Checks::default());
    if diagnostics.iter().any(Diagnostic::is_error) {
        // Tests run only against flows (and tests) that check clean.
        let report = Report { diagnostics: &diagnostics, sources: &session.sources, files: session.files.len() };
        crate::print(&output::human(&report, crate::use_color()));
        return Ok(ExitCode::from(1));
    }
    let db = &session.db;
    let mut outcomes = Vec::new();
    let mut coverage: BTreeMap<(String, String), Coverage> = BTreeMap::new();
    let progress = crate::progress::Progress::new("files");
    for (done, &file) in session.roots.iter().enumerate() {
        progress.update(done, session.roots.len());
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
    progress.finish();
    let mut problems = Vec::new();
    if options.snapshot
        && let Err(code) = snapshot(&mut outcomes, options.update, &mut problems)?
    {
        return Ok(code);
    }
    let total: usize = coverage.values().map(|c| c.all.len()).sum();
    let hit: usize = coverage.values().map(|c| c.hit.intersection(&c.all).count()).sum();
    let percent = if total == 0 { 100.0 } else { 100.0 * hit as f64 / total as f64 };
    let failed = outcomes.iter().filter(|o| !o.failures.is_empty()).count();
    let below = options.min_coverage.is_some_and(|min| percent + 1e-9 < min);
    let stale = problems.iter().any(|(_, failing)| *failing);
    let text = match options.format {
        TestFormat::Human => {
            let mut text = human(&outcomes, &coverage, percent, options.min_coverage);
            for (problem, _) in &problems {
                text.push_str(&format!("{problem}\n"));
            }
            text
        }
        TestFormat::Json => {
            let mut json = to_json(&outcomes, &coverage, percent);
            json["snapshots"] = problems.iter().map(|(p, _)| Json::String(p.clone())).collect();
            format!("{json}\n")
        }
        TestFormat::Junit => junit(&outcomes),
    };
    crate::print(&text);
    Ok(if failed > 0 || below || stale { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// Compares each run's trace with its snapshot, or (`update`) writes the snapshots. A
/// difference is a failure of its run; a snapshot of a run that no longer exists is a
/// failing problem, what was written a note (`problems`: text, whether it fails). A corrupt
/// snapshot file is reported as a diagnostic: `Err(exit code)`.
fn snapshot(
    outcomes: &mut [Outcome],
    update: bool,
    problems: &mut Vec<(String, bool)>,
) -> anyhow::Result<Result<(), ExitCode>> {
    let mut files: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (index, outcome) in outcomes.iter().enumerate() {
        files.entry(outcome.file.clone()).or_default().push(index);
    }
    for (file, indices) in files {
        let path = crate::snapshots::path_of(&file);
        if update {
            let traces: Vec<(String, Vec<String>)> =
                indices.iter().map(|&i| (outcomes[i].name.clone(), outcomes[i].trace())).collect();
            let borrowed: Vec<(&str, &[String])> = traces.iter().map(|(n, t)| (n.as_str(), t.as_slice())).collect();
            std::fs::write(&path, crate::snapshots::render(&file, &borrowed))
                .with_context(|| format!("cannot write the snapshots `{path}`"))?;
            problems.push((format!("wrote {} snapshots to {path}", traces.len()), false));
            continue;
        }
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                for &i in &indices {
                    outcomes[i].failures.push(format!(
                        "no snapshot of this run: `{path}` does not exist; record it with `flowc test --snapshot --update`"
                    ));
                }
                continue;
            }
            Err(error) => anyhow::bail!("cannot read the snapshots `{path}`: {error}"),
        };
        let id = flow_diagnostics::FileId(u32::MAX);
        let sections = match crate::snapshots::parse(&text, id) {
            Ok(sections) => sections,
            Err(diagnostic) => {
                let mut sources = flow_diagnostics::Sources::default();
                sources.add(id, path.clone(), text);
                let report = Report { diagnostics: std::slice::from_ref(&*diagnostic), sources: &sources, files: 1 };
                crate::print(&output::human(&report, crate::use_color()));
                return Ok(Err(ExitCode::from(1)));
            }
        };
        for &i in &indices {
            let outcome = &mut outcomes[i];
            let trace = outcome.trace();
            match sections.get(&outcome.name) {
                None => outcome.failures.push(format!(
                    "no snapshot of this run in `{path}`; record it with `flowc test --snapshot --update`"
                )),
                Some(recorded) if *recorded != trace => {
                    let diff = crate::snapshots::diff(recorded, &trace);
                    outcome.failures.push(format!(
                        "the run differs from its snapshot in `{path}` (- snapshot, + this run):\n      {}",
                        diff.join("\n      ")
                    ));
                }
                Some(_) => {}
            }
        }
        for name in sections.keys() {
            if !indices.iter().any(|&i| outcomes[i].name == *name) {
                problems.push((
                    format!("`{path}` has a snapshot of `{name}`, which no test runs; update the snapshots"),
                    true,
                ));
            }
        }
    }
    Ok(Ok(()))
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
    }
    coverage
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
    let default_clock = Timestamp { seconds: flow_sema::testing::DEFAULT_CLOCK, nanos: 0 };
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
    let (models, results) = match (mocks(&test.models, "model"), mocks(&test.actions, "action")) {
        (Ok(models), Ok(results)) => (models, results),
        (Err(error), _) | (_, Err(error)) => return outcome.failures.push(error),
    };
    for (model, answer) in models {
        runtime.register_model(&model, Arc::new(MockModel(answer)));
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
    let starter =
        Principal { id: "flow-test".to_owned(), roles: body.roles.iter().map(|r| r.name.to_string()).collect() };
    let options = StartOptions { clock: Some(clock), params };
    let mut view = match runtime.start(&analysis, &starter, &given, &options) {
        Ok(view) => view,
        Err(error) => return outcome.failures.push(format!("the run does not start: {error}")),
    };
    for decision in &test.decisions {
        let who = Principal { id: decision.principal.clone(), roles: decision.roles.clone() };
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
    check_expectations(&runtime, test, &args, &view, outcome, hit, at);
}

fn check_expectations(
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
    outcome.path = path_of(&events, view, hit);
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
fn path_of(events: &[Event<Value>], view: &RunView, hit: &mut BTreeSet<String>) -> Vec<String> {
    let mut path = Vec::new();
    for event in events {
        let line = match event {
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

fn human(
    outcomes: &[Outcome],
    coverage: &BTreeMap<(String, String), Coverage>,
    percent: f64,
    min: Option<f64>,
) -> String {
    let mut text = String::new();
    for outcome in outcomes {
        if outcome.failures.is_empty() {
            text.push_str(&format!("ok      {} ({})\n", outcome.name, outcome.flow));
            continue;
        }
        text.push_str(&format!("FAILED  {} ({}) at {}\n", outcome.name, outcome.flow, outcome.at));
        for failure in &outcome.failures {
            text.push_str(&format!("    {failure}\n"));
        }
        text.push_str("    the run:\n");
        for step in &outcome.path {
            text.push_str(&format!("      {step}\n"));
        }
    }
    let failed = outcomes.iter().filter(|o| !o.failures.is_empty()).count();
    text.push_str(&format!("\n{} tests: {} passed, {failed} failed\n", outcomes.len(), outcomes.len() - failed));
    for ((file, flow), cover) in coverage {
        let hit = cover.hit.intersection(&cover.all).count();
        text.push_str(&format!("coverage of flow `{flow}` ({file}): {hit} of {} branches\n", cover.all.len()));
        for missing in cover.all.difference(&cover.hit) {
            text.push_str(&format!("    never: {missing}\n"));
        }
    }
    text.push_str(&format!("coverage: {percent:.1}%"));
    if let Some(min) = min
        && percent + 1e-9 < min
    {
        text.push_str(&format!(", below the minimum of {min}%"));
    }
    text.push('\n');
    text
}

fn to_json(outcomes: &[Outcome], coverage: &BTreeMap<(String, String), Coverage>, percent: f64) -> Json {
    let tests: Vec<Json> = outcomes
        .iter()
        .map(|o| {
            json!({
                "name": o.name, "flow": o.flow, "file": o.file, "at": o.at,
                "passed": o.failures.is_empty(), "failures": o.failures, "path": o.path,
            })
        })
        .collect();
    let flows: Vec<Json> = coverage
        .iter()
        .map(|((file, flow), cover)| {
            json!({
                "flow": flow, "file": file, "branches": cover.all.len(),
                "covered": cover.hit.intersection(&cover.all).count(),
                "never": cover.all.difference(&cover.hit).collect::<Vec<_>>(),
            })
        })
        .collect();
    let failed = outcomes.iter().filter(|o| !o.failures.is_empty()).count();
    json!({
        "tests": tests, "passed": outcomes.len() - failed, "failed": failed,
        "coverage": {"percent": (percent * 10.0).round() / 10.0, "flows": flows},
    })
}

fn junit(outcomes: &[Outcome]) -> String {
    let escape =
        |text: &str| text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let failed = outcomes.iter().filter(|o| !o.failures.is_empty()).count();
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    xml.push_str(&format!("<testsuites name=\"flowc test\" tests=\"{}\" failures=\"{failed}\">\n", outcomes.len()));
    let mut by_flow: BTreeMap<(&str, &str), Vec<&Outcome>> = BTreeMap::new();
    for outcome in outcomes {
        by_flow.entry((&outcome.file, &outcome.flow)).or_default().push(outcome);
    }
    for ((file, flow), tests) in by_flow {
        let failures = tests.iter().filter(|o| !o.failures.is_empty()).count();
        xml.push_str(&format!(
            "  <testsuite name=\"{}\" file=\"{}\" tests=\"{}\" failures=\"{failures}\">\n",
            escape(flow),
            escape(file),
            tests.len()
        ));
        for test in tests {
            xml.push_str(&format!("    <testcase name=\"{}\" classname=\"{}\"", escape(&test.name), escape(flow)));
            if test.failures.is_empty() {
                xml.push_str("/>\n");
                continue;
            }
            xml.push_str(">\n");
            let message = escape(&test.failures[0]);
            let detail = escape(&[test.failures.join("\n"), test.path.join("\n")].join("\n\nthe run:\n"));
            xml.push_str(&format!("      <failure message=\"{message}\">{detail}</failure>\n    </testcase>\n"));
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}
