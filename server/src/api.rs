//! The routes of `/v1`: each authenticates its caller, does its work on a blocking thread
//! (the runtime and its stores are synchronous), and answers JSON, or problem details.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flow_ir::plan::NodeKind;
use flow_runtime::analysis::Analysis;
use flow_runtime::{DecisionInput, ReplayChanges, RunFilter, StartOptions, Status};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value as Json, json};

use crate::Service;
use crate::auth::{Caller, Unauthenticated};
use crate::problem::Problem;

type Shared = State<Arc<Service>>;
type Answer = Result<Response, Problem>;

/// The authenticated caller of a request.
pub struct Authed(pub Caller);

impl FromRequestParts<Arc<Service>> for Authed {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, service: &Arc<Service>) -> Result<Authed, Problem> {
        let header = match parts.headers.get(header::AUTHORIZATION).map(HeaderValue::to_str) {
            None => None,
            Some(Ok(header)) => Some(header),
            Some(Err(_)) => {
                return Err(Problem::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "the `Authorization` header is not text",
                ));
            }
        };
        match service.auth.authenticate(header) {
            Ok(caller) => match service.admit(parts, caller) {
                Ok(caller) => Ok(Authed(caller)),
                Err(exceeded) => {
                    let mut problem = Problem::new(StatusCode::TOO_MANY_REQUESTS, "too-many-requests", exceeded.why);
                    problem.retry_after = Some(exceeded.retry_after as u32);
                    Err(problem)
                }
            },
            Err(Unauthenticated::Missing) => Err(Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "this API needs a bearer token: `Authorization: Bearer TOKEN` (an API token, or a JWT of the configured issuer)",
            )),
            Err(Unauthenticated::Rejected(why)) => Err(Problem::new(StatusCode::UNAUTHORIZED, "unauthenticated", why)),
            Err(Unauthenticated::Unavailable(why)) => {
                tracing::error!(%why, "the deployment's principals or tokens cannot be read");
                Err(Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "auth-unavailable",
                    "the deployment's principals or tokens cannot be read; nobody is let in until they are put right",
                ))
            }
        }
    }
}

/// A JSON body read as Flow reads JSON (numbers exactly), then as `T`: `415` when it is
/// not `application/json`, `413` over the size limit, `400` when it is not JSON or not the
/// shape the route takes, with where.
pub struct JsonBody<T>(pub T);

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

async fn body_bytes(request: Request, service: &Arc<Service>) -> Result<Bytes, Problem> {
    let too_large = || {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            format!("the body is larger than {} bytes", service.options.max_body),
        )
    };
    // A body announced larger than the limit is refused before a byte of it is read.
    let announced = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if announced.is_some_and(|length| length > service.options.max_body as u64) {
        return Err(too_large());
    }
    Bytes::from_request(request, service).await.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            Problem::new(status, "bad-body", rejection.body_text())
        }
    })
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let text = std::str::from_utf8(bytes).map_err(|_| Problem::bad_request("bad-json", "the body is not UTF-8"))?;
    let json = flow_runtime::value::parse_exact(text)
        .map_err(|e| Problem::bad_request("bad-json", format!("the body is not JSON: {e}")))?;
    serde_path_to_error::deserialize(json).map_err(|e| {
        let at = e.path().to_string();
        let at = if at == "." { String::new() } else { format!(" at `{at}`") };
        Problem::bad_request("bad-request", format!("the body does not fit this request{at}: {}", e.inner()))
    })
}

impl<T: DeserializeOwned> FromRequest<Arc<Service>> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, service: &Arc<Service>) -> Result<JsonBody<T>, Problem> {
        if !is_json(request.headers()) {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "the body must be JSON (`Content-Type: application/json`)",
            ));
        }
        let bytes = body_bytes(request, service).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// A query string read as `T`, or `400` problem details saying what does not fit.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned> FromRequestParts<Arc<Service>> for Query<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, service: &Arc<Service>) -> Result<Query<T>, Problem> {
        axum::extract::Query::<T>::from_request_parts(parts, service)
            .await
            .map(|axum::extract::Query(query)| Query(query))
            .map_err(|rejection| Problem::bad_request("bad-query", rejection.body_text()))
    }
}

/// Path parameters read as `T`, or `400` problem details.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<Arc<Service>> for Path<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, service: &Arc<Service>) -> Result<Path<T>, Problem> {
        axum::extract::Path::<T>::from_request_parts(parts, service)
            .await
            .map(|axum::extract::Path(path)| Path(path))
            .map_err(|rejection| Problem::bad_request("bad-path", rejection.body_text()))
    }
}

