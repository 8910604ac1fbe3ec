//! `flowc release`: propose a plan for an environment, approve, reject and publish it, and
//! read or export the release log (`docs/releases.md`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use flow_runtime::release::{Registry, Release, ReleaseState};
use flow_runtime::{Proposal, Runtime};

use crate::DataFormat;
use crate::deploy::{self, Deployment};

/// What `flowc release propose` was given.
pub struct Propose<'a> {
    pub file: Option<&'a str>,
    pub flow: Option<&'a str>,
    pub environment: &'a str,
    pub who: Option<&'a str>,
    pub reason: &'a str,
}

/// The runtime under the publishing rules, which releases need.
fn open(deployment: &Deployment) -> anyhow::Result<(Runtime, PathBuf)> {
    let Some((_, path)) = deploy::governance(deployment)? else {
        anyhow::bail!(
            "no publishing rules: releases need a `flow-governance.toml` beside `flow.toml` or the store, or \
             `[release] governance` in `flow.toml` (docs/releases.md)"
        )
    };
    Ok((deploy::runtime(deployment)?, path))
}

/// The path of `file` relative to the directory of the rules' file, when it lies under it.
fn source_under(file: &str, rules: &Path) -> Option<String> {
    let file = std::fs::canonicalize(file).ok()?;
    let dir =
        std::fs::canonicalize(rules.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))).ok()?;
    let relative = file.strip_prefix(dir).ok()?;
    Some(relative.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/"))
}

pub fn propose(deployment: &Deployment, p: &Propose<'_>, format: DataFormat) -> anyhow::Result<ExitCode> {
    let plan = match p.file {
        None => None,
        Some(file) => match crate::runs::plan(file, p.flow)? {
            Ok(plan) => Some(plan),
            Err(code) => return Ok(code),
        },
    };
    if plan.is_none() && p.flow.is_none() {
        anyhow::bail!("say what to propose: a `.flow` or plan file, or `--flow NAME` to promote the plan live before");
    }
    let who = deploy::principal(deployment, p.who)?;
    let (runtime, rules) = open(deployment)?;
    let source = p.file.filter(|f| f.ends_with(".flow")).and_then(|f| source_under(f, &rules));
    let proposal =
        Proposal { plan, flow: p.flow, environment: p.environment, reason: p.reason, source: source.as_deref() };
    match runtime.propose(&who, proposal) {
        Ok(release) => shown(&runtime, &release, format),
        Err(error) => crate::runs::fail(error, format == DataFormat::Json),
    }
}

/// `approve`, `reject` or `publish`.
#[derive(Clone, Copy)]
pub enum Step {
    Approve,
    Reject,
    Publish,
}

pub fn step(
    deployment: &Deployment,
    step: Step,
    release: &str,
    who: Option<&str>,
    reason: Option<&str>,
    format: DataFormat,
) -> anyhow::Result<ExitCode> {
    let who = deploy::principal(deployment, who)?;
    let (runtime, _) = open(deployment)?;
    let reason = reason.unwrap_or("");
    let done = match step {
        Step::Approve => runtime.approve_release(&who, release, reason),
        Step::Reject => runtime.reject_release(&who, release, reason),
        Step::Publish => runtime.publish_release(&who, release),
    };
    match done {
        Ok(release) => shown(&runtime, &release, format),
        Err(error) => crate::runs::fail(error, format == DataFormat::Json),
    }
}

pub fn show(deployment: &Deployment, release: &str, format: DataFormat) -> anyhow::Result<ExitCode> {
    let (runtime, _) = open(deployment)?;
    match runtime.release(release) {
        Ok(release) => shown(&runtime, &release, format),
        Err(error) => crate::runs::fail(error, format == DataFormat::Json),
    }
}

/// What `flowc release log` shows and exports.
pub struct LogOptions<'a> {
    pub environment: Option<&'a str>,
    pub flow: Option<&'a str>,
    pub export: Option<&'a str>,
    pub who: Option<&'a str>,
}

