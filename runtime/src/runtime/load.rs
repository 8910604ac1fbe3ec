//! Stored runs, loaded: their chain, record, signature and recorded results checked before
//! anything believes them.

use super::Runtime;
use crate::analysis::Analysis;
use crate::error::{Error, Result};
use crate::event::codec::decode_event_text;
use crate::event::{Event, Started, Status};
use crate::evidence;
use crate::exec;
use crate::labels;
use crate::log::{Loaded, chain_checked};
use crate::store::{ActionResult, RawEvent, RunRecord, StoredEvent};
use crate::value::Value;
use smol_str::SmolStr;
use std::sync::Arc;

/// A stored run read and checked: its plan now, its record, its events, and when each was
/// recorded.
pub(super) struct Read {
    analysis: Arc<Analysis>,
    record: RunRecord,
    events: Vec<Event<Value>>,
    ats: Vec<String>,
}

pub(crate) use crate::event::MIGRATED;

/// The plan a run's events leave it on: that of its last migration, else the one it started
/// on.
pub(crate) fn plan_of(events: &[Event<Value>]) -> Option<&str> {
    events.iter().rev().find_map(|event| match event {
        Event::Migrated(migrated) => Some(&*migrated.to),
        Event::Started(started) => Some(&*started.plan),
        _ => None,
    })
}

/// The status a run's events leave it in: that of its last `settled` event, unless a step
/// came after it (the run stopped while executing).
pub(crate) fn status_of(events: &[Event<Value>]) -> Status {
    let mut status = Status::Running;
    for event in events {
        match event {
            Event::Settled { status: settled, .. } => status = *settled,
            Event::Refused { .. } | Event::Started(_) | Event::Migrated(_) => {}
            _ => status = Status::Running,
        }
    }
    status
}

impl Runtime {
    /// Loads a stored run: its plan and its state rebuilt from its events, after checking
    /// their hash chain, so that a store changed behind the runtime's back is refused rather
    /// than believed. To `change` it, a run that another live process executes is not
    /// loaded.
    pub(super) fn load(&self, run: &str, change: bool) -> Result<(Arc<Analysis>, Loaded)> {
        self.load_events(run, change).map(|(analysis, loaded, _)| (analysis, loaded))
    }

    /// As [`Runtime::load`], with the run's events as recorded.
    pub(crate) fn load_events(&self, run: &str, change: bool) -> Result<(Arc<Analysis>, Loaded, Vec<Event<Value>>)> {
        let record = self.store.run(run)?.ok_or_else(|| Error::UnknownRun(format!("no run `{run}` in the store")))?;
        self.load_record(record, change)
    }

    pub(super) fn load_record(
        &self,
        record: RunRecord,
        change: bool,
    ) -> Result<(Arc<Analysis>, Loaded, Vec<Event<Value>>)> {
        let read = self.read_record(record, change)?;
        let loaded = self.loaded_on(&read.analysis, &read);
        Ok((read.analysis, loaded, read.events))
    }

    /// Loads a stored run to continue it at its next step: a run waiting for a person
    /// migrates to the version of its flow live where it runs, when that version says
    /// `migrate waiting` and the run may ([`Runtime::migration`]); its `migrated` event is
    /// then recorded (stored with the step's), and it is loaded on the new plan.
    pub(super) fn load_to_continue(&self, run: &str) -> Result<(Arc<Analysis>, Loaded)> {
        let record = self.store.run(run)?.ok_or_else(|| Error::UnknownRun(format!("no run `{run}` in the store")))?;
        let read = self.read_record(record, true)?;
        let loaded = self.loaded_on(&read.analysis, &read);
        let Some((next, migrated)) = self.migration(&read, &loaded) else { return Ok((read.analysis, loaded)) };
        let mut moved = self.loaded_on(&next, &read);
        moved.record(&next, Event::Migrated(Box::new(migrated)));
        Ok((next, moved))
    }

