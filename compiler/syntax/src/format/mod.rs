//! Canonical formatting of Flow source text (`flowc fmt`), keeping every comment.
//!
//! The formatter walks pest's concrete tree of the whole file, which has every token but
//! punctuation and trivia, with a cursor over the text: each token, punctuation mark and
//! comment is taken from the text in order, so a comment cannot be skipped or duplicated.
//! Trailing comments stay at the end of their line, comments on their own line stay on
//! their own line, and one blank line is kept where the text had one or more between
//! declarations, flow items, block entries and comments. Layout is otherwise canonical:
//! two-space indentation, one declaration or item per line, clauses (`message`, `when`,
//! `fallback`, …) on their own lines, and expressions, argument lists and records on one
//! line when they fit in [`MAX_WIDTH`] columns and broken one element per line (with a
//! trailing comma) when they do not. The `=>` of an approval matrix's rows are aligned.
//!
//! Before it returns, [`format`] checks its result: the same syntax tree, token for token,
//! and the same comments in the same order. A formatter bug therefore surfaces as
//! [`FormatError::Internal`], never as a changed meaning or a lost comment.

mod doc;

use flow_diagnostics::{Diagnostic, FileId};
use flow_grammar::{FlowParser, Pair, Parser, Rule};

use self::doc::Doc;
use crate::lexer::{is_space, line_end, skip_trivia};

/// The width the formatter fits lines into.
pub const MAX_WIDTH: usize = 100;

/// Why a text could not be formatted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FormatError {
    /// The text has syntax errors: only a text that parses can be formatted.
    Syntax(Vec<Diagnostic>),
    /// The formatter failed its own check; the text must be left as it is.
    Internal(String),
}

/// The canonical formatting of `text`. `file` names the text in syntax diagnostics.
pub fn format(text: &str, file: FileId) -> Result<String, FormatError> {
    let errors: Vec<Diagnostic> =
        crate::parse(text, file).diagnostics.into_iter().filter(Diagnostic::is_error).collect();
    if !errors.is_empty() {
        return Err(FormatError::Syntax(errors));
    }
    let internal = |what: &str| FormatError::Internal(what.to_owned());
    let root = FlowParser::parse(Rule::file, text)
        .ok()
        .and_then(|mut pairs| pairs.next())
        .ok_or_else(|| internal("the grammar does not accept the text as one file"))?;
    let mut formatter = Formatter { text, cursor: 0, failure: None };
    let doc = formatter.file(root.clone());
    if let Some(failure) = formatter.failure {
        return Err(FormatError::Internal(failure));
    }
    let mut out = doc::print(&doc, MAX_WIDTH);
    if !out.is_empty() {
        out.push('\n');
    }
    if text.starts_with('\u{feff}') {
        out.insert(0, '\u{feff}');
    }
    if out == text {
        return Ok(out);
    }
    let formatted = FlowParser::parse(Rule::file, &out)
        .ok()
        .and_then(|mut pairs| pairs.next())
        .ok_or_else(|| internal("the formatted text does not parse"))?;
    let (before, after) = (Fingerprint::of(text, root), Fingerprint::of(&out, formatted));
    if after.tokens != before.tokens {
        return Err(internal("the formatted text does not parse to the same tokens"));
    }
    if after.comments != before.comments {
        return Err(internal("the formatted text does not keep the comments"));
    }
    Ok(out)
}

/// What formatting keeps of a text: every token in order, as a rule and its text, with the
/// rules around them (whitespace, comments, optional commas and the spaces inside an amount
/// do not appear), and every comment in order, without trailing whitespace.
#[derive(Debug, PartialEq, Eq)]
pub struct Fingerprint<'t> {
    pub tokens: Vec<(Rule, &'t str)>,
    pub comments: Vec<&'t str>,
}

