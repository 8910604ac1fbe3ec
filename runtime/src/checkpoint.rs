//! The store's log: an append-only list of every head the store ever recorded — each
//! commit of a run (its id, number of events and head), each refusal that belongs to no
//! run, each shadow — with a Merkle tree over it in the manner of a transparency log
//! (RFC 9162), whose root, the **checkpoint**, is signed with the deployment's key.
//!
//! A run's own chain and signature prove its events; the log proves what the store held:
//! a run deleted, or rolled back to an earlier head, no longer matches the last leaf the
//! log has of it (`flowc audit`), and a checkpoint saved elsewhere proves that the log was
//! only ever appended to (its leaves are the first leaves of every later log). A bundle
//! carries an inclusion proof of its head in the checkpoint of its export.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::digest::hex;

/// What a leaf of the log records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A run's commit: the run id, its number of events, its head.
    Run,
    /// A refusal that belongs to no run: `refusals`, its number, the refusals chain's hash.
    Refusal,
    /// A shadow run kept: `RUN/CANDIDATE`, 0, the shadow record's digest.
    Shadow,
    /// An entry of the release log: `releases`, its number, its hash.
    Release,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Run => "run",
            Kind::Refusal => "refusal",
            Kind::Shadow => "shadow",
            Kind::Release => "release",
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        [Kind::Run, Kind::Refusal, Kind::Shadow, Kind::Release].into_iter().find(|k| k.as_str() == text)
    }
}

/// One entry of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    pub subject: String,
    pub seq: u64,
    pub hash: String,
}

impl Entry {
    /// The leaf's hash in the tree (RFC 9162: `0x00` then the leaf's data).
    pub fn leaf(&self) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&[0]);
        hasher.update(b"flow-log-leaf-v1\0");
        hasher.update(self.kind.as_str().as_bytes());
        hasher.update(b"\0");
        hasher.update(self.subject.as_bytes());
        hasher.update(b"\0");
        hasher.update(self.seq.to_string().as_bytes());
        hasher.update(b"\0");
        hasher.update(self.hash.as_bytes());
        *hasher.finalize().as_bytes()
    }
}

fn node(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&[1]);
    hasher.update(left);
    hasher.update(right);
    *hasher.finalize().as_bytes()
}

fn unhex32(text: &str) -> Option<[u8; 32]> {
    let bytes = crate::digest::unhex(text);
    bytes?.try_into().ok()
}

/// The right edge of the tree: the roots of its perfect subtrees, largest first (one per
/// bit of the number of leaves), from which the next root is computed without the leaves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    pub size: u64,
    pub roots: Vec<[u8; 32]>,
}

impl Frontier {
    pub fn push(&mut self, leaf: [u8; 32]) {
        let mut hash = leaf;
        // Each trailing one of the old size is a subtree of the same size to merge with.
        let mut size = self.size;
        while size & 1 == 1 {
            let left = self.roots.pop().unwrap_or_default();
            hash = node(&left, &hash);
            size >>= 1;
        }
        self.roots.push(hash);
        self.size += 1;
    }

    /// The tree's root (of an empty tree: BLAKE3 of nothing).
    pub fn root(&self) -> [u8; 32] {
        let mut roots = self.roots.iter().rev();
        let Some(last) = roots.next() else { return *blake3::hash(b"").as_bytes() };
        roots.fold(*last, |acc, left| node(left, &acc))
    }

    /// As stored: the hex roots, joined by spaces.
    pub fn to_text(&self) -> String {
        self.roots.iter().map(|r| hex(r)).collect::<Vec<_>>().join(" ")
    }

    pub fn from_text(size: u64, text: &str) -> Option<Frontier> {
        let roots: Option<Vec<[u8; 32]>> = text.split_whitespace().map(unhex32).collect();
        let frontier = Frontier { size, roots: roots? };
        (frontier.roots.len() == size.count_ones() as usize).then_some(frontier)
    }
}

