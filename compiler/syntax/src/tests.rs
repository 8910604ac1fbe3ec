//! Unit tests of the parser: each test is one source text and the expected result.

use flow_diagnostics::{FileId, Sources, render};

use crate::parse;

mod quick;

/// The rendered diagnostics of `src`, without colour.
fn diagnostics(src: &str) -> String {
    let parse = parse(src, FileId(0));
    let mut sources = Sources::default();
    sources.add(FileId(0), "test.flow", src);
    render(&parse.diagnostics, &sources, false)
}

#[track_caller]
fn check_clean(src: &str) {
    let rendered = diagnostics(src);
    assert!(rendered.is_empty(), "{rendered}");
}

#[track_caller]
fn check_error(src: &str, expect: &str) {
    let rendered = diagnostics(src);
    assert!(rendered.contains(expect), "expected `{expect}` in:\n{rendered}");
}

#[test]
fn smoke() {
    check_clean("role clerk\nflow f {\n  version \"1.0.0\"\n  owner clerk\n  steward clerk\n}\n");
}

#[test]
fn missing_operand_is_reported_at_the_operand() {
    check_error("flow f {\n  let x = 1 +\n}\n", "expected an expression, found `}`");
}

#[test]
fn misspelt_keyword_suggests() {
    check_error("flow f {\n  lett x = 1\n}\n", "did you mean `let`?");
}

/// Whether the pre-scan finds `if`s nested too deep in `text`.
fn too_deep(text: &str) -> bool {
    crate::lexer::prescan(text).iter().any(|e| matches!(e, crate::lexer::LexError::TooDeep { .. }))
}

#[test]
fn ifs_side_by_side_are_not_nesting() {
    let branch = |i: usize| format!("if a > {i} then 1 else 2");
    let many = |sep: &str| (0..40).map(branch).collect::<Vec<_>>().join(sep);
    // Arguments and list items, records with and without commas, test statements, rows.
    assert!(!too_deep(&format!("flow f {{\n  let x = f({})\n}}\n", many(", "))));
    assert!(!too_deep(&format!("flow f {{\n  let x = T {{ {} }}\n}}\n", many(", "))));
    let fields: String = (0..40).map(|i| format!("    a{i}: {}\n", branch(i))).collect();
    assert!(!too_deep(&format!("flow f {{\n  let x = T {{\n{fields}  }}\n}}\n")));
    let expects: String = (0..40).map(|i| format!("  expect {}\n", branch(i))).collect();
    assert!(!too_deep(&format!("test \"t\" {{\n  flow f\n{expects}}}\n")));
    let rows: String = (0..40).map(|i| format!("    when {} == 1 => auto\n", branch(i))).collect();
    assert!(!too_deep(&format!("flow f {{\n  approval a {{\n{rows}  }}\n}}\n")));
    let rows: String = (0..40).map(|i| format!("    when (n > {i}) and if v then a else b => auto\n")).collect();
    assert!(!too_deep(&format!("flow f {{\n  approval a {{\n{rows}  }}\n}}\n")));
    let expects: String =
        (0..40).map(|i| format!("  expect -1 == {}\n  expect (x) == {}\n", branch(i), branch(i))).collect();
    assert!(!too_deep(&format!("test \"t\" {{\n  flow f\n{expects}}}\n")));
    let fields: String = (0..40).map(|i| format!("a{i}: {} ", branch(i))).collect();
    assert!(!too_deep(&format!("flow f {{\n  let x = T {{ {fields}}}\n}}\n")));
    // Money amounts go on: `1 USD + if …` nests.
    assert!(too_deep(&format!("flow f {{\n  let x = {}1\n}}\n", "if a then 1 else 1 USD + ".repeat(40))));
    // Nested in `else` branches, they are.
    assert!(too_deep(&format!("flow f {{\n  let x = f({})\n}}\n", many(" + "))));
}

#[test]
fn ifs_in_conditions_and_then_branches_end_with_them() {
    // A table of 40 arms, each deciding with an `if` of its own: pest nests two deep.
    let arms: String = (1..40).map(|i| format!("    else if t == {i} then if vip then {i} else {i} + 1\n")).collect();
    let text = format!("flow f {{\n  let fee = if t == 0 then if vip then 0 else 1\n{arms}    else 99\n}}\n");
    assert!(!too_deep(&text));
    let conditions: String = (0..40).map(|i| format!(" else if (if a then b else c) == {i} then {i}")).collect();
    assert!(!too_deep(&format!("flow f {{\n  let x = if a then 0{conditions} else 1\n}}\n")));
}

#[test]
fn deep_nesting_is_reported_again_after_brackets_left_open() {
    let text = format!("fn f() -> Int = {}1\nfn g() -> Int = {}1\n", "(".repeat(33), "if a then 1 else -".repeat(40));
    let deep: Vec<usize> = crate::lexer::prescan(&text)
        .iter()
        .filter_map(|e| match e {
            crate::lexer::LexError::TooDeep { at, .. } => Some(*at),
            _ => None,
        })
        .collect();
    let g = text.find("fn g").unwrap_or_default();
    assert!(deep.iter().any(|&at| at > g), "{deep:?}");
}
