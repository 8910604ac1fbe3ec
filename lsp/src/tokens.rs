//! Semantic tokens: what each word of a file is, for highlighting that knows a role from a
//! record type and a step from a field. Words are found by a scan of the text (comments,
//! strings with their interpolations, numbers and literals with units, names); names are
//! classified by the compiler's scope of the file and the flow they are in.

use flow_sema::{Database, DefKind, SourceFile};
use serde_json::{Value as Json, json};

use crate::convert::Lines;

/// The token types, in the order of the legend the server announces.
pub const LEGEND: &[&str] = &[
    "keyword",
    "type",
    "enumMember",
    "variable",
    "function",
    "string",
    "number",
    "comment",
    "property",
    "namespace",
    "class",
    "interface",
    "decorator",
    "parameter",
];

const KEYWORD: u32 = 0;
const TYPE: u32 = 1;
const VARIABLE: u32 = 3;
const FUNCTION: u32 = 4;
const STRING: u32 = 5;
const NUMBER: u32 = 6;
const COMMENT: u32 = 7;
const PROPERTY: u32 = 8;
const NAMESPACE: u32 = 9;
const CLASS: u32 = 10;
const INTERFACE: u32 = 11;
const DECORATOR: u32 = 12;
const PARAMETER: u32 = 13;

const KEYWORDS: &[&str] = &[
    "import",
    "label",
    "enum",
    "type",
    "role",
    "extends",
    "source",
    "authority",
    "freshness",
    "as_of",
    "model",
    "corpus",
    "retriever",
    "snapshot",
    "labels",
    "mismatch",
    "refuse",
    "degrade",
    "retrieve",
    "top",
    "provider",
    "name",
    "version",
    "digest",
    "prompt",
    "input",
    "output",
    "clearance",
    "system",
    "action",
    "fn",
    "flow",
    "owner",
    "steward",
    "from",
    "param",
    "access",
    "trigger",
    "by",
    "view",
    "override",
    "replay",
    "cancel",
    "resume",
    "read",
    "evidence",
    "let",
    "gate",
    "info",
    "soft",
    "block",
    "when",
    "approve",
    "message",
    "infer",
    "fallback",
    "review",
    "outcomes",
    "reasons",
    "may",
    "edit",
    "approval",
    "auto",
    "of",
    "all",
    "otherwise",
    "distinct",
    "idempotency",
    "regardless",
    "within",
    "escalate",
    "remind",
    "before",
    "wait",
    "forever",
    "migrate",
    "waiting",
    "monitor",
    "over",
    "above",
    "below",
    "severity",
    "emit",
    "retain",
    "if",
    "then",
    "else",
    "and",
    "or",
    "not",
    "true",
    "false",
];

const BUILT_IN_TYPES: &[&str] =
    &["Bool", "Int", "Decimal", "Money", "Text", "Timestamp", "Duration", "Principal", "List"];

/// The tokens of a file, encoded as the protocol wants them (five numbers per token,
/// positions relative to the token before).
pub fn semantic_tokens(db: &Database, file: SourceFile) -> Json {
    let text = file.text(db);
    let scope = flow_sema::scope(db, file);
    let flows = &flow_sema::check_file(db, file).flows;
    let mut tokens: Vec<(usize, usize, u32)> = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut string_start: Option<usize> = None;
    let mut depth = 0usize;
    while i < bytes.len() {
        let c = bytes[i];
        if let Some(start) = string_start
            && depth == 0
        {
            match c {
                b'\\' => i += 2,
                b'"' => {
                    tokens.push((start, i + 1, STRING));
                    string_start = None;
                    i += 1;
                }
                b'{' => {
                    tokens.push((start, i + 1, STRING));
                    depth = 1;
                    i += 1;
                }
                b'\n' => {
                    tokens.push((start, i, STRING));
                    string_start = Some(i + 1);
                    i += 1;
                }
                _ => i += 1,
            }
            continue;
        }
        match c {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                let start = i;
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                tokens.push((start, i, COMMENT));
            }
            b'"' => {
                string_start = Some(i);
                i += 1;
            }
            b'{' if string_start.is_some() => {
                depth += 1;
                i += 1;
            }
            b'}' if string_start.is_some() => {
                depth -= 1;
                if depth == 0 {
                    string_start = Some(i);
                }
                i += 1;
            }
            b'@' if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let start = i;
                i += 1;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || b"-:.+".contains(&bytes[i])) {
                    i += 1;
                }
                tokens.push((start, i, NUMBER));
            }
            b'@' => {
                let start = i;
                i += 1;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                tokens.push((start, i, DECORATOR));
            }
            c if c.is_ascii_digit() => {
                let start = i;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'.' || bytes[i] == b'%')
                {
                    i += 1;
                }
                tokens.push((start, i, NUMBER));
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                let word = &text[start..i];
                tokens.push((start, i, classify(text, start, word, scope, flows)));
            }
            _ => i += 1,
        }
    }
    encode(text, &tokens)
}

fn classify(text: &str, start: usize, word: &str, scope: &flow_sema::Scope, flows: &[flow_sema::hir::Flow]) -> u32 {
    if crate::navigate::after_dot(text, start) {
        return PROPERTY;
    }
    if let Some(def) = scope.get(word) {
        return match def.kind {
            DefKind::Record | DefKind::Enum => TYPE,
            DefKind::Role => INTERFACE,
            DefKind::Label => DECORATOR,
            DefKind::Model | DefKind::Corpus => CLASS,
            DefKind::System | DefKind::Flow => NAMESPACE,
            DefKind::Fn => FUNCTION,
            DefKind::Source => VARIABLE,
        };
    }
    if KEYWORDS.contains(&word) {
        return KEYWORD;
    }
    if BUILT_IN_TYPES.contains(&word) {
        return TYPE;
    }
    let at = start as u32;
    if let Some(flow) = flows.iter().find(|f| f.span.start <= at && at <= f.span.end)
        && flow.params.iter().any(|p| p.name == word)
    {
        return PARAMETER;
    }
    if word.starts_with(|c: char| c.is_ascii_uppercase()) {
        // A currency code or a type not (yet) declared.
        return TYPE;
    }
    if text[start + word.len()..].trim_start().starts_with('(') {
        return FUNCTION;
    }
    VARIABLE
}

fn encode(text: &str, tokens: &[(usize, usize, u32)]) -> Json {
    let lines = Lines::new(text);
    let mut data = Vec::with_capacity(tokens.len() * 5);
    let (mut last_line, mut last_char) = (0u64, 0u64);
    for &(start, end, kind) in tokens {
        if start >= end {
            continue;
        }
        let position = lines.position(start as u32);
        let line = position["line"].as_u64().unwrap_or(0);
        let character = position["character"].as_u64().unwrap_or(0);
        let length: usize = text[start..end].chars().map(char::len_utf16).sum();
        let delta_char = if line == last_line { character - last_char } else { character };
        data.extend([line - last_line, delta_char, length as u64, u64::from(kind), 0]);
        (last_line, last_char) = (line, character);
    }
    json!({"data": data})
}
