//! The data-driven corpus: one `.flow` file per case, with an insta snapshot beside it.
//!
//! - `parse/ok`: parses without diagnostics; the snapshot is the syntax tree.
//! - `parse/err`: has syntax diagnostics; the snapshot is the rendered diagnostics.
//! - `check/ok`: checks without any diagnostic; the snapshot is the typed summary.
//! - `check/err`: has diagnostics; the snapshot is the rendered diagnostics.
//! - `lower/ok`: compiles to plans; the snapshot is each plan as text (nodes in execution
//!   order, with their edges).
//! - `verify/err`: a flow that compiles, and directives that damage its plan as a forger or
//!   a bad copy would; the snapshot is the verifier's refusal, or for a plan that verifies
//!   as a graph, where loading finds labelled data going where it may not. Directives, one per line at
//!   the top: `//@ patch: {JSON Patch operation}` (paths may select `[name=x]` or the edge
//!   `[a->b]`; `//@ sort-edges` puts the edges back in canonical order; the hash is
//!   recomputed afterwards unless `//@ keep-hash` is given),
//!   `//@ replace: OLD => NEW` (on the plan file's text, after sealing), `//@ append: TEXT`
//!   and `//@ truncate: N` (the file's first N bytes).
//!
//! - `fmt`: the snapshot is the text as `flowc fmt` formats it, or the syntax diagnostics
//!   for which it refuses to. Formatting the result again changes nothing.
//!
//! - `run`: a flow and a script of steps (`//@` lines at the top: principals, models and
//!   systems, then starts, decisions, overrides, status, show, evidence, replay, the events
//!   of a run, the calls made to models and systems, the steps waiting and the refusals
//!   recorded); the snapshot is the transcript of the runs through the runtime, a
//!   deployment's with every grant enforced (`run_case`).
//!
//! Run one group with `cargo test -p flow-tests --test corpus -- check_case::err/`.

use std::path::Path;

use flow_diagnostics::{FileId, Sources};

fn snapshot(path: &Path, sections: &[(&str, &str)]) {
    let mut text = String::new();
    for (title, body) in sections {
        text.push_str(&format!("----- {title}\n{}\n", body.trim_end()));
    }
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(path.parent().unwrap_or(Path::new(".")).canonicalize().unwrap_or_default());
    settings.set_prepend_module_to_snapshot(false);
    settings.set_input_file(path);
    settings.set_omit_expression(true);
    let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("case").to_owned();
    settings.bind(|| insta::assert_snapshot!(name, text));
}

fn case_name(path: &Path) -> String {
    path.file_name().and_then(|n| n.to_str()).unwrap_or("case.flow").to_owned()
}

fn parse_case(path: &Path, text: String) -> datatest_stable::Result<()> {
    let parse = flow_syntax::parse(&text, FileId(0));
    let mut sources = Sources::default();
    sources.add(FileId(0), case_name(path), text.clone());
    let rendered = flow_diagnostics::render(&parse.diagnostics, &sources, false);
    let expect_ok = path.components().any(|c| c.as_os_str() == "ok");
    if expect_ok {
        if !parse.diagnostics.is_empty() {
            return Err(format!("expected no syntax errors:\n{rendered}").into());
        }
        // The grammar's whole-language rule accepts what the driver accepts.
        use flow_grammar::Parser;
        if let Err(error) = flow_grammar::FlowParser::parse(flow_grammar::Rule::file, &text) {
            return Err(format!("the `file` rule rejects a text the driver accepts:\n{error}").into());
        }
        snapshot(path, &[("SOURCE", &text), ("AST", &format!("{:#?}", parse.file))]);
    } else {
        if parse.diagnostics.is_empty() {
            return Err("expected syntax errors, found none".into());
        }
        snapshot(path, &[("SOURCE", &text), ("DIAGNOSTICS", &rendered)]);
    }
    Ok(())
}

