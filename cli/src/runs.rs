//! The run commands: `run`, `pending`, `decide`, `override`, `cancel`, `resume`, `status`,
//! `show`, `evidence`, and `verify` of evidence bundles.
//!
//! Exit codes: `0` the command did what it was asked (a run that ends `blocked` or `failed`
//! is a result, not an error of the command), `1` a refusal or a request that does not fit
//! (unknown run, step not waiting, input of the wrong type), `2` the store or the
//! deployment cannot be used.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Context, bail};
use flow_ir::VerifiedPlan;
use flow_runtime::store::ShadowRecord;
use flow_runtime::{DecisionInput, Error, Principal, RunView, Runtime, StartOptions};
use serde_json::{Value as Json, json};

use crate::DataFormat;
use crate::cases::{Block, CaseFile};
use crate::deploy::{self, Deployment};
use crate::session::{Session, read_plan};

/// An error of the runtime as an exit: refusals and requests that do not fit are the
/// input's (1), the rest the environment's (2). The message carries the error's code
/// (`flowc explain E3001`); with `--format json` the error is also printed on standard
/// output as `{"error": {"code", "name", "message", "grant"?, "missing"?}}`.
pub(crate) fn fail(error: Error, json: bool) -> anyhow::Result<ExitCode> {
    eprintln!("flowc: error[{}]: {error}", error.code());
    if json {
        crate::print(&format!("{}\n", json!({ "error": error.to_json() })));
    }
    Ok(ExitCode::from(if error.kind().is_request() { 1 } else { 2 }))
}

/// Opens the runtime and resumes runs a crash interrupted.
pub(crate) fn open(deployment: &Deployment) -> anyhow::Result<Runtime> {
    let runtime = deploy::runtime(deployment)?;
    match runtime.resume_interrupted() {
        Ok(resumed) => {
            for run in resumed {
                eprintln!("flowc: resumed run {run}, which was interrupted while it executed");
            }
        }
        Err(error) => eprintln!("flowc: could not resume interrupted runs: {error}"),
    }
    Ok(runtime)
}

/// The plan to run: a plan file, or a `.flow` file compiled now.
pub(crate) fn plan(file: &str, flow: Option<&str>) -> anyhow::Result<Result<VerifiedPlan, ExitCode>> {
    if !file.ends_with(".flow") {
        return Ok(read_plan(file)?.map_err(|reasons| {
            eprintln!("{reasons}");
            ExitCode::from(1)
        }));
    }
    let session = Session::load(&[file.to_owned()])?;
    let diagnostics = session.diagnostics(&flow_lower::Checks::default());
    if diagnostics.iter().any(flow_diagnostics::Diagnostic::is_error) {
        crate::build_plan::report_diagnostics(&session, &diagnostics, crate::Format::Human);
        eprintln!("flowc: `{file}` has errors; nothing was run");
        return Ok(Err(ExitCode::from(1)));
    }
    let (_, lowered) = session.choose(flow, file)?;
    let plan = lowered.plan.as_ref().context("the flow did not compile to a plan")?;
    Ok(Ok(plan.clone()))
}

fn print_view(view: &RunView, format: DataFormat) {
    match format {
        DataFormat::Json => crate::print(&format!("{}\n", view.to_json())),
        DataFormat::Human => {
            let mut text = format!("run {}: {}\n", view.run, view.status.as_str());
            for line in &view.why {
                text.push_str(&format!("  {line}\n"));
            }
            for (name, value) in &view.outputs {
                let marks = view.marks.get(name).map(|m| format!(" [{}]", m.join("; "))).unwrap_or_default();
                text.push_str(&format!("  output {name} = {}{marks}\n", flow_runtime::labels::display(value)));
            }
            crate::print(&text);
        }
    }
}

/// Reads `NAME=FILE.json` inputs.
fn read_inputs(inputs: &[String]) -> anyhow::Result<Result<Vec<(String, Json)>, String>> {
    let mut out = Vec::new();
    for input in inputs {
        let Some((name, path)) = input.split_once('=') else { bail!("`--input {input}` is not NAME=FILE.json") };
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the input file `{path}`"))?;
        match flow_runtime::value::parse_exact(&text) {
            Ok(json) => out.push((name.to_owned(), json)),
            Err(e) => return Ok(Err(format!("input `{name}`: `{path}` is not JSON Flow reads exactly: {e}"))),
        }
    }
    Ok(Ok(out))
}

