//! The server as an editor sees it: the `flow-lsp` binary, JSON-RPC over its stdio.

#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

use std::io::{BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use flow_lsp::transport::{self, Incoming};
use serde_json::{Value as Json, json};

/// A running server and the messages it sends.
struct Client {
    child: Child,
    stdin: Option<ChildStdin>,
    messages: Receiver<Json>,
    next_id: u64,
    root: PathBuf,
}

fn frame(body: &str) -> Vec<u8> {
    format!("Content-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
}

impl Client {
    fn start(name: &str, files: &[(&str, &[u8])]) -> Client {
        let root = std::env::temp_dir().join(format!("flow-lsp-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for (path, bytes) in files {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        std::fs::create_dir_all(&root).unwrap();
        let root = root.canonicalize().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_flow-lsp"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (send, messages) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            // The server's own framing reads what it writes.
            while let Incoming::Message(message) = transport::read(&mut reader) {
                if send.send(message).is_err() {
                    return;
                }
            }
        });
        let stdin = child.stdin.take();
        Client { child, stdin, messages, next_id: 0, root }
    }

    /// Opens a document in the editor; returns its URI.
    fn open(&mut self, path: &str, text: &str) -> String {
        let uri = self.uri(path);
        let params = json!({"textDocument": {"uri": uri, "languageId": "flow", "version": 1, "text": text}});
        self.notify("textDocument/didOpen", params);
        uri
    }

    fn uri(&self, path: &str) -> String {
        format!("file://{}", self.root.join(path).display())
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(bytes).unwrap();
        stdin.flush().unwrap();
    }

    fn notify(&mut self, method: &str, params: Json) {
        let body = json!({"jsonrpc": "2.0", "method": method, "params": params}).to_string();
        self.send_raw(&frame(&body));
    }

    fn receive(&self) -> Json {
        match self.messages.recv_timeout(Duration::from_secs(30)) {
            Ok(message) => message,
            Err(RecvTimeoutError::Timeout) => panic!("the server sent nothing for 30 s"),
            Err(RecvTimeoutError::Disconnected) => panic!("the server closed its output"),
        }
    }

    /// Sends a request and returns its response, keeping the notifications that came first.
    fn request(&mut self, method: &str, params: Json) -> (Json, Vec<Json>) {
        self.next_id += 1;
        let id = self.next_id;
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
        self.send_raw(&frame(&body));
        let mut notifications = Vec::new();
        loop {
            let message = self.receive();
            if message["id"] == id {
                return (message, notifications);
            }
            notifications.push(message);
        }
    }

    /// The diagnostics published for `path` until a round trip says nothing more is coming.
    fn diagnostics(&mut self, path: &str) -> Vec<Json> {
        let (_, notifications) =
            self.request("textDocument/documentSymbol", json!({"textDocument": {"uri": self.uri(path)}}));
        let uri = self.uri(path);
        notifications
            .into_iter()
            .rfind(|n| n["method"] == "textDocument/publishDiagnostics" && n["params"]["uri"] == uri.as_str())
            .map(|n| n["params"]["diagnostics"].as_array().unwrap().clone())
            .unwrap_or_default()
    }

    /// Initializes the server; returns its answer and the notifications that followed it
    /// (the diagnostics of the workspace), up to a round trip.
    fn initialize(&mut self) -> (Json, Vec<Json>) {
        let root = format!("file://{}", self.root.display());
        let (response, mut notifications) =
            self.request("initialize", json!({"processId": null, "rootUri": root, "capabilities": {}}));
        self.notify("initialized", json!({}));
        let (_, after) = self.request("workspace/symbol", json!({"query": ""}));
        notifications.extend(after);
        (response, notifications)
    }

    /// Shuts the server down and returns its exit code.
    fn shut_down(mut self) -> Option<i32> {
        let (response, _) = self.request("shutdown", Json::Null);
        assert_eq!(response["result"], Json::Null);
        self.notify("exit", Json::Null);
        drop(self.stdin.take());
        self.child.wait().unwrap().code()
    }

    /// Replaces the root directory in a message by `$ROOT`, for snapshots.
    fn redact(&self, value: &Json) -> Json {
        let text = value.to_string().replace(&self.root.display().to_string(), "$ROOT");
        let tmp = std::env::temp_dir().display().to_string();
        let text = text.replace(tmp.trim_end_matches('/'), "$TMP");
        let text = regex_like_tmp(&text);
        serde_json::from_str(&text).unwrap()
    }
}

/// Explanation URIs name the server's process: leave that out of snapshots.
fn regex_like_tmp(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("flow-lsp-") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "flow-lsp-".len()..];
        let digits = after.chars().take_while(char::is_ascii_digit).count();
        out.push_str("flow-lsp-PID");
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

const BROKEN: &str = "role clerk\n\nflow f {\n  version \"1.0.0\"\n  owner clerk\n  steward clerk\n  input n: Int\n  let m = n + missing\n}\n";
const FIXED: &str =
    "role clerk\n\nflow f {\n  version \"1.0.0\"\n  owner clerk\n  steward clerk\n  input n: Int\n  let m = n + 1\n}\n";

#[test]
fn diagnostics_follow_the_text_as_it_is_typed() {
    let mut client = Client::start("diagnostics", &[("a.flow", BROKEN.as_bytes())]);
    let (response, notifications) = client.initialize();
    assert_eq!(response["result"]["capabilities"]["textDocumentSync"]["change"], 2);
    // The workspace is checked when the server starts.
    let published: Vec<&Json> =
        notifications.iter().filter(|n| n["method"] == "textDocument/publishDiagnostics").collect();
    assert_eq!(published.len(), 1, "{notifications:?}");
    insta::assert_json_snapshot!("broken_on_disk", client.redact(published[0]));
    // The editor opens the file and fixes the name, one change at a time.
    let uri = client.open("a.flow", BROKEN);
    assert_eq!(client.diagnostics("a.flow").len(), 1);
    let range = json!({"start": {"line": 7, "character": 14}, "end": {"line": 7, "character": 21}});
    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"range": range, "text": "1"}]}),
    );
    assert_eq!(client.diagnostics("a.flow"), Vec::<Json>::new());
    // Whole-text changes too.
    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 3}, "contentChanges": [{"text": BROKEN}]}),
    );
    assert_eq!(client.diagnostics("a.flow").len(), 1);
    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 4}, "contentChanges": [{"text": FIXED}]}),
    );
    assert_eq!(client.diagnostics("a.flow"), Vec::<Json>::new());
    assert_eq!(client.shut_down(), Some(0));
}

