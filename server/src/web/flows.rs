//! The stewards' pages: the installed flows and their versions, a version's governance
//! (what stands before what, who decides, who may override), the difference between two
//! versions in the steward's words, and a what-if over the stored runs — another value of a
//! param, or another version — run as a job whose page shows its progress, then the
//! transitions and the runs that change.

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use flow_ir::plan::NodeKind;
use flow_runtime::analysis::Analysis;
use flow_runtime::{ReplayChanges, RunFilter};
use serde::Deserialize;
use serde_json::Value as Json;

use super::{Viewer, html, problem_page, readable as shown, refused_form, run_href, segment};
use crate::Service;
use crate::problem::Problem;

fn plan_href(hash: &str) -> String {
    format!("/ui/plans/{}", segment(hash))
}

/// A version of a flow, as the pages list it.
struct Version {
    version: String,
    hash: String,
    href: String,
}

impl Version {
    fn of(analysis: &Analysis) -> Version {
        let hash = analysis.hash().to_string();
        Version { version: analysis.body().flow.version.to_string(), href: plan_href(&hash), hash }
    }
}

/// The installed versions of every flow, each flow's highest version first.
fn versions(service: &Service) -> Result<BTreeMap<String, Vec<Version>>, Problem> {
    let mut flows: BTreeMap<String, Vec<(String, Version)>> = BTreeMap::new();
    for analysis in service.runtime.plans()? {
        let version = Version::of(&analysis);
        flows.entry(analysis.body().flow.name.to_string()).or_default().push((version.version.clone(), version));
    }
    Ok(flows
        .into_iter()
        .map(|(flow, mut versions)| {
            versions.sort_by(|(a, _), (b, _)| crate::api::version_order(b, a));
            (flow, versions.into_iter().map(|(_, v)| v).collect())
        })
        .collect())
}

#[derive(Template)]
#[template(path = "flows.html")]
struct FlowsPage<'a> {
    signed_in: Option<&'a Viewer>,
    flows: Vec<(String, Vec<Version>)>,
}

pub(super) async fn flows(State(service): State<Arc<Service>>, viewer: Viewer) -> Response {
    match crate::api::blocking(&service, None, versions).await {
        Ok(flows) => html(StatusCode::OK, &FlowsPage { signed_in: Some(&viewer), flows: flows.into_iter().collect() }),
        Err(problem) => problem_page(Some(&viewer), &problem),
    }
}

/// A param as the what-if form offers it: its name, type and default.
struct ParamField {
    name: String,
    ty: String,
    default: String,
}

#[derive(Template)]
#[template(path = "plan.html")]
struct PlanPage<'a> {
    signed_in: Option<&'a Viewer>,
    flow: String,
    version: String,
    hash: String,
    owner: String,
    steward: String,
    governance: flow_ir::governance::Governance,
    picture: String,
    /// The flow's other versions, to compare with or to try on the runs.
    others: Vec<Version>,
    params: Vec<ParamField>,
    diff_action: String,
    what_if_action: String,
    /// The publishing rules' environments it may be proposed for (none without rules).
    environments: Vec<String>,
    propose_action: String,
}

fn plan_of(service: &Service, hash: &str) -> Result<Arc<Analysis>, Problem> {
    service.runtime.find_plan(hash)?.ok_or_else(|| Problem::not_found(format!("no plan {hash} is installed")))
}