pub struct RunOptions<'a> {
    pub file: &'a str,
    pub flow: Option<&'a str>,
    pub inputs: &'a [String],
    pub batch: Option<&'a str>,
    pub who: Option<&'a str>,
    pub at: Option<&'a str>,
    pub engine: Option<flow_runtime::Engine>,
    /// A candidate plan to execute as a shadow of every run started.
    pub shadow: Option<&'a str>,
    /// The batch goes through the store's queue (`queue`), and this process leaves it to
    /// the workers (`detach`).
    pub queue: (bool, bool),
    pub format: DataFormat,
}

type Candidate = std::sync::Arc<flow_runtime::analysis::Analysis>;

pub(crate) fn shadow_json(shadow: &ShadowRecord) -> Json {
    json!({
        "candidate": shadow.candidate, "production": shadow.production, "outcome": shadow.outcome,
        "changes": shadow.changes,
    })
}

pub fn run(deployment: &Deployment, options: &RunOptions<'_>) -> anyhow::Result<ExitCode> {
    let plan = match plan(options.file, options.flow)? {
        Ok(plan) => plan,
        Err(code) => return Ok(code),
    };
    let who = deploy::principal(deployment, options.who)?;
    let clock = match options.at {
        None => None,
        Some(text) => match flow_ir::time::parse_timestamp(text) {
            Some((seconds, nanos)) => Some(flow_ir::expr::Timestamp { seconds, nanos }),
            None => bail!("`--at {text}` is not an RFC 3339 instant such as 2026-04-11T13:35:00Z"),
        },
    };
    let mut runtime = open(deployment)?;
    if let Some(engine) = options.engine {
        runtime.set_engine(engine);
    }
    let analysis = runtime.install(plan).map_err(|e| anyhow::anyhow!("{e}"))?;
    let candidate = match options.shadow {
        None => None,
        Some(file) => match crate::runs::plan(file, options.flow)? {
            Ok(plan) if plan.body().flow.name != analysis.body().flow.name => {
                eprintln!(
                    "flowc: the shadow plan `{file}` is of flow `{}`; the runs are of flow `{}`",
                    plan.body().flow.name,
                    analysis.body().flow.name
                );
                return Ok(ExitCode::from(1));
            }
            Ok(plan) => Some(runtime.install(plan).map_err(|e| anyhow::anyhow!("{e}"))?),
            Err(code) => return Ok(code),
        },
    };
    let start = StartOptions { clock, params: Vec::new() };
    if let Some(batch) = options.batch {
        // A store in memory vanishes with the process: a backtest's runs are evaluated
        // (same engine, same checks) without keeping evidence nobody can read.
        let durable = deployment.store() != ":memory:";
        if candidate.is_some() && !durable {
            bail!("`--shadow` compares with stored runs: a batch on `--store :memory:` stores none");
        }
        if options.queue.0 {
            if !durable {
                bail!("`--queue` shares a batch with the other processes of a store: `--store :memory:` has none");
            }
            if candidate.is_some() {
                bail!("`--shadow` does not go through the queue yet: run the batch without `--queue`");
            }
            let (_, detach) = options.queue;
            let queued = flow_runtime::BatchOptions { clock, durable };
            let format = options.format;
            return crate::queue::run_queued(deployment, &runtime, &analysis, &who, (batch, detach), &queued, format);
        }
        return run_batch(&runtime, &analysis, &who, batch, &start, (durable, candidate.as_ref()), options.format);
    }
    let inputs = match read_inputs(options.inputs)? {
        Ok(inputs) => inputs,
        Err(message) => {
            eprintln!("flowc: {message}");
            return Ok(ExitCode::from(1));
        }
    };
    let view = match runtime.start(&analysis, &who, &inputs, &start) {
        Ok(view) => view,
        Err(error) => return fail(error, options.format == DataFormat::Json),
    };
    let Some(candidate) = candidate else {
        print_view(&view, options.format);
        return Ok(ExitCode::SUCCESS);
    };
    let shadow = match runtime.shadow(&view.run, &candidate) {
        Ok(shadow) => shadow,
        Err(error) => {
            print_view(&view, options.format);
            eprintln!("flowc: the shadow of run {} did not run:", view.run);
            return fail(error, options.format == DataFormat::Json);
        }
    };
    match options.format {
        DataFormat::Json => {
            let mut json = view.to_json();
            json["shadow"] = shadow_json(&shadow);
            crate::print(&format!("{json}\n"));
        }
        DataFormat::Human => {
            print_view(&view, options.format);
            crate::print(&format!(
                "shadow of {}: {} (production: {}); {} steps differ; stored for `flowc shadow-report`\n",
                shadow.candidate,
                shadow.outcome,
                shadow.production,
                shadow.changes.as_array().map_or(0, Vec::len)
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What a worker of a batch gave: runs by outcome, and the lines not run (numbered from 0),
/// with why.
#[derive(Default)]
struct Batch {
    runs: u64,
    outcomes: BTreeMap<String, u64>,
    refused: Vec<(usize, String)>,
    /// Shadow runs, and how many reached the production run's outcome.
    shadows: u64,
    agree: u64,
}

impl Batch {
    /// Counts a run that ended with `status`.
    fn count(&mut self, status: flow_runtime::Status) {
        self.runs += 1;
        // The status's text copied only the first time it is counted.
        match self.outcomes.get_mut(status.as_str()) {
            Some(count) => *count += 1,
            None => {
                self.outcomes.insert(status.as_str().to_owned(), 1);
            }
        }
    }

    /// Counts what another worker gave.
    fn add(&mut self, other: Batch) {
        self.runs += other.runs;
        self.shadows += other.shadows;
        self.agree += other.agree;
        for (status, count) in other.outcomes {
            *self.outcomes.entry(status).or_default() += count;
        }
        self.refused.extend(other.refused);
    }

    /// The lines not run, with why, in line order whichever worker ran them.
    fn refused_in_order(&self) -> Vec<String> {
        let mut refused: Vec<&(usize, String)> = self.refused.iter().collect();
        refused.sort_by_key(|(i, _)| *i);
        refused.into_iter().map(|(i, why)| format!("line {}: {why}", i + 1)).collect()
    }
}

/// Why a worker of a batch stopped: an error of the environment (the store), or the case
/// file could not be read.
enum Stopped {
    Runtime(Error),
    Read(std::io::Error),
}

impl From<Error> for Stopped {
    fn from(error: Error) -> Stopped {
        Stopped::Runtime(error)
    }
}

/// Runs cases of `cases`, a block of lines at a time, until the file is read, counting each
/// in `batch`, and in `done` once it has ended; an error of the environment (the store) or
/// of reading stops the worker (what it ran stays counted).
fn run_cases(
    runtime: &Runtime,
    analysis: &std::sync::Arc<flow_runtime::analysis::Analysis>,
    who: &Principal,
    (cases, done, progress): (&CaseFile, &std::sync::atomic::AtomicUsize, &crate::progress::Progress),
    start: &StartOptions,
    durable: (bool, Option<&Candidate>),
    batch: &mut Batch,
) -> Result<(), Stopped> {
    let mut block = Block::default();
    let ended = |n: usize| {
        let done = done.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
        progress.update_read(done, cases.read());
    };
    loop {
        cases.next_block(&mut block).map_err(Stopped::Read)?;
        if block.is_empty() {
            return Ok(());
        }
        if !durable.0 {
            for (i, line) in block.lines() {
                // Decided straight from the line's text where the plan and the line allow
                // it (only its status is counted: no view is made); otherwise read straight
                // into values by the inputs' types where the line allows it; otherwise the
                // general way, which words what is wrong with it.
                if let Some(status) =
                    line.ok().and_then(|line| runtime.decide_case_straight(analysis, who, line, start))
                {
                    batch.count(status);
                    ended(1);
                    continue;
                }
                let read = line.ok().and_then(|line| flow_runtime::read::case_inputs(analysis.body(), line));
                let counted = match read {
                    Some(inputs) => {
                        counted(runtime, i, runtime.evaluate_read(analysis, who, inputs, start), durable.1, batch)
                    }
                    None => match line.map_err(str::to_owned).and_then(case_inputs) {
                        Ok(inputs) => {
                            counted(runtime, i, runtime.evaluate(analysis, who, &inputs, start), durable.1, batch)
                        }
                        Err(why) => {
                            batch.refused.push((i, why));
                            Ok(())
                        }
                    },
                };
                ended(1);
                counted?;
            }
            continue;
        }
        // Stored runs, `GROUP` at a time: their last commits in one transaction, each
        // counted once it is stored.
        let lines: Vec<_> = block.lines().collect();
        for group in lines.chunks(GROUP) {
            let mut cases = Vec::with_capacity(group.len());
            // Each line's reason not to run, in line order.
            let not_run: Vec<Option<String>> = group
                .iter()
                .map(|(_, line)| {
                    line.map_err(str::to_owned).and_then(case_inputs).map(|inputs| cases.push(inputs)).err()
                })
                .collect();
            let mut started = runtime.start_all(analysis, who, &cases, start)?.into_iter();
            for ((i, _), why) in group.iter().zip(not_run) {
                if let Some(why) = why {
                    batch.refused.push((*i, why));
                    continue;
                }
                // `start_all` answers every case it is given, in order.
                let Some(result) = started.next() else { break };
                counted(runtime, *i, result, durable.1, batch)?;
            }
            ended(group.len());
        }
    }
}

/// How many stored runs of a batch each thread commits together.
const GROUP: usize = 64;

/// The inputs of a case's line, or why it is not run.
fn case_inputs(line: &str) -> Result<Vec<(String, Json)>, String> {
    let mut case: Json =
        flow_runtime::value::parse_exact(line).map_err(|e| format!("not JSON Flow reads exactly: {e}"))?;
    let Some(Json::Object(inputs)) = case.get_mut("inputs").map(Json::take) else {
        return Err("expected {\"inputs\": {…}}".to_owned());
    };
    Ok(inputs.into_iter().collect())
}

/// Counts in `batch` what the case on line `i` (from 0) gave, with its shadow run on
/// `candidate`; an error of the environment (the store) is returned.
fn counted(
    runtime: &Runtime,
    i: usize,
    result: Result<RunView, Error>,
    candidate: Option<&Candidate>,
    batch: &mut Batch,
) -> Result<(), Error> {
    match result {
        Ok(view) => {
            batch.count(view.status);
            match candidate.map(|candidate| runtime.shadow(&view.run, candidate)) {
                None => {}
                Some(Ok(shadow)) => {
                    batch.shadows += 1;
                    batch.agree += u64::from(shadow.outcome == shadow.production);
                }
                Some(Err(error)) if !error.kind().is_request() => return Err(error),
                Some(Err(error)) => batch.refused.push((i, format!("the shadow did not run: {error}"))),
            }
        }
        Err(error) if !error.kind().is_request() => return Err(error),
        Err(error) => batch.refused.push((i, error.to_string())),
    }
    Ok(())
}

fn run_batch(
    runtime: &Runtime,
    analysis: &std::sync::Arc<flow_runtime::analysis::Analysis>,
    who: &Principal,
    path: &str,
    start: &StartOptions,
    durable: (bool, Option<&Candidate>),
    format: DataFormat,
) -> anyhow::Result<ExitCode> {
    let cases = CaseFile::open(path).with_context(|| format!("cannot read `{path}`"))?;
    let started = std::time::Instant::now();
    // Cases are independent: they run on every core, each worker taking the next block of
    // lines when it is done with its last.
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    let (done, progress) = (std::sync::atomic::AtomicUsize::new(0), crate::progress::Progress::new("cases"));
    let (cases, done, progress) = (&cases, &done, &progress);
    let results: Vec<std::thread::Result<(Batch, Result<(), Stopped>)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(move || {
                    // A worker that stops, on an error or a panic, stops the batch: the
                    // others finish the lines they hold and take no more.
                    let _stops = StopOnPanic(cases);
                    let mut batch = Batch::default();
                    let ran = run_cases(runtime, analysis, who, (cases, done, progress), start, durable, &mut batch);
                    if ran.is_err() {
                        cases.stop();
                    }
                    (batch, ran)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join()).collect()
    });
    progress.finish();
    let mut batch = Batch::default();
    let mut unread = None;
    for result in results {
        let Ok((worker, stopped)) = result else { bail!("a batch worker panicked") };
        batch.add(worker);
        match stopped {
            Ok(()) => {}
            Err(Stopped::Runtime(error)) => return fail(error, format == DataFormat::Json),
            Err(Stopped::Read(error)) => unread = Some(error),
        }
    }
    let Batch { runs, outcomes, shadows, agree, .. } = &batch;
    let (runs, shadows, agree) = (*runs, *shadows, *agree);
    let refused = batch.refused_in_order();
    let engine = analysis.engine_label(runtime.engine());
    let summary = BatchSummary {
        runs,
        outcomes,
        refused: &refused,
        seconds: started.elapsed().as_secs_f64(),
        engine: &engine,
        shadows: durable.1.map(|candidate| (&**candidate.hash(), shadows, agree)),
        batch: None,
    };
    print_batch(&summary, format);
    if let Some(error) = unread {
        // What ran is counted above: every line before the one that could not be read.
        bail!("cannot read `{path}` to its end ({error}): the cases before it ran, as counted");
    }
    Ok(if refused.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Stops a batch's case file when its worker panics: the other workers take no more lines.
struct StopOnPanic<'a>(&'a CaseFile);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.stop();
        }
    }
}

/// What a batch gave, as `run --batch` prints it.
pub(crate) struct BatchSummary<'a> {
    pub runs: u64,
    pub outcomes: &'a BTreeMap<String, u64>,
    /// The lines not run, with why.
    pub refused: &'a [String],
    pub seconds: f64,
    pub engine: &'a str,
    /// The candidate's hash, its shadow runs, and how many reached the production outcome.
    pub shadows: Option<(&'a str, u64, u64)>,
    /// The batch's id in the store's queue, when it went through it.
    pub batch: Option<&'a str>,
}

pub(crate) fn print_batch(summary: &BatchSummary<'_>, format: DataFormat) {
    let BatchSummary { runs, outcomes, refused, seconds, engine, shadows, batch } = *summary;
    match format {
        DataFormat::Json => {
            let mut json =
                json!({"runs": runs, "outcomes": outcomes, "refused": refused, "seconds": seconds, "engine": engine});
            if let Some((_, runs, agree)) = shadows {
                json["shadows"] = json!({"runs": runs, "agree": agree});
            }
            if let Some(batch) = batch {
                json["batch"] = json!(batch);
            }
            crate::print(&format!("{json}\n"));
        }
        DataFormat::Human => {
            let rate = if seconds > 0.0 { runs as f64 / seconds } else { 0.0 };
            let mut text = format!("{runs} runs in {seconds:.2}s ({rate:.0} runs/s, engine {engine})\n");
            if let Some(batch) = batch {
                text = format!("batch {batch}: {text}");
            }
            for (status, count) in outcomes {
                text.push_str(&format!("  {status}: {count}\n"));
            }
            if let Some((candidate, runs, agree)) = shadows {
                text.push_str(&format!("  shadows of {candidate}: {runs}, {agree} with the production outcome\n"));
            }
            for line in refused {
                text.push_str(&format!("  not run: {line}\n"));
            }
            crate::print(&text);
        }
    }
}

pub fn pending(deployment: &Deployment, who: Option<&str>, format: DataFormat) -> anyhow::Result<ExitCode> {
    let principal = who.map(|id| deploy::principal(deployment, Some(id))).transpose()?;
    let runtime = open(deployment)?;
    let waiting = match runtime.pending(principal.as_ref()) {
        Ok(waiting) => waiting,
        Err(error) => return fail(error, format == DataFormat::Json),
    };
    match format {
        DataFormat::Json => {
            let items: Vec<Json> = waiting
                .iter()
                .map(|w| {
                    let mut item =
                        json!({"run": w.run, "flow": w.flow, "step": w.step, "kind": w.kind, "roles": w.roles});
                    // A step with deadlines: when its next reminder or deadline falls.
                    if let Some(due) = w.due {
                        item["next_timer"] = json!(flow_ir::expr::Timestamp { seconds: due, nanos: 0 }.to_string());
                    }
                    item
                })
                .collect();
            crate::print(&format!("{}\n", json!({ "pending": items })));
        }
        DataFormat::Human if waiting.is_empty() => crate::print("nothing is waiting for a decision\n"),
        DataFormat::Human => {
            let mut text = String::new();
            for w in &waiting {
                let timer = w
                    .due
                    .map(|s| format!("; next timer {}", flow_ir::expr::Timestamp { seconds: s, nanos: 0 }))
                    .unwrap_or_default();
                text.push_str(&format!(
                    "{} ({}): {} `{}`, may be decided by {}{timer}\n",
                    w.run,
                    w.flow,
                    w.kind,
                    w.step,
                    w.roles.join(", ")
                ));
            }
            crate::print(&text);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `flowc tick`: fires the timers due now, in every run of the store.
pub fn tick(deployment: &Deployment, format: DataFormat) -> anyhow::Result<ExitCode> {
    let runtime = open(deployment)?;
    let tick = match runtime.tick(runtime.now()) {
        Ok(tick) => tick,
        Err(error) => return fail(error, format == DataFormat::Json),
    };
    match format {
        DataFormat::Json => {
            let runs: Vec<Json> = tick.fired.iter().map(|(run, n)| json!({"run": run, "fired": n})).collect();
            let failed: Vec<Json> = tick.failed.iter().map(|(run, why)| json!({"run": run, "error": why})).collect();
            let mut out = json!({ "runs": runs });
            if !failed.is_empty() {
                out["failed"] = json!(failed);
            }
            crate::print(&format!("{out}\n"));
        }
        DataFormat::Human => {
            let mut text: String = tick.fired.iter().map(|(run, n)| format!("{run}: {n} timer(s) fired\n")).collect();
            for (run, why) in &tick.failed {
                text.push_str(&format!("{run}: its timers could not fire: {why}\n"));
            }
            if text.is_empty() {
                text.push_str("no timer is due\n");
            }
            crate::print(&text);
        }
    }
    // A run whose timers could not fire is a failure of the command, after the others fired.
    Ok(if tick.failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

pub struct Decide<'a> {
    pub run: &'a str,
    pub step: &'a str,
    pub who: Option<&'a str>,
    pub outcome: &'a str,
    pub reason: Option<&'a str>,
    pub basis: Option<&'a str>,
    pub edits: &'a [String],
    pub format: DataFormat,
}

pub fn decide(deployment: &Deployment, d: &Decide<'_>) -> anyhow::Result<ExitCode> {
    let mut edits = Vec::new();
    for edit in d.edits {
        let Some((field, value)) = edit.split_once('=') else { bail!("`--edit {edit}` is not FIELD=VALUE") };
        edits.push((field.to_owned(), value.to_owned()));
    }
    let input = DecisionInput {
        outcome: d.outcome.to_owned(),
        reason: d.reason.map(str::to_owned),
        basis: d.basis.map(str::to_owned),
        edits,
    };
    changed(deployment, d.who, d.format, |runtime, who| runtime.decide(d.run, d.step, who, &input))
}

pub fn override_gate(
    deployment: &Deployment,
    run: &str,
    gate: &str,
    who: Option<&str>,
    reason: &str,
    basis: &str,
    format: DataFormat,
) -> anyhow::Result<ExitCode> {
    changed(deployment, who, format, |runtime, who| runtime.override_gate(run, gate, who, reason, Some(basis)))
}

pub fn cancel(
    deployment: &Deployment,
    run: &str,
    who: Option<&str>,
    reason: &str,
    basis: &str,
    format: DataFormat,
) -> anyhow::Result<ExitCode> {
    changed(deployment, who, format, |runtime, who| runtime.cancel(run, who, reason, Some(basis)))
}

pub fn resume(
    deployment: &Deployment,
    run: &str,
    who: Option<&str>,
    reason: &str,
    format: DataFormat,
) -> anyhow::Result<ExitCode> {
    changed(deployment, who, format, |runtime, who| runtime.resume_failed(run, who, reason))
}

/// A command that changes a run: `change` made as `who`, then how the run stands after it,
/// or why it failed.
fn changed(
    deployment: &Deployment,
    who: Option<&str>,
    format: DataFormat,
    change: impl FnOnce(&Runtime, &Principal) -> flow_runtime::Result<RunView>,
) -> anyhow::Result<ExitCode> {
    let who = deploy::principal(deployment, who)?;
    let runtime = open(deployment)?;
    match change(&runtime, &who) {
        Ok(view) => {
            print_view(&view, format);
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => fail(error, format == DataFormat::Json),
    }
}

pub fn status(deployment: &Deployment, run: &str, format: DataFormat) -> anyhow::Result<ExitCode> {
    let runtime = open(deployment)?;
    match runtime.status(run, None) {
        Ok(mut view) => {
            // The status shows how the run stands, not its values.
            view.outputs.clear();
            print_view(&view, format);
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => fail(error, format == DataFormat::Json),
    }
}

pub fn show(deployment: &Deployment, run: &str, who: Option<&str>) -> anyhow::Result<ExitCode> {
    let who = who.map(|id| deploy::principal(deployment, Some(id))).transpose()?;
    let runtime = open(deployment)?;
    match runtime.show(run, who.as_ref()) {
        Ok(text) => {
            crate::print(&text);
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => fail(error, false),
    }
}

pub fn evidence(
    deployment: &Deployment,
    run: &str,
    who: Option<&str>,
    output: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let who = deploy::principal(deployment, who)?;
    let runtime = open(deployment)?;
    let bundle = match runtime.evidence(run, &who) {
        Ok(bundle) => bundle,
        Err(error) => return fail(error, false),
    };
    let text = flow_runtime::evidence::render(&bundle);
    match output {
        None | Some("-") => crate::print(&text),
        Some(path) => {
            crate::build_plan::write_atomically(path, &text)?;
            eprintln!("wrote the evidence of run {run} to {path}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `verify` of a bundle (a plan file goes to `verify::run`).
pub fn verify_bundle(
    path: &str,
    bytes: &[u8],
    required: &flow_runtime::evidence::Requirements,
    format: DataFormat,
) -> ExitCode {
    let verified = flow_runtime::evidence::verify_with(bytes, required).map(|verified| {
        let human = format!(
            "verified evidence of run {}: {} events, chain intact, events as the plan allows, plan {} verified{}{}{}\nhead \
             {}\n{}",
            verified.run,
            verified.events,
            verified.plan_hash,
            verified.migrated.iter().map(|plan| format!(", migrated to plan {plan} (verified)")).collect::<String>(),
            verified.signed_by.as_ref().map(|k| format!(", signed by ed25519 key {k}")).unwrap_or_default(),
            if verified.redacted > 0 { format!(", {} values redacted", verified.redacted) } else { String::new() },
            verified.head,
            match &verified.logged {
                Some((index, checkpoint)) => format!(
                    "logged as entry {index} of the store's log at checkpoint size {}, root {}\n",
                    checkpoint.size, checkpoint.root
                ),
                None => String::new(),
            }
        );
        (verified.to_json(), human)
    });
    report_verification(path, format, verified, "the evidence bundle")
}

/// What `flowc verify` found: the verification (as JSON, with `file`, and for people), or
/// each problem on standard error and exit `1`.
pub(crate) fn report_verification(
    path: &str,
    format: DataFormat,
    verified: Result<(Json, String), Vec<String>>,
    what: &str,
) -> ExitCode {
    match verified {
        Ok((fields, human)) => {
            match format {
                DataFormat::Json => {
                    let mut json = json!({ "file": path });
                    if let (Some(out), Json::Object(fields)) = (json.as_object_mut(), fields) {
                        out.extend(fields);
                    }
                    crate::print(&format!("{json}\n"));
                }
                DataFormat::Human => crate::print(&human),
            }
            ExitCode::SUCCESS
        }
        Err(problems) => {
            if format == DataFormat::Json {
                crate::print(&format!("{}\n", json!({"file": path, "verified": false, "problems": problems})));
            }
            for problem in &problems {
                eprintln!("{path}: {problem}");
            }
            eprintln!("{what} `{path}` does not verify");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Batch;

    /// Workers take blocks of lines in whatever order they come to them: the batch counts
    /// them all and lists the lines not run in line order.
    #[test]
    fn a_batch_adds_its_workers_and_lists_lines_in_order() {
        let worker = |runs: u64, refused: &[usize]| Batch {
            runs,
            outcomes: [("completed".to_owned(), runs)].into(),
            refused: refused.iter().map(|i| (*i, format!("why {i}"))).collect(),
            shadows: runs,
            agree: 1,
        };
        let mut batch = Batch::default();
        batch.add(worker(2, &[3, 689]));
        batch.add(worker(5, &[299, 1000]));
        assert_eq!((batch.runs, batch.outcomes["completed"], batch.shadows, batch.agree), (7, 7, 7, 2));
        assert_eq!(
            batch.refused_in_order(),
            ["line 4: why 3", "line 300: why 299", "line 690: why 689", "line 1001: why 1000"]
        );
    }
}
