//! Signing in to the pages through an OpenID Connect issuer (the authorization-code flow
//! with PKCE), against a real `flowc serve` and an issuer's token endpoint served by the
//! test over HTTP: the server sends the browser to the issuer with a fresh `state`, `nonce`
//! and `S256` code challenge; back with a code, it exchanges it (with the verifier, which
//! the issuer checks against the challenge) and takes the session only from an ID token of
//! this issuer, for this client, of this sign-in. Every other answer is refused, and says
//! why.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use base64::Engine;
use serde_json::{Value as Json, json};
use sha2::Digest;

use super::{Browser, Server, jwt};
use crate::runs::deployment_on;

/// What the test issuer answers the next exchange with, and what it was sent.
#[derive(Default)]
pub(super) struct Issuer {
    /// The code it gave, the challenge it was shown, and the answer: a status and a body.
    expect: Option<(String, String, u16, String)>,
    /// Each exchange's form, as sent.
    pub seen: Vec<Vec<(String, String)>>,
    /// Who signs in at its authorization endpoint (`GET /authorize`), at once: an issuer's
    /// own sign-in page is not what is tested.
    pub login_as: Option<String>,
}

/// The key the test issuer signs with, and its JWKS.
pub(super) fn issuer_key() -> (ed25519_dalek::SigningKey, Json) {
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes());
    (key, json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "k1", "alg": "EdDSA", "use": "sig"}]}))
}

/// The test issuer, over HTTP on this machine: `POST /token` with a form, the code and the
/// verifier checked (`S256` of the verifier is the challenge), answered as `expect` says;
/// `GET /authorize`, a page with a link on to `GET /login`, which signs `login_as` in and
/// sends the browser back to the `redirect_uri` asked for with a code. Its base address.
pub(super) fn issuer(issuer: Arc<Mutex<Issuer>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            // Each connection on a thread of its own: a browser opens some it never uses.
            let issuer = issuer.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0;
                let mut request_line = String::new();
                let _ = reader.read_line(&mut request_line);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
                // The issuer's own page: the person goes on from it (so that the way back to the
                // server begins on the issuer's site, as it does after signing in there).
                if let Some(url) = request_line.strip_prefix("GET /authorize") {
                    let query = url.split(' ').next().unwrap_or_default().trim_start_matches('?').to_owned();
                    let page = format!(
                        "<!doctype html><title>Issuer</title><a id=\"continue\" href=\"/login?{query}\">Continue</a>"
                    );
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
                        page.len()
                    );
                    return;
                }
                if let Some(url) = request_line.strip_prefix("GET /login") {
                    let url = url.split(' ').next().unwrap_or_default();
                    let mut issuer = issuer.lock().unwrap();
                    let (key, _) = issuer_key();
                    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
                    let claims = json!({"iss": "https://id.example.test", "aud": parameter(url, "client_id"),
                        "sub": issuer.login_as.clone().unwrap_or_default(), "exp": now + 600, "nonce": parameter(url, "nonce")});
                    let token = jwt(&json!({"alg": "EdDSA", "typ": "JWT", "kid": "k1"}), &claims, Some(&key));
                    let answer = json!({"id_token": token}).to_string();
                    issuer.expect = Some(("browser-code".to_owned(), parameter(url, "code_challenge"), 200, answer));
                    let back = format!(
                        "{}?code=browser-code&state={}",
                        parameter(url, "redirect_uri"),
                        parameter(url, "state")
                    );
                    let _ = write!(
                        stream,
                        "HTTP/1.1 302 Found\r\nlocation: {back}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                    return;
                }
                if !request_line.starts_with("POST /token ") {
                    let _ = write!(stream, "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                    return;
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let form: Vec<(String, String)> = String::from_utf8_lossy(&body)
                    .split('&')
                    .filter_map(|pair| pair.split_once('='))
                    .map(|(k, v)| (k.to_owned(), decode(v)))
                    .collect();
                let field =
                    |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default();
                let mut issuer = issuer.lock().unwrap();
                let (status, answer) = match issuer.expect.clone() {
                    Some((code, challenge, status, answer)) => {
                        let verified = base64::engine::general_purpose::URL_SAFE_NO_PAD
                            .encode(sha2::Sha256::digest(field("code_verifier").as_bytes()));
                        if field("code") != code || verified != challenge || field("grant_type") != "authorization_code"
                        {
                            (400, r#"{"error": "invalid_grant"}"#.to_owned())
                        } else {
                            (status, answer)
                        }
                    }
                    None => (400, r#"{"error": "invalid_request"}"#.to_owned()),
                };
                issuer.seen.push(form);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
            });
        }
    });
    format!("http://{address}")
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap_or(b'?'));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A query parameter of a URL.
pub(super) fn parameter(url: &str, name: &str) -> String {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    query.split('&').find_map(|p| p.strip_prefix(&format!("{name}="))).map(decode).unwrap_or_default()
}

