//! Digests: the Merkle hash of a JSON value (objects by sorted key), which lets any part of
//! an event's body be replaced by its digest and the chain still verify, and the hash of
//! each event in a run's chain over the previous hash, its sequence number, its time and
//! the digest of its body (`docs/evidence.md`).

use serde_json::Value as Json;

/// The hash that precedes a run's first event.
pub const GENESIS: &str = "blake3:0000000000000000000000000000000000000000000000000000000000000000";

/// Whether `text` is written as a digest is: `blake3:` and 64 hexadecimal digits.
pub fn is_digest(text: &str) -> bool {
    text.strip_prefix("blake3:").is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        text.push(char::from(DIGITS[usize::from(b >> 4)]));
        text.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    text
}

pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// Remembered digests, per thread. Events use few distinct keys (`event`, `node`, `value`,
/// field names) and repeat many short strings (event kinds, step names, levels), numbers
/// and small objects (an operand and its value), so each thread remembers the digests of
/// the first few thousand of each it meets instead of hashing them again for every event.
struct Remembered<K: ?Sized>(rustc_hash::FxHashMap<Box<K>, [u8; 32]>);

impl<K: ?Sized> Default for Remembered<K> {
    fn default() -> Remembered<K> {
        Remembered(rustc_hash::FxHashMap::default())
    }
}

type Memo<K> = std::thread::LocalKey<std::cell::RefCell<Remembered<K>>>;

thread_local! {
    static KEYS: std::cell::RefCell<Remembered<str>> = Default::default();
    static STRINGS: std::cell::RefCell<Remembered<str>> = Default::default();
    static NUMBERS: std::cell::RefCell<Remembered<str>> = Default::default();
    static COMPOSITES: std::cell::RefCell<Remembered<[u8]>> = Default::default();
    static TEXTS: std::cell::RefCell<Remembered<str>> = Default::default();
}

