//! The web pages (`/ui`): server-rendered HTML from templates that escape every value
//! (askama, checked when the server is compiled), no script of any kind, one stylesheet
//! served from the binary, and headers that forbid everything else (`Content-Security-Policy:
//! default-src 'none'; style-src 'self'; …`). A person signs in with an API token; the
//! session is a signed cookie (`session.rs`), checked on every request against the tokens
//! and principals files as they stand. Every form carries a CSRF token, and a form whose
//! token does not hold is refused and the refusal recorded.
//!
//! The pages read the runtime through the same calls, grants and redaction as the API.

mod charts;
mod dashboard;
mod flows;
mod oidc;
mod releases;
mod session;

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use flow_runtime::Status;
use serde::Deserialize;

use crate::Service;
use crate::auth::{Caller, Unauthenticated};
use crate::problem::Problem;
pub use session::Sessions;

/// What the pages keep between requests: the sign-ins through the issuer under way, and the
/// dashboard's last counts.
#[derive(Default)]
pub struct Pages {
    sign_ins: oidc::SignIns,
    dashboard: dashboard::Cache,
}
use session::{COOKIE, SIGN_IN_COOKIE, Session};

/// The pages' routes, under `/ui`.
pub fn routes() -> Router<Arc<Service>> {
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/inbox") }))
        .route("/ui/sign-in", get(sign_in_page).post(sign_in))
        .route("/ui/sign-in/oidc", get(oidc::start))
        .route("/ui/sign-in/oidc/callback", get(oidc::callback))
        .route("/ui/sign-out", post(sign_out))
        .route("/ui/inbox", get(inbox))
        .route("/ui/runs/{run}", get(run_page))
        .route("/ui/runs/{run}/steps/{step}", get(decide_page).post(decide))
        .route("/ui/runs/{run}/gates/{gate}/override", post(override_gate))
        .route("/ui/runs/{run}/evidence", get(evidence))
        .route("/ui/runs/{run}/replay", post(replay))
        .route("/ui/dashboard", get(dashboard::dashboard))
        .route("/ui/flows", get(flows::flows))
        .route("/ui/plans/{plan}", get(flows::plan))
        .route("/ui/plans/{plan}/diff", get(flows::diff))
        .route("/ui/plans/{plan}/what-if", post(flows::what_if))
        .route("/ui/jobs/{job}", get(flows::job))
        .route("/ui/plans/{plan}/propose", post(releases::propose))
        .route("/ui/releases", get(releases::releases))
        .route("/ui/releases/{release}", get(releases::release))
        .route("/ui/releases/{release}/{step}", post(releases::step))
        .route("/ui/assets/flow.css", get(stylesheet))
        .route("/ui/{*rest}", get(no_such_page))
        .layer(middleware::from_fn(guarded))
}

/// What every page's answer carries: nothing but this server's stylesheet may load, no
/// script runs, no other site may frame it or see where it was, nothing is cached.
async fn guarded(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let fixed = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response
}

fn now() -> i64 {
    flow_runtime::now().seconds
}

