//! Straight decisions: a run kept in memory ([`crate::Runtime::evaluate`]) of a plan whose
//! steps are gates that read only its inputs and params, approval matrices and emits, decided
//! on native code without the run's state.
//!
//! Such a run does what the executor would do in an order known in advance: every gate
//! first, in the plan's order, the first blocking one that holds ending the run; then each
//! approval matrix, in the plan's order, choosing its row. Straight, the inputs' JSON is
//! read into the native frame by their declared types (no values are built but the leaves),
//! the gates are decided by their one native call, the matrices by theirs, the emits by
//! their code, and the view is made from what held: `blocked` by a gate, `pending` on
//! approvals, or `completed`.
//!
//! A backtest's case line, `{"inputs": {…}}`, is read the same way from its text, key by
//! key as the JSON reader meets them ([`Straight::read_line`]): no JSON tree, and no
//! values but the leaves. A backtest that keeps no runs counts only the status
//! ([`crate::Runtime::decide_case_straight`]), so no view is made at all.
//!
//! A plan whose gates, matrices or emits read an input's text, principal, list or whole
//! record (values the frame does not hold; the code generator records such reads) is not
//! decided straight at all. Otherwise it gives up — and the run is made the general way,
//! from the start — wherever it would need anything else: an input it would not read
//! exactly as [`crate::value::decode`] does (a key it does not expect, a leaf that does not
//! decode, a principal the deployment does not know, an input missing or given twice),
//! params given, a native call that fails or cannot run, a row that is not there, or an
//! emit that fails.
//! So what it answers is the general path's answer, and everything else is the general
//! path's; `tests/src/runtime.rs` holds the two to the same view on random plans and
//! inputs.

use crate::analysis::Analysis;
use crate::event::Status;
use crate::interp::Scope;
use crate::jit::{Frame, Native};
use crate::read::{Case, Key, general};
use crate::state::{self, ApprovalWait, Phase, WaitingStep};
use crate::value::{self, Value};
use flow_ir::PlanBody;
use flow_ir::expr::{Expr, ExprKind, Timestamp};
use flow_ir::plan::{GateLevel, NodeKind};
use flow_ir::ty::Ty;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::Value as Json;
use smol_str::SmolStr;
use std::fmt;

/// How a plan's runs kept in memory are decided straight, made once per plan.
#[derive(Debug)]
pub(crate) struct Straight {
    /// The declared inputs, in the plan's order of nodes.
    inputs: Vec<Input>,
    /// Each param's node and its position in [`Analysis::param_defaults`].
    params: Vec<(usize, usize)>,
    /// The blocking gates, in the plan's order, each with its bit in [`Native::gates`].
    blocks: Vec<(usize, u8)>,
    /// The approvals and emits, in the plan's order.
    steps: Vec<Step>,
    /// Whether the plan has gates (all of them decided by one native call).
    gated: bool,
    nodes: usize,
}

#[derive(Debug)]
struct Input {
    node: usize,
    name: Name,
    reader: Reader,
}

/// A name looked for among several (an input's, a field's) by a key read from a line: its
/// length and first eight bytes compared before its text.
#[derive(Debug)]
struct Name {
    text: SmolStr,
    len: usize,
    head: u64,
}

impl Name {
    fn new(text: SmolStr) -> Name {
        Name { len: text.len(), head: head(&text), text }
    }
}

/// The first eight bytes of `key` (fewer, then zeros), as one word.
fn head(key: &str) -> u64 {
    let mut bytes = [0; 8];
    let n = key.len().min(8);
    bytes[..n].copy_from_slice(&key.as_bytes()[..n]);
    u64::from_le_bytes(bytes)
}

/// How a value of a declared type is read into the frame.
#[derive(Debug)]
enum Reader {
    /// A record: its fields' readers, in the record's order.
    Record(Vec<(Name, Reader)>),
    /// Anything else, decoded as [`value::decode`] decodes it and written to its places;
    /// whether a value of its type may name principals.
    Leaf(Ty, Vec<u32>, bool),
}

