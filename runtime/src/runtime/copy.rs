//! Copying a whole store into another (`flowc store copy`): SQLite to PostgreSQL and back,
//! with every chain, signature and the log checked before anything is copied, and the copy
//! holding the same runs, events, log and checkpoint, byte for byte, so that it audits clean
//! against the source's checkpoint.

use std::collections::BTreeMap;

use super::Runtime;
use crate::error::{Error, Result};
use crate::event::Status;
use crate::store::{ActionResult, Part, Store, Waiting};

/// What a copy copied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Copied {
    pub plans: usize,
    pub runs: usize,
    pub events: u64,
    pub refusals: usize,
    pub releases: usize,
    pub shadows: usize,
    pub log: u64,
    /// The source's checkpoint, which the copy's must equal.
    pub checkpoint: Option<crate::checkpoint::Checkpoint>,
}

/// Runs imported per transaction.
const RUNS_AT_ONCE: usize = 200;

impl Runtime {
    /// Copies this runtime's store into `to`, which must be empty: refused when the store
    /// does not audit clean (a chain, record, signature or the log that does not check out:
    /// nothing is copied), or while a run executes (stop every process first). `progress`
    /// hears how many runs of how many are copied. The caller audits the copy against the
    /// returned checkpoint.
    pub fn copy_to(&self, to: &dyn Store) -> Result<Copied> {
        if !to.is_empty()? {
            return Err(Error::Store(
                "the store to copy into is not empty: copy into a new database or file".to_owned(),
            ));
        }
        let from = self.store();
        if let Some(running) = from.runs(Some(Status::Running))?.first() {
            return Err(Error::Busy(format!(
                "run `{}` is executing: stop every process of the store (and let interrupted runs be resumed) before \
                 copying it",
                running.id
            )));
        }
        let audit = self.audit(None)?;
        if !audit.problems.is_empty() {
            return Err(Error::Tampered(format!(
                "the store does not audit clean, so nothing was copied:\n{}",
                audit.problems.join("\n")
            )));
        }
        let records = from.runs(None)?;
        let shadows = from.shadows(None)?;
        let mut copied = Copied::default();
        let (releases, _) = from.releases(0)?;
        // Every plan the store keeps: those its runs are on, those they started on or
        // migrated through, shadows' candidates, the plans its releases name.
        let mut plans: Vec<String> = from.plans()?;
        plans.extend(records.iter().map(|r| r.plan.clone()));
        plans.extend(shadows.iter().map(|s| s.candidate.clone()));
        plans.sort_unstable();
        plans.dedup();
        for hash in &plans {
            let bytes = from.plan(hash)?.ok_or_else(|| Error::Store(format!("the store has no plan {hash}")))?;
            to.import(&[Part::Plan { hash, bytes: &bytes }])?;
        }
        copied.plans = plans.len();
        let mut waiting: BTreeMap<String, Vec<Waiting>> = BTreeMap::new();
        for w in from.waiting()? {
            waiting.entry(w.run.clone()).or_default().push(w);
        }
        let mut results: BTreeMap<String, Vec<ActionResult>> = BTreeMap::new();
        for r in from.action_results()? {
            results.entry(r.run.clone()).or_default().push(r);
        }
        let total = records.len();
        for chunk in records.chunks(RUNS_AT_ONCE) {
            let events: Vec<Vec<crate::store::RawEvent>> =
                chunk.iter().map(|record| from.events(&record.id)).collect::<std::result::Result<_, _>>()?;
            let parts: Vec<Part<'_>> = chunk
                .iter()
                .zip(&events)
                .map(|(record, events)| Part::Run {
                    record,
                    events,
                    waiting: waiting.get(&record.id).map_or(&[], Vec::as_slice),
                    results: results.get(&record.id).map_or(&[], Vec::as_slice),
                })
                .collect();
            to.import(&parts)?;
            copied.runs += chunk.len();
            copied.events += events.iter().map(|e| e.len() as u64).sum::<u64>();
            if let Some(progress) = &self.progress {
                progress(copied.runs, total);
            }
        }
        let refusals = from.refusals()?;
        to.import(&refusals.iter().map(Part::Refusal).collect::<Vec<_>>())?;
        copied.refusals = refusals.len();
        to.import(&releases.iter().map(Part::Release).collect::<Vec<_>>())?;
        copied.releases = releases.len();
        to.import(&shadows.iter().map(Part::Shadow).collect::<Vec<_>>())?;
        copied.shadows = shadows.len();
        // The log last: with its checkpoint, the copy is whole.
        let entries = from.log()?;
        if let Some(checkpoint) = from.checkpoint()? {
            to.import(&[Part::Log { entries: &entries, checkpoint: &checkpoint }])?;
            copied.checkpoint = Some(checkpoint);
        }
        copied.log = entries.len() as u64;
        Ok(copied)
    }
}
