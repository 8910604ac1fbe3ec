//! A light lexical layer over the source text, independent of pest.
//!
//! pest parses one declaration or flow item at a time; around it, the driver needs to skip
//! comments, find the doc comments of an item, find where to resume after a syntax error,
//! and find problems that pest would report poorly or not survive: strings that never
//! close, and expressions nested so deep that parsing them would exhaust the stack. This
//! module does those scans; each is linear in the text it looks at.

/// How many `not` or `-` may follow each other: the grammar nests them.
pub const MAX_PREFIX_RUN: usize = 64;

/// How deeply brackets and `if` expressions may nest. Real policies stay far below this;
/// the limit keeps parsing and checking within a small, fixed stack on every thread.
pub const MAX_NESTING: usize = 32;

/// The words that start a top-level declaration.
pub const DECLARATION_KEYWORDS: &[&str] =
    &["import", "label", "enum", "type", "role", "source", "model", "corpus", "system", "fn", "flow", "test"];

/// The words that start an item inside a flow.
pub const FLOW_ITEM_KEYWORDS: &[&str] = &[
    "version", "owner", "steward", "input", "output", "param", "access", "let", "gate", "infer", "retrieve", "review",
    "approval", "action", "emit", "evidence", "monitor", "migrate",
];

/// Whitespace as the grammar's `WHITESPACE` rule has it: space and `\t` to `\r`.
pub fn is_space(byte: u8) -> bool {
    byte == b' ' || (b'\t'..=b'\r').contains(&byte)
}

pub fn is_ident_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// The identifier-like word starting at `pos`, or `""`.
pub fn word_at(text: &str, pos: usize) -> &str {
    let bytes = text.as_bytes();
    let end = (pos..bytes.len()).find(|&i| !is_ident_byte(bytes[i])).unwrap_or(bytes.len());
    &text[pos.min(end)..end]
}

/// The offset of the first byte after whitespace and comments from `pos`.
pub fn skip_trivia(text: &str, mut pos: usize) -> usize {
    let bytes = text.as_bytes();
    loop {
        while pos < bytes.len() && is_space(bytes[pos]) {
            pos += 1;
        }
        if text[pos..].starts_with('\u{feff}') {
            pos += '\u{feff}'.len_utf8();
            continue;
        }
        if bytes[pos..].starts_with(b"//") {
            pos = line_end(text, pos);
            continue;
        }
        return pos;
    }
}

/// The offset of the end of the line containing `pos` (its `\n`, or the end of the text).
pub fn line_end(text: &str, pos: usize) -> usize {
    text.as_bytes()[pos..].iter().position(|&b| b == b'\n').map_or(text.len(), |i| pos + i)
}

fn line_start(text: &str, pos: usize) -> usize {
    text.as_bytes()[..pos].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)
}

/// Whether only whitespace stands between the start of the line and `pos`. Looks back
/// only over spaces and tabs, so it is cheap on long lines.
pub fn starts_line(text: &str, pos: usize) -> bool {
    let bytes = text.as_bytes();
    let mut i = pos;
    while i > 0 && matches!(bytes[i - 1], b' ' | b'\t' | b'\r') {
        i -= 1;
    }
    i == 0 || bytes[i - 1] == b'\n'
}

/// The `///` doc comment lines directly above the line of `pos`, joined, without the
/// slashes and one following space. A blank line or any other line ends the doc comment.
pub fn docs_before(text: &str, pos: usize) -> Option<String> {
    if !starts_line(text, pos) {
        return None;
    }
    let mut end = line_start(text, pos);
    let mut lines = Vec::new();
    while end > 0 {
        let start = line_start(text, end - 1);
        let line = text[start..end - 1].trim();
        match line.strip_prefix("///") {
            Some(doc) if !doc.starts_with('/') => {
                lines.push(doc.strip_prefix(' ').unwrap_or(doc).trim_end());
                end = start;
            }
            _ => break,
        }
    }
    if lines.is_empty() {
        return None;
    }
    lines.reverse();
    Some(lines.join("\n"))
}

