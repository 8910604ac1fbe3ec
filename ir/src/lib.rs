//! The plan: the artifact the Flow runtime executes, auditors inspect and CI snapshot-tests.
//!
//! **API boundary.** A [`Plan`] is one compiled flow: nodes (input, param, let, gate,
//! infer, review, approval, action, emit), typed edges (data, governance, edited value), a
//! typed expression IR ([`expr`]) that an interpreter and a native compiler can both
//! execute, the type schemas, roles, grants and labels it uses, pinned models with the text
//! and hash of their prompts, sources, systems, functions, params with defaults and the
//! evidence policy. Descriptions from doc comments and a source map travel beside it.
//!
//! Plans are JSON with a format version and a content hash over a canonical encoding
//! ([`encode`]). [`verify`] (or [`load`], from bytes) is the only constructor of
//! [`VerifiedPlan`], the type the runtime accepts: it re-checks the hash and every
//! structural invariant, whoever produced the plan.
//!
//! **Architecture invariant:** this crate knows nothing about source text, the compiler,
//! salsa or pest; it does no IO.

pub mod canonical;
mod check;
pub mod derive;
pub mod diff;
pub mod encode;
mod error;
pub mod expr;
pub mod governance;
pub mod monitor;
pub mod plan;
pub mod print;
pub mod render;
pub mod separation;
#[cfg(test)]
mod tests;
pub mod time;
pub mod ty;
mod verify;
pub mod wire;

pub use error::{VerifyError, VerifyErrors};

/// Runs `f`, which recurses over expressions, with stack to spare: a fresh segment is
/// allocated when the current one runs low, so that even the deepest expression a plan may
/// hold ([`wire::MAX_DEPTH`] levels) cannot exhaust the caller's stack, whatever thread it
/// runs on.
pub(crate) fn with_stack<R>(f: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(64 * 1024, 1024 * 1024, f)
}
pub use plan::{FORMAT_VERSION, LANGUAGE_VERSION, Plan, PlanBody};
pub use verify::{NodeId, VerifiedPlan, is_pinned_digest, is_snapshot, load, seal_and_verify, verify};
