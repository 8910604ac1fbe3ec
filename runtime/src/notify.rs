//! Notifications to webhook endpoints: what a deployment's endpoints are told of runs — a
//! step starts waiting, a step is decided, a gate blocks or is overridden, a run ends, an
//! operation is refused — and their delivery.
//!
//! A notice is queued in the store in the transaction that records the event it tells
//! ([`crate::store::Commit::notices`]), named by the run and number of that event, so that a
//! crash loses none and none is queued for what was not recorded. Whoever delivers
//! ([`Runtime::deliver_notices`], run by `flowc serve`) takes due notices under a lease, so
//! that two processes never send one at once, and sends each as a signed `POST`: the body is
//! `{"id", "type", "created", "data"}`, its labelled values redacted unless the endpoint is
//! cleared to `view` their labels, with `Flow-Webhook-Id`, `Flow-Timestamp` and
//! `Flow-Signature: v1=HEX` (HMAC-SHA256 of `TIMESTAMP.BODY`, as actions over HTTP are
//! signed). A `2xx` answer delivers it; a transport error, `408`, `429` or `5xx` is tried
//! again after a pause that doubles each time, up to the endpoint's attempts; any other
//! answer gives it up at once. The one repeat possible is a crash between the endpoint's
//! answer and the record of it: the notice is sent again under the same id, which the
//! receiver drops.

use std::time::Duration;

use serde_json::{Map, Value as Json, json};
use smol_str::SmolStr;

use crate::analysis::Analysis;
use crate::error::Result;
use crate::store::{Attempt, Delivery, Notice, RawEvent, RunRecord, Waiting};

/// What notices are about, as endpoints name them in `events`.
pub const KINDS: [&str; 16] = [
    "step.waiting",
    "step.decided",
    "step.reminder",
    "step.escalated",
    "step.timed_out",
    "gate.blocked",
    "gate.overridden",
    "run.ended",
    "run.migrated",
    "refusal",
    "alert.raised",
    "alert.resolved",
    "release.proposed",
    "release.approved",
    "release.rejected",
    "release.published",
];

/// A webhook endpoint of the deployment.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// Its name in the deployment (`[webhooks.NAME]`).
    pub name: String,
    pub url: String,
    /// Signs each delivery (HMAC-SHA256); without it nothing is sent.
    pub secret: Option<Vec<u8>>,
    /// The kinds of notices it is sent (every kind when empty).
    pub events: Vec<String>,
    /// The flows whose notices it is sent (every flow when empty); a refusal that belongs
    /// to no run goes only to endpoints of every flow.
    pub flows: Vec<String>,
    /// The labels whose values it may receive; every other labelled value is redacted.
    pub view: Vec<SmolStr>,
    /// The monitors' routes (channels, roles) whose alerts it is sent; alerts go to no
    /// endpoint that names none.
    pub routes: Vec<String>,
    /// How long one attempt may take.
    pub timeout: Duration,
    /// How many times a notice is sent before it is given up.
    pub attempts: u32,
    /// The pause after the first failed attempt, doubled after each (at most an hour).
    pub backoff: Duration,
}

impl Endpoint {
    fn wants(&self, kind: &str, flow: Option<&str>) -> bool {
        (self.events.is_empty() || self.events.iter().any(|e| e == kind))
            && (self.flows.is_empty() || flow.is_some_and(|f| self.flows.iter().any(|x| x == f)))
    }

    /// The body sent for a queued notice: its envelope, and its data redacted for this
    /// endpoint.
    pub fn body(&self, delivery: &Delivery) -> String {
        let mut data = delivery.notice.data.clone();
        crate::labels::redact(&mut data, &self.view);
        crate::labels::unsalt(&mut data);
        json!({
            "id": delivery.notice.id,
            "type": delivery.notice.kind,
            "created": delivery.created,
            "data": data,
        })
        .to_string()
    }

