//! The server: one loop that owns the compiler's salsa database, applies the editor's
//! changes to it, and answers from the same queries `flowc check` runs.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;

use flow_diagnostics::{Diagnostic, FileId, Severity};
use flow_sema::{Database, Db, DefKind, ReadError, SourceFile};
use serde_json::{Value as Json, json};

use crate::convert::{Lines, path_to_uri, uri_to_path};
use crate::navigate::{self, Target};
use crate::transport::{self, Incoming, code};

/// The server's state.
pub struct Server {
    db: Database,
    /// Open documents' texts, by path: these win over the disk.
    open: BTreeMap<String, String>,
    /// The workspace folder, when the client named one.
    root: Option<String>,
    /// What was last published for each file, so that only changes are sent.
    published: BTreeMap<String, Vec<Json>>,
    initialized: bool,
    shutting_down: bool,
}

/// Why the loop ended: `exit` after `shutdown` (0), or otherwise (1), as the protocol says.
pub fn run(input: &mut impl BufRead, output: &mut impl Write) -> i32 {
    let mut server = Server {
        db: Database::default(),
        open: BTreeMap::new(),
        root: None,
        published: BTreeMap::new(),
        initialized: false,
        shutting_down: false,
    };
    loop {
        let message = match transport::read(input) {
            Incoming::Closed => return 1,
            Incoming::Malformed(reason) => {
                transport::write(output, &transport::error(Json::Null, code::PARSE_ERROR, &reason));
                continue;
            }
            Incoming::Message(message) => message,
        };
        let method = message.get("method").and_then(Json::as_str).map(str::to_owned);
        let id = message.get("id").cloned();
        let params = message.get("params").cloned().unwrap_or(Json::Null);
        match (method, id) {
            (Some(method), Some(id)) => {
                let first = method == "initialize" && !server.initialized;
                let answer = server.request(&method, params);
                let response = match answer {
                    Ok(result) => transport::result(id, result),
                    Err((code, text)) => transport::error(id, code, &text),
                };
                transport::write(output, &response);
                if first {
                    server.check_workspace(output);
                }
            }
            (Some(method), None) => {
                if method == "exit" {
                    return if server.shutting_down { 0 } else { 1 };
                }
                server.notification(&method, params, output);
            }
            // A response: the server sends no requests, so there is nothing to match it with.
            (None, Some(_)) if message.get("result").is_some() || message.get("error").is_some() => {}
            (None, id) => transport::write(
                output,
                &transport::error(id.unwrap_or(Json::Null), code::INVALID_REQUEST, "not a JSON-RPC request"),
            ),
        }
    }
}

type Answer = Result<Json, (i64, String)>;

fn invalid(text: impl Into<String>) -> (i64, String) {
    (code::INVALID_PARAMS, text.into())
}

