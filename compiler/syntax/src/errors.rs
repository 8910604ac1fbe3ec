//! Wording syntax errors for policy stewards.
//!
//! pest reports the furthest position it reached, the literal tokens it would have accepted
//! there and the rules it was trying. This module turns that into one sentence in the
//! language's own words ("expected an expression, found `}`"), never naming grammar rules,
//! and adds a hint where a common slip is recognisable (`=` for `==`, `&&` for `and`, a
//! misspelt keyword).

use flow_grammar::{Error, InputLocation, Rule};

use crate::lexer::{DECLARATION_KEYWORDS, FLOW_ITEM_KEYWORDS, is_ident_byte, word_at};

/// Where the parser was when it failed; decides which words describe what was expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Context {
    Declaration,
    FlowHead,
    FlowItem,
}

/// A syntax error in words: where, what was found, what was expected, and a hint.
pub(crate) struct Worded {
    /// Offset of the unexpected text, relative to the parsed text.
    pub at: usize,
    /// Length of the unexpected text (0 at the end of the file).
    pub len: usize,
    pub message: String,
    pub help: Option<String>,
    /// What was expected, in words.
    pub expected: String,
}

/// Words that can never be names.
const RESERVED: &[&str] = &["if", "then", "else", "and", "or", "not", "true", "false"];

const EXPRESSION_STARTS: &[&str] =
    &["\"", "(", "[", "-", "@", "_", "false", "true", "if", "not", "0..9", "A..Z", "a..z"];
const OPERATORS: &[&str] = &["==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "and", "or", "."];
const MODEL_SETTINGS: &[&str] = &["provider", "name", "version", "digest", "prompt", "input", "output", "clearance"];
const GRANTS: &[&str] = &["trigger", "view", "override", "replay", "read", "set", "cancel", "resume"];
const REVIEW_CLAUSES: &[&str] = &["when", "outcomes", "reasons", "may"];

/// Words for rules that pest names as the deepest thing it tried.
fn describe_rule(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::name => "a name",
        Rule::type_name => "a type name (type names start with a capital letter)",
        Rule::type_ref => "a type",
        Rule::string => "a string in double quotes",
        Rule::duration => "a duration such as `24h` or `7d`",
        Rule::integer => "a whole number",
        Rule::path => "a field such as `risk.tier`",
        Rule::req_term | Rule::requirement => "an approval requirement (`auto`, `N of role` or `all of role, …`)",
        Rule::gate_kind => "`info`, `soft` or `block`",
        // `field` is not here: pest tries it only after a complete operand, where its `.`
        // is already offered as an operator.
        Rule::expr
        | Rule::unary
        | Rule::if_expr
        | Rule::prefix
        | Rule::paren
        | Rule::list
        | Rule::named
        | Rule::typed => "an expression",
        Rule::infix => "an operator",
        Rule::args | Rule::arg | Rule::named_arg | Rule::lambda => "an argument",
        Rule::model_setting => "a model setting",
        Rule::source_setting => "`authority`, `freshness` or `as_of`",
        Rule::corpus_setting => {
            "a corpus setting (`retriever`, `authority`, `snapshot`, `labels`, `clearance`, `freshness` or `on mismatch`)"
        }
        Rule::mismatch_policy => "`refuse` or `degrade`",
        Rule::system_setting => "`clearance` or `action`",
        Rule::grant => "a grant (`trigger`, `view`, `override`, `replay`, `read evidence`, `cancel` or `resume`)",
        Rule::review_clause => "`when`, `outcomes`, `reasons` or `may edit`",
        Rule::approval_row => "a row (`when … =>` or `otherwise =>`)",
        Rule::timeout => "what happens then (`escalate to role`, an outcome, or `block`)",
        Rule::field_decl => "a field such as `amount: Money[USD]`",
        Rule::field_init => "a field such as `approved: true`",
        Rule::evidence_setting => "`retain`",
        Rule::timestamp => "a timestamp such as `@2026-04-11T13:35:00Z`",
        _ => return None,
    })
}

