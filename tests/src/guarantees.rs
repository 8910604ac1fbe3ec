//! The guarantees of `docs/security.md`, each tried the way someone would try to break it,
//! through the runtime an application embeds: a flow compiled from a fixture, models and
//! systems that record every call they get, and the run's events.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use flow_runtime::analysis::Analysis;
use flow_runtime::event::Event;
use flow_runtime::provider::{ActionHandler, ActionRequest, ModelProvider, ModelReply, ModelRequest, ProviderError};
use flow_runtime::store::SqliteStore;
use flow_runtime::value::Value;
use flow_runtime::{DecisionInput, Principal, Runtime, StartOptions, Status};
use serde_json::{Value as Json, json};

/// The outside world of a test: what each model answers and each action returns, by
/// name, and every call made, in order (`model NAME` or `action SYSTEM.ACTION`).
pub(crate) struct World {
    pub answers: Mutex<Vec<(String, Json)>>,
    pub calls: Mutex<Vec<String>>,
}

impl World {
    /// A world in which each named model answers and each named action returns its JSON.
    pub fn answering(answers: &[(&str, Json)]) -> Arc<World> {
        let answers = answers.iter().map(|(name, json)| (name.to_string(), json.clone())).collect();
        Arc::new(World { answers: Mutex::new(answers), calls: Mutex::default() })
    }

    fn answer(&self, name: &str) -> Option<Json> {
        let answers = self.answers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        answers.iter().find(|(n, _)| n == name).map(|(_, json)| json.clone())
    }

