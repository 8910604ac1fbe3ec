//! The release pages: every release and what is live in each environment; a release with
//! what it changes, who proposed and approved it, and — to whoever may — the forms to
//! approve, reject or publish it, and a what-if of the change over the stored runs; and
//! the form on a version's page that proposes it for an environment.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use flow_runtime::release::{Registry, Release, ReleaseState};
use serde::Deserialize;

use super::{Viewer, html, problem_page, refused_form, segment, shown_time};
use crate::Service;
use crate::problem::Problem;

pub(super) fn release_href(id: &str) -> String {
    format!("/ui/releases/{}", segment(id))
}

/// A release as the list shows it.
struct Listed {
    id: String,
    href: String,
    flow: String,
    version: String,
    environment: String,
    state: &'static str,
    /// `status-…`, the colour of its state.
    class: &'static str,
    approvals: String,
    proposed_by: String,
    at: String,
}

fn class_of(state: ReleaseState) -> &'static str {
    match state {
        ReleaseState::Live => "status-completed",
        ReleaseState::Approved => "status-running",
        ReleaseState::Proposed => "status-pending",
        ReleaseState::Rejected | ReleaseState::Stale => "status-rejected",
        ReleaseState::Superseded => "status-cancelled",
    }
}

fn listed(registry: &Registry, release: &Release) -> Listed {
    let state = registry.state(release);
    Listed {
        id: release.id.clone(),
        href: release_href(&release.id),
        flow: release.flow.clone(),
        version: release.version.clone(),
        environment: release.environment.clone(),
        state: state.as_str(),
        class: class_of(state),
        approvals: format!("{} of {}", release.approvals.len(), release.approvals_needed),
        proposed_by: release.proposed.principal.clone(),
        at: shown_time(&release.proposed.at),
    }
}

#[derive(Template)]
#[template(path = "releases.html")]
struct ReleasesPage<'a> {
    signed_in: Option<&'a Viewer>,
    /// Whether the deployment has publishing rules.
    rules: bool,
    environment: Option<String>,
    live: Vec<Listed>,
    releases: Vec<Listed>,
}

pub(super) async fn releases(State(service): State<Arc<Service>>, viewer: Viewer) -> Response {
    let read = crate::api::blocking(&service, None, |service| Ok(service.runtime.release_log()?.registry)).await;
    let registry = match read {
        Ok(registry) => registry,
        Err(problem) => return problem_page(Some(&viewer), &problem),
    };
    let control = service.runtime.release_control();
    let page = ReleasesPage {
        signed_in: Some(&viewer),
        rules: control.is_some(),
        environment: control.and_then(|c| c.environment.clone()),
        live: {
            let mut live: Vec<&Release> = registry.live_releases().collect();
            if let Some(control) = control {
                live.sort_by_key(|r| (control.governance.order(&r.environment), r.flow.clone()));
            }
            live.into_iter().map(|r| listed(&registry, r)).collect()
        },
        releases: registry.releases.iter().rev().map(|r| listed(&registry, r)).collect(),
    };
    html(StatusCode::OK, &page)
}

/// A step of a release as its page tells it.
struct Act {
    principal: String,
    roles: String,
    reason: String,
    at: String,
}

impl Act {
    fn of(act: &flow_runtime::release::Act) -> Act {
        Act {
            principal: act.principal.clone(),
            roles: act.roles.join(", "),
            reason: act.reason.clone(),
            at: shown_time(&act.at),
        }
    }
}

#[derive(Template)]
#[template(path = "release.html")]
struct ReleasePage<'a> {
    signed_in: Option<&'a Viewer>,
    release: Listed,
    plan: String,
    plan_href: String,
    source: Option<String>,
    proposed: Act,
    /// The release it replaces, with its address and plan.
    replaces: Option<(String, String, String)>,
    promoted_from: Option<(String, String)>,
    material: bool,
    /// In the words of `flowc diff` (the template is the diff page's).
    changes: Vec<flow_ir::diff::Change>,
    rule: usize,
    approvers: String,
    needed: u32,
    approvals: Vec<Act>,
    rejected: Option<Act>,
    published: Option<Act>,
    /// What the viewer may do now.
    may_approve: bool,
    may_reject: bool,
    may_publish: bool,
    /// Whether the viewer proposed it (a rejection is then a withdrawal).
    author: bool,
    step_action: String,
    /// The what-if of the change: the form's address (the replaced plan's) and the
    /// candidate.
    what_if: Option<(String, String)>,
}

