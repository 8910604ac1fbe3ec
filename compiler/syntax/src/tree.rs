//! Building the owned syntax tree from pest's pairs.
//!
//! The grammar already guarantees the shape of every pair, so a pair of an unexpected rule
//! is skipped rather than trusted; literal values are decoded here, and a literal that does
//! not decode becomes an error node with a diagnostic.

use flow_diagnostics::{Code, Diagnostic, FileId, Span};
use flow_grammar::{Pair, Rule};

use crate::ast::*;
use crate::lexer::{docs_before, skip_trivia, trim_trivia};
use crate::literal;

mod quick;

/// How many operators an expression may nest. Chains such as `a and b and c` count one
/// level per operator; the limit keeps every later phase's recursion small.
pub const MAX_EXPR_DEPTH: u32 = 256;

pub(crate) struct Builder<'t> {
    /// The whole file's text.
    pub text: &'t str,
    /// Where the text that pest parsed starts in the file.
    pub base: usize,
    pub file: FileId,
    pub diagnostics: Vec<Diagnostic>,
    /// Whether the current expression already reported that it is too deep.
    too_deep_reported: bool,
    /// How deeply `climb` is recursing.
    climbing: u32,
}

type P<'i> = Pair<'i, Rule>;

/// The most documents one `retrieve` step may ask for.
pub const MAX_TOP: u32 = 1000;

fn is_keyword(rule: Rule) -> bool {
    use Rule::*;
    matches!(
        rule,
        kw_import
            | kw_label
            | kw_enum
            | kw_type
            | kw_role
            | kw_extends
            | kw_source
            | kw_authority
            | kw_freshness
            | kw_as_of
            | kw_model
            | kw_corpus
            | kw_retriever
            | kw_snapshot
            | kw_labels
            | kw_mismatch
            | kw_retrieve
            | kw_top
            | kw_refuse
            | kw_degrade
            | kw_provider
            | kw_name
            | kw_version
            | kw_digest
            | kw_prompt
            | kw_input
            | kw_output
            | kw_clearance
            | kw_system
            | kw_action
            | kw_fn
            | kw_flow
            | kw_owner
            | kw_steward
            | kw_from
            | kw_param
            | kw_access
            | kw_trigger
            | kw_view
            | kw_override
            | kw_replay
            | kw_read
            | kw_evidence
            | kw_by
            | kw_let
            | kw_gate
            | kw_info
            | kw_soft
            | kw_block
            | kw_when
            | kw_approve
            | kw_message
            | kw_infer
            | kw_fallback
            | kw_review
            | kw_outcomes
            | kw_reasons
            | kw_may
            | kw_edit
            | kw_approval
            | kw_otherwise
            | kw_auto
            | kw_of
            | kw_all
            | kw_distinct
            | kw_idempotency
            | kw_emit
            | kw_retain
            | kw_if
            | kw_then
            | kw_else
            | kw_and
            | kw_or
            | kw_not
            | kw_test
            | kw_at
            | kw_given
            | kw_returns
            | kw_fails
            | kw_decide
            | kw_as
            | kw_because
            | kw_expect
            | kw_outcome
            | kw_examples
            | kw_set
            | kw_clock
            | kw_on
            | kw_behalf
            | kw_regardless
            | kw_within
            | kw_escalate
            | kw_to
            | kw_remind
            | kw_before
            | kw_wait
            | kw_forever
            | kw_monitor
            | kw_migrate
            | kw_waiting
            | kw_over
            | kw_above
            | kw_below
            | kw_severity
            | kw_after
    )
}

/// The children of a pair that carry meaning: keywords are dropped.
fn kids<'i>(pair: P<'i>) -> impl Iterator<Item = P<'i>> {
    pair.into_inner().filter(|p| !is_keyword(p.as_rule()))
}

/// An expression, how deeply its operators nest, and whether it was written in brackets.
struct Built {
    expr: Expr,
    depth: u32,
    parenthesized: bool,
}

/// An element of an expression's operator stream.
enum Token<'i> {
    Prefix(UnaryOp, Span),
    Infix(BinaryOp, Span),
    /// A primary and the fields read from it.
    Operand(P<'i>, Vec<P<'i>>),
    /// An operand already built (by the quick reading of `let` items in `quick.rs`);
    /// taken once.
    Built(Option<Built>),
}

/// How tightly an infix operator binds on its left and on its right (`flow.pest` lists
/// the precedences).
fn binding_power(op: BinaryOp) -> (u8, u8) {
    match op {
        BinaryOp::Or => (1, 2),
        BinaryOp::And => (3, 4),
        BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => (7, 8),
        BinaryOp::Add | BinaryOp::Sub => (9, 10),
        BinaryOp::Mul | BinaryOp::Div => (11, 12),
    }
}

/// How tightly a prefix operator binds: `-` tighter than any infix, `not` looser than
/// comparisons (`not a == b` is `not (a == b)`).
fn prefix_power(op: UnaryOp) -> u8 {
    match op {
        UnaryOp::Neg => 13,
        UnaryOp::Not => 5,
    }
}

/// The operator an `infix` token spells.
fn binary_op(text: &str) -> BinaryOp {
    match text {
        "or" => BinaryOp::Or,
        "and" => BinaryOp::And,
        "==" => BinaryOp::Eq,
        "!=" => BinaryOp::Ne,
        "<" => BinaryOp::Lt,
        "<=" => BinaryOp::Le,
        ">" => BinaryOp::Gt,
        ">=" => BinaryOp::Ge,
        "+" => BinaryOp::Add,
        "-" => BinaryOp::Sub,
        "*" => BinaryOp::Mul,
        _ => BinaryOp::Div,
    }
}