/// Words for what stands at `at` in `text`; `end` names the end of the text.
fn describe_found(text: &str, at: usize, end: &str) -> (String, usize) {
    let bytes = text.as_bytes();
    if at >= bytes.len() {
        return (end.to_owned(), 0);
    }
    let word = word_at(text, at);
    if !word.is_empty() {
        return (format!("`{word}`"), word.len());
    }
    if bytes[at] == b'"' {
        return ("a string".to_owned(), 1);
    }
    if bytes[at] == b'\n' || bytes[at] == b'\r' {
        return ("the end of the line".to_owned(), 0);
    }
    for two in ["==", "!=", "<=", ">=", "=>", "->", "&&", "||"] {
        if text[at..].starts_with(two) {
            return (format!("`{two}`"), 2);
        }
    }
    let ch = text[at..].chars().next().unwrap_or(' ');
    (format!("`{}`", ch.escape_debug()), ch.len_utf8())
}

/// Joins phrases as "a, b or c".
fn join_or(phrases: &[String]) -> String {
    match phrases {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

pub(crate) fn word(text: &str, error: &Error<Rule>, context: Context, end: &str) -> Worded {
    let mut at = match error.parse_attempts() {
        Some(attempts) if attempts.max_position > 0 || error_pos(error) == 0 => attempts.max_position,
        _ => error_pos(error),
    };
    let attempts = error.parse_attempts();
    let mut tokens: Vec<String> =
        attempts.as_ref().map(|a| a.expected_tokens().iter().map(ToString::to_string).collect()).unwrap_or_default();
    let rules: Vec<Rule> = attempts
        .as_ref()
        .map(|a| a.call_stacks().iter().filter_map(|stack| flow_grammar::attempted_rule(&stack.deepest)).collect())
        .unwrap_or_default();

    let bytes = text.as_bytes();
    // A failure inside a word (a keyword that ran into more letters) is a failure of the
    // whole word.
    if at > 0 && at < bytes.len() && is_ident_byte(bytes[at]) && is_ident_byte(bytes[at - 1]) {
        while at > 0 && is_ident_byte(bytes[at - 1]) {
            at -= 1;
        }
        tokens.clear();
    }
    let mut after_word = at > 0 && is_ident_byte(bytes[at - 1]);
    // A reserved word where a name was wanted: the failure is the word itself.
    if after_word && rules.contains(&Rule::name) {
        let start = (0..at).rev().take_while(|&i| is_ident_byte(bytes[i])).last().unwrap_or(at);
        if RESERVED.contains(&&text[start..at]) {
            at = start;
            after_word = false;
            tokens.clear();
        }
    }

    // Trivia: whitespace (also as character ranges) and comments.
    tokens.retain(|t| !t.split("..").all(|part| part.trim().is_empty()) && t != "//" && t != "\u{feff}");
    if after_word {
        // Letters that would only continue the previous word, or a currency after a number.
        tokens.retain(|t| !matches!(t.as_str(), "0..9" | "a..z" | "A..Z" | "_"));
    }

    let mut phrases: Vec<String> = Vec::new();
    let mut keywords: Vec<&str> = Vec::new();
    let take_group = |tokens: &mut Vec<String>,
                      group: &[&'static str],
                      min: usize,
                      phrase: &str,
                      phrases: &mut Vec<String>,
                      keywords: &mut Vec<&'static str>| {
        let present = group.iter().filter(|g| tokens.iter().any(|t| t == *g)).count();
        if present >= min {
            tokens.retain(|t| !group.contains(&t.as_str()));
            if !phrase.is_empty() && !phrases.iter().any(|p| p == phrase) {
                phrases.push(phrase.to_owned());
            }
            keywords.extend(group.iter().filter(|g| g.chars().all(|c| c.is_ascii_lowercase() || c == '_')));
        }
    };
    let in_model = rules.contains(&Rule::model_setting);
    if in_model {
        take_group(&mut tokens, MODEL_SETTINGS, 4, "a model setting", &mut phrases, &mut keywords);
    }
    take_group(&mut tokens, EXPRESSION_STARTS, 5, "an expression", &mut phrases, &mut keywords);
    take_group(&mut tokens, OPERATORS, 4, "an operator", &mut phrases, &mut keywords);
    take_group(&mut tokens, GRANTS, 3, "a grant", &mut phrases, &mut keywords);
    take_group(&mut tokens, REVIEW_CLAUSES, 3, "", &mut phrases, &mut keywords);
    let declaration_phrase = match context {
        // Inside a flow a declaration keyword only ends an unclosed flow; do not offer it.
        Context::FlowItem => "",
        _ => "a declaration",
    };
    take_group(&mut tokens, DECLARATION_KEYWORDS, 4, declaration_phrase, &mut phrases, &mut keywords);
    take_group(&mut tokens, FLOW_ITEM_KEYWORDS, 4, "a flow item", &mut phrases, &mut keywords);
    // Review clauses are listed one by one, after the more general phrases.
    for clause in REVIEW_CLAUSES {
        if keywords.contains(clause) {
            phrases.push(if *clause == "may" { "`may edit`".to_owned() } else { format!("`{clause}`") });
        }
    }

    if phrases.iter().any(|p| p == "an operator") {
        // After a complete operand, a capital letter could only start a currency code.
        tokens.retain(|t| t != "A..Z");
    }
    let mut listed: Vec<String> = Vec::new();
    for token in &tokens {
        let phrase = match token.as_str() {
            "0..9" => "a number".to_owned(),
            "a..z" | "_" => "a name".to_owned(),
            "A..Z" => "a type name".to_owned(),
            "read" => "`read evidence`".to_owned(),
            "approve" => "`approve by`".to_owned(),
            other => format!("`{other}`"),
        };
        if token.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            keywords.push(static_keyword(token));
        }
        if !listed.contains(&phrase) {
            listed.push(phrase);
        }
    }
    // Rule descriptions stand in for tokens that pest could not name.
    for rule in &rules {
        if let Some(phrase) = describe_rule(*rule) {
            let phrase = phrase.to_owned();
            let covered = listed.contains(&phrase) || phrases.contains(&phrase);
            let redundant = (phrase == "a name" && listed.iter().any(|p| p == "a name"))
                || (phrase == "a model setting" && in_model && phrases.contains(&phrase));
            if covered || redundant || (!tokens.is_empty() && is_token_rule(*rule)) {
                continue;
            }
            // A rule's description refines a token's ("a type name (…)" for "a type name").
            match listed.iter_mut().chain(phrases.iter_mut()).find(|p| phrase.starts_with(p.as_str())) {
                Some(shorter) => *shorter = phrase,
                None => phrases.push(phrase),
            }
        }
    }
    listed.extend(phrases);
    if listed.is_empty() {
        listed.push(
            match context {
                Context::Declaration => "a declaration",
                Context::FlowHead => "a flow",
                Context::FlowItem => "a flow item or `}`",
            }
            .to_owned(),
        );
        keywords.extend(match context {
            Context::FlowItem => FLOW_ITEM_KEYWORDS,
            _ => DECLARATION_KEYWORDS,
        });
    }

    // A whole number is a number, and a string starts with `"`; do not offer both.
    if listed.iter().any(|p| p == "a whole number") {
        listed.retain(|p| p != "a number");
    }
    if listed.iter().any(|p| p == "a string in double quotes") {
        listed.retain(|p| p != "`\"`");
    }
    let (found, len) = describe_found(text, at, end);
    let message = format!("expected {}, found {found}", join_or(&listed));
    let help = hint(text, at, &listed, &keywords);
    Worded { at, len, message, help, expected: join_or(&listed) }
}

/// Rules whose failure pest already reports as literal tokens.
fn is_token_rule(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::gate_kind
            | Rule::source_setting
            | Rule::corpus_setting
            | Rule::mismatch_policy
            | Rule::system_setting
            | Rule::evidence_setting
    )
}

