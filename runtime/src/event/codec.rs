//! The event codec: events as evidence JSON and back, each value written and read with the
//! type and labels the plan gives the place it sits in.

use crate::analysis::Analysis;
use crate::event::{Event, Slot};
use crate::labels;
use crate::value::{self, Value};
use flow_ir::plan::NodeKind;
use flow_ir::ty::Ty;
use serde_json::Value as Json;
use smol_str::SmolStr;

/// The type of a value in an event, and its labels when `labelled` (decoding needs only
/// the type).
pub(crate) fn slot_type(analysis: &Analysis, slot: Slot<'_>, labelled: bool) -> Option<(Ty, Vec<SmolStr>)> {
    let body = analysis.body();
    let labels = |of: &dyn Fn() -> Vec<SmolStr>| if labelled { of() } else { Vec::new() };
    let place = |text: &str| {
        let mut parts = text.split('.');
        let root = parts.next()?;
        let path: Vec<SmolStr> = parts.map(SmolStr::new).collect();
        Some((crate::analysis::place_type(body, root, &path)?, labels(&|| analysis.path_labels(root, &path))))
    };
    match slot {
        Slot::Input(name) | Slot::Param(name) => Some((body.node(name)?.ty.clone(), Vec::new())),
        Slot::Node(name) => Some((body.node(name)?.ty.clone(), labels(&|| analysis.node_labels(name).to_vec()))),
        Slot::Output(name) => Some((body.output(name)?.ty.clone(), labels(&|| analysis.node_labels(name).to_vec()))),
        // What the analysis knows of the step's operands; a place it does not list (in
        // evidence from elsewhere) is typed from the plan.
        Slot::Operand(node, text) => match analysis.operands(node).iter().find(|o| o.place == text) {
            Some(operand) => Some((operand.ty.clone()?, labels(&|| operand.labels.clone()))),
            None if text.starts_with("stale(") || text.starts_with("degraded(") => Some((Ty::Bool, Vec::new())),
            None if text.starts_with("age(") => Some((Ty::Duration, Vec::new())),
            None => place(text),
        },
        Slot::Edit(text) => place(text),
        Slot::Failure(node) => Some((Ty::Text, labels(&|| analysis.failure_labels(node).to_vec()))),
        Slot::Query(node) => {
            let NodeKind::Retrieve { .. } = &body.node(node)?.kind else { return None };
            Some((Ty::Text, labels(&|| analysis.arg_labels(node, "query").to_vec())))
        }
        // Identifiers and digests of the documents found (`[[ID, DIGEST], …]`): labelled as
        // the documents are as a whole, and with every label a document's fields may carry
        // (a digest of a field of few possible values gives it away).
        Slot::Found(node) => {
            let found = body.node(node)?;
            let NodeKind::Retrieve { .. } = &found.kind else { return None };
            let pairs = Ty::List(Box::new(Ty::List(Box::new(Ty::Text))));
            Some((pairs, labels(&|| analysis.failure_labels(node).to_vec())))
        }
        Slot::ModelArg(node, arg) => {
            let NodeKind::Infer { model, args, .. } = &body.node(node)?.kind else { return None };
            let param = body.model(model)?.inputs.iter().find(|p| p.name == arg)?;
            args.iter().find(|a| a.name == arg)?;
            Some((param.ty.clone(), labels(&|| analysis.arg_labels(node, arg).to_vec())))
        }
        Slot::ActionArg(node, arg) => {
            let NodeKind::Action { system, action, args, .. } = &body.node(node)?.kind else { return None };
            let target = body.system(system)?.actions.iter().find(|a| a.name == *action)?;
            let param = target.params.iter().find(|p| p.name == arg)?;
            args.iter().find(|a| a.name == arg)?;
            Some((param.ty.clone(), labels(&|| analysis.arg_labels(node, arg).to_vec())))
        }
    }
}

/// An event as evidence JSON, each labelled value salted afresh.
pub fn encode_event(analysis: &Analysis, event: Event<Value>) -> Json {
    serde_json::to_value(encode_values(analysis, event, true)).unwrap_or(Json::Null)
}

/// [`encode_event`] as the store keeps it: JSON text, written without building the JSON
/// value of the whole event (the same text as that value's); or why it cannot be written.
pub(crate) fn encode_event_stored(analysis: &Analysis, event: Event<Value>) -> serde_json::Result<String> {
    serde_json::to_string(&encode_written(analysis, event, true))
}

