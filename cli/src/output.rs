//! The three forms of `flowc check`'s output: for people, for scripts (JSON, as the CLI
//! contract specifies) and for code-scanning services (SARIF 2.1.0).

use std::collections::HashMap;

use flow_diagnostics::{Code, Diagnostic, FileId, LineIndex, Severity, Sources, Span};
use serde::Serialize;
use serde_json::json;

pub struct Report<'a> {
    pub diagnostics: &'a [Diagnostic],
    pub sources: &'a Sources,
    /// How many files were checked.
    pub files: usize,
}

pub fn human(report: &Report<'_>, color: bool) -> String {
    let mut out = flow_diagnostics::render(report.diagnostics, report.sources, color);
    let errors = report.diagnostics.iter().filter(|d| d.severity == Severity::Error).count();
    let warnings = report.diagnostics.len() - errors;
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let files = plural(report.files, "file");
    out.push_str(&match (errors, warnings) {
        (0, 0) => format!("checked {files}: no problems\n"),
        _ => format!("checked {files}: {}, {}\n", plural(errors, "error"), plural(warnings, "warning")),
    });
    out
}

#[derive(Serialize)]
struct Position {
    line: u32,
    column: u32,
}

#[derive(Serialize)]
struct Range {
    start: Position,
    end: Position,
}

#[derive(Serialize)]
struct JsonLabel<'a> {
    file: &'a str,
    range: Range,
    message: &'a str,
}

#[derive(Serialize)]
struct JsonDiagnostic<'a> {
    code: &'static str,
    /// Extension: the code's name, as `flowc explain` accepts it.
    name: &'static str,
    severity: &'static str,
    message: &'a str,
    file: &'a str,
    range: Range,
    /// Extension: the text shown at the primary span, if any.
    primary_label: &'a str,
    labels: Vec<JsonLabel<'a>>,
    help: Option<&'a str>,
    /// Extension: further notes.
    notes: &'a [String],
}

/// Line indexes of the files, built once per file.
struct Positions<'a> {
    sources: &'a Sources,
    indexes: HashMap<FileId, LineIndex>,
}

impl Positions<'_> {
    fn range(&mut self, file: FileId, span: Span) -> Range {
        let text = self.sources.text(file);
        let index = self.indexes.entry(file).or_insert_with(|| LineIndex::new(text));
        let start = index.line_col(text, span.start);
        let end = index.line_col(text, span.end);
        Range {
            start: Position { line: start.line, column: start.column },
            end: Position { line: end.line, column: end.column },
        }
    }
}

pub fn json(report: &Report<'_>) -> String {
    let mut positions = Positions { sources: report.sources, indexes: HashMap::new() };
    let diagnostics: Vec<JsonDiagnostic<'_>> = report
        .diagnostics
        .iter()
        .map(|d| JsonDiagnostic {
            code: d.code.as_str(),
            name: d.code.name(),
            severity: d.severity.as_str(),
            message: &d.message,
            file: report.sources.name(d.primary.file),
            range: positions.range(d.primary.file, d.primary.span),
            primary_label: &d.primary.message,
            labels: d
                .secondary
                .iter()
                .map(|l| JsonLabel {
                    file: report.sources.name(l.file),
                    range: positions.range(l.file, l.span),
                    message: &l.message,
                })
                .collect(),
            help: d.help.as_deref(),
            notes: &d.notes,
        })
        .collect();
    let mut text = serde_json::to_string(&json!({ "diagnostics": diagnostics })).unwrap_or_default();
    text.push('\n');
    text
}

/// Percent-encodes a relative path for a URI reference, keeping `/`.
fn uri(path: &str) -> String {
    let mut out = String::new();
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn sarif_location(positions: &mut Positions<'_>, file: FileId, span: Span) -> serde_json::Value {
    let range = positions.range(file, span);
    let name = positions.sources.name(file);
    let artifact = if name.starts_with('/') {
        json!({ "uri": format!("file://{}", uri(name)) })
    } else {
        json!({ "uri": uri(name), "uriBaseId": "SRCROOT" })
    };
    json!({
        "physicalLocation": {
            "artifactLocation": artifact,
            "region": {
                "startLine": range.start.line,
                "startColumn": range.start.column,
                "endLine": range.end.line,
                "endColumn": range.end.column,
            }
        }
    })
}

pub fn sarif(report: &Report<'_>) -> String {
    let mut positions = Positions { sources: report.sources, indexes: HashMap::new() };
    let rules: Vec<serde_json::Value> = Code::ALL
        .iter()
        .map(|code| {
            json!({
                "id": code.as_str(),
                "name": code.name(),
                "shortDescription": { "text": code.summary() },
                "help": { "text": format!("Run `flowc explain {}` for the full explanation.", code.as_str()), "markdown": code.explanation() },
                "defaultConfiguration": { "level": code.severity().as_str() },
            })
        })
        .collect();
    let results: Vec<serde_json::Value> = report
        .diagnostics
        .iter()
        .map(|d| {
            let mut message = d.message.clone();
            if let Some(help) = &d.help {
                message.push_str(&format!("\nhelp: {help}"));
            }
            let related: Vec<serde_json::Value> = d
                .secondary
                .iter()
                .enumerate()
                .map(|(id, label)| {
                    let mut location = sarif_location(&mut positions, label.file, label.span);
                    location["id"] = json!(id);
                    location["message"] = json!({ "text": label.message });
                    location
                })
                .collect();
            json!({
                "ruleId": d.code.as_str(),
                "ruleIndex": Code::ALL.iter().position(|c| *c == d.code),
                "level": d.severity.as_str(),
                "message": { "text": message },
                "locations": [sarif_location(&mut positions, d.primary.file, d.primary.span)],
                "relatedLocations": related,
            })
        })
        .collect();
    let root = std::env::current_dir()
        .ok()
        .and_then(|dir| dir.to_str().map(|d| format!("file://{}/", uri(d.trim_end_matches('/')))));
    let value = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "flowc",
                    "version": env!("CARGO_PKG_VERSION"),
                    "rules": rules,
                }
            },
            "originalUriBaseIds": { "SRCROOT": { "uri": root.unwrap_or_else(|| "file:///".to_owned()) } },
            "columnKind": "unicodeCodePoints",
            "results": results,
        }]
    });
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
    text.push('\n');
    text
}
