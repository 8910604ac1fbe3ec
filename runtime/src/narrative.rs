//! A run told for a person on one page (`flowc show`): what came in, which rules and gates
//! fired with their values, what the model said, who decided what and why, what went out,
//! what was degraded or overridden. Values are read from (redacted) evidence JSON, so a
//! viewer sees only what their `view` grants allow.

use std::fmt::Write;

use flow_ir::plan::NodeKind;
use serde_json::Value as Json;

use std::collections::BTreeMap;

use crate::analysis::Analysis;
use crate::event::Status;
use crate::labels::display;
use crate::store::StoredEvent;

/// How a run stands, with its explanation.
#[derive(Clone, Debug, PartialEq)]
pub struct RunView {
    pub run: String,
    pub flow: String,
    pub status: Status,
    /// One line on why: the deciding gate, the failure, what the run waits for.
    pub summary: String,
    /// Steps waiting for a decision: name, kind, roles that may decide.
    pub pending: Vec<(String, String, Vec<String>)>,
    /// Outputs emitted, as JSON (labelled fields marked).
    pub outputs: BTreeMap<String, Json>,
    /// What each output carries besides its value: `overridden: g` for a gate overridden
    /// before it, `degraded: x` for a degraded step it depends on.
    pub marks: BTreeMap<String, Vec<String>>,
    /// Why, in full: the deciding gate or matrix row with the operand values, the approvals
    /// still outstanding and who can give them, what failed, was degraded or overridden.
    pub why: Vec<String>,
}

impl RunView {
    /// The view as JSON, as the command line and the HTTP API give it.
    pub fn to_json(&self) -> Json {
        serde_json::json!({
            "run": self.run,
            "flow": self.flow,
            "status": self.status.as_str(),
            "summary": self.summary,
            "pending": self.pending.iter().map(|(step, kind, roles)| serde_json::json!({"step": step, "kind": kind, "roles": roles})).collect::<Vec<_>>(),
            "outputs": self.outputs,
            "marks": self.marks,
            "why": self.why,
        })
    }
}

fn operands(event: &Json) -> String {
    let parts: Vec<String> = event["operands"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| format!("{} = {}", o["name"].as_str().unwrap_or("?"), display(&o["value"])))
        .collect();
    if parts.is_empty() { String::new() } else { format!(" ({})", parts.join(", ")) }
}

fn decision(d: &Json) -> String {
    let roles: Vec<&str> = d["roles"].as_array().into_iter().flatten().filter_map(Json::as_str).collect();
    let mut text = format!(
        "{} ({}): {}",
        d["principal"].as_str().unwrap_or("?"),
        roles.join(", "),
        d["outcome"].as_str().unwrap_or("?")
    );
    if let Some(reason) = d["reason"].as_str() {
        let _ = write!(text, ", reason {reason}");
    }
    if let Some(basis) = d["basis"].as_str() {
        let _ = write!(text, " — \"{basis}\"");
    }
    text
}