/// Runs `work` on a thread that may block (the runtime's calls do), and counts it as
/// `operation` when one is named.
pub(crate) async fn blocking<T: Send + 'static>(
    service: &Arc<Service>,
    operation: Option<&'static str>,
    work: impl FnOnce(&Service) -> Result<T, Problem> + Send + 'static,
) -> Result<T, Problem> {
    // On this worker thread, its other tasks handed to another worker meanwhile: a hop to a
    // thread of the blocking pool and back costs more than most of a request on two cores
    // (docs/benchmarks.md). A panic is a 500, not a connection dropped without an answer.
    // An embedder's single-threaded runtime cannot lend its thread: there, the blocking pool.
    let stopped = || Problem::internal("the request's work stopped unexpectedly");
    let done = if tokio::runtime::Handle::current().runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
        tokio::task::block_in_place(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(service))))
            .map_err(|_| stopped())?
    } else {
        let shared = service.clone();
        tokio::task::spawn_blocking(move || work(&shared)).await.map_err(|_| stopped())?
    };
    if let Some(operation) = operation {
        service.metrics.operation(operation, done.as_ref().map_or_else(|p| p.kind, |_| "ok"));
    }
    done
}

fn json_response(status: StatusCode, body: &Json) -> Response {
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body.to_string()).into_response()
}

fn ok(body: &Json) -> Answer {
    Ok(json_response(StatusCode::OK, body))
}

// --- Health, the API's description, the caller --------------------------------------------

pub async fn health() -> Response {
    json_response(StatusCode::OK, &json!({"status": "ok"}))
}

/// Ready when the store answers.
pub async fn ready(State(service): Shared) -> Answer {
    blocking(&service, None, |service| {
        service.runtime.store().checkpoint().map_err(flow_runtime::Error::from)?;
        ok(&json!({"status": "ready"}))
    })
    .await
}

pub async fn openapi() -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], crate::OPENAPI)
        .into_response()
}

pub async fn me(Authed(caller): Authed) -> Answer {
    ok(&json!({"principal": caller.principal.id, "roles": caller.principal.roles, "authenticated_by": caller.method}))
}

pub async fn metrics(State(service): Shared, Authed(_): Authed) -> Answer {
    let store = blocking(&service, None, |service| {
        let store = service.runtime.store();
        let runs = store.runs(None).map_err(flow_runtime::Error::from)?;
        store.fold_monitor_pending().map_err(flow_runtime::Error::from)?;
        let totals = store.monitor_totals().map_err(flow_runtime::Error::from)?;
        let open = store.alerts(true, 10_000).map_err(flow_runtime::Error::from)?;
        let monitors = flow_runtime::monitor::exposition(&totals, &open);
        Ok(format!("{}{monitors}", crate::metrics::store_metrics(&runs, flow_runtime::now().seconds)))
    })
    .await?;
    let text = format!("{}{store}", service.metrics.render());
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"))], text)
        .into_response())
}

// --- Deployments: plans and flows ----------------------------------------------------------

fn plan_json(analysis: &Analysis) -> Json {
    let body = analysis.body();
    json!({"plan": analysis.hash().to_string(), "flow": body.flow.name, "version": body.flow.version.as_str()})
}

