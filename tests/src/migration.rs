//! Waiting runs migrating to a new version (`migrate waiting`): the check of which versions
//! they may migrate to, case by case; and, over generated runs, that in a controlled
//! environment exactly the runs waiting for a person when a migrating version is published
//! continue on it at their next step, recorded, replayed exactly and verified across the
//! switch — while runs that ended, runs under a version that does not migrate, and forged
//! migrations in evidence are refused. On SQLite and PostgreSQL.

use std::sync::Arc;

use flow_runtime::analysis::Analysis;
use flow_runtime::event::{Event, Status};
use flow_runtime::release::Governance;
use flow_runtime::store::{PostgresStore, SqliteStore, Store};
use flow_runtime::{Proposal, ReleaseControl, Runtime, StartOptions};
use serde_json::{Value as Json, json};

use crate::guarantees::{decision, principal};
use crate::releases::xorshift;

const RULES: &str = r#"
[[environments]]
name = "prod"
controlled = true
approvals = 1

[[rules]]
flows = ["watched"]
authors = ["steward"]
approvers = ["officer"]
"#;

/// The first version's pieces, each replaced by a case.
const BASE: [(&str, &str); 11] = [
    ("{migrate}", ""),
    ("{version}", "1.0.0"),
    ("{note}", "note: Text @pii"),
    ("{input}", ""),
    ("{limit}", "param limit: Int = 100"),
    ("{score}", "let score = request.amount * 2"),
    ("{outcomes}", "outcomes approve, reject"),
    ("{gate}", "gate odd: soft when request.amount == 333\n    approve by manager"),
    ("{extra}", ""),
    ("{uses}", "score > 0"),
    ("{view}", "view pii by clerk"),
];

const FLOW: &str = r#"
role clerk
role steward
role officer
role manager
label pii

type Request {
  amount: Int
  {note}
}

flow watched {
  version "{version}"
  owner clerk
  steward steward
  {migrate}

  input request: Request
  {input}
  output decision: Bool
  {limit}

  access {
    trigger by clerk
    read evidence by clerk
    replay by clerk
    {view}
  }

  {score}
  {gate}
  review check by manager
    when request.amount > limit
    {outcomes}
    reasons ok, doubtful
    may wait forever
  {extra}
  emit decision = check.outcome != reject and {uses}
}
"#;

/// The flow with `changes` made to the first version's pieces.
fn source(changes: &[(&str, &str)]) -> String {
    let mut text = FLOW.to_owned();
    for (piece, base) in BASE {
        let value = changes.iter().find(|(p, _)| *p == piece).map_or(base, |(_, v)| v);
        text = text.replace(piece, value);
    }
    text
}

fn compiled(changes: &[(&str, &str)]) -> flow_ir::VerifiedPlan {
    let checked = crate::check_fixture("main.flow", source(changes).as_bytes());
    assert!(checked.clean(), "{changes:?}: {}", checked.render());
    crate::plans(&checked).into_iter().flatten().next().expect("the flow compiles")
}

fn analysed(changes: &[(&str, &str)]) -> Analysis {
    Analysis::new(compiled(changes))
}

const MIGRATE: (&str, &str) = ("{migrate}", "migrate waiting");
const NEXT: (&str, &str) = ("{version}", "2.0.0");