impl<'t> Builder<'t> {
    pub fn new(text: &'t str, base: usize, file: FileId) -> Builder<'t> {
        Builder { text, base, file, diagnostics: Vec::new(), too_deep_reported: false, climbing: 0 }
    }

    /// The operator stream of an `expr` pair: prefixes that the grammar nests in `unary`
    /// pairs come out in order, so precedence decides what they apply to. The lexer bounds
    /// how deeply `unary` pairs nest.
    fn flatten<'i>(&self, pair: P<'i>, tokens: &mut Vec<Token<'i>>) {
        for part in pair.into_inner() {
            match part.as_rule() {
                Rule::unary => self.flatten(part, tokens),
                Rule::prefix => {
                    let op = if part.as_str() == "-" { UnaryOp::Neg } else { UnaryOp::Not };
                    tokens.push(Token::Prefix(op, self.span(&part)));
                }
                Rule::infix => tokens.push(Token::Infix(binary_op(part.as_str()), self.span(&part))),
                Rule::field => {
                    if let Some(Token::Operand(_, fields)) = tokens.last_mut() {
                        fields.push(part);
                    }
                }
                _ => tokens.push(Token::Operand(part, Vec::new())),
            }
        }
    }

    /// The span of a pair, without trailing whitespace and comments: pest counts the
    /// whitespace before an empty trailing repetition as part of a rule.
    fn span(&self, pair: &P<'_>) -> Span {
        let span = pair.as_span();
        let start = self.base + span.start();
        let end = self.base + span.end();
        Span::new(start, trim_trivia(self.text, start, end))
    }

    fn error(&mut self, code: Code, span: Span, message: impl Into<String>) -> &mut Diagnostic {
        self.diagnostics.push(Diagnostic::new(code, self.file, span, message));
        let last = self.diagnostics.len() - 1;
        &mut self.diagnostics[last]
    }

    fn docs(&self, span: Span) -> Option<String> {
        docs_before(self.text, span.start as usize)
    }

    fn ident(&self, pair: &P<'_>) -> Ident {
        Ident { text: SmolStr::new(pair.as_str()), span: self.span(pair) }
    }

