//! The plan: one compiled flow, as the runtime executes it and auditors read it.
//!
//! A plan file is JSON (`docs/plan-format.md`). Its meaning is [`PlanBody`]: the flow's
//! header, nodes, typed edges, grants, evidence policy, and every declaration the flow
//! uses (types, roles, labels, sources, models with their prompts, systems, functions).
//! Descriptions from doc comments and the source map are kept beside the body, outside
//! the content hash, so documentation and formatting never change a plan's identity.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use smol_str::SmolStr;

use crate::expr::{Expr, Named};
use crate::ty::Ty;

/// The version of the plan format that this crate reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// The version of the Flow language that plans of this format are compiled from.
pub const LANGUAGE_VERSION: &str = "1";

/// A plan as stored: its meaning, its hash, and what helps people read it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub format_version: u32,
    pub language_version: SmolStr,
    /// `blake3:` and 64 hexadecimal digits: the hash of the canonical encoding of the
    /// format version, the language version and the body.
    pub hash: String,
    /// What produced the plan (`flowc 0.1.0`); not part of the hash.
    #[serde(default)]
    pub compiler: String,
    pub plan: PlanBody,
    /// Doc comments, by item ([`DescriptionKey`]); not part of the hash.
    #[serde(default)]
    pub descriptions: BTreeMap<String, String>,
    /// Where each node and declaration was written; not part of the hash.
    #[serde(default)]
    pub source_map: SourceMap,
}

/// The meaning of a plan: everything its hash covers.
///
/// INVARIANT (checked by the verifier): every list whose order carries no meaning is
/// sorted by name and has no duplicates, so equal meanings have equal encodings. Ordered
/// lists are the rows of an approval matrix, the branches of an `if`, the parts of a text,
/// function parameters and call arguments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanBody {
    pub flow: FlowHeader,
    pub outputs: Vec<Output>,
    /// Inputs, params and steps, by name.
    pub nodes: Vec<Node>,
    /// By (from, to, kind).
    pub edges: Vec<Edge>,
    /// By (kind, target).
    pub grants: Vec<Grant>,
    pub evidence: EvidencePolicy,
    pub roles: Vec<Role>,
    pub labels: Vec<SmolStr>,
    pub records: Vec<Record>,
    pub enums: Vec<Enum>,
    pub sources: Vec<Source>,
    pub models: Vec<Model>,
    /// The corpora `retrieve` steps search, by name. Absent when the flow has none (a plan
    /// from before retrieval).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub corpora: Vec<Corpus>,
    pub systems: Vec<System>,
    pub functions: Vec<Function>,
    /// Conditions over the flow's recent runs, by name. Absent when the flow has none (a
    /// plan from before monitors).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub monitors: Vec<crate::monitor::Monitor>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowHeader {
    pub name: SmolStr,
    pub version: String,
    /// The role accountable for business outcomes.
    pub owner: SmolStr,
    /// The role accountable for policy and evidence standards.
    pub steward: SmolStr,
    /// `migrate waiting`: runs waiting for a person on an earlier version of the flow
    /// continue on this one once it is published where they run, when
    /// [`crate::migration::problems`] finds nothing in the way. Absent when false (a plan
    /// from before migration).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub migrate_waiting: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Output {
    pub name: SmolStr,
    pub ty: Ty,
}

/// A node of the DAG.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub name: SmolStr,
    /// The type of the value the node gives to later nodes.
    pub ty: Ty,
    pub kind: NodeKind,
    /// For an action or emit: the approvals it runs regardless of (`regardless of spend`),
    /// by name, sorted. Every other approval's outcome it must read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regardless: Vec<SmolStr>,
    /// For a review, a soft gate or an approval: when it must be decided and what happens
    /// otherwise. Absent when the flow says nothing (a plan from before deadlines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing: Option<Timing>,
}

/// The longest deadline or reminder a step may have, in seconds (100 years): every instant a
/// timer gives stays within the years a timestamp is written in.
pub const LONGEST_DEADLINE: i64 = 100 * 365 * 86_400;

/// When a human step must be decided: deadlines counted from when the step opens, in order,
/// reminders before each, or an explicit "may wait forever".
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timing {
    /// Strictly increasing `after`; only the last may decide or block.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deadlines: Vec<Deadline>,
    /// Seconds before each deadline at which a reminder is sent; sorted, positive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reminders: Vec<i64>,
    /// The flow says the step may wait forever (after its last escalation, if any).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forever: bool,
}

