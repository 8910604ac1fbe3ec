//! A small document layout engine in the style of Wadler's and Prettier's printers.
//!
//! A [`Doc`] describes text with places where a line may break; [`print`] chooses, group by
//! group from the outside in, to print a group on one line when it fits in the width and
//! to break all of its lines otherwise. Beyond Wadler's printer it has what comments need:
//! a trailing comment ([`Doc::Suffix`]) waits for the end of its line, and a group that
//! would put code after it on the same line does not fit; [`Doc::FreshLine`] starts a line
//! unless one has just started, so that a comment of its own line stays on its own line.

/// A document.
#[derive(Clone, Debug)]
pub enum Doc {
    /// Text without line breaks.
    Text(String),
    /// A space when its group is flat (nothing when `soft`), a line break when it is broken.
    Line {
        soft: bool,
    },
    /// Always a line break; the groups around it are broken.
    Hard,
    /// A line break unless the line has no text yet; the groups around it are broken.
    FreshLine,
    Concat(Vec<Doc>),
    /// The document, with the lines it breaks indented one more level.
    Nest(Box<Doc>),
    /// The document, with the lines it breaks indented to the column where it starts.
    Align(Box<Doc>),
    /// Flat when it fits, broken otherwise; `forced` when it contains a forced break.
    Group {
        doc: Box<Doc>,
        forced: bool,
    },
    /// `broken` when the enclosing group is broken, `flat` when it is flat.
    IfBreak {
        broken: Box<Doc>,
        flat: Box<Doc>,
    },
    /// A trailing comment: printed at the end of the line, before its line break.
    Suffix(String),
}

/// Spaces per indentation level.
pub const INDENT: usize = 2;

impl Doc {
    pub fn text(text: impl Into<String>) -> Doc {
        Doc::Text(text.into())
    }

    pub fn nil() -> Doc {
        Doc::Concat(Vec::new())
    }

    pub fn line() -> Doc {
        Doc::Line { soft: false }
    }

    pub fn soft_line() -> Doc {
        Doc::Line { soft: true }
    }

    pub fn nest(self) -> Doc {
        Doc::Nest(Box::new(self))
    }

    pub fn align(self) -> Doc {
        Doc::Align(Box::new(self))
    }

    pub fn group(self) -> Doc {
        let forced = self.forces_break();
        Doc::Group { doc: Box::new(self), forced }
    }

    pub fn if_break(broken: Doc, flat: Doc) -> Doc {
        Doc::IfBreak { broken: Box::new(broken), flat: Box::new(flat) }
    }

    /// Whether printing the document always breaks a line.
    fn forces_break(&self) -> bool {
        match self {
            Doc::Hard | Doc::FreshLine => true,
            Doc::Text(_) | Doc::Line { .. } | Doc::Suffix(_) => false,
            Doc::Concat(docs) => docs.iter().any(Doc::forces_break),
            Doc::Nest(doc) | Doc::Align(doc) => doc.forces_break(),
            Doc::Group { forced, .. } => *forced,
            Doc::IfBreak { broken, flat } => broken.forces_break() || flat.forces_break(),
        }
    }

    /// The width of the document printed flat, or `None` when it cannot be flat (it breaks
    /// a line or carries a comment).
    pub fn flat_width(&self) -> Option<usize> {
        match self {
            Doc::Text(text) => Some(width(text)),
            Doc::Line { soft } => Some(usize::from(!soft)),
            Doc::Hard | Doc::FreshLine | Doc::Suffix(_) => None,
            Doc::Concat(docs) => docs.iter().map(Doc::flat_width).sum(),
            Doc::Nest(doc) | Doc::Align(doc) | Doc::Group { doc, .. } => doc.flat_width(),
            Doc::IfBreak { flat, .. } => flat.flat_width(),
        }
    }
}

impl From<Vec<Doc>> for Doc {
    fn from(docs: Vec<Doc>) -> Doc {
        Doc::Concat(docs)
    }
}

fn width(text: &str) -> usize {
    text.chars().count()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Flat,
    Break,
}

