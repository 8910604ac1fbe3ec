//! The formatter: it formats what parses, keeps every token and comment (its own check), and
//! formatting its result again changes nothing.
#![no_main]

libfuzzer_sys::fuzz_target!(|text: &str| {
    let file = flow_diagnostics::FileId(0);
    if let Ok(formatted) = flow_syntax::format::format(text, file) {
        match flow_syntax::format::format(&formatted, file) {
            Ok(again) => assert_eq!(again, formatted, "formatting is not idempotent"),
            Err(error) => panic!("a formatted text does not format again: {error:?}"),
        }
    }
});
