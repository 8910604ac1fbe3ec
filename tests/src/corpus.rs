//! The data-driven corpus: one `.flow` file per case, with an insta snapshot beside it.
//!
//! - `parse/ok`: parses without diagnostics; the snapshot is the syntax tree.
//! - `parse/err`: has syntax diagnostics; the snapshot is the rendered diagnostics.
//! - `check/ok`: checks without any diagnostic; the snapshot is the typed summary.
//! - `check/err`: has diagnostics; the snapshot is the rendered diagnostics.
//! - `lower/ok`: compiles to plans; the snapshot is each plan as text (nodes in execution
//!   order, with their edges).
//! - `verify/err`: a flow that compiles, and directives that damage its plan as a forger or
//!   a bad copy would; the snapshot is the verifier's refusal, or for a plan that verifies
//!   as a graph, where loading finds labelled data going where it may not. Directives, one per line at
//!   the top: `//@ patch: {JSON Patch operation}` (paths may select `[name=x]` or the edge
//!   `[a->b]`; `//@ sort-edges` puts the edges back in canonical order; the hash is
//!   recomputed afterwards unless `//@ keep-hash` is given),
//!   `//@ replace: OLD => NEW` (on the plan file's text, after sealing), `//@ append: TEXT`
//!   and `//@ truncate: N` (the file's first N bytes).
//!
//! - `fmt`: the snapshot is the text as `flowc fmt` formats it, or the syntax diagnostics
//!   for which it refuses to. Formatting the result again changes nothing.
//!
//! Run one group with `cargo test -p flow-tests --test corpus -- check_case::err/`.

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
    let checked = flow_tests::check_fixture(&case_name(path), &bytes);
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

fn lower_case(path: &Path, bytes: Vec<u8>) -> datatest_stable::Result<()> {
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let checked = flow_tests::check_fixture(&case_name(path), &bytes);
    if !checked.diagnostics.is_empty() {
        return Err(format!("expected no diagnostics:\n{}", checked.render()).into());
    }
    let mut dumps = Vec::new();
    for plan in flow_tests::plans(&checked) {
        let verified = plan.ok_or("a flow did not compile to a plan")?;
        // The plan reads back from its file as the same plan.
        let text = flow_ir::encode::to_json(verified.plan());
        let loaded = flow_ir::load(text.as_bytes()).map_err(|e| format!("the plan file does not load: {e}"))?;
        if loaded != verified {
            return Err("the plan file reads back as another plan".into());
        }
        dumps.push(flow_ir::print::dump(&verified));
    }
    if dumps.is_empty() {
        return Err("the case declares no flow".into());
    }
    snapshot(path, &[("SOURCE", &text), ("PLAN", &dumps.join("\n"))]);
    Ok(())
}

/// The plan file of a case's flow, damaged as its directives say.
fn damaged_plan(path: &Path, text: &str) -> Result<(Vec<u8>, Vec<String>), String> {
    let checked = flow_tests::check_fixture(&case_name(path), text.as_bytes());
    if checked.diagnostics.iter().any(flow_diagnostics::Diagnostic::is_error) {
        return Err(format!("the case's flow must compile:\n{}", checked.render()));
    }
    let plan = flow_tests::plans(&checked).into_iter().flatten().next().ok_or("the case's flow has no plan")?;
    let mut value = serde_json::to_value(plan.plan()).map_err(|e| e.to_string())?;
    let directives: Vec<&str> = text.lines().map_while(|l| l.strip_prefix("//@ ")).collect();
    let mut applied = Vec::new();
    for directive in &directives {
        if let Some(patch) = directive.strip_prefix("patch: ") {
            let patch: serde_json::Value = serde_json::from_str(patch).map_err(|e| format!("{directive}: {e}"))?;
            flow_tests::apply_patch(&mut value, &patch)?;
            applied.push((*directive).to_owned());
        }
    }
    if directives.contains(&"sort-edges")
        && let Ok(mut plan) = serde_json::from_value::<flow_ir::Plan>(value.clone())
    {
        plan.plan.edges.sort();
        value = serde_json::to_value(&plan).map_err(|e| e.to_string())?;
    }
    if !directives.contains(&"keep-hash") {
        flow_tests::rehash(&mut value);
    }
    let plan: Result<flow_ir::Plan, _> = serde_json::from_value(value.clone());
    let mut file = match plan {
        Ok(plan) => flow_ir::encode::to_json(&plan),
        Err(_) => serde_json::to_string_pretty(&value).map_err(|e| e.to_string())?,
    };
    for directive in &directives {
        if let Some(replace) = directive.strip_prefix("replace: ") {
            let (old, new) = replace.split_once(" => ").ok_or("write `//@ replace: OLD => NEW`")?;
            if !file.contains(old) {
                return Err(format!("{directive}: the plan does not contain `{old}`"));
            }
            file = file.replacen(old, new, 1);
        }
    }
    for directive in &directives {
        if let Some(more) = directive.strip_prefix("append: ") {
            file.push_str(more);
        }
    }
    let mut bytes = file.into_bytes();
    for directive in &directives {
        if let Some(count) = directive.strip_prefix("truncate: ") {
            bytes.truncate(count.trim().parse::<usize>().map_err(|e| format!("{directive}: {e}"))?);
        }
    }
    applied.extend(directives.iter().filter(|d| !d.starts_with("patch: ")).map(|d| (*d).to_owned()));
    Ok((bytes, applied))
}

fn verify_case(path: &Path, bytes: Vec<u8>) -> datatest_stable::Result<()> {
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (plan, applied) = damaged_plan(path, &text)?;
    // What the verifier refuses, or else what loading refuses: the runtime's own proof of
    // information flow.
    let refusal = match flow_ir::load(&plan) {
        Ok(verified) => {
            let leaks = flow_runtime::analysis::Analysis::new(verified).leaks();
            if leaks.is_empty() {
                return Err("the damaged plan was accepted".into());
            }
            leaks.join("\n")
        }
        Err(errors) => errors.to_string(),
    };
    snapshot(path, &[("SOURCE", &text), ("DAMAGE", &applied.join("\n")), ("REFUSAL", &refusal)]);
    Ok(())
}

fn fmt_case(path: &Path, text: String) -> datatest_stable::Result<()> {
    use flow_syntax::format::{FormatError, format};
    match format(&text, FileId(0)) {
        Ok(formatted) => {
            match format(&formatted, FileId(0)) {
                Ok(again) if again == formatted => {}
                Ok(again) => return Err(format!("formatting is not idempotent; again:\n{again}").into()),
                Err(error) => return Err(format!("the formatted text does not format: {error:?}").into()),
            }
            snapshot(path, &[("SOURCE", &text), ("FORMATTED", &formatted)]);
        }
        Err(FormatError::Syntax(diagnostics)) => {
            let mut sources = Sources::default();
            sources.add(FileId(0), case_name(path), text.clone());
            let rendered = flow_diagnostics::render(&diagnostics, &sources, false);
            snapshot(path, &[("SOURCE", &text), ("NOT FORMATTED", &rendered)]);
        }
        Err(FormatError::Internal(why)) => return Err(format!("the formatter failed its own check: {why}").into()),
    }
    Ok(())
}

datatest_stable::harness! {
    { test = parse_case, root = "corpus/parse", pattern = r"\.flow$" },
    { test = check_case, root = "corpus/check", pattern = r"\.flow$" },
    { test = lower_case, root = "corpus/lower", pattern = r"\.flow$" },
    { test = verify_case, root = "corpus/verify", pattern = r"\.flow$" },
    { test = fmt_case, root = "corpus/fmt", pattern = r"\.flow$" },
}
