//! `flowc serve`: the runtime as an HTTP API (`docs/api.md`); and `flowc token`: the API
//! tokens of the deployment, kept as hashes in its tokens file.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use flow_server::{Auth, Oidc, Options, Service, TokenFile};

use crate::DataFormat;
use crate::deploy::{self, Deployment};
use crate::session::Session;

/// Compiles a `.flow` source sent to the server: the flow named, or its only one.
fn compile(source: &str, flow: Option<&str>) -> Result<flow_ir::VerifiedPlan, String> {
    const NAME: &str = "request.flow";
    let session = Session::from_text(NAME, source);
    let diagnostics = session.diagnostics(&flow_lower::Checks::default());
    if diagnostics.iter().any(flow_diagnostics::Diagnostic::is_error) {
        let errors: Vec<_> = diagnostics.into_iter().filter(flow_diagnostics::Diagnostic::is_error).collect();
        return Err(format!(
            "the source has errors; nothing was installed\n{}",
            flow_diagnostics::render(&errors, &session.sources, false)
        ));
    }
    let (_, lowered) = session.choose(flow, NAME).map_err(|e| e.to_string())?;
    lowered.plan.clone().ok_or_else(|| format!("flow `{}` did not compile to a plan", lowered.name))
}

/// The web pages' sign-in through the issuer, when `[serve.oidc]` configures it: all of
/// its endpoints, client id and callback, or none.
fn oidc_web(oidc: &deploy::OidcConfig) -> anyhow::Result<Option<flow_server::OidcWeb>> {
    let given = [&oidc.authorization_endpoint, &oidc.token_endpoint, &oidc.client_id, &oidc.redirect_uri];
    let (Some(authorization_endpoint), Some(token_endpoint), Some(client_id), Some(redirect_uri)) =
        (given[0], given[1], given[2], given[3])
    else {
        if given.iter().any(|g| g.is_some()) || oidc.client_secret_env.is_some() || oidc.scopes.is_some() {
            bail!(
                "`[serve.oidc]`: the web sign-in needs `authorization_endpoint`, `token_endpoint`, `client_id` and \
                 `redirect_uri` together"
            );
        }
        return Ok(None);
    };
    let client_secret = match &oidc.client_secret_env {
        None => None,
        Some(var) => Some(
            std::env::var(var)
                .map_err(|_| anyhow::anyhow!("`[serve.oidc] client_secret_env`: the variable `{var}` is not set"))?,
        ),
    };
    let web = flow_server::OidcWeb::new(
        authorization_endpoint,
        token_endpoint,
        client_id,
        client_secret,
        redirect_uri,
        oidc.scopes.as_deref(),
    )?;
    Ok(Some(web))
}

/// `flowc serve [--listen ADDR]`.
pub fn serve(deployment: &Deployment, listen: Option<&str>) -> anyhow::Result<ExitCode> {
    let serving = deploy::serving(deployment)?;
    let config = &serving.config;
    let mut auth = Auth::new(&serving.principals)?.with_tokens(&serving.tokens)?;
    if let Some(oidc) = &config.oidc {
        let mut issuer = Oidc::new(&oidc.issuer, &oidc.audience, &serving.dir.join(&oidc.jwks))?;
        if let Some(claim) = &oidc.principal_claim {
            issuer.principal_claim = claim.clone();
        }
        issuer.roles_claim = oidc.roles_claim.clone();
        issuer.web = oidc_web(oidc)?;
        auth = auth.with_oidc(issuer);
    }
    let options = Options {
        deployers: config.deployers.clone(),
        max_body: config.max_body.unwrap_or(1 << 20),
        timeout: deploy::timeout(config.timeout.as_deref(), 30, "`[serve] timeout`")?,
        tls: match (&config.tls_certificate, &config.tls_key) {
            (Some(certificate), Some(key)) => Some((serving.dir.join(certificate), serving.dir.join(key))),
            (None, None) => None,
            _ => bail!("`[serve]`: TLS needs both `tls_certificate` and `tls_key`"),
        },
        limits: flow_server::limits::Limits {
            concurrent: match config.max_concurrent {
                Some(0) => bail!("`[serve] max_concurrent` is 0: no request would be taken"),
                Some(n) => n,
                None => flow_server::limits::Limits::default().concurrent,
            },
            per_second: match config.rate {
                Some(rate) if !(rate.is_finite() && rate > 0.0) => {
                    bail!("`[serve] rate` is {rate}: give a positive number of requests a second")
                }
                rate => rate,
            },
        },
        session_key: match &config.session_secret_env {
            None => None,
            Some(var) => match std::env::var(var) {
                Ok(secret) if secret.len() >= 32 => Some(secret.into_bytes()),
                Ok(_) => bail!("`[serve] session_secret_env`: `{var}` holds fewer than 32 bytes"),
                Err(_) => bail!("`[serve] session_secret_env`: the variable `{var}` is not set"),
            },
        },
    };
    let runtime = crate::runs::open(deployment)?;
    deploy::webhook_secrets(&runtime)?;
    let service = Arc::new(Service::new(runtime, auth, options).with_compiler(Box::new(compile)));
    let listen =
        listen.map(str::to_owned).or_else(|| config.listen.clone()).unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    flow_server::init_logs();
    flow_server::serve(service, &listen, |url| {
        eprintln!(
            "flowc: serving the API on {url}/v1 (store {}); stop with Ctrl-C",
            deploy::shown_store(&deployment.store())
        );
    })?;
    eprintln!("flowc: stopped");
    Ok(ExitCode::SUCCESS)
}

