//! Robustness: no input makes the parser or the checker panic, overflow the stack or hang.
//! Random bytes, random mutations of the examples, and the pathological inputs that
//! stress a recursive-descent front end.

use proptest::prelude::*;

use crate::check_files;
use crate::examples::example_paths;

/// Parses and checks `bytes` as one file; the test fails if this panics.
fn survive(bytes: Vec<u8>) -> usize {
    check_files(&[("fuzz.flow".to_owned(), bytes)]).diagnostics.len()
}

fn example_texts() -> Vec<Vec<u8>> {
    example_paths().iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

/// Cases per property; `RUN_SLOW_TESTS=1` runs many more.
fn cases() -> u32 {
    if std::env::var_os("RUN_SLOW_TESTS").is_some() { 20_000 } else { 400 }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2_000)) {
        survive(bytes);
    }

    #[test]
    fn random_text_of_flow_tokens_never_panics(tokens in proptest::collection::vec(
        prop::sample::select(vec![
            "flow", "f", "{", "}", "(", ")", "[", "]", "let", "x", "=", "+", "if", "then", "else", "\"",
            "\"a {x}\"", "gate", "g", ":", "soft", "when", "approval", "=>", "auto", "1", "of", "role",
            "type", "T", "Money", "USD", "10 USD", "@", "@2026-01-01", "7d", "5%", "\n", " ", "//", ",", ".",
            "emit", "infer", "review", "action", "and", "or", "not", "==", "<", "import", "\"x.flow\"",
        ]),
        0..300,
    )) {
        survive(tokens.join(" ").into_bytes());
    }

    #[test]
    fn mutated_examples_never_panic(
        which in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..4, any::<u8>()), 1..12),
    ) {
        let texts = example_texts();
        prop_assume!(!texts.is_empty());
        let mut bytes = texts[which.index(texts.len())].clone();
        for (at, kind, byte) in edits {
            if bytes.is_empty() {
                break;
            }
            let at = at.index(bytes.len());
            match kind {
                0 => { bytes.remove(at); }
                1 => bytes.insert(at, byte),
                2 => bytes[at] = byte,
                _ => {
                    // Cut a line out: unbalances blocks and items.
                    let end = bytes[at..].iter().position(|b| *b == b'\n').map_or(bytes.len(), |i| at + i);
                    bytes.drain(at..end);
                }
            }
        }
        survive(bytes);
    }
}

fn flow_with(expr: &str) -> Vec<u8> {
    format!("role r\nflow f {{\n  version \"1.0.0\"\n  owner r\n  steward r\n  let x = {expr}\n}}\n").into_bytes()
}

#[test]
fn ten_thousand_nested_brackets_are_an_error_not_a_crash() {
    let deep = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(survive(flow_with(&deep)) > 0);
}

#[test]
fn ten_thousand_nested_ifs_are_an_error_not_a_crash() {
    let deep = format!("{}1{}", "if true then ".repeat(10_000), " else 2".repeat(10_000));
    assert!(survive(flow_with(&deep)) > 0);
}

#[test]
fn long_chains_of_operators_are_an_error_not_a_crash() {
    for op in [" + 1", " and true", " * 2"] {
        let long = format!("1{}", op.repeat(10_000));
        assert!(survive(flow_with(&long)) > 0, "{op}");
    }
    for prefix in ["not ", "-"] {
        let long = format!("{}1", prefix.repeat(10_000));
        assert!(survive(flow_with(&long)) > 0, "{prefix}");
    }
}

#[test]
fn long_else_if_chains_are_flat() {
    // An `else if` chain is not nesting: a thousand branches check fine.
    let chain =
        format!("{} else 0", (0..1000).map(|i| format!("if n == {i} then {i}")).collect::<Vec<_>>().join(" else "));
    let text = format!(
        "role r\nflow f {{\n  version \"1.0.0\"\n  owner r\n  steward r\n  input n: Int\n  let x = {chain}\n}}\n"
    );
    let checked = check_files(&[("chain.flow".to_owned(), text.into_bytes())]);
    assert!(checked.diagnostics.is_empty(), "{}", checked.render());
}

#[test]
fn unterminated_strings_and_blocks_are_reported() {
    for text in
        ["flow f {\n  let x = \"abc\n}\n", "type T {\n  a: Text\n", "flow f {\n  approval a {\n", "enum E { a, b"]
    {
        assert!(survive(text.as_bytes().to_vec()) > 0, "{text:?}");
    }
}

#[test]
fn a_long_single_line_is_handled() {
    // Many declarations on one line, 1 MB; `RUN_SLOW_TESTS=1` uses 10 MB.
    let size = if std::env::var_os("RUN_SLOW_TESTS").is_some() { 10_000_000 } else { 1_000_000 };
    let mut line = String::new();
    let mut n = 0;
    while line.len() < size {
        line.push_str(&format!("label l{n} "));
        n += 1;
    }
    assert_eq!(survive(line.into_bytes()), 0);
    let garbage = "%$#".repeat(size / 3);
    assert!(survive(garbage.into_bytes()) > 0);
}

#[test]
fn deep_nesting_after_an_unterminated_string_is_still_caught() {
    let deep = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
    let text =
        format!("role r\nflow f {{\n  let s = \"open\n  let x = {deep}\n  let n = {}1\n}}\n", "not ".repeat(10_000));
    assert!(survive(text.into_bytes()) >= 3);
}
