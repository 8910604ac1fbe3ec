//! Retrieval over generated answers: a retriever answers a `retrieve` step with a random
//! snapshot (the pinned one or another), a random age, random documents (some that do not
//! fit the corpus's type, sometimes more than asked for) or a failure, under a corpus that
//! refuses or degrades a mismatch. Whatever it answers, the run ends as the corpus says
//! (refused, degraded or as found — never a mismatch taken silently), the evidence records
//! the snapshot searched and a digest of each document that is the digest of what the step
//! gave, a replay is exact without searching, the bundle verifies, and nothing a document
//! holds reaches someone not granted to view the corpus's label.

use std::sync::{Arc, Mutex};

use flow_runtime::provider::ProviderError;
use flow_runtime::retrieval::{Found, RetrievalReply, RetrievalRequest, Retriever};
use flow_runtime::store::SqliteStore;
use flow_runtime::{Runtime, StartOptions};
use proptest::prelude::*;
use serde_json::json;

use crate::guarantees::principal;

/// What every document holds, so that it can be looked for where it must not be.
const SENTINEL: &str = "SENTINEL";

fn flow(on_mismatch: &str, freshness: bool, top: u32) -> String {
    let freshness = if freshness { "freshness 30d" } else { "" };
    format!(
        r#"
label secret
role clerk
role auditor
type Request {{ id: Text, purpose: Text }}
type Passage {{ id: Text, text: Text }}
type Result {{ count: Int @secret, stale: Bool }}
corpus policy: Passage {{
  retriever "index"
  authority "policy-office"
  snapshot "v7"
  labels secret
  {freshness}
  on mismatch {on_mismatch}
}}
flow lending {{
  version "1.0.0"
  owner auditor
  steward auditor
  input request: Request
  output result: Result
  access {{
    trigger by clerk
    set clock by clerk
    view secret by auditor
    replay by auditor
    read evidence by auditor, clerk
  }}
  retrieve passages = policy("{{request.purpose}}") top {top}
  emit result = Result {{ count: len(passages), stale: degraded(passages) }}
}}
"#
    )
}

/// A retriever that answers what the case says, and counts the searches.
struct Answer {
    reply: Result<RetrievalReply, String>,
    searches: Mutex<usize>,
}

impl Retriever for Answer {
    fn describe(&self) -> String {
        "the case's answer".to_owned()
    }

    fn retrieve(&self, _request: &RetrievalRequest<'_>) -> Result<RetrievalReply, ProviderError> {
        *self.searches.lock().unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
        self.reply.clone().map_err(|message| ProviderError { message, attempts: 1 })
    }
}

/// A retriever's answer: whether it searched the pinned snapshot, how many days old it said
/// it was, and each document's identifier and whether it fits the corpus's type.
type Answered = (bool, Option<i64>, Vec<(String, bool)>);

#[derive(Clone, Debug)]
struct Case {
    degrade: bool,
    freshness: bool,
    top: u32,
    /// `None`: the retriever fails.
    answer: Option<Answered>,
}

fn case() -> impl Strategy<Value = Case> {
    let document = ("[a-z]{1,8}", proptest::bool::weighted(0.9));
    let answer = (any::<bool>(), proptest::option::of(0i64..90), proptest::collection::vec(document, 0..5));
    (any::<bool>(), any::<bool>(), 1u32..4, proptest::option::weighted(0.9, answer))
        .prop_map(|(degrade, freshness, top, answer)| Case { degrade, freshness, top, answer })
}

