//! Releases (`docs/releases.md`): the organisation's publishing rules, the release log — a
//! hash-chained, signed chain of proposals, approvals, rejections and publications kept in
//! the store — what it makes live in each environment, and the verification of an exported
//! log.
//!
//! The rules a release must meet are recorded in its proposal (who may author it, who may
//! approve it, how many approvals it needs), so that the log can be checked on its own: the
//! same [`Registry::apply`] decides each step when the runtime records it and when
//! `flowc verify` reads an exported log. What only the deployment knows — which rule of
//! `flow-governance.toml` applies, the order of the environments, who holds which role — is
//! checked by the runtime before it records the step.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json, json};

use crate::digest::{GENESIS, digest};
pub use crate::event::ReleaseRef;
pub use crate::store::ReleaseEntry as Entry;

/// The format of exported release logs.
pub const LOG_FORMAT: &str = "flow-release-log";
pub const LOG_VERSION: u64 = 1;

/// The most approvals a rule may ask for.
pub const MAX_APPROVALS: u32 = 16;

// ---------------------------------------------------------------------------------------------
// The publishing rules
// ---------------------------------------------------------------------------------------------

/// `flow-governance.toml`: the environments, in the order plans are promoted through them,
/// and who may author, approve and publish which flows.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Governance {
    pub environments: Vec<EnvironmentRule>,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// `[[environments]]`: one environment.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentRule {
    pub name: String,
    /// Whether runs start there only on the published version of a flow.
    #[serde(default)]
    pub controlled: bool,
    /// The approvals a release to this environment needs, in place of its rule's.
    pub approvals: Option<u32>,
}

/// `[[rules]]`: who may change the flows it covers (by name, `*` matching any text, or by
/// the folder of their source), who must approve, and how many of them.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[serde(default)]
    pub flows: Vec<String>,
    #[serde(default)]
    pub folders: Vec<String>,
    pub authors: Vec<String>,
    #[serde(default)]
    pub approvers: Vec<String>,
    /// Distinct approvers, none of them the author.
    #[serde(default = "one")]
    pub approvals: u32,
    /// What the author may publish without approvals: a change of descriptions only (the
    /// default) or nothing.
    #[serde(default)]
    pub author_alone: AuthorAlone,
}

fn one() -> u32 {
    1
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AuthorAlone {
    #[default]
    Descriptions,
    Nothing,
}

impl Governance {
    /// What makes the rules unusable: no environment, a name twice or not a plain word, a
    /// rule that covers nothing, names no author, or asks for approvals nobody may give.
    pub fn check(&self) -> Result<(), String> {
        if self.environments.is_empty() {
            return Err("no `[[environments]]`: name at least one, such as `prod`".into());
        }
        for (i, environment) in self.environments.iter().enumerate() {
            let name = &environment.name;
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                return Err(format!("environment `{name}`: a name is letters, digits, `_` and `-`"));
            }
            if self.environments[..i].iter().any(|e| e.name == *name) {
                return Err(format!("environment `{name}` is named twice"));
            }
            if environment.approvals.is_some_and(|n| n > MAX_APPROVALS) {
                return Err(format!("environment `{name}`: at most {MAX_APPROVALS} approvals"));
            }
        }
        for (i, rule) in self.rules.iter().enumerate() {
            let which = format!("rule {} (`[[rules]]` number {})", i + 1, i + 1);
            if rule.flows.is_empty() && rule.folders.is_empty() {
                return Err(format!("{which} covers no flow: give `flows` or `folders`"));
            }
            if rule.authors.is_empty() {
                return Err(format!("{which} names no `authors`"));
            }
            if rule.approvals > MAX_APPROVALS {
                return Err(format!("{which}: at most {MAX_APPROVALS} approvals"));
            }
            let needs = self.environments.iter().map(|e| e.approvals.unwrap_or(rule.approvals)).max().unwrap_or(0);
            if needs > 0 && rule.approvers.is_empty() {
                return Err(format!("{which} asks for {needs} approvals but names no `approvers`"));
            }
        }
        Ok(())
    }

    /// Whether a release meets these rules as they stand: the rule that covers its flow,
    /// its author holding one of the rule's authors' roles, and as many approvals as the
    /// rule and its environment ask, each by a holder of an approvers' role. A release
    /// recorded under other rules (another deployment's, or rules since made stricter) is
    /// named with why.
    pub fn admits(&self, release: &Release) -> Result<(), String> {
        let Some((number, rule)) = self.rule_for(&release.flow, release.source.as_deref()) else {
            return Err(format!("no publishing rule covers `{}`", release.flow));
        };
        let Some(environment) = self.environment(&release.environment) else {
            return Err(format!("the publishing rules have no environment `{}`", release.environment));
        };
        let needed = match (release.material, rule.author_alone) {
            (false, AuthorAlone::Descriptions) => 0,
            _ => environment.approvals.unwrap_or(rule.approvals),
        };
        if !overlaps(&release.proposed.roles, &rule.authors) {
            return Err(format!(
                "its author {} holds none of the roles rule {number} lets author it ({})",
                release.proposed.principal,
                rule.authors.join(", ")
            ));
        }
        let approved = release.approvals.iter().filter(|a| overlaps(&a.roles, &rule.approvers)).count();
        if (approved as u32) < needed {
            return Err(format!(
                "rule {number} asks for {needed} approvals by {}, and it has {approved}",
                rule.approvers.join(", ")
            ));
        }
        Ok(())
    }

    /// Where an environment stands in the order of promotion (after every other when it is
    /// not one of these rules').
    pub fn order(&self, name: &str) -> usize {
        self.environments.iter().position(|e| e.name == name).unwrap_or(usize::MAX)
    }

    pub fn environment(&self, name: &str) -> Option<&EnvironmentRule> {
        self.environments.iter().find(|e| e.name == name)
    }

    /// The environment a plan must be live in before it is proposed for `name`.
    pub fn previous(&self, name: &str) -> Option<&EnvironmentRule> {
        let i = self.environments.iter().position(|e| e.name == name)?;
        i.checked_sub(1).map(|i| &self.environments[i])
    }

    /// The first rule covering `flow` (by name, or by `source`, the path of its source
    /// relative to the rules' file), with its number from 1.
    pub fn rule_for(&self, flow: &str, source: Option<&str>) -> Option<(usize, &Rule)> {
        self.rules.iter().enumerate().map(|(i, r)| (i + 1, r)).find(|(_, rule)| {
            rule.flows.iter().any(|pattern| glob(pattern, flow))
                || source.is_some_and(|source| {
                    let source = source.trim_start_matches("./");
                    rule.folders.iter().any(|folder| {
                        let folder = folder.trim_start_matches("./").trim_end_matches('/');
                        folder.is_empty()
                            || folder == "."
                            || source.strip_prefix(folder).is_some_and(|rest| rest.starts_with('/'))
                    })
                })
        })
    }
}