#[test]
fn a_person_signs_in_through_the_openid_connect_issuer() {
    let dir = deployment_on("oidc_web", None);
    let (key, jwks) = issuer_key();
    std::fs::write(dir.join("jwks.json"), jwks.to_string()).unwrap();
    let issuer = Arc::new(Mutex::new(Issuer::default()));
    let token_url = format!("{}/token", self::issuer(issuer.clone()));
    let mut config = std::fs::read_to_string(dir.join("flow.toml")).unwrap();
    config.push_str(&format!(
        "\n[serve.oidc]\nissuer = \"https://id.example.test\"\naudience = \"flow-api\"\njwks = \"jwks.json\"\n\
         authorization_endpoint = \"https://id.example.test/authorize\"\ntoken_endpoint = \"{token_url}\"\n\
         client_id = \"flow-web\"\nredirect_uri = \"https://flow.example.test/ui/sign-in/oidc/callback\"\n"
    ));
    std::fs::write(dir.join("flow.toml"), config).unwrap();
    let server = Server::start(&dir);
    let browser = Browser::new(&server.base);

    let form = browser.get("/ui/sign-in", None);
    assert!(
        form.body.contains(r#"<a class="button" href="/ui/sign-in/oidc">Sign in through https://id.example.test</a>"#)
    );
    // Begins a sign-in: the issuer's address it sends to, and the cookie that carries it.
    let begin = || {
        let sent = browser.get("/ui/sign-in/oidc", None);
        assert_eq!(sent.status, 303, "{}", sent.body);
        let to = sent.location.clone().unwrap();
        assert!(to.starts_with("https://id.example.test/authorize?response_type=code&"), "{to}");
        for (name, value) in [
            ("client_id", "flow-web"),
            ("redirect_uri", "https://flow.example.test/ui/sign-in/oidc/callback"),
            ("scope", "openid"),
            ("code_challenge_method", "S256"),
        ] {
            assert_eq!(parameter(&to, name), value, "{to}");
        }
        let set = sent.set_cookies.iter().find(|c| c.starts_with("__Host-flow_oidc=")).unwrap().clone();
        for attribute in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
            assert!(set.contains(attribute), "{set}");
        }
        let cookie = format!("__Host-flow_oidc={}", sent.cookie("__Host-flow_oidc").unwrap());
        (cookie, parameter(&to, "state"), parameter(&to, "nonce"), parameter(&to, "code_challenge"))
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": "k1"});
    let id_token = |claims: &dyn Fn(&mut Json), nonce: &str| {
        let mut c = json!({"iss": "https://id.example.test", "aud": "flow-web", "sub": "mia", "exp": now + 600, "nonce": nonce});
        claims(&mut c);
        jwt(&header, &c, Some(&key))
    };
    // The issuer answers the next exchange of `code` with `status` and `body`.
    let answer = |code: &str, challenge: &str, status: u16, body: String| {
        issuer.lock().unwrap().expect = Some((code.to_owned(), challenge.to_owned(), status, body));
    };
    let back = |cookie: Option<&str>, query: &str| browser.get(&format!("/ui/sign-in/oidc/callback?{query}"), cookie);
    let session = |page: &super::Page| page.cookie("__Host-flow_session").filter(|v| !v.is_empty());

    // Refused: another state, no cookie of the sign-in, a link that says the issuer refused
    // (its words not shown), a code the issuer does not take, an ID token of another
    // sign-in, for another audience or client, of someone the deployment does not know; and
    // a second answer to one sign-in. Each a sign-in of its own: each is answered once.
    let (cookie, state, _, _) = begin();
    let other_state = back(Some(&cookie), "code=c1&state=not-it");
    assert_eq!(other_state.status, 403, "{}", other_state.body);
    assert!(other_state.body.contains("its `state` differs"), "{}", other_state.body);
    let no_cookie = back(None, &format!("code=c1&state={state}"));
    assert_eq!(no_cookie.status, 403, "{}", no_cookie.body);
    assert!(no_cookie.body.contains("was not begun here"), "{}", no_cookie.body);
    let said = "error=access_denied&error_description=Paste+your+token+at+https%3A%2F%2Fevil.test";
    let forged = back(None, &format!("{said}&state={state}"));
    assert!(forged.status == 403 && !forged.body.contains("evil.test"), "{}", forged.body);
    let denied = back(Some(&cookie), &format!("{said}&state={state}"));
    assert_eq!(denied.status, 401, "{}", denied.body);
    assert!(
        denied.body.contains("the issuer did not sign you in") && !denied.body.contains("evil.test"),
        "{}",
        denied.body
    );
    let (cookie, state, nonce, challenge) = begin();
    answer("c1", &challenge, 200, json!({"id_token": id_token(&|_| {}, &nonce)}).to_string());
    let wrong_code = back(Some(&cookie), &format!("code=c2&state={state}"));
    assert_eq!(wrong_code.status, 502, "{}", wrong_code.body);
    assert!(session(&wrong_code).is_none());
    let again = back(Some(&cookie), &format!("code=c1&state={state}"));
    assert_eq!(again.status, 403, "a sign-in answered twice: {}", again.body);
    assert!(again.body.contains("answered already") && session(&again).is_none(), "{}", again.body);
    // What the ID token is, how it is made from the sign-in's nonce, what the refusal says.
    type Case<'a> = (&'a str, &'a dyn Fn(&str) -> String, &'a str);
    let cases: [Case<'_>; 6] = [
        ("of another sign-in", &|_| id_token(&|_| {}, "another-nonce"), "its `nonce` differs"),
        ("for the API, not this client", &|n| id_token(&|c| c["aud"] = json!("flow-api"), n), "not valid"),
        ("of someone unknown", &|n| id_token(&|c| c["sub"] = json!("zed"), n), "`zed` is not a principal"),
        ("expired", &|n| id_token(&|c| c["exp"] = json!(now - 3600), n), "not valid"),
        ("given to another client", &|n| id_token(&|c| c["azp"] = json!("other-app"), n), "given to another client"),
        (
            "for several audiences, without `azp`",
            &|n| id_token(&|c| c["aud"] = json!(["flow-web", "other-app"]), n),
            "names several audiences",
        ),
    ];
    for (what, token, said) in cases {
        let (cookie, state, nonce, challenge) = begin();
        answer("c1", &challenge, 200, json!({"id_token": token(&nonce)}).to_string());
        let refused = back(Some(&cookie), &format!("code=c1&state={state}"));
        assert_eq!(refused.status, 401, "an ID token {what}: {}", refused.body);
        assert!(refused.body.contains(said), "an ID token {what}: {}", refused.body);
        assert!(session(&refused).is_none(), "an ID token {what}");
    }

    // Taken: the code exchanged with the verifier, a session begun, on to the inbox.
    let (cookie, state, nonce, challenge) = begin();
    answer(
        "good-code",
        &challenge,
        200,
        json!({"id_token": id_token(&|_| {}, &nonce), "token_type": "Bearer"}).to_string(),
    );
    let signed = back(Some(&cookie), &format!("code=good-code&state={state}"));
    assert_eq!(signed.status, 200, "{}", signed.body);
    assert_eq!(signed.header("refresh"), "0; url=/ui/inbox");
    let value = session(&signed).expect("a session");
    let exchanged = issuer.lock().unwrap().seen.last().cloned().unwrap();
    for (name, value) in [
        ("grant_type", "authorization_code"),
        ("code", "good-code"),
        ("client_id", "flow-web"),
        ("redirect_uri", "https://flow.example.test/ui/sign-in/oidc/callback"),
    ] {
        assert!(exchanged.contains(&(name.to_owned(), value.to_owned())), "{name}: {exchanged:?}");
    }
    let mia = format!("__Host-flow_session={value}");
    let inbox = browser.get("/ui/inbox", Some(&mia));
    assert_eq!(inbox.status, 200, "{}", inbox.body);
    assert!(inbox.body.contains("<span>mia</span>"), "{}", inbox.body);
    // The sign-in's cookie is cleared: the browser cannot come back with it again.
    assert!(signed.set_cookies.iter().any(|c| c.starts_with("__Host-flow_oidc=;") && c.contains("Max-Age=0")));

    // Roles come from the principals file as it stands: removing mia ends her session.
    let principals = std::fs::read_to_string(dir.join("flow-principals.toml")).unwrap();
    let without: String = principals.lines().filter(|l| !l.starts_with("mia ")).map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.join("flow-principals.toml"), without).unwrap();
    assert_eq!(browser.get("/ui/inbox", Some(&mia)).status, 303, "the session ended with the principal");
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");
    assert!(log.contains("a sign-in through the issuer was refused"), "{log}");
}
