//! Monitors over generated histories: what the runtime counts as runs commit (by minute, in
//! the store) is what a straightforward recount of every stored event gives, for every
//! metric and window; alerts are raised when a condition holds and resolved when it clears,
//! once however many processes evaluate, with notices queued for the endpoints of their
//! routes only; runs whose stored evidence someone changed are found when they are checked.
//! On SQLite and PostgreSQL.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use flow_ir::expr::Timestamp;
use flow_ir::monitor::{Metric, Monitor};
use flow_runtime::notify::{Endpoint, Webhooks};
use flow_runtime::provider::{ModelProvider, ModelReply, ModelRequest, ProviderError};
use flow_runtime::store::{PostgresStore, SqliteStore, Store};
use flow_runtime::{DecisionInput, Runtime, StartOptions, Status};
use serde_json::{Value as Json, json};

use crate::guarantees::principal;

const FLOW: &str = r#"
role clerk
role manager
role director

model scorer {
  provider "local"
  name "scorer"
  version "1"
  digest "sha256:7d865e959b2466918c9863afca942d0fb89d7c9ac0c99bafc3749504ded97730"
  input (flaky: Bool)
  output Int
}

type Request {
  id: Text
  flaky: Bool
  blocked: Bool
  large: Bool
}

flow watched {
  version "1.0.0"
  owner clerk
  steward clerk
  input request: Request
  output done: Bool

  access {
    trigger by clerk
    override stale by director
  }

  gate stale: block when request.blocked
  infer score = scorer(flaky: request.flaky) fallback 0
  review check by manager
    when request.large
    outcomes ok, not_ok
    reasons fine, no_answer
    within 1h otherwise escalate to director
    within 2h otherwise not_ok because no_answer

  emit done = check.outcome == ok and not degraded(score) and score > 0

  monitor volume: runs over 1h below 5 severity low to platform
  monitor busy: runs over 3h above 40 severity low to platform
  monitor fallbacks: degraded(score) over 2h above 20% severity high to platform, manager
  monitor any_fallback: degraded over 30m above 50% severity medium to platform
  monitor blocks: blocked(stale) over 2h above 30% severity medium to governance
  monitor overrides: overrides over 2h above 10% severity critical to governance
  monitor escalations: escalated(check) over 3h above 25% severity medium to owner
  monitor expiries: timed_out(check) over 3h above 10% severity high to owner
  monitor slow: p90 latency(check) over 3h above 30m severity medium to owner
  monitor blocked_runs: outcome(blocked) over 2h above 30% severity medium to director
  monitor evidence_gaps: evidence over 3h below 100% severity critical to governance
  monitor replays: replay_failures over 3h above 0 severity high to platform
}
"#;

/// When the history starts.
const T0: i64 = 1_800_000_000;

/// Fails for `flaky` requests (the step falls back), answers 7 otherwise.
struct Scorer;

impl ModelProvider for Scorer {
    fn describe(&self) -> String {
        "scorer".to_owned()
    }

    fn infer(&self, request: &ModelRequest<'_>) -> Result<ModelReply, ProviderError> {
        match request.input.get("flaky") {
            Some(Json::Bool(true)) => Err(ProviderError { message: "unavailable".to_owned(), attempts: 1 }),
            _ => Ok(ModelReply { output: json!(7), attempts: 1 }),
        }
    }
}

type Seconds = Arc<Mutex<i64>>;

fn runtime_on(store: Box<dyn Store>, clock: &Seconds) -> (Runtime, Arc<flow_runtime::analysis::Analysis>) {
    let checked = crate::check_fixture("main.flow", FLOW.as_bytes());
    assert!(checked.diagnostics.is_empty(), "{}", checked.render());
    let plan = crate::plans(&checked).into_iter().flatten().next().expect("the flow compiles");
    let mut runtime = Runtime::new(store);
    let read = clock.clone();
    runtime.set_clock(Arc::new(move || Timestamp {
        seconds: *read.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
        nanos: 0,
    }));
    runtime.register_model("scorer", Arc::new(Scorer));
    let endpoint = |name: &str, routes: &[&str]| Endpoint {
        name: name.to_owned(),
        url: "http://127.0.0.1:9/hook".to_owned(),
        secret: Some(b"secret".to_vec()),
        events: Vec::new(),
        flows: Vec::new(),
        view: Vec::new(),
        routes: routes.iter().map(|r| (*r).to_owned()).collect(),
        timeout: std::time::Duration::from_secs(1),
        attempts: 1,
        backoff: std::time::Duration::from_secs(1),
    };
    runtime.set_webhooks(Webhooks {
        endpoints: vec![
            endpoint("platform_pager", &["platform"]),
            endpoint("governance_desk", &["governance", "director"]),
            endpoint("everything_else", &[]),
        ],
    });
    let analysis = runtime.install(plan).expect("the plan installs");
    (runtime, analysis)
}

