//! A run's commit log: the events recorded since the last commit, chained, signed and
//! stored in one append with the run's new record; and the check of a stored chain
//! against its record when a run is loaded.

use crate::analysis::Analysis;
use crate::digest;
use crate::error::{Error, Result};
use crate::event::codec::encode_event_stored;
use crate::event::{Event, Status};
use crate::evidence;
use crate::exec;
use crate::identity::now;
use crate::state::{self, State};
use crate::store::{ActionResult, RawEvent, RunRecord, Signer, Store, Waiting};
use crate::value::Value;
use flow_ir::plan::NodeKind;
use smol_str::SmolStr;
use std::collections::BTreeMap;

/// A run being worked on: its state, and its log.
pub(crate) struct Loaded {
    pub(crate) state: State,
    pub(crate) log: Log,
}

impl Loaded {
    /// Applies an event to the run's state and keeps it for the next commit. A run that
    /// keeps no evidence only observes it (as its commit would); it began from its first
    /// event without recording it ([`Loaded::in_memory`]).
    pub(crate) fn record(&mut self, analysis: &Analysis, event: Event<Value>) {
        match event {
            event if !self.log.durable => {
                self.state.apply(analysis, &event);
                self.log.observe_owned(&analysis.body().flow.name, event);
            }
            event => {
                self.state.apply(analysis, &event);
                self.log.pending.push(event);
            }
        }
    }

    /// A stored run, from its id, who started it and when it was created.
    pub(crate) fn new(analysis: &Analysis, run: String, principal: String, created: String) -> Loaded {
        Loaded::with(analysis, run, (principal, created), true)
    }

    /// A run kept in memory, begun as its first event says (the event is not recorded: it
    /// has no chain, record or creation).
    pub(crate) fn in_memory(analysis: &Analysis, started: crate::event::Started<Value>) -> Loaded {
        let mut loaded = Loaded::with(analysis, String::new(), (String::new(), String::new()), false);
        loaded.log.signing_key.clone_from(&started.signing_key);
        loaded.state.start(analysis, started);
        loaded
    }

    fn with(analysis: &Analysis, run: String, (principal, created): (String, String), durable: bool) -> Loaded {
        let mut state = State::new(analysis);
        state.run = run;
        Loaded {
            state,
            log: Log {
                pending: Vec::new(),
                seq: 0,
                head: if durable { digest::GENESIS.to_owned() } else { String::new() },
                signature: None,
                signing_key: None,
                principal,
                created,
                outputs: BTreeMap::new(),
                marks: BTreeMap::new(),
                calls: BTreeMap::new(),
                results: Vec::new(),
                durable,
                watch: crate::monitor::Watch::default(),
            },
        }
    }
}

/// A run's log: the events not yet stored, and where its chain stands.
/// Where and how a run's log commits: the store, what signs, the lease the runtime holds
/// while the run executes (owner, milliseconds), and the action claims it gives up.
pub(crate) struct Committer<'a> {
    pub(crate) store: &'a dyn Store,
    pub(crate) signer: Option<Signer<'a>>,
    pub(crate) lease: (&'a str, i64),
    pub(crate) released: &'a [(String, String)],
    /// The endpoints whose notices of the commit are queued with it.
    pub(crate) webhooks: Option<&'a crate::notify::Webhooks>,
    /// The runtime's clock (the system's when `None`): when events are recorded.
    pub(crate) clock: Option<&'a (dyn Fn() -> flow_ir::expr::Timestamp + Send + Sync)>,
}

impl Committer<'_> {
    fn now(&self) -> flow_ir::expr::Timestamp {
        self.clock.map_or_else(now, |clock| clock())
    }
}

/// A run's commit, prepared: what [`crate::store::Commit`] borrows.
pub(crate) struct Prepared {
    pub(crate) record: RunRecord,
    expected_seq: u64,
    events: Vec<RawEvent>,
    waiting: Vec<Waiting>,
    results: Vec<ActionResult>,
    lease: Option<(String, i64)>,
    released: Vec<(String, String)>,
    notices: Vec<crate::store::Notice>,
    tallies: Vec<crate::store::Tally>,
    check: Option<i64>,
}

