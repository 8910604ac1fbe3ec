//! Releases over generated histories: random principals propose, approve, reject and publish
//! random versions of a flow in random environments through two runtimes on one store, and
//! runs are started in controlled environments. Whatever they try, a release goes live only
//! as the publishing rules allow (approvals by distinct holders of the approvers' roles,
//! never the author, as many as the change needs, promoted only as the same hash), a run in
//! a controlled environment starts only on the published plan and names its release, every
//! refused step leaves the log as it was, and the exported log verifies — while any changed
//! byte, and any forged step re-hashed into a consistent chain, fails verification. On
//! SQLite and PostgreSQL.

use std::collections::BTreeMap;
use std::sync::Arc;

use flow_runtime::release::{self, Governance, ReleaseState};
use flow_runtime::store::{PostgresStore, SqliteStore, Store};
use flow_runtime::{ErrorKind, Principal, Proposal, ReleaseControl, Runtime, StartOptions};
use serde_json::{Value as Json, json};

use crate::guarantees::principal;

const RULES: &str = r#"
[[environments]]
name = "dev"
approvals = 0

[[environments]]
name = "staging"
controlled = true
approvals = 1

[[environments]]
name = "prod"
controlled = true

[[rules]]
flows = ["watch*"]
authors = ["steward"]
approvers = ["officer", "director"]
approvals = 2
"#;

/// Who holds which roles.
const PEOPLE: &[(&str, &[&str])] = &[
    ("sam", &["steward"]),
    ("sue", &["steward"]),
    ("oli", &["officer"]),
    ("ola", &["officer"]),
    ("dan", &["director"]),
    ("cal", &["clerk"]),
    ("ivy", &["steward", "officer"]),
];

/// A version of the flow: its limit (material) and its description (not).
fn source(limit: u32, description: &str) -> String {
    format!(
        r#"
role clerk
role steward
role officer
role director

type Request {{
  amount: Int
}}

/// {description}
flow watched {{
  version "1.0.0"
  owner clerk
  steward steward
  input request: Request
  output big: Bool
  param limit: Int = {limit}

  access {{
    trigger by clerk
    read evidence by clerk
  }}

  emit big = request.amount > limit
}}
"#
    )
}

fn plans() -> Vec<flow_ir::VerifiedPlan> {
    let mut plans = Vec::new();
    for limit in [10, 20, 30] {
        for description in ["Large requests.", "Requests above the limit."] {
            let checked = crate::check_fixture("main.flow", source(limit, description).as_bytes());
            assert!(checked.diagnostics.is_empty(), "{}", checked.render());
            plans.push(crate::plans(&checked).into_iter().flatten().next().expect("the flow compiles"));
        }
    }
    plans
}

fn someone(i: u64) -> Principal {
    let (id, roles) = PEOPLE[i as usize % PEOPLE.len()];
    principal(id, roles)
}

fn roles_of(id: &str) -> &'static [&'static str] {
    PEOPLE.iter().find(|(who, _)| *who == id).map_or(&[], |(_, roles)| roles)
}

fn governance() -> Arc<Governance> {
    let governance: Governance = toml::from_str(RULES).expect("the rules parse");
    governance.check().expect("the rules check");
    Arc::new(governance)
}

/// A runtime in `environment`, signing with the key of seed `key` when given.
fn runtime_on(store: Box<dyn Store>, environment: &str, key: Option<&str>) -> Runtime {
    let mut runtime = Runtime::new(store);
    if let Some(seed) = key {
        runtime.set_signing_key(flow_runtime::evidence::signing_key(seed).expect("a seed"));
    }
    runtime
        .set_release_control(ReleaseControl {
            governance: governance(),
            environment: Some(environment.to_owned()),
            store: None,
        })
        .expect("the environment is the rules'");
    runtime
}

pub(crate) fn xorshift(mut seed: u64) -> impl FnMut(u64) -> u64 {
    move |n| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n.max(1)
    }
}