impl<'t> Fingerprint<'t> {
    /// The fingerprint of `text`, or `None` when the grammar does not accept it.
    pub fn new(text: &'t str) -> Option<Fingerprint<'t>> {
        let root = FlowParser::parse(Rule::file, text).ok()?.next()?;
        Some(Fingerprint::of(text, root))
    }

    fn of(text: &'t str, root: Pair<'t, Rule>) -> Fingerprint<'t> {
        let mut tokens = Vec::new();
        let mut comments = Vec::new();
        let mut gap_start = 0;
        let mut opaque_until = 0;
        for pair in root.into_inner().flatten() {
            let rule = pair.as_rule();
            let span = pair.as_span();
            let childless = pair.clone().into_inner().next().is_none();
            // An empty record, argument list or list is only its brackets.
            let brackets = matches!(rule, Rule::record_body | Rule::call_args | Rule::list);
            tokens.push((rule, if childless && !brackets { pair.as_str() } else { "" }));
            // Comments are in the gaps between tokens; strings are tokens, however made.
            if span.start() < opaque_until {
                continue;
            }
            if (childless && !brackets) || matches!(rule, Rule::string | Rule::label_ref | Rule::money) {
                scan_comments(text, gap_start, span.start(), &mut comments);
                gap_start = span.end();
                opaque_until = span.end();
            }
        }
        scan_comments(text, gap_start, text.len(), &mut comments);
        Fingerprint { tokens, comments }
    }
}

/// Appends the comments of `text[from..to]`, a text without strings, to `found`.
fn scan_comments<'t>(text: &'t str, from: usize, to: usize, found: &mut Vec<&'t str>) {
    let mut at = from;
    while let Some(i) = text[at..to].find("//") {
        let start = at + i;
        let end = line_end(text, start).min(to);
        found.push(text[start..end].trim_end());
        at = end;
    }
}

/// A comment on its own line.
struct Comment<'t> {
    text: &'t str,
    /// Whether an empty line separates it from what precedes it.
    blank_before: bool,
}

/// The rules whose children go one per line in a block.
fn is_block_entry(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::field_decl
            | Rule::source_setting
            | Rule::model_setting
            | Rule::corpus_setting
            | Rule::system_setting
            | Rule::grant
            | Rule::evidence_setting
            | Rule::test_stmt
            | Rule::test_examples
            | Rule::record_body
            | Rule::flow_item
            | Rule::approval_row
            | Rule::distinct
            | Rule::timing
    )
}

/// The clauses that go on their own lines, indented, after the head of their item.
fn is_clause(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::gate_clause
            | Rule::review_clause
            | Rule::action_clause
            | Rule::emit_clause
            | Rule::fallback
            | Rule::monitor_clause
    )
}

/// Whether a space goes before and after a punctuation mark in running text.
fn spacing(punct: &str) -> (bool, bool) {
    match punct {
        "," | ":" | ")" | "]" => (false, true),
        "." | "[" | "(" | "@" => (false, false),
        _ => (true, true),
    }
}

/// The punctuation marks of the grammar, longest first.
const PUNCTUATION: &[&str] = &["->", "=>", ",", ":", "=", ".", "(", ")", "[", "]", "{", "}", "@"];

struct Formatter<'t> {
    text: &'t str,
    /// Everything before it has been formatted.
    cursor: usize,
    failure: Option<String>,
}

impl<'t> Formatter<'t> {
    fn fail(&mut self, what: String) {
        self.failure.get_or_insert(what);
    }

    // -- Trivia --------------------------------------------------------------------------

    /// The comments between the cursor and `pos`, taken, and whether an empty line follows
    /// the last of them (or the cursor, when there are none).
    fn take_comments(&mut self, pos: usize) -> (Vec<Comment<'t>>, bool) {
        let text = self.text;
        let bytes = text.as_bytes();
        let mut found = Vec::new();
        let mut newlines = 0;
        let mut at = self.cursor;
        while at < pos {
            if bytes[at] == b'\n' {
                newlines += 1;
                at += 1;
            } else if is_space(bytes[at]) {
                at += 1;
            } else if bytes[at..].starts_with(b"//") {
                let end = line_end(text, at).min(pos);
                found.push(Comment { text: text[at..end].trim_end(), blank_before: newlines >= 2 });
                newlines = 0;
                at = end;
            } else if text[at..].starts_with('\u{feff}') {
                at += '\u{feff}'.len_utf8();
            } else {
                let what = format!("unexpected text at byte {at} while looking for comments");
                self.fail(what);
                break;
            }
        }
        self.cursor = self.cursor.max(pos);
        (found, newlines >= 2)
    }

    /// Whether an empty line stands between the cursor and the next comment or token.
    fn blank_line_next(&self) -> bool {
        let rest = &self.text[self.cursor..];
        let next = rest.find(|c: char| !(c.is_ascii_whitespace() || c == '\u{b}')).unwrap_or(rest.len());
        rest[..next].matches('\n').count() >= 2
    }

