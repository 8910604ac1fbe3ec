//! `flowc lsp` and `flowc check` report the same diagnostics: same files, positions, codes
//! and messages, for the examples and the whole test corpus.

#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value as Json, json};

type Found = BTreeSet<(String, u64, u64, String, String)>;

fn flowc() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_flowc"));
    command.env("NO_COLOR", "1");
    command
}

fn check(dir: &Path) -> Found {
    let output = flowc().args(["check", "--format", "json"]).arg(dir).output().unwrap();
    let report: Json = serde_json::from_slice(&output.stdout).unwrap();
    report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let path = std::fs::canonicalize(d["file"].as_str().unwrap()).unwrap().display().to_string();
            (
                path,
                d["range"]["start"]["line"].as_u64().unwrap() - 1,
                d["range"]["start"]["column"].as_u64().unwrap() - 1,
                d["code"].as_str().unwrap().to_owned(),
                d["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn send(stdin: &mut impl Write, message: &Json) {
    flow_lsp::transport::write(stdin, message);
}

fn receive(reader: &mut impl BufRead) -> Json {
    match flow_lsp::transport::read(reader) {
        flow_lsp::transport::Incoming::Message(message) => message,
        other => panic!("the server sent no message: {other:?}"),
    }
}

/// What the server publishes when it opens `dir` as its workspace.
fn serve(dir: &Path) -> Found {
    let mut child = flowc().arg("lsp").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let root = format!("file://{}", dir.display());
    send(
        &mut stdin,
        &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"rootUri": root, "capabilities": {}}}),
    );
    let mut found = Found::new();
    // The workspace's diagnostics follow the answer to `initialize`; a second request marks
    // their end.
    while receive(&mut reader)["id"] != 1 {}
    send(&mut stdin, &json!({"jsonrpc": "2.0", "id": 2, "method": "workspace/symbol", "params": {"query": ""}}));
    loop {
        let message = receive(&mut reader);
        if message["id"] == 2 {
            break;
        }
        let uri = message["params"]["uri"].as_str().unwrap();
        let path = uri.strip_prefix("file://").unwrap().to_owned();
        for d in message["params"]["diagnostics"].as_array().unwrap() {
            let message = d["message"].as_str().unwrap();
            let message = message.split("\nhelp: ").next().unwrap().to_owned();
            found.insert((
                path.clone(),
                d["range"]["start"]["line"].as_u64().unwrap(),
                d["range"]["start"]["character"].as_u64().unwrap(),
                d["code"].as_str().unwrap().to_owned(),
                message,
            ));
        }
    }
    send(&mut stdin, &json!({"jsonrpc": "2.0", "id": 3, "method": "shutdown"}));
    while receive(&mut reader)["id"] != 3 {}
    send(&mut stdin, &json!({"jsonrpc": "2.0", "method": "exit"}));
    drop(stdin);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    found
}

#[test]
fn server_and_command_line_report_the_same_diagnostics() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut total = 0;
    for dir in ["examples", "tests/corpus/parse", "tests/corpus/check", "tests/corpus/lower"] {
        let dir = workspace.join(dir).canonicalize().unwrap();
        let (cli, server) = (check(&dir), serve(&dir));
        let only_cli: Vec<_> = cli.difference(&server).collect();
        let only_server: Vec<_> = server.difference(&cli).collect();
        assert!(
            only_cli.is_empty() && only_server.is_empty(),
            "{}:\nonly check: {only_cli:#?}\nonly the server: {only_server:#?}",
            dir.display()
        );
        total += cli.len();
    }
    assert!(total > 100, "the corpus has errors to compare: {total}");
}