/// `hash` of `input`, remembered in `memo` when the input is at most `short` long.
fn remembered<K>(memo: &'static Memo<K>, input: &K, short: usize, hash: impl FnOnce() -> [u8; 32]) -> [u8; 32]
where
    K: ?Sized + Eq + std::hash::Hash + AsRef<[u8]>,
    Box<K>: for<'k> From<&'k K>,
{
    const REMEMBERED: usize = 4096;
    if input.as_ref().len() > short {
        return hash();
    }
    memo.with(|memo| {
        let memo = &mut memo.borrow_mut().0;
        if let Some(digest) = memo.get(input) {
            return *digest;
        }
        let digest = hash();
        if memo.len() < REMEMBERED {
            memo.insert(input.into(), digest);
        }
        digest
    })
}

/// The digest of the leaf `tag` `text`, remembered in `memo` when it is short.
fn leaf_digest(memo: &'static Memo<str>, tag: &[u8], text: &str) -> [u8; 32] {
    remembered(memo, text, 48, || tagged_hash(tag, text.as_bytes()))
}

/// BLAKE3 of `tag` then `bytes`; short inputs hashed at once from the stack (an incremental
/// hasher costs more to set up than a short input costs to hash).
fn tagged_hash(tag: &[u8], bytes: &[u8]) -> [u8; 32] {
    let mut buffer = [0u8; 512];
    let length = tag.len() + bytes.len();
    if let Some(joined) = buffer.get_mut(..length) {
        let (head, rest) = joined.split_at_mut(tag.len());
        head.copy_from_slice(tag);
        rest.copy_from_slice(bytes);
        return *blake3::hash(joined).as_bytes();
    }
    let mut hasher = blake3::Hasher::new();
    hasher.update(tag);
    hasher.update(bytes);
    *hasher.finalize().as_bytes()
}

/// The BLAKE3 hash of an object's key.
fn key_digest(key: &str) -> [u8; 32] {
    leaf_digest(&KEYS, b"", key)
}

fn string_digest(text: &str) -> [u8; 32] {
    leaf_digest(&STRINGS, b"s", text)
}

fn number_digest(number: &serde_json::Number) -> [u8; 32] {
    leaf_digest(&NUMBERS, b"#", &number.to_string())
}

fn null_digest() -> [u8; 32] {
    static NULL: std::sync::LazyLock<[u8; 32]> = std::sync::LazyLock::new(|| *blake3::hash(b"n").as_bytes());
    *NULL
}

fn bool_digest(b: bool) -> [u8; 32] {
    static TRUE: std::sync::LazyLock<[u8; 32]> = std::sync::LazyLock::new(|| *blake3::hash(b"t").as_bytes());
    static FALSE: std::sync::LazyLock<[u8; 32]> = std::sync::LazyLock::new(|| *blake3::hash(b"f").as_bytes());
    if b { *TRUE } else { *FALSE }
}

/// The digest of an array (`tag` `a`) or object (`o`): BLAKE3 of the tag and its parts'
/// digests (an object's as key, value, by sorted key), remembered when small.
fn composite_digest(tag: u8, parts: impl Iterator<Item = [u8; 32]>) -> [u8; 32] {
    // Most objects and arrays of events have a few parts: their bytes are kept on the stack.
    let mut bytes: smallvec::SmallVec<[u8; 1024]> = smallvec::SmallVec::new();
    bytes.push(tag);
    for part in parts {
        bytes.extend_from_slice(&part);
    }
    remembered(&COMPOSITES, bytes.as_slice(), 1 + 64 * 4, || *blake3::hash(&bytes).as_bytes())
}

fn digest_bytes(json: &Json) -> [u8; 32] {
    match json {
        Json::Null => null_digest(),
        Json::Bool(b) => bool_digest(*b),
        Json::Number(n) => number_digest(n),
        Json::String(s) => string_digest(s),
        Json::Array(items) => composite_digest(b'a', items.iter().map(digest_bytes)),
        Json::Object(object) => {
            if object.len() <= 2
                && let Some(Json::String(redacted)) = object.get("$redacted")
                && let Some(bytes) = redacted.strip_prefix("blake3:").and_then(unhex)
                && let Ok(bytes) = <[u8; 32]>::try_from(bytes)
            {
                return bytes;
            }
            let mut keys: smallvec::SmallVec<[&String; 16]> = object.keys().collect();
            keys.sort();
            composite_digest(b'o', keys.into_iter().flat_map(|key| [key_digest(key), digest_bytes(&object[key])]))
        }
    }
}

/// The Merkle digest of a JSON value: a redaction marker stands for what it replaced.
pub fn digest(json: &Json) -> String {
    format!("blake3:{}", hex(&digest_bytes(json)))
}

/// A digest computed while reading JSON text, and, for a string that is a digest
/// (`blake3:` and 64 hexadecimal digits), its bytes: what a redaction marker stands for.
struct TextDigest {
    bytes: [u8; 32],
    marker: Option<[u8; 32]>,
}

impl TextDigest {
    fn of(bytes: [u8; 32]) -> TextDigest {
        TextDigest { bytes, marker: None }
    }
}

/// Reads a JSON value and computes [`digest_bytes`] of it without building it: the same
/// digest, for every text `serde_json` reads into a [`Json`] (a repeated key keeps its
/// last value, as there).
struct TextDigestSeed;

impl<'de> serde::de::DeserializeSeed<'de> for TextDigestSeed {
    type Value = TextDigest;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<TextDigest, D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// An object's key, borrowed from the text where it has no escapes.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Key<'de>, D::Error> {
        struct KeyVisitor;
        impl<'de> serde::de::Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(key.into()))
            }
            fn visit_str<E>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key(key.to_owned().into()))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

impl<'de> serde::de::Visitor<'de> for TextDigestSeed {
    type Value = TextDigest;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<TextDigest, E> {
        Ok(TextDigest::of(null_digest()))
    }

    fn visit_bool<E>(self, b: bool) -> Result<TextDigest, E> {
        Ok(TextDigest::of(bool_digest(b)))
    }

    fn visit_u64<E>(self, n: u64) -> Result<TextDigest, E> {
        Ok(TextDigest::of(number_digest(&n.into())))
    }

    fn visit_i64<E>(self, n: i64) -> Result<TextDigest, E> {
        Ok(TextDigest::of(number_digest(&n.into())))
    }

    fn visit_f64<E>(self, n: f64) -> Result<TextDigest, E> {
        Ok(TextDigest::of(serde_json::Number::from_f64(n).map_or_else(null_digest, |n| number_digest(&n))))
    }

