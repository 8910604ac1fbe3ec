//! The events of a run: what the hash-chained evidence log records, and what a run's state
//! is rebuilt from after a crash.
//!
//! An event is generic over how it holds values: [`Value`] while a run executes, evidence
//! JSON (with labels marked, [`crate::labels`]) when it is stored. [`Event::map_values`]
//! converts between the two, given each value's slot.

pub mod codec;

use std::collections::BTreeMap;

use flow_ir::plan::{GateLevel, Requirement};
use serde::{Deserialize, Serialize};
use smol_str::SmolStr;

/// How a run ended, or that it waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Executing, or interrupted while executing (a crash): the next command resumes it.
    Running,
    /// Waiting for decisions: reviews, soft gates or approvals.
    Pending,
    /// Every step ran and every output was emitted.
    Completed,
    /// A blocking gate held; a principal granted `override` may let the run continue.
    Blocked,
    /// A soft gate was rejected.
    Rejected,
    /// A step failed: an error of its expression, a model without fallback, an action. A
    /// principal granted `resume` may let it try the step again.
    Failed,
    /// A principal granted `cancel` ended it before it finished.
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Pending => "pending",
            Status::Completed => "completed",
            Status::Blocked => "blocked",
            Status::Rejected => "rejected",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        [
            Status::Running,
            Status::Pending,
            Status::Completed,
            Status::Blocked,
            Status::Rejected,
            Status::Failed,
            Status::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    /// Whether the run ended: nothing more happens to it but, for a `failed` one, a resume
    /// (`blocked` may still be overridden).
    pub fn is_final(self) -> bool {
        matches!(self, Status::Completed | Status::Rejected | Status::Failed | Status::Cancelled)
    }
}

/// A search of a corpus by a `retrieve` step, as its evidence records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Retrieved<V> {
    pub node: SmolStr,
    pub corpus: SmolStr,
    /// The retriever, as the deployment describes it (`folder policies/`).
    pub retriever: String,
    pub authority: String,
    /// The snapshot the flow pins.
    pub pinned: String,
    /// The snapshot the retriever searched; absent when it failed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub snapshot: Option<String>,
    /// When that snapshot was published, when the retriever said.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub as_of: Option<flow_ir::expr::Timestamp>,
    pub top: u32,
    /// The query as sent, labelled as what it was made of.
    pub query: V,
    /// What was found, best first: for each document, its identifier in the corpus and the
    /// digest of its content as the step gives it (`[[ID, DIGEST], …]`), as one value
    /// labelled as the documents are, so that even how many were found is hidden from those
    /// who may not see them ([`Retrieved::found`]).
    pub documents: V,
    pub latency_us: u64,
    pub attempts: u32,
    /// The retriever's failure, or why its documents do not fit the corpus's type.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<V>,
    /// The documents, as the step gives them; absent when the search failed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub value: Option<V>,
    /// The snapshot searched is not the pinned one, or is too old, and the corpus says
    /// `on mismatch degrade`: the step gives the documents, marked degraded.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub degraded: bool,
    /// The same, and the corpus says `on mismatch refuse`: the step fails.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub refused: bool,
    /// What differs, in words, when degraded or refused.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
}

impl Retrieved<crate::value::Value> {
    /// The identifier and digest of each document found, as [`Retrieved::documents`] holds
    /// them.
    pub fn found(&self) -> Vec<(String, String)> {
        use crate::value::Value;
        let Value::List(items) = &self.documents else { return Vec::new() };
        items
            .iter()
            .filter_map(|item| match item {
                Value::List(pair) => match pair.as_slice() {
                    [Value::Text(id), Value::Text(digest)] => Some((id.clone(), digest.clone())),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    }

    /// [`Retrieved::documents`] of these identifiers and digests.
    pub fn documents_of(found: &[(String, String)]) -> crate::value::Value {
        use crate::value::Value;
        Value::List(
            found
                .iter()
                .map(|(id, digest)| Value::List(vec![Value::Text(id.clone()), Value::Text(digest.clone())]))
                .collect(),
        )
    }
}

/// A named value: an input, a param, an argument, an operand.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Named<V> {
    pub name: SmolStr,
    pub value: V,
}

/// A field a reviewer changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Edit<V> {
    /// As the review's `may edit` names it: `risk.tier`.
    pub field: String,
    pub before: V,
    pub after: V,
}

/// How fresh an input from a source was when the run started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceCheck {
    pub input: SmolStr,
    pub source: SmolStr,
    pub authority: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub as_of: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub age: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub freshness: Option<String>,
    pub stale: bool,
}

