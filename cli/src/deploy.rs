//! The deployment the run commands work in: the run store, the principals file, and
//! `flow.toml` (where each model and system runs, and the evidence signing key).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use flow_runtime::provider::{CommandModel, CommandSystem, HttpSystem, OpenAiCompatible};
use flow_runtime::retrieval::{CommandRetriever, FolderRetriever, HttpRetriever, Retriever};
use flow_runtime::store::SqliteStore;
use flow_runtime::{Principal, Runtime};
use serde::Deserialize;

/// The deployment the run commands work in: its run store, its principals file and where
/// its models and systems run.
#[derive(clap::Args, Clone, Debug)]
pub struct Deployment {
    /// The run store: a SQLite file (created on first use), `:memory:` (runs kept in memory),
    /// or a PostgreSQL database shared by several processes (`postgres://user@host/db`);
    /// default `FLOW_STORE`, else `[store] url` of `flow.toml`, else `.flow/runs.db`.
    #[arg(long, value_name = "PATH|URL")]
    pub store: Option<String>,
    /// Who holds which roles; default `flow-principals.toml` beside the store or in the
    /// working directory.
    #[arg(long, value_name = "FILE")]
    pub principals: Option<String>,
    /// Where models and systems run; default `flow.toml` beside the store or in the working
    /// directory.
    #[arg(long, value_name = "FILE")]
    pub config: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    store: StoreConfig,
    #[serde(default)]
    models: BTreeMap<String, Endpoint>,
    #[serde(default)]
    systems: BTreeMap<String, Endpoint>,
    #[serde(default)]
    corpora: BTreeMap<String, CorpusConfig>,
    #[serde(default)]
    evidence: EvidenceConfig,
    #[serde(default)]
    serve: ServeConfig,
    #[serde(default)]
    webhooks: BTreeMap<String, WebhookConfig>,
    #[serde(default)]
    release: ReleaseConfig,
}

/// `[release]`: the environment this deployment is, and the publishing rules it works
/// under (`docs/releases.md`).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReleaseConfig {
    /// One of the rules' environments, such as `prod`.
    environment: Option<String>,
    /// The publishing rules (default `flow-governance.toml` beside this file).
    governance: Option<String>,
    /// The store of the release log, shared by the environments (default: the run store).
    store: Option<String>,
}

/// `[webhooks.NAME]`: an endpoint told of runs (`docs/api.md`, "Webhooks").
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookConfig {
    url: String,
    /// The variable holding the secret every delivery is signed with.
    secret_env: String,
    /// The kinds of notices it is sent (default: every kind).
    #[serde(default)]
    events: Vec<String>,
    /// The flows whose notices it is sent (default: every flow).
    #[serde(default)]
    flows: Vec<String>,
    /// The labels whose values it may receive (default: none, every labelled value redacted).
    #[serde(default)]
    view: Vec<String>,
    /// The monitors' routes whose alerts it is sent (default: none): `governance`,
    /// `platform`, `owner` or roles.
    #[serde(default)]
    routes: Vec<String>,
    /// How long one attempt may take (default 10s).
    timeout: Option<String>,
    /// How many times a notice is sent before it is given up (default 10).
    attempts: Option<u32>,
    /// The pause after the first failed attempt, doubled after each (default 1s).
    backoff: Option<String>,
}

