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
    // Whether the runs waiting on the old version may continue on the new, when it says so.
    let migrates = new_plan.body().flow.migrate_waiting;
    let problems = match migrates {
        true => flow_runtime::migration::problems(
            &flow_runtime::analysis::Analysis::new(old_plan.clone()),
            &flow_runtime::analysis::Analysis::new(new_plan.clone()),
        ),
        false => Vec::new(),
    };
    match format {
        Format::Json | Format::Sarif => {
            let mut json = d.to_json();
            if migrates {
                json["migration"] = serde_json::json!({"allowed": problems.is_empty(), "problems": problems});
            }
            crate::print(&format!("{json}\n"))
        }
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
            // Said once: by the change list when both versions say it.
            let said = old_plan.body().flow.migrate_waiting && d.changes.iter().any(|c| c.material);
            match (migrates, problems.as_slice()) {
                (false, _) => {}
                (true, []) if said => {}
                (true, []) => out.push_str("waiting runs: those on the old version migrate to the new one\n"),
                (true, problems) => {
                    out.push_str(
                        "error: the new version says `migrate waiting`, but runs waiting on the old one cannot \
                                  migrate to it:\n",
                    );
                    for problem in problems {
                        out.push_str(&format!("  - {problem}\n"));
                    }
                }
            }
            crate::print(&out);
        }
    }
    if !problems.is_empty() {
        return Ok(ExitCode::from(1));
    }
    Ok(if material { ExitCode::from(MATERIAL) } else { ExitCode::SUCCESS })
}
