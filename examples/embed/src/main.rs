//! How an application embeds the Flow runtime.
//!
//! It loads the compiled plan of `examples/spend_approval.flow` (`flowc build` wrote
//! `spend_approval.plan.json` beside this program), registers an in-process model provider
//! and an ERP handler, starts a run for a principal it authenticated, decides the review and
//! the approval the run waits for, then exports the evidence for an auditor and verifies it.
//!
//! Run it with `cargo run -p flow-embed` (a store path may follow; the default
//! keeps the runs in memory).

#![expect(clippy::print_stdout, reason = "the example tells what it does")]

use std::sync::{Arc, Mutex};

use flow_runtime::provider::{ActionHandler, ActionRequest, ModelProvider, ModelReply, ModelRequest, ProviderError};
use flow_runtime::store::SqliteStore;
use flow_runtime::{DecisionInput, Principal, Runtime, StartOptions, Status};
use serde_json::{Value as Json, json};

/// The application's own risk model: any code that answers with the declared output type.
struct RiskModel;

impl ModelProvider for RiskModel {
    fn describe(&self) -> String {
        "in-process rules (embedding example)".to_owned()
    }

    fn infer(&self, request: &ModelRequest<'_>) -> Result<ModelReply, ProviderError> {
        let justification = request.input["justification"].as_str().unwrap_or("");
        let output = if justification.to_lowercase().contains("urgent") {
            json!({"tier": "medium", "confidence": "0.6", "rationale": "urgency asks for a second look"})
        } else {
            json!({"tier": "low", "confidence": "0.95", "rationale": "routine"})
        };
        Ok(ModelReply { output, attempts: 1 })
    }
}

/// The application's ERP: idempotent by key, as every action handler must be.
#[derive(Default)]
struct Erp {
    orders: Mutex<Vec<(String, Json)>>,
}

impl ActionHandler for Erp {
    fn describe(&self) -> String {
        "in-process ERP (embedding example)".to_owned()
    }

    fn call(&self, request: &ActionRequest<'_>) -> Result<Json, String> {
        let mut orders = self.orders.lock().map_err(|_| "the ERP is unavailable".to_owned())?;
        if let Some((_, order)) = orders.iter().find(|(key, _)| key == request.idempotency_key) {
            return Ok(order.clone());
        }
        let order = json!({"number": format!("PO-{:05}", orders.len() + 1)});
        orders.push((request.idempotency_key.to_owned(), order.clone()));
        Ok(order)
    }
}

fn principal(id: &str, roles: &[&str]) -> Principal {
    Principal::new(id.to_owned(), roles.iter().map(|r| (*r).to_owned()).collect())
}

/// What the example did, for its test.
pub struct Outcome {
    pub statuses: Vec<Status>,
    pub verified_events: usize,
    pub redacted: usize,
    pub orders: usize,
}

/// The whole example; every step printed.
pub fn run(store: &str) -> Result<Outcome, String> {
    let fail = |e: flow_runtime::Error| e.to_string();
    // 1. Load the plan: it is verified (hash and structure) before anything uses it.
    let bytes = include_bytes!("../spend_approval.plan.json");
    let plan = flow_ir::load(bytes).map_err(|e| format!("the plan does not verify:\n{e}"))?;
    println!("loaded plan {} of flow `{}`", plan.hash(), plan.body().flow.name);

    // 2. A runtime over a store, with the application's model and handler.
    let store = SqliteStore::open(std::path::Path::new(store)).map_err(|e| e.to_string())?;
    let mut runtime = Runtime::new(Box::new(store));
    let erp = Arc::new(Erp::default());
    runtime.register_model("risk_v3", Arc::new(RiskModel));
    runtime.register_system("erp", erp.clone());
    let plan = runtime.install(plan).map_err(fail)?;

    // 3. Start a run for a principal the application authenticated.
    //    The run's clock is the current time (choosing another needs the flow's `set
    //    clock` grant), so the vendor record is from an hour ago: fresh.
    let ana = principal("ana", &["requester"]);
    let an_hour_ago = flow_ir::time::format_timestamp(flow_runtime::now().seconds - 3_600, 0);
    let inputs = vec![
        (
            "request".to_owned(),
            json!({
                "id": "PR-1", "requester": "ana", "amount": "18500.00 USD", "category": "software",
                "justification": "Urgent licence renewal", "submitted_at": an_hour_ago
            }),
        ),
        (
            "vendor".to_owned(),
            json!({
                "id": "V-1", "name": "Northwind", "sanctioned": false, "credit_limit": "250000.00 USD",
                "rating": 4, "bank_account": "DE89 3704 0044 0532 0130 00", "updated_at": an_hour_ago
            }),
        ),
    ];
    let mut view = runtime.start(&plan, &ana, &inputs, &StartOptions::default()).map_err(fail)?;
    let mut statuses = vec![view.status];
    println!("run {}: {} ({})", view.run, view.status.as_str(), view.summary);

    // 4. Decide what the run waits for: the manager's review (lowering the tier), then the
    //    approval, by someone other than the requester.
    let max = principal("max", &["manager"]);
    let review = DecisionInput {
        outcome: "approve".to_owned(),
        reason: Some("budget_ok".to_owned()),
        basis: Some("renewal is in the budget".to_owned()),
        edits: vec![("risk.tier".to_owned(), "low".to_owned())],
    };
    view = runtime.decide(&view.run, "triage", &max, &review).map_err(fail)?;
    statuses.push(view.status);
    println!("after the review: {} ({})", view.status.as_str(), view.summary);
    let approve = DecisionInput {
        outcome: "approve".to_owned(),
        reason: Some("in_budget".to_owned()),
        ..DecisionInput::default()
    };
    view = runtime.decide(&view.run, "spend", &max, &approve).map_err(fail)?;
    statuses.push(view.status);
    println!("after the approval: {} ({})", view.status.as_str(), view.summary);

    // 5. Export the evidence for an auditor, redacted for their grants, and verify it.
    let auditor = principal("aud", &["auditor"]);
    let bundle = runtime.evidence(&view.run, &auditor).map_err(fail)?;
    let text = flow_runtime::evidence::render(&bundle);
    let verified = flow_runtime::evidence::verify(text.as_bytes()).map_err(|problems| problems.join("; "))?;
    println!(
        "evidence: {} events, head {}, {} values redacted for the auditor",
        verified.events, verified.head, verified.redacted
    );
    let orders = erp.orders.lock().map(|o| o.len()).unwrap_or(0);
    Ok(Outcome { statuses, verified_events: verified.events, redacted: verified.redacted, orders })
}

fn main() -> std::process::ExitCode {
    let store = std::env::args().nth(1).unwrap_or_else(|| ":memory:".to_owned());
    match run(&store) {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("flow-embed: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_example_runs_a_flow_to_completion_and_its_evidence_verifies() {
        let outcome = super::run(":memory:").unwrap_or_else(|e| panic!("{e}"));
        use flow_runtime::Status::*;
        assert_eq!(outcome.statuses, [Pending, Pending, Completed]);
        assert_eq!(outcome.orders, 1);
        assert!(outcome.verified_events > 10);
        // The auditor may not view `pii`: the vendor's bank account is redacted.
        assert!(outcome.redacted >= 1);
    }
}
