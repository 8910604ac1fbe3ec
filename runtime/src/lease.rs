//! A runtime's leases in its store: who it is to other processes, how long its leases last,
//! which runs and action keys it holds now, and the thread that renews them while it does.
//!
//! A lease is the only way one process knows another executes a run or calls an action's
//! handler: not its host name, not its pid. The holder renews it every third of its length
//! while it works (also while a model or a handler takes long); a process that dies or loses
//! the store stops renewing, and once the lease has run out by the store's clock, another
//! process takes it over ([`crate::store::Store::claim_interrupted`]).

use std::collections::BTreeMap;
use std::sync::mpsc::{RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::store::Store;

/// How long a lease lasts unless renewed, by default.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// What a runtime holds now, each with how many of its executions hold it.
type Held = BTreeMap<crate::store::Held, usize>;

pub(crate) struct Leases {
    /// This runtime, to other processes: `host/pid/nonce` (two runtimes of one process,
    /// and processes of the same pid on hosts of the same name, are told apart).
    pub(crate) owner: String,
    pub(crate) ttl: Duration,
    held: Arc<Mutex<Held>>,
    /// Stops the renewing thread when dropped (it is started with the first lease).
    stop: Mutex<Option<Sender<()>>>,
}

impl Leases {
    pub(crate) fn new() -> Leases {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let t = crate::identity::now();
        let nonce = crate::digest::digest(&serde_json::json!([t.seconds, t.nanos, n, crate::identity::pid()]));
        let nonce = nonce.trim_start_matches("blake3:").get(..8).unwrap_or_default().to_owned();
        Leases {
            owner: format!("{}/{}/{nonce}", crate::identity::host(), crate::identity::pid()),
            ttl: DEFAULT_LEASE,
            held: Arc::default(),
            stop: Mutex::default(),
        }
    }

    pub(crate) fn ttl_ms(&self) -> i64 {
        self.ttl.as_millis().min(i64::MAX as u128) as i64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Notes that an execution of this runtime executes `run`, unless another execution of
    /// it does (`false`): one run executes once at a time in a runtime, as in the store.
    pub(crate) fn enter(&self, store: &Arc<dyn Store>, run: &str) -> bool {
        {
            let mut held = self.lock();
            let hold = crate::store::Held::Run(run.to_owned());
            if held.contains_key(&hold) {
                return false;
            }
            held.insert(hold, 1);
        }
        self.renewed(store);
        true
    }

    /// Notes that this runtime holds `hold` (its lease taken in the store) and renews it from
    /// now on, starting the renewing thread on the first hold.
    pub(crate) fn hold(&self, store: &Arc<dyn Store>, hold: &crate::store::Held) {
        *self.lock().entry(hold.clone()).or_default() += 1;
        self.renewed(store);
    }

    /// Starts the renewing thread, unless it runs.
    fn renewed(&self, store: &Arc<dyn Store>) {
        let mut stop = self.stop.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if stop.is_none() {
            *stop = Some(self.renewing(Arc::downgrade(store)));
        }
    }

    /// Notes that this execution no longer holds `holds`; those no other execution of this
    /// runtime holds are no longer renewed. The caller releases them in the store if it must.
    pub(crate) fn drop_holds(&self, holds: &[crate::store::Held]) {
        let mut held = self.lock();
        for hold in holds {
            if let Some(count) = held.get_mut(hold) {
                *count -= 1;
                if *count == 0 {
                    held.remove(hold);
                }
            }
        }
    }

    /// The thread that renews what this runtime holds every third of a lease, until the
    /// runtime is dropped. A renewal that fails is tried again at the next beat; once the
    /// leases have run out, other processes may take the runs over, and this one's next
    /// commit to them fails as a conflict.
    fn renewing(&self, store: Weak<dyn Store>) -> Sender<()> {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let held = Arc::downgrade(&self.held);
        let owner = self.owner.clone();
        let ttl_ms = self.ttl_ms();
        let beat = (self.ttl / 3).max(Duration::from_millis(10));
        // Without the thread (the system refused one), leases are renewed by commits only.
        let _ = std::thread::Builder::new().name("flow-leases".into()).spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(beat) {
                let (Some(held), Some(store)) = (held.upgrade(), store.upgrade()) else { return };
                let now: Vec<crate::store::Held> = {
                    let held = held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    held.keys().cloned().collect()
                };
                if !now.is_empty() {
                    let _ = store.renew(&owner, &now, ttl_ms);
                }
            }
        });
        stop
    }
}
