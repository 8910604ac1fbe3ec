//! Batches of cases queued in the store and run by whichever workers take them: any number
//! of processes, on any hosts, share a batch through the store's queue, each case taken by
//! one worker at a time under a lease, and each case starting at most one run (its run's id
//! comes from the batch and the case's number, so a case taken again after its worker died
//! finds the run it started).

use super::Runtime;
use super::run::Given;
use crate::checkpoint::sign_case;
use crate::error::{Error, Result};
use crate::event::Status;
use crate::identity::{Principal, now};
use crate::log::Prepared;
use crate::store::{Held, QueuedBatch, QueuedCase};
use flow_ir::expr::Timestamp;
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// How the cases of a batch run.
#[derive(Clone, Debug, Default)]
pub struct BatchOptions {
    /// The runs' clock; the time each case runs when absent.
    pub clock: Option<Timestamp>,
    /// Whether the runs are stored; a batch of runs not stored is a backtest whose outcomes
    /// alone are kept.
    pub durable: bool,
}

/// Where a batch stands: its cases, how many are done, their outcomes by status, and the
/// cases that did not run, with why (by case number).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BatchState {
    pub cases: u64,
    pub done: u64,
    pub outcomes: BTreeMap<String, u64>,
    pub refused: Vec<(u64, String)>,
}

impl BatchState {
    pub fn finished(&self) -> bool {
        self.done == self.cases
    }
}

impl Runtime {
    /// Queues `cases` (each `{"inputs": {…}}` as text, by number) to run `analysis` for
    /// `who`; returns the batch's id. Nothing runs here: workers ([`Runtime::work`]) take
    /// the cases, this process among them if it works too.
    pub fn enqueue(
        &self,
        analysis: &Arc<crate::analysis::Analysis>,
        who: &Principal,
        cases: &[(u64, String)],
        options: &BatchOptions,
    ) -> Result<String> {
        let id = crate::identity::new_run_id().replacen("r-", "b-", 1);
        let mut stored = json!({"durable": options.durable});
        if let Some(clock) = options.clock {
            stored["clock"] = json!(clock.to_string());
        }
        let batch = QueuedBatch {
            id: id.clone(),
            plan: analysis.hash().to_string(),
            principal: crate::value::principal_id(&who.id),
            options: stored,
            created: now().to_string(),
            cases: cases.len() as u64,
        };
        // Each case is kept with its signature by the deployment's key, when it signs: a
        // worker runs only what was queued, for whom it was queued.
        let sealed: Vec<(u64, String)> = cases
            .iter()
            .map(|(n, case)| {
                let signature = self.signing.as_ref().map(|key| sign_case(key, &case_digest(&batch, *n, case)));
                (*n, json!({"case": case, "signature": signature}).to_string())
            })
            .collect();
        self.store.enqueue(&batch, &sealed)?;
        Ok(id)
    }

    /// A queued case's text, once its signature checks out: in a deployment that signs, a
    /// case is run only when a key it trusts signed it with its batch (plan, principal,
    /// options) — someone who can write the store cannot have a worker start runs, signed by
    /// the deployment, on anyone's behalf.
    fn unsealed(&self, batch: &QueuedBatch, case: &QueuedCase) -> std::result::Result<String, String> {
        let sealed: Json = serde_json::from_str(&case.body).map_err(|e| format!("the queued case is not JSON: {e}"))?;
        let Some(text) = sealed.get("case").and_then(Json::as_str) else {
            return Err("the queued case holds no case".to_owned());
        };
        if self.signs() {
            let digest = case_digest(batch, case.n, text);
            let signed = sealed.get("signature").and_then(Json::as_str).is_some_and(|signature| {
                self.trusted.iter().any(|key| crate::checkpoint::case_signature_verifies(key, &digest, signature))
            });
            if !signed {
                return Err(format!(
                    "case {} of batch `{}` is not signed by a key this deployment trusts, with its batch as queued: \
                     the store was changed",
                    case.n, batch.id
                ));
            }
        }
        Ok(text.to_owned())
    }

    /// Takes up to `limit` queued cases of any batch and runs them, each for its batch's
    /// principal with the roles `principals` gives them (`None`: not a principal of this
    /// deployment, and the case is refused), and records their outcomes; returns how many it
    /// took (0: the queue has nothing free). A case whose run another process is executing
    /// is left for later.
    pub fn work(&self, principals: &dyn Fn(&str) -> Option<Principal>, limit: usize) -> Result<usize> {
        let leases = &self.leases;
        let cases = self.store.take_cases(&leases.owner, leases.ttl_ms(), limit)?;
        let holds: Vec<Held> = cases.iter().map(|case| Held::Case(case.batch.clone(), case.n)).collect();
        for hold in &holds {
            leases.hold(&self.store, hold);
        }
        let worked = self.run_cases(principals, &cases);
        leases.drop_holds(&holds);
        let done = match worked {
            Ok(done) => done,
            Err(error) => {
                let _ = self.store.release(&leases.owner, &holds);
                return Err(error);
            }
        };
        // A case left for later (its run executes elsewhere) keeps its lease until it runs
        // out, so that it is not taken again at once.
        self.store.finish_cases(&leases.owner, &done)?;
        Ok(cases.len())
    }

