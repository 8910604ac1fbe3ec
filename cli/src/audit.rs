//! `flowc audit` (an extension): the whole run store checked as an auditor would — every
//! run's evidence, and the store's log of heads against the runs, refusals and shadows it
//! records — optionally against a checkpoint kept from an earlier audit or a bundle.

use std::process::ExitCode;

use anyhow::Context;
use flow_runtime::checkpoint::Checkpoint;
use serde_json::{Value as Json, json};

use crate::DataFormat;
use crate::deploy::Deployment;

/// A checkpoint from a file: a checkpoint as `flowc audit --format json` prints it under
/// `checkpoint`, that whole output, or an evidence bundle (its log's checkpoint).
fn read_checkpoint(path: &str) -> anyhow::Result<Checkpoint> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read `{path}`"))?;
    let json: Json = serde_json::from_str(&text).with_context(|| format!("`{path}` is not JSON"))?;
    let checkpoint = [&json["checkpoint"], &json["log"]["checkpoint"], &json]
        .into_iter()
        .find_map(|candidate| serde_json::from_value::<Checkpoint>(candidate.clone()).ok());
    checkpoint.with_context(|| format!("`{path}` holds no checkpoint (`size`, `root`, `at`)"))
}

pub fn run(deployment: &Deployment, earlier: Option<&str>, format: DataFormat) -> anyhow::Result<ExitCode> {
    let earlier = earlier.map(read_checkpoint).transpose()?;
    // Read only: an audit resumes no interrupted run.
    let runtime = crate::deploy::runtime(deployment)?;
    let audit = match runtime.audit(earlier.as_ref()) {
        Ok(audit) => audit,
        Err(error) => return crate::runs::fail(error, format == DataFormat::Json),
    };
    match format {
        DataFormat::Json => crate::print(&format!("{}\n", json!(audit))),
        DataFormat::Human => {
            let mut text = format!(
                "audited {} runs, {} refusals, {} release log entries, {} shadows and {} log entries: {}\n",
                audit.runs,
                audit.refusals,
                audit.releases,
                audit.shadows,
                audit.log,
                if audit.is_clean() { "no problems".to_owned() } else { format!("{} problems", audit.problems.len()) }
            );
            if let Some(checkpoint) = &audit.checkpoint {
                text.push_str(&format!(
                    "checkpoint: size {}, root {}, at {}{}\n",
                    checkpoint.size,
                    checkpoint.root,
                    checkpoint.at,
                    checkpoint.public_key.as_ref().map(|k| format!(", signed by ed25519 key {k}")).unwrap_or_default()
                ));
            }
            if let Some(earlier) = &earlier
                && audit.is_clean()
            {
                text.push_str(&format!("the log extends the earlier checkpoint of size {}\n", earlier.size));
            }
            crate::print(&text);
            for problem in &audit.problems {
                eprintln!("{problem}");
            }
        }
    }
    Ok(if audit.is_clean() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
