//! Signing in to the pages through the deployment's OpenID Connect issuer: the
//! authorization-code flow with PKCE (RFC 7636, `S256`).
//!
//! `/ui/sign-in/oidc` draws a `state`, a `nonce` and a code verifier, keeps them in a cookie
//! signed with the sessions' key (ten minutes; `SameSite=Lax`, since the issuer sends the
//! browser back from another site), and sends the browser to the issuer. The issuer sends it
//! back to `/ui/sign-in/oidc/callback` with a code and the `state`; the server checks the
//! `state` against the cookie, exchanges the code (with the verifier, and the client's
//! secret when it has one) at the issuer's token endpoint, checks the ID token — signed by a
//! key of the issuer's JWKS, for this client, not expired, with the sign-in's `nonce` — and
//! begins a session as a token sign-in does. Every refusal is said on the sign-in page and
//! logged; nothing of the issuer's answer but the ID token is kept.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use serde::Deserialize;
use sha2::Digest;

use super::session::{self, COOKIE};
use super::{MessagePage, html, now, segment, sign_in_form, unavailable};
use crate::Service;
use crate::auth::Unauthenticated;

/// The cookie that carries a sign-in through the issuer, from leaving to coming back.
pub const OIDC_COOKIE: &str = "__Host-flow_oidc";
/// How long a sign-in through the issuer may take, in seconds.
const SIGN_IN_SECONDS: i64 = 600;

