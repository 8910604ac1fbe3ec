//! `flowc fmt` over every `.flow` text of the corpus and the examples: formatting is
//! idempotent, changes no plan hash and no diagnostic, and a text laid out otherwise (other
//! spaces and line breaks between its tokens) formats to the same text.

#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use flow_diagnostics::FileId;
use flow_grammar::{FlowParser, Parser, Rule};
use flow_sema::{Database, Db, ReadError};
use flow_syntax::format::{Fingerprint, FormatError, format};
use proptest::prelude::*;

fn corpus_cases() -> Vec<PathBuf> {
    let mut files = Vec::new();
    crate::examples::flow_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus"), &mut files);
    files
}

/// The formatting of `text`, `None` when it has syntax errors; a formatter failure fails
/// the test.
fn formatted(what: &str, text: &str) -> Option<String> {
    match format(text, FileId(0)) {
        Ok(out) => Some(out),
        Err(FormatError::Syntax(_)) => None,
        Err(FormatError::Internal(why)) => panic!("{what}: the formatter failed its own check: {why}"),
    }
}

/// What formatting must not change: every diagnostic's code, severity and message, and the
/// hash of every flow's plan, by file.
fn meaning(db: &Database) -> BTreeMap<String, (Vec<String>, Vec<String>)> {
    let mut out = BTreeMap::new();
    for file in db.workspace().sources(db).iter() {
        let diagnostics = flow_lower::file_diagnostics(db, *file)
            .iter()
            .map(|d| format!("{} {:?} {}", d.code.as_str(), d.severity, d.message))
            .collect();
        let plans = flow_lower::lower_file(db, *file)
            .flows
            .iter()
            .map(|flow| format!("{} {}", flow.name, flow.plan.as_ref().map_or("-", |plan| plan.hash())))
            .collect();
        out.insert(file.path(db).clone(), (diagnostics, plans));
    }
    out
}

/// Loads the root with `read`, formatting every `.flow` file read when `format_flows`.
fn load(
    root: &str,
    format_flows: bool,
    read: &dyn Fn(&str) -> Result<Vec<u8>, ReadError>,
) -> BTreeMap<String, (Vec<String>, Vec<String>)> {
    let mut db = Database::default();
    db.load(&[root.to_owned()], &mut |path| {
        let bytes = read(path)?;
        if !format_flows || !path.ends_with(".flow") {
            return Ok(bytes);
        }
        let Ok(text) = String::from_utf8(bytes.clone()) else { return Ok(bytes) };
        Ok(formatted(path, &text).map_or(bytes, String::into_bytes))
    });
    meaning(&db)
}

#[test]
fn formatting_is_idempotent_and_keeps_the_meaning_of_the_corpus() {
    let mut formatted_texts = 0;
    let mut refused = 0;
    for path in corpus_cases() {
        let name = path.to_string_lossy().into_owned();
        let files = crate::fixture_bytes("case.flow", &std::fs::read(&path).unwrap());
        for (file, bytes) in &files {
            let Ok(text) = std::str::from_utf8(bytes) else { continue };
            if !file.ends_with(".flow") {
                continue;
            }
            match formatted(&name, text) {
                None => refused += 1,
                Some(out) => {
                    formatted_texts += 1;
                    assert_eq!(
                        formatted(&name, &out).as_deref(),
                        Some(out.as_str()),
                        "{name} ({file}) is not idempotent"
                    );
                }
            }
        }
        let read = crate::fixture_reader(&files);
        assert_eq!(
            load("case.flow", false, &read),
            load("case.flow", true, &read),
            "{name}: formatting changed its meaning"
        );
    }
    assert!(formatted_texts >= 100, "only {formatted_texts} corpus texts formatted");
    assert!(refused >= 10, "only {refused} corpus texts refused");
}

#[test]
fn formatting_keeps_the_plans_of_the_examples() {
    let read = |path: &str| std::fs::read(path).map_err(|e| ReadError::Other(e.to_string()));
    let examples = crate::examples::example_paths();
    assert!(examples.len() >= 6);
    for path in examples {
        let root = path.to_string_lossy().into_owned();
        let before = load(&root, false, &read);
        assert!(before.values().any(|(_, plans)| !plans.is_empty()) || root.contains("common"), "{root}: no flows");
        assert_eq!(before, load(&root, true, &read), "{root}: formatting changed its meaning");
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(formatted(&root, &text).as_deref(), Some(text.as_str()), "{root} is not formatted");
    }
}