/// Why a run stands as it does, one line per reason: the gate that blocks it and the values
/// that decided it, what each waiting step waits for and who can give it, what was
/// rejected, failed, degraded or overridden. Labelled values `views` does not cover are
/// redacted.
pub(crate) fn why(analysis: &Analysis, state: &crate::state::State, views: &[smol_str::SmolStr]) -> Vec<String> {
    use crate::state::Phase;
    let body = analysis.body();
    let scope = (state, analysis);
    let because = |node: &str| -> String {
        let parts: Vec<String> = analysis
            .operands(node)
            .iter()
            .map(|op| {
                let value = match &op.fact {
                    Some(fact) => crate::interp::eval(body, &scope, fact).ok(),
                    None => op.value(crate::interp::Scope::node(&scope, &op.node)).cloned(),
                };
                let shown = match value {
                    _ if op.labels.iter().any(|l| !views.contains(l)) => {
                        format!("[redacted: {}]", op.labels.join(", "))
                    }
                    Some(value) => value.to_string(),
                    None => "not computed".to_owned(),
                };
                format!("{} = {shown}", op.place)
            })
            .collect();
        if parts.is_empty() { String::new() } else { format!(" ({})", parts.join(", ")) }
    };
    let mut out = Vec::new();
    // A cancelled run waits for nothing any more: what it waited for is in its steps.
    if let Some(by) = &state.cancelled {
        out.push(format!("cancelled by {by}"));
        return out;
    }
    if let Some((node, error)) = &state.failure {
        out.push(format!("step `{node}` failed: {error}"));
    }
    if let Some((gate, by)) = &state.rejected {
        out.push(format!("gate `{gate}` was rejected by {by}"));
    }
    for (i, node) in body.nodes.iter().enumerate() {
        let name = &node.name;
        match (&node.kind, state.phases[i]) {
            (NodeKind::Gate { level, message, approvers, .. }, phase @ (Phase::Blocked | Phase::Waiting)) => {
                let message = message.as_ref().map(|m| format!(": {m}")).unwrap_or_default();
                let who = if phase == Phase::Blocked {
                    let roles = analysis.grantees(flow_ir::plan::GrantKind::Override, Some(name));
                    if roles.is_empty() {
                        "no role may override it".to_owned()
                    } else {
                        format!("it may be overridden by {}", roles.join(", "))
                    }
                } else {
                    format!("it waits for approval by {}", approvers.join(", "))
                };
                out.push(format!("gate `{name}` ({}) holds{message}{}; {who}", level.as_str(), because(name)));
            }
            (NodeKind::Review { roles, .. }, Phase::Waiting) => {
                out.push(format!("review `{name}` waits for {}{}", roles.join(", "), because(name)));
            }
            (NodeKind::Approval { .. }, Phase::Waiting) => {
                let Some(wait) = state.approval(i) else { continue };
                let needed: Vec<String> = crate::state::outstanding(body, wait)
                    .into_iter()
                    .map(|(role, n)| format!("{n} of {role}"))
                    .collect();
                let mut line = format!(
                    "approval `{name}`: row {} applies ({}){}; still needed: {}",
                    wait.row,
                    wait.requirement,
                    because(name),
                    needed.join(", ")
                );
                if !wait.approvals.is_empty() {
                    let so_far: Vec<&str> = wait.approvals.iter().map(|(p, _)| p.as_str()).collect();
                    line.push_str(&format!("; approved so far by {}", so_far.join(", ")));
                }
                if !wait.excluded.is_empty() {
                    line.push_str(&format!("; may not approve: {}", wait.excluded.join(", ")));
                }
                out.push(line);
            }
            (NodeKind::Approval { .. }, Phase::Done) => {
                let value = state.values[i].as_ref();
                let field = |f: &str| value.and_then(|v| v.field(f)).map(|v| v.to_string()).unwrap_or_default();
                let approvers = field("approvers");
                let verdict = match (field("approved").as_str(), approvers.as_str()) {
                    ("true", "[]") => "approved automatically".to_owned(),
                    ("true", _) => format!("approved by {}", approvers.trim_matches(['[', ']'])),
                    _ => "not approved: a required approver rejected".to_owned(),
                };
                out.push(format!("approval `{name}` ({}): {verdict}{}", field("requirement"), because(name)));
            }
            (NodeKind::Infer { .. }, Phase::Done) if state.degraded(i) => {
                out.push(format!("`{name}` is degraded: its fallback gave the value"));
            }
            (NodeKind::Retrieve { corpus, .. }, Phase::Done) if state.degraded(i) => {
                out.push(format!(
                    "`{name}` is degraded: corpus `{corpus}` was searched at another snapshot than pinned, or one too old"
                ));
            }
            (NodeKind::Gate { .. }, Phase::Done) if state.overridden(i) => {
                out.push(format!("gate `{name}` was overridden"));
            }
            _ => {}
        }
    }
    out
}

