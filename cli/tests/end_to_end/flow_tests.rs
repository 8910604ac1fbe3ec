//! `flowc test`: the `test` blocks of a flow run through the runtime, with failures,
//! the path each failing run took, coverage, and the output formats.

#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value as Json;

/// The loan flow of the run tests, with `tests` appended, in a fresh directory.
fn with_tests(name: &str, tests: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flowc-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let flow = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/runs/loan.flow")).unwrap();
    std::fs::write(dir.join("loan.flow"), format!("{flow}\n{tests}")).unwrap();
    dir
}

fn flowc(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flowc")).args(args).current_dir(dir).env("NO_COLOR", "1").output().unwrap()
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

const REQUEST: &str = r#"given request = Request {
    id: "R1", requester: "carl", amount: amount, note: "n", updated_at: @2026-11-30T08:00:00Z,
  }"#;

/// Two tests, one with two examples: a small request booked without anyone; a doubtful
/// score reviewed, then (for a large amount) approved by a manager.
fn passing() -> String {
    format!(
        r#"
test "a small request is booked without anyone" {{
  at @2026-11-30T12:00:00Z
  {}
  model scorer returns Score {{ tier: Tier.low, confidence: 0.9 }}
  action booking returns Receipt {{ number: "L-1" }}
  expect outcome completed
  expect gate notable passed
  expect action booking ran
  expect decision.approved and decision.tier == Tier.low
  expect is_present(booking) and not degraded(score)
}}

test "a doubtful score is reviewed" {{
  at @2026-11-30T12:00:00Z
  {}
  model scorer returns Score {{ tier: Tier.low, confidence: 0.5 }}
  action booking returns Receipt {{ number: "L-2" }}
  decide check by max as manager: approve because ok
  expect check.outcome == approve
  expect big == large
  examples {{
    {{ amount: 700 USD, large: false }}
    {{ amount: 6_000 USD, large: true }}
  }}
}}
"#,
        REQUEST.replace("amount: amount", "amount: 300 USD"),
        REQUEST
    )
}

