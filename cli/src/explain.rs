//! `flowc explain CODE`.

use std::process::ExitCode;

use anyhow::bail;
use flow_diagnostics::Code;

use crate::Format;

pub fn run(code: &str, format: Format) -> anyhow::Result<ExitCode> {
    let Some(found) = Code::lookup(code) else {
        bail!("there is no diagnostic code `{code}`; codes look like `E1002` or `type-mismatch`");
    };
    match format {
        Format::Json => {
            let value = serde_json::json!({
                "code": found.as_str(),
                "name": found.name(),
                "severity": found.severity().as_str(),
                "summary": found.summary(),
                "explanation": found.explanation(),
            });
            crate::print(&format!("{value}\n"));
        }
        Format::Human => crate::print(&format!("{} ({})\n\n{}", found.as_str(), found.name(), found.explanation())),
        Format::Sarif => bail!("`explain` prints `human` or `json`, not `sarif`"),
    }
    Ok(ExitCode::SUCCESS)
}
