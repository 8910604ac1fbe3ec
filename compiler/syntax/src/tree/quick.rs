//! The quick reading of `let` items: the same syntax tree as pest and the builder give,
//! read straight from the text.
//!
//! `let` items are most of a policy's text, and pest spends its time on their
//! expressions' tokens (a rule call, or several, for every character of every name). This
//! reading covers the forms `let` items are written in — names, calls, fields, variants,
//! records, literals, strings with interpolations, `if` expressions and every operator —
//! and hands anything else back: the driver then parses the item with pest as before.
//!
//! **The grammar stays the definition.** Each function below follows one rule of
//! `flow.pest` (named in its comment) and takes its first alternative that matches, as a
//! PEG does. Wherever the text is not what the rule expects, or a literal would need a
//! diagnostic, the reading gives up (`None`) rather than guess: pest and its error wording
//! take over. The tests compare both readings on every flow in the repository and on
//! random expressions (`crate::tests`), as does the `parse` fuzz target.

use flow_diagnostics::Span;

use super::{Builder, Built, Token, binary_op};
use crate::ast::*;
use crate::lexer::{is_ident_byte, skip_code_trivia};
use crate::literal;

/// The words `reserved` in `flow.pest` keeps from being names.
const RESERVED: &[&str] = &["if", "then", "else", "and", "or", "not", "true", "false"];

impl Builder<'_> {
    /// The `let` item at `pos`, and where it ends, or `None` when the quick reading does
    /// not apply (the caller then parses the item with pest).
    pub fn quick_let(&mut self, pos: usize) -> Option<(FlowItem, usize)> {
        let mut quick = Quick { text: self.text, builder: self, pos };
        let item = quick.let_item()?;
        let end = quick.pos;
        // A diagnostic is pest's path to word, in its order.
        if !self.diagnostics.is_empty() {
            return None;
        }
        Some((item, end))
    }
}

struct Quick<'b, 't> {
    /// The whole file's text.
    text: &'t str,
    builder: &'b mut Builder<'t>,
    /// The next byte to read; always at a character boundary, and (between calls) just
    /// after the last token read, never after trailing whitespace.
    pos: usize,
}

