//! Labels on recorded values, and redaction.
//!
//! In evidence, a value that carries labels is written `{"$labels": ["pii"], "$salt": …,
//! "$value": …}`, and a record's field declared with labels is wrapped the same way inside
//! the record. A viewer without `view L` for one of the labels sees `{"$redacted":
//! "blake3:…", "$labels": […]}` instead, where the digest is the one the hash chain commits
//! to ([`crate::digest::digest`]), so a redacted bundle still verifies. The salt, 16
//! random bytes of each labelled value, is hidden with it: without it, the digest of a
//! value of few possibilities (a tier, a yes or no, an amount) could be found by trying
//! them all.

use flow_ir::PlanBody;
use flow_ir::ty::Ty;
use serde_json::{Map, Value as Json};
use smol_str::SmolStr;

use crate::value::Value;

/// `value` of type `ty` as evidence JSON, with `labels` on the whole value and each labelled
/// field of a record wrapped; each wrapper salted when `salted` (evidence as stored), or
/// left for [`redact`] to salt (a value only shown).
pub fn encode(body: &PlanBody, value: &Value, ty: &Ty, labels: &[SmolStr], salted: bool) -> Json {
    let json = encode_fields(body, value, ty, salted);
    wrap(json, labels, salted)
}

fn wrap(json: Json, labels: &[SmolStr], salted: bool) -> Json {
    if labels.is_empty() {
        return json;
    }
    let mut object = Map::new();
    object.insert("$labels".into(), Json::Array(labels.iter().map(|l| Json::String(l.to_string())).collect()));
    if salted {
        object.insert("$salt".into(), Json::String(fresh_salt()));
    }
    object.insert("$value".into(), json);
    Json::Object(object)
}

/// A new salt: 16 bytes, in hex, of BLAKE3 keyed with 32 bytes the process drew once from
/// the operating system's random source, over a counter.
pub fn fresh_salt() -> String {
    static KEY: std::sync::LazyLock<[u8; 32]> = std::sync::LazyLock::new(|| {
        let mut key = [0u8; 32];
        if getrandom::getrandom(&mut key).is_err() {
            // No random source (it does not happen on the systems Flow supports): the time,
            // the process and where its stack lies, which no one outside can read back.
            let mut hasher = blake3::Hasher::new();
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            hasher.update(&now.as_nanos().to_le_bytes());
            hasher.update(&std::process::id().to_le_bytes());
            hasher.update(&(&key as *const _ as usize).to_le_bytes());
            key = *hasher.finalize().as_bytes();
        }
        key
    });
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    crate::digest::hex(&blake3::keyed_hash(&KEY, &n.to_le_bytes()).as_bytes()[..16])
}

/// Salts every labelled wrapper in `json` that has no salt yet.
pub(crate) fn salt(json: &mut Json) {
    match json {
        Json::Object(object) => {
            if object.contains_key("$labels") && object.contains_key("$value") && !object.contains_key("$salt") {
                object.insert("$salt".into(), Json::String(fresh_salt()));
            }
            object.values_mut().for_each(salt);
        }
        Json::Array(items) => items.iter_mut().for_each(salt),
        _ => {}
    }
}

/// Takes the salt off every labelled wrapper in `json`: the value as compared.
pub(crate) fn unsalt(json: &mut Json) {
    match json {
        Json::Object(object) => {
            if object.contains_key("$labels") && object.contains_key("$value") {
                // Removed in place: the keys after it keep their order.
                object.shift_remove("$salt");
            }
            object.values_mut().for_each(unsalt);
        }
        Json::Array(items) => items.iter_mut().for_each(unsalt),
        _ => {}
    }
}

fn encode_fields(body: &PlanBody, value: &Value, ty: &Ty, salted: bool) -> Json {
    match (value, ty.unwrap_optional()) {
        (Value::Record(fields), Ty::Named(name)) => {
            let Some(record) = body.record(name) else { return value.to_json() };
            let mut object = Map::new();
            for (field_name, field_value) in fields {
                if *field_value == Value::Absent {
                    continue;
                }
                let json = match record.field(field_name) {
                    Some(field) => wrap(encode_fields(body, field_value, &field.ty, salted), &field.labels, salted),
                    None => field_value.to_json(),
                };
                object.insert(field_name.to_string(), json);
            }
            Json::Object(object)
        }
        (Value::List(items), Ty::List(item)) => {
            Json::Array(items.iter().map(|v| encode_fields(body, v, item, salted)).collect())
        }
        _ => value.to_json(),
    }
}

/// A value of an event as evidence JSON, written straight to text: the text of the JSON
/// value [`encode`] builds (`ty` given) or [`Value::to_json`] (`ty` absent), without building
/// it. Salts, when `salted`, are drawn as it is written.
pub(crate) struct Encoded<'a> {
    pub(crate) body: &'a PlanBody,
    pub(crate) value: Value,
    pub(crate) ty: Option<Ty>,
    pub(crate) labels: Vec<SmolStr>,
    pub(crate) salted: bool,
}

impl serde::Serialize for Encoded<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Encoded { body, value, ty, labels, salted } = self;
        match ty {
            None => Plain(value).serialize(serializer),
            Some(ty) => {
                let fields = Fields { body, value, ty, salted: *salted };
                Wrapped { inner: fields, labels, salted: *salted }.serialize(serializer)
            }
        }
    }
}

/// [`wrap`], written: `inner` alone without labels.
struct Wrapped<'a, T> {
    inner: T,
    labels: &'a [SmolStr],
    salted: bool,
}

