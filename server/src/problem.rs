//! Errors as problem details (RFC 9457): `application/problem+json` with `type`, `title`,
//! `status` and `detail`, and, for the runtime's errors, their `code` (`E3001`…, explained
//! by `flowc explain`) and, for a refusal, the `grant` missing.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flow_runtime::{Error, ErrorKind};
use serde_json::{Value as Json, json};

/// A problem to answer with.
#[derive(Debug)]
pub struct Problem {
    pub status: StatusCode,
    /// Names the kind of problem: the runtime's error name (`refused`) or the API's own
    /// (`bad-json`).
    pub kind: &'static str,
    pub code: Option<&'static str>,
    pub detail: String,
    /// Members beside the standard ones (`grant`, `missing`).
    pub extra: Option<Box<serde_json::Map<String, Json>>>,
    /// Seconds after which asking again may succeed.
    pub retry_after: Option<u32>,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &'static str, detail: impl Into<String>) -> Problem {
        Problem { status, kind, code: None, detail: detail.into(), extra: None, retry_after: None }
    }

    pub fn bad_request(kind: &'static str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, kind, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not-found", detail)
    }

    pub fn internal(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail)
    }

    /// The status a runtime error answers with: the request's fault (400s) or the
    /// deployment's (500s), as the command line's exit codes 1 and 2.
    pub fn status_of(kind: ErrorKind) -> StatusCode {
        match kind {
            ErrorKind::Refused => StatusCode::FORBIDDEN,
            ErrorKind::Input | ErrorKind::Decision | ErrorKind::Plan => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::UnknownRun => StatusCode::NOT_FOUND,
            ErrorKind::Busy | ErrorKind::Conflict | ErrorKind::Settled => StatusCode::CONFLICT,
            ErrorKind::Store => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Tampered | ErrorKind::Keys => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn body(&self) -> Json {
        let mut body = json!({
            "type": format!("urn:flow:problem:{}", self.kind),
            "title": self.title(),
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if let Some(code) = self.code {
            body["code"] = json!(code);
        }
        if let (Json::Object(fields), Some(extra)) = (&mut body, &self.extra) {
            fields.extend((**extra).clone());
        }
        body
    }

    fn title(&self) -> String {
        let title = match self.kind {
            "refused" => "The principal may not do this",
            "input-mismatch" => "The inputs do not fit the flow",
            "unknown-run" => "No such run",
            "decision-mismatch" => "The decision does not fit the step",
            "run-busy" => "The run is executing elsewhere",
            "plan-refused" => "The plan is refused",
            "store-changed" => "The store was changed behind the runtime's back",
            "store-unusable" => "The store cannot be used",
            "run-conflict" => "Another process changed the run first",
            "evidence-keys" => "The deployment's evidence keys do not fit the run",
            "already-settled" => "Someone was first",
            _ => self.status.canonical_reason().unwrap_or("Error"),
        };
        title.to_owned()
    }
}

impl From<Error> for Problem {
    fn from(error: Error) -> Problem {
        let kind = error.kind();
        let mut problem = Problem::new(Problem::status_of(kind), kind.name(), error.to_string());
        problem.code = Some(kind.code());
        if let Error::Refused { grant, missing, .. } = &error {
            let mut extra = serde_json::Map::new();
            extra.insert("grant".to_owned(), json!(grant));
            extra.insert("missing".to_owned(), json!(missing));
            problem.extra = Some(Box::new(extra));
        }
        if kind == ErrorKind::Busy {
            problem.retry_after = Some(1);
        }
        problem
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body().to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"flow\""));
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