/// `[serve]`: the HTTP service (`flowc serve`, `docs/api.md`).
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// The address to listen on (default `127.0.0.1:8080`).
    pub listen: Option<String>,
    /// The tokens file (default `flow-tokens.toml` beside the principals file).
    pub tokens: Option<String>,
    /// Roles whose holders may install plans through the API.
    #[serde(default)]
    pub deployers: Vec<String>,
    /// The largest request body taken, in bytes (default 1 MiB).
    pub max_body: Option<usize>,
    /// How long a request may take (default 30s).
    pub timeout: Option<String>,
    /// Requests of one principal handled at once (default 256); more are answered 429.
    pub max_concurrent: Option<usize>,
    /// Requests of one principal a second, on average (default: no limit); more are
    /// answered 429.
    pub rate: Option<f64>,
    /// An OpenID Connect issuer whose JWTs are accepted as bearer tokens.
    pub oidc: Option<OidcConfig>,
    /// TLS: the server's certificate chain and private key (PEM files, relative to
    /// `flow.toml`); plain HTTP without them.
    pub tls_certificate: Option<String>,
    pub tls_key: Option<String>,
    /// The variable holding the key the web pages' sessions are signed with (at least 32
    /// bytes), the same for every server of the deployment; without it, each server signs
    /// with a random key of its own, and a restart signs everyone out.
    pub session_secret_env: Option<String>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    pub issuer: String,
    pub audience: String,
    /// The issuer's public keys: a JWKS file, relative to `flow.toml`.
    pub jwks: String,
    /// The claim naming the principal (default `sub`).
    pub principal_claim: Option<String>,
    /// A claim listing the principal's roles; without one, roles come from the principals
    /// file.
    pub roles_claim: Option<String>,
    /// The web pages' sign-in through the issuer (the authorization-code flow with PKCE):
    /// where the browser is sent, where the code is exchanged, this deployment's client id,
    /// the variable holding its secret (when the issuer gives one), and the callback's
    /// address as registered with the issuer (`https://HOST/ui/sign-in/oidc/callback`).
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub client_id: Option<String>,
    pub client_secret_env: Option<String>,
    pub redirect_uri: Option<String>,
    /// The scopes asked for (default `openid`).
    pub scopes: Option<String>,
}

/// The service's configuration: `[serve]` of `flow.toml`, paths in it made relative to the
/// working directory; and the principals file and tokens file it uses.
pub struct Serving {
    pub config: ServeConfig,
    pub principals: PathBuf,
    pub tokens: PathBuf,
    /// The directory of `flow.toml` (where its relative paths start).
    pub dir: PathBuf,
}

/// `flow.toml` (the one `--config` names, or the one beside the store or in the working
/// directory), and where it was found; the defaults without one.
fn config(deployment: &Deployment, store: &str) -> anyhow::Result<(Config, Option<PathBuf>)> {
    let found = find(deployment.config.as_deref(), store, "flow.toml");
    let config: Config = match &found {
        None => Config::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read `{}`", path.display()))?;
            toml::from_str(&text).map_err(|e| invalid_config(path, &text, &e))?
        }
    };
    Ok((config, found))
}