#[derive(Debug)]
struct Step {
    node: usize,
    /// The nodes it waits for.
    waits_for: Vec<usize>,
    /// An approval: what each row of its matrix does. An emit: none.
    rows: Option<Vec<RowEnd>>,
}

/// What an approval's row does in a run that has just started.
#[derive(Debug)]
enum RowEnd {
    /// It asks for no approver: the approval is given, with this requirement.
    Given(String),
    /// It waits for approvers of these roles.
    Waits(Vec<String>),
}

/// A run's inputs as they are given: JSON, values already read against their declared
/// types ([`crate::read::case_inputs`]), or the text of a case line, `{"inputs": {…}}`.
#[derive(Clone, Copy)]
pub(crate) enum Inputs<'a> {
    Json(&'a [(String, Json)]),
    Read(&'a [(String, Value)]),
    Line(&'a str),
}

/// The value given for `name`, when it is given exactly once.
fn once<'g, T>(given: &'g [(String, T)], name: &str) -> Option<&'g T> {
    let mut named = given.iter().filter(|(n, _)| n == name);
    match (named.next(), named.next()) {
        (Some((_, value)), None) => Some(value),
        _ => None,
    }
}

/// How a run decided straight ends.
pub(crate) enum Ending<'s> {
    /// Held by this blocking gate.
    Blocked(usize),
    /// Every gate passed: the approvals that wait for a decision, each with the roles it
    /// waits for (in the plan's order of nodes; none when the run completed), and the
    /// outputs emitted.
    Passed(Vec<(usize, &'s [String])>, Vec<(SmolStr, Value)>),
}

impl Ending<'_> {
    /// The run's status.
    pub(crate) fn status(&self) -> Status {
        match self {
            Ending::Blocked(_) => Status::Blocked,
            Ending::Passed(waiting, _) if waiting.is_empty() => Status::Completed,
            Ending::Passed(..) => Status::Pending,
        }
    }

    /// The steps that wait, as the executor's view names them.
    pub(crate) fn waiting(&self, body: &PlanBody) -> Vec<WaitingStep> {
        let Ending::Passed(waiting, _) = self else { return Vec::new() };
        waiting.iter().map(|(node, roles)| (body.nodes[*node].name.clone(), "approval", roles.to_vec())).collect()
    }
}

impl Analysis {
    /// How this plan's runs kept in memory are decided straight on native code, made on the
    /// first call, with the native code; `None` when they go step by step.
    pub(crate) fn straight(&self) -> Option<(&Straight, &Native)> {
        let native = self.native().ok()?;
        let made = self.straight.get_or_init(|| Box::new(Straight::of(self, native)));
        Some((made.downcast_ref::<Option<Straight>>()?.as_ref()?, native))
    }

    /// Whether this plan's runs kept in memory are decided straight when the runtime runs
    /// it natively: its steps are gates that read only inputs and params, approval matrices
    /// and emits, none of which reads an input's text or principal (see
    /// `Runtime::evaluate`).
    pub fn decides_straight(&self) -> bool {
        self.straight().is_some()
    }
}