pub(super) async fn plan(State(service): State<Arc<Service>>, viewer: Viewer, Path(hash): Path<String>) -> Response {
    let read = crate::api::blocking(&service, None, move |service| {
        let analysis = plan_of(service, &hash)?;
        let body = analysis.body();
        let others = versions(service)?
            .remove(body.flow.name.as_str())
            .unwrap_or_default()
            .into_iter()
            .filter(|v| v.hash.as_str() != &**analysis.hash())
            .collect();
        let params = body
            .nodes
            .iter()
            .filter_map(|node| match &node.kind {
                NodeKind::Param { default } => Some(ParamField {
                    name: node.name.to_string(),
                    ty: node.ty.to_string(),
                    default: flow_ir::print::expr(default),
                }),
                _ => None,
            })
            .collect();
        Ok((analysis, others, params))
    })
    .await;
    let (analysis, others, params) = match read {
        Ok(read) => read,
        Err(problem) => return problem_page(Some(&viewer), &problem),
    };
    let body = analysis.body();
    let href = plan_href(analysis.hash());
    let page = PlanPage {
        signed_in: Some(&viewer),
        flow: body.flow.name.to_string(),
        version: body.flow.version.to_string(),
        hash: analysis.hash().to_string(),
        owner: body.flow.owner.to_string(),
        steward: body.flow.steward.to_string(),
        governance: flow_ir::governance::of(&analysis.plan),
        picture: flow_ir::governance::svg(&analysis.plan),
        others,
        params,
        diff_action: format!("{href}/diff"),
        what_if_action: format!("{href}/what-if"),
        environments: service
            .runtime
            .release_control()
            .map(|c| c.governance.environments.iter().map(|e| e.name.clone()).collect())
            .unwrap_or_default(),
        propose_action: format!("{href}/propose"),
    };
    html(StatusCode::OK, &page)
}

#[derive(Deserialize)]
pub(super) struct DiffQuery {
    against: String,
}

#[derive(Template)]
#[template(path = "diff.html")]
struct DiffPage<'a> {
    signed_in: Option<&'a Viewer>,
    flow: String,
    old: Version,
    new: Version,
    material: bool,
    changes: Vec<flow_ir::diff::Change>,
}

/// What changed from the version `against` to this one.
pub(super) async fn diff(
    State(service): State<Arc<Service>>,
    viewer: Viewer,
    Path(hash): Path<String>,
    Query(query): Query<DiffQuery>,
) -> Response {
    let read = crate::api::blocking(&service, None, move |service| {
        Ok((plan_of(service, &query.against)?, plan_of(service, &hash)?))
    })
    .await;
    let (old, new) = match read {
        Ok(read) => read,
        Err(problem) => return problem_page(Some(&viewer), &problem),
    };
    let diff = flow_ir::diff::diff(old.plan.plan(), new.plan.plan());
    let page = DiffPage {
        signed_in: Some(&viewer),
        flow: new.body().flow.name.to_string(),
        material: diff.is_material(),
        changes: diff.changes,
        old: Version::of(&old),
        new: Version::of(&new),
    };
    html(StatusCode::OK, &page)
}

