//! Evidence: the hash chain over a run's events, bundles, signatures and their
//! verification (`docs/evidence.md`).
//!
//! Each event's hash is BLAKE3 over the previous hash, its sequence number, its time and the
//! **digest** of its body. The digest is a Merkle hash of the JSON value (objects by sorted
//! key), so any part of a body can be replaced by its digest (a redaction marker,
//! `{"$redacted": "blake3:…"}`) and the chain still verifies. A bundle carries the plan, the
//! events, the head, an optional ed25519 signature of the head, and a digest of everything
//! else; it must be written exactly as [`render`] writes it, so that changing any byte of
//! it fails verification.

use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Map, Value as Json, json};

use crate::digest::{GENESIS, digest, event_hash, hex, unhex};
use crate::store::StoredEvent;

/// The format of evidence bundles.
pub const BUNDLE_FORMAT: &str = "flow-evidence";
pub const BUNDLE_VERSION: u64 = 1;

/// What is signed: the chain head, in a context of its own.
fn signed_message(head: &str) -> Vec<u8> {
    format!("flow-evidence-head-v1\0{head}").into_bytes()
}

/// A signing key for evidence, from its 32-byte seed written as 64 hexadecimal digits.
pub fn signing_key(hex_seed: &str) -> Result<SigningKey, String> {
    let bytes = unhex(hex_seed.trim()).ok_or("a signing key is 64 hexadecimal digits")?;
    let seed: [u8; 32] = bytes.try_into().map_err(|_| "a signing key is 64 hexadecimal digits (32 bytes)")?;
    Ok(SigningKey::from_bytes(&seed))
}

pub fn public_key_hex(key: &SigningKey) -> String {
    hex(key.verifying_key().as_bytes())
}

pub fn sign_head(key: &SigningKey, head: &str) -> String {
    hex(&key.sign(&signed_message(head)).to_bytes())
}

/// Whether `signature` (hex) is `public_key`'s (hex) signature of the chain head `head`.
pub fn head_signature_verifies(public_key: &str, head: &str, signature: &str) -> bool {
    crate::checkpoint::verifies(public_key, &signed_message(head), signature)
}

/// A bundle as its canonical bytes: pretty JSON and a final newline.
pub fn render(bundle: &Json) -> String {
    let mut text = serde_json::to_string_pretty(bundle).unwrap_or_default();
    text.push('\n');
    text
}

/// Builds a bundle from a run's (already redacted) events.
pub struct BundleParts<'a> {
    pub run: &'a str,
    pub plan_hash: &'a str,
    pub plan: Json,
    /// The plans a run migrated to while it waited, in order (`migrated` events): absent
    /// from the bundle of a run that never migrated.
    pub later_plans: Vec<Json>,
    pub events: &'a [StoredEvent],
    pub signature: Option<(&'a str, &'a str)>,
    pub exported_by: &'a str,
    pub views: Vec<String>,
    pub exported_at: &'a str,
    /// The inclusion proof of the head in the store's log: `{"index", "proof", "checkpoint"}`.
    pub log: Option<Json>,
}

pub fn bundle(parts: BundleParts<'_>) -> Json {
    let events: Vec<Json> = parts
        .events
        .iter()
        .map(|e| json!({"seq": e.seq, "at": e.at, "prev": e.prev, "hash": e.hash, "event": e.body}))
        .collect();
    let head = parts.events.last().map_or(GENESIS.to_owned(), |e| e.hash.clone());
    let mut object = Map::new();
    object.insert("format".into(), json!(BUNDLE_FORMAT));
    object.insert("format_version".into(), json!(BUNDLE_VERSION));
    object.insert("run".into(), json!(parts.run));
    object.insert("plan_hash".into(), json!(parts.plan_hash));
    object.insert("head".into(), json!(head));
    if let Some((public_key, value)) = parts.signature {
        object.insert("signature".into(), json!({"algorithm": "ed25519", "public_key": public_key, "value": value}));
    }
    object.insert("exported".into(), json!({"by": parts.exported_by, "views": parts.views, "at": parts.exported_at}));
    object.insert("events".into(), Json::Array(events));
    object.insert("plan".into(), parts.plan);
    if !parts.later_plans.is_empty() {
        object.insert("later_plans".into(), Json::Array(parts.later_plans));
    }
    if let Some(log) = parts.log {
        object.insert("log".into(), log);
    }
    let digest = digest(&Json::Object(object.clone()));
    object.insert("digest".into(), json!(digest));
    Json::Object(object)
}