impl Prepared {
    pub(crate) fn commit<'a>(&'a self, key: Option<Signer<'a>>) -> crate::store::Commit<'a> {
        crate::store::Commit {
            run: &self.record,
            expected_seq: self.expected_seq,
            events: &self.events,
            waiting: &self.waiting,
            results: &self.results,
            key,
            lease: self.lease.as_ref().map(|(owner, ttl)| (owner.as_str(), *ttl)),
            released: &self.released,
            notices: &self.notices,
            tallies: &self.tallies,
            check: self.check,
        }
    }
}

pub(crate) struct Log {
    pub(crate) pending: Vec<Event<Value>>,
    pub(crate) seq: u64,
    pub(crate) head: String,
    pub(crate) signature: Option<String>,
    /// The public key the run was started with, when it is signed.
    pub(crate) signing_key: Option<String>,
    pub(crate) principal: String,
    pub(crate) created: String,
    pub(crate) outputs: BTreeMap<SmolStr, Value>,
    /// What each output carries besides its value (`overridden: g`, `degraded: x`).
    pub(crate) marks: BTreeMap<String, Vec<String>>,
    /// The digest of the arguments of each action step's latest call, by step.
    pub(crate) calls: BTreeMap<SmolStr, String>,
    pub(crate) results: Vec<ActionResult>,
    /// False for runs evaluated in memory: committing only notes outputs.
    pub(crate) durable: bool,
    /// What the plan's monitors need to know of the run's past events.
    pub(crate) watch: crate::monitor::Watch,
}

impl Log {
    /// Notes what the log keeps of an event besides the state: outputs, the signing key.
    pub(crate) fn observe(&mut self, flow: &str, event: &Event<Value>) {
        match event {
            Event::Started(started) => self.signing_key = started.signing_key.clone(),
            Event::ActionStarted { node, action, args, .. } if self.durable => {
                self.calls.insert(node.clone(), exec::call_digest(flow, action, args));
            }
            Event::Emitted { node, value, marks } => self.emitted(node.clone(), value.clone(), marks.clone()),
            _ => {}
        }
    }

    /// [`Log::observe`], taking the event: an output's value is moved rather than copied.
    pub(crate) fn observe_owned(&mut self, flow: &str, event: Event<Value>) {
        match event {
            Event::Emitted { node, value, marks } => self.emitted(node, value, marks),
            event => self.observe(flow, &event),
        }
    }

    fn emitted(&mut self, node: SmolStr, value: Value, marks: Vec<String>) {
        if !marks.is_empty() {
            self.marks.insert(node.to_string(), marks);
        }
        self.outputs.insert(node, value);
    }

    /// The outputs emitted so far, as evidence JSON (labels marked, unsalted).
    fn outputs_json(&self, analysis: &Analysis) -> serde_json::Map<String, serde_json::Value> {
        let body = analysis.body();
        body.outputs
            .iter()
            .filter_map(|output| {
                let value = self.outputs.get(output.name.as_str())?;
                let labels = analysis.node_labels(&output.name);
                Some((output.name.to_string(), crate::labels::encode(body, value, &output.ty, labels, false)))
            })
            .collect()
    }

    /// Stores the pending events, chained, with the run's new record.
    pub(crate) fn commit(&mut self, to: &Committer<'_>, analysis: &Analysis, state: &State) -> Result<()> {
        let Some(prepared) = self.prepare(to, analysis, state)? else { return Ok(()) };
        to.store.append(&prepared.commit(to.signer))?;
        self.applied(&prepared);
        Ok(())
    }

    /// Notes that `prepared` was stored: the run's log goes on from its head.
    pub(crate) fn applied(&mut self, prepared: &Prepared) {
        self.seq = prepared.record.seq;
        self.head.clone_from(&prepared.record.head);
        self.signature.clone_from(&prepared.record.signature);
    }

