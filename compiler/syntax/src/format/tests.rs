//! Unit tests of the formatter: each is a text and its canonical form.

use flow_diagnostics::FileId;

use super::{FormatError, format};

#[track_caller]
fn check(input: &str, expect: &str) {
    let formatted = match format(input, FileId(0)) {
        Ok(text) => text,
        Err(error) => panic!("{error:?}"),
    };
    assert_eq!(formatted, expect, "\n--- formatted:\n{formatted}");
    let again = format(&formatted, FileId(0)).ok();
    assert_eq!(again.as_deref(), Some(expect), "formatting is not idempotent");
}

#[test]
fn spaces_and_indentation_are_canonical() {
    check(
        "role   clerk\nflow f{\nversion \"1.0.0\"\n    owner clerk steward clerk\ninput x:Int\nlet y=x+1\n}",
        "role clerk\nflow f {\n  version \"1.0.0\"\n  owner clerk\n  steward clerk\n  input x: Int\n  let y = x + 1\n}\n",
    );
}

#[test]
fn syntax_errors_are_refused() {
    assert!(matches!(format("flow f {\n  let x = 1 +\n}\n", FileId(0)), Err(FormatError::Syntax(_))));
}

#[test]
fn a_byte_order_mark_stays_first_and_line_breaks_become_newlines() {
    check("\u{feff}// first\r\nrole  clerk\r\n", "\u{feff}// first\nrole clerk\n");
    check("\u{feff}role clerk", "\u{feff}role clerk\n");
}

#[test]
fn a_file_of_comments_keeps_them() {
    check("\n\n// one\n\n\n// two\n", "// one\n\n// two\n");
    check("", "");
}
