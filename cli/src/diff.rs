//! `flowc diff OLD NEW`: what changed between two versions of a flow, in the steward's
//! words, and whether it needs approving again.
//!
//! Exit codes: `0` no material change (identical, or descriptions and version only), `3` a
//! material change, `1` an input has errors, `2` a usage or environment error.

use std::process::ExitCode;

use flow_ir::diff;

use crate::Format;
use crate::graph::obtain;

/// The exit code of a material change.
pub const MATERIAL: u8 = 3;

pub fn run(old: &str, new: &str, flow: Option<&str>, format: Format) -> anyhow::Result<ExitCode> {
    let old_plan = match obtain(old, flow, format)? {
        Ok(plan) => plan,
        Err(code) => return Ok(code),
    };
    let new_plan = match obtain(new, flow, format)? {
        Ok(plan) => plan,
        Err(code) => return Ok(code),
    };
    let d = diff::diff(old_plan.plan(), new_plan.plan());
    let material = d.is_material();
    match format {
        Format::Json | Format::Sarif => crate::print(&format!("{}\n", d.to_json())),
        Format::Human => {
            let flow = &new_plan.body().flow;
            let mut out = format!("flow `{}`: {} → {}\n", flow.name, d.old_hash, d.new_hash);
            for change in &d.changes {
                let note = if change.material { "" } else { " (not material)" };
                out.push_str(&format!("  {}: {}{note}\n", change.subject, change.detail));
            }
            out.push_str(match (d.changes.is_empty(), material) {
                (true, _) => "no change\n",
                (false, true) => "material change: the flow must be approved again\n",
                (false, false) => "no material change\n",
            });
            crate::print(&out);
        }
    }
    Ok(if material { ExitCode::from(MATERIAL) } else { ExitCode::SUCCESS })
}
