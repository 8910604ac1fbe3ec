//! The diagnostic registry's invariants (after rustc's tidy): codes and names are unique;
//! every code has an explanation whose wrong example emits exactly that code and whose
//! corrected example checks clean; every code has a corpus case; every code is emitted
//! somewhere, and no code is written in the compiler without being registered.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use flow_diagnostics::Code;

use crate::check_files;
use crate::tidy::{root, rust_files};

#[test]
fn codes_and_names_are_unique_and_well_formed() {
    let mut codes = BTreeSet::new();
    let mut names = BTreeSet::new();
    for code in Code::ALL {
        assert!(codes.insert(code.as_str()), "{code} twice");
        assert!(names.insert(code.name()), "name {} twice", code.name());
        assert!(code.name().chars().all(|c| c.is_ascii_lowercase() || c == '-'), "{}", code.name());
        let text = code.as_str();
        assert!(text.len() == 5 && (text.starts_with('E') || text.starts_with('W')), "{text}");
        assert!(text[1..].chars().all(|c| c.is_ascii_digit()), "{text}");
    }
}

/// The body of the first fenced block whose info string is `info`.
fn fence<'a>(markdown: &'a str, info: &str) -> Option<&'a str> {
    let opening = format!("```{info}\n");
    let start = markdown.find(&opening)? + opening.len();
    let end = markdown[start..].find("\n```")? + start;
    Some(&markdown[start..end + 1])
}