impl Server {
    fn request(&mut self, method: &str, params: Json) -> Answer {
        if method == "initialize" {
            if self.initialized {
                return Err((code::INVALID_REQUEST, "the server is already initialized".to_owned()));
            }
            return Ok(self.initialize(&params));
        }
        if !self.initialized {
            return Err((code::SERVER_NOT_INITIALIZED, "the server is not initialized".to_owned()));
        }
        if self.shutting_down {
            return Err((code::INVALID_REQUEST, "the server is shutting down".to_owned()));
        }
        match method {
            "shutdown" => {
                self.shutting_down = true;
                Ok(Json::Null)
            }
            "textDocument/documentSymbol" => self.document_symbols(&params),
            "textDocument/hover" => self.hover(&params),
            "textDocument/definition" => self.definition(&params),
            "textDocument/references" => self.references(&params),
            "textDocument/codeAction" => {
                let file = self.file(&params)?;
                let uri = params["textDocument"]["uri"].as_str().unwrap_or_default();
                let diagnostics = params["context"]["diagnostics"].as_array().cloned().unwrap_or_default();
                Ok(Json::Array(crate::actions::code_actions(uri, file.text(&self.db), &diagnostics)))
            }
            "textDocument/semanticTokens/full" => Ok(crate::tokens::semantic_tokens(&self.db, self.file(&params)?)),
            "textDocument/formatting" => {
                // The edit that formats the whole document as `flowc fmt` does; none when it
                // has syntax errors (its diagnostics say so already).
                let file = self.file(&params)?;
                let text = file.text(&self.db);
                Ok(match flow_syntax::format::format(text, file.id(&self.db)) {
                    Ok(formatted) if formatted == *text => json!([]),
                    Ok(formatted) => {
                        let whole = Lines::new(text).range(flow_diagnostics::Span::new(0, text.len()));
                        json!([{"range": whole, "newText": formatted}])
                    }
                    Err(_) => Json::Null,
                })
            }
            "textDocument/completion" => {
                let file = self.file(&params)?;
                let offset = Lines::new(file.text(&self.db)).offset(&params["position"]);
                Ok(json!({"isIncomplete": false, "items": crate::complete::complete(&self.db, file, offset)}))
            }
            _ => Err((code::METHOD_NOT_FOUND, format!("`{method}` is not supported"))),
        }
    }

    fn notification(&mut self, method: &str, params: Json, output: &mut impl Write) {
        if !self.initialized {
            return;
        }
        match method {
            "textDocument/didOpen" => {
                let document = &params["textDocument"];
                if let (Some(path), Some(text)) = (document_path(document), document["text"].as_str()) {
                    self.open.insert(path.clone(), text.to_owned());
                    self.update(&path);
                    self.publish(Some(&path), output);
                }
            }
            "textDocument/didChange" => {
                let Some(path) = document_path(&params["textDocument"]) else { return };
                let Some(mut text) = self.open.get(&path).cloned() else { return };
                for change in params["contentChanges"].as_array().into_iter().flatten() {
                    apply_change(&mut text, change);
                }
                self.open.insert(path.clone(), text);
                self.update(&path);
                self.publish(Some(&path), output);
            }
            "textDocument/didClose" => {
                let Some(path) = document_path(&params["textDocument"]) else { return };
                self.open.remove(&path);
                // The disk's text is the file's again.
                self.load(std::slice::from_ref(&path));
                self.publish(Some(&path), output);
            }
            "workspace/didChangeWatchedFiles" | "textDocument/didSave" => {
                let paths: Vec<String> =
                    self.db.workspace().sources(&self.db).iter().map(|f| f.path(&self.db).clone()).collect();
                self.load(&paths);
                self.publish(None, output);
            }
            // `initialized`, `$/cancelRequest`, `$/setTrace` and others need nothing.
            _ => {}
        }
    }

    /// Checks the workspace folder, once the client has the answer to `initialize` (the
    /// protocol allows no notification before it).
    fn check_workspace(&mut self, output: &mut impl Write) {
        if let Some(root) = self.root.clone() {
            let mut files = Vec::new();
            collect(Path::new(&root), &mut files);
            self.load(&files);
            self.publish(None, output);
        }
    }

    fn initialize(&mut self, params: &Json) -> Json {
        self.initialized = true;
        self.root = params["workspaceFolders"][0]["uri"]
            .as_str()
            .or(params["rootUri"].as_str())
            .and_then(uri_to_path)
            .or_else(|| params["rootPath"].as_str().map(str::to_owned));
        json!({
            "capabilities": {
                "positionEncoding": "utf-16",
                "textDocumentSync": {"openClose": true, "change": 2, "save": {"includeText": false}},
                "documentSymbolProvider": true,
                "hoverProvider": true,
                "definitionProvider": true,
                "referencesProvider": true,
                "codeActionProvider": {"codeActionKinds": ["quickfix"]},
                "semanticTokensProvider": {
                    "legend": {"tokenTypes": crate::tokens::LEGEND, "tokenModifiers": []},
                    "full": true,
                },
                "completionProvider": {"triggerCharacters": [".", "@"]},
                "documentFormattingProvider": true,
            },
            "serverInfo": {"name": "flow-lsp", "version": env!("CARGO_PKG_VERSION")},
        })
    }

