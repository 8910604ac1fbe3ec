//! Why an operation of the runtime did not happen.

/// Why an operation did not happen.
#[derive(Debug)]
pub enum Error {
    /// The acting principal lacks a grant; the refusal was recorded.
    Refused { grant: String, message: String },
    /// The request is wrong: unknown run or step, a decision that does not fit, an input
    /// that does not fit its type.
    Invalid(String),
    /// The store or the deployment cannot be used.
    Environment(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Refused { grant, message } => write!(f, "refused: {message} (missing grant: `{grant}`)"),
            Error::Invalid(message) | Error::Environment(message) => f.write_str(message),
        }
    }
}

impl From<crate::store::StoreError> for Error {
    fn from(error: crate::store::StoreError) -> Error {
        Error::Environment(error.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;
