//! Run-time values, and how they are written as JSON: in inputs, in model and handler
//! messages, and in evidence (`docs/cli.md`, "Input values").
//!
//! An optional is not boxed: an absent optional is [`Value::Absent`], a present one is its
//! value. Review and approval results are records with their fields (`outcome`, `reason`,
//! `reviewer`, `basis`; `approved`, `approvers`, `requirement`).

use std::fmt;

use flow_ir::PlanBody;
use flow_ir::expr::{Money, Timestamp};
use flow_ir::time;
use flow_ir::ty::Ty;
use rust_decimal::Decimal;
use serde_json::Value as Json;
use smol_str::SmolStr;

/// A value of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// What a gate, an emit or an action without result gives.
    Nothing,
    /// An optional without value.
    Absent,
    Bool(bool),
    Int(i64),
    Decimal(Decimal),
    Money(Money),
    Text(String),
    Timestamp(Timestamp),
    /// Seconds.
    Duration(i64),
    /// A principal's id.
    Principal(SmolStr),
    /// A variant of an enum, an outcome or a reason.
    Variant(SmolStr),
    List(Vec<Value>),
    /// Fields by name.
    Record(Vec<(SmolStr, Value)>),
}

impl Value {
    /// The field of a record.
    pub fn field(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Record(fields) => fields.binary_search_by(|(n, _)| n.as_str().cmp(name)).ok().map(|i| &fields[i].1),
            _ => None,
        }
    }

    pub fn field_mut(&mut self, name: &str) -> Option<&mut Value> {
        match self {
            Value::Record(fields) => {
                fields.binary_search_by(|(n, _)| n.as_str().cmp(name)).ok().map(move |i| &mut fields[i].1)
            }
            _ => None,
        }
    }

    /// A record from fields in any order.
    pub fn record(mut fields: Vec<(SmolStr, Value)>) -> Value {
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        Value::Record(fields)
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The value as JSON, as inputs are written; labels are not marked (see
    /// [`crate::labels`] for the evidence form).
    pub fn to_json(&self) -> Json {
        match self {
            Value::Nothing | Value::Absent => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Int(i) => Json::from(*i),
            Value::Decimal(d) => Json::String(d.normalize().to_string()),
            Value::Money(m) => Json::String(m.to_string()),
            Value::Text(t) => Json::String(t.clone()),
            Value::Timestamp(t) => Json::String(t.to_string()),
            Value::Duration(d) => Json::String(time::format_duration(*d)),
            Value::Principal(p) | Value::Variant(p) => Json::String(p.to_string()),
            Value::List(items) => Json::Array(items.iter().map(Value::to_json).collect()),
            Value::Record(fields) => Json::Object(
                fields.iter().filter(|(_, v)| *v != Value::Absent).map(|(n, v)| (n.to_string(), v.to_json())).collect(),
            ),
        }
    }
}

impl fmt::Display for Value {
    /// As a person reads it, and as text interpolation writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nothing => f.write_str("nothing"),
            Value::Absent => f.write_str("none"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Decimal(d) => write!(f, "{}", d.normalize()),
            Value::Money(m) => write!(f, "{m}"),
            Value::Text(t) => f.write_str(t),
            Value::Timestamp(t) => write!(f, "{t}"),
            Value::Duration(d) => f.write_str(&time::format_duration(*d)),
            Value::Principal(p) | Value::Variant(p) => f.write_str(p),
            Value::List(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Value::Record(_) => write!(f, "{}", self.to_json()),
        }
    }
}

/// A JSON value that does not fit its declared type, with the JSON path of the offending
/// part (`$.request.amount`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

fn describe(json: &Json) -> &'static str {
    match json {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// Reads JSON text as [`serde_json`] does, but refuses a number that binary floating point
/// would change: `12345678901234567890.123456789` as a JSON number would become
/// `12345678901234567000`. Such a number must be written as a string (`"12345…"`), which
/// decimals and amounts read exactly.
///
/// A key spelling `$serde_json::private::RawValue` (however escaped) is refused too: as an
/// object's first key, the JSON reader of a program built with `serde_json`'s `raw_value`
/// feature (as `flowc` is) reads the string beside it as JSON text, whose numbers this
/// check would skip (and `$serde_json::private::Number` alike).
pub fn parse_exact(text: &str) -> Result<Json, String> {
    let json: Json = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                // Skip the string, its escapes included.
                let start = i;
                let mut escaped = false;
                i += 1;
                loop {
                    match memchr::memchr2(b'"', b'\\', bytes.get(i..).unwrap_or_default()) {
                        Some(at) if bytes[i + at] == b'\\' => {
                            escaped = true;
                            i += at + 2;
                        }
                        Some(at) => {
                            i += at;
                            break;
                        }
                        None => {
                            i = bytes.len();
                            break;
                        }
                    }
                }
                i += 1;
                let token = text.get(start..i).unwrap_or_default();
                // A key: the next byte that is not white space is a colon.
                let is_key =
                    || bytes.get(i..).unwrap_or_default().iter().find(|b| !b.is_ascii_whitespace()) == Some(&b':');
                if (escaped || token.contains('$'))
                    && is_key()
                    && let Ok(key) = serde_json::from_str::<String>(token)
                    && SPECIAL_KEYS.contains(&key.as_str())
                {
                    return Err(format!(
                        "`{key}` is a key the JSON reader reads specially: no value of Flow's is written with it"
                    ));
                }
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < bytes.len() && matches!(bytes[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') {
                    i += 1;
                }
                let token = &text[start..i];
                if !number_is_exact(token) {
                    return Err(format!(
                        "the number {token} cannot be read exactly as a JSON number (binary floating point would \
                         change it): write it as a string, \"{token}\""
                    ));
                }
            }
            _ => i += 1,
        }
    }
    Ok(json)
}