/// Whether `text` matches `pattern`, where `*` matches any text (also none).
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

// ---------------------------------------------------------------------------------------------
// The log's events
// ---------------------------------------------------------------------------------------------

/// One difference a proposal records, as `flowc diff` says it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ChangeRecord {
    pub subject: String,
    pub change: String,
    pub material: bool,
}

/// A step of the release log.
#[expect(clippy::large_enum_variant, reason = "steps are few, made one at a time")]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "event", rename_all = "snake_case", deny_unknown_fields)]
pub enum ReleaseEvent {
    /// A candidate plan for an environment, with its difference from the version live there
    /// and the rule it is held to.
    Proposed {
        release: String,
        environment: String,
        flow: String,
        version: String,
        plan: String,
        principal: String,
        roles: Vec<String>,
        reason: String,
        /// The path of the source it was compiled from, relative to the rules' file.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<String>,
        /// The release live in the environment when it was proposed, and its plan.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        live: Option<Live>,
        /// The release that made this same plan live in the environment before.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        promoted_from: Option<String>,
        /// The plan's doc comments, which its hash does not cover: a release of the same
        /// hash with other descriptions is a change of descriptions.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        descriptions: BTreeMap<String, String>,
        changes: Vec<ChangeRecord>,
        material: bool,
        /// The number of the rule that applied, from 1.
        rule: usize,
        authors: Vec<String>,
        approvers: Vec<String>,
        approvals: u32,
    },
    Approved {
        release: String,
        principal: String,
        roles: Vec<String>,
        reason: String,
    },
    Rejected {
        release: String,
        principal: String,
        roles: Vec<String>,
        reason: String,
    },
    /// The release made live: the approvals it was published on.
    Published {
        release: String,
        environment: String,
        flow: String,
        plan: String,
        principal: String,
        roles: Vec<String>,
        approvers: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        supersedes: Option<String>,
    },
}

/// A release live in an environment, and its plan.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Live {
    pub release: String,
    pub plan: String,
}

/// What is signed: an entry's hash, in a context of its own.
fn signed_message(hash: &str) -> Vec<u8> {
    format!("flow-release-v1\0{hash}").into_bytes()
}