/// `within 48h otherwise …`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deadline {
    /// Seconds after the step opens; positive.
    pub after: i64,
    pub then: Timeout,
}

/// What happens when a deadline passes with the step still waiting.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Timeout {
    /// Principals of these roles may decide too from now on (sorted).
    Escalate { roles: Vec<SmolStr> },
    /// The step is decided by the deadline: a review's outcome with one of its reasons, or
    /// `approve`/`reject` for a soft gate or an approval.
    Decide {
        outcome: SmolStr,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<SmolStr>,
    },
    /// The run stops `blocked` at the step: nothing more runs.
    Block,
}

impl Timeout {
    /// Whether the step ends with it.
    pub fn is_final(&self) -> bool {
        !matches!(self, Timeout::Escalate { .. })
    }

    /// As the flow writes it: `escalate to cfo`, `reject because no_answer`, `block`.
    pub fn describe(&self) -> String {
        match self {
            Timeout::Escalate { roles } => format!("escalate to {}", roles.join(", ")),
            Timeout::Decide { outcome, reason: Some(reason) } => format!("{outcome} because {reason}"),
            Timeout::Decide { outcome, reason: None } => outcome.to_string(),
            Timeout::Block => "block".to_owned(),
        }
    }
}

impl Timing {
    /// Whether a deadline decides or blocks the step, so that it cannot wait forever.
    pub fn ends(&self) -> bool {
        self.deadlines.last().is_some_and(|d| d.then.is_final())
    }

    /// Whether the step may be decided by a deadline rather than by a person.
    pub fn decides(&self) -> bool {
        self.deadlines.iter().any(|d| matches!(d.then, Timeout::Decide { .. }))
    }

    /// Every timer of a step opened at second 0, in the order they fire: `(at, kind)` where
    /// kind is `Ok(deadline index)` or `Err(deadline index)` for the reminder before it.
    /// A reminder at or before the opening, or at or after the deadline before its own, is
    /// not sent.
    pub fn schedule(&self) -> Vec<(i64, Result<usize, usize>)> {
        let mut timers = Vec::new();
        let mut previous = 0;
        for (index, deadline) in self.deadlines.iter().enumerate() {
            for before in &self.reminders {
                let at = deadline.after.saturating_sub(*before);
                if at > previous && at < deadline.after {
                    timers.push((at, Err(index)));
                }
            }
            timers.push((deadline.after, Ok(index)));
            previous = deadline.after;
        }
        timers.sort_by_key(|(at, kind)| (*at, kind.is_ok()));
        timers
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateLevel {
    /// Records a finding; the run continues.
    Info,
    /// Pauses until an approver decides.
    Soft,
    /// Ends the run `blocked`, unless overridden.
    Block,
}

impl GateLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            GateLevel::Info => "info",
            GateLevel::Soft => "soft",
            GateLevel::Block => "block",
        }
    }
}

/// One approval requirement of a row; a row's terms must all be met.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Requirement {
    /// No approver is needed.
    Auto,
    /// `count` approvers holding `role`.
    Count { count: u32, role: SmolStr },
    /// One approver of each role.
    AllOf(Vec<SmolStr>),
}

/// A row of an approval matrix; `condition` is absent for `otherwise`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Row {
    pub condition: Option<Expr>,
    /// Sorted.
    pub requirement: Vec<Requirement>,
}

/// A field that a review may change: the node whose value it is, and the path of fields
/// (empty for the whole value).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditPath {
    pub node: SmolStr,
    pub fields: Vec<SmolStr>,
}

