//! The parse driver: one declaration or flow item at a time, with recovery.
//!
//! pest stops at its first error, so the driver parses a single declaration (`item_entry`)
//! or flow item (`flow_item_entry`) per call. When one fails, the driver reports one
//! diagnostic, records an error node, and resumes at the next declaration or flow item, so
//! that one typo never hides the rest of the file.

use flow_diagnostics::{Code, Diagnostic, FileId, Span};
use flow_grammar::{FlowParser, Pair, Parser, Rule};

use crate::ast::{FlowDecl, FlowItem, FlowItemKind, Ident, Item, ItemKind, Unparsed};
use crate::errors::{self, Context};
use crate::lexer::{
    self, DECLARATION_KEYWORDS, FLOW_ITEM_KEYWORDS, LexError, Resume, docs_before, skip_trivia, word_at,
};
use crate::tree::Builder;

/// A parsed file: its syntax tree and every syntax diagnostic.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Parse {
    pub file: crate::ast::File,
    pub diagnostics: Vec<Diagnostic>,
}

/// Parses a whole file. Never fails: text that cannot be parsed becomes error nodes and
/// diagnostics.
pub fn parse(text: &str, file: FileId) -> Parse {
    parse_with(text, file, true)
}

/// Parses a whole file with pest alone: the reference the quick reading of `let` items
/// must agree with (the differential tests and the `parse` fuzz target compare the two).
pub fn parse_with_pest_only(text: &str, file: FileId) -> Parse {
    parse_with(text, file, false)
}

fn parse_with(text: &str, file: FileId, quick: bool) -> Parse {
    let lex_errors = lexer::prescan(text);
    // The quick reading relies on the pre-scan's bounds on nesting; a file with a lexical
    // error goes to pest whole.
    let quick = quick && lex_errors.is_empty();
    let unclosed = lex_errors
        .iter()
        .filter_map(|error| match *error {
            LexError::UnterminatedString { start, end } => Some((start, end)),
            _ => None,
        })
        .collect();
    let mut driver = Driver { text, file, lex_errors, unclosed, diagnostics: Vec::new(), quick };
    // Every opening past the nesting limit is an error (the driver withholds what reaches
    // one); one a line is reported.
    let mut reported_deep_to = 0;
    for error in driver.lex_errors.clone() {
        if let LexError::TooDeep { at, .. } = error {
            if at < reported_deep_to {
                continue;
            }
            reported_deep_to = lexer::line_end(text, at);
        }
        driver.diagnostics.push(lex_diagnostic(text, file, error));
    }
    let mut items = Vec::new();
    let mut pos = 0;
    loop {
        pos = skip_trivia(text, pos);
        if pos >= text.len() {
            break;
        }
        let (item, next) = if word_at(text, pos) == "flow" {
            driver.flow(pos)
        } else {
            match driver.parse_one(Rule::item, pos, Resume::Declaration, Context::Declaration) {
                Ok((pair, end)) => {
                    let mut builder = Builder::new(text, pos, file);
                    let item = builder.item(pair);
                    driver.diagnostics.append(&mut builder.diagnostics);
                    (item, end)
                }
                Err(resume) => (driver.error_item(pos, resume), resume),
            }
        };
        items.push(item);
        // INVARIANT: every step consumes text, so the loop ends.
        pos = next.max(pos + 1);
    }
    Parse { file: crate::ast::File { items }, diagnostics: driver.diagnostics }
}

/// The declarations and flow items whose keyword is followed by the name they declare.
const NAMING_DECLARATIONS: &[&str] =
    &["label", "enum", "type", "role", "source", "model", "corpus", "system", "fn", "flow"];
const NAMING_FLOW_ITEMS: &[&str] =
    &["input", "output", "param", "let", "gate", "infer", "retrieve", "review", "approval", "action", "emit"];

