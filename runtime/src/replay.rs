//! Exact replay: a stored run executed again from its evidence against its pinned plan.
//!
//! What came from outside the run is taken from the recording: the inputs, params and clock
//! (`started`), what each model answered (by the digest of the request the step sends: a
//! step that sends another request finds no answer), what each action's handler returned
//! (by idempotency key), and what people decided. Everything else is computed again — every
//! `let`, gate, matrix row, model request, fallback, action request, output and summary —
//! and people's decisions go through the same checks again (grants, roles, separation of
//! duties, quorum). The replayed events must equal the recorded ones; the first that does
//! not is the divergence. A run cut off while an action's handler ran (a crash) is replayed
//! as it was resumed: the action starts again, with the same key.
//!
//! Not compared: how a provider's call went (its latency, attempts, the provider's
//! description, the digest of its raw answer), which describe the call rather than the run.

use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::Value as Json;
use smol_str::SmolStr;

use crate::analysis::{Analysis, Engine};
use crate::decision::{self, DecisionInput, Refusal};
use crate::event::{Decision, Event, Status};
use crate::exec::{self, Interrupted, Journal, Services};
use crate::provider::{ActionHandler, ActionRequest, ModelProvider, ModelReply, ModelRequest, ProviderError};
use crate::retrieval::{Found, RetrievalReply, RetrievalRequest, Retriever};
use crate::state::State;
use crate::value::Value;

/// Where a replay first differs from the recording.
#[derive(Clone, Debug, PartialEq)]
pub struct Divergence {
    /// The position of the recorded event (from 0, the `started` event).
    pub index: usize,
    /// The step whose event differs, when it is a step's.
    pub node: Option<String>,
    /// The recorded event (`null` when the replay produced more than was recorded).
    pub recorded: Json,
    /// The replayed event (`null` when the replay produced nothing in its place).
    pub replayed: Json,
}

/// What replaying a run gave.
#[derive(Clone, Debug, PartialEq)]
pub struct Replay {
    pub run: String,
    /// Recorded events compared (all of them when nothing diverged).
    pub events: usize,
    /// The status the replay reached.
    pub status: Status,
    pub engine: String,
    pub divergence: Option<Divergence>,
}

impl Replay {
    /// The replay as JSON: whether it reproduced the run exactly, and where it diverged.
    pub fn to_json(&self) -> Json {
        let changes: Vec<Json> = self
            .divergence
            .iter()
            .map(|d| serde_json::json!({"node": d.node, "event": d.index, "before": d.recorded, "after": d.replayed}))
            .collect();
        serde_json::json!({
            "run": self.run, "exact": self.divergence.is_none(), "events": self.events,
            "status": self.status.as_str(), "engine": self.engine, "changes": changes
        })
    }
}

/// The answers of the outside world, as recorded.
pub(crate) struct Recorded {
    /// Model answers by the step that asked and the digest of its request
    /// ([`request_key`]): the output, or the provider's error. The step is part of the key
    /// so that a candidate plan's step of another name (which may type the answer with
    /// fewer labels) is not given the answer of the run's step.
    /// A request asked again (after a resume) is answered as it was the next time.
    pub(crate) models: FxHashMap<(SmolStr, String), Vec<Result<Json, String>>>,
    /// Models that were called at all (a model without a provider was never called).
    pub(crate) called: Vec<SmolStr>,
    /// Retrievers' answers by the search ([`search_key`]: the step, its query, the corpus,
    /// its pin and `top`): the answer as the step took it, or the retriever's failure; each
    /// in turn, as for models.
    pub(crate) retrievals: FxHashMap<SearchKey, Vec<Result<RetrievalReply, String>>>,
    /// For each `retrieve` step, its attempts in order: whether each searched (`false`: the
    /// corpus had no retriever then).
    pub(crate) attempts: FxHashMap<SmolStr, Vec<bool>>,
    /// Handler results by idempotency key: the result, or the handler's error, of each call
    /// in turn (a failed action's key is called again after a resume).
    pub(crate) actions: FxHashMap<String, Vec<Result<Json, String>>>,
    /// How many answers of each request and key the replay took so far.
    taken: std::sync::Mutex<FxHashMap<String, usize>>,
    /// When each step's timers were set (the clock came from outside).
    pub(crate) opened: FxHashMap<SmolStr, flow_ir::expr::Timestamp>,
    /// Results reused from an earlier call with the same key.
    reused: FxHashMap<String, Json>,
    /// Action steps that failed because their key had answered another request.
    conflicts: FxHashSet<SmolStr>,
    pub(crate) systems: Vec<SmolStr>,
    /// Recorded `action_started` events after which the run was cut off (a crash while the
    /// handler ran): the next command started the action again, with the same key.
    cut_off: FxHashSet<usize>,
}

