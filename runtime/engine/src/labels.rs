//! Labels on recorded values, and redaction.
//!
//! In evidence, a value that carries labels is written `{"$labels": ["pii"], "$value": …}`,
//! and a record's field declared with labels is wrapped the same way inside the record. A
//! viewer without `view L` for one of the labels sees `{"$redacted": "blake3:…",
//! "$labels": […]}` instead, where the digest is the one the hash chain commits to
//! ([`crate::evidence::digest`]), so a redacted bundle still verifies.

use flow_ir::PlanBody;
use flow_ir::ty::Ty;
use serde_json::{Map, Value as Json};
use smol_str::SmolStr;

use crate::value::Value;

/// `value` of type `ty` as evidence JSON, with `labels` on the whole value and each labelled
/// field of a record wrapped.
pub fn encode(body: &PlanBody, value: &Value, ty: &Ty, labels: &[SmolStr]) -> Json {
    let json = encode_fields(body, value, ty);
    wrap(json, labels)
}

fn wrap(json: Json, labels: &[SmolStr]) -> Json {
    if labels.is_empty() {
        return json;
    }
    let mut object = Map::new();
    object.insert("$labels".into(), Json::Array(labels.iter().map(|l| Json::String(l.to_string())).collect()));
    object.insert("$value".into(), json);
    Json::Object(object)
}

fn encode_fields(body: &PlanBody, value: &Value, ty: &Ty) -> Json {
    match (value, ty.unwrap_optional()) {
        (Value::Record(fields), Ty::Named(name)) => {
            let Some(record) = body.record(name) else { return value.to_json() };
            let mut object = Map::new();
            for (field_name, field_value) in fields {
                if *field_value == Value::Absent {
                    continue;
                }
                let json = match record.field(field_name) {
                    Some(field) => wrap(encode_fields(body, field_value, &field.ty), &field.labels),
                    None => field_value.to_json(),
                };
                object.insert(field_name.to_string(), json);
            }
            Json::Object(object)
        }
        (Value::List(items), Ty::List(item)) => {
            Json::Array(items.iter().map(|v| encode_fields(body, v, item)).collect())
        }
        _ => value.to_json(),
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
                    let digest = crate::evidence::digest(json);
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