fn static_keyword(token: &str) -> &'static str {
    DECLARATION_KEYWORDS
        .iter()
        .chain(FLOW_ITEM_KEYWORDS)
        .chain(MODEL_SETTINGS)
        .chain(GRANTS)
        .chain(REVIEW_CLAUSES)
        .chain(&[
            "extends",
            "authority",
            "freshness",
            "as_of",
            "from",
            "by",
            "when",
            "approve",
            "message",
            "fallback",
            "edit",
            "otherwise",
            "auto",
            "of",
            "all",
            "distinct",
            "idempotency",
            "regardless",
            "within",
            "escalate",
            "to",
            "remind",
            "before",
            "wait",
            "forever",
            "waiting",
            "over",
            "above",
            "below",
            "severity",
            "retain",
            "then",
            "else",
            "info",
            "soft",
            "block",
            "action",
            "clearance",
            "evidence",
        ])
        .find(|k| **k == token)
        .copied()
        .unwrap_or("")
}

fn error_pos(error: &Error<Rule>) -> usize {
    match error.location {
        InputLocation::Pos(pos) => pos,
        InputLocation::Span((start, _)) => start,
    }
}

/// A hint for a recognisable slip at `at`.
fn hint(text: &str, at: usize, expected: &[String], keywords: &[&str]) -> Option<String> {
    let rest = &text[at.min(text.len())..];
    let expects = |phrase: &str| expected.iter().any(|p| p.contains(phrase));
    if rest.starts_with("&&") {
        return Some("write `and` to combine conditions".to_owned());
    }
    if rest.starts_with("||") {
        return Some("write `or` for either condition".to_owned());
    }
    if rest.starts_with('!') && !rest.starts_with("!=") {
        return Some("write `not` to negate a condition".to_owned());
    }
    if rest.starts_with('=') && !rest.starts_with("==") && !rest.starts_with("=>") {
        return Some("compare with `==`".to_owned());
    }
    if rest.starts_with('\'') {
        return Some("strings are written in double quotes: `\"…\"`".to_owned());
    }
    let word = word_at(text, at);
    if word.is_empty() {
        return None;
    }
    let first = word.chars().next().unwrap_or('a');
    if expects("a type name") && first.is_ascii_lowercase() {
        let pascal: String = word
            .split('_')
            .filter(|part| !part.is_empty())
            .map(|part| {
                let mut chars = part.chars();
                chars.next().map(|c| c.to_ascii_uppercase()).into_iter().chain(chars).collect::<String>()
            })
            .collect();
        return Some(format!("type names are written in PascalCase: `{pascal}`"));
    }
    if RESERVED.contains(&word) && expects("a name") {
        return Some(format!("`{word}` is a reserved word; choose another name"));
    }
    if expects("a name") && first.is_ascii_uppercase() && !expects("a type name") {
        let mut snake = String::new();
        for (i, c) in word.chars().enumerate() {
            if c.is_ascii_uppercase() && i > 0 {
                snake.push('_');
            }
            snake.push(c.to_ascii_lowercase());
        }
        return Some(format!("names of values, roles and steps are written in snake_case: `{snake}`"));
    }
    let suggestion = keywords
        .iter()
        .filter(|k| !k.is_empty() && **k != word)
        .map(|k| (strsim::damerau_levenshtein(word, k), *k))
        .filter(|&(distance, k)| distance <= if k.len().min(word.len()) <= 4 { 1 } else { 2 })
        .min();
    suggestion.map(|(_, keyword)| format!("did you mean `{keyword}`?"))
}