pub(super) async fn release(State(service): State<Arc<Service>>, viewer: Viewer, Path(id): Path<String>) -> Response {
    let read = crate::api::blocking(&service, None, |service| Ok(service.runtime.release_log()?.registry)).await;
    let registry = match read {
        Ok(registry) => registry,
        Err(problem) => return problem_page(Some(&viewer), &problem),
    };
    let Some(release) = registry.release(&id) else {
        return problem_page(Some(&viewer), &Problem::not_found(format!("no release `{id}`")));
    };
    let state = registry.state(release);
    let who = &viewer.caller.principal;
    let holds = |roles: &[String]| who.roles.iter().any(|r| roles.contains(r));
    let open = matches!(state, ReleaseState::Proposed | ReleaseState::Approved);
    let author = who.id == release.proposed.principal;
    let page = ReleasePage {
        signed_in: Some(&viewer),
        release: listed(&registry, release),
        plan: release.plan.clone(),
        plan_href: format!("/ui/plans/{}", segment(&release.plan)),
        source: release.source.clone(),
        proposed: Act::of(&release.proposed),
        replaces: release.live.as_ref().map(|l| (l.release.clone(), release_href(&l.release), l.plan.clone())),
        promoted_from: release.promoted_from.as_ref().map(|from| (from.clone(), release_href(from))),
        material: release.material,
        changes: release
            .changes
            .iter()
            .map(|c| flow_ir::diff::Change {
                subject: c.subject.clone(),
                detail: c.change.clone(),
                material: c.material,
            })
            .collect(),
        rule: release.rule,
        approvers: release.approvers.join(", "),
        needed: release.approvals_needed,
        approvals: release.approvals.iter().map(Act::of).collect(),
        rejected: release.rejected.as_ref().map(Act::of),
        published: release.published.as_ref().map(Act::of),
        may_approve: open
            && !author
            && holds(&release.approvers)
            && !release.approvals.iter().any(|a| a.principal == who.id),
        may_reject: open && (author || holds(&release.approvers)),
        may_publish: state == ReleaseState::Approved && (author || holds(&release.authors)),
        author,
        step_action: release_href(&release.id),
        what_if: release
            .live
            .as_ref()
            .filter(|l| l.plan != release.plan)
            .map(|l| (format!("/ui/plans/{}/what-if", segment(&l.plan)), release.plan.clone())),
    };
    html(StatusCode::OK, &page)
}

/// A release waiting for someone, as the inbox lists it.
pub(super) struct Waiting {
    pub(super) id: String,
    pub(super) href: String,
    pub(super) flow: String,
    pub(super) version: String,
    pub(super) environment: String,
    pub(super) proposed_by: String,
    /// `approve` or `publish`.
    pub(super) what: &'static str,
}

/// The releases `who` may approve now (proposed by someone else, for approvers of their
/// roles, not approved by them yet) or publish (approved, theirs or their rule's authors').
pub(super) fn waiting_for(service: &Service, who: &flow_runtime::Principal) -> Result<Vec<Waiting>, Problem> {
    if service.runtime.release_control().is_none() {
        return Ok(Vec::new());
    }
    let registry = service.runtime.release_log()?.registry;
    let holds = |roles: &[String]| who.roles.iter().any(|r| roles.contains(r));
    Ok(registry
        .releases
        .iter()
        .filter_map(|release| {
            let author = release.proposed.principal == who.id;
            let what = match registry.state(release) {
                ReleaseState::Proposed
                    if !author
                        && holds(&release.approvers)
                        && !release.approvals.iter().any(|a| a.principal == who.id) =>
                {
                    "approve"
                }
                ReleaseState::Approved if author || holds(&release.authors) => "publish",
                _ => return None,
            };
            Some(Waiting {
                id: release.id.clone(),
                href: release_href(&release.id),
                flow: release.flow.clone(),
                version: release.version.clone(),
                environment: release.environment.clone(),
                proposed_by: release.proposed.principal.clone(),
                what,
            })
        })
        .collect())
}

#[derive(Deserialize)]
pub(super) struct StepForm {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    csrf: String,
}

/// Approves, rejects or publishes a release, then shows it.
pub(super) async fn step(
    State(service): State<Arc<Service>>,
    viewer: Viewer,
    Path((id, step)): Path<(String, String)>,
    axum::Form(form): axum::Form<StepForm>,
) -> Response {
    if let Some(refused) = refused_form(&service, &viewer, &form.csrf, &format!("release {step}")) {
        return refused;
    }
    let who = viewer.caller.principal.clone();
    let target = id.clone();
    let done = crate::api::blocking(&service, Some("release"), move |service| {
        let runtime = &service.runtime;
        let done = match step.as_str() {
            "approve" => runtime.approve_release(&who, &target, &form.reason),
            "reject" => runtime.reject_release(&who, &target, &form.reason),
            "publish" => runtime.publish_release(&who, &target),
            _ => return Err(Problem::not_found(format!("no step `{step}` of a release"))),
        };
        done.map_err(Problem::from)
    })
    .await;
    match done {
        Ok(_) => Redirect::to(&release_href(&id)).into_response(),
        Err(problem) => problem_page(Some(&viewer), &problem),
    }
}

#[derive(Deserialize)]
pub(super) struct ProposeForm {
    #[serde(default)]
    environment: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    csrf: String,
}

/// Proposes a version for an environment, then shows the release.
pub(super) async fn propose(
    State(service): State<Arc<Service>>,
    viewer: Viewer,
    Path(hash): Path<String>,
    axum::Form(form): axum::Form<ProposeForm>,
) -> Response {
    if let Some(refused) = refused_form(&service, &viewer, &form.csrf, "release propose") {
        return refused;
    }
    let who = viewer.caller.principal.clone();
    let done = crate::api::blocking(&service, Some("release"), move |service| {
        let analysis = service
            .runtime
            .find_plan(&hash)?
            .ok_or_else(|| Problem::not_found(format!("no plan {hash} is installed")))?;
        let proposal = flow_runtime::Proposal {
            plan: Some(analysis.plan.clone()),
            flow: None,
            environment: &form.environment,
            reason: &form.reason,
            source: None,
        };
        Ok(service.runtime.propose(&who, proposal)?)
    })
    .await;
    match done {
        Ok(release) => Redirect::to(&release_href(&release.id)).into_response(),
        Err(problem) => problem_page(Some(&viewer), &problem),
    }
}