impl Recorded {
    pub(crate) fn of<R: Recording + ?Sized>(events: &R) -> Recorded {
        let mut recorded = Recorded {
            models: FxHashMap::default(),
            called: Vec::new(),
            retrievals: FxHashMap::default(),
            attempts: FxHashMap::default(),
            actions: FxHashMap::default(),
            reused: FxHashMap::default(),
            conflicts: FxHashSet::default(),
            systems: Vec::new(),
            cut_off: FxHashSet::default(),
            taken: std::sync::Mutex::default(),
            opened: FxHashMap::default(),
        };
        // The next event of `node` after event `i`: an answer is never an event replay
        // only compares (see [`COMPARED`]).
        let next = |i: usize, node: &SmolStr| {
            (i + 1..events.len()).filter_map(|j| events.read(j)).find(|e| e.node() == Some(node))
        };
        for i in 0..events.len() {
            match events.read(i) {
                Some(Event::TimerSet { node, opened }) => {
                    recorded.opened.entry(node.clone()).or_insert(*opened);
                }
                Some(Event::ModelCalled { node, model, request_digest, error, .. }) => {
                    let answer = match error {
                        Some(error) => Err(text_of(error)),
                        None => match next(i, node) {
                            Some(Event::Inferred { value, degraded: false, .. }) => Ok(value.to_json()),
                            _ => Err("no answer was recorded".to_owned()),
                        },
                    };
                    // An output that did not fit its type was recorded as an error: the step
                    // then used its fallback, which is what the replay must do again.
                    recorded.models.entry((node.clone(), text_of(request_digest))).or_default().push(answer);
                    recorded.called.push(model.clone());
                }
                Some(Event::Retrieved(retrieved)) => {
                    let query = text_of(&retrieved.query);
                    let answer = match (&retrieved.error, &retrieved.value, &retrieved.snapshot) {
                        (Some(error), _, _) => Err(text_of(error)),
                        (None, Some(Value::List(documents)), Some(snapshot)) => Ok(RetrievalReply {
                            snapshot: snapshot.clone(),
                            as_of: retrieved.as_of,
                            documents: retrieved
                                .found()
                                .into_iter()
                                .zip(documents.iter())
                                .map(|((id, _), document)| Found { id, document: document.to_json() })
                                .collect(),
                            attempts: 1,
                        }),
                        _ => Err("no answer was recorded".to_owned()),
                    };
                    let key = (
                        retrieved.node.clone(),
                        query,
                        retrieved.corpus.clone(),
                        retrieved.pinned.clone(),
                        retrieved.top,
                    );
                    recorded.retrievals.entry(key).or_default().push(answer);
                    recorded.attempts.entry(retrieved.node.clone()).or_default().push(true);
                }
                Some(Event::Failed { node, error, .. }) if error.starts_with(exec::NO_RETRIEVER) => {
                    recorded.attempts.entry(node.clone()).or_default().push(false);
                }
                Some(Event::ActionStarted { node, system, action, key, .. }) => {
                    let prefix = format!("`{system}.{action}` failed: ");
                    let result = match next(i, node) {
                        Some(Event::ActionStarted { .. }) => {
                            recorded.cut_off.insert(i);
                            continue;
                        }
                        Some(Event::ActionCompleted { result, .. }) => Ok(result.to_json()),
                        // What the handler returned, which did not fit: it fails again.
                        Some(Event::Failed { returned: Some(returned), .. }) => {
                            Ok(returned.get("$value").cloned().unwrap_or_default())
                        }
                        // The handler's own words are the failure's detail.
                        Some(Event::Failed { detail: Some(detail), .. }) => Err(text_of(detail)),
                        Some(Event::Failed { error, .. }) => {
                            Err(error.strip_prefix(&prefix).unwrap_or(error.as_str()).to_owned())
                        }
                        _ => Err("no result was recorded".to_owned()),
                    };
                    recorded.actions.entry(key.clone()).or_default().push(result);
                    recorded.systems.push(system.clone());
                }
                Some(Event::Failed { node, key_taken: true, .. }) => {
                    recorded.conflicts.insert(node.clone());
                }
                Some(Event::ActionCompleted { key, result, reused: true, .. }) => {
                    recorded.reused.insert(key.clone(), result.to_json());
                }
                _ => {}
            }
        }
        recorded
    }
}

