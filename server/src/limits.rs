//! What one principal may ask of a server: requests at once, and requests a second (a
//! token bucket holding a second's worth). Past either, a request is answered `429` with
//! `Retry-After` before it does any work. Counted per server process, by principal id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The limits of `[serve]`.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Requests of one principal handled at once.
    pub concurrent: usize,
    /// Requests of one principal a second, on average (none: no such limit); a second's worth
    /// may come at once.
    pub per_second: Option<f64>,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { concurrent: 256, per_second: None }
    }
}

#[derive(Debug)]
struct Account {
    running: usize,
    tokens: f64,
    at: Instant,
}

/// The principals' accounts against [`Limits`].
#[derive(Default)]
pub struct Gate {
    limits: Limits,
    accounts: Mutex<HashMap<String, Account>>,
}

/// A request let through: the principal's count of requests at once goes down when it is
/// dropped (the request answered).
pub struct Permit {
    gate: Arc<Gate>,
    principal: String,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut accounts = self.gate.lock();
        if let Some(account) = accounts.get_mut(&self.principal) {
            account.running = account.running.saturating_sub(1);
        }
    }
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Permit({})", self.principal)
    }
}

/// Why a request was not let through, and in how many seconds to try again.
#[derive(Debug, PartialEq)]
pub struct Exceeded {
    pub why: String,
    pub retry_after: u64,
}

impl Gate {
    pub fn new(limits: Limits) -> Gate {
        Gate { limits, accounts: Mutex::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Account>> {
        self.accounts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Lets a request of `principal` through, or says why not.
    pub fn enter(self: &Arc<Gate>, principal: &str) -> Result<Permit, Exceeded> {
        let now = Instant::now();
        let burst = self.limits.per_second.unwrap_or(0.0).max(1.0);
        let mut accounts = self.lock();
        // Accounts of principals with nothing running and a full bucket are forgotten, so the
        // map holds only those who asked lately.
        if accounts.len() > 1024 {
            let rate = self.limits.per_second;
            accounts.retain(|_, a| {
                a.running > 0 || rate.is_some_and(|r| a.tokens + now.duration_since(a.at).as_secs_f64() * r < burst)
            });
        }
        let account =
            accounts.entry(principal.to_owned()).or_insert_with(|| Account { running: 0, tokens: burst, at: now });
        if account.running >= self.limits.concurrent {
            return Err(Exceeded {
                why: format!(
                    "{principal} has {} requests in progress, as many as this server takes of one principal at once",
                    account.running
                ),
                retry_after: 1,
            });
        }
        if let Some(rate) = self.limits.per_second {
            account.tokens = (account.tokens + now.duration_since(account.at).as_secs_f64() * rate).min(burst);
            account.at = now;
            if account.tokens < 1.0 {
                let wait = ((1.0 - account.tokens) / rate).ceil().max(1.0) as u64;
                return Err(Exceeded {
                    why: format!("{principal} asked more than {rate} requests a second of this server"),
                    retry_after: wait,
                });
            }
            account.tokens -= 1.0;
        }
        account.running += 1;
        Ok(Permit { gate: self.clone(), principal: principal.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_at_once_and_a_second_are_limited_per_principal() {
        let gate = Arc::new(Gate::new(Limits { concurrent: 2, per_second: Some(3.0) }));
        let first = gate.enter("ana").expect("first");
        let second = gate.enter("ana").expect("second");
        let third = gate.enter("ana").expect_err("a third at once");
        assert!(third.why.contains("2 requests in progress"), "{third:?}");
        assert!(gate.enter("bob").is_ok(), "another principal is counted apart");
        drop(first);
        // The bucket held three: two taken, one left.
        let again = gate.enter("ana").expect("one left in the bucket");
        drop((second, again));
        let exceeded = gate.enter("ana").expect_err("the bucket is empty");
        assert_eq!(exceeded.retry_after, 1);
        assert!(exceeded.why.contains("3 requests a second"), "{exceeded:?}");
    }
}
