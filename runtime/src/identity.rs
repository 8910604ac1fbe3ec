//! Who acts on runs (a principal, and the deployment's directory of them), which process
//! this is (for leases and the environment runs record), and new run ids.

use crate::value::{self};
use flow_ir::expr::Timestamp;
use std::collections::BTreeSet;

/// Someone acting on runs: an id and the roles the deployment gives it. Embedders pass a
/// principal they authenticated; the CLI reads them from a principals file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub id: String,
    pub roles: Vec<String>,
    /// How the principal proved who they are, when a service authenticated them (`token
    /// t-…`, `oidc ISSUER`): recorded with what they start, decide and override.
    pub authenticated: Option<String>,
}

impl Principal {
    pub fn new(id: impl Into<String>, roles: Vec<String>) -> Principal {
        Principal { id: id.into(), roles, authenticated: None }
    }
}

/// Who may be named in a run's inputs: the ids of the deployment's principals.
#[derive(Clone, Debug, Default)]
pub struct Directory {
    ids: BTreeSet<String>,
}

impl Directory {
    pub fn new(ids: impl IntoIterator<Item = impl AsRef<str>>) -> Directory {
        Directory { ids: ids.into_iter().map(|id| value::principal_id(id.as_ref())).collect() }
    }

    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains(&value::principal_id(id))
    }
}

/// The current time.
pub fn now() -> Timestamp {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Timestamp { seconds: since.as_secs() as i64, nanos: since.subsec_nanos() }
}

/// This process's id (read once: it is a system call).
pub(crate) fn pid() -> u32 {
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *PID.get_or_init(std::process::id)
}

/// A new run id: 64 bits mixed from the time, the process and a counter, so ids of runs
/// started by several processes at once do not collide.
pub(crate) fn new_run_id() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let t = now();
    let mut x = (t.seconds as u64).wrapping_mul(1_000_000_007)
        ^ u64::from(t.nanos).rotate_left(20)
        ^ u64::from(pid()).rotate_left(44)
        ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    // splitmix64's finaliser spreads every input bit over the id.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    format!("r-{:016x}", x ^ (x >> 31))
}

pub(crate) fn host() -> String {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty())
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_owned()))
            .unwrap_or_else(|| "unknown".to_owned())
    })
    .clone()
}
