//! Releases: proposing a plan for an environment, approving, rejecting and publishing it,
//! each step recorded in the store's release log once the rules allow it; which release a
//! new run's plan must come from.

use super::Runtime;
use crate::error::{Error, Result};
use crate::identity::{Principal, now};
use crate::release::{self, Entry, Governance, Live, Registry, Release, ReleaseEvent, ReleaseRef};
use crate::value;
use flow_ir::VerifiedPlan;
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The publishing rules a runtime works under, the environment it runs in, and where the
/// release log is kept.
#[derive(Clone)]
pub struct ReleaseControl {
    pub governance: Arc<Governance>,
    /// The environment this runtime's runs start in, when it is one of the rules'.
    pub environment: Option<String>,
    /// The store of the release log, shared by the environments; the run store when absent.
    pub store: Option<Arc<dyn crate::store::Store>>,
}

/// What is proposed: a plan (none: the one live in the environment before, promoted), for
/// an environment, why, and the path of its source relative to the rules' file.
pub struct Proposal<'a> {
    pub plan: Option<VerifiedPlan>,
    pub flow: Option<&'a str>,
    pub environment: &'a str,
    pub reason: &'a str,
    pub source: Option<&'a str>,
}

/// The release log as the store holds it, checked, with what it says.
#[derive(Debug)]
pub struct ReleaseLog {
    pub entries: Vec<Entry>,
    pub registry: Registry,
}

