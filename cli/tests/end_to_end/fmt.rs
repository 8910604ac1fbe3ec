//! `flowc fmt`: files rewritten in their canonical form with every comment, `--check` for
//! CI, standard input, files that cannot be formatted left alone, and the repository's
//! own flows formatted.

#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flowc-fmt-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn flowc(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flowc")).args(args).current_dir(dir).env("NO_COLOR", "1").output().unwrap()
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

const MESSY: &str = "role clerk   // who files\nflow f {\nversion \"1.0.0\" owner clerk steward clerk\n  input n:Int\n\n\n  // doubled\n  let twice=n*2\n}\n";
const CANONICAL: &str = "role clerk // who files\nflow f {\n  version \"1.0.0\"\n  owner clerk\n  steward clerk\n  input n: Int\n\n  // doubled\n  let twice = n * 2\n}\n";
const BROKEN: &str = "flow f {\n  let x = 1 +\n}\n";

#[test]
fn check_reports_what_would_change_and_fmt_rewrites_it() {
    let dir = dir("rewrite");
    std::fs::create_dir_all(dir.join("nested")).unwrap();
    std::fs::write(dir.join("nested/messy.flow"), MESSY).unwrap();
    std::fs::write(dir.join("done.flow"), CANONICAL).unwrap();

    let check = flowc(&dir, &["fmt", "--check", "."]);
    assert_eq!(check.status.code(), Some(1), "{}", text(&check));
    let out = text(&check);
    assert!(out.contains("would reformat ./nested/messy.flow"), "{out}");
    assert!(out.contains("- version \"1.0.0\" owner clerk steward clerk") && out.contains("+   owner clerk"), "{out}");
    assert!(out.contains("2 files: 1 would be reformatted"), "{out}");
    assert!(!out.contains("done.flow"), "{out}");
    assert_eq!(std::fs::read_to_string(dir.join("nested/messy.flow")).unwrap(), MESSY, "--check changed a file");

    let json = flowc(&dir, &["fmt", "--check", "--format", "json", "."]);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        report,
        serde_json::json!({"files": [
            {"file": "./done.flow", "status": "unchanged"},
            {"file": "./nested/messy.flow", "status": "would change"},
        ]})
    );

    let fmt = flowc(&dir, &["fmt", "."]);
    assert_eq!(fmt.status.code(), Some(0), "{}", text(&fmt));
    assert!(text(&fmt).contains("formatted ./nested/messy.flow"), "{}", text(&fmt));
    assert_eq!(std::fs::read_to_string(dir.join("nested/messy.flow")).unwrap(), CANONICAL);
    assert_eq!(flowc(&dir, &["fmt", "--check", "."]).status.code(), Some(0));
    // Nothing is left beside the files.
    let mut names: Vec<_> = std::fs::read_dir(dir.join("nested")).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    assert_eq!(names, ["messy.flow"]);
}

#[test]
fn files_that_cannot_be_formatted_are_left_alone() {
    let dir = dir("broken");
    std::fs::write(dir.join("broken.flow"), BROKEN).unwrap();
    std::fs::write(dir.join("messy.flow"), MESSY).unwrap();
    std::fs::write(dir.join("latin1.flow"), b"role caf\xe9\n").unwrap();
    let fmt = flowc(&dir, &["fmt", "."]);
    let out = text(&fmt);
    assert_eq!(fmt.status.code(), Some(1), "{out}");
    assert!(out.contains("[E0001] Error: expected an expression, found `}`"), "{out}");
    assert!(out.contains("./broken.flow: not formatted: it has syntax errors"), "{out}");
    assert!(out.contains("./latin1.flow: not UTF-8 text (at byte 8)"), "{out}");
    assert!(out.contains("3 files: 1 reformatted, 2 not formatted"), "{out}");
    assert_eq!(std::fs::read_to_string(dir.join("broken.flow")).unwrap(), BROKEN);
    // The others are still formatted.
    assert_eq!(std::fs::read_to_string(dir.join("messy.flow")).unwrap(), CANONICAL);
    let missing = flowc(&dir, &["fmt", "missing.flow"]);
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
}

#[test]
fn standard_input_is_formatted_to_standard_output() {
    let run = |args: &[&str], input: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_flowc"))
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), input.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let formatted = run(&["fmt", "-"], MESSY);
    assert_eq!(formatted.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&formatted.stdout), CANONICAL);
    assert_eq!(run(&["fmt", "--check", "-"], MESSY).status.code(), Some(1));
    assert_eq!(run(&["fmt", "--check", "-"], CANONICAL).status.code(), Some(0));
    let broken = run(&["fmt", "-"], BROKEN);
    assert_eq!(broken.status.code(), Some(1));
    assert!(broken.stdout.is_empty());
    assert!(text(&broken).contains("<stdin>: not formatted: it has syntax errors"), "{}", text(&broken));
}

#[test]
fn an_ignore_file_keeps_paths_out_of_a_directory_walk() {
    let dir = dir("ignore");
    std::fs::create_dir_all(dir.join("fixtures/deep")).unwrap();
    std::fs::write(dir.join("fixtures/deep/broken.flow"), BROKEN).unwrap();
    std::fs::write(dir.join("kept.flow"), CANONICAL).unwrap();
    std::fs::write(dir.join(".flowfmtignore"), "# test data, laid out on purpose\nfixtures/\n").unwrap();
    let check = flowc(&dir, &["fmt", "--check", "."]);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check));
    assert!(text(&check).contains("1 file: 0 would be reformatted"), "{}", text(&check));
    // A file named on the command line is formatted all the same.
    let named = flowc(&dir, &["fmt", "--check", "fixtures/deep/broken.flow"]);
    assert_eq!(named.status.code(), Some(1), "{}", text(&named));
}

#[test]
fn the_repository_is_formatted() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let check = flowc(&root, &["fmt", "--check", "."]);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check));
    let out = text(&check);
    assert!(out.contains(": 0 would be reformatted"), "{out}");
    // The examples are among the files checked.
    let files: usize = out.split(" file").next().unwrap().trim().parse().unwrap();
    assert!(files >= 7, "{out}");
}