/// The what-if form: `param.NAME` (blank: as recorded), `candidate` (a version's hash, or
/// blank), `since` (a date, or blank), `csrf`.
pub(super) async fn what_if(
    State(service): State<Arc<Service>>,
    viewer: Viewer,
    Path(hash): Path<String>,
    axum::Form(pairs): axum::Form<Vec<(String, String)>>,
) -> Response {
    let field = |name: &str| pairs.iter().find(|(n, _)| n == name).map_or("", |(_, v)| v.trim());
    if let Some(refused) = refused_form(&service, &viewer, field("csrf"), "what-if") {
        return refused;
    }
    let mut params = Vec::new();
    for (name, value) in &pairs {
        let (Some(param), value) = (name.strip_prefix("param."), value.trim()) else { continue };
        if value.is_empty() {
            continue;
        }
        // As `flowc replay --set` reads a value: JSON (numbers kept exact), else text.
        let value = match serde_json::from_str::<Json>(value) {
            Ok(_) => match flow_runtime::value::parse_exact(value) {
                Ok(value) => value,
                Err(why) => {
                    let problem =
                        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", format!("`{param}`: {why}"));
                    return problem_page(Some(&viewer), &problem);
                }
            },
            Err(_) => Json::String(value.to_owned()),
        };
        params.push((param.to_owned(), value));
    }
    let candidate = Some(field("candidate").to_owned()).filter(|c| !c.is_empty());
    let since = Some(field("since").to_owned()).filter(|s| !s.is_empty());
    if candidate.is_none() && params.is_empty() {
        let why = "choose another version or give a param another value: with neither, nothing would change";
        return problem_page(Some(&viewer), &Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", why));
    }
    let read = crate::api::blocking(&service, None, move |service| {
        let analysis = plan_of(service, &hash)?;
        // Each value checked against its param's type here, not once per run.
        let body = analysis.body();
        for (name, value) in &params {
            let ty = body.node(name).filter(|n| matches!(n.kind, NodeKind::Param { .. })).map(|n| &n.ty);
            let Some(ty) = ty else {
                let why = format!("{} has no param `{name}`", body.flow.name);
                return Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", why));
            };
            if let Err(why) = flow_runtime::value::decode(body, value, ty, name) {
                let why = format!("param `{name}` ({ty}): {why}");
                return Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", why));
            }
        }
        let candidate = match &candidate {
            Some(other) => {
                let other = plan_of(service, other)?;
                if other.body().flow.name != analysis.body().flow.name {
                    let why = format!("{} is a plan of another flow", other.hash());
                    return Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", why));
                }
                Some(other)
            }
            None => None,
        };
        Ok((analysis.body().flow.name.to_string(), candidate, params))
    })
    .await;
    let (flow, candidate, params) = match read {
        Ok(read) => read,
        Err(problem) => return problem_page(Some(&viewer), &problem),
    };
    let Some(job) = service.jobs.start(&viewer.caller.principal.id) else {
        let why = format!("this server runs {} jobs already; try again in a moment", crate::jobs::RUNNING);
        return problem_page(Some(&viewer), &Problem::new(StatusCode::SERVICE_UNAVAILABLE, "busy", why));
    };
    let changes = ReplayChanges { plan: candidate, params, live: false };
    let filter = RunFilter { flow: Some(flow), since, details: true };
    crate::api::spawn_what_if(&service, &job, viewer.caller.principal.clone(), filter, changes);
    Redirect::to(&format!("/ui/jobs/{}", segment(&job.id))).into_response()
}

#[derive(Deserialize)]
pub(super) struct JobQuery {
    from: Option<String>,
    to: Option<String>,
}

/// A run that changes, as the job's page lists it.
struct Changed {
    run: String,
    href: String,
    before: String,
    after: String,
    /// Each step whose value changes: `step: before → after`.
    changes: Vec<String>,
}

#[derive(Template)]
#[template(path = "job.html")]
struct JobPage<'a> {
    signed_in: Option<&'a Viewer>,
    id: String,
    running: bool,
    done: usize,
    total: usize,
    counts: Option<Counts>,
    /// `from → to: count`, with the address that lists those runs.
    transitions: Vec<(String, String, u64, String)>,
    /// The transition whose runs are listed, when one is chosen.
    chosen: Option<(String, String)>,
    changed: Vec<Changed>,
    /// More runs changed than the page lists.
    more: usize,
    errors: Vec<(String, String)>,
    failed: Option<String>,
}

/// Of the runs replayed: how many, how many came out exact, how many end otherwise, and
/// how many the viewer may not replay.
struct Counts {
    runs: u64,
    exact: u64,
    changed: u64,
    not_allowed: u64,
}

/// How many changed runs the job's page lists.
const LISTED: usize = 200;

pub(super) async fn job(
    State(service): State<Arc<Service>>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(query): Query<JobQuery>,
) -> Response {
    let Some(job) = service.jobs.get(&id, &viewer.caller.principal.id) else {
        return problem_page(Some(&viewer), &Problem::not_found(format!("no job {id} of yours on this server")));
    };
    let mut page = job_page(&job.to_json(), id, query);
    page.signed_in = Some(&viewer);
    html(StatusCode::OK, &page)
}