/// The run's clock.
const NOW: i64 = 1_796_040_000; // 2026-12-01T12:00:00Z

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn a_search_ends_as_the_corpus_says_is_recorded_and_replays_exactly(case in case()) {
        let reply = match &case.answer {
            None => Err(format!("the index is down {SENTINEL}")),
            Some((pinned, age, documents)) => Ok(RetrievalReply {
                snapshot: if *pinned { "v7".to_owned() } else { "v8".to_owned() },
                as_of: age.map(|days| flow_ir::expr::Timestamp { seconds: NOW - days * 86_400, nanos: 0 }),
                documents: documents
                    .iter()
                    .map(|(id, fits)| {
                        let id = format!("{SENTINEL}-{id}");
                        let document = if *fits {
                            json!({"id": id, "text": format!("{SENTINEL} text of {id}")})
                        } else {
                            json!({"id": id})
                        };
                        Found { id, document }
                    })
                    .collect(),
                attempts: 1,
            }),
        };
        let retriever = Arc::new(Answer { reply: reply.clone(), searches: Mutex::new(0) });
        let checked = crate::check_fixture(
            "main.flow",
            flow(if case.degrade { "degrade" } else { "refuse" }, case.freshness, case.top).as_bytes(),
        );
        prop_assert!(checked.clean(), "{}", checked.render());
        let plan = crate::plans(&checked).into_iter().flatten().next().expect("a plan");
        let store = SqliteStore::open(std::path::Path::new(":memory:")).expect("a store in memory");
        let mut runtime = Runtime::new(Box::new(store));
        runtime.register_retriever("policy", retriever.clone());
        let analysis = runtime.install(plan).expect("installs");
        let clerk = principal("cleo", &["clerk"]);
        let auditor = principal("aud", &["auditor"]);
        runtime.set_directory(flow_runtime::Directory::new(["cleo".to_owned(), "aud".to_owned()]));
        let options = StartOptions {
            clock: Some(flow_ir::expr::Timestamp { seconds: NOW, nanos: 0 }),
            params: Vec::new(),
        };
        let inputs = request();
        let view = runtime.start(&analysis, &clerk, &inputs, &options).expect("starts");

        // What the run must come to.
        let expected: Result<(usize, bool), ()> = match &reply {
            Err(_) => Err(()),
            Ok(reply) if reply.documents.len() > case.top as usize => Err(()),
            Ok(reply) if reply.documents.iter().any(|d| d.document.get("text").is_none()) => Err(()),
            Ok(reply) => {
                let other = reply.snapshot != "v7";
                let old = case.freshness && reply.as_of.is_none_or(|t| NOW - t.seconds > 30 * 86_400);
                match (other || old, case.degrade) {
                    (true, false) => Err(()),
                    (mismatch, _) => Ok((reply.documents.len(), mismatch)),
                }
            }
        };
        let status = view.status.as_str();
        let events = crate::guarantees::events(&runtime, &view.run);
        let retrieved = events.iter().find_map(|e| match e {
            flow_runtime::event::Event::Retrieved(r) => Some(r.clone()),
            _ => None,
        });
        let retrieved = retrieved.expect("the search is recorded");
        prop_assert_eq!(retrieved.pinned.as_str(), "v7");
        match expected {
            Err(()) => prop_assert_eq!(status, "failed"),
            Ok((count, degraded)) => {
                prop_assert_eq!(status, "completed");
                prop_assert_eq!(retrieved.degraded, degraded);
                let seen = runtime.status(&view.run, Some(&auditor)).expect("status");
                let output = &seen.outputs["result"];
                prop_assert_eq!(output["count"]["$value"].as_i64(), Some(count as i64), "{}", output);
                prop_assert_eq!(output["stale"].as_bool(), Some(degraded));
                // Each digest is the digest of the document the step gave.
                let Some(flow_runtime::value::Value::List(documents)) = &retrieved.value else {
                    panic!("no documents recorded")
                };
                let found = retrieved.found();
                prop_assert_eq!(documents.len(), found.len());
                for (document, (_, digest)) in documents.iter().zip(&found) {
                    prop_assert_eq!(digest, &flow_runtime::digest::digest(&document.to_json()));
                }
            }
        }
        if let Ok(reply) = &reply
            && retrieved.error.is_none()
        {
            prop_assert_eq!(retrieved.snapshot.as_deref(), Some(reply.snapshot.as_str()));
        }

        // A replay reads what was recorded: exact, and nothing searched again.
        let searched = *retriever.searches.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let replay = runtime.replay(&view.run, &auditor).expect("replays");
        prop_assert!(replay.divergence.is_none(), "{:?}", replay.divergence);
        prop_assert_eq!(*retriever.searches.lock().unwrap_or_else(std::sync::PoisonError::into_inner), searched);

        // The evidence verifies, and what the documents hold reaches only the auditor.
        for who in [&auditor, &clerk] {
            let bundle = runtime.evidence(&view.run, who).expect("exports");
            let bytes = flow_runtime::evidence::render(&bundle);
            prop_assert!(flow_runtime::evidence::verify(bytes.as_bytes()).is_ok());
            if who.id == "cleo" {
                prop_assert!(!bytes.contains(SENTINEL), "the clerk's bundle holds a document: {}", bytes);
                // Not even how many were found.
                let event = bundle["events"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| &e["event"])
                    .find(|e| e["event"] == "retrieved")
                    .cloned()
                    .unwrap_or_default();
                prop_assert!(event["documents"].get("$redacted").is_some(), "{}", event);
            }
        }
        let shown = runtime.show(&view.run, Some(&clerk)).expect("shows");
        prop_assert!(!shown.contains(SENTINEL), "{}", shown);
        let status = runtime.status(&view.run, Some(&clerk)).expect("status").to_json().to_string();
        prop_assert!(!status.contains(SENTINEL), "{}", status);
    }
}