    fn idents<'i>(&self, pairs: impl Iterator<Item = P<'i>>) -> Vec<Ident> {
        pairs.map(|p| self.ident(&p)).collect()
    }

    /// The end of the `)` that follows `pos` (after trivia), or `pos` when there is none.
    fn after_close_paren(&self, pos: usize) -> usize {
        let mut at = skip_trivia(self.text, pos);
        if self.text.as_bytes().get(at) == Some(&b'(') {
            at = skip_trivia(self.text, at + 1);
        }
        if self.text.as_bytes().get(at) == Some(&b')') { at + 1 } else { pos }
    }

    // -----------------------------------------------------------------------------------
    // Declarations.

    /// Builds a declaration from an `item` pair.
    pub fn item(&mut self, item: P<'_>) -> Item {
        let span = self.span(&item);
        let docs = self.docs(span);
        let kind = match kids(item).next() {
            Some(decl) => self.declaration(decl),
            None => ItemKind::Error(Unparsed::default()),
        };
        Item { docs, span, kind }
    }

    fn declaration(&mut self, decl: P<'_>) -> ItemKind {
        let rule = decl.as_rule();
        let mut parts = kids(decl);
        match rule {
            Rule::import => match parts.next() {
                Some(string) => ItemKind::Import(self.plain_string(string)),
                None => ItemKind::Error(Unparsed::default()),
            },
            Rule::label_decl => match parts.next() {
                Some(name) => ItemKind::Label(self.ident(&name)),
                None => ItemKind::Error(Unparsed::default()),
            },
            Rule::enum_decl => {
                let Some(name) = parts.next() else { return ItemKind::Error(Unparsed::default()) };
                let name = self.ident(&name);
                let variants = parts
                    .filter_map(|variant| kids(variant).next())
                    .map(|p| {
                        let name = self.ident(&p);
                        Variant { docs: self.docs(name.span), name }
                    })
                    .collect();
                ItemKind::Enum(EnumDecl { name, variants })
            }
            Rule::type_decl => {
                let Some(name) = parts.next() else { return ItemKind::Error(Unparsed::default()) };
                let name = self.ident(&name);
                let fields = parts.filter_map(|field| self.field_decl(field)).collect();
                ItemKind::Type(TypeDecl { name, fields })
            }
            Rule::role_decl => {
                let Some(name) = parts.next() else { return ItemKind::Error(Unparsed::default()) };
                ItemKind::Role(RoleDecl { name: self.ident(&name), extends: self.idents(parts) })
            }
            Rule::source_decl => {
                let (Some(name), Some(ty)) = (parts.next(), parts.next()) else {
                    return ItemKind::Error(Unparsed::default());
                };
                let name = self.ident(&name);
                let ty = self.type_ref(ty);
                let settings = parts
                    .filter_map(|setting| kids(setting).next())
                    .filter_map(|setting| {
                        let rule = setting.as_rule();
                        let value = kids(setting).next()?;
                        Some(match rule {
                            Rule::authority => SourceSetting::Authority(self.plain_string(value)),
                            Rule::freshness => SourceSetting::Freshness(self.duration(value)?),
                            _ => SourceSetting::AsOf(self.ident(&value)),
                        })
                    })
                    .collect();
                ItemKind::Source(SourceDecl { name, ty, settings })
            }
            Rule::corpus_decl => {
                let (Some(name), Some(ty)) = (parts.next(), parts.next()) else {
                    return ItemKind::Error(Unparsed::default());
                };
                let name = self.ident(&name);
                let ty = self.type_ref(ty);
                let settings = parts
                    .filter_map(|setting| kids(setting).next())
                    .filter_map(|setting| self.corpus_setting(setting))
                    .collect();
                ItemKind::Corpus(CorpusDecl { name, ty, settings })
            }
            Rule::model_decl => {
                let Some(name) = parts.next() else { return ItemKind::Error(Unparsed::default()) };
                let name = self.ident(&name);
                let settings = parts
                    .filter_map(|setting| kids(setting).next())
                    .filter_map(|setting| self.model_setting(setting))
                    .collect();
                ItemKind::Model(ModelDecl { name, settings })
            }
            Rule::system_decl => {
                let Some(name) = parts.next() else { return ItemKind::Error(Unparsed::default()) };
                let name = self.ident(&name);
                let mut clearance = Vec::new();
                let mut actions = Vec::new();
                for setting in parts.filter_map(|setting| kids(setting).next()) {
                    if setting.as_rule() == Rule::clearance {
                        clearance.extend(self.idents(kids(setting)));
                    } else {
                        let span = self.span(&setting);
                        let mut parts = kids(setting);
                        let Some(name) = parts.next() else { continue };
                        let name = self.ident(&name);
                        let mut params = Vec::new();
                        let mut ret = None;
                        for part in parts {
                            match part.as_rule() {
                                Rule::params => params = self.params(part),
                                _ => ret = Some(self.type_ref(part)),
                            }
                        }
                        actions.push(SystemAction { docs: self.docs(span), span, name, params, ret });
                    }
                }
                ItemKind::System(SystemDecl { name, clearance, actions })
            }
            Rule::fn_decl => {
                let Some(name) = parts.next() else { return ItemKind::Error(Unparsed::default()) };
                let name = self.ident(&name);
                let mut params = Vec::new();
                let mut ret = None;
                let mut body = None;
                for part in parts {
                    match part.as_rule() {
                        Rule::params => params = self.params(part),
                        Rule::type_ref => ret = Some(self.type_ref(part)),
                        _ => body = Some(self.expr(part)),
                    }
                }
                match (ret, body) {
                    (Some(ret), Some(body)) => ItemKind::Fn(FnDecl { name, params, ret, body }),
                    _ => ItemKind::Error(Unparsed::default()),
                }
            }
            Rule::test_decl => {
                let Some(name) = parts.next() else { return ItemKind::Error(Unparsed::default()) };
                let name = self.plain_string(name);
                let mut statements = Vec::new();
                let mut examples = Vec::new();
                for part in parts {
                    match part.as_rule() {
                        Rule::test_examples => examples.extend(
                            kids(part).map(|row| Example { span: self.span(&row), fields: self.field_inits(row).0 }),
                        ),
                        _ => statements.extend(kids(part).next().and_then(|stmt| self.test_stmt(stmt))),
                    }
                }
                ItemKind::Test(TestDecl { name, statements, examples })
            }
            _ => ItemKind::Error(Unparsed::default()),
        }
    }

    fn test_stmt(&mut self, stmt: P<'_>) -> Option<TestStmt> {
        let span = self.span(&stmt);
        let rule = stmt.as_rule();
        let mut parts = kids(stmt);
        let kind = match rule {
            Rule::test_flow => TestStmtKind::Flow(self.ident(&parts.next()?)),
            Rule::test_at => TestStmtKind::At(self.expr(parts.next()?)),
            Rule::test_given | Rule::test_param => {
                let name = self.ident(&parts.next()?);
                let value = self.expr(parts.next()?);
                if rule == Rule::test_given {
                    TestStmtKind::Given { name, value }
                } else {
                    TestStmtKind::Param { name, value }
                }
            }
            Rule::test_model | Rule::test_corpus | Rule::test_action => {
                let name = self.ident(&parts.next()?);
                let mock = match kids(parts.next()?).next() {
                    Some(value) => Mock::Returns(self.expr(value)),
                    None => Mock::Fails,
                };
                if rule == Rule::test_model {
                    TestStmtKind::Model { name, mock }
                } else if rule == Rule::test_corpus {
                    TestStmtKind::Corpus { name, mock }
                } else {
                    TestStmtKind::Action { name, mock }
                }
            }
            Rule::test_decide => {
                let step = self.ident(&parts.next()?);
                let by = self.test_principal(parts.next()?)?;
                let outcome = self.ident(&parts.next()?);
                let reason = parts.next().map(|reason| self.ident(&reason));
                TestStmtKind::Decide { step, by, outcome, reason }
            }
            Rule::test_after => TestStmtKind::After(self.duration(parts.next()?)?),
            Rule::test_override => {
                let gate = self.ident(&parts.next()?);
                let by = self.test_principal(parts.next()?)?;
                let reason = self.plain_string(parts.next()?);
                TestStmtKind::Override { gate, by, reason }
            }
            Rule::test_expect => {
                let expectation = parts.next()?;
                TestStmtKind::Expect(match expectation.as_rule() {
                    Rule::expect_outcome => Expectation::Outcome(self.ident(&kids(expectation).next()?)),
                    Rule::expect_gate | Rule::expect_action => {
                        let gate_rule = expectation.as_rule() == Rule::expect_gate;
                        let mut parts = kids(expectation);
                        let name = self.ident(&parts.next()?);
                        let yes = matches!(parts.next()?.as_rule(), Rule::kw_held | Rule::kw_ran);
                        if gate_rule {
                            Expectation::Gate { gate: name, held: yes }
                        } else {
                            Expectation::Action { action: name, ran: yes }
                        }
                    }
                    _ => Expectation::Holds(self.expr(expectation)),
                })
            }
            _ => return None,
        };
        Some(TestStmt { span, kind })
    }

    /// The fields of a record body, and how deeply their values nest.
    fn field_inits(&mut self, body: P<'_>) -> (Vec<FieldInit>, u32) {
        let mut depth = 0;
        let fields = kids(body)
            .filter_map(|init| {
                let mut parts = kids(init);
                let name = self.ident(&parts.next()?);
                let value = self.expr_depth(parts.next()?);
                depth = depth.max(value.depth);
                Some(FieldInit { name, value: value.expr })
            })
            .collect();
        (fields, depth)
    }

    fn test_principal(&mut self, by: P<'_>) -> Option<TestPrincipal> {
        let mut parts = kids(by);
        let id = self.ident(&parts.next()?);
        Some(TestPrincipal { id, roles: self.idents(parts) })
    }

    fn field_decl(&mut self, field: P<'_>) -> Option<FieldDecl> {
        let mut parts = kids(field);
        let name = self.ident(&parts.next()?);
        let ty = self.type_ref(parts.next()?);
        let labels = parts
            .filter_map(|label| {
                let span = self.span(&label);
                let name = kids(label).next()?;
                Some(Ident { text: SmolStr::new(name.as_str()), span })
            })
            .collect();
        Some(FieldDecl { docs: self.docs(name.span), name, ty, labels })
    }

    fn type_ref(&mut self, pair: P<'_>) -> TypeRef {
        let span = self.span(&pair);
        let mut name = Ident { text: SmolStr::default(), span };
        let mut arg = None;
        let mut optional = false;
        for part in kids(pair) {
            match part.as_rule() {
                Rule::type_name => name = self.ident(&part),
                Rule::type_ref => arg = Some(Box::new(self.type_ref(part))),
                _ => optional = true,
            }
        }
        TypeRef { name, arg, optional, span }
    }

    fn params(&mut self, pair: P<'_>) -> Vec<Param> {
        kids(pair)
            .filter_map(|param| {
                let mut parts = kids(param);
                let name = self.ident(&parts.next()?);
                let ty = self.type_ref(parts.next()?);
                Some(Param { name, ty })
            })
            .collect()
    }

    fn model_setting(&mut self, setting: P<'_>) -> Option<ModelSetting> {
        let span = self.span(&setting);
        let rule = setting.as_rule();
        let mut parts = kids(setting);
        let kind = match rule {
            Rule::provider => ModelSettingKind::Provider(self.plain_string(parts.next()?)),
            Rule::model_name => ModelSettingKind::Name(self.plain_string(parts.next()?)),
            Rule::version => ModelSettingKind::Version(self.plain_string(parts.next()?)),
            Rule::digest => ModelSettingKind::Digest(self.plain_string(parts.next()?)),
            Rule::prompt => ModelSettingKind::Prompt(self.plain_string(parts.next()?)),
            Rule::model_input => ModelSettingKind::Input(parts.next().map(|p| self.params(p)).unwrap_or_default()),
            Rule::model_output => ModelSettingKind::Output(self.type_ref(parts.next()?)),
            _ => ModelSettingKind::Clearance(self.idents(parts)),
        };
        Some(ModelSetting { span, kind })
    }

    fn corpus_setting(&mut self, setting: P<'_>) -> Option<CorpusSetting> {
        let span = self.span(&setting);
        let rule = setting.as_rule();
        let mut parts = kids(setting);
        let kind = match rule {
            Rule::retriever => CorpusSettingKind::Retriever(self.plain_string(parts.next()?)),
            Rule::authority => CorpusSettingKind::Authority(self.plain_string(parts.next()?)),
            Rule::snapshot => CorpusSettingKind::Snapshot(self.plain_string(parts.next()?)),
            Rule::labels => CorpusSettingKind::Labels(self.idents(parts)),
            Rule::clearance => CorpusSettingKind::Clearance(self.idents(parts)),
            Rule::freshness => CorpusSettingKind::Freshness(self.duration(parts.next()?)?),
            _ => CorpusSettingKind::OnMismatch(match parts.next()?.into_inner().next()?.as_rule() {
                Rule::kw_refuse => MismatchPolicy::Refuse,
                _ => MismatchPolicy::Degrade,
            }),
        };
        Some(CorpusSetting { span, kind })
    }

    // -----------------------------------------------------------------------------------
    // Flows.

    /// The name of a flow from its `flow_head` pair.
    pub fn flow_name(&mut self, head: P<'_>) -> Option<Ident> {
        kids(head).next().map(|name| self.ident(&name))
    }

    /// Builds a flow item from a `flow_item` pair.
    pub fn flow_item(&mut self, item: P<'_>) -> FlowItem {
        let span = self.span(&item);
        let docs = self.docs(span);
        let kind = match kids(item).next() {
            Some(item) => self.flow_item_kind(item).unwrap_or(FlowItemKind::Error(Unparsed::default())),
            None => FlowItemKind::Error(Unparsed::default()),
        };
        FlowItem { docs, span, kind }
    }

    fn flow_item_kind(&mut self, item: P<'_>) -> Option<FlowItemKind> {
        let rule = item.as_rule();
        let mut parts = kids(item);
        Some(match rule {
            Rule::version => FlowItemKind::Version(self.plain_string(parts.next()?)),
            Rule::owner => FlowItemKind::Owner(self.ident(&parts.next()?)),
            Rule::steward => FlowItemKind::Steward(self.ident(&parts.next()?)),
            Rule::migrate => FlowItemKind::MigrateWaiting,
            Rule::flow_input => FlowItemKind::Input {
                name: self.ident(&parts.next()?),
                ty: self.type_ref(parts.next()?),
                source: parts.next().map(|p| self.ident(&p)),
            },
            Rule::flow_output => {
                FlowItemKind::Output { name: self.ident(&parts.next()?), ty: self.type_ref(parts.next()?) }
            }
            Rule::flow_param => FlowItemKind::Param {
                name: self.ident(&parts.next()?),
                ty: self.type_ref(parts.next()?),
                default: self.expr(parts.next()?),
            },
            Rule::access => FlowItemKind::Access(parts.filter_map(|g| self.grant(g)).collect()),
            Rule::let_item => {
                let name = self.ident(&parts.next()?);
                let mut ty = None;
                let mut value = None;
                for part in parts {
                    match part.as_rule() {
                        Rule::type_ref => ty = Some(self.type_ref(part)),
                        _ => value = Some(self.expr(part)),
                    }
                }
                FlowItemKind::Let { name, ty, value: value? }
            }
            Rule::gate => {
                let name = self.ident(&parts.next()?);
                let kind_pair = parts.next()?;
                let kind_span = self.span(&kind_pair);
                let kind = match kind_pair.into_inner().next()?.as_rule() {
                    Rule::kw_info => GateLevel::Info,
                    Rule::kw_soft => GateLevel::Soft,
                    _ => GateLevel::Block,
                };
                let condition = self.expr(parts.next()?);
                let clauses = parts
                    .filter_map(|clause| kids(clause).next())
                    .filter_map(|clause| {
                        let span = self.span(&clause);
                        let rule = clause.as_rule();
                        let value = kids(clause).next()?;
                        Some(match rule {
                            Rule::approve_by => GateClause::ApproveBy { span, roles: self.idents(kids(value)) },
                            Rule::timing => GateClause::Timing(self.timing(value)?),
                            _ => GateClause::Message(self.plain_string(value)),
                        })
                    })
                    .collect();
                FlowItemKind::Gate(Gate { name, kind, kind_span, condition, clauses })
            }
            Rule::infer => {
                let name = self.ident(&parts.next()?);
                let model = self.ident(&parts.next()?);
                let mut args = Vec::new();
                let mut fallback = None;
                let mut call_end = model.span.end as usize;
                for part in parts {
                    match part.as_rule() {
                        Rule::args => {
                            call_end = self.base + part.as_span().end();
                            args = self.args(part);
                        }
                        _ => fallback = kids(part).next().map(|e| self.expr(e)),
                    }
                }
                let call_span = Span::new(model.span.start as usize, self.after_close_paren(call_end));
                FlowItemKind::Infer(Infer { name, model, args, call_span, fallback })
            }
            Rule::retrieve => {
                let name = self.ident(&parts.next()?);
                let corpus = self.ident(&parts.next()?);
                let query_pair = parts.next()?;
                let query_end = self.base + query_pair.as_span().end();
                let query = self.expr(query_pair);
                let top_pair = parts.next()?;
                let top_span = self.span(&top_pair);
                let top = literal::integer(top_pair.as_str())
                    .ok()
                    .and_then(|n| u32::try_from(n).ok())
                    .filter(|n| (1..=MAX_TOP).contains(n));
                if top.is_none() {
                    self.error(
                        Code::E0005,
                        top_span,
                        format!("a step retrieves at least 1 and at most {MAX_TOP} documents"),
                    );
                }
                let call_span = Span::new(corpus.span.start as usize, self.after_close_paren(query_end));
                FlowItemKind::Retrieve(Retrieve { name, corpus, query, top, top_span, call_span })
            }
            Rule::review => {
                let name = self.ident(&parts.next()?);
                let roles = self.idents(kids(parts.next()?));
                let clauses = parts
                    .filter_map(|clause| kids(clause).next())
                    .filter_map(|clause| self.review_clause(clause))
                    .collect();
                FlowItemKind::Review(Review { name, roles, clauses })
            }
            Rule::approval => {
                let name = self.ident(&parts.next()?);
                let mut rows = Vec::new();
                let mut distinct_from = Vec::new();
                let mut distinct_span = None;
                let mut timing = Vec::new();
                for part in parts {
                    if part.as_rule() == Rule::approval_row {
                        rows.extend(self.approval_row(part));
                    } else if part.as_rule() == Rule::timing {
                        timing.extend(kids(part).next().and_then(|clause| self.timing(clause)));
                    } else {
                        distinct_span = Some(self.span(&part));
                        distinct_from = kids(part).map(|e| self.expr(e)).collect();
                    }
                }
                FlowItemKind::Approval(Approval { name, rows, distinct_from, distinct_span, timing })
            }
            Rule::action => {
                let name = self.ident(&parts.next()?);
                let system = self.ident(&parts.next()?);
                let operation = self.ident(&parts.next()?);
                let mut args = Vec::new();
                let mut clauses = Vec::new();
                let mut call_end = operation.span.end as usize;
                for part in parts {
                    match part.as_rule() {
                        Rule::args => {
                            call_end = self.base + part.as_span().end();
                            args = self.args(part);
                        }
                        _ => {
                            let Some(clause) = kids(part).next() else { continue };
                            let span = self.span(&clause);
                            let rule = clause.as_rule();
                            if rule == Rule::regardless {
                                clauses.push(ActionClause::Regardless(span, self.idents(kids(clause))));
                                continue;
                            }
                            let Some(value) = kids(clause).next() else { continue };
                            let value = self.expr(value);
                            clauses.push(match rule {
                                Rule::when => ActionClause::When(span, value),
                                _ => ActionClause::Idempotency(span, value),
                            });
                        }
                    }
                }
                let call_span = Span::new(system.span.start as usize, self.after_close_paren(call_end));
                FlowItemKind::Action(Action { name, system, operation, args, call_span, clauses })
            }
            Rule::emit => {
                let name = self.ident(&parts.next()?);
                let value = self.expr(parts.next()?);
                let regardless = parts.next().and_then(|clause| kids(clause).next()).map(|regardless| {
                    let span = self.span(&regardless);
                    (span, self.idents(kids(regardless)))
                });
                FlowItemKind::Emit { name, value, regardless }
            }
            Rule::evidence => FlowItemKind::Evidence(
                parts
                    .filter_map(|setting| kids(setting).next())
                    .filter_map(|retain| kids(retain).next())
                    .filter_map(|duration| self.duration(duration))
                    .map(EvidenceSetting::Retain)
                    .collect(),
            ),
            Rule::monitor => FlowItemKind::Monitor(self.monitor(parts)?),
            _ => return None,
        })
    }

    fn grant(&mut self, grant: P<'_>) -> Option<Grant> {
        let span = self.span(&grant);
        let inner = kids(grant).next()?;
        let kind = match inner.as_rule() {
            Rule::trigger_grant => GrantKind::Trigger,
            Rule::behalf_grant => GrantKind::OnBehalf,
            Rule::clock_grant => GrantKind::Clock,
            Rule::view_grant => GrantKind::View,
            Rule::override_grant => GrantKind::Override,
            Rule::replay_grant => GrantKind::Replay,
            Rule::cancel_grant => GrantKind::Cancel,
            Rule::resume_grant => GrantKind::Resume,
            _ => GrantKind::ReadEvidence,
        };
        let mut targets = Vec::new();
        let mut roles = Vec::new();
        for part in kids(inner) {
            match part.as_rule() {
                Rule::roles => roles = self.idents(kids(part)),
                _ => targets.push(self.ident(&part)),
            }
        }
        Some(Grant { span, kind, targets, roles })
    }

    fn review_clause(&mut self, clause: P<'_>) -> Option<ReviewClause> {
        let span = self.span(&clause);
        let rule = clause.as_rule();
        let parts = kids(clause);
        let kind = match rule {
            Rule::when => {
                let mut parts = parts;
                ReviewClauseKind::When(self.expr(parts.next()?))
            }
            Rule::outcomes => ReviewClauseKind::Outcomes(self.idents(parts)),
            Rule::reasons => ReviewClauseKind::Reasons(self.idents(parts)),
            Rule::timing => ReviewClauseKind::Timing(self.timing(parts.into_iter().next()?)?),
            _ => ReviewClauseKind::MayEdit(
                parts
                    .map(|path| {
                        let span = self.span(&path);
                        Path { segments: self.idents(kids(path)), span }
                    })
                    .collect(),
            ),
        };
        Some(ReviewClause { span, kind })
    }

    /// `within 48h otherwise …`, `remind 4h before` or `may wait forever` (the pair inside
    /// a `timing`).
    fn timing(&mut self, clause: P<'_>) -> Option<TimingClause> {
        let span = self.span(&clause);
        Some(match clause.as_rule() {
            Rule::within => {
                let mut parts = kids(clause);
                let after = self.duration(parts.next()?)?;
                let timeout = parts.next()?;
                // `kw_block` is dropped by `kids`: read the timeout's own children.
                let inner = timeout.into_inner().next()?;
                let then = match inner.as_rule() {
                    Rule::kw_block => Timeout::Block(self.span(&inner)),
                    Rule::escalate => Timeout::Escalate(self.idents(kids(inner))),
                    _ => {
                        let mut names = kids(inner);
                        let outcome = self.ident(&names.next()?);
                        let reason = names.next().map(|n| self.ident(&n));
                        Timeout::Decide { outcome, reason }
                    }
                };
                TimingClause::Within { span, after, then }
            }
            Rule::remind => TimingClause::Remind { span, before: self.duration(kids(clause).next()?)? },
            _ => TimingClause::Forever(span),
        })
    }

    /// A monitor's parts after its keyword: name, metric, window, comparison, threshold,
    /// clauses.
    fn monitor<'i>(&mut self, mut parts: impl Iterator<Item = P<'i>>) -> Option<Monitor> {
        let name = self.ident(&parts.next()?);
        let metric = parts.next()?;
        let metric_span = self.span(&metric);
        let mut names = Vec::new();
        let mut quantile = None;
        for part in metric.into_inner() {
            match part.as_rule() {
                Rule::quantile => quantile = part.as_str()[1..].parse().ok().map(|q| (q, self.span(&part))),
                _ => names.push(self.ident(&part)),
            }
        }
        let mut names = names.into_iter();
        let metric = names.next()?;
        let subject = names.next();
        let window = self.duration(parts.next()?)?;
        let above = parts.next()?.into_inner().next()?.as_rule() == Rule::kw_above;
        let threshold = self.expr(parts.next()?.into_inner().next()?);
        let mut severity = Vec::new();
        let mut routes = Vec::new();
        for clause in parts.filter_map(|clause| clause.into_inner().next()) {
            let span = self.span(&clause);
            match clause.as_rule() {
                Rule::severity => severity.extend(kids(clause).next().map(|n| self.ident(&n))),
                _ => routes.push((span, self.idents(kids(clause)))),
            }
        }
        Some(Monitor { name, quantile, metric, subject, metric_span, window, above, threshold, severity, routes })
    }

    fn approval_row(&mut self, row: P<'_>) -> Option<ApprovalRow> {
        let span = self.span(&row);
        let mut condition = None;
        let mut requirement = Vec::new();
        let mut requirement_span = span;
        for part in row.into_inner() {
            match part.as_rule() {
                Rule::when => condition = kids(part).next().map(|e| self.expr(e)),
                Rule::requirement => {
                    requirement_span = self.span(&part);
                    requirement = kids(part).filter_map(|term| self.req_term(term)).collect();
                }
                _ => {}
            }
        }
        Some(ApprovalRow { span, condition, requirement, requirement_span })
    }

    fn req_term(&mut self, term: P<'_>) -> Option<ReqTerm> {
        let span = self.span(&term);
        let inner = term.into_inner().next()?;
        Some(match inner.as_rule() {
            Rule::kw_auto => ReqTerm::Auto(span),
            Rule::count_term => {
                let mut parts = kids(inner);
                let count_pair = parts.next()?;
                let count_span = self.span(&count_pair);
                let count = literal::integer(count_pair.as_str()).ok().and_then(|n| u32::try_from(n).ok());
                if count.is_none() {
                    self.error(Code::E0005, count_span, "this approver count is too large");
                }
                ReqTerm::Count { span, count, count_span, role: self.ident(&parts.next()?) }
            }
            _ => ReqTerm::All { span, roles: self.idents(kids(inner)) },
        })
    }

    fn duration(&mut self, pair: P<'_>) -> Option<Duration> {
        let span = self.span(&pair);
        match literal::duration(pair.as_str()) {
            Ok(seconds) => Some(Duration { seconds, span }),
            Err(message) => {
                self.error(Code::E0005, span, message);
                None
            }
        }
    }

    /// A string that must not interpolate: paths, versions, digests, messages.
    fn plain_string(&mut self, pair: P<'_>) -> StrLit {
        let span = self.span(&pair);
        let mut value = String::new();
        for part in self.string_parts(pair) {
            match part {
                StrPart::Text(text) => value.push_str(&text),
                StrPart::Expr(expr) => {
                    self.error(Code::E0009, expr.span, "this text cannot contain `{…}` interpolation").help =
                        Some("write `\\{` for a literal brace".to_owned());
                }
            }
        }
        StrLit { value, span }
    }

    fn string_parts(&mut self, pair: P<'_>) -> Vec<StrPart> {
        let parts = self.string_parts_depth(pair).0;
        self.too_deep_reported = false;
        parts
    }

    fn string_parts_depth(&mut self, pair: P<'_>) -> (Vec<StrPart>, u32) {
        let mut depth = 0;
        let mut parts: Vec<StrPart> = Vec::new();
        let push_text = |parts: &mut Vec<StrPart>, text: &str| match parts.last_mut() {
            Some(StrPart::Text(last)) => last.push_str(text),
            _ => parts.push(StrPart::Text(text.to_owned())),
        };
        for part in pair.into_inner() {
            match part.as_rule() {
                Rule::text => push_text(&mut parts, part.as_str()),
                Rule::escape => {
                    let escaped = match part.as_str() {
                        "\\\"" => "\"",
                        "\\\\" => "\\",
                        "\\n" => "\n",
                        "\\t" => "\t",
                        "\\{" => "{",
                        "\\}" => "}",
                        other => {
                            let span = self.span(&part);
                            self.error(Code::E0007, span, format!("unknown escape `{other}` in a string")).help =
                                Some("the escapes are `\\\"`, `\\\\`, `\\n`, `\\t`, `\\{` and `\\}`".to_owned());
                            ""
                        }
                    };
                    push_text(&mut parts, escaped);
                }
                _ => {
                    if let Some(expr) = kids(part).next() {
                        let built = self.expr_depth(expr);
                        depth = depth.max(built.depth);
                        parts.push(StrPart::Expr(built.expr));
                    }
                }
            }
        }
        (parts, depth)
    }

    /// The arguments of an infer step or an action, each its own expression.
    fn args(&mut self, pair: P<'_>) -> Vec<Arg> {
        let args = self.args_depth(pair).0;
        self.too_deep_reported = false;
        args
    }

    fn args_depth(&mut self, pair: P<'_>) -> (Vec<Arg>, u32) {
        let mut depth = 0;
        let args = kids(pair)
            .filter_map(|arg| {
                let span = self.span(&arg);
                let inner = kids(arg).next()?;
                let (name, lambda, value) = match inner.as_rule() {
                    rule @ (Rule::lambda | Rule::named_arg) => {
                        let mut parts = kids(inner);
                        let name = self.ident(&parts.next()?);
                        let value = self.expr_depth(parts.next()?);
                        if rule == Rule::lambda { (None, Some(name), value) } else { (Some(name), None, value) }
                    }
                    _ => (None, None, self.expr_depth(inner)),
                };
                depth = depth.max(value.depth);
                Some(Arg { span, name, lambda, value: value.expr })
            })
            .collect();
        (args, depth)
    }

    // -----------------------------------------------------------------------------------
    // Expressions.

    /// Builds an expression from an `expr` pair, replacing it with an error node when its
    /// operators nest deeper than [`MAX_EXPR_DEPTH`].
    pub fn expr(&mut self, pair: P<'_>) -> Expr {
        let built = self.expr_depth(pair);
        self.too_deep_reported = false;
        built.expr
    }

    fn expr_depth(&mut self, pair: P<'_>) -> Built {
        let span = self.span(&pair);
        match pair.as_rule() {
            Rule::expr => self.pratt(pair),
            Rule::paren => match kids(pair).next() {
                Some(inner) => {
                    let mut built = self.expr_depth(inner);
                    built.parenthesized = true;
                    built
                }
                None => self.error_node(span),
            },
            Rule::if_expr => {
                let mut exprs: Vec<Built> = kids(pair).map(|e| self.expr_depth(e)).collect();
                let Some(otherwise) = exprs.pop() else { return self.error_node(span) };
                let mut depth = otherwise.depth;
                let mut branches = Vec::new();
                let mut rest = exprs.into_iter();
                while let (Some(condition), Some(then)) = (rest.next(), rest.next()) {
                    depth = depth.max(condition.depth).max(then.depth);
                    branches.push((condition.expr, then.expr));
                }
                self.node(span, depth + 1, ExprKind::If { branches, otherwise: Box::new(otherwise.expr) })
            }
            Rule::named => {
                let mut parts = kids(pair);
                let Some(name) = parts.next() else { return self.error_node(span) };
                let name = self.ident(&name);
                match parts.next() {
                    Some(call_args) => {
                        let (args, depth) = kids(call_args).next().map(|a| self.args_depth(a)).unwrap_or_default();
                        self.node(span, depth + 1, ExprKind::Call { callee: name, args })
                    }
                    None => self.node(span, 1, ExprKind::Name(name)),
                }
            }
            Rule::list => {
                let mut depth = 0;
                let items = kids(pair)
                    .map(|item| {
                        let item = self.expr_depth(item);
                        depth = depth.max(item.depth);
                        item.expr
                    })
                    .collect();
                self.node(span, depth + 1, ExprKind::List(items))
            }
            Rule::typed => {
                let mut parts = kids(pair);
                let (Some(ty), Some(rest)) = (parts.next(), parts.next()) else { return self.error_node(span) };
                let ty = self.ident(&ty);
                if rest.as_rule() == Rule::variant_suffix {
                    let Some(variant) = kids(rest).next() else { return self.error_node(span) };
                    let kind = ExprKind::Variant { ty, variant: self.ident(&variant) };
                    return self.node(span, 1, kind);
                }
                let (fields, depth) = self.field_inits(rest);
                self.node(span, depth + 1, ExprKind::Record { ty, fields })
            }
            Rule::name => {
                let kind = ExprKind::Name(self.ident(&pair));
                self.node(span, 1, kind)
            }
            Rule::string => {
                let (parts, depth) = self.string_parts_depth(pair);
                self.node(span, depth + 1, ExprKind::Text(parts))
            }
            Rule::boolean => self.node(span, 1, ExprKind::Bool(pair.as_str() == "true")),
            Rule::number => {
                let text = pair.as_str();
                let kind = if text.contains('.') {
                    literal::decimal(text).map(ExprKind::Decimal)
                } else {
                    literal::integer(text).map(ExprKind::Int)
                };
                self.literal(span, kind)
            }
            Rule::percent => {
                let text = pair.as_str();
                let kind = literal::decimal(text.trim_end_matches('%'))
                    .map(|value| ExprKind::Percent(value / Decimal::ONE_HUNDRED));
                self.literal(span, kind)
            }
            Rule::money => {
                let mut parts = pair.into_inner();
                let (Some(amount), Some(currency)) = (parts.next(), parts.next()) else {
                    return self.error_node(span);
                };
                let code = currency.as_str();
                if !literal::is_currency(code) {
                    let currency_span = self.span(&currency);
                    let diagnostic =
                        self.error(Code::E0008, currency_span, format!("`{code}` is not an ISO 4217 currency code"));
                    diagnostic.help = Some(match literal::suggest_currency(code) {
                        Some(suggestion) => format!("did you mean `{suggestion}`?"),
                        None => "write the three-letter ISO 4217 code, such as `USD` or `EUR`".to_owned(),
                    });
                    return self.error_node(span);
                }
                let kind = literal::decimal(amount.as_str())
                    .map(|amount| ExprKind::Money { amount, currency: code.to_owned() });
                self.literal(span, kind)
            }
            Rule::duration => {
                let kind = literal::duration(pair.as_str()).map(ExprKind::Duration);
                self.literal(span, kind)
            }
            Rule::timestamp => {
                let kind = literal::timestamp(pair.as_str())
                    .map(|(seconds, nanos)| ExprKind::Timestamp(Timestamp { seconds, nanos }));
                self.literal(span, kind)
            }
            _ => self.error_node(span),
        }
    }

    /// Builds an expression from its flat sequence of operands and operators, by the
    /// precedences in `flow.pest` (precedence climbing: recursion only where a tighter
    /// operator follows a looser one, so long chains are folded in a loop).
    fn pratt(&mut self, pair: P<'_>) -> Built {
        let mut tokens = Vec::new();
        self.flatten(pair, &mut tokens);
        self.climb(&mut tokens, &mut 0, 0)
    }

    /// Parses operands and operators from `tokens[*cursor..]` while the operators bind at
    /// least as tightly as `min_power`.
    fn climb(&mut self, tokens: &mut [Token<'_>], cursor: &mut usize, min_power: u8) -> Built {
        // Each level of recursion makes a node one deeper, so an expression that recurses
        // past the depth limit is too deep anyway: stop here (`a == not a == not a …`
        // recurses without brackets, which the pre-scan does not bound).
        if self.climbing >= MAX_EXPR_DEPTH {
            let span = tokens.get(*cursor).map_or(Span::default(), |token| self.token_span(token));
            *cursor = tokens.len();
            return self.node(span, MAX_EXPR_DEPTH + 1, ExprKind::Error);
        }
        self.climbing += 1;
        let built = self.climb_unbounded(tokens, cursor, min_power);
        self.climbing -= 1;
        built
    }

    fn token_span(&self, token: &Token<'_>) -> Span {
        match token {
            Token::Prefix(_, span) | Token::Infix(_, span) => *span,
            Token::Operand(pair, _) => self.span(pair),
            Token::Built(built) => built.as_ref().map_or(Span::default(), |built| built.expr.span),
        }
    }

    fn climb_unbounded(&mut self, tokens: &mut [Token<'_>], cursor: &mut usize, min_power: u8) -> Built {
        let Some(first) = tokens.get_mut(*cursor) else { return self.error_node(Span::default()) };
        *cursor += 1;
        let mut lhs = match first {
            &mut Token::Prefix(op, op_span) => {
                let operand = self.climb(tokens, cursor, prefix_power(op));
                let span = op_span.cover(operand.expr.span);
                let kind = ExprKind::Unary { op, op_span, operand: Box::new(operand.expr) };
                self.node(span, operand.depth + 1, kind)
            }
            Token::Operand(primary, fields) => {
                let fields = std::mem::take(fields);
                let mut built = self.expr_depth(primary.clone());
                for field in fields {
                    let Some(name) = kids(field).next() else { continue };
                    built = self.field(built, self.ident(&name));
                }
                built
            }
            Token::Built(built) => match built.take() {
                Some(built) => built,
                None => self.error_node(Span::default()),
            },
            &mut Token::Infix(_, op_span) => self.error_node(op_span),
        };
        while let Some(&Token::Infix(op, op_span)) = tokens.get(*cursor) {
            let (left, right) = binding_power(op);
            if left < min_power {
                break;
            }
            *cursor += 1;
            let rhs = self.climb(tokens, cursor, right);
            lhs = self.infix(lhs, op, op_span, rhs);
        }
        lhs
    }

    /// `base.field`.
    fn field(&mut self, base: Built, field: Ident) -> Built {
        let span = base.expr.span.cover(field.span);
        let kind = ExprKind::Field { base: Box::new(base.expr), field };
        self.node(span, base.depth + 1, kind)
    }

    fn infix(&mut self, lhs: Built, op: BinaryOp, op_span: Span, rhs: Built) -> Built {
        let span = lhs.expr.span.cover(rhs.expr.span);
        let chained = |side: &Built| {
            !side.parenthesized && matches!(&side.expr.kind, ExprKind::Binary { op, .. } if op.is_comparison())
        };
        if op.is_comparison() && (chained(&lhs) || chained(&rhs)) {
            self.error(Code::E0001, op_span, "comparisons do not chain").help =
                Some("compare twice and combine: `a < b and b < c`".to_owned());
            return self.error_node(span);
        }
        let depth = lhs.depth.max(rhs.depth) + 1;
        let kind = ExprKind::Binary { op, op_span, lhs: Box::new(lhs.expr), rhs: Box::new(rhs.expr) };
        self.node(span, depth, kind)
    }

    fn literal(&mut self, span: Span, kind: Result<ExprKind, String>) -> Built {
        match kind {
            Ok(kind) => self.node(span, 1, kind),
            Err(message) => {
                self.error(Code::E0005, span, message);
                self.error_node(span)
            }
        }
    }

    /// A node, unless it nests too deep: then an error node and (once per expression) a
    /// diagnostic.
    fn node(&mut self, span: Span, depth: u32, kind: ExprKind) -> Built {
        if depth > MAX_EXPR_DEPTH {
            if !self.too_deep_reported {
                self.too_deep_reported = true;
                self.error(
                    Code::E0006,
                    span,
                    format!("this expression nests more than {MAX_EXPR_DEPTH} operators deep"),
                )
                .help = Some("split it into several `let` items".to_owned());
            }
            return self.error_node(span);
        }
        Built { expr: Expr { kind, span }, depth, parenthesized: false }
    }

    fn error_node(&mut self, span: Span) -> Built {
        Built { expr: Expr { kind: ExprKind::Error, span }, depth: 1, parenthesized: false }
    }
}
