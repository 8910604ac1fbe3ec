//! Reading and writing plan files, and the content hash over the canonical encoding.
//!
//! The canonical encoding of a plan ([`crate::canonical`]) is the JSON value of the object
//! with the fields `format_version`, `language_version` and `plan`, as the plan file writes
//! them (fields in the order of their declaration in [`crate::plan`], map keys sorted), in
//! a binary framing. Lists whose order means nothing are sorted by the compiler and
//! checked sorted by the verifier, so two plans with the same meaning have the same
//! encoding. The hash is BLAKE3 over that encoding, written `blake3:` and 64 hexadecimal
//! digits.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use smol_str::SmolStr;

use crate::error::VerifyError;
use crate::plan::{FORMAT_VERSION, LANGUAGE_VERSION, Plan, PlanBody, SourceMap};

#[derive(Serialize)]
struct Hashed<'a> {
    format_version: u32,
    language_version: &'a str,
    plan: &'a PlanBody,
}

/// `blake3:` and the hex digest of `bytes`.
pub fn blake3_text(bytes: &[u8]) -> String {
    format!("blake3:{}", blake3::hash(bytes).to_hex())
}

/// The hash of a plan's meaning, as recorded in its `hash` field: BLAKE3 over the canonical
/// encoding ([`crate::canonical`]) of the format version, the language version and the body.
pub fn content_hash(format_version: u32, language_version: &str, body: &PlanBody) -> String {
    let mut hasher = blake3::Hasher::new();
    let mut encoder = crate::canonical::Canonical::new(&mut hasher);
    let hashed = Hashed { format_version, language_version, plan: body };
    // INVARIANT: plan types hold no floating-point numbers, the only thing the encoding
    // refuses.
    let _ = hashed.serialize(&mut encoder);
    encoder.finish();
    format!("blake3:{}", hasher.finalize().to_hex())
}

/// A plan of this format for `body`, with its hash.
pub fn seal(body: PlanBody, compiler: String, descriptions: BTreeMap<String, String>, source_map: SourceMap) -> Plan {
    let hash = content_hash(FORMAT_VERSION, LANGUAGE_VERSION, &body);
    Plan {
        format_version: FORMAT_VERSION,
        language_version: SmolStr::new_static(LANGUAGE_VERSION),
        hash,
        compiler,
        plan: body,
        descriptions,
        source_map,
    }
}

/// The plan file's text: JSON with one member per line, ending with a newline. Arrays
/// that start with a string (expressions, and lists of names) stay on one line, so that
/// an expression reads as one line.
pub fn to_json(plan: &Plan) -> String {
    // INVARIANT: as in `canonical_bytes`.
    let value = serde_json::to_value(plan).unwrap_or_default();
    let mut out = String::new();
    write_value(&mut out, &value, 0);
    out.push('\n');
    out
}

fn write_value(out: &mut String, value: &serde_json::Value, indent: usize) {
    use serde_json::Value;
    let pad = |out: &mut String, n: usize| out.extend(std::iter::repeat_n("  ", n));
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push_str("{\n");
            for (i, (key, member)) in map.iter().enumerate() {
                pad(out, indent + 1);
                out.push_str(&serde_json::to_string(key).unwrap_or_default());
                out.push_str(": ");
                write_value(out, member, indent + 1);
                out.push_str(if i + 1 < map.len() { ",\n" } else { "\n" });
            }
            pad(out, indent);
            out.push('}');
        }
        Value::Array(items) if !items.is_empty() && !items[0].is_string() => {
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                pad(out, indent + 1);
                write_value(out, item, indent + 1);
                out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
            }
            pad(out, indent);
            out.push(']');
        }
        other => out.push_str(&serde_json::to_string(other).unwrap_or_default()),
    }
}

/// Only the version fields, to say why a plan of another format does not read.
#[derive(Deserialize)]
struct Versions {
    format_version: Option<serde_json::Value>,
    language_version: Option<serde_json::Value>,
}

