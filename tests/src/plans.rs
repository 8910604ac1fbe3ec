//! The plans of the examples: a reviewed snapshot of each (as text), of the graphs of one,
//! and the stability of their hashes: formatting, comments, doc comments and the order of
//! declarations and flow items leave a plan's hash as it is; every kind of change of
//! meaning changes it, and `diff` says so in the steward's words.

use std::path::{Path, PathBuf};

use flow_ir::render::{GraphFormat, Layer};

use crate::examples::{example_paths, examples_dir};
use crate::{check_files, plans};

/// The files of the examples directory, as `(path, bytes)` with paths under `examples/`,
/// the example `main` first.
pub(crate) fn workspace(main: &str) -> Vec<(String, Vec<u8>)> {
    let root = examples_dir();
    let mut files = vec![(format!("examples/{main}"), std::fs::read(root.join(main)).unwrap_or_default())];
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let mut entries: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let relative = path.strip_prefix(&root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
            if relative != main {
                files.push((format!("examples/{relative}"), std::fs::read(&path).unwrap_or_default()));
            }
        }
    }
    files
}

/// The verified plan of the only flow of the main file, which must check clean.
pub(crate) fn plan_of(files: &[(String, Vec<u8>)]) -> flow_ir::VerifiedPlan {
    let checked = check_files(files);
    assert!(checked.clean(), "{}", checked.render());
    let plans = plans(&checked);
    assert_eq!(plans.len(), 1, "one flow per example");
    plans.into_iter().flatten().next().expect("the flow compiles to a plan")
}

fn snapshot(dir: &str, name: &str, text: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshots").join(dir));
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.bind(|| insta::assert_snapshot!(name.to_owned(), text));
}

/// The example files that declare a flow, by file name.
fn flow_examples() -> Vec<String> {
    example_paths()
        .iter()
        .filter(|p| std::fs::read_to_string(p).is_ok_and(|t| t.lines().any(|l| l.starts_with("flow "))))
        .filter_map(|p| p.strip_prefix(examples_dir()).ok().map(|r| r.to_string_lossy().replace('\\', "/")))
        .collect()
}

#[test]
fn every_example_builds_to_a_plan_that_reads_back_the_same() {
    let examples = flow_examples();
    assert!(examples.len() >= 5, "{examples:?}");
    for example in examples {
        let verified = plan_of(&workspace(&example));
        // The plan file reads back to the same plan, and verifies again.
        let text = flow_ir::encode::to_json(verified.plan());
        let loaded = flow_ir::load(text.as_bytes()).unwrap_or_else(|e| panic!("{example}: {e}"));
        assert_eq!(loaded.plan(), verified.plan(), "{example}");
        snapshot("examples", example.trim_end_matches(".flow"), &flow_ir::print::dump(&verified));
    }
}

#[test]
fn the_source_map_points_at_where_items_were_written() {
    let files = workspace("spend_approval.flow");
    let verified = plan_of(&files);
    let text = String::from_utf8_lossy(&files[0].1).into_owned();
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).map(|i| i + 1).unwrap_or(0);
    let map = &verified.plan().source_map;
    use flow_ir::plan::DescriptionKey;
    assert_eq!(
        map.locate(&DescriptionKey::Node("risk")),
        Some(format!("examples/spend_approval.flow:{}:9", line_of("infer risk")))
    );
    assert_eq!(
        map.locate(&DescriptionKey::Row("spend", 3)),
        Some(format!("examples/spend_approval.flow:{}:5", line_of("when risk.tier == medium")))
    );
    let role = map.locate(&DescriptionKey::Role("manager")).unwrap_or_default();
    assert!(role.starts_with("examples/common/org.flow:"), "{role}");
    assert_eq!(map.prompts.get("risk_v3").map(String::as_str), Some("examples/prompts/spend_risk_v3.md"));
}