/// A runtime for tests on a store in memory, with `source` (checked clean) installed and its
/// corpus `policy` searched by `retriever`.
fn installed(source: &str, retriever: Arc<Answer>) -> (Runtime, Arc<flow_runtime::analysis::Analysis>) {
    let checked = crate::check_fixture("main.flow", source.as_bytes());
    assert!(checked.clean(), "{}", checked.render());
    let plan = crate::plans(&checked).into_iter().flatten().next().expect("a plan");
    let store = SqliteStore::open(std::path::Path::new(":memory:")).expect("a store in memory");
    let mut runtime = Runtime::new(Box::new(store));
    runtime.register_retriever("policy", retriever);
    runtime.set_testing(true);
    let analysis = runtime.install(plan).expect("installs");
    (runtime, analysis)
}

/// A retriever that finds one document, `a`, in `snapshot` published at `as_of`.
fn one_document(snapshot: &str, as_of: Option<flow_ir::expr::Timestamp>) -> Arc<Answer> {
    let found = Found { id: "a".to_owned(), document: json!({"id": "a", "text": "t"}) };
    let reply = RetrievalReply { snapshot: snapshot.to_owned(), as_of, documents: vec![found], attempts: 1 };
    Arc::new(Answer { reply: Ok(reply), searches: Mutex::new(0) })
}

/// The input of a run of the flow.
fn request() -> Vec<(String, serde_json::Value)> {
    vec![("request".to_owned(), json!({"id": "R1", "purpose": "equipment"}))]
}

