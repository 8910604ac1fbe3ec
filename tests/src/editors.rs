//! The editor integration of `lsp/editors`: the VS Code extension's manifest, language
//! configuration and TextMate grammar are valid, agree with each other, and every pattern
//! of the grammar compiles (checked with Python's `re`, whose syntax these patterns share
//! with the Oniguruma engine editors use).

use std::path::PathBuf;

fn vscode() -> PathBuf {
    crate::tidy::root().join("lsp/editors/vscode")
}

fn read_json(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(vscode().join(name)).unwrap_or_default();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"))
}

#[test]
fn the_extension_declares_the_language_its_grammar_highlights() {
    let manifest = read_json("package.json");
    let language = &manifest["contributes"]["languages"][0];
    assert_eq!(language["id"], "flow");
    assert_eq!(language["extensions"], serde_json::json!([".flow"]));
    let grammar_entry = &manifest["contributes"]["grammars"][0];
    assert_eq!(grammar_entry["language"], "flow");
    let grammar = read_json(grammar_entry["path"].as_str().unwrap_or_default().trim_start_matches("./"));
    assert_eq!(grammar["scopeName"], grammar_entry["scopeName"]);
    read_json(language["configuration"].as_str().unwrap_or_default().trim_start_matches("./"));
    // Every `#name` the grammar includes is in its repository.
    let repository = grammar["repository"].as_object().cloned().unwrap_or_default();
    let text = grammar.to_string();
    for include in text.split("\"include\":\"#").skip(1) {
        let name = include.split('"').next().unwrap_or_default();
        assert!(repository.contains_key(name), "the grammar includes `#{name}`, which it does not define");
    }
    assert!(std::fs::read_to_string(vscode().join("extension.js")).is_ok_and(|t| t.contains("\"lsp\"")));
}

#[test]
fn every_pattern_of_the_grammar_compiles() {
    let script = r#"
import json, re, sys
grammar = json.load(open(sys.argv[1]))
count = 0
def walk(node):
    global count
    if isinstance(node, dict):
        for key in ("match", "begin", "end"):
            if key in node:
                re.compile(node[key]); count += 1
        for value in node.values():
            walk(value)
    elif isinstance(node, list):
        for value in node:
            walk(value)
walk(grammar)
print(count)
"#;
    let grammar = vscode().join("syntaxes/flow.tmLanguage.json");
    let output = std::process::Command::new("python3").arg("-c").arg(script).arg(&grammar).output();
    let output = output.expect("python3 runs (`.ci/run` installs it)");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let count: usize = String::from_utf8_lossy(&output.stdout).trim().parse().unwrap_or(0);
    assert!(count >= 15, "{count} patterns");
}