    /// Sends one notice; how it went.
    fn send(&self, delivery: &Delivery) -> Attempt {
        let Some(secret) = &self.secret else {
            let error = format!("webhook `{}` has no secret to sign notices with: not sent", self.name);
            return self.failed(delivery, error, true);
        };
        let body = self.body(delivery);
        let config =
            ureq::Agent::config_builder().timeout_global(Some(self.timeout)).http_status_as_error(false).build();
        let agent = ureq::Agent::new_with_config(config);
        let timestamp =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
        let call = agent
            .post(&self.url)
            .header("content-type", "application/json")
            .header("flow-webhook-id", &delivery.notice.id)
            .header("flow-timestamp", &timestamp.to_string())
            .header("flow-signature", &crate::provider::HttpSystem::signature(secret, timestamp, &body));
        let url = crate::provider::shown_url(&self.url);
        let (error, again) = match crate::provider::send(call, &url, body.as_bytes()) {
            Ok((status, _)) if (200..300).contains(&status) => return Attempt::Delivered,
            Ok((status, text)) => {
                let shown: String = text.chars().take(200).collect();
                (format!("`{url}` answered {status}: {shown}"), status == 408 || status == 429 || status >= 500)
            }
            Err((error, again)) => (error, again),
        };
        self.failed(delivery, error, again)
    }

    /// A failed attempt: tried again after a pause while `again` and attempts are left.
    fn failed(&self, delivery: &Delivery, error: String, again: bool) -> Attempt {
        let tried = delivery.attempts + 1;
        if !again || tried >= self.attempts {
            return Attempt::GaveUp { error: format!("{error} (after {tried} attempts)") };
        }
        let pause = self.backoff.saturating_mul(1 << (tried - 1).min(20)).min(Duration::from_secs(3600));
        Attempt::Retry { after_ms: pause.as_millis() as i64, error }
    }
}

/// The deployment's webhook endpoints.
#[derive(Clone, Debug, Default)]
pub struct Webhooks {
    pub endpoints: Vec<Endpoint>,
}

/// What one round of deliveries did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delivered {
    pub delivered: usize,
    pub retried: usize,
    pub given_up: usize,
}

impl Delivered {
    pub fn total(&self) -> usize {
        self.delivered + self.retried + self.given_up
    }
}

impl Webhooks {
    fn notices(&self, id: &str, kind: &str, flow: Option<&str>, data: &Json) -> Vec<Notice> {
        self.endpoints
            .iter()
            .filter(|e| e.wants(kind, flow))
            .map(|e| Notice { endpoint: e.name.clone(), id: id.to_owned(), kind: kind.to_owned(), data: data.clone() })
            .collect()
    }

    /// The notices of a run's commit: of each of its `events` that tells something, with
    /// what the run waits for after it and the outputs it emitted (evidence JSON).
    pub(crate) fn for_commit(
        &self,
        analysis: &Analysis,
        record: &RunRecord,
        events: &[RawEvent],
        waiting: &[Waiting],
        outputs: impl Fn() -> Map<String, Json>,
    ) -> Vec<Notice> {
        let mut out = Vec::new();
        for event in events {
            // Most events tell nothing, and say so first (`{"event":"KIND"`, as the runtime
            // writes them): they are passed over without being read.
            let kind = event.body.strip_prefix(r#"{"event":""#).and_then(|rest| rest.split('"').next());
            if kind.is_some_and(|kind| !TELLING.contains(&kind)) {
                continue;
            }
            // Written by this runtime a moment ago: JSON.
            let Ok(body) = serde_json::from_str::<Json>(&event.body) else { continue };
            let Some((kind, data)) = told(analysis, record, &body, waiting, &outputs) else { continue };
            out.extend(self.notices(&format!("{}.{}", record.id, event.seq), kind, Some(&record.flow), &data));
        }
        out
    }

    /// The notices of a refusal that belongs to no run (the store names them).
    pub(crate) fn for_refusal(&self, principal: &str, operation: &str, grant: &str, message: &str) -> Vec<Notice> {
        let data = json!({"principal": principal, "operation": operation, "grant": grant, "message": message});
        self.notices("", "refusal", None, &data)
    }

    /// The notices of a step of the release log (entry `seq`): `release.proposed`,
    /// `.approved`, `.rejected` or `.published`, with the release as it stands after it.
    pub(crate) fn for_release(
        &self,
        seq: u64,
        kind: &str,
        release: &crate::release::Release,
        state: &str,
    ) -> Vec<Notice> {
        let act = match kind {
            "release.approved" => release.approvals.last(),
            "release.rejected" => release.rejected.as_ref(),
            "release.published" => release.published.as_ref(),
            _ => Some(&release.proposed),
        };
        let data = json!({
            "release": release.id, "environment": release.environment, "flow": release.flow,
            "version": release.version, "plan": release.plan, "state": state,
            "principal": act.map(|a| a.principal.as_str()), "roles": act.map(|a| &a.roles),
            "reason": act.map(|a| a.reason.as_str()).filter(|r| !r.is_empty()),
            "material": release.material, "approvals": release.approvals.len(),
            "approvals_needed": release.approvals_needed, "approvers": release.approvers,
        });
        self.notices(&format!("releases.{seq}"), kind, Some(&release.flow), &data)
    }

    /// The notices of an alert: for the endpoints that take one of its routes (and its
    /// kind and flow).
    pub(crate) fn for_alert(&self, id: &str, kind: &str, flow: &str, routes: &[String], data: &Json) -> Vec<Notice> {
        self.endpoints
            .iter()
            .filter(|e| e.wants(kind, Some(flow)) && e.routes.iter().any(|r| routes.contains(r)))
            .map(|e| Notice { endpoint: e.name.clone(), id: id.to_owned(), kind: kind.to_owned(), data: data.clone() })
            .collect()
    }

    /// The endpoints that an alert of `flow` with `routes` is sent to.
    pub fn alerted(&self, flow: &str, routes: &[impl AsRef<str>]) -> Vec<&str> {
        self.endpoints
            .iter()
            .filter(|e| {
                e.wants("alert.raised", Some(flow)) && e.routes.iter().any(|r| routes.iter().any(|x| x.as_ref() == r))
            })
            .map(|e| e.name.as_str())
            .collect()
    }

    pub fn endpoint(&self, name: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.name == name)
    }
}

