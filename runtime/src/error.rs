//! Why an operation of the runtime did not happen: one kind per cause, each with a stable
//! code of the `E3xxx` family that the diagnostics registry explains (`flowc explain E3001`),
//! so that an embedder, the command line and an HTTP API tell a refusal from a bad request
//! from a fault of the store without reading messages.

use std::fmt;

/// Why an operation did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The acting principal may not do this: it lacks the grant `grant`, or (`missing`
    /// false) holds it but a rule of the flow forbids this principal the step (separation
    /// of duties). The refusal was recorded.
    Refused { grant: String, message: String, missing: bool },
    /// A run's inputs or params do not fit the flow.
    Input(String),
    /// The run named does not exist.
    UnknownRun(String),
    /// A decision or override does not fit the run: nothing waits, the step is not open, an
    /// outcome, reason, edit or basis the step does not take.
    Decision(String),
    /// The step was decided, the gate overridden or the run ended already: the request came
    /// too late (another principal or process was first).
    Settled(String),
    /// The run is executing in another process.
    Busy(String),
    /// A plan the runtime refuses: it lets labelled data go where it may not, it is of
    /// another flow, or (a candidate) it widens what the run's plan allows.
    Plan(String),
    /// The store was changed behind the runtime's back: a chain, record, signature,
    /// checkpoint or recorded result does not check out.
    Tampered(String),
    /// The store cannot be used: it cannot be opened, read or written, or lacks what a run
    /// refers to.
    Store(String),
    /// Another process changed the run first; nothing was stored.
    Conflict(String),
    /// The deployment's evidence keys do not fit: a run signed with a key this runtime does
    /// not have or does not trust.
    Keys(String),
}

/// The kinds of [`Error`], each with its code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    Refused,
    Input,
    UnknownRun,
    Decision,
    Busy,
    Plan,
    Tampered,
    Store,
    Conflict,
    Keys,
    Settled,
}

impl ErrorKind {
    /// Every kind, in the order of their codes.
    pub const ALL: [ErrorKind; 11] = [
        ErrorKind::Refused,
        ErrorKind::Input,
        ErrorKind::UnknownRun,
        ErrorKind::Decision,
        ErrorKind::Busy,
        ErrorKind::Plan,
        ErrorKind::Tampered,
        ErrorKind::Store,
        ErrorKind::Conflict,
        ErrorKind::Keys,
        ErrorKind::Settled,
    ];

    /// The kind's code in the diagnostics registry, e.g. `E3001`.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::Refused => "E3001",
            ErrorKind::Input => "E3002",
            ErrorKind::UnknownRun => "E3003",
            ErrorKind::Decision => "E3004",
            ErrorKind::Busy => "E3005",
            ErrorKind::Plan => "E3006",
            ErrorKind::Tampered => "E3007",
            ErrorKind::Store => "E3008",
            ErrorKind::Conflict => "E3009",
            ErrorKind::Keys => "E3010",
            ErrorKind::Settled => "E3011",
        }
    }

    /// The code's name in the registry, e.g. `refused`.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Refused => "refused",
            ErrorKind::Input => "input-mismatch",
            ErrorKind::UnknownRun => "unknown-run",
            ErrorKind::Decision => "decision-mismatch",
            ErrorKind::Busy => "run-busy",
            ErrorKind::Plan => "plan-refused",
            ErrorKind::Tampered => "store-changed",
            ErrorKind::Store => "store-unusable",
            ErrorKind::Conflict => "run-conflict",
            ErrorKind::Keys => "evidence-keys",
            ErrorKind::Settled => "already-settled",
        }
    }

    /// Whether the request is answered as it stands (exit 1 on the command line): refused,
    /// not fitting, about an unknown run, or (`Busy`) about a run another process is
    /// executing, to be asked again once it has stopped. Otherwise the store or the
    /// deployment is at fault, or another process was first (exit 2).
    pub fn is_request(self) -> bool {
        matches!(
            self,
            ErrorKind::Refused
                | ErrorKind::Input
                | ErrorKind::UnknownRun
                | ErrorKind::Decision
                | ErrorKind::Busy
                | ErrorKind::Plan
                | ErrorKind::Settled
        )
    }
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Refused { .. } => ErrorKind::Refused,
            Error::Input(_) => ErrorKind::Input,
            Error::UnknownRun(_) => ErrorKind::UnknownRun,
            Error::Decision(_) => ErrorKind::Decision,
            Error::Busy(_) => ErrorKind::Busy,
            Error::Plan(_) => ErrorKind::Plan,
            Error::Tampered(_) => ErrorKind::Tampered,
            Error::Store(_) => ErrorKind::Store,
            Error::Conflict(_) => ErrorKind::Conflict,
            Error::Keys(_) => ErrorKind::Keys,
            Error::Settled(_) => ErrorKind::Settled,
        }
    }

    /// The error's code, e.g. `E3001`.
    pub fn code(&self) -> &'static str {
        self.kind().code()
    }

    /// What happened, without the code.
    pub fn message(&self) -> &str {
        match self {
            Error::Refused { message, .. } => message,
            Error::Input(message)
            | Error::UnknownRun(message)
            | Error::Decision(message)
            | Error::Busy(message)
            | Error::Plan(message)
            | Error::Tampered(message)
            | Error::Store(message)
            | Error::Conflict(message)
            | Error::Keys(message)
            | Error::Settled(message) => message,
        }
    }

    /// The same error, with its message rewritten by `f`.
    pub fn map_message(self, f: impl FnOnce(&str) -> String) -> Error {
        match self {
            Error::Refused { grant, message, missing } => Error::Refused { message: f(&message), grant, missing },
            Error::Input(m) => Error::Input(f(&m)),
            Error::UnknownRun(m) => Error::UnknownRun(f(&m)),
            Error::Decision(m) => Error::Decision(f(&m)),
            Error::Busy(m) => Error::Busy(f(&m)),
            Error::Plan(m) => Error::Plan(f(&m)),
            Error::Tampered(m) => Error::Tampered(f(&m)),
            Error::Store(m) => Error::Store(f(&m)),
            Error::Conflict(m) => Error::Conflict(f(&m)),
            Error::Keys(m) => Error::Keys(f(&m)),
            Error::Settled(m) => Error::Settled(f(&m)),
        }
    }

    /// The grant an operation was refused for, when it was.
    pub fn grant(&self) -> Option<&str> {
        match self {
            Error::Refused { grant, .. } => Some(grant),
            _ => None,
        }
    }

    /// The error as JSON, as the command line writes it: `code`, `name`, `message`, and
    /// for a refusal the `grant` and whether it is `missing`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut json = serde_json::json!({
            "code": self.code(),
            "name": self.kind().name(),
            "message": self.to_string(),
        });
        if let Error::Refused { grant, missing, .. } = self {
            json["grant"] = serde_json::json!(grant);
            json["missing"] = serde_json::json!(missing);
        }
        json
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Refused { grant, message, missing: true } => {
                write!(f, "refused: {message} (missing grant: `{grant}`)")
            }
            Error::Refused { message, missing: false, .. } => write!(f, "refused: {message}"),
            other => f.write_str(other.message()),
        }
    }
}

impl std::error::Error for Error {}

impl From<crate::store::StoreError> for Error {
    fn from(error: crate::store::StoreError) -> Error {
        match error {
            crate::store::StoreError::Conflict(_) => Error::Conflict(error.to_string()),
            crate::store::StoreError::Changed(message) => Error::Tampered(message),
            crate::store::StoreError::Unusable(message) => Error::Store(message),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