/// What can be read of an item at `start` that did not parse: one of `keywords`, and the
/// name after it on the same line when the keyword is one of `naming`.
fn unparsed(text: &str, start: usize, keywords: &[&str], naming: &[&str]) -> Unparsed {
    let keyword = word_at(text, start);
    if !keywords.contains(&keyword) {
        return Unparsed::default();
    }
    let bytes = text.as_bytes();
    let mut at = start + keyword.len();
    while at < bytes.len() && matches!(bytes[at], b' ' | b'\t') {
        at += 1;
    }
    let word = word_at(text, at);
    let is_name = naming.contains(&keyword)
        && word.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && !keywords.contains(&word);
    let name = is_name.then(|| Ident { text: word.into(), span: Span::new(at, at + word.len()) });
    Unparsed { keyword: Some(keyword.into()), name }
}

/// The rule that parses an item followed by the start of the next one.
fn entry_rule(rule: Rule) -> Rule {
    match rule {
        Rule::item => Rule::item_entry,
        Rule::flow_item => Rule::flow_item_entry,
        other => other,
    }
}

/// Parses `text` again, recording what pest attempted at the furthest position, and
/// returns the error. Recording makes messages precise but slows parsing down, so it is
/// switched on only to word an error. pest's switch is process-wide: a lock makes every
/// wording parse see it on (parses on other threads meanwhile only run slower).
fn detailed_error(rule: Rule, text: &str) -> Option<flow_grammar::Error<Rule>> {
    static DETAIL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = DETAIL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    flow_grammar::set_error_detail(true);
    let error = FlowParser::parse(rule, text).err();
    flow_grammar::set_error_detail(false);
    error
}

fn lex_diagnostic(text: &str, file: FileId, error: LexError) -> Diagnostic {
    match error {
        LexError::UnterminatedString { start, end } => {
            Diagnostic::new(Code::E0003, file, Span::new(start, end.max(start + 1)), "this string is not closed")
                .with_primary_message("the closing `\"` is missing on this line")
                .with_help("a string ends on its line; write `\\n` for a line break inside it")
        }
        LexError::TooDeep { at, len } => Diagnostic::new(
            Code::E0006,
            file,
            Span::new(at, (at + len).min(text.len())),
            format!("brackets and `if` expressions nest more than {} levels deep here", lexer::MAX_NESTING),
        )
        .with_help("split the expression into several `let` items"),
        LexError::PrefixRun { at, len } => Diagnostic::new(
            Code::E0006,
            file,
            Span::new(at, (at + len).min(text.len())),
            format!("more than {} `not` or `-` follow each other here", lexer::MAX_PREFIX_RUN),
        )
        .with_help("one `not` negates and two cancel out; write the condition without the repetition"),
    }
}

struct Driver<'t> {
    text: &'t str,
    file: FileId,
    lex_errors: Vec<LexError>,
    /// The spans of the strings the pre-scan found unterminated, in order (they do not
    /// overlap).
    unclosed: Vec<(usize, usize)>,
    diagnostics: Vec<Diagnostic>,
    /// Whether `let` items are read by the quick reading (`tree/quick.rs`) where it applies.
    quick: bool,
}

impl<'t> Driver<'t> {
    fn error_item(&self, start: usize, end: usize) -> Item {
        let kind = ItemKind::Error(unparsed(self.text, start, DECLARATION_KEYWORDS, NAMING_DECLARATIONS));
        Item { docs: docs_before(self.text, start), span: Span::new(start, end), kind }
    }

    /// The first lexical error at or after `pos` and before `end`.
    fn lex_error_in(&self, pos: usize, end: usize) -> Option<LexError> {
        let index = self.lex_errors.partition_point(|e| e.start() < pos);
        self.lex_errors.get(index).copied().filter(|e| e.start() < end)
    }

    /// The end of the unterminated string the pre-scan was reading at `pos`, if any.
    fn inside_unclosed_string(&self, pos: usize) -> Option<usize> {
        let index = self.unclosed.partition_point(|&(start, _)| start < pos);
        let (_, end) = *self.unclosed.get(index.checked_sub(1)?)?;
        (pos < end).then_some(end)
    }

