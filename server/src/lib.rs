//! Flow as a service: the runtime behind a versioned HTTP API.
//!
//! [`Service`] holds a [`flow_runtime::Runtime`], how callers are authenticated
//! ([`auth::Auth`]: API tokens and OpenID Connect JWTs) and the service's options;
//! [`router`] gives its routes as an axum [`Router`], which an embedding application can
//! mount in its own server, and [`serve`] serves them (`flowc serve`). Every route of
//! `/v1` but health, readiness and the API's description needs an authenticated principal;
//! every operation is checked against the plan's grants by the runtime, exactly as the
//! command line's are. Errors are problem details (RFC 9457) carrying the runtime's codes.
//! The API is described by `openapi.json` (OpenAPI 3.1), served at `/v1/openapi.json`.

mod api;
pub mod auth;
mod jobs;
pub mod limits;
mod metrics;
mod problem;
mod tls;
pub mod web;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use flow_ir::VerifiedPlan;
use flow_runtime::Runtime;

pub use auth::{Auth, Caller, Oidc, OidcWeb, TokenFile};
pub use problem::Problem;

/// The API's description (OpenAPI 3.1), as served at `/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// Compiles a `.flow` source sent to the server into the plan of one of its flows (the
/// one named, or its only one), or says why it cannot.
pub type Compiler = dyn Fn(&str, Option<&str>) -> Result<VerifiedPlan, String> + Send + Sync;

/// What the service allows and how long it waits.
#[derive(Clone, Debug)]
pub struct Options {
    /// Roles whose holders may install plans.
    pub deployers: Vec<String>,
    /// The largest request body taken, in bytes.
    pub max_body: usize,
    /// How long a request may take before it is answered `503` (its work, once begun, is
    /// not undone: a start retried with its `Idempotency-Key` finds the run).
    pub timeout: Duration,
    /// TLS: the certificate chain and the private key (PEM files); plain HTTP without.
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// What one principal may ask at once and a second.
    pub limits: limits::Limits,
    /// The key the web pages' sessions are signed with (at least 32 bytes), shared by the
    /// servers of a deployment; a random key of this process without one.
    pub session_key: Option<Vec<u8>>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            deployers: Vec::new(),
            max_body: 1 << 20,
            timeout: Duration::from_secs(30),
            tls: None,
            limits: limits::Limits::default(),
            session_key: None,
        }
    }
}

/// The principals file: each principal's roles, by id.
type Principals = std::collections::BTreeMap<String, Vec<String>>;

/// The service: a runtime, how callers are authenticated, and its options.
pub struct Service {
    runtime: Runtime,
    auth: Auth,
    options: Options,
    compiler: Option<Box<Compiler>>,
    metrics: metrics::Metrics,
    jobs: jobs::Jobs,
    /// The principals' accounts against `options.limits`.
    limits: Arc<limits::Gate>,
    /// The principals file as the runtime's directory last took it.
    directory: std::sync::Mutex<Option<Arc<Principals>>>,
    /// Signs and checks the web pages' sessions.
    sessions: web::Sessions,
    /// What the pages keep between requests.
    pages: web::Pages,
}

impl Service {
    pub fn new(runtime: Runtime, auth: Auth, options: Options) -> Service {
        Service {
            runtime,
            auth,
            limits: Arc::new(limits::Gate::new(options.limits)),
            directory: std::sync::Mutex::default(),
            sessions: web::Sessions::new(options.session_key.clone()),
            pages: web::Pages::default(),
            options,
            compiler: None,
            metrics: metrics::Metrics::default(),
            jobs: jobs::Jobs::default(),
        }
    }

