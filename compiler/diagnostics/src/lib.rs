//! Diagnostics shared by every phase of the compiler: where a problem is ([`Span`],
//! [`FileId`]), what it is ([`Diagnostic`] with a stable [`Code`] from the registry), and how
//! it is shown to a person ([`render`]).
//!
//! Phases build [`Diagnostic`] values and never render them; the CLI renders them with
//! ariadne or serialises them, and the language server maps them to its protocol. The code
//! determines the severity, so a code's meaning never drifts between tools.

mod line_index;
mod registry;
mod render;
#[cfg(test)]
mod tests;

pub use line_index::{LineCol, LineIndex};
pub use registry::{Code, Severity};
pub use render::{Sources, render};

use std::fmt;

/// A file known to the compiler session. Ids are assigned by whoever loads the files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct FileId(pub u32);

/// A byte range in one file's text.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        // INVARIANT: spans are built from offsets into texts that the loader limits to
        // `u32::MAX` bytes, so the conversions cannot truncate.
        Span { start: clamp_u32(start), end: clamp_u32(end.max(start)) }
    }

    /// An empty span at `offset`.
    pub fn at(offset: usize) -> Span {
        Span::new(offset, offset)
    }

    /// The smallest span covering both.
    pub fn cover(self, other: Span) -> Span {
        Span { start: self.start.min(other.start), end: self.end.max(other.end) }
    }

    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

fn clamp_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl fmt::Debug for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

/// A place in a file with an optional short text shown beside it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Label {
    pub file: FileId,
    pub span: Span,
    pub message: String,
}

impl Label {
    pub fn new(file: FileId, span: Span, message: impl Into<String>) -> Label {
        Label { file, span, message: message.into() }
    }
}

/// One problem found in the user's files.
///
/// Messages follow one style: lowercase, no final period, user-written names in backticks,
/// and the domain's words rather than the compiler's.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    pub primary: Label,
    pub secondary: Vec<Label>,
    pub notes: Vec<String>,
    pub help: Option<String>,
}

impl Diagnostic {
    /// A diagnostic whose primary label has no text of its own.
    pub fn new(code: Code, file: FileId, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            code,
            severity: code.severity(),
            message: message.into(),
            primary: Label::new(file, span, ""),
            secondary: Vec::new(),
            notes: Vec::new(),
            help: None,
        }
    }

    /// Sets the text shown beside the primary span.
    pub fn with_primary_message(mut self, message: impl Into<String>) -> Diagnostic {
        self.primary.message = message.into();
        self
    }

    /// Adds a secondary label: another place that takes part in the problem.
    pub fn with_label(mut self, file: FileId, span: Span, message: impl Into<String>) -> Diagnostic {
        self.secondary.push(Label::new(file, span, message));
        self
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The order in which diagnostics are shown: by file, then position, then code.
    pub fn sort_key(&self) -> (FileId, u32, u32, Code, &str) {
        let Label { file, span, .. } = &self.primary;
        (*file, span.start, span.end, self.code, &self.message)
    }
}

/// Sorts diagnostics by file and position and drops exact duplicates.
pub fn sort(diagnostics: &mut Vec<Diagnostic>) {
    diagnostics.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    diagnostics.dedup();
}
