//! The run commands end to end, as a real process over a real store, with a flow that has
//! every kind of step (`tests/runs/loan.flow`), a local model and an idempotent local
//! system: every outcome, every step kind, access grants, separation of duties, bad input,
//! tampered evidence, and crashes at random points. The tests declared with
//! `on_every_store!` run on a SQLite file and on PostgreSQL alike (the deployment's
//! `flow.toml` names the store); those that edit a store's tables by hand run on SQLite.

#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value as Json, json};

const FIXTURES: &[&str] = &["loan.flow", "scorer.py", "ledger.py", "flow.toml", "flow-principals.toml"];

/// A fresh deployment directory with the fixtures, on a SQLite store.
fn deployment(name: &str) -> PathBuf {
    deployment_on(name, None)
}

/// A fresh deployment directory with the fixtures, on the PostgreSQL database `postgres`
/// names (its `flow.toml` says so), or on a SQLite store.
pub(crate) fn deployment_on(name: &str, postgres: Option<&str>) -> PathBuf {
    let on = if postgres.is_some() { "pg" } else { "sqlite" };
    let dir = std::env::temp_dir().join(format!("flowc-runs-{}-{name}-{on}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/runs");
    for file in FIXTURES {
        std::fs::copy(fixtures.join(file), dir.join(file)).unwrap();
    }
    if let Some(url) = postgres {
        let config = std::fs::read_to_string(dir.join("flow.toml")).unwrap();
        let config = config.replace("[store]\n", &format!("[store]\nurl = {}\n", json!(url)));
        std::fs::write(dir.join("flow.toml"), config).unwrap();
    }
    dir
}

/// The stores every store-independent test runs on: SQLite (`None`), and a database of its
/// own on the test PostgreSQL server when there is one.
pub(crate) fn stores(name: &str) -> Vec<Option<String>> {
    let mut stores = vec![None];
    // Database names are short (at most 63 bytes in all).
    stores.extend(crate::postgres::database(&name.chars().take(24).collect::<String>()).map(Some));
    stores
}

/// A test that runs on a deployment on each store of [`stores`], `$dir` its directory.
macro_rules! on_every_store {
    ($(#[$meta:meta])* fn $name:ident($dir:ident) $body:block) => {
        $(#[$meta])*
        #[test]
        fn $name() {
            for postgres in stores(stringify!($name)) {
                let $dir = deployment_on(stringify!($name), postgres.as_deref());
                $body
            }
        }
    };
}

/// The deployment's store, opened as `flowc` opens it: the PostgreSQL database its
/// `flow.toml` names (`url = "…"`, as [`deployment_on`] wrote it), else `.flow/runs.db`.
fn store_of(dir: &Path) -> Box<dyn flow_runtime::store::Store> {
    match store_url(dir) {
        Some(url) => Box::new(flow_runtime::store::PostgresStore::open(&url).unwrap()),
        None => Box::new(flow_runtime::store::SqliteStore::open(&dir.join(".flow/runs.db")).unwrap()),
    }
}

/// The PostgreSQL store's URL that the deployment's `flow.toml` names (`url = "…"` of
/// `[store]`, not a webhook's), if any.
fn store_url(dir: &Path) -> Option<String> {
    let config = std::fs::read_to_string(dir.join("flow.toml")).unwrap();
    config
        .lines()
        .filter_map(|l| l.strip_prefix("url = "))
        .find(|u| !u.contains("http"))
        .map(|u| serde_json::from_str::<String>(u).unwrap())
}

/// How long the fixtures' `flow.toml` lets a lease last unless renewed (`[store] lease`):
/// how long after a kill another process may resume what the killed one executed.
const LEASE: std::time::Duration = std::time::Duration::from_millis(1200);

pub(crate) fn flowc(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flowc"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("FLOW_PRINCIPAL")
        .env_remove("FLOW_STORE")
        .output()
        .unwrap()
}

pub(crate) fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// Runs a command that must print JSON and exit `code`.
pub(crate) fn json_of(dir: &Path, args: &[&str], code: i32) -> Json {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--format", "json"]);
    let output = flowc(dir, &all);
    assert_eq!(output.status.code(), Some(code), "{args:?}: {}", text(&output));
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {}", text(&output)))
}

/// Writes a request input and returns `request=FILE`.
pub(crate) fn request(dir: &Path, id: &str, amount: &str, requester: &str) -> String {
    let value = json!({
        "id": id,
        "requester": requester,
        "amount": format!("{amount} USD"),
        "note": format!("personal note of {requester}"),
        "updated_at": "2026-11-30T08:00:00Z",
    });
    let file = format!("{id}.json");
    std::fs::write(dir.join(&file), value.to_string()).unwrap();
    format!("request={file}")
}

pub(crate) const AT: &str = "2026-11-30T10:00:00Z";

/// Starts a run of loan.flow and returns its JSON view.
fn start(dir: &Path, input: &str, who: &str) -> Json {
    json_of(dir, &["run", "loan.flow", "--input", input, "--as", who, "--at", AT], 0)
}

/// `flowc decide RUN STEP --as WHO --outcome O --reason R EXTRA…`, which must exit `code`.
fn decide(
    dir: &Path,
    run: &str,
    step: &str,
    who: &str,
    [outcome, reason]: [&str; 2],
    extra: &[&str],
    code: i32,
) -> Output {
    let mut args = vec!["decide", run, step, "--as", who, "--outcome", outcome, "--reason", reason];
    args.extend(extra);
    let output = flowc(dir, &args);
    assert_eq!(output.status.code(), Some(code), "decide {step} as {who}: {}", text(&output));
    output
}

fn status(dir: &Path, run: &str) -> String {
    json_of(dir, &["status", run], 0)["status"].as_str().unwrap().to_owned()
}

fn show(dir: &Path, run: &str, who: &str) -> String {
    let output = flowc(dir, &["show", run, "--as", who]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Exports the evidence as the auditor and checks it verifies.
/// The auditor exports the run's evidence, which verifies, and replays the run, which
/// reproduces every event exactly, with either engine.
pub(crate) fn evidence_verifies(dir: &Path, run: &str) -> PathBuf {
    let path = dir.join(format!("{run}.evidence.json"));
    let output = flowc(dir, &["evidence", run, "--as", "aud", "-o", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let output = flowc(dir, &["verify", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    for engine in ["jit", "interp"] {
        let replay = json_of(dir, &["replay", run, "--as", "aud", "--engine", engine], 0);
        assert_eq!(replay["exact"], true, "{replay}");
        assert_eq!(replay["changes"], json!([]), "{replay}");
        assert_eq!(replay["status"], status(dir, run), "{replay}");
    }
    path
}

fn lines(dir: &Path, file: &str) -> Vec<String> {
    std::fs::read_to_string(dir.join(file)).unwrap_or_default().lines().map(str::to_owned).collect()
}

on_every_store! {
    fn a_routine_request_completes_with_no_one_involved(dir) {
        let view = start(&dir, &request(&dir, "R1", "500.00", "carl"), "carl");
        assert_eq!(view["status"], "completed", "{view}");
        assert_eq!(view["outputs"]["decision"]["approved"], true);
        assert_eq!(view["outputs"]["decision"]["tier"], "low");
        // The clerk may not view `pii`: the note is redacted, with its digest.
        assert!(view["outputs"]["decision"]["note"]["$redacted"].as_str().unwrap().starts_with("blake3:"), "{view}");
        assert_eq!(lines(&dir, "effects.log"), ["booking/R1 R-booking/R1"]);
        let run = view["run"].as_str().unwrap();
        let page = show(&dir, run, "aud");
        assert!(page.contains("approval sign: approved automatically (row 1: auto)"), "{page}");
        assert!(
            page.contains(
                "review check: skipped, its condition did not hold (score.confidence = 0.9, degraded(score) = false)"
            ),
            "{page}"
        );
        assert!(page.contains("gate fresh (block): did not hold (stale(request) = false)"), "{page}");
        assert!(page.contains("personal note of carl"), "the auditor views pii: {page}");
        evidence_verifies(&dir, run);
    }
}

on_every_store! {
    /// A run cancelled by the officer while it waits: refused to the clerk (and recorded),
    /// nothing runs after it, a later decision comes too late, and the run replays exactly.
    /// A run whose system was down fails; resumed by the officer once the system is back,
    /// the action is called again with the same key and books once; the run replays
    /// exactly, the first call's failure and the second's result each in its turn.
    fn a_waiting_run_is_cancelled_and_a_failed_one_resumed(dir) {
        let view = start(&dir, &request(&dir, "C1", "2000", "carl"), "carl");
        assert_eq!(view["status"], "pending", "{view}");
        let run = view["run"].as_str().unwrap().to_owned();
        let cancel = |who: &str, code: i32| {
            let args = ["cancel", run.as_str(), "--as", who, "--reason", "withdrawn", "--basis", "the customer withdrew"];
            json_of(&dir, &args, code)
        };
        let refused = cancel("carl", 1);
        assert_eq!((refused["error"]["code"].clone(), refused["error"]["grant"].clone()), (json!("E3001"), json!("cancel")), "{refused}");
        let cancelled = cancel("olga", 0);
        assert_eq!((cancelled["status"].clone(), cancelled["pending"].clone()), (json!("cancelled"), json!([])), "{cancelled}");
        assert_eq!(cancelled["summary"], "cancelled by olga");
        assert_eq!(cancel("olga", 1)["error"]["code"], "E3011", "cancelled twice");
        let late = decide(&dir, &run, "check", "max", ["approve", "ok"], &[], 1);
        assert!(text(&late).contains("E3011"), "{}", text(&late));
        let page = show(&dir, &run, "aud");
        assert!(page.contains("olga") && page.contains("withdrawn"), "{page}");
        evidence_verifies(&dir, &run);
        // A what-if that changes nothing changes nothing of a cancelled run.
        let same = json_of(&dir, &["replay", &run, "--as", "aud", "--set", "limit=5000 USD"], 0);
        assert_eq!(same["changes"], json!([]), "{same}");
        // A blocked run cancelled is not overridden after.
        let blocked = start(&dir, &request(&dir, "EMBARGO", "20", "carl"), "carl");
        let blocked = blocked["run"].as_str().unwrap().to_owned();
        let args = ["cancel", blocked.as_str(), "--as", "olga", "--reason", "withdrawn", "--basis", "no longer wanted"];
        assert_eq!(json_of(&dir, &args, 0)["status"], "cancelled");
        let late = json_of(&dir, &["override", &blocked, "embargo", "--as", "olga", "--reason", "cleared", "--basis", "lifted"], 1);
        assert_eq!(late["error"]["code"], "E3011", "{late}");
        assert_eq!(status(&dir, &blocked), "cancelled");
        evidence_verifies(&dir, &blocked);

        std::fs::write(dir.join("ledger.down"), "").unwrap();
        let failed = start(&dir, &request(&dir, "C2", "20", "carl"), "carl");
        assert_eq!(failed["status"], "failed", "{failed}");
        let run = failed["run"].as_str().unwrap().to_owned();
        let resume = |who: &str, code: i32| json_of(&dir, &["resume", run.as_str(), "--as", who, "--reason", "ledger_back"], code);
        assert_eq!(resume("carl", 1)["error"]["grant"], "resume");
        std::fs::remove_file(dir.join("ledger.down")).unwrap();
        let resumed = resume("olga", 0);
        assert_eq!(resumed["status"], "completed", "{resumed}");
        assert_eq!(resume("olga", 1)["error"]["code"], "E3011", "resumed when it completed");
        let calls = lines(&dir, "calls.log");
        assert_eq!(calls.iter().filter(|k| k.as_str() == "booking/C2").count(), 2, "{calls:?}");
        assert_eq!(lines(&dir, "effects.log").iter().filter(|l| l.starts_with("booking/C2 ")).count(), 1);
        let page = show(&dir, &run, "aud");
        assert!(page.contains("the ledger is down") && page.contains("ledger_back"), "{page}");
        evidence_verifies(&dir, &run);
        let same = json_of(&dir, &["replay", &run, "--as", "aud", "--set", "limit=5000 USD"], 0);
        assert_eq!((same["after"].clone(), same["changes"].clone()), (json!("completed"), json!([])), "{same}");
        // A pending run is not resumed; the refusals are in the runs' chains.
        let pending = start(&dir, &request(&dir, "C3", "2000", "carl"), "carl");
        let pending = pending["run"].as_str().unwrap();
        let not_failed = json_of(&dir, &["resume", pending, "--as", "olga", "--reason", "x"], 1);
        assert_eq!(not_failed["error"]["code"], "E3004", "{not_failed}");
    }
}

on_every_store! {
    fn a_review_with_an_edit_then_an_approval_with_separation_of_duties(dir) {
        let view = start(&dir, &request(&dir, "R2", "7000.00", "ana"), "ana");
        assert_eq!(view["status"], "pending", "{view}");
        assert_eq!(view["pending"], json!([{"step": "check", "kind": "review", "roles": ["manager"]}]));
        let run = view["run"].as_str().unwrap().to_owned();
        // Not yet reached, not a step, not decided by people.
        let early = decide(&dir, &run, "sign", "max", ["approve", "ok"], &[], 1);
        assert!(
            text(&early).contains("step `sign` is not waiting for a decision: the run has not reached it"),
            "{}",
            text(&early)
        );
        assert!(
            text(&decide(&dir, &run, "nope", "max", ["approve", "ok"], &[], 1))
                .contains("the flow has no step `nope`; waiting: `check`")
        );
        assert!(text(&decide(&dir, &run, "big", "max", ["approve", "ok"], &[], 1)).contains("step `big` is not waiting"));
        // Not a manager.
        let refused = decide(&dir, &run, "check", "carl", ["approve", "ok"], &[], 1);
        assert!(text(&refused).contains("missing grant: `decide check`"), "{}", text(&refused));
        // An outcome and a reason the review does not declare; a field it may not edit.
        assert!(text(&decide(&dir, &run, "check", "max", ["maybe", "ok"], &[], 1)).contains("not an outcome of `check`"));
        assert!(text(&decide(&dir, &run, "check", "max", ["approve", "fine"], &[], 1)).contains("not a reason of `check`"));
        let edit = decide(&dir, &run, "check", "max", ["approve", "ok"], &["--edit", "score.confidence=1"], 1);
        assert!(text(&edit).contains("may not edit `score.confidence`"), "{}", text(&edit));
        let edit = decide(&dir, &run, "check", "max", ["approve", "ok"], &["--edit", "score.tier=lowest"], 1);
        assert!(text(&edit).contains("`lowest` is not a variant of `Tier`"), "{}", text(&edit));
        // The reviewer lowers the tier: the matrix reads the edited value (row 2, big and low).
        decide(
            &dir,
            &run,
            "check",
            "max",
            ["approve", "ok"],
            &["--basis", "known customer", "--edit", "score.tier=low"],
            0,
        );
        let pending = json_of(&dir, &["pending"], 0);
        assert_eq!(
            pending["pending"],
            json!([{"run": run, "flow": "loan", "step": "sign", "kind": "approval", "roles": ["manager"]}])
        );
        let why = json_of(&dir, &["status", &run], 0)["why"].clone();
        assert_eq!(
            why,
            json!([
                "approval `sign`: row 2 applies (1 of manager) (score.tier = low, big = true); still needed: 1 of manager; may not approve: ana"
            ])
        );
        // The requester holds `manager` but may not approve their own request.
        let own = decide(&dir, &run, "sign", "ana", ["approve", "ok"], &[], 1);
        assert!(text(&own).contains("separation of duties"), "{}", text(&own));
        assert_eq!(json_of(&dir, &["pending", "--as", "carl"], 0)["pending"], json!([]));
        decide(&dir, &run, "sign", "mia", ["approve", "within_limit"], &[], 0);
        assert_eq!(status(&dir, &run), "completed");
        let page = show(&dir, &run, "aud");
        assert!(page.contains("edited score.tier: medium → low"), "{page}");
        assert!(page.contains("approval sign: row 2 applies, requiring 1 of manager"), "{page}");
        assert!(page.contains("may not approve: ana"), "{page}");
        assert!(page.contains("approved by mia"), "{page}");
        assert!(page.contains("refused decide (missing grant `decide check`)"), "{page}");
        assert!(page.contains("separation of duties: ana may not decide `sign`"), "{page}");
        // Deciding again: nothing waits.
        assert!(text(&decide(&dir, &run, "sign", "max", ["approve", "ok"], &[], 1)).contains("nothing waits"));
        evidence_verifies(&dir, &run);
    }
}

on_every_store! {
    fn no_principal_counts_twice(dir) {
        let run = start(&dir, &request(&dir, "R3", "7000.00", "carl"), "carl")["run"].as_str().unwrap().to_owned();
        decide(&dir, &run, "check", "max", ["approve", "ok"], &[], 0);
        // Medium: 2 of manager.
        decide(&dir, &run, "sign", "max", ["approve", "ok"], &[], 0);
        assert_eq!(status(&dir, &run), "pending");
        let again = decide(&dir, &run, "sign", "max", ["approve", "ok"], &[], 1);
        assert!(text(&again).contains("no principal counts twice"), "{}", text(&again));
        let view: Json =
            serde_json::from_slice(&decide(&dir, &run, "sign", "mia", ["approve", "ok"], &["--format", "json"], 0).stdout)
                .unwrap();
        assert_eq!(view["status"], "completed");
        assert_eq!(view["outputs"]["decision"]["approved"], true);
    }
}

on_every_store! {
    /// Every error of the runtime carries its code, in the message and (with `--format json`)
    /// as JSON on standard output, and its exit code says whose fault it is: a refusal by
    /// separation of duties is a refusal, but names no missing grant.
    fn the_runtimes_errors_carry_their_codes(dir) {
        let run = start(&dir, &request(&dir, "R9", "7000.00", "ana"), "ana")["run"].as_str().unwrap().to_owned();
        let refused =
            json_of(&dir, &["decide", &run, "check", "--as", "carl", "--outcome", "approve", "--reason", "ok"], 1);
        assert_eq!(refused["error"]["code"], "E3001", "{refused}");
        assert_eq!((&refused["error"]["grant"], &refused["error"]["missing"]), (&json!("decide check"), &json!(true)));
        let unfit = decide(&dir, &run, "check", "max", ["maybe", "ok"], &[], 1);
        assert!(text(&unfit).contains("flowc: error[E3004]: `maybe` is not an outcome of `check`"), "{}", text(&unfit));
        let unknown = flowc(&dir, &["status", "r-0000000000000000"]);
        assert_eq!(unknown.status.code(), Some(1));
        assert!(text(&unknown).contains("error[E3003]"), "{}", text(&unknown));
        decide(&dir, &run, "check", "max", ["approve", "ok"], &[], 0);
        let own = json_of(&dir, &["decide", &run, "sign", "--as", "ana", "--outcome", "approve", "--reason", "ok"], 1);
        assert_eq!(own["error"]["code"], "E3001", "{own}");
        assert_eq!(own["error"]["missing"], false, "{own}");
        let message = own["error"]["message"].as_str().unwrap_or_default();
        assert!(message.starts_with("refused: separation of duties") && !message.contains("missing grant"), "{message}");
        std::fs::write(dir.join("not-a-store.db"), "notes").unwrap();
        let unusable = flowc(&dir, &["pending", "--store", "not-a-store.db"]);
        assert_eq!(unusable.status.code(), Some(2));
        assert!(text(&unusable).contains("error[E3008]"), "{}", text(&unusable));
    }
}

on_every_store! {
    fn a_rejected_approval_completes_unapproved_and_books_nothing(dir) {
        let run = start(&dir, &request(&dir, "R4", "20000.00", "carl"), "carl")["run"].as_str().unwrap().to_owned();
        // High: 1 of manager, 1 of director; the director rejects.
        let view: Json = serde_json::from_slice(
            &decide(&dir, &run, "sign", "dora", ["reject", "too_risky"], &["--format", "json"], 0).stdout,
        )
        .unwrap();
        assert_eq!(view["status"], "completed", "{view}");
        assert_eq!(view["outputs"]["decision"]["approved"], false);
        assert!(lines(&dir, "effects.log").is_empty());
        assert!(show(&dir, &run, "aud").contains("action booking: skipped"));
    }
}

on_every_store! {
    fn a_blocking_gate_blocks_until_an_officer_overrides_it(dir) {
        let view = start(&dir, &request(&dir, "EMBARGO", "500.00", "carl"), "carl");
        assert_eq!(view["status"], "blocked");
        assert_eq!(view["summary"], "blocked by gate `embargo`: The request is under embargo");
        assert_eq!(
            view["why"],
            json!([
                "gate `embargo` (block) holds: The request is under embargo (request.id = EMBARGO); it may be overridden by officer"
            ])
        );
        let run = view["run"].as_str().unwrap().to_owned();
        assert!(lines(&dir, "effects.log").is_empty());
        let refused = flowc(&dir, &["override", &run, "embargo", "--as", "max", "--reason", "urgent", "--basis", "b"]);
        assert_eq!(refused.status.code(), Some(1));
        assert!(text(&refused).contains("missing grant: `override embargo`"), "{}", text(&refused));
        let wrong = flowc(&dir, &["override", &run, "fresh", "--as", "olga", "--reason", "urgent", "--basis", "b"]);
        assert_eq!(wrong.status.code(), Some(1));
        assert!(text(&wrong).contains("not blocking this run"), "{}", text(&wrong));
        let view = json_of(
            &dir,
            &["override", &run, "embargo", "--as", "olga", "--reason", "lifted", "--basis", "embargo lifted on 29 Nov"],
            0,
        );
        assert_eq!(view["status"], "completed", "{view}");
        let page = show(&dir, &run, "aud");
        assert!(
            page.contains(
                "gate embargo OVERRIDDEN by olga (officer): override, reason lifted — \"embargo lifted on 29 Nov\""
            ),
            "{page}"
        );
        evidence_verifies(&dir, &run);
    }
}

on_every_store! {
    fn stale_source_data_blocks(dir) {
        let input = request(&dir, "R5", "500.00", "carl");
        let view =
            json_of(&dir, &["run", "loan.flow", "--input", &input, "--as", "carl", "--at", "2026-12-05T10:00:00Z"], 0);
        assert_eq!(view["status"], "blocked");
        assert!(view["summary"].as_str().unwrap().contains("gate `fresh`"), "{view}");
        let page = show(&dir, view["run"].as_str().unwrap(), "aud");
        assert!(
            page.contains("request comes from crm (authority crm.requests), as of 2026-11-30T08:00:00Z, age 5d 2h — STALE"),
            "{page}"
        );
    }
}

on_every_store! {
    fn a_soft_gate_rejected_ends_the_run_rejected(dir) {
        let view = start(&dir, &request(&dir, "R6", "60000.00", "carl"), "carl");
        assert_eq!(view["status"], "pending");
        // Rules first: the matrix does not read the gate, but it opens only once the gate is
        // approved, since a rejection ends the run.
        assert_eq!(view["pending"], json!([{"step": "huge", "kind": "gate", "roles": ["director"]}]));
        assert!(lines(&dir, "calls.log").is_empty(), "nothing is booked while the gate waits");
        let run = view["run"].as_str().unwrap().to_owned();
        decide(&dir, &run, "huge", "max", ["approve", "ok"], &[], 1);
        let no_reason = flowc(&dir, &["decide", &run, "huge", "--as", "dora", "--outcome", "reject"]);
        assert_eq!(no_reason.status.code(), Some(1));
        assert!(text(&no_reason).contains("needs a reason code"), "{}", text(&no_reason));
        decide(&dir, &run, "huge", "dora", ["reject", "exposure"], &[], 0);
        assert_eq!(status(&dir, &run), "rejected");
        assert!(lines(&dir, "calls.log").is_empty(), "nothing acted");
        let pending = json_of(&dir, &["pending"], 0);
        assert_eq!(pending["pending"], json!([]), "a rejected run waits for nothing");
    }
}

#[test]
fn a_failing_or_nonsensical_model_degrades_the_step_and_a_person_reviews_it() {
    for (amount, why) in [
        ("13.00", "the scorer is down"),
        ("666.00", "the output does not fit `Score`: $.confidence: `x` is not a decimal number"),
    ] {
        let dir = deployment(&format!("degraded-{amount}"));
        let view = start(&dir, &request(&dir, "R7", amount, "carl"), "carl");
        assert_eq!(view["status"], "pending", "{view}");
        assert_eq!(view["pending"][0]["step"], "check");
        let page = show(&dir, view["run"].as_str().unwrap(), "aud");
        assert!(page.contains("(DEGRADED — the fallback gave it"), "{page}");
        assert!(page.contains(why), "{page}");
        assert!(page.contains("degraded(score) = true"), "{page}");
        let run = view["run"].as_str().unwrap();
        decide(&dir, run, "check", "max", ["approve", "ok"], &[], 0);
        let done = json_of(&dir, &["status", run], 0);
        assert_eq!(done["marks"], json!({"decision": ["degraded: score"]}), "{done}");
        assert!(
            done["why"].as_array().unwrap().contains(&json!("`score` is degraded: its fallback gave the value")),
            "{done}"
        );
    }
}

on_every_store! {
    fn a_failing_action_fails_the_run_and_names_the_step(dir) {
        let view = start(&dir, &request(&dir, "R8", "777.00", "carl"), "carl");
        assert_eq!(view["status"], "failed", "{view}");
        assert!(view["summary"].as_str().unwrap().contains("step `booking` failed: `ledger.book` failed"), "{view}");
    }
}

on_every_store! {
    fn a_missing_model_configuration_degrades_and_a_missing_handler_fails(dir) {
        // Only the store is configured: no model, no system.
        let config = std::fs::read_to_string(dir.join("flow.toml")).unwrap();
        let store = config.split_once("[store]").map(|(_, store)| format!("[store]{store}")).unwrap();
        std::fs::write(dir.join("flow.toml"), store).unwrap();
        let view = start(&dir, &request(&dir, "R9", "500.00", "carl"), "carl");
        // The fallback says high (over 1,000 USD? no: low), confidence 1.0, but degraded: reviewed.
        assert_eq!(view["status"], "pending", "{view}");
        let run = view["run"].as_str().unwrap().to_owned();
        let page = show(&dir, &run, "aud");
        assert!(page.contains("no provider is configured for model `scorer`"), "{page}");
        decide(&dir, &run, "check", "max", ["approve", "ok"], &[], 0);
        let view = json_of(&dir, &["status", &run], 0);
        assert_eq!(view["status"], "failed");
        assert!(view["summary"].as_str().unwrap().contains("no handler is configured for system `ledger`"), "{view}");
    }
}

on_every_store! {
    fn one_idempotency_key_acts_once_across_runs(dir) {
        let input = request(&dir, "R10", "500.00", "carl");
        start(&dir, &input, "carl");
        let second = start(&dir, &input, "carl");
        assert_eq!(second["status"], "completed");
        assert_eq!(lines(&dir, "calls.log"), ["booking/R10"], "the handler was called once");
        assert!(show(&dir, second["run"].as_str().unwrap(), "aud").contains("not repeated"));
    }
}

on_every_store! {
    fn every_operation_checks_its_grant_and_records_refusals(dir) {
        let input = request(&dir, "R11", "500.00", "carl");
        // trigger
        let refused = flowc(&dir, &["run", "loan.flow", "--input", &input, "--as", "max"]);
        assert_eq!(refused.status.code(), Some(1));
        assert!(
            text(&refused).contains("max may not start `loan`: the flow grants `trigger` to clerk"),
            "{}",
            text(&refused)
        );
        let store = store_of(&dir);
        let refusals = store.refusals().unwrap();
        assert_eq!(refusals.len(), 1);
        let refusal = &refusals[0];
        assert_eq!([&refusal.principal, &refusal.operation, &refusal.grant], ["max", "trigger", "trigger"]);
        drop(store);
        let run = start(&dir, &input, "carl")["run"].as_str().unwrap().to_owned();
        // read evidence: refused for the clerk, recorded in the store's chain of refusals (a
        // read never writes to the run it reads)
        let refused = flowc(&dir, &["evidence", &run, "--as", "carl"]);
        assert_eq!(refused.status.code(), Some(1));
        assert!(text(&refused).contains("missing grant: `read evidence`"), "{}", text(&refused));
        let recorded = store_of(&dir).refusals().unwrap();
        assert!(
            recorded.iter().any(|r| r.principal == "carl" && r.grant == "read evidence" && r.message.contains(&run)),
            "the refusal is evidence: {recorded:?}"
        );
        let path = evidence_verifies(&dir, &run);
        let bundle = std::fs::read_to_string(path).unwrap();
        assert!(!bundle.contains("\"event\": \"refused\""), "the read left the run as it was");
        // view: the auditor sees pii, a manager sees its digest, no one without `--as` sees it
        assert!(show(&dir, &run, "aud").contains("personal note of carl"));
        for viewer in [Some("max"), None] {
            let mut args = vec!["show", run.as_str()];
            args.extend(viewer.iter().flat_map(|v| ["--as", *v]));
            let page = text(&flowc(&dir, &args));
            assert!(!page.contains("personal note"), "{viewer:?}: {page}");
            assert!(page.contains("[redacted: pii]"), "{page}");
        }
        // an unknown principal
        let unknown = flowc(&dir, &["run", "loan.flow", "--input", &input, "--as", "eve"]);
        assert_eq!(unknown.status.code(), Some(2));
        assert!(text(&unknown).contains("`eve` is not in the principals file"));
    }
}

on_every_store! {
    fn inputs_that_do_not_fit_are_refused_before_the_run_starts(dir) {
        let base = json!({"id": "X", "requester": "carl", "amount": "1.00 USD", "note": "n", "updated_at": "2026-11-30T08:00:00Z"});
        let cases: Vec<(Json, &str)> = vec![
            (json!({"id": "X"}), "$.request.amount: missing field `amount` of type `Money[USD]`"),
            (json!({"amount": 12}), "$.request.amount: expected an amount such as \"1200.50 USD\", found a number"),
            (json!({"amount": "12.00 EUR"}), "$.request.amount: expected an amount in USD, found `12.00 EUR`"),
            (json!({"updated_at": "yesterday"}), "$.request.updated_at: `yesterday` is not an RFC 3339 instant"),
            (json!({"colour": "red"}), "`Request` has no field `colour`"),
        ];
        for (i, (change, message)) in cases.into_iter().enumerate() {
            let mut value = base.clone();
            if change.get("id").is_some() {
                value = change;
            } else {
                for (k, v) in change.as_object().unwrap() {
                    value[k] = v.clone();
                }
            }
            let file = format!("bad{i}.json");
            std::fs::write(dir.join(&file), value.to_string()).unwrap();
            let output = flowc(&dir, &["run", "loan.flow", "--input", &format!("request={file}"), "--as", "carl"]);
            assert_eq!(output.status.code(), Some(1), "{}", text(&output));
            assert!(text(&output).contains(message), "{message}: {}", text(&output));
        }
        std::fs::write(dir.join("broken.json"), "{\"id\": ").unwrap();
        let output = flowc(&dir, &["run", "loan.flow", "--input", "request=broken.json", "--as", "carl"]);
        assert_eq!(output.status.code(), Some(1));
        assert!(text(&output).contains("is not JSON"), "{}", text(&output));
        let output = flowc(&dir, &["run", "loan.flow", "--input", "order=broken.json", "--as", "carl"]);
        assert_eq!(output.status.code(), Some(1), "{}", text(&output));
        let output = flowc(&dir, &["run", "loan.flow", "--as", "carl"]);
        assert!(text(&output).contains("input `request` of type `Request` is missing"), "{}", text(&output));
        // Nothing was stored.
        assert_eq!(json_of(&dir, &["pending"], 0)["pending"], json!([]));
        let output = flowc(&dir, &["status", "r-0000"]);
        assert_eq!(output.status.code(), Some(1));
        assert!(text(&output).contains("no run `r-0000` in the store"));
    }
}

#[test]
fn a_corrupted_store_is_refused_and_left_as_it_was() {
    let dir = deployment("corrupt");
    std::fs::create_dir_all(dir.join(".flow")).unwrap();
    let garbage: Vec<u8> = (0..10_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(dir.join(".flow/runs.db"), &garbage).unwrap();
    let output = flowc(&dir, &["pending"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("not a usable run store"), "{}", text(&output));
    assert_eq!(std::fs::read(dir.join(".flow/runs.db")).unwrap(), garbage);
}

/// Recomputes a bundle's digest after a change, as anyone can.
pub(crate) fn redigest(bundle: &mut Json) {
    let object = bundle.as_object_mut().unwrap();
    object.remove("digest");
    let digest = flow_runtime::digest::digest(&Json::Object(object.clone()));
    object.insert("digest".into(), json!(digest));
}

#[test]
fn any_changed_byte_of_a_bundle_fails_verification_and_so_does_a_removed_signature() {
    let dir = deployment("tamper");
    std::fs::write(dir.join("evidence.key"), "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
        .unwrap();
    let mut config = std::fs::read_to_string(dir.join("flow.toml")).unwrap();
    config.push_str("\n[evidence]\nsigning_key_file = \"evidence.key\"\n");
    std::fs::write(dir.join("flow.toml"), config).unwrap();
    let run = start(&dir, &request(&dir, "R12", "500.00", "carl"), "carl")["run"].as_str().unwrap().to_owned();
    let path = evidence_verifies(&dir, &run);
    let bytes = std::fs::read(&path).unwrap();
    let verified = flow_runtime::evidence::verify(&bytes).unwrap();
    assert!(verified.signed_by.is_some());
    // Without its key, the deployment may not change a signed run (here: record a refused
    // decision in it).
    let pending = start(&dir, &request(&dir, "R13", "2000.00", "carl"), "carl")["run"].as_str().unwrap().to_owned();
    let signed_config = std::fs::read_to_string(dir.join("flow.toml")).unwrap();
    let unsigned_config = signed_config.split("[evidence]").next().unwrap();
    std::fs::write(dir.join("flow.toml"), unsigned_config).unwrap();
    let unsigned_change =
        flowc(&dir, &["decide", &pending, "check", "--as", "carl", "--outcome", "approve", "--reason", "ok"]);
    assert_eq!(unsigned_change.status.code(), Some(2), "{}", text(&unsigned_change));
    assert!(text(&unsigned_change).contains("configure that key to change it"), "{}", text(&unsigned_change));
    assert!(text(&unsigned_change).contains("error[E3010]"), "{}", text(&unsigned_change));
    std::fs::write(dir.join("flow.toml"), signed_config).unwrap();
    // Every byte of the events and the envelope, and every 7th byte of the plan.
    let plan_at = String::from_utf8_lossy(&bytes).find("\"plan\": {").unwrap();
    for i in (0..bytes.len()).filter(|i| *i < plan_at || i % 7 == 0) {
        let mut changed = bytes.clone();
        changed[i] = if changed[i] == b'0' { b'1' } else { b'0' };
        assert!(flow_runtime::evidence::verify(&changed).is_err(), "changing byte {i} went unnoticed");
    }
    // Without its signature, a signed run's bundle fails, even with its digest recomputed.
    let mut bundle: Json = serde_json::from_slice(&bytes).unwrap();
    bundle.as_object_mut().unwrap().remove("signature");
    redigest(&mut bundle);
    let unsigned = flow_runtime::evidence::render(&bundle);
    let problems = flow_runtime::evidence::verify(unsigned.as_bytes()).unwrap_err();
    assert_eq!(problems, ["the run's evidence is signed, but the bundle has no signature"]);
    std::fs::write(dir.join("unsigned.json"), unsigned).unwrap();
    let output = flowc(&dir, &["verify", "unsigned.json"]);
    assert_eq!(output.status.code(), Some(1));
    // Redaction keeps the chain: a manager's bundle (no `view pii`)... is refused: no grant.
    // The auditor's verifies (above); a bundle redacted by hand verifies too.
    let mut redacted: Json = serde_json::from_slice(&bytes).unwrap();
    flow_runtime::labels::redact(&mut redacted["events"], &[]);
    redigest(&mut redacted);
    let text_of = flow_runtime::evidence::render(&redacted);
    assert!(!text_of.contains("personal note"));
    assert!(flow_runtime::evidence::verify(text_of.as_bytes()).unwrap().redacted > 0);
    // A value without labels hidden behind its digest keeps the chain, but is refused.
    let mut hidden: Json = serde_json::from_slice(&bytes).unwrap();
    let amount = hidden["events"][0]["event"]["inputs"][0]["value"]["amount"].clone();
    assert_eq!(amount, "500.00 USD");
    let marker = json!({"$redacted": flow_runtime::digest::digest(&amount)});
    hidden["events"][0]["event"]["inputs"][0]["value"]["amount"] = marker;
    redigest(&mut hidden);
    let problems = flow_runtime::evidence::verify(flow_runtime::evidence::render(&hidden).as_bytes()).unwrap_err();
    assert_eq!(
        problems,
        ["event 0: input `request` field `amount` is marked or redacted, but the plan gives it no label"]
    );
    // Nor may a marker claim a label the plan does not give: not on the amount, and not on
    // who started the run, which is no value at all.
    for (pointer, claimed) in [
        ("/events/0/event/inputs/0/value/amount", "event 0: input `request` field `amount` is marked"),
        ("/events/0/event/principal", "event 0 is not an event of a run"),
    ] {
        let mut forged: Json = serde_json::from_slice(&bytes).unwrap();
        let target = forged.pointer_mut(pointer).unwrap();
        *target = json!({"$labels": ["pii"], "$redacted": flow_runtime::digest::digest(target)});
        redigest(&mut forged);
        let problems = flow_runtime::evidence::verify(flow_runtime::evidence::render(&forged).as_bytes()).unwrap_err();
        assert!(problems.iter().any(|p| p.starts_with(claimed)), "{pointer}: {problems:?}");
    }
    // The verifier may name the key it trusts: the deployment's passes, another fails.
    let public = verified.signed_by.clone().unwrap();
    assert_eq!(flowc(&dir, &["verify", &path.to_string_lossy(), "--key", &public]).status.code(), Some(0));
    let other = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";
    let wrong = flowc(&dir, &["verify", &path.to_string_lossy(), "--key", other]);
    assert_eq!(wrong.status.code(), Some(1), "{}", text(&wrong));
    assert!(text(&wrong).contains("which is not one of the keys required"), "{}", text(&wrong));
    // A forger who removes the run's key from its start and recomputes the chain, the head
    // and the digest makes an unsigned bundle that is consistent in itself: a verifier that
    // requires a signature, or names the key, refuses it.
    let mut stripped: Json = serde_json::from_slice(&bytes).unwrap();
    stripped["events"][0]["event"].as_object_mut().unwrap().remove("signing_key");
    let mut prev = flow_runtime::digest::GENESIS.to_owned();
    for event in stripped["events"].as_array_mut().unwrap() {
        let (seq, at) = (event["seq"].as_u64().unwrap(), event["at"].as_str().unwrap().to_owned());
        let hash = flow_runtime::digest::event_hash(&prev, seq, &at, &event["event"]);
        event["prev"] = json!(prev);
        event["hash"] = json!(hash);
        prev = hash;
    }
    let object = stripped.as_object_mut().unwrap();
    for key in ["signature", "log"] {
        object.remove(key);
    }
    object.insert("head".into(), json!(prev));
    redigest(&mut stripped);
    std::fs::write(dir.join("stripped.json"), flow_runtime::evidence::render(&stripped)).unwrap();
    assert_eq!(flowc(&dir, &["verify", "stripped.json"]).status.code(), Some(0), "consistent in itself");
    for required in [&["--require-signature"][..], &["--key", &public]] {
        let output = flowc(&dir, &[&["verify", "stripped.json"][..], required].concat());
        assert_eq!(output.status.code(), Some(1), "{required:?}: {}", text(&output));
        assert!(text(&output).contains("the bundle is not signed, and a signature is required"), "{}", text(&output));
    }
    // One event altered (its digest recomputed): verification names that event alone.
    let mut altered: Json = serde_json::from_slice(&bytes).unwrap();
    let gate = altered["events"].as_array().unwrap().iter().position(|e| e["event"]["level"] == "info").unwrap();
    let holds = altered["events"][gate]["event"]["holds"].as_bool().unwrap();
    altered["events"][gate]["event"]["holds"] = json!(!holds);
    redigest(&mut altered);
    let problems = flow_runtime::evidence::verify(flow_runtime::evidence::render(&altered).as_bytes()).unwrap_err();
    assert_eq!(
        problems,
        [format!(
            "event {gate} (`gate`) was changed: its hash does not match what it holds, so the chain breaks after event {}",
            gate - 1
        )]
    );
}

on_every_store! {
    /// Kills `flowc` at random points of a batch of runs and of decisions, resumes, and checks
    /// that every chain verifies, no decision that was acknowledged is lost, and no action had
    /// its effect twice.
    fn runs_survive_being_killed_at_random_points(dir) {
        write_cases(&dir, "C", 12, 3);
        let mut random = xorshift(0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id()));
        let bin = env!("CARGO_BIN_EXE_flowc");
        for round in 0..4 {
            let mut child = Command::new(bin)
                .env_remove("FLOW_STORE")
                .args(["run", "loan.flow", "--batch", "cases.jsonl", "--as", "carl", "--at", AT])
                .current_dir(&dir)
                .env("LEDGER_SLEEP", "0.05")
                .env("SCORER_SLEEP", "0.02")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            // The first batch is killed only once it has stored a run, so that a slow start on a
            // loaded machine does not leave the test with nothing to check.
            if round == 0 {
                let started = std::time::Instant::now();
                while started.elapsed() < std::time::Duration::from_secs(60) {
                    let stored = store_of(&dir).runs(None).is_ok_and(|runs| !runs.is_empty());
                    if stored {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(100 + random(900)));
            let _ = child.kill();
            let _ = child.wait();
            // The next command resumes whatever the kill interrupted, once the killed
            // process's leases have run out.
            std::thread::sleep(LEASE);
            decide_some_killing_some(&dir, &mut random, round);
        }
        // Resume what is left, then check every run.
        std::thread::sleep(LEASE);
        json_of(&dir, &["pending"], 0);
        let store = store_of(&dir);
        let runs = store.runs(None).unwrap();
        drop(store);
        assert!(!runs.is_empty());
        for run in &runs {
            assert_ne!(run.status, flow_runtime::Status::Running, "{} was not resumed", run.id);
            evidence_verifies(&dir, &run.id);
        }
        let effects = lines(&dir, "effects.log");
        let mut keys: Vec<&str> = effects.iter().map(|l| l.split(' ').next().unwrap()).collect();
        let before = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(before, keys.len(), "an action had its effect twice: {effects:?}");
    }
}

/// Writes `cases.jsonl`: `count` requests `PREFIX0`, `PREFIX1`, …, every `large`th of
/// 7,000 USD (it waits for a review), the others of 500 USD (booked without anyone).
fn write_cases(dir: &Path, prefix: &str, count: usize, large: usize) {
    let mut cases = String::new();
    for i in 0..count {
        let amount = if i % large == 0 { "7000.00" } else { "500.00" };
        let value = json!({"inputs": {"request": {
            "id": format!("{prefix}{i}"), "requester": "carl", "amount": format!("{amount} USD"),
            "note": "n", "updated_at": "2026-11-30T08:00:00Z"}}});
        cases.push_str(&format!("{value}\n"));
    }
    std::fs::write(dir.join("cases.jsonl"), cases).unwrap();
}

/// `flowc worker --until-idle` started in `dir` with `env`; its standard error kept for
/// the test when `said`.
fn worker_process(dir: &Path, env: &[(&str, &str)], said: bool) -> std::process::Child {
    let stderr = if said { std::process::Stdio::piped() } else { std::process::Stdio::null() };
    Command::new(env!("CARGO_BIN_EXE_flowc"))
        .env_remove("FLOW_STORE")
        .args(["worker", "--until-idle"])
        .current_dir(dir)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// Numbers below a bound, from a seed (xorshift): random points that differ from run to run
/// of the tests (seeded with the process id) without a dependency.
fn xorshift(mut seed: u64) -> impl FnMut(u64) -> u64 {
    move |bound: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % bound
    }
}

/// Decides (as `max`, approving) two of the steps that wait, killing about one decider in
/// three at a random point; a decision acknowledged (its command succeeded) must be in the
/// store.
fn decide_some_killing_some(dir: &Path, random: &mut impl FnMut(u64) -> u64, round: usize) {
    let pending = json_of(dir, &["pending"], 0);
    for item in pending["pending"].as_array().unwrap().iter().take(2) {
        let run = item["run"].as_str().unwrap();
        let step = item["step"].as_str().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_flowc"))
            .env_remove("FLOW_STORE")
            .args(["decide", run, step, "--as", "max", "--outcome", "approve", "--reason", "ok", "--format", "json"])
            .current_dir(dir)
            .env("LEDGER_SLEEP", "0.05")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        if random(3) == 0 {
            std::thread::sleep(std::time::Duration::from_millis(random(150)));
            let _ = child.kill();
        }
        let output = child.wait_with_output().unwrap();
        if output.status.success() {
            let page = show(dir, run, "aud");
            assert!(
                page.contains(&format!("{step} decided by max")) || page.contains(&format!("approval {step}: max")),
                "round {round}: a decision was lost:\n{page}"
            );
        }
    }
}

on_every_store! {
    /// Workers on a queued batch of 48 cases, killed one after another at random points
    /// while the batch is under way, each replaced by a worker that stays (and takes over
    /// what the killed one held once its leases run out), while reviews of runs started
    /// before are decided beside them (some deciders killed too): once a last worker has
    /// finished, every case is done once, with one run each, no acknowledged decision lost,
    /// every chain verifies, no action had its effect twice.
    fn workers_killed_at_random_points_mid_batch_lose_nothing(dir) {
        // Runs that wait for a review, to be decided while the workers are killed.
        for i in 0..4 {
            let view = start(&dir, &request(&dir, &format!("W{i}"), "7000.00", "carl"), "carl");
            assert_eq!(view["status"], "pending", "{view}");
        }
        write_cases(&dir, "K", 48, 8);
        let args = ["run", "loan.flow", "--batch", "cases.jsonl", "--as", "carl", "--at", AT, "--queue", "--detach"];
        let batch = json_of(&dir, &args, 0)["batch"].as_str().unwrap().to_owned();
        // The first ends when it finds nothing free; those that replace the killed stay.
        let worker = |stays: bool| {
            let mut command = Command::new(env!("CARGO_BIN_EXE_flowc"));
            command.env_remove("FLOW_STORE").arg("worker").current_dir(&dir).env("LEDGER_SLEEP", "0.02");
            if !stays {
                command.arg("--until-idle");
            }
            command.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap()
        };
        let mut random = xorshift(0x2545_f491_4f6c_dd1d ^ u64::from(std::process::id()));
        let mut workers = vec![worker(false), worker(false)];
        let mut kills = 0;
        for round in 0..4 {
            std::thread::sleep(std::time::Duration::from_millis(300 + random(900)));
            let done = json_of(&dir, &["batch", &batch], 0)["done"].as_u64().unwrap();
            if done == 48 {
                break;
            }
            // A worker still at work, killed mid-batch, and replaced.
            let mut working: Vec<usize> = Vec::new();
            for (n, worker) in workers.iter_mut().enumerate() {
                if worker.try_wait().unwrap().is_none() {
                    working.push(n);
                }
            }
            if let Some(&victim) = working.get(random(working.len().max(1) as u64) as usize) {
                let _ = workers[victim].kill();
                let _ = workers[victim].wait();
                kills += 1;
                workers[victim] = worker(true);
            }
            decide_some_killing_some(&dir, &mut random, round);
        }
        assert!(kills > 0, "no worker was killed while the batch was under way");
        // Those that stay are stopped (killed too: a worker holds nothing it has not stored
        // or leased), and a last one finishes.
        for worker in &mut workers {
            let _ = worker.kill();
            let _ = worker.wait();
        }
        std::thread::sleep(LEASE);
        a_last_worker_finishes(&dir, &batch, 48, 48 + 4);
    }
}

on_every_store! {
    /// A batch queued in the store and worked on by three worker processes, one killed at a
    /// random point: once a last worker has taken over what the killed one held, every case
    /// is done once, with one run each, every chain verifies, and no action had its effect
    /// twice — also for cases that share an idempotency key and were taken by different
    /// workers at once.
    fn several_workers_share_a_queued_batch_and_lose_nothing_when_one_is_killed(dir) {
        let mut cases = String::new();
        for i in 0..16 {
            // Cases 12 to 15 book under the keys of cases 0 to 3.
            let id = format!("Q{}", i % 12);
            let amount = if i % 5 == 0 { "7000.00" } else { "500.00" };
            let value = json!({"inputs": {"request": {
                "id": id, "requester": "carl", "amount": format!("{amount} USD"),
                "note": "n", "updated_at": "2026-11-30T08:00:00Z"}}});
            cases.push_str(&format!("{value}\n"));
        }
        std::fs::write(dir.join("cases.jsonl"), cases).unwrap();
        let queued = json_of(
            &dir,
            &["run", "loan.flow", "--batch", "cases.jsonl", "--as", "carl", "--at", AT, "--queue", "--detach"],
            0,
        );
        let batch = queued["batch"].as_str().unwrap().to_owned();
        assert_eq!(queued["cases"], 16);
        let bin = env!("CARGO_BIN_EXE_flowc");
        let worker = || {
            Command::new(bin)
                .env_remove("FLOW_STORE")
                .args(["worker", "--until-idle"])
                .current_dir(&dir)
                .env("LEDGER_SLEEP", "0.05")
                .env("SCORER_SLEEP", "0.02")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        };
        let mut workers: Vec<_> = (0..3).map(|_| worker()).collect();
        let pause = 200 + u64::from(std::process::id()) % 600;
        std::thread::sleep(std::time::Duration::from_millis(pause));
        let _ = workers[0].kill();
        for worker in &mut workers {
            let _ = worker.wait();
        }
        // What the killed worker held is free once its leases have run out.
        std::thread::sleep(LEASE);
        a_last_worker_finishes(&dir, &batch, 16, 16);
        for run in store_of(&dir).runs(None).unwrap().iter().take(3) {
            evidence_verifies(&dir, &run.id);
        }
    }
}

/// Two `flowc worker` processes run a queued batch on PostgreSQL while the database restarts
/// under them (every connection cut): they go on over new connections, saying what was cut
/// off; once a last worker has taken over what any left (after its leases ran out), every
/// case is done once, with one run each, every chain verifies, no effect twice.
#[test]
fn workers_on_postgres_lose_nothing_when_the_database_restarts() {
    let Some(cluster) = crate::postgres::Cluster::own("restart") else { return };
    let dir = deployment_on("restart", Some(&cluster.database()));
    let batch = queue_routine_cases(&dir);
    let worker = || worker_process(&dir, &[("LEDGER_SLEEP", "0.1")], true);
    let workers: Vec<_> = (0..2).map(|_| worker()).collect();
    // Once the ledger has booked a few cases, mid-batch, the database restarts.
    let started = std::time::Instant::now();
    while lines(&dir, "calls.log").len() < 4 {
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "the workers did nothing");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let done = json_of(&dir, &["batch", &batch], 0)["done"].as_u64().unwrap();
    assert!(done < 24, "the batch was done before the database restarted");
    cluster.ctl("restart").unwrap();
    for worker in workers {
        let output = worker.wait_with_output().unwrap();
        let said = String::from_utf8_lossy(&output.stderr);
        // It went on over new connections, saying what was cut off, if anything was.
        assert!(output.status.success(), "{said}");
        assert!(said.lines().all(|line| line.contains("cut off, going on") || line.contains("resumed run")), "{said}");
    }
    std::thread::sleep(LEASE);
    a_last_worker_finds_every_routine_case_done_once(&dir, &batch);
}

/// A worker whose connections the database closes over and over while it works (in the
/// middle of its commits, its takes from the queue, its lease renewals): it goes on over new
/// connections, saying so, or gives up after three failures in a row; whatever it held is
/// taken over once its leases run out: every case done once, one run each, every chain
/// verified, no effect twice. (Its connections come back at once, so its leases do not run
/// out while it works: a partition longer than a lease is cut through the store instead, in
/// `tests/src/processes.rs`.)
#[test]
fn a_worker_cut_off_from_postgres_again_and_again_loses_nothing() {
    let Some(url) = crate::postgres::database("partition") else { return };
    let dir = deployment_on("partition", Some(&url));
    let batch = queue_routine_cases(&dir);
    // The worker to cut off names itself to the database.
    let worker = |name: &str| {
        let store = format!("{url} application_name={name}");
        worker_process(&dir, &[("FLOW_STORE", &store), ("LEDGER_SLEEP", "0.05")], true)
    };
    // The first takes the cases (up to 32 a thread); once it has booked some, mid-batch, its
    // connections start being closed, and the second joins.
    let mut cut = worker("flow-cut-off");
    let started = std::time::Instant::now();
    while lines(&dir, "calls.log").len() < 2 {
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "the worker did nothing");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let kept = worker("flow-kept");
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let mut closed = 0;
    while cut.try_wait().unwrap().is_none() {
        assert!(started.elapsed() < std::time::Duration::from_secs(120), "the cut-off worker never ended");
        let rows = admin
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = 'flow-cut-off' AND datname = current_database()",
                &[],
            )
            .unwrap();
        closed += rows.iter().filter(|row| row.get::<_, bool>(0)).count();
        std::thread::sleep(std::time::Duration::from_millis(60));
    }
    assert!(closed > 0, "no connection of the worker was closed");
    let cut = cut.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&cut.stderr);
    assert!(said.contains("cut off"), "the worker said nothing of being cut off: {said}");
    // The second found the cases leased to the first (it takes them all, 32 a thread), and
    // ends without error.
    let kept = kept.wait_with_output().unwrap();
    assert!(kept.status.success(), "the worker left alone ended cleanly: {}", String::from_utf8_lossy(&kept.stderr));
    // What the cut-off worker held is taken over once its leases run out.
    std::thread::sleep(LEASE);
    a_last_worker_finds_every_routine_case_done_once(&dir, &batch);
}

/// Queues 24 routine requests (booked by the ledger without anyone), four of them again
/// under the same ids, so 20 idempotency keys; the batch's id.
fn queue_routine_cases(dir: &Path) -> String {
    let mut cases = String::new();
    for i in 0..24 {
        let value = json!({"inputs": {"request": {
            "id": format!("D{}", i % 20), "requester": "carl", "amount": "500.00 USD",
            "note": "n", "updated_at": "2026-11-30T08:00:00Z"}}});
        cases.push_str(&format!("{value}\n"));
    }
    std::fs::write(dir.join("cases.jsonl"), cases).unwrap();
    let args = ["run", "loan.flow", "--batch", "cases.jsonl", "--as", "carl", "--at", AT, "--queue", "--detach"];
    json_of(dir, &args, 0)["batch"].as_str().unwrap().to_owned()
}

/// After a fault, a last worker takes over whatever was left: every case of the batch of
/// `queue_routine_cases` done once, one run each, all finished, the store auditing clean,
/// each of the 20 keys' effect once.
fn a_last_worker_finds_every_routine_case_done_once(dir: &Path, batch: &str) {
    assert_eq!(a_last_worker_finishes(dir, batch, 24, 24), 20, "each key had its effect");
}

/// A last worker takes over whatever a fault left of `batch`: all its `cases` done, none
/// refused, the store holding `runs` runs, none still executing, auditing clean, and no
/// action's effect twice; how many keys had their effect.
fn a_last_worker_finishes(dir: &Path, batch: &str, cases: u64, runs: usize) -> usize {
    let last = flowc(dir, &["worker", "--until-idle"]);
    assert_eq!(last.status.code(), Some(0), "{}", text(&last));
    let state = json_of(dir, &["batch", batch], 0);
    assert_eq!((state["cases"].as_u64(), state["done"].as_u64()), (Some(cases), Some(cases)), "{state}");
    assert_eq!(state["refused"], json!([]), "{state}");
    let stored = store_of(dir).runs(None).unwrap();
    assert_eq!(stored.len(), runs, "one run per case");
    assert!(stored.iter().all(|run| run.status != flow_runtime::Status::Running), "every run finished");
    assert_eq!(json_of(dir, &["audit"], 0)["problems"], json!([]));
    let effects = lines(dir, "effects.log");
    let mut keys: Vec<&str> = effects.iter().map(|l| l.split(' ').next().unwrap()).collect();
    let before = keys.len();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(before, keys.len(), "an action had its effect twice: {effects:?}");
    keys.len()
}

on_every_store! {
    /// The window a crash can hit inside an action: the system had its effect, the runtime had
    /// not yet recorded the result. The next command resumes the run, calls the handler again
    /// with the same key, and the effect stays single.
    fn a_crash_between_an_effect_and_its_record_resumes_without_a_second_effect(dir) {
        let input = request(&dir, "W1", "500.00", "carl");
        let mut child = Command::new(env!("CARGO_BIN_EXE_flowc"))
            .env_remove("FLOW_STORE")
            .args(["run", "loan.flow", "--input", &input, "--as", "carl", "--at", AT])
            .current_dir(&dir)
            .env("LEDGER_SLEEP", "30")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        while lines(&dir, "effects.log").is_empty() {
            assert!(started.elapsed().as_secs() < 60, "the handler never ran");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        // Until the killed process's lease runs out, its run is not resumed.
        let early = flowc(&dir, &["pending"]);
        assert!(!text(&early).contains("resumed run"), "{}", text(&early));
        std::thread::sleep(LEASE);
        let resumed = flowc(&dir, &["pending"]);
        assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed));
        assert!(text(&resumed).contains("resumed run"), "{}", text(&resumed));
        let runs = {
            store_of(&dir).runs(None).unwrap()
        };
        assert_eq!(runs.len(), 1);
        assert_eq!(status(&dir, &runs[0].id), "completed");
        assert_eq!(lines(&dir, "calls.log"), ["booking/W1", "booking/W1"], "called again with the same key");
        assert_eq!(lines(&dir, "effects.log"), ["booking/W1 R-booking/W1"], "one effect");
        let page = show(&dir, &runs[0].id, "aud");
        assert!(page.contains("(attempt 2, idempotency key booking/W1)"), "{page}");
        evidence_verifies(&dir, &runs[0].id);
    }
}

/// A database that cannot be reached is tried again for as long as `[store] reconnect` says,
/// then refused with a clear error that never shows the password (exit 2); one that does not
/// exist is refused at once.
#[test]
fn an_unreachable_or_missing_database_is_a_clear_error() {
    let dir = deployment("unreachable");
    let config = std::fs::read_to_string(dir.join("flow.toml")).unwrap();
    std::fs::write(dir.join("flow.toml"), config.replace("[store]\n", "[store]\nreconnect = \"1s\"\n")).unwrap();
    let started = std::time::Instant::now();
    let output = flowc(&dir, &["pending", "--store", "postgres://ana:s3cret@127.0.0.1:1/flows"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let message = text(&output);
    assert!(
        message.contains("error[E3008]: cannot connect to the run store `postgres://ana:***@127.0.0.1:1/flows`"),
        "{message}"
    );
    assert!(message.contains("tried again for 1s") && !message.contains("s3cret"), "{message}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "it gave up in time");
    let unreachable = "postgres://ana:s3cret@127.0.0.1:1/flows";
    // A `flow.toml` that does not parse is said where, never with its text.
    let kept = std::fs::read_to_string(dir.join("flow.toml")).unwrap();
    for broken in ["url = \"postgres://ana:s3cret\\d@h/flows\"\n", "pool = \"postgres://ana:s3cret@h/flows\"\n"] {
        std::fs::write(dir.join("flow.toml"), kept.replace("[store]\n", &format!("[store]\n{broken}"))).unwrap();
        let output = flowc(&dir, &["pending"]);
        assert_eq!(output.status.code(), Some(2), "{}", text(&output));
        assert!(text(&output).contains("is not a valid deployment file at line"), "{}", text(&output));
        assert!(!text(&output).contains("s3cret"), "{}", text(&output));
    }
    std::fs::write(dir.join("flow.toml"), kept).unwrap();
    // `FLOW_STORE` names the store when `--store` does not, over `flow.toml`.
    let with_env = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_flowc"))
            .env_remove("FLOW_STORE")
            .args(args)
            .current_dir(&dir)
            .env("NO_COLOR", "1")
            .env("FLOW_STORE", unreachable)
            .output()
            .unwrap()
    };
    let output = with_env(&["pending"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("the run store `postgres://ana:***@127.0.0.1:1/flows`"), "{}", text(&output));
    let output = with_env(&["pending", "--store", "elsewhere.db"]);
    assert_eq!(output.status.code(), Some(0), "`--store` comes first: {}", text(&output));
    let output = flowc(&dir, &["store", "copy", "--store", unreachable, "--to", unreachable]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("`--to postgres://ana:***@127.0.0.1:1/flows` is the store itself"),
        "{}",
        text(&output)
    );
    assert!(!text(&output).contains("s3cret"), "{}", text(&output));
    let Some(url) = crate::postgres::database("exists") else { return };
    let missing = url.replace("dbname=", "dbname=no_such_");
    let output = flowc(&dir, &["pending", "--store", &missing]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("does not exist") && !text(&output).contains("tried again"), "{}", text(&output));
}

/// Credentials the database refuses are a clear error at once (exit 2), not tried again,
/// the password never shown; the right ones open the store.
#[test]
fn refused_credentials_are_a_clear_error_at_once() {
    let Some(cluster) = crate::postgres::Cluster::own_with_password("credentials", "right-one") else { return };
    let dir = deployment("credentials");
    let store = |password: &str| format!("{} dbname=postgres password={password}", cluster.server());
    let started = std::time::Instant::now();
    let output = flowc(&dir, &["pending", "--store", &store("wrong-one")]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let message = text(&output);
    assert!(message.contains("error[E3008]") && message.contains("password authentication failed"), "{message}");
    assert!(!message.contains("wrong-one") && !message.contains("tried again"), "{message}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "refused at once, not tried again");
    let output = flowc(&dir, &["pending", "--store", &store("right-one")]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
}

/// A database whose `flow_…` tables are not a run store's, or that holds a store of a newer
/// version, is refused by every command (exit 2) and left as it was; tables of other names
/// are another application's, left alone beside the store.
#[test]
fn a_database_that_is_not_a_store_of_this_version_is_refused() {
    let Some(url) = crate::postgres::database("foreign_cli") else { return };
    let dir = deployment("foreign");
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client.batch_execute("CREATE TABLE customers (name TEXT); INSERT INTO customers VALUES ('ana')").unwrap();
    client.batch_execute("CREATE TABLE flow_runs (x INTEGER)").unwrap();
    let tables = |client: &mut postgres::Client| -> Vec<String> {
        let rows = client
            .query(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
                &[],
            )
            .unwrap();
        rows.iter().map(|row| row.get(0)).collect()
    };
    let output = flowc(&dir, &["pending", "--store", &url]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("belong to something else"), "{}", text(&output));
    assert_eq!(tables(&mut client), ["customers", "flow_runs"], "nothing was written");
    // Without the clash, the store is made beside the other application's table.
    client.batch_execute("DROP TABLE flow_runs").unwrap();
    let output = flowc(&dir, &["pending", "--store", &url]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let names: Vec<String> =
        client.query("SELECT name FROM customers", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(names, ["ana"], "the other table is left as it was");
    // A store of a newer version: refused, and its version left as it was.
    client.batch_execute("UPDATE flow_schema SET version = 99").unwrap();
    let before = tables(&mut client);
    let output = flowc(&dir, &["pending", "--store", &url]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("newer version of Flow (schema 99"), "{}", text(&output));
    let version: i32 = client.query_one("SELECT version FROM flow_schema", &[]).unwrap().get(0);
    assert_eq!((version, tables(&mut client)), (99, before), "nothing was written");
}

/// A store copied to PostgreSQL and back to SQLite loses nothing: the same checkpoint, the
/// same evidence byte for byte, the same refusals; a waiting run is decided in the copy. A
/// copy into a store that is not empty, or of a store that does not audit clean, is refused
/// and copies nothing.
#[test]
fn a_store_copied_to_postgres_and_back_loses_nothing() {
    let dir = deployment("copy");
    let routine = start(&dir, &request(&dir, "C1", "500.00", "carl"), "carl")["run"].as_str().unwrap().to_owned();
    let waiting = start(&dir, &request(&dir, "C2", "7000.00", "carl"), "carl")["run"].as_str().unwrap().to_owned();
    let refused = flowc(&dir, &["run", "loan.flow", "--input", &request(&dir, "C3", "1.00", "carl"), "--as", "max"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    let original = json_of(&dir, &["audit"], 0);
    // A run's evidence as exported, but for when and its digest (which covers when).
    let evidence = |store: &str, run: &str| {
        let output = flowc(&dir, &["evidence", run, "--as", "aud", "--store", store]);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output));
        let mut bundle: Json = serde_json::from_slice(&output.stdout).unwrap();
        bundle["exported"]["at"] = Json::Null;
        bundle["digest"] = Json::Null;
        bundle
    };
    let sqlite = dir.join(".flow/runs.db").display().to_string();
    let back = dir.join("back.db").display().to_string();
    // Through PostgreSQL when there is one, else straight to another file.
    let middle = crate::postgres::database("copy").unwrap_or_else(|| dir.join("middle.db").display().to_string());
    for (from, to) in [(&sqlite, &middle), (&middle, &back)] {
        let copied = json_of(&dir, &["store", "copy", "--store", from, "--to", to], 0);
        assert_eq!((copied["runs"].clone(), copied["refusals"].clone()), (json!(2), json!(1)), "{copied}");
        assert!(!copied.to_string().contains("does not parse"), "both stores are named: {copied}");
        let audit = json_of(&dir, &["audit", "--store", to], 0);
        assert_eq!(audit["checkpoint"], original["checkpoint"], "{audit}");
        for run in [&routine, &waiting] {
            assert_eq!(evidence(to, run), evidence(&sqlite, run), "the evidence of {run} changed in the copy");
        }
    }
    // The copy is a store like any other: the waiting run is decided there.
    let output = flowc(
        &dir,
        &["decide", &waiting, "check", "--as", "max", "--outcome", "approve", "--reason", "ok", "--store", &back],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    // Not into a store that is not empty.
    let again = flowc(&dir, &["store", "copy", "--store", &sqlite, "--to", &back]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(text(&again).contains("is not empty"), "{}", text(&again));
    // Not from a store changed behind the runtime's back: nothing is copied.
    let db = rusqlite::Connection::open(&sqlite).unwrap();
    db.execute(
        "UPDATE events SET body = replace(body, '500.00 USD', '50.00 USD') WHERE run = ?1 AND seq = 0",
        [&routine],
    )
    .unwrap();
    drop(db);
    let tampered = dir.join("tampered.db").display().to_string();
    let refused = flowc(&dir, &["store", "copy", "--store", &sqlite, "--to", &tampered]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(text(&refused).contains("does not audit clean, so nothing was copied"), "{}", text(&refused));
    let empty = flow_runtime::store::SqliteStore::open(Path::new(&tampered)).unwrap();
    assert!(flow_runtime::store::Store::is_empty(&empty).unwrap());
}

/// A store whose events were changed behind the runtime's back is refused, not believed.
#[test]
fn a_store_changed_behind_the_runtimes_back_is_refused() {
    let dir = deployment("edited");
    let run = start(&dir, &request(&dir, "E1", "7000.00", "carl"), "carl")["run"].as_str().unwrap().to_owned();
    let intact = start(&dir, &request(&dir, "E2", "500.00", "carl"), "carl")["run"].as_str().unwrap().to_owned();
    let db = rusqlite::Connection::open(dir.join(".flow/runs.db")).unwrap();
    let changed = db
        .execute(
            "UPDATE events SET body = replace(body, '7000.00 USD', '700.00 USD') WHERE run = ?1 AND seq = 0",
            [&run],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(db);
    for args in [
        vec!["show", run.as_str(), "--as", "aud"],
        vec!["replay", run.as_str(), "--as", "aud"],
        vec!["decide", &run, "check", "--as", "max", "--outcome", "approve", "--reason", "ok"],
    ] {
        let output = flowc(&dir, &args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", text(&output));
        assert!(text(&output).contains("is corrupted: event 0 does not match its hash chain"), "{}", text(&output));
    }
    // Replaying every run names the corrupted one and still replays the others.
    let all = json_of(&dir, &["replay", "--all", "--as", "aud"], 2);
    assert_eq!((all["runs"].as_u64(), all["exact"].as_u64()), (Some(1), Some(1)), "{all}");
    assert_eq!(all["errors"][0]["run"], run.as_str(), "{all}");
    assert!(all["errors"][0]["error"].as_str().unwrap().contains("does not match its hash chain"), "{all}");
    assert_ne!(run, intact);
}

on_every_store! {
    /// `--engine` chooses native code or the interpreter; both reach the same outcome with the
    /// same explanation, the evidence records which ran, and a batch says which it used.
    fn either_engine_runs_a_flow_and_the_evidence_says_which(dir) {
        let input = request(&dir, "E1", "500.00", "carl");
        let mut views = Vec::new();
        for (engine, label) in [("jit", "jit"), ("interp", "interpreter")] {
            let args = ["run", "loan.flow", "--input", &input, "--as", "carl", "--at", AT, "--engine", engine];
            let view = json_of(&dir, &args, 0);
            let run = view["run"].as_str().unwrap().to_owned();
            let page = show(&dir, &run, "aud");
            assert!(page.contains(&format!("engine {label}\n")), "{page}");
            let bundle: Json = serde_json::from_slice(&std::fs::read(evidence_verifies(&dir, &run)).unwrap()).unwrap();
            assert!(bundle.to_string().contains(&format!("\"engine\":\"{label}\"")), "{bundle}");
            views.push((view["status"].clone(), view["why"].clone(), view["outputs"]["decision"]["approved"].clone()));
        }
        assert_eq!(views[0], views[1]);

        let output = flowc(&dir, &["run", "loan.flow", "--input", &input, "--as", "carl", "--engine", "fast"]);
        assert_eq!(output.status.code(), Some(2), "{}", text(&output));
        assert!(text(&output).contains("jit") && text(&output).contains("interp"), "{}", text(&output));

        let line = |file: &str| {
            let case = std::fs::read_to_string(dir.join(file)).unwrap();
            format!("{{\"inputs\": {{\"request\": {case}}}}}")
        };
        // Three cases that call the model; then more lines than a worker takes at a time, so
        // that the workers share the file (of cases a blocking gate stops before the model):
        // lines that do not run (not JSON, not UTF-8 text) in different blocks, blank lines
        // and lines ending `\r\n` between them.
        let (called, embargoed) = (line("E1.json"), line(&request(&dir, "EMBARGO", "20.00", "ana")[8..]));
        let mut cases: Vec<u8> = Vec::new();
        for n in 1..=700 {
            match n {
                1..=3 => cases.extend_from_slice(format!("{called}\n").as_bytes()),
                4 | 690 => cases.extend_from_slice(b"not json\n"),
                5 | 6 => cases.extend_from_slice(b"  \n"),
                300 => cases.extend_from_slice(b"{\"inputs\": \xff}\n"),
                n if n % 7 == 0 => cases.extend_from_slice(format!("{embargoed}\r\n").as_bytes()),
                _ => cases.extend_from_slice(format!("{embargoed}\n").as_bytes()),
            }
        }
        std::fs::write(dir.join("cases.jsonl"), cases).unwrap();
        for (engine, label) in [("jit", "jit"), ("interp", "interpreter")] {
            let args = ["run", "loan.flow", "--batch", "cases.jsonl", "--as", "carl", "--at", AT, "--store", ":memory:"];
            let batch = json_of(&dir, &[&args[..], &["--engine", engine]].concat(), 1);
            assert_eq!(batch["engine"], label, "{batch}");
            assert_eq!(batch["runs"], 695, "{batch}");
            assert_eq!(batch["outcomes"]["blocked"], 692, "{batch}");
            let refused: Vec<&str> = batch["refused"].as_array().unwrap().iter().filter_map(Json::as_str).collect();
            assert_eq!(refused.len(), 3, "{batch}");
            assert!(refused[0].starts_with("line 4: not JSON"), "{batch}");
            assert_eq!(refused[1], "line 300: not UTF-8 text", "{batch}");
            assert!(refused[2].starts_with("line 690: not JSON"), "{batch}");
        }
        // A case file that cannot be read to its end stops the batch (exit 2) after the
        // summary of what ran.
        std::fs::create_dir(dir.join("cases.d")).unwrap();
        let args = ["run", "loan.flow", "--batch", "cases.d", "--as", "carl", "--at", AT, "--store", ":memory:"];
        let unread = flowc(&dir, &args);
        assert_eq!(unread.status.code(), Some(2), "{}", text(&unread));
        assert!(text(&unread).contains("0 runs") && text(&unread).contains("cannot read `cases.d` to its end (line 1:"), "{}", text(&unread));
    }
}

on_every_store! {
    /// Replay needs the `replay` grant, and a refusal is recorded. (Runs whose stored evidence
    /// was changed are refused: `a_store_changed_behind_the_runtimes_back_is_refused`; a
    /// difference is named: the runtime's own tests.)
    fn replay_needs_its_grant(dir) {
        let view = start(&dir, &request(&dir, "P1", "500.00", "carl"), "carl");
        let run = view["run"].as_str().unwrap().to_owned();
        let human = flowc(&dir, &["replay", &run, "--as", "aud"]);
        assert_eq!(human.status.code(), Some(0), "{}", text(&human));
        assert!(text(&human).contains("replayed exactly"), "{}", text(&human));

        let refused = flowc(&dir, &["replay", &run, "--as", "carl"]);
        assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
        assert!(text(&refused).contains("missing grant: `replay`"), "{}", text(&refused));
        let recorded = store_of(&dir).refusals().unwrap();
        assert!(
            recorded.iter().any(|r| r.principal == "carl" && r.operation == "replay" && r.message.contains(&run)),
            "the refusal is recorded: {recorded:?}"
        );
    }
}

/// The change of a step in a replay's JSON, by name.
fn change<'j>(replay: &'j Json, node: &str) -> Option<&'j Json> {
    replay["changes"].as_array().unwrap().iter().find(|c| c["node"] == node)
}

on_every_store! {
    /// A lower threshold, replayed over stored runs: each run's steps and outcome change as the
    /// flow says they must, the summary of all runs agrees with a recount from the requests,
    /// reviews and approvals are reused where their step opened on the same values, and no
    /// action runs.
    fn what_if_a_threshold_changed_step_by_step_and_over_every_run(dir) {
        let amounts = ["100.00", "300.00", "500.00", "800.00", "900.00", "2000.00", "4000.00", "6000.00", "12000.00"];
        let mut runs = Vec::new();
        for (i, amount) in amounts.iter().enumerate() {
            let view = start(&dir, &request(&dir, &format!("T{i}"), amount, "carl"), "carl");
            runs.push((amount.parse::<f64>().unwrap(), view["run"].as_str().unwrap().to_owned()));
        }
        // The 2000 USD run: the review and both approvals of its row (2 of manager).
        let reviewed = runs[5].1.clone();
        decide(&dir, &reviewed, "check", "max", ["approve", "ok"], &[], 0);
        decide(&dir, &reviewed, "sign", "max", ["approve", "ok"], &[], 0);
        decide(&dir, &reviewed, "sign", "mia", ["approve", "ok"], &[], 0);
        assert_eq!(status(&dir, &reviewed), "completed");
        let effects = lines(&dir, "effects.log");

        // One run: 800 USD was booked without anyone; under 400 USD it needs a manager.
        let run = &runs[3].1;
        let whatif = json_of(&dir, &["replay", run, "--as", "aud", "--set", "limit=400 USD"], 0);
        assert_eq!((whatif["before"].as_str(), whatif["after"].as_str()), (Some("completed"), Some("pending")), "{whatif}");
        assert_eq!(whatif["exact"], false);
        assert_eq!(change(&whatif, "limit").unwrap()["after"], "400 USD", "{whatif}");
        assert_eq!(change(&whatif, "big").unwrap()["after"], true, "{whatif}");
        assert_eq!(change(&whatif, "notable").unwrap()["after"], "holds", "{whatif}");
        assert_eq!(change(&whatif, "sign").unwrap()["after"], "row 2 (1 of manager): waiting", "{whatif}");
        assert_eq!(change(&whatif, "booking").unwrap()["before"], "would run `ledger.book`", "{whatif}");
        assert_eq!(change(&whatif, "booking").unwrap()["after"], Json::Null, "{whatif}");
        assert!(change(&whatif, "score").is_none(), "the model's answer is reused: {whatif}");
        // The note is labelled pii; the auditor may view it, a manager may not replay at all.
        assert_eq!(change(&whatif, "decision").unwrap()["before"]["note"]["$labels"], json!(["pii"]), "{whatif}");
        let human = flowc(&dir, &["replay", run, "--as", "aud", "--set", "limit=400 USD"]);
        assert!(text(&human).contains("outcome: completed → pending"), "{}", text(&human));
        assert!(text(&human).contains("would run `ledger.book` → not reached"), "{}", text(&human));

        // Reused decisions: under 3000 USD the reviewed run's review and approvals opened on the
        // same values, so they count again and the run completes as it did.
        let kept = json_of(&dir, &["replay", &reviewed, "--as", "aud", "--set", "limit=3000 USD"], 0);
        assert_eq!((kept["before"].as_str(), kept["after"].as_str()), (Some("completed"), Some("completed")), "{kept}");
        let nodes: Vec<&str> = kept["changes"].as_array().unwrap().iter().map(|c| c["node"].as_str().unwrap()).collect();
        assert_eq!(nodes, ["limit"], "{kept}");
        // Under 1000 USD, `big` holds for it; but only the matrix's first row reads `big`, and
        // the row that applied (row 3, on the tier) reads the same values: the approvals are
        // reused, as is the review.
        let redo = json_of(&dir, &["replay", &reviewed, "--as", "aud", "--set", "limit=1000 USD"], 0);
        assert_eq!(redo["after"], "completed", "{redo}");
        assert!(change(&redo, "sign").is_none(), "{redo}");
        assert!(change(&redo, "check").is_none(), "{redo}");
        assert_eq!(change(&redo, "big").unwrap()["after"], true, "{redo}");

        // Every run: the summary agrees with a recount from the requests.
        let all = json_of(&dir, &["replay", "--all", "--as", "aud", "--set", "limit=400 USD", "--details"], 0);
        let mut expected = std::collections::BTreeMap::<(String, String), u64>::new();
        for (amount, run) in &runs {
            let before = status(&dir, run);
            let after = if *amount < 1000.0 && *amount > 400.0 { "pending".to_owned() } else { before.clone() };
            // The completed 2000 USD run keeps its approvals: `big` holds for it now, but its
            // row (on the tier) does not read it.
            if before != after {
                *expected.entry((before, after)).or_default() += 1;
            }
        }
        let transitions: std::collections::BTreeMap<(String, String), u64> = all["transitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| ((t["from"].as_str().unwrap().into(), t["to"].as_str().unwrap().into()), t["count"].as_u64().unwrap()))
            .collect();
        assert_eq!(transitions, expected, "{all}");
        assert_eq!(all["runs"], runs.len(), "{all}");
        assert_eq!(all["changed"], expected.values().sum::<u64>(), "{all}");
        assert_eq!(all["exact"], 0, "the param changed in every run: {all}");
        assert_eq!(all["details"].as_array().map(Vec::len), Some(runs.len()), "{all}");
        let human = flowc(&dir, &["replay", "--all", "--as", "aud", "--set", "limit=400 USD"]);
        assert!(text(&human).contains("completed → pending: 3"), "{}", text(&human));

        // The same change as a new plan gives the same summary.
        let source = std::fs::read_to_string(dir.join("loan.flow")).unwrap();
        std::fs::write(dir.join("loan_400.flow"), source.replace("= 5_000 USD", "= 400 USD")).unwrap();
        let by_plan = json_of(&dir, &["replay", "--all", "--as", "aud", "--plan", "loan_400.flow"], 0);
        assert_eq!(by_plan["transitions"], all["transitions"], "{by_plan}");

        // A new model version: its answers are not the recorded ones. Without `--live` the step
        // needs re-inference and what follows is undetermined; with it, the model is asked.
        std::fs::write(
            dir.join("loan_v2.flow"),
            source.replace("version \"1.0.0\"\n  digest", "version \"2.0.0\"\n  digest"),
        )
        .unwrap();
        let v2 = json_of(&dir, &["replay", &runs[0].1, "--as", "aud", "--plan", "loan_v2.flow"], 0);
        assert_eq!(v2["after"], "undetermined", "{v2}");
        assert_eq!(change(&v2, "score").unwrap()["after"], "needs re-inference", "{v2}");
        let live = json_of(&dir, &["replay", &runs[0].1, "--as", "aud", "--plan", "loan_v2.flow", "--live"], 0);
        assert_eq!(live["after"], "completed", "{live}");
        assert!(change(&live, "score").is_none(), "{live}");

        // Exactly, every run reproduces; no replay ran an action.
        let exact = json_of(&dir, &["replay", "--all", "--as", "aud"], 0);
        assert_eq!((exact["runs"].as_u64(), exact["exact"].as_u64()), (Some(9), Some(9)), "{exact}");
        assert_eq!(lines(&dir, "effects.log"), effects, "a replay ran an action");

        // Bad requests: an unknown param, a value that does not fit, another flow's plan, and a
        // principal who may replay nothing.
        let unknown = flowc(&dir, &["replay", run, "--as", "aud", "--set", "limt=400 USD"]);
        assert_eq!(unknown.status.code(), Some(1));
        assert!(text(&unknown).contains("the flow has no param `limt`"), "{}", text(&unknown));
        let wrong = flowc(&dir, &["replay", run, "--as", "aud", "--set", "limit=400 EUR"]);
        assert_eq!(wrong.status.code(), Some(1), "{}", text(&wrong));
        assert!(text(&wrong).contains("--set limit"), "{}", text(&wrong));
        let refused = flowc(&dir, &["replay", "--all", "--as", "max"]);
        assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
        assert!(text(&refused).contains("missing grant: `replay`"), "{}", text(&refused));
    }
}

/// `flowc stats` counts what the store holds: a routine run, a run waiting for its review, a
/// run whose model failed (fallback), a blocked run overridden and one still blocked; every
/// chain verifies and every run replays, until one is corrupted.
#[test]
fn stats_count_what_the_store_holds() {
    let dir = deployment("stats");
    start(&dir, &request(&dir, "S1", "500.00", "carl"), "carl");
    start(&dir, &request(&dir, "S2", "2000.00", "carl"), "carl");
    start(&dir, &request(&dir, "S3", "13.00", "carl"), "carl");
    let embargoed =
        start(&dir, &request(&dir, "EMBARGO", "500.00", "carl"), "carl")["run"].as_str().unwrap().to_owned();
    let args = ["override", &embargoed, "embargo", "--as", "olga", "--reason", "lifted", "--basis", "b"];
    assert_eq!(flowc(&dir, &args).status.code(), Some(0));
    let blocked = {
        let value = json!({"id": "EMBARGO", "requester": "carl", "amount": "600.00 USD", "note": "n",
            "updated_at": "2026-11-30T08:00:00Z"});
        std::fs::write(dir.join("blocked.json"), value.to_string()).unwrap();
        start(&dir, "request=blocked.json", "carl")["run"].as_str().unwrap().to_owned()
    };
    let stats = json_of(&dir, &["stats"], 0);
    let loan = &stats["flows"][0];
    assert_eq!(loan["flow"], "loan", "{stats}");
    assert_eq!(loan["runs"], 5, "{stats}");
    // S1 and the overridden run complete; S3's fallback (low confidence) opens a review, as
    // does S2's medium score.
    assert_eq!(loan["statuses"], json!({"blocked": 1, "completed": 2, "pending": 2}), "{stats}");
    assert_eq!(loan["fallback_runs"], 1, "{stats}");
    assert_eq!(loan["reviews_opened"], 2, "{stats}");
    assert_eq!(loan["reviews_decided"], 0, "{stats}");
    assert_eq!(loan["blocked_run_rate"], 0.4, "{stats}");
    assert_eq!(loan["override_rate"], 0.5, "{stats}");
    assert_eq!(loan["success_rate"], 1.0, "{stats}");
    assert_eq!(loan["evidence_completeness"], 1.0, "{stats}");
    assert_eq!(loan["replay_success_rate"], 1.0, "{stats}");
    assert_eq!(loan["execution_latency_ms"]["count"], 5, "{stats}");
    assert_eq!(loan["decision_latency_ms"]["count"], 2, "only the completed runs ended: {stats}");
    assert_eq!(stats["all"]["runs"], 5, "{stats}");

    // Prometheus: every sample is `name{labels} number`, each family declared first.
    let output = flowc(&dir, &["stats", "--format", "prometheus"]);
    assert_eq!(output.status.code(), Some(0));
    let exposition = String::from_utf8(output.stdout).unwrap();
    let mut declared = Vec::new();
    for line in exposition.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            declared.push(rest.split(' ').next().unwrap().to_owned());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (name, rest) = line.split_once('{').unwrap_or_else(|| panic!("no labels: {line}"));
        let (_, value) = rest.rsplit_once("} ").unwrap_or_else(|| panic!("no value: {line}"));
        assert!(value.parse::<f64>().is_ok(), "{line}");
        let family = name.trim_end_matches("_sum").trim_end_matches("_count");
        assert!(declared.iter().any(|d| d == family), "{line}");
    }
    assert!(exposition.contains("flow_runs{flow=\"loan\",status=\"completed\"} 2"), "{exposition}");
    assert!(exposition.contains("flow_override_ratio{flow=\"loan\"} 0.5"), "{exposition}");
    let human = flowc(&dir, &["stats"]);
    assert!(text(&human).contains("override rate         50.0% (1 of 2 blocking gates that held)"), "{}", text(&human));

    // A corrupted run counts against evidence completeness, and is not replayed.
    let db = rusqlite::Connection::open(dir.join(".flow/runs.db")).unwrap();
    db.execute(
        "UPDATE events SET body = replace(body, '600.00 USD', '60.00 USD') WHERE run = ?1 AND seq = 0",
        [&blocked],
    )
    .unwrap();
    drop(db);
    let stats = json_of(&dir, &["stats", "--flow", "loan", "--since", "2020-01-01"], 0);
    assert_eq!(stats["flows"][0]["evidence_completeness"], 0.8, "{stats}");
    assert_eq!(stats["flows"][0]["replay_success_rate"], 1.0, "{stats}");
    let none = json_of(&dir, &["stats", "--flow", "other"], 0);
    assert_eq!(none["flows"], json!([]), "{none}");
}

on_every_store! {
    /// `run --shadow` executes a candidate plan on each run's inputs without its actions and
    /// stores it; `shadow-report` compares candidates with production.
    fn shadow_runs_execute_a_candidate_without_actions_and_the_report_compares(dir) {
        let source = std::fs::read_to_string(dir.join("loan.flow")).unwrap();
        std::fs::write(dir.join("loan_400.flow"), source.replace("= 5_000 USD", "= 400 USD")).unwrap();
        let mut views = Vec::new();
        for (i, amount) in ["300.00", "800.00", "2000.00"].iter().enumerate() {
            let input = request(&dir, &format!("H{i}"), amount, "carl");
            let args = ["run", "loan.flow", "--input", &input, "--as", "carl", "--at", AT, "--shadow", "loan_400.flow"];
            views.push(json_of(&dir, &args, 0));
        }
        assert_eq!(views[0]["status"], "completed");
        assert_eq!(
            (views[0]["shadow"]["production"].as_str(), views[0]["shadow"]["outcome"].as_str()),
            (Some("completed"), Some("completed"))
        );
        assert_eq!(views[1]["status"], "completed", "{}", views[1]);
        assert_eq!(views[1]["shadow"]["outcome"], "pending", "{}", views[1]);
        let changed: Vec<&str> =
            views[1]["shadow"]["changes"].as_array().unwrap().iter().map(|c| c["node"].as_str().unwrap()).collect();
        assert!(changed.contains(&"sign") && changed.contains(&"booking"), "{changed:?}");
        assert_eq!(views[2]["shadow"]["outcome"], "pending", "{}", views[2]);
        // Only production booked: two effects, none from a shadow.
        assert_eq!(lines(&dir, "effects.log").len(), 2, "{:?}", lines(&dir, "effects.log"));

        // A batch with shadows.
        let mut cases = String::new();
        for (i, amount) in ["100.00", "600.00", "700.00"].iter().enumerate() {
            let value = json!({"inputs": {"request": {"id": format!("B{i}"), "requester": "carl",
                "amount": format!("{amount} USD"), "note": "n", "updated_at": "2026-11-30T08:00:00Z"}}});
            cases.push_str(&format!("{value}\n"));
        }
        std::fs::write(dir.join("cases.jsonl"), cases).unwrap();
        let args = ["run", "loan.flow", "--batch", "cases.jsonl", "--as", "carl", "--at", AT, "--shadow", "loan_400.flow"];
        let batch = json_of(&dir, &args, 0);
        assert_eq!(batch["shadows"], json!({"runs": 3, "agree": 1}), "{batch}");

        // The 2,000 USD run waits for a review, then a manager and a director, in production and
        // in the candidate. Once they approve it in production, its shadow is executed again
        // after each decision: the review is reused, and so are the approvals, since the row
        // that applied reads only the tier (`big`, which holds in the candidate, is read by the
        // first row alone): the candidate completes too.
        assert_eq!(views[2]["pending"], json!([{"step": "check", "kind": "review", "roles": ["manager"]}]));
        let waiting = views[2]["run"].as_str().unwrap();
        decide(&dir, waiting, "check", "max", ["approve", "ok"], &[], 0);
        decide(&dir, waiting, "sign", "mia", ["approve", "ok"], &[], 0);
        decide(&dir, waiting, "sign", "dora", ["approve", "ok"], &[], 0);
        assert_eq!(status(&dir, waiting), "completed");

        // The report: 6 shadows, 3 agree (300, 100, 2,000), 3 would need a manager.
        let report = json_of(&dir, &["shadow-report", "--as", "aud", "--details"], 0);
        assert_eq!((report["runs"].as_u64(), report["agree"].as_u64()), (Some(6), Some(3)), "{report}");
        assert_eq!(report["transitions"], json!([{"from": "completed", "to": "pending", "count": 3}]), "{report}");
        // Every shadow differs in a step at least: the candidate's `limit`.
        assert_eq!(report["details"].as_array().map(Vec::len), Some(6), "{report}");
        let decided = report["details"].as_array().unwrap().iter().find(|d| d["run"] == waiting).unwrap();
        assert_eq!(decided["production"], "completed", "{decided}");
        let steps: Vec<(&str, String)> = decided["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["node"].as_str().unwrap(), c["after"].to_string()))
            .collect();
        assert!(!steps.iter().any(|(node, _)| *node == "sign" || *node == "check"), "decisions reused: {steps:?}");
        let human = flowc(&dir, &["shadow-report", "--as", "aud"]);
        assert!(text(&human).contains("production completed → candidate pending: 3"), "{}", text(&human));
        // Another candidate hash selects nothing.
        let none = json_of(&dir, &["shadow-report", "--as", "aud", "--candidate", "blake3:0000"], 0);
        assert_eq!(none["runs"], 0, "{none}");

        // Bad requests: a principal without `replay`, a candidate of another flow, shadows of
        // runs that are not stored.
        let refused = flowc(&dir, &["shadow-report", "--as", "max"]);
        assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
        assert!(text(&refused).contains("missing grant: `replay`"), "{}", text(&refused));
        std::fs::write(dir.join("other.flow"), source.replace("flow loan {", "flow other_loan {")).unwrap();
        let input = request(&dir, "H9", "300.00", "carl");
        let other =
            flowc(&dir, &["run", "loan.flow", "--input", &input, "--as", "carl", "--at", AT, "--shadow", "other.flow"]);
        assert_eq!(other.status.code(), Some(1), "{}", text(&other));
        assert!(text(&other).contains("is of flow `other_loan`"), "{}", text(&other));
        let memory = flowc(&dir, &[&args[..], &["--store", ":memory:"]].concat());
        assert_eq!(memory.status.code(), Some(2), "{}", text(&memory));
        assert!(text(&memory).contains("stores none"), "{}", text(&memory));
    }
}

/// Rewrites the store's log as someone with write access to the store and without the
/// deployment's key would: each entry of `run` gets the head the run now has after that
/// many events (`heads[n - 1]`), and the checkpoint is computed again.
fn rewrite_log(db: &rusqlite::Connection, run: &str, heads: &[String]) {
    use flow_runtime::checkpoint::{Checkpoint, Entry, Frontier, Kind};
    let entries: Vec<(i64, String, String, i64, String)> = {
        let mut statement = db.prepare("SELECT n, kind, subject, seq, hash FROM log ORDER BY n").unwrap();
        let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)));
        rows.unwrap().map(Result::unwrap).collect()
    };
    let mut frontier = Frontier::default();
    for (n, kind, subject, seq, hash) in entries {
        let hash = if kind == "run" && subject == run { heads[seq as usize - 1].clone() } else { hash };
        db.execute("UPDATE log SET hash = ?1 WHERE n = ?2", rusqlite::params![hash, n]).unwrap();
        let kind = Kind::parse(&kind).unwrap();
        frontier.push(Entry { kind, subject, seq: seq as u64, hash }.leaf());
    }
    let checkpoint = Checkpoint::of(&frontier, "2026-12-02T00:00:00Z".to_owned(), None);
    db.execute(
        "UPDATE checkpoint SET size = ?1, root = ?2, frontier = ?3",
        rusqlite::params![checkpoint.size as i64, checkpoint.root, frontier.to_text()],
    )
    .unwrap();
}

/// A forger who changes what a gate decided and rebuilds the hash chain is caught by the
/// store's log; one who rewrites the log too passes every check of a store without a
/// signing key, but not the replay (the run diverges at that gate, alone and among all
/// runs), nor an audit against a checkpoint kept from before.
#[test]
fn a_forged_decision_with_a_rebuilt_chain_does_not_replay() {
    let dir = deployment("forged");
    let forged = start(&dir, &request(&dir, "F1", "500.00", "carl"), "carl")["run"].as_str().unwrap().to_owned();
    start(&dir, &request(&dir, "F2", "600.00", "carl"), "carl");
    let before = json_of(&dir, &["audit"], 0);
    assert_eq!(before["problems"], json!([]), "{before}");
    std::fs::write(dir.join("before.json"), before.to_string()).unwrap();
    let db = rusqlite::Connection::open(dir.join(".flow/runs.db")).unwrap();
    let rows: Vec<(i64, String, String)> = {
        let mut statement = db.prepare("SELECT seq, at, body FROM events WHERE run = ?1 ORDER BY seq").unwrap();
        statement.query_map([&forged], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect()
    };
    let mut prev = flow_runtime::digest::GENESIS.to_owned();
    let mut changed = 0;
    let mut heads = Vec::new();
    for (seq, at, body) in rows {
        let edited = body.replace(
            r#""node":"notable","level":"info","holds":false"#,
            r#""node":"notable","level":"info","holds":true"#,
        );
        changed += usize::from(edited != body);
        let json: Json = serde_json::from_str(&edited).unwrap();
        let hash = flow_runtime::digest::event_hash(&prev, seq as u64, &at, &json);
        db.execute(
            "UPDATE events SET body = ?1, prev = ?2, hash = ?3 WHERE run = ?4 AND seq = ?5",
            rusqlite::params![json.to_string(), prev, hash, forged, seq],
        )
        .unwrap();
        prev = hash.clone();
        heads.push(hash);
    }
    assert_eq!(changed, 1);
    db.execute("UPDATE runs SET head = ?1 WHERE id = ?2", [&prev, &forged]).unwrap();
    // The chain verifies, but the store's log recorded other heads.
    let export = flowc(&dir, &["evidence", &forged, "--as", "aud", "-o", "forged.json"]);
    assert_eq!(export.status.code(), Some(2), "{}", text(&export));
    assert!(text(&export).contains("does not hold the head of run"), "{}", text(&export));
    let audit = json_of(&dir, &["audit"], 1);
    assert!(audit["problems"][0].as_str().unwrap().contains("it was rolled back or changed"), "{audit}");
    rewrite_log(&db, &forged, &heads);
    drop(db);
    // With the log rewritten too, the evidence exports and the store audits clean, except
    // against the checkpoint kept from before.
    assert_eq!(flowc(&dir, &["evidence", &forged, "--as", "aud", "-o", "forged.json"]).status.code(), Some(0));
    assert_eq!(json_of(&dir, &["audit"], 0)["problems"], json!([]));
    let audit = json_of(&dir, &["audit", "--checkpoint", "before.json"], 1);
    assert!(audit["problems"][0].as_str().unwrap().contains("the log was rewritten"), "{audit}");
    let one = json_of(&dir, &["replay", &forged, "--as", "aud"], 1);
    assert_eq!(one["exact"], false, "{one}");
    assert_eq!(one["changes"][0]["node"], "notable", "{one}");
    assert_eq!(
        (one["changes"][0]["before"]["holds"].as_bool(), one["changes"][0]["after"]["holds"].as_bool()),
        (Some(true), Some(false))
    );
    let all = json_of(&dir, &["replay", "--all", "--as", "aud", "--details"], 1);
    assert_eq!((all["runs"].as_u64(), all["exact"].as_u64()), (Some(2), Some(1)), "{all}");
    assert_eq!(all["transitions"], json!([{"from": "completed", "to": "diverged", "count": 1}]), "{all}");
    assert_eq!(all["details"][0]["run"], forged.as_str(), "{all}");
    assert_eq!(all["details"][0]["changes"][0]["node"], "notable", "{all}");
    let stats = json_of(&dir, &["stats"], 0);
    assert_eq!(stats["flows"][0]["evidence_completeness"], 1.0, "{stats}");
    assert_eq!(stats["flows"][0]["replay_success_rate"], 0.5, "{stats}");
}

/// A review with deadlines of a few seconds, for the timer tests.
const TIMED: &str = r#"
role clerk
role manager
role director
role auditor

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
    read evidence by auditor
    replay by auditor
  }

  review check by manager
    outcomes ok, not_ok
    reasons fine, no_answer
    within 2s otherwise escalate to director
    within 4s otherwise not_ok because no_answer

  emit done = check.outcome == ok
}
"#;

/// `flowc serve` on the deployment, its output dropped.
fn serve_quietly(dir: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_flowc"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir)
        .env_remove("FLOW_STORE")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Starts a run of `timed.flow` and returns its id.
fn start_timed(dir: &Path, id: &str) -> String {
    std::fs::write(dir.join(format!("{id}.json")), json!({ "id": id }).to_string()).unwrap();
    let view = json_of(dir, &["run", "timed.flow", "--input", &format!("request={id}.json"), "--as", "carl"], 0);
    assert_eq!(view["status"], "pending", "{view}");
    view["run"].as_str().unwrap().to_owned()
}

on_every_store! {
    /// Timers are kept in the store with their runs: a scheduler killed with `kill -9` loses
    /// none; `flowc tick` fires each once, two of them at once on one store included; and
    /// `flowc serve` fires them itself.
    fn deadlines_fire_once_from_the_store_whoever_ticks(dir) {
        std::fs::write(dir.join("timed.flow"), TIMED).unwrap();
        let began = std::time::Instant::now();
        let run = start_timed(&dir, "T1");
        let pending = json_of(&dir, &["pending"], 0);
        assert!(pending["pending"][0]["next_timer"].is_string(), "{pending}");
        assert_eq!(json_of(&dir, &["tick"], 0), json!({"runs": []}), "nothing is due yet");
        // A server, the scheduler, killed before a timer falls due.
        let mut server = serve_quietly(&dir);
        std::thread::sleep(std::time::Duration::from_millis(300));
        server.kill().unwrap();
        server.wait().unwrap();
        // Past both deadlines, two ticks at once: the escalation and the deadline fire once.
        std::thread::sleep(std::time::Duration::from_millis(4_500).saturating_sub(began.elapsed()));
        let ticks: Vec<Json> = std::thread::scope(|scope| {
            let ticking: Vec<_> = (0..2).map(|_| scope.spawn(|| json_of(&dir, &["tick"], 0))).collect();
            ticking.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let fired: u64 = ticks
            .iter()
            .flat_map(|t| t["runs"].as_array().cloned().unwrap_or_default())
            .map(|r| r["fired"].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(fired, 2, "{ticks:?}");
        assert_eq!(status(&dir, &run), "completed");
        let shown = show(&dir, &run, "aud");
        assert!(shown.contains("ESCALATED to director"), "{shown}");
        assert!(shown.contains("decided not_ok (no_answer) by its deadline"), "{shown}");
        evidence_verifies(&dir, &run);

        // A server fires the timers of the runs on its store by itself.
        let later = start_timed(&dir, "T2");
        let mut server = serve_quietly(&dir);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while status(&dir, &later) != "completed" && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        server.kill().unwrap();
        server.wait().unwrap();
        assert_eq!(status(&dir, &later), "completed", "the server fired no timer");
    }
}

const WATCHED: &str = r#"
role clerk
role auditor

type Request {
  id: Text
  stale: Bool
}

flow watched {
  version "1.0.0"
  owner clerk
  steward clerk
  input request: Request
  output done: Bool

  access {
    trigger by clerk
  }

  gate stale: block when request.stale
  emit done = true

  monitor stale_data: blocked(stale) over 1h above 40%
    severity high
    to governance, auditor
  monitor volume: runs over 1h below 100
    severity low
    to platform
}
"#;

/// Starts a run of `watched.flow`, its data stale or not.
fn start_watched(dir: &Path, id: &str, stale: bool) {
    std::fs::write(dir.join(format!("{id}.json")), json!({ "id": id, "stale": stale }).to_string()).unwrap();
    let view = json_of(dir, &["run", "watched.flow", "--input", &format!("request={id}.json"), "--as", "carl"], 0);
    assert_eq!(view["status"], if stale { "blocked" } else { "completed" }, "{view}");
}

/// Adds `n` to the first minute's count of a monitor series in the deployment's store, as
/// someone who can write the store would.
fn add_to_count(dir: &Path, series: &str, n: i64) {
    match store_url(dir) {
        Some(url) => {
            let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
            let changed = client
                .execute(
                    "UPDATE flow_monitor_counts SET counted = counted + $1 WHERE series = $2 \
                     AND minute = (SELECT min(minute) FROM flow_monitor_counts WHERE series = $2)",
                    &[&n, &series],
                )
                .unwrap();
            assert_eq!(changed, 1);
        }
        None => {
            let db = rusqlite::Connection::open(dir.join(".flow/runs.db")).unwrap();
            let changed = db
                .execute(
                    "UPDATE monitor_counts SET counted = counted + ?1 WHERE series = ?2 \
                     AND minute = (SELECT min(minute) FROM monitor_counts WHERE series = ?2)",
                    rusqlite::params![n, series],
                )
                .unwrap();
            assert_eq!(changed, 1);
        }
    }
}

/// The alert notices queued for each endpoint: (endpoint, type, monitor).
fn alert_notices(dir: &Path) -> Vec<(String, String, String)> {
    let listed = json_of(dir, &["webhooks"], 0);
    let mut out: Vec<(String, String, String)> = listed["notices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["type"].as_str().unwrap().starts_with("alert."))
        .map(|n| {
            let monitor = n["id"].as_str().unwrap().split('/').nth(1).unwrap_or_default().to_owned();
            (n["endpoint"].as_str().unwrap().to_owned(), n["type"].as_str().unwrap().to_owned(), monitor)
        })
        .collect();
    out.sort();
    out
}

on_every_store! {
    /// `flowc monitor` raises an alert when a monitor's condition holds, once, queues its
    /// notices for the endpoints of its routes only, and resolves it when the condition
    /// clears; `flowc serve` evaluates by itself; the monitors export as Prometheus rules.
    fn monitors_alert_the_routes_of_the_deployment_and_clear(dir) {
        std::fs::write(dir.join("watched.flow"), WATCHED).unwrap();
        let mut config = std::fs::read_to_string(dir.join("flow.toml")).unwrap();
        config.push_str(
            "\n[webhooks.desk]\nurl = \"http://127.0.0.1:9/flow\"\nsecret_env = \"FLOW_WEBHOOK_SECRET\"\n\
             routes = [\"governance\"]\n\n[webhooks.pager]\nurl = \"http://127.0.0.1:9/flow\"\n\
             secret_env = \"FLOW_WEBHOOK_SECRET\"\nroutes = [\"platform\"]\nevents = [\"run.ended\"]\n",
        );
        std::fs::write(dir.join("flow.toml"), config).unwrap();
        start_watched(&dir, "S1", true);
        let first = json_of(&dir, &["monitor"], 0);
        let raised: Vec<&str> = first["raised"].as_array().unwrap().iter().map(|a| a["monitor"].as_str().unwrap()).collect();
        assert_eq!(raised, ["stale_data", "volume"], "{first}");
        let stale = first["monitors"].as_array().unwrap().iter().find(|m| m["monitor"] == "stale_data").unwrap();
        assert_eq!((stale["counted"].clone(), stale["of"].clone(), stale["value"].clone()), (json!(1), json!(1), json!("100% (1 of 1)")));
        // Evaluated again, nothing new is raised.
        let again = json_of(&dir, &["monitor"], 0);
        assert_eq!(again["raised"], json!([]), "{again}");
        // The counts agree with the evidence, until someone who can write the store adds one.
        let audit = flowc(&dir, &["monitor", "--recount"]);
        assert!(audit.status.success(), "{}", text(&audit));
        assert!(text(&audit).contains("agree with the evidence of every stored run"), "{}", text(&audit));
        add_to_count(&dir, "runs", 5);
        let audit = flowc(&dir, &["monitor", "--recount", "--format", "json"]);
        assert_eq!(audit.status.code(), Some(1), "{}", text(&audit));
        let found: Json = serde_json::from_slice(&audit.stdout).unwrap();
        assert_eq!(
            found["differ"],
            json!([{"flow": "watched", "series": "runs", "stored": [6, 0], "recounted": [1, 0]}]),
            "{found}"
        );
        add_to_count(&dir, "runs", -5);
        // The governance desk is told; the pager, which takes only `run.ended`, is not.
        assert_eq!(alert_notices(&dir), [("desk".to_owned(), "alert.raised".to_owned(), "stale_data".to_owned())]);
        // Fresh data brings the rate down to a third: the alert is resolved.
        start_watched(&dir, "S2", false);
        start_watched(&dir, "S3", false);
        let human = flowc(&dir, &["monitor"]);
        assert!(human.status.success(), "{}", text(&human));
        let shown = text(&human);
        assert!(shown.contains("watched / stale_data: blocked(stale) over 1h above 40% — 33.3333% (1 of 3): ok"), "{shown}");
        assert!(shown.contains("resolved watched/stale_data/"), "{shown}");
        assert!(shown.contains("watched / volume: runs over 1h below 100 — 3 runs: ALERT (low, to platform)"), "{shown}");
        // The pager takes the platform route, but not alerts: nobody is told of `volume`.
        assert!(shown.contains("  no webhook endpoint takes its routes (platform): its alerts are only stored"), "{shown}");
        let stale = first["monitors"].as_array().unwrap().iter().find(|m| m["monitor"] == "stale_data").unwrap();
        assert_eq!(stale["endpoints"], json!(["desk"]));
        assert_eq!(
            alert_notices(&dir),
            [
                ("desk".to_owned(), "alert.raised".to_owned(), "stale_data".to_owned()),
                ("desk".to_owned(), "alert.resolved".to_owned(), "stale_data".to_owned()),
            ]
        );
        // Stale again (3 of 5): the server raises a new alert by itself.
        start_watched(&dir, "S4", true);
        start_watched(&dir, "S5", true);
        let mut server = Command::new(env!("CARGO_BIN_EXE_flowc"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .current_dir(&dir)
            .env_remove("FLOW_STORE")
            .env("FLOW_WEBHOOK_SECRET", "a secret")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while alert_notices(&dir).len() < 3 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        server.kill().unwrap();
        server.wait().unwrap();
        assert_eq!(alert_notices(&dir).len(), 3, "the server raised no alert: {:?}", alert_notices(&dir));
        let open = json_of(&dir, &["monitor"], 0);
        assert_eq!(open["raised"], json!([]), "raised again: {open}");
        // The same conditions as Prometheus alerting rules.
        let rules = flowc(&dir, &["monitor", "--format", "prometheus-rules"]);
        let rules = text(&rules);
        assert!(rules.contains("alert: \"watched_stale_data\""), "{rules}");
        assert!(rules.contains(
            "expr: \"(max(increase(flow_monitor_counted_total{flow=\\\"watched\\\",series=\\\"blocked(stale)\\\"}[1h])) / max(increase(flow_monitor_of_total{flow=\\\"watched\\\",series=\\\"blocked(stale)\\\"}[1h]))) > 0.4\""
        ), "{rules}");
        assert!(rules.contains("routes: \"auditor,governance\""), "{rules}");
        assert!(
            rules.contains("(max(increase(flow_monitor_counted_total{flow=\\\"watched\\\",series=\\\"runs\\\"}[1h])) or vector(0)) < 100"),
            "{rules}"
        );
        // A newer version without the `volume` monitor: its open alert ends with it.
        std::fs::write(dir.join("watched.flow"), WATCHED.replace("1.0.0", "1.1.0").replace("monitor volume", "// monitor volume").replace("    severity low\n    to platform\n", "")).unwrap();
        start_watched(&dir, "S6", false);
        let withdrawn = json_of(&dir, &["monitor"], 0);
        let resolved: Vec<(&str, &str)> = withdrawn["resolved"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| (a["monitor"].as_str().unwrap(), a["cleared"].as_str().unwrap()))
            .collect();
        assert!(resolved.contains(&("volume", "the monitor is no longer declared")), "{withdrawn}");
        assert!(withdrawn["monitors"].as_array().unwrap().iter().all(|m| m["monitor"] != "volume"), "{withdrawn}");
    }
}