    /// Lets principals install `.flow` sources, compiled by `compiler`.
    pub fn with_compiler(mut self, compiler: Box<Compiler>) -> Service {
        self.compiler = Some(compiler);
        self
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Lets an authenticated caller in, as the API and the pages both do: names them in the
    /// request's log line, gives the runtime the principals file as it now stands, and
    /// counts the request against their limits (refused when they ask too much at once).
    fn admit(&self, parts: &axum::http::request::Parts, mut caller: Caller) -> Result<Caller, limits::Exceeded> {
        if let Some(slot) = parts.extensions.get::<CallerSlot>() {
            let _ = slot.0.set(caller.principal.id.clone());
        }
        self.refresh_directory();
        caller.permit = Some(Arc::new(self.limits.enter(&caller.principal.id)?));
        Ok(caller)
    }

    /// Gives the runtime the principals file as it now stands, when it changed: a principal
    /// added to it may be named in runs' inputs from the next request on, as they may
    /// authenticate.
    fn refresh_directory(&self) {
        // As the request's authentication just read it: the file is not looked at again.
        let Some(principals) = self.auth.principals_read() else { return };
        let mut taken = self.directory.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if taken.as_ref().is_none_or(|seen| !Arc::ptr_eq(seen, &principals)) {
            self.runtime.refresh_directory(flow_runtime::Directory::new(principals.keys()));
            *taken = Some(principals);
        }
    }
}

/// The service's routes.
pub fn router(service: Arc<Service>) -> Router {
    let timeout = service.options.timeout;
    let max_body = service.options.max_body;
    Router::new()
        .route("/v1/health", get(api::health))
        .route("/v1/ready", get(api::ready))
        .route("/v1/openapi.json", get(api::openapi))
        .route("/metrics", get(api::metrics))
        .route("/v1/me", get(api::me))
        .route("/v1/flows", get(api::flows))
        .route("/v1/plans", post(api::install))
        .route("/v1/plans/{plan}", get(api::plan))
        .route("/v1/plans/{plan}/graph", get(api::graph))
        .route("/v1/plans/{plan}/diff/{other}", get(api::diff))
        .route("/v1/runs", post(api::start).get(api::runs))
        .route("/v1/runs/{run}", get(api::run))
        .route("/v1/runs/{run}/narrative", get(api::narrative))
        .route("/v1/runs/{run}/evidence", get(api::evidence))
        .route("/v1/runs/{run}/steps/{step}/decision", post(api::decide))
        .route("/v1/runs/{run}/gates/{gate}/override", post(api::override_gate))
        .route("/v1/runs/{run}/cancel", post(api::cancel))
        .route("/v1/runs/{run}/resume", post(api::resume))
        .route("/v1/runs/{run}/replay", post(api::replay))
        .route("/v1/runs/{run}/what-if", post(api::what_if))
        .route("/v1/pending", get(api::pending))
        .route("/v1/evidence/verify", post(api::verify))
        .route("/v1/stats", get(api::stats))
        .route("/v1/shadow-report", get(api::shadow_report))
        .route("/v1/jobs/what-if", post(api::what_if_job))
        .route("/v1/jobs/{job}", get(api::job))
        .route("/v1/releases", get(api::releases).post(api::propose))
        .route("/v1/releases/log", get(api::release_log))
        .route("/v1/releases/{release}", get(api::release))
        .route("/v1/releases/{release}/approve", post(api::approve_release))
        .route("/v1/releases/{release}/reject", post(api::reject_release))
        .route("/v1/releases/{release}/publish", post(api::publish_release))
        .merge(web::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(service.clone(), observe))
        .layer(middleware::from_fn(move |request: Request, next: Next| within(timeout, request, next)))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(service)
}

async fn not_found() -> Problem {
    Problem::not_found("no such route; the API is described at /v1/openapi.json")
}

async fn method_not_allowed() -> Problem {
    Problem::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "the route does not take this method",
    )
}

/// Answers `503` when a request takes longer than `timeout`.
async fn within(timeout: Duration, request: Request, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let mut problem = Problem::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                format!(
                    "the request took longer than {} s; what it began may have been done (a start retried with its \
                     `Idempotency-Key` finds its run)",
                    timeout.as_secs()
                ),
            );
            problem.retry_after = Some(1);
            problem.into_response()
        }
    }
}

/// Logs each request (method, route template, status, time, who) and counts it. Never the
/// body, the query or the token: values a run holds may be labelled.
async fn observe(State(service): State<Arc<Service>>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let who = CallerSlot::default();
    request.extensions_mut().insert(who.clone());
    let headers = request.headers();
    let carries_body = headers.contains_key(axum::http::header::TRANSFER_ENCODING)
        || headers
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .is_some_and(|length| length > 0);
    // Only the methods HTTP defines become labels: any other string a client sends would be
    // a new series, kept for good.
    let method = match request.method().as_str() {
        known @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS") => known,
        _ => "OTHER",
    }
    .to_owned();
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let mut response = next.run(request).await;
    // A request refused before its body was read leaves the body on the connection: closed
    // after the answer, so that no client sends its next request on it.
    if carries_body && (response.status().is_client_error() || response.status().is_server_error()) {
        response.headers_mut().insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
    }
    let seconds = started.elapsed().as_secs_f64();
    let status = response.status().as_u16();
    service.metrics.request(&method, &route, status, seconds);
    let caller = who.0.get();
    tracing::info!(
        target: "flow::http",
        method,
        route,
        status,
        ms = seconds * 1000.0,
        principal = caller.map_or("-", String::as_str),
    );
    response
}

/// Where a request's authentication leaves who called, for its log line.
#[derive(Clone, Default)]
pub(crate) struct CallerSlot(Arc<std::sync::OnceLock<String>>);