    fn visit_str<E>(self, s: &str) -> Result<TextDigest, E> {
        let mut digest = TextDigest::of(string_digest(s));
        digest.marker = s.strip_prefix("blake3:").and_then(unhex).and_then(|b| <[u8; 32]>::try_from(b).ok());
        Ok(digest)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<TextDigest, A::Error> {
        let mut items: smallvec::SmallVec<[[u8; 32]; 8]> = smallvec::SmallVec::new();
        while let Some(item) = seq.next_element_seed(TextDigestSeed)? {
            items.push(item.bytes);
        }
        Ok(TextDigest::of(composite_digest(b'a', items.into_iter())))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<TextDigest, A::Error> {
        let mut entries: smallvec::SmallVec<[(Key<'de>, TextDigest); 12]> = smallvec::SmallVec::new();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            entries.push((key, map.next_value_seed(TextDigestSeed)?));
        }
        // Sorted by key (stably: a repeated key's values stay in order); of a repeated key,
        // the last value.
        entries.sort_by(|a, b| a.0.0.cmp(&b.0.0));
        let kept: smallvec::SmallVec<[&(Key<'de>, TextDigest); 12]> = entries
            .iter()
            .enumerate()
            .filter(|(i, entry)| entries.get(i + 1).is_none_or(|next| next.0.0 != entry.0.0))
            .map(|(_, entry)| entry)
            .collect();
        if kept.len() <= 2
            && let Some(marker) = kept.iter().find(|(key, _)| key.0 == "$redacted").and_then(|(_, d)| d.marker)
        {
            return Ok(TextDigest { bytes: marker, marker: None });
        }
        Ok(TextDigest::of(composite_digest(
            b'o',
            kept.into_iter().flat_map(|(key, value)| [key_digest(&key.0), value.bytes]),
        )))
    }
}

/// [`digest_bytes`] of the JSON value `text` holds, read without building it. Many stored
/// bodies repeat word for word (a gate on a field of few values, how runs settle), so the
/// digests of short ones are remembered by their text.
fn text_digest_bytes(text: &str) -> Result<[u8; 32], serde_json::Error> {
    let read = || {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let digest = serde::de::DeserializeSeed::deserialize(TextDigestSeed, &mut deserializer)?;
        deserializer.end()?;
        Ok(digest.bytes)
    };
    if text.len() > 512 {
        return read();
    }
    if let Some(digest) = TEXTS.with(|memo| memo.borrow().0.get(text).copied()) {
        return Ok(digest);
    }
    let digest = read()?;
    TEXTS.with(|memo| {
        let memo = &mut memo.borrow_mut().0;
        if memo.len() < 16 * 1024 {
            memo.insert(text.into(), digest);
        }
    });
    Ok(digest)
}

/// The Merkle digest of the JSON value `text` holds: [`digest`] of what it reads as.
pub fn digest_text(text: &str) -> Result<String, serde_json::Error> {
    text_digest_bytes(text).map(|bytes| format!("blake3:{}", hex(&bytes)))
}

/// Whether `hash` is the hash of an event in the chain, given its body as stored (JSON
/// text): [`event_hash`] of the body it reads as; or why the body is not JSON.
pub fn is_event_hash(hash: &str, prev: &str, seq: u64, at: &str, body: &str) -> Result<bool, serde_json::Error> {
    let computed = chain_hash(prev, seq, at, &text_digest_bytes(body)?);
    Ok(hash.strip_prefix("blake3:") == Some(computed.to_hex().as_str()))
}

/// [`event_hash`] of the body JSON text `body` holds, computed while reading it; or why it
/// is not JSON.
pub fn event_hash_of_text(prev: &str, seq: u64, at: &str, body: &str) -> Result<String, serde_json::Error> {
    Ok(format!("blake3:{}", chain_hash(prev, seq, at, &text_digest_bytes(body)?).to_hex()))
}

/// The hash of an event in the chain.
pub fn event_hash(prev: &str, seq: u64, at: &str, body: &Json) -> String {
    format!("blake3:{}", chain_hash(prev, seq, at, &digest_bytes(body)).to_hex())
}

/// The decimal digits of `n`, written into `buf` without allocating or formatting: where
/// numbers are hashed or written on hot paths, a formatter costs more than the rest.
pub(crate) fn decimal_digits(n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut start = buf.len();
    let mut n = n;
    loop {
        start -= 1;
        buf[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[start..]
}

fn chain_hash(prev: &str, seq: u64, at: &str, body_digest: &[u8; 32]) -> blake3::Hash {
    let mut buf = [0u8; 20];
    let digits = decimal_digits(seq, &mut buf);
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"flow-evidence-event-v1\0");
    hasher.update(prev.as_bytes());
    hasher.update(b"\0");
    hasher.update(digits);
    hasher.update(b"\0");
    hasher.update(at.as_bytes());
    hasher.update(b"\0");
    hasher.update(body_digest);
    hasher.finalize()
}