fn check_case(path: &Path, bytes: Vec<u8>) -> datatest_stable::Result<()> {
    // Cases are bytes: one of them is deliberately not UTF-8.
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let checked = flow_tests::check_fixture(&case_name(path), &bytes);
    let rendered = checked.render();
    let expect_ok = path.components().any(|c| c.as_os_str() == "ok");
    // A case about deadlines shows `W2003`; the others were written before deadlines.
    let about_deadlines = case_name(path).contains("deadline");
    let rendered = if about_deadlines { rendered } else { checked.render_without_deadlines() };
    let clean = if about_deadlines { checked.diagnostics.is_empty() } else { checked.clean() };
    if expect_ok {
        if !clean {
            return Err(format!("expected no diagnostics:\n{rendered}").into());
        }
        use flow_grammar::Parser;
        for (path, contents) in flow_tests::fixture_files(&case_name(path), &text) {
            if path.ends_with(".flow") && flow_grammar::FlowParser::parse(flow_grammar::Rule::file, &contents).is_err()
            {
                return Err(format!("the `file` rule rejects `{path}`, which checks clean").into());
            }
        }
        snapshot(path, &[("SOURCE", &text), ("CHECKED", &flow_tests::dump(&checked))]);
    } else {
        if clean {
            return Err("expected diagnostics, found none".into());
        }
        snapshot(path, &[("SOURCE", &text), ("DIAGNOSTICS", &rendered)]);
    }
    Ok(())
}

fn lower_case(path: &Path, bytes: Vec<u8>) -> datatest_stable::Result<()> {
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let checked = flow_tests::check_fixture(&case_name(path), &bytes);
    if !checked.clean() {
        return Err(format!("expected no diagnostics:\n{}", checked.render()).into());
    }
    let mut dumps = Vec::new();
    for plan in flow_tests::plans(&checked) {
        let verified = plan.ok_or("a flow did not compile to a plan")?;
        // The plan reads back from its file as the same plan.
        let text = flow_ir::encode::to_json(verified.plan());
        let loaded = flow_ir::load(text.as_bytes()).map_err(|e| format!("the plan file does not load: {e}"))?;
        if loaded != verified {
            return Err("the plan file reads back as another plan".into());
        }
        dumps.push(flow_ir::print::dump(&verified));
    }
    if dumps.is_empty() {
        return Err("the case declares no flow".into());
    }
    snapshot(path, &[("SOURCE", &text), ("PLAN", &dumps.join("\n"))]);
    Ok(())
}

/// The plan file of a case's flow, damaged as its directives say.
fn damaged_plan(path: &Path, text: &str) -> Result<(Vec<u8>, Vec<String>), String> {
    let checked = flow_tests::check_fixture(&case_name(path), text.as_bytes());
    if checked.diagnostics.iter().any(flow_diagnostics::Diagnostic::is_error) {
        return Err(format!("the case's flow must compile:\n{}", checked.render()));
    }
    let plan = flow_tests::plans(&checked).into_iter().flatten().next().ok_or("the case's flow has no plan")?;
    let mut value = serde_json::to_value(plan.plan()).map_err(|e| e.to_string())?;
    let directives: Vec<&str> = text.lines().map_while(|l| l.strip_prefix("//@ ")).collect();
    let mut applied = Vec::new();
    for directive in &directives {
        if let Some(patch) = directive.strip_prefix("patch: ") {
            let patch: serde_json::Value = serde_json::from_str(patch).map_err(|e| format!("{directive}: {e}"))?;
            flow_tests::apply_patch(&mut value, &patch)?;
            applied.push((*directive).to_owned());
        }
    }
    if directives.contains(&"sort-edges")
        && let Ok(mut plan) = serde_json::from_value::<flow_ir::Plan>(value.clone())
    {
        plan.plan.edges.sort();
        value = serde_json::to_value(&plan).map_err(|e| e.to_string())?;
    }
    if !directives.contains(&"keep-hash") {
        flow_tests::rehash(&mut value);
    }
    let plan: Result<flow_ir::Plan, _> = serde_json::from_value(value.clone());
    let mut file = match plan {
        Ok(plan) => flow_ir::encode::to_json(&plan),
        Err(_) => serde_json::to_string_pretty(&value).map_err(|e| e.to_string())?,
    };
    for directive in &directives {
        if let Some(replace) = directive.strip_prefix("replace: ") {
            let (old, new) = replace.split_once(" => ").ok_or("write `//@ replace: OLD => NEW`")?;
            if !file.contains(old) {
                return Err(format!("{directive}: the plan does not contain `{old}`"));
            }
            file = file.replacen(old, new, 1);
        }
    }
    for directive in &directives {
        if let Some(more) = directive.strip_prefix("append: ") {
            file.push_str(more);
        }
    }
    let mut bytes = file.into_bytes();
    for directive in &directives {
        if let Some(count) = directive.strip_prefix("truncate: ") {
            bytes.truncate(count.trim().parse::<usize>().map_err(|e| format!("{directive}: {e}"))?);
        }
    }
    applied.extend(directives.iter().filter(|d| !d.starts_with("patch: ")).map(|d| (*d).to_owned()));
    Ok((bytes, applied))
}