    /// Where the first lexical error at or after `pos` that must keep text from the
    /// parser starts (deep nesting: pest's recursion is bounded only by this check).
    fn fatal_error_after(&self, pos: usize) -> Option<usize> {
        let index = self.lex_errors.partition_point(|e| e.start() < pos);
        self.lex_errors[index..].iter().find(|e| e.is_fatal()).map(|e| e.start())
    }

    /// Parses `rule` at `pos`. On failure, reports the error (unless a lexical error
    /// already explains it) and returns where to resume.
    fn parse_one(
        &mut self,
        rule: Rule,
        pos: usize,
        resume: Resume,
        context: Context,
    ) -> Result<(Pair<'t, Rule>, usize), usize> {
        let text = self.text;
        // Nor is text the pre-scan read as the inside of a string that never closed (the
        // driver may resume in it, at a `}` that the pre-scan took for an interpolation's
        // end): its nesting was not counted.
        if let Some(end) = self.inside_unclosed_string(pos) {
            return Err(end);
        }
        // Text nested too deep is not handed to pest at all: an item that reaches it is
        // skipped, and pest sees only the text before it (pest may read on past where the
        // item seems to end).
        let fatal = self.fatal_error_after(pos);
        if let Some(fatal) = fatal {
            let end = lexer::resume_point(text, pos, pos + 1, resume);
            if fatal < end {
                return Err(end);
            }
        }
        let source = &text[pos..fatal.unwrap_or(text.len())];
        // The item alone, then a check that the next item may start where it ends; the
        // entry rule (which includes that check) parses again only to word an error.
        let entry = entry_rule(rule);
        let error = match FlowParser::parse(rule, source) {
            Ok(mut pairs) => match pairs.next() {
                Some(pair) => {
                    let end = pos + pair.as_span().end();
                    if rule == entry || self.may_follow(end, resume) {
                        return Ok((pair, end));
                    }
                    match FlowParser::parse(entry, source) {
                        Err(error) => error,
                        // INVARIANT: the entry rule is the item rule plus the same check.
                        Ok(_) => return Ok((pair, end)),
                    }
                }
                None => return Err(lexer::resume_point(text, pos, pos + 1, resume)),
            },
            Err(error) => error,
        };
        let error = detailed_error(entry, source).unwrap_or(error);
        let worded = errors::word(source, &error, context, "the end of the file");
        let at = pos + worded.at;
        let resume_at = self.resume_after(pos, at, resume);
        if self.lex_error_in(pos, resume_at.max(at + 1)).is_some() {
            // An unterminated string or deep nesting was already reported.
            return Err(resume_at);
        }
        if let Some(resume_at) = self.unclosed_bracket(pos, at, resume) {
            return Err(resume_at);
        }
        if let Some(resume_at) = self.ran_into_next_item(rule, pos, at, resume, context) {
            return Err(resume_at);
        }
        let mut diagnostic = Diagnostic::new(Code::E0001, self.file, Span::new(at, at + worded.len), worded.message);
        if let Some(help) = worded.help {
            diagnostic = diagnostic.with_help(help);
        }
        self.diagnostics.push(diagnostic);
        Err(resume_at)
    }

    /// Whether the next declaration or flow item may start at the first token from `end`:
    /// the check of the entry rules' lookahead.
    fn may_follow(&self, end: usize, resume: Resume) -> bool {
        let text = self.text;
        let next = skip_trivia(text, end);
        if next >= text.len() {
            return true;
        }
        let word = word_at(text, next);
        match resume {
            Resume::Declaration => DECLARATION_KEYWORDS.contains(&word),
            Resume::FlowItem => {
                text.as_bytes()[next] == b'}'
                    || FLOW_ITEM_KEYWORDS.contains(&word)
                    || DECLARATION_KEYWORDS.contains(&word)
            }
        }
    }