/// The hash of an entry: BLAKE3 over a context, the hash before it, its number, its time
/// and the Merkle digest of its event.
pub fn entry_hash(prev: &str, seq: u64, at: &str, event: &Json) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"flow-release-event-v1\0");
    for part in [prev, &seq.to_string(), at, &digest(event)] {
        hasher.update(part.as_bytes());
        hasher.update(b"\0");
    }
    format!("blake3:{}", hasher.finalize().to_hex())
}

pub fn sign(key: &ed25519_dalek::SigningKey, hash: &str) -> (String, String) {
    use ed25519_dalek::Signer;
    (crate::evidence::public_key_hex(key), crate::digest::hex(&key.sign(&signed_message(hash)).to_bytes()))
}

pub fn signature_verifies(public_key: &str, hash: &str, signature: &str) -> bool {
    crate::checkpoint::verifies(public_key, &signed_message(hash), signature)
}

/// An entry's event.
fn event_of(entry: &Entry) -> Result<ReleaseEvent, String> {
    serde_json::from_str(&entry.body).map_err(|e| format!("release log entry {} cannot be read: {e}", entry.seq))
}

/// An entry as an exported log holds it.
fn entry_json(entry: &Entry) -> Json {
    let mut object = Map::new();
    object.insert("seq".into(), json!(entry.seq));
    object.insert("at".into(), json!(entry.at));
    object.insert("prev".into(), json!(entry.prev));
    object.insert("hash".into(), json!(entry.hash));
    object.insert("event".into(), serde_json::from_str(&entry.body).unwrap_or(Json::Null));
    if let Some((public_key, value)) = &entry.signature {
        object.insert("signature".into(), json!({"algorithm": "ed25519", "public_key": public_key, "value": value}));
    }
    Json::Object(object)
}

/// Checks `entries` (the whole log, from its first entry) as a chain: numbered from 0, each
/// following the one before, each hash the hash of what it holds, each signature valid and
/// by a key `believes`; with `signed`, every entry must be signed. Then folds them into the
/// registry, each step checked by [`Registry::apply`].
pub fn check(entries: &[Entry], signed: bool, believes: &dyn Fn(&str) -> bool) -> Result<Registry, String> {
    let mut registry = Registry::default();
    let mut prev = GENESIS.to_owned();
    for (i, entry) in entries.iter().enumerate() {
        registry.check_entry(i as u64, &prev, entry, signed, believes)?;
        prev = entry.hash.clone();
    }
    Ok(registry)
}

// ---------------------------------------------------------------------------------------------
// What the log says
// ---------------------------------------------------------------------------------------------

/// Who did a step of a release, when, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Act {
    pub principal: String,
    pub roles: Vec<String>,
    pub reason: String,
    pub at: String,
    /// The entry that recorded it, and its hash.
    pub seq: u64,
    pub hash: String,
}

/// A release as the log has it so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    pub id: String,
    pub environment: String,
    pub flow: String,
    pub version: String,
    pub plan: String,
    pub source: Option<String>,
    pub proposed: Act,
    pub live: Option<Live>,
    pub promoted_from: Option<String>,
    pub descriptions: BTreeMap<String, String>,
    pub changes: Vec<ChangeRecord>,
    pub material: bool,
    pub rule: usize,
    pub authors: Vec<String>,
    pub approvers: Vec<String>,
    /// The approvals it needs.
    pub approvals_needed: u32,
    pub approvals: Vec<Act>,
    pub rejected: Option<Act>,
    pub published: Option<Act>,
}

/// Where a release stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReleaseState {
    /// Waiting for approvals.
    Proposed,
    /// Approved enough: it may be published.
    Approved,
    Rejected,
    /// What the environment runs.
    Live,
    /// Published, and replaced since by a later release.
    Superseded,
    /// Proposed against a version no longer live: it must be proposed again.
    Stale,
}

impl ReleaseState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseState::Proposed => "proposed",
            ReleaseState::Approved => "approved",
            ReleaseState::Rejected => "rejected",
            ReleaseState::Live => "live",
            ReleaseState::Superseded => "superseded",
            ReleaseState::Stale => "stale",
        }
    }
}

/// Every release of the log, and which is live in each environment for each flow.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Registry {
    pub releases: Vec<Release>,
    /// (environment, flow) → index in `releases`.
    live: BTreeMap<(String, String), usize>,
    /// The last entry folded: its number and hash.
    pub head: Option<(u64, String)>,
}

/// Why a step may not be recorded: the principal may not take it (`refused`: the refusal is
/// recorded), or it does not fit the release as it stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denied {
    pub message: String,
    pub refused: bool,
}

fn invalid(message: impl Into<String>) -> Denied {
    Denied { message: message.into(), refused: false }
}

fn refused(message: impl Into<String>) -> Denied {
    Denied { message: message.into(), refused: true }
}