pub fn log(deployment: &Deployment, options: &LogOptions<'_>, format: DataFormat) -> anyhow::Result<ExitCode> {
    let (runtime, _) = open(deployment)?;
    if let Some(file) = options.export {
        let who = deploy::principal(deployment, options.who)?;
        let bundle = match runtime.export_release_log(&who) {
            Ok(bundle) => bundle,
            Err(error) => return crate::runs::fail(error, format == DataFormat::Json),
        };
        let text = flow_runtime::evidence::render(&bundle);
        std::fs::write(file, &text).with_context(|| format!("cannot write `{file}`"))?;
        let entries = bundle["entries"].as_array().map_or(0, Vec::len);
        eprintln!("flowc: wrote the release log ({entries} entries) to {file}; check it with `flowc verify {file}`");
        return Ok(ExitCode::SUCCESS);
    }
    let log = match runtime.release_log() {
        Ok(log) => log,
        Err(error) => return crate::runs::fail(error, format == DataFormat::Json),
    };
    let registry = &log.registry;
    let chosen: Vec<&Release> = registry
        .releases
        .iter()
        .filter(|r| options.environment.is_none_or(|e| r.environment == e))
        .filter(|r| options.flow.is_none_or(|f| r.flow == f))
        .collect();
    match format {
        DataFormat::Json => {
            crate::print(&format!("{}\n", registry.list_json(options.environment, options.flow)));
        }
        DataFormat::Human => {
            let mut text = String::new();
            if chosen.is_empty() {
                text.push_str("no releases\n");
            }
            for release in &chosen {
                text.push_str(&summary(registry, release));
            }
            let mut live: Vec<&Release> = registry
                .live_releases()
                .filter(|r| options.environment.is_none_or(|e| r.environment == e))
                .filter(|r| options.flow.is_none_or(|f| r.flow == f))
                .collect();
            // In the order of promotion.
            if let Some(control) = runtime.release_control() {
                live.sort_by_key(|r| (control.governance.order(&r.environment), r.flow.clone()));
            }
            let live: Vec<String> = live
                .iter()
                .map(|r| format!("  {}: {} {} ({}, plan {})\n", r.environment, r.flow, r.version, r.id, r.plan))
                .collect();
            if !live.is_empty() {
                text.push_str("live:\n");
                text.extend(live);
            }
            crate::print(&text);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One line of the log: the release, where it goes, where it stands.
fn summary(registry: &Registry, release: &Release) -> String {
    let state = registry.state(release);
    format!(
        "{} {} {} → {}: {}{} (proposed by {} {})\n",
        release.id,
        release.flow,
        release.version,
        release.environment,
        state.as_str(),
        match state {
            ReleaseState::Proposed | ReleaseState::Approved =>
                format!(", {} of {} approvals", release.approvals.len(), release.approvals_needed),
            _ => String::new(),
        },
        release.proposed.principal,
        release.proposed.at
    )
}

fn shown(runtime: &Runtime, release: &Release, format: DataFormat) -> anyhow::Result<ExitCode> {
    let registry = match runtime.release_log() {
        Ok(log) => log.registry,
        Err(error) => return crate::runs::fail(error, format == DataFormat::Json),
    };
    match format {
        DataFormat::Json => crate::print(&format!("{}\n", registry.to_json(release))),
        DataFormat::Human => crate::print(&described(&registry, release)),
    }
    Ok(ExitCode::SUCCESS)
}

/// A release for a person: what it changes, who did what, and what it waits for.
fn described(registry: &Registry, release: &Release) -> String {
    let state = registry.state(release);
    let mut text = format!(
        "release {}: {} {} → {}, {}\n  plan {}\n  proposed by {} ({}) at {}: {}\n",
        release.id,
        release.flow,
        release.version,
        release.environment,
        state.as_str(),
        release.plan,
        release.proposed.principal,
        release.proposed.roles.join(", "),
        release.proposed.at,
        release.proposed.reason
    );
    if let Some(source) = &release.source {
        text.push_str(&format!("  source {source}\n"));
    }
    if let Some(from) = &release.promoted_from {
        text.push_str(&format!("  promoted from {from}, the same plan\n"));
    }
    match &release.live {
        None => text.push_str(&format!("  the first release of {} in {}\n", release.flow, release.environment)),
        Some(live) if live.plan == release.plan && release.changes.is_empty() => text.push_str(&format!(
            "  replaces {}: the same version again, to be approved anew as a whole\n",
            live.release
        )),
        Some(live) if release.changes.is_empty() => {
            text.push_str(&format!("  replaces {} (plan {}): nothing changed but the hash\n", live.release, live.plan))
        }
        Some(live) => {
            text.push_str(&format!(
                "  replaces {} (plan {}); {}:\n",
                live.release,
                live.plan,
                if release.material { "material changes" } else { "descriptions only" }
            ));
            for change in &release.changes {
                text.push_str(&format!(
                    "    {}: {}{}\n",
                    change.subject,
                    change.change,
                    if change.material { "" } else { " (not material)" }
                ));
            }
        }
    }
    match release.approvals_needed {
        0 => text.push_str(&format!("  rule {}: its author may publish it alone\n", release.rule)),
        n => text.push_str(&format!(
            "  rule {}: needs {n} approval{} by {}, never the author's\n",
            release.rule,
            if n == 1 { "" } else { "s" },
            release.approvers.join(", ")
        )),
    }
    for approval in &release.approvals {
        text.push_str(&format!(
            "  approved by {} ({}) at {}: {}\n",
            approval.principal,
            approval.roles.join(", "),
            approval.at,
            approval.reason
        ));
    }
    if let Some(rejected) = &release.rejected {
        text.push_str(&format!("  rejected by {} at {}: {}\n", rejected.principal, rejected.at, rejected.reason));
    }
    if let Some(published) = &release.published {
        text.push_str(&format!("  published by {} at {}\n", published.principal, published.at));
    }
    match state {
        ReleaseState::Proposed => text.push_str(&format!(
            "  waiting for {} more approval{}: `flowc release approve {} --as ID --reason TEXT`\n",
            release.approvals_needed as usize - release.approvals.len(),
            if release.approvals_needed as usize - release.approvals.len() == 1 { "" } else { "s" },
            release.id
        )),
        ReleaseState::Approved => text.push_str(&format!(
            "  ready: publish with `flowc release publish {} --as {}`\n",
            release.id, release.proposed.principal
        )),
        ReleaseState::Stale => text.push_str(&format!(
            "  what is live in {} changed since it was proposed: propose it again\n",
            release.environment
        )),
        ReleaseState::Live => text.push_str(&format!("  live in {}\n", release.environment)),
        ReleaseState::Superseded | ReleaseState::Rejected => {}
    }
    text
}

/// `flowc verify` of an exported release log.
pub fn verify_log(path: &str, bytes: &[u8], keys: &[String], signed: bool, format: DataFormat) -> ExitCode {
    let text = String::from_utf8_lossy(bytes);
    let verified = flow_runtime::release::verify_bundle(&text, keys, signed).map(|verified| {
        let mut human = format!(
            "verified release log: {} entries, {} releases, chain intact, every step as the rules its proposal \
             recorded allow, every change as the plans say{}\nhead {}\n",
            verified.entries,
            verified.releases,
            match verified.signed_by.as_slice() {
                [] => String::new(),
                keys => format!(", signed by ed25519 key {}", keys.join(", ")),
            },
            verified.head
        );
        if let Some((index, checkpoint)) = &verified.logged {
            human.push_str(&format!(
                "logged as entry {index} of the store's log at checkpoint size {}, root {}, of {}\n",
                checkpoint.size, checkpoint.root, checkpoint.at
            ));
        }
        if keys.is_empty() && !verified.signed_by.is_empty() {
            human.push_str(
                "note: the signatures are checked against the keys the entries name; give `--key` to require the \
                 deployment's\n",
            );
        }
        for (environment, flow, release, plan) in &verified.live {
            human.push_str(&format!("live in {environment}: {flow} by {release} (plan {plan})\n"));
        }
        (verified.to_json(), human)
    });
    crate::runs::report_verification(path, format, verified, "the release log")
}
