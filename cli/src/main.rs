//! `flowc`: the command line of the Flow compiler.
//!
//! Exit codes, everywhere: `0` success, `1` the input has errors (diagnostics, a refused
//! operation, a plan that does not verify), `2` a usage or environment error (a missing
//! file, an unknown code); `flowc diff` exits `3` for a material change. A panic is a bug,
//! never an exit path.

mod audit;
mod build_plan;
mod cases;
mod check;
mod deploy;
mod diff;
mod explain;
mod fmt;
mod graph;
mod monitors;
mod output;
mod progress;
mod queue;
mod records;
mod releases;
mod replays;
mod run_tests;
mod runs;
mod serve;
mod session;
mod stats;
mod store_copy;
mod verify;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Replaying and checking stored runs allocates many small JSON values on every core;
/// mimalloc serves them with less contention than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The version `flowc --version` prints: the package's, and the commit it was built from.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("FLOWC_COMMIT"), ")");

/// Flow: auditable decision flows, compiled and proved before they run.
#[derive(Parser)]
#[command(name = "flowc", version = VERSION, about, long_about = None)]
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

/// What evaluates a plan's expressions and approval matrices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EngineArg {
    /// Native code compiled when the plan is loaded (the default where the host supports it).
    Jit,
    /// The interpreter, the reference semantics.
    Interp,
}

