//! The language server's latencies, as an editor sees them: the `flow-lsp` binary over its
//! stdio, on a generated workspace of 50 files and about 20,000 lines (the front-end
//! benchmark's flows). Measured: the initial check of the workspace (`initialize` until
//! every file was checked and published, marked by a request answered after that), a one-character
//! `didChange` to the `publishDiagnostics` of the edited file (the edit alternately breaks
//! and fixes a name, so diagnostics change every time), `hover` and `completion`, and the
//! server's peak resident memory.
//!
//! `cargo bench -p flow-lsp --bench lsp`; prints the median, p95 and worst of each.

#![expect(clippy::unwrap_used, reason = "benchmarks fail loudly")]
#![expect(clippy::print_stdout, reason = "the benchmark prints its table")]

#[path = "../../compiler/sema/benches/generate.rs"]
#[expect(dead_code, reason = "shared with the front-end benchmark, which uses more of it")]
mod generate;

use std::io::BufReader;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

struct Server {
    stdin: std::process::ChildStdin,
    reader: BufReader<std::process::ChildStdout>,
    next_id: u64,
}

impl Server {
    fn send(&mut self, message: &Json) {
        flow_lsp::transport::write(&mut self.stdin, message);
    }

    fn receive(&mut self) -> Json {
        match flow_lsp::transport::read(&mut self.reader) {
            flow_lsp::transport::Incoming::Message(message) => message,
            other => panic!("the server sent no message: {other:?}"),
        }
    }

    fn request(&mut self, method: &str, params: Json) -> Json {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let message = self.receive();
            if message["id"] == id {
                return message;
            }
        }
    }
}

fn percentiles(name: &str, mut samples: Vec<Duration>, target: &str) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<34} {:>8.2} ms {:>8.2} ms {:>8.2} ms   n={:<4} target {target}",
        ms(at(0.5)),
        ms(at(0.95)),
        ms(at(1.0)),
        samples.len()
    );
}

fn main() {
    // 5 shared files and 45 files of two flows each: 50 files, about 20,000 lines.
    let mut files: Vec<(String, String)> =
        (0..5).map(|i| (format!("common/part_{i}.flow"), generate::common(i))).collect();
    for f in 0..45 {
        let c = f % 5;
        let mut text = format!("import \"../common/part_{c}.flow\"\n\n");
        text.push_str(&generate::flow(&format!("flow_{f}_a"), c, 140, 24));
        text.push('\n');
        text.push_str(&generate::flow(&format!("flow_{f}_b"), c, 140, 24));
        files.push((format!("flows/file_{f}.flow"), text));
    }
    let lines: usize = files.iter().map(|(_, t)| t.lines().count()).sum();
    let root = std::env::temp_dir().join(format!("flow-lsp-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    for (path, text) in &files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let root = root.canonicalize().unwrap();
    println!("workspace: {} files, {lines} lines\n", files.len());
    println!("{:<34} {:>11} {:>11} {:>11}", "", "median", "p95", "worst");

    let start = || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_flow-lsp"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut server = Server {
            stdin: child.stdin.take().unwrap(),
            reader: BufReader::new(child.stdout.take().unwrap()),
            next_id: 0,
        };
        let started = Instant::now();
        let response =
            server.request("initialize", json!({"rootUri": format!("file://{}", root.display()), "capabilities": {}}));
        assert!(response["result"]["capabilities"].is_object());
        // The workspace's diagnostics follow the answer; a round trip marks their end.
        server.request("workspace/symbol", json!({"query": ""}));
        let initial = started.elapsed();
        (child, server, initial)
    };
    // Ten fresh servers for the initial check; the last one goes on.
    let mut initials = Vec::new();
    for _ in 0..9 {
        let (mut child, mut server, initial) = start();
        initials.push(initial);
        server.request("shutdown", Json::Null);
        server.send(&json!({"jsonrpc": "2.0", "method": "exit"}));
        child.wait().unwrap();
    }
    let (mut child, mut server, initial) = start();
    initials.push(initial);
    percentiles("initial check of the workspace", initials, "≤ 300 ms");
    server.send(&json!({"jsonrpc": "2.0", "method": "initialized", "params": {}}));

    let (path, text) = &files[5];
    let uri = format!("file://{}", root.join(path).display());
    server.send(&json!({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {
        "textDocument": {"uri": uri, "languageId": "flow", "version": 1, "text": text}}}));
    let (line, column) =
        text.lines().enumerate().find_map(|(n, l)| l.find("party.limit").map(|c| (n, c + "party.limi".len()))).unwrap();
    // Wait for the open's diagnostics.
    loop {
        let message = server.receive();
        if message["method"] == "textDocument/publishDiagnostics" && message["params"]["uri"] == uri.as_str() {
            break;
        }
    }

    let mut changes = Vec::new();
    for version in 2..202 {
        let new = if version % 2 == 0 { "x" } else { "t" };
        let range =
            json!({"start": {"line": line, "character": column}, "end": {"line": line, "character": column + 1}});
        let started = Instant::now();
        server.send(&json!({"jsonrpc": "2.0", "method": "textDocument/didChange", "params": {
            "textDocument": {"uri": uri, "version": version}, "contentChanges": [{"range": range, "text": new}]}}));
        loop {
            let message = server.receive();
            if message["method"] == "textDocument/publishDiagnostics" && message["params"]["uri"] == uri.as_str() {
                let errors = message["params"]["diagnostics"].as_array().unwrap().len();
                assert_eq!(errors > 0, new == "x", "the edit {new} gives {errors} diagnostics");
                break;
            }
        }
        changes.push(started.elapsed());
    }
    percentiles("didChange → publishDiagnostics", changes, "p95 ≤ 20 ms");

    let lines: Vec<&str> = text.lines().collect();
    let positions: Vec<(usize, usize)> =
        lines.iter().enumerate().filter_map(|(n, l)| l.find("request.").map(|c| (n, c))).take(200).collect();
    let mut hovers = Vec::new();
    for (n, c) in positions.iter().cycle().take(200) {
        let started = Instant::now();
        let response = server.request(
            "textDocument/hover",
            json!({"textDocument": {"uri": uri}, "position": {"line": n, "character": c + 2}}),
        );
        hovers.push(started.elapsed());
        assert!(response["result"]["contents"]["value"].as_str().unwrap().contains("request"));
    }
    percentiles("hover", hovers, "p95 ≤ 10 ms");

    let mut completions = Vec::new();
    for (n, c) in positions.iter().cycle().take(200) {
        let started = Instant::now();
        let response = server.request(
            "textDocument/completion",
            json!({"textDocument": {"uri": uri}, "position": {"line": n, "character": c + "request.".len()}}),
        );
        completions.push(started.elapsed());
        assert!(response["result"]["items"].as_array().unwrap().iter().any(|i| i["label"] == "amount"));
    }
    percentiles("completion after `request.`", completions, "p95 ≤ 10 ms");

    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    let peak = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap_or("VmHWM: unknown").to_owned();
    println!("\npeak resident memory of the server: {} (target ≤ 200 MB)", peak.trim_start_matches("VmHWM:").trim());
    server.request("shutdown", Json::Null);
    server.send(&json!({"jsonrpc": "2.0", "method": "exit"}));
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&root);
}