/// The keys by which `serde_json` marks JSON text given as a string (with its `raw_value`
/// feature) and a number given as a string (with `arbitrary_precision`, which no build of
/// Flow turns on, but a program embedding the runtime might).
const SPECIAL_KEYS: [&str; 2] = ["$serde_json::private::RawValue", "$serde_json::private::Number"];

/// Whether a JSON number token reads as itself: a whole number that fits 64 bits, or a
/// number whose value binary floating point keeps (compared digit for digit, whatever the
/// number of digits).
fn number_is_exact(token: &str) -> bool {
    if token.parse::<i64>().is_ok() || token.parse::<u64>().is_ok() {
        return true;
    }
    // The number as the JSON reader reads it, written shortest: the value decoding sees.
    let Ok(read) = serde_json::from_str::<serde_json::Number>(token) else { return false };
    canonical(token).is_some() && canonical(token) == canonical(&read.to_string())
}

/// A number written in decimal (with an optional fraction and exponent) as its sign, its
/// significant digits and the power of ten of the first: equal for equal numbers.
fn canonical(text: &str) -> Option<(bool, String, i64)> {
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i64>().ok()?),
        None => (text, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: String = whole.chars().chain(fraction.chars()).collect();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let leading = digits.len() - digits.trim_start_matches('0').len();
    let significant = digits.trim_start_matches('0').trim_end_matches('0');
    if significant.is_empty() {
        return Some((false, String::new(), 0));
    }
    let power = whole.len() as i64 - 1 - leading as i64 + exponent;
    Some((negative, significant.to_owned(), power))
}

/// The significant digits of a number as JSON writes it (`1.2345e19`: 5).
fn significant_digits(text: &str) -> usize {
    let mantissa = text.split(['e', 'E']).next().unwrap_or(text);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    digits.trim_start_matches('0').trim_end_matches('0').len().max(1)
}

/// A number in scientific notation, read only when the decimal holds it exactly.
fn exact_scientific(text: &str) -> Result<Decimal, ()> {
    let value = Decimal::from_scientific(text).map_err(|_| ())?;
    // What the decimal holds, written out, must be the number written.
    let (mantissa, exponent) = text.split_once(['e', 'E']).ok_or(())?;
    let exponent: i64 = exponent.parse().map_err(|_| ())?;
    let mantissa = Decimal::from_str_exact(mantissa).map_err(|_| ())?;
    let ten = Decimal::TEN;
    let mut back = value;
    for _ in 0..exponent.unsigned_abs() {
        back = if exponent > 0 { back.checked_div(ten).ok_or(())? } else { back.checked_mul(ten).ok_or(())? };
    }
    if back == mantissa { Ok(value) } else { Err(()) }
}

/// A principal's id as Flow compares it: without surrounding spaces, in lower case, so
/// that `"BEA "` and `bea` are one principal.
pub fn principal_id(text: &str) -> String {
    text.trim().to_lowercase()
}

