//! Unit tests of spans, line indexing and rendering.

use crate::{Code, Diagnostic, FileId, LineCol, LineIndex, Sources, Span, render};

#[test]
fn line_col_counts_characters() {
    let text = "ab\nçé x\n";
    let index = LineIndex::new(text);
    assert_eq!(index.line_col(text, 0), LineCol { line: 1, column: 1 });
    assert_eq!(index.line_col(text, 3), LineCol { line: 2, column: 1 });
    // `x` is after two two-byte characters and a space.
    assert_eq!(index.line_col(text, 8), LineCol { line: 2, column: 4 });
    // Past the end and inside a character are clamped.
    assert_eq!(index.line_col(text, 4), LineCol { line: 2, column: 1 });
    assert_eq!(index.line_col(text, 99), LineCol { line: 3, column: 1 });
}

#[test]
fn lookup_by_code_or_name() {
    assert_eq!(Code::lookup("E1002"), Some(Code::E1002));
    assert_eq!(Code::lookup("e1002"), Some(Code::E1002));
    assert_eq!(Code::lookup("type-mismatch"), Some(Code::E1002));
    assert_eq!(Code::lookup("E9999"), None);
}

#[test]
fn render_survives_spans_out_of_range() {
    let mut sources = Sources::default();
    sources.add(FileId(0), "a.flow", "let x = é");
    let diagnostic = Diagnostic::new(Code::E0001, FileId(0), Span::new(9, 400), "boom").with_label(
        FileId(7),
        Span::new(3, 4),
        "elsewhere",
    );
    let text = render(&[diagnostic], &sources, false);
    assert!(text.contains("E0001"), "{text}");
    assert!(text.contains("boom"), "{text}");
}