/// What a recorded search is found by: the step, its query, the corpus, its pin and `top`
/// (a candidate plan that searches another corpus, pins another snapshot or takes another
/// number of documents searches anew).
pub(crate) type SearchKey = (SmolStr, String, SmolStr, String, u32);

/// The [`SearchKey`] of a request.
pub(crate) fn search_key(request: &RetrievalRequest<'_>) -> SearchKey {
    (
        SmolStr::new(request.step),
        request.query.to_owned(),
        request.corpus.name.clone(),
        request.corpus.snapshot.clone(),
        request.top,
    )
}

impl Recorded {
    /// Whether the next attempt of `step` (`take`: and counts it) had a retriever: `None`
    /// for a step that never tried.
    pub(crate) fn searches(&self, step: &str, take: bool) -> Option<bool> {
        let attempts = self.attempts.get(step)?;
        let mut taken = self.taken.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = taken.entry(format!("attempt {step}")).or_default();
        let searched = attempts[(*n).min(attempts.len() - 1)];
        if take {
            *n += 1;
        }
        Some(searched)
    }

    /// The next of the answers recorded for one request (`what`): each in turn, the last
    /// again once they are all taken.
    fn next<'a, T>(&self, what: &str, answers: &'a [T]) -> &'a T {
        let mut taken = self.taken.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = taken.entry(what.to_owned()).or_default();
        let answer = &answers[(*n).min(answers.len() - 1)];
        *n += 1;
        answer
    }
}

/// What a recorded model answer is found by: the step and the digest of its request.
pub(crate) fn request_key(request: &ModelRequest<'_>) -> (SmolStr, String) {
    (SmolStr::new(request.step), crate::digest::digest(&request.to_json()))
}

/// The text of a failure's value (a `Text`).
fn text_of(value: &Value) -> String {
    match value {
        Value::Text(text) => text.clone(),
        other => other.to_string(),
    }
}

/// A run's recorded events as replay reads them: every one read already (a slice), or
/// read only where replay needs what it holds and otherwise compared as stored
/// ([`Stored`]).
pub(crate) trait Recording {
    type Error;
    fn len(&self) -> usize;
    /// Event `i`, where replay needs what it holds; `None` for an event replay only
    /// compares (a kind in [`COMPARED`]) or past the end.
    fn read(&self, i: usize) -> Option<&Event<Value>>;
    /// Whether event `i` is `produced`, as [`same`] compares them.
    fn is(&self, analysis: &Analysis, i: usize, produced: &Event<Value>) -> Result<bool, Self::Error>;
    /// Event `i` as [`comparable`] shows it.
    fn comparable(&self, analysis: &Analysis, i: usize) -> Result<Json, Self::Error>;
}

impl Recording for [Event<Value>] {
    type Error = std::convert::Infallible;

    fn len(&self) -> usize {
        <[Event<Value>]>::len(self)
    }

    fn read(&self, i: usize) -> Option<&Event<Value>> {
        self.get(i)
    }

    fn is(&self, _an: &Analysis, i: usize, produced: &Event<Value>) -> Result<bool, Self::Error> {
        Ok(same(&self[i], produced))
    }

    fn comparable(&self, analysis: &Analysis, i: usize) -> Result<Json, Self::Error> {
        Ok(comparable(analysis, &self[i]))
    }
}