pub async fn flows(State(service): Shared, Authed(_): Authed) -> Answer {
    blocking(&service, None, |service| {
        let mut flows: BTreeMap<String, Vec<Json>> = BTreeMap::new();
        for analysis in service.runtime.plans()? {
            flows.entry(analysis.body().flow.name.to_string()).or_default().push(plan_json(&analysis));
        }
        let flows: Vec<Json> =
            flows.into_iter().map(|(flow, versions)| json!({"flow": flow, "versions": versions})).collect();
        ok(&json!({"flows": flows}))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallQuery {
    /// Of a `.flow` source declaring several flows: which.
    flow: Option<String>,
}

/// Installs a plan (`application/json`, as `flowc build` writes it) or compiles a `.flow`
/// source (`text/plain`) and installs its plan. Needs a role of the deployment's
/// `deployers`; a refusal is recorded.
pub async fn install(
    State(service): Shared,
    Authed(caller): Authed,
    Query(query): Query<InstallQuery>,
    request: Request,
) -> Answer {
    let content_type =
        request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let media = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if media != "application/json" && media != "text/plain" {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "install a plan as `application/json` or compile a `.flow` source sent as `text/plain`",
        ));
    }
    let bytes = body_bytes(request, &service).await?;
    blocking(&service, Some("install"), move |service| {
        let who = &caller.principal;
        if !who.roles.iter().any(|role| service.options.deployers.contains(role)) {
            let message = format!(
                "{} may not install plans: the deployment lets {} do that (`[serve] deployers` of flow.toml)",
                who.id,
                if service.options.deployers.is_empty() {
                    "nobody".to_owned()
                } else {
                    service.options.deployers.join(", ")
                }
            );
            return Err(service.runtime.refuse_operation(who, "install", "deploy", message).into());
        }
        let plan = if media == "text/plain" {
            let Some(compile) = &service.compiler else {
                return Err(Problem::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported-media-type",
                    "this server does not compile `.flow` sources: install a plan (`application/json`)",
                ));
            };
            let source =
                std::str::from_utf8(&bytes).map_err(|_| Problem::bad_request("bad-body", "the source is not UTF-8"))?;
            compile(source, query.flow.as_deref())
                .map_err(|why| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "does-not-compile", why))?
        } else {
            flow_ir::load(&bytes).map_err(|errors| {
                let reasons: Vec<String> = errors.0.iter().map(|e| format!("[{}] {e}", e.code())).collect();
                Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "plan-refused",
                    format!("the plan is refused: {}", reasons.join("; ")),
                )
            })?
        };
        let existed = service.runtime.store().plan(plan.hash()).map_err(flow_runtime::Error::from)?.is_some();
        let analysis = service.runtime.install(plan)?;
        Ok(json_response(if existed { StatusCode::OK } else { StatusCode::CREATED }, &plan_json(&analysis)))
    })
    .await
}

fn plan_of(service: &Service, hash: &str) -> Result<Arc<Analysis>, Problem> {
    service.runtime.find_plan(hash)?.ok_or_else(|| Problem::not_found(format!("no plan {hash}")))
}

pub async fn plan(State(service): Shared, Authed(_): Authed, Path(hash): Path<String>) -> Answer {
    blocking(&service, None, move |service| {
        let analysis = plan_of(service, &hash)?;
        let text = flow_ir::encode::to_json(analysis.plan.plan());
        Ok((StatusCode::OK, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], text)
            .into_response())
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphQuery {
    format: Option<String>,
    layer: Option<String>,
}

pub async fn graph(
    State(service): Shared,
    Authed(_): Authed,
    Path(hash): Path<String>,
    Query(query): Query<GraphQuery>,
) -> Answer {
    use flow_ir::render::{GraphFormat, Layer};
    let (format, media) = match query.format.as_deref().unwrap_or("dot") {
        "dot" => (GraphFormat::Dot, "text/vnd.graphviz"),
        "mermaid" => (GraphFormat::Mermaid, "text/plain; charset=utf-8"),
        "svg" => (GraphFormat::Svg, "image/svg+xml"),
        other => {
            return Err(Problem::bad_request(
                "bad-request",
                format!("`format={other}`: the graph is drawn as `dot`, `mermaid` or `svg`"),
            ));
        }
    };
    let layer = match query.layer.as_deref().unwrap_or("all") {
        "all" => Layer::All,
        "runtime" => Layer::Runtime,
        "governance" => Layer::Governance,
        other => {
            return Err(Problem::bad_request(
                "bad-request",
                format!("`layer={other}`: the layers are `all`, `runtime` and `governance`"),
            ));
        }
    };
    blocking(&service, None, move |service| {
        let analysis = plan_of(service, &hash)?;
        let text = flow_ir::render::graph(&analysis.plan, format, layer);
        Ok((StatusCode::OK, [(header::CONTENT_TYPE, HeaderValue::from_static(media))], text).into_response())
    })
    .await
}

pub async fn diff(State(service): Shared, Authed(_): Authed, Path((old, new)): Path<(String, String)>) -> Answer {
    blocking(&service, None, move |service| {
        let (old, new) = (plan_of(service, &old)?, plan_of(service, &new)?);
        ok(&flow_ir::diff::diff(old.plan.plan(), new.plan.plan()).to_json())
    })
    .await
}

// --- Runs ----------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// The plan to run, by hash; or
    plan: Option<String>,
    /// the flow, whose highest version installed runs (or `version`).
    flow: Option<String>,
    version: Option<String>,
    #[serde(default)]
    inputs: serde_json::Map<String, Json>,
    #[serde(default)]
    params: serde_json::Map<String, Json>,
    /// The run's clock (RFC 3339); needs `set clock`.
    clock: Option<String>,
}

/// The plan a start names: by hash, or the flow's version published in the server's
/// environment, else its highest version (or the one named).
fn chosen_plan(service: &Service, request: &StartRequest) -> Result<Arc<Analysis>, Problem> {
    let unfit = |m: String| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "no-such-plan", m);
    match (&request.plan, &request.flow) {
        (Some(hash), None) => {
            service.runtime.find_plan(hash)?.ok_or_else(|| unfit(format!("no plan {hash} is installed")))
        }
        (None, Some(flow)) => {
            // The version published in the server's environment, when a release is live.
            if request.version.is_none()
                && let Some(live) = service.runtime.live_plan(flow)?
            {
                return Ok(service.runtime.plan(&live)?);
            }
            let mut candidates: Vec<Arc<Analysis>> = service
                .runtime
                .plans()?
                .into_iter()
                .filter(|a| a.body().flow.name == flow.as_str())
                .filter(|a| request.version.as_deref().is_none_or(|v| a.body().flow.version.as_str() == v))
                .collect();
            candidates.sort_by(|a, b| version_order(a.body().flow.version.as_str(), b.body().flow.version.as_str()));
            let Some(last) = candidates.last().cloned() else {
                return Err(unfit(match &request.version {
                    Some(version) => format!("no plan of flow `{flow}` version {version} is installed"),
                    None => format!("no plan of flow `{flow}` is installed"),
                }));
            };
            let same: Vec<String> = candidates
                .iter()
                .filter(|a| a.body().flow.version == last.body().flow.version)
                .map(|a| a.hash().to_string())
                .collect();
            if same.len() > 1 {
                return Err(unfit(format!(
                    "several plans of flow `{flow}` are version {}: name one by `plan` ({})",
                    last.body().flow.version.as_str(),
                    same.join(", ")
                )));
            }
            Ok(last)
        }
        _ => {
            Err(Problem::bad_request("bad-request", "name the plan to run by `plan` (its hash) or by `flow`, not both"))
        }
    }
}