/// The root of the tree over `leaves` (RFC 9162's MTH).
pub fn root(leaves: &[[u8; 32]]) -> [u8; 32] {
    match leaves.len() {
        0 => *blake3::hash(b"").as_bytes(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The largest power of two smaller than `n` (n ≥ 2).
fn split(n: usize) -> usize {
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// The inclusion proof of leaf `index` in the tree over `leaves` (RFC 9162's PATH).
pub fn inclusion_proof(index: usize, leaves: &[[u8; 32]]) -> Vec<[u8; 32]> {
    let n = leaves.len();
    if n <= 1 {
        return Vec::new();
    }
    let k = split(n);
    if index < k {
        let mut path = inclusion_proof(index, &leaves[..k]);
        path.push(root(&leaves[k..]));
        path
    } else {
        let mut path = inclusion_proof(index - k, &leaves[k..]);
        path.push(root(&leaves[..k]));
        path
    }
}

/// Whether `proof` shows `leaf` at `index` in a tree of `size` leaves with this `root`
/// (RFC 9162, 2.1.3.2).
pub fn verify_inclusion(leaf: [u8; 32], index: u64, size: u64, proof: &[[u8; 32]], root: [u8; 32]) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut hash = leaf;
    for p in proof {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            hash = node(p, &hash);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            hash = node(&hash, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && hash == root
}

/// A checkpoint: the log's size and root, signed when the deployment signs evidence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub size: u64,
    /// `blake3:` and the root in hex.
    pub root: String,
    /// When it was made (RFC 3339).
    pub at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

fn signed_message(size: u64, root: &str) -> Vec<u8> {
    format!("flow-log-checkpoint-v1\0{size}\0{root}").into_bytes()
}

impl Checkpoint {
    /// The checkpoint of a log in the state of `frontier`, signed with `key` when given.
    pub fn of(frontier: &Frontier, at: String, key: Option<&SigningKey>) -> Checkpoint {
        let root = format!("blake3:{}", hex(&frontier.root()));
        let (public_key, signature) = match key {
            Some(key) => (
                Some(hex(key.verifying_key().as_bytes())),
                Some(hex(&key.sign(&signed_message(frontier.size, &root)).to_bytes())),
            ),
            None => (None, None),
        };
        Checkpoint { size: frontier.size, root, at, public_key, signature }
    }

    /// The root's bytes.
    pub fn root_bytes(&self) -> Option<[u8; 32]> {
        unhex32(self.root.strip_prefix("blake3:")?)
    }

    /// Whether it is signed, by its public key, over its size and root.
    pub fn signature_verifies(&self) -> bool {
        let (Some(key), Some(value)) = (&self.public_key, &self.signature) else { return false };
        verifies(key, &signed_message(self.size, &self.root), value)
    }
}

/// The hash of a refusal that belongs to no run, in the store's chain of them: BLAKE3 over
/// the hash before it, its number, and its parts (time, principal, operation, grant,
/// message).
pub fn refusal_hash(prev: &str, seq: u64, parts: [&str; 5]) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"flow-refusal-v1\0");
    hasher.update(prev.as_bytes());
    hasher.update(b"\0");
    hasher.update(seq.to_string().as_bytes());
    for part in parts {
        hasher.update(b"\0");
        hasher.update(&(part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    format!("blake3:{}", hasher.finalize().to_hex())
}

fn shadow_message(digest: &str) -> Vec<u8> {
    format!("flow-shadow-v1\0{digest}").into_bytes()
}

/// The signature of a shadow record's digest.
pub fn sign_shadow(key: &SigningKey, digest: &str) -> String {
    hex(&key.sign(&shadow_message(digest)).to_bytes())
}

/// Whether `signature` (hex) is `public_key`'s (hex) signature of a shadow record's digest.
pub fn shadow_signature_verifies(public_key: &str, digest: &str, signature: &str) -> bool {
    verifies(public_key, &shadow_message(digest), signature)
}

fn case_message(digest: &str) -> Vec<u8> {
    format!("flow-queued-case-v1\0{digest}").into_bytes()
}

/// The signature of a queued case's digest.
pub fn sign_case(key: &SigningKey, digest: &str) -> String {
    hex(&key.sign(&case_message(digest)).to_bytes())
}

/// Whether `signature` (hex) is `public_key`'s (hex) signature of a queued case's digest.
pub fn case_signature_verifies(public_key: &str, digest: &str, signature: &str) -> bool {
    verifies(public_key, &case_message(digest), signature)
}

/// Whether `signature` (hex) is `public_key`'s (hex) ed25519 signature of `message`.
pub fn verifies(public_key: &str, message: &[u8], signature: &str) -> bool {
    let key = unhex32(public_key).and_then(|b| VerifyingKey::from_bytes(&b).ok());
    let value: Option<[u8; 64]> = (0..signature.len())
        .step_by(2)
        .map(|i| signature.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect::<Option<Vec<u8>>>()
        .and_then(|b| b.try_into().ok());
    match (key, value) {
        (Some(key), Some(value)) => key.verify(message, &Signature::from_bytes(&value)).is_ok(),
        _ => false,
    }
}

/// An inclusion proof as a bundle carries it: the leaf's position and the proof's hashes.
pub fn proof_to_hex(proof: &[[u8; 32]]) -> Vec<String> {
    proof.iter().map(|h| hex(h)).collect()
}

pub fn proof_from_hex(proof: &[String]) -> Option<Vec<[u8; 32]>> {
    proof.iter().map(|h| unhex32(h)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<[u8; 32]> {
        (0..n)
            .map(|i| Entry { kind: Kind::Run, subject: format!("r-{i}"), seq: i as u64, hash: "h".into() }.leaf())
            .collect()
    }

    /// The frontier's root is the tree's root at every size, and every leaf's inclusion
    /// proof verifies against it, and fails for another leaf, index or root.
    #[test]
    fn frontier_roots_and_inclusion_proofs_agree_with_the_tree() {
        let all = leaves(70);
        let mut frontier = Frontier::default();
        for n in 1..=all.len() {
            frontier.push(all[n - 1]);
            let tree = root(&all[..n]);
            assert_eq!(frontier.root(), tree, "size {n}");
            assert_eq!(Frontier::from_text(frontier.size, &frontier.to_text()), Some(frontier.clone()));
            for i in 0..n {
                let proof = inclusion_proof(i, &all[..n]);
                assert!(verify_inclusion(all[i], i as u64, n as u64, &proof, tree), "leaf {i} of {n}");
                let other = all[(i + 1) % all.len()];
                assert!(!verify_inclusion(other, i as u64, n as u64, &proof, tree) || other == all[i]);
                if n > 1 {
                    assert!(!verify_inclusion(all[i], ((i + 1) % n) as u64, n as u64, &proof, tree));
                }
                assert!(!verify_inclusion(all[i], i as u64, n as u64, &proof, all[0]) || n == 1);
            }
        }
    }

    #[test]
    fn a_checkpoint_signature_covers_its_size_and_root() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let mut frontier = Frontier::default();
        frontier.push(leaves(1)[0]);
        let checkpoint = Checkpoint::of(&frontier, "2026-12-02T00:00:00Z".into(), Some(&key));
        assert!(checkpoint.signature_verifies());
        let mut larger = checkpoint.clone();
        larger.size += 1;
        assert!(!larger.signature_verifies());
        let mut other = checkpoint.clone();
        other.root = format!("blake3:{}", hex(&[0; 32]));
        assert!(!other.signature_verifies());
        assert!(!Checkpoint::of(&frontier, String::new(), None).signature_verifies());
    }
}