/// The approvals a release needs, computed here from the rules and the two plans.
fn needed(environment: &str, old: Option<&flow_ir::VerifiedPlan>, new: &flow_ir::VerifiedPlan) -> u32 {
    let material = old.is_none_or(|old| flow_ir::diff::diff(old.plan(), new.plan()).is_material());
    match (material, environment) {
        (false, _) => 0,
        (true, "dev") => 0,
        (true, "staging") => 1,
        (true, _) => 2,
    }
}

/// What every published release of `registry` must satisfy, checked against the people's
/// real roles (not those the log records) and the plans.
fn check_published(registry: &release::Registry, plans: &BTreeMap<String, flow_ir::VerifiedPlan>) {
    for r in &registry.releases {
        let Some(published) = &r.published else { continue };
        let author = &r.proposed.principal;
        assert!(roles_of(author).contains(&"steward"), "{} authored by {author}", r.id);
        let mut approvers: Vec<&str> = r.approvals.iter().map(|a| a.principal.as_str()).collect();
        for approver in &approvers {
            assert_ne!(approver, author, "{}: the author approved", r.id);
            assert!(
                roles_of(approver).iter().any(|role| ["officer", "director"].contains(role)),
                "{}: approved by {approver}",
                r.id
            );
        }
        approvers.sort();
        approvers.dedup();
        let old = r.live.as_ref().map(|l| &plans[&l.plan]);
        let need = needed(&r.environment, old, &plans[&r.plan]);
        assert!(approvers.len() as u32 >= need, "{} published with {approvers:?}, needing {need}", r.id);
        assert!(published.principal == *author || roles_of(&published.principal).contains(&"steward"));
        // Promoted only as the same hash: a release beyond dev names the release before.
        if r.environment != "dev" {
            let from = r.promoted_from.as_ref().unwrap_or_else(|| panic!("{} was not promoted", r.id));
            let earlier = registry.release(from).expect("the release it was promoted from");
            let previous = if r.environment == "staging" { "dev" } else { "staging" };
            assert_eq!((earlier.plan.as_str(), earlier.environment.as_str()), (r.plan.as_str(), previous));
        }
    }
}