/// An event as evidence JSON without salts: what two encodings of one event compare.
pub fn encode_event_unsalted(analysis: &Analysis, event: Event<Value>) -> Json {
    serde_json::to_value(encode_values(analysis, event, false)).unwrap_or(Json::Null)
}

/// An event's evidence JSON as the store keeps it (the text of [`encode_event`]) but
/// unsalted, into `out`: equal to the stored text when the event has no labelled value, and
/// to the text of [`encode_event_unsalted`] always.
pub fn encode_event_text(analysis: &Analysis, event: &Event<Value>, out: &mut Vec<u8>) {
    out.clear();
    if serde_json::to_writer(&mut *out, &encode_written(analysis, event.clone(), false)).is_err() {
        out.clear();
    }
}

/// [`encode_values`], each value written straight to text when the event is.
fn encode_written(analysis: &Analysis, event: Event<Value>, salted: bool) -> Event<labels::Encoded<'_>> {
    let body = analysis.body();
    encode_slots(analysis, event, salted, |typed, value| match typed {
        Some((ty, labels)) => labels::Encoded { body, value, ty: Some(ty), labels, salted },
        None => labels::Encoded { body, value, ty: None, labels: Vec::new(), salted },
    })
}

/// The event with each value as the JSON value [`labels::encode`] builds: what readers that
/// change the values (redaction, comparison) take, and the reference the text
/// [`encode_written`] writes is held to (`tests/src/runtime.rs`), so it is kept apart.
pub(crate) fn encode_values(analysis: &Analysis, event: Event<Value>, salted: bool) -> Event<Json> {
    encode_slots(analysis, event, salted, |typed, value| match typed {
        Some((ty, labels)) => labels::encode(analysis.body(), &value, &ty, &labels, salted),
        None => value.to_json(),
    })
}

/// The event with each value encoded by `encode`, given the type and labels of its slot;
/// a misfit result the event keeps is salted with the values when `salted`.
fn encode_slots<T>(
    analysis: &Analysis,
    event: Event<Value>,
    salted: bool,
    mut encode: impl FnMut(Option<(Ty, Vec<SmolStr>)>, Value) -> T,
) -> Event<T> {
    let mut encode = |slot: Slot<'_>, value: Value| -> Result<T, std::convert::Infallible> {
        Ok(encode(slot_type(analysis, slot, true), value))
    };
    let mut event = match event.map_values(&mut encode) {
        Ok(event) => event,
        Err(never) => match never {},
    };
    if salted && let Event::Failed { returned: Some(returned), .. } = &mut event {
        labels::salt(returned);
    }
    event
}

/// An event read back from evidence JSON.
pub fn decode_event(analysis: &Analysis, json: Json) -> Result<Event<Value>, String> {
    decode_values(analysis, serde_json::from_value(json).map_err(|e| e.to_string())?)
}

/// An event read back from evidence JSON text, as stored.
pub(crate) fn decode_event_text(analysis: &Analysis, text: &str) -> Result<Event<Value>, String> {
    let event = if text.starts_with(r#"{"event":"started""#) {
        // The first event, and the largest, read as its struct: serde would buffer the
        // whole of an internally tagged enum's content before reading it.
        serde_json::from_str(text).map(|started| Event::Started(Box::new(started)))
    } else {
        serde_json::from_str(text)
    };
    decode_values(analysis, event.map_err(|e| e.to_string())?)
}

pub(crate) fn decode_values(analysis: &Analysis, event: Event<Json>) -> Result<Event<Value>, String> {
    if let Some(node) = event.node()
        && analysis.plan.node_id(node).is_none()
    {
        return Err(format!("the plan has no node `{node}`"));
    }
    let mut event = event.map_values(&mut |slot, json: Json| {
        let (ty, _) = slot_type(analysis, slot, false).ok_or_else(|| format!("no type for {slot:?}"))?;
        value::decode(analysis.body(), &json, &ty, "$").map_err(|e| e.to_string())
    })?;
    // What a system returned is kept as JSON: as read, without the salt it is stored with.
    if let Event::Failed { returned: Some(returned), .. } = &mut event {
        labels::unsalt(returned);
    }
    Ok(event)
}