/// The page of a job as it stands (`Job::to_json`), with the runs of one transition when
/// `query` chooses one.
fn job_page(state: &Json, id: String, query: JobQuery) -> JobPage<'static> {
    let number = |value: &Json| value.as_u64().unwrap_or(0);
    let result = &state["result"];
    let chosen = query.from.zip(query.to);
    let transitions = result["transitions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let (from, to) = (shown(&t["from"]), shown(&t["to"]));
            let href = format!("/ui/jobs/{}?from={}&to={}", segment(&id), segment(&from), segment(&to));
            (from, to, number(&t["count"]), href)
        })
        .collect();
    let mut changed: Vec<Changed> = result["details"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["error"].is_null())
        .filter(|d| match &chosen {
            Some((from, to)) => shown(&d["before"]) == *from && shown(&d["after"]) == *to,
            None => d["before"] != d["after"],
        })
        .map(|d| {
            let run = shown(&d["run"]);
            Changed {
                href: run_href(&run),
                before: shown(&d["before"]),
                after: shown(&d["after"]),
                changes: d["changes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| format!("{}: {} → {}", shown(&c["node"]), shown(&c["before"]), shown(&c["after"])))
                    .collect(),
                run,
            }
        })
        .collect();
    let more = changed.len().saturating_sub(LISTED);
    changed.truncate(LISTED);
    JobPage {
        signed_in: None,
        running: state["status"] == "running",
        done: number(&state["done"]) as usize,
        total: number(&state["total"]) as usize,
        counts: result.is_object().then(|| Counts {
            runs: number(&result["runs"]),
            exact: number(&result["exact"]),
            changed: number(&result["changed"]),
            not_allowed: number(&result["not_allowed"]),
        }),
        transitions,
        chosen,
        changed,
        more,
        errors: result["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| (shown(&e["run"]), shown(&e["error"])))
            .collect(),
        failed: state["error"]["detail"].as_str().map(str::to_owned),
        id,
    }
}

#[cfg(test)]
mod tests {
    use askama::Template;
    use serde_json::json;

    use super::{JobQuery, job_page};

    fn rendered(state: serde_json::Value, from: Option<&str>, to: Option<&str>) -> String {
        let query = JobQuery { from: from.map(str::to_owned), to: to.map(str::to_owned) };
        job_page(&state, "j-1".to_owned(), query).render().expect("the page renders")
    }

    #[test]
    fn a_running_job_shows_its_progress_and_refreshes() {
        let page = rendered(json!({"job": "j-1", "status": "running", "done": 250, "total": 1000}), None, None);
        assert!(page.contains(r#"<meta http-equiv="refresh" content="1">"#), "{page}");
        assert!(page.contains("Replaying: 250 of 1000 runs (25%)"), "{page}");
        assert!(page.contains(r#"<progress max="1000" value="250">"#), "{page}");
    }

    #[test]
    fn an_ended_job_lists_transitions_and_the_runs_of_one() {
        let run = |id: &str, before: &str, after: &str| {
            json!({"run": id, "before": before, "after": after, "exact": false, "error": null,
                   "changes": [{"node": "limit", "before": "5000 USD", "after": "<b>400 USD</b>"}]})
        };
        let state = json!({"job": "j-1", "status": "done", "done": 3, "total": 3, "result": {
            "runs": 3, "exact": 0, "changed": 2, "not_allowed": 1, "errors": [],
            "transitions": [{"from": "completed", "to": "pending", "count": 1}, {"from": "pending", "to": "rejected", "count": 1}],
            "details": [run("r-a", "completed", "pending"), run("r-b", "pending", "rejected"), run("r-c", "completed", "completed")],
        }});
        let page = rendered(state.clone(), None, None);
        assert!(!page.contains("http-equiv"), "an ended job does not refresh: {page}");
        assert!(
            page.contains(
                "3 runs replayed: 2 would end otherwise, 0 come out exactly as recorded; 1 you may not replay"
            ),
            "{page}"
        );
        assert!(
            page.contains(r#"href="/ui/jobs/j-1?from=completed&#38;to=pending">completed → pending: 1</a>"#),
            "{page}"
        );
        // A run whose outcome stays is not listed; a value's markup is text.
        assert!(
            page.contains("/ui/runs/r-a") && page.contains("/ui/runs/r-b") && !page.contains("/ui/runs/r-c"),
            "{page}"
        );
        assert!(page.contains("&#60;b&#62;400 USD") && !page.contains("<b>400"), "{page}");
        let chosen = rendered(state, Some("pending"), Some("rejected"));
        assert!(chosen.contains("Runs that go from pending to rejected"), "{chosen}");
        assert!(chosen.contains("/ui/runs/r-b") && !chosen.contains("/ui/runs/r-a"), "{chosen}");
    }

    #[test]
    fn values_read_as_a_person_reads_them() {
        let record = json!({"approved": true, "note": {"$labels": ["pii"], "$redacted": "blake3:00"},
                            "tier": {"$labels": ["internal"], "$value": "low"}, "items": [1, "two"]});
        assert_eq!(
            super::super::readable(&record),
            "{approved: true, note: [redacted: pii], tier: low, items: [1, two]}"
        );
        assert_eq!(super::super::readable(&json!(null)), "—");
    }
}