/// Plays a random history of `steps` on two runtimes sharing a store; returns the runtime
/// that exports the log.
fn history(open: &dyn Fn() -> Box<dyn Store>, seed: u64, steps: usize, key: Option<&str>) -> Runtime {
    let plans = plans();
    let by_hash: BTreeMap<String, flow_ir::VerifiedPlan> =
        plans.iter().map(|p| (p.hash().to_owned(), p.clone())).collect();
    let runtimes = [runtime_on(open(), "staging", key), runtime_on(open(), "prod", key)];
    let mut random = xorshift(seed);
    let environments = ["dev", "staging", "prod"];
    let mut refusals = runtimes[0].store().refusals().expect("refusals").len();
    for step in 0..steps {
        let runtime = &runtimes[random(2) as usize];
        let before = runtime.release_log().expect("the log checks").registry;
        let who = someone(random(PEOPLE.len() as u64));
        let releases = before.releases.len() as u64;
        let pick = |n: u64| format!("rel-{}", n % releases.max(1) + 1);
        let (what, done) = match random(10) {
            0..=2 => {
                let environment = environments[random(3) as usize];
                let promote = random(2) == 0;
                let plan = (!promote).then(|| plans[random(plans.len() as u64) as usize].clone());
                let proposal = Proposal { plan, flow: Some("watched"), environment, reason: "a change", source: None };
                ("propose", runtime.propose(&who, proposal).map(|_| ()))
            }
            3..=5 => ("approve", runtime.approve_release(&who, &pick(random(1000)), "checked").map(|_| ())),
            6 => ("reject", runtime.reject_release(&who, &pick(random(1000)), "not now").map(|_| ())),
            _ => ("publish", runtime.publish_release(&who, &pick(random(1000))).map(|_| ())),
        };
        let after = runtime.release_log().expect("the log checks").registry;
        let grown =
            after.head.as_ref().map_or(0, |(seq, _)| seq + 1) - before.head.as_ref().map_or(0, |(seq, _)| seq + 1);
        let now_refused = runtime.store().refusals().expect("refusals").len();
        match &done {
            Ok(()) => assert_eq!(grown, 1, "step {step}: {what} by {} recorded {grown} entries", who.id),
            Err(error) => {
                assert_eq!(grown, 0, "step {step}: a failed {what} recorded an entry");
                let refused = error.kind() == ErrorKind::Refused;
                assert!(refused || error.kind() == ErrorKind::Decision || error.kind() == ErrorKind::Input, "{error}");
                assert_eq!(now_refused - refusals, usize::from(refused), "step {step}: {error}");
            }
        }
        refusals = now_refused;
        check_published(&after, &by_hash);
        // Both runtimes read the same log.
        let other = &runtimes[usize::from(std::ptr::eq(runtime, &runtimes[0]))];
        assert_eq!(other.release_log().expect("the log checks").registry, after);
        // A run in each controlled environment starts only on the plan published there.
        if random(4) == 0 {
            let (runtime, environment) =
                if random(2) == 0 { (&runtimes[0], "staging") } else { (&runtimes[1], "prod") };
            let plan = &plans[random(plans.len() as u64) as usize];
            let analysis = runtime.install(plan.clone()).expect("installs");
            let live = after.live(environment, "watched");
            let started = runtime.start(
                &analysis,
                &principal("cal", &["clerk"]),
                &[("request".into(), json!({"amount": 15}))],
                &StartOptions::default(),
            );
            match (started, live) {
                (Ok(view), Some(live)) if live.plan == plan.hash() => {
                    let events = crate::guarantees::events(runtime, &view.run);
                    let Some(flow_runtime::event::Event::Started(started)) = events.first() else { panic!("no start") };
                    let named = started.release.as_ref().expect("the run names its release");
                    assert_eq!((named.release.as_str(), named.environment.as_str()), (live.id.as_str(), environment));
                    let approvers: Vec<&str> = live.approvals.iter().map(|a| a.principal.as_str()).collect();
                    assert_eq!(named.approvers, approvers);
                }
                (Ok(view), live) => panic!("run {} started on an unpublished plan (live: {live:?})", view.run),
                (Err(error), Some(live)) if live.plan == plan.hash() => {
                    panic!("the published plan was refused: {error}")
                }
                (Err(error), _) => {
                    assert_eq!(error.kind(), ErrorKind::Refused, "{error}");
                    refusals += 1;
                }
            }
        }
    }
    let [first, _] = runtimes;
    first
}

/// Opens a store again.
type Opener = Box<dyn Fn() -> Box<dyn Store>>;

