//! The Flow runtime: executes verified plans.
//!
//! **API boundary.** An application makes a [`Runtime`] over a [`store::Store`] (the
//! embedded [`store::SqliteStore`] by default), registers model providers
//! ([`provider::ModelProvider`]) and action handlers ([`provider::ActionHandler`]), installs
//! a [`flow_ir::VerifiedPlan`], and starts runs for a [`Principal`] it authenticated. A run
//! executes the plan's DAG in order; reviews, soft gates and approvals suspend it durably
//! until [`Runtime::decide`]; blocking gates end it `blocked` until
//! [`Runtime::override_gate`]. Every step leaves an event in a hash-chained log
//! ([`evidence`]), exported redacted for the viewer by [`Runtime::evidence`] and checked by
//! [`evidence::verify`].
//!
//! **Architecture invariant:** the runtime knows nothing of source text or the compiler; it
//! trusts only plans that [`flow_ir`] verified.

pub mod analysis;
pub mod checkpoint;
pub mod conformance;
pub mod decision;
pub mod deployment;
pub mod digest;
pub mod error;
pub mod event;
pub mod evidence;
pub mod exec;
pub mod identity;
pub mod interp;
#[cfg(feature = "jit")]
pub mod jit;
pub mod labels;
mod lease;
mod log;
pub mod migration;
pub mod monitor;
mod narrative;
pub mod notify;
pub mod provider;
pub mod read;
pub mod release;
pub mod replay;
pub mod retrieval;
mod runtime;
pub mod state;
pub mod stats;
pub mod store;
#[cfg(feature = "jit")]
mod straight;
#[cfg(test)]
mod tests;
pub mod timers;
pub mod value;
pub mod whatif;

pub use analysis::Engine;
pub use decision::DecisionInput;
pub use error::{Error, ErrorKind, Result};
pub use event::Status;
pub use event::codec::{decode_event, encode_event};
pub use identity::{Directory, Principal, now};
pub use lease::DEFAULT_LEASE;
pub use narrative::RunView;
pub use runtime::{
    Audit, BatchOptions, BatchState, Copied, Inbox, InboxItem, Progress, Proposal, ReleaseControl, ReleaseLog,
    ReplayChanges, ReplaySummary, RunDeployment, RunFilter, RunPage, RunReplay, Runtime, ShadowReport, StartOptions,
    Tick,
};