impl Straight {
    /// How runs of `analysis` are decided straight with `native`; `None` for a plan whose
    /// runs need the executor.
    pub(crate) fn of(analysis: &Analysis, native: &Native) -> Option<Straight> {
        let body = analysis.body();
        if !analysis.timed().is_empty() {
            return None;
        }
        let given = |i: usize| matches!(body.nodes[i].kind, NodeKind::Input { .. } | NodeKind::Param { .. });
        // Native code that reads inputs' or params' values through the scope (texts,
        // principals, lists, whole records) would fail here every time: the frame holds
        // only their places.
        let approval =
            |n: &u32| matches!(body.nodes.get(*n as usize).map(|n| &n.kind), Some(NodeKind::Approval { .. }));
        if !native.gates_values().is_empty() {
            return None;
        }
        let waits_for = |i: usize| -> Vec<usize> {
            analysis.plan.predecessors(flow_ir::NodeId(i as u32)).iter().map(|(p, _)| p.index()).collect()
        };
        let mut inputs = Vec::new();
        let mut params = Vec::new();
        for (i, node) in body.nodes.iter().enumerate() {
            match &node.kind {
                NodeKind::Input { .. } => {
                    let mut reader = Reader::of(body, &node.ty, 0)?;
                    for (place, path) in native.places(i) {
                        reader.place(path, place)?;
                    }
                    inputs.push(Input { node: i, name: Name::new(node.name.clone()), reader });
                }
                NodeKind::Param { .. } => {
                    params.push((i, analysis.param_defaults().iter().position(|(name, _)| *name == node.name)?));
                }
                NodeKind::Gate { level: GateLevel::Soft, .. } => return None,
                NodeKind::Gate { .. } => {
                    native.gate_bit(i)?;
                    if !waits_for(i).into_iter().all(given) {
                        return None;
                    }
                }
                NodeKind::Approval { distinct_from, .. } => {
                    let gate = |p: usize| matches!(body.nodes[p].kind, NodeKind::Gate { .. });
                    if native.matrix_values(i as u32).is_none_or(|values| !values.is_empty())
                        || !waits_for(i).into_iter().all(|p| given(p) || gate(p))
                        || !distinct_from.iter().all(|e| plain_path(body, e))
                    {
                        return None;
                    }
                }
                // An emit whose code reads only the approvals' records through the scope.
                NodeKind::Emit { value } if native.expr_values(value).is_some_and(|v| v.iter().all(approval)) => {}
                _ => return None,
            }
        }
        let mut blocks = Vec::new();
        let mut steps = Vec::new();
        for &id in analysis.plan.order() {
            let i = id.index();
            match &body.nodes[i].kind {
                NodeKind::Gate { level: GateLevel::Block, .. } => blocks.push((i, native.gate_bit(i)?)),
                NodeKind::Approval { rows, .. } => {
                    let roles = |row: &flow_ir::plan::Row| {
                        if !state::has_slots(&row.requirement) {
                            return RowEnd::Given(state::requirement_text(&row.requirement));
                        }
                        // What a fresh wait owes, as the view of the general path finds it.
                        let wait = ApprovalWait {
                            row: 0,
                            requirement: String::new(),
                            terms: row.requirement.clone(),
                            excluded: Vec::new(),
                            approvals: Vec::new(),
                        };
                        RowEnd::Waits(
                            state::outstanding(body, &wait).into_iter().map(|(r, _)| String::from(r)).collect(),
                        )
                    };
                    steps.push(Step { node: i, waits_for: waits_for(i), rows: Some(rows.iter().map(roles).collect()) });
                }
                NodeKind::Emit { .. } => steps.push(Step { node: i, waits_for: waits_for(i), rows: None }),
                _ => {}
            }
        }
        let gated = body.nodes.iter().any(|n| matches!(n.kind, NodeKind::Gate { .. }));
        Some(Straight { inputs, params, blocks, steps, gated, nodes: body.nodes.len() })
    }