impl From<EngineArg> for flow_runtime::Engine {
    fn from(engine: EngineArg) -> flow_runtime::Engine {
        match engine {
            EngineArg::Jit => flow_runtime::Engine::Jit,
            EngineArg::Interp => flow_runtime::Engine::Interpreter,
        }
    }
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
    /// An SVG picture, laid out by flowc (no external program).
    Svg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Layer {
    /// Execution order: the stages of nodes that may run at the same time.
    Runtime,
    /// Gates, reviews and approvals, and the actions and outputs each guards.
    Governance,
}

#[derive(Subcommand)]
enum StoreAction {
    /// Copy the store whole into an empty one (SQLite to PostgreSQL or back), checked before
    /// and after: every chain, signature and the log, and the copy's checkpoint against the
    /// source's.
    Copy {
        /// The store to copy into: a SQLite file or a PostgreSQL URL, empty.
        #[arg(long, value_name = "PATH|URL")]
        to: String,
        #[command(flatten)]
        deployment: deploy::Deployment,
        #[arg(long, value_enum, default_value = "human")]
        format: DataFormat,
    },
}

/// An approval or a rejection of a release.
#[derive(clap::Args)]
struct Judgement {
    release: String,
    #[arg(long = "as", value_name = "ID")]
    who: Option<String>,
    /// Why.
    #[arg(long)]
    reason: String,
    #[command(flatten)]
    deployment: deploy::Deployment,
    #[arg(long, value_enum, default_value = "human")]
    format: DataFormat,
}

#[derive(Subcommand)]
enum ReleaseAction {
    /// Propose a plan for an environment: its difference from the version live there and
    /// the publishing rule it is held to are recorded with it. Without FILE, `--flow` names
    /// the flow whose plan live in the environment before is promoted, as the same hash.
    Propose {
        /// A `.flow` file (compiled now) or a plan file; none to promote.
        file: Option<String>,
        /// The flow (when the file holds several, or to promote).
        #[arg(long)]
        flow: Option<String>,
        /// The environment, one of the publishing rules'.
        #[arg(long = "env", value_name = "ENV")]
        environment: String,
        #[arg(long = "as", value_name = "ID")]
        who: Option<String>,
        /// Why: the change, for its approvers.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        deployment: deploy::Deployment,
        #[arg(long, value_enum, default_value = "human")]
        format: DataFormat,
    },
    /// Approve a release: by a holder of one of its approvers' roles, never its author.
    Approve(Judgement),
    /// Reject a release: by one of its approvers, or its author withdrawing it.
    Reject(Judgement),
    /// Publish an approved release: its plan is the one runs start on in its environment.
    Publish {
        release: String,
        #[arg(long = "as", value_name = "ID")]
        who: Option<String>,
        #[command(flatten)]
        deployment: deploy::Deployment,
        #[arg(long, value_enum, default_value = "human")]
        format: DataFormat,
    },
    /// A release: what it changes, who proposed and approved it, what it waits for.
    Show {
        release: String,
        #[command(flatten)]
        deployment: deploy::Deployment,
        #[arg(long, value_enum, default_value = "human")]
        format: DataFormat,
    },
    /// The releases and what is live in each environment; with `--export FILE`, the whole
    /// release log as a file `flowc verify` checks without the store.
    Log {
        #[arg(long = "env", value_name = "ENV")]
        environment: Option<String>,
        #[arg(long)]
        flow: Option<String>,
        #[arg(long, value_name = "FILE")]
        export: Option<String>,
        /// Who exports it (with `--export`).
        #[arg(long = "as", value_name = "ID")]
        who: Option<String>,
        #[command(flatten)]
        deployment: deploy::Deployment,
        #[arg(long, value_enum, default_value = "human")]
        format: DataFormat,
    },
}

#[derive(Subcommand)]
enum CorpusAction {
    /// Print the snapshot of a folder of `.md` and `.txt` documents.
    Snapshot {
        /// The folder.
        folder: String,
    },
}

#[derive(Subcommand)]
enum TokenAction {
    /// A new API token for a principal of the principals file: printed once, kept as its
    /// SHA-256 hash in the tokens file.
    Create {
        #[arg(long = "as", value_name = "ID")]
        who: String,
        /// What the token is for.
        #[arg(long)]
        note: Option<String>,
        #[command(flatten)]
        deployment: deploy::Deployment,
        #[arg(long, value_enum, default_value = "human")]
        format: DataFormat,
    },
    /// The tokens, by id, with whom they act for and whether they were revoked.
    List {
        #[command(flatten)]
        deployment: deploy::Deployment,
        #[arg(long, value_enum, default_value = "human")]
        format: DataFormat,
    },
    /// Revoke a token: a running server refuses it from its next request on.
    Revoke {
        id: String,
        #[command(flatten)]
        deployment: deploy::Deployment,
    },
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
        /// The old version: a plan file or a `.flow` file (with `--runs`, a stored run).
        old: String,
        /// The new version: a plan file or a `.flow` file (with `--runs`, a stored run).
        new: String,
        /// The flow to compare, when a `.flow` file declares several.
        #[arg(long)]
        flow: Option<String>,
        /// Compare two stored runs: their deployments (environment, release, runtime,
        /// providers and handlers, engine) and their plans.
        #[arg(long)]
        runs: bool,
        #[command(flatten)]
        deployment: deploy::Deployment,
        #[arg(long, value_enum, default_value = "human")]
        format: DataFormat,
    },
    /// Start a run of a flow (a plan file, or a `.flow` file compiled now) and execute it as
    /// far as it goes: to completion, to a decision it waits for, or to a blocking gate.
    Run {
        /// A plan file or a `.flow` file.
        file: String,
        /// The flow to run, when a `.flow` file declares several.
        #[arg(long)]
        flow: Option<String>,
        /// An input: `NAME=FILE.json`, one JSON value per input.
        #[arg(long = "input", value_name = "NAME=FILE")]
        inputs: Vec<String>,
        /// One run per line of `{"inputs": {...}}`; prints a summary.
        #[arg(long, value_name = "CASES.jsonl", conflicts_with = "inputs")]
        batch: Option<String>,
        /// Who starts the run (default: FLOW_PRINCIPAL).
        #[arg(long = "as", value_name = "ID")]
        who: Option<String>,
        /// The run's clock, what `now()` reads (default: the current time).
        #[arg(long, value_name = "TIMESTAMP")]
        at: Option<String>,
        /// What evaluates expressions and approval matrices (default: jit where the host
        /// supports it); the evidence records which.
        #[arg(long, value_enum)]
        engine: Option<EngineArg>,
        /// Also execute this candidate plan of the same flow (a plan file or a `.flow` file)
        /// on each run's inputs, without actions, and store it as the run's shadow for
        /// `flowc shadow-report`.
        #[arg(long, value_name = "CANDIDATE")]
        shadow: Option<String>,
        /// Put the batch's cases in the store's queue, work on them beside every other
        /// worker of the store (`flowc worker`), and summarise once all are done.
        #[arg(long, requires = "batch")]
        queue: bool,
        /// With `--queue`: queue the cases, print the batch's id and leave them to the
        /// workers.
        #[arg(long, requires = "queue")]
        detach: bool,
        #[command(flatten)]
        deployment: deploy::Deployment,
        #[arg(long, value_enum, default_value = "human")]
        format: DataFormat,
    },
    /// Take queued cases (`run --batch --queue`) and interrupted runs, with every core, until
    /// stopped; several workers, on any hosts, share a store's queue.
    Worker {
        /// Stop once nothing in the queue is free, instead of waiting for more.
        #[arg(long)]
        until_idle: bool,
        #[command(flatten)]
        deployment: deploy::Deployment,
        #[arg(long, value_enum, default_value = "human")]
        format: DataFormat,
    },
    /// Serve the runtime as an HTTP API (`docs/api.md`) until stopped; requests in flight
    /// are finished first.
    Serve {
        /// The address to listen on; default `[serve] listen` of flow.toml, else
        /// `127.0.0.1:8080` (`:0` picks a free port).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        #[command(flatten)]
        deployment: deploy::Deployment,
    },
    /// API tokens of the deployment, for `flowc serve`.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Corpora: print the snapshot of a folder of documents, as the `folder` retriever
    /// reports it, for a corpus to pin (`snapshot "…"`).
    Corpus {
        #[command(subcommand)]
        action: CorpusAction,
    },
    /// Releases: a plan proposed for an environment, approved by others, published.
    Release {
        #[command(subcommand)]
        action: ReleaseAction,
    },
    /// The run store as a whole.
    Store {
        #[command(subcommand)]
        action: StoreAction,
    },
    /// Where a queued batch stands: its cases done, their outcomes, the lines not run.
    Batch {
        id: String,
        #[command(flatten)]
        deployment: deploy::Deployment,
        #[arg(long, value_enum, default_value = "human")]
        format: DataFormat,
    },
    /// Fires the timers that are due: reminders, escalations and deadlines of the steps that
    /// wait (for cron; `flowc serve` fires them itself).
    Tick {
        #[command(flatten)]
        deployment: deploy::Deployment,
        #[arg(long, value_enum, default_value = "human")]
        format: DataFormat,
    },
    /// Evaluates the monitors of the store's flows, raising and resolving alerts (for cron;
    /// `flowc serve` evaluates them itself), or writes them as Prometheus alerting rules.
    Monitor {
        /// Instead, recount what every stored run's evidence says for the monitors and compare
        /// it with the store's counts (an audit: exit 1 when they differ).
        #[arg(long)]
        recount: bool,
        #[command(flatten)]
        deployment: deploy::Deployment,
        #[arg(long, value_enum, default_value = "human")]
        format: monitors::MonitorFormat,
    },
    /// The reviews, soft gates and approvals waiting, with who may decide them.
    Pending {
        /// Only the steps this principal may decide.
        #[arg(long = "as", value_name = "ID")]
        who: Option<String>,
        #[command(flatten)]
        deployment: deploy::Deployment,
        #[arg(long, value_enum, default_value = "human")]
        format: DataFormat,
    },
    /// Decide a waiting review, soft gate (approve/reject) or approval (approve/reject).
    Decide {
        run: String,
        step: String,
        #[arg(long = "as", value_name = "ID")]
        who: Option<String>,
        #[arg(long)]
        outcome: String,
        /// The reason code.
        #[arg(long)]
        reason: Option<String>,
        /// Why, in words.
        #[arg(long)]
        basis: Option<String>,
        /// A field the review may edit, and its new value: `risk.tier=high`.
        #[arg(long = "edit", value_name = "FIELD=VALUE")]
        edits: Vec<String>,
        #[command(flatten)]
        deployment: deploy::Deployment,
        #[arg(long, value_enum, default_value = "human")]
        format: DataFormat,
    },
    /// Override a blocking gate, where a grant allows it.
    Override {
        run: String,
        gate: String,
        #[arg(long = "as", value_name = "ID")]
        who: Option<String>,
        /// The reason code.
        #[arg(long)]
        reason: String,
        /// Why, in words.
        #[arg(long)]
        basis: String,
        #[command(flatten)]
        deployment: deploy::Deployment,
        #[arg(long, value_enum, default_value = "human")]
        format: DataFormat,
    },
    /// Cancel a run that has not ended, where a grant allows it: nothing of the flow runs
    /// after it; what ran stays recorded.
    Cancel {
        run: String,
        #[arg(long = "as", value_name = "ID")]
        who: Option<String>,
        /// The reason code.
        #[arg(long)]
        reason: String,
        /// Why, in words.
        #[arg(long)]
        basis: String,
        #[command(flatten)]
        deployment: deploy::Deployment,
        #[arg(long, value_enum, default_value = "human")]
        format: DataFormat,
    },
    /// Let a failed run try its failed step again (an action with the same idempotency key),
    /// where a grant allows it.
    Resume {
        run: String,
        #[arg(long = "as", value_name = "ID")]
        who: Option<String>,
        /// The reason code.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        deployment: deploy::Deployment,
        #[arg(long, value_enum, default_value = "human")]
        format: DataFormat,
    },
    /// How a run stands.
    Status {
        run: String,
        #[command(flatten)]
        deployment: deploy::Deployment,
        #[arg(long, value_enum, default_value = "human")]
        format: DataFormat,
    },
    /// The run told for a person on one page, showing what the viewer may see.
    Show {
        run: String,
        /// The viewer: labelled values are shown only with their `view` grants (default:
        /// every labelled value redacted).
        #[arg(long = "as", value_name = "ID")]
        who: Option<String>,
        #[command(flatten)]
        deployment: deploy::Deployment,
    },
    /// Execute a stored run again from its evidence: exactly (every step's value and the
    /// outcome must come out as recorded; exit 1 at the first difference), or with other
    /// params or another plan, to see what would have changed. `--all` replays every stored
    /// run the principal may replay.
    Replay {
        /// The run to replay.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        run: Option<String>,
        /// Every stored run (of `--flow`, since `--since`) the principal may replay: a
        /// summary of how many reproduce, how many would end otherwise, and the transitions.
        #[arg(long)]
        all: bool,
        /// With `--all`, only the runs of this flow; with `--plan FILE.flow`, the flow of
        /// the file to take.
        #[arg(long, value_name = "NAME")]
        flow: Option<String>,
        /// With `--all`, only the runs started at or after this date or instant
        /// (`2026-11-01`, `2026-11-01T00:00:00Z`).
        #[arg(long, value_name = "DATE", requires = "all")]
        since: Option<String>,
        /// Replay against another plan of the same flow: a plan file, or a `.flow` file
        /// compiled now.
        #[arg(long, value_name = "PLAN")]
        plan: Option<String>,
        /// Give a param another value, as JSON (a bare word is text):
        /// `--set 'auto_limit=5000 USD'`. Repeatable.
        #[arg(long = "set", value_name = "PARAM=VALUE")]
        set: Vec<String>,
        /// Ask the configured model provider where a model's request changed, instead of
        /// marking the step as needing re-inference.
        #[arg(long)]
        live: bool,
        /// With `--all`, also list every run that does not reproduce, with its changes.
        #[arg(long)]
        details: bool,
        /// Who replays (needs the flow's `replay` grant; default: FLOW_PRINCIPAL).
        #[arg(long = "as", value_name = "ID")]
        who: Option<String>,
        /// What evaluates expressions in the replay (default: jit where the host supports it).
        #[arg(long, value_enum)]
        engine: Option<EngineArg>,
        #[command(flatten)]
        deployment: deploy::Deployment,
        #[arg(long, value_enum, default_value = "human")]
        format: DataFormat,
    },
    /// Compare the shadow runs of candidate plans with their production runs: how many
    /// reach the same outcome, the transitions, and each run's differences on request.
    ShadowReport {
        /// Only the shadows of this flow.
        #[arg(long, value_name = "NAME")]
        flow: Option<String>,
        /// Only the shadows run at or after this date or instant.
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
        /// Only the shadows of candidates whose plan hash starts with this.
        #[arg(long, value_name = "HASH")]
        candidate: Option<String>,
        /// Also list every shadow that differs, with the steps that differ.
        #[arg(long)]
        details: bool,
        /// Who reads the report (needs the flow's `replay` grant; default: FLOW_PRINCIPAL).
        #[arg(long = "as", value_name = "ID")]
        who: Option<String>,
        #[command(flatten)]
        deployment: deploy::Deployment,
        #[arg(long, value_enum, default_value = "human")]
        format: DataFormat,
    },
    /// Format `.flow` files canonically, keeping every comment.
    Fmt {
        /// Files or directories (searched for `.flow` files, less what a `.flowfmtignore`
        /// lists); `-` formats standard input to standard output.
        #[arg(required = true)]
        paths: Vec<String>,
        /// Change nothing; fail when a file is not formatted.
        #[arg(long)]
        check: bool,
        #[arg(long, value_enum, default_value = "human")]
        format: DataFormat,
    },
    /// Run the `test` blocks of `.flow` files through the runtime (on a store in memory) and
    /// report failures, the path each failing run took, and the coverage of gates, approval
    /// rows and review branches.
    Test {
        /// Files or directories; directories are searched for `.flow` files.
        #[arg(required = true)]
        paths: Vec<String>,
        #[arg(long, value_enum, default_value = "human")]
        format: run_tests::TestFormat,
        /// Fail when less than this percentage of branches is covered.
        #[arg(long, value_name = "PERCENT")]
        min_coverage: Option<f64>,
        /// Compare each run's decision trace with its snapshot beside the flow (FILE.snap).
        #[arg(long)]
        snapshot: bool,
        /// With --snapshot: write the snapshots instead of comparing them.
        #[arg(long, requires = "snapshot")]
        update: bool,
    },
    /// Metrics over the run store, per flow: throughput, success rate, latency, fallback
    /// usage, review volume; approval, blocked-run and override rates, evidence
    /// completeness and replay success (every run's chain is checked and the run replayed).
    Stats {
        /// Only the runs of this flow.
        #[arg(long, value_name = "NAME")]
        flow: Option<String>,
        /// Only the runs started at or after this date or instant.
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
        #[command(flatten)]
        deployment: deploy::Deployment,
        #[arg(long, value_enum, default_value = "human")]
        format: stats::StatsFormat,
    },
    /// Export a run's evidence bundle, redacted for the viewer's grants.
    Evidence {
        run: String,
        /// Where to write it (default: standard output).
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<String>,
        #[arg(long = "as", value_name = "ID")]
        who: Option<String>,
        #[command(flatten)]
        deployment: deploy::Deployment,
    },
    /// List the store's refusals that belong to no run (a refused start, read or install).
    Refusals {
        #[command(flatten)]
        deployment: deploy::Deployment,
        #[arg(long, value_enum, default_value = "human")]
        format: DataFormat,
    },
    /// List the notices queued for webhook endpoints and how their delivery stands.
    Webhooks {
        /// Only those `pending`, `delivered` or `failed` (given up).
        #[arg(long)]
        state: Option<String>,
        #[command(flatten)]
        deployment: deploy::Deployment,
        #[arg(long, value_enum, default_value = "human")]
        format: DataFormat,
    },
    /// Check the whole run store: every run's evidence, and the store's log of heads against
    /// the runs, refusals and shadows it records (a run deleted or rolled back is found).
    Audit {
        /// A checkpoint kept from an earlier audit (`--format json`), or an evidence bundle:
        /// the store's log must still begin with what it covered.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<String>,
        #[command(flatten)]
        deployment: deploy::Deployment,
        #[arg(long, value_enum, default_value = "human")]
        format: DataFormat,
    },
    /// Check an evidence bundle (hash chain, plan hash, events against the plan, signature,
    /// the head's place in the store's log), or a plan file as the runtime does before it
    /// runs it.
    Verify {
        /// An evidence bundle, or a plan file as `flowc build` writes it.
        file: String,
        /// The head must be signed by this ed25519 public key (64 hexadecimal digits, or a
        /// file holding them); repeatable: any of them.
        #[arg(long = "key", value_name = "KEY")]
        keys: Vec<String>,
        /// The head must be signed (by the key the run names, unless `--key` is given).
        #[arg(long)]
        require_signature: bool,
        /// Print the plan for people: its declarations, grants, and nodes in execution order.
        #[arg(long)]
        dump: bool,
        #[arg(long, value_enum, default_value = "human")]
        format: DataFormat,
    },
    /// Serve the Language Server Protocol on standard input and output (for editors).
    Lsp,
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
fn release(action: ReleaseAction) -> anyhow::Result<ExitCode> {
    use releases::Step;
    match action {
        ReleaseAction::Propose { file, flow, environment, who, reason, deployment, format } => {
            let propose = releases::Propose {
                file: file.as_deref(),
                flow: flow.as_deref(),
                environment: &environment,
                who: who.as_deref(),
                reason: &reason,
            };
            releases::propose(&deployment, &propose, format)
        }
        ReleaseAction::Approve(j) => {
            releases::step(&j.deployment, Step::Approve, &j.release, j.who.as_deref(), Some(&j.reason), j.format)
        }
        ReleaseAction::Reject(j) => {
            releases::step(&j.deployment, Step::Reject, &j.release, j.who.as_deref(), Some(&j.reason), j.format)
        }
        ReleaseAction::Publish { release, who, deployment, format } => {
            releases::step(&deployment, Step::Publish, &release, who.as_deref(), None, format)
        }
        ReleaseAction::Show { release, deployment, format } => releases::show(&deployment, &release, format),
        ReleaseAction::Log { environment, flow, export, who, deployment, format } => {
            let options = releases::LogOptions {
                environment: environment.as_deref(),
                flow: flow.as_deref(),
                export: export.as_deref(),
                who: who.as_deref(),
            };
            releases::log(&deployment, &options, format)
        }
    }
}

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
        Command::Build { file, flow, output, principals, strict, format } => build_plan::run(&build_plan::Options {
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
                GraphFormat::Svg => flow_ir::render::GraphFormat::Svg,
            };
            let layer = match layer {
                None => flow_ir::render::Layer::All,
                Some(Layer::Runtime) => flow_ir::render::Layer::Runtime,
                Some(Layer::Governance) => flow_ir::render::Layer::Governance,
            };
            graph::run(&file, flow.as_deref(), format, layer)
        }
        Command::Diff { old, new, runs: true, deployment, format, .. } => diff::runs(&deployment, &old, &new, format),
        Command::Diff { old, new, flow, format, .. } => diff::run(&old, &new, flow.as_deref(), format.into()),
        Command::Verify { file, keys, require_signature, dump, format } => {
            verify::run(&file, &verify::Options { format, dump, keys: &keys, require_signature })
        }
        Command::Refusals { deployment, format } => records::refusals(&deployment, format),
        Command::Webhooks { state, deployment, format } => records::webhooks(&deployment, state.as_deref(), format),
        Command::Audit { checkpoint, deployment, format } => audit::run(&deployment, checkpoint.as_deref(), format),
        Command::Run { file, flow, inputs, batch, who, at, engine, shadow, queue, detach, deployment, format } => {
            runs::run(
                &deployment,
                &runs::RunOptions {
                    file: &file,
                    flow: flow.as_deref(),
                    inputs: &inputs,
                    batch: batch.as_deref(),
                    who: who.as_deref(),
                    at: at.as_deref(),
                    engine: engine.map(Into::into),
                    shadow: shadow.as_deref(),
                    queue: (queue, detach),
                    format,
                },
            )
        }
        Command::Worker { until_idle, deployment, format } => queue::worker(&deployment, until_idle, format),
        Command::Batch { id, deployment, format } => queue::batch(&deployment, &id, format),
        Command::Serve { listen, deployment } => serve::serve(&deployment, listen.as_deref()),
        Command::Token { action: TokenAction::Create { who, note, deployment, format } } => {
            serve::create(&deployment, &who, note, format)
        }
        Command::Token { action: TokenAction::List { deployment, format } } => serve::list(&deployment, format),
        Command::Release { action } => release(action),
        Command::Corpus { action: CorpusAction::Snapshot { folder } } => {
            match flow_runtime::retrieval::folder_snapshot(std::path::Path::new(&folder)) {
                Ok(snapshot) => {
                    print(&format!("{snapshot}\n"));
                    Ok(ExitCode::SUCCESS)
                }
                Err(error) => {
                    eprintln!("error: {error}");
                    Ok(ExitCode::from(2))
                }
            }
        }
        Command::Token { action: TokenAction::Revoke { id, deployment } } => serve::revoke(&deployment, &id),
        Command::Store { action: StoreAction::Copy { to, deployment, format } } => {
            store_copy::copy(&deployment, &to, format)
        }
        Command::Pending { who, deployment, format } => runs::pending(&deployment, who.as_deref(), format),
        Command::Tick { deployment, format } => runs::tick(&deployment, format),
        Command::Monitor { recount: true, deployment, format } => monitors::recount(&deployment, format),
        Command::Monitor { recount: false, deployment, format } => monitors::monitor(&deployment, format),
        Command::Decide { run, step, who, outcome, reason, basis, edits, deployment, format } => runs::decide(
            &deployment,
            &runs::Decide {
                run: &run,
                step: &step,
                who: who.as_deref(),
                outcome: &outcome,
                reason: reason.as_deref(),
                basis: basis.as_deref(),
                edits: &edits,
                format,
            },
        ),
        Command::Override { run, gate, who, reason, basis, deployment, format } => {
            runs::override_gate(&deployment, &run, &gate, who.as_deref(), &reason, &basis, format)
        }
        Command::Cancel { run, who, reason, basis, deployment, format } => {
            runs::cancel(&deployment, &run, who.as_deref(), &reason, &basis, format)
        }
        Command::Resume { run, who, reason, deployment, format } => {
            runs::resume(&deployment, &run, who.as_deref(), &reason, format)
        }
        Command::Status { run, deployment, format } => runs::status(&deployment, &run, format),
        Command::Show { run, who, deployment } => runs::show(&deployment, &run, who.as_deref()),
        Command::Replay { run, all, flow, since, plan, set, live, details, who, engine, deployment, format } => {
            let options = replays::Options {
                who: who.as_deref(),
                engine: engine.map(Into::into),
                flow: flow.as_deref(),
                plan: plan.as_deref(),
                set: &set,
                live,
                format,
            };
            match run {
                Some(run) if !all => replays::one(&deployment, &run, &options),
                _ => replays::all(&deployment, since.as_deref(), details, &options),
            }
        }
        Command::ShadowReport { flow, since, candidate, details, who, deployment, format } => replays::shadow_report(
            &deployment,
            &replays::ShadowOptions {
                who: who.as_deref(),
                flow: flow.as_deref(),
                since: since.as_deref(),
                candidate: candidate.as_deref(),
                details,
                format,
            },
        ),
        Command::Fmt { paths, check, format } => fmt::run(&paths, check, format),
        Command::Test { paths, format, min_coverage, snapshot, update } => {
            run_tests::run(&run_tests::Options { paths: &paths, format, min_coverage, snapshot, update })
        }
        Command::Stats { flow, since, deployment, format } => {
            stats::stats(&deployment, flow.as_deref(), since.as_deref(), format)
        }
        Command::Evidence { run, output, who, deployment } => {
            runs::evidence(&deployment, &run, who.as_deref(), output.as_deref())
        }
        Command::Explain { code, format } => explain::run(&code, format),
        Command::Lsp => Ok(ExitCode::from(u8::try_from(flow_lsp::run_stdio()).unwrap_or(1))),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("flowc: {error:#}");
            ExitCode::from(2)
        }
    }
}
