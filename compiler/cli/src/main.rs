//! `flowc`: the command line of the Flow compiler.
//!
//! Exit codes, everywhere: `0` success, `1` the input has errors (diagnostics, a refused
//! operation), `2` a usage or environment error (a missing file, an unknown code). A
//! panic is a bug, never an exit path.

mod check;
mod explain;
mod output;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Flow: auditable decision flows, compiled and proved before they run.
#[derive(Parser)]
#[command(name = "flowc", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// How a command prints its result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people; coloured on a terminal unless `NO_COLOR` is set.
    Human,
    /// One JSON object, for scripts.
    Json,
    /// SARIF 2.1.0, for code-scanning services (`check` only).
    Sarif,
}

#[derive(Subcommand)]
enum Command {
    /// Parse, type-check and verify every `.flow` file under the paths.
    Check {
        /// Files or directories; directories are searched for `.flow` files.
        #[arg(required = true)]
        paths: Vec<String>,
        /// Treat warnings as errors.
        #[arg(long)]
        strict: bool,
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
    /// Print the long explanation of a diagnostic code, with a wrong and a corrected example.
    Explain {
        /// A code such as `E1002`, or its name such as `type-mismatch`.
        code: String,
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
}

/// Whether to colour output written to standard output.
pub fn use_color() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

/// Writes to standard output, ignoring a closed pipe (`flowc check … | head`).
pub fn print(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() { 2 } else { 0 });
        }
    };
    let result = match cli.command {
        Command::Check { paths, strict, format } => check::run(&paths, strict, format),
        Command::Explain { code, format } => explain::run(&code, format),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("flowc: {error:#}");
            ExitCode::from(2)
        }
    }
}