/// The symbols of a file, and positions past the end of a line or of the file. (Hover and
/// definition are in the corpus, `tests/corpus/navigation.flow`.)
#[test]
fn symbols_and_positions_past_the_end() {
    let common = "/// Leads a team.\nrole manager\n";
    let main = "import \"common.flow\"\n\nflow f {\n  version \"1.0.0\"\n  owner manager\n  steward manager\n  input n: Int\n  gate big: info when n > 10\n  emit out = n\n  output out: Int\n}\n";
    let mut client = Client::start("navigation", &[("common.flow", common.as_bytes()), ("main.flow", main.as_bytes())]);
    client.initialize();
    let uri = client.open("main.flow", main);
    let (symbols, _) = client.request("textDocument/documentSymbol", json!({"textDocument": {"uri": uri}}));
    insta::assert_json_snapshot!("symbols", client.redact(&symbols["result"]));
    // Positions past the end of the line or the file are clamped, not fatal.
    for position in [json!({"line": 4, "character": 500}), json!({"line": 900, "character": 0})] {
        let (hover, _) =
            client.request("textDocument/hover", json!({"textDocument": {"uri": uri}, "position": position}));
        assert!(hover.get("result").is_some(), "{hover}");
    }
    assert_eq!(client.shut_down(), Some(0));
}

