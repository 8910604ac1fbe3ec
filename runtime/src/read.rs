//! A case's inputs read straight from its JSON text by their declared types, without a
//! JSON tree in between: what a backtest does for each of its cases.
//!
//! The general reading is [`crate::value::parse_exact`] (a tree of the whole line, every
//! number checked for exactness), then [`crate::value::decode`] of each input against its
//! type. This reading gives the same values or gives up: `None` wherever the text holds
//! anything the general reading might read otherwise or refuse — a number with a fraction
//! or an exponent, a duplicate key, an unknown field or input, a missing field, any key
//! beginning with `$` (a labelled value's `$labels`, or a key `serde_json`'s own reader
//! treats specially when a crate of the program turns on its `raw_value` feature, as the
//! server does), a leaf the general reading refuses, anything not JSON — and the
//! caller then reads it the general way, which words any error. Each leaf (a string,
//! a whole number, a flag, `null`) is decoded by [`crate::value::decode`] itself, so leaves
//! cannot read differently; what this module adds is only the walk over objects and lists.

use flow_ir::PlanBody;
use flow_ir::ty::Ty;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::Value as Json;
use smol_str::SmolStr;
use std::fmt;

use crate::value::{self, Value};

/// The inputs of a case line, `{"inputs": {"name": value, …}}`, read against the declared
/// types of `body`'s inputs, in the order the line gives them; `None` where the general
/// reading must read it (see the module's documentation).
pub fn case_inputs(body: &PlanBody, text: &str) -> Option<Vec<(String, Value)>> {
    let mut reader = serde_json::Deserializer::from_str(text);
    let inputs = Case { inputs: Inputs { body } }.deserialize(&mut reader).ok()?;
    reader.end().ok()?;
    Some(inputs)
}

/// Why this reading gave up: the general reading decides.
pub(crate) fn general<E: de::Error>() -> E {
    E::custom("read the general way")
}

/// An object's key, given to `F` as it is read (unescaped, without being copied).
pub(crate) struct Key<F>(pub(crate) F);

impl<'de, K, F: FnOnce(&str) -> K> DeserializeSeed<'de> for Key<F> {
    type Value = K;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<K, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de, K, F: FnOnce(&str) -> K> Visitor<'de> for Key<F> {
    type Value = K;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E>(self, key: &str) -> Result<K, E> {
        Ok((self.0)(key))
    }
}

/// What a key of a case line, or of a value skipped, is to its reader.
#[derive(PartialEq, Eq)]
enum CaseKey {
    /// `inputs`.
    Inputs,
    /// A key beginning with `$`: the general reading's.
    Dollar,
    Other,
}

impl CaseKey {
    fn of(key: &str) -> CaseKey {
        match key {
            "inputs" => CaseKey::Inputs,
            _ if key.starts_with('$') => CaseKey::Dollar,
            _ => CaseKey::Other,
        }
    }
}

/// The whole line: its `inputs`, once, read by the seed `inputs` (here into values, or
/// into the native frame by `crate::straight`); any other key skipped (its numbers still
/// checked).
pub(crate) struct Case<S> {
    pub(crate) inputs: S,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Case<S> {
    type Value = S::Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, S: DeserializeSeed<'de>> Visitor<'de> for Case<S> {
    type Value = S::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{\"inputs\": {…}}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<S::Value, A::Error> {
        let (mut seed, mut inputs) = (Some(self.inputs), None);
        while let Some(key) = map.next_key_seed(Key(CaseKey::of))? {
            match key {
                // Given once.
                CaseKey::Inputs => match seed.take() {
                    Some(seed) => inputs = Some(map.next_value_seed(seed)?),
                    None => return Err(general()),
                },
                CaseKey::Other => map.next_value_seed(Skip)?,
                CaseKey::Dollar => return Err(general()),
            }
        }
        inputs.ok_or_else(general)
    }
}

/// The `inputs` object: each key a declared input, once.
struct Inputs<'p> {
    body: &'p PlanBody,
}

impl<'de> DeserializeSeed<'de> for Inputs<'_> {
    type Value = Vec<(String, Value)>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Inputs<'_> {
    type Value = Vec<(String, Value)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of inputs")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut inputs: Vec<(String, Value)> = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            let declared = self
                .body
                .nodes
                .iter()
                .find(|n| n.name == name.as_str() && matches!(n.kind, flow_ir::plan::NodeKind::Input { .. }));
            let Some(node) = declared else { return Err(general()) };
            if inputs.iter().any(|(given, _)| *given == name) {
                return Err(general());
            }
            let value = map.next_value_seed(Typed { body: self.body, ty: &node.ty })?;
            inputs.push((name, value));
        }
        Ok(inputs)
    }
}

/// A value skipped, as long as every number in it is a whole number (which the general
/// reading's exactness check passes) and no key begins with `$`.
struct Skip;

impl<'de> DeserializeSeed<'de> for Skip {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(general())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Skip)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key_seed(Key(CaseKey::of))? {
            if key == CaseKey::Dollar {
                return Err(general());
            }
            map.next_value_seed(Skip)?;
        }
        Ok(())
    }
}

/// A value of type `ty`.
struct Typed<'p> {
    body: &'p PlanBody,
    ty: &'p Ty,
}

impl Typed<'_> {
    /// A leaf, decoded by the general reading itself.
    fn leaf<E: de::Error>(&self, json: Json) -> Result<Value, E> {
        value::decode(self.body, &json, self.ty, "").map_err(|_| general())
    }
}

impl<'de> DeserializeSeed<'de> for Typed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        match self.ty {
            // Whatever is written (its numbers checked).
            Ty::Nothing => Skip.deserialize(deserializer).map(|()| Value::Nothing),
            _ => deserializer.deserialize_any(self),
        }
    }
}

impl<'de> Visitor<'de> for Typed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a value of type `{}`", self.ty)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.leaf(Json::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.leaf(Json::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.leaf(Json::from(v))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Value, E> {
        Err(general())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        match value::decode_text(self.body, v, self.ty) {
            Some(read) => read.map_err(|_| general()),
            None => self.leaf(Json::String(v.to_owned())),
        }
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.leaf(Json::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let item = match self.ty {
            Ty::List(item) => item,
            Ty::Optional(inner) => match &**inner {
                Ty::List(item) => item,
                _ => return Err(general()),
            },
            _ => return Err(general()),
        };
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(v) = seq.next_element_seed(Typed { body: self.body, ty: item })? {
            items.push(v);
        }
        Ok(Value::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let Some(record) = (match self.ty.unwrap_optional() {
            Ty::Named(name) => self.body.record(name),
            _ => None,
        }) else {
            return Err(general());
        };
        let mut written: smallvec::SmallVec<[Option<Value>; 16]> = smallvec::smallvec![None; record.fields.len()];
        let position = |key: &str| record.fields.iter().position(|f| f.name.len() == key.len() && f.name == key);
        while let Some(found) = map.next_key_seed(Key(position))? {
            // A labelled value, an unknown field or a field given twice: the general reading's.
            let Some(i) = found else {
                return Err(general());
            };
            if written[i].is_some() {
                return Err(general());
            }
            written[i] = Some(map.next_value_seed(Typed { body: self.body, ty: &record.fields[i].ty })?);
        }
        let mut fields: Vec<(SmolStr, Value)> = Vec::with_capacity(record.fields.len());
        for (field, value) in record.fields.iter().zip(written) {
            let value = match value {
                Some(value) => value,
                None if field.ty.is_optional() => Value::Absent,
                None => return Err(general()),
            };
            fields.push((field.name.clone(), value));
        }
        Ok(Value::Record(fields))
    }
}