impl std::fmt::Display for EditPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.node)?;
        for field in &self.fields {
            write!(f, ".{field}")?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum NodeKind {
    /// A value the run is given; `source` names where it comes from.
    Input {
        source: Option<SmolStr>,
    },
    /// A tunable constant; what-if replays may set another value.
    Param {
        default: Expr,
    },
    Let {
        value: Expr,
    },
    Gate {
        level: GateLevel,
        condition: Expr,
        /// Who may approve a soft gate; sorted.
        approvers: Vec<SmolStr>,
        message: Option<String>,
    },
    Infer {
        model: SmolStr,
        /// By model input name.
        args: Vec<Named>,
        fallback: Option<Expr>,
    },
    /// Searches a corpus for at most `top` documents; gives them as a list.
    Retrieve {
        corpus: SmolStr,
        query: Expr,
        top: u32,
    },
    Review {
        /// Who may decide; sorted.
        roles: Vec<SmolStr>,
        /// Absent when the review always runs.
        condition: Option<Expr>,
        /// Sorted; `skipped` is implied when there is a condition.
        outcomes: Vec<SmolStr>,
        /// Sorted.
        reasons: Vec<SmolStr>,
        /// Sorted.
        edits: Vec<EditPath>,
    },
    Approval {
        /// In order: the first row whose condition holds decides.
        rows: Vec<Row>,
        /// Principals who may not approve.
        distinct_from: Vec<Expr>,
    },
    Action {
        system: SmolStr,
        action: SmolStr,
        /// By parameter name.
        args: Vec<Named>,
        condition: Option<Expr>,
        idempotency: Option<Expr>,
    },
    /// Produces the output of the node's name.
    Emit {
        value: Expr,
    },
}

impl NodeKind {
    pub fn keyword(&self) -> &'static str {
        match self {
            NodeKind::Input { .. } => "input",
            NodeKind::Param { .. } => "param",
            NodeKind::Let { .. } => "let",
            NodeKind::Gate { .. } => "gate",
            NodeKind::Infer { .. } => "infer",
            NodeKind::Retrieve { .. } => "retrieve",
            NodeKind::Review { .. } => "review",
            NodeKind::Approval { .. } => "approval",
            NodeKind::Action { .. } => "action",
            NodeKind::Emit { .. } => "emit",
        }
    }

    /// Gates, reviews and approvals: the steps that every effect waits for.
    pub fn is_governance(&self) -> bool {
        matches!(self, NodeKind::Gate { .. } | NodeKind::Review { .. } | NodeKind::Approval { .. })
    }

    /// Actions and emits: what leaves the run.
    pub fn is_effect(&self) -> bool {
        matches!(self, NodeKind::Action { .. } | NodeKind::Emit { .. })
    }

    /// Every expression of the node.
    pub fn exprs(&self) -> Vec<&Expr> {
        let mut out = Vec::new();
        match self {
            NodeKind::Input { .. } => {}
            NodeKind::Param { default } => out.push(default),
            NodeKind::Let { value } | NodeKind::Emit { value } => out.push(value),
            NodeKind::Gate { condition, .. } => out.push(condition),
            NodeKind::Infer { args, fallback, .. } => {
                out.extend(args.iter().map(|a| &a.value));
                out.extend(fallback);
            }
            NodeKind::Retrieve { query, .. } => out.push(query),
            NodeKind::Review { condition, .. } => out.extend(condition),
            NodeKind::Approval { rows, distinct_from } => {
                out.extend(rows.iter().filter_map(|row| row.condition.as_ref()));
                out.extend(distinct_from);
            }
            NodeKind::Action { args, condition, idempotency, .. } => {
                out.extend(args.iter().map(|a| &a.value));
                out.extend(condition);
                out.extend(idempotency);
            }
        }
        out
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    /// `to` reads the value (or status) of `from`.
    Data,
    /// `to` is an effect and waits for the governance step `from`.
    Governance,
    /// `to` reads a field that the review `from` may edit, so it runs after the review and
    /// sees the edited value.
    Edited,
}

impl EdgeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EdgeKind::Data => "data",
            EdgeKind::Governance => "governance",
            EdgeKind::Edited => "edited",
        }
    }
}