fn overlaps(roles: &[String], allowed: &[String]) -> bool {
    roles.iter().any(|r| allowed.contains(r))
}

impl Registry {
    /// The release named `id`.
    pub fn release(&self, id: &str) -> Option<&Release> {
        self.releases.iter().find(|r| r.id == id)
    }

    /// The release live in `environment` for `flow`.
    pub fn live(&self, environment: &str, flow: &str) -> Option<&Release> {
        self.live.get(&(environment.to_owned(), flow.to_owned())).map(|&i| &self.releases[i])
    }

    /// Every release live somewhere: (environment, flow) → release.
    pub fn live_releases(&self) -> impl Iterator<Item = &Release> {
        self.live.values().map(|&i| &self.releases[i])
    }

    pub fn state(&self, release: &Release) -> ReleaseState {
        if release.published.is_some() {
            let live = self.live(&release.environment, &release.flow);
            return if live.is_some_and(|l| l.id == release.id) {
                ReleaseState::Live
            } else {
                ReleaseState::Superseded
            };
        }
        if release.rejected.is_some() {
            return ReleaseState::Rejected;
        }
        let now = self.live(&release.environment, &release.flow).map(|l| (&l.id, &l.plan));
        if now != release.live.as_ref().map(|l| (&l.release, &l.plan)) {
            return ReleaseState::Stale;
        }
        // A promotion of a version the environment before has replaced since is stale too.
        if let Some(from) = &release.promoted_from {
            let source = self.release(from);
            if source.is_none_or(|s| self.live(&s.environment, &s.flow).is_none_or(|l| l.id != *from)) {
                return ReleaseState::Stale;
            }
        }
        if release.approvals.len() as u32 >= release.approvals_needed {
            ReleaseState::Approved
        } else {
            ReleaseState::Proposed
        }
    }

    /// A release as JSON (`flowc release … --format json`, the HTTP API).
    pub fn to_json(&self, release: &Release) -> Json {
        let act = |a: &Act| json!({"principal": a.principal, "roles": a.roles, "reason": a.reason, "at": a.at, "entry": a.seq});
        let changes: Vec<Json> = release
            .changes
            .iter()
            .map(|c| json!({"subject": c.subject, "change": c.change, "material": c.material}))
            .collect();
        json!({
            "release": release.id,
            "environment": release.environment,
            "flow": release.flow,
            "version": release.version,
            "plan": release.plan,
            "state": self.state(release).as_str(),
            "source": release.source,
            "proposed": act(&release.proposed),
            "replaces": release.live.as_ref().map(|l| json!({"release": l.release, "plan": l.plan})),
            "promoted_from": release.promoted_from,
            "material": release.material,
            "changes": changes,
            "rule": release.rule,
            "approvers": release.approvers,
            "approvals_needed": release.approvals_needed,
            "approvals": release.approvals.iter().map(act).collect::<Vec<_>>(),
            "rejected": release.rejected.as_ref().map(act),
            "published": release.published.as_ref().map(act),
        })
    }

    /// The releases (of `environment` and `flow` when given) and what is live, as JSON.
    pub fn list_json(&self, environment: Option<&str>, flow: Option<&str>) -> Json {
        let chosen = |r: &&Release| environment.is_none_or(|e| r.environment == e) && flow.is_none_or(|f| r.flow == f);
        let releases: Vec<Json> = self.releases.iter().filter(chosen).map(|r| self.to_json(r)).collect();
        let live: Vec<Json> = self
            .live_releases()
            .filter(chosen)
            .map(|r| json!({"environment": r.environment, "flow": r.flow, "release": r.id, "plan": r.plan}))
            .collect();
        json!({
            "entries": self.head.as_ref().map_or(0, |(seq, _)| seq + 1),
            "head": self.head.as_ref().map(|(_, hash)| hash),
            "releases": releases,
            "live": live,
        })
    }

    /// What the log's next entry would be numbered, and the hash it follows.
    pub fn next(&self) -> (u64, String) {
        self.head.as_ref().map_or((0, GENESIS.to_owned()), |(seq, hash)| (seq + 1, hash.clone()))
    }