/// A problem found by [`prescan`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LexError {
    /// A string whose closing quote is missing on its line; the span starts at its quote.
    UnterminatedString { start: usize, end: usize },
    /// The bracket or `if` at `at` nests deeper than [`MAX_NESTING`].
    TooDeep { at: usize, len: usize },
    /// The `not` or `-` at `at` is one too many in a row ([`MAX_PREFIX_RUN`]).
    PrefixRun { at: usize, len: usize },
}

impl LexError {
    pub fn start(self) -> usize {
        match self {
            LexError::UnterminatedString { start, .. } => start,
            LexError::TooDeep { at, .. } | LexError::PrefixRun { at, .. } => at,
        }
    }

    /// Whether the text around the error must not be handed to the parser at all.
    pub fn is_fatal(self) -> bool {
        matches!(self, LexError::TooDeep { .. } | LexError::PrefixRun { .. })
    }
}

#[derive(Clone, Copy)]
enum Mode {
    /// Code at one bracket level; its open `if`s are `Scan::ifs[ifs..]`.
    Code { ifs: usize },
    /// A string started at `start`.
    Str { start: usize },
}

/// Where an open `if` is: in its condition, its `then` branch, or its `else` branch, which
/// runs to the end of its expression (so an `if` inside it nests).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Branch {
    Condition,
    Then,
    Else,
}

/// The pre-scan's state: the stack of modes (brackets and interpolations push, their closers
/// pop) and the open `if`s of every level, which nest as pest's recursion does.
struct Scan {
    errors: Vec<LexError>,
    stack: Vec<Mode>,
    ifs: Vec<Branch>,
    /// How many brackets and interpolations are open.
    brackets: usize,
}

impl Scan {
    fn nesting(&self) -> usize {
        self.brackets + self.ifs.len()
    }

    /// Every opening past the limit is an error: the driver withholds from pest whatever
    /// reaches one (and reports one a line).
    fn check_depth(&mut self, at: usize, len: usize) {
        if self.nesting() > MAX_NESTING {
            self.errors.push(LexError::TooDeep { at, len });
        }
    }

    /// Where the innermost level's `if`s start.
    fn level_ifs(&self) -> usize {
        match self.stack.last() {
            Some(&Mode::Code { ifs }) => ifs,
            _ => self.ifs.len(),
        }
    }

    fn open_level(&mut self, at: usize) {
        self.stack.push(Mode::Code { ifs: self.ifs.len() });
        self.brackets += 1;
        self.check_depth(at, 1);
    }

    /// Pops the modes from `from` on (keeping the outermost level), with their `if`s.
    fn close_levels(&mut self, from: usize) {
        let from = from.max(1);
        let closed = &self.stack[from.min(self.stack.len())..];
        let levels = closed.iter().filter(|mode| matches!(mode, Mode::Code { .. })).count();
        if let Some(ifs) = closed.iter().find_map(|mode| match mode {
            Mode::Code { ifs } => Some(*ifs),
            Mode::Str { .. } => None,
        }) {
            self.ifs.truncate(ifs);
        }
        self.brackets -= levels;
        self.stack.truncate(from);
    }

    /// Closes the `if`s of the innermost level: every expression before this point at that
    /// level has ended.
    fn release(&mut self) {
        self.ifs.truncate(self.level_ifs());
    }

    /// `then` or `else` ends the `else` branches open inside the condition or `then` branch
    /// it belongs to; returns that `if`'s branch.
    fn end_inner_branches(&mut self) -> Option<&mut Branch> {
        let base = self.level_ifs();
        while self.ifs.len() > base && self.ifs.last() == Some(&Branch::Else) {
            self.ifs.pop();
        }
        if self.ifs.len() > base { self.ifs.last_mut() } else { None }
    }
}

