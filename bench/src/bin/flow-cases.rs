//! Writes generated credit applications for the rules plan, one `{"inputs": {"app": …}}` per
//! line, as `flowc run --batch` reads them: `flow-cases 1000000 > cases.jsonl` makes the
//! backtest of `docs/benchmarks.md`.

use std::io::{BufWriter, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let arg = std::env::args().nth(1);
    let Some(n) = arg.as_deref().and_then(|a| a.parse::<u64>().ok()) else {
        eprintln!("usage: flow-cases COUNT (a whole number), e.g. `flow-cases 1000000 > cases.jsonl`");
        return ExitCode::from(2);
    };
    let mut out = BufWriter::new(std::io::stdout().lock());
    for i in 0..n {
        let line = serde_json::json!({ "inputs": { "app": flow_bench::Case::generate(i).flow_json() } });
        if writeln!(out, "{line}").is_err() {
            return ExitCode::from(1);
        }
    }
    if out.flush().is_err() { ExitCode::from(1) } else { ExitCode::SUCCESS }
}