    /// Runs taken cases; their outcomes, but for cases left for later. The last commits of
    /// the runs are stored together, in one transaction (a group commit), and the outcomes
    /// are only reported once it is stored.
    fn run_cases(
        &self,
        principals: &dyn Fn(&str) -> Option<Principal>,
        cases: &[QueuedCase],
    ) -> Result<Vec<(String, u64, Json)>> {
        // Each batch with its plan, or why its cases cannot run (its plan does not load).
        type Loaded = std::result::Result<(QueuedBatch, Arc<crate::analysis::Analysis>), String>;
        let mut batches: BTreeMap<&str, Loaded> = BTreeMap::new();
        let mut done = Vec::with_capacity(cases.len());
        // Runs whose last commit waits for the group's: (case, its outcome, the commit).
        let mut deferred: Vec<(&QueuedCase, Json, Prepared)> = Vec::new();
        for case in cases {
            if !batches.contains_key(case.batch.as_str()) {
                let Some(batch) = self.store.batch(&case.batch)? else {
                    return Err(Error::Tampered(format!(
                        "case {} is queued for batch `{}`, which the store does not have: the store was changed",
                        case.n, case.batch
                    )));
                };
                let loaded = match self.plan(&batch.plan) {
                    Ok(analysis) => Ok((batch, analysis)),
                    Err(error) if error.kind() == crate::ErrorKind::Store => return Err(error),
                    Err(error) => Err(format!("error[{}]: {error}", error.code())),
                };
                batches.insert(&case.batch, loaded);
            }
            let (batch, analysis) = match &batches[case.batch.as_str()] {
                Ok(loaded) => loaded,
                Err(why) => {
                    done.push((case.batch.clone(), case.n, json!({"refused": why})));
                    continue;
                }
            };
            let mut prepared = Vec::new();
            let outcome = self.run_case(principals, batch, analysis, case, &mut prepared)?;
            match (outcome, prepared.pop()) {
                (Some(outcome), Some(prepared)) => deferred.push((case, outcome, prepared)),
                (Some(outcome), None) => done.push((case.batch.clone(), case.n, outcome)),
                (None, _) => {}
            }
        }
        if deferred.is_empty() {
            return Ok(done);
        }
        let signer = self.signer();
        let commits: Vec<_> = deferred.iter().map(|(_, _, prepared)| prepared.commit(signer)).collect();
        match self.store.append_all(&commits) {
            Ok(()) => {
                done.extend(deferred.into_iter().map(|(case, outcome, _)| (case.batch.clone(), case.n, outcome)));
            }
            // One of the runs was started by another worker meanwhile (the case was taken
            // again after its lease ran out): each run on its own, then.
            Err(crate::store::StoreError::Conflict(_)) => {
                for ((case, outcome, _), commit) in deferred.iter().zip(&commits) {
                    let outcome = match self.store.append(commit) {
                        Ok(()) => Some(outcome.clone()),
                        Err(crate::store::StoreError::Conflict(_)) => {
                            let id = case_run_id(&case.batch, case.n);
                            self.existing_case(&id)?
                        }
                        Err(error) => return Err(error.into()),
                    };
                    done.extend(outcome.map(|outcome| (case.batch.clone(), case.n, outcome)));
                }
            }
            Err(error) => return Err(error.into()),
        }
        Ok(done)
    }