impl<T: serde::Serialize> serde::Serialize for Wrapped<'_, T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        if self.labels.is_empty() {
            return self.inner.serialize(serializer);
        }
        let mut map = serializer.serialize_map(Some(if self.salted { 3 } else { 2 }))?;
        map.serialize_entry("$labels", &self.labels.iter().map(SmolStr::as_str).collect::<Vec<_>>())?;
        if self.salted {
            map.serialize_entry("$salt", &fresh_salt())?;
        }
        map.serialize_entry("$value", &self.inner)?;
        map.end()
    }
}

/// [`encode_fields`], written.
struct Fields<'a> {
    body: &'a PlanBody,
    value: &'a Value,
    ty: &'a Ty,
    salted: bool,
}

impl serde::Serialize for Fields<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        let Fields { body, value, ty, salted } = *self;
        match (value, ty.unwrap_optional()) {
            (Value::Record(fields), Ty::Named(name)) => {
                let Some(record) = body.record(name) else { return Plain(value).serialize(serializer) };
                let mut map = serializer.serialize_map(None)?;
                for (field_name, field_value) in fields {
                    if *field_value == Value::Absent {
                        continue;
                    }
                    match record.field(field_name) {
                        Some(field) => {
                            let inner = Fields { body, value: field_value, ty: &field.ty, salted };
                            map.serialize_entry(
                                field_name.as_str(),
                                &Wrapped { inner, labels: &field.labels, salted },
                            )?;
                        }
                        None => map.serialize_entry(field_name.as_str(), &Plain(field_value))?,
                    }
                }
                map.end()
            }
            (Value::List(items), Ty::List(item)) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for value in items {
                    seq.serialize_element(&Fields { body, value, ty: item, salted })?;
                }
                seq.end()
            }
            _ => Plain(value).serialize(serializer),
        }
    }
}

/// [`Value::to_json`], written.
struct Plain<'a>(&'a Value);

impl serde::Serialize for Plain<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self.0 {
            Value::Nothing | Value::Absent => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Int(i) => serializer.serialize_i64(*i),
            Value::Decimal(d) => serializer.collect_str(&d.normalize()),
            Value::Money(m) => serializer.collect_str(m),
            Value::Text(t) => serializer.serialize_str(t),
            Value::Timestamp(t) => serializer.collect_str(t),
            Value::Duration(d) => serializer.serialize_str(&flow_ir::time::format_duration(*d)),
            Value::Principal(p) | Value::Variant(p) => serializer.serialize_str(p),
            Value::List(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&Plain(item))?;
                }
                seq.end()
            }
            Value::Record(fields) => {
                let mut map = serializer.serialize_map(None)?;
                for (name, value) in fields.iter().filter(|(_, v)| *v != Value::Absent) {
                    map.serialize_entry(name.as_str(), &Plain(value))?;
                }
                map.end()
            }
        }
    }
}

/// Replaces every labelled part that `views` does not cover by its redaction marker.
pub fn redact(json: &mut Json, views: &[SmolStr]) {
    match json {
        Json::Object(object) => {
            if let Some(Json::Array(labels)) = object.get("$labels")
                && object.contains_key("$value")
            {
                let hidden = labels.iter().any(|l| !views.iter().any(|v| Some(v.as_str()) == l.as_str()));
                if hidden {
                    let labels = Json::Array(labels.clone());
                    // Evidence is salted as stored; a value only shown is salted here, so
                    // its marker cannot be matched against guesses either.
                    if !object.contains_key("$salt") {
                        object.insert("$salt".into(), Json::String(fresh_salt()));
                    }
                    let digest = crate::digest::digest(json);
                    let mut marker = Map::new();
                    marker.insert("$labels".into(), labels);
                    marker.insert("$redacted".into(), Json::String(digest));
                    *json = Json::Object(marker);
                    return;
                }
            }
            for value in object.values_mut() {
                redact(value, views);
            }
        }
        Json::Array(items) => items.iter_mut().for_each(|item| redact(item, views)),
        _ => {}
    }
}

/// The value inside evidence JSON, without label wrappers; a redacted part stays a marker.
pub fn unwrap(json: &Json) -> Json {
    match json {
        Json::Object(object) if object.contains_key("$labels") && object.contains_key("$value") => {
            unwrap(&object["$value"])
        }
        Json::Object(object) => Json::Object(object.iter().map(|(k, v)| (k.clone(), unwrap(v))).collect()),
        Json::Array(items) => Json::Array(items.iter().map(unwrap).collect()),
        other => other.clone(),
    }
}

/// Evidence JSON as a person reads it: strings without quotes, redacted parts as
/// `[redacted: pii]`.
pub fn display(json: &Json) -> String {
    match json {
        Json::Object(object) if object.contains_key("$redacted") => {
            let labels: Vec<&str> =
                object.get("$labels").and_then(Json::as_array).into_iter().flatten().filter_map(Json::as_str).collect();
            format!("[redacted: {}]", labels.join(", "))
        }
        Json::Object(object) if object.contains_key("$labels") && object.contains_key("$value") => {
            display(&object["$value"])
        }
        Json::Object(object) => {
            let parts: Vec<String> = object.iter().map(|(k, v)| format!("{k}: {}", display(v))).collect();
            format!("{{{}}}", parts.join(", "))
        }
        Json::Array(items) => format!("[{}]", items.iter().map(display).collect::<Vec<_>>().join(", ")),
        Json::String(s) => s.clone(),
        Json::Null => "none".to_owned(),
        other => other.to_string(),
    }
}
