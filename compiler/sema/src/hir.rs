//! The typed, name-resolved form of functions and flows that the checks read and that
//! lowering to the plan consumes.
//!
//! Every name is resolved to what it denotes ([`Ref`], declaration ids) and every
//! expression carries its type. Spans stay, so diagnostics and the language server can
//! point at source.

use flow_diagnostics::Span;
use flow_syntax::ast::SmolStr;
use flow_syntax::ast::{BinaryOp, Decimal, GateLevel, GrantKind, Timestamp, UnaryOp};

use crate::db::DeclId;
use crate::ty::{Currency, EnumRef, RecordRef, Ty};

/// What a name in an expression denotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Ref {
    /// A flow input, by index in [`Flow::inputs`].
    Input(u32),
    /// A flow param, by index in [`Flow::params`].
    Param(u32),
    /// A flow step, by index in [`Flow::steps`].
    Step(u32),
    /// A function parameter, by position.
    FnParam(u32),
    /// A lambda's parameter, counted from the innermost lambda outwards.
    Local(u32),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Literal {
    Int(i64),
    Decimal(Decimal),
    Money {
        amount: Decimal,
        currency: Currency,
    },
    /// Seconds.
    Duration(i64),
    Timestamp(Timestamp),
    Bool(bool),
    Text(String),
}

/// A built-in function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Builtin {
    Now,
    /// `started_by()`: the principal who started the run.
    StartedBy,
    /// `declassify(value, "why")`: the value, without the labels the flow's owner may view.
    Declassify,
    Age,
    Stale,
    Len,
    Contains,
    Lower,
    IsPresent,
    Degraded,
}

impl Builtin {
    pub fn name(self) -> &'static str {
        match self {
            Builtin::Now => "now",
            Builtin::StartedBy => "started_by",
            Builtin::Declassify => "declassify",
            Builtin::Age => "age",
            Builtin::Stale => "stale",
            Builtin::Len => "len",
            Builtin::Contains => "contains",
            Builtin::Lower => "lower",
            Builtin::IsPresent => "is_present",
            Builtin::Degraded => "degraded",
        }
    }
}

