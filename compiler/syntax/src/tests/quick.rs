//! The quick reading of `let` items (`tree/quick.rs`) against pest alone: the same tree
//! and the same diagnostics on every flow in the repository, on the benchmarks' generated
//! flows and on random expressions; and the quick reading does apply to the forms it
//! claims, so that these comparisons are not comparing pest with itself.

use std::path::{Path, PathBuf};

use flow_diagnostics::FileId;
use proptest::prelude::*;

use crate::tree::Builder;
use crate::{parse, parse_with_pest_only};

#[path = "../../../sema/benches/generate.rs"]
#[expect(dead_code, reason = "shared with the front-end benchmark, which uses more of it")]
mod generate;

#[track_caller]
fn assert_same(text: &str) {
    let quick = parse(text, FileId(0));
    let pest = parse_with_pest_only(text, FileId(0));
    assert!(quick == pest, "the quick reading and pest disagree on:\n{text}\nquick: {quick:#?}\npest: {pest:#?}");
}

/// Whether the quick reading reads the `let` item at `at`.
fn reads_quickly(text: &str, at: usize) -> bool {
    Builder::new(text, at, FileId(0)).quick_let(at).is_some()
}

fn flow_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            flow_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "flow") {
            out.push(path);
        }
    }
}

#[test]
fn every_flow_in_the_repository_parses_the_same_either_way() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    flow_files(&root.join("examples"), &mut files);
    flow_files(&root.join("tests/corpus"), &mut files);
    assert!(files.len() > 100, "found only {} flows", files.len());
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert_same(&text);
    }
}

#[test]
fn the_benchmarks_dense_flows_are_read_quickly_and_the_same() {
    let (files, _) = generate::workspace(2);
    let (single, _) = generate::single_flow();
    let mut lets = 0;
    for (_, text) in files.iter().chain(&single) {
        assert_same(text);
        for (at, _) in text.match_indices("\n  let ") {
            lets += 1;
            assert!(
                reads_quickly(text, at + 3),
                "not read quickly: {}",
                &text[at + 3..text[at + 1..].find('\n').map_or(text.len(), |e| at + 1 + e)]
            );
        }
    }
    assert!(lets > 500, "only {lets} let items");
}

/// Whitespace and comments between two tokens, including none.
fn gap() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![" ", " ", " ", "", "  ", "\n    ", " // note\n  ", "\t", "\r\n ", "\n// {\n  "])
}

/// Leaves the quick reading covers, some of them wrong in ways pest words.
fn leaf() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "a",
        "b_1",
        "request",
        "_x",
        "iff",
        "order",
        "andy",
        "nota",
        "v12",
        "truex",
        "x",
        "Then",
        "0",
        "7",
        "1_000",
        "12__3",
        "99999999999999999999999",
        "12.5",
        "0.70",
        "1_0.0_5",
        "3.",
        "1.x",
        "100 USD",
        "1_000.50\tEUR",
        "5 usd",
        "7  XYZ",
        "2 USDX",
        "5%",
        "2.5%",
        "48h",
        "5d",
        "3x",
        "1.5h",
        "true",
        "false",
        "\"plain\"",
        "\"a {x} b\"",
        "\"esc \\\" \\n \\t \\\\ \\{ \\}\"",
        "\"{ a + 1 }\"",
        "\"bad \\q\"",
        "\"}{b.c}\"",
        "\"\"",
        "\"ü {a}\"",
        "Tier.low",
        "Tier . high",
        "Rec { a: 1, b: x }",
        "Rec{}",
        "Rec { a: 1 b: 2, }",
        "Rec { a: 1,, }",
        "@2026-01-01",
        "[1, 2]",
    ])
    .prop_map(str::to_owned)
}

fn expr() -> impl Strategy<Value = String> {
    let ops = prop::sample::select(vec!["or", "and", "==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/"]);
    leaf().prop_recursive(4, 40, 4, move |inner| {
        let arg = (prop::sample::select(vec!["", "", "n: ", "x => ", "n : ", "x=>"]), inner.clone())
            .prop_map(|(label, value)| format!("{label}{value}"));
        prop_oneof![
            (inner.clone(), gap(), ops.clone(), gap(), inner.clone())
                .prop_map(|(l, g1, op, g2, r)| format!("{l}{g1}{op}{g2}{r}")),
            (prop::sample::select(vec!["not ", "-", "- ", "not", "not\n  "]), inner.clone())
                .prop_map(|(op, e)| format!("{op}{e}")),
            (gap(), inner.clone(), gap()).prop_map(|(g1, e, g2)| format!("({g1}{e}{g2})")),
            (
                prop::sample::select(vec!["f", "is_present", "any"]),
                gap(),
                prop::collection::vec(arg, 0..4),
                any::<bool>()
            )
                .prop_map(|(name, g, args, trailing)| {
                    let comma = if trailing && !args.is_empty() { "," } else { "" };
                    format!("{name}{g}({}{comma})", args.join(", "))
                }),
            (inner.clone(), gap(), prop::sample::select(vec!["amount", "tier", "B", "1"]))
                .prop_map(|(e, g, field)| format!("{e}{g}.{field}")),
            (inner.clone(), inner.clone(), prop::collection::vec((inner.clone(), inner.clone()), 0..2), inner.clone())
                .prop_map(|(c, t, more, e)| {
                    let more: String = more.iter().map(|(c, t)| format!(" else if {c} then {t}")).collect();
                    format!("if {c} then {t}{more} else {e}")
                }),
            inner.clone().prop_map(|e| format!("\"pre {{{e}}} post\"")),
            (inner.clone(), inner).prop_map(|(a, b)| format!("Rec {{ a: {a}, b: {b} }}")),
        ]
    })
}

/// Anything a `let` item's text may run into: tokens, half tokens and punctuation.
fn soup() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        leaf(),
        prop::sample::select(vec![
            "(", ")", "{", "}", "[", "]", ",", ".", ":", "=>", "=", "\"", "\\", "//", "if", "then", "else", "let",
            "gate", "not", "-", "+", "or", "==", "<", "\n", "@", "é", "\u{feff}",
        ])
        .prop_map(str::to_owned),
    ];
    (prop::collection::vec((token, gap()), 1..12))
        .prop_map(|parts| parts.into_iter().map(|(token, gap)| format!("{token}{gap}")).collect())
}

/// A flow whose first item is `let x = <value>`, then more text.
fn flow_with(value: &str, after: &str) -> String {
    format!("flow f {{\n  /// The value.\n  let x = {value}{after}\n  let y = 1\n}}\n")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_expressions_parse_the_same_either_way(value in expr(), after in prop::sample::select(vec!["", " // end", "\n", "  "])) {
        let text = flow_with(&value, after);
        assert_same(&text);
        // Where pest finds nothing to say, the quick reading applies: unless the value
        // uses a form it leaves to pest (a timestamp, a list, an interpolation over
        // several lines or holding a string).
        let clean = parse_with_pest_only(&text, FileId(0)).diagnostics.is_empty();
        let interpolation = value.contains("\"pre {") || value.contains("{\"");
        let covered = !value.contains('@') && !value.contains('[') && !interpolation;
        if clean && covered {
            let at = text.find("let x").unwrap_or_default();
            prop_assert!(reads_quickly(&text, at), "not read quickly:\n{text}");
        }
    }

    #[test]
    fn any_text_after_let_parses_the_same_either_way(value in soup()) {
        assert_same(&flow_with(&value, ""));
    }
}
