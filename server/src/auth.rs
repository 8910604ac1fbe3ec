//! Who calls: every request but health, readiness and the API's description carries a
//! bearer token, either an API token of the deployment (kept as a SHA-256 hash in the
//! tokens file, revocable) or a JWT of the configured OpenID Connect issuer, checked here
//! against the issuer's keys (a JWKS file), audience and expiry. The principal's roles come
//! from the principals file, or from a configured claim of the JWT. Nothing a request's
//! body says about who acts is believed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use anyhow::{Context, bail};
use flow_runtime::Principal;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Who a request comes from, and how they proved it.
#[derive(Clone, Debug)]
pub struct Caller {
    pub principal: Principal,
    /// Counts the request against the principal's limits while it is handled.
    pub permit: Option<Arc<crate::limits::Permit>>,
    /// `token t-…` (an API token, by its id) or `oidc ISSUER`.
    pub method: String,
}

/// Why a request is not authenticated: said in the 401's problem details. Never says
/// whether a token id exists.
#[derive(Debug)]
pub enum Unauthenticated {
    /// No `Authorization: Bearer …` header.
    Missing,
    /// The token is not one the deployment accepts, with why (for the caller).
    Rejected(String),
    /// The deployment's files (tokens, principals) cannot be read: nobody is let in.
    Unavailable(String),
}

/// The principals file: who holds which roles.
#[derive(Deserialize)]
struct PrincipalsFile {
    principals: BTreeMap<String, Vec<String>>,
}

/// Reads a principals file (`[principals]`, `id = ["role", …]`).
pub fn read_principals(path: &Path) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the principals file `{}`", path.display()))?;
    let file: PrincipalsFile =
        toml::from_str(&text).with_context(|| format!("the principals file `{}` is not valid", path.display()))?;
    Ok(file.principals)
}

/// A file read again whenever it changes (its modification time or length), so that a
/// token revoked or a role taken away holds from the next request on, without a restart.
/// A file that cannot be read or parsed any more lets nobody in until it is put right.
struct Watched<T> {
    path: PathBuf,
    parse: fn(&Path) -> anyhow::Result<T>,
    seen: Mutex<Option<Seen<T>>>,
}

/// A file's modification time and length when it was read, and what it held.
type Seen<T> = (Option<SystemTime>, u64, Arc<T>);

impl<T> Watched<T> {
    fn new(path: PathBuf, parse: fn(&Path) -> anyhow::Result<T>) -> anyhow::Result<Watched<T>> {
        let watched = Watched { path, parse, seen: Mutex::new(None) };
        watched.get()?;
        Ok(watched)
    }

    /// What the file held when it was last read (no look at the file).
    fn last(&self) -> Option<Arc<T>> {
        self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).as_ref().map(|(_, _, v)| v.clone())
    }

    fn get(&self) -> anyhow::Result<Arc<T>> {
        let metadata = std::fs::metadata(&self.path);
        let stamp = metadata.as_ref().map(|m| (m.modified().ok(), m.len())).unwrap_or((None, 0));
        let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((modified, len, value)) = &*seen
            && (*modified, *len) == stamp
            && metadata.is_ok()
        {
            return Ok(value.clone());
        }
        *seen = None;
        let value = Arc::new((self.parse)(&self.path)?);
        *seen = Some((stamp.0, stamp.1, value.clone()));
        Ok(value)
    }
}

/// The tokens file: API tokens of the deployment, each kept as the SHA-256 of the token
/// (the token itself is shown once, when it is created, and kept nowhere).
#[derive(Serialize, Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
pub struct TokenFile {
    #[serde(default, rename = "token")]
    pub tokens: Vec<TokenEntry>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// Public: names the token in lists, logs and evidence (`t-` and 16 hex digits).
    pub id: String,
    pub principal: String,
    /// SHA-256 of the whole token, hex.
    pub sha256: String,
    /// When it was created (RFC 3339).
    pub created: String,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// When it was revoked (RFC 3339); a revoked token lets nobody in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<String>,
}

const TOKEN_PREFIX: &str = "flow_";

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn random_hex(bytes: usize) -> anyhow::Result<String> {
    let mut buffer = vec![0u8; bytes];
    getrandom::getrandom(&mut buffer).map_err(|e| anyhow::anyhow!("no randomness for a token: {e}"))?;
    Ok(buffer.iter().map(|b| format!("{b:02x}")).collect())
}