fn verify_case(path: &Path, bytes: Vec<u8>) -> datatest_stable::Result<()> {
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (plan, applied) = damaged_plan(path, &text)?;
    // What the verifier refuses, or else what loading refuses: the runtime's own proof of
    // information flow.
    let refusal = match flow_ir::load(&plan) {
        Ok(verified) => {
            let leaks = flow_runtime::analysis::Analysis::new(verified).leaks();
            if leaks.is_empty() {
                return Err("the damaged plan was accepted".into());
            }
            leaks.join("\n")
        }
        Err(errors) => errors.to_string(),
    };
    snapshot(path, &[("SOURCE", &text), ("DAMAGE", &applied.join("\n")), ("REFUSAL", &refusal)]);
    Ok(())
}

fn fmt_case(path: &Path, text: String) -> datatest_stable::Result<()> {
    use flow_syntax::format::{FormatError, format};
    match format(&text, FileId(0)) {
        Ok(formatted) => {
            match format(&formatted, FileId(0)) {
                Ok(again) if again == formatted => {}
                Ok(again) => return Err(format!("formatting is not idempotent; again:\n{again}").into()),
                Err(error) => return Err(format!("the formatted text does not format: {error:?}").into()),
            }
            snapshot(path, &[("SOURCE", &text), ("FORMATTED", &formatted)]);
        }
        Err(FormatError::Syntax(diagnostics)) => {
            let mut sources = Sources::default();
            sources.add(FileId(0), case_name(path), text.clone());
            let rendered = flow_diagnostics::render(&diagnostics, &sources, false);
            snapshot(path, &[("SOURCE", &text), ("NOT FORMATTED", &rendered)]);
        }
        Err(FormatError::Internal(why)) => return Err(format!("the formatter failed its own check: {why}").into()),
    }
    Ok(())
}

/// Every call the models and systems of a run case were asked, in order: `model NAME` or
/// `action SYSTEM.ACTION`.
type Calls = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

fn note(calls: &Calls, call: String) {
    calls.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(call);
}

/// A model of a run case: it answers what the case says, or fails.
struct CaseModel(Option<serde_json::Value>, Calls);

impl flow_runtime::provider::ModelProvider for CaseModel {
    fn describe(&self) -> String {
        "the case's answer".to_owned()
    }

    fn infer(
        &self,
        request: &flow_runtime::provider::ModelRequest<'_>,
    ) -> Result<flow_runtime::provider::ModelReply, flow_runtime::provider::ProviderError> {
        note(&self.1, format!("model {}", request.model.name));
        match &self.0 {
            Some(output) => Ok(flow_runtime::provider::ModelReply { output: output.clone(), attempts: 1 }),
            None => Err(flow_runtime::provider::ProviderError { message: "the model fails".to_owned(), attempts: 1 }),
        }
    }
}

/// A corpus of a run case: every search answers what the case says (a retriever's answer:
/// `{"snapshot", "as_of"?, "documents"}`), or fails.
struct CaseCorpus(Option<serde_json::Value>, Calls);

impl flow_runtime::retrieval::Retriever for CaseCorpus {
    fn describe(&self) -> String {
        "the case's corpus".to_owned()
    }

