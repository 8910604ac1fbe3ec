//! Quick fixes: the rows an approval matrix misses, from the counterexamples of its
//! exhaustiveness diagnostic (`E2003`).
//!
//! A counterexample made of `x == value` parts (enums and booleans) is a row condition as
//! it stands; one with a numeric point (`request.amount = 10_000 USD`) says where a row is
//! missing but not how wide it should be, so it gets no quick fix. A new row requires what
//! the matrix's last row with approvers requires, so it never approves automatically by
//! accident; the steward edits it from there.

use serde_json::{Value as Json, json};

use crate::convert::Lines;

/// The conditions a matrix misses, when each can be written as a row condition.
fn missing_conditions(message: &str) -> Option<Vec<String>> {
    let mut cases = Vec::new();
    let first = message.split("does not cover `").nth(1)?;
    cases.push(first.split('`').next()?.to_owned());
    for note in message.split("nor `").skip(1) {
        cases.push(note.split('`').next()?.to_owned());
    }
    cases
        .into_iter()
        .map(|case| {
            let parts: Vec<&str> = case.split(", ").collect();
            parts.iter().all(|p| p.contains(" == ")).then(|| parts.join(" and "))
        })
        .collect()
}

/// The code actions for the diagnostics the client sends back (`context.diagnostics`).
pub fn code_actions(uri: &str, text: &str, diagnostics: &[Json]) -> Vec<Json> {
    let lines = Lines::new(text);
    let mut actions = Vec::new();
    for diagnostic in diagnostics.iter().filter(|d| d["code"] == "E2003") {
        let message = diagnostic["message"].as_str().unwrap_or("");
        let Some(conditions) = missing_conditions(message) else { continue };
        // The matrix: from its name to its closing brace.
        let name_at = lines.offset(&diagnostic["range"]["start"]);
        let Some(open) = text[name_at..].find('{').map(|i| name_at + i) else { continue };
        let Some(close) = matching_brace(text, open) else { continue };
        let body = &text[open + 1..close];
        let row_lines: Vec<&str> = body.lines().map(str::trim).filter(|l| l.contains("=>")).collect();
        let requirement = row_lines
            .iter()
            .rev()
            .filter_map(|l| l.split("=>").nth(1).map(str::trim))
            .find(|r| *r != "auto")
            .map(str::to_owned)
            .or_else(|| owner(&text[..open]).map(|role| format!("1 of {role}")));
        let Some(requirement) = requirement else { continue };
        let indent = body
            .lines()
            .find(|l| l.contains("=>"))
            .map(|l| l[..l.len() - l.trim_start().len()].to_owned())
            .unwrap_or_else(|| "    ".to_owned());
        // Before `distinct from`, or else before the closing brace, at the start of its line.
        let anchor = body.find("distinct from").map(|i| open + 1 + i).unwrap_or(close);
        let insert_at = text[..anchor].rfind('\n').map_or(anchor, |i| i + 1);
        let new_text: String = conditions.iter().map(|c| format!("{indent}when {c} => {requirement}\n")).collect();
        let position = lines.position(insert_at as u32);
        let title = if conditions.len() == 1 {
            format!("Add the missing row `when {} => {requirement}`", conditions[0])
        } else {
            format!("Add the {} missing rows", conditions.len())
        };
        actions.push(json!({
            "title": title,
            "kind": "quickfix",
            "diagnostics": [diagnostic],
            "edit": {"changes": {uri: [{"range": {"start": position, "end": position}, "newText": new_text}]}},
        }));
    }
    actions
}

/// The role the flow names as its `owner`, written before `at`.
fn owner(text: &str) -> Option<&str> {
    let line = text.lines().rev().find(|l| l.trim_start().starts_with("owner "))?;
    line.trim().strip_prefix("owner ")?.split_whitespace().next()
}

/// The `}` that closes the `{` at `open`, skipping strings and comments.
fn matching_brace(text: &str, open: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = open;
    let mut in_string = false;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_string => i += 1,
            b'"' => in_string = !in_string,
            b'/' if !in_string && bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'{' if !in_string => depth += 1,
            b'}' if !in_string => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}