impl TokenFile {
    /// Reads a tokens file; one that does not exist holds no tokens.
    pub fn read(path: &Path) -> anyhow::Result<TokenFile> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(TokenFile::default()),
            Err(error) => {
                return Err(error).with_context(|| format!("cannot read the tokens file `{}`", path.display()));
            }
        };
        let file: TokenFile =
            toml::from_str(&text).with_context(|| format!("the tokens file `{}` is not valid", path.display()))?;
        for token in &file.tokens {
            let hex = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
            if !hex(&token.sha256) {
                bail!("the tokens file `{}`: token `{}` has no SHA-256 (64 hex digits)", path.display(), token.id);
            }
        }
        Ok(file)
    }

    /// Reads the file, changes it with `change` and writes it back, holding an exclusive lock
    /// on a file beside it (`….toml.lock`) throughout, so that two commands changing the
    /// tokens at once both land; `change`'s answer, when it says to write.
    pub fn change<T>(
        path: &Path,
        change: impl FnOnce(&mut TokenFile) -> anyhow::Result<Option<T>>,
    ) -> anyhow::Result<Option<T>> {
        let lock_path = path.with_extension("toml.lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("cannot open the lock file `{}`", lock_path.display()))?;
        lock.lock().with_context(|| format!("cannot lock `{}`", lock_path.display()))?;
        let mut file = TokenFile::read(path)?;
        let answer = change(&mut file)?;
        if answer.is_some() {
            file.write(path)?;
        }
        Ok(answer)
    }

    /// Writes the file whole, readable by its owner only: to a file beside it, then
    /// renamed over it, so that a server reading it never sees half of it.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let text = format!(
            "# API tokens of the deployment, written by `flowc token`. Only their SHA-256 hashes\n\
             # are kept: a token is shown once, when it is created.\n\n{}",
            toml::to_string(self).context("cannot write the tokens file")?
        );
        let temporary = path.with_extension("toml.new");
        {
            use std::io::Write;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file =
                options.open(&temporary).with_context(|| format!("cannot write `{}`", temporary.display()))?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
        }
        std::fs::rename(&temporary, path).with_context(|| format!("cannot replace `{}`", path.display()))
    }

    /// A new token for `principal`: returns the token, which is not kept.
    pub fn create(&mut self, principal: &str, note: Option<String>, now: &str) -> anyhow::Result<(String, String)> {
        let id = format!("t-{}", random_hex(8)?);
        let token = format!("{TOKEN_PREFIX}{id}_{}", random_hex(32)?);
        self.tokens.push(TokenEntry {
            id: id.clone(),
            principal: principal.to_owned(),
            sha256: sha256_hex(&token),
            created: now.to_owned(),
            note,
            revoked: None,
        });
        Ok((id, token))
    }

    /// Revokes the token `id`; false when there is none (or it was revoked already).
    pub fn revoke(&mut self, id: &str, now: &str) -> bool {
        match self.tokens.iter_mut().find(|t| t.id == id && t.revoked.is_none()) {
            Some(token) => {
                token.revoked = Some(now.to_owned());
                true
            }
            None => false,
        }
    }

    /// The entry of a presented token, if it is one of the file's and not revoked.
    fn check(&self, token: &str) -> Result<&TokenEntry, String> {
        let invalid = || "the token is not one of this deployment's, or it was revoked".to_owned();
        let id = token.strip_prefix(TOKEN_PREFIX).and_then(|rest| rest.split_once('_')).map(|(id, _)| id);
        let Some(entry) = id.and_then(|id| self.tokens.iter().find(|t| t.id == id)) else { return Err(invalid()) };
        let presented = sha256_hex(token);
        // Compared in constant time, though only a hash of a 256-bit secret is at stake.
        if !bool::from(presented.as_bytes().ct_eq(entry.sha256.to_ascii_lowercase().as_bytes())) {
            return Err(invalid());
        }
        if entry.revoked.is_some() {
            return Err(invalid());
        }
        Ok(entry)
    }
}