/// `flowc token create --as ID [--note TEXT]`: prints the new token, once.
pub fn create(
    deployment: &Deployment,
    who: &str,
    note: Option<String>,
    format: DataFormat,
) -> anyhow::Result<ExitCode> {
    let serving = deploy::serving(deployment)?;
    let principals = flow_server::auth::read_principals(&serving.principals)?;
    if !principals.contains_key(who) {
        bail!("`{who}` is not in the principals file `{}`", serving.principals.display());
    }
    let created =
        TokenFile::change(&serving.tokens, |file| file.create(who, note, &flow_runtime::now().to_string()).map(Some))?;
    let (id, token) = created.context("the token was not written")?;
    eprintln!(
        "flowc: token {id} for {who} kept (as its hash) in `{}`; it is shown once, here",
        serving.tokens.display()
    );
    match format {
        DataFormat::Json => {
            crate::print(&format!("{}\n", serde_json::json!({"id": id, "principal": who, "token": token})))
        }
        DataFormat::Human => crate::print(&format!("{token}\n")),
    }
    Ok(ExitCode::SUCCESS)
}

/// `flowc token list`: the tokens, by id, without their secrets.
pub fn list(deployment: &Deployment, format: DataFormat) -> anyhow::Result<ExitCode> {
    let serving = deploy::serving(deployment)?;
    let file = TokenFile::read(&serving.tokens)?;
    match format {
        DataFormat::Json => {
            let tokens: Vec<_> = file
                .tokens
                .iter()
                .map(|t| serde_json::json!({"id": t.id, "principal": t.principal, "created": t.created, "note": t.note, "revoked": t.revoked}))
                .collect();
            crate::print(&format!("{}\n", serde_json::json!({ "tokens": tokens })));
        }
        DataFormat::Human => {
            let mut text = String::new();
            for t in &file.tokens {
                let state = t.revoked.as_ref().map_or_else(|| "active".to_owned(), |at| format!("revoked {at}"));
                let note = t.note.as_ref().map(|n| format!("  {n}")).unwrap_or_default();
                text.push_str(&format!("{}  {}  created {}  {state}{note}\n", t.id, t.principal, t.created));
            }
            if text.is_empty() {
                text = format!("no tokens in `{}`\n", serving.tokens.display());
            }
            crate::print(&text);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `flowc token revoke ID`: the token lets nobody in from the server's next request on.
pub fn revoke(deployment: &Deployment, id: &str) -> anyhow::Result<ExitCode> {
    let serving = deploy::serving(deployment)?;
    let revoked =
        TokenFile::change(&serving.tokens, |file| Ok(file.revoke(id, &flow_runtime::now().to_string()).then_some(())))
            .context("the tokens file")?;
    if revoked.is_none() {
        eprintln!("flowc: no active token `{id}` in `{}`", serving.tokens.display());
        return Ok(ExitCode::from(1));
    }
    eprintln!("flowc: token {id} revoked");
    Ok(ExitCode::SUCCESS)
}
