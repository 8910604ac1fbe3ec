//! `flowc verify FILE`: check a plan file as the runtime will before it runs it, and show
//! it to a person.
//!
//! The CLI contract's `verify BUNDLE` checks evidence bundles, which arrive with the
//! runtime; this extension checks plan files.

use std::process::ExitCode;

use crate::DataFormat;
use crate::session::read_plan;

pub fn run(path: &str, format: DataFormat, dump: bool) -> anyhow::Result<ExitCode> {
    let verified = match read_plan(path)? {
        Ok(verified) => verified,
        Err(reasons) => {
            if format == DataFormat::Json {
                crate::print(&format!("{}\n", serde_json::json!({ "file": path, "verified": false })));
            }
            eprintln!("{reasons}");
            return Ok(ExitCode::from(1));
        }
    };
    let flow = &verified.body().flow;
    match format {
        DataFormat::Json => {
            let value = serde_json::json!({
                "file": path,
                "verified": true,
                "flow": flow.name.as_str(),
                "version": flow.version,
                "hash": verified.hash(),
                "nodes": verified.body().nodes.len(),
                "edges": verified.body().edges.len(),
            });
            crate::print(&format!("{value}\n"));
        }
        DataFormat::Human if dump => crate::print(&flow_ir::print::dump(&verified)),
        DataFormat::Human => crate::print(&format!(
            "verified plan of flow `{}` {}: {} nodes, {} edges\nhash {}\n",
            flow.name,
            flow.version,
            verified.body().nodes.len(),
            verified.body().edges.len(),
            verified.hash()
        )),
    }
    Ok(ExitCode::SUCCESS)
}