    /// Gives the database an open document's text; reads the disk only when the document
    /// names a file (an import, a prompt) the workspace does not know yet, not on every
    /// keystroke.
    fn update(&mut self, path: &str) {
        let Some(text) = self.open.get(path) else { return };
        let file = self.db.set_file(path, text.clone().into_bytes());
        let workspace = self.db.workspace();
        let unknown = flow_sema::file_requests(&self.db, file)
            .iter()
            .any(|(_, named)| workspace.entry(&self.db, named).is_none());
        if unknown {
            self.load(&[path.to_owned()]);
        }
    }

    /// Loads `paths` and what they import: open documents from the editor, the rest from
    /// the disk.
    fn load(&mut self, paths: &[String]) {
        let open = &self.open;
        let mut read = |path: &str| -> Result<Vec<u8>, ReadError> {
            if let Some(text) = open.get(path) {
                return Ok(text.clone().into_bytes());
            }
            flow_sema::read_from_disk(path)
        };
        let _ = self.db.load(paths, &mut read);
    }

    /// Publishes the diagnostics of `edited` (always: the editor waits for them) and of
    /// every other file whose diagnostics changed, each diagnostic at its primary file.
    fn publish(&mut self, edited: Option<&str>, output: &mut impl Write) {
        let files: Vec<SourceFile> = self.db.workspace().sources(&self.db).iter().copied().collect();
        // After an edit, salsa re-checks only what depends on it: one thread does. When the
        // whole workspace is new (start-up, files changed on disk), every core helps.
        let checks = flow_lower::Checks { parallel: edited.is_none(), ..Default::default() };
        let diagnostics = flow_lower::workspace_diagnostics(&self.db, &[], &checks);
        let mut by_file: BTreeMap<String, Vec<Json>> =
            files.iter().map(|file| (file.path(&self.db).clone(), Vec::new())).collect();
        // The lines of each file a diagnostic names, once for all of its diagnostics.
        let named: std::collections::BTreeSet<FileId> = diagnostics
            .iter()
            .flat_map(|d| std::iter::once(d.primary.file).chain(d.secondary.iter().map(|l| l.file)))
            .collect();
        let lines: BTreeMap<FileId, (&String, Lines<'_>)> = files
            .iter()
            .filter(|file| named.contains(&file.id(&self.db)))
            .map(|file| (file.id(&self.db), (file.path(&self.db), Lines::new(file.text(&self.db)))))
            .collect();
        for diagnostic in &diagnostics {
            let Some((path, _)) = lines.get(&diagnostic.primary.file) else { continue };
            by_file.entry((*path).clone()).or_default().push(to_lsp(diagnostic, &lines));
        }
        for (path, diagnostics) in by_file {
            let before = self.published.get(&path);
            let changed = before.map_or(!diagnostics.is_empty(), |before| *before != diagnostics);
            if !changed && edited != Some(path.as_str()) {
                continue;
            }
            let params = json!({"uri": path_to_uri(&path), "diagnostics": diagnostics});
            transport::write(output, &transport::notification("textDocument/publishDiagnostics", params));
            self.published.insert(path, diagnostics);
        }
    }

    /// The open or loaded file of a `textDocument` parameter.
    fn file(&self, params: &Json) -> Result<SourceFile, (i64, String)> {
        let path = document_path(&params["textDocument"]).ok_or_else(|| invalid("no `textDocument.uri`"))?;
        self.db
            .workspace()
            .entry(&self.db, &flow_sema::normalize(&path))
            .and_then(|entry| match entry {
                flow_sema::Entry::Flow(file) => Some(file),
                _ => None,
            })
            .ok_or_else(|| invalid(format!("`{path}` is not open or loaded")))
    }

    fn document_symbols(&self, params: &Json) -> Answer {
        let file = self.file(params)?;
        let text = file.text(&self.db);
        let lines = Lines::new(text);
        let parse = flow_sema::parse(&self.db, file);
        let kinds: BTreeMap<u32, DefKind> =
            flow_sema::item_names(&self.db, file).iter().map(|named| (named.index, named.kind)).collect();
        let mut symbols = Vec::new();
        for (index, item) in parse.file.items.iter().enumerate() {
            let Some(name) = item.kind.name() else { continue };
            let def_kind = kinds.get(&(index as u32)).copied();
            let mut children = Vec::new();
            if let flow_syntax::ast::ItemKind::Flow(flow) = &item.kind {
                for flow_item in &flow.items {
                    let Some((name, kind)) = flow_item_name(&flow_item.kind) else { continue };
                    children.push(json!({
                        "name": name.text.as_str(), "kind": kind, "detail": flow_item_keyword(&flow_item.kind),
                        "range": lines.range(flow_item.span), "selectionRange": lines.range(name.span),
                    }));
                }
            }
            symbols.push(json!({
                "name": name.text.as_str(), "kind": def_kind.map_or(13, symbol_kind), "detail": def_kind.map(DefKind::described),
                "range": lines.range(item.span), "selectionRange": lines.range(name.span), "children": children,
            }));
        }
        Ok(Json::Array(symbols))
    }

    /// What the name under the cursor refers to.
    fn target(&self, params: &Json) -> Result<Option<(String, Target)>, (i64, String)> {
        let file = self.file(params)?;
        let offset = Lines::new(file.text(&self.db)).offset(&params["position"]);
        Ok(navigate::target_at(&self.db, file, offset))
    }

    fn location(&self, file: SourceFile, span: flow_diagnostics::Span) -> Json {
        json!({"uri": path_to_uri(file.path(&self.db)), "range": Lines::new(file.text(&self.db)).range(span)})
    }

    fn definition(&self, params: &Json) -> Answer {
        Ok(match self.target(params)? {
            Some((_, Target::Decl(def))) => match self.db.workspace().file(&self.db, def.id.file) {
                Some(file) => self.location(file, def.span),
                None => Json::Null,
            },
            Some((_, Target::Local { file, name_span, .. })) => self.location(file, name_span),
            Some((_, Target::Member { file, span, .. })) => self.location(file, span),
            Some((_, Target::File(file))) => self.location(file, flow_diagnostics::Span::default()),
            None => Json::Null,
        })
    }

    fn references(&self, params: &Json) -> Answer {
        let Some((name, target)) = self.target(params)? else { return Ok(Json::Array(Vec::new())) };
        let include_declaration = params["context"]["includeDeclaration"].as_bool().unwrap_or(true);
        let declaration = match &target {
            Target::Decl(def) => (def.id.file, def.span.start),
            Target::Local { file, name_span: span, .. } | Target::Member { file, span, .. } => {
                (file.id(&self.db), span.start)
            }
            Target::File(file) => (file.id(&self.db), 0),
        };
        let locations = navigate::references(&self.db, &name, &target)
            .into_iter()
            .filter(|(file, span)| include_declaration || (file.id(&self.db), span.start) != declaration)
            .map(|(file, span)| self.location(file, span))
            .collect();
        Ok(Json::Array(locations))
    }

    /// What a role may do: the grants of every flow of the workspace that name it or a
    /// role it extends, as written.
    fn role_grants(&self, role: flow_sema::DeclId) -> String {
        let mut held = vec![role];
        let mut i = 0;
        while i < held.len() {
            if let Some(flow_sema::Decl::Role(sig)) = flow_sema::decl(&self.db, held[i]) {
                for parent in &sig.extends {
                    if !held.contains(parent) {
                        held.push(*parent);
                    }
                }
            }
            i += 1;
        }
        let mut lines = Vec::new();
        for file in self.db.workspace().sources(&self.db).iter().copied() {
            let text = file.text(&self.db);
            for flow in &flow_sema::check_file(&self.db, file).flows {
                for grant in flow.grants.iter().filter(|g| g.roles.iter().any(|r| held.contains(r))) {
                    let written = text.get(grant.span.start as usize..grant.span.end as usize).unwrap_or("").trim();
                    lines.push(format!("- `{written}` in flow `{}`", flow.name));
                }
            }
        }
        let inherits: Vec<String> = held[1..]
            .iter()
            .filter_map(|id| flow_sema::decl(&self.db, *id).map(|d| format!("`{}`", d.name())))
            .collect();
        let mut out = String::new();
        if !inherits.is_empty() {
            out.push_str(&format!("\n\nInherits the grants of {}.", inherits.join(", ")));
        }
        if !lines.is_empty() {
            out.push_str(&format!("\n\nGrants:\n{}", lines.join("\n")));
        }
        out
    }

    fn hover(&self, params: &Json) -> Answer {
        let Some((name, target)) = self.target(params)? else { return Ok(Json::Null) };
        let value = match target {
            Target::Local { file, name_span, detail, docs, .. } => {
                // The line that declares it: a param's default, a step's kind.
                let text = file.text(&self.db);
                let start = text[..name_span.start as usize].rfind('\n').map_or(0, |i| i + 1);
                let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
                let mut value = format!("**{name}**: {detail}\n\n```flow\n{}\n```", text[start..end].trim());
                if let Some(docs) = docs {
                    value.push_str(&format!("\n\n{docs}"));
                }
                value
            }
            Target::Member { detail, docs, .. } => {
                let mut value = format!("**{name}**: {detail}");
                if let Some(docs) = docs {
                    value.push_str(&format!("\n\n{docs}"));
                }
                value
            }
            Target::File(file) => format!("**{}**: imported", file.path(&self.db)),
            Target::Decl(def) => {
                let Some(file) = self.db.workspace().file(&self.db, def.id.file) else { return Ok(Json::Null) };
                let parse = flow_sema::parse(&self.db, file);
                let mut value = format!("**{name}**: {}", def.kind.described());
                if let Some(item) = parse.file.items.get(def.id.index as usize) {
                    let source = &file.text(&self.db)[item.span.start as usize..item.span.end as usize];
                    let first: String = source.lines().take(12).collect::<Vec<_>>().join("\n");
                    value.push_str(&format!("\n\n```flow\n{first}\n```"));
                    if let Some(docs) = &item.docs {
                        value.push_str(&format!("\n\n{docs}"));
                    }
                }
                if def.kind == DefKind::Role {
                    value.push_str(&self.role_grants(def.id));
                }
                value
            }
        };
        Ok(json!({"contents": {"kind": "markdown", "value": value}}))
    }
}

/// A diagnostic as the protocol writes it, with the lines of every file it names.
fn to_lsp(diagnostic: &Diagnostic, lines: &BTreeMap<FileId, (&String, Lines<'_>)>) -> Json {
    let range = |label: &flow_diagnostics::Label| -> Option<(String, Json)> {
        let (path, lines) = lines.get(&label.file)?;
        Some(((*path).clone(), lines.range(label.span)))
    };
    let primary = range(&diagnostic.primary).map(|(_, r)| r).unwrap_or(json!({
        "start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}
    }));
    let related: Vec<Json> = diagnostic
        .secondary
        .iter()
        .filter_map(|label| {
            let (path, range) = range(label)?;
            Some(json!({"location": {"uri": path_to_uri(&path), "range": range}, "message": label.message}))
        })
        .collect();
    let mut message = diagnostic.message.clone();
    if let Some(help) = &diagnostic.help {
        message.push_str(&format!("\nhelp: {help}"));
    }
    let code = diagnostic.code.as_str();
    json!({
        "range": primary,
        "severity": if diagnostic.severity == Severity::Error { 1 } else { 2 },
        "code": code,
        "codeDescription": {"href": explanation_uri(diagnostic.code)},
        "source": "flow",
        "message": message,
        "relatedInformation": related,
    })
}

/// A `file://` URI of the code's long explanation (what `flowc explain` prints), written
/// once per process to the temporary directory so that an editor can open it.
fn explanation_uri(code: flow_diagnostics::Code) -> String {
    let dir = std::env::temp_dir().join(format!("flow-lsp-{}", std::process::id()));
    let path = dir.join(format!("{}.md", code.as_str()));
    if !path.exists() {
        let _ = std::fs::create_dir_all(&dir);
        let text = format!("# {} ({})\n\n{}", code.as_str(), code.name(), code.explanation());
        let _ = std::fs::write(&path, text);
    }
    path_to_uri(&path.to_string_lossy())
}

fn document_path(document: &Json) -> Option<String> {
    document["uri"].as_str().and_then(uri_to_path).map(|p| flow_sema::normalize(&p))
}

/// Applies one `contentChanges` entry: a range and its new text, or the whole text.
fn apply_change(text: &mut String, change: &Json) {
    let Some(new) = change["text"].as_str() else { return };
    if change.get("range").is_none_or(Json::is_null) {
        *text = new.to_owned();
        return;
    }
    let lines = Lines::new(text);
    let start = lines.offset(&change["range"]["start"]);
    let end = lines.offset(&change["range"]["end"]).max(start);
    text.replace_range(start..end, new);
}

/// The `.flow` files under a directory, skipping hidden directories and build output.
fn collect(dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut paths: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') || name == "target" {
            continue;
        }
        if path.is_dir() {
            collect(&path, out);
        } else if name.ends_with(".flow")
            && let Some(text) = path.to_str()
        {
            out.push(text.to_owned());
        }
    }
}

