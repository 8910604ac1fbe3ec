//! Flow's test runner: the `test` blocks of `.flow` files run through the runtime, on a
//! store in memory, with the failures of each run, the path it took, the coverage of gates,
//! approval rows and review branches, and snapshots of each run's decision trace.
//!
//! **API boundary.** [`run`] takes a loaded workspace (a `flow_sema::Database` whose root
//! files check clean) and gives a [`Run`]; [`report`] writes it for people, as JSON or as
//! JUnit; [`snapshots`] compares each run's trace with the snapshot file beside its flow, or
//! writes it. `flowc test` is this crate behind a command line; a server can run tests the
//! same way.

pub mod report;
pub mod run;
pub mod snapshots;

pub use run::{Coverage, Outcome, Run, run};