/// A text cut into tokens (with punctuation and comments) and the whitespace between them.
#[derive(Debug)]
enum Piece<'t> {
    Fixed(&'t str),
    Comment(&'t str),
    Space(&'t str),
}

fn pieces<'t>(text: &'t str) -> Vec<Piece<'t>> {
    let root = FlowParser::parse(Rule::file, text).unwrap();
    let mut tokens = Vec::new();
    let mut opaque_until = 0;
    for pair in root.flatten() {
        let span = pair.as_span();
        if span.start() < opaque_until || span.start() == span.end() {
            continue;
        }
        let opaque = matches!(pair.as_rule(), Rule::string | Rule::label_ref | Rule::money);
        if opaque || pair.clone().into_inner().next().is_none() {
            tokens.push((span.start(), span.end()));
            opaque_until = span.end();
        }
    }
    let mut out = Vec::new();
    let mut at = 0;
    let gap = |from: usize, to: usize, out: &mut Vec<Piece<'t>>| {
        let mut i = from;
        while i < to {
            let rest = &text[i..to];
            let len = if rest.starts_with("//") {
                let end = rest.find('\n').unwrap_or(rest.len());
                out.push(Piece::Comment(&rest[..end]));
                end
            } else if rest.starts_with(|c: char| c.is_ascii_whitespace()) {
                let end = rest.find(|c: char| !c.is_ascii_whitespace()).unwrap_or(rest.len());
                out.push(Piece::Space(&rest[..end]));
                end
            } else {
                let len = rest.chars().next().map_or(1, char::len_utf8);
                out.push(Piece::Fixed(&rest[..len]));
                len
            };
            i += len;
        }
    };
    for (start, end) in tokens {
        gap(at, start, &mut out);
        out.push(Piece::Fixed(&text[start..end]));
        at = end;
    }
    gap(at, text.len(), &mut out);
    out
}

/// `text` with other whitespace between its tokens: chosen by `choices`, keeping what
/// formatting keeps (empty lines, and whether a comment has a line of its own).
fn relaid(text: &str, choices: &[u8]) -> String {
    let pieces = pieces(text);
    let mut out = String::new();
    for (i, piece) in pieces.iter().enumerate() {
        let space = match piece {
            Piece::Fixed(t) | Piece::Comment(t) => {
                out.push_str(t);
                continue;
            }
            Piece::Space(space) => space,
        };
        let newlines = space.matches('\n').count();
        let after_comment = i > 0 && matches!(pieces[i - 1], Piece::Comment(_));
        let before_comment = matches!(pieces.get(i + 1), Some(Piece::Comment(_)));
        let at_edge = i == 0 || i + 1 == pieces.len();
        let options: &[&str] = if newlines >= 2 || at_edge {
            &[]
        } else if after_comment || (before_comment && newlines == 1) {
            &["\n", "\n    ", "\n\t"]
        } else if before_comment {
            &[" ", "   ", "\t"]
        } else {
            &[" ", "  ", "\t", "\n", "\n      "]
        };
        let choice = choices[i % choices.len()] as usize;
        out.push_str(if options.is_empty() { space } else { options[choice % options.len()] });
    }
    out
}

fn formattable_texts() -> &'static [(String, String)] {
    static TEXTS: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();
    TEXTS.get_or_init(|| {
        let mut paths = corpus_cases();
        paths.extend(crate::examples::example_paths());
        paths
            .into_iter()
            .filter_map(|path| {
                let text = std::fs::read_to_string(&path).ok()?;
                // The main file of a fixture.
                let main = text.split("\n//- ").next().unwrap_or("").to_owned();
                format(&main, FileId(0)).ok()?;
                Some((path.to_string_lossy().into_owned(), main))
            })
            .collect()
    })
}

/// `text` with a comment in some of the spaces between its tokens, at the end of a line or
/// on a line of its own, as `choices` say.
fn commented(text: &str, choices: &[u8]) -> String {
    let mut out = String::new();
    for (i, piece) in pieces(text).iter().enumerate() {
        match piece {
            Piece::Fixed(t) | Piece::Comment(t) => out.push_str(t),
            Piece::Space(space) => match choices[i % choices.len()] % 4 {
                0 => out.push_str(&format!(" // note {i}\n")),
                1 => out.push_str(&format!("\n// note {i}\n")),
                _ => out.push_str(space),
            },
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// The layout of a text does not change its formatting.
    #[test]
    fn the_layout_of_a_text_does_not_change_its_formatting(
        index in any::<usize>(),
        choices in proptest::collection::vec(any::<u8>(), 1..64),
    ) {
        let texts = formattable_texts();
        let (name, text) = &texts[index % texts.len()];
        let relaid = relaid(text, &choices);
        let expect = formatted(name, text);
        let actual = formatted(name, &relaid);
        prop_assert_eq!(actual, expect, "{} relaid:\n{}", name, relaid);
    }

    /// A comment may stand between any two tokens: formatting keeps it and formats its own
    /// output to the same text.
    #[test]
    fn comments_anywhere_are_kept_and_formatting_is_idempotent(
        index in any::<usize>(),
        choices in proptest::collection::vec(any::<u8>(), 1..64),
    ) {
        let texts = formattable_texts();
        let (name, text) = &texts[index % texts.len()];
        let commented = commented(text, &choices);
        let once = formatted(name, &commented);
        prop_assert!(once.is_some(), "{} with comments does not parse:\n{}", name, commented);
        let kept = once.as_deref().and_then(Fingerprint::new).map(|f| f.comments);
        prop_assert_eq!(kept, Fingerprint::new(&commented).map(|f| f.comments), "{} lost comments", name);
        let twice = once.as_deref().and_then(|once| formatted(name, once));
        prop_assert_eq!(&twice, &once, "{} with comments is not idempotent:\n{}", name, commented);
    }
}
