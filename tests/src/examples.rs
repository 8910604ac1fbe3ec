//! Every flow in `examples/` checks without a single diagnostic.

use std::path::{Path, PathBuf};

/// The `.flow` files under `dir`, sorted; hidden directories (a deployment's `.flow`, where
/// the demos write what they make) are not examples.
pub fn flow_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        let hidden = path.file_name().is_some_and(|name| name.to_string_lossy().starts_with('.'));
        if path.is_dir() && hidden {
            continue;
        }
        if path.is_dir() {
            flow_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "flow") {
            out.push(path);
        }
    }
}

pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// The example flows, as paths relative to the workspace root.
pub fn example_paths() -> Vec<PathBuf> {
    let mut files = Vec::new();
    flow_files(&examples_dir(), &mut files);
    files
}

#[test]
fn there_are_at_least_five_examples_with_flows() {
    let with_flows = example_paths()
        .iter()
        .filter(|p| std::fs::read_to_string(p).is_ok_and(|t| t.lines().any(|l| l.starts_with("flow "))))
        .count();
    assert!(with_flows >= 5, "only {with_flows} example files declare a flow");
}

#[test]
fn every_example_checks_clean() {
    let root = examples_dir();
    for path in example_paths() {
        let mut db = flow_sema::Database::default();
        let root_path = path.to_string_lossy().into_owned();
        let (loaded, failed) = db.load(std::slice::from_ref(&root_path), &mut |p| {
            std::fs::read(p).map_err(|e| flow_sema::ReadError::Other(e.to_string()))
        });
        assert!(failed.is_empty(), "{failed:?}");
        let mut sources = flow_diagnostics::Sources::default();
        let mut diagnostics = Vec::new();
        use flow_sema::Db;
        for file in db.workspace().sources(&db).iter() {
            sources.add(file.id(&db), file.path(&db).clone(), file.text(&db).clone());
            diagnostics.extend(flow_sema::file_diagnostics(&db, *file).iter().cloned());
        }
        assert!(!loaded.is_empty());
        let rendered = flow_diagnostics::render(&diagnostics, &sources, false);
        assert!(diagnostics.is_empty(), "{} under {}:\n{rendered}", path.display(), root.display());
        use flow_grammar::Parser;
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(flow_grammar::FlowParser::parse(flow_grammar::Rule::file, &text).is_ok(), "{}", path.display());
    }
}

#[path = "../../compiler/sema/benches/generate.rs"]
#[expect(dead_code, reason = "shared with the front-end benchmark, which uses more of it")]
mod generate;

/// The benchmarks' generated workspaces (front end, plans, language server) check clean:
/// a benchmark that asserts it before measuring must not stop at a language change.
#[test]
fn the_benchmarks_generated_flows_check_clean() {
    let (mut files, _) = generate::workspace(2);
    files.extend(generate::single_flow().0);
    let bytes: Vec<(String, Vec<u8>)> = files.into_iter().map(|(path, text)| (path, text.into_bytes())).collect();
    for (path, _) in bytes.iter().filter(|(path, _)| !path.starts_with("common/")) {
        let mut ordered = bytes.clone();
        let at = ordered.iter().position(|(p, _)| p == path).unwrap_or(0);
        ordered.swap(0, at);
        let checked = crate::check_files(&ordered);
        let rendered = flow_diagnostics::render(&checked.diagnostics, &checked.sources, false);
        assert!(checked.diagnostics.is_empty(), "{path}:\n{rendered}");
        assert!(crate::plans(&checked).iter().all(Option::is_some), "{path}: a flow has no plan");
    }
}