    /// The version a run read as `read` (and `loaded`) migrates to now, with its `migrated`
    /// event, when all of this holds: the run waits for a person, and no deadline of its
    /// version is due (those fire first, on it); it last ran under a release of this
    /// runtime's environment, which is under release control; the release live there now
    /// replaced the run's version (so its approvers saw the difference from it), says
    /// `migrate waiting`, is believed under the environment's rules, and the run may
    /// migrate to it ([`crate::migration::problems`]). Anything that cannot be read leaves
    /// the run where it is.
    fn migration(&self, read: &Read, loaded: &Loaded) -> Option<(Arc<Analysis>, crate::event::Migrated)> {
        let analysis = &read.analysis;
        let now = self.now();
        if loaded.state.status != Status::Pending
            || crate::timers::next(analysis, &loaded.state).is_some_and(|due| due.at <= now)
        {
            return None;
        }
        let control = self.release_control.as_ref()?;
        let environment = control.environment.as_ref()?;
        if !control.governance.environment(environment).is_some_and(|e| e.controlled) {
            return None;
        }
        let ran_under = read.events.iter().rev().find_map(|event| match event {
            Event::Migrated(migrated) => Some(Some(&migrated.release)),
            Event::Started(started) => Some(started.release.as_ref()),
            _ => None,
        });
        if ran_under.flatten().is_none_or(|release| release.environment != *environment) {
            return None;
        }
        let flow = &analysis.body().flow.name;
        let live = self.with_releases(|registry| registry.live(environment, flow).cloned()).ok().flatten()?;
        if live.plan == **analysis.hash()
            || live.live.as_ref().is_none_or(|replaced| replaced.plan != **analysis.hash())
        {
            return None;
        }
        let next = self.plan(&live.plan).ok()?;
        if !next.body().flow.migrate_waiting || !crate::migration::problems(analysis, &next).is_empty() {
            return None;
        }
        let release = self.release_of(&next).ok()?.ok()??;
        let environment = self.environment(&next);
        let deployment = crate::deployment::digest_of(&environment, Some(&release));
        let migrated = crate::event::Migrated {
            from: analysis.hash().clone(),
            to: next.hash().clone(),
            flow_version: next.body().flow.version.as_str().into(),
            at: now,
            release,
            environment,
            deployment,
        };
        Some((next, migrated))
    }

    /// A stored run read: its record, plan and events, checked and believed.
    fn read_record(&self, mut record: RunRecord, change: bool) -> Result<Read> {
        let run = record.id.clone();
        let run = run.as_str();
        // A run that executes is changed only by whoever holds its lease: taken over here
        // when the process that held it stopped renewing it.
        if change && record.status == Status::Running {
            let leases = &self.leases;
            let held = match record.owner.as_ref().filter(|lease| lease.owner != leases.owner && !lease.expired()) {
                Some(lease) => Some(lease.clone()),
                None => self.store.claim_run(run, &leases.owner, leases.ttl_ms())?,
            };
            if let Some(lease) = held {
                return Err(Error::Busy(format!(
                    "run `{run}` is executing in process {} (its lease runs out in {}s unless that process renews \
                     it); try again when it has stopped",
                    lease.owner,
                    (lease.remaining_ms + 999) / 1000
                )));
            }
        }
        let analysis = self.plan(&record.plan)?;
        let mut events = self.store.events(run)?;
        // Another process may append between the reads of the record and of the events (each
        // commit writes both at once): the record is read again until it covers the events
        // read; events beyond it after that are the store's fault, and refused below.
        for _ in 0..8 {
            if events.len() as u64 <= record.seq {
                break;
            }
            match self.store.run(run)? {
                Some(newer) if newer.seq > record.seq => record = newer,
                _ => break,
            }
            events = self.store.events(run)?;
        }
        let ats: Vec<String> = events.iter().map(|e| e.at.clone()).collect();
        let first_at = ats.first().cloned().unwrap_or_default();
        let decoded = self.verified(&analysis, &record, events)?;
        self.believed(&record, &decoded, &first_at)?;
        Ok(Read { analysis, record, events: decoded, ats })
    }