/// Whether `text` is already a principal's id as Flow compares it: [`principal_id`] of it
/// is itself (found without making it, for the ASCII ids principals have).
pub fn is_principal_id(text: &str) -> bool {
    if text.is_ascii() {
        return !text.bytes().any(|b| b.is_ascii_uppercase()) && text.trim().len() == text.len();
    }
    principal_id(text) == text
}

/// Every principal a value names, with its JSON path under `path`.
pub fn principals(value: &Value, path: &str, out: &mut Vec<(String, String)>) {
    let mut path = path.to_owned();
    principals_at(value, &mut path, &mut |path, id| {
        out.push((path.to_owned(), id.to_owned()));
        false
    });
}

/// The first principal a value names that is not `known`, with its JSON path under
/// `path` (written only for it).
pub fn unknown_principal(
    value: &Value,
    path: &dyn fmt::Display,
    known: impl Fn(&str) -> bool,
) -> Option<(String, String)> {
    // Most values name only known principals: looked for first without writing paths.
    fn names_unknown(value: &Value, known: &dyn Fn(&str) -> bool) -> bool {
        match value {
            Value::Principal(id) => !known(id),
            Value::List(items) => items.iter().any(|v| names_unknown(v, known)),
            Value::Record(fields) => fields.iter().any(|(_, v)| names_unknown(v, known)),
            _ => false,
        }
    }
    if !names_unknown(value, &known) {
        return None;
    }
    let mut found = None;
    let mut at = String::new();
    principals_at(value, &mut at, &mut |at, id| {
        if known(id) {
            return false;
        }
        found = Some((format!("{path}{at}"), id.to_owned()));
        true
    });
    found
}

/// The principals of `value`, each given to `found` with its path (`path` extended in
/// place for each part that may hold one) until it returns `true`; whether it did.
fn principals_at(value: &Value, path: &mut String, found: &mut dyn FnMut(&str, &str) -> bool) -> bool {
    let may_hold = |v: &Value| matches!(v, Value::Principal(_) | Value::List(_) | Value::Record(_));
    match value {
        Value::Principal(id) => found(path, id),
        Value::List(items) => {
            for (i, v) in items.iter().enumerate().filter(|(_, v)| may_hold(v)) {
                let length = path.len();
                path.push('[');
                path.push_str(&i.to_string());
                path.push(']');
                let stop = principals_at(v, path, found);
                path.truncate(length);
                if stop {
                    return true;
                }
            }
            false
        }
        Value::Record(fields) => {
            for (field, v) in fields.iter().filter(|(_, v)| may_hold(v)) {
                let length = path.len();
                path.push('.');
                path.push_str(field);
                let stop = principals_at(v, path, found);
                path.truncate(length);
                if stop {
                    return true;
                }
            }
            false
        }
        _ => false,
    }
}

/// Reads a JSON value as a value of type `ty`; `path` names it in errors (`$.request`).
/// Evidence wrappers of labelled values (`{"$labels": …, "$value": …}`) are read through.
pub fn decode(plan: &PlanBody, json: &Json, ty: &Ty, path: &str) -> Result<Value, DecodeError> {
    decode_at(plan, json, ty).map_err(|mut e| {
        e.path.insert_str(0, path);
        e
    })
}

/// Prefixes the path of an error of a part (`.amount`, `[2]`).
fn within(part: impl fmt::Display) -> impl FnOnce(DecodeError) -> DecodeError {
    move |mut e| {
        e.path.insert_str(0, &part.to_string());
        e
    }
}