    fn retrieve(
        &self,
        request: &flow_runtime::retrieval::RetrievalRequest<'_>,
    ) -> Result<flow_runtime::retrieval::RetrievalReply, flow_runtime::provider::ProviderError> {
        note(&self.1, format!("corpus {} for \"{}\"", request.corpus.name, request.query));
        let fail = |message: String| flow_runtime::provider::ProviderError { message, attempts: 1 };
        match &self.0 {
            Some(answer) => flow_runtime::retrieval::RetrievalReply::from_json(answer).map_err(fail),
            None => Err(fail("the retriever fails".to_owned())),
        }
    }
}

/// A system of a run case: every action returns what the case says, or fails.
struct CaseSystem(Option<serde_json::Value>, Calls);

impl flow_runtime::provider::ActionHandler for CaseSystem {
    fn describe(&self) -> String {
        "the case's system".to_owned()
    }

    fn call(&self, request: &flow_runtime::provider::ActionRequest<'_>) -> Result<serde_json::Value, String> {
        note(&self.1, format!("action {}.{}", request.system, request.action));
        self.0.clone().ok_or_else(|| "the system fails".to_owned())
    }
}

/// What a run's events say happened, one word per event and its step: `gate:large`,
/// `model_called:score`, `emitted:out`, …
fn event_path(runtime: &flow_runtime::Runtime, run: &str) -> Result<String, flow_runtime::Error> {
    let (events, ..) = runtime.inspect(run, &[], &[])?;
    let words: Vec<String> = events
        .iter()
        .map(|event| {
            let json: Result<flow_runtime::event::Event<serde_json::Value>, ()> =
                event.clone().map_values(&mut |_, v: flow_runtime::value::Value| Ok(v.to_json()));
            let json = json.ok().and_then(|e| serde_json::to_value(e).ok()).unwrap_or_default();
            let kind = json["event"].as_str().unwrap_or("?").to_owned();
            match (event, event.node()) {
                (flow_runtime::event::Event::Started(started), _) if started.clock_chosen => {
                    format!("{kind} (clock chosen)")
                }
                (flow_runtime::event::Event::Refused { operation, principal, .. }, _) => {
                    format!("{kind} ({operation} by {principal})")
                }
                (_, Some(node)) => format!("{kind}:{node}"),
                (_, None) => kind,
            }
        })
        .collect();
    Ok(format!("events: {}\n", words.join(", ")))
}