/// The OpenID Connect issuer whose JWTs are accepted as bearer tokens.
pub struct Oidc {
    pub issuer: String,
    pub audience: String,
    keys: JwkSet,
    /// The claim that names the principal (default `sub`).
    pub principal_claim: String,
    /// The claim that lists the principal's roles; without one, roles come from the
    /// principals file, which must list the principal.
    pub roles_claim: Option<String>,
    /// Sign-in to the web pages through the issuer (the authorization-code flow), when
    /// configured.
    pub web: Option<OidcWeb>,
}

/// The web pages' sign-in through an OpenID Connect issuer: the authorization-code flow
/// with PKCE, the ID token checked with the issuer's keys for `client_id`.
pub struct OidcWeb {
    /// Where the browser is sent to sign in.
    pub authorization_endpoint: String,
    /// Where the server exchanges the code for the ID token.
    pub token_endpoint: String,
    pub client_id: String,
    /// The client's secret, for an issuer that wants one (`client_secret_post`).
    pub client_secret: Option<String>,
    /// This server's callback as the issuer knows it: `https://HOST/ui/sign-in/oidc/callback`.
    pub redirect_uri: String,
    /// The scopes asked for, `openid` among them (more where the principal's or the roles'
    /// claim needs them: `openid email`).
    pub scopes: String,
}

impl OidcWeb {
    /// The web sign-in, its endpoints checked: HTTPS, or plain HTTP only to this machine
    /// (`localhost`, `127.0.0.1`, `[::1]`), and never with a user name in the address.
    pub fn new(
        authorization_endpoint: &str,
        token_endpoint: &str,
        client_id: &str,
        client_secret: Option<String>,
        redirect_uri: &str,
        scopes: Option<&str>,
    ) -> anyhow::Result<OidcWeb> {
        for (name, url) in [("authorization_endpoint", authorization_endpoint), ("token_endpoint", token_endpoint)] {
            let parsed: axum::http::Uri =
                url.parse().map_err(|e| anyhow::anyhow!("`[serve.oidc] {name}` is not an address: {e}"))?;
            let authority = parsed.authority().map(|a| a.as_str()).unwrap_or_default();
            let host = parsed.host().unwrap_or_default();
            let local = ["localhost", "127.0.0.1", "[::1]", "::1"].contains(&host);
            let fit = match parsed.scheme_str() {
                Some("https") => true,
                Some("http") => local,
                _ => false,
            };
            if !fit || authority.contains('@') || host.is_empty() {
                bail!(
                    "`[serve.oidc] {name}` is `{url}`: the issuer is reached over HTTPS (plain HTTP only on this \
                     machine), at an address without a user name"
                );
            }
        }
        let scopes = scopes.unwrap_or("openid").to_owned();
        if !scopes.split_whitespace().any(|s| s == "openid") {
            bail!("`[serve.oidc] scopes` is `{scopes}`: an OpenID Connect sign-in asks for `openid`");
        }
        Ok(OidcWeb {
            authorization_endpoint: authorization_endpoint.to_owned(),
            token_endpoint: token_endpoint.to_owned(),
            client_id: client_id.to_owned(),
            client_secret,
            redirect_uri: redirect_uri.to_owned(),
            scopes,
        })
    }
}

/// Only signatures by a key pair: a symmetric algorithm with keys that are published is a
/// forgery waiting to happen.
const ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

impl Oidc {
    /// The issuer `issuer`, for `audience`, with its keys read from the JWKS file `jwks`.
    pub fn new(issuer: &str, audience: &str, jwks: &Path) -> anyhow::Result<Oidc> {
        // One cryptography backend is built in; make it the process's.
        let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
        let text = std::fs::read_to_string(jwks)
            .with_context(|| format!("cannot read the issuer's keys (JWKS) `{}`", jwks.display()))?;
        let keys: JwkSet = serde_json::from_str(&text)
            .with_context(|| format!("`{}` is not a JWKS (`{{\"keys\": [...]}}`)", jwks.display()))?;
        if keys.keys.is_empty() {
            bail!("`{}` holds no keys", jwks.display());
        }
        for key in &keys.keys {
            if matches!(key.algorithm, jsonwebtoken::jwk::AlgorithmParameters::OctetKey(_)) {
                bail!(
                    "`{}` holds a symmetric key (`oct`): only public keys of the issuer are accepted",
                    jwks.display()
                );
            }
            DecodingKey::from_jwk(key)
                .with_context(|| format!("`{}` holds a key that cannot be used", jwks.display()))?;
        }
        Ok(Oidc {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            keys,
            principal_claim: "sub".to_owned(),
            roles_claim: None,
            web: None,
        })
    }