/// Versions compared as semantic versions: `1.10.0` after `1.9.0`, a pre-release
/// (`2.0.0-rc1`) before its release; numbers as numbers, other parts as text.
pub(crate) fn version_order(a: &str, b: &str) -> std::cmp::Ordering {
    fn parts(version: &str) -> (Vec<Result<u64, &str>>, Option<&str>) {
        let (core, pre) = match version.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (version, None),
        };
        (core.split('.').map(|p| p.parse::<u64>().map_err(|_| p)).collect(), pre)
    }
    let ((a_core, a_pre), (b_core, b_pre)) = (parts(a), parts(b));
    a_core.cmp(&b_core).then_with(|| match (a_pre, b_pre) {
        (None, None) => std::cmp::Ordering::Equal,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (Some(_), None) => std::cmp::Ordering::Less,
        (Some(a), Some(b)) => a.cmp(b),
    })
}

const IDEMPOTENCY_KEY: &str = "idempotency-key";

pub async fn start(
    State(service): Shared,
    Authed(caller): Authed,
    headers: HeaderMap,
    JsonBody(request): JsonBody<StartRequest>,
) -> Answer {
    let key = match headers.get(IDEMPOTENCY_KEY).map(HeaderValue::to_str) {
        None => None,
        Some(Ok(key)) if !key.is_empty() && key.len() <= 255 => Some(key.to_owned()),
        Some(_) => {
            return Err(Problem::bad_request(
                "bad-request",
                "the `Idempotency-Key` header must be 1 to 255 characters of text",
            ));
        }
    };
    blocking(&service, Some("start"), move |service| {
        let analysis = chosen_plan(service, &request)?;
        let clock = match &request.clock {
            None => None,
            Some(text) => match flow_ir::time::parse_timestamp(text) {
                Some((seconds, nanos)) => Some(flow_ir::expr::Timestamp { seconds, nanos }),
                None => {
                    return Err(Problem::bad_request(
                        "bad-request",
                        format!("`clock`: `{text}` is not an RFC 3339 time"),
                    ));
                }
            },
        };
        let inputs: Vec<(String, Json)> = request.inputs.into_iter().collect();
        let options = StartOptions { clock, params: request.params.into_iter().collect() };
        let who = &caller.principal;
        let (view, started) = match &key {
            Some(key) => {
                let any_version = request.plan.is_none() && request.version.is_none();
                service.runtime.start_once(&analysis, who, &inputs, &options, key, any_version)?
            }
            None => (service.runtime.start(&analysis, who, &inputs, &options)?, true),
        };
        let mut response = json_response(if started { StatusCode::CREATED } else { StatusCode::OK }, &view.to_json());
        if let Ok(location) = HeaderValue::from_str(&format!("/v1/runs/{}", view.run)) {
            response.headers_mut().insert(header::LOCATION, location);
        }
        Ok(response)
    })
    .await
}

