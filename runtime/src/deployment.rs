//! A run's deployment: what of the deployment decided how it ran — the environment it ran
//! in, the runtime and its build, the providers and handlers of its models and systems by
//! name with their configuration (endpoints, commands, timeouts, retries; never secrets),
//! and the release that made its plan live — as a digest its `started` event records, and
//! the difference between two runs' deployments in words (`flowc diff --runs`).

use serde_json::json;

use crate::digest::digest;
use crate::event::Environment;
use crate::event::ReleaseRef;

/// The digest of a deployment: BLAKE3 (Merkle, `docs/evidence.md`) of its environment
/// name, runtime, build, providers and release. The host is left out: every server of one
/// deployment gives the same digest.
pub fn digest_of(environment: &Environment, release: Option<&ReleaseRef>) -> String {
    digest(&json!({
        "environment": environment.environment,
        "runtime": environment.runtime,
        "build": environment.build,
        "providers": environment.providers,
        "release": release,
    }))
}

/// One difference between two deployments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// What differs, such as ``model `risk_v3` ``.
    pub subject: String,
    /// How, such as `command … (timeout 20s) → http … (timeout 60s, 2 retries)`.
    pub detail: String,
}

/// A release for a person: `rel-2 (prod, approved by max, dora, published by olga)`.
fn release_text(release: Option<&ReleaseRef>) -> String {
    match release {
        None => "none".to_owned(),
        Some(r) => format!(
            "{} ({}, proposed by {}, approved by {}, published by {})",
            r.release,
            r.environment,
            r.author,
            if r.approvers.is_empty() { "nobody".to_owned() } else { r.approvers.join(", ") },
            r.published_by
        ),
    }
}

/// What differs between the deployments of two runs, in words: environment, release,
/// runtime, build, host, engine, and each provider or handler added, removed or configured
/// otherwise.
pub fn changes(
    (old, old_release, old_engine): (&Environment, Option<&ReleaseRef>, &str),
    (new, new_release, new_engine): (&Environment, Option<&ReleaseRef>, &str),
) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut differ = |subject: &str, before: String, after: String| {
        if before != after {
            changes.push(Change { subject: subject.to_owned(), detail: format!("{before} → {after}") });
        }
    };
    let named = |e: &Environment| e.environment.clone().unwrap_or_else(|| "none named".to_owned());
    differ("environment", named(old), named(new));
    differ("release", release_text(old_release), release_text(new_release));
    differ("runtime", old.runtime.clone(), new.runtime.clone());
    differ("build", old.build.clone(), new.build.clone());
    differ("engine", old_engine.to_owned(), new_engine.to_owned());
    differ("host", format!("{} ({})", old.host, old.os), format!("{} ({})", new.host, new.os));
    let names = old.providers.keys().chain(new.providers.keys()).collect::<std::collections::BTreeSet<_>>();
    for name in names {
        let shown = |p: Option<&String>| p.cloned().unwrap_or_else(|| "not registered".to_owned());
        differ(name, shown(old.providers.get(name)), shown(new.providers.get(name)));
    }
    changes
}