    /// Runs one case: its outcome (`{"run", "status"}` or `{"refused"}`), or `None` when
    /// its run is executing in another process (the case is left for later). The last
    /// commit of a stored run is left in `deferred`, for the caller to store.
    fn run_case(
        &self,
        principals: &dyn Fn(&str) -> Option<Principal>,
        batch: &QueuedBatch,
        analysis: &Arc<crate::analysis::Analysis>,
        case: &QueuedCase,
        deferred: &mut Vec<Prepared>,
    ) -> Result<Option<Json>> {
        let refused = |why: String| Ok(Some(json!({"refused": why})));
        let Some(who) = principals(&batch.principal) else {
            return refused(format!("`{}` is not a principal of this deployment", batch.principal));
        };
        let text = match self.unsealed(batch, case) {
            Ok(text) => text,
            Err(why) => return refused(why),
        };
        let parsed: Json = match crate::value::parse_exact(&text) {
            Ok(parsed) => parsed,
            Err(e) => return refused(format!("not JSON Flow reads exactly: {e}")),
        };
        let Some(inputs) = parsed.get("inputs").and_then(Json::as_object) else {
            return refused("expected {\"inputs\": {…}}".to_owned());
        };
        let inputs: Vec<(String, Json)> = inputs.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let clock = match batch.options.get("clock").and_then(Json::as_str) {
            None => None,
            Some(text) => match flow_ir::time::parse_timestamp(text) {
                Some((seconds, nanos)) => Some(Timestamp { seconds, nanos }),
                None => {
                    return Err(Error::Tampered(format!(
                        "the clock of batch `{}` in the store is not a time: the store was changed",
                        batch.id
                    )));
                }
            },
        };
        let options = super::StartOptions { clock, params: Vec::new() };
        let durable = batch.options.get("durable").and_then(Json::as_bool).unwrap_or(true);
        let id = case_run_id(&batch.id, case.n);
        let started = if durable {
            self.new_run(analysis, &who, Given::Json(&inputs), &options, true, (Some(id.clone()), Some(deferred)))
        } else {
            self.new_run(analysis, &who, Given::Json(&inputs), &options, false, (None, None))
        };
        match started {
            Ok(view) => Ok(Some(json!({"run": view.run, "status": view.status.as_str()}))),
            // Its run was started before, by a worker that stopped (its first commit, made
            // before an action's call, conflicts): that run is the case's.
            Err(error) if error.kind() == crate::ErrorKind::Conflict => {
                deferred.clear();
                self.existing_case(&id)
            }
            Err(error) if error.kind() == crate::ErrorKind::Busy => Ok(None),
            // The store cannot be used: the worker stops, and the case is taken again later.
            Err(error) if error.kind() == crate::ErrorKind::Store => Err(error),
            // A case that does not fit, or that this deployment cannot run (a key it does not
            // hold, a plan it refuses): done, with why, rather than stopping every worker.
            Err(error) if error.kind().is_request() => refused(error.to_string()),
            Err(error) => refused(format!("error[{}]: {error}", error.code())),
        }
    }

    /// The outcome of a case whose run is in the store already: its status, once resumed if
    /// it was cut off while it executed; `None` while another process executes it.
    fn existing_case(&self, id: &str) -> Result<Option<Json>> {
        let Some(record) = self.store.run(id)? else {
            return Err(Error::Store(format!("run `{id}` conflicted, but the store does not have it")));
        };
        let status = match record.status {
            Status::Running => match self.resume(id) {
                Ok(status) => status,
                Err(error) if error.kind() == crate::ErrorKind::Busy => return Ok(None),
                Err(error) => return Err(error),
            },
            status => status,
        };
        Ok(Some(json!({"run": id, "status": status.as_str()})))
    }

    /// Resumes a run that executes, once its lease is this runtime's; its status after.
    fn resume(&self, run: &str) -> Result<Status> {
        let (analysis, mut loaded) = self.load(run, true)?;
        if loaded.state.status == Status::Running {
            self.advance(&analysis, &mut loaded)?;
        }
        Ok(loaded.state.current_status())
    }

    /// Where a batch stands.
    pub fn batch_state(&self, batch: &str) -> Result<BatchState> {
        let Some(queued) = self.store.batch(batch)? else {
            return Err(Error::UnknownRun(format!("no batch `{batch}` in the store")));
        };
        let mut state = BatchState { cases: queued.cases, ..BatchState::default() };
        for (n, outcome) in self.store.outcomes(batch)? {
            let Some(outcome) = outcome else { continue };
            state.done += 1;
            match (outcome.get("status").and_then(Json::as_str), outcome.get("refused").and_then(Json::as_str)) {
                (Some(status), _) => *state.outcomes.entry(status.to_owned()).or_default() += 1,
                (None, Some(why)) => state.refused.push((n, why.to_owned())),
                (None, None) => {
                    return Err(Error::Tampered(format!(
                        "the outcome of case {n} of batch `{batch}` says neither a status nor why it was refused: \
                         the store was changed"
                    )));
                }
            }
        }
        Ok(state)
    }
}

/// What a queued case's signature covers: the case, its number, and its batch.
fn case_digest(batch: &QueuedBatch, n: u64, case: &str) -> String {
    crate::digest::digest(&json!(["queued case", batch.id, batch.plan, batch.principal, batch.options, n, case]))
}

/// The id of the run a queued case starts: the same whoever takes the case.
fn case_run_id(batch: &str, n: u64) -> String {
    let digest = crate::digest::digest(&json!(["queued case", batch, n]));
    format!("r-{}", digest.trim_start_matches("blake3:").get(..16).unwrap_or_default())
}