    /// How the run of `given`, started at `clock` by `starter`, ends; `None` where the
    /// general path must make it. `known` says whether a principal is one of the
    /// deployment's.
    pub(crate) fn decide(
        &self,
        analysis: &Analysis,
        native: &Native,
        given: Inputs<'_>,
        (clock, starter): (Timestamp, &str),
        known: &dyn Fn(&str) -> bool,
    ) -> Option<Ending<'_>> {
        let body = analysis.body();
        let mut frame = native.blank_frame(self.nodes, clock);
        let read = match given {
            Inputs::Line(line) => self.read_line(Reading { body, native, known }, line, &mut frame),
            // Every input given once, and nothing else: as many as declared, each found once.
            Inputs::Json(given) => {
                given.len() == self.inputs.len()
                    && self.inputs.iter().all(|input| {
                        once(given, &input.name.text).is_some_and(|json| {
                            let read = input.reader.read(body, native, json, &mut frame, known);
                            // Each of its places written: the node's value is there.
                            native.set_valid(&mut frame, input.node, read);
                            read
                        })
                    })
            }
            // Written as the executor writes a value, its places marked so.
            Inputs::Read(given) => {
                given.len() == self.inputs.len()
                    && self.inputs.iter().all(|input| {
                        once(given, &input.name.text).is_some_and(|value| {
                            value::unknown_principal(value, &"", known).is_none()
                                && native.store_node(&mut frame, input.node, value)
                        })
                    })
            }
        };
        if !read {
            return None;
        }
        for &(node, default) in &self.params {
            if !native.store_node(&mut frame, node, analysis.param_defaults()[default].1.as_ref().ok()?) {
                return None;
            }
        }
        let holds = match self.gated {
            true => native.gates(&Bare { analysis, clock, starter, given: &[] }, &frame)?.ok()?,
            false => 0,
        };
        if let Some(&(gate, _)) = self.blocks.iter().find(|(_, bit)| holds >> bit & 1 == 1) {
            return Some(Ending::Blocked(gate));
        }
        // Every gate passed: the steps run in the plan's order as what they wait for is done.
        let mut phases: smallvec::SmallVec<[Phase; 32]> = smallvec::smallvec![Phase::Done; self.nodes];
        for step in &self.steps {
            phases[step.node] = Phase::NotRun;
        }
        let mut waiting: Vec<(usize, &[String])> = Vec::new();
        // The approvals given (their records, which emits read), and the outputs.
        let mut given: Vec<(usize, Value)> = Vec::new();
        let mut outputs = Vec::new();
        while let Some(step) = self
            .steps
            .iter()
            .find(|s| phases[s.node] == Phase::NotRun && s.waits_for.iter().all(|p| phases[*p] == Phase::Done))
        {
            let scope = Bare { analysis, clock, starter, given: &given };
            let node = &body.nodes[step.node];
            let Some(rows) = &step.rows else {
                // An emit: natively, or by the interpreter where its code reads what the
                // frame does not hold; a value it cannot have (an input's text, say) is the
                // executor's to find.
                let NodeKind::Emit { value } = &node.kind else { return None };
                let value = match native.eval(value, &scope, &frame) {
                    Some(value) => value.ok()?,
                    None => crate::interp::eval(body, &scope, value).ok()?,
                };
                outputs.push((node.name.clone(), value));
                phases[step.node] = Phase::Done;
                continue;
            };
            let row = native.matrix(step.node as u32, &scope, &frame)?.ok()??;
            match rows.get(row)? {
                RowEnd::Waits(roles) => {
                    phases[step.node] = Phase::Waiting;
                    waiting.push((step.node, roles));
                }
                RowEnd::Given(requirement) => {
                    let record = state::approval_record(true, &[], requirement.clone());
                    if !native.store_node(&mut frame, step.node, &record) {
                        return None;
                    }
                    given.push((step.node, record));
                    phases[step.node] = Phase::Done;
                }
            }
        }
        if waiting.is_empty() && self.steps.iter().any(|s| phases[s.node] != Phase::Done) {
            // Nothing waits, and yet not everything ran: the executor's to say.
            return None;
        }
        waiting.sort_by_key(|(node, _)| *node);
        Some(Ending::Passed(waiting, outputs))
    }
}

/// Whether `expr` reads a value no run can lack: an input or param, or a field of a record
/// reached that way (an approval's `distinct from`, which a straight decision does not
/// evaluate, and which cannot fail).
fn plain_path(body: &PlanBody, expr: &Expr) -> bool {
    match &expr.kind {
        ExprKind::Node(name) => {
            body.node(name).is_some_and(|n| matches!(n.kind, NodeKind::Input { .. } | NodeKind::Param { .. }))
        }
        ExprKind::Field { base, .. } => {
            matches!(&base.ty, Ty::Named(name) if body.record(name).is_some()) && plain_path(body, base)
        }
        _ => false,
    }
}