impl<'t> Quick<'_, 't> {
    fn bytes(&self) -> &'t [u8] {
        self.text.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<u8> {
        self.bytes().get(self.pos + offset).copied()
    }

    fn ident_byte_at(&self, at: usize) -> bool {
        self.bytes().get(at).is_some_and(|&b| is_ident_byte(b))
    }

    /// Consumes `byte` if it is next.
    fn eat(&mut self, byte: u8) -> bool {
        let next = self.peek() == Some(byte);
        self.pos += usize::from(next);
        next
    }

    /// `WHITESPACE`, as pest skips it between two tokens of a non-atomic rule.
    fn skip(&mut self) {
        self.pos = skip_code_trivia(self.text, self.pos);
    }

    /// Runs `f`, putting the position back where it was when `f` fails.
    fn attempt<T>(&mut self, f: impl FnOnce(&mut Self) -> Option<T>) -> Option<T> {
        let start = self.pos;
        let result = f(self);
        if result.is_none() {
            self.pos = start;
        }
        result
    }

    /// The end of the run of identifier bytes from `at`.
    fn word_end(&self, at: usize) -> usize {
        let bytes = self.bytes();
        let mut end = at;
        while end < bytes.len() && is_ident_byte(bytes[end]) {
            end += 1;
        }
        end
    }

    /// The word at the position: identifier bytes.
    fn word(&self) -> &'t str {
        &self.text[self.pos..self.word_end(self.pos)]
    }

    /// `kw_…`: `word` not followed by an identifier byte.
    fn keyword(&mut self, word: &str) -> bool {
        let matched = self.word() == word;
        if matched {
            self.pos += word.len();
        }
        matched
    }

    /// `name`: snake_case, not reserved.
    fn name(&mut self) -> Option<Ident> {
        let first = self.peek()?;
        if !(first.is_ascii_lowercase() || first == b'_') {
            return None;
        }
        let start = self.pos;
        let end = self.word_end(start);
        let text = &self.text[start..end];
        if RESERVED.contains(&text) {
            return None;
        }
        self.pos = end;
        Some(Ident { text: SmolStr::new(text), span: Span::new(start, end) })
    }

    /// `type_name`: PascalCase.
    fn type_name(&mut self) -> Option<Ident> {
        if !self.peek()?.is_ascii_uppercase() {
            return None;
        }
        let start = self.pos;
        self.pos = self.word_end(start);
        Some(Ident { text: SmolStr::new(&self.text[start..self.pos]), span: Span::new(start, self.pos) })
    }

    /// `let_item` without a type: `let name = expr`.
    fn let_item(&mut self) -> Option<FlowItem> {
        let start = self.pos;
        if !self.keyword("let") {
            return None;
        }
        self.skip();
        let name = self.name()?;
        self.skip();
        if !self.eat(b'=') {
            return None;
        }
        self.skip();
        let value = self.expr()?.expr;
        let span = Span::new(start, self.pos);
        let docs = self.builder.docs(span);
        Some(FlowItem { docs, span, kind: FlowItemKind::Let { name, ty: None, value } })
    }

    /// `expr`: operands and infix operators, built by the builder's precedence climbing.
    fn expr(&mut self) -> Option<Built> {
        let mut tokens = Vec::new();
        self.operand(&mut tokens)?;
        loop {
            let before = self.pos;
            self.skip();
            let Some((op, len)) = self.infix() else {
                self.pos = before;
                break;
            };
            tokens.push(Token::Infix(op, Span::new(self.pos, self.pos + len)));
            self.pos += len;
            self.skip();
            self.operand(&mut tokens)?;
        }
        Some(self.builder.climb(&mut tokens, &mut 0, 0))
    }

    /// `infix`: the operator at the position and its length.
    fn infix(&self) -> Option<(BinaryOp, usize)> {
        let bytes = &self.bytes()[self.pos..];
        let len = match bytes {
            [b'o', b'r', ..] if !self.ident_byte_at(self.pos + 2) => 2,
            [b'a', b'n', b'd', ..] if !self.ident_byte_at(self.pos + 3) => 3,
            [b'=', b'=', ..] | [b'!', b'=', ..] | [b'<', b'=', ..] | [b'>', b'=', ..] => 2,
            [b'<' | b'>' | b'+' | b'-' | b'*' | b'/', ..] => 1,
            _ => return None,
        };
        Some((binary_op(&self.text[self.pos..self.pos + len]), len))
    }

    /// `operand`: a prefix and its operand, an `if` expression, or a primary and its fields.
    fn operand(&mut self, tokens: &mut Vec<Token<'_>>) -> Option<()> {
        let start = self.pos;
        let first = self.peek()?;
        if first == b'-' {
            self.pos += 1;
            tokens.push(Token::Prefix(UnaryOp::Neg, Span::new(start, self.pos)));
            self.skip();
            return self.operand(tokens);
        }
        let primary = match self.word() {
            "not" => {
                self.pos += 3;
                tokens.push(Token::Prefix(UnaryOp::Not, Span::new(start, self.pos)));
                self.skip();
                return self.operand(tokens);
            }
            "if" => {
                let built = self.if_expr()?;
                tokens.push(Token::Built(Some(built)));
                return Some(());
            }
            word @ ("true" | "false") => {
                self.pos += word.len();
                let kind = ExprKind::Bool(word == "true");
                self.builder.node(Span::new(start, self.pos), 1, kind)
            }
            _ => match first {
                b'a'..=b'z' | b'_' => self.named()?,
                b'0'..=b'9' => self.literal()?,
                b'"' => self.string()?,
                b'A'..=b'Z' => self.typed()?,
                b'(' => self.paren()?,
                _ => return None,
            },
        };
        let built = self.fields(primary)?;
        tokens.push(Token::Built(Some(built)));
        Some(())
    }

    /// `field*` after a primary.
    fn fields(&mut self, mut built: Built) -> Option<Built> {
        loop {
            let before = self.pos;
            self.skip();
            if !self.eat(b'.') {
                self.pos = before;
                return Some(built);
            }
            self.skip();
            let field = self.name()?;
            built = self.builder.field(built, field);
        }
    }

    /// `if_expr`: `if c then a (else if c then a)* else b`.
    fn if_expr(&mut self) -> Option<Built> {
        let start = self.pos;
        self.pos += 2;
        let mut branches = Vec::new();
        let mut depth = 0;
        loop {
            self.skip();
            let condition = self.expr()?;
            self.skip();
            if !self.keyword("then") {
                return None;
            }
            self.skip();
            let then = self.expr()?;
            depth = depth.max(condition.depth).max(then.depth);
            branches.push((condition.expr, then.expr));
            self.skip();
            if !self.keyword("else") {
                return None;
            }
            let before_if = self.pos;
            self.skip();
            if !self.keyword("if") {
                self.pos = before_if;
                break;
            }
        }
        self.skip();
        let otherwise = self.expr()?;
        let depth = depth.max(otherwise.depth);
        let kind = ExprKind::If { branches, otherwise: Box::new(otherwise.expr) };
        Some(self.builder.node(Span::new(start, self.pos), depth + 1, kind))
    }

    /// `named`: a name, or a call with `call_args`.
    fn named(&mut self) -> Option<Built> {
        let start = self.pos;
        let callee = self.name()?;
        let before = self.pos;
        self.skip();
        if !self.eat(b'(') {
            self.pos = before;
            return Some(self.builder.node(callee.span, 1, ExprKind::Name(callee)));
        }
        let mut args = Vec::new();
        let mut depth = 0;
        self.skip();
        while !self.eat(b')') {
            let arg = self.arg(&mut depth)?;
            args.push(arg);
            self.skip();
            if self.eat(b',') {
                self.skip();
            } else if self.peek() != Some(b')') {
                return None;
            }
        }
        Some(self.builder.node(Span::new(start, self.pos), depth + 1, ExprKind::Call { callee, args }))
    }

    /// `arg`: `lambda | named_arg | expr`.
    fn arg(&mut self, depth: &mut u32) -> Option<Arg> {
        let start = self.pos;
        let labelled = self.attempt(|quick| {
            let name = quick.name()?;
            quick.skip();
            if quick.bytes()[quick.pos..].starts_with(b"=>") {
                quick.pos += 2;
                Some((name, true))
            } else if quick.eat(b':') {
                Some((name, false))
            } else {
                None
            }
        });
        if labelled.is_some() {
            self.skip();
        }
        let value = self.expr()?;
        *depth = (*depth).max(value.depth);
        let span = Span::new(start, self.pos);
        let value = value.expr;
        Some(match labelled {
            Some((name, true)) => Arg { span, name: None, lambda: Some(name), value },
            Some((name, false)) => Arg { span, name: Some(name), lambda: None, value },
            None => Arg { span, name: None, lambda: None, value },
        })
    }

    /// `typed`: `Type.variant` or `Type { field: value, … }`.
    fn typed(&mut self) -> Option<Built> {
        let start = self.pos;
        let ty = self.type_name()?;
        self.skip();
        if self.eat(b'.') {
            self.skip();
            let variant = self.name()?;
            return Some(self.builder.node(Span::new(start, self.pos), 1, ExprKind::Variant { ty, variant }));
        }
        if !self.eat(b'{') {
            return None;
        }
        let mut fields = Vec::new();
        let mut depth = 0;
        self.skip();
        while !self.eat(b'}') {
            let name = self.name()?;
            self.skip();
            if !self.eat(b':') {
                return None;
            }
            self.skip();
            let value = self.expr()?;
            depth = depth.max(value.depth);
            fields.push(FieldInit { name, value: value.expr });
            self.skip();
            if self.eat(b',') {
                self.skip();
            }
        }
        Some(self.builder.node(Span::new(start, self.pos), depth + 1, ExprKind::Record { ty, fields }))
    }

    /// `paren`: the inner expression, marked as written in brackets.
    fn paren(&mut self) -> Option<Built> {
        self.pos += 1;
        self.skip();
        let mut built = self.expr()?;
        self.skip();
        if !self.eat(b')') {
            return None;
        }
        built.parenthesized = true;
        Some(built)
    }

    /// `digits`: a digit, then digits each after any underscores; the end.
    fn digits_end(&self, at: usize) -> Option<usize> {
        let bytes = self.bytes();
        if !bytes.get(at)?.is_ascii_digit() {
            return None;
        }
        let mut end = at + 1;
        loop {
            let mut next = end;
            while bytes.get(next) == Some(&b'_') {
                next += 1;
            }
            if !bytes.get(next).is_some_and(u8::is_ascii_digit) {
                return Some(end);
            }
            end = next + 1;
        }
    }

    /// `literal` starting with a digit: `money | percent | duration | number`, tried in
    /// that order as the grammar does.
    fn literal(&mut self) -> Option<Built> {
        let text = self.text;
        let bytes = self.bytes();
        let start = self.pos;
        let whole = self.digits_end(start)?;
        // `digits ~ ("." ~ digits)?`
        let amount_end = match bytes.get(whole) {
            Some(b'.') => self.digits_end(whole + 1).unwrap_or(whole),
            _ => whole,
        };
        // `money`: the amount, spaces or tabs, three capitals not followed by a word byte.
        let mut gap = amount_end;
        while matches!(bytes.get(gap), Some(b' ' | b'\t')) {
            gap += 1;
        }
        if gap > amount_end
            && bytes.get(gap..gap + 3).is_some_and(|c| c.iter().all(u8::is_ascii_uppercase))
            && !self.ident_byte_at(gap + 3)
        {
            let code = &text[gap..gap + 3];
            if !literal::is_currency(code) {
                return None;
            }
            self.pos = gap + 3;
            let kind = literal::decimal(&text[start..amount_end])
                .map(|amount| ExprKind::Money { amount, currency: code.to_owned() });
            return Some(self.builder.literal(Span::new(start, self.pos), kind));
        }
        // `percent`
        if bytes.get(amount_end) == Some(&b'%') {
            self.pos = amount_end + 1;
            let kind =
                literal::decimal(&text[start..amount_end]).map(|value| ExprKind::Percent(value / Decimal::ONE_HUNDRED));
            return Some(self.builder.literal(Span::new(start, self.pos), kind));
        }
        // `duration`: whole digits and a unit, not followed by a word byte.
        if matches!(bytes.get(whole), Some(b's' | b'm' | b'h' | b'd' | b'w' | b'y')) && !self.ident_byte_at(whole + 1) {
            self.pos = whole + 1;
            let kind = literal::duration(&text[start..self.pos]).map(ExprKind::Duration);
            return Some(self.builder.literal(Span::new(start, self.pos), kind));
        }
        // `number`, not followed by a word byte.
        if self.ident_byte_at(amount_end) {
            return None;
        }
        self.pos = amount_end;
        let number = &text[start..amount_end];
        let kind = if amount_end > whole {
            literal::decimal(number).map(ExprKind::Decimal)
        } else {
            literal::integer(number).map(ExprKind::Int)
        };
        Some(self.builder.literal(Span::new(start, self.pos), kind))
    }

    /// `string`: text, the six escapes, and `{expr}` interpolations, on one line.
    fn string(&mut self) -> Option<Built> {
        let text = self.text;
        let start = self.pos;
        self.pos += 1;
        let mut parts: Vec<StrPart> = Vec::new();
        let mut depth = 0;
        let push_text = |parts: &mut Vec<StrPart>, text: &str| match parts.last_mut() {
            Some(StrPart::Text(last)) => last.push_str(text),
            _ => parts.push(StrPart::Text(text.to_owned())),
        };
        loop {
            match self.peek()? {
                b'"' => break,
                b'\n' => return None,
                b'\\' => {
                    let escaped = match self.peek_at(1)? {
                        b'"' => "\"",
                        b'\\' => "\\",
                        b'n' => "\n",
                        b't' => "\t",
                        b'{' => "{",
                        b'}' => "}",
                        // Unknown escapes draw a diagnostic: pest's path.
                        _ => return None,
                    };
                    push_text(&mut parts, escaped);
                    self.pos += 2;
                }
                b'{' => {
                    let open = self.pos;
                    self.pos += 1;
                    self.skip();
                    let built = self.expr()?;
                    self.skip();
                    // An interpolation over several lines or holding a string is left to
                    // pest: the builder trims an item's trailing comment line by line,
                    // counting quotes (`lexer::trim_trivia`), and the quick reading must
                    // give the same span.
                    if !self.eat(b'}') || self.bytes()[open..self.pos].iter().any(|&b| b == b'\n' || b == b'"') {
                        return None;
                    }
                    depth = depth.max(built.depth);
                    parts.push(StrPart::Expr(built.expr));
                }
                _ => {
                    let run = &self.bytes()[self.pos..];
                    let len = run.iter().position(|&b| matches!(b, b'"' | b'\\' | b'{' | b'\n')).unwrap_or(run.len());
                    push_text(&mut parts, &text[self.pos..self.pos + len]);
                    self.pos += len;
                }
            }
        }
        self.pos += 1;
        Some(self.builder.node(Span::new(start, self.pos), depth + 1, ExprKind::Text(parts)))
    }
}
