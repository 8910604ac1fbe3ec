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

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde_json::{Map, Value as Json, json};

use crate::store::StoredEvent;

/// The format of evidence bundles.
pub const BUNDLE_FORMAT: &str = "flow-evidence";
pub const BUNDLE_VERSION: u64 = 1;

/// The hash that precedes a run's first event.
pub const GENESIS: &str = "blake3:0000000000000000000000000000000000000000000000000000000000000000";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// The BLAKE3 hash of an object's key. Events use few distinct keys (`event`, `node`,
/// `value`, field names), so each thread remembers the hashes of the first few thousand it
/// meets instead of hashing them again for every event.
fn key_digest(key: &str) -> [u8; 32] {
    const REMEMBERED: usize = 4096;
    thread_local! {
        static KEYS: std::cell::RefCell<rustc_hash::FxHashMap<Box<str>, [u8; 32]>> = Default::default();
    }
    KEYS.with(|keys| {
        let mut keys = keys.borrow_mut();
        if let Some(digest) = keys.get(key) {
            return *digest;
        }
        let digest = *blake3::hash(key.as_bytes()).as_bytes();
        if keys.len() < REMEMBERED {
            keys.insert(key.into(), digest);
        }
        digest
    })
}

fn digest_bytes(json: &Json) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    match json {
        Json::Null => {
            hasher.update(b"n");
        }
        Json::Bool(b) => {
            hasher.update(if *b { b"t" } else { b"f" });
        }
        Json::Number(n) => {
            hasher.update(b"#");
            hasher.update(n.to_string().as_bytes());
        }
        Json::String(s) => {
            hasher.update(b"s");
            hasher.update(s.as_bytes());
        }
        Json::Array(items) => {
            hasher.update(b"a");
            for item in items {
                hasher.update(&digest_bytes(item));
            }
        }
        Json::Object(object) => {
            if object.len() <= 2
                && let Some(Json::String(redacted)) = object.get("$redacted")
                && let Some(bytes) = redacted.strip_prefix("blake3:").and_then(unhex)
                && let Ok(bytes) = <[u8; 32]>::try_from(bytes)
            {
                return bytes;
            }
            hasher.update(b"o");
            let mut keys: Vec<&String> = object.keys().collect();
            keys.sort();
            for key in keys {
                hasher.update(&key_digest(key));
                hasher.update(&digest_bytes(&object[key]));
            }
        }
    }
    *hasher.finalize().as_bytes()
}

/// The Merkle digest of a JSON value: a redaction marker stands for what it replaced.
pub fn digest(json: &Json) -> String {
    format!("blake3:{}", hex(&digest_bytes(json)))
}

/// The hash of an event in the chain.
pub fn event_hash(prev: &str, seq: u64, at: &str, body: &Json) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"flow-evidence-event-v1\0");
    hasher.update(prev.as_bytes());
    hasher.update(b"\0");
    hasher.update(seq.to_string().as_bytes());
    hasher.update(b"\0");
    hasher.update(at.as_bytes());
    hasher.update(b"\0");
    hasher.update(&digest_bytes(body));
    format!("blake3:{}", blake3::Hasher::finalize(&hasher).to_hex())
}

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
    pub events: &'a [StoredEvent],
    pub signature: Option<(&'a str, &'a str)>,
    pub exported_by: &'a str,
    pub views: Vec<String>,
    pub exported_at: &'a str,
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
    let digest = digest(&Json::Object(object.clone()));
    object.insert("digest".into(), json!(digest));
    Json::Object(object)
}

/// What a verified bundle shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub run: String,
    pub plan_hash: String,
    pub events: usize,
    pub head: String,
    /// The public key that signed the head, when the run is signed.
    pub signed_by: Option<String>,
    pub redacted: usize,
}

/// Whether every redaction marker names the labels it was hidden for: only labelled values
/// are redacted.
fn redactions_are_labelled(json: &Json) -> bool {
    match json {
        Json::Object(o) if o.contains_key("$redacted") => {
            o.get("$labels").and_then(Json::as_array).is_some_and(|labels| !labels.is_empty())
        }
        Json::Object(o) => o.values().all(redactions_are_labelled),
        Json::Array(items) => items.iter().all(redactions_are_labelled),
        _ => true,
    }
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
/// and the signature. Every problem found is returned.
pub fn verify(bytes: &[u8]) -> Result<Verified, Vec<String>> {
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
    let mut prev = GENESIS.to_owned();
    let mut signing_key: Option<String> = None;
    for (i, entry) in events.iter().enumerate() {
        let seq = entry.get("seq").and_then(Json::as_u64);
        let at = entry.get("at").and_then(Json::as_str).unwrap_or("");
        let body = entry.get("event").cloned().unwrap_or(Json::Null);
        if seq != Some(i as u64) {
            problems.push(format!("event {i} has sequence number {}", entry.get("seq").unwrap_or(&Json::Null)));
        }
        if entry.get("prev").and_then(Json::as_str) != Some(prev.as_str()) {
            problems.push(format!("event {i} does not follow event {}: the chain is broken", i.saturating_sub(1)));
        }
        let hash = event_hash(&prev, i as u64, at, &body);
        if entry.get("hash").and_then(Json::as_str) != Some(hash.as_str()) {
            problems.push(format!(
                "event {i} (`{}`) was changed: its hash does not match",
                body["event"].as_str().unwrap_or("?")
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
        }
        prev = hash;
    }
    if head != prev {
        problems.push("the head is not the hash of the last event".to_owned());
    }
    if !redactions_are_labelled(&Json::Array(events.clone())) {
        problems.push("a value is redacted without the labels that hid it".to_owned());
    }
    match object.get("plan").map(|plan| flow_ir::load(plan.to_string().as_bytes())) {
        Some(Ok(verified)) if verified.hash() == plan_hash => {}
        Some(Ok(verified)) => {
            problems.push(format!("the plan's hash is {}, not the pinned {plan_hash}", verified.hash()))
        }
        Some(Err(errors)) => problems.push(format!("the plan does not verify: {errors}")),
        None => problems.push("the bundle has no plan".to_owned()),
    }
    let signature = object.get("signature");
    match (&signing_key, signature) {
        (None, None) => {}
        (None, Some(_)) => problems.push("the bundle has a signature, but its run was not signed".to_owned()),
        (Some(_), None) => problems.push("the run's evidence is signed, but the bundle has no signature".to_owned()),
        (Some(key), Some(signature)) => {
            if signature.get("public_key").and_then(Json::as_str) != Some(key.as_str()) {
                problems.push("the signature is not by the key the run was started with".to_owned());
            }
            let verifying =
                unhex(key).and_then(|b| <[u8; 32]>::try_from(b).ok()).and_then(|b| VerifyingKey::from_bytes(&b).ok());
            let value = signature
                .get("value")
                .and_then(Json::as_str)
                .and_then(unhex)
                .and_then(|b| <[u8; 64]>::try_from(b).ok())
                .map(|b| Signature::from_bytes(&b));
            match (verifying, value) {
                (Some(verifying), Some(value)) if verifying.verify(&signed_message(&head), &value).is_ok() => {}
                _ => problems.push("the signature of the head does not verify".to_owned()),
            }
        }
    }
    if problems.is_empty() {
        Ok(Verified {
            run,
            plan_hash,
            events: events.len(),
            head,
            signed_by: signing_key,
            redacted: count_redacted(&Json::Array(events)),
        })
    } else {
        Err(problems)
    }
}