    /// Checks one entry as the next of the chain (number `seq`, after `prev`) and folds it.
    pub fn check_entry(
        &mut self,
        seq: u64,
        prev: &str,
        entry: &Entry,
        signed: bool,
        believes: &dyn Fn(&str) -> bool,
    ) -> Result<(), String> {
        let n = entry.seq;
        if n != seq {
            return Err(format!("release log entry {seq} is numbered {n}: entries were removed or reordered"));
        }
        if entry.prev != prev {
            return Err(format!("release log entry {n} does not follow the entry before it: the chain is broken"));
        }
        let json: Json =
            serde_json::from_str(&entry.body).map_err(|e| format!("release log entry {n} cannot be read: {e}"))?;
        if entry_hash(prev, n, &entry.at, &json) != entry.hash {
            return Err(format!("release log entry {n} was changed: its hash does not match what it holds"));
        }
        match &entry.signature {
            Some((key, value)) => {
                if !believes(key) {
                    return Err(format!("release log entry {n} is signed with the key {key}, which is not trusted"));
                }
                if !signature_verifies(key, &entry.hash, value) {
                    return Err(format!("the signature of release log entry {n} does not verify"));
                }
            }
            None if signed => {
                return Err(format!("release log entry {n} is not signed, but this deployment signs its releases"));
            }
            None => {}
        }
        let event = event_of(entry)?;
        self.apply(n, &entry.at, &entry.hash, &event)
            .map_err(|why| format!("release log entry {n}: {}", why.message))?;
        Ok(())
    }

    /// Folds one event recorded as entry `seq` (hash `hash`) at `at`, if the rules allow it:
    /// the one place that decides what a release may do next.
    pub fn apply(&mut self, seq: u64, at: &str, hash: &str, event: &ReleaseEvent) -> Result<(), Denied> {
        let act = |principal: &str, roles: &[String], reason: &str| Act {
            principal: principal.to_owned(),
            roles: roles.to_vec(),
            reason: reason.to_owned(),
            at: at.to_owned(),
            seq,
            hash: hash.to_owned(),
        };
        match event {
            ReleaseEvent::Proposed {
                release,
                environment,
                flow,
                version,
                plan,
                principal,
                roles,
                reason,
                source,
                live,
                promoted_from,
                descriptions,
                changes,
                material,
                rule,
                authors,
                approvers,
                approvals,
            } => {
                let expected = format!("rel-{}", self.releases.len() + 1);
                if *release != expected {
                    return Err(invalid(format!("the release proposed is named `{release}`, not `{expected}`")));
                }
                if reason.trim().is_empty() {
                    return Err(invalid("a proposal needs a reason"));
                }
                if !overlaps(roles, authors) {
                    return Err(refused(format!(
                        "{principal} (roles: {}) may not author `{flow}`: its rule names the authors {}",
                        roles.join(", "),
                        authors.join(", ")
                    )));
                }
                if *approvals > MAX_APPROVALS || (*approvals > 0 && approvers.is_empty()) {
                    return Err(invalid(format!(
                        "the proposal asks for {approvals} approvals from {} roles",
                        approvers.len()
                    )));
                }
                let current =
                    self.live(environment, flow).map(|l| Live { release: l.id.clone(), plan: l.plan.clone() });
                if *live != current {
                    return Err(invalid(format!(
                        "the proposal says {} is live in {environment}, but the log says {}",
                        live.as_ref().map_or("nothing".to_owned(), |l| l.release.clone()),
                        current.as_ref().map_or("nothing".to_owned(), |l| l.release.clone())
                    )));
                }
                // A flow's first release in an environment is all new, and the version live
                // proposed again (to be approved anew, under rules made stricter since) is
                // approved as a whole: both material.
                let again = current.as_ref().is_some_and(|l| self.is_same(l, plan, descriptions));
                if *material != (current.is_none() || again || changes.iter().any(|c| c.material)) {
                    return Err(invalid("the proposal's `material` does not follow from its changes"));
                }
                if let Some(from) = promoted_from {
                    let Some(earlier) = self.release(from) else {
                        return Err(invalid(format!("it is promoted from `{from}`, which the log does not have")));
                    };
                    if earlier.plan != *plan || earlier.flow != *flow {
                        return Err(invalid(format!("it is promoted from `{from}`, which is of another plan")));
                    }
                    if self.state(earlier) != ReleaseState::Live {
                        return Err(invalid(format!("it is promoted from `{from}`, which is not live")));
                    }
                }
                self.releases.push(Release {
                    id: release.clone(),
                    environment: environment.clone(),
                    flow: flow.clone(),
                    version: version.clone(),
                    plan: plan.clone(),
                    source: source.clone(),
                    proposed: act(principal, roles, reason),
                    live: live.clone(),
                    promoted_from: promoted_from.clone(),
                    descriptions: descriptions.clone(),
                    changes: changes.clone(),
                    material: *material,
                    rule: *rule,
                    authors: authors.clone(),
                    approvers: approvers.clone(),
                    approvals_needed: *approvals,
                    approvals: Vec::new(),
                    rejected: None,
                    published: None,
                });
            }
            ReleaseEvent::Approved { release, principal, roles, reason } => {
                let i = self.open(release)?;
                let r = &self.releases[i];
                if reason.trim().is_empty() {
                    return Err(invalid("an approval needs a reason"));
                }
                if *principal == r.proposed.principal {
                    return Err(refused(format!(
                        "{principal} proposed `{release}` and may not approve it (four eyes)"
                    )));
                }
                if r.approvals.iter().any(|a| a.principal == *principal) {
                    return Err(invalid(format!("{principal} approved `{release}` already")));
                }
                if !overlaps(roles, &r.approvers) {
                    return Err(refused(format!(
                        "{principal} (roles: {}) may not approve `{release}`: its rule names the approvers {}",
                        roles.join(", "),
                        if r.approvers.is_empty() { "none".to_owned() } else { r.approvers.join(", ") }
                    )));
                }
                self.releases[i].approvals.push(act(principal, roles, reason));
            }
            ReleaseEvent::Rejected { release, principal, roles, reason } => {
                let i = self.open(release)?;
                let r = &self.releases[i];
                if reason.trim().is_empty() {
                    return Err(invalid("a rejection needs a reason"));
                }
                if *principal != r.proposed.principal && !overlaps(roles, &r.approvers) {
                    return Err(refused(format!(
                        "{principal} may not reject `{release}`: only its author and its approvers ({}) may",
                        r.approvers.join(", ")
                    )));
                }
                self.releases[i].rejected = Some(act(principal, roles, reason));
            }
            ReleaseEvent::Published { release, environment, flow, plan, principal, roles, approvers, supersedes } => {
                let i = self.open(release)?;
                let r = &self.releases[i];
                if (environment, flow, plan) != (&r.environment, &r.flow, &r.plan) {
                    return Err(invalid(format!(
                        "the publication of `{release}` names another environment, flow or plan"
                    )));
                }
                if self.state(r) != ReleaseState::Approved {
                    return Err(invalid(format!(
                        "`{release}` has {} of the {} approvals it needs",
                        r.approvals.len(),
                        r.approvals_needed
                    )));
                }
                if *principal != r.proposed.principal && !overlaps(roles, &r.authors) {
                    return Err(refused(format!(
                        "{principal} may not publish `{release}`: only its author and the authors of its rule ({}) may",
                        r.authors.join(", ")
                    )));
                }
                let approved: Vec<&String> = r.approvals.iter().map(|a| &a.principal).collect();
                if approvers.iter().collect::<Vec<_>>() != approved {
                    return Err(invalid(format!("the publication of `{release}` names other approvers than the log")));
                }
                if *supersedes != r.live.as_ref().map(|l| l.release.clone()) {
                    return Err(invalid(format!("the publication of `{release}` names another release it supersedes")));
                }
                self.releases[i].published = Some(act(principal, roles, ""));
                self.live.insert((environment.clone(), flow.clone()), i);
            }
        }
        self.head = Some((seq, hash.to_owned()));
        Ok(())
    }

