//! `flowc test --snapshot`: each test run's decision trace kept in a file beside its flow
//! (`FLOW_FILE.snap`), compared on later runs, rewritten with `--update`.
//!
//! The file is text, one section per run:
//!
//! ```text
//! # flowc test snapshots of spend_approval.flow: …
//!
//! ## a small software purchase is approved without anyone
//! gate `large` passed
//! …
//! output decision = {"approved":true,…}
//! ```

use std::collections::BTreeMap;

use flow_diagnostics::{Code, Diagnostic, FileId, Span};

use crate::run::Outcome;

/// The first line of every snapshot file.
const HEADER: &str = "# flowc test snapshots of ";

/// Where a flow file's snapshots are kept.
pub fn path_of(flow_file: &str) -> String {
    format!("{flow_file}.snap")
}

/// The text of a snapshot file holding `traces` (test run name, trace lines), in order.
pub fn render(flow_file: &str, traces: &[(&str, &[String])]) -> String {
    let name = std::path::Path::new(flow_file).file_name().and_then(|n| n.to_str()).unwrap_or(flow_file);
    let mut text = format!(
        "{HEADER}{name}: each test run's decision trace. `flowc test --snapshot --update` rewrites this file.\n"
    );
    for (run, lines) in traces {
        text.push_str(&format!("\n## {run}\n"));
        for line in *lines {
            text.push_str(line);
            text.push('\n');
        }
    }
    text
}

/// The sections of a snapshot file, by test run; or a diagnostic at what is not a snapshot.
pub fn parse(text: &str, file: FileId) -> Result<BTreeMap<String, Vec<String>>, Box<Diagnostic>> {
    let corrupt = |at: usize, len: usize, message: &str| {
        Box::new(
            Diagnostic::new(
                Code::E0001,
                file,
                Span::new(at, at + len.max(1)),
                format!("this snapshot file is corrupt: {message}"),
            )
            .with_help("rewrite it from the tests: `flowc test --snapshot --update`"),
        )
    };
    let mut sections: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut offset = 0;
    for (number, line) in text.split_inclusive('\n').enumerate() {
        let at = offset;
        offset += line.len();
        let line = line.trim_end_matches(['\n', '\r']);
        if number == 0 {
            if !line.starts_with(HEADER) {
                return Err(corrupt(at, line.len(), "it does not start with its header line"));
            }
            continue;
        }
        if let Some(name) = line.strip_prefix("## ") {
            if sections.contains_key(name) {
                return Err(corrupt(at, line.len(), &format!("test run `{name}` has two sections")));
            }
            sections.insert(name.to_owned(), Vec::new());
            current = Some(name.to_owned());
            continue;
        }
        match &current {
            Some(name) => sections.entry(name.clone()).or_default().push(line.to_owned()),
            None if line.is_empty() => {}
            None => return Err(corrupt(at, line.len(), "a line stands before the first `## ` section")),
        }
    }
    if text.is_empty() {
        return Err(corrupt(0, 0, "it is empty"));
    }
    // Sections are separated by a blank line, which is not part of the trace.
    for lines in sections.values_mut() {
        while lines.last().is_some_and(String::is_empty) {
            lines.pop();
        }
    }
    Ok(sections)
}

/// The lines of `old` and `new` as a diff: `-` only in the snapshot, `+` only in this run.
pub fn diff(old: &[String], new: &[String]) -> Vec<String> {
    // The longest common subsequence, by dynamic programming: traces are short.
    let (n, m) = (old.len(), new.len());
    let mut common = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            common[i][j] =
                if old[i] == new[j] { common[i + 1][j + 1] + 1 } else { common[i + 1][j].max(common[i][j + 1]) };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut lines = Vec::new();
    while i < n || j < m {
        if i < n && j < m && old[i] == new[j] {
            lines.push(format!("  {}", old[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || common[i + 1][j] >= common[i][j + 1]) {
            lines.push(format!("- {}", old[i]));
            i += 1;
        } else {
            lines.push(format!("+ {}", new[j]));
            j += 1;
        }
    }
    lines
}

/// Why snapshots could not be compared.
#[derive(Debug)]
pub enum Fault {
    /// A snapshot file could not be read or written.
    Io(String),
    /// A snapshot file is not one: the diagnostic at the place, in `text` read from `path`
    /// (as file `FileId(u32::MAX)`).
    Corrupt { path: String, text: String, diagnostic: Box<Diagnostic> },
}

/// Compares each run's trace with its snapshot in the file beside its flow, or (`update`)
/// writes the snapshots. A difference is a failure of its run; a snapshot of a run that no
/// longer exists is a failing problem, what was written a note (`problems`: text, whether
/// it fails).
pub fn compare(outcomes: &mut [Outcome], update: bool, problems: &mut Vec<(String, bool)>) -> Result<(), Fault> {
    let mut files: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (index, outcome) in outcomes.iter().enumerate() {
        files.entry(outcome.file.clone()).or_default().push(index);
    }
    for (file, indices) in files {
        let path = path_of(&file);
        if update {
            let traces: Vec<(String, Vec<String>)> =
                indices.iter().map(|&i| (outcomes[i].name.clone(), outcomes[i].trace())).collect();
            let borrowed: Vec<(&str, &[String])> = traces.iter().map(|(n, t)| (n.as_str(), t.as_slice())).collect();
            std::fs::write(&path, render(&file, &borrowed))
                .map_err(|e| Fault::Io(format!("cannot write the snapshots `{path}`: {e}")))?;
            problems.push((format!("wrote {} snapshots to {path}", traces.len()), false));
            continue;
        }
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                for &i in &indices {
                    outcomes[i].failures.push(format!(
                        "no snapshot of this run: `{path}` does not exist; record it with `flowc test --snapshot --update`"
                    ));
                }
                continue;
            }
            Err(error) => return Err(Fault::Io(format!("cannot read the snapshots `{path}`: {error}"))),
        };
        let id = FileId(u32::MAX);
        let sections = match parse(&text, id) {
            Ok(sections) => sections,
            Err(diagnostic) => return Err(Fault::Corrupt { path, text, diagnostic }),
        };
        for &i in &indices {
            let outcome = &mut outcomes[i];
            let trace = outcome.trace();
            match sections.get(&outcome.name) {
                None => outcome.failures.push(format!(
                    "no snapshot of this run in `{path}`; record it with `flowc test --snapshot --update`"
                )),
                Some(recorded) if *recorded != trace => {
                    let diff = diff(recorded, &trace);
                    outcome.failures.push(format!(
                        "the run differs from its snapshot in `{path}` (- snapshot, + this run):\n      {}",
                        diff.join("\n      ")
                    ));
                }
                Some(_) => {}
            }
        }
        for name in sections.keys() {
            if !indices.iter().any(|&i| outcomes[i].name == *name) {
                problems.push((
                    format!("`{path}` has a snapshot of `{name}`, which no test runs; update the snapshots"),
                    true,
                ));
            }
        }
    }
    Ok(())
}