#[test]
fn graphs_of_the_spend_approval_example() {
    let verified = plan_of(&workspace("spend_approval.flow"));
    for (name, format, layer) in [
        ("spend_approval.dot", GraphFormat::Dot, Layer::All),
        ("spend_approval.runtime.dot", GraphFormat::Dot, Layer::Runtime),
        ("spend_approval.governance.dot", GraphFormat::Dot, Layer::Governance),
        ("spend_approval.mermaid", GraphFormat::Mermaid, Layer::All),
        ("spend_approval.governance.mermaid", GraphFormat::Mermaid, Layer::Governance),
        ("spend_approval.runtime.svg", GraphFormat::Svg, Layer::Runtime),
        ("spend_approval.governance.svg", GraphFormat::Svg, Layer::Governance),
    ] {
        snapshot("graphs", name, &flow_ir::render::graph(&verified, format, layer));
    }
    // What the stewards' page shows: what stands before what, in three columns, and each
    // check with who decides and who may override.
    snapshot("graphs", "spend_approval.governance-columns.svg", &flow_ir::governance::svg(&verified));
    snapshot("graphs", "spend_approval.governance.txt", &format!("{:#?}", flow_ir::governance::of(&verified)));
}

/// Graphviz reads every graph of every example. Without `dot`, the test says so and passes,
/// except in CI (`CI` set), where `.ci/run` installs Graphviz and its absence is a failure.
#[test]
fn graphviz_reads_every_graph() {
    let found = std::process::Command::new("dot").arg("-V").output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(std::env::var_os("CI").is_none(), "Graphviz (`dot`) is required in CI; `.ci/run` installs it");
        crate::postgres::skipped("Graphviz (`dot`) is not installed");
        return;
    }
    for example in flow_examples() {
        let verified = plan_of(&workspace(&example));
        for layer in [Layer::All, Layer::Runtime, Layer::Governance] {
            let dot = flow_ir::render::graph(&verified, GraphFormat::Dot, layer);
            let mut child = std::process::Command::new("dot")
                .args(["-Tsvg", "-o", "/dev/null"])
                .stdin(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("dot starts");
            if let Some(mut stdin) = child.stdin.take() {
                use std::io::Write;
                stdin.write_all(dot.as_bytes()).expect("dot reads the graph");
            }
            let output = child.wait_with_output().expect("dot finishes");
            let warnings = String::from_utf8_lossy(&output.stderr);
            assert!(output.status.success() && warnings.trim().is_empty(), "{example} {layer:?}: {warnings}\n{dot}");
        }
    }
}

/// Every example's pictures, in every layer, are laid out cleanly — no two boxes overlap,
/// every edge goes down from a rank to a later one, everything inside the picture — and are
/// well-formed XML (read by Python's XML parser where Python is installed; `.ci/run`
/// installs it).
#[test]
fn every_picture_is_laid_out_cleanly() {
    let python = std::process::Command::new("python3").arg("--version").output().is_ok_and(|o| o.status.success());
    for example in flow_examples() {
        let verified = plan_of(&workspace(&example));
        for layer in [Layer::All, Layer::Runtime, Layer::Governance] {
            let laid = flow_ir::render::layout(&verified, layer);
            for (i, a) in laid.nodes.iter().enumerate() {
                assert!(a.x >= 0.0 && a.y >= 0.0, "{example} {layer:?}: {a:?}");
                assert!(a.x + a.width <= laid.width && a.y + a.height <= laid.height, "{example} {layer:?}: {a:?}");
                for b in &laid.nodes[i + 1..] {
                    let apart =
                        a.x + a.width <= b.x || b.x + b.width <= a.x || a.y + a.height <= b.y || b.y + b.height <= a.y;
                    assert!(apart, "{example} {layer:?}: {a:?} overlaps {b:?}");
                }
            }
            for &(from, to, _) in &laid.edges {
                let (a, b) = (&laid.nodes[from], &laid.nodes[to]);
                assert!(a.rank < b.rank && a.y + a.height < b.y, "{example} {layer:?}: an edge goes up: {a:?} {b:?}");
            }
            if python {
                let svg = flow_ir::render::graph(&verified, GraphFormat::Svg, layer);
                parses_as_xml(&svg, &format!("{example} {layer:?}"));
                // The governance in columns, for the stewards' page.
                parses_as_xml(&flow_ir::governance::svg(&verified), &format!("{example} governance in columns"));
            }
        }
    }
    assert!(python || std::env::var_os("CI").is_none(), "Python is required in CI; `.ci/run` installs it");
}