/// Each change to the first version, with `migrate waiting`: allowed (`None`), or refused
/// with the problem named.
#[test]
fn waiting_runs_migrate_only_where_it_is_well_defined() {
    let old = analysed(&[]);
    type Case<'c> = (&'c str, &'c [(&'c str, &'c str)], Option<&'c str>);
    let cases: &[Case<'_>] = &[
        (
            "a new step, a new formula and a new default",
            &[
                ("{extra}", "let twice = score * 2"),
                ("{score}", "let score = request.amount * 3"),
                ("{limit}", "param limit: Int = 50"),
            ],
            None,
        ),
        (
            "a gate's condition and its approvers",
            &[("{gate}", "gate odd: soft when request.amount == 7\n    approve by officer")],
            None,
        ),
        ("no declaration", &[("{migrate}", "")], Some("does not declare `migrate waiting`")),
        ("an outcome removed", &[("{outcomes}", "outcomes approve, reject, defer")], Some("review `check` changes")),
        ("a step removed", &[("{gate}", "")], Some("gate `odd` is removed")),
        ("a step of another kind", &[("{gate}", "let odd = request.amount == 333")], Some("is no longer gate but let")),
        (
            "a gate of another level",
            &[("{gate}", "gate odd: block when request.amount == 333")],
            Some("changes from soft to block"),
        ),
        (
            "a step of another type",
            &[("{score}", "let score = request.amount > 2"), ("{uses}", "score")],
            Some("changes its type"),
        ),
        ("a type changed", &[("{note}", "note: Text")], Some("type `Request` changes")),
        ("an input added", &[("{input}", "input extra: Int")], Some("input `extra` is added")),
        (
            "a param added",
            &[("{limit}", "param limit: Int = 100\n  param floor: Int = 1")],
            Some("param `floor` is added"),
        ),
        (
            "a param's type changed",
            &[("{limit}", "param limit: Decimal = 100.0"), ("{gate}", "")],
            Some("`limit` changes its type"),
        ),
        (
            "a view granted to another role",
            &[("{view}", "view pii by clerk, manager")],
            Some("role `manager` may view `pii`"),
        ),
        ("a view taken away", &[("{view}", "")], None),
        ("a formula that reads another value", &[("{score}", "let score = limit * 2")], None),
    ];
    for (what, changes, expected) in cases {
        let mut all = changes.to_vec();
        all.extend([MIGRATE, NEXT]);
        let problems = flow_runtime::migration::problems(&old, &analysed(&all));
        match expected {
            None => assert!(problems.is_empty(), "{what}: {problems:?}"),
            Some(problem) => assert!(problems.iter().any(|p| p.contains(problem)), "{what}: {problems:?}"),
        }
    }
    // A step whose value was labelled must stay labelled: here `score` reads the note.
    let labelled = analysed(&[("{score}", "let score = request.amount + len(request.note)"), ("{uses}", "true")]);
    let unlabelled = analysed(&[MIGRATE, NEXT, ("{score}", "let score = request.amount + 1"), ("{uses}", "true")]);
    let problems = flow_runtime::migration::problems(&labelled, &unlabelled);
    assert!(problems.iter().any(|p| p.contains("`score` loses label `pii`")), "{problems:?}");
    assert!(flow_runtime::migration::problems(&unlabelled, &labelled).iter().all(|p| !p.contains("label")));
}

fn governance() -> Arc<Governance> {
    let governance: Governance = toml::from_str(RULES).expect("the rules parse");
    governance.check().expect("the rules check");
    Arc::new(governance)
}

fn runtime_on(store: Box<dyn Store>) -> Runtime {
    let mut runtime = Runtime::new(store);
    let control = ReleaseControl { governance: governance(), environment: Some("prod".into()), store: None };
    runtime.set_release_control(control).expect("the environment is the rules'");
    runtime
}

/// Publishes `plan` in prod (proposed by the steward, approved by the officer).
fn publish(runtime: &Runtime, plan: flow_ir::VerifiedPlan) -> Result<String, flow_runtime::Error> {
    let steward = principal("sam", &["steward"]);
    let proposal = Proposal { plan: Some(plan), flow: Some("watched"), environment: "prod", reason: "r", source: None };
    let release = runtime.propose(&steward, proposal)?;
    runtime.approve_release(&principal("oli", &["officer"]), &release.id, "ok")?;
    runtime.publish_release(&steward, &release.id).map(|r| r.id)
}

/// Opens a new store each time it is called.
type Opener = Box<dyn Fn() -> Box<dyn Store>>;

fn stores() -> Vec<(String, Opener)> {
    let mut out: Vec<(String, Opener)> = vec![(
        "sqlite".to_owned(),
        Box::new(|| Box::new(SqliteStore::open(std::path::Path::new(":memory:")).expect("a store")) as Box<dyn Store>),
    )];
    if crate::postgres::database("migration").is_some() {
        out.push((
            "postgres".to_owned(),
            Box::new(|| {
                let url = crate::postgres::database("migration").expect("the test server");
                Box::new(PostgresStore::open(&url).expect("opens")) as Box<dyn Store>
            }),
        ));
    }
    out
}