#[test]
fn bad_input_gets_protocol_errors_and_the_server_carries_on() {
    let mut bytes = b"role clerk\n".to_vec();
    bytes.extend([0xff, 0xfe, b'\n']);
    let mut client = Client::start("bad", &[("latin.flow", &bytes)]);
    // Before `initialize`, requests are refused.
    let (early, _) = client.request("textDocument/hover", json!({}));
    assert_eq!(early["error"]["code"], -32002);
    let (_, notifications) = client.initialize();
    let latin: Vec<&Json> = notifications
        .iter()
        .filter(|n| n["params"]["uri"].as_str().is_some_and(|u| u.ends_with("latin.flow")))
        .collect();
    assert_eq!(latin[0]["params"]["diagnostics"][0]["code"], "E0002", "{latin:?}");
    // A second `initialize`.
    let (again, _) = client.request("initialize", json!({"capabilities": {}}));
    assert_eq!(again["error"]["code"], -32600);
    // A body that is not JSON.
    client.send_raw(&frame("{\"jsonrpc\": \"2.0\", \"id\": 7, \"method\""));
    let parse_error = client.receive();
    assert_eq!(parse_error["error"]["code"], -32700, "{parse_error}");
    assert_eq!(parse_error["id"], Json::Null);
    // Headers without a length, then a proper message.
    client.send_raw(b"Content-Type: nothing\r\n\r\n");
    assert_eq!(client.receive()["error"]["code"], -32700);
    // JSON that is not a request.
    client.send_raw(&frame("[1, 2, 3]"));
    assert_eq!(client.receive()["error"]["code"], -32600);
    // An unknown method; an unknown notification is ignored.
    client.notify("$/somethingNew", json!({}));
    let (unknown, _) = client.request("textDocument/unknownThing", json!({}));
    assert_eq!(unknown["error"]["code"], -32601);
    // A document the server does not know, and a URI that is not a file.
    let (missing, _) = client.request(
        "textDocument/hover",
        json!({"textDocument": {"uri": "file:///nowhere.flow"}, "position": {"line": 0, "character": 0}}),
    );
    assert_eq!(missing["error"]["code"], -32602);
    let (http, _) =
        client.request("textDocument/documentSymbol", json!({"textDocument": {"uri": "https://example.org/a.flow"}}));
    assert_eq!(http["error"]["code"], -32602);
    // Changes to a document that was never opened are ignored.
    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": client.uri("x.flow")}, "contentChanges": [{"text": "x"}]}),
    );
    assert_eq!(client.shut_down(), Some(0));
}

#[test]
fn a_client_that_disconnects_ends_the_server_without_a_crash() {
    let mut client = Client::start("disconnect", &[]);
    client.initialize();
    // Half a message, then the input closes.
    client.send_raw(b"Content-Length: 100\r\n\r\n{\"jsonrpc\"");
    drop(client.stdin.take());
    let status = client.child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "exit without shutdown is code 1, not a crash");
}