/// A small deterministic generator (xorshift), so that a failing history can be rerun.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Each series' counts by minute, recounted from every stored event (its JSON and the time
/// it was recorded), by the metrics' definitions, without the runtime's code.
fn recount(store: &dyn Store, monitors: &[Monitor], forged: &[String]) -> BTreeMap<String, BTreeMap<i64, (i64, i64)>> {
    let mut out: BTreeMap<String, BTreeMap<i64, (i64, i64)>> = BTreeMap::new();
    // A series is counted once, however many monitors watch it.
    let series: BTreeMap<String, &Monitor> = monitors.iter().map(|m| (m.series(), m)).collect();
    for run in store.runs(None).expect("runs") {
        let events = store.events(&run.id).expect("events");
        let mut opened: BTreeMap<String, i64> = BTreeMap::new();
        let mut escalated: Vec<String> = Vec::new();
        // The status the run last stopped with: a blocked run settles `blocked` again each
        // time it is advanced, and stops once.
        let mut stopped: Option<String> = None;
        // When it last ended (a final status), for the checks of its evidence and replay.
        let mut ended: Option<i64> = None;
        for raw in events {
            let minute = flow_ir::time::parse_timestamp(&raw.at).expect("an instant").0.div_euclid(60);
            let at = flow_ir::time::parse_timestamp(&raw.at).expect("an instant").0;
            let body: Json = serde_json::from_str(&raw.body).expect("JSON");
            let kind = body["event"].as_str().unwrap_or_default();
            let node = body["node"].as_str().unwrap_or_default().to_owned();
            let instant = |field: &str| flow_ir::time::parse_timestamp(body[field].as_str().unwrap_or_default());
            let waited = match kind {
                "review_opened" => {
                    opened.insert(node.clone(), at);
                    None
                }
                "timer_set" => {
                    opened.insert(node.clone(), instant("opened").expect("opened").0);
                    None
                }
                "review_decided" => opened.remove(&node).map(|from| at - from),
                "timed_out" => opened.remove(&node).map(|from| instant("at").expect("at").0 - from),
                _ => None,
            };
            let mut stop = None;
            if kind == "settled" {
                let status = body["status"].as_str().unwrap_or_default().to_owned();
                if ["pending", "running"].contains(&status.as_str()) {
                    stopped = None;
                } else {
                    if stopped.as_ref() != Some(&status) {
                        stop = Some(status.clone());
                        if status != "blocked" {
                            ended = Some(minute);
                        }
                    }
                    stopped = Some(status);
                }
            }
            let first_escalation = kind == "escalated" && !escalated.contains(&node);
            if kind == "escalated" {
                escalated.push(node.clone());
            }
            for m in series.values() {
                let of = |n: &str| m.subject.as_deref().is_none_or(|s| s == n);
                let (counted, total) = match (m.metric, kind) {
                    (Metric::Runs, "started") => (1, 0),
                    (Metric::Outcome, "settled") => match &stop {
                        Some(status) => (i64::from(m.subject.as_deref() == Some(status.as_str())), 1),
                        None => (0, 0),
                    },
                    (Metric::Degraded, "inferred") if of(&node) => (i64::from(body["degraded"] == json!(true)), 1),
                    (Metric::Blocked, "gate") if of(&node) && body["level"] == "block" => {
                        (i64::from(body["holds"] == json!(true)), 1)
                    }
                    (Metric::Overrides, "gate") if of(&node) && body["level"] == "block" && body["holds"] == true => {
                        (0, 1)
                    }
                    (Metric::Overrides, "gate_overridden") if of(&node) => (1, 0),
                    (Metric::Escalated | Metric::TimedOut, "review_opened") if of(&node) => (0, 1),
                    (Metric::Escalated, "escalated") if of(&node) => (i64::from(first_escalation), 0),
                    (Metric::TimedOut, "timed_out") if of(&node) => (1, 0),
                    (Metric::Latency, _) if of(&node) => match waited {
                        Some(waited) => (i64::from(waited > m.threshold), 1),
                        None => (0, 0),
                    },
                    _ => (0, 0),
                };
                if (counted, total) != (0, 0) {
                    let sum = out.entry(m.series()).or_default().entry(minute).or_default();
                    *sum = (sum.0 + counted, sum.1 + total);
                }
            }
        }
        // A run that ended is checked once: counted by the minute it ended.
        if let Some(minute) = ended {
            let forged = forged.contains(&run.id);
            for m in series.values() {
                let (counted, total) = match m.metric {
                    Metric::Evidence => (i64::from(!forged), 1),
                    Metric::ReplayFailures => (i64::from(forged), 0),
                    _ => continue,
                };
                let sum = out.entry(m.series()).or_default().entry(minute).or_default();
                *sum = (sum.0 + counted, sum.1 + total);
            }
        }
    }
    out
}

