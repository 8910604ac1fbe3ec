//! Sessions of the web pages: a signed cookie that says who signed in, with which API
//! token (or through the issuer, with the roles its ID token gave), and until when — nothing
//! else is kept on the server, so any server of a deployment that shares the key (`[serve]
//! session_secret_env`) takes it. Each request checks the cookie's signature, its age, and
//! that its token is still one of the deployment's and not revoked, and takes the
//! principal's roles from the principals file as it stands: revoking the token or removing
//! the principal ends the session at once. A session begun through the issuer has no token:
//! it ends at its time, or when the principal leaves the principals file where that file
//! gives the roles (`Auth::resume`).
//!
//! Forms carry a CSRF token derived from the session's nonce with the same key; the sign-in
//! form, before there is a session, one derived from a nonce cookie of its own.

use hmac::{KeyInit, Mac};
use subtle::ConstantTimeEq;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The session cookie's name: `__Host-`, so that a browser takes it only from this host,
/// over HTTPS (or from `localhost`), for every path — no sibling domain can set one.
pub const COOKIE: &str = "__Host-flow_session";
/// The cookie that holds the sign-in form's nonce, before there is a session.
pub const SIGN_IN_COOKIE: &str = "__Host-flow_sign_in";
/// How long a session lasts after sign-in.
pub const LIFETIME_SECONDS: i64 = 8 * 3600;

/// Signs and checks sessions with a key of the server's (none when this process could
/// not draw one: then nobody signs in, and the sign-in page says why).
pub struct Sessions {
    key: Result<Vec<u8>, String>,
}

/// What a session cookie says, once its signature and age are checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    pub principal: String,
    /// The id of the API token the principal signed in with (`t-…`).
    pub token: String,
    /// Seconds since 1970 when it ends.
    pub expires: i64,
    /// Random, per session: what its forms' CSRF tokens are made from.
    pub nonce: String,
}

impl Sessions {
    /// Sessions signed with `key`, or with a random key of this process when there is none
    /// (its sessions end with it, and other servers do not take them).
    /// A key shorter than 32 bytes is refused by whoever reads it (`[serve]
    /// session_secret_env`), before this.
    pub fn new(key: Option<Vec<u8>>) -> Sessions {
        let key = match key {
            Some(key) => Ok(key),
            None => random_bytes(32).map_err(|e| e.to_string()),
        };
        Sessions { key }
    }

    fn mac(&self, purpose: &str, text: &str) -> Option<String> {
        let key = self.key.as_ref().ok()?;
        let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
        mac.update(purpose.as_bytes());
        mac.update(b"\0");
        mac.update(text.as_bytes());
        Some(hex(&mac.finalize().into_bytes()))
    }

    /// A new session of `principal`, signed in with the token `token`, from `now`: the
    /// cookie's value.
    pub fn issue(&self, principal: &str, token: &str, now: i64) -> anyhow::Result<String> {
        let session = Session {
            principal: principal.to_owned(),
            token: token.to_owned(),
            expires: now + LIFETIME_SECONDS,
            nonce: hex(&random_bytes(16)?),
        };
        let payload =
            hex(format!("{}\n{}\n{}\n{}", session.principal, session.token, session.expires, session.nonce).as_bytes());
        let mac = self.mac("session", &payload).ok_or_else(|| anyhow::anyhow!("{}", self.missing()))?;
        Ok(format!("v1.{payload}.{mac}"))
    }

    /// The session a cookie's value holds, if its signature holds and it has not ended.
    pub fn check(&self, value: &str, now: i64) -> Option<Session> {
        let rest = value.strip_prefix("v1.")?;
        let (payload, mac) = rest.split_once('.')?;
        if !bool::from(self.mac("session", payload)?.as_bytes().ct_eq(mac.as_bytes())) {
            return None;
        }
        let text = String::from_utf8(unhex(payload)?).ok()?;
        let mut parts = text.split('\n');
        let (principal, token, expires, nonce) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let expires: i64 = expires.parse().ok()?;
        if parts.next().is_some() || expires <= now {
            return None;
        }
        Some(Session { principal: principal.to_owned(), token: token.to_owned(), expires, nonce: nonce.to_owned() })
    }

    /// Why there is no key, when there is none.
    fn missing(&self) -> String {
        match &self.key {
            Ok(_) => String::new(),
            Err(why) => format!("this server has no key to sign sessions with: {why}"),
        }
    }

    /// The CSRF token of the forms of a session (or of the sign-in form, by its nonce);
    /// empty without a key.
    pub fn csrf(&self, nonce: &str) -> String {
        self.mac("csrf", nonce).unwrap_or_default()
    }

    /// Whether `presented` is the CSRF token of `nonce`.
    pub fn csrf_holds(&self, nonce: &str, presented: &str) -> bool {
        let Some(expected) = self.mac("csrf", nonce) else { return false };
        !nonce.is_empty() && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
    }
}

/// A cookie's value of the `Cookie` header, by name.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').map(str::trim).find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

/// A `Set-Cookie` value: only for this server's pages, never to scripts, never over plain
/// HTTP to another site, never sent along from another site.
pub fn set_cookie(name: &str, value: &str, max_age: i64) -> String {
    format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict")
}

pub fn random_bytes(n: usize) -> anyhow::Result<Vec<u8>> {
    let mut bytes = vec![0u8; n];
    getrandom::getrandom(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for a session: {e}"))?;
    Ok(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_holds_until_it_ends_and_a_changed_one_never() {
        let sessions = Sessions::new(None);
        let value = sessions.issue("mia", "t-0123456789abcdef", 1_000).expect("randomness");
        let session = sessions.check(&value, 1_001).expect("holds");
        assert_eq!((session.principal.as_str(), session.token.as_str()), ("mia", "t-0123456789abcdef"));
        assert!(sessions.check(&value, 1_000 + LIFETIME_SECONDS).is_none(), "ended");
        // Any byte changed: refused.
        for at in 3..value.len() {
            let mut changed = value.clone().into_bytes();
            changed[at] = if changed[at] == b'0' { b'1' } else { b'0' };
            let changed = String::from_utf8(changed).expect("ascii");
            assert!(sessions.check(&changed, 1_001).is_none(), "changed at {at}: {changed}");
        }
        // Another server's key: refused.
        let other = Sessions::new(None);
        assert!(other.check(&value, 1_001).is_none());
        // A CSRF token is the session's own.
        let csrf = sessions.csrf(&session.nonce);
        assert!(sessions.csrf_holds(&session.nonce, &csrf));
        assert!(
            !sessions.csrf_holds("another", &csrf)
                && !sessions.csrf_holds(&session.nonce, "")
                && !sessions.csrf_holds("", "")
        );
        assert!(!other.csrf_holds(&session.nonce, &csrf));
    }

    #[test]
    fn cookies_are_read_by_their_whole_name() {
        let header = "a=1; __Host-flow_session_x=2; __Host-flow_session=v1.ab.cd";
        assert_eq!(cookie(header, COOKIE), Some("v1.ab.cd"));
        assert_eq!(cookie(header, "__Host-flow"), None);
    }
}
