//! The language server's corpus: one `.flow` case per file under `tests/corpus`, with a
//! script of requests at its top and a snapshot of the answers beside it.
//!
//! A case is a workspace: the main file, then other files after `//- PATH` lines. Cursor
//! markers `$1` … `$9` in the text (removed before the editor sees it) name positions, and
//! `//@` lines ask at them: `//@ hover $1`, `//@ definition $2`, `//@ references $2` (with
//! the declaration), `//@ uses $2` (references without it), `//@ completion $3`. The server runs in process on the whole conversation (initialize,
//! open the main file, the requests, shut down); the snapshot holds the diagnostics it
//! published for the main file and each answer, with paths relative to the workspace.

use std::path::Path;

use flow_lsp::transport::{self, Incoming};
use serde_json::{Value as Json, json};

fn frame(message: &Json) -> Vec<u8> {
    let body = message.to_string();
    format!("Content-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
}

/// The main text without markers, and the (line, character) of each marker.
fn markers(text: &str) -> (String, Vec<(char, u32, u32)>) {
    let mut clean = String::new();
    let mut found = Vec::new();
    let (mut line, mut character) = (0u32, 0u32);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$'
            && let Some(&digit) = chars.peek()
            && digit.is_ascii_digit()
        {
            chars.next();
            found.push((digit, line, character));
            continue;
        }
        clean.push(c);
        if c == '\n' {
            line += 1;
            character = 0;
        } else {
            character += c.len_utf16() as u32;
        }
    }
    (clean, found)
}

fn position(location: &Json, root: &str) -> String {
    let uri = location["uri"].as_str().unwrap_or("?");
    let path = uri.strip_prefix("file://").unwrap_or(uri);
    let path = path.strip_prefix(root).unwrap_or(path).trim_start_matches('/');
    let start = &location["range"]["start"];
    format!("{path}:{}:{}", start["line"].as_u64().unwrap_or(0) + 1, start["character"].as_u64().unwrap_or(0) + 1)
}