    /// Whether `live` is this plan with these descriptions: the same version.
    fn is_same(&self, live: &Live, plan: &str, descriptions: &BTreeMap<String, String>) -> bool {
        live.plan == plan && self.release(&live.release).is_some_and(|r| r.descriptions == *descriptions)
    }

    /// The index of release `id`, when it may still be approved, rejected or published.
    fn open(&self, id: &str) -> Result<usize, Denied> {
        let i = self.releases.iter().position(|r| r.id == id).ok_or_else(|| invalid(format!("no release `{id}`")))?;
        match self.state(&self.releases[i]) {
            ReleaseState::Proposed | ReleaseState::Approved => Ok(i),
            ReleaseState::Stale => Err(invalid(format!(
                "`{id}` is stale: the version of `{}` it replaces in {}, or the release it promotes, is no longer \
                 live; propose it again",
                self.releases[i].flow, self.releases[i].environment
            ))),
            state => Err(invalid(format!("`{id}` is {} already", state.as_str()))),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Exported logs
// ---------------------------------------------------------------------------------------------

/// An exported release log: every entry, the plans its releases name (so that each
/// proposal's changes can be computed again), where the store's log recorded its last
/// entry, and a digest of all of it. Written as [`crate::evidence::render`] writes.
pub fn bundle(entries: &[Entry], plans: BTreeMap<String, Json>, log: Option<Json>, exported: Json) -> Json {
    let mut object = Map::new();
    object.insert("format".into(), json!(LOG_FORMAT));
    object.insert("format_version".into(), json!(LOG_VERSION));
    object.insert("head".into(), json!(entries.last().map_or(GENESIS.to_owned(), |e| e.hash.clone())));
    object.insert("exported".into(), exported);
    object.insert("entries".into(), Json::Array(entries.iter().map(entry_json).collect()));
    object.insert("plans".into(), Json::Object(plans.into_iter().collect()));
    if let Some(log) = log {
        object.insert("log".into(), log);
    }
    let digest = digest(&Json::Object(object.clone()));
    object.insert("digest".into(), json!(digest));
    Json::Object(object)
}

/// What a verified release log shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedLog {
    pub entries: usize,
    pub head: String,
    pub releases: usize,
    /// The keys that signed its entries.
    pub signed_by: Vec<String>,
    /// What it leaves live: (environment, flow, release, plan).
    pub live: Vec<(String, String, String, String)>,
    pub logged: Option<(u64, crate::checkpoint::Checkpoint)>,
}

impl VerifiedLog {
    pub fn to_json(&self) -> Json {
        json!({
            "verified": true, "format": LOG_FORMAT, "entries": self.entries, "head": self.head,
            "releases": self.releases, "signed_by": self.signed_by,
            "live": self.live.iter().map(|(environment, flow, release, plan)| json!({
                "environment": environment, "flow": flow, "release": release, "plan": plan,
            })).collect::<Vec<_>>(),
            "logged": self.logged.as_ref().map(|(index, checkpoint)| json!({"index": index, "checkpoint": checkpoint})),
        })
    }
}

/// Verifies an exported release log: its bytes exactly as written, its digest, the chain,
/// every signature (by one of `keys` when given; `signed`: every entry must be signed), every
/// step allowed by the rules its proposal recorded, every proposal's changes as `flowc diff`
/// computes them from the plans it carries, and the inclusion of its last entry in the
/// store's log under the checkpoint it carries.
pub fn verify_bundle(text: &str, keys: &[String], signed: bool) -> Result<VerifiedLog, Vec<String>> {
    let mut problems = Vec::new();
    let bundle: Json = serde_json::from_str(text).map_err(|e| vec![format!("the file is not JSON: {e}")])?;
    if crate::evidence::render(&bundle) != text {
        problems.push("the file is not exactly as `flowc release log --export` writes it: it was changed".to_owned());
    }
    let Some(object) = bundle.as_object() else { return Err(vec!["the release log is not a JSON object".into()]) };
    if object.get("format").and_then(Json::as_str) != Some(LOG_FORMAT)
        || object.get("format_version").and_then(Json::as_u64) != Some(LOG_VERSION)
    {
        return Err(vec![format!("this is not a release log of format `{LOG_FORMAT}` version {LOG_VERSION}")]);
    }
    let mut without = object.clone();
    let written = without.remove("digest");
    if written.as_ref().and_then(Json::as_str) != Some(digest(&Json::Object(without)).as_str()) {
        problems.push("the release log's digest does not match its content".to_owned());
    }
    let mut entries = Vec::new();
    for (i, item) in object.get("entries").and_then(Json::as_array).into_iter().flatten().enumerate() {
        let text = |key: &str| item.get(key).and_then(Json::as_str).unwrap_or("").to_owned();
        let signature = item.get("signature").map(|s| {
            let field = |key: &str| s.get(key).and_then(Json::as_str).unwrap_or("").to_owned();
            (field("public_key"), field("value"))
        });
        entries.push(Entry {
            seq: item.get("seq").and_then(Json::as_u64).unwrap_or(i as u64),
            at: text("at"),
            prev: text("prev"),
            hash: text("hash"),
            body: item.get("event").map(Json::to_string).unwrap_or_default(),
            signature,
        });
    }
    let believes = |key: &str| keys.is_empty() || keys.iter().any(|k| k == key);
    let signed = signed || !keys.is_empty();
    let mut registry = Registry::default();
    let mut prev = GENESIS.to_owned();
    for (i, entry) in entries.iter().enumerate() {
        // After a step that does not check, the log is not folded further (what follows
        // would be judged against a history that is not the one recorded).
        if let Err(problem) = registry.check_entry(i as u64, &prev, entry, signed, &believes) {
            problems.push(problem);
            break;
        }
        prev = entry.hash.clone();
    }
    let head = object.get("head").and_then(Json::as_str).unwrap_or("").to_owned();
    let last = entries.last().map_or(GENESIS.to_owned(), |e| e.hash.clone());
    if head != last {
        problems.push("the head is not the hash of the last entry".to_owned());
    }
    problems.extend(check_changes(&registry, object.get("plans")));
    let logged = match object.get("log") {
        None if signed && !entries.is_empty() => {
            problems.push(
                "the release log carries no inclusion proof in a signed checkpoint, and signatures are required: \
                 entries after the last may have been cut off"
                    .to_owned(),
            );
            None
        }
        None => None,
        Some(log) => {
            let key = entries.last().and_then(|e| e.signature.as_ref()).map(|(key, _)| key.as_str());
            let leaf = crate::checkpoint::Entry {
                kind: crate::checkpoint::Kind::Release,
                subject: "releases".to_owned(),
                seq: entries.len().saturating_sub(1) as u64,
                hash: last.clone(),
            };
            match crate::evidence::logged_entry(log, leaf, key) {
                Ok(logged) => Some(logged),
                Err(problem) => {
                    problems.push(problem);
                    None
                }
            }
        }
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut signed_by: Vec<String> =
        entries.iter().filter_map(|e| e.signature.as_ref().map(|(k, _)| k.clone())).collect();
    signed_by.sort();
    signed_by.dedup();
    let live = registry
        .live_releases()
        .map(|r| (r.environment.clone(), r.flow.clone(), r.id.clone(), r.plan.clone()))
        .collect();
    Ok(VerifiedLog { entries: entries.len(), head, releases: registry.releases.len(), signed_by, live, logged })
}

/// Each proposal's changes and `material`, computed again from the plans the bundle carries:
/// a diff recorded otherwise than `flowc diff` says it is named.
fn check_changes(registry: &Registry, plans: Option<&Json>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut loaded: BTreeMap<String, Option<flow_ir::VerifiedPlan>> = BTreeMap::new();
    let mut plan = |hash: &str| -> Option<flow_ir::VerifiedPlan> {
        loaded
            .entry(hash.to_owned())
            .or_insert_with(|| {
                let json = plans?.get(hash)?;
                flow_ir::load(json.to_string().as_bytes()).ok().filter(|p| p.hash() == hash)
            })
            .clone()
    };
    for release in &registry.releases {
        let Some(new) = plan(&release.plan) else {
            problems.push(format!("the plan {} of `{}` is missing or does not verify", release.plan, release.id));
            continue;
        };
        let named = &new.body().flow;
        if named.name != release.flow || named.version.as_str() != release.version {
            problems.push(format!(
                "`{}` says it releases {} {}, but its plan is of {} {}",
                release.id, release.flow, release.version, named.name, named.version
            ));
        }
        let (changes, material) = match &release.live {
            Some(live) => {
                let (Some(old), Some(replaced)) = (plan(&live.plan), registry.release(&live.release)) else {
                    problems.push(format!(
                        "the plan {} `{}` replaces is missing or does not verify",
                        live.plan, release.id
                    ));
                    continue;
                };
                let (changes, material) =
                    difference((old.plan(), &replaced.descriptions), (new.plan(), &release.descriptions));
                (changes, material || registry.is_same(live, &release.plan, &release.descriptions))
            }
            None => (Vec::new(), true),
        };
        if changes != release.changes || material != release.material {
            problems.push(format!(
                "the changes `{}` records are not the difference between its plan and the one it replaces",
                release.id
            ));
        }
    }
    problems
}

/// The changes from one release's plan to another's, each with the descriptions it was
/// released with, and whether they are material.
pub fn difference(
    (old, old_descriptions): (&flow_ir::plan::Plan, &BTreeMap<String, String>),
    (new, new_descriptions): (&flow_ir::plan::Plan, &BTreeMap<String, String>),
) -> (Vec<ChangeRecord>, bool) {
    let described = |plan: &flow_ir::plan::Plan, descriptions: &BTreeMap<String, String>| flow_ir::plan::Plan {
        descriptions: descriptions.clone(),
        ..plan.clone()
    };
    let diff = flow_ir::diff::diff(&described(old, old_descriptions), &described(new, new_descriptions));
    (changes_of(&diff), diff.is_material())
}

/// A diff's changes as a proposal records them.
pub fn changes_of(diff: &flow_ir::diff::Diff) -> Vec<ChangeRecord> {
    diff.changes
        .iter()
        .map(|c| ChangeRecord { subject: c.subject.clone(), change: c.detail.clone(), material: c.material })
        .collect()
}

/// What a run's evidence says of a published release.
pub fn reference(release: &Release) -> Option<ReleaseRef> {
    let published = release.published.as_ref()?;
    Some(ReleaseRef {
        environment: release.environment.clone(),
        release: release.id.clone(),
        author: release.proposed.principal.clone(),
        approvers: release.approvals.iter().map(|a| a.principal.clone()).collect(),
        published_by: published.principal.clone(),
        entry: published.seq,
        hash: published.hash.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_names() {
        assert!(glob("spend_*", "spend_approval"));
        assert!(glob("*", "anything"));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b*c", "axxcyyb"));
        assert!(!glob("spend_*", "payments"));
        assert!(glob("exact", "exact"));
        assert!(!glob("ab*ba", "aba"));
    }
}