    /// The principal and (with a roles claim) the roles a JWT names, once its signature,
    /// issuer, audience and times check out.
    fn check(&self, token: &str) -> Result<(String, Option<Vec<String>>), String> {
        self.check_for(token, &self.audience, None)
    }

    /// The principal and roles an ID token of the web sign-in names: as [`Oidc::check`],
    /// for the web client's id as the audience, and with the `nonce` the sign-in sent.
    pub fn check_id_token(&self, token: &str, nonce: &str) -> Result<(String, Option<Vec<String>>), String> {
        let Some(web) = &self.web else { return Err("this deployment has no web sign-in through its issuer".into()) };
        self.check_for(token, &web.client_id, Some(nonce))
    }

    fn check_for(
        &self,
        token: &str,
        audience: &str,
        nonce: Option<&str>,
    ) -> Result<(String, Option<Vec<String>>), String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| format!("the token is not a JWT: {e}"))?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(format!("tokens signed with {:?} are not accepted", header.alg));
        }
        let key = match &header.kid {
            Some(kid) => self.keys.find(kid),
            None if self.keys.keys.len() == 1 => self.keys.keys.first(),
            None => None,
        }
        .ok_or("the token names no key of the issuer (`kid`)")?;
        if let Some(alg) = key.common.key_algorithm
            && format!("{alg:?}") != format!("{:?}", header.alg)
        {
            return Err(format!("the issuer's key `{}` is not for {:?}", header.kid.unwrap_or_default(), header.alg));
        }
        let decoding = DecodingKey::from_jwk(key).map_err(|e| format!("the issuer's key cannot be used: {e}"))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = 30;
        validation.validate_nbf = true;
        let data = jsonwebtoken::decode::<serde_json::Map<String, Json>>(token, &decoding, &validation)
            .map_err(|e| format!("the token is not valid: {e}"))?;
        let claims = data.claims;
        if let Some(nonce) = nonce {
            if claims.get("nonce").and_then(Json::as_str) != Some(nonce) {
                return Err("the ID token is not of this sign-in (its `nonce` differs)".to_owned());
            }
            // Issued to this client (OpenID Connect Core 3.1.3.7): an ID token for several
            // audiences names the one it was given to, and that is this client.
            let audiences = claims.get("aud").and_then(Json::as_array).map_or(1, Vec::len);
            match claims.get("azp").and_then(Json::as_str) {
                Some(azp) if azp != audience => {
                    return Err(format!("the ID token was given to another client (`azp` {azp})"));
                }
                None if audiences > 1 => {
                    return Err(
                        "the ID token names several audiences but not the client it was given to (`azp`)".into()
                    );
                }
                _ => {}
            }
        }
        let principal = claims
            .get(&self.principal_claim)
            .and_then(Json::as_str)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| format!("the token has no `{}` claim naming the principal", self.principal_claim))?;
        // An address the person could set to anyone's names nobody: the issuer must say it
        // verified it.
        if self.principal_claim == "email" && claims.get("email_verified") != Some(&Json::Bool(true)) {
            return Err("the token's `email` is not verified by the issuer (`email_verified`)".into());
        }
        let roles = match &self.roles_claim {
            None => None,
            Some(claim) => Some(
                claims
                    .get(claim)
                    .and_then(Json::as_array)
                    .map(|roles| roles.iter().filter_map(Json::as_str).map(str::to_owned).collect())
                    .ok_or_else(|| format!("the token has no `{claim}` claim listing roles"))?,
            ),
        };
        Ok((principal.to_owned(), roles))
    }
}

/// How a deployment authenticates callers.
pub struct Auth {
    principals: Watched<BTreeMap<String, Vec<String>>>,
    tokens: Option<Watched<TokenFile>>,
    oidc: Option<Oidc>,
}

impl Auth {
    /// Principals from the principals file `principals`; no way in yet: add tokens or an
    /// issuer.
    pub fn new(principals: &Path) -> anyhow::Result<Auth> {
        Ok(Auth { principals: Watched::new(principals.to_owned(), read_principals)?, tokens: None, oidc: None })
    }