/// Reads `[serve]` of `flow.toml` and finds the principals and tokens files.
pub fn serving(deployment: &Deployment) -> anyhow::Result<Serving> {
    let store = deployment.store();
    let (config, found) = config(deployment, &store)?;
    let dir = found.as_deref().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_default();
    let Some(principals) = find(deployment.principals.as_deref(), &store, "flow-principals.toml") else {
        bail!("no principals file: give one with `--principals FILE` or create `flow-principals.toml`")
    };
    let tokens = match &config.serve.tokens {
        Some(tokens) => dir.join(tokens),
        None => principals.parent().unwrap_or(Path::new("")).join("flow-tokens.toml"),
    };
    Ok(Serving { config: config.serve, principals, tokens, dir })
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StoreConfig {
    /// The store, when neither `--store` nor `FLOW_STORE` names one: a SQLite file
    /// (relative to this file's directory) or a PostgreSQL URL.
    url: Option<String>,
    /// How long a process's lease on a run it executes lasts unless renewed (default 30s).
    lease: Option<String>,
    /// PostgreSQL: connections each process keeps open (default: its cores, plus one).
    pool: Option<usize>,
    /// PostgreSQL: how long a lost connection is tried again before an operation fails
    /// (default 10s).
    reconnect: Option<String>,
    /// PostgreSQL: certificates (PEM) of authorities trusted to sign the server's, beside
    /// Mozilla's roots; relative to this file's directory.
    ca: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct EvidenceConfig {
    /// A file holding the 32-byte ed25519 seed as 64 hexadecimal digits.
    signing_key_file: Option<String>,
    /// An environment variable holding the seed.
    signing_key_env: Option<String>,
    /// Public keys (hex) whose signatures are believed besides the signing key's: keys the
    /// deployment signed with before.
    #[serde(default)]
    trusted_keys: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Endpoint {
    command: Option<Vec<String>>,
    base_url: Option<String>,
    url: Option<String>,
    api_key_env: Option<String>,
    /// A system over HTTP: the variable holding the secret its calls are signed with.
    secret_env: Option<String>,
    timeout: Option<String>,
    retries: Option<u32>,
}

/// `[corpora.NAME]`: the retriever that searches a corpus (`docs/language.md`, "Corpora").
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CorpusConfig {
    /// A local folder of `.md` and `.txt` documents (relative to this file).
    folder: Option<String>,
    /// When the folder's documents were published (RFC 3339), for the corpus's freshness.
    as_of: Option<String>,
    /// A local program answering each search on stdout.
    command: Option<Vec<String>>,
    /// A service answering each search as a JSON `POST`.
    url: Option<String>,
    /// The variable holding the secret each search over HTTP is signed with.
    secret_env: Option<String>,
    timeout: Option<String>,
    retries: Option<u32>,
}

impl Deployment {
    /// The run store: `--store`, else `FLOW_STORE`, else `[store] url` of the `flow.toml`
    /// that `--config` names or the working directory holds, else `.flow/runs.db`.
    pub fn store(&self) -> String {
        if let Some(store) = &self.store {
            return store.clone();
        }
        if let Some(store) = std::env::var("FLOW_STORE").ok().filter(|s| !s.is_empty()) {
            return store;
        }
        let config = PathBuf::from(self.config.as_deref().unwrap_or("flow.toml"));
        // A file that cannot be read or parsed is reported when the runtime is configured.
        let named = std::fs::read_to_string(&config)
            .ok()
            .and_then(|text| toml::from_str::<Config>(&text).ok())
            .and_then(|c| c.store.url)
            .filter(|url| !url.is_empty());
        match named {
            Some(url) if is_url(&url) || url == ":memory:" => url,
            Some(path) => {
                let dir = config.parent().unwrap_or(Path::new(""));
                dir.join(path).to_string_lossy().into_owned()
            }
            None => ".flow/runs.db".to_owned(),
        }
    }
}

/// The file `name` given, or found beside the store, or in the working directory.
fn find(given: Option<&str>, store: &str, name: &str) -> Option<PathBuf> {
    if let Some(given) = given {
        return Some(PathBuf::from(given));
    }
    let beside = Path::new(store).parent().filter(|_| !is_url(store)).map(|dir| dir.join(name));
    beside.into_iter().chain([PathBuf::from(name)]).find(|p| p.is_file())
}

pub(crate) fn timeout(text: Option<&str>, default: u64, what: &str) -> anyhow::Result<Duration> {
    match text {
        None => Ok(Duration::from_secs(default)),
        Some(text) => match flow_ir::time::parse_duration(text) {
            Some(seconds) if seconds > 0 => Ok(Duration::from_secs(seconds as u64)),
            _ => bail!("{what} (`{text}`) is not a duration such as \"20s\""),
        },
    }
}

/// The principals of the deployment: id to roles.
pub fn principals(deployment: &Deployment) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let Some(path) = find(deployment.principals.as_deref(), &deployment.store(), "flow-principals.toml") else {
        bail!("no principals file: give one with `--principals FILE` or create `flow-principals.toml`")
    };
    flow_server::auth::read_principals(&path)
}

/// The principal `--as` names (or `FLOW_PRINCIPAL`), with their roles.
pub fn principal(deployment: &Deployment, id: Option<&str>) -> anyhow::Result<Principal> {
    let env = std::env::var("FLOW_PRINCIPAL").ok().filter(|p| !p.is_empty());
    let Some(id) = id.map(str::to_owned).or(env) else { bail!("say who acts with `--as ID` (or set FLOW_PRINCIPAL)") };
    let principals = principals(deployment)?;
    let Some(roles) = principals.get(&id) else {
        let known: Vec<&str> = principals.keys().map(String::as_str).collect();
        bail!("`{id}` is not in the principals file; it lists {}", known.join(", "))
    };
    Ok(Principal::new(id, roles.clone()))
}

/// A store as messages and logs may name it: a SQLite path as given, a PostgreSQL
/// connection string rebuilt without its password.
pub(crate) fn shown_store(store: &str) -> String {
    if is_url(store) { flow_runtime::store::shown_url(store) } else { store.to_owned() }
}

/// Why `flow.toml` does not parse, where, without its text: the file holds connection
/// strings with passwords, and TOML's own message quotes the line (and values) it stopped
/// at.
fn invalid_config(path: &Path, text: &str, error: &toml::de::Error) -> anyhow::Error {
    let at = error.span().map_or(String::new(), |span| {
        let before = text.get(..span.start).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        format!(" at line {line}, column {column}")
    });
    // Quoted parts of the message are values of the file: left out.
    let mut message = String::new();
    for (n, part) in error.message().split('"').enumerate() {
        message.push_str(if n % 2 == 0 { part } else { "\"…\"" });
    }
    anyhow::anyhow!("`{}` is not a valid deployment file{at}: {}", path.display(), message.trim())
}

/// Whether a store is a PostgreSQL database rather than a SQLite file: a URL
/// (`postgres://…`, `postgresql://…`) or a connection string of `key=value` words
/// (`host=db dbname=flows`).
pub(crate) fn is_url(store: &str) -> bool {
    let conninfo = store
        .split_whitespace()
        .next()
        .and_then(|word| word.split_once('='))
        .is_some_and(|(key, _)| !key.is_empty() && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
    store.starts_with("postgres://") || store.starts_with("postgresql://") || conninfo
}

/// A secret from the environment: the variable's bytes, when it is set and not empty.
fn secret(var: &str) -> anyhow::Result<Vec<u8>> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Ok(value.into_bytes()),
        _ => bail!("the variable `{var}` is not set"),
    }
}

/// The webhook endpoints of `[webhooks]`. An endpoint whose secret's variable is not set
/// still has its notices queued (by commands run without it); only `flowc serve`, which
/// sends them, needs it ([`webhook_secrets`]).
fn webhooks(config: &BTreeMap<String, WebhookConfig>, path: &Path) -> anyhow::Result<flow_runtime::notify::Webhooks> {
    let mut endpoints = Vec::new();
    for (name, hook) in config {
        let what = format!("`{}`: webhook `{name}`", path.display());
        if !(hook.url.starts_with("http://") || hook.url.starts_with("https://")) {
            bail!("{what}: `url` (`{}`) is not an http:// or https:// URL", hook.url);
        }
        if let Some(kind) = hook.events.iter().find(|e| !flow_runtime::notify::KINDS.contains(&e.as_str())) {
            bail!("{what}: `events` names `{kind}`, which is not one of {}", flow_runtime::notify::KINDS.join(", "));
        }
        let attempts = hook.attempts.unwrap_or(10);
        if attempts == 0 {
            bail!("{what}: `attempts` is 0: a notice is sent at least once");
        }
        endpoints.push(flow_runtime::notify::Endpoint {
            name: name.clone(),
            url: hook.url.clone(),
            secret: secret(&hook.secret_env).ok(),
            events: hook.events.clone(),
            flows: hook.flows.clone(),
            view: hook.view.iter().map(|l| l.as_str().into()).collect(),
            routes: hook.routes.clone(),
            timeout: timeout(hook.timeout.as_deref(), 10, &format!("{what}: `timeout`"))?,
            attempts,
            backoff: timeout(hook.backoff.as_deref(), 1, &format!("{what}: `backoff`"))?,
        });
    }
    Ok(flow_runtime::notify::Webhooks { endpoints })
}

/// Checks that the secret of every webhook endpoint is set: the server signs what it sends.
pub fn webhook_secrets(runtime: &Runtime) -> anyhow::Result<()> {
    for endpoint in runtime.webhooks().map(|w| w.endpoints.as_slice()).unwrap_or_default() {
        if endpoint.secret.is_none() {
            bail!(
                "webhook `{}`: the variable its `secret_env` names is not set (or empty); every notice is signed with it",
                endpoint.name
            );
        }
    }
    Ok(())
}

/// Opens the store and configures the runtime from `flow.toml`.
pub fn runtime(deployment: &Deployment) -> anyhow::Result<Runtime> {
    let store = deployment.store();
    let (config, found) = config(deployment, &store)?;
    let mut runtime = Runtime::new(open_store(&store, &config, found.as_deref())?);
    // The principals a run's inputs may name: those of the principals file, when there is one.
    if find(deployment.principals.as_deref(), &store, "flow-principals.toml").is_some() {
        runtime.set_directory(flow_runtime::Directory::new(principals(deployment)?.keys()));
    }
    configure(runtime, deployment, &config, found)
}

/// Opens a store named by `--store`, `FLOW_STORE`, `flow.toml` (`found`, with its `[store]`
/// options for PostgreSQL) or `[release] store`.
fn open_store(
    store: &str,
    config: &Config,
    found: Option<&Path>,
) -> anyhow::Result<Box<dyn flow_runtime::store::Store>> {
    let opened: Result<Box<dyn flow_runtime::store::Store>, _> = if is_url(store) {
        let mut options = flow_runtime::store::PostgresOptions::default();
        if let Some(pool) = config.store.pool {
            if pool == 0 {
                bail!("`[store] pool` is 0: a store needs at least one connection");
            }
            options.pool = pool;
        }
        if let Some(reconnect) = config.store.reconnect.as_deref() {
            options.reconnect = timeout(Some(reconnect), 10, "`[store] reconnect`")?;
        }
        if let Some(ca) = &config.store.ca {
            let dir = found.and_then(Path::parent).unwrap_or(Path::new(""));
            options.ca = Some(dir.join(ca));
        }
        flow_runtime::store::PostgresStore::open_with(store, &options).map(|s| Box::new(s) as _)
    } else {
        SqliteStore::open(Path::new(store)).map(|s| Box::new(s) as _)
    };
    opened.map_err(|e| {
        let error = flow_runtime::Error::from(e);
        anyhow::anyhow!("error[{}]: {error}", error.code())
    })
}

/// Configures the runtime from `flow.toml` (`found`: where it was read).
fn configure(
    mut runtime: Runtime,
    deployment: &Deployment,
    config: &Config,
    found: Option<PathBuf>,
) -> anyhow::Result<Runtime> {
    if let Some(lease) = config.store.lease.as_deref() {
        runtime.set_lease(timeout(Some(lease), 30, "`[store] lease`")?);
    }
    let Some(path) = found else {
        set_release_control(&mut runtime, deployment, config, None)?;
        return Ok(runtime);
    };
    // Commands run in the directory of the file that names them.
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    for (name, endpoint) in &config.models {
        let what = format!("model `{name}`");
        let timeout = timeout(endpoint.timeout.as_deref(), 60, &format!("the timeout of {what}"))?;
        match (&endpoint.command, &endpoint.base_url) {
            (Some(c), None) if !c.is_empty() => runtime
                .register_model(name, Arc::new(CommandModel { command: c.clone(), dir: Some(dir.clone()), timeout })),
            (None, Some(base_url)) => {
                let api_key = endpoint.api_key_env.as_ref().and_then(|var| std::env::var(var).ok());
                runtime.register_model(
                    name,
                    Arc::new(OpenAiCompatible {
                        base_url: base_url.clone(),
                        api_key,
                        timeout,
                        retries: endpoint.retries.unwrap_or(2),
                    }),
                );
            }
            _ => bail!("`{}`: {what} needs either `command = [...]` or `base_url = \"...\"`", path.display()),
        }
    }
    for (name, endpoint) in &config.systems {
        let what = format!("system `{name}`");
        let timeout = timeout(endpoint.timeout.as_deref(), 60, &format!("the timeout of {what}"))?;
        match (&endpoint.command, &endpoint.url) {
            (Some(c), None) if !c.is_empty() => runtime
                .register_system(name, Arc::new(CommandSystem { command: c.clone(), dir: Some(dir.clone()), timeout })),
            (None, Some(url)) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    bail!("`{}`: {what}: `url` (`{url}`) is not an http:// or https:// URL", path.display());
                }
                // A secret that is not set fails the calls, not the commands that make none.
                let secret = endpoint.secret_env.as_deref().map(|var| secret(var).map_err(|_| var.to_owned()));
                runtime.register_system(
                    name,
                    Arc::new(HttpSystem {
                        url: url.clone(),
                        secret: secret.clone().and_then(Result::ok),
                        missing_secret: secret.and_then(Result::err),
                        timeout,
                        retries: endpoint.retries.unwrap_or(2),
                    }),
                );
            }
            _ => bail!("`{}`: {what} needs `command = [...]` or `url = \"...\"`", path.display()),
        }
    }
    for (name, corpus) in &config.corpora {
        let what = format!("corpus `{name}`");
        let timeout = timeout(corpus.timeout.as_deref(), 30, &format!("the timeout of {what}"))?;
        let as_of = match &corpus.as_of {
            None => None,
            Some(text) => {
                let Some((seconds, nanos)) = flow_ir::time::parse_timestamp(text) else {
                    bail!(
                        "`{}`: {what}: `as_of` (`{text}`) is not a timestamp such as `2026-11-01T00:00:00Z`",
                        path.display()
                    );
                };
                Some(flow_ir::expr::Timestamp { seconds, nanos })
            }
        };
        if corpus.secret_env.is_some() && corpus.url.is_none() {
            bail!("`{}`: {what}: `secret_env` signs searches over HTTP, and it has no `url`", path.display());
        }
        let retriever: Arc<dyn Retriever> = match (&corpus.folder, &corpus.command, &corpus.url) {
            (Some(folder), None, None) => {
                Arc::new(FolderRetriever { dir: dir.join(folder), shown: folder.clone(), as_of })
            }
            (None, Some(c), None) if !c.is_empty() && as_of.is_none() => {
                Arc::new(CommandRetriever { command: c.clone(), dir: Some(dir.clone()), timeout })
            }
            (None, None, Some(url)) if as_of.is_none() => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    bail!("`{}`: {what}: `url` (`{url}`) is not an http:// or https:// URL", path.display());
                }
                let secret = corpus.secret_env.as_deref().map(|var| secret(var).map_err(|_| var.to_owned()));
                Arc::new(HttpRetriever {
                    url: url.clone(),
                    secret: secret.clone().and_then(Result::ok),
                    missing_secret: secret.and_then(Result::err),
                    timeout,
                    retries: corpus.retries.unwrap_or(2),
                })
            }
            _ => bail!(
                "`{}`: {what} needs one of `folder = \"...\"` (with `as_of` if you like), `command = [...]` or \
                 `url = \"...\"`",
                path.display()
            ),
        };
        runtime.register_retriever(name, retriever);
    }
    runtime.set_webhooks(webhooks(&config.webhooks, &path)?);
    set_release_control(&mut runtime, deployment, config, Some(&path))?;
    let seed = match (&config.evidence.signing_key_file, &config.evidence.signing_key_env) {
        (Some(file), _) => Some(
            std::fs::read_to_string(dir.join(file)).with_context(|| format!("cannot read the signing key `{file}`"))?,
        ),
        (None, Some(var)) => {
            Some(std::env::var(var).with_context(|| format!("the signing key variable `{var}` is not set"))?)
        }
        (None, None) => None,
    };
    if let Some(seed) = seed {
        let key = flow_runtime::evidence::signing_key(&seed).map_err(|e| anyhow::anyhow!("the signing key: {e}"))?;
        runtime.set_signing_key(key);
    }
    for key in &config.evidence.trusted_keys {
        let key = key.trim().to_ascii_lowercase();
        if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!(
                "`{}`: `[evidence] trusted_keys`: `{key}` is not a public key (64 hexadecimal digits)",
                path.display()
            );
        }
        runtime.trust_key(&key);
    }
    Ok(runtime)
}