/// What a verified bundle shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub run: String,
    pub plan_hash: String,
    /// The plans the run migrated to, in order (none for a run that never migrated).
    pub migrated: Vec<String>,
    pub events: usize,
    pub head: String,
    /// The public key that signed the head, when the run is signed.
    pub signed_by: Option<String>,
    pub redacted: usize,
    /// Where the store's log recorded the head: the entry's position and the checkpoint
    /// (size and root) whose inclusion proof the bundle carries.
    pub logged: Option<(u64, crate::checkpoint::Checkpoint)>,
}

impl Verified {
    /// What was verified, as JSON.
    pub fn to_json(&self) -> Json {
        json!({
            "verified": true, "run": self.run, "plan": self.plan_hash, "migrated_to": self.migrated,
            "events": self.events, "head": self.head, "signed_by": self.signed_by,
            "redacted": self.redacted,
            "logged": self.logged.as_ref().map(|(index, checkpoint)| json!({
                "index": index, "checkpoint": checkpoint,
            })),
        })
    }
}

/// What a verifier requires besides the bundle's own consistency.
#[derive(Debug, Clone, Default)]
pub struct Requirements {
    /// Public keys (hex) one of which must have signed the head; when empty, the key the
    /// run names is taken as it is.
    pub keys: Vec<String>,
    /// The head must be signed (a bundle whose signature was stripped, and whose chain and
    /// digest were recomputed, is otherwise consistent).
    pub signature: bool,
}

fn count_redacted(json: &Json) -> usize {
    match json {
        Json::Object(o) if o.contains_key("$redacted") => 1,
        Json::Object(o) => o.values().map(count_redacted).sum(),
        Json::Array(items) => items.iter().map(count_redacted).sum(),
        _ => 0,
    }
}

/// Verifies a bundle's bytes: its form, its digest, the hash chain, the plan and its hash,
/// the events against the plan, the signature, and the head's place in the store's log.
/// Every problem found is returned.
pub fn verify(bytes: &[u8]) -> Result<Verified, Vec<String>> {
    verify_with(bytes, &Requirements::default())
}