/// The LSP `SymbolKind` of a declaration.
fn symbol_kind(kind: DefKind) -> u32 {
    match kind {
        DefKind::Label => 14,  // Constant
        DefKind::Enum => 10,   // Enum
        DefKind::Record => 23, // Struct
        DefKind::Role => 11,   // Interface
        DefKind::Source => 8,  // Field
        DefKind::Model => 5,   // Class
        DefKind::Corpus => 18, // Array
        DefKind::System => 2,  // Module
        DefKind::Fn => 12,     // Function
        DefKind::Flow => 2,    // Module
    }
}

fn flow_item_name(kind: &flow_syntax::ast::FlowItemKind) -> Option<(&flow_syntax::ast::Ident, u32)> {
    use flow_syntax::ast::FlowItemKind as K;
    Some(match kind {
        K::Input { name, .. } | K::Output { name, .. } => (name, 7), // Property
        K::Param { name, .. } => (name, 14),                         // Constant
        K::Let { name, .. } => (name, 13),                           // Variable
        K::Emit { name, .. } => (name, 24),                          // Event
        K::Gate(gate) => (&gate.name, 24),
        K::Infer(infer) => (&infer.name, 12),
        K::Retrieve(retrieve) => (&retrieve.name, 12),
        K::Review(review) => (&review.name, 6),
        K::Approval(approval) => (&approval.name, 6),
        K::Action(action) => (&action.name, 12),
        _ => return None,
    })
}

fn flow_item_keyword(kind: &flow_syntax::ast::FlowItemKind) -> &'static str {
    use flow_syntax::ast::FlowItemKind as K;
    match kind {
        K::Input { .. } => "input",
        K::Output { .. } => "output",
        K::Param { .. } => "param",
        K::Let { .. } => "let",
        K::Emit { .. } => "emit",
        K::Gate(_) => "gate",
        K::Infer(_) => "infer",
        K::Review(_) => "review",
        K::Approval(_) => "approval",
        K::Action(_) => "action",
        _ => "",
    }
}