/// Writes the service's request logs to standard error, one line each (`RUST_LOG`-free:
/// the service logs requests at `info`, problems at `warn` and above).
pub fn init_logs() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // The service's own lines only: the libraries it uses (the compiler's query engine among
    // them) log at `info` too, and would drown them.
    let ours = tracing_subscriber::filter::Targets::new().with_target("flow", tracing::Level::INFO);
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(false).with_target(true);
    let _ = tracing_subscriber::registry().with(lines).with(ours).try_init();
}

/// Serves `service` on `listen` until the process is asked to stop (SIGINT or SIGTERM);
/// requests in flight are finished first. `bound` is told the URL served (the port chosen,
/// for `:0`; `https` with TLS).
pub fn serve(service: Arc<Service>, listen: &str, bound: impl FnOnce(String)) -> anyhow::Result<()> {
    let tls = match &service.options.tls {
        Some((certificate, key)) => Some(tls::config(certificate, key)?),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    // The service is dropped here, outside the asynchronous runtime: a store may block as it
    // closes (PostgreSQL's client runs a runtime of its own).
    let kept = service.clone();
    let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let resumer = resume_interrupted(service.clone(), stopping.clone());
    let timers = fire_timers(service.clone(), stopping.clone());
    let monitors = evaluate_monitors(service.clone(), stopping.clone());
    let deliverers = deliver_notices(service.clone(), stopping.clone());
    let served = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on `{listen}`: {e}"))?;
        let address: SocketAddr = listener.local_addr()?;
        let head_timeout = service.options.timeout;
        match tls {
            Some(config) => {
                bound(format!("https://{address}"));
                let listener = tls::Listener::new(listener, config)?;
                serve_connections(listener, router(service), head_timeout, stop_asked()).await;
            }
            None => {
                bound(format!("http://{address}"));
                serve_connections(listener, router(service), head_timeout, stop_asked()).await;
            }
        }
        anyhow::Ok(())
    });
    stopping.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = resumer.join();
    let _ = timers.join();
    let _ = monitors.join();
    for deliverer in deliverers {
        let _ = deliverer.join();
    }
    drop(runtime);
    drop(kept);
    served
}

/// Serves HTTP/1.1 connections from `listener` with `app` until `stop`, then lets every
/// connection finish the request it is on and waits for them. A connection that takes longer
/// than `head_timeout` to send a request's head — or stays idle that long between requests —
/// is closed, so slow clients cannot hold connections open for nothing.
async fn serve_connections<L>(mut listener: L, app: Router, head_timeout: Duration, stop: impl Future<Output = ()>)
where
    L: axum::serve::Listener,
{
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    // Every connection holds a receiver of `open`: once they are all gone, every
    // connection has closed.
    let (open, connections) = tokio::sync::watch::channel(());
    let mut stop = std::pin::pin!(stop);
    loop {
        let (io, _) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let (mut stopped, connection) = (stopped.clone(), connections.clone());
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(head_timeout);
            let mut served = std::pin::pin!(builder.serve_connection(hyper_util::rt::TokioIo::new(io), service));
            tokio::select! {
                _ = served.as_mut() => {}
                () = until_stopped(&mut stopped) => {
                    served.as_mut().graceful_shutdown();
                    let _ = served.await;
                }
            }
            drop(connection);
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    drop(connections);
    open.closed().await;
}

/// Returns once the server is stopping (or its sender is gone).
async fn until_stopped(stopped: &mut tokio::sync::watch::Receiver<bool>) {
    loop {
        let stopping = *stopped.borrow_and_update();
        if stopping || stopped.changed().await.is_err() {
            return;
        }
    }
}

/// Resumes, every lease, the runs that a process which died left interrupted (its lease ran
/// out), as workers do: a server that crashed mid-run leaves no run `running` for good,
/// whichever server or worker is up.
fn resume_interrupted(
    service: Arc<Service>,
    stopping: Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let every = service.runtime.lease();
        let tick = Duration::from_millis(50);
        let mut waited = Duration::ZERO;
        while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
            std::thread::sleep(tick);
            waited += tick;
            if waited < every {
                continue;
            }
            waited = Duration::ZERO;
            match service.runtime.resume_interrupted() {
                Ok(resumed) => {
                    for run in resumed {
                        tracing::info!(target: "flow::runs", run, "resumed a run interrupted while it executed");
                    }
                }
                Err(error) => tracing::warn!(target: "flow::runs", %error, "could not resume interrupted runs"),
            }
        }
    })
}

/// How often the server evaluates the monitors, in seconds.
const MONITOR_SECONDS: u64 = 30;