    /// The comments before `pos`, each on its own line, followed by a line break.
    fn leading(&mut self, pos: usize) -> Doc {
        let (comments, blank_after) = self.take_comments(pos);
        if comments.is_empty() {
            return Doc::nil();
        }
        let mut docs = vec![Doc::FreshLine];
        for (i, comment) in comments.iter().enumerate() {
            if i > 0 && comment.blank_before {
                docs.push(Doc::Hard);
            }
            docs.push(Doc::text(comment.text));
            docs.push(Doc::Hard);
        }
        if blank_after {
            docs.push(Doc::Hard);
        }
        Doc::from(docs)
    }

    /// The comments before `pos` that end a list or a block, each on its own line, with no
    /// line break after the last.
    fn closing_comments(&mut self, pos: usize, after_entries: bool) -> Vec<Doc> {
        let (comments, _) = self.take_comments(pos);
        let mut docs = Vec::new();
        for (i, comment) in comments.iter().enumerate() {
            docs.push(Doc::FreshLine);
            if comment.blank_before && (i > 0 || after_entries) {
                docs.push(Doc::Hard);
            }
            docs.push(Doc::text(comment.text));
        }
        docs
    }

    /// A comment after the cursor on the same line, taken.
    fn trailing(&mut self) -> Doc {
        let text = self.text;
        let rest = &text[self.cursor..];
        let start = self.cursor + (rest.len() - rest.trim_start_matches([' ', '\t']).len());
        if !text[start..].starts_with("//") {
            return Doc::nil();
        }
        let end = line_end(text, start);
        self.cursor = end;
        Doc::Suffix(format!(" {}", text[start..end].trim_end()))
    }

    // -- Tokens --------------------------------------------------------------------------

    /// A token, written as `text`, with the comments around it.
    fn token(&mut self, start: usize, end: usize, text: String) -> Doc {
        if start < self.cursor {
            self.fail(format!("the token at byte {start} was reached twice"));
            return Doc::nil();
        }
        let leading = self.leading(start);
        self.cursor = end;
        let trailing = self.trailing();
        Doc::from(vec![leading, Doc::Text(text), trailing])
    }

    fn leaf(&mut self, pair: &Pair<'t, Rule>) -> Doc {
        let span = pair.as_span();
        self.token(span.start(), span.end(), pair.as_str().to_owned())
    }

    /// The punctuation mark `punct`, which must come next.
    fn punct(&mut self, punct: &str) -> Doc {
        let pos = skip_trivia(self.text, self.cursor);
        if !self.text[pos..].starts_with(punct) {
            self.fail(format!("expected `{punct}` at byte {pos}"));
            return Doc::nil();
        }
        self.token(pos, pos + punct.len(), punct.to_owned())
    }

    /// The comments of the punctuation mark `punct` if it comes next, taken; the mark
    /// itself is left to the layout (an optional comma).
    fn optional_punct(&mut self, punct: &str) -> Option<Doc> {
        let pos = skip_trivia(self.text, self.cursor);
        if !self.text[pos..].starts_with(punct) {
            return None;
        }
        let leading = self.leading(pos);
        self.cursor = pos + punct.len();
        Some(Doc::from(vec![leading, self.trailing()]))
    }