impl Runtime {
    /// Works under these publishing rules, in `environment` (one of theirs): runs kept start
    /// there only on published plans when the environment is `controlled`.
    pub fn set_release_control(&mut self, control: ReleaseControl) -> Result<()> {
        if let Some(environment) = &control.environment
            && control.governance.environment(environment).is_none()
        {
            return Err(Error::Input(format!(
                "environment `{environment}` is not one of the publishing rules' ({})",
                control.governance.environments.iter().map(|e| e.name.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
        self.release_control = Some(control);
        self.environments = std::sync::Mutex::default();
        self.deployments = std::sync::Mutex::default();
        Ok(())
    }

    pub fn release_control(&self) -> Option<&ReleaseControl> {
        self.release_control.as_ref()
    }

    /// The store the release log is kept in.
    pub(crate) fn release_store(&self) -> &dyn crate::store::Store {
        self.release_control.as_ref().and_then(|c| c.store.as_deref()).unwrap_or(&*self.store)
    }

    /// Runs `f` on the release log as it stands, read on from where this runtime read it
    /// last: each new entry checked (chain, signature by a key this runtime believes —
    /// every entry signed when it signs —, the rules) and the log ending where the store's
    /// log says it does; the first time, and whenever it has grown, the whole of the store's
    /// log is checked against its checkpoint too, and every entry against its row there.
    pub(crate) fn with_releases<T>(&self, f: impl FnOnce(&Registry) -> T) -> Result<T> {
        let mut guard = self.releases.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (cached, logged_checked) = &mut *guard;
        let (from, mut prev) = cached.next();
        let (entries, logged) = self.release_store().releases(from)?;
        let mut registry = if entries.is_empty() { None } else { Some(cached.clone()) };
        if let Some(registry) = &mut registry {
            let believes = |key: &str| self.believes(key);
            for (i, entry) in entries.iter().enumerate() {
                registry
                    .check_entry(from + i as u64, &prev, entry, self.signing.is_some(), &believes)
                    .map_err(|why| Error::Tampered(format!("the store's release log does not check: {why}")))?;
                prev = entry.hash.clone();
            }
        }
        let head = registry.as_ref().unwrap_or(cached).head.clone();
        if head != logged {
            return Err(Error::Tampered(
                "the store's release log does not end with the entry its log recorded last: entries were removed or \
                 changed (`flowc audit` says more)"
                    .into(),
            ));
        }
        if registry.is_some() || !*logged_checked {
            self.release_log_logged(head.as_ref())?;
            *logged_checked = true;
        }
        if let Some(registry) = registry {
            *cached = registry;
        }
        Ok(f(cached))
    }

    /// Checks the release store's log against its checkpoint (the root of every entry, signed
    /// by a key this runtime believes when it signs or trusts keys), and that its release
    /// entries are the release log up to `head`, each the entry the log recorded: a log
    /// whose rows were rewritten to hide entries removed is found.
    fn release_log_logged(&self, head: Option<&(u64, String)>) -> Result<()> {
        use crate::checkpoint::{Frontier, Kind};
        let store = self.release_store();
        let tampered =
            |why: String| Error::Tampered(format!("the release store's log {why} (`flowc audit` says more)"));
        // The checkpoint first, then the log: the log is only ever appended to, so the
        // entries the checkpoint covers are its first `size`, whatever was appended since.
        let checkpoint = store.checkpoint()?;
        let entries = store.log()?;
        let covered = checkpoint.as_ref().map_or(0, |c| c.size as usize);
        if entries.len() < covered {
            return Err(tampered(format!(
                "has {} entries, fewer than its checkpoint covers ({covered})",
                entries.len()
            )));
        }
        let mut frontier = Frontier::default();
        for entry in &entries[..covered] {
            frontier.push(entry.leaf());
        }
        match &checkpoint {
            None if entries.is_empty() => {}
            None => return Err(tampered("has entries but no checkpoint".into())),
            Some(checkpoint) => {
                if checkpoint.root_bytes() != Some(frontier.root()) {
                    return Err(tampered("is not the log its checkpoint signs: it was changed".into()));
                }
                let mut problems = Vec::new();
                self.check_signed(checkpoint, "the release store's checkpoint", &mut problems);
                if let Some(problem) = problems.into_iter().next() {
                    return Err(Error::Tampered(problem));
                }
            }
        }
        let logged: Vec<&crate::checkpoint::Entry> = entries.iter().filter(|e| e.kind == Kind::Release).collect();
        let (entries_now, _) = store.releases(0)?;
        let upto = head.map_or(0, |(seq, _)| *seq as usize + 1);
        if logged.len() < upto || entries_now.len() < upto {
            return Err(tampered("holds fewer release entries than the release log".into()));
        }
        for (entry, row) in entries_now.iter().zip(&logged).take(upto) {
            if entry.seq != row.seq || entry.hash != row.hash {
                return Err(tampered(format!(
                    "does not hold release log entry {} as it is: it was changed",
                    entry.seq
                )));
            }
        }
        Ok(())
    }

    /// The release log: every entry, checked, and what it says.
    pub fn release_log(&self) -> Result<ReleaseLog> {
        let registry = self.with_releases(Registry::clone)?;
        let (entries, _) = self.release_store().releases(0)?;
        // Entries recorded since by another process are left for the next reading; the
        // entries read are those this runtime checked, or the store was changed since.
        let upto = registry.head.as_ref().map_or(0, |(seq, _)| *seq as usize + 1);
        let entries: Vec<Entry> = entries.into_iter().take(upto).collect();
        if entries.len() != upto || entries.last().map(|e| &e.hash) != registry.head.as_ref().map(|(_, h)| h) {
            return Err(Error::Tampered(
                "the store's release log no longer holds the entries this runtime read: entries were removed or \
                 changed (`flowc audit` of the release store says more)"
                    .into(),
            ));
        }
        Ok(ReleaseLog { entries, registry })
    }

    /// The release that made `analysis`'s plan live in this runtime's environment (`Ok(None)`
    /// when none did and the environment is not controlled); `Err(message)` when the
    /// environment is controlled and the plan is not the one published there.
    pub(super) fn release_of(
        &self,
        analysis: &crate::analysis::Analysis,
    ) -> Result<std::result::Result<Option<ReleaseRef>, String>> {
        let Some(control) = &self.release_control else { return Ok(Ok(None)) };
        let Some(environment) = &control.environment else { return Ok(Ok(None)) };
        let controlled = control.governance.environment(environment).is_some_and(|e| e.controlled);
        let flow = &analysis.body().flow.name;
        let plan = analysis.hash();
        let governance = &control.governance;
        self.with_releases(|registry| match registry.live(environment, flow) {
            // Live under rules that are not these (another deployment's key recorded it, or
            // the rules were made stricter since): refused until a release meets them.
            Some(live)
                if *live.plan == **plan
                    && controlled
                    && let Err(why) = governance.admits(live) =>
            {
                Err(format!(
                    "{} made plan {plan} of `{flow}` live in {environment}, but it does not meet the publishing rules: \
                 {why}; no run of `{flow}` starts until a release that meets them is published there (propose \
                 this version again, to be approved anew)",
                    live.id
                ))
            }
            Some(live) if *live.plan == **plan => Ok(release::reference(live)),
            _ if !controlled => Ok(None),
            Some(live) => Err(format!(
                "plan {plan} of `{flow}` is not the version published in {environment}: {} (plan {}, version {}) is; \
                 a change reaches {environment} only through a release (`flowc release propose`)",
                live.id, live.plan, live.version
            )),
            None => Err(format!(
                "no release of `{flow}` is published in {environment}, which is under release control: propose \
                 one with `flowc release propose`"
            )),
        })
    }

    /// The plan of the release live in this runtime's environment for `flow`, when there is one.
    pub fn live_plan(&self, flow: &str) -> Result<Option<String>> {
        let Some(environment) = self.release_control.as_ref().and_then(|c| c.environment.clone()) else {
            return Ok(None);
        };
        self.with_releases(|registry| registry.live(&environment, flow).map(|r| r.plan.clone()))
    }

    /// Proposes a plan for an environment: its difference from the version live there, and
    /// the rule of the publishing rules that covers it, are recorded with it. In an
    /// environment after the first, the plan must be the one live in the environment before
    /// (promoted by its hash).
    pub fn propose(&self, who: &Principal, proposal: Proposal<'_>) -> Result<Release> {
        let Some(control) = &self.release_control else {
            return Err(Error::Input(
                "no publishing rules: releases need a `flow-governance.toml` (docs/releases.md)".into(),
            ));
        };
        let governance = &control.governance;
        let environment = proposal.environment;
        if governance.environment(environment).is_none() {
            return Err(Error::Input(format!(
                "there is no environment `{environment}`; the publishing rules name {}",
                governance.environments.iter().map(|e| e.name.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
        let previous = governance.previous(environment).map(|e| e.name.clone());
        // The plan: the one given, or the one live in the environment before.
        let analysis = match (proposal.plan, &previous) {
            (Some(plan), _) => self.install(plan)?,
            (None, Some(previous)) => {
                let flow = proposal.flow.ok_or_else(|| Error::Input("say which flow to promote".into()))?;
                let live = self.with_releases(|r| r.live(previous, flow).map(|l| l.plan.clone()))?;
                let plan = live.ok_or_else(|| {
                    Error::Input(format!("no release of `{flow}` is live in {previous}, so none can be promoted"))
                })?;
                self.plan(&plan)?
            }
            (None, None) => {
                return Err(Error::Input(format!(
                    "{environment} is the first environment: propose a plan or a `.flow` file for it"
                )));
            }
        };
        // The release store keeps every plan a release names, for every environment.
        let bytes = flow_ir::encode::to_json(analysis.plan.plan());
        self.release_store().put_plan(analysis.hash(), bytes.as_bytes())?;
        let body = analysis.body();
        let flow = body.flow.name.to_string();
        if let Some(named) = proposal.flow
            && named != flow
        {
            return Err(Error::Input(format!("the plan is of flow `{flow}`, not `{named}`")));
        }
        let plan = analysis.hash().to_string();
        // A promotion is held to the rule of what it promotes: the source that release was
        // proposed from goes with it.
        let carried = match (proposal.source, &previous) {
            (Some(source), _) => Some(source.to_owned()),
            (None, Some(previous)) => self.with_releases(|r| r.live(previous, &flow).and_then(|l| l.source.clone()))?,
            (None, None) => None,
        };
        let source = carried.as_deref();
        let Some((rule_number, rule)) = governance.rule_for(&flow, source) else {
            return Err(Error::Input(format!(
                "no publishing rule covers `{flow}`: add a `[[rules]]` naming it (by `flows` or `folders`) to the \
                 publishing rules"
            )));
        };
        let who = &who.normalized();
        let (live, promoted_from) = self.with_releases(|registry| {
            let live = registry.live(environment, &flow).map(|l| Live { release: l.id.clone(), plan: l.plan.clone() });
            let promoted = previous.as_ref().map(|p| registry.live(p, &flow).map(|l| (l.id.clone(), l.plan.clone())));
            (live, promoted)
        })?;
        let promoted_from = match promoted_from {
            None => None,
            Some(Some((release, promoted))) if promoted == plan => Some(release),
            Some(live_before) => {
                let previous = previous.unwrap_or_default();
                return Err(Error::Input(format!(
                    "plan {plan} is not live in {previous}, the environment before {environment}: a plan is promoted \
                     only as the same hash ({})",
                    match live_before {
                        Some((release, hash)) => format!("{release} made {hash} live there"),
                        None => format!("no release of `{flow}` is live there"),
                    }
                )));
            }
        };
        let descriptions = analysis.plan.plan().descriptions.clone();
        let (changes, material) = match &live {
            Some(live) => {
                let old = self.plan(&live.plan)?;
                // A version that says its waiting runs migrate must be one they can migrate
                // to from the version live (runs on older versions migrate only where the
                // runtime finds the same of theirs).
                let problems = crate::migration::problems(&old, &analysis);
                if body.flow.migrate_waiting && !problems.is_empty() {
                    return Err(Error::Input(format!(
                        "version {} of `{flow}` says `migrate waiting`, but the runs waiting on the version live in \
                         {environment} ({}) cannot migrate to it: {}",
                        body.flow.version,
                        live.release,
                        problems.join("; ")
                    )));
                }
                let replaced = self.release(&live.release)?;
                let new = (analysis.plan.plan(), &descriptions);
                let (changes, material) = release::difference((old.plan.plan(), &replaced.descriptions), new);
                // The version live, proposed again, is approved anew as a whole.
                let again = **analysis.hash() == *live.plan && replaced.descriptions == descriptions;
                (changes, material || again)
            }
            None => (Vec::new(), true),
        };
        let environment_rule = governance.environment(environment);
        let approvals = match (material, rule.author_alone) {
            (false, release::AuthorAlone::Descriptions) => 0,
            _ => environment_rule.and_then(|e| e.approvals).unwrap_or(rule.approvals),
        };
        let id = self.record_release_step(who, "release propose", |registry| {
            Ok(ReleaseEvent::Proposed {
                release: format!("rel-{}", registry.releases.len() + 1),
                environment: environment.to_owned(),
                flow: flow.clone(),
                version: body.flow.version.to_string(),
                plan: plan.clone(),
                principal: who.id.clone(),
                roles: who.roles.clone(),
                reason: proposal.reason.to_owned(),
                source: source.map(str::to_owned),
                live: live.clone(),
                promoted_from: promoted_from.clone(),
                descriptions: descriptions.clone(),
                changes: changes.clone(),
                material,
                rule: rule_number,
                authors: rule.authors.clone(),
                approvers: rule.approvers.clone(),
                approvals,
            })
        })?;
        self.release(&id)
    }

    /// Approves a release (`reason` required): by a holder of one of its approvers' roles,
    /// never its author, once per principal.
    pub fn approve_release(&self, who: &Principal, release: &str, reason: &str) -> Result<Release> {
        self.judge_release(who, release, reason, true)
    }

    /// Rejects a release (`reason` required): by one of its approvers, or its author
    /// withdrawing it.
    pub fn reject_release(&self, who: &Principal, release: &str, reason: &str) -> Result<Release> {
        self.judge_release(who, release, reason, false)
    }

    /// Approves or rejects a release, as `who`, for `reason`.
    fn judge_release(&self, who: &Principal, release: &str, reason: &str, approve: bool) -> Result<Release> {
        let who = &who.normalized();
        let operation = if approve { "release approve" } else { "release reject" };
        self.record_release_step(who, operation, |_| {
            let (release, principal, roles, reason) =
                (release.to_owned(), who.id.clone(), who.roles.clone(), reason.to_owned());
            Ok(match approve {
                true => ReleaseEvent::Approved { release, principal, roles, reason },
                false => ReleaseEvent::Rejected { release, principal, roles, reason },
            })
        })?;
        self.release(release)
    }

    /// Publishes an approved release: its plan becomes the one runs start on in its
    /// environment. By its author or a holder of its rule's authors' roles.
    pub fn publish_release(&self, who: &Principal, release: &str) -> Result<Release> {
        let who = &who.normalized();
        self.record_release_step(who, "release publish", |registry| {
            let r = registry.release(release).ok_or_else(|| Error::Decision(format!("no release `{release}`")))?;
            // The rules this runtime works under, as they stand, and not only the rule the
            // proposal recorded.
            if let Some(control) = &self.release_control
                && registry.state(r) == release::ReleaseState::Approved
                && let Err(why) = control.governance.admits(r)
            {
                return Err(Error::Decision(format!("`{release}` does not meet the publishing rules: {why}")));
            }
            Ok(ReleaseEvent::Published {
                release: release.to_owned(),
                environment: r.environment.clone(),
                flow: r.flow.clone(),
                plan: r.plan.clone(),
                principal: who.id.clone(),
                roles: who.roles.clone(),
                approvers: r.approvals.iter().map(|a| a.principal.clone()).collect(),
                supersedes: r.live.as_ref().map(|l| l.release.clone()),
            })
        })?;
        self.release(release)
    }

    /// A release as the log has it.
    pub fn release(&self, id: &str) -> Result<Release> {
        self.with_releases(|registry| registry.release(id).cloned())?
            .ok_or_else(|| Error::Decision(format!("there is no release `{id}` in the store")))
    }

    /// Records one step, built from the log as it stands, if the rules allow it: a step the
    /// principal may not take is refused and the refusal recorded; one that does not fit
    /// the release is an error. Another process recording a step at the same moment makes
    /// this one read the log again and try once more. Returns the release's id.
    fn record_release_step(
        &self,
        who: &Principal,
        operation: &str,
        build: impl Fn(&Registry) -> Result<ReleaseEvent>,
    ) -> Result<String> {
        let mut tries = 0;
        loop {
            let (registry, event) = self.with_releases(|registry| build(registry).map(|e| (registry.clone(), e)))??;
            let at = now().to_string();
            let (seq, prev) = registry.next();
            let json = serde_json::to_value(&event).map_err(|e| Error::Store(e.to_string()))?;
            let hash = release::entry_hash(&prev, seq, &at, &json);
            let mut applied = registry;
            if let Err(denied) = applied.apply(seq, &at, &hash, &event) {
                return Err(if denied.refused {
                    let grant = operation.trim_start_matches("release ").to_owned() + " release";
                    self.refuse(None, who, operation, grant, denied.message, true)
                } else {
                    Error::Decision(denied.message)
                });
            }
            let signature = self.signing.as_ref().map(|key| release::sign(key, &hash));
            let entry = Entry { seq, at, prev, hash, body: json.to_string(), signature };
            let notices = match (&self.webhooks, &event) {
                (Some(webhooks), event) => {
                    let (kind, id) = match event {
                        ReleaseEvent::Proposed { release, .. } => ("release.proposed", release),
                        ReleaseEvent::Approved { release, .. } => ("release.approved", release),
                        ReleaseEvent::Rejected { release, .. } => ("release.rejected", release),
                        ReleaseEvent::Published { release, .. } => ("release.published", release),
                    };
                    match applied.release(id) {
                        Some(r) => webhooks.for_release(seq, kind, r, applied.state(r).as_str()),
                        None => Vec::new(),
                    }
                }
                (None, _) => Vec::new(),
            };
            match self.release_store().append_release(&entry, self.signer(), &notices) {
                Ok(()) => {}
                Err(error) if matches!(error, crate::store::StoreError::Conflict(_)) && tries < 3 => {
                    tries += 1;
                    continue;
                }
                Err(error) => return Err(error.into()),
            }
            let id = match &event {
                ReleaseEvent::Proposed { release, .. }
                | ReleaseEvent::Approved { release, .. }
                | ReleaseEvent::Rejected { release, .. }
                | ReleaseEvent::Published { release, .. } => release.clone(),
            };
            return Ok(id);
        }
    }

    /// The release log as a bundle anyone can verify without the store (`flowc verify`):
    /// every entry, the plans its releases name, and the inclusion of its last entry in the
    /// store's log under the store's checkpoint.
    pub fn export_release_log(&self, who: &Principal) -> Result<Json> {
        let log = self.release_log()?;
        let mut plans = BTreeMap::new();
        for release in &log.registry.releases {
            for hash in std::iter::once(&release.plan).chain(release.live.as_ref().map(|l| &l.plan)) {
                if !plans.contains_key(hash) {
                    let bytes = self
                        .release_store()
                        .plan(hash)?
                        .ok_or_else(|| Error::Store(format!("the release store has no plan {hash}")))?;
                    let plan: Json = serde_json::from_slice(&bytes)
                        .map_err(|e| Error::Tampered(format!("the stored plan {hash} is not JSON: {e}")))?;
                    plans.insert(hash.clone(), plan);
                }
            }
        }
        let proof = match log.entries.last() {
            None => None,
            Some(last) => {
                let leaf = crate::checkpoint::Entry {
                    kind: crate::checkpoint::Kind::Release,
                    subject: "releases".to_owned(),
                    seq: last.seq,
                    hash: last.hash.clone(),
                };
                Self::log_proof(self.release_store(), &leaf, "the release log's last entry")?
            }
        };
        let exported = json!({"by": value::principal_id(&who.id), "at": now().to_string()});
        Ok(release::bundle(&log.entries, plans, proof, exported))
    }

    /// What a stored run's start records of its deployment, its chain checked.
    pub fn deployment(&self, run: &str) -> Result<RunDeployment> {
        let (analysis, _, events) = self.load_events(run, false)?;
        let Some(crate::event::Event::Started(started)) = events.first() else {
            return Err(Error::Tampered(format!("run `{run}` does not begin with its start")));
        };
        let mut deployment = RunDeployment {
            run: run.to_owned(),
            plan: analysis,
            environment: started.environment.clone(),
            release: started.release.clone(),
            engine: started.engine.to_string(),
            digest: started.deployment.clone(),
        };
        // A run that migrated runs in the deployment it migrated in.
        if let Some(migrated) = events.iter().rev().find_map(|e| match e {
            crate::event::Event::Migrated(migrated) => Some(migrated),
            _ => None,
        }) {
            deployment.environment = migrated.environment.clone();
            deployment.release = Some(migrated.release.clone());
            deployment.digest = Some(migrated.deployment.clone());
        }
        Ok(deployment)
    }
}

/// What a run's start records of its deployment ([`Runtime::deployment`]).
pub struct RunDeployment {
    pub run: String,
    pub plan: Arc<crate::analysis::Analysis>,
    pub environment: Arc<crate::event::Environment>,
    pub release: Option<ReleaseRef>,
    pub engine: String,
    /// Its digest, for a run started since runs record one.
    pub digest: Option<String>,
}