    /// Whether parsing may resume at `at`: a keyword of the right kind starting a line, the
    /// end of the text, or (in a flow) a `}` starting a line.
    fn is_resume_point(&self, at: usize, resume: Resume) -> bool {
        let text = self.text;
        if at >= text.len() {
            return true;
        }
        if !lexer::starts_line(text, at) {
            return false;
        }
        let word = word_at(text, at);
        let column0 = at == 0 || text.as_bytes()[at - 1] == b'\n';
        match resume {
            Resume::Declaration => DECLARATION_KEYWORDS.contains(&word),
            Resume::FlowItem => {
                FLOW_ITEM_KEYWORDS.contains(&word)
                    || (column0 && DECLARATION_KEYWORDS.contains(&word))
                    || text.as_bytes()[at] == b'}'
            }
        }
    }

    /// Reports a bracket of the item at `item_start` that is still open where the next
    /// declaration or flow item starts (at or before the error at `error_at`), and returns
    /// where to resume: at that next item.
    fn unclosed_bracket(&mut self, item_start: usize, error_at: usize, resume: Resume) -> Option<usize> {
        let text = self.text;
        let item_column = lexer::column(text, item_start);
        let next_item = if error_at >= text.len() || self.is_resume_point(error_at, resume) && error_at > item_start {
            error_at
        } else {
            lexer::line_starting_with(text, item_start, error_at, item_column, |word| match resume {
                Resume::Declaration => DECLARATION_KEYWORDS.contains(&word),
                Resume::FlowItem => FLOW_ITEM_KEYWORDS.contains(&word),
            })?
        };
        let bracket = lexer::unclosed_bracket(text, item_start, next_item)?;
        let last = lexer::trim_trivia(text, bracket, next_item);
        let last_start = text[..last].char_indices().next_back().map_or(0, |(i, _)| i);
        let open = &text[bracket..bracket + 1];
        let close = match open {
            "(" => ")",
            "[" => "]",
            _ => "}",
        };
        self.diagnostics.push(
            Diagnostic::new(Code::E0004, self.file, Span::new(last_start, last), format!("`{open}` is never closed"))
                .with_primary_message(format!("expected `{close}` after this"))
                .with_label(self.file, Span::new(bracket, bracket + 1), format!("this `{open}` is not closed")),
        );
        Some(next_item)
    }

    /// An item that fails only past the start of the next item (at its own indentation)
    /// ran into it: `let total = 1 +` followed by `let next = …` reads `let` as a name.
    /// Parses the item's own lines alone and reports where they end too early, on the line
    /// of the mistake. Returns where to resume: at the next item.
    fn ran_into_next_item(
        &mut self,
        rule: Rule,
        pos: usize,
        at: usize,
        resume: Resume,
        context: Context,
    ) -> Option<usize> {
        let text = self.text;
        let is_next = |word: &str| match resume {
            Resume::Declaration => DECLARATION_KEYWORDS.contains(&word),
            Resume::FlowItem => FLOW_ITEM_KEYWORDS.contains(&word) || DECLARATION_KEYWORDS.contains(&word),
        };
        let next_item = lexer::line_starting_with(text, pos, at.saturating_sub(1), lexer::column(text, pos), is_next)?;
        let own = lexer::trim_trivia(text, pos, next_item);
        let error = detailed_error(entry_rule(rule), &text[pos..own])?;
        let worded = errors::word(&text[pos..own], &error, context, "the end of the line");
        let at = pos + worded.at;
        let diagnostic = if at >= own {
            // The item stops short: point at its last token.
            let last = text[..own].char_indices().next_back().map_or(pos, |(i, _)| i);
            Diagnostic::new(Code::E0001, self.file, Span::new(last, own), worded.message)
                .with_primary_message(format!("expected {} after this", worded.expected))
        } else {
            Diagnostic::new(Code::E0001, self.file, Span::new(at, at + worded.len), worded.message)
        };
        self.diagnostics.push(match worded.help {
            Some(help) => diagnostic.with_help(help),
            None => diagnostic,
        });
        Some(next_item)
    }