/// Where a run executed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    /// `flow-runtime 0.0.0`.
    pub runtime: String,
    /// The build: target triple and profile.
    pub build: String,
    pub host: String,
    pub os: String,
    /// The model providers and action handlers registered, by model or system, with their
    /// kind and version.
    pub providers: BTreeMap<String, String>,
    /// The deployment's environment (`[release] environment`), when it names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

/// What a run's evidence says of the release that made its plan live in the environment it
/// ran in (`started`'s `release`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRef {
    pub environment: String,
    pub release: String,
    /// Who proposed it, who approved it, who published it.
    pub author: String,
    pub approvers: Vec<String>,
    pub published_by: String,
    /// The release log's entry that published it, and its hash.
    pub entry: u64,
    pub hash: String,
}

/// A decision's common part: who, with which roles, what, why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub principal: String,
    /// The principal's roles that allowed the decision.
    pub roles: Vec<String>,
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub basis: Option<String>,
    /// How the principal proved who they are, when a service authenticated them.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub authenticated: Option<String>,
}

/// The first event of every run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Started<V> {
    pub run: String,
    pub plan: std::sync::Arc<str>,
    pub flow: SmolStr,
    pub flow_version: SmolStr,
    pub principal: String,
    pub roles: Vec<String>,
    /// How the principal proved who they are, when a service authenticated them.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub authenticated: Option<String>,
    /// The run's clock: what `now()` reads, for the whole run and its replays.
    pub clock: flow_ir::expr::Timestamp,
    /// Whether whoever started the run chose its clock (the `set clock` grant, or a test),
    /// rather than the runtime reading the current time.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub clock_chosen: bool,
    pub inputs: Vec<Named<V>>,
    /// BLAKE3 of each input's JSON as given.
    pub input_digests: BTreeMap<String, String>,
    pub params: Vec<Named<V>>,
    pub sources: Vec<SourceCheck>,
    pub environment: std::sync::Arc<Environment>,
    /// The public key (hex) whose signature of the chain head every export carries, when
    /// the deployment signs evidence.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub signing_key: Option<String>,
    /// `interpreter`.
    pub engine: SmolStr,
    /// The plan's declassifications, which this run's values may go through.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub declassifications: Vec<Declassification>,
    /// The release that made the plan live in the environment the run started in, when one
    /// did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<ReleaseRef>,
    /// The digest of the run's deployment ([`crate::deployment::digest_of`]): of a run kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
}

/// A waiting run moved to the version of its flow published since it started (`migrate
/// waiting`): the events after this one are of plan `to`; those before, of plan `from`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Migrated {
    pub from: std::sync::Arc<str>,
    pub to: std::sync::Arc<str>,
    /// The version of the flow the run continues on.
    pub flow_version: SmolStr,
    /// When it migrated: the deadlines of the steps waiting count from then, as the new
    /// version sets them.
    pub at: flow_ir::expr::Timestamp,
    /// The release that made plan `to` live where the run waits.
    pub release: ReleaseRef,
    /// The deployment the run continues in, and its digest (as `started` records them).
    pub environment: std::sync::Arc<Environment>,
    pub deployment: String,
}

/// How a stored `migrated` event begins (as the store keeps it): runs without one are read
/// with one plan.
pub(crate) const MIGRATED: &str = r#"{"event":"migrated""#;

