//! The parser: any text gives a tree and diagnostics, never a panic or a hang.
#![no_main]

libfuzzer_sys::fuzz_target!(|text: &str| {
    let _ = flow_syntax::parse(text, flow_diagnostics::FileId(0));
});
