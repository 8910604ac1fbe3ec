//! `flowc store copy --to STORE`: the deployment's store copied whole into an empty one —
//! SQLite to PostgreSQL, PostgreSQL to SQLite — checked before (every chain, signature and
//! the log) and after (the copy audits clean against the source's checkpoint, which it must
//! equal).

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::bail;
use serde_json::json;

use crate::DataFormat;
use crate::deploy::{self, Deployment};
use crate::runs::fail;

pub(crate) fn copy(deployment: &Deployment, to: &str, format: DataFormat) -> anyhow::Result<ExitCode> {
    let source = deployment.store();
    if source == to {
        bail!("`--to {}` is the store itself: copy into another", deploy::shown_store(to));
    }
    if to == ":memory:" || source == ":memory:" {
        bail!("a store in memory vanishes with the command: copy between files and databases");
    }
    // Not `runs::open`: a copy resumes nothing; it refuses while a run executes.
    let mut from = deploy::runtime(deployment)?;
    let progress = Arc::new(crate::progress::Progress::new("runs"));
    let listener = progress.clone();
    from.set_progress(Arc::new(move |done, total| listener.update(done, total)));
    let target = Deployment { store: Some(to.to_owned()), ..deployment.clone() };
    let into = deploy::runtime(&target)?;
    let copied = from.copy_to(into.store());
    progress.finish();
    let copied = match copied {
        Ok(copied) => copied,
        Err(error) => return fail(error, format == DataFormat::Json),
    };
    let audit = match into.audit(copied.checkpoint.as_ref()) {
        Ok(audit) => audit,
        Err(error) => return fail(error, format == DataFormat::Json),
    };
    let checkpoint = match into.store().checkpoint() {
        Ok(checkpoint) => checkpoint,
        Err(error) => return fail(error.into(), format == DataFormat::Json),
    };
    if !audit.problems.is_empty() || checkpoint != copied.checkpoint {
        eprintln!("flowc: the copy does not check out against the store it was copied from:");
        for problem in &audit.problems {
            eprintln!("  {problem}");
        }
        if checkpoint != copied.checkpoint {
            eprintln!("  its checkpoint is not the source's");
        }
        return Ok(ExitCode::from(2));
    }
    let shown = deploy::shown_store;
    match format {
        DataFormat::Json => crate::print(&format!(
            "{}\n",
            json!({
                "from": shown(&source), "to": shown(to), "plans": copied.plans, "runs": copied.runs,
                "events": copied.events, "refusals": copied.refusals, "releases": copied.releases,
                "shadows": copied.shadows, "log": copied.log,
                "checkpoint": copied.checkpoint,
            })
        )),
        DataFormat::Human => crate::print(&format!(
            "copied {} runs ({} events), {} plans, {} refusals, {} release log entries, {} shadows and the log ({} \
             entries) from {} to {}; \
             the copy audits clean against the source's checkpoint{}\n",
            copied.runs,
            copied.events,
            copied.plans,
            copied.refusals,
            copied.releases,
            copied.shadows,
            copied.log,
            shown(&source),
            shown(to),
            copied.checkpoint.as_ref().map_or(String::new(), |c| format!(" (size {}, root {})", c.size, c.root)),
        )),
    }
    Ok(ExitCode::SUCCESS)
}