/// [`verify`], with what the verifier requires of the signature.
pub fn verify_with(bytes: &[u8], required: &Requirements) -> Result<Verified, Vec<String>> {
    let bundle: Json = serde_json::from_slice(bytes).map_err(|e| vec![format!("the bundle is not JSON: {e}")])?;
    let mut problems = Vec::new();
    if render(&bundle).as_bytes() != bytes {
        problems.push("the bundle is not written as `flowc evidence` writes it: its bytes were changed".to_owned());
    }
    let Some(object) = bundle.as_object() else { return Err(vec!["the bundle is not a JSON object".to_owned()]) };
    if object.get("format").and_then(Json::as_str) != Some(BUNDLE_FORMAT) {
        return Err(vec![format!("not an evidence bundle: `format` is not \"{BUNDLE_FORMAT}\"")]);
    }
    if object.get("format_version").and_then(Json::as_u64) != Some(BUNDLE_VERSION) {
        return Err(vec![format!(
            "evidence bundle format {} is not supported (expected {BUNDLE_VERSION})",
            object.get("format_version").unwrap_or(&Json::Null)
        )]);
    }
    let mut without_digest = object.clone();
    let written_digest = without_digest.remove("digest");
    if written_digest.as_ref().and_then(Json::as_str) != Some(digest(&Json::Object(without_digest)).as_str()) {
        problems.push("the bundle's digest does not match its content".to_owned());
    }
    let text = |key: &str| object.get(key).and_then(Json::as_str).unwrap_or("").to_owned();
    let (run, plan_hash, head) = (text("run"), text("plan_hash"), text("head"));
    let events = object.get("events").and_then(Json::as_array).cloned().unwrap_or_default();
    if events.is_empty() {
        problems.push("the bundle has no events".to_owned());
    }
    // Each event's hash is checked against what it holds and the hash the event before it
    // records; after an event that was changed, the chain goes on from the hash it records,
    // so that only the events changed are named.
    let mut prev = GENESIS.to_owned();
    let mut signing_key: Option<String> = None;
    let mut bodies = Vec::with_capacity(events.len());
    for (i, entry) in events.iter().enumerate() {
        let seq = entry.get("seq").and_then(Json::as_u64);
        let at = entry.get("at").and_then(Json::as_str).unwrap_or("");
        let body = entry.get("event").cloned().unwrap_or(Json::Null);
        let recorded = entry.get("hash").and_then(Json::as_str).unwrap_or("").to_owned();
        if seq != Some(i as u64) {
            problems.push(format!("event {i} has sequence number {}", entry.get("seq").unwrap_or(&Json::Null)));
        }
        if entry.get("prev").and_then(Json::as_str) != Some(prev.as_str()) {
            problems.push(format!("event {i} does not follow event {}: the chain is broken", i.saturating_sub(1)));
        }
        if event_hash(&prev, i as u64, at, &body) != recorded {
            problems.push(format!(
                "event {i} (`{}`) was changed: its hash does not match what it holds, so the chain breaks after \
                 event {}",
                body["event"].as_str().unwrap_or("?"),
                i.saturating_sub(1)
            ));
        }
        if i == 0 {
            if body["event"] != "started" {
                problems.push("the first event is not the start of the run".to_owned());
            }
            if body["run"].as_str() != Some(run.as_str()) {
                problems.push(format!("the events are of run {}, not `{run}`", body["run"]));
            }
            if body["plan"].as_str() != Some(plan_hash.as_str()) {
                problems.push(format!("the run pinned plan {}, not `{plan_hash}`", body["plan"]));
            }
            signing_key = body.get("signing_key").and_then(Json::as_str).map(str::to_owned);
            // The deployment's digest is of what the start records beside it.
            if let Some(recorded) = body.get("deployment") {
                let environment = serde_json::from_value(body["environment"].clone());
                let release: Result<Option<crate::event::ReleaseRef>, _> =
                    serde_json::from_value(body.get("release").cloned().unwrap_or(Json::Null));
                match (environment, release) {
                    (Ok(environment), Ok(release)) => {
                        if recorded.as_str()
                            != Some(crate::deployment::digest_of(&environment, release.as_ref()).as_str())
                        {
                            problems.push(
                                "the run's deployment digest is not the digest of the environment and release its start \
                                 records"
                                    .to_owned(),
                            );
                        }
                    }
                    _ => problems.push("the start's environment or release cannot be read".to_owned()),
                }
            }
        }
        bodies.push(body);
        prev = recorded;
    }
    if head != prev {
        problems.push("the head is not the hash of the last event".to_owned());
    }
    // The plans a migrated run continued on, each checked as the first is.
    let mut later = Vec::new();
    for (k, plan) in object.get("later_plans").and_then(Json::as_array).into_iter().flatten().enumerate() {
        match flow_ir::load(plan.to_string().as_bytes()) {
            Ok(verified) => {
                let analysis = crate::analysis::Analysis::new(verified);
                problems.extend(
                    analysis.leaks().into_iter().map(|leak| format!("later plan {k} lets labelled data leak: {leak}")),
                );
                later.push(analysis);
            }
            Err(errors) => problems.push(format!("later plan {k} does not verify: {errors}")),
        }
    }
    if object.get("later_plans").is_some_and(|plans| plans.as_array().is_none_or(Vec::is_empty)) {
        problems.push("the bundle's `later_plans` is not a list of plans".to_owned());
    }
    let migrated: Vec<String> = later.iter().map(|analysis| analysis.hash().to_string()).collect();
    match object.get("plan").map(|plan| flow_ir::load(plan.to_string().as_bytes())) {
        Some(Ok(verified)) if verified.hash() == plan_hash => {
            let analysis = crate::analysis::Analysis::new(verified);
            problems
                .extend(analysis.leaks().into_iter().map(|leak| format!("the plan lets labelled data leak: {leak}")));
            let later: Vec<&crate::analysis::Analysis> = later.iter().collect();
            problems.extend(crate::conformance::problems_across(&analysis, &later, &bodies));
        }
        Some(Ok(verified)) => {
            problems.push(format!("the plan's hash is {}, not the pinned {plan_hash}", verified.hash()))
        }
        Some(Err(errors)) => problems.push(format!("the plan does not verify: {errors}")),
        None => problems.push("the bundle has no plan".to_owned()),
    }
    let signature = object.get("signature");
    match (&signing_key, signature) {
        (None, None) if required.signature || !required.keys.is_empty() => {
            problems.push("the bundle is not signed, and a signature is required".to_owned())
        }
        (None, None) => {}
        (None, Some(_)) => problems.push("the bundle has a signature, but its run was not signed".to_owned()),
        (Some(_), None) => problems.push("the run's evidence is signed, but the bundle has no signature".to_owned()),
        (Some(key), Some(signature)) => {
            if signature.get("public_key").and_then(Json::as_str) != Some(key.as_str()) {
                problems.push("the signature is not by the key the run was started with".to_owned());
            }
            if !required.keys.is_empty() && !required.keys.iter().any(|k| k == key) {
                problems.push(format!("the run is signed with the key {key}, which is not one of the keys required"));
            }
            let value = signature.get("value").and_then(Json::as_str).unwrap_or("");
            if !head_signature_verifies(key, &head, value) {
                problems.push("the signature of the head does not verify".to_owned());
            }
        }
    }
    let logged = match object.get("log") {
        None => None,
        Some(log) => match logged(log, &run, bodies.len() as u64, &head, signing_key.as_deref()) {
            Ok(logged) => Some(logged),
            Err(problem) => {
                problems.push(problem);
                None
            }
        },
    };
    if problems.is_empty() {
        Ok(Verified {
            run,
            plan_hash,
            migrated,
            events: events.len(),
            head,
            signed_by: signing_key,
            redacted: count_redacted(&Json::Array(events)),
            logged,
        })
    } else {
        Err(problems)
    }
}