/// The kinds of event replay only compares: what the executor computes, holding no answer
/// of a model or handler and no decision. Stored events of these kinds are compared as
/// stored text with the replayed event's encoding, and read only when that differs.
const COMPARED: [&str; 9] = [
    "evaluated",
    "gate",
    "review_skipped",
    "review_opened",
    "approval_required",
    "approval_completed",
    "action_skipped",
    "emitted",
    "settled",
];

/// A run's stored events (JSON text, as the store keeps them), with those replay needs
/// read. Its chain is checked before ([`crate::digest::is_event_hash`]).
pub(crate) struct Stored<'a> {
    bodies: Vec<&'a str>,
    read: Vec<Option<Event<Value>>>,
    /// The replayed event's encoding, reused from one comparison to the next.
    encoded: std::cell::RefCell<Vec<u8>>,
}

impl<'a> Stored<'a> {
    /// Reads the events of `bodies` that replay needs, or says which cannot be read.
    pub(crate) fn new(analysis: &Analysis, bodies: Vec<&'a str>) -> Result<Stored<'a>, String> {
        let read = bodies
            .iter()
            .enumerate()
            .map(|(i, body)| {
                let tag = body.strip_prefix(r#"{"event":""#).and_then(|rest| rest.split_once('"')).map(|(tag, _)| tag);
                if tag.is_some_and(|tag| COMPARED.contains(&tag)) {
                    return Ok(None);
                }
                Stored::decode(analysis, i, body).map(Some)
            })
            .collect::<Result<_, _>>()?;
        Ok(Stored { bodies, read, encoded: Default::default() })
    }

    fn decode(analysis: &Analysis, i: usize, body: &str) -> Result<Event<Value>, String> {
        crate::event::codec::decode_event_text(analysis, body).map_err(|e| format!("event {i} cannot be read: {e}"))
    }
}

impl Recording for Stored<'_> {
    type Error = String;

    fn len(&self) -> usize {
        self.bodies.len()
    }

    fn read(&self, i: usize) -> Option<&Event<Value>> {
        self.read.get(i)?.as_ref()
    }

    fn is(&self, analysis: &Analysis, i: usize, produced: &Event<Value>) -> Result<bool, String> {
        if let Some(recorded) = self.read(i) {
            return Ok(same(recorded, produced));
        }
        let mut encoded = self.encoded.borrow_mut();
        crate::event::codec::encode_event_text(analysis, produced, &mut encoded);
        if *encoded == self.bodies[i].as_bytes() {
            return Ok(true);
        }
        // Written otherwise (by another version, say): compared as read.
        Ok(same(&Stored::decode(analysis, i, self.bodies[i])?, produced))
    }

    fn comparable(&self, analysis: &Analysis, i: usize) -> Result<Json, String> {
        match self.read(i) {
            Some(event) => Ok(comparable(analysis, event)),
            None => Ok(comparable(analysis, &Stored::decode(analysis, i, self.bodies[i])?)),
        }
    }
}

impl ModelProvider for Recorded {
    fn describe(&self) -> String {
        "the recorded answers".to_owned()
    }

    fn infer(&self, request: &ModelRequest<'_>) -> Result<ModelReply, ProviderError> {
        let key = request_key(request);
        match self.models.get(&key).map(|answers| self.next(&format!("model {}/{}", key.0, key.1), answers)) {
            Some(Ok(output)) => Ok(ModelReply { output: output.clone(), attempts: 1 }),
            Some(Err(message)) => Err(ProviderError { message: message.clone(), attempts: 1 }),
            None => Err(ProviderError {
                message: "the replay has no recorded answer for this request".to_owned(),
                attempts: 1,
            }),
        }
    }
}

impl Retriever for Recorded {
    fn describe(&self) -> String {
        "the recorded answers".to_owned()
    }

    fn retrieve(&self, request: &RetrievalRequest<'_>) -> Result<RetrievalReply, ProviderError> {
        let key = search_key(request);
        let what =
            format!("retrieval {}/{}", key.0, crate::digest::digest(&serde_json::json!([key.1, key.2, key.3, key.4])));
        match self.retrievals.get(&key).map(|answers| self.next(&what, answers)) {
            Some(Ok(reply)) => Ok(reply.clone()),
            Some(Err(message)) => Err(ProviderError { message: message.clone(), attempts: 1 }),
            None => Err(ProviderError {
                message: "the replay has no recorded answer for this query".to_owned(),
                attempts: 1,
            }),
        }
    }
}

impl ActionHandler for Recorded {
    fn describe(&self) -> String {
        "the recorded results".to_owned()
    }