/// Python's XML parser reads `svg`.
fn parses_as_xml(svg: &str, what: &str) {
    let mut child = std::process::Command::new("python3")
        .args(["-c", "import sys, xml.etree.ElementTree as E; E.fromstring(sys.stdin.read())"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python starts");
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        stdin.write_all(svg.as_bytes()).expect("python reads the picture");
    }
    let output = child.wait_with_output().expect("python finishes");
    assert!(output.status.success(), "{what}: {}", String::from_utf8_lossy(&output.stderr));
}

/// The example's files with `edit` applied to the main file's text.
/// The example's files with its main file edited. Its `test` blocks (last in the file) are
/// left out: an edit of the flow may make a test's decision or expectation wrong, and tests
/// are not part of the plan.
fn edited(main: &str, edit: impl Fn(&str) -> String) -> Vec<(String, Vec<u8>)> {
    let mut files = workspace(main);
    let text = String::from_utf8_lossy(&files[0].1).into_owned();
    let flow = text.find("\ntest \"").map_or(text.as_str(), |tests| &text[..=tests]);
    files[0].1 = edit(flow).into_bytes();
    files
}

fn hash(files: &[(String, Vec<u8>)]) -> String {
    plan_of(files).hash().to_owned()
}

/// A change of a file's text.
type Edit = dyn Fn(&str) -> String;

/// Every line of `text` changed by `f`.
fn each_line(text: &str, f: impl Fn(&str) -> String) -> String {
    text.lines().map(f).collect::<Vec<_>>().join("\n") + "\n"
}

#[test]
fn formatting_comments_and_doc_comments_leave_the_hash() {
    for example in flow_examples() {
        let original = hash(&workspace(&example));
        let variants: [(&str, Box<Edit>); 5] = [
            ("indented differently", Box::new(|t| each_line(t, |l| l.replace("  ", "   ")))),
            ("a comment line between all lines", Box::new(|t| each_line(t, |l| format!("{l}\n// reviewed")))),
            (
                "a comment after every line",
                Box::new(|t| each_line(t, |l| if l.trim().is_empty() { l.to_owned() } else { format!("{l}  // ok") })),
            ),
            ("doc comments rewritten", Box::new(|t| t.replace("/// ", "/// Note: "))),
            ("blank lines doubled", Box::new(|t| t.replace("\n\n", "\n\n\n"))),
        ];
        for (what, edit) in variants {
            assert_eq!(hash(&edited(&example, edit)), original, "{example}: {what}");
        }
    }
}

/// `text` with its top-level declarations, and the items of each flow, in reverse order.
fn reversed(text: &str) -> String {
    let parse = flow_syntax::parse(text, flow_diagnostics::FileId(0));
    assert!(parse.diagnostics.is_empty());
    let slice = |span: flow_diagnostics::Span| &text[span.range()];
    let mut items = Vec::new();
    for item in &parse.file.items {
        let mut item_text = slice(item.span).to_owned();
        if let flow_syntax::ast::ItemKind::Flow(flow) = &item.kind
            && let (Some(first), Some(last)) = (flow.items.first(), flow.items.last())
        {
            let inner: Vec<&str> = flow.items.iter().rev().map(|i| slice(i.span)).collect();
            let (start, end) =
                ((first.span.start - item.span.start) as usize, (last.span.end - item.span.start) as usize);
            item_text.replace_range(start..end, &inner.join("\n  "));
        }
        items.push(item_text);
    }
    items.reverse();
    items.join("\n\n") + "\n"
}

#[test]
fn the_order_of_declarations_and_flow_items_leaves_the_hash() {
    for example in flow_examples() {
        let original = hash(&workspace(&example));
        let files = edited(&example, reversed);
        assert_eq!(hash(&files), original, "{example}: reordered");
    }
}

/// Edits of the spend approval example that change what it means: each must keep the flow
/// valid, change the plan's hash, and be reported by `diff` as material.
const SEMANTIC_EDITS: &[(&str, &str, &str)] = &[
    ("a gate threshold", "request.amount > 50_000 USD", "request.amount > 60_000 USD"),
    ("a gate level", "gate stale_vendor: block", "gate stale_vendor: info"),
    ("a gate message", "\"Vendor is on the sanctions list\"", "\"Vendor is sanctioned\""),
    (
        "a matrix row",
        "when risk.tier == low                                 => 1 of manager",
        "when risk.tier == low => 2 of manager",
    ),
    (
        "the order of matrix rows",
        "when risk.tier == medium                              => 1 of manager, 1 of finance_director\n    when risk.tier == high                                => all of finance_director, compliance_officer",
        "when risk.tier == high => all of finance_director, compliance_officer\n    when risk.tier == medium => 1 of manager, 1 of finance_director",
    ),
    ("a grant", "view pii by compliance_officer", "view pii by compliance_officer, auditor"),
    ("a param default", "= 10_000 USD", "= 5_000 USD"),
    (
        "a model digest",
        "96d3e8cfedcdcb10918e684c95cc496132433eeac08daf45d03e618becd72825",
        "0000e8cfedcdcb10918e684c95cc496132433eeac08daf45d03e618becd72825",
    ),
    ("a model version", "version \"3.2.1\"", "version \"3.2.2\""),
    ("a review's outcomes", "outcomes approve, reject, escalate", "outcomes approve, reject"),
    ("a review condition", "risk.confidence < 0.7", "risk.confidence < 0.8"),
    ("a label on a field", "bank_account: Text @pii", "bank_account: Text"),
    ("the evidence policy", "retain 7y", "retain 10y"),
    ("the owner", "owner finance_director", "owner chief_financial_officer"),
    ("a function", "r.amount > 25_000 USD then medium", "r.amount > 20_000 USD then medium"),
    ("the flow version", "version \"2.1.0\"", "version \"2.2.0\""),
];

#[test]
fn every_kind_of_change_of_meaning_changes_the_hash() {
    let original = plan_of(&workspace("spend_approval.flow"));
    for (what, from, to) in SEMANTIC_EDITS {
        let files = edited("spend_approval.flow", |t| {
            assert!(t.contains(from), "the example no longer contains `{from}` ({what})");
            t.replacen(from, to, 1)
        });
        let changed = plan_of(&files);
        assert_ne!(changed.hash(), original.hash(), "{what}");
        let diff = flow_ir::diff::diff(original.plan(), changed.plan());
        assert!(!diff.changes.is_empty(), "{what}: diff finds nothing");
        // Only the version number is not a change of policy.
        assert_eq!(diff.is_material(), *what != "the flow version", "{what}: {diff:?}");
    }
}

#[test]
fn a_prompt_or_an_imported_role_changes_the_hash() {
    let original = hash(&workspace("spend_approval.flow"));
    let mut files = workspace("spend_approval.flow");
    let prompt = files.iter_mut().find(|(p, _)| p.ends_with("spend_risk_v3.md")).expect("the prompt");
    prompt.1.extend_from_slice(b"\nAlso consider the vendor's country.\n");
    assert_ne!(hash(&files), original, "a prompt file's bytes");
    let mut files = workspace("spend_approval.flow");
    let org = files.iter_mut().find(|(p, _)| p.ends_with("common/org.flow")).expect("the shared declarations");
    let text =
        String::from_utf8_lossy(&org.1).replace("role compliance_officer", "role compliance_officer extends auditor");
    org.1 = text.into_bytes();
    assert_ne!(hash(&files), original, "a role that now inherits another's grants");
    // A role that the flow neither names nor inherits from is not part of its plan.
    let mut files = workspace("spend_approval.flow");
    let org = files.iter_mut().find(|(p, _)| p.ends_with("common/org.flow")).expect("the shared declarations");
    org.1.extend_from_slice(b"\nrole receptionist\n");
    assert_eq!(hash(&files), original, "an unrelated role");
}

#[test]
fn diff_speaks_the_stewards_language() {
    let original = plan_of(&workspace("spend_approval.flow"));
    let changed = plan_of(&edited("spend_approval.flow", |t| {
        t.replacen("> 50_000 USD", "> 60_000 USD", 1)
            .replacen(
                "when risk.tier == low                                 => 1 of manager",
                "when risk.tier == low => 2 of manager",
                1,
            )
            .replacen("/// Below this amount", "/// Under this amount", 1)
    }));
    let diff = flow_ir::diff::diff(original.plan(), changed.plan());
    let lines: Vec<String> = diff
        .changes
        .iter()
        .map(|c| format!("{}: {}{}", c.subject, c.detail, if c.material { "" } else { " (not material)" }))
        .collect();
    assert_eq!(
        lines,
        [
            "gate `large`: threshold 50,000 USD → 60,000 USD (in `request.amount > 60_000 USD`)",
            "matrix `spend`: row 2 now requires 2 of manager (was 1 of manager)",
            "description of `node:auto_limit`: changed (not material)",
        ]
    );
    let docs_only =
        plan_of(&edited("spend_approval.flow", |t| t.replacen("/// Below this amount", "/// Under this amount", 1)));
    assert_eq!(docs_only.hash(), original.hash());
    assert!(!flow_ir::diff::diff(original.plan(), docs_only.plan()).is_material());
}

/// The embedding example carries the compiled plan of `spend_approval.flow`; it must be the
/// plan of the flow as it is now (rebuild it with `flowc build examples/spend_approval.flow
/// -o examples/embed/spend_approval.plan.json`).
#[test]
fn the_embedding_example_runs_the_current_plan() {
    let plan = plan_of(&workspace("spend_approval.flow"));
    let path = examples_dir().join("embed/spend_approval.plan.json");
    let carried = flow_ir::load(&std::fs::read(&path).unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(carried.hash(), plan.hash(), "{} is out of date", path.display());
}

/// `diff`, the plan hash and what-if reuse agree on what a change is: every change of a
/// plan that its hash sees — each leaf of each example's plan changed in turn, the plan
/// sealed again and still verifying — `diff` reports (as material, unless it is the
/// version), and a change `diff` calls none leaves the hash as it is.
#[test]
fn every_change_the_hash_sees_diff_reports() {
    fn leaves(json: &serde_json::Value, path: String, out: &mut Vec<String>) {
        match json {
            serde_json::Value::Object(o) => o.iter().for_each(|(k, v)| leaves(v, format!("{path}/{k}"), out)),
            serde_json::Value::Array(a) => {
                a.iter().enumerate().for_each(|(i, v)| leaves(v, format!("{path}/{i}"), out))
            }
            _ => out.push(path),
        }
    }
    let mut checked = 0;
    for name in flow_examples() {
        let plan = plan_of(&workspace(&name));
        let original = serde_json::to_value(&plan.plan().plan).expect("a plan is JSON");
        let mut paths = Vec::new();
        leaves(&original, String::new(), &mut paths);
        for path in paths {
            let mut changed = original.clone();
            let leaf = changed.pointer_mut(&path).expect("the leaf");
            *leaf = match leaf {
                serde_json::Value::Bool(b) => serde_json::Value::Bool(!*b),
                serde_json::Value::Number(n) => serde_json::json!(n.as_i64().map_or(1, |n| n + 1)),
                serde_json::Value::String(s) => serde_json::Value::String(format!("{s}x")),
                _ => serde_json::Value::Bool(true),
            };
            let Ok(body) = serde_json::from_value::<flow_ir::PlanBody>(changed) else { continue };
            let Ok(other) = flow_ir::seal_and_verify(body, String::new(), Default::default(), Default::default())
            else {
                continue;
            };
            checked += 1;
            let diff = flow_ir::diff::diff(plan.plan(), other.plan());
            let version = path == "/flow/version";
            assert_eq!(plan.hash() != other.hash(), !diff.changes.is_empty(), "{name} {path}: {diff:?}");
            assert!(version || diff.is_material() || diff.changes.is_empty(), "{name} {path}: {diff:?}");
        }
    }
    assert!(checked > 100, "{checked} changed plans verified");
}

/// The runtime's benchmark carries the compiled plan of `runtime/benches/rules.flow`
/// (rebuild it with `flowc build runtime/benches/rules.flow -o runtime/benches/rules.plan.json`).
#[test]
fn the_benchmark_plan_is_the_plan_of_its_flow() {
    let dir = crate::tidy::root().join("runtime/benches");
    let flow = std::fs::read(dir.join("rules.flow")).unwrap_or_default();
    let plan = plan_of(&[("runtime/benches/rules.flow".to_owned(), flow)]);
    let carried = flow_ir::load(&std::fs::read(dir.join("rules.plan.json")).unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(carried.hash(), plan.hash(), "runtime/benches/rules.plan.json is out of date");
}