/// [`decode`], with the path of an error relative to `json` (built only on error).
fn decode_at(plan: &PlanBody, json: &Json, ty: &Ty) -> Result<Value, DecodeError> {
    let error = |message: String| DecodeError { path: String::new(), message };
    // The keys compared in turn rather than hashed: an object is most often a record of a
    // few fields, which carries no labels.
    if let Some(inner) = json.as_object().filter(|o| o.keys().any(|k| k == "$labels")).and_then(|o| o.get("$value")) {
        return decode_at(plan, inner, ty);
    }
    // A string, of a type written as one: read the one way, wherever its text comes from.
    if let Json::String(written) = json
        && let Some(value) = decode_text(plan, written, ty)
    {
        return value;
    }
    let text = |what: &str| error(format!("expected {what}, found {}", describe(json)));
    Ok(match ty {
        Ty::Optional(inner) => match json {
            Json::Null => Value::Absent,
            other => decode_at(plan, other, inner)?,
        },
        Ty::Nothing => Value::Nothing,
        Ty::Bool => Value::Bool(
            json.as_bool().ok_or_else(|| error(format!("expected true or false, found {}", describe(json))))?,
        ),
        Ty::Int => Value::Int(json.as_i64().ok_or_else(|| not_whole(json))?),
        Ty::Decimal => match json {
            // A number with more significant digits than binary floating point keeps
            // may have lost some already: it must be written as a string.
            Json::Number(n) if n.is_f64() && significant_digits(&n.to_string()) > 15 => {
                return Err(error(format!(
                    "the number {n} may not be what was written (binary floating point keeps 15 digits): \
                     write it as a string"
                )));
            }
            Json::Number(n) => decimal(n.to_string())?,
            other => return Err(error(format!("expected a decimal number, found {}", describe(other)))),
        },
        Ty::Money(_) => return Err(text("an amount such as \"1200.50 USD\"")),
        Ty::Text => return Err(text("a text")),
        Ty::Timestamp => return Err(text("an RFC 3339 instant such as \"2026-04-11T13:35:00Z\"")),
        Ty::Duration => return Err(text("a duration such as \"72h\"")),
        Ty::Principal => return Err(text("a principal's id")),
        Ty::List(item) => {
            let items = json.as_array().ok_or_else(|| error(format!("expected a list, found {}", describe(json))))?;
            let mut out = Vec::with_capacity(items.len());
            for (i, item_json) in items.iter().enumerate() {
                out.push(decode_at(plan, item_json, item).map_err(within(format_args!("[{i}]")))?);
            }
            Value::List(out)
        }
        Ty::Named(name) if let Some(record) = plan.record(name) => {
            let object = json
                .as_object()
                .ok_or_else(|| error(format!("expected a `{name}` record, found {}", describe(json))))?;
            // Each key's field found among the record's, without hashing (most records have
            // a few fields: by length, then text; a long record by binary search, its fields
            // being sorted by name); the fields are then read in the record's order.
            let position = |key: &str| {
                if record.fields.len() <= 16 {
                    record.fields.iter().position(|f| f.name.len() == key.len() && f.name == key)
                } else {
                    record.fields.binary_search_by(|f| f.name.as_str().cmp(key)).ok()
                }
            };
            let mut written: smallvec::SmallVec<[Option<&Json>; 16]> = smallvec::smallvec![None; record.fields.len()];
            let mut unknown = None;
            for (key, json) in object {
                match position(key) {
                    Some(i) => written[i] = Some(json),
                    None => {
                        unknown.get_or_insert(key);
                    }
                }
            }
            let mut fields = Vec::with_capacity(record.fields.len());
            for (field, written) in record.fields.iter().zip(written) {
                let value = match written {
                    Some(json) => decode_at(plan, json, &field.ty).map_err(within(format_args!(".{}", field.name)))?,
                    None if field.ty.is_optional() => Value::Absent,
                    None => {
                        return Err(DecodeError {
                            path: format!(".{}", field.name),
                            message: format!("missing field `{}` of type `{}`", field.name, field.ty),
                        });
                    }
                };
                fields.push((field.name.clone(), value));
            }
            // Every key named a field.
            if let Some(unknown) = unknown {
                let fields: Vec<&str> = record.fields.iter().map(|f| f.name.as_str()).collect();
                return Err(error(format!("`{name}` has no field `{unknown}`; its fields are {}", fields.join(", "))));
            }
            Value::Record(fields)
        }
        Ty::Named(_) | Ty::Outcome(_) | Ty::Reason(_) => return Err(text("a variant name")),
        Ty::Review(step) => {
            let mut fields = Vec::new();
            for name in ["basis", "outcome", "reason", "reviewer"] {
                let field_ty = plan.field_type(ty, name).ok_or_else(|| error(format!("no review `{step}`")))?;
                let value = match json.get(name) {
                    Some(j) => decode_at(plan, j, &field_ty).map_err(within(format_args!(".{name}")))?,
                    None => Value::Absent,
                };
                fields.push((SmolStr::new_static(name), value));
            }
            Value::Record(fields)
        }
        Ty::Approval(_) => {
            let mut fields = Vec::new();
            for name in ["approved", "approvers", "requirement"] {
                let field_ty = plan.field_type(ty, name).ok_or_else(|| error("no approval".to_owned()))?;
                let j = json.get(name).unwrap_or(&Json::Null);
                fields.push((
                    SmolStr::new_static(name),
                    decode_at(plan, j, &field_ty).map_err(within(format_args!(".{name}")))?,
                ));
            }
            Value::Record(fields)
        }
    })
}

