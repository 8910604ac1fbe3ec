//! The store-wide audit (`flowc audit`): every run's evidence as loading checks it, and the
//! store's log against everything it records — so that a run deleted or rolled back to an
//! earlier head, a refusal removed, a shadow changed, or a log rewritten is found.

use std::collections::BTreeMap;

use serde::Serialize;

use flow_ir::plan::NodeKind;

use super::Runtime;
use crate::checkpoint::{Checkpoint, Entry, Frontier, Kind};
use crate::error::Result;
use crate::event::Event;

/// What an audit found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Audit {
    /// Runs whose evidence was checked.
    pub runs: usize,
    /// Entries of the store's log.
    pub log: u64,
    pub refusals: usize,
    /// Entries of the release log.
    pub releases: usize,
    pub shadows: usize,
    /// The store's checkpoint, as an auditor keeps it to compare with later audits.
    pub checkpoint: Option<Checkpoint>,
    /// Every problem found, in words.
    pub problems: Vec<String>,
}

impl Audit {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

impl Runtime {
    /// Audits the whole store: every run loads as it would to be shown or changed (chain,
    /// record, signature), the log's checkpoint is the root of its entries (and its
    /// signature verifies, by a key this runtime believes), the last entry of every run is
    /// that run's head and every run in the log is still in the store, the refusals' chain
    /// and the shadows match their entries; with `earlier`, a checkpoint kept from an
    /// earlier audit (or a bundle's), the log still begins with what that checkpoint covered.
    pub fn audit(&self, earlier: Option<&Checkpoint>) -> Result<Audit> {
        let store = self.store();
        let mut audit = Audit::default();
        let records = store.runs(None)?;
        audit.runs = records.len();
        let results = store.action_results()?;
        let stored: BTreeMap<(&str, &str), (&str, u64)> =
            results.iter().map(|r| ((r.system.as_str(), r.key.as_str()), (r.run.as_str(), r.seq))).collect();
        for record in &records {
            match self.load_events(&record.id, false) {
                Ok((analysis, _, events)) => {
                    // Every result a run recorded is the one the store answers its key with:
                    // without it, the next call with the key would act again.
                    for (seq, event) in events.iter().enumerate() {
                        let Event::ActionCompleted { node, key, reused: false, .. } = event else { continue };
                        // The system the call went to, as its start records it (a run that
                        // migrated since may name another for the step).
                        let started = events[..seq].iter().rev().find_map(|e| match e {
                            Event::ActionStarted { node: n, system, .. } if n == node => Some(system.clone()),
                            _ => None,
                        });
                        let planned = match analysis.body().node(node).map(|n| &n.kind) {
                            Some(NodeKind::Action { system, .. }) => Some(system.clone()),
                            _ => None,
                        };
                        let Some(system) = started.or(planned) else { continue };
                        match stored.get(&(system.as_str(), key.as_str())) {
                            Some((run, at)) if *run == record.id && *at == seq as u64 => {}
                            Some((run, at)) => audit.problems.push(format!(
                                "run `{}` recorded the result of `{node}` (key `{key}` of system `{system}`) at event \
                                 {seq}, but the store answers that key with event {at} of run `{run}`: it was changed",
                                record.id
                            )),
                            None => audit.problems.push(format!(
                                "run `{}` recorded the result of `{node}` (key `{key}` of system `{system}`) at event \
                                 {seq}, but the store keeps no result for that key: it was deleted, and the next call \
                                 with the key would act again",
                                record.id
                            )),
                        }
                    }
                }
                Err(error) => audit.problems.push(error.to_string()),
            }
        }
        for result in &results {
            if let Err(error) = self.recorded_result(result) {
                audit.problems.push(error.to_string());
            }
        }
        let entries = store.log()?;
        audit.log = entries.len() as u64;
        let checkpoint = store.checkpoint()?;
        let leaves: Vec<[u8; 32]> = entries.iter().map(Entry::leaf).collect();
        let mut frontier = Frontier::default();
        for leaf in &leaves {
            frontier.push(*leaf);
        }
        match &checkpoint {
            None if !entries.is_empty() || !records.is_empty() => {
                audit.problems.push("the store has no checkpoint of its log".to_owned())
            }
            None => {}
            Some(checkpoint) => {
                if checkpoint.size != frontier.size || checkpoint.root_bytes() != Some(frontier.root()) {
                    audit.problems.push(format!(
                        "the store's checkpoint (size {}, root {}) is not the root of its log ({} entries): the log \
                         was changed",
                        checkpoint.size, checkpoint.root, frontier.size
                    ));
                }
                self.check_signed(checkpoint, "the store's checkpoint", &mut audit.problems);
            }
        }
        if let Some(earlier) = earlier {
            check_extends(earlier, &leaves, &mut audit.problems);
            self.check_signed(earlier, "the earlier checkpoint", &mut audit.problems);
        }
        audit.checkpoint = checkpoint;

        // The last entry of each subject, and runs' heads only ever moving forward.
        let mut last: BTreeMap<(Kind, &str), &Entry> = BTreeMap::new();
        for entry in &entries {
            if entry.kind == Kind::Run
                && let Some(before) = last.get(&(Kind::Run, entry.subject.as_str()))
                && before.seq >= entry.seq
            {
                audit.problems.push(format!(
                    "the store's log has run `{}` go back from {} events to {}",
                    entry.subject, before.seq, entry.seq
                ));
            }
            last.insert((entry.kind, entry.subject.as_str()), entry);
        }
        let mut logged_runs: Vec<&str> =
            last.keys().filter(|(kind, _)| *kind == Kind::Run).map(|(_, subject)| *subject).collect();
        for record in &records {
            match last.get(&(Kind::Run, record.id.as_str())) {
                None => audit.problems.push(format!("run `{}` is not in the store's log", record.id)),
                Some(entry) if entry.seq != record.seq || entry.hash != record.head => audit.problems.push(format!(
                    "run `{}` has {} events and head {}, but the store's log last recorded {} events and head {}: \
                     it was rolled back or changed",
                    record.id, record.seq, record.head, entry.seq, entry.hash
                )),
                Some(_) => {}
            }
            logged_runs.retain(|r| *r != record.id);
        }
        for missing in logged_runs {
            audit.problems.push(format!("run `{missing}` is in the store's log but not in the store: it was deleted"));
        }

        let refusals = store.refusals()?;
        audit.refusals = refusals.len();
        let mut prev = crate::digest::GENESIS.to_owned();
        for (i, refusal) in refusals.iter().enumerate() {
            let parts = [
                refusal.at.as_str(),
                refusal.principal.as_str(),
                refusal.operation.as_str(),
                refusal.grant.as_str(),
                refusal.message.as_str(),
            ];
            if refusal.seq != i as u64
                || refusal.prev != prev
                || refusal.hash != crate::checkpoint::refusal_hash(&prev, refusal.seq, parts)
            {
                audit.problems.push(format!("refusal {i} does not match the refusals' chain: it was changed"));
            }
            prev = refusal.hash.clone();
        }
        // Each refusal is the one its log entry recorded: a chain rewritten behind the log
        // (its number kept) is found at the first refusal changed.
        for entry in entries.iter().filter(|e| e.kind == Kind::Refusal) {
            if refusals.get(entry.seq as usize).is_some_and(|r| r.hash != entry.hash) {
                audit
                    .problems
                    .push(format!("refusal {} is not the one the store's log recorded: it was changed", entry.seq));
            }
        }
        let logged_refusals = entries.iter().filter(|e| e.kind == Kind::Refusal).count();
        match last.get(&(Kind::Refusal, "refusals")) {
            Some(entry) if logged_refusals == refusals.len() && entry.hash == prev => {}
            None if refusals.is_empty() => {}
            _ => audit.problems.push(format!(
                "the store holds {} refusals, but its log recorded {logged_refusals}: refusals were removed or changed",
                refusals.len()
            )),
        }

        // The release log: a chain, signed as the deployment signs, every step allowed by
        // the rules its proposal recorded, each entry the one the store's log recorded.
        let (releases, _) = store.releases(0)?;
        audit.releases = releases.len();
        if let Err(problem) = crate::release::check(&releases, self.signing.is_some(), &|key| self.believes(key)) {
            audit.problems.push(format!("the release log does not check: {problem}"));
        }
        for entry in entries.iter().filter(|e| e.kind == Kind::Release) {
            if releases.get(entry.seq as usize).is_some_and(|r| r.hash != entry.hash) {
                audit.problems.push(format!(
                    "release log entry {} is not the one the store's log recorded: it was changed",
                    entry.seq
                ));
            }
        }
        let logged_releases = entries.iter().filter(|e| e.kind == Kind::Release).count();
        match last.get(&(Kind::Release, "releases")) {
            Some(entry)
                if logged_releases == releases.len() && releases.last().is_some_and(|r| r.hash == entry.hash) => {}
            None if releases.is_empty() => {}
            _ => audit.problems.push(format!(
                "the store holds {} release log entries, but its log recorded {logged_releases}: entries were removed \
                 or changed",
                releases.len()
            )),
        }

        let shadows = store.shadows(None)?;
        audit.shadows = shadows.len();
        let mut logged_shadows: Vec<&str> =
            last.keys().filter(|(kind, _)| *kind == Kind::Shadow).map(|(_, subject)| *subject).collect();
        for shadow in &shadows {
            let subject = format!("{}/{}", shadow.run, shadow.candidate);
            let digest = shadow.digest();
            match last.get(&(Kind::Shadow, subject.as_str())) {
                Some(entry) if entry.hash == digest => {}
                _ => audit.problems.push(format!(
                    "the shadow of run `{}` by candidate {} is not the one the store's log recorded: it was changed",
                    shadow.run, shadow.candidate
                )),
            }
            if let Err(error) = self.check_shadow(shadow) {
                audit.problems.push(error.to_string());
            }
            logged_shadows.retain(|s| *s != subject);
        }
        for missing in logged_shadows {
            audit
                .problems
                .push(format!("the shadow {missing} is in the store's log but not in the store: it was deleted"));
        }
        Ok(audit)
    }