fn migrations(events: &[Event<flow_runtime::value::Value>]) -> usize {
    events.iter().filter(|e| matches!(e, Event::Migrated(_))).count()
}

/// The bodies of a run's exported events.
fn bodies(bundle: &Json) -> Vec<Json> {
    bundle["events"].as_array().expect("events").iter().map(|e| e["event"].clone()).collect()
}

#[test]
fn runs_waiting_when_a_migrating_version_is_published_continue_on_it() {
    let v1 = compiled(&[]);
    // Not migrating: runs stay on their version.
    let v1b = compiled(&[("{version}", "1.1.0"), ("{limit}", "param limit: Int = 90")]);
    // Migrating, with a new step that runs after the review and a gate with other approvers.
    let v2 = compiled(&[
        MIGRATE,
        NEXT,
        ("{extra}", "let twice = score * 2"),
        ("{gate}", "gate odd: soft when request.amount == 333\n    approve by officer"),
    ]);
    // Says it migrates, but removes the gate runs may wait at.
    let broken = compiled(&[MIGRATE, ("{version}", "3.0.0"), ("{gate}", "")]);
    let clerk = principal("cal", &["clerk"]);
    let manager = principal("max", &["manager"]);
    for (name, open) in stores() {
        for seed in 1..=4u64 {
            let mut random = xorshift(seed * 7919);
            let runtime = runtime_on(open());
            // Runs on 1.0.0, then on 1.1.0: some complete at once, some wait at the review or
            // the gate.
            let mut runs = Vec::new();
            for version in [&v1, &v1b] {
                publish(&runtime, version.clone()).expect("published");
                let analysis = runtime.install(version.clone()).expect("installs");
                for _ in 0..5 {
                    let amount = [5, 150, 333, 250][random(4) as usize];
                    let inputs = [("request".to_owned(), json!({"amount": amount, "note": "secret note"}))];
                    let view = runtime.start(&analysis, &clerk, &inputs, &StartOptions::default()).expect("starts");
                    runs.push((view.run, version.hash().to_owned()));
                }
            }
            let waiting = |runtime: &Runtime, run: &str| runtime.status(run, None).expect("status").status;
            let pending: Vec<(String, String)> =
                runs.iter().filter(|(run, _)| waiting(&runtime, run) == Status::Pending).cloned().collect();
            // A version that says it migrates but cannot is refused when proposed.
            let refused = publish(&runtime, broken.clone()).expect_err("a broken migration was proposed");
            assert!(refused.to_string().contains("gate `odd` is removed"), "{refused}");
            publish(&runtime, v2.clone()).expect("2.0.0 is published");
            for (run, plan) in &pending {
                // Decided until it ends: the gate (by whoever the version it is on says), the
                // review.
                loop {
                    let view = runtime.status(run, None).expect("status");
                    let Some((step, _, roles)) = view.pending.first() else { break };
                    // The view tells the roles of the version the run is on: a run on 1.1.0
                    // migrates at this decision, and 2.0.0 gives the gate to officers.
                    let officers = roles.contains(&"officer".to_owned()) || (step == "odd" && *plan == v1b.hash());
                    let who = if officers { principal("oli", &["officer"]) } else { manager.clone() };
                    let outcome = ["approve", "reject"][random(2) as usize];
                    runtime.decide(run, step, &who, &decision(outcome, "ok")).unwrap_or_else(|e| panic!("{name}: {e}"));
                }
                let events = crate::guarantees::events(&runtime, run);
                let replay = runtime.replay(run, &clerk).expect("replays");
                assert!(replay.divergence.is_none(), "{name}: {replay:?}");
                // Only runs on the version 2.0.0 replaced (what its approvers saw the
                // difference from) migrate; runs on 1.0.0 stay where they are.
                if *plan == v1.hash() {
                    assert_eq!(migrations(&events), 0, "{name}: {run} on 1.0.0 migrated");
                    continue;
                }
                assert_eq!(migrations(&events), 1, "{name}: {run} did not migrate");
                let Some(Event::Migrated(migrated)) = events.iter().find(|e| matches!(e, Event::Migrated(_))) else {
                    unreachable!()
                };
                assert_eq!((&*migrated.from, &*migrated.to), (v1b.hash(), v2.hash()), "{name}");
                assert_eq!(migrated.flow_version, "2.0.0");
                assert!(migrated.release.release.starts_with("rel-"), "{migrated:?}");
                // The steps the new version adds run as it says (nothing runs after a rejection).
                let rejected = runtime.status(run, None).expect("status").status == Status::Rejected;
                assert_eq!(events.iter().any(|e| e.node().is_some_and(|n| n == "twice")), !rejected, "{name}");
                for engine in [flow_runtime::analysis::Engine::Interpreter, flow_runtime::analysis::Engine::Jit] {
                    let replay = flow_runtime::replay::replay_across(
                        &Analysis::new(v1b.clone()),
                        &[&Analysis::new(v2.clone())],
                        &events,
                        engine,
                    );
                    assert!(replay.divergence.is_none(), "{name}: {replay:?}");
                }
                let bundle = runtime.evidence(run, &clerk).expect("exports");
                let text = flow_runtime::evidence::render(&bundle);
                flow_runtime::evidence::verify(text.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e:?}"));
                forgeries_fail(&bundle, &v1b, &v2);
            }
            // Runs that had ended stay as they were; the store audits clean.
            for (run, _) in runs.iter().filter(|run| !pending.contains(run)) {
                assert_eq!(migrations(&crate::guarantees::events(&runtime, run)), 0, "{name}");
            }
            let audit = runtime.audit(None).expect("audits");
            assert!(audit.problems.is_empty(), "{name}: {:?}", audit.problems);
            // A copy of the store keeps every plan a run went through: its evidence exports.
            let copy = SqliteStore::open(std::path::Path::new(":memory:")).expect("a store");
            runtime.copy_to(&copy).expect("copies");
            let copied = Runtime::new(Box::new(copy));
            for (run, _) in &pending {
                let bundle = copied.evidence(run, &clerk).expect("exports from the copy");
                let text = flow_runtime::evidence::render(&bundle);
                flow_runtime::evidence::verify(text.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            }
        }
    }
}

/// A flow whose approval needs two managers, with a deadline.
fn timed(version: &str, migrate: &str, within: &str) -> flow_ir::VerifiedPlan {
    let source = format!(
        r#"
role clerk
role steward
role officer
role manager
type Request {{ amount: Int }}
flow watched {{
  version "{version}"
  owner clerk
  steward steward
  {migrate}
  input request: Request
  output approved: Bool
  access {{
    trigger by clerk
    replay by clerk
  }}
  approval sign {{
    otherwise => 2 of manager
    within {within} otherwise reject
  }}
  emit approved = sign.approved
}}
"#
    );
    let checked = crate::check_fixture("main.flow", source.as_bytes());
    assert!(checked.diagnostics.is_empty(), "{}", checked.render());
    crate::plans(&checked).into_iter().flatten().next().expect("the flow compiles")
}

/// Deadlines across a migration: a deadline of the run's version that fell due fires first,
/// on that version (the decision that came after it is too late, and the run does not
/// migrate); otherwise the steps waiting take the new version's deadlines from the moment the
/// run migrated — neither counted from when the step opened, nor lost.
#[test]
fn deadlines_of_a_migrated_run_count_from_the_migration() {
    const DAY: i64 = 86_400;
    let t0 = 1_800_000_000;
    let now = Arc::new(std::sync::atomic::AtomicI64::new(t0));
    let (v1, v2) = (timed("1.0.0", "", "10d"), timed("2.0.0", "migrate waiting", "1d"));
    let clerk = principal("cal", &["clerk"]);
    for (name, open) in stores() {
        for late in [false, true] {
            let mut runtime = runtime_on(open());
            let read = now.clone();
            runtime.set_clock(Arc::new(move || flow_ir::expr::Timestamp {
                seconds: read.load(std::sync::atomic::Ordering::SeqCst),
                nanos: 0,
            }));
            now.store(t0, std::sync::atomic::Ordering::SeqCst);
            publish(&runtime, v1.clone()).expect("1.0.0 is published");
            let first = runtime.install(v1.clone()).expect("installs");
            let inputs = [("request".to_owned(), json!({"amount": 5}))];
            let run = runtime.start(&first, &clerk, &inputs, &StartOptions::default()).expect("starts").run;
            publish(&runtime, v2.clone()).expect("2.0.0 is published");
            // After 11 days, 1.0.0's deadline is due: it decides, and the approval is too late.
            let at = if late { t0 + 11 * DAY } else { t0 + 5 * DAY };
            now.store(at, std::sync::atomic::Ordering::SeqCst);
            let decided = runtime.decide(&run, "sign", &principal("max", &["manager"]), &decision("approve", "ok"));
            let events = crate::guarantees::events(&runtime, &run);
            if late {
                let refused = decided.expect_err("a decision after the deadline was taken");
                assert!(refused.to_string().contains("came too late"), "{name}: {refused}");
                assert_eq!(migrations(&events), 0, "{name}: migrated past its deadline");
                assert!(
                    events.iter().any(|e| matches!(e, Event::TimedOut { at: t, .. } if t.seconds == t0 + 10 * DAY))
                );
                continue;
            }
            assert_eq!(decided.expect("decides").status, Status::Pending, "{name}");
            assert_eq!(migrations(&events), 1, "{name}");
            // 2.0.0's day runs from the migration: nothing is due a moment before it ends.
            runtime.tick(flow_ir::expr::Timestamp { seconds: at + DAY - 1, nanos: 0 }).expect("ticks");
            assert_eq!(runtime.status(&run, None).expect("status").status, Status::Pending, "{name}");
            now.store(at + DAY, std::sync::atomic::Ordering::SeqCst);
            runtime.tick(flow_ir::expr::Timestamp { seconds: at + DAY, nanos: 0 }).expect("ticks");
            let events = crate::guarantees::events(&runtime, &run);
            let fired: Vec<i64> = events
                .iter()
                .filter_map(|e| match e {
                    Event::TimedOut { at, .. } => Some(at.seconds),
                    _ => None,
                })
                .collect();
            assert_eq!(fired, [at + DAY], "{name}");
            let replay = runtime.replay(&run, &clerk).expect("replays");
            assert!(replay.divergence.is_none(), "{name}: {replay:?}");
        }
    }
}

/// A migration in evidence is believed only as the runtime makes it.
fn forgeries_fail(bundle: &Json, v1: &flow_ir::VerifiedPlan, v2: &flow_ir::VerifiedPlan) {
    let (first, next) = (Analysis::new(v1.clone()), Analysis::new(v2.clone()));
    let events = bodies(bundle);
    let across =
        |events: &[Json], later: &[&Analysis]| flow_runtime::conformance::problems_across(&first, later, events);
    assert!(across(&events, &[&next]).is_empty(), "{:?}", across(&events, &[&next]));
    let at = events.iter().position(|e| e["event"] == "migrated").expect("a migration");
    type Forge<'f> = &'f dyn Fn(&mut Vec<Json>);
    let forgeries: [(&str, Forge<'_>); 4] = [
        ("not from the run's plan", &|e| e[at]["from"] = json!(v2.hash())),
        ("deployment digest", &|e| e[at]["release"]["release"] = json!("rel-99")),
        ("another version", &|e| e[at]["flow_version"] = json!("9.9.9")),
        ("not waiting for a person", &|e| {
            let migrated = e.remove(at);
            e.insert(2, migrated);
        }),
    ];
    for (problem, forge) in forgeries {
        let mut forged = events.clone();
        forge(&mut forged);
        let problems = across(&forged, &[&next]);
        assert!(problems.iter().any(|p| p.contains(problem)), "{problem}: {problems:?}");
    }
    // Without the plan it migrated to; with a plan no migration names; to a plan it may not
    // migrate to.
    assert!(across(&events, &[]).iter().any(|p| p.contains("does not carry")));
    let mut unmigrated = events.clone();
    unmigrated.remove(at);
    assert!(across(&unmigrated, &[&next]).iter().any(|p| p.contains("no migration of the run names")));
    let mut to_itself = events.clone();
    to_itself[at]["to"] = json!(v1.hash());
    assert!(!across(&to_itself, &[&first]).is_empty());
}
