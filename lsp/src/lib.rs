//! The Flow language server.
//!
//! **API boundary.** [`run`] serves the Language Server Protocol on a reader and a writer
//! (stdio for `flow-lsp` and `flowc lsp`). The server owns a compiler database
//! (`flow_sema::Database`) and answers from the queries `flowc check` runs
//! (`flow_lower::file_diagnostics`), so an editor shows exactly what the command line
//! reports.

mod actions;
mod complete;
mod convert;
mod navigate;
mod server;
mod tokens;
pub mod transport;

pub use server::run;

/// Serves on standard input and output until the client exits; returns the exit code.
pub fn run_stdio() -> i32 {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut output = std::io::stdout().lock();
    run(&mut input, &mut output)
}
