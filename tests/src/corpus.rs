//! The data-driven corpus: one `.flow` file per case, with an insta snapshot beside it.
//!
//! - `parse/ok`: parses without diagnostics; the snapshot is the syntax tree.
//! - `parse/err`: has syntax diagnostics; the snapshot is the rendered diagnostics.
//! - `check/ok`: checks without any diagnostic; the snapshot is the typed summary.
//! - `check/err`: has diagnostics; the snapshot is the rendered diagnostics.
//!
//! Run one group with `cargo test -p flow-tests --test corpus -- check/err/`.

use std::path::Path;

use flow_diagnostics::{FileId, Sources};

fn snapshot(path: &Path, sections: &[(&str, &str)]) {
    let mut text = String::new();
    for (title, body) in sections {
        text.push_str(&format!("----- {title}\n{}\n", body.trim_end()));
    }
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(path.parent().unwrap_or(Path::new(".")).canonicalize().unwrap_or_default());
    settings.set_prepend_module_to_snapshot(false);
    settings.set_input_file(path);
    settings.set_omit_expression(true);
    let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("case").to_owned();
    settings.bind(|| insta::assert_snapshot!(name, text));
}

fn case_name(path: &Path) -> String {
    path.file_name().and_then(|n| n.to_str()).unwrap_or("case.flow").to_owned()
}

fn parse_case(path: &Path, text: String) -> datatest_stable::Result<()> {
    let parse = flow_syntax::parse(&text, FileId(0));
    let mut sources = Sources::default();
    sources.add(FileId(0), case_name(path), text.clone());
    let rendered = flow_diagnostics::render(&parse.diagnostics, &sources, false);
    let expect_ok = path.components().any(|c| c.as_os_str() == "ok");
    if expect_ok {
        if !parse.diagnostics.is_empty() {
            return Err(format!("expected no syntax errors:\n{rendered}").into());
        }
        // The grammar's whole-language rule accepts what the driver accepts.
        use flow_grammar::Parser;
        if let Err(error) = flow_grammar::FlowParser::parse(flow_grammar::Rule::file, &text) {
            return Err(format!("the `file` rule rejects a text the driver accepts:\n{error}").into());
        }
        snapshot(path, &[("SOURCE", &text), ("AST", &format!("{:#?}", parse.file))]);
    } else {
        if parse.diagnostics.is_empty() {
            return Err("expected syntax errors, found none".into());
        }
        snapshot(path, &[("SOURCE", &text), ("DIAGNOSTICS", &rendered)]);
    }
    Ok(())
}

fn check_case(path: &Path, bytes: Vec<u8>) -> datatest_stable::Result<()> {
    // Cases are bytes: one of them is deliberately not UTF-8.
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let checked = match String::from_utf8(bytes) {
        Ok(text) => flow_tests::check_fixture(&case_name(path), &text),
        Err(error) => flow_tests::check_files(&[(case_name(path), error.into_bytes())]),
    };
    let rendered = checked.render();
    let expect_ok = path.components().any(|c| c.as_os_str() == "ok");
    if expect_ok {
        if !checked.diagnostics.is_empty() {
            return Err(format!("expected no diagnostics:\n{rendered}").into());
        }
        use flow_grammar::Parser;
        for (path, contents) in flow_tests::fixture_files(&case_name(path), &text) {
            if path.ends_with(".flow") && flow_grammar::FlowParser::parse(flow_grammar::Rule::file, &contents).is_err()
            {
                return Err(format!("the `file` rule rejects `{path}`, which checks clean").into());
            }
        }
        snapshot(path, &[("SOURCE", &text), ("CHECKED", &flow_tests::dump(&checked))]);
    } else {
        if checked.diagnostics.is_empty() {
            return Err("expected diagnostics, found none".into());
        }
        snapshot(path, &[("SOURCE", &text), ("DIAGNOSTICS", &rendered)]);
    }
    Ok(())
}

datatest_stable::harness! {
    { test = parse_case, root = "corpus/parse", pattern = r"\.flow$" },
    { test = check_case, root = "corpus/check", pattern = r"\.flow$" },
}
