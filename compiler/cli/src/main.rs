//! `flowc`: the command line of the Flow compiler.
//!
//! Exit codes, everywhere: `0` success, `1` the input has errors (diagnostics, a refused
//! operation, a plan that does not verify), `2` a usage or environment error (a missing
//! file, an unknown code); `flowc diff` exits `3` for a material change. A panic is a bug,
//! never an exit path.

mod build;
mod check;
mod diff;
mod explain;
mod graph;
mod output;
mod session;
mod verify;

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

/// How a command that prints data, not diagnostics, prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DataFormat {
    /// For people.
    Human,
    /// One JSON object, for scripts.
    Json,
}

impl From<DataFormat> for Format {
    fn from(format: DataFormat) -> Format {
        match format {
            DataFormat::Human => Format::Human,
            DataFormat::Json => Format::Json,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum GraphFormat {
    /// Graphviz DOT.
    Dot,
    /// A Mermaid flowchart.
    Mermaid,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Layer {
    /// Execution order: the stages of nodes that may run at the same time.
    Runtime,
    /// Gates, reviews and approvals, and the actions and outputs each guards.
    Governance,
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
        /// Also check that these principals can decide every step with separation of duties.
        #[arg(long, value_name = "FILE")]
        principals: Option<String>,
    },
    /// Compile one flow to a plan file (JSON) and print the plan's hash.
    Build {
        /// The `.flow` file.
        file: String,
        /// The flow to build, when the file declares several.
        #[arg(long)]
        flow: Option<String>,
        /// Where to write the plan (`-` for standard output); default `<flow>.plan.json`.
        #[arg(short = 'o', long = "output", value_name = "PLAN")]
        output: Option<String>,
        /// Also check that these principals can decide every step with separation of duties.
        #[arg(long, value_name = "FILE")]
        principals: Option<String>,
        /// Treat warnings as errors.
        #[arg(long)]
        strict: bool,
        #[arg(long, value_enum, default_value = "human")]
        format: DataFormat,
    },
    /// Print a flow's graph (from a `.flow` file or a plan file) in DOT or Mermaid.
    Graph {
        /// A `.flow` file or a plan file.
        file: String,
        /// The flow to draw, when the file declares several.
        #[arg(long)]
        flow: Option<String>,
        #[arg(long, value_enum, default_value = "dot")]
        format: GraphFormat,
        /// Draw one layer: execution order, or governance; without it, every node and edge.
        #[arg(long, value_enum)]
        layer: Option<Layer>,
    },
    /// Show what changed between two versions of a flow and whether it needs approving
    /// again; exits 3 for a material change.
    Diff {
        /// The old version: a plan file or a `.flow` file.
        old: String,
        /// The new version: a plan file or a `.flow` file.
        new: String,
        /// The flow to compare, when a `.flow` file declares several.
        #[arg(long)]
        flow: Option<String>,
        #[arg(long, value_enum, default_value = "human")]
        format: DataFormat,
    },
    /// Check a plan file as the runtime does before it runs it: format, hash, and every
    /// structural property.
    Verify {
        /// A plan file, as `flowc build` writes it.
        file: String,
        /// Print the plan for people: its declarations, grants, and nodes in execution order.
        #[arg(long)]
        dump: bool,
        #[arg(long, value_enum, default_value = "human")]
        format: DataFormat,
    },
    /// Print the long explanation of a diagnostic code, with a wrong and a corrected example.
    Explain {
        /// A code such as `E1002`, or its name such as `type-mismatch`.
        code: String,
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
}

fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// Whether to colour output written to standard output.
pub fn use_color() -> bool {
    !no_color() && std::io::stdout().is_terminal()
}

/// Whether to colour output written to standard error.
pub fn use_color_stderr() -> bool {
    !no_color() && std::io::stderr().is_terminal()
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
        Command::Check { paths, strict, format, principals } => {
            check::run(&paths, strict, format, principals.as_deref())
        }
        Command::Build { file, flow, output, principals, strict, format } => build::run(&build::Options {
            file: &file,
            flow: flow.as_deref(),
            output: output.as_deref(),
            principals: principals.as_deref(),
            strict,
            format: format.into(),
        }),
        Command::Graph { file, flow, format, layer } => {
            let format = match format {
                GraphFormat::Dot => flow_ir::render::GraphFormat::Dot,
                GraphFormat::Mermaid => flow_ir::render::GraphFormat::Mermaid,
            };
            let layer = match layer {
                None => flow_ir::render::Layer::All,
                Some(Layer::Runtime) => flow_ir::render::Layer::Runtime,
                Some(Layer::Governance) => flow_ir::render::Layer::Governance,
            };
            graph::run(&file, flow.as_deref(), format, layer)
        }
        Command::Diff { old, new, flow, format } => diff::run(&old, &new, flow.as_deref(), format.into()),
        Command::Verify { file, dump, format } => verify::run(&file, format, dump),
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