    fn call(&self, request: &ActionRequest<'_>) -> Result<Json, String> {
        let key = request.idempotency_key;
        match self.actions.get(key).map(|results| self.next(&format!("action {key}"), results)) {
            Some(result) => result.clone(),
            None => Err("the replay has no recorded result for this key".to_owned()),
        }
    }
}

/// Collects the events the executor produces; acts on nothing. It stops the executor where
/// the recording was cut off, as the crash did.
pub(crate) struct Collect<'r> {
    /// The recorded position of the first event collected, when the events are compared
    /// with the recording one for one.
    pub(crate) start: Option<usize>,
    pub(crate) events: Vec<Event<Value>>,
    pub(crate) recorded: &'r Recorded,
    pub(crate) cut_off: bool,
}

impl Journal for Collect<'_> {
    fn record(&mut self, event: Event<Value>) {
        self.events.push(event);
    }

    fn flush(&mut self, _state: &State) -> Result<(), crate::error::Error> {
        let Some(start) = self.start else { return Ok(()) };
        let last = start + self.events.len();
        if last > 0 && self.recorded.cut_off.contains(&(last - 1)) {
            self.cut_off = true;
            // Not an error anyone sees: the replay stops where the recording did.
            return Err(crate::error::Error::Store("the recorded run was cut off here".to_owned()));
        }
        Ok(())
    }

    fn action_result(
        &mut self,
        step: &str,
        _system: &str,
        key: &str,
    ) -> Result<Option<exec::Earlier>, crate::error::Error> {
        // The recording shows the reuse (its request was checked when it was recorded), or
        // that the key had answered another request.
        if self.recorded.conflicts.contains(step) {
            return Ok(Some(exec::Earlier { result: Json::Null, request: exec::Request::Another }));
        }
        Ok(self
            .recorded
            .reused
            .get(key)
            .map(|result| exec::Earlier { result: result.clone(), request: exec::Request::Unknown }))
    }
}

/// An event as compared: its encoding, without what describes a provider's call.
pub(crate) fn comparable(analysis: &Analysis, event: &Event<Value>) -> Json {
    let mut json = crate::event::codec::encode_event_unsalted(analysis, event.clone());
    if let Some(fields) = json.as_object_mut() {
        match fields.get("event").and_then(Json::as_str) {
            Some("model_called") => {
                for key in ["latency_us", "attempts", "provider", "response_digest"] {
                    fields.remove(key);
                }
            }
            // How many tries a system took: the replay asks the recording once.
            Some("action_completed") => {
                fields.remove("tries");
            }
            Some("retrieved") => {
                for key in ["latency_us", "attempts", "retriever"] {
                    fields.remove(key);
                }
            }
            _ => {}
        }
    }
    json
}

/// Whether a replayed event is the recorded one, as [`comparable`] compares them (on the
/// values themselves: both sides are of one plan, so their labels are the same).
fn same(recorded: &Event<Value>, replayed: &Event<Value>) -> bool {
    match (recorded, replayed) {
        (
            Event::ModelCalled {
                node,
                model,
                model_name,
                version,
                digest,
                prompt_hash,
                request_digest,
                error,
                args,
                ..
            },
            Event::ModelCalled {
                node: node2,
                model: model2,
                model_name: model_name2,
                version: version2,
                digest: digest2,
                prompt_hash: prompt_hash2,
                request_digest: request_digest2,
                error: error2,
                args: args2,
                ..
            },
        ) => {
            (node, model, model_name, version, digest, prompt_hash, request_digest, error, args)
                == (node2, model2, model_name2, version2, digest2, prompt_hash2, request_digest2, error2, args2)
        }
        (Event::Retrieved(a), Event::Retrieved(b)) => {
            let a = crate::event::Retrieved { latency_us: 0, attempts: 0, retriever: String::new(), ..(**a).clone() };
            let b = crate::event::Retrieved { latency_us: 0, attempts: 0, retriever: String::new(), ..(**b).clone() };
            a == b
        }
        (
            Event::ActionCompleted { node, key, result, reused, .. },
            Event::ActionCompleted { node: node2, key: key2, result: result2, reused: reused2, .. },
        ) => (node, key, result, reused) == (node2, key2, result2, reused2),
        _ => recorded == replayed,
    }
}