/// A recorded search that the runtime would not have made — a mismatch taken silently,
/// documents beside a failure, a degradation the corpus does not allow, another pin, a
/// second search without a resume — is not an event of the plan: `flowc verify` names it.
#[test]
fn a_forged_search_is_not_an_event_of_the_plan() {
    let (runtime, analysis) = installed(&flow("refuse", false, 3), one_document("v7", None));
    let clerk = principal("cleo", &["clerk"]);
    let auditor = principal("aud", &["auditor"]);
    let view = runtime.start(&analysis, &clerk, &request(), &StartOptions::default()).expect("starts");
    let bundle = runtime.evidence(&view.run, &auditor).expect("exports");
    let events: Vec<serde_json::Value> =
        bundle["events"].as_array().expect("events").iter().map(|e| e["event"].clone()).collect();
    assert!(flow_runtime::conformance::problems(&analysis, &events).is_empty());
    let at = events.iter().position(|e| e["event"] == "retrieved").expect("a search");
    type Forge<'f> = &'f dyn Fn(&mut serde_json::Value);
    let forgeries: [(&str, Forge<'_>); 6] = [
        ("took another snapshot", &|e| e["snapshot"] = json!("v8")),
        ("neither a failure nor an answer", &|e| e["error"] = json!("down")),
        ("not what the corpus does", &|e| {
            e["degraded"] = json!(true);
            e["reason"] = json!("corpus `policy`: older");
        }),
        ("without its reason", &|e| e["refused"] = json!(true)),
        ("pinned snapshot", &|e| e["pinned"] = json!("v6")),
        ("number of documents", &|e| e["top"] = json!(9)),
    ];
    for (problem, forge) in forgeries {
        let mut forged = events.clone();
        forge(&mut forged[at]);
        let problems = flow_runtime::conformance::problems(&analysis, &forged);
        assert!(problems.iter().any(|p| p.contains(problem)), "{problem}: {problems:?}");
    }
    let mut twice = events.clone();
    twice.insert(at + 1, events[at].clone());
    let problems = flow_runtime::conformance::problems(&analysis, &twice);
    assert!(problems.iter().any(|p| p.contains("had already run")), "{problems:?}");
    // After a failed search, only the step's failure may follow.
    let mut failed = events.clone();
    failed[at]["error"] = json!({"$labels": ["secret"], "$salt": "00000000000000000000000000000000", "$value": "down"});
    for key in ["value", "snapshot"] {
        failed[at].as_object_mut().expect("an event").remove(key);
    }
    failed[at]["documents"]["$value"] = json!([]);
    let problems = flow_runtime::conformance::problems(&analysis, &failed[..=at]);
    assert!(problems.is_empty(), "{problems:?}");
    failed.truncate(at + 1);
    failed.push(events[at].clone());
    let problems = flow_runtime::conformance::problems(&analysis, &failed);
    assert!(problems.iter().any(|p| p.contains("again without a resume")), "{problems:?}");
}

/// A what-if never searches: the same plan reuses the recorded documents; a candidate whose
/// query differs holds the step as needing a new search.
#[test]
fn a_what_if_reuses_the_recorded_search_and_holds_a_new_query() {
    let source = flow("refuse", false, 3);
    let retriever = one_document("v7", None);
    let (runtime, analysis) = installed(&source, retriever.clone());
    let auditor = principal("aud", &["auditor"]);
    let inputs = request();
    let view =
        runtime.start(&analysis, &principal("cleo", &["clerk"]), &inputs, &StartOptions::default()).expect("starts");
    let same = flow_runtime::ReplayChanges { plan: Some(analysis.clone()), ..flow_runtime::ReplayChanges::default() };
    let whatif = runtime.what_if(&view.run, &auditor, &same).expect("the what-if runs");
    assert!(whatif.exact(), "{whatif:?}");
    let other = source.replace(r#"policy("{request.purpose}")"#, r#"policy("{request.purpose} loan")"#);
    assert_ne!(other, source);
    let checked = crate::check_fixture("main.flow", other.as_bytes());
    let candidate =
        runtime.install(crate::plans(&checked).into_iter().flatten().next().expect("a plan")).expect("installs");
    let changes = flow_runtime::ReplayChanges { plan: Some(candidate), ..flow_runtime::ReplayChanges::default() };
    let whatif = runtime.what_if(&view.run, &auditor, &changes).expect("the what-if runs");
    assert_eq!(whatif.after, "undetermined", "{whatif:?}");
    assert!(
        whatif.changes.iter().any(|c| c.node == "passages" && c.after == json!("needs a new search")),
        "{whatif:?}"
    );
    // So does a candidate that takes another number of documents (or pins another snapshot,
    // or searches another corpus): what was recorded answered another search.
    let fewer = flow("refuse", false, 2);
    let checked = crate::check_fixture("main.flow", fewer.as_bytes());
    let candidate =
        runtime.install(crate::plans(&checked).into_iter().flatten().next().expect("a plan")).expect("installs");
    let changes = flow_runtime::ReplayChanges { plan: Some(candidate), ..flow_runtime::ReplayChanges::default() };
    let whatif = runtime.what_if(&view.run, &auditor, &changes).expect("the what-if runs");
    assert!(
        whatif.changes.iter().any(|c| c.node == "passages" && c.after == json!("needs a new search")),
        "{whatif:?}"
    );
    assert_eq!(
        *retriever.searches.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
        1,
        "searched once, by the run"
    );
}

/// Under a corpus with a freshness that degrades a mismatch: a search recorded as fresh and
/// pinned whose `as_of` was taken off, or one marked degraded though it was neither, is not
/// an event of the plan.
#[test]
fn a_forged_freshness_is_not_an_event_of_the_plan() {
    let as_of = Some(flow_ir::expr::Timestamp { seconds: NOW - 86_400, nanos: 0 });
    let (runtime, analysis) = installed(&flow("degrade", true, 3), one_document("v7", as_of));
    let options = StartOptions { clock: Some(flow_ir::expr::Timestamp { seconds: NOW, nanos: 0 }), params: Vec::new() };
    let inputs = request();
    let view = runtime.start(&analysis, &principal("cleo", &["clerk"]), &inputs, &options).expect("starts");
    let bundle = runtime.evidence(&view.run, &principal("aud", &["auditor"])).expect("exports");
    let events: Vec<serde_json::Value> =
        bundle["events"].as_array().expect("events").iter().map(|e| e["event"].clone()).collect();
    assert!(flow_runtime::conformance::problems(&analysis, &events).is_empty());
    let at = events.iter().position(|e| e["event"] == "retrieved").expect("a search");
    let mut aged = events.clone();
    aged[at].as_object_mut().expect("an event").remove("as_of");
    let problems = flow_runtime::conformance::problems(&analysis, &aged);
    assert!(problems.iter().any(|p| p.contains("or one too old, as if it were")), "{problems:?}");
    let mut degraded = events.clone();
    degraded[at]["degraded"] = json!(true);
    degraded[at]["reason"] = json!("corpus `policy`: older");
    let problems = flow_runtime::conformance::problems(&analysis, &degraded);
    assert!(problems.iter().any(|p| p.contains("though the snapshot is the pinned one and fresh")), "{problems:?}");
    let mut listed = events.clone();
    listed[at]["documents"]["$value"] = json!([]);
    let problems = flow_runtime::conformance::problems(&analysis, &listed);
    assert!(problems.iter().any(|p| p.contains("does not list the documents it gives")), "{problems:?}");
}

/// A `degraded` monitor watches a search that takes another snapshot: a run whose search
/// was degraded raises its alert.
#[test]
fn a_monitor_watches_degraded_searches() {
    let source = flow("degrade", false, 3).replace(
        "  retrieve passages",
        "  monitor other_snapshots: degraded(passages) over 1d above 50%\n    severity high\n    to platform\n  retrieve passages",
    );
    let (runtime, analysis) = installed(&source, one_document("v8", None));
    let inputs = request();
    let view =
        runtime.start(&analysis, &principal("cleo", &["clerk"]), &inputs, &StartOptions::default()).expect("starts");
    assert_eq!(view.status.as_str(), "completed");
    let evaluation = runtime.evaluate_monitors().expect("evaluates");
    assert!(evaluation.raised.iter().any(|a| a.monitor == "other_snapshots"), "{:?}", evaluation.raised);
    // A monitor of a search whose corpus refuses another snapshot would never alert.
    let refusing = source.replace("on mismatch degrade", "on mismatch refuse");
    let checked = crate::check_fixture("main.flow", refusing.as_bytes());
    assert!(checked.render().contains("it is never degraded"), "{}", checked.render());
}
