//! Robustness: no input makes the parser or the checker panic, overflow the stack or hang.
//! Random bytes, random mutations of the examples, and the pathological inputs that
//! stress a recursive-descent front end.

use proptest::prelude::*;

use crate::check_files;
use crate::examples::example_paths;

/// `bytes` with random edits applied: bytes removed, inserted or replaced, and with `cut`,
/// whole lines cut out.
fn mutate(mut bytes: Vec<u8>, edits: Vec<(prop::sample::Index, u8, u8)>, cut: bool) -> Vec<u8> {
    for (at, kind, byte) in edits {
        if bytes.is_empty() {
            break;
        }
        let at = at.index(bytes.len());
        match kind {
            0 => {
                bytes.remove(at);
            }
            1 => bytes.insert(at, byte),
            3 if cut => {
                // Cut a line out: unbalances blocks and items.
                let end = bytes[at..].iter().position(|b| *b == b'\n').map_or(bytes.len(), |i| at + i);
                bytes.drain(at..end);
            }
            _ => bytes[at] = byte,
        }
    }
    bytes
}

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
        let bytes = mutate(texts[which.index(texts.len())].clone(), edits, true);
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
fn ifs_nested_in_else_branches_are_an_error_not_a_crash() {
    // Each `else` branch runs to the end of the expression, so an `if` after a prefix or
    // an operator in it nests one level deeper, though every `if` has its `else`. A line
    // that starts with an item's keyword used as a name goes on with the same expression.
    let links = [
        "if true then 1 else -",
        "if true then 1 else 1 + ",
        "if true then 1 else not ",
        "if true then 1 else 1 +\n  let + ",
        "if true then 1 else true and\n  when and ",
    ];
    for link in links {
        let deep = format!("{}1", link.repeat(2_000));
        assert!(survive(flow_with(&deep)) > 0, "{link}");
    }
}

#[test]
fn deep_nesting_past_where_an_item_seems_to_end_is_an_error_not_a_crash() {
    let deep = "if a then b else not ".repeat(3_000);
    // pest reads on past a line that starts with `or`, or with a word at the item's column.
    assert!(survive(format!("fn g() -> Bool = a\nor {deep}c\n").into_bytes()) > 0);
    let text = format!("flow f {{\nversion \"1\"\n  let a = if c then d\n  else {deep}c\n}}\n");
    assert!(survive(text.into_bytes()) > 0);
    // Brackets or `if`s left open earlier do not hide the nesting of a later declaration,
    // however its keyword is followed.
    for (open, gap) in [("(", " "), ("if a then 1 else -", "\n"), ("(", " // c\n "), ("(", "\r")] {
        let deep = "if a then 1 else -".repeat(20_000);
        let text = format!("fn f() -> Int = {}1\nfn{gap}g() -> Int = {deep}1\n", open.repeat(33));
        assert!(survive(text.into_bytes()) > 0, "{open:?} {gap:?}");
    }
}

#[test]
fn nesting_inside_what_the_pre_scan_read_as_a_string_is_an_error_not_a_crash() {
    // The driver resumes at a `}` that the pre-scan took for an interpolation's end, so
    // the rest of the line was string to the pre-scan and code to pest.
    let deep = format!("{}1{}", "(".repeat(40_000), ")".repeat(40_000));
    for start in [
        "flow f {\n  let x = \"{\n  } ",
        "flow f {\n  let x = \"a {b c\n} ",
        "flow f {\n  let x = \"a {T {x: 1} \\\" } ",
    ] {
        let text = format!("{start}fn g() -> Int = {deep}\n");
        assert!(survive(text.into_bytes()) > 0, "{start:?}");
    }
}

#[test]
fn a_broken_else_if_chain_is_an_error_at_once() {
    // Each failed step of the chain once made pest read the rest again as a nested `if`:
    // time doubled with every step.
    let text = format!("fn f() -> Int = {}?\n", "if c then x else if c then ".repeat(30));
    assert!(survive(text.into_bytes()) > 0);
}

#[test]
fn not_between_comparisons_is_an_error_not_a_crash() {
    // `not` binds loosely, so each `== not a` nests the rest without any bracket.
    for link in [" == not a", " + not a"] {
        let long = format!("a{}", link.repeat(20_000));
        assert!(survive(flow_with(&long)) > 0, "{link}");
    }
}