fn stores() -> Vec<(String, Opener)> {
    let dir = std::env::temp_dir().join(format!("flow-releases-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a directory");
    let path = dir.join("runs.db");
    let mut stores: Vec<(String, Opener)> =
        vec![("sqlite".to_owned(), Box::new(move || Box::new(SqliteStore::open(&path).expect("opens"))))];
    if let Some(url) = crate::postgres::database("releases") {
        stores.push(("postgres".to_owned(), Box::new(move || Box::new(PostgresStore::open(&url).expect("opens")))));
    }
    stores
}

#[test]
fn random_release_histories_publish_only_what_the_rules_allow() {
    for (name, open) in stores() {
        let runtime = history(&*open, 0x5eed_0001, 400, None);
        let log = runtime.release_log().expect("the log checks");
        let live = log.registry.releases.iter().filter(|r| log.registry.state(r) == ReleaseState::Live).count();
        assert!(live >= 2, "{name}: the history published too little to test anything ({live} live)");
        let audit = runtime.audit(None).expect("audits");
        assert!(audit.is_clean(), "{name}: {:?}", audit.problems);
        assert_eq!(audit.releases, log.entries.len());
        let bundle =
            flow_runtime::evidence::render(&runtime.export_release_log(&principal("aud", &[])).expect("exports"));
        let verified = release::verify_bundle(&bundle, &[], false).unwrap_or_else(|p| panic!("{name}: {p:?}"));
        assert_eq!(verified.entries, log.entries.len());
        assert!(verified.logged.is_some());
        forgeries_fail(&bundle, &log);
    }
}

/// Changes `bundle`'s entries with `edit`, then makes it consistent again — every hash from
/// the first changed entry on, the head and the digest — as someone without the key can.
fn rechained(bundle: &str, edit: impl FnOnce(&mut Vec<Json>)) -> String {
    let mut json: Json = serde_json::from_str(bundle).expect("JSON");
    let mut entries = json["entries"].as_array().cloned().expect("entries");
    edit(&mut entries);
    let mut prev = flow_runtime::digest::GENESIS.to_owned();
    for (i, entry) in entries.iter_mut().enumerate() {
        entry["seq"] = json!(i);
        entry["prev"] = json!(prev);
        let hash = release::entry_hash(&prev, i as u64, entry["at"].as_str().unwrap_or(""), &entry["event"]);
        entry["hash"] = json!(hash);
        prev = hash;
    }
    json["entries"] = Json::Array(entries);
    json["head"] = json!(prev);
    let object = json.as_object_mut().expect("an object");
    object.remove("log");
    object.remove("digest");
    let digest = flow_runtime::digest::digest(&Json::Object(object.clone()));
    object.insert("digest".into(), json!(digest));
    flow_runtime::evidence::render(&json)
}

fn forgeries_fail(bundle: &str, log: &flow_runtime::ReleaseLog) {
    // Any changed byte.
    let mut random = xorshift(0xb17e);
    let bytes = bundle.as_bytes();
    for _ in 0..300 {
        let mut changed = bytes.to_vec();
        let at = random(changed.len() as u64) as usize;
        changed[at] = if changed[at] == b'a' { b'b' } else { b'a' };
        let text = String::from_utf8_lossy(&changed);
        assert!(release::verify_bundle(&text, &[], false).is_err(), "a change at byte {at} verified");
    }
    // Re-chained, a consistent log of another history: each forgery breaks a rule.
    let published = log
        .registry
        .releases
        .iter()
        .find(|r| r.published.is_some() && !r.approvals.is_empty())
        .expect("an approved release");
    let first_approval = published.approvals[0].seq as usize;
    let author = published.proposed.principal.clone();
    let changed =
        log.registry.releases.iter().find(|r| !r.changes.is_empty()).expect("a release that changes something");
    let forgeries: Vec<(&str, String)> = vec![
        ("the author approves", rechained(bundle, |e| e[first_approval]["event"]["principal"] = json!(author))),
        (
            "an approval removed",
            rechained(bundle, |e| {
                e.remove(first_approval);
            }),
        ),
        ("an approver without the role", rechained(bundle, |e| e[first_approval]["event"]["roles"] = json!(["clerk"]))),
        (
            "another flow named",
            rechained(bundle, |e| e[changed.proposed.seq as usize]["event"]["flow"] = json!("other")),
        ),
        (
            "a publication repeated",
            rechained(bundle, |e| {
                let publication = e[published.published.as_ref().map_or(0, |p| p.seq as usize)].clone();
                e.push(publication);
            }),
        ),
        (
            "a change hidden",
            rechained(bundle, |e| {
                let proposal = changed.proposed.seq as usize;
                e[proposal]["event"]["changes"] = json!([]);
                e[proposal]["event"]["material"] = json!(true);
            }),
        ),
    ];
    for (what, forged) in forgeries {
        let problems = release::verify_bundle(&forged, &[], false).expect_err(what);
        assert!(!problems.is_empty(), "{what}");
    }
    // The untouched log, rechained the same way, still verifies: the forgeries fail for
    // what they changed.
    release::verify_bundle(&rechained(bundle, |_| {}), &[], false).expect("an unchanged log, re-chained, verifies");
}

#[test]
fn a_signed_release_log_cannot_be_rewritten_without_the_key() {
    let seed = "11".repeat(32);
    let dir = std::env::temp_dir().join(format!("flow-releases-signed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a directory");
    let path = dir.join("runs.db");
    let open = {
        let path = path.clone();
        move || Box::new(SqliteStore::open(&path).expect("opens")) as Box<dyn Store>
    };
    let runtime = history(&open, 0x5eed_0002, 250, Some(&seed));
    let public = flow_runtime::evidence::public_key_hex(&flow_runtime::evidence::signing_key(&seed).expect("a seed"));
    let bundle = flow_runtime::evidence::render(&runtime.export_release_log(&principal("aud", &[])).expect("exports"));
    let verified = release::verify_bundle(&bundle, std::slice::from_ref(&public), true).expect("verifies with the key");
    assert_eq!(verified.signed_by, std::slice::from_ref(&public));
    assert!(release::verify_bundle(&bundle, &["22".repeat(32)], true).is_err(), "another key was believed");
    // Changed and re-chained by someone without the key, an approval's signature fails.
    let log = runtime.release_log().expect("the log checks");
    let approval = log.registry.releases.iter().flat_map(|r| &r.approvals).next().expect("an approval").seq as usize;
    let forged = rechained(&bundle, |e| e[approval]["event"]["reason"] = json!("forged"));
    let problems =
        release::verify_bundle(&forged, std::slice::from_ref(&public), true).expect_err("a forged log verified");
    assert!(problems.iter().any(|p| p.contains("signature")), "{problems:?}");
    // Without its signatures, a log is refused where signatures are required.
    let stripped = rechained(&bundle, |e| {
        for entry in e.iter_mut() {
            entry.as_object_mut().expect("an entry").remove("signature");
        }
    });
    assert!(release::verify_bundle(&stripped, &[], true).is_err());
    // A store whose release log someone changed is refused by a runtime reading it afresh:
    // no run starts in a controlled environment, and the audit names the entry.
    let db = rusqlite::Connection::open(&path).expect("opens");
    let changed = db
        .execute(
            "UPDATE releases SET body = replace(body, '\"checked\"', '\"forged\"') WHERE seq = ?1",
            [approval as i64],
        )
        .expect("forges");
    assert_eq!(changed, 1);
    let reader = runtime_on(open(), "prod", Some(&seed));
    let error = reader.release_log().expect_err("a changed release log was believed");
    assert_eq!(error.kind(), ErrorKind::Tampered, "{error}");
    let plan = reader.install(plans().swap_remove(0)).expect("installs");
    let refused = reader.start(
        &plan,
        &principal("cal", &["clerk"]),
        &[("request".into(), json!({"amount": 1}))],
        &StartOptions::default(),
    );
    assert_eq!(refused.err().map(|e| e.kind()), Some(ErrorKind::Tampered));
    let audit = reader.audit(None).expect("audits");
    assert!(
        audit.problems.iter().any(|p| p.contains(&format!("release log entry {approval}"))),
        "{:?}",
        audit.problems
    );
    db.execute(
        "UPDATE releases SET body = replace(body, '\"forged\"', '\"checked\"') WHERE seq = ?1",
        [approval as i64],
    )
    .expect("mends");
    assert!(runtime_on(open(), "prod", Some(&seed)).release_log().is_ok(), "the store as it was");
    // The last entry removed, and the store's log row of it made to name the entry before:
    // the log no longer has the root its signed checkpoint says.
    let (last, before): (i64, String) = db
        .query_row(
            "SELECT seq - 1, (SELECT hash FROM releases r WHERE r.seq = releases.seq - 1) FROM releases ORDER BY seq DESC LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("reads");
    db.execute("DELETE FROM releases WHERE seq = ?1", [last + 1]).expect("deletes");
    db.execute(
        "UPDATE log SET seq = ?1, hash = ?2 WHERE n = (SELECT max(n) FROM log WHERE kind = 'release')",
        rusqlite::params![last, before],
    )
    .expect("rewrites the log's row");
    let reader = runtime_on(open(), "prod", Some(&seed));
    let error = reader.release_log().expect_err("a cut release log was believed");
    assert_eq!(error.kind(), ErrorKind::Tampered, "{error}");
    assert!(error.to_string().contains("is not the log its checkpoint signs"), "{error}");
    // An exported log without its inclusion proof is refused where signatures are required.
    let unlogged = rechained(&bundle, |_| {});
    assert!(release::verify_bundle(&unlogged, std::slice::from_ref(&public), true).is_err());
}

fn proposal(plan: Option<flow_ir::VerifiedPlan>, environment: &str) -> Proposal<'_> {
    Proposal { plan, flow: Some("watched"), environment, reason: "r", source: None }
}

/// A release recorded under rules laxer than the environment's (by a process with another
/// rules file) does not start runs there; publishing under rules made stricter since is
/// refused; a promotion of a version the environment before has replaced goes stale.
#[test]
fn releases_meet_the_rules_of_the_environment_that_runs_them() {
    let dir = std::env::temp_dir().join(format!("flow-releases-rules-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a directory");
    let path = dir.join("runs.db");
    let lax: Governance = toml::from_str(&RULES.replace("approvals = 2", "approvals = 0")).expect("parses");
    let with_rules = |governance: Governance| {
        let mut runtime = Runtime::new(Box::new(SqliteStore::open(&path).expect("opens")));
        let control =
            ReleaseControl { governance: Arc::new(governance), environment: Some("prod".into()), store: None };
        runtime.set_release_control(control).expect("sets");
        runtime
    };
    let strict = with_rules((*governance()).clone());
    let careless = with_rules(lax);
    let plans = plans();
    let sam = principal("sam", &["steward"]);
    let oli = principal("oli", &["officer"]);
    let publish = |runtime: &Runtime, environment: &str, approvers: &[&Principal]| {
        let release = runtime.propose(&sam, proposal(None, environment)).expect("proposes");
        for approver in approvers {
            runtime.approve_release(approver, &release.id, "ok").expect("approves");
        }
        runtime.publish_release(&sam, &release.id).map(|r| r.id)
    };
    let dev = strict.propose(&sam, proposal(Some(plans[0].clone()), "dev")).expect("proposes");
    strict.publish_release(&sam, &dev.id).expect("publishes");
    publish(&strict, "staging", &[&oli]).expect("staging");
    // Published in prod with no approval, under the careless process's rules.
    publish(&careless, "prod", &[]).expect("the careless process publishes alone");
    let analysis = strict.install(plans[0].clone()).expect("installs");
    let cal = principal("cal", &["clerk"]);
    let inputs = [("request".to_owned(), json!({"amount": 15}))];
    let refused = strict.start(&analysis, &cal, &inputs, &StartOptions::default()).expect_err("started");
    assert_eq!(refused.kind(), ErrorKind::Refused, "{refused}");
    assert!(refused.to_string().contains("does not meet the publishing rules"), "{refused}");
    // Kept in memory, a run is refused as well: it would call the same systems.
    assert_eq!(
        strict.evaluate(&analysis, &cal, &inputs, &StartOptions::default()).err().map(|e| e.kind()),
        Some(ErrorKind::Refused)
    );
    // The same version proposed again is approved anew, as a whole, under these rules.
    let again = strict.propose(&sam, proposal(Some(plans[0].clone()), "prod")).expect("proposed again");
    assert_eq!((again.material, again.approvals_needed, again.changes.len()), (true, 2, 0));
    strict.approve_release(&oli, &again.id, "ok").expect("approves");
    strict.approve_release(&principal("dan", &["director"]), &again.id, "ok").expect("approves");
    strict.publish_release(&sam, &again.id).expect("publishes");
    strict.start(&analysis, &cal, &inputs, &StartOptions::default()).expect("starts on the version approved anew");
    // Approved by one where the rules now ask for two: the strict process will not publish.
    let careless_dev = careless.propose(&sam, proposal(Some(plans[2].clone()), "dev")).expect("proposes");
    careless.publish_release(&sam, &careless_dev.id).expect("publishes in dev");
    let staged = careless.propose(&sam, proposal(None, "staging")).expect("proposes");
    careless.approve_release(&oli, &staged.id, "ok").expect("approves");
    careless.publish_release(&sam, &staged.id).expect("publishes in staging");
    let lax_prod = careless.propose(&sam, proposal(None, "prod")).expect("proposes under the lax rules");
    let refused = strict.publish_release(&sam, &lax_prod.id).expect_err("published under rules laxer than these");
    assert!(refused.to_string().contains("does not meet the publishing rules"), "{refused}");
    let to_prod = strict.propose(&sam, proposal(None, "prod")).expect("proposes");
    strict.approve_release(&oli, &to_prod.id, "ok").expect("approves");
    let dan = principal("dan", &["director"]);
    // Staging moves on before prod publishes: the promotion is stale.
    let newer = strict.propose(&sam, proposal(Some(plans[4].clone()), "dev")).expect("proposes");
    strict.publish_release(&sam, &newer.id).expect("publishes");
    let restaged = strict.propose(&sam, proposal(None, "staging")).expect("proposes");
    strict.approve_release(&oli, &restaged.id, "ok").expect("approves");
    strict.publish_release(&sam, &restaged.id).expect("publishes");
    let stale = strict.approve_release(&dan, &to_prod.id, "ok").expect_err("a stale promotion was approved");
    assert!(stale.to_string().contains("is stale"), "{stale}");
    assert_eq!(
        strict
            .release(&to_prod.id)
            .map(|r| strict.release_log().map(|l| l.registry.state(&r)))
            .ok()
            .and_then(Result::ok),
        Some(ReleaseState::Stale)
    );
}

/// Environments whose runs live in stores of their own share one release store: a plan
/// published in dev is promoted to staging as the same hash, the staging runtime starts runs
/// on it though its own store never had it installed, and each run store holds its runs only.
#[test]
fn environments_apart_share_one_release_store() {
    let dir = std::env::temp_dir().join(format!("flow-releases-apart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a directory");
    let releases: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.join("releases.db")).expect("opens"));
    let in_environment = |environment: &str| {
        let mut runtime =
            Runtime::new(Box::new(SqliteStore::open(&dir.join(format!("{environment}.db"))).expect("opens")));
        let control = ReleaseControl {
            governance: governance(),
            environment: Some(environment.to_owned()),
            store: Some(releases.clone()),
        };
        runtime.set_release_control(control).expect("the environment is the rules'");
        runtime
    };
    let (dev, staging) = (in_environment("dev"), in_environment("staging"));
    let plan = plans().swap_remove(0);
    let proposal = |plan, environment| Proposal { plan, flow: Some("watched"), environment, reason: "r", source: None };
    let sam = principal("sam", &["steward"]);
    let first = dev.propose(&sam, proposal(Some(plan.clone()), "dev")).expect("proposed in dev");
    dev.publish_release(&sam, &first.id).expect("published alone in dev");
    // Staging reads the release log dev wrote, and promotes dev's plan.
    let promoted = staging.propose(&sam, proposal(None, "staging")).expect("promoted");
    assert_eq!((promoted.plan.as_str(), promoted.promoted_from.as_deref()), (plan.hash(), Some(first.id.as_str())));
    staging.approve_release(&principal("oli", &["officer"]), &promoted.id, "ok").expect("approved");
    staging.publish_release(&sam, &promoted.id).expect("published in staging");
    let live = staging.live_plan("watched").expect("reads").expect("a live plan");
    let analysis = staging.plan(&live).expect("the plan, from the release store");
    let view = staging
        .start(
            &analysis,
            &principal("cal", &["clerk"]),
            &[("request".into(), json!({"amount": 15}))],
            &StartOptions::default(),
        )
        .expect("starts on the published plan");
    let events = crate::guarantees::events(&staging, &view.run);
    let Some(flow_runtime::event::Event::Started(started)) = events.first() else { panic!("no start") };
    assert_eq!(started.release.as_ref().map(|r| r.release.as_str()), Some(promoted.id.as_str()));
    assert_eq!(dev.store().runs(None).expect("runs").len(), 0, "dev's store holds no staging run");
    // The run's plan is kept in staging's own store: its evidence exports and verifies, and
    // the store copies whole.
    assert!(staging.store().plan(&live).expect("reads").is_some(), "the plan came to the run store");
    let bundle = staging.evidence(&view.run, &principal("cal", &["clerk"])).expect("exports");
    flow_runtime::evidence::verify(flow_runtime::evidence::render(&bundle).as_bytes()).expect("verifies");
    let copy = SqliteStore::open(&dir.join("releases-copy.db")).expect("opens");
    let copied = Runtime::new(Box::new(SqliteStore::open(&dir.join("releases.db")).expect("opens")))
        .copy_to(&copy)
        .expect("the release store copies");
    assert_eq!((copied.releases, copied.plans), (5, 1), "{copied:?}");
    assert!(releases.runs(None).expect("runs").is_empty(), "the release store holds no run");
    // Each store audits clean; the release log is the release store's.
    let audit = Runtime::new(Box::new(SqliteStore::open(&dir.join("releases.db")).expect("opens")))
        .audit(None)
        .expect("audits");
    assert!(audit.is_clean() && audit.releases == 5, "{audit:?}");
    let audit = staging.audit(None).expect("audits");
    assert!(audit.is_clean() && audit.runs == 1, "{audit:?}");
    let exported = staging.export_release_log(&principal("aud", &[])).expect("exports");
    release::verify_bundle(&flow_runtime::evidence::render(&exported), &[], false).expect("verifies");
}

/// A run records the deployment it started in: a runtime that started runs and is then put in
/// an environment (here one not under release control, so the runs name no release either
/// way) records the environment's digest, not the one it computed before.
#[test]
fn a_run_names_the_deployment_it_started_in() {
    let mut runtime = Runtime::new(Box::new(SqliteStore::open(std::path::Path::new(":memory:")).expect("opens")));
    let analysis = runtime.install(plans().swap_remove(0)).expect("installs");
    let (cal, inputs) = (principal("cal", &["clerk"]), [("request".to_owned(), json!({"amount": 15}))]);
    let before = runtime.start(&analysis, &cal, &inputs, &StartOptions::default()).expect("starts");
    let control = ReleaseControl { governance: governance(), environment: Some("dev".to_owned()), store: None };
    runtime.set_release_control(control).expect("the environment is the rules'");
    let after = runtime.start(&analysis, &cal, &inputs, &StartOptions::default()).expect("starts");
    let mut deployments = Vec::new();
    for run in [&before.run, &after.run] {
        let bundle = runtime.evidence(run, &cal).expect("exports");
        flow_runtime::evidence::verify(flow_runtime::evidence::render(&bundle).as_bytes()).expect("verifies");
        let events = crate::guarantees::events(&runtime, run);
        let Some(flow_runtime::event::Event::Started(started)) = events.first() else { panic!("no start") };
        deployments.push(started.deployment.clone());
    }
    assert_ne!(deployments[0], deployments[1], "the environment is part of the deployment");
}
