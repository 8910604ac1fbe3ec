//! `flowc` end to end, one test binary for the whole command line (linking is most of a
//! test build): every command run as a process on real files, stores and editors.
//!
//! - `cli`: `check`, `build`, `graph`, `diff`, `verify` of plans, `explain`, exit codes;
//! - `fmt`: `flowc fmt`;
//! - `flow_tests`: `flowc test`;
//! - `runs`: the run commands with the flow and local programs of `tests/runs/`, and
//!   processes killed at random points;
//! - `retrieval`: corpora searched in a folder, by a program and over HTTP;
//! - `lsp`: `flowc lsp` against `flowc check`;
//! - `editor`: a real Neovim set up as `docs/editors.md` says.

mod cli;
mod editor;
mod flow_tests;
mod fmt;
mod lsp;
/// The tests' PostgreSQL server (shared with the workspace's other tests).
#[path = "../../../tests/src/postgres.rs"]
#[expect(dead_code, reason = "the TLS cluster is the store tests', not these")]
mod postgres;
mod releases;
mod retrieval;
mod runs;
mod serve;
