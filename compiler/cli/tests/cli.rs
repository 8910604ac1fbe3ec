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
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
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