/// A `declassify` of the plan: where, which labels it takes off, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Declassification {
    pub node: SmolStr,
    pub labels: Vec<SmolStr>,
    pub reason: SmolStr,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event<V> {
    Started(Box<Started<V>>),
    /// A `let` computed its value from `operands`.
    Evaluated {
        node: SmolStr,
        value: V,
        operands: Vec<Named<V>>,
    },
    /// A gate's condition, with the values that decided it.
    Gate {
        node: SmolStr,
        level: GateLevel,
        holds: bool,
        operands: Vec<Named<V>>,
    },
    GateDecided {
        node: SmolStr,
        decision: Decision,
    },
    GateOverridden {
        node: SmolStr,
        decision: Decision,
    },
    /// One call of a model provider (after its own retries).
    ModelCalled {
        node: SmolStr,
        model: SmolStr,
        provider: String,
        model_name: String,
        version: String,
        digest: String,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        prompt_hash: Option<String>,
        /// The digests of the request and of the response as the provider gave it: text
        /// labelled as the call's failure is (a digest of a value of few possibilities gives
        /// the value away to whoever tries them all).
        request_digest: V,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        response_digest: Option<V>,
        latency_us: u64,
        attempts: u32,
        /// The provider's failure, as it told it: text that may repeat what it was sent, so
        /// it carries the labels of the arguments and of the output type.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        error: Option<V>,
        args: Vec<Named<V>>,
    },
    /// An `infer` step's value; `degraded` when its fallback gave it.
    Inferred {
        node: SmolStr,
        value: V,
        degraded: bool,
        /// Why the fallback gave the value (labelled as the model call's error is).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        reason: Option<V>,
    },
    /// One search of a corpus by a `retrieve` step (after the retriever's own retries), and
    /// what it gave the step.
    Retrieved(Box<Retrieved<V>>),
    ReviewSkipped {
        node: SmolStr,
        operands: Vec<Named<V>>,
    },
    ReviewOpened {
        node: SmolStr,
        roles: Vec<SmolStr>,
        operands: Vec<Named<V>>,
    },
    ReviewDecided {
        node: SmolStr,
        decision: Decision,
        edits: Vec<Edit<V>>,
    },
    /// The row of an approval matrix that applies, and what it requires.
    ApprovalRequired {
        node: SmolStr,
        row: u32,
        requirement: String,
        terms: Vec<Requirement>,
        operands: Vec<Named<V>>,
        /// Principals who may not approve (`distinct from`).
        excluded: Vec<String>,
    },
    ApprovalDecided {
        node: SmolStr,
        decision: Decision,
    },
    ApprovalCompleted {
        node: SmolStr,
        row: u32,
        approved: bool,
        approvers: Vec<String>,
        requirement: String,
    },
    ActionSkipped {
        node: SmolStr,
        operands: Vec<Named<V>>,
    },
    /// Written durably before the handler is called, so a crash cannot lose the intent.
    ActionStarted {
        node: SmolStr,
        system: SmolStr,
        action: SmolStr,
        key: String,
        args: Vec<Named<V>>,
        attempt: u32,
    },
    /// The handler's result; `reused` when an earlier call with the same key gave it.
    ActionCompleted {
        node: SmolStr,
        key: String,
        result: V,
        reused: bool,
        /// How many tries the handler made for it, when more than one (a system over HTTP
        /// tries again, with the same key, after a transport error, 408, 429 or 5xx).
        #[serde(default = "one", skip_serializing_if = "is_one")]
        tries: u32,
    },
    /// An output's value; `marks` say what it carries besides: `overridden: g` for every
    /// gate overridden before it, `degraded: x` for every degraded step it depends on.
    Emitted {
        node: SmolStr,
        value: V,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        marks: Vec<String>,
    },
    /// A step failed; the run ends `failed`.
    Failed {
        node: SmolStr,
        /// What failed, without any value: `division by zero (`/` of decimals)`.
        error: String,
        /// The failure with the values it involved, or as the model or system told it,
        /// labelled with what the step reads.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<V>,
        /// What an action's handler returned when it did not fit the action's result type:
        /// `{"$labels": […], "$value": …}`, the JSON as returned marked with every label of
        /// that type (it may hold any of them), so that the run replays and the evidence
        /// shows it only to those cleared for them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        returned: Option<serde_json::Value>,
        /// For an action whose idempotency key was used before for another request (of
        /// this run or another: what that request held is not shown).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        key_taken: bool,
    },
    /// An operation the acting principal is not granted.
    Refused {
        operation: String,
        principal: String,
        roles: Vec<String>,
        grant: String,
        message: String,
    },
    /// A principal granted `cancel` ended the run before it finished (`outcome` `cancel`, a
    /// reason code, a basis): nothing of the flow runs after it; what ran stays recorded.
    Cancelled {
        decision: Decision,
    },
    /// A principal granted `resume` let a failed run try its failed step again (`outcome`
    /// `resume`, a reason code): an action is called again with its idempotency key.
    Resumed {
        node: SmolStr,
        decision: Decision,
    },
    /// A review, soft gate or approval with deadlines began to wait at `opened`: its timers
    /// run from then (the instant the runtime opened it, or the deadline that led to it).
    TimerSet {
        node: SmolStr,
        opened: flow_ir::expr::Timestamp,
    },
    /// A reminder before the step's next deadline (`deadline`), sent at `at`.
    Reminded {
        node: SmolStr,
        at: flow_ir::expr::Timestamp,
        deadline: flow_ir::expr::Timestamp,
    },
    /// A deadline passed at `at`: principals of `roles` may decide the step from now on.
    Escalated {
        node: SmolStr,
        at: flow_ir::expr::Timestamp,
        roles: Vec<SmolStr>,
    },
    /// A deadline passed at `at` and decided the step (`outcome`, with `reason`), or, when
    /// `outcome` is absent, stopped the run `blocked` at it.
    TimedOut {
        node: SmolStr,
        at: flow_ir::expr::Timestamp,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outcome: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The run, waiting, continues on another version of its flow.
    Migrated(Box<Migrated>),
    /// The run stopped executing: how it stands, in one line.
    Settled {
        status: Status,
        summary: String,
    },
}

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

/// Where a value sits in an event: what gives it its type and its labels.
#[derive(Clone, Copy, Debug)]
pub enum Slot<'a> {
    Input(&'a str),
    Param(&'a str),
    /// The value of a `let`, an `infer` or an action.
    Node(&'a str),
    /// The output an emit produces.
    Output(&'a str),
    /// A place a condition of a step read: the step, and the place (`request.amount`).
    Operand(&'a str, &'a str),
    /// An argument of the model an `infer` step calls.
    ModelArg(&'a str, &'a str),
    /// An argument of the action an action step calls.
    ActionArg(&'a str, &'a str),
    /// A field a review may edit (`risk.tier`).
    Edit(&'a str),
    /// The text of a step's failure (a model's, a system's, or of its values).
    Failure(&'a str),
    /// The query a `retrieve` step sent.
    Query(&'a str),
    /// The identifiers and digests of the documents a `retrieve` step found.
    Found(&'a str),
}

impl<V> Event<V> {
    /// Records on a decision or override how its principal was authenticated.
    pub fn set_authenticated(&mut self, how: Option<&str>) {
        if let Event::ReviewDecided { decision, .. }
        | Event::GateDecided { decision, .. }
        | Event::ApprovalDecided { decision, .. }
        | Event::GateOverridden { decision, .. }
        | Event::Cancelled { decision }
        | Event::Resumed { decision, .. } = self
        {
            decision.authenticated = how.map(str::to_owned);
        }
    }

    /// How the principal of a decision or override was authenticated, as recorded.
    pub fn authenticated(&self) -> Option<&str> {
        match self {
            Event::ReviewDecided { decision, .. }
            | Event::GateDecided { decision, .. }
            | Event::ApprovalDecided { decision, .. }
            | Event::GateOverridden { decision, .. }
            | Event::Cancelled { decision }
            | Event::Resumed { decision, .. } => decision.authenticated.as_deref(),
            _ => None,
        }
    }

    /// The node the event is about, if any.
    pub fn node(&self) -> Option<&SmolStr> {
        match self {
            Event::Evaluated { node, .. }
            | Event::Gate { node, .. }
            | Event::GateDecided { node, .. }
            | Event::GateOverridden { node, .. }
            | Event::ModelCalled { node, .. }
            | Event::Inferred { node, .. }
            | Event::ReviewSkipped { node, .. }
            | Event::ReviewOpened { node, .. }
            | Event::ReviewDecided { node, .. }
            | Event::ApprovalRequired { node, .. }
            | Event::ApprovalDecided { node, .. }
            | Event::ApprovalCompleted { node, .. }
            | Event::ActionSkipped { node, .. }
            | Event::ActionStarted { node, .. }
            | Event::ActionCompleted { node, .. }
            | Event::Emitted { node, .. }
            | Event::Failed { node, .. }
            | Event::Resumed { node, .. }
            | Event::TimerSet { node, .. }
            | Event::Reminded { node, .. }
            | Event::Escalated { node, .. }
            | Event::TimedOut { node, .. } => Some(node),
            Event::Retrieved(retrieved) => Some(&retrieved.node),
            Event::Started(_)
            | Event::Refused { .. }
            | Event::Settled { .. }
            | Event::Cancelled { .. }
            | Event::Migrated(_) => None,
        }
    }

    /// The event with each value converted by `f`, which is told where the value sits.
    pub fn map_values<W, E>(self, f: &mut impl FnMut(Slot<'_>, V) -> Result<W, E>) -> Result<Event<W>, E> {
        fn named<V, W, E>(
            items: Vec<Named<V>>,
            slot: impl for<'s> Fn(&'s str) -> Slot<'s>,
            f: &mut impl FnMut(Slot<'_>, V) -> Result<W, E>,
        ) -> Result<Vec<Named<W>>, E> {
            items.into_iter().map(|n| Ok(Named { value: f(slot(&n.name), n.value)?, name: n.name })).collect()
        }
        fn operands_of<V, W, E>(
            node: &str,
            items: Vec<Named<V>>,
            f: &mut impl FnMut(Slot<'_>, V) -> Result<W, E>,
        ) -> Result<Vec<Named<W>>, E> {
            items
                .into_iter()
                .map(|n| Ok(Named { value: f(Slot::Operand(node, &n.name), n.value)?, name: n.name }))
                .collect()
        }
        Ok(match self {
            Event::Started(started) => {
                let s = *started;
                Event::Started(Box::new(Started {
                    inputs: named(s.inputs, |n| Slot::Input(n), f)?,
                    params: named(s.params, |n| Slot::Param(n), f)?,
                    run: s.run,
                    plan: s.plan,
                    flow: s.flow,
                    flow_version: s.flow_version,
                    principal: s.principal,
                    roles: s.roles,
                    authenticated: s.authenticated,
                    clock: s.clock,
                    clock_chosen: s.clock_chosen,
                    input_digests: s.input_digests,
                    sources: s.sources,
                    environment: s.environment,
                    signing_key: s.signing_key,
                    engine: s.engine,
                    declassifications: s.declassifications,
                    release: s.release,
                    deployment: s.deployment,
                }))
            }
            Event::Evaluated { value, operands, node } => Event::Evaluated {
                value: f(Slot::Node(&node), value)?,
                operands: operands_of(&node, operands, f)?,
                node,
            },
            Event::Gate { node, level, holds, operands } => {
                Event::Gate { operands: operands_of(&node, operands, f)?, node, level, holds }
            }
            Event::GateDecided { node, decision } => Event::GateDecided { node, decision },
            Event::GateOverridden { node, decision } => Event::GateOverridden { node, decision },
            Event::ModelCalled {
                node,
                model,
                provider,
                model_name,
                version,
                digest,
                prompt_hash,
                request_digest,
                response_digest,
                latency_us,
                attempts,
                error,
                args,
            } => {
                let error = error.map(|e| f(Slot::Failure(&node), e)).transpose()?;
                let request_digest = f(Slot::Failure(&node), request_digest)?;
                let response_digest = response_digest.map(|d| f(Slot::Failure(&node), d)).transpose()?;
                let args = args
                    .into_iter()
                    .map(|a| Ok(Named { value: f(Slot::ModelArg(&node, &a.name), a.value)?, name: a.name }))
                    .collect::<Result<_, E>>()?;
                Event::ModelCalled {
                    node,
                    model,
                    provider,
                    model_name,
                    version,
                    digest,
                    prompt_hash,
                    request_digest,
                    response_digest,
                    latency_us,
                    attempts,
                    error,
                    args,
                }
            }
            Event::Inferred { value, degraded, reason, node } => {
                let reason = reason.map(|r| f(Slot::Failure(&node), r)).transpose()?;
                Event::Inferred { value: f(Slot::Node(&node), value)?, degraded, reason, node }
            }
            Event::Retrieved(r) => {
                let r = *r;
                let node = r.node;
                let documents = f(Slot::Found(&node), r.documents)?;
                Event::Retrieved(Box::new(Retrieved {
                    query: f(Slot::Query(&node), r.query)?,
                    documents,
                    error: r.error.map(|e| f(Slot::Failure(&node), e)).transpose()?,
                    value: r.value.map(|v| f(Slot::Node(&node), v)).transpose()?,
                    corpus: r.corpus,
                    retriever: r.retriever,
                    authority: r.authority,
                    pinned: r.pinned,
                    snapshot: r.snapshot,
                    as_of: r.as_of,
                    top: r.top,
                    latency_us: r.latency_us,
                    attempts: r.attempts,
                    degraded: r.degraded,
                    refused: r.refused,
                    reason: r.reason,
                    node,
                }))
            }
            Event::ReviewSkipped { node, operands } => {
                Event::ReviewSkipped { operands: operands_of(&node, operands, f)?, node }
            }
            Event::ReviewOpened { node, roles, operands } => {
                Event::ReviewOpened { operands: operands_of(&node, operands, f)?, node, roles }
            }
            Event::ReviewDecided { node, decision, edits } => {
                let edits = edits
                    .into_iter()
                    .map(|e| {
                        Ok(Edit {
                            before: f(Slot::Edit(&e.field), e.before)?,
                            after: f(Slot::Edit(&e.field), e.after)?,
                            field: e.field,
                        })
                    })
                    .collect::<Result<_, E>>()?;
                Event::ReviewDecided { node, decision, edits }
            }
            Event::ApprovalRequired { node, row, requirement, terms, operands, excluded } => Event::ApprovalRequired {
                operands: operands_of(&node, operands, f)?,
                node,
                row,
                requirement,
                terms,
                excluded,
            },
            Event::ApprovalDecided { node, decision } => Event::ApprovalDecided { node, decision },
            Event::ApprovalCompleted { node, row, approved, approvers, requirement } => {
                Event::ApprovalCompleted { node, row, approved, approvers, requirement }
            }
            Event::ActionSkipped { node, operands } => {
                Event::ActionSkipped { operands: operands_of(&node, operands, f)?, node }
            }
            Event::ActionStarted { node, system, action, key, args, attempt } => {
                let args = args
                    .into_iter()
                    .map(|a| Ok(Named { value: f(Slot::ActionArg(&node, &a.name), a.value)?, name: a.name }))
                    .collect::<Result<_, E>>()?;
                Event::ActionStarted { node, system, action, key, args, attempt }
            }
            Event::ActionCompleted { key, result, reused, node, tries } => {
                Event::ActionCompleted { key, result: f(Slot::Node(&node), result)?, reused, node, tries }
            }
            Event::Emitted { value, node, marks } => {
                Event::Emitted { value: f(Slot::Output(&node), value)?, node, marks }
            }
            Event::Failed { node, error, detail, returned, key_taken } => {
                let detail = detail.map(|d| f(Slot::Failure(&node), d)).transpose()?;
                Event::Failed { node, error, detail, returned, key_taken }
            }
            Event::Refused { operation, principal, roles, grant, message } => {
                Event::Refused { operation, principal, roles, grant, message }
            }
            Event::Cancelled { decision } => Event::Cancelled { decision },
            Event::Resumed { node, decision } => Event::Resumed { node, decision },
            Event::Settled { status, summary } => Event::Settled { status, summary },
            Event::Migrated(migrated) => Event::Migrated(migrated),
            Event::TimerSet { node, opened } => Event::TimerSet { node, opened },
            Event::Reminded { node, at, deadline } => Event::Reminded { node, at, deadline },
            Event::Escalated { node, at, roles } => Event::Escalated { node, at, roles },
            Event::TimedOut { node, at, outcome, reason } => Event::TimedOut { node, at, outcome, reason },
        })
    }
}