/// Prints `doc` in lines of at most `max_width` columns where its groups allow.
pub fn print(doc: &Doc, max_width: usize) -> String {
    let mut printer =
        Printer { out: String::new(), column: 0, line_empty: true, pending_indent: 0, suffixes: Vec::new(), max_width };
    let mut stack: Vec<(usize, Mode, &Doc)> = vec![(0, Mode::Break, doc)];
    while let Some((indent, mode, doc)) = stack.pop() {
        match doc {
            Doc::Text(text) => printer.text(text, indent),
            Doc::Line { soft } => match mode {
                Mode::Flat if !soft => printer.text(" ", indent),
                Mode::Flat => {}
                Mode::Break => printer.newline(indent),
            },
            Doc::Hard => printer.newline(indent),
            Doc::FreshLine => {
                if !printer.line_empty {
                    printer.newline(indent);
                }
            }
            Doc::Concat(docs) => stack.extend(docs.iter().rev().map(|doc| (indent, mode, doc))),
            Doc::Nest(doc) => stack.push((indent + INDENT, mode, doc)),
            Doc::Align(doc) => stack.push((printer.current_column(), mode, doc)),
            Doc::Group { doc, forced } => {
                let mode = match mode {
                    Mode::Flat => Mode::Flat,
                    Mode::Break if !forced && printer.fits(doc, &stack) => Mode::Flat,
                    Mode::Break => Mode::Break,
                };
                stack.push((indent, mode, doc));
            }
            Doc::IfBreak { broken, flat } => {
                stack.push((indent, mode, if mode == Mode::Break { broken } else { flat }))
            }
            Doc::Suffix(comment) => printer.suffixes.push(comment.clone()),
        }
    }
    printer.flush_suffixes();
    printer.trim_line_end();
    printer.out
}

struct Printer {
    out: String,
    column: usize,
    /// Whether the current line has no text yet (its indentation is written with its text).
    line_empty: bool,
    pending_indent: usize,
    suffixes: Vec<String>,
    max_width: usize,
}

impl Printer {
    /// Writes code: on a new line when a trailing comment is waiting for the end of this one
    /// (which the layout avoids by breaking groups, but cannot always).
    fn text(&mut self, text: &str, indent: usize) {
        if !self.suffixes.is_empty() {
            if text.trim().is_empty() {
                return;
            }
            self.newline(indent);
        }
        self.write(text);
    }

    fn write(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        if self.line_empty {
            self.out.extend(std::iter::repeat_n(' ', self.pending_indent));
            self.column = self.pending_indent;
            self.line_empty = false;
        }
        self.out.push_str(text);
        self.column += width(text);
    }

    fn current_column(&self) -> usize {
        if self.line_empty { self.pending_indent } else { self.column }
    }

    fn flush_suffixes(&mut self) {
        for suffix in std::mem::take(&mut self.suffixes) {
            self.write(&suffix);
        }
    }

    fn trim_line_end(&mut self) {
        let trimmed = self.out.trim_end_matches([' ', '\t']).len();
        self.out.truncate(trimmed);
    }

    fn newline(&mut self, indent: usize) {
        self.flush_suffixes();
        self.trim_line_end();
        self.out.push('\n');
        self.line_empty = true;
        self.pending_indent = indent;
        self.column = 0;
    }

    /// Whether `doc` printed flat, followed by what the stack prints up to its next line
    /// break, fits in the rest of the line without putting code after a trailing comment.
    fn fits(&self, doc: &Doc, rest: &[(usize, Mode, &Doc)]) -> bool {
        let mut remaining = self.max_width.saturating_sub(self.current_column()) as isize;
        let mut after_comment = !self.suffixes.is_empty();
        let mut local: Vec<(Mode, &Doc)> = vec![(Mode::Flat, doc)];
        let mut rest = rest.iter().rev();
        loop {
            let (mode, doc) = match local.pop() {
                Some(next) => next,
                None => match rest.next() {
                    Some(&(_, mode, doc)) => (mode, doc),
                    None => return true,
                },
            };
            match doc {
                Doc::Text(text) => {
                    if text.is_empty() {
                        continue;
                    }
                    if after_comment {
                        return false;
                    }
                    remaining -= width(text) as isize;
                    if remaining < 0 {
                        return false;
                    }
                }
                Doc::Line { soft } => match mode {
                    Mode::Break => return true,
                    Mode::Flat => remaining -= isize::from(!soft),
                },
                Doc::Hard | Doc::FreshLine => return mode == Mode::Break,
                Doc::Concat(docs) => local.extend(docs.iter().rev().map(|doc| (mode, doc))),
                Doc::Nest(doc) | Doc::Align(doc) => local.push((mode, doc)),
                Doc::Group { doc, forced } => local.push((if *forced { Mode::Break } else { mode }, doc)),
                Doc::IfBreak { broken, flat } => local.push((mode, if mode == Mode::Break { broken } else { flat })),
                Doc::Suffix(_) => after_comment = true,
            }
        }
    }
}