/// `to` runs after `from`. Written as an array: `["risk", "triage", "data"]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(from = "(SmolStr, SmolStr, EdgeKind)", into = "(SmolStr, SmolStr, EdgeKind)")]
pub struct Edge {
    pub from: SmolStr,
    pub to: SmolStr,
    pub kind: EdgeKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantKind {
    /// Start a run.
    Trigger,
    /// See values labelled with the target label.
    View,
    /// Override the target `block` gate.
    Override,
    /// Replay runs.
    Replay,
    /// Read evidence bundles.
    ReadEvidence,
    /// Start a run whose inputs name principals other than the one starting it.
    OnBehalf,
    /// Start a run at another time than now.
    Clock,
    /// Cancel a run that has not ended.
    Cancel,
    /// Let a failed run try its failed step again.
    Resume,
}

impl GrantKind {
    /// As written in an `access` block.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantKind::Trigger => "trigger",
            GrantKind::View => "view",
            GrantKind::Override => "override",
            GrantKind::Replay => "replay",
            GrantKind::ReadEvidence => "read evidence",
            GrantKind::OnBehalf => "trigger on behalf",
            GrantKind::Clock => "set clock",
            GrantKind::Cancel => "cancel",
            GrantKind::Resume => "resume",
        }
    }
}

/// The roles allowed an operation; `target` is the label of `view` and the gate of
/// `override`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    pub kind: GrantKind,
    pub target: Option<SmolStr>,
    /// Sorted.
    pub roles: Vec<SmolStr>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidencePolicy {
    /// How long evidence is kept, in seconds; absent when the flow does not say.
    pub retain: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    pub name: SmolStr,
    /// The roles whose grants this one inherits; sorted.
    pub extends: Vec<SmolStr>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    pub name: SmolStr,
    pub ty: Ty,
    /// Sorted.
    pub labels: Vec<SmolStr>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub name: SmolStr,
    /// By name.
    pub fields: Vec<Field>,
}

impl Record {
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.binary_search_by(|f| f.name.as_str().cmp(name)).ok().map(|i| &self.fields[i])
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enum {
    pub name: SmolStr,
    /// Sorted.
    pub variants: Vec<SmolStr>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub name: SmolStr,
    pub ty: Ty,
    /// The system of record.
    pub authority: String,
    /// Seconds after which a record is stale.
    pub freshness: Option<i64>,
    /// The `Timestamp` field that says how old a record is.
    pub as_of: Option<SmolStr>,
}

/// A typed parameter: of a model's input, a system action or a function.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Param {
    pub name: SmolStr,
    pub ty: Ty,
}

/// A prompt file's text, pinned by its hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prompt {
    /// `blake3:` and the hash of the text's UTF-8 bytes.
    pub hash: String,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    pub name: SmolStr,
    /// The provider kind the runtime resolves (`command`, `openai-compatible`).
    pub provider: String,
    /// The model's own name at the provider.
    pub model_name: String,
    pub version: String,
    /// `sha256:…` or `sha512:…`.
    pub digest: String,
    pub prompt: Option<Prompt>,
    /// By name: models take named arguments.
    pub inputs: Vec<Param>,
    pub output: Ty,
    /// The labels this model may receive; sorted.
    pub clearance: Vec<SmolStr>,
}

/// The most documents one `retrieve` step may ask for.
pub const MAX_TOP: u32 = 1000;

/// A collection of documents that `retrieve` steps search, pinned to one snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Corpus {
    pub name: SmolStr,
    /// The retriever kind the runtime resolves (`folder`, `command`, `http`).
    pub retriever: String,
    /// Who publishes the documents.
    pub authority: String,
    /// The snapshot the flow pins: a digest or a version, as the retriever reports it.
    pub snapshot: String,
    /// The record type of one document.
    pub document: Ty,
    /// The labels every document carries; sorted.
    pub labels: Vec<SmolStr>,
    /// The labels a query may carry; sorted.
    pub clearance: Vec<SmolStr>,
    /// Seconds after which the snapshot searched is too old.
    pub freshness: Option<i64>,
    /// What a run does when the retriever searched another snapshot, or one too old.
    pub on_mismatch: Mismatch,
}

/// What a run does when a corpus's retriever searched another snapshot than the pinned
/// one, or one older than the corpus's freshness.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mismatch {
    /// The step fails.
    Refuse,
    /// The step gives what was found, marked degraded.
    Degrade,
}