/// [`decode`] of a JSON string `written` as a value of type `ty`, for the types written as
/// strings (`None` for the others, whose reading of any JSON [`decode`] words); the one
/// reading of such strings, which [`crate::straight`] calls on a string's text as read.
pub(crate) fn decode_text(plan: &PlanBody, written: &str, ty: &Ty) -> Option<Result<Value, DecodeError>> {
    let error = |message: String| Err(DecodeError { path: String::new(), message });
    Some(match ty {
        Ty::Optional(inner) => return decode_text(plan, written, inner),
        Ty::Int => match written.replace('_', "").parse() {
            Ok(n) => Ok(Value::Int(n)),
            Err(_) => Err(not_whole(&Json::String(written.to_owned()))),
        },
        Ty::Decimal => decimal(written.replace('_', "")),
        Ty::Money(currency) => match Money::parse(written) {
            None => error(format!("`{written}` is not an amount such as \"1200.50 USD\"")),
            Some(money) if currency.as_ref().is_some_and(|expected| money.currency != *expected) => {
                error(format!("expected an amount in {}, found `{written}`", currency.as_ref()?))
            }
            Some(money) => Ok(Value::Money(money)),
        },
        Ty::Text => Ok(Value::Text(written.to_owned())),
        Ty::Timestamp => match time::parse_timestamp(written) {
            Some((seconds, nanos)) => Ok(Value::Timestamp(Timestamp { seconds, nanos })),
            None => error(format!("`{written}` is not an RFC 3339 instant such as \"2026-04-11T13:35:00Z\"")),
        },
        Ty::Duration => match time::parse_duration(written) {
            Some(duration) => Ok(Value::Duration(duration)),
            None => error(format!("`{written}` is not a duration such as \"72h\"")),
        },
        Ty::Principal => {
            // An id already normal is taken as written (short ids are held inline, without
            // allocating).
            let id = if is_principal_id(written) { SmolStr::new(written) } else { principal_id(written).into() };
            match id.is_empty() {
                true => error("a principal's id is not empty".to_owned()),
                false => Ok(Value::Principal(id)),
            }
        }
        Ty::Named(name) if plan.record(name).is_some() => return None,
        Ty::Named(_) | Ty::Outcome(_) | Ty::Reason(_) => {
            // A declared enum's variants are read in place; a review's are put together.
            let declared = match ty {
                Ty::Named(name) => plan.enumeration(name).map(|e| e.variants.as_slice()),
                _ => None,
            };
            if declared.is_some_and(|variants| variants.iter().any(|v| v == written)) {
                return Some(Ok(Value::Variant(written.into())));
            }
            match plan.variants(ty) {
                None => error(format!("the plan declares no type `{ty}`")),
                Some(variants) if !variants.iter().any(|v| v == written) => {
                    let names: Vec<&str> = variants.iter().map(SmolStr::as_str).collect();
                    error(format!("`{written}` is not a variant of `{ty}`; expected one of {}", names.join(", ")))
                }
                Some(_) => Ok(Value::Variant(written.into())),
            }
        }
        _ => return None,
    })
}

/// The decimal `written` (its digits' separators taken out), exactly.
fn decimal(written: String) -> Result<Value, DecodeError> {
    Decimal::from_str_exact(&written)
        // Zeros at the end of a fraction are no digits of the number.
        .or_else(|e| match written.contains('.') {
            true => Decimal::from_str_exact(written.trim_end_matches('0').trim_end_matches('.')),
            false => Err(e),
        })
        .or_else(|_| exact_scientific(&written))
        .map(Value::Decimal)
        .map_err(|_| DecodeError {
            path: String::new(),
            message: format!(
                "`{written}` is not a decimal number Flow holds exactly (at most 28 digits after the point, 96 bits in all)"
            ),
        })
}

/// Why `json` is not read as a whole number.
fn not_whole(json: &Json) -> DecodeError {
    DecodeError { path: String::new(), message: format!("expected a whole number, found {}", short(json)) }
}

/// A JSON value in a message, shortened.
fn short(json: &Json) -> String {
    let text = json.to_string();
    if text.chars().count() > 40 { format!("{}…", text.chars().take(40).collect::<String>()) } else { text }
}