    /// The punctuation mark that comes next before `until`, if any.
    fn next_punct(&self, until: usize) -> Option<&'static str> {
        let pos = skip_trivia(self.text, self.cursor);
        if pos >= until {
            return None;
        }
        PUNCTUATION.iter().copied().find(|p| self.text[pos..].starts_with(p))
    }

    // -- Running text --------------------------------------------------------------------

    /// The pair's children and punctuation in running text, with canonical spaces.
    fn seq(&mut self, pair: Pair<'t, Rule>) -> Doc {
        let end = pair.as_span().end();
        let children: Vec<_> = pair.into_inner().collect();
        let mut run = Run::default();
        self.run(&mut run, children);
        self.puncts(&mut run, end, false);
        Doc::from(run.docs)
    }

    /// Appends children in running text, with the punctuation before each.
    fn run(&mut self, run: &mut Run, children: Vec<Pair<'t, Rule>>) {
        for child in children {
            let rule = child.as_rule();
            let bracketed = matches!(rule, Rule::args | Rule::params);
            self.puncts(run, child.as_span().start(), bracketed);
            if bracketed {
                // `input (amount: Money[USD])`: a parenthesis after a keyword is spaced.
                if run.keyword {
                    run.docs.push(Doc::text(" "));
                }
                let items: Vec<_> = child.into_inner().collect();
                run.docs.push(self.delimited("(", ")", items, false));
                run.space_after = true;
                run.keyword = false;
                continue;
            }
            let tight = matches!(rule, Rule::optional | Rule::field | Rule::variant_suffix | Rule::call_args);
            if run.space_after && !tight {
                run.docs.push(Doc::text(" "));
            }
            // Comments on lines of their own within running text are indented under it
            // (those before it stay where it starts).
            if !run.docs.is_empty() {
                let leading = self.leading(child.as_span().start());
                run.docs.push(leading.nest());
            }
            // `input (…)` is the one keyword that a parenthesis follows.
            run.keyword = rule == Rule::kw_input;
            run.docs.push(self.node(child));
            run.space_after = true;
        }
    }

    /// Appends the punctuation marks before `until` (up to an opening parenthesis when
    /// `stop_at_paren`).
    fn puncts(&mut self, run: &mut Run, until: usize, stop_at_paren: bool) {
        while let Some(punct) = self.next_punct(until) {
            if stop_at_paren && punct == "(" {
                break;
            }
            let (before, after) = spacing(punct);
            // `input (amount: Money[USD])`: a parenthesis after a keyword is spaced.
            let before = before || (punct == "(" && run.keyword);
            if run.space_after && before {
                run.docs.push(Doc::text(" "));
            }
            run.docs.push(self.punct(punct));
            run.space_after = after;
            run.keyword = false;
        }
    }

    /// `open items… close` on one line when it fits, else one item per line with a trailing
    /// comma. Commas between items are taken from the text, where the grammar makes them
    /// optional too.
    fn delimited(&mut self, open: &str, close: &str, items: Vec<Pair<'t, Rule>>, padded: bool) -> Doc {
        let open_doc = self.punct(open);
        let mut inner = Vec::new();
        let count = items.len();
        for (i, item) in items.into_iter().enumerate() {
            inner.push(self.node(item));
            // The comma goes before the comments of the text's comma, if it has one.
            let last = i + 1 == count;
            inner.push(if last { Doc::if_break(Doc::text(","), Doc::nil()) } else { Doc::text(",") });
            if let Some(comments) = self.optional_punct(",") {
                inner.push(comments);
            }
            if !last {
                inner.push(Doc::line());
            }
        }
        let close_pos = skip_trivia(self.text, self.cursor);
        let closing = self.closing_comments(close_pos, count > 0);
        let close_doc = self.punct(close);
        if count == 0 && closing.is_empty() {
            return Doc::from(vec![open_doc, close_doc]);
        }
        let line = if padded { Doc::line() } else { Doc::soft_line() };
        let mut body = vec![line.clone()];
        body.extend(inner);
        body.extend(closing);
        Doc::from(vec![open_doc, Doc::from(body).nest(), line, close_doc]).group()
    }

    // -- Blocks --------------------------------------------------------------------------

    /// `{`, the entries one per line, `}`; `{}` when there are none.
    fn block(&mut self, entries: Vec<(bool, Doc)>) -> Doc {
        let close_pos = skip_trivia(self.text, self.cursor);
        let body = self.lines(entries, close_pos);
        let close = self.punct("}");
        match body {
            None => close,
            Some(body) => Doc::from(vec![Doc::from(vec![Doc::Hard, body]).nest(), Doc::Hard, close]),
        }
    }

    /// The entries, one per line with the empty lines kept, and the comments before `end`;
    /// `None` when there is nothing.
    fn lines(&mut self, entries: Vec<(bool, Doc)>, end: usize) -> Option<Doc> {
        let mut docs = Vec::new();
        let count = entries.len();
        for (i, (blank, entry)) in entries.into_iter().enumerate() {
            if i > 0 {
                docs.push(Doc::Hard);
                if blank {
                    docs.push(Doc::Hard);
                }
            }
            docs.push(entry);
        }
        docs.extend(self.closing_comments(end, count > 0));
        (!docs.is_empty()).then(|| Doc::from(docs))
    }

    /// An entry of a block or of the file, and whether an empty line precedes it.
    fn entry(&mut self, pair: Pair<'t, Rule>) -> (bool, Doc) {
        let blank = self.blank_line_next();
        let doc = match pair.as_rule() {
            // Commas between a type's fields are optional: the canonical form has none.
            Rule::field_decl => {
                let field = self.seq(pair);
                match self.optional_punct(",") {
                    Some(comments) => Doc::from(vec![field, comments]),
                    None => field,
                }
            }
            _ => self.node(pair),
        };
        (blank, doc)
    }

    /// A declaration or item with a block: what precedes `{` in running text, then the
    /// block (an approval matrix's with its rows aligned).
    fn with_block(&mut self, pair: Pair<'t, Rule>) -> Doc {
        let approval = pair.as_rule() == Rule::approval;
        let (head, body): (Vec<_>, Vec<_>) = pair.into_inner().partition(|child| !is_block_entry(child.as_rule()));
        let mut run = Run::default();
        for child in head {
            if child.as_rule() == Rule::flow_head {
                self.run(&mut run, child.into_inner().collect());
            } else {
                self.run(&mut run, vec![child]);
            }
        }
        let open = self.punct("{");
        let entries =
            if approval { self.approval_rows(body) } else { body.into_iter().map(|entry| self.entry(entry)).collect() };
        let block = self.block(entries);
        Doc::from(vec![Doc::from(run.docs), Doc::text(" "), open, block])
    }

    /// The entries of an approval matrix, with the `=>` of its rows aligned.
    fn approval_rows(&mut self, body: Vec<Pair<'t, Rule>>) -> Vec<(bool, Doc)> {
        let mut rows = Vec::new();
        for entry in body {
            let blank = self.blank_line_next();
            if entry.as_rule() != Rule::approval_row {
                rows.push((blank, self.node(entry), None));
                continue;
            }
            let mut parts = entry.into_inner();
            let (Some(condition), Some(requirement)) = (parts.next(), parts.next()) else {
                self.fail("an approval row without its parts".to_owned());
                continue;
            };
            let condition = self.node(condition);
            let arrow = self.punct("=>");
            let requirement = self.node(requirement);
            let width = condition.flat_width();
            rows.push((blank, condition, Some((width, arrow, requirement))));
        }
        let column = rows.iter().filter_map(|(_, _, row)| row.as_ref().and_then(|(width, ..)| *width)).max();
        rows.into_iter()
            .map(|(blank, head, row)| match row {
                None => (blank, head),
                Some((width, arrow, requirement)) => {
                    let pad = match (width, column) {
                        (Some(width), Some(column)) => column - width,
                        _ => 0,
                    };
                    let gap = Doc::text(" ".repeat(pad + 1));
                    let requirement = Doc::from(vec![Doc::text(" "), requirement]).nest();
                    (blank, Doc::from(vec![head, gap, arrow, requirement]))
                }
            })
            .collect()
    }

    /// An item whose clauses go on their own lines after its head.
    fn with_clauses(&mut self, pair: Pair<'t, Rule>) -> Doc {
        let (head, clauses): (Vec<_>, Vec<_>) = pair.into_inner().partition(|child| !is_clause(child.as_rule()));
        let mut run = Run::default();
        self.run(&mut run, head);
        let mut docs = vec![Doc::from(run.docs)];
        let mut rest = Vec::new();
        for clause in clauses {
            rest.push(Doc::Hard);
            rest.push(self.node(clause));
        }
        docs.push(Doc::from(rest).nest());
        Doc::from(docs)
    }

    // -- The file ------------------------------------------------------------------------

    fn file(&mut self, root: Pair<'t, Rule>) -> Doc {
        if self.text.starts_with('\u{feff}') {
            // Written back by `format`, so that the layout starts at the first column.
            self.cursor = '\u{feff}'.len_utf8();
        }
        let entries =
            root.into_inner().filter(|pair| pair.as_rule() != Rule::EOI).map(|pair| self.entry(pair)).collect();
        self.lines(entries, self.text.len()).unwrap_or_else(Doc::nil)
    }

    // -- Nodes ---------------------------------------------------------------------------

    fn node(&mut self, pair: Pair<'t, Rule>) -> Doc {
        match pair.as_rule() {
            Rule::string | Rule::label_ref => self.leaf(&pair),
            Rule::money => {
                let span = pair.as_span();
                let canonical = pair.into_inner().map(|part| part.as_str()).collect::<Vec<_>>().join(" ");
                self.token(span.start(), span.end(), canonical)
            }
            Rule::type_decl
            | Rule::source_decl
            | Rule::model_decl
            | Rule::corpus_decl
            | Rule::system_decl
            | Rule::access
            | Rule::evidence
            | Rule::test_decl
            | Rule::test_examples
            | Rule::flow
            | Rule::approval => self.with_block(pair),
            Rule::gate | Rule::review | Rule::action | Rule::infer | Rule::monitor => self.with_clauses(pair),
            Rule::enum_decl => {
                let (head, variants): (Vec<_>, Vec<_>) =
                    pair.into_inner().partition(|child| child.as_rule() != Rule::variant);
                let mut run = Run::default();
                self.run(&mut run, head);
                let list = self.delimited("{", "}", variants, true);
                Doc::from(vec![Doc::from(run.docs), Doc::text(" "), list])
            }
            Rule::record_body => {
                let fields = pair.into_inner().collect();
                self.delimited("{", "}", fields, true)
            }
            Rule::call_args => {
                let args = pair.into_inner().next().map(|args| args.into_inner().collect()).unwrap_or_default();
                self.delimited("(", ")", args, false)
            }
            Rule::list => {
                let items = pair.into_inner().collect();
                self.delimited("[", "]", items, false)
            }
            Rule::fn_decl => self.function(pair),
            Rule::expr => self.expr(pair),
            Rule::unary => self.unary(pair),
            Rule::if_expr => self.if_expr(pair),
            _ if pair.clone().into_inner().next().is_none() => self.leaf(&pair),
            _ => self.seq(pair),
        }
    }

    /// `fn name(params) -> Type = body`, the body on the next line when the whole does not
    /// fit on one.
    fn function(&mut self, pair: Pair<'t, Rule>) -> Doc {
        let mut children: Vec<_> = pair.into_inner().collect();
        let Some(body) = children.pop() else {
            self.fail("a function without a body".to_owned());
            return Doc::nil();
        };
        let mut run = Run::default();
        self.run(&mut run, children);
        let equals = self.punct("=");
        let body = self.node(body);
        Doc::from(vec![Doc::from(run.docs), Doc::text(" "), equals, Doc::from(vec![Doc::line(), body]).nest().group()])
    }

    /// Operands and operators; a line that is too long breaks before `and` and `or`.
    fn expr(&mut self, pair: Pair<'t, Rule>) -> Doc {
        let mut children = pair.into_inner();
        let Some(first) = children.next() else {
            return Doc::nil();
        };
        let first = self.node(first);
        let mut rest = Vec::new();
        for child in children {
            match child.as_rule() {
                Rule::field => rest.push(self.node(child)),
                Rule::infix => {
                    let connective = matches!(child.as_str(), "and" | "or");
                    rest.push(if connective { Doc::line() } else { Doc::text(" ") });
                    rest.push(self.leaf(&child));
                    rest.push(Doc::text(" "));
                }
                _ => rest.push(self.node(child)),
            }
        }
        if rest.is_empty() {
            return first;
        }
        Doc::from(vec![first, Doc::from(rest).nest()]).group()
    }

    /// `not x`, `-x`.
    fn unary(&mut self, pair: Pair<'t, Rule>) -> Doc {
        let mut docs = Vec::new();
        for child in pair.into_inner() {
            if child.as_rule() == Rule::prefix {
                let word = child.as_str() == "not";
                docs.push(self.leaf(&child));
                if word {
                    docs.push(Doc::text(" "));
                }
            } else {
                docs.push(self.node(child));
            }
        }
        Doc::from(docs)
    }

    /// `if … then … else if … then … else …`, its `else`s under its `if` when it does not
    /// fit on one line.
    fn if_expr(&mut self, pair: Pair<'t, Rule>) -> Doc {
        let mut docs = Vec::new();
        let mut previous = None;
        for child in pair.into_inner() {
            let rule = child.as_rule();
            if previous == Some(Rule::kw_else) {
                docs.push(Doc::text(" "));
            }
            match rule {
                Rule::kw_if => docs.extend([self.leaf(&child), Doc::text(" ")]),
                Rule::kw_then => docs.extend([Doc::text(" "), self.leaf(&child), Doc::text(" ")]),
                Rule::kw_else => docs.extend([Doc::line(), self.leaf(&child)]),
                _ => docs.push(self.node(child)),
            }
            previous = Some(rule);
        }
        Doc::from(docs).group().align()
    }
}

/// Running text being laid out.
#[derive(Default)]
struct Run {
    docs: Vec<Doc>,
    /// Whether what was written last wants a space before a following word.
    space_after: bool,
    /// Whether what was written last is a keyword.
    keyword: bool,
}

#[cfg(test)]
mod tests;
