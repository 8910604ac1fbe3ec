//! Long audits as jobs: a what-if (or an exact replay) over stored runs runs on a thread of
//! its own, and the principal who asked polls it for its progress and then its result.
//! Jobs are kept in the memory of the server that runs them (poll the server that answered
//! the request; a restart forgets them), at most two at once per server, and the last 100
//! finished ones.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value as Json, json};

/// How many jobs a server runs at once; more are answered `503`.
pub const RUNNING: usize = 2;
/// How many finished jobs a server keeps for their results.
const KEPT: usize = 100;

/// A job, as it goes.
pub struct Job {
    pub id: String,
    /// Who asked: only they may see it.
    pub owner: String,
    pub created: String,
    pub done: AtomicUsize,
    pub total: AtomicUsize,
    /// The result, or the problem that ended it, once it has ended.
    pub ended: Mutex<Option<Result<Json, Json>>>,
}

impl Job {
    pub fn to_json(&self) -> Json {
        let ended = self.ended.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = json!({
            "job": self.id, "created": self.created,
            "status": match &*ended { None => "running", Some(Ok(_)) => "done", Some(Err(_)) => "failed" },
            "done": self.done.load(Ordering::Relaxed), "total": self.total.load(Ordering::Relaxed),
        });
        match &*ended {
            Some(Ok(result)) => out["result"] = result.clone(),
            Some(Err(problem)) => out["error"] = problem.clone(),
            None => {}
        }
        out
    }

    fn running(&self) -> bool {
        self.ended.lock().unwrap_or_else(std::sync::PoisonError::into_inner).is_none()
    }
}

/// The jobs of a server.
#[derive(Default)]
pub struct Jobs {
    jobs: Mutex<BTreeMap<String, Arc<Job>>>,
}

impl Jobs {
    /// A new job of `owner`, unless `RUNNING` jobs run already.
    pub fn start(&self, owner: &str) -> Option<Arc<Job>> {
        let mut jobs = self.jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if jobs.values().filter(|job| job.running()).count() >= RUNNING {
            return None;
        }
        let finished: Vec<(String, String)> =
            jobs.values().filter(|job| !job.running()).map(|job| (job.created.clone(), job.id.clone())).collect();
        if finished.len() >= KEPT {
            let mut finished = finished;
            finished.sort();
            for (_, id) in finished.iter().take(finished.len() + 1 - KEPT) {
                jobs.remove(id);
            }
        }
        let mut random = [0u8; 8];
        getrandom::getrandom(&mut random).ok()?;
        let id = format!("j-{}", random.iter().map(|b| format!("{b:02x}")).collect::<String>());
        let job = Arc::new(Job {
            id: id.clone(),
            owner: owner.to_owned(),
            created: flow_runtime::now().to_string(),
            done: AtomicUsize::new(0),
            total: AtomicUsize::new(0),
            ended: Mutex::new(None),
        });
        jobs.insert(id, job.clone());
        Some(job)
    }

    /// The job `id`, if `who` asked for it.
    pub fn get(&self, id: &str, who: &str) -> Option<Arc<Job>> {
        let jobs = self.jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        jobs.get(id).filter(|job| job.owner == who).cloned()
    }
}