impl Reader {
    /// The reader of values of `ty`; records are walked field by field, anything else is a
    /// leaf.
    fn of(body: &PlanBody, ty: &Ty, depth: usize) -> Option<Reader> {
        match ty {
            Ty::Named(name) if let Some(record) = body.record(name) => {
                // A plan whose records nest deeper (or recursively), or have more fields than
                // a reading keeps count of, goes step by step.
                if depth > 8 || record.fields.len() > 64 {
                    return None;
                }
                let fields = record
                    .fields
                    .iter()
                    .map(|f| Some((Name::new(f.name.clone()), Reader::of(body, &f.ty, depth + 1)?)))
                    .collect::<Option<_>>()?;
                Some(Reader::Record(fields))
            }
            other => {
                let scalar = matches!(
                    other,
                    Ty::Bool | Ty::Int | Ty::Decimal | Ty::Money(_) | Ty::Text | Ty::Timestamp | Ty::Duration
                ) || matches!(other, Ty::Named(name) if body.enumeration(name).is_some());
                Some(Reader::Leaf(other.clone(), Vec::new(), !scalar))
            }
        }
    }

    /// Adds frame place `place`, at `path` in the value; `None` when the path does not end
    /// at a leaf.
    fn place(&mut self, path: &[SmolStr], place: u32) -> Option<()> {
        match (self, path) {
            (Reader::Leaf(_, places, _), []) => {
                places.push(place);
                Some(())
            }
            (Reader::Record(fields), [field, rest @ ..]) => {
                fields.iter_mut().find(|(name, _)| name.text == *field)?.1.place(rest, place)
            }
            _ => None,
        }
    }

    /// Reads `json` into the frame; `false` where [`value::decode`] might read it otherwise
    /// (or refuse it), or a principal it names is not `known`.
    fn read(
        &self,
        body: &PlanBody,
        native: &Native,
        json: &Json,
        frame: &mut Frame,
        known: &dyn Fn(&str) -> bool,
    ) -> bool {
        match self {
            Reader::Record(fields) => {
                // Every key a field's (a key of a labelled value, `$labels`, or any other is
                // no field's name), and every field left out an optional one: absent, which
                // its places in a fresh frame already say.
                let Some(object) = json.as_object().filter(|o| o.len() <= fields.len()) else {
                    return false;
                };
                let mut given = 0u64;
                let read = object.iter().all(|(key, json)| {
                    let found = named(fields, key);
                    found.is_some_and(|i| {
                        given |= 1 << i;
                        fields[i].1.read(body, native, json, frame, known)
                    })
                });
                read && fields.iter().enumerate().all(|(i, (_, reader))| {
                    given >> i & 1 == 1 || matches!(reader, Reader::Leaf(Ty::Optional(_), _, _))
                })
            }
            // A text is any string (and has no places: texts are handles).
            Reader::Leaf(Ty::Text, places, _) if places.is_empty() => json.is_string(),
            Reader::Leaf(ty, places, principals) => value::decode(body, json, ty, "")
                .is_ok_and(|value| Reading { body, native, known }.store(&value, places, *principals, frame)),
        }
    }
}

/// What reading a run's inputs into its frame needs besides the frame.
#[derive(Clone, Copy)]
struct Reading<'r> {
    body: &'r PlanBody,
    native: &'r Native,
    known: &'r dyn Fn(&str) -> bool,
}

impl Reading<'_> {
    /// Writes a leaf's `value` to its `places`; `false` where a principal it names (when it
    /// may name some) is not known, or it does not fit there.
    fn store(self, value: &Value, places: &[u32], principals: bool, frame: &mut Frame) -> bool {
        (!principals || value::unknown_principal(value, &"", self.known).is_none())
            && places.iter().all(|place| self.native.store_at(frame, *place, value))
    }
}