fn base64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The sign-in page again, with why the sign-in through the issuer did not happen.
fn refused(service: &Service, status: StatusCode, why: &str) -> Response {
    tracing::warn!(target: "flow::http", "a sign-in through the issuer was refused: {why}");
    let mut response = sign_in_form(service, status, Some(why));
    if let Ok(cookie) = HeaderValue::from_str(&session::set_cookie(OIDC_COOKIE, "", 0)) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// To the issuer, with a fresh `state`, `nonce` and code challenge.
pub(super) async fn start(State(service): State<Arc<Service>>) -> Response {
    let Some(web) = service.auth.oidc().and_then(|o| o.web.as_ref()) else {
        return refused(&service, StatusCode::NOT_FOUND, "this deployment does not sign in through an issuer");
    };
    let Ok(random) = session::random_bytes(64) else {
        return refused(&service, StatusCode::INTERNAL_SERVER_ERROR, "this server has no randomness to sign in with");
    };
    let (state, nonce, verifier) = (base64url(&random[..16]), base64url(&random[16..32]), base64url(&random[32..]));
    let kept = format!("{}.{state}.{nonce}.{verifier}", now());
    let mac = service.sessions.csrf(&format!("oidc {kept}"));
    let challenge = base64url(&sha2::Sha256::digest(verifier.as_bytes()));
    let separator = if web.authorization_endpoint.contains('?') { '&' } else { '?' };
    let location = format!(
        "{}{separator}response_type=code&client_id={}&redirect_uri={}&scope={}&state={state}&nonce={nonce}&code_challenge={challenge}&code_challenge_method=S256",
        web.authorization_endpoint,
        segment(&web.client_id),
        segment(&web.redirect_uri),
        segment(&web.scopes),
    );
    let mut response = Redirect::to(&location).into_response();
    let cookie =
        format!("{OIDC_COOKIE}={kept}.{mac}; Path=/; Max-Age={SIGN_IN_SECONDS}; HttpOnly; Secure; SameSite=Lax");
    if let Ok(cookie) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

#[derive(Deserialize)]
pub(super) struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Back from the issuer: the code exchanged, the ID token checked, a session begun.
pub(super) async fn callback(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Query(back): Query<Callback>,
) -> Response {
    let Some(web) = service.auth.oidc().and_then(|o| o.web.as_ref()) else {
        return refused(&service, StatusCode::NOT_FOUND, "this deployment does not sign in through an issuer");
    };
    // The sign-in this browser began, signed by this server, not older than ten minutes,
    // and the `state` the issuer sends back is its own — checked before anything the
    // answer says is acted on or shown.
    let cookies = headers.get(header::COOKIE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let kept = session::cookie(cookies, OIDC_COOKIE).unwrap_or_default();
    let (payload, mac) = kept.rsplit_once('.').unwrap_or_default();
    let not_begun = "this sign-in was not begun here, or it expired: sign in again";
    if !service.sessions.csrf_holds(&format!("oidc {payload}"), mac) {
        return refused(&service, StatusCode::FORBIDDEN, not_begun);
    }
    let parts: Vec<&str> = payload.split('.').collect();
    let [made, state, nonce, verifier] = parts.as_slice() else {
        return refused(&service, StatusCode::FORBIDDEN, not_begun);
    };
    let age = made.parse::<i64>().ok().and_then(|at| now().checked_sub(at));
    if !age.is_some_and(|age| (0..=SIGN_IN_SECONDS).contains(&age)) {
        return refused(&service, StatusCode::FORBIDDEN, not_begun);
    }
    if back.state.as_deref() != Some(*state) {
        return refused(
            &service,
            StatusCode::FORBIDDEN,
            "the issuer's answer is not of this sign-in (its `state` differs)",
        );
    }
    // Each sign-in answered once: a second answer with its `state` (a replayed callback) is
    // refused before the issuer is asked anything.
    match service.pages.sign_ins.first_answer(state, now()) {
        Answer::First => {}
        Answer::Again => {
            return refused(&service, StatusCode::FORBIDDEN, "this sign-in was answered already: sign in again");
        }
        Answer::Full => {
            return refused(
                &service,
                StatusCode::SERVICE_UNAVAILABLE,
                "too many sign-ins at once: try again in a moment",
            );
        }
    }
    if let Some(error) = &back.error {
        // The issuer's own words go to the log only (escaped): a link can carry any text.
        let said = back.error_description.as_deref().unwrap_or_default();
        tracing::warn!(target: "flow::http", "the issuer refused a sign-in: {error:?} {said:?}");
        return refused(&service, StatusCode::UNAUTHORIZED, "the issuer did not sign you in; sign in again");
    }
    let Some(code) = back.code.filter(|c| !c.is_empty()) else {
        return refused(&service, StatusCode::BAD_REQUEST, "the issuer sent no code");
    };
    // At most a few exchanges at once: each holds a thread while the issuer answers.
    let Some(exchanging) = service.pages.sign_ins.exchange() else {
        return refused(&service, StatusCode::SERVICE_UNAVAILABLE, "too many sign-ins at once: try again in a moment");
    };
    // The code exchanged at the issuer's token endpoint, off the asynchronous runtime.
    let (endpoint, client_id, secret, redirect_uri) =
        (web.token_endpoint.clone(), web.client_id.clone(), web.client_secret.clone(), web.redirect_uri.clone());
    let verifier = verifier.to_string();
    let exchanged = tokio::task::spawn_blocking(move || {
        // Held until the exchange is over, even when the request that began it is gone.
        let _exchanging = exchanging;
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(std::time::Duration::from_secs(10)))
            .http_status_as_error(false)
            .build();
        let agent = ureq::Agent::new_with_config(config);
        let mut form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("client_id", client_id),
            ("code_verifier", verifier),
        ];
        if let Some(secret) = secret {
            form.push(("client_secret", secret));
        }
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut response = agent.post(&endpoint).send_form(form).map_err(|e| format!("`{endpoint}`: {e}"))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(1024 * 1024)
            .read_to_string()
            .map_err(|e| format!("`{endpoint}`: {e}"))?;
        if status != 200 {
            let shown: String = text.chars().take(200).collect();
            return Err(format!("`{endpoint}` answered {status}: {shown:?}"));
        }
        let answer: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("`{endpoint}` did not answer JSON: {e}"))?;
        answer["id_token"].as_str().map(str::to_owned).ok_or_else(|| format!("`{endpoint}` sent no `id_token`"))
    })
    .await;
    let id_token = match exchanged {
        Ok(Ok(token)) => token,
        Ok(Err(why)) => {
            tracing::error!(target: "flow::http", "the issuer's token endpoint: {why}");
            return refused(
                &service,
                StatusCode::BAD_GATEWAY,
                "the issuer did not answer as expected; its log says why",
            );
        }
        Err(_) => return refused(&service, StatusCode::INTERNAL_SERVER_ERROR, "the sign-in stopped"),
    };
    let (caller, kept) = match service.auth.sign_in_oidc(&id_token, nonce) {
        Ok(signed) => signed,
        Err(Unauthenticated::Unavailable(why)) => return unavailable(&why).into_response(),
        Err(Unauthenticated::Rejected(why)) => return refused(&service, StatusCode::UNAUTHORIZED, &why),
        Err(Unauthenticated::Missing) => return refused(&service, StatusCode::UNAUTHORIZED, "no ID token"),
    };
    let value = match service.sessions.issue(&caller.principal.id, &kept, now()) {
        Ok(value) => value,
        Err(e) => return refused(&service, StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    // A page of this site that goes on to the inbox: the browser came here from the
    // issuer's site, and does not send a `SameSite=Strict` cookie along that navigation,
    // but does along one this page begins.
    let page = MessagePage {
        signed_in: None,
        title: "Signed in",
        message: &format!("Signed in as {}. On to your inbox…", caller.principal.id),
    };
    let mut response = html(StatusCode::OK, &page);
    let headers = response.headers_mut();
    headers.insert(header::HeaderName::from_static("refresh"), HeaderValue::from_static("0; url=/ui/inbox"));
    for cookie in
        [session::set_cookie(COOKIE, &value, session::LIFETIME_SECONDS), session::set_cookie(OIDC_COOKIE, "", 0)]
    {
        if let Ok(cookie) = HeaderValue::from_str(&cookie) {
            headers.append(header::SET_COOKIE, cookie);
        }
    }
    response
}

/// The sign-ins through the issuer under way: the `state`s answered in the last ten minutes
/// (each is taken once), and how many codes are being exchanged.
#[derive(Default)]
pub struct SignIns {
    /// The `state`s answered, and the same in the order they were (to forget the oldest).
    answered: std::sync::Mutex<Answered>,
    exchanging: Arc<std::sync::atomic::AtomicUsize>,
}

/// The `state`s answered, and when, oldest first.
type Answered = (std::collections::HashSet<String>, std::collections::VecDeque<(i64, String)>);

/// How many sign-ins one server remembers as answered (each for ten minutes): more at once
/// are refused until the oldest are forgotten, so that answers cannot fill its memory.
const REMEMBERED: usize = 100_000;

/// Whether an answer to a sign-in is its first.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    First,
    Again,
    /// Too many sign-ins are remembered: refused for now.
    Full,
}

/// How many codes one server exchanges at once.
const EXCHANGES: usize = 8;

/// A code being exchanged; the count goes down when it is dropped.
pub struct Exchanging(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Exchanging {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl SignIns {
    /// Whether this is the first answer to the sign-in of `state` (forgetting those older
    /// than a sign-in may take).
    fn first_answer(&self, state: &str, now: i64) -> Answer {
        let mut guard = self.answered.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (answered, order) = &mut *guard;
        while let Some((at, _)) = order.front()
            && now.saturating_sub(*at) > SIGN_IN_SECONDS
        {
            if let Some((_, old)) = order.pop_front() {
                answered.remove(&old);
            }
        }
        if answered.contains(state) {
            return Answer::Again;
        }
        if answered.len() >= REMEMBERED {
            return Answer::Full;
        }
        answered.insert(state.to_owned());
        order.push_back((now, state.to_owned()));
        Answer::First
    }

    /// A place among the exchanges under way, unless `EXCHANGES` are.
    fn exchange(&self) -> Option<Exchanging> {
        let before = self.exchanging.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let taken = Exchanging(Arc::clone(&self.exchanging));
        (before < EXCHANGES).then_some(taken)
    }
}

#[cfg(test)]
mod tests {
    use super::{Answer, EXCHANGES, REMEMBERED, SIGN_IN_SECONDS, SignIns};

    #[test]
    fn a_sign_in_is_answered_once_and_few_are_exchanged_at_once() {
        let sign_ins = SignIns::default();
        assert_eq!(sign_ins.first_answer("s1", 1_000), Answer::First);
        assert_eq!(sign_ins.first_answer("s1", 1_001), Answer::Again, "a second answer");
        assert_eq!(sign_ins.first_answer("s2", 1_001), Answer::First);
        // Forgotten once no sign-in could still be answered (its cookie has ended).
        assert_eq!(sign_ins.first_answer("s1", 1_000 + SIGN_IN_SECONDS + 1), Answer::First);
        let taken: Vec<_> = (0..EXCHANGES).map(|_| sign_ins.exchange().expect("a place")).collect();
        assert!(sign_ins.exchange().is_none(), "one more than the places");
        drop(taken);
        assert!(sign_ins.exchange().is_some(), "places given back");
    }

    #[test]
    fn answers_cannot_fill_the_servers_memory() {
        let sign_ins = SignIns::default();
        for n in 0..REMEMBERED {
            assert_eq!(sign_ins.first_answer(&format!("s{n}"), 1_000), Answer::First);
        }
        assert_eq!(sign_ins.first_answer("one-more", 1_001), Answer::Full);
        assert_eq!(sign_ins.first_answer("s7", 1_001), Answer::Again, "still remembered");
        // Once the oldest are forgotten, sign-ins are taken again.
        assert_eq!(sign_ins.first_answer("one-more", 1_000 + SIGN_IN_SECONDS + 1), Answer::First);
    }
}