/// The kinds of event that tell an endpoint something.
const TELLING: [&str; 10] = [
    "review_opened",
    "approval_required",
    "gate",
    "review_decided",
    "gate_decided",
    "approval_decided",
    "gate_overridden",
    "refused",
    "settled",
    "migrated",
];

/// What an event tells an endpoint, if anything: its kind and data.
fn told(
    analysis: &Analysis,
    record: &RunRecord,
    body: &Json,
    waiting: &[Waiting],
    outputs: &dyn Fn() -> Map<String, Json>,
) -> Option<(&'static str, Json)> {
    // Most events tell nothing: they are passed over before anything is built.
    let event = body.get("event")?.as_str()?;
    if !TELLING.contains(&event) {
        return None;
    }
    let field = |name: &str| body.get(name).cloned().unwrap_or(Json::Null);
    let node = body.get("node").and_then(Json::as_str).unwrap_or_default();
    let mut data = json!({
        "run": record.id,
        "flow": record.flow,
        "version": analysis.body().flow.version.as_str(),
        "plan": record.plan,
    });
    let why = || {
        let operands = body.get("operands").and_then(Json::as_array).map(Vec::as_slice).unwrap_or_default();
        let pairs =
            operands.iter().filter_map(|o| Some((o.get("name")?.as_str()?.to_owned(), o.get("value")?.clone())));
        Json::Object(pairs.collect())
    };
    let may_decide = || waiting.iter().find(|w| w.step == node).map(|w| json!(w.roles)).unwrap_or(json!([]));
    let extend = |data: &mut Json, more: Json| {
        if let (Some(data), Json::Object(more)) = (data.as_object_mut(), more) {
            data.extend(more);
        }
    };
    let kind = match event {
        "review_opened" => {
            extend(&mut data, json!({"step": node, "kind": "review", "may_decide": may_decide(), "why": why()}));
            "step.waiting"
        }
        "approval_required" => {
            let more = json!({
                "step": node, "kind": "approval", "may_decide": may_decide(), "requirement": field("requirement"),
                "excluded": field("excluded"), "why": why(),
            });
            extend(&mut data, more);
            "step.waiting"
        }
        "gate" if body.get("holds") == Some(&Json::Bool(true)) => match body.get("level")?.as_str()? {
            "soft" => {
                extend(&mut data, json!({"step": node, "kind": "gate", "may_decide": may_decide(), "why": why()}));
                "step.waiting"
            }
            "block" => {
                let overriders = analysis.grantees(flow_ir::plan::GrantKind::Override, Some(node));
                let message = analysis.body().node(node).and_then(|n| match &n.kind {
                    flow_ir::plan::NodeKind::Gate { message, .. } => message.clone(),
                    _ => None,
                });
                extend(&mut data, json!({"gate": node, "message": message, "may_override": overriders, "why": why()}));
                "gate.blocked"
            }
            _ => return None,
        },
        decided @ ("review_decided" | "gate_decided" | "approval_decided") => {
            let kind = &decided[..decided.len() - "_decided".len()];
            let mut more = json!({"step": node, "kind": kind, "decision": field("decision")});
            if decided == "review_decided" {
                extend(&mut more, json!({"edits": field("edits")}));
            }
            extend(&mut data, more);
            "step.decided"
        }
        "gate_overridden" => {
            extend(&mut data, json!({"gate": node, "decision": field("decision")}));
            "gate.overridden"
        }
        "reminded" => {
            let more =
                json!({"step": node, "may_decide": may_decide(), "deadline": field("deadline"), "at": field("at")});
            extend(&mut data, more);
            "step.reminder"
        }
        "escalated" => {
            let more = json!({"step": node, "may_decide": may_decide(), "roles": field("roles"), "at": field("at")});
            extend(&mut data, more);
            "step.escalated"
        }
        "timed_out" => {
            let more = json!({
                "step": node, "at": field("at"), "outcome": field("outcome"), "reason": field("reason"),
            });
            extend(&mut data, more);
            "step.timed_out"
        }
        "refused" => {
            let more = json!({
                "principal": field("principal"), "operation": field("operation"), "grant": field("grant"),
                "message": field("message"),
            });
            extend(&mut data, more);
            "refusal"
        }
        "migrated" => {
            let more = json!({
                "from": field("from"), "to": field("to"), "to_version": field("flow_version"),
                "release": field("release"),
            });
            extend(&mut data, more);
            "run.migrated"
        }
        "settled" => {
            let status = body.get("status")?.as_str()?;
            if !crate::event::Status::parse(status).is_some_and(crate::event::Status::is_final) {
                return None;
            }
            let more = json!({"status": status, "summary": field("summary"), "outputs": Json::Object(outputs())});
            extend(&mut data, more);
            "run.ended"
        }
        _ => return None,
    };
    Some((kind, data))
}

