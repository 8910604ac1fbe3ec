//! Deadlines of human steps, as the runtime keeps them: each timer fires exactly once however
//! many processes tick the store at once (SQLite and PostgreSQL), at the instant it was due;
//! a decision that comes after a deadline is taken after it, and both are in the evidence;
//! escalation lets its roles decide and no one else; a replay recomputes every timer and
//! finds a forged one.

use std::sync::{Arc, Mutex};

use flow_ir::expr::Timestamp;
use flow_runtime::event::Event;
use flow_runtime::store::{PostgresStore, SqliteStore, Store};
use flow_runtime::{DecisionInput, ErrorKind, Runtime, StartOptions, Status};
use serde_json::json;

use crate::guarantees::principal;

const FLOW: &str = r#"
role clerk
role manager
role director

type Request {
  id: Text
}

flow timed {
  version "1.0.0"
  owner clerk
  steward clerk
  input request: Request
  output done: Bool

  access {
    trigger by clerk
    replay by clerk
    read evidence by clerk
  }

  review check by manager
    outcomes ok, not_ok
    reasons fine, no_answer
    within 1h otherwise escalate to director
    within 2h otherwise not_ok because no_answer
    remind 30m before

  emit done = check.outcome == ok
}
"#;

/// When the runs start.
const T0: i64 = 1_800_000_000;

/// A clock the test moves.
#[derive(Clone)]
struct Clock(Arc<Mutex<i64>>);

impl Clock {
    fn at(&self, seconds: i64) {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = seconds;
    }
}

fn runtime_on(store: Box<dyn Store>, clock: &Clock) -> (Runtime, Arc<flow_runtime::analysis::Analysis>) {
    runtime_of(store, clock, FLOW)
}

fn runtime_of(store: Box<dyn Store>, clock: &Clock, flow: &str) -> (Runtime, Arc<flow_runtime::analysis::Analysis>) {
    let checked = crate::check_fixture("main.flow", flow.as_bytes());
    assert!(checked.diagnostics.is_empty(), "{}", checked.render());
    let plan = crate::plans(&checked).into_iter().flatten().next().expect("the flow compiles");
    let mut runtime = Runtime::new(store);
    let read = clock.0.clone();
    runtime.set_clock(Arc::new(move || Timestamp {
        seconds: *read.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
        nanos: 0,
    }));
    let analysis = runtime.install(plan).expect("the plan installs");
    (runtime, analysis)
}

fn start(runtime: &Runtime, analysis: &Arc<flow_runtime::analysis::Analysis>, id: &str) -> String {
    let given = [("request".to_owned(), json!({ "id": id }))];
    let view = runtime.start(analysis, &principal("cleo", &["clerk"]), &given, &StartOptions::default());
    let view = view.expect("the run starts");
    assert_eq!(view.status, Status::Pending);
    view.run
}

/// The run's events, as the runtime reads them back (its chain checked).
fn events(runtime: &Runtime, run: &str) -> Vec<Event<flow_runtime::value::Value>> {
    runtime.inspect(run, &[], &[]).expect("the run reads back").0
}

/// The timer events of a run: kind and instant.
fn timers(events: &[Event<flow_runtime::value::Value>]) -> Vec<(&'static str, i64)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::TimerSet { opened, .. } => Some(("set", opened.seconds)),
            Event::Reminded { at, .. } => Some(("reminded", at.seconds)),
            Event::Escalated { at, .. } => Some(("escalated", at.seconds)),
            Event::TimedOut { at, .. } => Some(("timed out", at.seconds)),
            _ => None,
        })
        .collect()
}

fn decision(outcome: &str, reason: &str) -> DecisionInput {
    DecisionInput { outcome: outcome.to_owned(), reason: Some(reason.to_owned()), basis: None, edits: Vec::new() }
}