fn window(counts: &BTreeMap<i64, (i64, i64)>, after: i64) -> (i64, i64) {
    counts.range(after + 1..).fold((0, 0), |sum, (_, (c, t))| (sum.0 + c, sum.1 + t))
}

#[test]
fn monitors_count_what_a_recount_counts_and_alert_once_until_it_clears() {
    let dir = std::env::temp_dir().join(format!("flow-monitors-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a directory");
    let path = dir.join("runs.db");
    // How each store is opened, and how someone who can write it changes a run's evidence.
    type Opener = Box<dyn Fn() -> Box<dyn Store>>;
    type Forger = Box<dyn Fn(&str)>;
    let forged_path = path.clone();
    let mut stores: Vec<(Opener, Forger)> = vec![(
        Box::new(move || Box::new(SqliteStore::open(&path).expect("opens"))),
        Box::new(move |run| {
            let db = rusqlite::Connection::open(&forged_path).expect("opens");
            let changed = db
                .execute(
                    "UPDATE events SET body = replace(body, '\"summary\":\"', '\"summary\":\"forged ') \
                     WHERE run = ?1 AND body LIKE '%\"event\":\"settled\"%'",
                    [run],
                )
                .expect("forges");
            assert!(changed > 0, "no event of {run} changed");
        }),
    )];
    if let Some(url) = crate::postgres::database("monitors") {
        let forging = url.clone();
        stores.push((
            Box::new(move || Box::new(PostgresStore::open(&url).expect("opens"))),
            Box::new(move |run| {
                let mut client = ::postgres::Client::connect(&forging, ::postgres::NoTls).expect("connects");
                let changed = client
                    .execute(
                        "UPDATE flow_events SET body = replace(body, '\"summary\":\"', '\"summary\":\"forged ') \
                         WHERE run = $1 AND body LIKE '%\"event\":\"settled\"%'",
                        &[&run],
                    )
                    .expect("forges");
                assert!(changed > 0, "no event of {run} changed");
            }),
        ));
    }
    for (open, forge) in &stores {
        let clock: Seconds = Arc::new(Mutex::new(T0));
        let (runtime, analysis) = runtime_on(open(), &clock);
        let evaluator = runtime_on(open(), &clock).0;
        let monitors = analysis.body().monitors.clone();
        let clerk = principal("cleo", &["clerk"]);
        let manager = principal("max", &["manager"]);
        let director = principal("dora", &["director"]);
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut pending: Vec<String> = Vec::new();
        let mut forged: Vec<String> = Vec::new();
        let mut blocked: Vec<String> = Vec::new();
        let mut raised = 0;
        let mut resolved = 0;
        // The most each monitor counted in a window: every metric must see something.
        let mut seen: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        let mut n = 0;
        // Seven hours in steps of seven minutes: the mix of requests changes with the hour,
        // so that conditions hold for a while and then clear.
        for step in 0..60 {
            let now = T0 + step * 7 * 60;
            *clock.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = now;
            let hour = step * 7 / 60;
            let troubled = hour % 3 == 1;
            for _ in 0..rng.below(if hour == 5 { 1 } else { 5 }) {
                n += 1;
                let request = json!({
                    "id": format!("R{n}"),
                    "flaky": rng.chance(if troubled { 60 } else { 5 }),
                    "blocked": rng.chance(if troubled { 50 } else { 10 }),
                    "large": rng.chance(50),
                });
                let view = runtime
                    .start(&analysis, &clerk, &[("request".to_owned(), request)], &StartOptions::default())
                    .expect("the run starts");
                match view.status {
                    Status::Pending => pending.push(view.run),
                    Status::Blocked => blocked.push(view.run),
                    // Now and then, someone who can write the store changes a run that just
                    // ended: its evidence no longer checks, and it does not replay.
                    _ if troubled && forged.len() < 3 && rng.chance(30) => {
                        forge(&view.run);
                        forged.push(view.run);
                    }
                    _ => {}
                }
            }
            // People decide some waiting reviews (a director once it is escalated to them),
            // override some blocks; deadlines fire for the rest.
            let mut still = Vec::new();
            for run in pending.drain(..) {
                if rng.chance(if troubled { 5 } else { 30 }) {
                    let who = if rng.chance(50) { &manager } else { &director };
                    let input = DecisionInput {
                        outcome: "ok".to_owned(),
                        reason: Some("fine".to_owned()),
                        basis: None,
                        edits: Vec::new(),
                    };
                    match runtime.decide(&run, "check", who, &input) {
                        Ok(view) if view.status == Status::Pending => still.push(run),
                        Ok(_) => {}
                        // Not yet escalated to the director, or decided by its deadline.
                        Err(_) => still.push(run),
                    }
                } else {
                    still.push(run);
                }
            }
            pending = still;
            blocked.retain(|run| {
                if !rng.chance(if troubled { 40 } else { 3 }) {
                    return true;
                }
                runtime
                    .override_gate(run, "stale", &director, "checked_by_hand", Some("called the vendor"))
                    .expect("overrides");
                false
            });
            let tick = runtime.tick(runtime.now()).expect("ticks");
            assert!(tick.failed.is_empty(), "{tick:?}");
            // Now and then, two processes evaluate at once; the counts are checked against
            // a recount every time.
            if step % 3 == 2 {
                let (a, b) = std::thread::scope(|scope| {
                    let a = scope.spawn(|| runtime.evaluate_monitors().expect("evaluates"));
                    let b = scope.spawn(|| evaluator.evaluate_monitors().expect("evaluates"));
                    (a.join().expect("joins"), b.join().expect("joins"))
                });
                raised += a.raised.len() + b.raised.len();
                resolved += a.resolved.len() + b.resolved.len();
                let recounted = recount(runtime.store(), &monitors, &forged);
                for reading in &a.readings {
                    let m = &reading.watched.monitor;
                    let expected =
                        window(&recounted.get(&m.series()).cloned().unwrap_or_default(), now / 60 - m.window / 60);
                    assert_eq!((reading.counted, reading.of), expected, "monitor `{}` at step {step}", m.name);
                    let most = seen.entry(m.name.to_string()).or_default();
                    *most = (most.0.max(expected.0), most.1.max(expected.1));
                    assert_eq!(reading.holds, m.holds(expected.0, expected.1), "monitor `{}`", m.name);
                    // Whoever evaluated, one alert is open exactly while the condition holds.
                    let open = runtime.store().alerts(true, 100).expect("alerts");
                    let open_here = open.iter().filter(|a| a.monitor == m.name.as_str()).count();
                    assert_eq!(open_here, usize::from(reading.holds == Some(true)), "monitor `{}`", m.name);
                }
            }
        }
        for (name, (counted, of)) in &seen {
            let count = ["volume", "busy", "replays"].contains(&name.as_str());
            assert!(*counted > 0 && (*of > 0 || count), "monitor `{name}` saw nothing: {seen:?}");
        }
        let fired: std::collections::BTreeSet<String> =
            runtime.store().alerts(false, 1_000).expect("alerts").into_iter().map(|a| a.monitor).collect();
        eprintln!("monitors: {seen:?}; alerts raised by {fired:?}");
        assert!(
            raised >= 3 && resolved >= 2,
            "the history should raise and clear alerts: {raised} raised, {resolved} resolved"
        );
        // The audit's recount from the evidence: the forged runs cannot be read, and the store
        // counted what they did when they ran; every other count agrees.
        let (differ, unread) = runtime.recount_monitors().expect("recounts");
        let mut unread: Vec<String> = unread.into_iter().map(|(what, _)| what).collect();
        unread.sort();
        let mut expected: Vec<String> = forged.iter().map(|run| format!("run {run}")).collect();
        expected.sort();
        assert_eq!(unread, expected);
        for d in &differ {
            assert!(d.stored.0 >= d.recounted.0 && d.stored.1 >= d.recounted.1, "{d:?}");
        }
        // Each alert was raised and resolved once (two evaluators), and its notices went
        // to the endpoints of its routes only, once each.
        let alerts = runtime.store().alerts(false, 1_000).expect("alerts");
        assert_eq!(alerts.len(), raised, "{alerts:#?}");
        assert_eq!(alerts.iter().filter(|a| a.resolved.is_some()).count(), resolved);
        let deliveries = runtime.store().deliveries(None).expect("deliveries");
        for alert in &alerts {
            for (endpoint, routes) in [
                ("platform_pager", vec!["platform"]),
                ("governance_desk", vec!["governance", "director"]),
                ("everything_else", vec![]),
            ] {
                let wanted = alert.routes.iter().any(|r| routes.contains(&r.as_str()));
                for (kind, happened) in [("raised", true), ("resolved", alert.resolved.is_some())] {
                    let id = format!("{}.{kind}", alert.id);
                    let sent = deliveries.iter().filter(|d| d.notice.endpoint == endpoint && d.notice.id == id).count();
                    assert_eq!(sent, usize::from(wanted && happened), "{id} to {endpoint}");
                }
            }
        }
        // The alert notices carry what the receiver needs.
        let notice = deliveries.iter().find(|d| d.notice.kind == "alert.raised").expect("an alert notice");
        for field in ["flow", "monitor", "severity", "routes", "condition", "value", "raised"] {
            assert!(!notice.notice.data[field].is_null(), "{field}: {}", notice.notice.data);
        }
    }
}
