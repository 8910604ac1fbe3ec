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