    /// Accepts the API tokens of the tokens file `path` (read again when it changes).
    pub fn with_tokens(mut self, path: &Path) -> anyhow::Result<Auth> {
        self.tokens = Some(Watched::new(path.to_owned(), TokenFile::read)?);
        Ok(self)
    }

    /// Accepts JWTs of `oidc`.
    pub fn with_oidc(mut self, oidc: Oidc) -> Auth {
        self.oidc = Some(oidc);
        self
    }

    /// Whether any way in is configured.
    pub fn admits_anyone(&self) -> bool {
        self.tokens.is_some() || self.oidc.is_some()
    }

    /// The principals file as the last authentication read it (no look at the file).
    pub fn principals_read(&self) -> Option<Arc<BTreeMap<String, Vec<String>>>> {
        self.principals.last()
    }

    /// Who sends the `Authorization` header `header`.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Caller, Unauthenticated> {
        let Some(header) = header else { return Err(Unauthenticated::Missing) };
        // The scheme's name is case-insensitive (RFC 9110).
        let token =
            header.split_once(' ').filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer")).map(|(_, t)| t.trim());
        let Some(token) = token else {
            return Err(Unauthenticated::Rejected("the `Authorization` header is not `Bearer TOKEN`".to_owned()));
        };
        let unavailable = |e: anyhow::Error| Unauthenticated::Unavailable(format!("{e:#}"));
        let principals = self.principals.get().map_err(unavailable)?;
        let known = |id: &str| {
            principals.get(id).cloned().ok_or_else(|| {
                Unauthenticated::Rejected(format!("`{id}` is not a principal of this deployment (the principals file)"))
            })
        };
        if token.starts_with(TOKEN_PREFIX) {
            let Some(tokens) = &self.tokens else {
                return Err(Unauthenticated::Rejected("this deployment accepts no API tokens".to_owned()));
            };
            let tokens = tokens.get().map_err(unavailable)?;
            let entry = tokens.check(token).map_err(Unauthenticated::Rejected)?;
            let roles = known(&entry.principal)?;
            let method = format!("token {}", entry.id);
            let principal = Principal { id: entry.principal.clone(), roles, authenticated: Some(method.clone()) };
            return Ok(Caller { principal, method, permit: None });
        }
        let Some(oidc) = &self.oidc else {
            return Err(Unauthenticated::Rejected("the token is not an API token of this deployment".to_owned()));
        };
        let (id, roles) = oidc.check(token).map_err(Unauthenticated::Rejected)?;
        let roles = match roles {
            Some(roles) => roles,
            None => known(&id)?,
        };
        let method = format!("oidc {}", oidc.issuer);
        Ok(Caller { principal: Principal { id, roles, authenticated: Some(method.clone()) }, method, permit: None })
    }

    /// Who a web session of `principal`, begun with the API token `token` (its id), is now:
    /// refused when the token was revoked or is gone, or names another principal, or the
    /// principal left the principals file; the roles as the file now says.
    pub fn resume(&self, principal: &str, token: &str) -> Result<Caller, Unauthenticated> {
        let unavailable = |e: anyhow::Error| Unauthenticated::Unavailable(format!("{e:#}"));
        let ended = || Unauthenticated::Rejected("the session ended: sign in again".to_owned());
        if let Some(roles) = token.strip_prefix(OIDC_SESSION) {
            return self.resume_oidc(principal, roles);
        }
        let Some(tokens) = &self.tokens else { return Err(ended()) };
        let tokens = tokens.get().map_err(unavailable)?;
        let live = tokens.tokens.iter().any(|t| t.id == token && t.principal == principal && t.revoked.is_none());
        if !live {
            return Err(ended());
        }
        let principals = self.principals.get().map_err(unavailable)?;
        let roles = principals.get(principal).cloned().ok_or_else(ended)?;
        let method = format!("token {token}");
        let principal = Principal { id: principal.to_owned(), roles, authenticated: Some(method.clone()) };
        Ok(Caller { principal, method, permit: None })
    }

    /// A web session begun through the issuer: `roles` (space-separated) as the ID token's
    /// roles claim said at sign-in, when the issuer gives roles; else the principal must be
    /// in the principals file, with its roles as it says now.
    fn resume_oidc(&self, principal: &str, roles: &str) -> Result<Caller, Unauthenticated> {
        let ended = || Unauthenticated::Rejected("the session ended: sign in again".to_owned());
        let Some(oidc) = self.oidc.as_ref().filter(|o| o.web.is_some()) else { return Err(ended()) };
        let roles = match &oidc.roles_claim {
            Some(_) => roles.split_whitespace().map(str::to_owned).collect(),
            None => {
                let principals = self.principals.get().map_err(|e| Unauthenticated::Unavailable(format!("{e:#}")))?;
                principals.get(principal).cloned().ok_or_else(ended)?
            }
        };
        let method = format!("oidc {}", oidc.issuer);
        let principal = Principal { id: principal.to_owned(), roles, authenticated: Some(method.clone()) };
        Ok(Caller { principal, method, permit: None })
    }

    /// The issuer, when the deployment has one.
    pub fn oidc(&self) -> Option<&Oidc> {
        self.oidc.as_ref()
    }

    /// Who signed in through the issuer with `id_token`, whose `nonce` is the sign-in's: the
    /// caller, and what the session keeps in place of a token's id.
    pub fn sign_in_oidc(&self, id_token: &str, nonce: &str) -> Result<(Caller, String), Unauthenticated> {
        let Some(oidc) = &self.oidc else {
            return Err(Unauthenticated::Rejected("this deployment has no OpenID Connect issuer".to_owned()));
        };
        let (id, claimed) = oidc.check_id_token(id_token, nonce).map_err(Unauthenticated::Rejected)?;
        if id.contains(char::is_whitespace)
            || claimed.iter().flatten().any(|r| r.contains(char::is_whitespace) || r.is_empty())
        {
            return Err(Unauthenticated::Rejected("the ID token names a principal or role with spaces".to_owned()));
        }
        let kept = format!("{OIDC_SESSION}{}", claimed.as_deref().unwrap_or_default().join(" "));
        let caller = self.resume_oidc(&id, kept.strip_prefix(OIDC_SESSION).unwrap_or_default()).map_err(|_| {
            Unauthenticated::Rejected(format!("`{id}` is not a principal of this deployment (the principals file)"))
        })?;
        Ok((caller, kept))
    }
}