/// Finds unterminated strings and excessive nesting in the whole text, in order.
pub fn prescan(text: &str) -> Vec<LexError> {
    let bytes = text.as_bytes();
    let mut scan = Scan { errors: Vec::new(), stack: vec![Mode::Code { ifs: 0 }], ifs: Vec::new(), brackets: 0 };
    // The current run of `not` and `-`.
    let mut run = 0usize;
    // Whether the last token ended an operand (a word, a number, a string, a closing
    // bracket), and whether it was a number.
    let mut after_operand = false;
    let mut after_number = false;
    let mut pos = 0;
    while pos < bytes.len() {
        let byte = bytes[pos];
        match *scan.stack.last().unwrap_or(&Mode::Code { ifs: 0 }) {
            Mode::Str { .. } => match byte {
                b'"' => {
                    scan.stack.pop();
                    after_operand = true;
                    after_number = false;
                    pos += 1;
                }
                b'\\' => pos += if bytes.get(pos + 1).is_some_and(|&b| b != b'\n') { 2 } else { 1 },
                b'{' => {
                    scan.open_level(pos);
                    after_operand = false;
                    pos += 1;
                }
                b'\n' => {
                    // The outermost string of this line never closed: unwind to the code
                    // around it, forgetting the brackets opened inside it.
                    let outer = scan
                        .stack
                        .iter()
                        .position(|mode| matches!(mode, Mode::Str { .. }))
                        .unwrap_or(scan.stack.len() - 1);
                    if let Mode::Str { start } = scan.stack[outer] {
                        scan.errors.push(LexError::UnterminatedString { start, end: pos });
                    }
                    scan.close_levels(outer);
                    after_operand = false;
                    pos += 1;
                }
                _ => pos += 1,
            },
            Mode::Code { .. } => match byte {
                b'/' if bytes.get(pos + 1) == Some(&b'/') => pos = line_end(text, pos),
                b if is_space(b) => pos += 1,
                b'-' if bytes.get(pos + 1) != Some(&b'>') => {
                    run += 1;
                    if run == MAX_PREFIX_RUN + 1 {
                        scan.errors.push(LexError::PrefixRun { at: pos, len: 1 });
                    }
                    after_operand = false;
                    pos += 1;
                }
                b'"' => {
                    run = 0;
                    scan.stack.push(Mode::Str { start: pos });
                    pos += 1;
                }
                b'(' | b'[' | b'{' => {
                    run = 0;
                    scan.open_level(pos);
                    after_operand = false;
                    pos += 1;
                }
                b',' => {
                    // A comma separates arguments, fields, list items or clauses' names:
                    // every expression before it at its bracket level has ended.
                    run = 0;
                    scan.release();
                    after_operand = false;
                    pos += 1;
                }
                b')' | b']' | b'}' => {
                    run = 0;
                    if scan.stack.len() > 1 {
                        scan.close_levels(scan.stack.len() - 1);
                    }
                    after_operand = true;
                    after_number = false;
                    pos += 1;
                }
                b if is_ident_byte(b) => {
                    let word = word_at(text, pos);
                    let preceded = pos > 0 && is_ident_byte(bytes[pos - 1]);
                    if word == "not" && !preceded {
                        run += 1;
                        if run == MAX_PREFIX_RUN + 1 {
                            scan.errors.push(LexError::PrefixRun { at: pos, len: 3 });
                        }
                        after_operand = false;
                        pos += 3;
                        continue;
                    }
                    run = 0;
                    let mut operand = false;
                    match word {
                        "if" if !preceded => {
                            scan.ifs.push(Branch::Condition);
                            scan.check_depth(pos, 2);
                        }
                        "then" if !preceded => {
                            if let Some(branch @ Branch::Condition) = scan.end_inner_branches() {
                                *branch = Branch::Then;
                            }
                        }
                        "else" if !preceded => {
                            let next = skip_code_trivia(text, pos + word.len());
                            let chained = word_at(text, next) == "if";
                            if let Some(branch @ Branch::Then) = scan.end_inner_branches() {
                                // `else if` goes on with the same `if`: the grammar's chain
                                // is flat.
                                *branch = if chained { Branch::Condition } else { Branch::Else };
                                if chained {
                                    after_operand = false;
                                    pos = next + 2;
                                    continue;
                                }
                            }
                        }
                        "and" | "or" => {}
                        _ => {
                            // A word right after an operand: no expression goes on from an
                            // operand with a word (except the keywords above, and a money
                            // amount's currency), so every expression at this level has
                            // ended before it.
                            let currency =
                                after_number && word.len() == 3 && word.bytes().all(|b| b.is_ascii_uppercase());
                            if after_operand && !preceded && !currency {
                                scan.release();
                            }
                            operand = true;
                        }
                    }
                    after_operand = operand;
                    after_number = operand && b.is_ascii_digit();
                    pos += word.len().max(1);
                }
                _ => {
                    run = 0;
                    after_operand = false;
                    pos += 1;
                }
            },
        }
    }
    // Strings still open at the end of the text (no final newline).
    if let Some(outer) = scan.stack.iter().position(|mode| matches!(mode, Mode::Str { .. }))
        && let Mode::Str { start } = scan.stack[outer]
    {
        scan.errors.push(LexError::UnterminatedString { start, end: bytes.len() });
    }
    let mut errors = scan.errors;
    errors.sort_by_key(|error| error.start());
    errors
}

