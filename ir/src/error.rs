//! Why a plan is refused. Each error has a stable diagnostic code of the registry (the
//! compiler registers them; a tidy test checks that every code written here is registered).

use std::fmt;

use smol_str::SmolStr;

use crate::plan::EdgeKind;

/// A reason the verifier refuses a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerifyError {
    /// The bytes are not a plan: not JSON, truncated, or not of the plan's shape.
    Unreadable(String),
    /// A format or language version this runtime does not read.
    Version(String),
    /// The recorded hash is not the hash of the plan's contents.
    Hash { recorded: String, computed: String },
    /// A name that resolves to nothing, a name declared twice, a list out of its canonical
    /// order, or a declaration that breaks a rule of the language.
    Malformed(String),
    /// An expression or a node whose types do not agree.
    IllTyped { at: String, message: String },
    /// A node reads another without an edge that makes it wait for it.
    MissingEdge { from: SmolStr, to: SmolStr, kind: EdgeKind, why: String },
    /// The nodes, each with the kind of the edge to the next (the last to the first).
    Cycle(Vec<(SmolStr, EdgeKind)>),
    /// A declared output that no node emits.
    NotEmitted(SmolStr),
    /// A node that depends on nothing the run receives: no input, param or decision. With
    /// the node's kind.
    Unreachable(SmolStr, &'static str),
    /// An effect (action or emit) that can run without waiting for a governance step. With
    /// the kinds of both.
    Bypass { effect: (SmolStr, &'static str), governance: (SmolStr, &'static str) },
    /// An effect (action or emit) that reads neither the outcome of an approval nor says it
    /// runs regardless of it. With the effect's kind.
    OutcomeUnread { effect: (SmolStr, &'static str), approval: SmolStr },
}

impl VerifyError {
    /// The diagnostic code.
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::Unreadable(_) => "E2101",
            VerifyError::Version(_) => "E2102",
            VerifyError::Hash { .. } => "E2103",
            VerifyError::Malformed(_) => "E2104",
            VerifyError::IllTyped { .. } => "E2105",
            VerifyError::MissingEdge { .. } => "E2106",
            VerifyError::Cycle(_) => "E2001",
            VerifyError::NotEmitted(_) => "E2002",
            VerifyError::Unreachable(..) => "E2017",
            VerifyError::Bypass { .. } => "E2018",
            VerifyError::OutcomeUnread { .. } => "E2021",
        }
    }

    /// Every code this crate reports, for the registry's tidy check.
    pub const CODES: &'static [&'static str] =
        &["E2101", "E2102", "E2103", "E2104", "E2105", "E2106", "E2001", "E2002", "E2017", "E2018", "E2021"];
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::Unreadable(why) => write!(f, "the file is not a readable plan: {why}"),
            VerifyError::Version(why) => f.write_str(why),
            VerifyError::Hash { recorded, computed } => write!(
                f,
                "the plan's contents do not match its hash: it records `{recorded}` but its contents hash to `{computed}`; it was changed after it was built"
            ),
            VerifyError::Malformed(why) => f.write_str(why),
            VerifyError::IllTyped { at, message } => write!(f, "{at}: {message}"),
            VerifyError::MissingEdge { from, to, kind, why } => {
                write!(f, "`{to}` {why}, but there is no {} edge from `{from}` to `{to}`", kind.as_str())
            }
            VerifyError::Cycle(path) => {
                let mut names: Vec<String> = path.iter().map(|(n, _)| format!("`{n}`")).collect();
                if let Some((first, _)) = path.first() {
                    names.push(format!("`{first}`"));
                }
                write!(f, "the nodes depend on each other in a cycle: {}", names.join(" → "))
            }
            VerifyError::NotEmitted(output) => write!(f, "output `{output}` is never emitted"),
            VerifyError::Unreachable(node, kind) => {
                write!(f, "{kind} `{node}` depends on no input, param or decision of the run")
            }
            VerifyError::Bypass { effect, governance } => write!(
                f,
                "{} `{}` can run without waiting for {} `{}`: it bypasses governance",
                effect.1, effect.0, governance.1, governance.0
            ),
            VerifyError::OutcomeUnread { effect, approval } => write!(
                f,
                "{} `{}` runs whether or not approval `{approval}` was approved: it reads neither \
                 `{approval}.approved` nor says it runs regardless of it",
                effect.1, effect.0
            ),
        }
    }
}

/// Every reason a plan was refused, in the order they were found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyErrors(pub Vec<VerifyError>);

impl fmt::Display for VerifyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "[{}] {error}", error.code())?;
        }
        Ok(())
    }
}

impl std::error::Error for VerifyErrors {}