impl Straight {
    /// Reads the case line `line`, `{"inputs": {…}}`, into `frame`, its text read once,
    /// key by key, without a JSON tree or values in between; `false` wherever the general
    /// reading ([`crate::value::parse_exact`], then the `inputs` object) might read it
    /// otherwise or refuse it (the cases [`crate::read::case_inputs`] gives up on), or
    /// [`Reader::read`] would not read those inputs into the frame. Records are walked key
    /// by key; a leaf written flat is decoded as [`value::decode`] decodes its JSON (a
    /// string by [`value::decode_text`], which `decode` calls), and any other (a list) is
    /// read as JSON whole and decoded by `decode`.
    fn read_line(&self, reading: Reading<'_>, line: &str, frame: &mut Frame) -> bool {
        if self.inputs.len() > 64 {
            return false;
        }
        let mut text = serde_json::Deserializer::from_str(line);
        let given = Given { inputs: &self.inputs, reading, frame: &mut *frame };
        let read = Case { inputs: given }.deserialize(&mut text).is_ok() && text.end().is_ok();
        if read {
            for input in &self.inputs {
                reading.native.set_valid(frame, input.node, true);
            }
        }
        read
    }
}

/// A case line's `inputs`: each key a declared input's, once, and every input given.
struct Given<'r, 'f> {
    inputs: &'r [Input],
    reading: Reading<'r>,
    frame: &'f mut Frame,
}

impl<'de> DeserializeSeed<'de> for Given<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Given<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of inputs")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Given { inputs, reading, frame } = self;
        let mut given = 0u64;
        while let Some(found) = map.next_key_seed(Key(|key: &str| named(inputs, key)))? {
            // An input not declared, or given twice: the general reading's.
            let Some(i) = found.filter(|i| given >> i & 1 == 0) else { return Err(general()) };
            given |= 1 << i;
            map.next_value_seed(Read { reader: &inputs[i].reader, reading, frame: &mut *frame })?;
        }
        if given.count_ones() as usize != inputs.len() {
            return Err(general());
        }
        Ok(())
    }
}

/// Something read by name: an input, or a record's field.
trait Named {
    fn name(&self) -> &Name;
}

impl Named for Input {
    fn name(&self) -> &Name {
        &self.name
    }
}

impl Named for (Name, Reader) {
    fn name(&self) -> &Name {
        &self.0
    }
}

/// The position of the one of `all` named `key`.
fn named<T: Named>(all: &[T], key: &str) -> Option<usize> {
    let (len, head) = (key.len(), head(key));
    // Equal lengths and first eight bytes: equal names, unless they are longer.
    all.iter().map(T::name).position(|name| name.len == len && name.head == head && (len <= 8 || name.text == key))
}

/// A value read into the frame by its reader.
struct Read<'r, 'f> {
    reader: &'r Reader,
    reading: Reading<'r>,
    frame: &'f mut Frame,
}

impl<'de> DeserializeSeed<'de> for Read<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        match self.reader {
            Reader::Record(_) => deserializer.deserialize_map(self),
            Reader::Leaf(ty, ..) if written_flat(self.reading.body, ty) => deserializer.deserialize_any(self),
            // A list, say: its JSON read whole, then decoded as `value::decode` decodes it.
            Reader::Leaf(..) => {
                let json = Tree.deserialize(deserializer)?;
                self.leaf(&json)
            }
        }
    }
}

/// Whether a value of type `ty` is written as a string, a number, a flag or `null`.
fn written_flat(body: &PlanBody, ty: &Ty) -> bool {
    match ty.unwrap_optional() {
        Ty::Bool | Ty::Int | Ty::Decimal | Ty::Money(_) | Ty::Text | Ty::Timestamp | Ty::Duration | Ty::Principal => {
            true
        }
        Ty::Named(name) => body.enumeration(name).is_some(),
        _ => false,
    }
}