    /// Notes in `problems` a checkpoint that should be signed and is not, or whose
    /// signature does not verify or is by a key this runtime does not believe.
    pub(super) fn check_signed(&self, checkpoint: &Checkpoint, what: &str, problems: &mut Vec<String>) {
        match &checkpoint.public_key {
            None if self.signs() => problems.push(format!("{what} is not signed, but this deployment signs evidence")),
            None => {}
            Some(key) if !self.believes(key) => {
                problems.push(format!("{what} is signed by the key {key}, which this deployment does not trust"))
            }
            Some(_) if !checkpoint.signature_verifies() => {
                problems.push(format!("the signature of {what} does not verify"))
            }
            Some(_) => {}
        }
    }
}

/// Notes in `problems` where the log does not begin with what `earlier` covered.
fn check_extends(earlier: &Checkpoint, leaves: &[[u8; 32]], problems: &mut Vec<String>) {
    let size = earlier.size as usize;
    if size > leaves.len() {
        problems.push(format!(
            "the earlier checkpoint covers {size} entries, but the store's log has only {}: entries were removed",
            leaves.len()
        ));
    } else if earlier.root_bytes() != Some(crate::checkpoint::root(&leaves[..size])) {
        problems.push(format!(
            "the store's log does not begin with the {size} entries the earlier checkpoint covered: the log was \
             rewritten"
        ));
    }
}