/// A duration as people say it: `16h 40m`, `3d 2h`.
fn human_duration(text: &str) -> String {
    let Some(seconds) = flow_ir::time::parse_duration(text) else { return text.to_owned() };
    let (sign, mut rest) = if seconds < 0 { ("-", -seconds) } else { ("", seconds) };
    let mut parts = Vec::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if rest >= size && parts.len() < 2 {
            parts.push(format!("{}{unit}", rest / size));
            rest %= size;
        } else if !parts.is_empty() {
            break;
        }
    }
    if parts.is_empty() { "0s".to_owned() } else { format!("{sign}{}", parts.join(" ")) }
}

/// The page.
pub fn show(analysis: &Analysis, events: &[StoredEvent], view: &RunView) -> String {
    let body = analysis.body();
    let mut out = String::new();
    let _ = writeln!(out, "Run {} of flow `{}` {}", view.run, body.flow.name, body.flow.version);
    // A summary that begins with the status says it once: `Status: completed; emitted decision`.
    if view.summary.starts_with(view.status.as_str()) {
        let _ = writeln!(out, "Status: {}", view.summary);
    } else {
        let _ = writeln!(out, "Status: {} — {}", view.status.as_str(), view.summary);
    }
    for line in &view.why {
        let _ = writeln!(out, "  {line}");
    }
    let mut steps = String::new();
    let mut refusals = String::new();
    for stored in events {
        let e = &stored.body;
        let node = e["node"].as_str().unwrap_or("");
        let kind = e["event"].as_str().unwrap_or("");
        let line = |steps: &mut String, text: String| {
            let _ = writeln!(steps, "  {text}");
        };
        match kind {
            "started" => {
                let roles: Vec<&str> = e["roles"].as_array().into_iter().flatten().filter_map(Json::as_str).collect();
                let _ = writeln!(
                    out,
                    "Started by {} ({}) at {}{}; plan {}",
                    e["principal"].as_str().unwrap_or("?"),
                    roles.join(", "),
                    e["clock"].as_str().unwrap_or("?"),
                    if e["clock_chosen"] == true { " (clock chosen by whoever started it)" } else { "" },
                    e["plan"].as_str().unwrap_or("?")
                );
                let env = &e["environment"];
                let _ = writeln!(
                    out,
                    "Ran on {} ({}), {}, engine {}",
                    env["host"].as_str().unwrap_or("?"),
                    env["os"].as_str().unwrap_or("?"),
                    env["runtime"].as_str().unwrap_or("?"),
                    e["engine"].as_str().unwrap_or("?")
                );
                for d in e["declassifications"].as_array().into_iter().flatten() {
                    let labels: Vec<&str> =
                        d["labels"].as_array().into_iter().flatten().filter_map(Json::as_str).collect();
                    let _ = writeln!(
                        out,
                        "Declassifies {} in `{}`: {}",
                        labels.join(", "),
                        d["node"].as_str().unwrap_or("?"),
                        d["reason"].as_str().unwrap_or("?")
                    );
                }
                let _ = writeln!(out, "\nInputs");
                for input in e["inputs"].as_array().into_iter().flatten() {
                    let _ = writeln!(out, "  {}: {}", input["name"].as_str().unwrap_or("?"), display(&input["value"]));
                }
                for source in e["sources"].as_array().into_iter().flatten() {
                    let _ = writeln!(
                        out,
                        "  {} comes from {} (authority {}), as of {}, age {}{}",
                        source["input"].as_str().unwrap_or("?"),
                        source["source"].as_str().unwrap_or("?"),
                        source["authority"].as_str().unwrap_or("?"),
                        source["as_of"].as_str().unwrap_or("unknown"),
                        source["age"].as_str().map_or("unknown".to_owned(), human_duration),
                        if source["stale"] == true { " — STALE" } else { "" }
                    );
                }
                let params = e["params"].as_array().cloned().unwrap_or_default();
                if !params.is_empty() {
                    let _ = writeln!(out, "\nParams");
                    for p in params {
                        let _ = writeln!(out, "  {} = {}", p["name"].as_str().unwrap_or("?"), display(&p["value"]));
                    }
                }
            }
            "evaluated" => line(&mut steps, format!("let {node} = {}{}", display(&e["value"]), operands(e))),
            "gate" => {
                let level = e["level"].as_str().unwrap_or("?");
                let message = match body.node(node).map(|n| &n.kind) {
                    Some(NodeKind::Gate { message: Some(m), .. }) => format!(": \"{m}\""),
                    _ => String::new(),
                };
                let verdict = match (e["holds"] == true, level) {
                    (false, _) => "did not hold".to_owned(),
                    (true, "info") => format!("held — finding recorded{message}"),
                    (true, "soft") => format!("held — waits for approval{message}"),
                    (true, _) => format!("held — BLOCKS the run{message}"),
                };
                line(&mut steps, format!("gate {node} ({level}): {verdict}{}", operands(e)));
            }
            "gate_decided" => line(&mut steps, format!("  gate {node} decided by {}", decision(&e["decision"]))),
            "gate_overridden" => line(&mut steps, format!("  gate {node} OVERRIDDEN by {}", decision(&e["decision"]))),
            "timer_set" => {
                line(&mut steps, format!("  {node}: deadlines run from {}", e["opened"].as_str().unwrap_or("?")))
            }
            "reminded" => line(
                &mut steps,
                format!(
                    "  {node}: reminder at {}, deadline {}",
                    e["at"].as_str().unwrap_or("?"),
                    e["deadline"].as_str().unwrap_or("?")
                ),
            ),
            "escalated" => {
                let roles: Vec<&str> = e["roles"].as_array().into_iter().flatten().filter_map(Json::as_str).collect();
                line(
                    &mut steps,
                    format!(
                        "  {node}: deadline passed at {} — ESCALATED to {}",
                        e["at"].as_str().unwrap_or("?"),
                        roles.join(", ")
                    ),
                )
            }
            "timed_out" => {
                let what = match (e["outcome"].as_str(), e["reason"].as_str()) {
                    (Some(outcome), Some(reason)) => format!("decided {outcome} ({reason}) by its deadline"),
                    (Some(outcome), None) => format!("decided {outcome} by its deadline"),
                    _ => "BLOCKED the run".to_owned(),
                };
                line(&mut steps, format!("  {node}: deadline passed at {} — {what}", e["at"].as_str().unwrap_or("?")))
            }
            "model_called" => {
                let args: Vec<String> = e["args"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|a| format!("{}: {}", a["name"].as_str().unwrap_or("?"), display(&a["value"])))
                    .collect();
                line(
                    &mut steps,
                    format!(
                        "infer {node}: model {} = {} {} ({}) via {}, {} ms, {}{}",
                        e["model"].as_str().unwrap_or("?"),
                        e["model_name"].as_str().unwrap_or("?"),
                        e["version"].as_str().unwrap_or("?"),
                        e["digest"].as_str().unwrap_or("?"),
                        e["provider"].as_str().unwrap_or("?"),
                        e["latency_us"].as_u64().unwrap_or(0) / 1000,
                        match e["attempts"].as_u64() {
                            Some(1) => "1 attempt".to_owned(),
                            Some(n) => format!("{n} attempts"),
                            None => "attempts unknown".to_owned(),
                        },
                        if e["error"].is_null() {
                            String::new()
                        } else {
                            format!(" — FAILED: {}", display(&e["error"]))
                        }
                    ),
                );
                line(&mut steps, format!("  given ({})", args.join(", ")));
            }
            "retrieved" => {
                let snapshot = match (e["snapshot"].as_str(), e["pinned"].as_str()) {
                    (Some(searched), Some(pinned)) if searched == pinned => format!("snapshot {searched} (as pinned)"),
                    (Some(searched), pinned) => {
                        format!("snapshot {searched} (the flow pins {})", pinned.unwrap_or("?"))
                    }
                    (None, _) => "no snapshot".to_owned(),
                };
                line(
                    &mut steps,
                    format!(
                        "retrieve {node}: corpus {} ({}) at {snapshot}, via {}, {} ms",
                        e["corpus"].as_str().unwrap_or("?"),
                        e["authority"].as_str().unwrap_or("?"),
                        e["retriever"].as_str().unwrap_or("?"),
                        e["latency_us"].as_u64().unwrap_or(0) / 1000,
                    ),
                );
                line(&mut steps, format!("  query {}", display(&e["query"])));
                // The documents found, `[[ID, DIGEST], …]`, or their redaction as a whole.
                let documents = &e["documents"];
                let found = match documents.get("$value").unwrap_or(documents).as_array() {
                    Some(pairs) if pairs.is_empty() => "nothing".to_owned(),
                    Some(pairs) => pairs
                        .iter()
                        .map(|pair| format!("{} ({})", display(&pair[0]), display(&pair[1])))
                        .collect::<Vec<_>>()
                        .join(", "),
                    None => display(documents),
                };
                let top = e["top"].as_u64().unwrap_or(0);
                match e["error"].is_null() {
                    false => line(&mut steps, format!("  FAILED: {}", display(&e["error"]))),
                    true => line(&mut steps, format!("  found (top {top}): {found}")),
                }
                if e["degraded"] == true {
                    line(&mut steps, format!("  DEGRADED — {}", e["reason"].as_str().unwrap_or("?")));
                }
                if e["refused"] == true {
                    line(&mut steps, format!("  REFUSED — {}", e["reason"].as_str().unwrap_or("?")));
                }
            }
            "inferred" => {
                let how = if e["degraded"] == true {
                    format!("DEGRADED — the fallback gave it ({})", display(&e["reason"]))
                } else {
                    "from the model".to_owned()
                };
                line(&mut steps, format!("  {node} = {} ({how})", display(&e["value"])));
            }
            "review_skipped" => {
                line(&mut steps, format!("review {node}: skipped, its condition did not hold{}", operands(e)))
            }
            "migrated" => {
                let release = &e["release"];
                line(
                    &mut steps,
                    format!(
                        "MIGRATED, waiting, to version {} (plan {}), made live in {} by {} (published by {})",
                        e["flow_version"].as_str().unwrap_or("?"),
                        e["to"].as_str().unwrap_or("?"),
                        release["environment"].as_str().unwrap_or("?"),
                        release["release"].as_str().unwrap_or("?"),
                        release["published_by"].as_str().unwrap_or("?"),
                    ),
                );
            }
            "review_opened" => {
                let roles: Vec<&str> = e["roles"].as_array().into_iter().flatten().filter_map(Json::as_str).collect();
                line(&mut steps, format!("review {node}: opened for {}{}", roles.join(", "), operands(e)));
            }
            "review_decided" => {
                line(&mut steps, format!("  review {node} decided by {}", decision(&e["decision"])));
                for edit in e["edits"].as_array().into_iter().flatten() {
                    line(
                        &mut steps,
                        format!(
                            "    edited {}: {} → {}",
                            edit["field"].as_str().unwrap_or("?"),
                            display(&edit["before"]),
                            display(&edit["after"])
                        ),
                    );
                }
            }
            "approval_required" => {
                let excluded: Vec<&str> =
                    e["excluded"].as_array().into_iter().flatten().filter_map(Json::as_str).collect();
                line(
                    &mut steps,
                    format!(
                        "approval {node}: row {} applies, requiring {}{}{}",
                        e["row"],
                        e["requirement"].as_str().unwrap_or("?"),
                        operands(e),
                        if excluded.is_empty() {
                            String::new()
                        } else {
                            format!("; may not approve: {}", excluded.join(", "))
                        }
                    ),
                );
            }
            "approval_decided" => line(&mut steps, format!("  approval {node}: {}", decision(&e["decision"]))),
            "approval_completed" => {
                let approvers: Vec<&str> =
                    e["approvers"].as_array().into_iter().flatten().filter_map(Json::as_str).collect();
                let verdict = match (e["approved"] == true, approvers.is_empty()) {
                    (true, true) => format!(
                        "approved automatically (row {}: {})",
                        e["row"],
                        e["requirement"].as_str().unwrap_or("?")
                    ),
                    (true, false) => format!("approved by {}", approvers.join(", ")),
                    (false, _) => "NOT approved: a required approver rejected".to_owned(),
                };
                line(&mut steps, format!("approval {node}: {verdict}"));
            }
            "action_skipped" => {
                line(&mut steps, format!("action {node}: skipped, its condition did not hold{}", operands(e)))
            }
            "action_started" => line(
                &mut steps,
                format!(
                    "action {node}: {}.{} called (attempt {}, idempotency key {})",
                    e["system"].as_str().unwrap_or("?"),
                    e["action"].as_str().unwrap_or("?"),
                    e["attempt"],
                    e["key"].as_str().unwrap_or("?")
                ),
            ),
            "action_completed" => {
                let how = match e["tries"].as_u64() {
                    _ if e["reused"] == true => " (an earlier call with this key gave it; not repeated)".to_owned(),
                    Some(tries) if tries > 1 => format!(" (after {tries} tries with this key)"),
                    _ => String::new(),
                };
                line(&mut steps, format!("  result {}{how}", display(&e["result"])))
            }
            "emitted" => {
                let marks: Vec<&str> = e["marks"].as_array().into_iter().flatten().filter_map(Json::as_str).collect();
                let marked = if marks.is_empty() { String::new() } else { format!(" [{}]", marks.join("; ")) };
                line(&mut steps, format!("emit {node} = {}{marked}", display(&e["value"])));
            }
            "failed" => {
                let detail =
                    if e["detail"].is_null() { String::new() } else { format!(" — {}", display(&e["detail"])) };
                line(&mut steps, format!("step {node} FAILED: {}{detail}", e["error"].as_str().unwrap_or("?")))
            }
            "cancelled" => line(&mut steps, format!("run CANCELLED by {}", decision(&e["decision"]))),
            "resumed" => line(&mut steps, format!("step {node} RESUMED by {}", decision(&e["decision"]))),
            "refused" => {
                let message = e["message"].as_str().unwrap_or("?");
                let principal = e["principal"].as_str().unwrap_or("?");
                // A refusal by separation of duties is of a principal who holds the grant (its
                // message names the principal after the rule, which no principal id can fake).
                let why = if message.starts_with(&format!("separation of duties: {principal} ")) {
                    String::new()
                } else {
                    format!(" (missing grant `{}`)", e["grant"].as_str().unwrap_or("?"))
                };
                let _ = writeln!(
                    refusals,
                    "  {} {}: refused {}{why}: {message}",
                    stored.at,
                    principal,
                    e["operation"].as_str().unwrap_or("?"),
                );
            }
            _ => {}
        }
    }
    let _ = writeln!(out, "\nSteps");
    out.push_str(&steps);
    if !view.pending.is_empty() {
        let _ = writeln!(out, "\nWaiting");
        for (step, kind, roles) in &view.pending {
            let _ = writeln!(out, "  {kind} {step}: may be decided by {}", roles.join(", "));
        }
    }
    if !view.outputs.is_empty() {
        let _ = writeln!(out, "\nOutputs");
        for (name, value) in &view.outputs {
            let marks = view.marks.get(name).map(|m| format!(" [{}]", m.join("; "))).unwrap_or_default();
            let _ = writeln!(out, "  {name} = {}{marks}", display(value));
        }
    }
    if !refusals.is_empty() {
        let _ = writeln!(out, "\nRefusals");
        out.push_str(&refusals);
    }
    let head = events.last().map_or("none", |e| e.hash.as_str());
    let _ = writeln!(out, "\nEvidence: {} events, head {head}", events.len());
    out
}