fn version_problem(format: Option<&serde_json::Value>, language: Option<&serde_json::Value>) -> Option<String> {
    match format {
        None => return Some("the file has no `format_version`: it is not a Flow plan".to_owned()),
        Some(v) if v.as_u64() != Some(u64::from(FORMAT_VERSION)) => {
            return Some(format!(
                "the plan has format version {v}, but this runtime reads format version {FORMAT_VERSION}; rebuild it with a matching `flowc build`"
            ));
        }
        Some(_) => {}
    }
    match language {
        Some(serde_json::Value::String(v)) if v == LANGUAGE_VERSION => None,
        Some(v) => Some(format!(
            "the plan is compiled from Flow language version {v}, but this runtime runs version \"{LANGUAGE_VERSION}\""
        )),
        None => Some("the file has no `language_version`: it is not a Flow plan".to_owned()),
    }
}

/// Reads a plan file. This checks only that the bytes are a plan of a format this crate
/// reads; [`crate::verify`] checks that it means something.
pub fn parse(bytes: &[u8]) -> Result<Plan, VerifyError> {
    if bytes.is_empty() || bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(VerifyError::Unreadable("the file is empty".to_owned()));
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Err(VerifyError::Unreadable("it is not UTF-8 text".to_owned()));
    };
    // Only expressions nest without bound in a plan, and their reader bounds their depth
    // (`wire::MAX_DEPTH`), so serde_json's own limit, which real plans exceed, is lifted.
    let mut deserializer = serde_json::Deserializer::from_str(text);
    deserializer.disable_recursion_limit();
    // The fast path reads without tracking where it is; only a refusal reads again to say
    // where the problem is.
    let result = Plan::deserialize(&mut deserializer).and_then(|plan| deserializer.end().map(|()| plan));
    match result {
        Ok(plan) => {
            let format = serde_json::Value::from(plan.format_version);
            let language = serde_json::Value::from(plan.language_version.as_str());
            match version_problem(Some(&format), Some(&language)) {
                Some(problem) => Err(VerifyError::Version(problem)),
                None => Ok(plan),
            }
        }
        Err(_) => {
            // Another format fails to read as this one; say so rather than which field.
            let mut light = serde_json::Deserializer::from_str(text);
            if let Ok(versions) = Versions::deserialize(&mut light)
                && let Some(problem) =
                    version_problem(versions.format_version.as_ref(), versions.language_version.as_ref())
            {
                return Err(VerifyError::Version(problem));
            }
            let mut tracked = serde_json::Deserializer::from_str(text);
            tracked.disable_recursion_limit();
            match serde_path_to_error::deserialize::<_, Plan>(&mut tracked) {
                Err(error) => Err(VerifyError::Unreadable(describe(&error))),
                Ok(_) => match tracked.end() {
                    Err(error) => Err(VerifyError::Unreadable(format!(
                        "there is text after the plan (line {}, column {})",
                        error.line(),
                        error.column()
                    ))),
                    Ok(()) => Err(VerifyError::Unreadable("it cannot be read".to_owned())),
                },
            }
        }
    }
}

fn describe(error: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let inner = error.inner();
    let full = inner.to_string();
    // serde_json ends its messages with the position; say it once, with the path.
    let suffix = format!(" at line {} column {}", inner.line(), inner.column());
    let message = full.strip_suffix(&suffix).unwrap_or(&full);
    let path = error.path().to_string();
    let path = path.trim_end_matches(".?").trim_end_matches('?').trim_end_matches('.');
    let mut place = Vec::new();
    if !path.is_empty() && inner.classify() == serde_json::error::Category::Data {
        place.push(format!("at `{path}`"));
    }
    if inner.line() > 0 {
        place.push(format!("line {}, column {}", inner.line(), inner.column()));
    }
    let place = if place.is_empty() { String::new() } else { format!(" ({})", place.join(", ")) };
    match inner.classify() {
        serde_json::error::Category::Eof => format!("it ends too early{place}; the file may be truncated"),
        serde_json::error::Category::Syntax => format!("it is not valid JSON: {message}{place}"),
        serde_json::error::Category::Data | serde_json::error::Category::Io => format!("{message}{place}"),
    }
}