#[test]
fn ifs_in_many_items_are_not_nesting() {
    // The `else` branches of one item end where the next item starts; a bracket level
    // with hundreds of `if` expressions in its items checks clean.
    let lets: String = (0..300).map(|i| format!("  let x{i} = if n > {i} then 1 else 2 + n\n")).collect();
    let gates: String =
        (0..100).map(|i| format!("  gate g{i}: info\n    when if n > {i} then true else n < 0\n")).collect();
    let text = format!(
        "role r\nflow f {{\n  version \"1.0.0\"\n  owner r\n  steward r\n  input n: Int\n  output e: Int\n{lets}{gates}  emit e = if n > 1 then 1 else 2\n}}\n"
    );
    let checked = check_files(&[("ifs.flow".to_owned(), text.into_bytes())]);
    assert!(checked.clean(), "{}", checked.render());
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
    assert!(checked.clean(), "{}", checked.render());
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

/// The plan file of the spend approval example, as `flowc build` writes it.
fn example_plan() -> &'static (String, serde_json::Value) {
    static PLAN: std::sync::OnceLock<(String, serde_json::Value)> = std::sync::OnceLock::new();
    PLAN.get_or_init(|| {
        let root = crate::examples::examples_dir();
        let mut files = vec![(
            "spend_approval.flow".to_owned(),
            std::fs::read(root.join("spend_approval.flow")).unwrap_or_default(),
        )];
        files.push(("common/org.flow".to_owned(), std::fs::read(root.join("common/org.flow")).unwrap_or_default()));
        files.push((
            "prompts/spend_risk_v3.md".to_owned(),
            std::fs::read(root.join("prompts/spend_risk_v3.md")).unwrap_or_default(),
        ));
        let checked = check_files(&files);
        let plan = crate::plans(&checked).into_iter().flatten().next().expect("the example compiles");
        let text = flow_ir::encode::to_json(plan.plan());
        let value = serde_json::to_value(plan.plan()).unwrap_or_default();
        (text, value)
    })
}

/// Loads a plan file and, when it verifies, uses it every way people do; fails only on a
/// panic.
fn survive_plan(bytes: &[u8]) -> bool {
    let Ok(plan) = flow_ir::load(bytes) else { return false };
    let _ = flow_ir::print::dump(&plan);
    for format in [flow_ir::render::GraphFormat::Dot, flow_ir::render::GraphFormat::Mermaid] {
        for layer in [flow_ir::render::Layer::All, flow_ir::render::Layer::Runtime, flow_ir::render::Layer::Governance]
        {
            let _ = flow_ir::render::graph(&plan, format, layer);
        }
    }
    static ORIGINAL: std::sync::OnceLock<flow_ir::VerifiedPlan> = std::sync::OnceLock::new();
    let original =
        ORIGINAL.get_or_init(|| flow_ir::load(example_plan().0.as_bytes()).expect("the example's plan loads"));
    let _ = flow_ir::diff::diff(original.plan(), plan.plan());
    let directory = flow_ir::separation::Directory::new([("ana".to_owned(), vec!["manager".to_owned()])]);
    let _ = flow_ir::separation::check(&plan, &directory);
    true
}

/// Every value of a JSON tree, by a path of indexes and keys; the scalars go to `pool`.
fn paths(
    value: &serde_json::Value,
    prefix: &mut Vec<String>,
    out: &mut Vec<Vec<String>>,
    pool: &mut Vec<serde_json::Value>,
) {
    out.push(prefix.clone());
    if !value.is_array() && !value.is_object() {
        pool.push(value.clone());
    }
    match value {
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                prefix.push(i.to_string());
                paths(item, prefix, out, pool);
                prefix.pop();
            }
        }
        serde_json::Value::Object(map) => {
            for (key, item) in map {
                prefix.push(key.clone());
                paths(item, prefix, out, pool);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn at_mut<'v>(value: &'v mut serde_json::Value, path: &[String]) -> Option<&'v mut serde_json::Value> {
    let mut current = value;
    for segment in path {
        current = match current {
            serde_json::Value::Array(items) => items.get_mut(segment.parse::<usize>().ok()?)?,
            serde_json::Value::Object(map) => map.get_mut(segment)?,
            _ => return None,
        };
    }
    Some(current)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn damaged_plan_files_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<u8>()), 1..8),
    ) {
        let bytes = mutate(example_plan().0.clone().into_bytes(), edits, false);
        survive_plan(&bytes);
    }

    /// Changes of meaning that keep the plan's shape, sealed again as a forger would: the
    /// verifier refuses or accepts them, and never panics.
    #[test]
    fn forged_plans_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), 0u8..4), 1..6),
    ) {
        let (_, original) = example_plan();
        let mut value = original.clone();
        // Replacement values taken from the plan itself: names, types, operators, numbers.
        let (mut all, mut pool) = (Vec::new(), Vec::new());
        paths(&value, &mut Vec::new(), &mut all, &mut pool);
        pool.extend([serde_json::json!(null), serde_json::json!([]), serde_json::json!(-1), serde_json::json!("")]);
        for (target, replacement, kind) in edits {
            let path = &all[target.index(all.len())];
            let Some(slot) = at_mut(&mut value, path) else { continue };
            match kind {
                0 => *slot = pool[replacement.index(pool.len())].clone(),
                1 => if let serde_json::Value::Array(items) = slot && !items.is_empty() {
                    let i = replacement.index(items.len());
                    items.remove(i);
                },
                2 => if let serde_json::Value::Array(items) = slot && !items.is_empty() {
                    let i = replacement.index(items.len());
                    let copy = items[i].clone();
                    items.push(copy);
                },
                _ => if let serde_json::Value::Array(items) = slot && items.len() > 1 {
                    let i = replacement.index(items.len());
                    items.swap(0, i);
                },
            }
        }
        crate::rehash(&mut value);
        let text = serde_json::to_string(&value).unwrap_or_default();
        survive_plan(text.as_bytes());
    }
}