/// What a web session begun through the issuer keeps in place of an API token's id: this,
/// then the roles the ID token gave (when the issuer gives roles).
const OIDC_SESSION: &str = "oidc:";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issuers_endpoints_are_reached_over_https_or_on_this_machine() {
        let web = |url: &str| OidcWeb::new(url, url, "flow-web", None, "https://flow.test/cb", None);
        for taken in
            ["https://id.example.com/token", "http://127.0.0.1:8080/token", "http://localhost/t", "http://[::1]:9/t"]
        {
            assert!(web(taken).is_ok(), "{taken}");
        }
        for refused in [
            "http://id.example.com/token",
            "http://localhost.evil.com/token",
            "http://localhost@evil.com/token",
            "https://user:secret@id.example.com/token",
            "http://127.0.0.1.nip.io/token",
            "ftp://localhost/token",
            "/token",
            "not an address",
        ] {
            assert!(web(refused).is_err(), "{refused}");
        }
        let scoped = OidcWeb::new("https://i/a", "https://i/t", "c", None, "https://f/cb", Some("email profile"));
        assert!(scoped.is_err(), "a sign-in without `openid`");
    }

    #[test]
    fn a_token_is_accepted_until_it_is_revoked_and_a_changed_one_never() {
        let mut file = TokenFile::default();
        let (id, token) = file.create("mia", None, "2026-12-03T00:00:00Z").expect("randomness");
        assert_eq!(file.check(&token).map(|e| e.principal.as_str()), Ok("mia"));
        let mut changed = token.clone().into_bytes();
        let last = changed.len() - 1;
        changed[last] = if changed[last] == b'0' { b'1' } else { b'0' };
        assert!(file.check(&String::from_utf8(changed).expect("ascii")).is_err());
        assert!(file.check(&format!("{TOKEN_PREFIX}{id}_")).is_err());
        assert!(file.revoke(&id, "2026-12-03T00:00:01Z"));
        assert!(file.check(&token).is_err());
        assert!(!file.revoke(&id, "2026-12-03T00:00:02Z"), "revoked twice");
    }
}
