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

    /// This principal with its id as runs record and compare it ([`crate::value::principal_id`]):
    /// itself when it already is.
    pub fn normalized(&self) -> std::borrow::Cow<'_, Principal> {
        if value::is_principal_id(&self.id) {
            return std::borrow::Cow::Borrowed(self);
        }
        std::borrow::Cow::Owned(Principal {
            id: value::principal_id(&self.id),
            roles: self.roles.clone(),
            authenticated: self.authenticated.clone(),
        })
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
        match value::is_principal_id(id) {
            true => self.ids.contains(id),
            false => self.ids.contains(&value::principal_id(id)),
        }
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

/// A new run id: the time in milliseconds (12 hex digits), then 48 bits mixed from a seed
/// drawn once per process and a counter (12 more). Ids started later sort later, so a
/// store's indexes take new runs at their end rather than anywhere (several times fewer
/// pages written per run). Two ids collide only when drawn in the same millisecond with the
/// same 48 mixed bits: a chance of about 2⁻⁴⁸ per such pair, in one process or several.
pub(crate) fn new_run_id() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let seed = *SEED.get_or_init(|| {
        let mut bytes = [0; 8];
        // Without the system's randomness, the time and the process id still tell
        // processes apart.
        if getrandom::getrandom(&mut bytes).is_err() {
            let t = now();
            bytes = ((t.seconds as u64).wrapping_mul(1_000_000_007)
                ^ u64::from(t.nanos).rotate_left(20)
                ^ u64::from(pid()).rotate_left(44))
            .to_le_bytes();
        }
        u64::from_le_bytes(bytes)
    });
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // splitmix64: the counter's steps from the seed, spread over every bit.
    let mut x = seed.wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    let t = now();
    let ms = (t.seconds.max(0) as u64).saturating_mul(1000) + u64::from(t.nanos / 1_000_000);
    // `r-`, then each 48-bit half as 12 lowercase hexadecimal digits (written by hand: a
    // formatter costs more than the rest of the id).
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(26);
    id.push_str("r-");
    for half in [ms & 0xffff_ffff_ffff, x >> 16] {
        for shift in (0..12).rev() {
            id.push(char::from(DIGITS[((half >> (4 * shift)) & 0xf) as usize]));
        }
    }
    id
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