/// What may differ between two runs of one case, replaced by a placeholder: run ids,
/// digests and hashes (they cover commit times), latencies, and the host.
fn scrubbed(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let hex_run = |s: &str, n: usize| s.len() >= n && s.as_bytes()[..n].iter().all(u8::is_ascii_hexdigit);
        if let Some(after) = rest.strip_prefix("r-")
            && hex_run(after, 16)
        {
            // 24 digits for a run's own id, 16 for one drawn from a key or a batch's case.
            let digits = if hex_run(after, 24) { 24 } else { 16 };
            out.push_str("RUN");
            rest = &after[digits..];
        } else if let Some(after) = rest.strip_prefix("blake3:")
            && hex_run(after, 64)
        {
            out.push_str("blake3:…");
            rest = &after[64..];
        } else if c.is_ascii_digit() && out.chars().last().is_none_or(|p| !p.is_ascii_alphanumeric()) {
            let digits = rest.chars().take_while(char::is_ascii_digit).count();
            if rest[digits..].starts_with(" ms") {
                out.push('_');
            } else {
                out.push_str(&rest[..digits]);
            }
            rest = &rest[digits..];
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out.lines()
        .map(|line| {
            if let Some((_, after)) = line.strip_prefix("Ran on ").and_then(|l| l.split_once("), ")) {
                return format!("Ran on HOST, {after}");
            }
            // A refusal is listed at the time it was recorded.
            match line.strip_prefix("  ").and_then(|l| l.split_once(' ')) {
                Some((at, rest)) if at.len() > 20 && at.ends_with('Z') && at.as_bytes()[4] == b'-' => {
                    format!("  TIME {rest}")
                }
                _ => line.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A run as the transcript shows it after a step.
fn view_lines(view: &flow_runtime::RunView) -> String {
    let mut text = if view.summary.starts_with(view.status.as_str()) {
        format!("{}\n", view.summary)
    } else {
        format!("{} — {}\n", view.status.as_str(), view.summary)
    };
    for why in &view.why {
        text.push_str(&format!("  why: {why}\n"));
    }
    for (name, value) in &view.outputs {
        text.push_str(&format!("  output {name} = {value}\n"));
    }
    for (name, marks) in &view.marks {
        text.push_str(&format!("  output {name}: {}\n", marks.join(", ")));
    }
    text
}

/// A run case: a flow and a script of steps in `//@` lines at its top, run through the
/// runtime (in memory, with the case's principals, models and systems); the snapshot is the
/// transcript: each step and what it gave — the run as it stands, or the error with its
/// code. Steps:
///
/// - `principals: ana = requester; max = manager, approver`
/// - `model NAME: JSON` or `model NAME: fails`; `system NAME: JSON` or `system NAME: fails`
/// - `start as ID at TIMESTAMP: {"INPUT": JSON, …}` (without `at`, the current time: then
///   the run's page and evidence, which show it, do not belong in the transcript);
///   `evaluate as ID at TIMESTAMP: {…}` runs it in memory only, as a backtest does
/// - `decide STEP as ID: OUTCOME; because REASON; basis TEXT; edit PATH = VALUE` (clauses
///   after the outcome optional)
/// - `override GATE as ID: because REASON; basis TEXT`
/// - `status as ID`, `show as ID`, `evidence as ID`, `replay as ID`; `events` (what the
///   run's events say happened); each of these may name another run than the last one
///   started: `status of run 1 as ID` (the first run started), `status of r-… as ID`
/// - `calls` (every call to a model or system so far), `waiting` (every step of any run
///   that waits for someone), `refusals` (every refusal the store recorded)
fn run_case(path: &Path, text: String) -> datatest_stable::Result<()> {
    let store = flow_runtime::store::SqliteStore::open(Path::new(":memory:")).map_err(|e| e.to_string())?;
    let transcript = run_transcript(path, &text, Box::new(store))?;
    // The same script on PostgreSQL gives the same transcript.
    if let Some(database) = flow_tests::postgres::database("run") {
        let store = flow_runtime::store::PostgresStore::open(&database).map_err(|e| e.to_string())?;
        let on_postgres = run_transcript(path, &text, Box::new(store))?;
        if on_postgres != transcript {
            return Err(format!("on PostgreSQL the transcript differs:\n{on_postgres}").into());
        }
    }
    snapshot(path, &[("SOURCE", &text), ("TRANSCRIPT", &transcript)]);
    Ok(())
}

/// The transcript of a run case's script, on `store`.
fn run_transcript(
    path: &Path,
    text: &str,
    store: Box<dyn flow_runtime::store::Store>,
) -> datatest_stable::Result<String> {
    use std::sync::Arc;

    use flow_runtime::{DecisionInput, Principal, Runtime, StartOptions};

    let checked = flow_tests::check_fixture(&case_name(path), text.as_bytes());
    if !checked.clean() {
        return Err(format!("the flow does not check:\n{}", checked.render()).into());
    }
    let plan = flow_tests::plans(&checked).into_iter().flatten().next().ok_or("the case has no plan")?;
    // A deployment's runtime, not a test's: every grant is enforced (a case that chooses
    // its runs' clock, so that the transcript is the same at every run, grants `set clock`).
    let mut runtime = Runtime::new(store);
    let mut principals: Vec<Principal> = Vec::new();
    let calls = Calls::default();
    let steps: Vec<&str> = text.lines().map_while(|l| l.strip_prefix("//@ ")).collect();
    for step in &steps {
        if let Some(list) = step.strip_prefix("principals: ") {
            for entry in list.split(';') {
                let (id, roles) = entry.split_once('=').ok_or("write `principals: id = role, role; …`")?;
                let roles = roles.split(',').map(|r| r.trim().to_owned()).collect();
                principals.push(Principal::new(id.trim().to_owned(), roles));
            }
        } else if let Some(rest) = ["model ", "system ", "corpus "].iter().find_map(|prefix| step.strip_prefix(prefix))
        {
            let (name, answer) = rest.split_once(": ").ok_or("write `model NAME: JSON|fails`")?;
            let answer =
                if answer == "fails" { None } else { Some(serde_json::from_str(answer).map_err(|e| e.to_string())?) };
            if step.starts_with("model ") {
                runtime.register_model(name, Arc::new(CaseModel(answer, calls.clone())));
            } else if step.starts_with("corpus ") {
                runtime.register_retriever(name, Arc::new(CaseCorpus(answer, calls.clone())));
            } else {
                runtime.register_system(name, Arc::new(CaseSystem(answer, calls.clone())));
            }
        }
    }
    runtime.set_directory(flow_runtime::Directory::new(principals.iter().map(|p| p.id.clone())));
    let analysis = runtime.install(plan).map_err(|e| e.to_string())?;
    let who = |id: &str| -> datatest_stable::Result<Principal> {
        principals.iter().find(|p| p.id == id).cloned().ok_or_else(|| format!("no principal `{id}`").into())
    };
    let mut transcript = String::new();
    // The runs started, in order: the transcript names them `RUN1`, `RUN2`, … (their ids
    // are random), and a step may name one so: `status of run 1 as ID`.
    let mut started: Vec<String> = Vec::new();
    for step in steps.iter().filter(|s| !s.starts_with("principals:") && !s.starts_with("model ")) {
        if step.starts_with("system ") || step.starts_with("corpus ") {
            continue;
        }
        transcript.push_str(&format!("> {step}\n"));
        let (head, argument) = step.split_once(": ").unwrap_or((step, ""));
        let words: Vec<&str> = head.split_whitespace().collect();
        let (run, words) = match words.as_slice() {
            [verb @ ("calls" | "waiting" | "refusals"), "of", ..] => {
                return Err(format!("`{step}`: `{verb}` is about every run, not one").into());
            }
            [verb, "of", "run", n, rest @ ..] => {
                let n: usize = n.parse().map_err(|_| format!("`{step}`: `run N` counts the runs started"))?;
                let run = started.get(n.wrapping_sub(1)).ok_or_else(|| format!("`{step}`: no run {n} was started"))?;
                (run.clone(), [&[*verb][..], rest].concat())
            }
            [verb, "of", run, rest @ ..] => (run.to_string(), [&[*verb][..], rest].concat()),
            _ => (started.last().cloned().unwrap_or_default(), words),
        };
        let result: Result<String, flow_runtime::Error> = match words.as_slice() {
            [verb @ ("start" | "evaluate"), "as", id, clock @ ..] => {
                let inputs: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(argument).map_err(|e| e.to_string())?;
                let inputs: Vec<(String, serde_json::Value)> = inputs.into_iter().collect();
                let clock = match clock {
                    [] => None,
                    ["at", at] => {
                        let (seconds, nanos) =
                            flow_ir::time::parse_timestamp(at).ok_or("`at` takes an RFC 3339 instant")?;
                        Some(flow_ir::expr::Timestamp { seconds, nanos })
                    }
                    _ => return Err(format!("`{step}`: write `{verb} as ID at TIMESTAMP: INPUTS`").into()),
                };
                let options = StartOptions { clock, params: Vec::new() };
                if *verb == "evaluate" {
                    runtime.evaluate(&analysis, &who(id)?, &inputs, &options).map(|view| view_lines(&view))
                } else {
                    runtime.start(&analysis, &who(id)?, &inputs, &options).map(|view| {
                        started.push(view.run.clone());
                        view_lines(&view)
                    })
                }
            }
            ["decide", step_name, "as", id] => {
                let mut clauses = argument.split("; ");
                let mut input = DecisionInput {
                    outcome: clauses.next().unwrap_or_default().to_owned(),
                    reason: None,
                    basis: None,
                    edits: Vec::new(),
                };
                for clause in clauses {
                    if let Some(reason) = clause.strip_prefix("because ") {
                        input.reason = Some(reason.to_owned());
                    } else if let Some(basis) = clause.strip_prefix("basis ") {
                        input.basis = Some(basis.to_owned());
                    } else if let Some((field, value)) = clause.strip_prefix("edit ").and_then(|e| e.split_once(" = "))
                    {
                        input.edits.push((field.to_owned(), value.to_owned()));
                    } else {
                        return Err(format!("`{clause}` is not a clause of a decision").into());
                    }
                }
                runtime.decide(&run, step_name, &who(id)?, &input).map(|view| view_lines(&view))
            }
            ["override", gate, "as", id] => {
                let (reason, basis) = argument.split_once("; basis ").unwrap_or((argument, ""));
                let reason = reason.strip_prefix("because ").unwrap_or(reason);
                let basis = (!basis.is_empty()).then_some(basis);
                runtime.override_gate(&run, gate, &who(id)?, reason, basis).map(|view| view_lines(&view))
            }
            ["status", "as", id] => runtime.status(&run, Some(&who(id)?)).map(|view| view_lines(&view)),
            ["show", "as", id] => runtime.show(&run, Some(&who(id)?)),
            ["evidence", "as", id] => runtime.evidence(&run, &who(id)?).map(|bundle| {
                let bytes = flow_runtime::evidence::render(&bundle);
                match flow_runtime::evidence::verify(bytes.as_bytes()) {
                    Ok(verified) => format!("verified: {} events, {} redacted\n", verified.events, verified.redacted),
                    Err(problems) => format!("does not verify: {}\n", problems.join("; ")),
                }
            }),
            ["replay", "as", id] => runtime.replay(&run, &who(id)?).map(|replay| match replay.divergence {
                None => format!("exact: {} events, {}\n", replay.events, replay.status.as_str()),
                Some(divergence) => format!("differs: {divergence:?}\n"),
            }),
            ["events"] => event_path(&runtime, &run),
            ["calls"] => {
                let calls = calls.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                Ok(if calls.is_empty() { "calls: none\n".to_owned() } else { format!("calls: {}\n", calls.join(", ")) })
            }
            ["waiting"] => runtime.pending(None).map(|mut waiting| {
                // In the order the runs were started, not of their (random) ids.
                waiting.sort_by_key(|w| (started.iter().position(|r| *r == w.run), w.step.clone()));
                let steps: Vec<String> =
                    waiting.iter().map(|w| format!("{} {} of {}", w.kind, w.step, w.run)).collect();
                if steps.is_empty() { "waiting: none\n".to_owned() } else { format!("waiting: {}\n", steps.join(", ")) }
            }),
            ["refusals"] => runtime.store().refusals().map_err(flow_runtime::Error::from).map(|refusals| {
                let mut text = format!("refusals: {}\n", refusals.len());
                for refusal in refusals {
                    text.push_str(&format!(
                        "  {} {} ({}): {}\n",
                        refusal.principal, refusal.operation, refusal.grant, refusal.message
                    ));
                }
                text
            }),
            _ => return Err(format!("`{step}` is not a step of a run case").into()),
        };
        match result {
            Ok(shown) => transcript.push_str(&shown),
            Err(error) => transcript.push_str(&format!("error[{}]: {error}\n", error.code())),
        }
    }
    if transcript.is_empty() {
        return Err("the case has no steps".into());
    }
    for (n, run) in started.iter().enumerate() {
        transcript = transcript.replace(run.as_str(), &format!("RUN{}", n + 1));
    }
    Ok(scrubbed(&transcript))
}

datatest_stable::harness! {
    { test = parse_case, root = "corpus/parse", pattern = r"\.flow$" },
    { test = check_case, root = "corpus/check", pattern = r"\.flow$" },
    { test = lower_case, root = "corpus/lower", pattern = r"\.flow$" },
    { test = verify_case, root = "corpus/verify", pattern = r"\.flow$" },
    { test = fmt_case, root = "corpus/fmt", pattern = r"\.flow$" },
    { test = run_case, root = "corpus/run", pattern = r"\.flow$" },
}