/// A part of a string with interpolation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Part {
    Text(String),
    Expr(Expr),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Expr {
    pub kind: ExprKind,
    pub ty: Ty,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ExprKind {
    Lit(Literal),
    Interpolation(Vec<Part>),
    Ref(Ref),
    /// A variant of an enum, by index.
    Variant(EnumRef, u32),
    /// A field of a record (by index in its declaration) or of a step's result (no index:
    /// by name). No index either when the field could not be resolved.
    Field {
        base: Box<Expr>,
        name: SmolStr,
        index: Option<u32>,
    },
    /// A call of a `fn`, with its arguments in parameter order.
    Call {
        function: DeclId,
        args: Vec<Expr>,
    },
    Builtin {
        builtin: Builtin,
        args: Vec<Expr>,
    },
    /// `any(list, x => body)` (`all == false`) or `all(list, x => body)`.
    Quantifier {
        all: bool,
        list: Box<Expr>,
        var: SmolStr,
        body: Box<Expr>,
    },
    /// A record literal; fields in declaration order, `None` for an absent optional.
    Record {
        record: RecordRef,
        fields: Vec<Option<Expr>>,
    },
    /// `[a, b]`, in a test; its type is `List[T]`.
    List(Vec<Expr>),
    Unary {
        op: UnaryOp,
        operand: Box<Expr>,
    },
    Binary {
        op: BinaryOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    If {
        branches: Vec<(Expr, Expr)>,
        otherwise: Box<Expr>,
    },
    /// Already reported.
    Error,
}

impl Expr {
    pub fn error(span: Span) -> Expr {
        Expr { kind: ExprKind::Error, ty: Ty::Error, span }
    }

    /// Calls `f` on this expression and every expression inside it, outermost first.
    pub fn walk(&self, f: &mut dyn FnMut(&Expr)) {
        let mut stack = vec![self];
        while let Some(expr) = stack.pop() {
            f(expr);
            match &expr.kind {
                ExprKind::Interpolation(parts) => {
                    stack.extend(parts.iter().rev().filter_map(|p| match p {
                        Part::Expr(e) => Some(e),
                        Part::Text(_) => None,
                    }));
                }
                ExprKind::Field { base, .. } => stack.push(base),
                ExprKind::Call { args, .. } | ExprKind::Builtin { args, .. } => stack.extend(args.iter().rev()),
                ExprKind::Quantifier { list, body, .. } => {
                    stack.push(body);
                    stack.push(list);
                }
                ExprKind::Record { fields, .. } => stack.extend(fields.iter().rev().flatten()),
                ExprKind::List(items) => stack.extend(items.iter().rev()),
                ExprKind::Unary { operand, .. } => stack.push(operand),
                ExprKind::Binary { lhs, rhs, .. } => {
                    stack.push(rhs);
                    stack.push(lhs);
                }
                ExprKind::If { branches, otherwise } => {
                    stack.push(otherwise);
                    for (condition, then) in branches.iter().rev() {
                        stack.push(then);
                        stack.push(condition);
                    }
                }
                ExprKind::Lit(_) | ExprKind::Ref(_) | ExprKind::Variant(..) | ExprKind::Error => {}
            }
        }
    }

    /// The flow inputs, params and steps this expression reads.
    pub fn refs(&self) -> Vec<Ref> {
        let mut refs = Vec::new();
        self.walk(&mut |expr| {
            if let ExprKind::Ref(r @ (Ref::Input(_) | Ref::Param(_) | Ref::Step(_))) = expr.kind {
                refs.push(r);
            }
        });
        refs.sort();
        refs.dedup();
        refs
    }
}

/// A checked `fn`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Function {
    pub id: DeclId,
    pub name: SmolStr,
    pub params: Vec<(SmolStr, Ty)>,
    pub ret: Ty,
    pub body: Expr,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Input {
    pub name: SmolStr,
    pub span: Span,
    pub ty: Ty,
    pub source: Option<DeclId>,
    pub docs: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Output {
    pub name: SmolStr,
    pub span: Span,
    pub ty: Ty,
    pub docs: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Param {
    pub name: SmolStr,
    pub span: Span,
    pub ty: Ty,
    pub default: Expr,
    pub docs: Option<String>,
}

/// What a grant applies to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum GrantTarget {
    Label(DeclId),
    /// A gate, by step index.
    Gate(u32),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Grant {
    pub kind: GrantKind,
    pub span: Span,
    pub targets: Vec<GrantTarget>,
    pub roles: Vec<DeclId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Requirement {
    Auto,
    Count {
        count: u32,
        role: DeclId,
    },
    /// One approver of each role.
    AllOf(Vec<DeclId>),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Row {
    pub span: Span,
    /// `None` for `otherwise`.
    pub condition: Option<Expr>,
    pub requirement: Vec<Requirement>,
}

/// A field that a review may change: the step whose output it is, and the field path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Edit {
    pub step: u32,
    pub fields: Vec<SmolStr>,
    pub ty: Ty,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum StepKind {
    Let {
        value: Expr,
    },
    Gate {
        kind: GateLevel,
        condition: Expr,
        approvers: Vec<DeclId>,
        message: Option<String>,
    },
    /// `model` is `None` when it could not be resolved (the file has errors).
    Infer {
        model: Option<DeclId>,
        args: Vec<Expr>,
        fallback: Option<Expr>,
    },
    /// `corpus` is `None` when it could not be resolved (the file has errors).
    Retrieve {
        corpus: Option<DeclId>,
        query: Expr,
        top: u32,
    },
    Review {
        roles: Vec<DeclId>,
        condition: Option<Expr>,
        outcomes: Vec<SmolStr>,
        reasons: Vec<SmolStr>,
        edits: Vec<Edit>,
    },
    Approval {
        rows: Vec<Row>,
        distinct_from: Vec<Expr>,
    },
    /// `system` and `action` (an index into the system's actions) are `None` when they could
    /// not be resolved (the file has errors).
    Action {
        system: Option<DeclId>,
        action: Option<u32>,
        args: Vec<Expr>,
        condition: Option<Expr>,
        idempotency: Option<Expr>,
    },
    /// `output` indexes the flow's outputs; `None` when it names none (the file has errors).
    Emit {
        output: Option<u32>,
        value: Expr,
    },
}

impl StepKind {
    pub fn keyword(&self) -> &'static str {
        match self {
            StepKind::Let { .. } => "let",
            StepKind::Gate { .. } => "gate",
            StepKind::Infer { .. } => "infer",
            StepKind::Retrieve { .. } => "retrieve",
            StepKind::Review { .. } => "review",
            StepKind::Approval { .. } => "approval",
            StepKind::Action { .. } => "action",
            StepKind::Emit { .. } => "emit",
        }
    }

    /// Every expression of the step.
    pub fn exprs(&self) -> Vec<&Expr> {
        match self {
            StepKind::Let { value } | StepKind::Emit { value, .. } => vec![value],
            StepKind::Gate { condition, .. } => vec![condition],
            StepKind::Infer { args, fallback, .. } => args.iter().chain(fallback).collect(),
            StepKind::Retrieve { query, .. } => vec![query],
            StepKind::Review { condition, .. } => condition.iter().collect(),
            StepKind::Approval { rows, distinct_from } => {
                rows.iter().filter_map(|r| r.condition.as_ref()).chain(distinct_from).collect()
            }
            StepKind::Action { args, condition, idempotency, .. } => {
                args.iter().chain(condition).chain(idempotency).collect()
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Step {
    pub name: SmolStr,
    pub span: Span,
    /// The span of the step's name.
    pub name_span: Span,
    pub docs: Option<String>,
    /// The type of the value the step gives to later items.
    pub ty: Ty,
    pub kind: StepKind,
    /// For an action or emit: the approvals (by step index) it runs regardless of
    /// (`regardless of spend`), instead of reading their outcome.
    pub regardless: Vec<u32>,
    /// For a review, a soft gate or an approval: its deadlines, as checked.
    pub timing: Option<Timing>,
}

/// When a human step must be decided (`within 48h otherwise …`, `remind 4h before`,
/// `may wait forever`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Timing {
    pub deadlines: Vec<Deadline>,
    /// Seconds before each deadline.
    pub reminders: Vec<i64>,
    pub forever: bool,
}

impl Timing {
    /// As the flow says it: `within 48h otherwise escalate to director, remind 4h before`,
    /// roles named by `role`.
    pub fn describe(&self, role: &dyn Fn(DeclId) -> String) -> String {
        let mut parts: Vec<String> = self
            .deadlines
            .iter()
            .map(|d| {
                let then = match &d.then {
                    Timeout::Escalate(roles) => {
                        format!("escalate to {}", roles.iter().map(|r| role(*r)).collect::<Vec<_>>().join(", "))
                    }
                    Timeout::Decide { outcome, reason: Some(reason) } => format!("{outcome} because {reason}"),
                    Timeout::Decide { outcome, reason: None } => outcome.to_string(),
                    Timeout::Block => "block".to_owned(),
                };
                format!("within {} otherwise {then}", flow_ir::time::format_duration(d.after))
            })
            .collect();
        parts.extend(self.reminders.iter().map(|r| format!("remind {} before", flow_ir::time::format_duration(*r))));
        if self.forever {
            parts.push("may wait forever".to_owned());
        }
        parts.join(", ")
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Deadline {
    pub after: i64,
    pub then: Timeout,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Timeout {
    Escalate(Vec<DeclId>),
    Decide { outcome: SmolStr, reason: Option<SmolStr> },
    Block,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Flow {
    pub id: DeclId,
    pub name: SmolStr,
    pub span: Span,
    pub docs: Option<String>,
    pub version: Option<String>,
    pub owner: Option<DeclId>,
    pub steward: Option<DeclId>,
    pub inputs: Vec<Input>,
    pub outputs: Vec<Output>,
    pub params: Vec<Param>,
    pub grants: Vec<Grant>,
    pub steps: Vec<Step>,
    /// How long evidence is kept, in seconds.
    pub retain: Option<i64>,
    /// `migrate waiting`: runs waiting on an earlier version continue on this one.
    pub migrate_waiting: bool,
    /// The monitors, as checked (those with errors are left out), in source order.
    pub monitors: Vec<Monitor>,
}

/// `monitor overrides: overrides over 7d above 5% severity high to governance`, checked:
/// the plan's monitor, with roles by declaration.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Monitor {
    pub span: Span,
    pub name: SmolStr,
    pub metric: flow_ir::monitor::Metric,
    pub subject: Option<SmolStr>,
    pub quantile: Option<u8>,
    pub window: i64,
    pub above: bool,
    /// A count; a rate in millionths; a duration in seconds.
    pub threshold: i64,
    pub severity: flow_ir::monitor::Severity,
    pub channels: Vec<SmolStr>,
    pub roles: Vec<DeclId>,
}

/// A checked `test` block: an example run of a flow and what it must give.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Test {
    pub id: DeclId,
    pub name: String,
    /// The span of the test's name.
    pub span: Span,
    /// The flow it runs.
    pub flow: DeclId,
    /// `at …`: the run's clock (a `Timestamp` expression); a fixed instant when absent.
    pub clock: Option<Expr>,
    /// Inputs given, by index into the flow's inputs.
    pub given: Vec<(u32, Expr)>,
    /// Params set, by index into the flow's params.
    pub params: Vec<(u32, Expr)>,
    /// What models answer, by model.
    pub models: Vec<(DeclId, TestMock)>,
    /// What corpora's searches find, by corpus.
    pub corpora: Vec<(DeclId, TestMock)>,
    /// What action steps' systems return, by step index.
    pub actions: Vec<(u32, TestMock)>,
    /// Decisions and overrides, in order.
    pub steps: Vec<TestDecision>,
    pub expectations: Vec<Expect>,
    /// The examples' fields and types (`FnParam` references in the test's expressions, by
    /// position), and each example's values; no examples: the test runs once.
    pub columns: Vec<(SmolStr, Ty)>,
    pub rows: Vec<ExampleRow>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TestMock {
    Returns(Expr),
    Fails,
}

/// `decide step by principal as roles: outcome because reason`, or an override (`overrides`
/// holds its reason).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TestDecision {
    pub span: Span,
    pub step: u32,
    pub principal: SmolStr,
    pub roles: Vec<DeclId>,
    pub outcome: SmolStr,
    pub reason: Option<SmolStr>,
    pub overrides: Option<String>,
    /// `after 49h`: not a decision but time passing, by so many seconds (the other fields
    /// are empty).
    pub after: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Expect {
    pub span: Span,
    pub kind: ExpectKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ExpectKind {
    /// The run's status at the end (`completed`, `pending`, …).
    Outcome(SmolStr),
    /// Whether a gate's condition held.
    Gate { step: u32, held: bool },
    /// Whether an action ran.
    Action { step: u32, ran: bool },
    /// A condition on the run's values (Bool).
    Holds(Expr),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ExampleRow {
    pub span: Span,
    /// By column.
    pub values: Vec<Expr>,
}