    fn resume_after(&self, item_start: usize, error_at: usize, resume: Resume) -> usize {
        if error_at > item_start && self.is_resume_point(error_at, resume) {
            return error_at;
        }
        lexer::resume_point(self.text, item_start, error_at.max(item_start + 1), resume)
    }

    fn flow(&mut self, pos: usize) -> (Item, usize) {
        let text = self.text;
        let docs = docs_before(text, pos);
        let head = self.parse_one(Rule::flow_head, pos, Resume::Declaration, Context::FlowHead);
        let (name, mut cursor) = match head {
            Ok((pair, end)) => {
                let mut builder = Builder::new(text, pos, self.file);
                let name = builder.flow_name(pair);
                match name {
                    Some(name) => (name, end),
                    None => return (self.error_item(pos, end), end),
                }
            }
            Err(resume) => return (self.error_item(pos, resume), resume),
        };
        let open_brace = cursor - 1;
        let mut items = Vec::new();
        loop {
            let at = skip_trivia(text, cursor);
            if at >= text.len() || self.is_unclosed_flow_end(at) {
                self.unclosed_flow(&name, open_brace, at);
                cursor = at;
                break;
            }
            if text.as_bytes()[at] == b'}' {
                cursor = at + 1;
                break;
            }
            if let Some((item, end)) = self.quick_let(at) {
                items.push(item);
                cursor = end;
                continue;
            }
            match self.parse_one(Rule::flow_item, at, Resume::FlowItem, Context::FlowItem) {
                Ok((pair, end)) => {
                    let mut builder = Builder::new(text, at, self.file);
                    items.push(builder.flow_item(pair));
                    self.diagnostics.append(&mut builder.diagnostics);
                    cursor = end;
                }
                Err(resume) => {
                    items.push(FlowItem {
                        docs: docs_before(text, at),
                        span: Span::new(at, resume),
                        kind: FlowItemKind::Error(unparsed(text, at, FLOW_ITEM_KEYWORDS, NAMING_FLOW_ITEMS)),
                    });
                    cursor = resume.max(at + 1);
                }
            }
        }
        let item = Item { docs, span: Span::new(pos, cursor), kind: ItemKind::Flow(FlowDecl { name, items }) };
        (item, cursor)
    }

    /// The `let` item at `at` by the quick reading, when it applies and the next item may
    /// follow it; otherwise `None`, and pest parses the item (and words any error).
    fn quick_let(&self, at: usize) -> Option<(FlowItem, usize)> {
        if !self.quick || !self.text[at..].starts_with("let") {
            return None;
        }
        let (item, end) = Builder::new(self.text, at, self.file).quick_let(at)?;
        self.may_follow(end, Resume::FlowItem).then_some((item, end))
    }

    /// A declaration keyword in the first column ends a flow whose `}` is missing.
    fn is_unclosed_flow_end(&self, at: usize) -> bool {
        let column0 = at == 0 || self.text.as_bytes()[at - 1] == b'\n';
        column0 && DECLARATION_KEYWORDS.contains(&word_at(self.text, at))
    }

    fn unclosed_flow(&mut self, name: &Ident, open_brace: usize, at: usize) {
        let text = self.text;
        let last = lexer::trim_trivia(text, open_brace + 1, at);
        let last_start = text[..last].char_indices().next_back().map_or(0, |(i, _)| i);
        let found = if at >= text.len() { "the file ends" } else { "the next declaration starts" };
        self.diagnostics.push(
            Diagnostic::new(
                Code::E0004,
                self.file,
                Span::new(last_start, last),
                format!("flow `{}` is never closed", name.text),
            )
            .with_primary_message(format!("expected `}}` after this, before {found}"))
            .with_label(self.file, Span::new(open_brace, open_brace + 1), "the flow opens here"),
        );
    }
}