/// Checks a bundle's `log`: the inclusion proof of the run's head in the store's log, under
/// the checkpoint it carries (signed by the run's key when the run is signed).
fn logged(
    log: &Json,
    run: &str,
    events: u64,
    head: &str,
    key: Option<&str>,
) -> Result<(u64, crate::checkpoint::Checkpoint), String> {
    use crate::checkpoint::{Entry, Kind};
    let entry = Entry { kind: Kind::Run, subject: run.to_owned(), seq: events, hash: head.to_owned() };
    logged_entry(log, entry, key).map_err(|problem| problem.replace("the entry is", "the head is"))
}

/// Checks a bundle's `log`: the inclusion proof of `entry` in the store's log, under the
/// checkpoint it carries (signed by `key` when given).
pub(crate) fn logged_entry(
    log: &Json,
    entry: crate::checkpoint::Entry,
    key: Option<&str>,
) -> Result<(u64, crate::checkpoint::Checkpoint), String> {
    use crate::checkpoint::Checkpoint;
    let index = log.get("index").and_then(Json::as_u64).ok_or("the bundle's log has no index")?;
    let checkpoint: Checkpoint = serde_json::from_value(log.get("checkpoint").cloned().unwrap_or(Json::Null))
        .map_err(|e| format!("the bundle's log has no readable checkpoint: {e}"))?;
    let proof: Vec<String> = serde_json::from_value(log.get("proof").cloned().unwrap_or(Json::Null))
        .map_err(|e| format!("the bundle's log has no readable proof: {e}"))?;
    let proof = crate::checkpoint::proof_from_hex(&proof).ok_or("the bundle's log proof is not hashes")?;
    let leaf = entry.leaf();
    let root = checkpoint.root_bytes().ok_or("the bundle's log checkpoint has no root")?;
    if !crate::checkpoint::verify_inclusion(leaf, index, checkpoint.size, &proof, root) {
        return Err("the entry is not in the store's log as the bundle's inclusion proof says".to_owned());
    }
    match (key, &checkpoint.public_key) {
        (_, Some(_)) if !checkpoint.signature_verifies() => {
            Err("the signature of the bundle's log checkpoint does not verify".to_owned())
        }
        (Some(key), Some(signer)) if key != signer => {
            Err("the bundle's log checkpoint is not signed by the key that signed what it logs".to_owned())
        }
        (Some(_), None) => Err("what the bundle logs is signed, but its log checkpoint is not".to_owned()),
        _ => Ok((index, checkpoint)),
    }
}
