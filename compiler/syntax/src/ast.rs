//! The owned syntax tree. Every node carries the byte span of its text in its file.
//!
//! The tree says what was written, not what it means: names are unresolved and nothing is
//! type-checked. Literals are already decoded (numbers are exact decimals, durations are
//! seconds, timestamps are UTC instants), because a literal that cannot be decoded is a
//! syntax error.

use std::fmt;

pub use flow_diagnostics::Span;
// The language's operators, gate levels, grants and instants are the plan's own: defined
// once, in `flow-ir`, for the compiler and the runtime.
pub use flow_ir::expr::{BinaryOp, Timestamp, UnaryOp};
pub use flow_ir::plan::{GateLevel, GrantKind};
pub use rust_decimal::Decimal;
pub use smol_str::SmolStr;

/// A name as written, with its span. Names are short, so they are stored inline.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Ident {
    pub text: SmolStr,
    pub span: Span,
}

impl fmt::Debug for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}@{:?}", self.text, self.span)
    }
}

/// A string without interpolation: paths, versions, digests, messages.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct StrLit {
    pub value: String,
    pub span: Span,
}

impl fmt::Debug for StrLit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}@{:?}", self.value, self.span)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct File {
    pub items: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// The `///` comment lines directly above the declaration, without the slashes.
    pub docs: Option<String>,
    pub span: Span,
    pub kind: ItemKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ItemKind {
    Import(StrLit),
    Label(Ident),
    Enum(EnumDecl),
    Type(TypeDecl),
    Role(RoleDecl),
    Source(SourceDecl),
    Model(ModelDecl),
    Corpus(CorpusDecl),
    System(SystemDecl),
    Fn(FnDecl),
    Flow(FlowDecl),
    Test(TestDecl),
    /// Text that could not be parsed; a diagnostic says why.
    Error(Unparsed),
}

impl ItemKind {
    /// The declared name, for declarations that have one.
    pub fn name(&self) -> Option<&Ident> {
        match self {
            ItemKind::Label(name) => Some(name),
            ItemKind::Enum(decl) => Some(&decl.name),
            ItemKind::Type(decl) => Some(&decl.name),
            ItemKind::Role(decl) => Some(&decl.name),
            ItemKind::Source(decl) => Some(&decl.name),
            ItemKind::Model(decl) => Some(&decl.name),
            ItemKind::Corpus(decl) => Some(&decl.name),
            ItemKind::System(decl) => Some(&decl.name),
            ItemKind::Fn(decl) => Some(&decl.name),
            ItemKind::Flow(decl) => Some(&decl.name),
            ItemKind::Import(_) | ItemKind::Test(_) | ItemKind::Error(_) => None,
        }
    }
}