    /// The commit of the pending events, chained, with the run's new record, ready to be
    /// stored (alone, or with other runs' in one transaction); `None` when nothing is
    /// pending or the run keeps no evidence.
    pub(crate) fn prepare(
        &mut self,
        to: &Committer<'_>,
        analysis: &Analysis,
        state: &State,
    ) -> Result<Option<Prepared>> {
        if !self.durable {
            for event in std::mem::take(&mut self.pending) {
                self.observe(&analysis.body().flow.name, &event);
            }
            return Ok(None);
        }
        if self.pending.is_empty() {
            return Ok(None);
        }
        let mut stored = Vec::with_capacity(self.pending.len());
        let mut head = self.head.clone();
        let recorded = to.now();
        let at = recorded.to_string();
        if self.seq == 0 {
            self.created = at.clone();
        }
        let pending = std::mem::take(&mut self.pending);
        let crate::monitor::Counted { tallies, check } =
            crate::monitor::tallies(analysis, state, &pending, &mut self.watch, recorded);
        for (i, event) in pending.into_iter().enumerate() {
            self.observe(&analysis.body().flow.name, &event);
            let seq = self.seq + i as u64;
            if let Event::ActionCompleted { node, key, result, reused: false, .. } = &event
                && let Some(NodeKind::Action { system, .. }) = analysis.body().node(node).map(|n| &n.kind)
            {
                self.results.push(ActionResult {
                    system: system.to_string(),
                    key: key.clone(),
                    result: result.to_json(),
                    run: state.run.clone(),
                    seq,
                    args: self.calls.get(node).cloned().unwrap_or_default(),
                });
            }
            let hash_of = |body: &str| digest::event_hash_of_text(&head, seq, &at, body);
            let (body, hash) = match encode_event_stored(analysis, event).and_then(|body| Ok((hash_of(&body)?, body))) {
                Ok((hash, body)) => (body, hash),
                Err(e) => {
                    return Err(Error::Store(format!("event {seq} of run `{}` cannot be written: {e}", state.run)));
                }
            };
            stored.push(RawEvent { seq, at: at.clone(), prev: head.clone(), hash: hash.clone(), body });
            head = hash;
        }
        // A run is signed with the key it was started with, and only with it: a runtime
        // without that key may not change a signed run (its head would go unsigned).
        let signer = to.signer;
        let signature = match (&self.signing_key, signer.as_ref().map(|s| s.key)) {
            (None, _) => None,
            (Some(public), Some(key)) if *public == evidence::public_key_hex(key) => {
                Some(evidence::sign_head(key, &head))
            }
            (Some(public), _) => {
                return Err(Error::Keys(format!(
                    "run `{}` is signed with the evidence key {public}; configure that key to change it",
                    state.run
                )));
            }
        };
        let record_status = state.current_status();
        let record = RunRecord {
            id: state.run.clone(),
            plan: analysis.plan.hash().to_owned(),
            flow: analysis.body().flow.name.to_string(),
            status: record_status,
            created: self.created.clone(),
            seq: self.seq + stored.len() as u64,
            head: head.clone(),
            signature: signature.clone(),
            principal: self.principal.clone(),
            owner: None,
        };
        let waiting: Vec<Waiting> = state::waiting(analysis, state)
            .into_iter()
            .map(|(step, kind, roles)| Waiting {
                run: record.id.clone(),
                flow: record.flow.clone(),
                due: crate::timers::due_of(analysis, state, &step),
                step: step.to_string(),
                kind: kind.to_owned(),
                roles,
            })
            .collect();
        let notices = match to.webhooks {
            Some(webhooks) => webhooks.for_commit(analysis, &record, &stored, &waiting, || self.outputs_json(analysis)),
            None => Vec::new(),
        };
        Ok(Some(Prepared {
            notices,
            tallies,
            check,
            expected_seq: self.seq,
            events: stored,
            waiting,
            results: std::mem::take(&mut self.results),
            lease: (record_status == Status::Running).then(|| (to.lease.0.to_owned(), to.lease.1)),
            released: to.released.to_vec(),
            record,
        }))
    }
}

/// Checks a run's stored events against its record (their number and head) and their
/// hash chain.
pub(crate) fn chain_checked(record: &RunRecord, events: &[RawEvent]) -> Result<()> {
    let run = record.id.as_str();
    if events.len() as u64 != record.seq || events.last().map_or(digest::GENESIS, |e| e.hash.as_str()) != record.head {
        return Err(Error::Tampered(format!("the events of run `{run}` in the store do not end at its head")));
    }
    let mut prev = digest::GENESIS;
    for (i, stored) in events.iter().enumerate() {
        let chained = digest::is_event_hash(&stored.hash, prev, stored.seq, &stored.at, &stored.body).map_err(|e| {
            Error::Tampered(format!("event {} of run `{run}` in the store is not JSON: {e}", stored.seq))
        })?;
        if stored.seq != i as u64 || stored.prev != prev || !chained {
            return Err(Error::Tampered(format!(
                "the evidence of run `{run}` in the store is corrupted: event {i} does not match its hash chain"
            )));
        }
        prev = &stored.hash;
    }
    Ok(())
}