/// The offset of the first byte after whitespace and comments from `pos`, as the grammar's
/// `WHITESPACE` skips them.
pub fn skip_code_trivia(text: &str, mut pos: usize) -> usize {
    let bytes = text.as_bytes();
    loop {
        match bytes.get(pos) {
            Some(&b) if is_space(b) => pos += 1,
            Some(b'/') if bytes.get(pos + 1) == Some(&b'/') => pos = line_end(text, pos),
            _ => return pos,
        }
    }
}

/// Where to resume after a syntax error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resume {
    /// At the next declaration keyword that starts a line.
    Declaration,
    /// At the next flow item keyword that starts a line outside brackets, or at the `}` that
    /// closes the flow, or at a declaration keyword in the first column.
    FlowItem,
}

/// The offset of the first place at or after `not_before` to resume parsing after an item
/// that starts at `from`, or the end of the text. Brackets are counted from `from`, so a
/// keyword inside an unfinished record or call of the item is not taken for the next item.
///
/// Besides keywords, any word that starts a line no deeper than the item itself is a
/// place to try: it is likely the next item, perhaps with a misspelt keyword.
pub fn resume_point(text: &str, from: usize, not_before: usize, resume: Resume) -> usize {
    let bytes = text.as_bytes();
    let item_column = column(text, from);
    let mut depth = 0i64;
    let mut pos = from;
    while pos < bytes.len() {
        match bytes[pos] {
            b'/' if bytes.get(pos + 1) == Some(&b'/') => pos = line_end(text, pos),
            b'"' => pos = string_end(text, pos),
            b'(' | b'[' | b'{' => {
                depth += 1;
                pos += 1;
            }
            b'}' if depth == 0 && resume == Resume::FlowItem && pos >= not_before => return pos,
            b')' | b']' | b'}' => {
                depth -= 1;
                pos += 1;
            }
            b if is_ident_byte(b) => {
                let word = word_at(text, pos);
                if pos >= not_before && pos > from && starts_line(text, pos) {
                    let column = column(text, pos);
                    let declaration = DECLARATION_KEYWORDS.contains(&word);
                    let found = match resume {
                        Resume::Declaration => (declaration && depth <= 0) || column == 0,
                        Resume::FlowItem => {
                            (declaration && column == 0)
                                || (depth == 0 && FLOW_ITEM_KEYWORDS.contains(&word))
                                || (depth <= 0 && column <= item_column)
                        }
                    };
                    if found {
                        return pos;
                    }
                }
                pos += word.len().max(1);
            }
            _ => pos += 1,
        }
    }
    bytes.len()
}

