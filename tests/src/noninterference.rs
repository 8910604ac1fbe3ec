//! Noninterference for values, as a property over every plan the compiler makes of the
//! examples, the lowering corpus and random flows (`crate::flows`), random inputs, model answers, handler results and
//! decisions: a labelled text given to a run (a sentinel, unique to its label) never appears
//! where someone not cleared for its label would see it — in what a principal without
//! `view L` gets from `status`, `show`, the run's outputs and its evidence bundle, in a
//! what-if's changes, or in a request sent to a model or system not cleared for `L`.
//!
//! What this does not cover, and `docs/security.md` says so: the run's progress (which steps
//! ran, which gate held, how it ended) when conditions read labelled data — that is
//! checked when a plan is compiled and loaded instead (a model or system must be cleared for
//! the conditions that decide whether it is called) — and labelled values other than texts,
//! which no sentinel can mark.

use std::sync::{Arc, Mutex};

use flow_ir::PlanBody;
use flow_ir::plan::{GrantKind, NodeKind};
use flow_ir::ty::Ty;
use flow_runtime::provider::{ActionHandler, ActionRequest, ModelProvider, ModelReply, ModelRequest, ProviderError};
use flow_runtime::store::SqliteStore;
use flow_runtime::{DecisionInput, Principal, ReplayChanges, Runtime, StartOptions, Status};
use serde_json::{Value as Json, json};

use crate::runtime::{Rng, all_plans, everyone, random_json, with_trigger};

/// What models and systems were sent: the model or system, and the request's JSON.
struct Recorder {
    body: PlanBody,
    rng: Mutex<Rng>,
    sent: Mutex<Vec<(String, Json)>>,
}

impl ModelProvider for Recorder {
    fn describe(&self) -> String {
        "recorder".to_owned()
    }

    fn infer(&self, request: &ModelRequest<'_>) -> Result<ModelReply, ProviderError> {
        self.sent.lock().unwrap_or_else(|e| e.into_inner()).push((request.model.name.to_string(), request.to_json()));
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        if rng.below(4) == 0 {
            return Err(ProviderError { message: format!("down: {}", request.input), attempts: 1 });
        }
        Ok(ModelReply { output: random_json(&mut rng, &self.body, &request.model.output, 0), attempts: 1 })
    }
}

impl ActionHandler for Recorder {
    fn describe(&self) -> String {
        "recorder".to_owned()
    }

    fn call(&self, request: &ActionRequest<'_>) -> Result<Json, String> {
        self.sent.lock().unwrap_or_else(|e| e.into_inner()).push((request.system.to_owned(), request.args.clone()));
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        let result = self
            .body
            .system(request.system)
            .and_then(|s| s.actions.iter().find(|a| a.name == request.action))
            .map(|a| a.result.clone())
            .unwrap_or(Ty::Nothing);
        match rng.below(6) {
            0 => Err(format!("refused {}", request.args)),
            _ => Ok(random_json(&mut rng, &self.body, &result, 0)),
        }
    }
}

/// The sentinel for label `label` in case `case`.
fn sentinel(label: &str, case: u64) -> String {
    format!("SECRET-{label}-{case:04}")
}

/// Replaces every text field a record type labels with the sentinel of its labels (the first,
/// when several).
fn mark(body: &PlanBody, json: &mut Json, ty: &Ty, case: u64) {
    match (json, ty) {
        (json, Ty::Optional(inner)) => mark(body, json, inner, case),
        (Json::Array(items), Ty::List(item)) => items.iter_mut().for_each(|v| mark(body, v, item, case)),
        (Json::Object(fields), Ty::Named(name)) => {
            let Some(record) = body.record(name) else { return };
            for field in &record.fields {
                let Some(value) = fields.get_mut(field.name.as_str()) else { continue };
                match (&field.ty.unwrap_optional(), field.labels.first()) {
                    (Ty::Text, Some(label)) if !value.is_null() => *value = json!(sentinel(label, case)),
                    _ => mark(body, value, &field.ty, case),
                }
            }
        }
        _ => {}
    }
}

/// The labels whose sentinels appear in `text`.
fn sentinels_in(body: &PlanBody, text: &str, case: u64) -> Vec<String> {
    body.labels.iter().filter(|l| text.contains(&sentinel(l, case))).map(|l| l.to_string()).collect()
}