/// The publishing rules: `[release] governance` of `flow.toml` (relative to it), else
/// `flow-governance.toml` beside `flow.toml` — never one in the working directory (where the
/// flows' authors work) when there is a `flow.toml` —, else beside the store or in the
/// working directory; with the file they were read from.
pub fn governance(deployment: &Deployment) -> anyhow::Result<Option<(flow_runtime::release::Governance, PathBuf)>> {
    let store = deployment.store();
    let (config, found) = config(deployment, &store)?;
    read_governance(&config.release, &store, found.as_deref())
}

fn read_governance(
    release: &ReleaseConfig,
    store: &str,
    found: Option<&Path>,
) -> anyhow::Result<Option<(flow_runtime::release::Governance, PathBuf)>> {
    let dir = found.and_then(Path::parent).unwrap_or(Path::new(""));
    let path = match (&release.governance, found) {
        (Some(file), _) => Some(dir.join(file)),
        (None, Some(_)) => Some(dir.join("flow-governance.toml")).filter(|p| p.is_file()),
        (None, None) => find(None, store, "flow-governance.toml"),
    };
    let Some(path) = path else { return Ok(None) };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the publishing rules `{}`", path.display()))?;
    let governance: flow_runtime::release::Governance =
        toml::from_str(&text).map_err(|e| invalid_config(&path, &text, &e))?;
    governance.check().map_err(|e| anyhow::anyhow!("`{}`: {e}", path.display()))?;
    Ok(Some((governance, path)))
}

/// Puts the runtime under the publishing rules, in the environment `[release]` names, with
/// the release log in `[release] store` when it names one.
fn set_release_control(
    runtime: &mut Runtime,
    deployment: &Deployment,
    config: &Config,
    found: Option<&Path>,
) -> anyhow::Result<()> {
    let release = &config.release;
    let dir = found.and_then(Path::parent).unwrap_or(Path::new(""));
    let governance = read_governance(release, &deployment.store(), found)?;
    let store = match &release.store {
        None => None,
        Some(url) if is_url(url) => Some(Arc::from(open_store(url, config, found)?)),
        Some(path) => Some(Arc::from(open_store(&dir.join(path).to_string_lossy(), config, found)?)),
    };
    match (governance, &release.environment) {
        (None, Some(environment)) => bail!(
            "`[release] environment = \"{environment}\"`, but there are no publishing rules: create \
             `flow-governance.toml` or name it with `[release] governance`"
        ),
        (None, None) => Ok(()),
        (Some((governance, path)), environment) => runtime
            .set_release_control(flow_runtime::ReleaseControl {
                governance: Arc::new(governance),
                environment: environment.clone(),
                store,
            })
            .map_err(|e| anyhow::anyhow!("`{}`: {e}", path.display())),
    }
}
