//! The parser: any text gives a tree and diagnostics, never a panic or a hang; and the
//! quick reading of `let` items gives exactly what pest alone gives.
#![no_main]

libfuzzer_sys::fuzz_target!(|text: &str| {
    let file = flow_diagnostics::FileId(0);
    let parsed = flow_syntax::parse(text, file);
    assert_eq!(parsed, flow_syntax::parse_with_pest_only(text, file), "the quick reading and pest disagree");
});