/// Decodes `\xNN` escapes, for examples that must contain bytes that are not UTF-8.
fn decode_bytes(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"\\x")
            && i + 4 <= bytes.len()
            && let Ok(byte) = u8::from_str_radix(&text[i + 2..i + 4], 16)
        {
            out.push(byte);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

fn example_files(text: &[u8]) -> Vec<(String, Vec<u8>)> {
    crate::fixture_bytes("example.flow", text)
}

#[test]
fn every_code_is_explained_with_examples_that_do_what_they_say() {
    let mut problems = Vec::new();
    for code in Code::ALL {
        let explanation = code.explanation();
        if code.summary().is_empty() || explanation.starts_with("PENDING") {
            problems.push(format!("{code}: no explanation"));
            continue;
        }
        if explanation.starts_with("This code is no longer emitted") {
            continue;
        }
        // The runtime's errors show a command and what it prints; their kinds are the
        // runtime's (`the_runtimes_errors_are_the_registrys_e3_codes`).
        if is_runtime_code(code.as_str()) {
            match fence(explanation, "sh") {
                Some(example) if example.contains(&format!("error[{code}]")) => {}
                _ => problems.push(format!("{code}: no ```sh example of a command that reports it")),
            }
            continue;
        }
        // Codes that only a plan file can cause show an excerpt of one, and how to rebuild it;
        // their corpus cases are plans (`corpus/verify`).
        if fence(explanation, &format!("plan,{code}")).is_some() {
            if !flow_ir::VerifyError::CODES.contains(&code.as_str()) {
                problems.push(format!("{code}: a plan example, but the plan verifier does not report it"));
            }
            if fence(explanation, "sh").is_none() {
                problems.push(format!("{code}: no ```sh example of how to put it right"));
            }
            continue;
        }
        let wrong = fence(explanation, &format!("flow,{code}"))
            .map(|t| t.as_bytes().to_vec())
            .or_else(|| fence(explanation, &format!("flow,{code},bytes")).map(decode_bytes));
        let Some(wrong) = wrong else {
            problems.push(format!("{code}: no ```flow,{code} example"));
            continue;
        };
        let checked = check_files(&example_files(&wrong));
        let emitted: BTreeSet<&str> = checked.diagnostics.iter().map(|d| d.code.as_str()).collect();
        if emitted != BTreeSet::from([code.as_str()]) {
            problems.push(format!("{code}: the wrong example emits {emitted:?}:\n{}", checked.render()));
        }
        let Some(right) = fence(explanation, "flow") else {
            problems.push(format!("{code}: no corrected ```flow example"));
            continue;
        };
        let checked = check_files(&example_files(right.as_bytes()));
        if !checked.diagnostics.is_empty() {
            problems.push(format!("{code}: the corrected example is not clean:\n{}", checked.render()));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

#[test]
fn every_code_has_a_corpus_case() {
    let mut snapshots = String::new();
    let mut files = Vec::new();
    fn snaps(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                snaps(&path, out);
            } else if path.extension().is_some_and(|e| e == "snap") {
                out.push(path);
            }
        }
    }
    snaps(&Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus"), &mut files);
    for file in files {
        snapshots.push_str(&std::fs::read_to_string(file).unwrap_or_default());
    }
    let missing: Vec<&str> = Code::ALL
        .iter()
        .map(|c| c.as_str())
        .filter(|c| !is_runtime_code(c) && !snapshots.contains(&format!("[{c}]")))
        .collect();
    assert!(missing.is_empty(), "codes without a corpus case: {missing:?}");
    // The runtime's errors: a case of the run corpus shows the code, or (for a store
    // changed behind the runtime's back, several processes, a deployment's keys) a test
    // asserts the error's kind or code.
    let mut tests = String::new();
    let mut files = Vec::new();
    rust_files(&root().join("tests/src"), &mut files);
    rust_files(&root().join("cli/tests"), &mut files);
    for file in files {
        tests.push_str(&std::fs::read_to_string(file).unwrap_or_default());
    }
    let untested: Vec<&str> = flow_runtime::ErrorKind::ALL
        .iter()
        .filter(|kind| {
            let code = kind.code();
            let in_corpus = snapshots.contains(&format!("error[{code}]"));
            let variant = format!("{kind:?}");
            let in_tests = tests.contains(&format!("error[{code}]"))
                || tests.contains(&format!("\"{code}\""))
                || tests.contains(&format!("ErrorKind::{variant}"))
                || tests.contains(&format!("Error::{variant}"));
            !in_corpus && !in_tests
        })
        .map(|kind| kind.code())
        .collect();
    assert!(untested.is_empty(), "runtime errors no case or test produces: {untested:?}");
}

#[test]
fn every_code_is_emitted_and_every_written_code_is_registered() {
    let mut files = Vec::new();
    rust_files(&root().join("compiler"), &mut files);
    rust_files(&root().join("cli"), &mut files);
    let mut source = String::new();
    for file in &files {
        let path = file.to_string_lossy();
        if file.ends_with("registry.rs")
            || file.ends_with("tests.rs")
            || path.contains("/tests/")
            || path.contains("/benches/")
        {
            continue;
        }
        source.push_str(&std::fs::read_to_string(file).unwrap_or_default());
    }
    // The plan verifier reports its codes as text; the compiler maps them to the registry.
    let never: Vec<&str> = Code::ALL
        .iter()
        .map(|c| c.as_str())
        .filter(|c| {
            !source.contains(&format!("Code::{c}")) && !flow_ir::VerifyError::CODES.contains(c) && !is_runtime_code(c)
        })
        .collect();
    assert!(never.is_empty(), "codes never emitted: {never:?}");
    let registered: BTreeSet<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
    for code in flow_ir::VerifyError::CODES {
        assert!(registered.contains(code), "the plan verifier reports `{code}`, which is not registered");
    }
    let bytes = source.as_bytes();
    for (i, window) in bytes.windows(5).enumerate() {
        let looks_like_code = (window[0] == b'E' || window[0] == b'W')
            && window[1..].iter().all(u8::is_ascii_digit)
            && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric())
            && bytes.get(i + 5).is_none_or(|b| !b.is_ascii_alphanumeric());
        if looks_like_code {
            let text = std::str::from_utf8(window).unwrap_or("");
            assert!(registered.contains(text), "`{text}` is written in the compiler but not registered");
        }
    }
}

/// Whether a code is one of the runtime's errors (E3xxx), which the compiler never emits.
fn is_runtime_code(code: &str) -> bool {
    code.starts_with("E3")
}

/// Each kind of the runtime's errors has a registered E3xxx code of the same name, and
/// every registered E3xxx code is a kind's: `flowc explain` explains every code the
/// runtime's errors carry.
#[test]
fn the_runtimes_errors_are_the_registrys_e3_codes() {
    let kinds: BTreeSet<(&str, &str)> =
        flow_runtime::ErrorKind::ALL.iter().map(|kind| (kind.code(), kind.name())).collect();
    let registered: BTreeSet<(&str, &str)> =
        Code::ALL.iter().filter(|c| is_runtime_code(c.as_str())).map(|c| (c.as_str(), c.name())).collect();
    assert_eq!(kinds, registered);
}