#[test]
fn each_timer_fires_once_whoever_ticks_the_store() {
    let dir = std::env::temp_dir().join(format!("flow-timers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a directory");
    let path = dir.join("runs.db");
    let mut stores: Vec<Box<dyn Fn() -> Box<dyn Store>>> =
        vec![Box::new(move || Box::new(SqliteStore::open(&path).expect("opens")))];
    if let Some(url) = crate::postgres::database("timers") {
        stores.push(Box::new(move || Box::new(PostgresStore::open(&url).expect("opens"))));
    }
    for open in &stores {
        let clock = Clock(Arc::new(Mutex::new(T0)));
        let (first, analysis) = runtime_on(open(), &clock);
        let runs: Vec<String> = (0..12).map(|n| start(&first, &analysis, &format!("R{n}"))).collect();
        // Four processes, each with its own connection, tick at once, again and again,
        // after every deadline has passed.
        clock.at(T0 + 3 * 3_600);
        let tickers: Vec<Runtime> = (0..4).map(|_| runtime_on(open(), &clock).0).collect();
        let fired = Mutex::new(0usize);
        std::thread::scope(|scope| {
            for ticker in &tickers {
                let fired = &fired;
                scope.spawn(move || {
                    for _ in 0..20 {
                        let done = ticker.tick(ticker.now()).expect("ticks");
                        assert!(done.failed.is_empty(), "{done:?}");
                        *fired.lock().unwrap_or_else(std::sync::PoisonError::into_inner) +=
                            done.fired.iter().map(|(_, n)| n).sum::<usize>();
                    }
                });
            }
        });
        // Two reminders, an escalation and a deadline per run: each fired once, by someone.
        assert_eq!(fired.into_inner().unwrap_or_default(), runs.len() * 4);
        for run in &runs {
            let events = events(&first, run);
            assert_eq!(
                timers(&events),
                [
                    ("set", T0),
                    ("reminded", T0 + 1_800),
                    ("escalated", T0 + 3_600),
                    ("reminded", T0 + 5_400),
                    ("timed out", T0 + 7_200)
                ],
                "{run}"
            );
            assert_eq!(first.status(run, None).expect("a status").status, Status::Completed);
            let replay = flow_runtime::replay::replay(&analysis, &events, flow_runtime::Engine::Interpreter);
            assert_eq!(replay.divergence, None, "{run}");
        }
        assert!(first.store().due_runs(T0 + 10 * 3_600, None, 100).expect("reads").is_empty(), "nothing is left due");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_decision_after_its_deadline_is_taken_after_it_and_both_are_recorded() {
    let clock = Clock(Arc::new(Mutex::new(T0)));
    let (runtime, analysis) =
        runtime_on(Box::new(SqliteStore::open(std::path::Path::new(":memory:")).expect("a store")), &clock);
    let manager = principal("mia", &["manager"]);
    let director = principal("dan", &["director"]);

    // In time: the manager decides, and no deadline is recorded after.
    let in_time = start(&runtime, &analysis, "R1");
    clock.at(T0 + 600);
    let view = runtime.decide(&in_time, "check", &manager, &decision("ok", "fine")).expect("decided in time");
    assert_eq!(view.status, Status::Completed);
    assert_eq!(timers(&events(&runtime, &in_time)), [("set", T0)]);

    // Before the escalation, a director may not decide; after it, they may, and the
    // reminder and escalation that fell before are recorded first, at their instants.
    clock.at(T0);
    let escalated = start(&runtime, &analysis, "R2");
    clock.at(T0 + 1_200);
    let refused = runtime.decide(&escalated, "check", &director, &decision("ok", "fine"));
    assert_eq!(refused.expect_err("not yet the director's").kind(), ErrorKind::Refused);
    clock.at(T0 + 4_000);
    let view = runtime.decide(&escalated, "check", &director, &decision("ok", "fine")).expect("escalated");
    assert_eq!(view.status, Status::Completed);
    assert_eq!(
        timers(&events(&runtime, &escalated)),
        [("set", T0), ("reminded", T0 + 1_800), ("escalated", T0 + 3_600)]
    );

    // Past the last deadline, with no tick meanwhile: the deadline decides first, and the
    // manager's decision is refused and recorded.
    clock.at(T0);
    let late = start(&runtime, &analysis, "R3");
    clock.at(T0 + 7_201);
    let refused = runtime.decide(&late, "check", &manager, &decision("ok", "fine"));
    let error = refused.expect_err("too late");
    assert_eq!(error.kind(), ErrorKind::Refused, "{error}");
    assert!(error.to_string().contains("came too late"), "{error}");
    let events = events(&runtime, &late);
    let timed_out = events.iter().position(|e| matches!(e, Event::TimedOut { .. })).expect("the deadline");
    let refusal =
        events.iter().position(|e| matches!(e, Event::Refused { grant, .. } if grant == "before the deadline"));
    assert!(refusal.is_some_and(|r| r > timed_out), "{events:?}");
    assert!(
        matches!(&events[timed_out], Event::TimedOut { outcome: Some(o), reason: Some(r), at, .. }
            if o == "not_ok" && r == "no_answer" && at.seconds == T0 + 7_200),
        "{:?}",
        events[timed_out]
    );
    let view = runtime.status(&late, None).expect("a status");
    assert_eq!(view.status, Status::Completed);
}

/// A run in a store in memory whose every timer fired, its last deciding the review.
fn every_timer_fired() -> (Runtime, Arc<flow_runtime::analysis::Analysis>, String) {
    let clock = Clock(Arc::new(Mutex::new(T0)));
    let (runtime, analysis) =
        runtime_on(Box::new(SqliteStore::open(std::path::Path::new(":memory:")).expect("a store")), &clock);
    let run = start(&runtime, &analysis, "R1");
    clock.at(T0 + 7_300);
    runtime.tick(runtime.now()).expect("ticks");
    (runtime, analysis, run)
}

/// A change of one recorded event; whether it applied to the event.
type Forgery = dyn Fn(&mut Event<flow_runtime::value::Value>) -> bool;

#[test]
fn a_replay_recomputes_every_timer_and_finds_a_forged_one() {
    let (runtime, analysis, run) = every_timer_fired();
    let recorded = events(&runtime, &run);
    let exact = flow_runtime::replay::replay(&analysis, &recorded, flow_runtime::Engine::Interpreter);
    assert_eq!(exact.divergence, None);
    // Each forgery of a timer: another instant, another escalation, a deadline that decides
    // otherwise, a timer that never fell due.
    let forgeries: Vec<Box<Forgery>> = vec![
        Box::new(|e| match e {
            Event::Reminded { at, .. } => {
                at.seconds += 1;
                true
            }
            _ => false,
        }),
        Box::new(|e| match e {
            Event::Escalated { roles, .. } => {
                roles.push("clerk".into());
                true
            }
            _ => false,
        }),
        Box::new(|e| match e {
            Event::TimedOut { outcome, .. } => {
                *outcome = Some("ok".to_owned());
                true
            }
            _ => false,
        }),
        Box::new(|e| match e {
            Event::TimedOut { at, .. } => {
                at.seconds -= 3_600;
                true
            }
            _ => false,
        }),
    ];
    for (n, forge) in forgeries.iter().enumerate() {
        let mut forged = recorded.clone();
        let changed = forged.iter_mut().map(forge).filter(|c| *c).count();
        assert!(changed > 0, "forgery {n} changes nothing");
        let replay = flow_runtime::replay::replay(&analysis, &forged, flow_runtime::Engine::Interpreter);
        assert!(replay.divergence.is_some(), "forgery {n} replays exactly");
    }
}

#[test]
fn a_what_if_takes_the_timers_again_where_the_plan_keeps_them() {
    let (runtime, analysis, run) = every_timer_fired();
    let clerk = principal("cleo", &["clerk"]);
    let what_if = |plan: &Arc<flow_runtime::analysis::Analysis>| {
        let changes = flow_runtime::ReplayChanges { plan: Some(plan.clone()), params: Vec::new(), live: false };
        runtime.what_if(&run, &clerk, &changes).expect("a what-if")
    };
    // The same deadlines: the escalation and the deadline's decision are taken again.
    let same = what_if(&analysis);
    assert!(same.exact(), "{:?}", same.to_json());
    // A deadline that decides otherwise: the step is not decided as recorded.
    let other =
        FLOW.replace("within 2h otherwise not_ok because no_answer", "within 2h otherwise ok because no_answer");
    let (_, candidate) = runtime_of(
        Box::new(SqliteStore::open(std::path::Path::new(":memory:")).expect("a store")),
        &Clock(Arc::default()),
        &other,
    );
    let candidate = runtime.install(candidate.plan.clone()).expect("installs");
    let changed = what_if(&candidate);
    assert!(!changed.exact(), "{:?}", changed.to_json());
}

#[test]
fn a_run_that_does_not_load_keeps_no_other_runs_timers_from_firing() {
    let path = std::env::temp_dir().join(format!("flow-timers-broken-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let clock = Clock(Arc::new(Mutex::new(T0)));
    let (runtime, analysis) = runtime_on(Box::new(SqliteStore::open(&path).expect("a store")), &clock);
    let broken = start(&runtime, &analysis, "R1");
    let sound = start(&runtime, &analysis, "R2");
    rusqlite::Connection::open(&path)
        .expect("the store opens")
        .execute("UPDATE events SET hash = 'forged' WHERE run = ?1 AND seq = 1", [broken.as_str()])
        .expect("an event is changed");
    clock.at(T0 + 7_300);
    let tick = runtime.tick(runtime.now()).expect("ticks");
    assert_eq!(tick.fired, [(sound.clone(), 4)]);
    assert_eq!(tick.failed.iter().map(|(run, _)| run.as_str()).collect::<Vec<_>>(), [broken.as_str()]);
    assert_eq!(runtime.status(&sound, None).expect("a status").status, Status::Completed);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_deadline_that_ends_the_run_leaves_no_later_decision_recorded_after_its_end() {
    // A soft gate rejected by its deadline while a review waits beside it.
    let flow = FLOW.replace(
        "  review check by manager",
        "  gate big: soft when request.id == \"R1\"\n    approve by director\n    within 1h otherwise reject\n  review check by manager",
    );
    let clock = Clock(Arc::new(Mutex::new(T0)));
    let store = SqliteStore::open(std::path::Path::new(":memory:")).expect("a store");
    let (runtime, analysis) = runtime_of(Box::new(store), &clock, &flow);
    let run = start(&runtime, &analysis, "R1");
    clock.at(T0 + 3_700);
    let late = runtime.decide(&run, "check", &principal("mia", &["manager"]), &decision("ok", "fine"));
    assert_eq!(late.expect_err("the run ended").kind(), ErrorKind::Refused);
    assert_eq!(runtime.status(&run, None).expect("a status").status, Status::Rejected);
    let events = events(&runtime, &run);
    assert!(!events.iter().any(|e| matches!(e, Event::ReviewDecided { .. })), "{events:?}");
    // The evidence of the run, refusal included, verifies.
    let bundle = runtime.evidence(&run, &principal("cleo", &["clerk"])).expect("exports");
    flow_runtime::evidence::verify(flow_runtime::evidence::render(&bundle).as_bytes()).expect("the evidence verifies");
}