    /// The run read as `read`, its state rebuilt under `analysis` (its plan, or the one it
    /// migrates to).
    fn loaded_on(&self, analysis: &Analysis, read: &Read) -> Loaded {
        let record = &read.record;
        // What the monitors need of past events, only for plans that have monitors; when
        // steps opened, only for those that watch latencies.
        let watched = crate::monitor::watched(analysis);
        let latency = crate::monitor::watches_latency(analysis);
        let mut loaded = Loaded::new(analysis, record.id.clone(), record.principal.clone(), record.created.clone());
        loaded.log.seq = record.seq;
        loaded.log.head = record.head.clone();
        loaded.log.signature = record.signature.clone();
        for (i, event) in read.events.iter().enumerate() {
            loaded.log.observe(&analysis.body().flow.name, event);
            loaded.state.apply(analysis, event);
            if watched {
                loaded.log.watch.stored(event, read.ats.get(i).filter(|_| latency).map(String::as_str));
            }
        }
        loaded.state.status = record.status;
        loaded
    }

    /// Checks what the store says of a run outside its chain against the chain: the run,
    /// plan, flow, starter and creation its first event records, the status its events
    /// lead to, and the signature of its head (by a key this runtime believes; a runtime
    /// that signs believes no unsigned run).
    pub(super) fn believed(&self, record: &RunRecord, events: &[Event<Value>], first_at: &str) -> Result<()> {
        let Some(Event::Started(started)) = events.first() else {
            return Err(Error::Tampered(format!(
                "the record of run `{}` in the store does not begin with its start: the store was changed",
                record.id
            )));
        };
        self.believed_start(record, started, plan_of(events), first_at)?;
        let status = status_of(events);
        if status != record.status {
            return Err(Error::Tampered(format!(
                "the record of run `{}` in the store says it is {}, but its events leave it {}: the store was changed",
                record.id,
                record.status.as_str(),
                status.as_str()
            )));
        }
        Ok(())
    }

    /// [`Runtime::believed`] but for the status: what can be checked of a run from its first
    /// event (and `plan`, the plan its events leave it on), the record and the signature of
    /// its head.
    pub(super) fn believed_start(
        &self,
        record: &RunRecord,
        started: &Started<Value>,
        plan: Option<&str>,
        first_at: &str,
    ) -> Result<()> {
        let run = record.id.as_str();
        let corrupted = |what: String| {
            Err(Error::Tampered(format!("the record of run `{run}` in the store {what}: the store was changed")))
        };
        if started.run != record.id
            || plan.unwrap_or(&started.plan) != record.plan
            || started.flow != record.flow
            || started.principal != record.principal
            || record.created != first_at
        {
            return corrupted(
                "does not match the start its events record (run, plan, flow, who started it or when)".to_owned(),
            );
        }
        match (&started.signing_key, &record.signature) {
            (Some(key), Some(signature)) => {
                if !self.believes(key) {
                    return Err(Error::Keys(format!(
                        "run `{run}` is signed with the key {key}, which this deployment does not trust \
                         (`[evidence] trusted_keys`)"
                    )));
                }
                if !evidence::head_signature_verifies(key, &record.head, signature) {
                    return corrupted("has a head whose signature does not verify".to_owned());
                }
            }
            (Some(_), None) => return corrupted("is signed, but its head has no signature".to_owned()),
            (None, _) if self.signing.is_some() => {
                return Err(Error::Tampered(format!(
                    "run `{run}` is not signed, but this deployment signs evidence: it was started without the \
                     key, or its signature was removed; it is not believed"
                )));
            }
            (None, _) => {}
        }
        Ok(())
    }