fn lsp_case(path: &Path, text: String) -> datatest_stable::Result<()> {
    let requests: Vec<&str> = text.lines().map_while(|l| l.strip_prefix("//@ ")).collect();
    // The workspace: the main file, then `//- PATH` files.
    let mut files: Vec<(String, String)> = vec![("main.flow".to_owned(), String::new())];
    for line in text.lines().filter(|l| !l.starts_with("//@ ")) {
        match line.strip_prefix("//- ") {
            Some(path) => files.push((path.trim().to_owned(), String::new())),
            None => {
                let last = files.last_mut().ok_or("no file")?;
                last.1.push_str(line);
                last.1.push('\n');
            }
        }
    }
    let (main, marks) = markers(&files[0].1);
    files[0].1 = main.clone();
    let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("case");
    let root = std::env::temp_dir().join(format!("flow-lsp-corpus-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    for (file, contents) in &files {
        let at = root.join(file);
        std::fs::create_dir_all(at.parent().ok_or("no parent")?)?;
        std::fs::write(at, contents)?;
    }
    let root = root.canonicalize()?.display().to_string();
    let uri = format!("file://{root}/main.flow");
    let mut input = Vec::new();
    let mut id = 0;
    let mut asked = Vec::new();
    input.extend(frame(&json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"processId": null, "rootUri": format!("file://{root}"), "capabilities": {}}})));
    input.extend(frame(&json!({"jsonrpc": "2.0", "method": "initialized", "params": {}})));
    input.extend(frame(&json!({"jsonrpc": "2.0", "method": "textDocument/didOpen",
        "params": {"textDocument": {"uri": uri, "languageId": "flow", "version": 1, "text": main}}})));
    for request in &requests {
        let (kind, marker) = request.split_once(" $").ok_or("write `//@ KIND $N`")?;
        let digit = marker.chars().next().ok_or("a marker")?;
        let &(_, line, character) =
            marks.iter().find(|m| m.0 == digit).ok_or_else(|| format!("no marker ${digit} in the main file"))?;
        let method = match kind {
            "hover" => "textDocument/hover",
            "definition" => "textDocument/definition",
            "references" | "uses" => "textDocument/references",
            "completion" => "textDocument/completion",
            other => return Err(format!("`{other}` is not a request of the corpus").into()),
        };
        id += 1;
        let mut params = json!({"textDocument": {"uri": uri}, "position": {"line": line, "character": character}});
        if matches!(kind, "references" | "uses") {
            params["context"] = json!({"includeDeclaration": kind == "references"});
        }
        input.extend(frame(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})));
        asked.push((id, *request, kind));
    }
    input.extend(frame(&json!({"jsonrpc": "2.0", "id": 9999, "method": "shutdown", "params": null})));
    input.extend(frame(&json!({"jsonrpc": "2.0", "method": "exit", "params": null})));
    let mut output = Vec::new();
    let code = flow_lsp::run(&mut std::io::Cursor::new(input), &mut output);
    if code != 0 {
        return Err(format!("the server exited with {code}").into());
    }
    let mut reader = std::io::Cursor::new(output);
    let mut messages = Vec::new();
    while let Incoming::Message(message) = transport::read(&mut reader) {
        messages.push(message);
    }
    let mut transcript = String::from("> diagnostics of main.flow\n");
    let published = messages
        .iter()
        .rfind(|m| m["method"] == "textDocument/publishDiagnostics" && m["params"]["uri"] == uri.as_str());
    for diagnostic in published.and_then(|m| m["params"]["diagnostics"].as_array()).into_iter().flatten() {
        let start = &diagnostic["range"]["start"];
        let message = diagnostic["message"].as_str().unwrap_or("").lines().next().unwrap_or("");
        transcript.push_str(&format!(
            "{}:{} [{}] {message}\n",
            start["line"].as_u64().unwrap_or(0) + 1,
            start["character"].as_u64().unwrap_or(0) + 1,
            diagnostic["code"].as_str().unwrap_or("")
        ));
    }
    for (id, request, kind) in asked {
        transcript.push_str(&format!("> {request}\n"));
        let Some(answer) = messages.iter().find(|m| m["id"] == id) else {
            return Err(format!("no answer to `{request}`").into());
        };
        let result = &answer["result"];
        let shown = match kind {
            "hover" => result["contents"]["value"].as_str().unwrap_or("(nothing)").to_owned(),
            "definition" => {
                let all: Vec<String> = match result {
                    Json::Array(list) => list.iter().map(|l| position(l, &root)).collect(),
                    Json::Null => Vec::new(),
                    one => vec![position(one, &root)],
                };
                if all.is_empty() { "(nothing)".to_owned() } else { all.join("\n") }
            }
            "references" | "uses" => {
                let mut all: Vec<String> =
                    result.as_array().into_iter().flatten().map(|l| position(l, &root)).collect();
                // By file, then by line and column as numbers.
                all.sort_by_key(|p| {
                    let mut parts = p.rsplitn(3, ':');
                    let column = parts.next().and_then(|c| c.parse::<u64>().ok());
                    let line = parts.next().and_then(|l| l.parse::<u64>().ok());
                    (parts.next().map(str::to_owned), line, column)
                });
                if all.is_empty() { "(nothing)".to_owned() } else { all.join("\n") }
            }
            _ => {
                let items = result["items"].as_array().or_else(|| result.as_array());
                let mut labels: Vec<&str> = items.into_iter().flatten().filter_map(|i| i["label"].as_str()).collect();
                labels.sort_unstable();
                labels.join(", ")
            }
        };
        transcript.push_str(&shown);
        transcript.push('\n');
    }
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(path.parent().unwrap_or(Path::new(".")).canonicalize()?);
    settings.set_prepend_module_to_snapshot(false);
    settings.set_input_file(path);
    settings.set_omit_expression(true);
    let snapshot = format!("----- SOURCE\n{}\n----- TRANSCRIPT\n{}", text.trim_end(), transcript.trim_end());
    settings.bind(|| insta::assert_snapshot!(name.to_owned(), snapshot));
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}

datatest_stable::harness! {
    { test = lsp_case, root = "tests/corpus", pattern = r"\.flow$" },
}