impl crate::Runtime {
    /// The deployment's webhook endpoints: the notices of every commit and refusal from now
    /// on are queued for them.
    pub fn set_webhooks(&mut self, webhooks: Webhooks) {
        self.webhooks = (!webhooks.endpoints.is_empty()).then(|| std::sync::Arc::new(webhooks));
    }

    pub fn webhooks(&self) -> Option<&Webhooks> {
        self.webhooks.as_deref()
    }

    /// Delivers the notices due to the endpoint `name` (at most `limit`), one after another,
    /// while `go_on` says so (a server stopping does not wait for the rest); what it did. Each
    /// endpoint is delivered to apart, so that a slow one does not hold the others' notices.
    pub fn deliver_notices(&self, name: &str, limit: usize, go_on: &dyn Fn() -> bool) -> Result<Delivered> {
        let mut done = Delivered::default();
        let Some(endpoint) = self.webhooks.as_deref().and_then(|w| w.endpoint(name)) else { return Ok(done) };
        // Long enough for every notice taken to be tried, one after another, and then some.
        let ttl = endpoint.timeout.saturating_mul(limit as u32) + self.leases.ttl;
        let owner = &self.leases.owner;
        // The release store (when it is not the run store) queues the notices of releases.
        let release_store = self.release_store();
        let stores: Vec<&dyn crate::store::Store> = if std::ptr::addr_eq(release_store, &*self.store) {
            vec![&*self.store]
        } else {
            vec![&*self.store, release_store]
        };
        for store in stores {
            let due = store.take_deliveries(&[name.to_owned()], owner, ttl.as_millis() as i64, limit)?;
            for delivery in &due {
                // Those not tried are sent by whoever takes them once this lease runs out.
                if !go_on() {
                    break;
                }
                let attempt = endpoint.send(delivery);
                match attempt {
                    Attempt::Delivered => done.delivered += 1,
                    Attempt::Retry { .. } => done.retried += 1,
                    Attempt::GaveUp { .. } => done.given_up += 1,
                }
                store.finish_delivery(owner, name, &delivery.notice.id, &attempt)?;
            }
        }
        Ok(done)
    }
}