/// The offset just after the string starting at `pos` (a `"`), or the end of its line when
/// it does not close there. Interpolations may contain strings of their own.
fn string_end(text: &str, pos: usize) -> usize {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut in_string = true;
    let mut i = pos + 1;
    while i < bytes.len() {
        match (in_string, bytes[i]) {
            (_, b'\n') => return i,
            (true, b'"') if depth == 0 => return i + 1,
            (true, b'"') => in_string = false,
            (true, b'\\') => i += 1,
            (true, b'{') => {
                depth += 1;
                in_string = false;
            }
            (false, b'"') => in_string = true,
            (false, b'}') => {
                depth = depth.saturating_sub(1);
                in_string = true;
            }
            _ => {}
        }
        i += 1;
    }
    bytes.len()
}

/// The offset of the last unmatched `(`, `[` or `{` between `from` and `to`, if any.
pub fn unclosed_bracket(text: &str, from: usize, to: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut open = Vec::new();
    let mut pos = from;
    while pos < to.min(bytes.len()) {
        match bytes[pos] {
            b'/' if bytes.get(pos + 1) == Some(&b'/') => pos = line_end(text, pos),
            b'"' => pos = string_end(text, pos),
            b'(' | b'[' | b'{' => {
                open.push(pos);
                pos += 1;
            }
            b')' | b']' | b'}' => {
                open.pop();
                pos += 1;
            }
            _ => pos += 1,
        }
    }
    open.pop()
}

/// The column (in bytes) of `pos` on its line.
pub fn column(text: &str, pos: usize) -> usize {
    pos - line_start(text, pos)
}

/// The first line after the line of `from`, up to and including `to`, whose first word
/// satisfies `is_start` and is indented no deeper than `max_column`.
pub fn line_starting_with(
    text: &str,
    from: usize,
    to: usize,
    max_column: usize,
    is_start: impl Fn(&str) -> bool,
) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut line = line_end(text, from) + 1;
    while line <= to.min(bytes.len()) {
        let first = line + bytes[line..].iter().take_while(|b| **b == b' ' || **b == b'\t').count();
        if first <= to && first - line <= max_column && is_start(word_at(text, first)) {
            return Some(first);
        }
        if first >= bytes.len() {
            return None;
        }
        line = line_end(text, first) + 1;
    }
    None
}

/// The end of the text `start..end` without its trailing whitespace and comments: the
/// offset just after the last token before `end`.
pub fn trim_trivia(text: &str, start: usize, mut end: usize) -> usize {
    let bytes = text.as_bytes();
    // Trailing trivia ends in whitespace, or in a comment at the very end of the text.
    if end <= start || (end < bytes.len() && !is_space(bytes[end - 1])) {
        return end;
    }
    let mut at_text_end = end == bytes.len();
    loop {
        let mut newline = at_text_end;
        at_text_end = false;
        while end > start && is_space(bytes[end - 1]) {
            newline |= bytes[end - 1] == b'\n';
            end -= 1;
        }
        // A comment runs to the end of its line: only whitespace with a line break (or
        // the end of the text) can follow one.
        if !newline {
            return end;
        }
        // A comment may end the remaining text of its line.
        let line_start = bytes[start..end].iter().rposition(|&b| b == b'\n').map_or(start, |i| start + i + 1);
        match comment_start(&text[line_start..end]) {
            Some(offset) => end = line_start + offset,
            None => return end,
        }
    }
}

/// Where a `//` comment starts in one line of text, outside strings.
fn comment_start(line: &str) -> Option<usize> {
    let bytes = line.as_bytes();
    let mut in_string = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_string => i += 1,
            b'"' => in_string = !in_string,
            b'/' if !in_string && bytes.get(i + 1) == Some(&b'/') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}