    fn note(&self, call: String) {
        self.calls.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(call);
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

impl ModelProvider for World {
    fn describe(&self) -> String {
        "test world".to_owned()
    }

    fn infer(&self, request: &ModelRequest<'_>) -> Result<ModelReply, ProviderError> {
        self.note(format!("model {}", request.model.name));
        match self.answer(&request.model.name) {
            Some(output) => Ok(ModelReply { output, attempts: 1 }),
            None => Err(ProviderError { message: "no answer".to_owned(), attempts: 1 }),
        }
    }
}

impl ActionHandler for World {
    fn describe(&self) -> String {
        "test world".to_owned()
    }

    fn call(&self, request: &ActionRequest<'_>) -> Result<Json, String> {
        self.note(format!("action {}.{}", request.system, request.action));
        self.answer(request.action).ok_or_else(|| "no result".to_owned())
    }
}

/// A runtime on a store in memory with `flow` (a fixture's text, checked clean) installed,
/// and every model and system of it answered by `world`.
pub(crate) fn runtime_with(flow: &str, world: &Arc<World>) -> (Runtime, Arc<Analysis>) {
    let checked = crate::check_fixture("main.flow", flow.as_bytes());
    assert!(checked.clean(), "{}", checked.render());
    let plan = crate::plans(&checked).into_iter().flatten().next().expect("the fixture has a flow");
    let store = SqliteStore::open(std::path::Path::new(":memory:")).expect("a store in memory");
    let mut runtime = Runtime::new(Box::new(store));
    for model in &plan.body().models {
        runtime.register_model(&model.name, world.clone());
    }
    for system in &plan.body().systems {
        runtime.register_system(&system.name, world.clone());
    }
    let analysis = runtime.install(plan).expect("the plan installs");
    (runtime, analysis)
}

/// `field` of the first `kind` event of `run`'s evidence as exported to `who`.
fn exported(runtime: &Runtime, run: &str, who: &Principal, kind: &str, field: &str) -> Json {
    let bundle = runtime.evidence(run, who).expect("exports");
    let event = bundle["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e.get("event").unwrap_or(e))
        .find(|e| e["event"] == kind)
        .cloned();
    event.and_then(|e| e.get(field).cloned()).unwrap_or_else(|| panic!("no `{field}` of `{kind}` in {bundle}"))
}

/// `flow` (a fixture's text, checked clean) installed in `runtime`.
fn install(runtime: &Runtime, flow: &str) -> Arc<Analysis> {
    let checked = crate::check_fixture("main.flow", flow.as_bytes());
    assert!(checked.clean(), "{}", checked.render());
    runtime.install(crate::plans(&checked).into_iter().flatten().next().expect("a plan")).expect("installs")
}

/// A what-if of `run` by `who` with the candidate `plan`, asking models when `live`.
fn what_if(
    runtime: &Runtime,
    run: &str,
    who: &Principal,
    plan: &Arc<Analysis>,
    live: bool,
) -> Result<flow_runtime::whatif::WhatIf, flow_runtime::Error> {
    let changes = flow_runtime::ReplayChanges { plan: Some(plan.clone()), params: Vec::new(), live };
    runtime.what_if(run, who, &changes)
}

pub(crate) fn principal(id: &str, roles: &[&str]) -> Principal {
    Principal::new(id.to_owned(), roles.iter().map(|r| r.to_string()).collect())
}

/// The events of a stored run.
pub(crate) fn events(runtime: &Runtime, run: &str) -> Vec<Event<Value>> {
    runtime.inspect(run, &[], &[]).expect("the run loads").0
}

/// What the run's events say happened, one word per event and its step: `gate:g`,
/// `model_called:m`, `emitted:o`, …
pub(crate) fn path(runtime: &Runtime, run: &str) -> Vec<String> {
    events(runtime, run)
        .iter()
        .map(|e| {
            let json: Result<Event<Json>, ()> = e.clone().map_values(&mut |_, v: Value| Ok(v.to_json()));
            let kind = serde_json::to_value(json.ok()).ok().and_then(|j| j["event"].as_str().map(str::to_owned));
            let kind = kind.unwrap_or_default();
            match e.node() {
                Some(node) => format!("{kind}:{node}"),
                None => kind,
            }
        })
        .collect()
}

pub(crate) fn decision(outcome: &str, reason: &str) -> DecisionInput {
    DecisionInput { outcome: outcome.to_owned(), reason: Some(reason.to_owned()), basis: None, edits: Vec::new() }
}

/// A payment flow with every kind of step: rules (a soft gate, a blocking gate, an info
/// gate), a model that feeds no gate (named to come before the gates in the plan's order
/// of names), a review, an approval, an action and an output.
pub(crate) const PAYMENT: &str = r#"
role clerk
role officer
role manager
type Payment { id: Text  amount: Money[USD]  payee: Text }
type Score { value: Int }
type Receipt { number: Text }
type Outcome { paid: Bool  score: Int }
model scorer {
  provider "command"
  name "scorer"
  version "1"
  digest "sha256:0000000000000000000000000000000000000000000000000000000000000001"
  input (amount: Money[USD])
  output Score
}
system ledger {
  action book(id: Text) -> Receipt
}
flow pay {
  version "1.0.0"
  owner clerk
  steward clerk
  input payment: Payment
  output outcome: Outcome
  access {
    trigger by clerk
    override listed by officer
    replay by officer
  }
  gate large: soft when payment.amount > 1_000 USD
    approve by officer
  gate listed: block when payment.payee == "listed"
  gate note: info when payment.amount > 500 USD
  infer assessment = scorer(amount: payment.amount)
  review check by officer
    when assessment.value > 5
    outcomes fine, doubtful
    reasons seen
  approval sign {
    when payment.amount < 100 USD => auto
    otherwise                     => 1 of manager
  }
  action booking = ledger.book(payment.id)
    when sign.approved and check.outcome != doubtful
  emit outcome = Outcome { paid: sign.approved and check.outcome != doubtful, score: assessment.value }
}
"#;

pub(crate) fn payment_world() -> Arc<World> {
    World::answering(&[("scorer", json!({"value": 1})), ("book", json!({"number": "B-1"}))])
}

pub(crate) fn pay(runtime: &Runtime, analysis: &Arc<Analysis>, amount: &str, payee: &str) -> flow_runtime::RunView {
    let input = json!({"id": "P-1", "amount": amount, "payee": payee});
    runtime
        .start(analysis, &principal("cleo", &["clerk"]), &[("payment".to_owned(), input)], &StartOptions::default())
        .expect("the run starts")
}

/// A provider that fails, repeating what it was sent (as an HTTP error body may).
struct Echo;

impl ModelProvider for Echo {
    fn describe(&self) -> String {
        "echo".to_owned()
    }

    fn infer(&self, request: &ModelRequest<'_>) -> Result<ModelReply, ProviderError> {
        Err(ProviderError { message: format!("cannot score {}", request.input), attempts: 1 })
    }
}

/// Every redaction marker's digest in evidence JSON.
fn collect_markers(json: &Json, out: &mut BTreeSet<String>) {
    match json {
        serde_json::Value::Object(object) => {
            if let Some(serde_json::Value::String(digest)) = object.get("$redacted") {
                out.insert(digest.clone());
            }
            object.values().for_each(|v| collect_markers(v, out));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_markers(v, out)),
        _ => {}
    }
}

/// Redaction everywhere a value can appear: a step's error and a model's failure name no
/// labelled value to a viewer without the grant — not in the summary, the explanation, the
/// run's page or the evidence — and show it to one with the grant.
#[test]
fn failures_show_labelled_values_only_to_those_who_may_view_them() {
    const FLOW: &str = r#"
label pii
role clerk
role auditor
type Account { balance: Decimal @pii  holders: Int }
type Score { value: Int }
type Out { share: Decimal @pii  score: Int  degraded: Bool }
model scorer {
  provider "command"
  name "scorer"
  version "1"
  digest "sha256:0000000000000000000000000000000000000000000000000000000000000001"
  input (balance: Decimal)
  output Score
  clearance pii
}
flow split {
  version "1.0.0"
  owner clerk
  steward clerk
  input account: Account
  output out: Out
  access {
    trigger by clerk
    view pii by auditor
    read evidence by auditor, clerk
  }
  infer score = scorer(balance: account.balance) fallback Score { value: 0 }
  // The model fails (its error repeats the balance), its fallback gives 0, and the
  // division by zero fails the run.
  let share = account.balance / (account.holders + score.value)
  emit out = Out { share: share, score: score.value, degraded: degraded(score) }
}
"#;
    let world = World::answering(&[]);
    let (mut runtime, analysis) = runtime_with(FLOW, &world);
    runtime.register_model("scorer", Arc::new(Echo));
    let clerk = principal("cleo", &["clerk"]);
    let auditor = principal("ada", &["auditor"]);
    let account = json!({"balance": "123456.78", "holders": 0});
    let view = runtime
        .start(&analysis, &clerk, &[("account".to_owned(), account)], &StartOptions::default())
        .expect("the run starts");
    assert_eq!(view.status, Status::Failed);
    let secret = "123456.78";
    assert!(!view.summary.contains(secret), "{}", view.summary);
    assert!(view.summary.contains("division by zero"), "{}", view.summary);
    assert!(!view.why.join("\n").contains(secret), "{:?}", view.why);
    let status = runtime.status(&view.run, None).expect("status");
    assert!(!format!("{status:?}").contains(secret), "{status:?}");
    let hidden = runtime.show(&view.run, Some(&clerk)).expect("shows");
    assert!(!hidden.contains(secret), "{hidden}");
    assert!(hidden.contains("[redacted: pii]"), "{hidden}");
    let bundle = runtime.evidence(&view.run, &clerk).expect("exports");
    assert!(!bundle.to_string().contains(secret), "{bundle}");
    flow_runtime::evidence::verify(flow_runtime::evidence::render(&bundle).as_bytes()).expect("still verifies");
    // Redaction markers are salted: the same balance in another run leaves other markers,
    // and none is the digest of a guess of the value, bare or wrapped as evidence wraps it.
    let again = runtime
        .start(
            &analysis,
            &clerk,
            &[("account".to_owned(), json!({"balance": "123456.78", "holders": 0}))],
            &StartOptions::default(),
        )
        .expect("the run starts");
    let markers = |bundle: &serde_json::Value| -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        collect_markers(bundle, &mut out);
        out
    };
    let (first, second) = (markers(&bundle), markers(&runtime.evidence(&again.run, &clerk).expect("exports")));
    assert!(!first.is_empty() && first.is_disjoint(&second), "{first:?} {second:?}");
    for guess in [
        json!(secret),
        json!({"$labels": ["pii"], "$value": secret}),
        json!({"$labels": ["pii"], "$value": {"balance": secret, "holders": 0}}),
    ] {
        assert!(!first.contains(&flow_runtime::digest::digest(&guess)), "{guess}");
    }
    // Nor does the bundle hold the digest of the request the model was sent, which would
    // confirm a guess of the balance as well; the auditor's does (so the guess is right).
    let model = analysis.body().model("scorer").expect("the model");
    let request = ModelRequest { step: "score", model, prompt: None, input: json!({"balance": secret}) };
    let request_digest = flow_runtime::digest::digest(&request.to_json());
    assert!(bundle.to_string().contains("request_digest"), "{bundle}");
    assert!(!bundle.to_string().contains(&request_digest), "{bundle}");
    let cleared = runtime.evidence(&view.run, &auditor).expect("exports").to_string();
    assert!(cleared.contains(&request_digest), "{cleared}");
    let shown = runtime.show(&view.run, Some(&auditor)).expect("shows");
    assert!(shown.contains("division by zero in `123456.78 / 0`"), "{shown}");
    assert!(hidden.contains("DEGRADED — the fallback gave it ([redacted: pii])"), "{hidden}");
    assert!(shown.contains("cannot score"), "{shown}");
}

/// A candidate plan never widens access: its grants cannot show a viewer more than the
/// run's plan does, a candidate that drops a label is refused, and one that would send the
/// run's data to a model the run's plan does not declare is refused for live use.
#[test]
fn a_candidate_plan_never_widens_access() {
    const FLOW: &str = r#"
label pii
role clerk
role auditor
type Person { name: Text @pii  age: Int }
type Score { value: Int }
type Out { label: Text @pii  adult: Bool }
model scorer {
  provider "command"
  name "scorer"
  version "1"
  digest "sha256:0000000000000000000000000000000000000000000000000000000000000001"
  input (age: Int)
  output Score
}
flow vet {
  version "1.0.0"
  owner clerk
  steward clerk
  input person: Person
  output out: Out
  param adult_age: Int = 18
  access {
    trigger by clerk
    view pii by auditor
    replay by clerk, auditor
  }
  infer score = scorer(age: person.age) fallback Score { value: 0 }
  emit out = Out { label: "{person.name}: {score.value}", adult: person.age >= adult_age and not degraded(score) }
}
"#;
    let world = World::answering(&[("scorer", json!({"value": 7}))]);
    let (runtime, analysis) = runtime_with(FLOW, &world);
    let clerk = principal("cleo", &["clerk"]);
    let person = json!({"name": "Ada Lovelace", "age": 36});
    let view =
        runtime.start(&analysis, &clerk, &[("person".to_owned(), person)], &StartOptions::default()).expect("runs");
    let install = |text: &str| install(&runtime, text);
    let what_if = |plan: &Arc<Analysis>, live: bool| what_if(&runtime, &view.run, &clerk, plan, live);
    // Granting itself `view pii`, and changing the output, shows the clerk nothing more.
    let generous = install(
        &FLOW
            .replace("view pii by auditor", "view pii by auditor, clerk")
            .replace("{person.name}: ", "{person.name} — "),
    );
    let whatif = what_if(&generous, false).expect("the what-if runs");
    assert!(!whatif.changes.is_empty(), "the output changes");
    let shown = format!("{:?}", whatif.changes);
    assert!(!shown.contains("Ada"), "{shown}");
    // Dropping the label is refused.
    let unlabelled = install(&FLOW.replace("name: Text @pii", "name: Text").replace("label: Text @pii", "label: Text"));
    let refused = what_if(&unlabelled, false);
    assert!(
        matches!(&refused, Err(flow_runtime::Error::Plan(m)) if m.contains("field `Person.name` loses pii")),
        "{refused:?}"
    );
    // A model of its own would receive the run's data: refused where models are asked.
    let elsewhere = install(&FLOW.replace("model scorer {", "model scorer2 {").replace("= scorer(", "= scorer2("));
    assert!(what_if(&elsewhere, false).is_ok(), "without asking models, nothing is sent");
    let refused = what_if(&elsewhere, true);
    assert!(
        matches!(&refused, Err(flow_runtime::Error::Plan(m)) if m.contains("model `scorer2` is not the run's plan's")),
        "{refused:?}"
    );
    let shadow = runtime.shadow(&view.run, &elsewhere);
    assert!(matches!(shadow, Err(flow_runtime::Error::Plan(_))), "{shadow:?}");
    // The input read into a record of another name without the label: refused, whatever
    // the record is called.
    let renamed = install(
        &FLOW
            .replace("type Score {", "type Human { name: Text  age: Int }\ntype Score {")
            .replace("input person: Person", "input person: Human"),
    );
    let refused = what_if(&renamed, false);
    assert!(
        matches!(&refused, Err(flow_runtime::Error::Plan(m)) if m.contains("`person.name` loses pii")),
        "{refused:?}"
    );
    // A candidate plan file edited so that it leaks (its hash recomputed) is proved before
    // it is replayed: here a record of its own, its label taken off.
    let checked = crate::check_fixture("main.flow", FLOW.replace("Out", "Shown").as_bytes());
    assert!(checked.clean(), "{}", checked.render());
    let mut body = crate::plans(&checked).into_iter().flatten().next().expect("a plan").body().clone();
    body.records
        .iter_mut()
        .filter(|r| r.name == "Shown")
        .for_each(|r| r.fields.iter_mut().for_each(|f| f.labels.clear()));
    let edited = flow_ir::seal_and_verify(body, String::new(), Default::default(), Default::default())
        .unwrap_or_else(|failed| panic!("{}", failed.1));
    let refused = what_if(&Arc::new(Analysis::new(edited)), false);
    assert!(
        matches!(&refused, Err(flow_runtime::Error::Plan(m)) if m.contains("into field `label` of `Shown`")),
        "{refused:?}"
    );
}

/// The digest of what a model was sent is labelled with everything the step reads — also
/// the `as_of` field that `age(patient)` reveals — so a viewer without the label cannot
/// confirm a guess of when a patient was admitted by hashing requests.
#[test]
fn a_model_requests_digest_carries_what_age_reveals() {
    const FLOW: &str = r#"
label phi
role nurse
role clerk
type Patient { id: Text  admitted: Timestamp @phi }
type Urgency { level: Int }
type Out { level: Int }
source ward: Patient {
  authority "ward.admissions"
  freshness 24h
  as_of admitted
}
model triage {
  provider "command"
  name "triage"
  version "1"
  digest "sha256:0000000000000000000000000000000000000000000000000000000000000001"
  input (waited: Duration)
  output Urgency
  clearance phi
}
flow admit {
  version "1.0.0"
  owner nurse
  steward nurse
  input patient: Patient from ward
  output out: Out
  access {
    trigger by nurse
    view phi by nurse
    read evidence by nurse, clerk
  }
  infer urgency = triage(waited: age(patient))
  emit out = Out { level: urgency.level }
}
"#;
    let world = World::answering(&[("triage", json!({"level": 2}))]);
    let (runtime, analysis) = runtime_with(FLOW, &world);
    let nurse = principal("nina", &["nurse"]);
    let patient = json!({"id": "P-1", "admitted": flow_runtime::now().to_string()});
    let view =
        runtime.start(&analysis, &nurse, &[("patient".to_owned(), patient)], &StartOptions::default()).expect("runs");
    assert_eq!(view.status, Status::Completed, "{}", view.summary);
    let digest_of = |who: &Principal| exported(&runtime, &view.run, who, "model_called", "request_digest");
    let hidden = digest_of(&principal("carl", &["clerk"]));
    assert!(hidden.get("$redacted").is_some(), "{hidden}");
    let shown = digest_of(&nurse);
    assert!(shown.to_string().contains("blake3:"), "{shown}");
}

/// A what-if gives what the run recorded only where the candidate labels it as the run's
/// plan did: a model's answer goes only to the step that asked for it (a candidate that
/// renames the step and types the answer without its labels gets no answer), and a
/// reviewer's edit is not written into a value the candidate retypes without its labels.
#[test]
fn a_what_if_gives_recorded_values_only_where_they_keep_their_labels() {
    const FLOW: &str = r#"
label pii
role clerk
role officer
type Person { age: Int }
type Score { value: Int  note: Text @pii }
type Summary { text: Text @pii }
type Out { note: Text @pii  text: Text @pii }
model scorer {
  provider "command"
  name "scorer"
  version "1"
  digest "sha256:0000000000000000000000000000000000000000000000000000000000000001"
  input (age: Int)
  output Score
}
flow vet {
  version "1.0.0"
  owner clerk
  steward clerk
  input person: Person
  output out: Out
  access {
    trigger by clerk
    replay by clerk
  }
  infer score = scorer(age: person.age)
  let summary = Summary { text: "aged {person.age}" }
  review check by officer
    outcomes fine
    reasons seen
    may edit summary
  emit out = Out { note: score.note, text: summary.text }
}
"#;
    let world = World::answering(&[("scorer", json!({"value": 7, "note": "Ada is unwell"}))]);
    let (runtime, analysis) = runtime_with(FLOW, &world);
    let clerk = principal("cleo", &["clerk"]);
    let view = runtime
        .start(&analysis, &clerk, &[("person".to_owned(), json!({"age": 36}))], &StartOptions::default())
        .expect("runs");
    let edit = DecisionInput {
        edits: vec![("summary".to_owned(), r#"{"text": "Ada told us why"}"#.to_owned())],
        ..decision("fine", "seen")
    };
    let view = runtime.decide(&view.run, "check", &principal("olga", &["officer"]), &edit).expect("decides");
    assert_eq!(view.status, Status::Completed);
    let install = |text: &str| install(&runtime, text);
    let what_if = |plan: &Arc<Analysis>| what_if(&runtime, &view.run, &clerk, plan, false);
    // The step renamed, its answer typed without the label, and the output too.
    let renamed = install(
        &FLOW
            .replace("type Score { value: Int  note: Text @pii }", "type Plain { value: Int  note: Text }")
            .replace("output Score", "output Plain")
            .replace("infer score =", "infer guess =")
            .replace("type Out { note: Text @pii", "type Shown { note: Text")
            .replace("output out: Out", "output out: Shown")
            .replace("emit out = Out { note: score.note", "emit out = Shown { note: guess.note"),
    );
    let whatif = what_if(&renamed);
    assert!(!format!("{whatif:?}").contains("unwell"), "{whatif:?}");
    assert!(format!("{whatif:?}").contains("needs re-inference"), "{whatif:?}");
    // The edited value retyped without the label, and the output too.
    let retyped = install(
        &FLOW
            .replace("type Summary { text: Text @pii }", "type Note { text: Text }")
            .replace("let summary = Summary {", "let summary = Note {")
            .replace("type Out { note: Text @pii  text: Text @pii }", "type Shown { note: Text @pii  text: Text }")
            .replace("output out: Out", "output out: Shown")
            .replace("emit out = Out {", "emit out = Shown {"),
    );
    refused(what_if(&retyped), "Ada told", "`summary.text` loses pii");

    // The edited value labelled by what it reads, not by its type: a candidate that
    // computes it from nothing labelled would carry the edit without the label.
    const READ: &str = r#"
label pii
role clerk
role officer
type Person { id: Text  name: Text @pii }
type Out { text: Text @pii }
flow vet {
  version "1.0.0"
  owner clerk
  steward clerk
  input person: Person
  output out: Out
  access {
    trigger by clerk
    replay by clerk
  }
  let summary = "{person.name} is known to us"
  review check by officer
    outcomes fine
    reasons seen
    may edit summary
  emit out = Out { text: summary }
}
"#;
    let (runtime, analysis) = runtime_with(READ, &world);
    let view = runtime
        .start(
            &analysis,
            &clerk,
            &[("person".to_owned(), json!({"id": "P-1", "name": "Ada"}))],
            &StartOptions::default(),
        )
        .expect("runs");
    let edit =
        DecisionInput { edits: vec![("summary".to_owned(), "Ada owes us".to_owned())], ..decision("fine", "seen") };
    runtime.decide(&view.run, "check", &principal("olga", &["officer"]), &edit).expect("decides");
    let constant = crate::guarantees::install(
        &runtime,
        &READ
            .replace("type Out { text: Text @pii }", "type Shown { text: Text }")
            .replace("output out: Out", "output out: Shown")
            .replace("let summary = \"{person.name} is known to us\"", "let summary = \"{person.id}\"")
            .replace("emit out = Out { text: summary }", "emit out = Shown { text: \"{summary}!\" }"),
    );
    refused(crate::guarantees::what_if(&runtime, &view.run, &clerk, &constant, false), "owes", "`summary` loses pii");

    // A param the run was started with, retyped without its label: the value set at the
    // start is kept by the replay, so the candidate is refused.
    const PARAM: &str = r#"
label pii
role clerk
type Limit { amount: Int @pii }
type Out { over: Bool @pii }
flow vet {
  version "1.0.0"
  owner clerk
  steward clerk
  input x: Int
  param limit: Limit = Limit { amount: 5 }
  output out: Out
  access {
    trigger by clerk
    replay by clerk
  }
  emit out = Out { over: x > limit.amount }
}
"#;
    let (runtime, analysis) = runtime_with(PARAM, &world);
    let options = StartOptions { params: vec![("limit".to_owned(), json!({"amount": 987654}))], ..Default::default() };
    let view = runtime.start(&analysis, &clerk, &[("x".to_owned(), json!(3))], &options).expect("runs");
    let unlabelled = crate::guarantees::install(
        &runtime,
        &PARAM
            .replace("type Limit { amount: Int @pii }", "type Plain { amount: Int }")
            .replace("param limit: Limit = Limit {", "param limit: Plain = Plain {"),
    );
    let whatif = crate::guarantees::what_if(&runtime, &view.run, &clerk, &unlabelled, false);
    refused(whatif, "987654", "`limit.amount` loses pii");
}

/// A flow of a `pii`-labelled input `person: Person { age: Int @pii }` and an output `out`,
/// started by `clerk`: `declarations` before it (`Out` among them), `steps` in it.
fn person_flow(declarations: &str, steps: &str) -> String {
    format!(
        r#"
label pii
role clerk
type Person {{ age: Int @pii }}
{declarations}
flow chain {{
  version "1.0.0"
  owner clerk
  steward clerk
  input person: Person
  output out: Out
  access {{
    trigger by clerk
  }}
{steps}}}
"#
    )
}

/// A what-if refused because `loses`, showing nothing of `hidden`.
fn refused(whatif: Result<flow_runtime::whatif::WhatIf, flow_runtime::Error>, hidden: &str, loses: &str) {
    assert!(!format!("{whatif:?}").contains(hidden), "{whatif:?}");
    assert!(matches!(&whatif, Err(flow_runtime::Error::Plan(m)) if m.contains(loses)), "{whatif:?}");
}

/// What a system returned that does not fit the action's result type may echo what it was
/// sent: the evidence labels it with the labels of the arguments as well as of the type,
/// so a viewer without them sees a redaction marker.
#[test]
fn what_a_system_returned_carries_the_labels_of_what_it_was_sent() {
    const FLOW: &str = r#"
label pii
role clerk
role auditor
type Payment { id: Text  payee: Text @pii }
type Receipt { number: Text }
type Out { number: Text }
system ledger {
  clearance pii
  action book(id: Text, payee: Text) -> Receipt
}
flow pay {
  version "1.0.0"
  owner clerk
  steward clerk
  input payment: Payment
  output out: Out
  access {
    trigger by clerk
    view pii by auditor
    read evidence by auditor, clerk
  }
  action booked = ledger.book(payment.id, payment.payee)
  emit out = Out { number: booked.number }
}
"#;
    let world = World::answering(&[("book", json!({"number": 7, "payee": "Ada Lovelace"}))]);
    let (runtime, analysis) = runtime_with(FLOW, &world);
    let clerk = principal("cleo", &["clerk"]);
    let payment = json!({"id": "P-1", "payee": "Ada Lovelace"});
    let view =
        runtime.start(&analysis, &clerk, &[("payment".to_owned(), payment)], &StartOptions::default()).expect("runs");
    assert_eq!(view.status, Status::Failed, "{}", view.summary);
    let returned = |who: &Principal| exported(&runtime, &view.run, who, "failed", "returned");
    let hidden = returned(&clerk);
    assert!(hidden.get("$redacted").is_some(), "{hidden}");
    assert!(!hidden.to_string().contains("Ada"), "{hidden}");
    let shown = returned(&principal("ada", &["auditor"]));
    assert!(shown.to_string().contains("Ada Lovelace"), "{shown}");
}

/// What a system returned that does not fit, nested deeper than evidence is read, is kept
/// cut at that depth: the run is stored, and its evidence verifies and replays.
#[test]
fn a_result_nested_too_deep_to_read_back_is_kept_cut() {
    const FLOW: &str = r#"
role clerk
type Receipt { number: Text }
system ledger {
  action book(id: Text) -> Receipt
}
flow pay {
  version "1.0.0"
  owner clerk
  steward clerk
  input id: Text
  output number: Text
  access {
    trigger by clerk
    read evidence by clerk
    replay by clerk
  }
  action booked = ledger.book(id)
  emit number = booked.number
}
"#;
    let mut deep = json!("bottom");
    for _ in 0..1_000 {
        deep = json!([deep]);
    }
    let world = World::answering(&[("book", deep)]);
    let (runtime, analysis) = runtime_with(FLOW, &world);
    let clerk = principal("cleo", &["clerk"]);
    let view = runtime.start(&analysis, &clerk, &[("id".to_owned(), json!("P-1"))], &StartOptions::default());
    let view = view.expect("the run is stored");
    assert_eq!(view.status, Status::Failed, "{}", view.summary);
    let bundle = runtime.evidence(&view.run, &clerk).expect("exports");
    flow_runtime::evidence::verify(flow_runtime::evidence::render(&bundle).as_bytes()).expect("verifies");
    let failed = bundle["events"].as_array().into_iter().flatten().find(|e| e["event"]["event"] == "failed");
    let failed = failed.expect("a failure").clone();
    let mut returned = &failed["event"]["returned"]["$value"];
    for _ in 0..100 {
        returned = &returned[0];
    }
    assert_eq!(returned, &json!("$cut: nested deeper than 100 levels"), "{failed}");
    let replay = runtime.replay(&view.run, &clerk).expect("replays");
    assert_eq!(replay.divergence, None);
}

/// Proving information flow takes time in proportion to the plan: a chain of functions
/// each written to call the next twice (2⁴⁰ calls, were each followed) is checked, loaded
/// and run at once, and the labels still arrive (a field without them is a leak).
#[test]
fn functions_that_call_each_other_many_times_are_proved_at_once() {
    let mut functions = String::from("fn f0(x: Int) -> Int = x\n");
    for i in 1..=40 {
        // Two calls written, one made.
        functions.push_str(&format!("fn f{i}(x: Int) -> Int = if x > 0 then f{}(x) else f{}(x + 1)\n", i - 1, i - 1));
    }
    let flow = |labelled: &str| {
        person_flow(
            &format!("type Out {{ score: Int {labelled} }}\n{functions}"),
            "  emit out = Out { score: f40(person.age) }\n",
        )
    };
    let leaking = crate::check_fixture("main.flow", flow("").as_bytes());
    assert!(leaking.render().contains("`pii` data reaches field `score` of `Out`"), "{}", leaking.render());
    let world = World::answering(&[]);
    installs_and_completes(&flow("@pii"), &world);

    // Records nested two fields of the next type thirty levels deep (2³⁰ places), each
    // function called on both fields of its parameter: the compiler finds each record's
    // labels once, and the places, alike in labels and type, are one argument to the
    // runtime's proof, each body followed once.
    let mut declared = String::from("type N30 { v: Int }\nfn f30(p: N30, x: Int) -> Int = p.v + x\n");
    for i in 0..30 {
        declared.push_str(&format!(
            "type N{i} {{ a: N{j}  b: N{j} }}\nfn f{i}(p: N{i}, x: Int) -> Int = f{j}(p.a, x) + f{j}(p.b, x)\n",
            j = i + 1
        ));
    }
    let nested = format!(
        r#"
role clerk
type Out {{ v: Int }}
{declared}
flow chain {{
  version "1.0.0"
  owner clerk
  steward clerk
  input n: N0
  output out: Out
  access {{
    trigger by clerk
  }}
  emit out = Out {{ v: f0(n, 1) }}
}}
"#
    );
    let (_, analysis) = runtime_with(&nested, &world);
    assert!(analysis.leaks().is_empty(), "{:?}", analysis.leaks());
    // With a label on one of the two fields at every level, the places differ in their
    // labels, 2³⁰ ways: past what the proof follows, the plan is refused.
    let mut body = analysis.plan.body().clone();
    for i in 0..30 {
        let label = smol_str::SmolStr::new(format!("l{i}"));
        body.labels.push(label.clone());
        let record = body.records.iter_mut().find(|r| r.name == format!("N{i}")).expect("the record");
        record.fields.iter_mut().filter(|f| f.name == "a").for_each(|f| f.labels = vec![label.clone()]);
    }
    body.labels.sort();
    let edited = flow_ir::seal_and_verify(body, String::new(), Default::default(), Default::default())
        .unwrap_or_else(|failed| panic!("{}", failed.1));
    let leaks = Analysis::new(edited).leaks();
    assert!(leaks.iter().any(|l| l.contains("more than 20000 different arguments")), "{leaks:?}");
}

/// Records built inside records, each passed through a function, forty levels deep in one
/// expression of a plan (a flow nests brackets 32 deep at most, a plan 1,024): the proof
/// takes each expression once whichever way it is asked (a record's field is asked for
/// what it carries whole and for all it holds), so the plan loads at once; and the label
/// at the bottom is still checked against the field it reaches.
#[test]
fn records_built_inside_records_are_proved_at_once() {
    let mut declared = String::from("type R0 { v: Int @pii }\nfn id0(r: R0) -> R0 = r\n");
    let mut lets = String::from("  let r0 = R0 { v: person.age }\n");
    for i in 1..=40 {
        declared.push_str(&format!("type R{i} {{ a: R{j} }}\nfn id{i}(r: R{i}) -> R{i} = r\n", j = i - 1));
        lets.push_str(&format!("  let r{i} = R{i} {{ a: id{j}(r{j}) }}\n", j = i - 1));
    }
    let flow =
        person_flow(&format!("type Out {{ r: R40 }}\n{declared}"), &format!("{lets}  emit out = Out {{ r: r40 }}\n"));
    let world = World::answering(&[]);
    let (_, analysis) = runtime_with(&flow, &world);
    // The output built in one expression: each `let` read replaced by what it computes.
    fn inline(expr: &mut flow_ir::expr::Expr, lets: &[(smol_str::SmolStr, flow_ir::expr::Expr)]) {
        if let flow_ir::expr::ExprKind::Node(name) = &expr.kind
            && let Some((_, value)) = lets.iter().find(|(n, _)| n == name)
        {
            *expr = value.clone();
        }
        expr.for_each_child_mut(|child| inline(child, lets));
    }
    let plan = |bottom_labelled: bool| {
        let mut body = analysis.plan.body().clone();
        let lets: Vec<_> = body
            .nodes
            .iter()
            .filter_map(|n| match &n.kind {
                flow_ir::plan::NodeKind::Let { value } => Some((n.name.clone(), value.clone())),
                _ => None,
            })
            .collect();
        for node in &mut body.nodes {
            if let flow_ir::plan::NodeKind::Emit { value } = &mut node.kind {
                inline(value, &lets);
            }
        }
        body.edges.iter_mut().filter(|e| e.to == "out").for_each(|e| e.from = "person".into());
        body.edges.sort_by(|a, b| (&a.from, &a.to).cmp(&(&b.from, &b.to)));
        if !bottom_labelled {
            let bottom = body.records.iter_mut().find(|r| r.name == "R0").expect("the record");
            bottom.fields.iter_mut().for_each(|f| f.labels.clear());
        }
        flow_ir::seal_and_verify(body, String::new(), Default::default(), Default::default())
            .unwrap_or_else(|failed| panic!("{}", failed.1))
    };
    let leaks = Analysis::new(plan(true)).leaks();
    assert!(leaks.is_empty(), "{leaks:?}");
    // The bottom field unlabelled in the plan: the leak forty levels down is found.
    let leaks = Analysis::new(plan(false)).leaks();
    assert!(leaks.iter().any(|l| l.contains("`out` puts pii data into field `v` of `R0`")), "{leaks:?}");
}

/// Forty functions, each adding to the next one's result 250 times (as deep as a flow may
/// nest operators): the proofs follow 32 of them in one descent, 8,000 levels of
/// expression, and neither they nor the engines run out of stack on a test's thread.
#[test]
fn deep_bodies_called_deep_are_proved_and_run() {
    let mut functions = String::new();
    for i in 0..40 {
        let next = if i < 39 { format!("f{}(x)", i + 1) } else { "x".to_owned() };
        functions.push_str(&format!("fn f{i}(x: Int) -> Int = {next}{}\n", " + 1".repeat(250)));
    }
    let flow = person_flow(
        &format!("type Out {{ score: Int @pii }}\n{functions}"),
        "  emit out = Out { score: f0(person.age) }\n",
    );
    installs_and_completes(&flow, &World::answering(&[]));
}

/// A [`person_flow`] installed with no leak found, and a run of it completed.
fn installs_and_completes(flow: &str, world: &Arc<World>) {
    let (runtime, analysis) = runtime_with(flow, world);
    assert!(analysis.leaks().is_empty(), "{:?}", analysis.leaks());
    let clerk = principal("cleo", &["clerk"]);
    let person = vec![("person".to_owned(), json!({"age": 1}))];
    let view = runtime.start(&analysis, &clerk, &person, &StartOptions::default()).expect("runs");
    assert_eq!(view.status, Status::Completed, "{}", view.summary);
}

/// A hand-edited plan may chain records as long as it likes (the flow language stops
/// following fields at 64 levels): forty thousand records, each holding the next, load
/// and have their labels found on a test's thread, which recursion over them overflowed.
#[test]
fn a_plan_whose_records_chain_forty_thousand_deep_loads() {
    let mut declared = String::from("type R0 { v: Int @pii }\n");
    for i in 1..=8 {
        declared.push_str(&format!("type R{i} {{ a: R{} }}\n", i - 1));
    }
    let flow = format!(
        r#"
label pii
role clerk
{declared}type Out {{ r: R8 }}
flow chain {{
  version "1.0.0"
  owner clerk
  steward clerk
  input req: R8
  output out: Out
  access {{
    trigger by clerk
  }}
  let x = req
  emit out = Out {{ r: x }}
}}
"#
    );
    let (_, analysis) = runtime_with(&flow, &World::answering(&[]));
    // Between R1 and R0, a chain of forty thousand more.
    let mut body = analysis.plan.body().clone();
    let r1 = body.records.iter().find(|r| r.name == "R1").expect("the record").clone();
    for i in 0..40_000 {
        let mut record = r1.clone();
        record.name = format!("S{i:05}").into();
        record.fields[0].ty =
            flow_ir::ty::Ty::Named(if i == 0 { "R0".into() } else { format!("S{:05}", i - 1).into() });
        body.records.push(record);
    }
    let r1 = body.records.iter_mut().find(|r| r.name == "R1").expect("the record");
    r1.fields[0].ty = flow_ir::ty::Ty::Named("S39999".into());
    body.records.sort_by(|a, b| a.name.cmp(&b.name));
    let edited = flow_ir::seal_and_verify(body, String::new(), Default::default(), Default::default())
        .unwrap_or_else(|failed| panic!("{}", failed.1));
    let analysis = Analysis::new(edited);
    assert!(analysis.leaks().is_empty(), "{:?}", analysis.leaks());
    assert_eq!(analysis.node_labels("x"), &[] as &[smol_str::SmolStr]);
    assert_eq!(analysis.failure_labels("x"), &["pii"]);
}

/// What an `any` or `all` says carries what its condition reads of the items, and no more:
/// passed whole to a function, an item keeps its fields' labels on its fields.
#[test]
fn a_condition_over_items_carries_what_it_reads_of_them() {
    const FLOW: &str = r#"
label pii
role clerk
type Person { ssn: Text @pii  age: Int }
type Batch { people: List[Person] }
type Tag { t: Text @pii }
type Plain { t: Text }
type Out { flagged: Bool @pii  adults: Bool }
fn tagged(tag: Tag) -> Bool = len(tag.t) > 3
fn plain(p: Plain) -> Bool = len(p.t) > 1
flow screen {
  version "1.0.0"
  owner clerk
  steward clerk
  input batch: Batch
  output out: Out
  access {
    trigger by clerk
  }
  let flagged = any(batch.people, x => tagged(Tag { t: x.ssn }))
  let adults = all(batch.people, x => plain(Plain { t: "{x.age}" }))
  emit out = Out { flagged: flagged, adults: adults }
}
"#;
    let (_, analysis) = runtime_with(FLOW, &World::answering(&[]));
    assert!(analysis.leaks().is_empty(), "{:?}", analysis.leaks());
    assert_eq!(analysis.node_labels("flagged"), &["pii"]);
    assert_eq!(analysis.node_labels("adults"), &[] as &[smol_str::SmolStr]);
}

/// The runtime's proof accepts what the compiler's does where records nest: a record put
/// whole into another's field (directly, through a `let`, a function or an `if`, or built
/// in place and passed to a function) keeps its fields' labels on its fields, so the field
/// holding it needs none of its own; and the labels still reach the evidence, where a
/// viewer without them sees them redacted.
#[test]
fn a_record_put_whole_into_a_field_keeps_its_labels_on_its_fields() {
    const FLOW: &str = r#"
label pii
role clerk
role auditor
type Person { name: Text @pii  age: Int }
type Case { person: Person  again: Person  chosen: Person  built: Person  years: Int  note: Text }
type Out { case: Case  adult: Bool }
fn same(p: Person) -> Person = p
fn age_of(p: Person) -> Int = p.age
flow file {
  version "1.0.0"
  owner clerk
  steward clerk
  input person: Person
  output out: Out
  access {
    trigger by clerk
    view pii by auditor
    read evidence by auditor, clerk
  }
  let alias = person
  let case = Case {
    person: alias,
    again: same(person),
    chosen: if alias.age >= 18 then alias else same(person),
    built: same(Person { name: person.name, age: 1 }),
    years: age_of(Person { name: person.name, age: 1 }),
    note: "filed"
  }
  emit out = Out { case: case, adult: alias.age >= 18 }
}
"#;
    let world = World::answering(&[]);
    let (runtime, analysis) = runtime_with(FLOW, &world);
    assert_eq!(analysis.leaks(), Vec::<String>::new());
    let clerk = principal("cleo", &["clerk"]);
    let person = json!({"name": "Ada Lovelace", "age": 36});
    let view =
        runtime.start(&analysis, &clerk, &[("person".to_owned(), person)], &StartOptions::default()).expect("runs");
    assert_eq!(view.status, Status::Completed, "{}", view.summary);
    let hidden = runtime.evidence(&view.run, &clerk).expect("exports").to_string();
    assert!(!hidden.contains("Ada"), "{hidden}");
    let shown = runtime.evidence(&view.run, &principal("ada", &["auditor"])).expect("exports").to_string();
    assert!(shown.contains("Ada Lovelace"), "{shown}");
}

/// Information flow is sound, not bounded: a label survives records nested deeper than the
/// analysis follows field by field, and a chain of functions deeper than it inlines.
#[test]
fn labels_survive_any_nesting_and_any_chain_of_functions() {
    let mut text = String::from("label pii\nrole clerk\n");
    // R0 { inner: R1 } … R79 { secret: Text @pii }
    for i in 0..80 {
        if i == 79 {
            text.push_str(&format!("type R{i} {{ secret: Text @pii }}\n"));
        } else {
            text.push_str(&format!("type R{i} {{ inner: R{} }}\n", i + 1));
        }
    }
    // f0 calls f1 … f49, which returns its argument.
    for i in 0..50 {
        if i == 49 {
            text.push_str(&format!("fn f{i}(x: Text) -> Text = x\n"));
        } else {
            text.push_str(&format!("fn f{i}(x: Text) -> Text = f{}(x)\n", i + 1));
        }
    }
    let path: String = (0..79).map(|_| ".inner").collect();
    text.push_str(&format!(
        r#"type P {{ s: Text @pii }}
type Out {{ deep: Text  chained: Text }}
flow leaky {{
  version "1.0.0"
  owner clerk
  steward clerk
  input r: R0
  input p: P
  output out: Out
  access {{
    trigger by clerk
  }}
  emit out = Out {{ deep: r{path}.secret, chained: f0(p.s) }}
}}
"#
    ));
    let checked = crate::check_fixture("main.flow", text.as_bytes());
    let leaks: Vec<String> = checked
        .diagnostics
        .iter()
        .filter(|d| d.code == flow_diagnostics::Code::E2008)
        .map(|d| d.message.clone())
        .collect();
    for field in ["deep", "chained"] {
        assert!(leaks.iter().any(|m| m.contains(&format!("field `{field}`"))), "{field}: {}", checked.render());
    }
}

/// What-if reuses what did not change: a param set to the value the run had, spelt
/// otherwise, changes nothing; a param that only a row the approval did not reach reads
/// keeps the approvers' decision.
#[test]
fn what_if_reuses_decisions_on_what_the_step_read() {
    const FLOW: &str = r#"
role clerk
role manager
role auditor
enum Tier { low, medium }
type Request { id: Text  amount: Money[USD]  tier: Tier }
type Out { approved: Bool }
flow spend {
  version "1.0.0"
  owner manager
  steward manager
  input request: Request
  output out: Out
  param auto_limit: Money[USD] = 10_000 USD
  access {
    trigger by clerk
    replay by auditor
  }
  approval sign {
    when request.tier == low and request.amount < auto_limit => auto
    when request.tier == low                                 => 1 of manager
    when request.tier == medium                              => 1 of manager
  }
  emit out = Out { approved: sign.approved }
}
"#;
    let world = World::answering(&[]);
    let (runtime, analysis) = runtime_with(FLOW, &world);
    let clerk = principal("cleo", &["clerk"]);
    let request = json!({"id": "R1", "amount": "5000 USD", "tier": "medium"});
    let view =
        runtime.start(&analysis, &clerk, &[("request".to_owned(), request)], &StartOptions::default()).expect("runs");
    let view = runtime
        .decide(&view.run, "sign", &principal("mia", &["manager"]), &decision("approve", "ok"))
        .expect("decides");
    assert_eq!(view.status, Status::Completed);
    let auditor = principal("ada", &["auditor"]);
    let set = |value: &str| flow_runtime::ReplayChanges {
        params: vec![("auto_limit".to_owned(), json!(value))],
        ..flow_runtime::ReplayChanges::default()
    };
    let same = runtime.what_if(&view.run, &auditor, &set("10000.00 USD")).expect("what-if");
    assert!(same.exact(), "the same value spelt otherwise changes nothing: {same:?}");
    let higher = runtime.what_if(&view.run, &auditor, &set("20000 USD")).expect("what-if");
    assert_eq!(higher.after, "completed", "{higher:?}");
    assert!(
        higher.changes.iter().all(|c| c.node == "auto_limit"),
        "only the param changes; the manager's approval is reused: {higher:?}"
    );
}

mod exactness {
    use proptest::prelude::*;
    use rust_decimal::Decimal;

    fn plan() -> flow_ir::PlanBody {
        serde_json::from_value(serde_json::json!({
            "flow": {"name": "f", "version": "1", "owner": "m", "steward": "m"},
            "outputs": [], "nodes": [], "edges": [], "grants": [], "evidence": {"retain": null},
            "roles": [], "labels": [], "records": [], "enums": [], "sources": [], "models": [], "systems": [],
            "functions": []
        }))
        .expect("an empty plan")
    }

    fn number() -> impl Strategy<Value = String> {
        (any::<bool>(), "[1-9][0-9]{0,34}|0", proptest::option::of("[0-9]{1,34}")).prop_map(
            |(negative, whole, fraction)| {
                let sign = if negative { "-" } else { "" };
                match fraction {
                    Some(fraction) => format!("{sign}{whole}.{fraction}"),
                    None => format!("{sign}{whole}"),
                }
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        /// Decimals and amounts given as JSON are read exactly or refused: whatever is read
        /// is the number written, digit for digit.
        #[test]
        fn decimals_and_amounts_read_exactly_or_are_refused(written in number()) {
            let plan = plan();
            // The number itself: zeros at the end of a fraction are no digits of it.
            let normal = if written.contains('.') { written.trim_end_matches('0').trim_end_matches('.') } else { &written };
            let exact = Decimal::from_str_exact(normal).ok();
            let decimal = flow_ir::ty::Ty::Decimal;
            // As a JSON number, through the reader that keeps what it was given.
            if let Ok(json) = flow_runtime::value::parse_exact(&written)
                && let Ok(value) = flow_runtime::value::decode(&plan, &json, &decimal, "$")
            {
                prop_assert_eq!(Some(value), exact.map(flow_runtime::value::Value::Decimal), "{} as a number", written);
            }
            // As a string.
            let read = flow_runtime::value::decode(&plan, &serde_json::json!(written), &decimal, "$");
            match (read, exact) {
                (Ok(value), Some(exact)) => prop_assert_eq!(value, flow_runtime::value::Value::Decimal(exact)),
                (Ok(value), None) => prop_assert!(false, "{} read as {:?}, which it is not", written, value),
                (Err(_), _) => {}
            }
            // An amount.
            let money = flow_runtime::value::decode(&plan, &serde_json::json!(format!("{written} USD")), &flow_ir::ty::Ty::Money(None), "$");
            if let Ok(flow_runtime::value::Value::Money(m)) = money {
                prop_assert_eq!(Some(m.amount), exact, "{} USD", written);
            }
        }
    }

    /// JSON text hidden in a string under the key `serde_json` reads specially with its
    /// `raw_value` feature (which this crate turns on, as `flowc` has it) is refused, however
    /// the key is escaped: its numbers would escape the exactness check.
    #[test]
    fn json_text_hidden_under_the_raw_value_key_is_refused() {
        let inexact = r#"{"rate": 0.10000000000000001}"#;
        assert!(flow_runtime::value::parse_exact(inexact).is_err(), "the number itself is refused");
        let hidden = serde_json::to_string(inexact).expect("a JSON string");
        for key in [
            r#""$serde_json::private::RawValue""#,
            r#""\u0024serde_json::private::RawValue""#,
            r#""$serde_json::private::RawValu\u0065""#,
        ] {
            let text = format!(r#"{{"inputs": {{"app": {{{key}: {hidden}}}}}}}"#);
            // The reader itself takes the string for JSON text, and reads the number inexactly.
            let read: serde_json::Value = serde_json::from_str(&text).expect("JSON");
            assert_eq!(read["inputs"]["app"]["rate"], serde_json::json!(0.1), "{text}");
            let refused = flow_runtime::value::parse_exact(&text).expect_err(&text);
            assert!(refused.contains("reads specially"), "{text}: {refused}");
        }
        // The same key not first is refused alike; the string as a value, and other keys, are
        // read as they are.
        assert!(flow_runtime::value::parse_exact(r#"{"a": 1, "$serde_json::private::RawValue" : 2}"#).is_err());
        // And the key by which the reader would read a number from a string, were its
        // `arbitrary_precision` feature on.
        assert!(
            flow_runtime::value::parse_exact(r#"{"$serde_json::private::Number": "0.10000000000000001"}"#).is_err()
        );
        for text in [r#"{"a": "$serde_json::private::RawValue"}"#, r#"{"a": "$serde_json", "$b": 1, "c\u0024": 2}"#] {
            assert!(flow_runtime::value::parse_exact(text).is_ok(), "{text}");
        }
    }

    /// Numbers the property found: their shortest binary floating point spelling has 16
    /// digits, and a reader that rounds them otherwise than the checker did read another
    /// number than was written.
    #[test]
    fn numbers_that_binary_floating_point_rounds_at_the_edge_are_read_exactly_or_refused() {
        for written in ["0.74052357226556490", "0.7405235722655649"] {
            let json = flow_runtime::value::parse_exact(written).expect("exact as a JSON number");
            let read = flow_runtime::value::decode(&plan(), &json, &flow_ir::ty::Ty::Decimal, "$");
            match read {
                Ok(value) => assert_eq!(
                    value,
                    flow_runtime::value::Value::Decimal(
                        Decimal::from_str_exact("0.7405235722655649").expect("a decimal")
                    ),
                    "{written}"
                ),
                Err(error) => assert!(error.to_string().contains("write it as a string"), "{written}: {error}"),
            }
        }
    }
}

/// Evidence conforms to its plan only if nothing is decided while a blocking gate holds the
/// run but the override of that gate: a soft gate's decision copied into a blocked run's
/// events is found.
#[test]
fn evidence_of_a_decision_while_blocked_does_not_conform() {
    let world = payment_world();
    let (runtime, analysis) = runtime_with(PAYMENT, &world);
    let blocked = pay(&runtime, &analysis, "5000 USD", "listed");
    assert_eq!(blocked.status, Status::Blocked);
    let waiting = pay(&runtime, &analysis, "5000 USD", "acme");
    runtime
        .decide(&waiting.run, "large", &principal("olga", &["officer"]), &decision("approve", "ok"))
        .expect("decides");
    let json = |run: &str| -> Vec<serde_json::Value> {
        events(&runtime, run).into_iter().map(|e| flow_runtime::encode_event(&analysis, e)).collect()
    };
    let mut forged = json(&blocked.run);
    assert_eq!(flow_runtime::conformance::problems(&analysis, &forged), Vec::<String>::new());
    let decided = json(&waiting.run).into_iter().find(|e| e["event"] == "gate_decided").expect("a decision");
    forged.push(decided);
    let problems = flow_runtime::conformance::problems(&analysis, &forged);
    assert!(
        problems.iter().any(|p| p.ends_with("decides `large` while a blocking gate holds the run")),
        "{problems:?}"
    );
}

/// A failed run resumed by the principal granted `resume` replays exactly, the action's
/// failed call and its second call each answered as recorded; evidence that resumes a step
/// whose failure did not end the run, or decides a step after the run was cancelled, does
/// not conform.
#[test]
fn evidence_of_a_resume_or_cancel_out_of_place_does_not_conform() {
    let flow = PAYMENT.replace("replay by officer", "replay by officer\n    cancel by officer\n    resume by officer");
    let world = World::answering(&[("scorer", json!({"value": 1}))]);
    let (runtime, analysis) = runtime_with(&flow, &world);
    let officer = principal("olga", &["officer"]);
    let failed = pay(&runtime, &analysis, "50 USD", "acme");
    assert_eq!(failed.status, Status::Failed);
    world
        .answers
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(("book".into(), json!({"number": "B-1"})));
    assert!(runtime.resume_failed(&failed.run, &principal("cleo", &["clerk"]), "retry").is_err(), "a clerk resumes");
    let resumed = runtime.resume_failed(&failed.run, &officer, "ledger_back").expect("resumes");
    assert_eq!(resumed.status, Status::Completed);
    assert_eq!(world.calls().iter().filter(|c| *c == "action ledger.book").count(), 2);
    let replay = runtime.replay(&failed.run, &officer).expect("replays");
    assert!(replay.divergence.is_none(), "{:?}", replay.divergence);
    let json = |run: &str| -> Vec<Json> {
        events(&runtime, run).into_iter().map(|e| flow_runtime::encode_event(&analysis, e)).collect()
    };
    let recorded = json(&failed.run);
    assert_eq!(flow_runtime::conformance::problems(&analysis, &recorded), Vec::<String>::new());
    let mut elsewhere = recorded.clone();
    let at = elsewhere.iter().position(|e| e["event"] == "resumed").expect("a resume");
    elsewhere[at]["node"] = json!("note");
    let problems = flow_runtime::conformance::problems(&analysis, &elsewhere);
    assert!(problems.iter().any(|p| p.ends_with("resumes `note`, whose failure did not end the run")), "{problems:?}");

    let waiting = pay(&runtime, &analysis, "5000 USD", "acme");
    let other = pay(&runtime, &analysis, "5000 USD", "acme");
    runtime.cancel(&waiting.run, &officer, "withdrawn", Some("asked to")).expect("cancels");
    runtime.decide(&other.run, "large", &officer, &decision("approve", "ok")).expect("decides");
    let mut forged = json(&waiting.run);
    assert_eq!(flow_runtime::conformance::problems(&analysis, &forged), Vec::<String>::new());
    forged.push(json(&other.run).into_iter().find(|e| e["event"] == "gate_decided").expect("a decision"));
    let problems = flow_runtime::conformance::problems(&analysis, &forged);
    assert!(problems.iter().any(|p| p.ends_with("comes after the run ended")), "{problems:?}");
}

/// An idempotency key is bound to its request: a second run that uses a key with the same
/// arguments (amounts and decimals spelt otherwise) gets the recorded result without a
/// call; with other arguments, its step fails without saying what the other request held,
/// and nothing is called.
#[test]
fn an_idempotency_key_answers_only_its_own_request() {
    const FLOW: &str = r#"
role clerk
type Order { id: Text  amount: Money[USD]  share: Decimal }
type Receipt { number: Text }
type Out { number: Text }
system ledger {
  action book(id: Text, amount: Money[USD], share: Decimal) -> Receipt
}
flow booking {
  version "1.0.0"
  owner clerk
  steward clerk
  input order: Order
  output out: Out
  access {
    trigger by clerk
  }
  action booked = ledger.book(order.id, order.amount, order.share)
    idempotency order.id
  emit out = Out { number: booked.number }
}
"#;
    let world = World::answering(&[("book", json!({"number": "B-1"}))]);
    let (runtime, analysis) = runtime_with(FLOW, &world);
    let clerk = principal("cleo", &["clerk"]);
    let order =
        |amount: &str, share: &str| vec![("order".to_owned(), json!({"id": "O-1", "amount": amount, "share": share}))];
    let first = runtime.start(&analysis, &clerk, &order("100 USD", "0.5"), &StartOptions::default()).expect("runs");
    assert_eq!(first.status, Status::Completed);
    let again =
        runtime.start(&analysis, &clerk, &order("100.00 USD", "0.500"), &StartOptions::default()).expect("runs");
    assert_eq!(again.status, Status::Completed, "the same request (spelt otherwise) reuses the result");
    assert_eq!(world.calls(), ["action ledger.book"], "called once");
    let other = runtime.start(&analysis, &clerk, &order("900 USD", "0.5"), &StartOptions::default()).expect("runs");
    assert_eq!(other.status, Status::Failed);
    assert!(other.summary.contains("was used for another request"), "{}", other.summary);
    // What the other request held is not shown, not even as a digest: whoever sees this
    // run could confirm a guess of it.
    assert!(!other.summary.contains("blake3:"), "{}", other.summary);
    assert_eq!(world.calls(), ["action ledger.book"], "nothing more was called");
    let failed = events(&runtime, &other.run);
    assert!(failed.iter().any(|e| matches!(e, Event::Failed { key_taken: true, .. })), "{failed:?}");
    for event in failed.iter().filter(|e| matches!(e, Event::Failed { .. } | Event::Settled { .. })) {
        let stored = flow_runtime::encode_event(&analysis, event.clone()).to_string();
        assert!(!stored.contains("blake3:"), "no digest of the other request is recorded: {stored}");
    }
    // And the failure replays.
    let replay = runtime.replay(&other.run, &principal("cleo", &["clerk"]));
    assert!(matches!(&replay, Err(flow_runtime::Error::Refused { .. })), "replay needs its grant: {replay:?}");

    // Another flow, or another action, that sends the same key and arguments to the same
    // system sends another request: the result recorded for `booking` does not answer it.
    for (flow, action) in [("rebooking", "book"), ("booking", "void")] {
        let text = FLOW
            .replace("flow booking", &format!("flow {flow}"))
            .replace("ledger.book(", &format!("ledger.{action}("))
            .replace(
                "action book(id: Text, amount: Money[USD], share: Decimal) -> Receipt",
                "action book(id: Text, amount: Money[USD], share: Decimal) -> Receipt\n  action void(id: Text, amount: Money[USD], share: Decimal) -> Receipt",
            );
        let checked = crate::check_fixture("main.flow", text.as_bytes());
        assert!(checked.clean(), "{}", checked.render());
        let plan = crate::plans(&checked).into_iter().flatten().next().expect("a plan");
        let analysis = runtime.install(plan).expect("installs");
        let view = runtime.start(&analysis, &clerk, &order("100 USD", "0.5"), &StartOptions::default()).expect("runs");
        assert_eq!(view.status, Status::Failed, "{flow} {action}");
        assert!(view.summary.contains("was used for another request"), "{flow} {action}: {}", view.summary);
        assert_eq!(world.calls(), ["action ledger.book"], "{flow} {action}: nothing more was called");
    }
}

/// A plan is believed only after information flow is proved again when it is loaded: a
/// plan file whose labels were taken off a field, its hash recomputed, verifies as a plan
/// but is not installed, and a stored one is not loaded.
#[test]
fn a_plan_whose_labels_were_removed_is_refused() {
    let world = payment_world();
    let (runtime, _) = runtime_with(PAYMENT, &world);
    // Each fixture compiled, its model's clearance and then the labels of one record taken
    // off (the hash recomputed): refused with `record_leak`; and the plan as compiled installs.
    let check = |fixture: &str, record: &str, record_leak: &str| {
        let checked = crate::check_fixture("main.flow", fixture.as_bytes());
        assert!(checked.clean(), "{}", checked.render());
        let plan = crate::plans(&checked).into_iter().flatten().next().expect("a plan");
        let reseal = |body: flow_ir::PlanBody| {
            flow_ir::seal_and_verify(body, String::new(), Default::default(), Default::default())
                .unwrap_or_else(|failed| panic!("{}", failed.1))
        };
        let mut unclear = plan.body().clone();
        unclear.models.iter_mut().for_each(|m| m.clearance.clear());
        let mut unlabelled = plan.body().clone();
        unlabelled
            .records
            .iter_mut()
            .filter(|r| r.name == record)
            .for_each(|r| r.fields.iter_mut().for_each(|f| f.labels.clear()));
        for (body, leak) in [(unclear, "sends pii data to model `scorer`"), (unlabelled, record_leak)] {
            let refused = runtime.install(reseal(body));
            assert!(matches!(&refused, Err(flow_runtime::Error::Plan(m)) if m.contains(leak)), "{refused:?}");
        }
        let installed = runtime.install(plan);
        assert!(installed.is_ok(), "the plan as compiled installs: {installed:?}");
    };
    // The person's name would reach the model, or be shown to everyone in the output.
    check(FAILING_LABELS, "Out", "into field `name` of `Out`");
    // What a record built for a model holds, and what a function a fallback calls puts in
    // the record it builds, are proved too.
    check(BUILT_LABELS, "Score", "into field `note` of `Score` (in a function it calls)");
}

/// A flow whose model gets a record built of labelled data, and whose fallback calls a
/// function that puts labelled data into the record it builds.
const BUILT_LABELS: &str = r#"
label pii
role clerk
type Person { name: Text @pii  age: Int }
type Named { name: Text @pii }
type Score { value: Int  note: Text @pii }
type Out { value: Int  guessed: Bool }
model scorer {
  provider "command"
  name "scorer"
  version "1"
  digest "sha256:0000000000000000000000000000000000000000000000000000000000000001"
  input (who: Named)
  output Score
  clearance pii
}
fn guess(p: Person) -> Score = Score { value: p.age, note: p.name }
flow score {
  version "1.0.0"
  owner clerk
  steward clerk
  input person: Person
  output out: Out
  access {
    trigger by clerk
  }
  infer scored = scorer(who: Named { name: person.name }) fallback guess(person)
  emit out = Out { value: scored.value, guessed: degraded(scored) }
}
"#;

/// A flow that sends labelled data only to a model cleared for it.
const FAILING_LABELS: &str = r#"
label pii
role clerk
type Person { name: Text @pii }
type Score { value: Int }
type Out { value: Int  name: Text @pii }
model scorer {
  provider "command"
  name "scorer"
  version "1"
  digest "sha256:0000000000000000000000000000000000000000000000000000000000000001"
  input (name: Text)
  output Score
  clearance pii
}
flow score {
  version "1.0.0"
  owner clerk
  steward clerk
  input person: Person
  output out: Out
  access {
    trigger by clerk
  }
  infer scored = scorer(name: person.name) fallback Score { value: 0 }
  emit out = Out { value: if degraded(scored) then 0 else scored.value, name: person.name }
}
"#;

/// What a person deciding sees beside each field they may edit is its value as it stands,
/// redacted for their `view` grants as every value shown is: a labelled value they may not
/// view shows its labels, never the value, whether the place is labelled by its type or by
/// what it was computed from.
#[test]
fn a_reviewer_sees_the_values_they_may_edit_only_as_their_grants_allow() {
    const FLOW: &str = r#"
label pii
role clerk
role officer
role auditor
type Person { id: Text  name: Text @pii }
type Summary { text: Text @pii  count: Int }
type Out { text: Text @pii }
flow vet {
  version "1.0.0"
  owner clerk
  steward clerk
  input person: Person
  output out: Out
  access {
    trigger by clerk
    view pii by auditor
  }
  let summary = Summary { text: "noted {person.id}", count: 2 }
  let known = "{person.name} is known to us"
  review check by officer
    outcomes fine
    reasons seen
    may edit summary.text, summary.count, known
  emit out = Out { text: "{summary.text} {known}" }
}
"#;
    let (runtime, analysis) = runtime_with(FLOW, &World::answering(&[]));
    let clerk = principal("cleo", &["clerk"]);
    let person = json!({"id": "p1", "name": "Ada Lovelace"});
    let view =
        runtime.start(&analysis, &clerk, &[("person".to_owned(), person)], &StartOptions::default()).expect("runs");
    let seen = |roles: &[&str]| {
        let values = runtime.edit_values(&view.run, "check", &principal("olga", roles)).expect("reads");
        values.into_iter().map(|(field, value)| format!("{field}={value}")).collect::<Vec<_>>().join(" ")
    };
    let officer = seen(&["officer"]);
    assert!(!officer.contains("Ada") && !officer.contains("noted"), "{officer}");
    assert!(officer.contains("summary.count=2") && officer.contains(r#"known={"$labels":["pii"]"#), "{officer}");
    assert!(officer.contains(r#"summary.text={"$labels":["pii"]"#), "{officer}");
    let auditor = seen(&["officer", "auditor"]);
    assert!(auditor.contains("Ada Lovelace is known to us") && auditor.contains("noted"), "{auditor}");
    // A step that edits nothing, or is not a review: nothing to show.
    assert!(runtime.edit_values(&view.run, "summary", &clerk).expect("reads").is_empty());
}
