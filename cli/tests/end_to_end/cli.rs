//! The `flowc` command line as scripts and editors use it: exit codes, output formats and
//! bad input, run as a real process.

#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flowc-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, contents).unwrap();
    path
}

fn flowc(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flowc")).args(args).current_dir(dir).env("NO_COLOR", "1").output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

const CLEAN: &str = "role clerk\nflow f {\n  version \"1.0.0\"\n  owner clerk\n  steward clerk\n}\n";
const BROKEN: &str = "role clerk\nfn total(a: Money[USD], b: Money[EUR]) -> Money[USD] = a + b\n";

#[test]
fn the_examples_check_clean() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let output = flowc(&examples, &["check", "."]);
    assert_eq!(output.status.code(), Some(0), "{}{}", stdout(&output), stderr(&output));
    assert!(stdout(&output).contains("no problems"), "{}", stdout(&output));
}

#[test]
fn errors_exit_1_and_are_rendered_on_the_right_line() {
    let dir = scratch("errors");
    write(&dir, "broken.flow", BROKEN);
    let output = flowc(&dir, &["check", "broken.flow"]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(text.contains("[E1009] Error: cannot add amounts in USD and EUR"), "{text}");
    assert!(text.contains("broken.flow:2:"), "{text}");
    assert!(!text.contains('\u{1b}'), "colour with NO_COLOR set: {text}");
}

#[test]
fn json_output_follows_the_contract() {
    let dir = scratch("json");
    write(&dir, "broken.flow", BROKEN);
    let output = flowc(&dir, &["check", "--format", "json", "broken.flow"]);
    assert_eq!(output.status.code(), Some(1));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let diagnostics = value["diagnostics"].as_array().unwrap();
    assert_eq!(diagnostics.len(), 1);
    let d = &diagnostics[0];
    assert_eq!(d["code"], "E1009");
    assert_eq!(d["severity"], "error");
    assert_eq!(d["file"], "broken.flow");
    assert_eq!(d["range"]["start"], serde_json::json!({ "line": 2, "column": 58 }));
    assert_eq!(d["range"]["end"], serde_json::json!({ "line": 2, "column": 59 }));
    assert!(d["message"].as_str().unwrap().contains("USD and EUR"));
    assert!(d["help"].is_string());
    let labels = d["labels"].as_array().unwrap();
    assert_eq!(labels.len(), 2);
    assert_eq!(labels[0]["file"], "broken.flow");
    assert!(labels[0]["range"]["start"]["line"].is_number());
    assert!(labels[0]["message"].is_string());
}

#[test]
fn sarif_output_is_sarif_2_1_0() {
    let dir = scratch("sarif");
    write(&dir, "broken.flow", BROKEN);
    let output = flowc(&dir, &["check", "--format", "sarif", "broken.flow"]);
    assert_eq!(output.status.code(), Some(1));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(value["version"], "2.1.0");
    let run = &value["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "flowc");
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    assert!(rules.iter().any(|r| r["id"] == "E1009" && r["name"] == "currency-mismatch"));
    let result = &run["results"][0];
    assert_eq!(result["ruleId"], "E1009");
    assert_eq!(result["level"], "error");
    let index = result["ruleIndex"].as_u64().unwrap() as usize;
    assert_eq!(rules[index]["id"], "E1009");
    let location = &result["locations"][0]["physicalLocation"];
    assert_eq!(location["artifactLocation"]["uri"], "broken.flow");
    assert_eq!(location["region"]["startLine"], 2);
    assert_eq!(result["relatedLocations"].as_array().unwrap().len(), 2);
}

#[test]
fn warnings_pass_unless_strict() {
    let dir = scratch("strict");
    write(&dir, "main.flow", "import \"other.flow\"\nrole clerk\n");
    write(&dir, "other.flow", "role manager\n");
    let output = flowc(&dir, &["check", "main.flow"]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert!(stdout(&output).contains("[W1001] Warning"), "{}", stdout(&output));
    let output = flowc(&dir, &["check", "--strict", "--format", "json", "main.flow"]);
    assert_eq!(output.status.code(), Some(1));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(value["diagnostics"][0]["severity"], "error");
}

#[test]
fn directories_are_searched_and_imports_followed() {
    let dir = scratch("dirs");
    write(&dir, "flows/a.flow", CLEAN);
    write(&dir, "flows/nested/b.flow", "import \"../../lib/roles.flow\"\nrole lead extends clerk\n");
    write(&dir, "lib/roles.flow", "role clerk\n");
    write(&dir, "flows/notes.txt", "not a flow");
    let output = flowc(&dir, &["check", "flows"]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert!(stdout(&output).contains("checked 3 files"), "{}", stdout(&output));
}

#[test]
fn explain_prints_the_explanation() {
    let dir = scratch("explain");
    for code in ["E1002", "type-mismatch", "e1002"] {
        let output = flowc(&dir, &["explain", code]);
        assert_eq!(output.status.code(), Some(0));
        let text = stdout(&output);
        assert!(text.starts_with("E1002 (type-mismatch)"), "{text}");
        assert!(text.contains("```flow,E1002") && text.contains("## Corrected example"), "{text}");
    }
    let output = flowc(&dir, &["explain", "--format", "json", "W1001"]);
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(value["name"], "unused-import");
    assert_eq!(value["severity"], "warning");
    let output = flowc(&dir, &["explain", "E9999"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("no diagnostic code `E9999`"), "{}", stderr(&output));
}

#[test]
fn usage_and_environment_errors_exit_2() {
    let dir = scratch("usage");
    let output = flowc(&dir, &["check", "missing.flow"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("cannot read `missing.flow`"), "{}", stderr(&output));
    assert_eq!(flowc(&dir, &["check"]).status.code(), Some(2));
    assert_eq!(flowc(&dir, &["frobnicate"]).status.code(), Some(2));
    assert_eq!(flowc(&dir, &["check", "--format", "yaml", "x.flow"]).status.code(), Some(2));
}

#[test]
fn bad_input_gives_diagnostics_not_crashes() {
    let dir = scratch("bad");
    write(&dir, "binary.flow", [0u8, 159, 146, 150, 255, 0, 1, 2]);
    write(&dir, "garbage.flow", "\u{0}\u{7}}}{{ ))) flow flow {{ let");
    write(&dir, "deep.flow", format!("fn f() -> Int = {}1{}\n", "(".repeat(10_000), ")".repeat(10_000)));
    write(
        &dir,
        "deep_ifs.flow",
        format!("fn f() -> Int = {}1{}\n", "if true then ".repeat(10_000), " else 2".repeat(10_000)),
    );
    write(&dir, "unterminated.flow", "flow f {\n  let x = \"never closed\n");
    write(&dir, "imports_dir.flow", "import \"sub\"\n");
    write(&dir, "sub/x.flow", "role clerk\n");
    for (file, code) in [
        ("binary.flow", "E0002"),
        ("garbage.flow", "E0001"),
        ("deep.flow", "E0006"),
        ("deep_ifs.flow", "E0006"),
        ("unterminated.flow", "E0003"),
        ("imports_dir.flow", "E1004"),
    ] {
        let output = flowc(&dir, &["check", file]);
        assert_eq!(output.status.code(), Some(1), "{file}: {}{}", stdout(&output), stderr(&output));
        assert!(stdout(&output).contains(&format!("[{code}]")), "{file}: {}", stdout(&output));
    }
}

#[test]
fn a_very_long_line_is_checked() {
    // 10 MB with `RUN_SLOW_TESTS=1`, 2 MB otherwise.
    let size = if std::env::var_os("RUN_SLOW_TESTS").is_some() { 10_000_000 } else { 2_000_000 };
    let dir = scratch("long");
    let mut line = String::with_capacity(size + 32);
    let mut n = 0;
    while line.len() < size {
        line.push_str(&format!("label l{n} "));
        n += 1;
    }
    write(&dir, "long.flow", &line);
    let output = flowc(&dir, &["check", "long.flow"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    line.push_str("%%%");
    write(&dir, "long.flow", &line);
    let output = flowc(&dir, &["check", "long.flow"]);
    assert_eq!(output.status.code(), Some(1));
}

/// A small flow with a threshold, a review that may edit, an approval and an action.
const PURCHASE: &str = r#"role clerk
role manager
type Request { id: Text, amount: Money[USD], requester: Principal }
type Order { number: Text }
system erp { action order(request: Request) -> Order }
/// Purchases.
flow purchase {
  version "1.0.0"
  owner manager
  steward manager
  input request: Request
  output accepted: Bool
  /// Above this, a manager signs.
  param limit: Money[USD] = 1_000 USD
  gate huge: block when request.amount > 1_000_000 USD
  approval sign {
    when request.amount < limit => auto
    otherwise => 2 of manager
    distinct from request.requester
  }
  action place = erp.order(request) when sign.approved idempotency request.id
  emit accepted = sign.approved
}
"#;

fn hash_line(text: &str) -> String {
    text.lines().find_map(|l| l.strip_prefix("hash ")).unwrap_or_default().to_owned()
}

#[test]
fn build_writes_a_plan_and_prints_its_hash() {
    let dir = scratch("build");
    write(&dir, "purchase.flow", PURCHASE);
    let output = flowc(&dir, &["build", "purchase.flow"]);
    assert_eq!(output.status.code(), Some(0), "{}{}", stdout(&output), stderr(&output));
    let hash = hash_line(&stdout(&output));
    assert!(hash.starts_with("blake3:") && hash.len() == 71, "{}", stdout(&output));
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("purchase.plan.json")).unwrap()).unwrap();
    assert_eq!(plan["hash"], hash.as_str());
    assert_eq!(plan["format_version"], 1);
    // Reformatted and with other doc comments, the flow builds to the same plan hash.
    write(&dir, "reformatted.flow", PURCHASE.replace("  ", "    ").replace("/// Purchases.", "/// Purchase requests."));
    let output = flowc(&dir, &["build", "reformatted.flow", "-o", "other.json", "--format", "json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(value["hash"], hash.as_str());
    assert_eq!(value["plan"], "other.json");
    assert_eq!(value["flow"], "purchase");
    // `-o -` writes the plan to standard output.
    let output = flowc(&dir, &["build", "purchase.flow", "-o", "-"]);
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(plan["hash"], hash.as_str());
    assert!(stderr(&output).contains(&hash));
}

/// An output path that is not a regular file (a device, a named pipe) is written to, not
/// replaced by a file renamed over it (`flowc build -o /dev/null` once turned the machine's
/// `/dev/null` into a plan). Tested on a named pipe of its own, read as the plan is written.
#[cfg(unix)]
#[test]
fn build_writes_into_a_pipe_instead_of_replacing_it() {
    use std::os::unix::fs::FileTypeExt;
    let dir = scratch("build-pipe");
    write(&dir, "purchase.flow", PURCHASE);
    let pipe = dir.join("plan.pipe");
    let _ = std::fs::remove_file(&pipe);
    let made = Command::new("mkfifo").arg(&pipe).status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("no mkfifo here: skipped");
        return;
    }
    let reader = {
        let pipe = pipe.clone();
        std::thread::spawn(move || std::fs::read(pipe).unwrap_or_default())
    };
    let output = flowc(&dir, &["build", "purchase.flow", "-o", "plan.pipe"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(std::fs::metadata(&pipe).unwrap().file_type().is_fifo(), "the pipe was replaced by a file");
    let plan: serde_json::Value = serde_json::from_slice(&reader.join().unwrap()).unwrap();
    assert_eq!(plan["hash"], hash_line(&stdout(&output)).as_str());
}

#[test]
fn build_refuses_what_does_not_compile() {
    let dir = scratch("build-errors");
    write(&dir, "broken.flow", BROKEN);
    let output = flowc(&dir, &["build", "broken.flow"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("[E1009]"), "{}", stderr(&output));
    assert!(!dir.join("broken.plan.json").exists());
    let output = flowc(&dir, &["build", "broken.flow", "--format", "json"]);
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(value["diagnostics"][0]["code"], "E1009");
    // Two flows need `--flow`; an unknown one is a usage error.
    write(&dir, "two.flow", format!("{CLEAN}flow g {{\n  version \"1.0.0\"\n  owner clerk\n  steward clerk\n}}\n"));
    let output = flowc(&dir, &["build", "two.flow"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("several flows (`f`, `g`)"), "{}", stderr(&output));
    assert_eq!(flowc(&dir, &["build", "two.flow", "--flow", "g"]).status.code(), Some(0));
    assert_eq!(flowc(&dir, &["build", "two.flow", "--flow", "h"]).status.code(), Some(2));
    assert_eq!(flowc(&dir, &["build", "missing.flow"]).status.code(), Some(2));
    assert_eq!(flowc(&dir, &["build", "notes.txt"]).status.code(), Some(2));
}

#[test]
fn principals_decide_separation_of_duties() {
    let dir = scratch("principals");
    write(&dir, "purchase.flow", PURCHASE);
    write(&dir, "few.toml", "[principals]\nana = [\"manager\"]\nmax = [\"manager\"]\n");
    write(&dir, "enough.toml", "[principals]\nana = [\"manager\"]\nmax = [\"manager\"]\nfin = [\"manager\"]\n");
    write(&dir, "bad.toml", "[principals\nana = 1\n");
    let output = flowc(&dir, &["check", "--principals", "few.toml", "purchase.flow"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).contains("[E2019]"), "{}", stdout(&output));
    assert!(stdout(&output).contains("purchase.flow:18:"), "{}", stdout(&output));
    assert_eq!(flowc(&dir, &["check", "--principals", "enough.toml", "purchase.flow"]).status.code(), Some(0));
    let output = flowc(&dir, &["build", "--principals", "few.toml", "purchase.flow"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(!dir.join("purchase.plan.json").exists());
    let output = flowc(&dir, &["check", "--principals", "bad.toml", "purchase.flow"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("the principals file `bad.toml` is not valid"), "{}", stderr(&output));
}

#[test]
fn check_reports_the_proofs_on_the_plan() {
    let dir = scratch("proofs");
    write(&dir, "constant.flow", CLEAN.replace("}\n", "  input n: Int\n  let ten = 10\n}\n"));
    let output = flowc(&dir, &["check", "constant.flow"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).contains("[E2017]"), "{}", stdout(&output));
    let silent = r#"role clerk
type Score { value: Int }
model scorer {
  provider "command"
  name "scorer"
  version "1.0.0"
  digest "sha256:96d3e8cfedcdcb10918e684c95cc496132433eeac08daf45d03e618becd72825"
  input (amount: Int)
  output Score
}
flow scoring {
  version "1.0.0"
  owner clerk
  steward clerk
  input amount: Int
  output total: Int
  infer s = scorer(amount: amount) fallback Score { value: 0 }
  emit total = s.value
}
"#;
    write(&dir, "silent.flow", silent);
    let output = flowc(&dir, &["check", "silent.flow"]);
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout(&output).contains("[W2002] Warning"), "{}", stdout(&output));
    assert_eq!(flowc(&dir, &["check", "--strict", "silent.flow"]).status.code(), Some(1));
    assert_eq!(flowc(&dir, &["build", "--strict", "silent.flow"]).status.code(), Some(1));
    assert_eq!(flowc(&dir, &["build", "silent.flow"]).status.code(), Some(0));
}

#[test]
fn graph_draws_flows_and_plans() {
    let dir = scratch("graph");
    write(&dir, "purchase.flow", PURCHASE);
    let output = flowc(&dir, &["graph", "purchase.flow"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let dot = stdout(&output);
    assert!(dot.starts_with("digraph \"purchase\" {") && dot.contains("\"huge\" -> \"place\" [style=dashed"), "{dot}");
    let output = flowc(&dir, &["graph", "purchase.flow", "--format", "mermaid", "--layer", "governance"]);
    let mermaid = stdout(&output);
    assert!(mermaid.starts_with("flowchart TD"), "{mermaid}");
    assert!(mermaid.contains("n_huge -.->|guards| n_place") && mermaid.contains(":::gate_block"), "{mermaid}");
    assert!(!mermaid.contains("n_request"), "the governance layer shows no inputs: {mermaid}");
    let output = flowc(&dir, &["graph", "purchase.flow", "--layer", "runtime"]);
    assert!(stdout(&output).contains("label=\"stage 1\""), "{}", stdout(&output));
    // A plan file draws the same graph.
    assert_eq!(flowc(&dir, &["build", "purchase.flow"]).status.code(), Some(0));
    assert_eq!(stdout(&flowc(&dir, &["graph", "purchase.plan.json"])), dot);
}

#[test]
fn verify_checks_a_plan_file_and_shows_it() {
    let dir = scratch("verify");
    write(&dir, "purchase.flow", PURCHASE);
    let built = flowc(&dir, &["build", "purchase.flow"]);
    let hash = hash_line(&stdout(&built));
    let output = flowc(&dir, &["verify", "purchase.plan.json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).starts_with("verified plan of flow `purchase` 1.0.0"), "{}", stdout(&output));
    assert_eq!(hash_line(&stdout(&output)), hash);
    let output = flowc(&dir, &["verify", "--format", "json", "purchase.plan.json"]);
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(value["verified"], true);
    assert_eq!(value["hash"], hash.as_str());
    let output = flowc(&dir, &["verify", "--dump", "purchase.plan.json"]);
    assert!(stdout(&output).contains("gate huge: block when request.amount > 1_000_000 USD"), "{}", stdout(&output));
    assert_eq!(flowc(&dir, &["verify", "missing.json"]).status.code(), Some(2));
}

/// A plan whose labels were taken off after it was compiled verifies as a graph, but not as
/// a plan the runtime would load.
#[test]
fn verify_refuses_a_plan_whose_labels_were_removed() {
    let dir = scratch("unlabelled");
    write(
        &dir,
        "letters.flow",
        r#"label pii
role clerk
type Person { name: Text @pii }
type Letter { to: Text @pii }
flow letters {
  version "1.0.0"
  owner clerk
  steward clerk
  input person: Person
  output letter: Letter
  access {
    trigger by clerk
    view pii by clerk
  }
  emit letter = Letter { to: person.name }
}
"#,
    );
    assert_eq!(flowc(&dir, &["build", "letters.flow"]).status.code(), Some(0));
    let text = std::fs::read_to_string(dir.join("letters.plan.json")).unwrap();
    let mut plan: flow_ir::Plan = serde_json::from_str(&text).unwrap();
    for record in plan.plan.records.iter_mut().filter(|r| r.name == "Letter") {
        record.fields.iter_mut().for_each(|f| f.labels.clear());
    }
    plan.hash = flow_ir::encode::content_hash(plan.format_version, &plan.language_version, &plan.plan);
    write(&dir, "unlabelled.json", flow_ir::encode::to_json(&plan));
    assert!(flow_ir::load(flow_ir::encode::to_json(&plan).as_bytes()).is_ok(), "the graph verifies");
    let output = flowc(&dir, &["verify", "unlabelled.json"]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert!(
        stderr(&output).contains("`letter` puts pii data into field `to` of `Letter`, which is not labelled so"),
        "{}",
        stderr(&output)
    );
    let output = flowc(&dir, &["verify", "--format", "json", "unlabelled.json"]);
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(value["verified"], false);
    assert_eq!(value["problems"].as_array().map(Vec::len), Some(1), "{value}");
    assert_eq!(flowc(&dir, &["verify", "letters.plan.json"]).status.code(), Some(0));
}

#[test]
fn damaged_plans_are_refused_with_what_failed() {
    let dir = scratch("damaged");
    write(&dir, "purchase.flow", PURCHASE);
    assert_eq!(flowc(&dir, &["build", "purchase.flow"]).status.code(), Some(0));
    let plan = std::fs::read_to_string(dir.join("purchase.plan.json")).unwrap();
    write(&dir, "edited.json", plan.replacen("1000000 USD", "2000000 USD", 1));
    write(&dir, "truncated.json", &plan[..plan.len() / 2]);
    write(&dir, "garbage.json", [0xffu8, 0xfe, 0x00, b'{']);
    write(&dir, "deep.json", format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)));
    let nested = format!(
        "{}{}",
        plan.replacen("[\"node\",\"request\"]", &format!("{}[\"node\",\"request\"]", "[\"not\",".repeat(5_000)), 1),
        ""
    );
    write(
        &dir,
        "nested.json",
        nested.replacen("[\"node\",\"request\"]", &format!("[\"node\",\"request\"]{}", "]".repeat(5_000)), 1),
    );
    for (file, code) in [
        ("edited.json", "E2103"),
        ("truncated.json", "E2101"),
        ("garbage.json", "E2101"),
        ("deep.json", "E2101"),
        ("nested.json", "E2101"),
    ] {
        for command in ["graph", "diff"] {
            let args: Vec<&str> =
                if command == "graph" { vec!["graph", file] } else { vec!["diff", "purchase.plan.json", file] };
            let output = flowc(&dir, &args);
            assert_eq!(output.status.code(), Some(1), "{command} {file}: {}", stderr(&output));
            assert!(stderr(&output).contains(&format!("[{code}]")), "{command} {file}: {}", stderr(&output));
            assert!(stderr(&output).contains("is refused"), "{}", stderr(&output));
        }
    }
}

#[test]
fn diff_says_what_changed_and_whether_it_is_material() {
    let dir = scratch("diff");
    write(&dir, "old.flow", PURCHASE);
    write(
        &dir,
        "docs.flow",
        PURCHASE.replace("/// Above this, a manager signs.", "/// Above this amount, a manager signs."),
    );
    write(&dir, "new.flow", PURCHASE.replace("= 1_000 USD", "= 5_000 USD").replace("2 of manager", "1 of manager"));
    assert_eq!(flowc(&dir, &["build", "old.flow", "-o", "old.json"]).status.code(), Some(0));
    let output = flowc(&dir, &["diff", "old.json", "old.flow"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).ends_with("no change\n"), "{}", stdout(&output));
    let output = flowc(&dir, &["diff", "old.json", "docs.flow"]);
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout(&output).contains("description of `node:limit`: changed (not material)"), "{}", stdout(&output));
    assert!(stdout(&output).ends_with("no material change\n"), "{}", stdout(&output));
    let output = flowc(&dir, &["diff", "old.json", "new.flow"]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("param `limit`: default 1,000 USD → 5,000 USD"), "{text}");
    assert!(text.contains("matrix `sign`: row 2 now requires 1 of manager (was 2 of manager)"), "{text}");
    assert!(text.ends_with("material change: the flow must be approved again\n"), "{text}");
    let output = flowc(&dir, &["diff", "--format", "json", "old.flow", "new.flow"]);
    assert_eq!(output.status.code(), Some(3));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(value["material"], true);
    assert_eq!(value["changes"].as_array().unwrap().len(), 2);
    assert_eq!(flowc(&dir, &["diff", "old.json", "missing.json"]).status.code(), Some(2));
    write(&dir, "broken.flow", BROKEN);
    assert_eq!(flowc(&dir, &["diff", "old.json", "broken.flow"]).status.code(), Some(1));
}