    /// The result recorded for an action's idempotency key, checked against the evidence of
    /// the run that recorded it: that run's chain (and signature) verifies, and its event
    /// says the same, for the same call.
    pub(crate) fn recorded_result(&self, stored: &ActionResult) -> Result<()> {
        let (analysis, _, events) = self.load_events(&stored.run, false)?;
        let forged = || {
            Err(Error::Tampered(format!(
                "the result stored for idempotency key `{}` of system `{}` is not what run `{}` recorded: the \
                 store was changed",
                stored.key, stored.system, stored.run
            )))
        };
        let at = stored.seq as usize;
        let Some(Event::ActionCompleted { node, key, result, reused: false, .. }) = events.get(at) else {
            return forged();
        };
        if *key != stored.key || result.to_json() != stored.result {
            return forged();
        }
        let call = events[..at].iter().rev().find_map(|e| match e {
            Event::ActionStarted { node: n, system, action, key, args, .. } if n == node => {
                Some((system, action, key, args))
            }
            _ => None,
        });
        match call {
            Some((system, action, key, args))
                if *system == stored.system
                    && *key == stored.key
                    && exec::call_digest(&analysis.body().flow.name, action, args) == stored.args =>
            {
                Ok(())
            }
            _ => forged(),
        }
    }

    /// A run's stored events, checked against its record and their hash chain, and read:
    /// each with the plan it was recorded under (`analysis`, the run's plan now, unless the
    /// run migrated since: the events before a `migrated` event are of the plan it names as
    /// `from`, each such step checked as the runtime checks it).
    pub(crate) fn verified(
        &self,
        analysis: &Analysis,
        record: &RunRecord,
        events: Vec<RawEvent>,
    ) -> Result<Vec<Event<Value>>> {
        let run = record.id.as_str();
        chain_checked(record, &events)?;
        let unreadable =
            |seq: u64, e: String| Error::Tampered(format!("event {seq} of run `{run}` cannot be read: {e}"));
        let mut decoded = Vec::with_capacity(events.len());
        let Some(first) = events.iter().find(|e| e.body.starts_with(MIGRATED)) else {
            for stored in &events {
                decoded.push(decode_event_text(analysis, &stored.body).map_err(|e| unreadable(stored.seq, e))?);
            }
            return Ok(decoded);
        };
        let from = match decode_event_text(analysis, &first.body).map_err(|e| unreadable(first.seq, e))? {
            Event::Migrated(migrated) => migrated.from,
            _ => return Err(unreadable(first.seq, "it is not a migration".to_owned())),
        };
        let mut current = self.plan(&from)?;
        for stored in &events {
            let event = decode_event_text(&current, &stored.body).map_err(|e| unreadable(stored.seq, e))?;
            if let Event::Started(started) = &event
                && *started.plan != *from
            {
                return Err(Error::Tampered(format!(
                    "run `{run}` started on plan {}, but its first migration is from plan {from}: the store was changed",
                    started.plan
                )));
            }
            if let Event::Migrated(migrated) = &event {
                let next = self.plan(&migrated.to)?;
                let problems = crate::migration::problems(&current, &next);
                if *migrated.from != **current.hash() || !problems.is_empty() {
                    return Err(Error::Tampered(format!(
                        "event {} of run `{run}` records a migration from plan {} to {} that the runtime does not \
                         make{}: the store was changed",
                        stored.seq,
                        migrated.from,
                        migrated.to,
                        problems.first().map(|p| format!(" ({p})")).unwrap_or_default()
                    )));
                }
                current = next;
            }
            decoded.push(event);
        }
        if current.hash() != analysis.hash() {
            return Err(Error::Tampered(format!(
                "the record of run `{run}` names plan {}, but its events leave it on plan {}: the store was changed",
                analysis.hash(),
                current.hash()
            )));
        }
        Ok(decoded)
    }

    /// A run's stored events, parsed, with what `views` does not clear redacted.
    pub(super) fn redacted_events(&self, run: &str, views: &[SmolStr]) -> Result<Vec<StoredEvent>> {
        let mut events =
            self.store.events(run)?.into_iter().map(|e| e.parse(run)).collect::<std::result::Result<Vec<_>, _>>()?;
        for event in &mut events {
            labels::redact(&mut event.body, views);
        }
        Ok(events)
    }
}