#[test]
fn labelled_texts_never_reach_who_may_not_see_them() {
    let mut checked = 0;
    for (p, plan) in all_plans().into_iter().enumerate() {
        let plan = with_trigger(plan);
        let body = plan.body().clone();
        if body.labels.is_empty() {
            continue;
        }
        let store = SqliteStore::open(std::path::Path::new(":memory:")).expect("a store");
        let mut runtime = Runtime::new(Box::new(store));
        let recorder = Arc::new(Recorder {
            body: body.clone(),
            rng: Mutex::new(Rng(0x51ab_e1ed + p as u64)),
            sent: Mutex::default(),
        });
        for model in &body.models {
            runtime.register_model(&model.name, recorder.clone());
        }
        for system in &body.systems {
            runtime.register_system(&system.name, recorder.clone());
        }
        let analysis = runtime.install(plan).expect("the plan installs");
        let who = everyone(&body, "p1");
        // Whoever may read evidence and replay, with the views their roles give.
        let readers: Vec<String> = body
            .grants
            .iter()
            .filter(|g| matches!(g.kind, GrantKind::ReadEvidence | GrantKind::Replay))
            .flat_map(|g| g.roles.iter().map(|r| r.to_string()))
            .collect();
        let reader = Principal::new("reader".to_owned(), readers);
        let views = analysis.views(&reader.roles);
        let inputs: Vec<&flow_ir::plan::Node> =
            body.nodes.iter().filter(|n| matches!(n.kind, NodeKind::Input { .. })).collect();
        for case in 0..40u64 {
            let mut rng = Rng(0x7f4a_7c15 ^ (case << 9) ^ p as u64);
            let given: Vec<(String, Json)> = inputs
                .iter()
                .map(|n| {
                    let mut json = random_json(&mut rng, &body, &n.ty, 0);
                    mark(&body, &mut json, &n.ty, case);
                    (n.name.to_string(), json)
                })
                .collect();
            recorder.sent.lock().unwrap_or_else(|e| e.into_inner()).clear();
            let Ok(mut view) = runtime.start(&analysis, &who, &given, &StartOptions::default()) else { continue };
            for _ in 0..8 {
                if view.status != Status::Pending {
                    break;
                }
                let (step, _, _) = view.pending[0].clone();
                let outcome = match &body.node(&step).map(|n| &n.kind) {
                    Some(NodeKind::Review { outcomes, reasons, .. }) => {
                        (rng.pick(outcomes).to_string(), reasons.first().map(|r| r.to_string()))
                    }
                    _ => (rng.pick(&["approve", "reject"]).to_string(), Some("test".to_owned())),
                };
                let input = DecisionInput { outcome: outcome.0, reason: outcome.1, basis: None, edits: Vec::new() };
                match runtime.decide(&view.run, &step, &everyone(&body, &format!("d{}", rng.below(9))), &input) {
                    Ok(next) => view = next,
                    Err(_) => break,
                }
            }
            checked += 1;
            let seed = format!("plan {} case {case}", body.flow.name);
            // Nobody: status and the page.
            let status = format!("{:?}", runtime.status(&view.run, None).expect("status"));
            let page = runtime.show(&view.run, None).expect("shows");
            for (what, text) in [("status", &status), ("the page", &page)] {
                let found = sentinels_in(&body, text, case);
                assert!(found.is_empty(), "{seed}: {found:?} in {what} for no one: {text}");
            }
            // A reader: the evidence bundle and a what-if, as far as their views go.
            let hidden = |text: &str| -> Vec<String> {
                sentinels_in(&body, text, case).into_iter().filter(|l| !views.iter().any(|v| v == l)).collect()
            };
            if let Ok(bundle) = runtime.evidence(&view.run, &reader) {
                let found = hidden(&bundle.to_string());
                assert!(found.is_empty(), "{seed}: {found:?} in the evidence for {:?}", reader.roles);
                flow_runtime::evidence::verify(flow_runtime::evidence::render(&bundle).as_bytes())
                    .unwrap_or_else(|p| panic!("{seed}: the bundle does not verify: {p:?}"));
            }
            let same = ReplayChanges { plan: Some(analysis.clone()), ..ReplayChanges::default() };
            if let Ok(whatif) = runtime.what_if(&view.run, &reader, &same) {
                let found = hidden(&format!("{:?}", whatif.changes));
                assert!(found.is_empty(), "{seed}: {found:?} in a what-if for {:?}", reader.roles);
            }
            // Models and systems: only what they are cleared for.
            for (to, request) in recorder.sent.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                let clearance: Vec<String> = body
                    .model(to)
                    .map(|m| m.clearance.clone())
                    .or_else(|| body.system(to).map(|s| s.clearance.clone()))
                    .unwrap_or_default()
                    .iter()
                    .map(|l| l.to_string())
                    .collect();
                let found: Vec<String> = sentinels_in(&body, &request.to_string(), case)
                    .into_iter()
                    .filter(|l| !clearance.contains(l))
                    .collect();
                assert!(found.is_empty(), "{seed}: {found:?} sent to `{to}`, cleared for {clearance:?}: {request}");
            }
        }
    }
    assert!(checked >= 200, "{checked} runs checked");
}