/// A recorded decision made again from what its principal gave, with the same checks.
pub(crate) fn decide_again(
    analysis: &Analysis,
    state: &State,
    event: &Event<Value>,
) -> Option<Result<Vec<Event<Value>>, Refusal>> {
    let input = |d: &Decision, edits: Vec<(String, String)>| DecisionInput {
        outcome: d.outcome.clone(),
        reason: d.reason.clone(),
        basis: d.basis.clone(),
        edits,
    };
    // A timer that fired: again where the step's next timer is the same, at the same instant
    // (a what-if with a plan whose deadlines differ finds the step waiting instead).
    if let Some(fits) = crate::timers::again(analysis, state, event) {
        return Some(match fits {
            true => Ok(vec![event.clone()]),
            false => Err(Refusal::Invalid("the step's timer falls otherwise".to_owned())),
        });
    }
    // How the principal was authenticated is taken as recorded: it came from outside.
    let authenticated = event.authenticated();
    let again = match event {
        Event::GateDecided { node, decision } | Event::ApprovalDecided { node, decision } => {
            decision::decide(analysis, state, node, &decision.principal, &decision.roles, &input(decision, Vec::new()))
        }
        Event::ReviewDecided { node, decision, edits } => {
            let edits = edits.iter().map(|e| (e.field.clone(), e.after.to_json().to_string())).collect();
            decision::decide(analysis, state, node, &decision.principal, &decision.roles, &input(decision, edits))
        }
        Event::GateOverridden { node, decision } => decision::override_gate(
            analysis,
            state,
            node,
            &decision.principal,
            &decision.roles,
            decision.reason.as_deref().unwrap_or_default(),
            decision.basis.as_deref(),
        )
        .map(|event| vec![event]),
        Event::Cancelled { decision } => decision::cancel(
            analysis,
            state,
            &decision.principal,
            &decision.roles,
            decision.reason.as_deref().unwrap_or_default(),
            decision.basis.as_deref(),
        )
        .map(|event| vec![event]),
        Event::Resumed { decision, .. } => decision::resume(
            analysis,
            state,
            &decision.principal,
            &decision.roles,
            decision.reason.as_deref().unwrap_or_default(),
        )
        .map(|event| vec![event]),
        _ => return None,
    };
    Some(again.map(|mut events| {
        events.iter_mut().for_each(|e| e.set_authenticated(authenticated));
        events
    }))
}

/// Replays a run's recorded `events` (from its `started` event) against its plan `an`.
pub fn replay(analysis: &Analysis, events: &[Event<Value>], engine_choice: Engine) -> Replay {
    replay_across(analysis, &[], events, engine_choice)
}

/// [`replay`] of a run that may have migrated while it waited: on plan `first` until its
/// first `migrated` event, then on each plan of `later` in turn, its state rebuilt under
/// that plan at the migration as the runtime rebuilt it.
pub fn replay_across(first: &Analysis, later: &[&Analysis], events: &[Event<Value>], engine_choice: Engine) -> Replay {
    match replay_recording(first, later, events, engine_choice) {
        Ok(replay) => replay,
        Err(never) => match never {},
    }
}