pub async fn run(State(service): Shared, Authed(caller): Authed, Path(run): Path<String>) -> Answer {
    blocking(&service, None, move |service| ok(&service.runtime.status(&run, Some(&caller.principal))?.to_json())).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunsQuery {
    flow: Option<String>,
    status: Option<String>,
    /// Runs started at or after (RFC 3339, or a date).
    since: Option<String>,
    /// Runs started before.
    until: Option<String>,
    /// Only runs with a step the caller may decide.
    waiting_for_me: Option<bool>,
    limit: Option<usize>,
}

pub async fn runs(State(service): Shared, Authed(caller): Authed, Query(query): Query<RunsQuery>) -> Answer {
    let status = match query.status.as_deref() {
        None => None,
        Some(text) => Some(Status::parse(text).ok_or_else(|| {
            Problem::bad_request(
                "bad-request",
                format!("`status={text}`: one of running, pending, completed, blocked, rejected, failed"),
            )
        })?),
    };
    blocking(&service, None, move |service| {
        let mine: Option<std::collections::BTreeSet<String>> = match query.waiting_for_me {
            Some(true) => Some(service.runtime.pending(Some(&caller.principal))?.into_iter().map(|w| w.run).collect()),
            _ => None,
        };
        let mut records = service.runtime.store().runs(status).map_err(flow_runtime::Error::from)?;
        records.retain(|r| {
            query.flow.as_ref().is_none_or(|f| &r.flow == f)
                && query.since.as_ref().is_none_or(|s| r.created.as_str() >= s.as_str())
                && query.until.as_ref().is_none_or(|u| r.created.as_str() < u.as_str())
                && mine.as_ref().is_none_or(|m| m.contains(&r.id))
        });
        records.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.id.cmp(&b.id)));
        records.truncate(query.limit.unwrap_or(100).min(1000));
        let runs: Vec<Json> = records
            .iter()
            .map(|r| {
                json!({"run": r.id, "flow": r.flow, "plan": r.plan, "status": r.status.as_str(), "created": r.created, "principal": r.principal})
            })
            .collect();
        ok(&json!({"runs": runs}))
    })
    .await
}

pub async fn narrative(State(service): Shared, Authed(caller): Authed, Path(run): Path<String>) -> Answer {
    blocking(&service, None, move |service| {
        let text = service.runtime.show(&run, Some(&caller.principal))?;
        Ok((StatusCode::OK, [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"))], text)
            .into_response())
    })
    .await
}

pub async fn evidence(State(service): Shared, Authed(caller): Authed, Path(run): Path<String>) -> Answer {
    blocking(&service, Some("evidence"), move |service| {
        let bundle = service.runtime.evidence(&run, &caller.principal)?;
        // As `flowc evidence` writes it: the bytes a verifier checks.
        let text = flow_runtime::evidence::render(&bundle);
        Ok((StatusCode::OK, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], text)
            .into_response())
    })
    .await
}

/// Verifies an evidence bundle sent as its exact bytes: `valid` and what was verified, or
/// the problems found (a bundle that does not verify is an answer, not an error).
pub async fn verify(State(service): Shared, Authed(_): Authed, request: Request) -> Answer {
    if !is_json(request.headers()) {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "send the bundle as `application/json`",
        ));
    }
    let bytes = body_bytes(request, &service).await?;
    blocking(&service, None, move |_| match flow_runtime::evidence::verify(&bytes) {
        Ok(verified) => ok(&verified.to_json()),
        Err(problems) => ok(&json!({"verified": false, "problems": problems})),
    })
    .await
}

// --- People ---------------------------------------------------------------------------------

/// What a waiting step takes: its outcomes, reason codes and the fields its deciders may edit.
fn form(analysis: &Analysis, step: &str) -> Json {
    let Some(node) = analysis.body().node(step) else { return json!({}) };
    match &node.kind {
        NodeKind::Review { outcomes, reasons, edits, .. } => json!({
            "outcomes": outcomes, "reasons": reasons, "reason_required": !reasons.is_empty(),
            "edits": edits.iter().map(ToString::to_string).collect::<Vec<_>>(),
        }),
        NodeKind::Gate { message, .. } => {
            json!({"outcomes": ["approve", "reject"], "reasons": [], "reason_required": true, "edits": [], "message": message})
        }
        _ => json!({"outcomes": ["approve", "reject"], "reasons": [], "reason_required": true, "edits": []}),
    }
}

