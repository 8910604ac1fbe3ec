//! Rendering diagnostics for people, with ariadne.

use std::collections::HashMap;
use std::fmt;

use ariadne::{Cache, Config, IndexType, Report, ReportKind, Source};

use crate::{Diagnostic, FileId, Severity, Span};

/// The texts of the files that diagnostics point into, by id, with the name to show.
#[derive(Default)]
pub struct Sources {
    files: HashMap<FileId, (String, Source<String>)>,
}

impl Sources {
    pub fn add(&mut self, file: FileId, name: impl Into<String>, text: impl Into<String>) {
        self.files.insert(file, (name.into(), Source::from(text.into())));
    }

    pub fn name(&self, file: FileId) -> &str {
        self.files.get(&file).map_or("<unknown file>", |(name, _)| name)
    }

    pub fn text(&self, file: FileId) -> &str {
        self.files.get(&file).map_or("", |(_, source)| source.text())
    }
}

/// A file id that ariadne prints by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Named(FileId);

struct NamedCache<'a>(&'a Sources, Source<String>);

impl Cache<Named> for NamedCache<'_> {
    type Storage = String;

    fn fetch(&mut self, id: &Named) -> Result<&Source<String>, impl fmt::Debug> {
        Ok::<_, ()>(self.0.files.get(&id.0).map_or(&self.1, |(_, source)| source))
    }

    fn display<'b>(&self, id: &'b Named) -> Option<impl fmt::Display + 'b> {
        Some(self.0.name(id.0).to_owned())
    }
}

/// Renders diagnostics one after another, as `flowc check` prints them.
pub fn render(diagnostics: &[Diagnostic], sources: &Sources, color: bool) -> String {
    let mut out = Vec::new();
    let mut cache = NamedCache(sources, Source::from(String::new()));
    for diagnostic in diagnostics {
        let kind = match diagnostic.severity {
            Severity::Error => ReportKind::Error,
            Severity::Warning => ReportKind::Warning,
        };
        let span = |file: FileId, span: Span| (Named(file), clamp(sources.text(file), span));
        let primary = &diagnostic.primary;
        let mut report = Report::build(kind, span(primary.file, primary.span))
            .with_config(Config::default().with_color(color).with_index_type(IndexType::Byte).with_compact(false))
            .with_code(diagnostic.code)
            .with_message(&diagnostic.message);
        // ariadne keeps labels of one file in one snippet only when they come in line order,
        // and draws no underline for a label without text: order the labels by position and
        // give the primary label the message when it has no text of its own.
        let mut labels: Vec<(&crate::Label, bool)> =
            std::iter::once((primary, true)).chain(diagnostic.secondary.iter().map(|label| (label, false))).collect();
        labels.sort_by_key(|(label, _)| (label.file, label.span.start));
        for (order, (label, is_primary)) in labels.into_iter().enumerate() {
            let text = match (is_primary, label.message.is_empty()) {
                (true, true) => diagnostic.message.as_str(),
                _ => label.message.as_str(),
            };
            let mut drawn = ariadne::Label::new(span(label.file, label.span)).with_order(order as i32);
            if !text.is_empty() {
                drawn = drawn.with_message(text);
            }
            if color {
                drawn = drawn.with_color(if is_primary { ariadne::Color::Red } else { ariadne::Color::Blue });
            }
            report = report.with_label(drawn);
        }
        for note in &diagnostic.notes {
            report = report.with_note(note);
        }
        if let Some(help) = &diagnostic.help {
            report = report.with_help(help);
        }
        // Writing into a Vec cannot fail.
        let _ = report.finish().write(&mut cache, &mut out);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Clamps a span to the text and to character boundaries, so that rendering never fails on
/// a span that outlived an edit.
fn clamp(text: &str, span: Span) -> std::ops::Range<usize> {
    let boundary = |mut offset: usize| {
        offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        offset
    };
    let start = boundary(span.start as usize);
    let end = boundary(span.end as usize).max(start);
    start..end
}