/// A name as one segment of a path: every byte but letters, digits, `-`, `_`, `.`, `~` and
/// `:` (a plan's hash: `blake3:…`) percent-encoded, so that no name (a plan installed as JSON may name its steps as it
/// likes) reaches another path.
fn segment(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'~' | b':' => (b as char).to_string(),
            b'.' if name.bytes().any(|c| c != b'.') => ".".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A stored time (RFC 3339) as a person reads it: to the minute, in UTC.
fn shown_time(at: &str) -> String {
    match (at.get(..10), at.get(11..16)) {
        (Some(day), Some(minute)) if at.as_bytes().get(10) == Some(&b'T') => format!("{day} {minute} UTC"),
        _ => at.to_owned(),
    }
}

/// A value as a person reads it: text without quotes, a labelled value the
/// viewer may see as its value, one they may not as `[redacted: LABELS]`, records as
/// `{field: value, …}`.
fn readable(value: &serde_json::Value) -> String {
    use serde_json::Value as Json;
    let labels = |value: &Json| {
        value["$labels"].as_array().map(|l| l.iter().filter_map(Json::as_str).collect::<Vec<_>>().join(", "))
    };
    match value {
        Json::Null => "—".to_owned(),
        Json::String(text) => text.clone(),
        Json::Object(fields) if fields.contains_key("$redacted") => {
            format!("[redacted: {}]", labels(value).unwrap_or_default())
        }
        Json::Object(fields) if fields.contains_key("$value") => readable(&value["$value"]),
        Json::Object(fields) => {
            let fields: Vec<String> = fields.iter().map(|(k, v)| format!("{k}: {}", readable(v))).collect();
            format!("{{{}}}", fields.join(", "))
        }
        Json::Array(items) => format!("[{}]", items.iter().map(readable).collect::<Vec<_>>().join(", ")),
        other => other.to_string(),
    }
}

/// The pages of a run, and of one of its steps.
fn run_href(run: &str) -> String {
    format!("/ui/runs/{}", segment(run))
}

fn step_href(run: &str, step: &str) -> String {
    format!("/ui/runs/{}/steps/{}", segment(run), segment(step))
}

/// A page as an answer, or an error page when the template cannot render.
fn html(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => (status, [(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"))], body)
            .into_response(),
        Err(error) => {
            tracing::error!(target: "flow::http", "a page did not render: {error}");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page did not render").into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    signed_in: Option<&'a Viewer>,
    title: &'a str,
    message: &'a str,
}

/// An error of the runtime or the request, as a page with its status.
fn problem_page(viewer: Option<&Viewer>, problem: &Problem) -> Response {
    let title = problem.status.canonical_reason().unwrap_or("Error");
    html(problem.status, &MessagePage { signed_in: viewer, title, message: &problem.detail })
}

// --- Who is looking ---------------------------------------------------------------------

/// The signed-in principal of a page's request, and their session.
pub struct Viewer {
    caller: Caller,
    session: Session,
    csrf: String,
}

impl Viewer {
    fn id(&self) -> &str {
        &self.caller.principal.id
    }
}

/// Why a page is not shown to whoever asked: not signed in (no session, or one that ended
/// or does not hold: to the sign-in page), too many requests of theirs at once, or the
/// deployment's files unreadable (said in the server's log, not to the visitor).
pub enum SignInFirst {
    NoSession,
    TooMany { why: String, retry_after: u64 },
    Unavailable,
}

/// What a visitor is told when the deployment's files cannot be read: the details (a path,
/// the line that does not parse) go to the server's log only.
const UNAVAILABLE: &str = "the server cannot read its deployment's files; its log says why";

impl IntoResponse for SignInFirst {
    fn into_response(self) -> Response {
        match self {
            SignInFirst::NoSession => Redirect::to("/ui/sign-in").into_response(),
            SignInFirst::TooMany { why, retry_after } => {
                let page = MessagePage { signed_in: None, title: "Too many requests", message: &why };
                let mut response = html(StatusCode::TOO_MANY_REQUESTS, &page);
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
                response
            }
            SignInFirst::Unavailable => {
                let page = MessagePage { signed_in: None, title: "Unavailable", message: UNAVAILABLE };
                html(StatusCode::SERVICE_UNAVAILABLE, &page)
            }
        }
    }
}

/// The deployment's files could not be read: logged, and a visitor told only that.
fn unavailable(why: &str) -> SignInFirst {
    tracing::error!(target: "flow::http", "the pages cannot authenticate: {why}");
    SignInFirst::Unavailable
}

impl FromRequestParts<Arc<Service>> for Viewer {
    type Rejection = SignInFirst;

    async fn from_request_parts(parts: &mut Parts, service: &Arc<Service>) -> Result<Viewer, SignInFirst> {
        let cookies = parts.headers.get(header::COOKIE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let session = session::cookie(cookies, COOKIE)
            .and_then(|value| service.sessions.check(value, now()))
            .ok_or(SignInFirst::NoSession)?;
        let caller = match service.auth.resume(&session.principal, &session.token) {
            Ok(caller) => caller,
            Err(Unauthenticated::Unavailable(why)) => return Err(unavailable(&why)),
            Err(_) => return Err(SignInFirst::NoSession),
        };
        let caller = service
            .admit(parts, caller)
            .map_err(|exceeded| SignInFirst::TooMany { why: exceeded.why, retry_after: exceeded.retry_after })?;
        let csrf = service.sessions.csrf(&session.nonce);
        Ok(Viewer { caller, session, csrf })
    }
}

/// A form's CSRF token checked against the session: a form that does not hold is refused,
/// and the refusal recorded (someone made the browser of a signed-in principal send it);
/// the refusal's page, or nothing when the form holds.
fn refused_form(service: &Service, viewer: &Viewer, presented: &str, what: &str) -> Option<Response> {
    if service.sessions.csrf_holds(&viewer.session.nonce, presented) {
        return None;
    }
    let message = format!("{what}: the form's token does not belong to this session; open the page again and resend");
    let error = service.runtime.refuse_operation(&viewer.caller.principal, what, "a form of this session", message);
    Some(problem_page(Some(viewer), &Problem::from(error)))
}

// --- Signing in and out -------------------------------------------------------------------

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage<'a> {
    signed_in: Option<&'a Viewer>,
    csrf: &'a str,
    error: Option<&'a str>,
    /// The issuer to sign in through, when the deployment has one for the pages.
    issuer: Option<&'a str>,
}

/// The sign-in form, with a nonce cookie of its own that its CSRF token is made from.
fn sign_in_form(service: &Service, status: StatusCode, error: Option<&str>) -> Response {
    // The form's nonce says when it was made: a form older than an hour is not taken.
    let nonce = match session::random_bytes(16) {
        Ok(bytes) => format!("{}.{}", now(), bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()),
        Err(e) => return problem_page(None, &Problem::internal(e.to_string())),
    };
    let csrf = service.sessions.csrf(&nonce);
    let issuer = service.auth.oidc().filter(|o| o.web.is_some()).map(|o| o.issuer.as_str());
    let mut response = html(status, &SignInPage { signed_in: None, csrf: &csrf, error, issuer });
    if let Ok(cookie) = HeaderValue::from_str(&session::set_cookie(SIGN_IN_COOKIE, &nonce, 3600)) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

async fn sign_in_page(State(service): State<Arc<Service>>) -> Response {
    sign_in_form(&service, StatusCode::OK, None)
}

#[derive(Deserialize)]
struct SignInForm {
    token: String,
    csrf: String,
}

async fn sign_in(State(service): State<Arc<Service>>, headers: HeaderMap, form: axum::Form<SignInForm>) -> Response {
    let cookies = headers.get(header::COOKIE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let nonce = session::cookie(cookies, SIGN_IN_COOKIE).unwrap_or_default();
    let made = nonce.split_once('.').and_then(|(at, _)| at.parse::<i64>().ok());
    // The form's token first (a nonce of this server's), then its age (no arithmetic on a
    // number nobody signed).
    let holds = service.sessions.csrf_holds(nonce, &form.csrf);
    let fresh = holds && made.and_then(|at| now().checked_sub(at)).is_some_and(|age| (0..=3600).contains(&age));
    if !fresh {
        let why = "the sign-in form expired or was not this server's: sign in again";
        return sign_in_form(&service, StatusCode::FORBIDDEN, Some(why));
    }
    let caller = match service.auth.authenticate(Some(&format!("Bearer {}", form.token.trim()))) {
        Ok(caller) => caller,
        Err(Unauthenticated::Unavailable(why)) => return unavailable(&why).into_response(),
        Err(_) => {
            let why = "that token is not one of this deployment's, or it was revoked";
            return sign_in_form(&service, StatusCode::UNAUTHORIZED, Some(why));
        }
    };
    let Some(token) = caller.method.strip_prefix("token ") else {
        let why = "sign in with an API token (`flowc token create --as YOU`)";
        return sign_in_form(&service, StatusCode::UNAUTHORIZED, Some(why));
    };
    let value = match service.sessions.issue(&caller.principal.id, token, now()) {
        Ok(value) => value,
        Err(e) => return problem_page(None, &Problem::internal(e.to_string())),
    };
    let mut response = Redirect::to("/ui/inbox").into_response();
    for cookie in
        [session::set_cookie(COOKIE, &value, session::LIFETIME_SECONDS), session::set_cookie(SIGN_IN_COOKIE, "", 0)]
    {
        if let Ok(cookie) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
    }
    response
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn sign_out(State(service): State<Arc<Service>>, viewer: Viewer, form: axum::Form<CsrfForm>) -> Response {
    if let Some(refused) = refused_form(&service, &viewer, &form.csrf, "sign out") {
        return refused;
    }
    let mut response = Redirect::to("/ui/sign-in").into_response();
    if let Ok(cookie) = HeaderValue::from_str(&session::set_cookie(COOKIE, "", 0)) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

// --- The inbox ----------------------------------------------------------------------------

/// A step waiting for the viewer, as the inbox lists it.
struct Waiting {
    run: String,
    run_href: String,
    step_href: String,
    flow: String,
    step: String,
    kind: String,
    roles: String,
    since: String,
    /// When the step's next reminder or deadline falls, for a step with deadlines.
    next_timer: Option<String>,
    why: Vec<String>,
}

/// How many waiting steps one page of the inbox lists.
const INBOX_PAGE: usize = 50;

#[derive(Template)]
#[template(path = "inbox.html")]
struct InboxPage<'a> {
    signed_in: Option<&'a Viewer>,
    items: Vec<Waiting>,
    /// How many steps wait in all, and the place of the page's first and last.
    total: usize,
    first: usize,
    last: usize,
    /// The pages before and after this one, where there are.
    previous: Option<String>,
    next: Option<String>,
    /// Runs left out because they could not be read, with why.
    unreadable: Vec<(String, String)>,
    /// Releases waiting for the viewer: to approve, or to publish.
    releases: Vec<releases::Waiting>,
}

#[derive(Deserialize)]
struct PageQuery {
    page: Option<usize>,
}

async fn inbox(
    State(service): State<Arc<Service>>,
    viewer: Viewer,
    axum::extract::Query(query): axum::extract::Query<PageQuery>,
) -> Response {
    let who = viewer.caller.principal.clone();
    let page = query.page.unwrap_or(1).max(1);
    let skip = (page - 1).saturating_mul(INBOX_PAGE);
    let listed = crate::api::blocking(&service, None, move |service| {
        Ok((service.runtime.inbox(&who, skip, INBOX_PAGE)?, releases::waiting_for(service, &who)?))
    })
    .await;
    let (inbox, waiting_releases) = match listed {
        Ok(listed) => listed,
        Err(problem) => return problem_page(Some(&viewer), &problem),
    };
    let items: Vec<Waiting> = inbox
        .items
        .into_iter()
        .map(|item| Waiting {
            run_href: run_href(&item.waiting.run),
            step_href: step_href(&item.waiting.run, &item.waiting.step),
            run: item.waiting.run,
            flow: item.waiting.flow,
            step: item.waiting.step,
            kind: item.waiting.kind,
            roles: item.waiting.roles.join(", "),
            since: shown_time(&item.created),
            next_timer: item
                .waiting
                .due
                .map(|seconds| shown_time(&flow_ir::expr::Timestamp { seconds, nanos: 0 }.to_string())),
            why: item.why,
        })
        .collect();
    let page_href = |n: usize| format!("/ui/inbox?page={n}");
    let shown = InboxPage {
        signed_in: Some(&viewer),
        total: inbox.total,
        first: skip.saturating_add(1),
        last: skip.saturating_add(items.len()),
        previous: (page > 1).then(|| page_href(page - 1)),
        next: (skip.saturating_add(INBOX_PAGE) < inbox.total).then(|| page_href(page + 1)),
        items,
        unreadable: inbox.unreadable,
        releases: waiting_releases,
    };
    for (run, why) in &shown.unreadable {
        tracing::warn!(target: "flow::runs", run, why, "a pending run could not be read for the inbox");
    }
    html(StatusCode::OK, &shown)
}

// --- Deciding a step ----------------------------------------------------------------------

/// A place the review may edit, and how its input is offered.
struct Editable {
    field: String,
    /// The type as the flow declares it (`Money[USD]`).
    ty: String,
    /// For an enum or a yes/no: the choices.
    choices: Option<Vec<String>>,
    /// For a value typed in: an example of how it is written (`1200.50 USD`).
    example: String,
    /// Its value as it stands, as the viewer may see it.
    current: String,
    /// What was entered, shown back with an error.
    entered: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "decide.html")]
struct DecidePage<'a> {
    signed_in: Option<&'a Viewer>,
    run: String,
    run_href: String,
    /// Where the form goes.
    action: String,
    flow: String,
    step: String,
    kind: String,
    /// What the step says to whoever decides (a soft gate's message).
    message: Option<String>,
    why: Vec<String>,
    outcomes: Vec<String>,
    /// Reason codes to choose from (`choice`), one to type (`code`: gates and approvals), or
    /// none (`none`: a review without reason codes takes none).
    reason_field: &'static str,
    reasons: Vec<String>,
    edits: Vec<Editable>,
    entered: DecideForm,
    /// Errors at the outcome, the reason, the basis; and one for the whole form.
    errors: FieldErrors,
}

#[derive(Default)]
struct FieldErrors {
    outcome: Option<String>,
    reason: Option<String>,
    basis: Option<String>,
    form: Option<String>,
}

/// A decision as the form sends it: `outcome`, `reason`, `basis`, `edit.FIELD` (blank: left
/// as it is), `csrf`.
#[derive(Default)]
struct DecideForm {
    outcome: String,
    reason: String,
    basis: String,
    edits: Vec<(String, String)>,
    csrf: String,
}

impl DecideForm {
    fn read(pairs: Vec<(String, String)>) -> DecideForm {
        let mut form = DecideForm::default();
        for (name, value) in pairs {
            match name.as_str() {
                "outcome" => form.outcome = value,
                "reason" => form.reason = value,
                "basis" => form.basis = value,
                "csrf" => form.csrf = value,
                _ => {
                    if let Some(field) = name.strip_prefix("edit.") {
                        form.edits.push((field.to_owned(), value));
                    }
                }
            }
        }
        form
    }

    fn edit(&self, field: &str) -> &str {
        self.edits.iter().find(|(f, _)| f == field).map_or("", |(_, v)| v.as_str())
    }
}

/// How a value of a type is typed in a form, as an example: an amount with its currency, an
/// instant in RFC 3339, a duration with its unit.
fn example_of(ty: &flow_ir::ty::Ty) -> String {
    use flow_ir::ty::Ty;
    match ty {
        Ty::Money(Some(currency)) => format!("1200.50 {currency}"),
        Ty::Money(None) => "1200.50 USD".to_owned(),
        Ty::Decimal => "0.75".to_owned(),
        Ty::Int => "42".to_owned(),
        Ty::Timestamp => "2026-12-04T10:00:00Z".to_owned(),
        Ty::Duration => "48h".to_owned(),
        _ => String::new(),
    }
}

/// The form of step `step` of `run` for `who`, with what was entered and the errors.
fn decide_form(
    service: &Service,
    who: &flow_runtime::Principal,
    (run, step): (&str, &str),
    entered: DecideForm,
    errors: FieldErrors,
) -> Result<DecidePage<'static>, Problem> {
    let view = service.runtime.status(run, Some(who))?;
    let record = service.runtime.store().run(run).map_err(flow_runtime::Error::from)?;
    let record = record.ok_or_else(|| Problem::not_found(format!("no run {run}")))?;
    let analysis = service.runtime.plan(&record.plan)?;
    let body = analysis.body();
    let node = body.node(step).ok_or_else(|| Problem::not_found(format!("`{step}` is not a step of {}", view.flow)))?;
    let (outcomes, reasons, edits, message) = match &node.kind {
        flow_ir::plan::NodeKind::Review { outcomes, reasons, edits, .. } => {
            let current = service.runtime.edit_values(run, step, who)?;
            let edits = edits
                .iter()
                .map(|path| {
                    let field = path.to_string();
                    let ty = flow_runtime::decision::edit_type(&analysis, path);
                    let choices = ty.as_ref().and_then(|ty| match ty.unwrap_optional() {
                        flow_ir::ty::Ty::Bool => Some(vec!["true".to_owned(), "false".to_owned()]),
                        other => body.variants(other).map(|v| v.iter().map(ToString::to_string).collect()),
                    });
                    let error = errors.form.as_ref().filter(|e| e.contains(&format!("`{field}`"))).cloned();
                    let example = ty.as_ref().map(|t| example_of(t.unwrap_optional())).unwrap_or_default();
                    let current =
                        current.iter().find(|(f, _)| *f == field).map(|(_, v)| readable(v)).unwrap_or_default();
                    Editable {
                        example,
                        current,
                        entered: entered.edit(&field).to_owned(),
                        ty: ty.map_or_else(String::new, |t| t.to_string()),
                        choices,
                        field,
                        error,
                    }
                })
                .collect();
            (
                outcomes.iter().map(ToString::to_string).collect(),
                reasons.iter().map(ToString::to_string).collect(),
                edits,
                None,
            )
        }
        flow_ir::plan::NodeKind::Gate { message, .. } => {
            (vec!["approve".to_owned(), "reject".to_owned()], Vec::new(), Vec::new(), message.clone())
        }
        flow_ir::plan::NodeKind::Approval { .. } => {
            (vec!["approve".to_owned(), "reject".to_owned()], Vec::new(), Vec::new(), None)
        }
        _ => return Err(Problem::not_found(format!("`{step}` is not a step a person decides"))),
    };
    let reason_field = match &node.kind {
        flow_ir::plan::NodeKind::Review { .. } if reasons.is_empty() => "none",
        flow_ir::plan::NodeKind::Review { .. } => "choice",
        _ => "code",
    };
    Ok(DecidePage {
        signed_in: None,
        run_href: run_href(&view.run),
        action: step_href(&view.run, step),
        reason_field,
        run: view.run,
        flow: view.flow,
        step: step.to_owned(),
        kind: node.kind.keyword().to_owned(),
        message,
        why: view.why,
        outcomes,
        reasons,
        edits,
        entered,
        errors,
    })
}

/// The decide page, as the viewer's browser gets it.
fn decide_html(viewer: &Viewer, status: StatusCode, page: DecidePage<'static>) -> Response {
    let mut page: DecidePage<'_> = page;
    page.signed_in = Some(viewer);
    html(status, &page)
}

async fn decide_page(
    State(service): State<Arc<Service>>,
    viewer: Viewer,
    Path((run, step)): Path<(String, String)>,
) -> Response {
    let who = viewer.caller.principal.clone();
    let read = crate::api::blocking(&service, None, move |service| {
        decide_form(service, &who, (&run, &step), DecideForm::default(), FieldErrors::default())
    })
    .await;
    match read {
        Ok(data) => decide_html(&viewer, StatusCode::OK, data),
        Err(problem) => problem_page(Some(&viewer), &problem),
    }
}

/// Where the runtime's refusal of a decision belongs on the form: at the outcome, the
/// reason, the basis, or an edited field (named in it), else over the whole form.
fn place(message: String) -> FieldErrors {
    let mut errors = FieldErrors::default();
    // The runtime's refusals, by their shapes (`decision.rs`).
    let at_reason = ["is not a reason of", "needs a reason", "is not a reason code"];
    if message.contains("is not an outcome of") {
        errors.outcome = Some(message);
    } else if at_reason.iter().any(|shape| message.contains(shape)) {
        // The command line's hint is not the form's.
        errors.reason = Some(message.replace(" (`--reason CODE`)", ""));
    } else if message.contains("needs a basis") {
        errors.basis = Some(message);
    } else {
        errors.form = Some(message);
    }
    errors
}

/// Decides the step as the form says: to the run's page when taken; the form again, with
/// what was entered and the errors at their fields, when not (nothing recorded but a
/// refusal of access, which is recorded as every refusal is).
async fn decide(
    State(service): State<Arc<Service>>,
    viewer: Viewer,
    Path((run, step)): Path<(String, String)>,
    axum::Form(pairs): axum::Form<Vec<(String, String)>>,
) -> Response {
    let form = DecideForm::read(pairs);
    if let Some(refused) = refused_form(&service, &viewer, &form.csrf, &format!("decide {step}")) {
        return refused;
    }
    let mut fields: Vec<&str> =
        form.edits.iter().filter(|(_, v)| !v.trim().is_empty()).map(|(f, _)| f.as_str()).collect();
    fields.sort_unstable();
    let twice = fields.windows(2).find(|pair| pair[0] == pair[1]).map(|pair| pair[0].to_owned());
    let who = viewer.caller.principal.clone();
    let back = run_href(&run);
    let done = crate::api::blocking(&service, Some("decide"), move |service| {
        let input = flow_runtime::DecisionInput {
            outcome: form.outcome.clone(),
            reason: Some(form.reason.trim().to_owned()).filter(|r| !r.is_empty()),
            basis: Some(form.basis.trim().to_owned()).filter(|b| !b.is_empty()),
            edits: form
                .edits
                .iter()
                .filter(|(_, v)| !v.trim().is_empty())
                .map(|(f, v)| (f.clone(), v.trim().to_owned()))
                .collect(),
        };
        if let Some(field) = twice {
            let message = format!("`{field}` is edited twice in one decision: give it one new value");
            let data = decide_form(service, &who, (&run, &step), form, place(message))?;
            return Ok(Some((StatusCode::UNPROCESSABLE_ENTITY, data)));
        }
        match service.runtime.decide(&run, &step, &who, &input) {
            Ok(_) => Ok(None),
            Err(error) => {
                let status = Problem::status_of(error.kind());
                let message = error.to_string();
                let data = decide_form(service, &who, (&run, &step), form, place(message))?;
                Ok(Some((status, data)))
            }
        }
    })
    .await;
    match done {
        // Taken: to the run's page (the form is not sent twice by reloading).
        Ok(None) => Redirect::to(&back).into_response(),
        Ok(Some((status, data))) => decide_html(&viewer, status, data),
        Err(problem) => problem_page(Some(&viewer), &problem),
    }
}

// --- Overriding a gate -------------------------------------------------------------------

#[derive(Deserialize)]
struct OverrideForm {
    reason: String,
    basis: String,
    csrf: String,
}

/// Overrides a blocking gate that holds the run, as the API does (`override GATE by ROLE`,
/// a reason code and a basis, both required): to the run's page when taken; a page with the
/// runtime's message when not (a refusal of access recorded, as every refusal is).
async fn override_gate(
    State(service): State<Arc<Service>>,
    viewer: Viewer,
    Path((run, gate)): Path<(String, String)>,
    axum::Form(form): axum::Form<OverrideForm>,
) -> Response {
    if let Some(refused) = refused_form(&service, &viewer, &form.csrf, &format!("override {gate}")) {
        return refused;
    }
    let who = viewer.caller.principal.clone();
    let back = run_href(&run);
    let done = crate::api::blocking(&service, Some("override"), move |service| {
        // A basis is required here; but one who may not override is refused (and the refusal
        // recorded) by the runtime first, whatever the form holds.
        let record = service.runtime.store().run(&run).map_err(flow_runtime::Error::from)?;
        let record = record.ok_or_else(|| Problem::not_found(format!("no run {run}")))?;
        let analysis = service.runtime.plan(&record.plan)?;
        let granted = analysis.granted(&who.roles, flow_ir::plan::GrantKind::Override, Some(&gate));
        if granted && form.basis.trim().is_empty() {
            let why = "an override needs a basis: say what you relied on";
            return Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", why));
        }
        service.runtime.override_gate(&run, &gate, &who, form.reason.trim(), Some(form.basis.trim()))?;
        Ok(())
    })
    .await;
    match done {
        Ok(()) => Redirect::to(&back).into_response(),
        Err(problem) => problem_page(Some(&viewer), &problem),
    }
}

// --- A run --------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage<'a> {
    signed_in: Option<&'a Viewer>,
    run: String,
    flow: String,
    status: &'static str,
    summary: String,
    why: Vec<String>,
    /// Steps waiting: the page to decide it, its name, kind and who may decide.
    pending: Vec<(String, String, String, String)>,
    outputs: Vec<(String, String, String)>,
    evidence_href: String,
    /// Blocking gates that hold the run and the viewer may override: the form's address,
    /// the gate, its message.
    overrides: Vec<(String, String, String)>,
    narrative: String,
    /// The plan's picture with the path the run took (SVG, made here from the plan: no
    /// value of the run is in it).
    picture: String,
    /// What checking the run's evidence bundle (as the viewer would download it) found, for
    /// one granted `read evidence` (and whether they are); else why it is not offered.
    may_export: bool,
    evidence_check: Result<String, String>,
    /// Where the replay form goes, for one granted `replay`.
    replay_href: Option<String>,
}

async fn run_page(State(service): State<Arc<Service>>, viewer: Viewer, Path(run): Path<String>) -> Response {
    let who = viewer.caller.principal.clone();
    let read = crate::api::blocking(&service, None, move |service| {
        // The run read once for its status, its story and its path.
        let flow_runtime::RunPage { view, narrative, marks, analysis } = service.runtime.page(&run, &who)?;
        let picture = flow_ir::render::svg_of_run(&analysis.plan, &marks);
        let blocked = view.status == Status::Blocked;
        let overrides = marks
            .iter()
            .filter(|(_, mark)| blocked && **mark == flow_ir::render::Mark::Held)
            .filter_map(|(gate, _)| match &analysis.body().node(gate)?.kind {
                flow_ir::plan::NodeKind::Gate { level: flow_ir::plan::GateLevel::Block, message, .. }
                    if analysis.granted(&who.roles, flow_ir::plan::GrantKind::Override, Some(gate)) =>
                {
                    let href = format!("{}/gates/{}/override", run_href(&run), segment(gate));
                    Some((href, gate.clone(), message.clone().unwrap_or_default()))
                }
                _ => None,
            })
            .collect();
        // The bundle the viewer would download, checked as `flowc verify` checks it; only
        // for one granted it (a page view is not a request to be refused).
        let may_export = analysis.granted(&who.roles, flow_ir::plan::GrantKind::ReadEvidence, None);
        let evidence_check = if may_export {
            // A bundle that cannot be made (a run that kept changing, a store changed behind
            // the runtime's back) is said, not turned into an error page.
            let bundle = service.runtime.evidence(&run, &who).map(|b| flow_runtime::evidence::render(&b));
            match bundle.map_err(|e| vec![e.to_string()]).and_then(|b| flow_runtime::evidence::verify(b.as_bytes())) {
                Ok(verified) => Ok(format!(
                    "The evidence verifies: {} events{}, head {}, {}{}.",
                    verified.events,
                    if verified.redacted > 0 {
                        format!(" ({} redacted for you)", verified.redacted)
                    } else {
                        String::new()
                    },
                    verified.head,
                    verified.signed_by.map_or_else(|| "not signed".to_owned(), |key| format!("signed by {key}")),
                    verified.logged.map(|(at, _)| format!(", entry {at} of the store's log")).unwrap_or_default(),
                )),
                Err(problems) => Err(format!("The evidence does not verify: {}", problems.join("; "))),
            }
        } else {
            Err("Exporting this run's evidence needs `read evidence`.".to_owned())
        };
        let replay = analysis.granted(&who.roles, flow_ir::plan::GrantKind::Replay, None);
        Ok((view, narrative, picture, overrides, (may_export, evidence_check), replay))
    })
    .await;
    let (view, narrative, picture, overrides, (may_export, evidence_check), replay) = match read {
        Ok(read) => read,
        Err(problem) => return problem_page(Some(&viewer), &problem),
    };
    let outputs = view
        .outputs
        .iter()
        .map(|(name, value)| {
            let shown = readable(value);
            (name.clone(), shown, view.marks.get(name).map(|m| m.join("; ")).unwrap_or_default())
        })
        .collect();
    let page = RunPage {
        signed_in: Some(&viewer),
        status: view.status.as_str(),
        summary: view.summary,
        why: view.why,
        pending: view
            .pending
            .into_iter()
            .map(|(step, kind, roles)| (step_href(&view.run, &step), step, kind, roles.join(", ")))
            .collect(),
        evidence_href: format!("{}/evidence", run_href(&view.run)),
        may_export,
        evidence_check,
        replay_href: replay.then(|| format!("{}/replay", run_href(&view.run))),
        outputs,
        narrative,
        picture,
        overrides,
        run: view.run,
        flow: view.flow,
    };
    html(StatusCode::OK, &page)
}

#[derive(Template)]
#[template(path = "replayed.html")]
struct ReplayedPage<'a> {
    signed_in: Option<&'a Viewer>,
    run: String,
    run_href: String,
    exact: bool,
    events: usize,
    status: &'static str,
    engine: String,
    /// Where it first differs: the event's position and its step.
    differs: Option<(usize, String)>,
}

/// Replays the run from its evidence, exactly, as `flowc replay RUN` does (needs `replay`;
/// a refusal is recorded), and says whether every step and the outcome came out as
/// recorded, or where they first differ (the values themselves are for `flowc replay`).
async fn replay(
    State(service): State<Arc<Service>>,
    viewer: Viewer,
    Path(run): Path<String>,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    if let Some(refused) = refused_form(&service, &viewer, &form.csrf, "replay") {
        return refused;
    }
    let who = viewer.caller.principal.clone();
    let replayed =
        crate::api::blocking(&service, Some("replay"), move |service| Ok(service.runtime.replay(&run, &who)?)).await;
    match replayed {
        Ok(replay) => {
            let page = ReplayedPage {
                signed_in: Some(&viewer),
                run_href: run_href(&replay.run),
                exact: replay.divergence.is_none(),
                events: replay.events,
                status: replay.status.as_str(),
                engine: replay.engine.clone(),
                differs: replay
                    .divergence
                    .as_ref()
                    .map(|d| (d.index, d.node.clone().unwrap_or_else(|| "the run".to_owned()))),
                run: replay.run,
            };
            html(StatusCode::OK, &page)
        }
        Err(problem) => problem_page(Some(&viewer), &problem),
    }
}

/// The run's evidence bundle, as `flowc evidence` writes it, to download.
async fn evidence(State(service): State<Arc<Service>>, viewer: Viewer, Path(run): Path<String>) -> Response {
    let who = viewer.caller.principal.clone();
    let name = run.clone();
    let bundle = crate::api::blocking(&service, Some("evidence"), move |service| {
        // As `flowc evidence` writes it: the bytes a verifier checks.
        Ok(flow_runtime::evidence::render(&service.runtime.evidence(&run, &who)?))
    })
    .await;
    match bundle {
        Ok(text) => {
            // Run ids are letters, digits and dashes: nothing to escape in the file's name.
            let file = format!(
                "attachment; filename=\"{}.evidence.json\"",
                name.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")
            );
            let mut response = (StatusCode::OK, text).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            if let Ok(value) = HeaderValue::from_str(&file) {
                headers.insert(header::CONTENT_DISPOSITION, value);
            }
            response
        }
        Err(problem) => problem_page(Some(&viewer), &problem),
    }
}

/// A page that is not one of these: said as a page (not as the API's JSON).
async fn no_such_page() -> Response {
    let page =
        MessagePage { signed_in: None, title: "Not found", message: "there is no such page; start at the inbox" };
    html(StatusCode::NOT_FOUND, &page)
}

async fn stylesheet() -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8")),
            (header::CACHE_CONTROL, HeaderValue::from_static("max-age=3600")),
        ],
        include_str!("../../assets/flow.css"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use flow_ir::ty::Ty;

    #[test]
    fn a_typed_in_value_is_shown_how_it_is_written() {
        let usd = Ty::Money(flow_ir::ty::Currency::new("USD"));
        assert_eq!(super::example_of(&usd), "1200.50 USD");
        assert_eq!(super::example_of(&Ty::Timestamp), "2026-12-04T10:00:00Z");
        assert_eq!(super::example_of(&Ty::Text), "", "text needs no example");
    }
}