#[test]
fn semantic_tokens_tell_roles_from_types_and_steps_from_fields() {
    let text = "/// Who signs.\nrole manager\ntype Req { amount: Money[USD] }\nflow f {\n  version \"1.0.0\"\n  owner manager\n  steward manager\n  input r: Req\n  param limit: Money[USD] = 10 USD\n  gate big: info when r.amount > limit\n  output out: Text\n  emit out = \"{r.amount}\"\n}\n";
    let mut client = Client::start("tokens", &[("t.flow", text.as_bytes())]);
    let (initialized, _) = client.initialize();
    let uri = client.open("t.flow", text);
    let (response, _) = client.request("textDocument/semanticTokens/full", json!({"textDocument": {"uri": uri}}));
    let data: Vec<u64> = response["result"]["data"].as_array().unwrap().iter().map(|n| n.as_u64().unwrap()).collect();
    assert_eq!(data.len() % 5, 0);
    // The tokens as `word:type`, from their relative positions.
    // The legend the server announced names the token types.
    let legend: Vec<String> = initialized["result"]["capabilities"]["semanticTokensProvider"]["legend"]["tokenTypes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    let lines: Vec<&str> = text.lines().collect();
    let (mut line, mut character) = (0, 0);
    let mut tokens = Vec::new();
    for chunk in data.chunks(5) {
        if chunk[0] > 0 {
            character = 0;
        }
        line += chunk[0];
        character += chunk[1];
        let word: String = lines[line as usize].chars().skip(character as usize).take(chunk[2] as usize).collect();
        tokens.push(format!("{word}:{}", legend[chunk[3] as usize]));
    }
    for expected in [
        "/// Who signs.:comment",
        "role:keyword",
        "manager:interface",
        "Req:type",
        "amount:variable",
        "Money:type",
        "USD:type",
        "r:variable",
        "amount:property",
        "limit:parameter",
        "\"1.0.0\":string",
        "10:number",
        "\"{:string",
    ] {
        assert!(tokens.contains(&expected.to_owned()), "{expected} in {tokens:?}");
    }
    assert_eq!(client.shut_down(), Some(0));
}

#[test]
fn a_quick_fix_adds_the_rows_a_matrix_misses() {
    let text = "role clerk\nrole lead extends clerk\nenum Tier { low, medium, high }\ntype Request { tier: Tier, urgent: Bool, requester: Principal }\nflow spend {\n  version \"1.0.0\"\n  owner lead\n  steward clerk\n  input request: Request\n  approval by_tier {\n    when request.tier == low => auto\n    when request.tier == medium and request.urgent => 1 of clerk\n    distinct from request.requester\n  }\n  output ok: Bool\n  emit ok = by_tier.approved\n}\n";
    let mut client = Client::start("quickfix", &[("m.flow", text.as_bytes())]);
    client.initialize();
    let uri = client.open("m.flow", text);
    let diagnostics = client.diagnostics("m.flow");
    let missing: Vec<Json> = diagnostics.iter().filter(|d| d["code"] == "E2003").cloned().collect();
    assert_eq!(missing.len(), 1, "{diagnostics:?}");
    let range = missing[0]["range"].clone();
    let (actions, _) = client.request(
        "textDocument/codeAction",
        json!({"textDocument": {"uri": uri}, "range": range, "context": {"diagnostics": missing}}),
    );
    let action = &actions["result"][0];
    let edit = &action["edit"]["changes"][uri.as_str()][0];
    insta::assert_snapshot!(
        "quick_fix_rows",
        format!("{}\n{}\n{}", action["title"], edit["range"], edit["newText"].as_str().unwrap())
    );
    // The compiler names one missing case at a time: applying the fix until none is left
    // makes the matrix exhaustive.
    let mut edit = edit.clone();
    for version in 2..6 {
        client.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": version}, "contentChanges": [{"range": edit["range"], "text": edit["newText"]}]}),
        );
        let missing: Vec<Json> = client.diagnostics("m.flow").into_iter().filter(|d| d["code"] == "E2003").collect();
        if missing.is_empty() {
            break;
        }
        assert!(version < 5, "still not exhaustive: {missing:?}");
        let (actions, _) = client.request(
            "textDocument/codeAction",
            json!({"textDocument": {"uri": uri}, "range": missing[0]["range"], "context": {"diagnostics": missing}}),
        );
        edit = actions["result"][0]["edit"]["changes"][uri.as_str()][0].clone();
    }
    let after = client.diagnostics("m.flow");
    assert!(after.is_empty(), "{after:?}");
    assert_eq!(client.shut_down(), Some(0));
}

#[test]
fn formatting_gives_the_text_flowc_fmt_writes() {
    let text = "role clerk // who files\nflow f {\nversion \"1.0.0\" owner clerk steward clerk\n  input n:Int\n  let twice=n*2\n}\n";
    let canonical = "role clerk // who files\nflow f {\n  version \"1.0.0\"\n  owner clerk\n  steward clerk\n  input n: Int\n  let twice = n * 2\n}\n";
    let mut client = Client::start("formatting", &[("f.flow", text.as_bytes()), ("done.flow", canonical.as_bytes())]);
    client.initialize();
    let uri = client.open("f.flow", text);
    let (response, _) = client.request(
        "textDocument/formatting",
        json!({"textDocument": {"uri": uri}, "options": {"tabSize": 2, "insertSpaces": true}}),
    );
    assert_eq!(
        response["result"],
        json!([{"range": {"start": {"line": 0, "character": 0}, "end": {"line": 6, "character": 0}}, "newText": canonical}])
    );
    // A formatted document needs no edit; one with syntax errors gets none.
    let done = client.open("done.flow", canonical);
    let (response, _) =
        client.request("textDocument/formatting", json!({"textDocument": {"uri": done}, "options": {}}));
    assert_eq!(response["result"], json!([]));
    let broken = client.open("broken.flow", "flow f {\n  let x = 1 +\n}\n");
    let (response, _) =
        client.request("textDocument/formatting", json!({"textDocument": {"uri": broken}, "options": {}}));
    assert_eq!(response["result"], Json::Null);
    assert_eq!(client.shut_down(), Some(0));
}
