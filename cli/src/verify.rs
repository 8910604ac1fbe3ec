//! `flowc verify FILE`: check an evidence bundle (the CLI contract's `verify BUNDLE`), or,
//! as an extension, a plan file as the runtime will before it runs it (the graph's proofs
//! and the proof of information flow), and show it to a person.

use std::process::ExitCode;

use anyhow::Context;

use crate::DataFormat;
use crate::session::read_plan;

pub struct Options<'a> {
    pub format: DataFormat,
    pub dump: bool,
    /// Public keys (hex, or files holding them), one of which must have signed a bundle.
    pub keys: &'a [String],
    pub require_signature: bool,
}

/// A public key given on the command line: 64 hexadecimal digits, or a file holding them.
fn public_key(given: &str) -> anyhow::Result<String> {
    let is_key = |text: &str| text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit());
    if is_key(given) {
        return Ok(given.to_ascii_lowercase());
    }
    let text = std::fs::read_to_string(given)
        .with_context(|| format!("`{given}` is neither a public key (64 hexadecimal digits) nor a readable file"))?;
    let text = text.trim();
    anyhow::ensure!(is_key(text), "`{given}` does not hold a public key (64 hexadecimal digits)");
    Ok(text.to_ascii_lowercase())
}

pub fn run(path: &str, options: &Options<'_>) -> anyhow::Result<ExitCode> {
    let Options { format, dump, .. } = *options;
    let bytes = std::fs::read(path).with_context(|| format!("cannot read `{path}`"))?;
    let format_of = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|json| json.get("format").and_then(|f| f.as_str()).map(str::to_owned));
    if format_of.as_deref() == Some(flow_runtime::release::LOG_FORMAT) {
        let keys: Vec<String> = options.keys.iter().map(|k| public_key(k)).collect::<anyhow::Result<_>>()?;
        return Ok(crate::releases::verify_log(path, &bytes, &keys, options.require_signature, format));
    }
    if format_of.as_deref() == Some(flow_runtime::evidence::BUNDLE_FORMAT) {
        let required = flow_runtime::evidence::Requirements {
            keys: options.keys.iter().map(|k| public_key(k)).collect::<anyhow::Result<_>>()?,
            signature: options.require_signature,
        };
        return Ok(crate::runs::verify_bundle(path, &bytes, &required, format));
    }
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
    // A plan verifies only if the runtime would load it: its labels are proved again.
    let leaks = flow_runtime::analysis::Analysis::new(verified.clone()).leaks();
    if !leaks.is_empty() {
        if format == DataFormat::Json {
            let value = serde_json::json!({ "file": path, "verified": false, "problems": leaks });
            crate::print(&format!("{value}\n"));
        }
        eprintln!(
            "the plan {} lets labelled data go where it may not, so the runtime will not load it:\n{}",
            verified.hash(),
            leaks.join("\n")
        );
        return Ok(ExitCode::from(1));
    }
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