/// Evaluates the monitors of the store's flows a second after the server starts, then every
/// [`MONITOR_SECONDS`], on a thread of its own (a slow evaluation delays no timer): raises
/// and resolves alerts, whose notices the webhook threads deliver.
fn evaluate_monitors(
    service: Arc<Service>,
    stopping: Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let tick = Duration::from_millis(50);
        let mut waited = Duration::from_secs(MONITOR_SECONDS - 1);
        while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
            std::thread::sleep(tick);
            waited += tick;
            if waited < Duration::from_secs(MONITOR_SECONDS) {
                continue;
            }
            waited = Duration::ZERO;
            evaluate(&service);
        }
    })
}

fn evaluate(service: &Service) {
    match service.runtime.evaluate_monitors() {
        Ok(evaluation) => {
            for (what, why) in evaluation.failed {
                tracing::warn!(target: "flow::monitors", what, why, "could not evaluate");
            }
            for alert in evaluation.raised {
                tracing::warn!(target: "flow::monitors", alert = alert.id, severity = alert.severity, value = alert.value, "alert raised");
            }
            for alert in evaluation.resolved {
                tracing::info!(target: "flow::monitors", alert = alert.id, "alert resolved");
            }
        }
        Err(error) => tracing::warn!(target: "flow::monitors", %error, "could not evaluate the monitors"),
    }
}

/// Fires, every second, the timers that are due in the store's runs (reminders,
/// escalations, deadlines), whichever server takes each run first: a timer fires once, by
/// the one whose commit lands (the others find the run changed and leave it).
fn fire_timers(service: Arc<Service>, stopping: Arc<std::sync::atomic::AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let tick = Duration::from_millis(50);
        let mut waited = Duration::ZERO;
        while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
            std::thread::sleep(tick);
            waited += tick;
            if waited < Duration::from_secs(1) {
                continue;
            }
            waited = Duration::ZERO;
            match service.runtime.tick(service.runtime.now()) {
                Ok(tick) => {
                    for (run, timers) in tick.fired {
                        tracing::info!(target: "flow::runs", run, timers, "fired the timers due");
                    }
                    for (run, why) in tick.failed {
                        tracing::warn!(target: "flow::runs", run, why, "could not fire the timers of a run");
                    }
                }
                Err(error) => tracing::warn!(target: "flow::runs", %error, "could not fire the timers due"),
            }
        }
    })
}

/// Delivers the notices due to the deployment's webhook endpoints, as long as the server
/// runs, a thread for each endpoint (a slow one holds up no other): at once while there are
/// some, else every quarter of a second (a notice queued by any process on the store is sent
/// by whichever server takes it first). A server stopping finishes the notice it is sending.
fn deliver_notices(
    service: Arc<Service>,
    stopping: Arc<std::sync::atomic::AtomicBool>,
) -> Vec<std::thread::JoinHandle<()>> {
    let names: Vec<String> =
        service.runtime.webhooks().map(|w| w.endpoints.iter().map(|e| e.name.clone()).collect()).unwrap_or_default();
    names
        .into_iter()
        .map(|name| {
            let (service, stopping) = (service.clone(), stopping.clone());
            std::thread::spawn(move || {
                let go_on = || !stopping.load(std::sync::atomic::Ordering::Relaxed);
                while go_on() {
                    match service.runtime.deliver_notices(&name, 8, &go_on) {
                        Ok(round) => {
                            service.metrics.delivered(&round);
                            if round.total() > 0 {
                                tracing::info!(
                                    target: "flow::webhooks",
                                    endpoint = name,
                                    delivered = round.delivered,
                                    retried = round.retried,
                                    given_up = round.given_up,
                                    "delivered notices"
                                );
                                continue;
                            }
                        }
                        Err(error) => {
                            tracing::warn!(target: "flow::webhooks", endpoint = name, %error, "could not deliver notices");
                        }
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
            })
        })
        .collect()
}

async fn stop_asked() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => {
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!(target: "flow::http", "stopping: finishing the requests in flight");
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    /// An embedder may mount the routes in a single-threaded runtime: the work of a request
    /// goes to the blocking pool there (the worker thread cannot be lent).
    #[test]
    fn the_routes_answer_in_a_single_threaded_runtime() {
        let dir = std::env::temp_dir().join(format!("flow-server-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        std::fs::write(dir.join("principals.toml"), "[principals]\ncarl = [\"clerk\"]\n").expect("written");
        let store = flow_runtime::store::SqliteStore::open(&dir.join("runs.db")).expect("a store");
        let auth = Auth::new(&dir.join("principals.toml")).expect("principals");
        let service = Arc::new(Service::new(Runtime::new(Box::new(store)), auth, Options::default()));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        let status = runtime.block_on(async {
            let request = axum::http::Request::get("/v1/ready").body(axum::body::Body::empty()).expect("a request");
            router(service.clone()).oneshot(request).await.expect("an answer").status()
        });
        drop(runtime);
        assert_eq!(status, axum::http::StatusCode::OK);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