#[test]
fn passing_tests_report_ok_and_the_coverage_of_branches() {
    let dir = with_tests("pass", &passing());
    let output = flowc(&dir, &["test", "loan.flow"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let shown = text(&output);
    for line in [
        "ok      a small request is booked without anyone (loan)",
        "ok      a doubtful score is reviewed (example 1) (loan)",
        "ok      a doubtful score is reviewed (example 2) (loan)",
        "3 tests: 3 passed, 0 failed",
        "never: gate `embargo` held",
        "never: review `check` reject",
    ] {
        assert!(shown.contains(line), "{line}\n{shown}");
    }
    // 15 branches: 4 gates × 2, 4 approval rows, review skipped/approve/reject. Covered:
    // every gate passed, `notable` held, rows 1 and 2, review skipped and approve.
    assert!(shown.contains("coverage of flow `loan` (loan.flow): 9 of 15 branches"), "{shown}");
    assert!(shown.contains("coverage: 60.0%"), "{shown}");

    let json: Json = serde_json::from_slice(&flowc(&dir, &["test", "loan.flow", "--format", "json"]).stdout).unwrap();
    assert_eq!((json["passed"].as_u64(), json["failed"].as_u64()), (Some(3), Some(0)), "{json}");
    assert_eq!(json["coverage"]["percent"], 60.0, "{json}");
    assert_eq!(json["coverage"]["flows"][0]["covered"], 9, "{json}");

    // Below a coverage floor, the run fails.
    let floor = flowc(&dir, &["test", "loan.flow", "--min-coverage", "80"]);
    assert_eq!(floor.status.code(), Some(1), "{}", text(&floor));
    assert!(text(&floor).contains("coverage: 60.0%, below the minimum of 80%"), "{}", text(&floor));
    assert_eq!(flowc(&dir, &["test", ".", "--min-coverage", "60"]).status.code(), Some(0));
}

/// A condition on a step the run has not reached (it waits for a review no one decided)
/// fails the test with where the run stands, not as an error of the runtime.
#[test]
fn a_condition_on_a_step_not_reached_says_the_run_has_not_reached_it() {
    let tests = format!(
        r#"
test "the review is left waiting" {{
  at @2026-11-30T12:00:00Z
  {}
  model scorer returns Score {{ tier: Tier.low, confidence: 0.5 }}
  expect check.outcome == approve
}}
"#,
        REQUEST.replace("amount: amount", "amount: 700 USD")
    );
    let dir = with_tests("unreached", &tests);
    let output = flowc(&dir, &["test", "loan.flow"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let shown = text(&output);
    assert!(shown.contains("it reads `check`, which the run has not reached (it is pending)"), "{shown}");
    assert!(!shown.contains("internal error"), "{shown}");
}

#[test]
fn a_failing_test_shows_what_differs_and_the_path_the_run_took() {
    let tests = passing()
        .replace("  expect big == large\n", "  expect gate notable held\n")
        .replace("expect outcome completed", "expect outcome pending");
    let dir = with_tests("fail", &tests);
    let output = flowc(&dir, &["test", "loan.flow"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let shown = text(&output);
    assert!(shown.contains("FAILED  a small request is booked without anyone (loan) at loan.flow:"), "{shown}");
    assert!(shown.contains("expected the run pending, but it is completed"), "{shown}");
    // The first example's amount is below the limit: `notable` passed.
    assert!(shown.contains("FAILED  a doubtful score is reviewed (example 1)"), "{shown}");
    assert!(shown.contains("expected gate `notable` held, but it passed"), "{shown}");
    assert!(shown.contains("ok      a doubtful score is reviewed (example 2)"), "{shown}");
    for step in
        ["gate `notable` passed", "review `check` decided approve by max", "approval `sign` approved (row 1: auto)"]
    {
        assert!(shown.contains(step), "{step}\n{shown}");
    }
    assert!(shown.contains("3 tests: 1 passed, 2 failed"), "{shown}");

    let xml = String::from_utf8(flowc(&dir, &["test", "loan.flow", "--format", "junit"]).stdout).unwrap();
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert!(xml.contains(r#"<testsuite name="loan" file="loan.flow" tests="3" failures="2">"#), "{xml}");
    assert!(xml.contains(r#"<testcase name="a doubtful score is reviewed (example 2)" classname="loan"/>"#), "{xml}");
    assert!(xml.contains("<failure message=\"loan.flow:"), "{xml}");
}

#[test]
fn decisions_out_of_order_or_refused_and_actions_without_results_fail_with_why() {
    let tests = format!(
        r#"
test "decided too early" {{
  {}
  model scorer returns Score {{ tier: Tier.high, confidence: 0.9 }}
  decide sign by dora as director: approve because fine
  decide check by max as manager: approve because ok
}}

test "a requester may not approve" {{
  {}
  model scorer returns Score {{ tier: Tier.low, confidence: 0.9 }}
  decide sign by carl as manager: approve because fine
}}

test "a booking without a result" {{
  {}
  model scorer returns Score {{ tier: Tier.low, confidence: 0.9 }}
  expect outcome failed
}}
"#,
        REQUEST.replace("amount: amount", "amount: 6_000 USD"),
        REQUEST.replace("amount: amount", "amount: 6_000 USD"),
        REQUEST.replace("amount: amount", "amount: 100 USD"),
    );
    let dir = with_tests("order", &tests);
    let output = flowc(&dir, &["test", "loan.flow"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let shown = text(&output);
    // The requester is excluded by `distinct from`: the runtime refuses, as for anyone.
    assert!(shown.contains("FAILED  a requester may not approve"), "{shown}");
    assert!(shown.contains("`decide sign` (loan.flow:"), "{shown}");
    assert!(shown.contains("is refused"), "{shown}");
    assert!(
        shown.contains("action `booking` ran, but the test gives it no result: add `action booking returns …`"),
        "{shown}"
    );
    // A confident score skips the review: there is nothing to decide (`sign` waits on).
    assert!(shown.contains("`decide check` (loan.flow:"), "{shown}");
    assert!(shown.contains("step `check` is not waiting for it; the run is pending"), "{shown}");
}

#[test]
fn tests_with_mistakes_are_reported_as_compile_errors() {
    let dir = with_tests(
        "bad",
        r#"
test "typo" {
  given request = Request { id: 1, requester: "carl", amount: 1 USD, note: "n", updated_at: @2026-11-30T08:00:00Z }
  model scorer returns Score { tier: Tier.low }
  expect outcome finished
}
"#,
    );
    let output = flowc(&dir, &["test", "loan.flow"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let shown = text(&output);
    for expected in [
        "[E1002] Error: field `id` of `Request` must be `Text`, but this is `Int`",
        "[E1008] Error: `Score` is missing field `confidence`",
        "[E1013] Error: a run cannot end `finished`",
        "loan.flow:",
    ] {
        assert!(shown.contains(expected), "{expected}\n{shown}");
    }
    assert!(!shown.contains("tests:"), "no test runs when the file has errors\n{shown}");
    // A path with no test files is no error; a missing path is.
    assert_eq!(flowc(&dir, &["test", "missing.flow"]).status.code(), Some(2));
}

/// The examples' tests pass and cover every branch of every example.
#[test]
fn the_examples_tests_pass_and_cover_every_branch() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let output = flowc(&examples, &["test", ".", "--min-coverage", "100"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let json: Json = serde_json::from_slice(&flowc(&examples, &["test", ".", "--format", "json"]).stdout).unwrap();
    assert_eq!((json["failed"].as_u64(), json["coverage"]["percent"].as_f64()), (Some(0), Some(100.0)), "{json}");
    assert_eq!(json["coverage"]["flows"].as_array().map(Vec::len), Some(7), "{json}");
}

/// Copies a directory tree.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The CI recipe's script passes on the examples, writes SARIF and JUnit, and fails for a
/// file not formatted, a coverage floor not met, a change a test catches, and a flow whose
/// meaning changed since its plan was approved.
#[test]
fn the_ci_recipe_checks_tests_and_compares_approved_plans() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = std::env::temp_dir().join(format!("flowc-test-{}-ci", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_tree(&root.join("examples"), &dir.join("examples"));
    let script = root.join("examples/ci/check-flows.sh");
    let recipe = |args: &[&str]| {
        Command::new("bash")
            .arg(&script)
            .args(args)
            .current_dir(&dir)
            .env("FLOWC", env!("CARGO_BIN_EXE_flowc"))
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let approved = "examples/spend_approval.flow=examples/embed/spend_approval.plan.json";
    let passing = recipe(&["examples", "100", approved]);
    assert_eq!(passing.status.code(), Some(0), "{}", text(&passing));
    let sarif: Json = serde_json::from_slice(&std::fs::read(dir.join("flows.sarif")).unwrap()).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let junit = std::fs::read_to_string(dir.join("flow-tests.xml")).unwrap();
    assert!(junit.contains(r#"<testsuite name="spend_approval""#), "{junit}");

    // A flow with a branch no test reaches: below the floor.
    std::fs::write(
        dir.join("examples/extra.flow"),
        "import \"common/org.flow\"\nflow extra {\n  version \"1.0.0\"\n  owner manager\n  steward policy_steward\n  \
         input x: Int\n  output y: Int\n  access {\n    trigger by manager\n  }\n  gate big: info when x > 10\n  emit y = x\n}\n",
    )
    .unwrap();
    let floor = recipe(&["examples", "100", approved]);
    assert_eq!(floor.status.code(), Some(1), "{}", text(&floor));
    assert!(text(&floor).contains("below the minimum of 100%"), "{}", text(&floor));
    std::fs::remove_file(dir.join("examples/extra.flow")).unwrap();

    let flow = dir.join("examples/spend_approval.flow");
    let source = std::fs::read_to_string(&flow).unwrap();
    // A file laid out otherwise than `flowc fmt` lays it out.
    std::fs::write(&flow, source.replacen("gate large: info when", "gate large:  info  when", 1)).unwrap();
    let unformatted = recipe(&["examples", "100", approved]);
    assert_eq!(unformatted.status.code(), Some(1), "{}", text(&unformatted));
    assert!(text(&unformatted).contains("would reformat examples/spend_approval.flow"), "{}", text(&unformatted));
    // A threshold the tests pin down: a test fails.
    std::fs::write(&flow, source.replacen("> 50_000 USD", "> 60_000 USD", 1)).unwrap();
    let tested = recipe(&["examples", "100", approved]);
    assert_eq!(tested.status.code(), Some(1), "{}", text(&tested));
    assert!(text(&tested).contains("expected gate `large` held, but it passed"), "{}", text(&tested));
    // One they do not: the plan differs from the approved one.
    std::fs::write(&flow, source.replacen("freshness 24h", "freshness 48h", 1)).unwrap();
    let changed = recipe(&["examples", "100", approved]);
    assert_eq!(changed.status.code(), Some(3), "{}", text(&changed));
    assert!(text(&changed).contains("vendor_master"), "{}", text(&changed));
}

/// `--snapshot`: missing snapshots fail until `--update` writes them; then a run that
/// takes another path fails with a diff, a snapshot of a test that is gone fails, and a
/// corrupt snapshot file is a diagnostic at its line.
#[test]
fn snapshots_record_each_trace_and_fail_on_any_difference() {
    let dir = with_tests("snap", &passing());
    let missing = flowc(&dir, &["test", "loan.flow", "--snapshot"]);
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing));
    assert!(text(&missing).contains("`loan.flow.snap` does not exist"), "{}", text(&missing));

    let update = flowc(&dir, &["test", "loan.flow", "--snapshot", "--update"]);
    assert_eq!(update.status.code(), Some(0), "{}", text(&update));
    assert!(text(&update).contains("wrote 3 snapshots to loan.flow.snap"), "{}", text(&update));
    let snap = std::fs::read_to_string(dir.join("loan.flow.snap")).unwrap();
    assert!(snap.starts_with("# flowc test snapshots of loan.flow"), "{snap}");
    assert!(snap.contains("## a doubtful score is reviewed (example 2)\n"), "{snap}");
    assert!(snap.contains("review `check` decided approve by max\n"), "{snap}");
    assert!(snap.contains("output decision = {"), "{snap}");
    let same = flowc(&dir, &["test", "loan.flow", "--snapshot"]);
    assert_eq!(same.status.code(), Some(0), "{}", text(&same));

    // Another limit: the second example's `big` and `notable` change, and its snapshot says so.
    let flow = std::fs::read_to_string(dir.join("loan.flow")).unwrap();
    let changed = flow.replace("expect big == large\n", "").replace("= 5_000 USD", "= 9_000 USD");
    std::fs::write(dir.join("loan.flow"), &changed).unwrap();
    let differs = flowc(&dir, &["test", "loan.flow", "--snapshot"]);
    assert_eq!(differs.status.code(), Some(1), "{}", text(&differs));
    let shown = text(&differs);
    assert!(
        shown.contains("the run differs from its snapshot in `loan.flow.snap` (- snapshot, + this run)"),
        "{shown}"
    );
    assert!(shown.contains("- gate `notable` held"), "{shown}");
    assert!(shown.contains("+ gate `notable` passed"), "{shown}");

    // A test that is gone leaves a stale snapshot.
    std::fs::write(dir.join("loan.flow"), flow.replace("test \"a small request", "test \"a renamed request")).unwrap();
    let stale = flowc(&dir, &["test", "loan.flow", "--snapshot"]);
    assert_eq!(stale.status.code(), Some(1), "{}", text(&stale));
    assert!(text(&stale).contains("has a snapshot of `a small request is booked without anyone`, which no test runs"));

    std::fs::write(dir.join("loan.flow.snap"), format!("{snap}\nstray\n## a doubtful score is reviewed (example 2)\n"))
        .unwrap();
    std::fs::write(dir.join("loan.flow"), &flow).unwrap();
    let corrupt = flowc(&dir, &["test", "loan.flow", "--snapshot"]);
    assert_eq!(corrupt.status.code(), Some(1), "{}", text(&corrupt));
    let shown = text(&corrupt);
    assert!(shown.contains("[E0001] Error: this snapshot file is corrupt: test run `a doubtful score is reviewed (example 2)` has two sections"), "{shown}");
    assert!(shown.contains("loan.flow.snap:"), "{shown}");
    assert!(shown.contains("flowc test --snapshot --update"), "{shown}");
}