/// JSON read whole into the tree the general reading makes of it, where it holds only whole
/// numbers (which the general reading's exactness check passes) and no key beginning with `$` (which its
/// reader may read specially) or given twice; otherwise the general reading's.
struct Tree;

impl<'de> DeserializeSeed<'de> for Tree {
    type Value = Json;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Tree {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::from(v))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Json, E> {
        Err(general())
    }

    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_owned()))
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Tree)? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if key.starts_with('$') || object.contains_key(&key) {
                return Err(general());
            }
            let value = map.next_value_seed(Tree)?;
            object.insert(key, value);
        }
        Ok(Json::Object(object))
    }
}

impl Read<'_, '_> {
    /// A leaf read as [`value::decode`] reads `json`.
    fn leaf<E: de::Error>(self, json: &Json) -> Result<(), E> {
        let Reader::Leaf(ty, places, principals) = self.reader else { return Err(general()) };
        let value = value::decode(self.reading.body, json, ty, "").map_err(|_| general())?;
        self.stored(&value, places, *principals)
    }

    fn stored<E: de::Error>(self, value: &Value, places: &[u32], principals: bool) -> Result<(), E> {
        match self.reading.store(value, places, principals, self.frame) {
            true => Ok(()),
            false => Err(general()),
        }
    }
}

impl<'de> Visitor<'de> for Read<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value of its input's type")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.leaf(&Json::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.leaf(&Json::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.leaf(&Json::from(v))
    }

    /// A number with a fraction or an exponent: the general reading checks it for
    /// exactness.
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(general())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.leaf(&Json::Null)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        let Reader::Leaf(ty, places, principals) = self.reader else { return Err(general()) };
        match ty {
            // A text is any string (and has no places: texts are handles).
            Ty::Text if places.is_empty() => Ok(()),
            _ => match value::decode_text(self.reading.body, v, ty) {
                Some(Ok(value)) => self.stored(&value, places, *principals),
                // Not a value of its type; or a type no string is read as, which `decode`
                // refuses a string of.
                Some(Err(_)) | None => Err(general()),
            },
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // A record: every key a field's (a labelled value's `$labels` is no field's name),
        // each once, and every field left out an optional one: absent, which its places
        // in a fresh frame already say.
        let Reader::Record(fields) = self.reader else { return Err(general()) };
        let Read { reading, frame, .. } = self;
        let mut given = 0u64;
        while let Some(found) = map.next_key_seed(Key(|key: &str| named(fields, key)))? {
            let Some(i) = found.filter(|i| given >> i & 1 == 0) else { return Err(general()) };
            given |= 1 << i;
            map.next_value_seed(Read { reader: &fields[i].1, reading, frame: &mut *frame })?;
        }
        let complete = fields
            .iter()
            .enumerate()
            .all(|(i, (_, reader))| given >> i & 1 == 1 || matches!(reader, Reader::Leaf(Ty::Optional(_), _, _)));
        if !complete {
            return Err(general());
        }
        Ok(())
    }
}

/// What native code and the interpreter read of a run decided straight besides its frame:
/// its clock, who started it and the approvals given; no other node has a value here (reading
/// one fails, and the executor decides the run).
struct Bare<'a> {
    analysis: &'a Analysis,
    clock: Timestamp,
    starter: &'a str,
    given: &'a [(usize, Value)],
}

impl Scope for Bare<'_> {
    fn node(&self, name: &str) -> Option<&Value> {
        self.node_at(self.analysis.id(name)?.0)
    }

    fn node_at(&self, index: u32) -> Option<&Value> {
        self.given.iter().find(|(node, _)| *node == index as usize).map(|(_, value)| value)
    }

    fn degraded(&self, _name: &str) -> bool {
        false
    }

    fn clock(&self) -> Timestamp {
        self.clock
    }

    fn starter(&self) -> Option<&str> {
        Some(self.starter)
    }

    fn resolved(&self, expr: &Expr) -> Option<u32> {
        self.analysis.resolved(expr)
    }
}