/// What could be read of a declaration or flow item that did not parse: the keyword it
/// starts with and the name after it. Its syntax error is reported; later phases use this
/// to stay quiet about what the item would have declared (`cannot find type `Vendor`` after
/// a typo inside `type Vendor { … }`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Unparsed {
    pub keyword: Option<SmolStr>,
    pub name: Option<Ident>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnumDecl {
    pub name: Ident,
    pub variants: Vec<Variant>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Variant {
    pub docs: Option<String>,
    pub name: Ident,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeDecl {
    pub name: Ident,
    pub fields: Vec<FieldDecl>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldDecl {
    pub docs: Option<String>,
    pub name: Ident,
    pub ty: TypeRef,
    /// `@label` annotations; each span covers the `@`.
    pub labels: Vec<Ident>,
}

/// A written type: `Text`, `Text?`, `Money[USD]`, `List[Vendor]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeRef {
    pub name: Ident,
    pub arg: Option<Box<TypeRef>>,
    pub optional: bool,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleDecl {
    pub name: Ident,
    pub extends: Vec<Ident>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceDecl {
    pub name: Ident,
    pub ty: TypeRef,
    pub settings: Vec<SourceSetting>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceSetting {
    Authority(StrLit),
    Freshness(Duration),
    AsOf(Ident),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelDecl {
    pub name: Ident,
    pub settings: Vec<ModelSetting>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelSetting {
    pub span: Span,
    pub kind: ModelSettingKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelSettingKind {
    Provider(StrLit),
    Name(StrLit),
    Version(StrLit),
    Digest(StrLit),
    Prompt(StrLit),
    Input(Vec<Param>),
    Output(TypeRef),
    Clearance(Vec<Ident>),
}

impl ModelSettingKind {
    /// The keyword that introduces the setting.
    pub fn keyword(&self) -> &'static str {
        match self {
            ModelSettingKind::Provider(_) => "provider",
            ModelSettingKind::Name(_) => "name",
            ModelSettingKind::Version(_) => "version",
            ModelSettingKind::Digest(_) => "digest",
            ModelSettingKind::Prompt(_) => "prompt",
            ModelSettingKind::Input(_) => "input",
            ModelSettingKind::Output(_) => "output",
            ModelSettingKind::Clearance(_) => "clearance",
        }
    }
}

/// `corpus lending_policies: Passage { … }`: documents of one type, pinned to a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorpusDecl {
    pub name: Ident,
    /// The record type of one document.
    pub ty: TypeRef,
    pub settings: Vec<CorpusSetting>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorpusSetting {
    pub span: Span,
    pub kind: CorpusSettingKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CorpusSettingKind {
    Retriever(StrLit),
    Authority(StrLit),
    Snapshot(StrLit),
    Labels(Vec<Ident>),
    Clearance(Vec<Ident>),
    Freshness(Duration),
    OnMismatch(MismatchPolicy),
}

impl CorpusSettingKind {
    /// The keyword that introduces the setting.
    pub fn keyword(&self) -> &'static str {
        match self {
            CorpusSettingKind::Retriever(_) => "retriever",
            CorpusSettingKind::Authority(_) => "authority",
            CorpusSettingKind::Snapshot(_) => "snapshot",
            CorpusSettingKind::Labels(_) => "labels",
            CorpusSettingKind::Clearance(_) => "clearance",
            CorpusSettingKind::Freshness(_) => "freshness",
            CorpusSettingKind::OnMismatch(_) => "on mismatch",
        }
    }
}

/// What a run does when the corpus it searched is not the pinned snapshot, or is older
/// than its freshness allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MismatchPolicy {
    /// The step fails.
    Refuse,
    /// The step uses what it found and is marked degraded.
    Degrade,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    pub name: Ident,
    pub ty: TypeRef,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemDecl {
    pub name: Ident,
    pub clearance: Vec<Ident>,
    pub actions: Vec<SystemAction>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemAction {
    pub docs: Option<String>,
    pub span: Span,
    pub name: Ident,
    pub params: Vec<Param>,
    pub ret: Option<TypeRef>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FnDecl {
    pub name: Ident,
    pub params: Vec<Param>,
    pub ret: TypeRef,
    pub body: Expr,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowDecl {
    pub name: Ident,
    pub items: Vec<FlowItem>,
}

/// `test "…" { … }`: an example run of a flow, executed and checked by `flowc test`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestDecl {
    pub name: StrLit,
    pub statements: Vec<TestStmt>,
    /// `examples { {…} {…} }`: the test runs once per row, each field bound to its name in
    /// the test's expressions.
    pub examples: Vec<Example>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Example {
    pub span: Span,
    pub fields: Vec<FieldInit>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestStmt {
    pub span: Span,
    pub kind: TestStmtKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TestStmtKind {
    /// `flow name`: the flow the test runs (needed when the file has several).
    Flow(Ident),
    /// `at @2026-04-11T13:35:00Z`: the run's clock.
    At(Expr),
    /// `given request = Request { … }`: an input's value.
    Given {
        name: Ident,
        value: Expr,
    },
    /// `param limit = 20_000 USD`: a param's value, instead of its default.
    Param {
        name: Ident,
        value: Expr,
    },
    /// `model risk_v3 returns …` / `model risk_v3 fails`: what a model answers.
    Model {
        name: Ident,
        mock: Mock,
    },
    /// `corpus policies returns [Passage { … }]` / `corpus policies fails`: what a search of a
    /// corpus finds.
    Corpus {
        name: Ident,
        mock: Mock,
    },
    /// `action booking returns …` / `action booking fails`: what an action's system returns.
    Action {
        name: Ident,
        mock: Mock,
    },
    /// `decide check by ana as manager: approve because ok`: a review's, a soft gate's or
    /// an approval's decision, by a principal holding roles.
    Decide {
        step: Ident,
        by: TestPrincipal,
        outcome: Ident,
        reason: Option<Ident>,
    },
    /// `override embargo by olga as officer: "cleared by legal"`.
    Override {
        gate: Ident,
        by: TestPrincipal,
        reason: StrLit,
    },
    /// `after 49h`: time passes; the timers due by then fire.
    After(Duration),
    Expect(Expectation),
}

/// `by ana as manager, clerk`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestPrincipal {
    pub id: Ident,
    pub roles: Vec<Ident>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mock {
    Returns(Expr),
    Fails,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expectation {
    /// `expect outcome completed`: how the run stands at the end.
    Outcome(Ident),
    /// `expect gate over_limit held` (its condition held) / `… passed`.
    Gate { gate: Ident, held: bool },
    /// `expect action booking ran` / `… skipped`.
    Action { action: Ident, ran: bool },
    /// `expect decision.approved`: a condition on the run's outputs and steps.
    Holds(Expr),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowItem {
    pub docs: Option<String>,
    pub span: Span,
    pub kind: FlowItemKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlowItemKind {
    Version(StrLit),
    Owner(Ident),
    Steward(Ident),
    /// `migrate waiting`: runs waiting on an earlier version continue on this one.
    MigrateWaiting,
    Input {
        name: Ident,
        ty: TypeRef,
        source: Option<Ident>,
    },
    Output {
        name: Ident,
        ty: TypeRef,
    },
    Param {
        name: Ident,
        ty: TypeRef,
        default: Expr,
    },
    Access(Vec<Grant>),
    Let {
        name: Ident,
        ty: Option<TypeRef>,
        value: Expr,
    },
    Gate(Gate),
    Infer(Infer),
    Retrieve(Retrieve),
    Review(Review),
    Approval(Approval),
    Action(Action),
    Emit {
        name: Ident,
        value: Expr,
        /// `regardless of spend`: the approvals whose outcome the output does not depend on.
        regardless: Option<(Span, Vec<Ident>)>,
    },
    Evidence(Vec<EvidenceSetting>),
    Monitor(Monitor),
    /// Text that could not be parsed; a diagnostic says why.
    Error(Unparsed),
}

impl FlowItemKind {
    /// The name the item gives to later items, if it has one.
    pub fn name(&self) -> Option<&Ident> {
        match self {
            FlowItemKind::Input { name, .. }
            | FlowItemKind::Output { name, .. }
            | FlowItemKind::Param { name, .. }
            | FlowItemKind::Let { name, .. }
            | FlowItemKind::Emit { name, .. } => Some(name),
            FlowItemKind::Gate(gate) => Some(&gate.name),
            FlowItemKind::Infer(infer) => Some(&infer.name),
            FlowItemKind::Retrieve(retrieve) => Some(&retrieve.name),
            FlowItemKind::Review(review) => Some(&review.name),
            FlowItemKind::Approval(approval) => Some(&approval.name),
            FlowItemKind::Action(action) => Some(&action.name),
            FlowItemKind::Version(_)
            | FlowItemKind::Owner(_)
            | FlowItemKind::Steward(_)
            | FlowItemKind::MigrateWaiting
            | FlowItemKind::Access(_)
            | FlowItemKind::Evidence(_)
            | FlowItemKind::Monitor(_)
            | FlowItemKind::Error(_) => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub span: Span,
    pub kind: GrantKind,
    /// The labels of `view` and the gates of `override`; empty for the other grants.
    pub targets: Vec<Ident>,
    pub roles: Vec<Ident>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gate {
    pub name: Ident,
    pub kind: GateLevel,
    pub kind_span: Span,
    pub condition: Expr,
    pub clauses: Vec<GateClause>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GateClause {
    ApproveBy { span: Span, roles: Vec<Ident> },
    Message(StrLit),
    Timing(TimingClause),
}

/// A clause saying when a review, soft gate or approval must be decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimingClause {
    /// `within 48h otherwise …`.
    Within { span: Span, after: Duration, then: Timeout },
    /// `remind 4h before`.
    Remind { span: Span, before: Duration },
    /// `may wait forever`.
    Forever(Span),
}

impl TimingClause {
    pub fn span(&self) -> Span {
        match self {
            TimingClause::Within { span, .. } | TimingClause::Remind { span, .. } | TimingClause::Forever(span) => {
                *span
            }
        }
    }
}

/// What happens when a deadline passes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Timeout {
    /// `escalate to role, …`.
    Escalate(Vec<Ident>),
    /// `block`.
    Block(Span),
    /// An outcome, with a reason: `reject because no_answer`.
    Decide { outcome: Ident, reason: Option<Ident> },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Infer {
    pub name: Ident,
    pub model: Ident,
    pub args: Vec<Arg>,
    /// The span of the call, from the model's name to the closing parenthesis.
    pub call_span: Span,
    pub fallback: Option<Expr>,
}

/// `retrieve passages = lending_policies("{request.purpose}") top 3`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retrieve {
    pub name: Ident,
    pub corpus: Ident,
    pub query: Expr,
    /// How many documents at most; `None` when the number is too large to read.
    pub top: Option<u32>,
    pub top_span: Span,
    /// The span of the call, from the corpus's name to the closing parenthesis.
    pub call_span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Review {
    pub name: Ident,
    pub roles: Vec<Ident>,
    pub clauses: Vec<ReviewClause>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReviewClause {
    pub span: Span,
    pub kind: ReviewClauseKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReviewClauseKind {
    When(Expr),
    Outcomes(Vec<Ident>),
    Reasons(Vec<Ident>),
    MayEdit(Vec<Path>),
    Timing(TimingClause),
}

impl ReviewClauseKind {
    pub fn keyword(&self) -> &'static str {
        match self {
            ReviewClauseKind::When(_) => "when",
            ReviewClauseKind::Outcomes(_) => "outcomes",
            ReviewClauseKind::Reasons(_) => "reasons",
            ReviewClauseKind::MayEdit(_) => "may edit",
            ReviewClauseKind::Timing(_) => "within",
        }
    }
}

/// A dotted path such as `risk.tier`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Path {
    pub segments: Vec<Ident>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approval {
    pub name: Ident,
    pub rows: Vec<ApprovalRow>,
    pub distinct_from: Vec<Expr>,
    pub distinct_span: Option<Span>,
    pub timing: Vec<TimingClause>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalRow {
    pub span: Span,
    /// `None` for an `otherwise` row.
    pub condition: Option<Expr>,
    pub requirement: Vec<ReqTerm>,
    pub requirement_span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReqTerm {
    Auto(Span),
    /// `N of role`.
    Count {
        span: Span,
        count: Option<u32>,
        count_span: Span,
        role: Ident,
    },
    /// `all of r1, r2`: one approver of each role.
    All {
        span: Span,
        roles: Vec<Ident>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Action {
    pub name: Ident,
    pub system: Ident,
    pub operation: Ident,
    pub args: Vec<Arg>,
    pub call_span: Span,
    pub clauses: Vec<ActionClause>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ActionClause {
    When(Span, Expr),
    Idempotency(Span, Expr),
    /// `regardless of spend`: the approvals whose outcome the action does not depend on.
    Regardless(Span, Vec<Ident>),
}

/// `monitor overrides: overrides over 7d above 5% severity high to governance`: a signal of
/// the flow's health over its recent runs, and whom it alerts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Monitor {
    pub name: Ident,
    /// `p95` before the metric, with its span.
    pub quantile: Option<(u8, Span)>,
    pub metric: Ident,
    /// The step or gate the metric is of: `degraded(risk)`.
    pub subject: Option<Ident>,
    /// The span of the metric, from its quantile to its closing parenthesis.
    pub metric_span: Span,
    pub window: Duration,
    /// `above` (or `below`).
    pub above: bool,
    /// A literal: a percentage, a duration or a number.
    pub threshold: Expr,
    /// Each `severity` clause (one is expected).
    pub severity: Vec<Ident>,
    /// Each `to` clause (one is expected), with its span.
    pub routes: Vec<(Span, Vec<Ident>)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EvidenceSetting {
    Retain(Duration),
}

/// A duration literal, in seconds (a year is 365 days).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Duration {
    pub seconds: i64,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExprKind {
    Int(i64),
    Decimal(Decimal),
    /// `5%`, already divided by 100.
    Percent(Decimal),
    Money {
        amount: Decimal,
        currency: String,
    },
    /// Seconds.
    Duration(i64),
    Timestamp(Timestamp),
    Bool(bool),
    /// A string, with its interpolations.
    Text(Vec<StrPart>),
    Name(Ident),
    /// `RiskTier.low`.
    Variant {
        ty: Ident,
        variant: Ident,
    },
    Field {
        base: Box<Expr>,
        field: Ident,
    },
    Call {
        callee: Ident,
        args: Vec<Arg>,
    },
    Record {
        ty: Ident,
        fields: Vec<FieldInit>,
    },
    /// `[a, b]`: allowed only in tests.
    List(Vec<Expr>),
    Unary {
        op: UnaryOp,
        op_span: Span,
        operand: Box<Expr>,
    },
    Binary {
        op: BinaryOp,
        op_span: Span,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// `if c1 then e1 else if c2 then e2 else e3`, with the `else if` chain flattened.
    If {
        branches: Vec<(Expr, Expr)>,
        otherwise: Box<Expr>,
    },
    /// Text that could not be parsed or decoded; a diagnostic says why.
    Error,
}

impl Expr {
    /// Calls `f` with each direct subexpression and, for a lambda's body, the parameter it
    /// binds.
    pub fn for_each_child<'a>(&'a self, mut f: impl FnMut(&'a Expr, Option<&'a Ident>)) {
        match &self.kind {
            ExprKind::Text(parts) => {
                for part in parts {
                    if let StrPart::Expr(e) = part {
                        f(e, None);
                    }
                }
            }
            ExprKind::Field { base, .. } => f(base, None),
            ExprKind::Call { args, .. } => {
                for arg in args {
                    f(&arg.value, arg.lambda.as_ref());
                }
            }
            ExprKind::Record { fields, .. } => {
                for field in fields {
                    f(&field.value, None);
                }
            }
            ExprKind::List(items) => {
                for item in items {
                    f(item, None);
                }
            }
            ExprKind::Unary { operand, .. } => f(operand, None),
            ExprKind::Binary { lhs, rhs, .. } => {
                f(lhs, None);
                f(rhs, None);
            }
            ExprKind::If { branches, otherwise } => {
                for (condition, then) in branches {
                    f(condition, None);
                    f(then, None);
                }
                f(otherwise, None);
            }
            ExprKind::Int(_)
            | ExprKind::Decimal(_)
            | ExprKind::Percent(_)
            | ExprKind::Money { .. }
            | ExprKind::Duration(_)
            | ExprKind::Timestamp(_)
            | ExprKind::Bool(_)
            | ExprKind::Name(_)
            | ExprKind::Variant { .. }
            | ExprKind::Error => {}
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StrPart {
    Text(String),
    Expr(Expr),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arg {
    pub span: Span,
    /// `name: value`.
    pub name: Option<Ident>,
    /// The parameter of a lambda `x => body`; the body is `value`.
    pub lambda: Option<Ident>,
    pub value: Expr,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldInit {
    pub name: Ident,
    pub value: Expr,
}