impl Mismatch {
    pub fn as_str(self) -> &'static str {
        match self {
            Mismatch::Refuse => "refuse",
            Mismatch::Degrade => "degrade",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    pub name: SmolStr,
    /// By name: a handler receives its arguments by name.
    pub params: Vec<Param>,
    /// `Nothing` for an action without result.
    pub result: Ty,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct System {
    pub name: SmolStr,
    /// Sorted.
    pub clearance: Vec<SmolStr>,
    /// By name.
    pub actions: Vec<Action>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Function {
    pub name: SmolStr,
    /// In order: calls pass arguments by position.
    pub params: Vec<Param>,
    pub result: Ty,
    pub body: Expr,
}

impl From<(SmolStr, SmolStr, EdgeKind)> for Edge {
    fn from((from, to, kind): (SmolStr, SmolStr, EdgeKind)) -> Edge {
        Edge { from, to, kind }
    }
}

impl From<Edge> for (SmolStr, SmolStr, EdgeKind) {
    fn from(edge: Edge) -> (SmolStr, SmolStr, EdgeKind) {
        (edge.from, edge.to, edge.kind)
    }
}

/// Where a node or declaration was written: a file of [`SourceMap::files`], a byte range,
/// and the 1-based line and column of its start. Written as an array: `[file, start, end,
/// line, column]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "[u32; 5]", into = "[u32; 5]")]
pub struct Origin {
    pub file: u32,
    pub start: u32,
    pub end: u32,
    pub line: u32,
    pub column: u32,
}

impl From<[u32; 5]> for Origin {
    fn from([file, start, end, line, column]: [u32; 5]) -> Origin {
        Origin { file, start, end, line, column }
    }
}

impl From<Origin> for [u32; 5] {
    fn from(o: Origin) -> [u32; 5] {
        [o.file, o.start, o.end, o.line, o.column]
    }
}

/// Where the plan's parts were written, so that runtime errors can point at source.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceMap {
    /// Paths, as the compiler was given them.
    pub files: Vec<String>,
    /// By [`DescriptionKey`] text: `flow`, `node:risk`, `row:spend:2`, `record:Vendor`, ….
    pub origins: BTreeMap<SmolStr, Origin>,
    /// The prompt files of models, by model name.
    #[serde(default)]
    pub prompts: BTreeMap<String, String>,
}

impl SourceMap {
    /// `file:line:column` of an item, if known.
    pub fn locate(&self, key: &DescriptionKey<'_>) -> Option<String> {
        let origin = self.origins.get(key.to_string().as_str())?;
        let file = self.files.get(origin.file as usize)?;
        Some(format!("{file}:{}:{}", origin.line, origin.column))
    }
}

/// What a description or an origin is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DescriptionKey<'a> {
    Flow,
    Node(&'a str),
    Output(&'a str),
    /// A row of an approval matrix, counted from 1.
    Row(&'a str, usize),
    Record(&'a str),
    Field(&'a str, &'a str),
    Enum(&'a str),
    Variant(&'a str, &'a str),
    Role(&'a str),
    Label(&'a str),
    Source(&'a str),
    Model(&'a str),
    Corpus(&'a str),
    System(&'a str),
    Action(&'a str, &'a str),
    Function(&'a str),
}

impl std::fmt::Display for DescriptionKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DescriptionKey::Flow => f.write_str("flow"),
            DescriptionKey::Node(n) => write!(f, "node:{n}"),
            DescriptionKey::Output(n) => write!(f, "output:{n}"),
            DescriptionKey::Row(n, row) => write!(f, "row:{n}:{row}"),
            DescriptionKey::Record(n) => write!(f, "record:{n}"),
            DescriptionKey::Field(r, n) => write!(f, "field:{r}.{n}"),
            DescriptionKey::Enum(n) => write!(f, "enum:{n}"),
            DescriptionKey::Variant(e, n) => write!(f, "variant:{e}.{n}"),
            DescriptionKey::Role(n) => write!(f, "role:{n}"),
            DescriptionKey::Label(n) => write!(f, "label:{n}"),
            DescriptionKey::Source(n) => write!(f, "source:{n}"),
            DescriptionKey::Model(n) => write!(f, "model:{n}"),
            DescriptionKey::Corpus(n) => write!(f, "corpus:{n}"),
            DescriptionKey::System(n) => write!(f, "system:{n}"),
            DescriptionKey::Action(s, n) => write!(f, "action:{s}.{n}"),
            DescriptionKey::Function(n) => write!(f, "function:{n}"),
        }
    }
}

impl Plan {
    /// The description of an item, if its doc comment gave one.
    pub fn description(&self, key: DescriptionKey<'_>) -> Option<&str> {
        self.descriptions.get(&key.to_string()).map(String::as_str)
    }
}

impl PlanBody {
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.binary_search_by(|n| n.name.as_str().cmp(name)).ok().map(|i| &self.nodes[i])
    }

    pub fn record(&self, name: &str) -> Option<&Record> {
        self.records.binary_search_by(|r| r.name.as_str().cmp(name)).ok().map(|i| &self.records[i])
    }

    pub fn enumeration(&self, name: &str) -> Option<&Enum> {
        self.enums.binary_search_by(|e| e.name.as_str().cmp(name)).ok().map(|i| &self.enums[i])
    }

    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.binary_search_by(|r| r.name.as_str().cmp(name)).ok().map(|i| &self.roles[i])
    }

    pub fn source(&self, name: &str) -> Option<&Source> {
        self.sources.binary_search_by(|s| s.name.as_str().cmp(name)).ok().map(|i| &self.sources[i])
    }

    pub fn model(&self, name: &str) -> Option<&Model> {
        self.models.binary_search_by(|m| m.name.as_str().cmp(name)).ok().map(|i| &self.models[i])
    }

    pub fn corpus(&self, name: &str) -> Option<&Corpus> {
        self.corpora.binary_search_by(|c| c.name.as_str().cmp(name)).ok().map(|i| &self.corpora[i])
    }

    pub fn system(&self, name: &str) -> Option<&System> {
        self.systems.binary_search_by(|s| s.name.as_str().cmp(name)).ok().map(|i| &self.systems[i])
    }

    pub fn function(&self, name: &str) -> Option<&Function> {
        self.functions.binary_search_by(|f| f.name.as_str().cmp(name)).ok().map(|i| &self.functions[i])
    }

    pub fn output(&self, name: &str) -> Option<&Output> {
        self.outputs.binary_search_by(|o| o.name.as_str().cmp(name)).ok().map(|i| &self.outputs[i])
    }

    pub fn has_label(&self, name: &str) -> bool {
        self.labels.binary_search_by(|l| l.as_str().cmp(name)).is_ok()
    }

    /// The variants of an enum type: a declared enum, a review's outcomes (with `skipped`
    /// when the review has a condition) or its reasons.
    pub fn variants(&self, ty: &Ty) -> Option<Vec<SmolStr>> {
        match ty {
            Ty::Named(name) => self.enumeration(name).map(|e| e.variants.clone()),
            Ty::Outcome(step) => match &self.node(step)?.kind {
                NodeKind::Review { outcomes, condition, .. } => {
                    let mut variants = outcomes.clone();
                    if condition.is_some() {
                        variants.push(SmolStr::new_static("skipped"));
                        variants.sort();
                    }
                    Some(variants)
                }
                _ => None,
            },
            Ty::Reason(step) => match &self.node(step)?.kind {
                NodeKind::Review { reasons, .. } => Some(reasons.clone()),
                _ => None,
            },
            _ => None,
        }
    }

    /// The type of field `name` of a value of type `ty`: a record's field, or a field of a
    /// review's or an approval's result.
    pub fn field_type(&self, ty: &Ty, name: &str) -> Option<std::borrow::Cow<'_, Ty>> {
        use std::borrow::Cow;
        match ty {
            Ty::Named(record) => self.record(record)?.field(name).map(|f| Cow::Borrowed(&f.ty)),
            Ty::Review(step) => {
                let node = self.node(step)?;
                let conditional = matches!(&node.kind, NodeKind::Review { condition: Some(_), .. });
                let maybe = |ty: Ty| if conditional { ty.optional() } else { ty };
                // A review that a deadline may decide may have no reviewer.
                let timed = node.timing.as_ref().is_some_and(Timing::decides);
                Some(Cow::Owned(match name {
                    "outcome" => Ty::Outcome(step.clone()),
                    "reason" => maybe(Ty::Reason(step.clone())),
                    "reviewer" if timed => Ty::Principal.optional(),
                    "reviewer" => maybe(Ty::Principal),
                    "basis" => Ty::Text.optional(),
                    _ => return None,
                }))
            }
            Ty::Approval(_) => Some(Cow::Owned(match name {
                "approved" => Ty::Bool,
                "approvers" => Ty::List(Box::new(Ty::Principal)),
                "requirement" => Ty::Text,
                _ => return None,
            })),
            _ => None,
        }
    }
}