pub async fn pending(State(service): Shared, Authed(caller): Authed) -> Answer {
    blocking(&service, None, move |service| {
        let who = &caller.principal;
        let mut out = Vec::new();
        let mut views: BTreeMap<String, (Json, Arc<Analysis>)> = BTreeMap::new();
        for waiting in service.runtime.pending(Some(who))? {
            if !views.contains_key(&waiting.run) {
                let view = service.runtime.status(&waiting.run, Some(who))?;
                let plan = service.runtime.store().run(&waiting.run).map_err(flow_runtime::Error::from)?;
                let Some(record) = plan else { continue };
                views.insert(waiting.run.clone(), (json!(view.why), service.runtime.plan(&record.plan)?));
            }
            let Some((why, analysis)) = views.get(&waiting.run) else { continue };
            let mut item = json!({
                "run": waiting.run, "flow": waiting.flow, "step": waiting.step, "kind": waiting.kind,
                "roles": waiting.roles, "why": why,
            });
            if let (Json::Object(item), Json::Object(form)) = (&mut item, form(analysis, &waiting.step)) {
                item.extend(form);
            }
            if let Some(due) = waiting.due {
                item["next_timer"] = json!(flow_ir::expr::Timestamp { seconds: due, nanos: 0 }.to_string());
            }
            out.push(item);
        }
        ok(&json!({"pending": out}))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecideRequest {
    outcome: String,
    reason: Option<String>,
    basis: Option<String>,
    /// Fields edited (`risk.tier`) and their new values.
    #[serde(default)]
    edits: serde_json::Map<String, Json>,
}

pub async fn decide(
    State(service): Shared,
    Authed(caller): Authed,
    Path((run, step)): Path<(String, String)>,
    JsonBody(request): JsonBody<DecideRequest>,
) -> Answer {
    blocking(&service, Some("decide"), move |service| {
        let input = DecisionInput {
            outcome: request.outcome,
            reason: request.reason,
            basis: request.basis,
            edits: request.edits.into_iter().map(|(field, value)| (field, value.to_string())).collect(),
        };
        ok(&service.runtime.decide(&run, &step, &caller.principal, &input)?.to_json())
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideRequest {
    reason: String,
    basis: String,
}

pub async fn override_gate(
    State(service): Shared,
    Authed(caller): Authed,
    Path((run, gate)): Path<(String, String)>,
    JsonBody(request): JsonBody<OverrideRequest>,
) -> Answer {
    blocking(&service, Some("override"), move |service| {
        let view =
            service.runtime.override_gate(&run, &gate, &caller.principal, &request.reason, Some(&request.basis))?;
        ok(&view.to_json())
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    reason: String,
    basis: String,
}

pub async fn cancel(
    State(service): Shared,
    Authed(caller): Authed,
    Path(run): Path<String>,
    JsonBody(request): JsonBody<CancelRequest>,
) -> Answer {
    blocking(&service, Some("cancel"), move |service| {
        ok(&service.runtime.cancel(&run, &caller.principal, &request.reason, Some(&request.basis))?.to_json())
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResumeRequest {
    reason: String,
}

pub async fn resume(
    State(service): Shared,
    Authed(caller): Authed,
    Path(run): Path<String>,
    JsonBody(request): JsonBody<ResumeRequest>,
) -> Answer {
    blocking(&service, Some("resume"), move |service| {
        ok(&service.runtime.resume_failed(&run, &caller.principal, &request.reason)?.to_json())
    })
    .await
}

// --- Releases -------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleasesQuery {
    environment: Option<String>,
    flow: Option<String>,
}

/// The releases and what is live in each environment.
pub async fn releases(State(service): Shared, Authed(_): Authed, Query(query): Query<ReleasesQuery>) -> Answer {
    blocking(&service, None, move |service| {
        let log = service.runtime.release_log()?;
        ok(&log.registry.list_json(query.environment.as_deref(), query.flow.as_deref()))
    })
    .await
}

/// A release as JSON, with where it stands now.
fn release_json(service: &Service, release: &flow_runtime::release::Release) -> Result<Json, Problem> {
    Ok(service.runtime.release_log()?.registry.to_json(release))
}

/// The release named, or 404.
fn known_release(service: &Service, id: &str) -> Result<flow_runtime::release::Release, Problem> {
    service.runtime.release(id).map_err(|error| match error.kind() {
        flow_runtime::ErrorKind::Decision => Problem::not_found(format!("no release `{id}`")),
        _ => error.into(),
    })
}

pub async fn release(State(service): Shared, Authed(_): Authed, Path(id): Path<String>) -> Answer {
    blocking(&service, None, move |service| ok(&release_json(service, &known_release(service, &id)?)?)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProposeRequest {
    /// An installed plan, by hash; none to promote the plan of `flow` live in the
    /// environment before.
    plan: Option<String>,
    flow: Option<String>,
    environment: String,
    reason: String,
}

pub async fn propose(
    State(service): Shared,
    Authed(caller): Authed,
    JsonBody(request): JsonBody<ProposeRequest>,
) -> Answer {
    blocking(&service, Some("propose"), move |service| {
        let plan = match &request.plan {
            Some(hash) => Some(plan_of(service, hash)?.plan.clone()),
            None => None,
        };
        let proposal = flow_runtime::Proposal {
            plan,
            flow: request.flow.as_deref(),
            environment: &request.environment,
            reason: &request.reason,
            source: None,
        };
        let release = service.runtime.propose(&caller.principal, proposal)?;
        Ok(json_response(StatusCode::CREATED, &release_json(service, &release)?))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseStepRequest {
    reason: String,
}

pub async fn approve_release(
    State(service): Shared,
    Authed(caller): Authed,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<ReleaseStepRequest>,
) -> Answer {
    blocking(&service, Some("approve_release"), move |service| {
        known_release(service, &id)?;
        let release = service.runtime.approve_release(&caller.principal, &id, &request.reason)?;
        ok(&release_json(service, &release)?)
    })
    .await
}

pub async fn reject_release(
    State(service): Shared,
    Authed(caller): Authed,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<ReleaseStepRequest>,
) -> Answer {
    blocking(&service, Some("reject_release"), move |service| {
        known_release(service, &id)?;
        let release = service.runtime.reject_release(&caller.principal, &id, &request.reason)?;
        ok(&release_json(service, &release)?)
    })
    .await
}

pub async fn publish_release(
    State(service): Shared,
    Authed(caller): Authed,
    Path(id): Path<String>,
    body: axum::body::Body,
) -> Answer {
    // Nothing is taken, but what a client sent is read (a body left unread closes the
    // connection).
    if axum::body::to_bytes(body, service.options.max_body).await.is_err() {
        return Err(Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "too-large", "the request's body is too large"));
    }
    blocking(&service, Some("publish_release"), move |service| {
        known_release(service, &id)?;
        let release = service.runtime.publish_release(&caller.principal, &id)?;
        ok(&release_json(service, &release)?)
    })
    .await
}

/// The release log, as `flowc release log --export` writes it.
pub async fn release_log(State(service): Shared, Authed(caller): Authed) -> Answer {
    blocking(&service, None, move |service| {
        let bundle = service.runtime.export_release_log(&caller.principal)?;
        let text = flow_runtime::evidence::render(&bundle);
        Ok((StatusCode::OK, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], text)
            .into_response())
    })
    .await
}

// --- Audit ----------------------------------------------------------------------------------

pub async fn replay(
    State(service): Shared,
    Authed(caller): Authed,
    Path(run): Path<String>,
    body: axum::body::Body,
) -> Answer {
    // The replay takes nothing, but what a client sent is read: a body left unread would
    // close the connection after the answer, under a client that may be reusing it.
    if axum::body::to_bytes(body, service.options.max_body).await.is_err() {
        return Err(Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "too-large", "the request's body is too large"));
    }
    blocking(&service, Some("replay"), move |service| ok(&service.runtime.replay(&run, &caller.principal)?.to_json()))
        .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhatIfRequest {
    /// Params set to other values.
    #[serde(default)]
    set: serde_json::Map<String, Json>,
    /// A candidate plan of the same flow, by hash.
    plan: Option<String>,
}

pub async fn what_if(
    State(service): Shared,
    Authed(caller): Authed,
    Path(run): Path<String>,
    JsonBody(request): JsonBody<WhatIfRequest>,
) -> Answer {
    blocking(&service, Some("what-if"), move |service| {
        let plan = match &request.plan {
            Some(hash) => Some(plan_of(service, hash)?),
            None => None,
        };
        let changes = ReplayChanges { plan, params: request.set.into_iter().collect(), live: false };
        ok(&service.runtime.what_if(&run, &caller.principal, &changes)?.to_json())
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    flow: Option<String>,
    since: Option<String>,
}

/// The golden and governance metrics over stored runs (every run's chain checked and the
/// run replayed: on demand, not on every scrape).
pub async fn stats(State(service): Shared, Authed(_): Authed, Query(query): Query<StatsQuery>) -> Answer {
    blocking(&service, None, move |service| {
        let filter = RunFilter { flow: query.flow, since: query.since, details: false };
        ok(&service.runtime.stats(&filter)?.to_json())
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowQuery {
    flow: Option<String>,
    since: Option<String>,
    /// Candidates whose hash starts with this.
    candidate: Option<String>,
    #[serde(default)]
    details: bool,
}

/// Shadow runs compared with their production runs, for the runs the caller may replay.
pub async fn shadow_report(State(service): Shared, Authed(caller): Authed, Query(query): Query<ShadowQuery>) -> Answer {
    blocking(&service, None, move |service| {
        let filter = RunFilter { flow: query.flow, since: query.since, details: false };
        let report = service.runtime.shadow_report(&caller.principal, &filter, query.candidate.as_deref())?;
        ok(&report.to_json(query.details))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhatIfJobRequest {
    flow: Option<String>,
    /// Runs started at or after (RFC 3339, or a date).
    since: Option<String>,
    #[serde(default)]
    set: serde_json::Map<String, Json>,
    /// A candidate plan of the flow, by hash.
    plan: Option<String>,
    /// Keep every run that does not reproduce, with its changes.
    #[serde(default)]
    details: bool,
}

/// A what-if (or, with no change, an exact replay) over every stored run the caller may
/// replay, as a job: answered at once with where to poll it.
pub async fn what_if_job(
    State(service): Shared,
    Authed(caller): Authed,
    JsonBody(request): JsonBody<WhatIfJobRequest>,
) -> Answer {
    let plan = match &request.plan {
        Some(hash) => {
            let hash = hash.clone();
            Some(blocking(&service, None, move |service| plan_of(service, &hash)).await?)
        }
        None => None,
    };
    let Some(job) = service.jobs.start(&caller.principal.id) else {
        let mut problem = Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            format!("this server runs {} jobs already; ask again later", crate::jobs::RUNNING),
        );
        problem.retry_after = Some(10);
        return Err(problem);
    };
    let changes = ReplayChanges { plan, params: request.set.into_iter().collect(), live: false };
    let filter = RunFilter { flow: request.flow, since: request.since, details: request.details };
    spawn_what_if(&service, &job, caller.principal, filter, changes);
    let mut response = json_response(StatusCode::ACCEPTED, &job.to_json());
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/jobs/{}", job.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Runs a what-if over the stored runs `filter` selects, as `who`, on a thread of its own,
/// telling `job` how far it is and then its result.
pub(crate) fn spawn_what_if(
    service: &Arc<Service>,
    job: &Arc<crate::jobs::Job>,
    who: flow_runtime::Principal,
    filter: RunFilter,
    changes: ReplayChanges,
) {
    let (shared, running) = (service.clone(), job.clone());
    std::thread::spawn(move || {
        let told = running.clone();
        let progress = move |done: usize, total: usize| {
            told.done.store(done, std::sync::atomic::Ordering::Relaxed);
            told.total.store(total, std::sync::atomic::Ordering::Relaxed);
        };
        let result = shared.runtime.replay_all_telling(&who, &filter, &changes, Some(&progress));
        let ended = result.map(|summary| summary.to_json(filter.details)).map_err(|error| Problem::from(error).body());
        *running.ended.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(ended);
        shared.metrics.operation("what-if-job", "ended");
    });
}

/// A job of the caller: how far it is, then its result or the problem that ended it.
pub async fn job(State(service): Shared, Authed(caller): Authed, Path(id): Path<String>) -> Answer {
    match service.jobs.get(&id, &caller.principal.id) {
        Some(job) => ok(&job.to_json()),
        None => Err(Problem::not_found(format!("no job {id} of yours on this server"))),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions_are_ordered_as_semantic_versions() {
        let mut versions = ["1.10.0", "2.0.0", "1.9.0", "2.0.0-rc1", "1.9.10"];
        versions.sort_by(|a, b| super::version_order(a, b));
        assert_eq!(versions, ["1.9.0", "1.9.10", "1.10.0", "2.0.0-rc1", "2.0.0"]);
    }
}