/// [`replay_across`] of a run's events as a [`Recording`] holds them; fails only where the
/// recording cannot read an event it must.
pub(crate) fn replay_recording<R: Recording + ?Sized>(
    first: &Analysis,
    later: &[&Analysis],
    events: &R,
    engine_choice: Engine,
) -> Result<Replay, R::Error> {
    let mut analysis = first;
    let mut later = later.iter().copied();
    let recorded = Recorded::of(events);
    let run = match events.read(0) {
        Some(Event::Started(started)) => started.run.clone(),
        _ => String::new(),
    };
    let mut state = State::new(analysis);
    let diverge = |analysis: &Analysis, index: usize, replayed: Option<&Event<Value>>, state: &State| {
        let recorded_event = if index < events.len() { events.comparable(analysis, index)? } else { Json::Null };
        let node = match recorded_event.get("node").and_then(Json::as_str) {
            Some(node) => Some(node.to_owned()),
            None => replayed.and_then(Event::node).map(ToString::to_string),
        };
        Ok(Replay {
            run: run.clone(),
            events: index,
            status: state.current_status(),
            engine: analysis.engine_label(engine_choice),
            divergence: Some(Divergence {
                index,
                node,
                recorded: recorded_event,
                replayed: replayed.map_or(Json::Null, |e| comparable(analysis, e)),
            }),
        })
    };
    let model = |m: &flow_ir::plan::Model| recorded.called.contains(&m.name).then_some(&recorded as &dyn ModelProvider);
    let system = |s: &str| recorded.systems.iter().any(|x| x == s).then_some(&recorded as &dyn ActionHandler);
    // A step had a retriever, or not, as it had at each attempt.
    let retriever = |step: &str, _: &flow_ir::plan::Corpus| {
        recorded.searches(step, true).unwrap_or(true).then_some(&recorded as &dyn Retriever)
    };
    let opened = |node: &str| recorded.opened.get(node).copied();
    let services = Services {
        model: &model,
        retriever: &retriever,
        system: &system,
        engine: engine_choice,
        hold: None,
        opened: &opened,
    };
    let is = |analysis: &Analysis, i: usize, produced: &Event<Value>| {
        Ok::<_, R::Error>(i < events.len() && events.is(analysis, i, produced)?)
    };
    let mut i = 0;
    while i < events.len() {
        let event = events.read(i);
        // A migration, while the run waited for a person, to the next plan, which the run
        // may migrate to: the state is rebuilt under it from every event before.
        if let Some(Event::Migrated(migrated)) = event {
            let next = later.next();
            let Some(next) = next.filter(|next| {
                *migrated.from == **analysis.hash()
                    && *migrated.to == **next.hash()
                    && state.current_status() == Status::Pending
                    && crate::migration::problems(analysis, next).is_empty()
            }) else {
                return diverge(analysis, i, None, &state);
            };
            let mut rebuilt = State::new(next);
            for j in 0..=i {
                if let Some(before) = events.read(j) {
                    rebuilt.apply(next, before);
                }
            }
            (state, analysis) = (rebuilt, next);
            i += 1;
            continue;
        }
        // What came from outside: the start, and refusals (which change nothing).
        if let Some(event @ (Event::Started(_) | Event::Refused { .. })) = event {
            state.apply(analysis, event);
            i += 1;
            continue;
        }
        // Timers: a step's begins with the instant recorded (the clock came from outside);
        // each that fires must be the step's next, at its instant.
        if let Some(event) = event
            && let Some(fits) = crate::timers::again(analysis, &state, event)
        {
            if !fits {
                return diverge(analysis, i, None, &state);
            }
            state.apply(analysis, event);
            i += 1;
            continue;
        }
        // People's decisions, made again from what they gave.
        if let Some(again) = event.and_then(|event| decide_again(analysis, &state, event)) {
            let Ok(produced) = again else { return diverge(analysis, i, None, &state) };
            for event in produced {
                if !is(analysis, i, &event)? {
                    return diverge(analysis, i, Some(&event), &state);
                }
                state.apply(analysis, &event);
                i += 1;
            }
            continue;
        }
        // Everything else the executor computes, until the run settles.
        // Where the recording was cut off, the run went on with the next command.
        let mut journal = Collect { start: Some(i), events: Vec::new(), recorded: &recorded, cut_off: false };
        if let Err(Interrupted(_)) = exec::advance(analysis, &mut state, &services, &mut journal)
            && !journal.cut_off
        {
            return diverge(analysis, i, None, &state);
        }
        if journal.events.is_empty() {
            return diverge(analysis, i, None, &state);
        }
        for produced in &journal.events {
            if !is(analysis, i, produced)? {
                return diverge(analysis, i, Some(produced), &state);
            }
            i += 1;
        }
    }
    Ok(Replay {
        run,
        events: events.len(),
        status: state.current_status(),
        engine: analysis.engine_label(engine_choice),
        divergence: None,
    })
}
