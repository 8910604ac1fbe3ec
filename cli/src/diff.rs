//! `flowc diff OLD NEW`: what changed between two versions of a flow, in the steward's
//! words, and whether it needs approving again; with `--runs`, what differs between two
//! stored runs' deployments and plans.
//!
//! Exit codes: `0` no material change (identical, or descriptions and version only), `3` a
//! material change, `1` an input has errors, `2` a usage or environment error.

use std::process::ExitCode;

use flow_ir::diff;

use crate::Format;
use crate::graph::obtain;

/// The exit code of a material change.
pub const MATERIAL: u8 = 3;

/// `flowc diff --runs OLD NEW`: the deployments of two stored runs, then their plans.
pub fn runs(
    deployment: &crate::deploy::Deployment,
    old: &str,
    new: &str,
    format: crate::DataFormat,
) -> anyhow::Result<ExitCode> {
    let runtime = crate::deploy::runtime(deployment)?;
    let read = |run: &str| runtime.deployment(run);
    let (old, new) = match (read(old), read(new)) {
        (Ok(old), Ok(new)) => (old, new),
        (Err(error), _) | (_, Err(error)) => return crate::runs::fail(error, format == crate::DataFormat::Json),
    };
    let changes = flow_runtime::deployment::changes(
        (&old.environment, old.release.as_ref(), &old.engine),
        (&new.environment, new.release.as_ref(), &new.engine),
    );
    let plans = diff::diff(old.plan.plan.plan(), new.plan.plan.plan());
    match format {
        crate::DataFormat::Json => {
            let deployment: Vec<serde_json::Value> =
                changes.iter().map(|c| serde_json::json!({"subject": c.subject, "change": c.detail})).collect();
            crate::print(&format!(
                "{}\n",
                serde_json::json!({
                    "old": {"run": old.run, "deployment": old.digest},
                    "new": {"run": new.run, "deployment": new.digest},
                    "deployment": deployment,
                    "plan": plans.to_json(),
                })
            ));
        }
        crate::DataFormat::Human => {
            let digest = |d: &Option<String>| d.clone().unwrap_or_else(|| "not recorded".to_owned());
            let mut out = format!("runs {} → {}\n", old.run, new.run);
            if changes.is_empty() {
                out.push_str(&format!("deployment: the same ({})\n", digest(&new.digest)));
            } else {
                out.push_str(&format!("deployment: {} → {}\n", digest(&old.digest), digest(&new.digest)));
                for change in &changes {
                    out.push_str(&format!("  {}: {}\n", change.subject, change.detail));
                }
            }
            if plans.old_hash == plans.new_hash && plans.changes.is_empty() {
                out.push_str(&format!("plan: the same ({})\n", plans.new_hash));
            } else {
                out.push_str(&format!(
                    "plan of `{}`: {} → {}\n",
                    new.plan.body().flow.name,
                    plans.old_hash,
                    plans.new_hash
                ));
                for change in &plans.changes {
                    let note = if change.material { "" } else { " (not material)" };
                    out.push_str(&format!("  {}: {}{note}\n", change.subject, change.detail));
                }
            }
            crate::print(&out);
        }
    }
    Ok(if plans.is_material() { ExitCode::from(MATERIAL) } else { ExitCode::SUCCESS })
}

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
