//! What the runtime derives from a verified plan once, when it loads it: the labels each
//! node's value carries, the places each condition reads (recorded as its operands), and
//! who holds which grants.

use std::collections::BTreeSet;

use flow_ir::expr::{Expr, ExprKind};
use flow_ir::plan::{GrantKind, NodeKind, PlanBody};
use flow_ir::separation::extends;
use flow_ir::ty::Ty;
use flow_ir::{NodeId, VerifiedPlan};
use rustc_hash::FxHashMap;
use smol_str::SmolStr;

use crate::value::Value;

/// A place a condition reads (`request.amount`), or a built-in fact about a step it reads
/// (`stale(vendor)`, `age(vendor)`, `degraded(risk)`), recorded with its value when the
/// condition is evaluated.
#[derive(Clone, Debug)]
pub struct Operand {
    /// As written: `request.amount`, `stale(vendor)`.
    pub place: String,
    /// For a built-in fact, the expression that computes it.
    pub fact: Option<Expr>,
    pub node: SmolStr,
    pub path: Vec<SmolStr>,
    /// The type of its value (`None` where the plan does not give one).
    pub ty: Option<Ty>,
    /// The labels its value carries.
    pub labels: Vec<SmolStr>,
}

impl Operand {
    /// The operand's value in a run, or `None` before its node has one.
    pub fn value<'v>(&self, node: Option<&'v Value>) -> Option<&'v Value> {
        let mut value = node?;
        for field in &self.path {
            match value {
                Value::Absent => return Some(value),
                _ => value = value.field(field)?,
            }
        }
        Some(value)
    }
}

/// Which engine evaluates a plan's expressions and approval matrices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// Native code compiled with cranelift when the plan is loaded (where the `jit` feature
    /// is built and the host is supported; the interpreter elsewhere).
    Jit,
    /// The interpreter: the reference semantics.
    Interpreter,
}

impl Default for Engine {
    /// Native code where this build has it.
    fn default() -> Engine {
        if cfg!(feature = "jit") { Engine::Jit } else { Engine::Interpreter }
    }
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Jit => "jit",
            Engine::Interpreter => "interpreter",
        }
    }
}

impl std::str::FromStr for Engine {
    type Err = String;

    fn from_str(text: &str) -> Result<Engine, String> {
        match text {
            "jit" => Ok(Engine::Jit),
            "interp" | "interpreter" => Ok(Engine::Interpreter),
            other => Err(format!("unknown engine `{other}`: use `jit` or `interp`")),
        }
    }
}

/// A verified plan with what the runtime derives from it.
#[derive(Debug)]
pub struct Analysis {
    pub plan: VerifiedPlan,
    /// The plan's hash, shared by the events of its runs.
    hash: std::sync::Arc<str>,
    /// By node index: the labels the value carries as a whole (a record's fields carry
    /// their declared labels besides).
    node_labels: Vec<Vec<SmolStr>>,
    /// By node index: the places its conditions read.
    operands: Vec<Vec<Operand>>,
    /// By node index: the labels the text of its failure carries: of everything it reads,
    /// and for a model or an action, of what the model or system may answer.
    failure_labels: Vec<Vec<SmolStr>>,
    /// By node index: for a model or an action, the labels each argument it is sent
    /// carries as a whole (the evidence labels what was sent with them), by name.
    arg_labels: Vec<Vec<(SmolStr, Vec<SmolStr>)>>,
    /// Each `declassify` of a step: the step, the labels of what it is given, its reason.
    declassified: Vec<(SmolStr, Vec<SmolStr>, SmolStr)>,
    /// Each param and its default value (a constant: computed once).
    param_defaults: Vec<(SmolStr, Result<Value, crate::interp::EvalError>)>,
    /// Node indices by name.
    index: FxHashMap<SmolStr, u32>,
    /// By the address of an expression of the plan: the index of the node a `Node`
    /// expression reads, or the position of the field a `Field` expression reads in its
    /// record (fields are in name order), so the interpreter compares no names.
    resolved: FxHashMap<usize, u32>,
    /// The plan's gates, by node index.
    gates: Vec<u32>,
    /// The nodes that are not rules (model calls, searches, human steps, effects, emits),
    /// in the plan's order.
    steps: Vec<NodeId>,
    /// By node index, `gate_words` words: the gates (by position in `gates`) the node feeds,
    /// that is, is an ancestor of.
    feeds: Vec<u64>,
    gate_words: usize,
    /// The nodes with deadlines, by index (none: a run of the plan has no timers to look at).
    timed: Vec<usize>,
    /// The plan's native code, compiled on first use; why there is none otherwise.
    #[cfg(feature = "jit")]
    pub(crate) native: std::sync::OnceLock<Result<crate::jit::Native, String>>,
    /// How its runs kept in memory are decided straight, made on first use by the module
    /// that decides them, whose type it is (`straight.rs`; held here as `Any` so that the
    /// two modules do not import each other).
    #[cfg(feature = "jit")]
    pub(crate) straight: std::sync::OnceLock<Box<dyn std::any::Any + Send + Sync>>,
}

/// Whether a node is a rule: an input, a param, a `let` or a gate, which the run computes
/// itself, as opposed to a step that calls a model, asks people or has an effect.
pub(crate) fn is_rule(kind: &NodeKind) -> bool {
    matches!(kind, NodeKind::Input { .. } | NodeKind::Param { .. } | NodeKind::Let { .. } | NodeKind::Gate { .. })
}

impl Analysis {
    /// The nodes with deadlines, by index.
    pub fn timed(&self) -> &[usize] {
        &self.timed
    }

    pub fn new(plan: VerifiedPlan) -> Analysis {
        let body = plan.body();
        let count = body.nodes.len();
        let mut node_labels = vec![Vec::new(); count];
        let mut operands = vec![Vec::new(); count];
        // What function calls give does not depend on the node calling (a function reads
        // only its parameters): one memory for the whole plan.
        let mut calls = Calls::default();
        for &id in plan.order() {
            let node = plan.node(id);
            node_labels[id.index()] = match &node.kind {
                NodeKind::Let { value } | NodeKind::Emit { value } => {
                    expr_labels(&plan, value, &node_labels, &mut calls)
                }
                // A degraded step's value is its fallback's.
                NodeKind::Infer { fallback: Some(fallback), .. } => {
                    expr_labels(&plan, fallback, &node_labels, &mut calls)
                }
                // What a search finds carries the corpus's labels, and the query's: it
                // depends on it.
                NodeKind::Retrieve { corpus, query, .. } => {
                    let mut labels: BTreeSet<SmolStr> =
                        expr_labels(&plan, query, &node_labels, &mut calls).into_iter().collect();
                    if let Some(corpus) = body.corpus(corpus) {
                        labels.extend(corpus.labels.iter().cloned());
                    }
                    labels.into_iter().collect()
                }
                // What a review's outcome (`skipped`), an approval's row, an action's result
                // being there reveal: the labels of the conditions that decided them.
                NodeKind::Review { condition: Some(condition), .. }
                | NodeKind::Action { condition: Some(condition), .. } => {
                    condition_labels(&plan, condition, &node_labels, &mut calls)
                }
                NodeKind::Approval { rows, distinct_from } => {
                    let mut labels = BTreeSet::new();
                    for expr in rows.iter().filter_map(|r| r.condition.as_ref()).chain(distinct_from) {
                        labels.extend(condition_labels(&plan, expr, &node_labels, &mut calls));
                    }
                    labels.into_iter().collect()
                }
                _ => Vec::new(),
            };
            let conditions: Vec<&Expr> = match &node.kind {
                NodeKind::Let { value } => vec![value],
                NodeKind::Gate { condition, .. } => vec![condition],
                NodeKind::Review { condition, .. } | NodeKind::Action { condition, .. } => condition.iter().collect(),
                NodeKind::Approval { rows, .. } => rows.iter().filter_map(|r| r.condition.as_ref()).collect(),
                _ => Vec::new(),
            };
            let mut seen = BTreeSet::new();
            for condition in &conditions {
                // `places_read` gives the last place first: read them as written.
                for (root, path) in condition.places_read().into_iter().rev() {
                    let place = std::iter::once(root.as_str())
                        .chain(path.iter().map(|f| f.as_str()))
                        .collect::<Vec<_>>()
                        .join(".");
                    if !seen.insert(place.clone()) {
                        continue;
                    }
                    let labels = place_labels(&plan, root, &path, &node_labels);
                    let path: Vec<SmolStr> = path.into_iter().cloned().collect();
                    operands[id.index()].push(Operand {
                        place,
                        fact: None,
                        node: root.clone(),
                        ty: place_type(body, root, &path),
                        path,
                        labels,
                    });
                }
            }
            for condition in &conditions {
                condition.walk(&mut |e| {
                    let (name, step, ty) = match &e.kind {
                        ExprKind::Stale(n) => ("stale", n, Ty::Bool),
                        ExprKind::Age(n) => ("age", n, Ty::Duration),
                        ExprKind::Degraded(n) => ("degraded", n, Ty::Bool),
                        _ => return,
                    };
                    let place = format!("{name}({step})");
                    if seen.insert(place.clone()) {
                        let labels = match name {
                            "degraded" => Vec::new(),
                            _ => as_of_labels(&plan, step, &node_labels),
                        };
                        operands[id.index()].push(Operand {
                            place,
                            fact: Some(e.clone()),
                            node: step.clone(),
                            path: Vec::new(),
                            ty: Some(ty),
                            labels,
                        });
                    }
                });
            }
        }
        let index: FxHashMap<SmolStr, u32> =
            body.nodes.iter().enumerate().map(|(i, n)| (n.name.clone(), i as u32)).collect();
        let mut resolved = FxHashMap::default();
        let exprs = body.nodes.iter().flat_map(|n| n.kind.exprs()).chain(body.functions.iter().map(|f| &f.body));
        for root in exprs {
            root.walk(&mut |e| match &e.kind {
                ExprKind::Node(name) => {
                    if let Some(i) = index.get(name) {
                        resolved.insert(e as *const Expr as usize, *i);
                    }
                }
                ExprKind::Field { base, field } => {
                    let position = match base.ty.unwrap_optional() {
                        Ty::Named(record) => {
                            body.record(record).and_then(|r| r.fields.iter().position(|f| f.name == *field))
                        }
                        Ty::Review(_) => ["basis", "outcome", "reason", "reviewer"].iter().position(|f| f == field),
                        Ty::Approval(_) => ["approved", "approvers", "requirement"].iter().position(|f| f == field),
                        _ => None,
                    };
                    if let Some(position) = position {
                        resolved.insert(e as *const Expr as usize, position as u32);
                    }
                }
                _ => {}
            });
        }
        let arg_labels = body
            .nodes
            .iter()
            .map(|node| match &node.kind {
                NodeKind::Infer { args, .. } | NodeKind::Action { args, .. } => args
                    .iter()
                    .map(|arg| (arg.name.clone(), expr_labels(&plan, &arg.value, &node_labels, &mut calls)))
                    .collect(),
                NodeKind::Retrieve { query, .. } => {
                    vec![(SmolStr::new("query"), expr_labels(&plan, query, &node_labels, &mut calls))]
                }
                _ => Vec::new(),
            })
            .collect();
        let mut declassified = Vec::new();
        for node in &body.nodes {
            let mut found = false;
            node.kind
                .exprs()
                .into_iter()
                .for_each(|root| root.walk(&mut |e| found |= matches!(e.kind, ExprKind::Declassify { .. })));
            if !found {
                continue;
            }
            let mut labeller = Labeller::new(&plan, &node_labels, None, &mut calls);
            labeller.declassified = Some(Vec::new());
            for root in node.kind.exprs() {
                labeller.content(root, &[], 0);
            }
            for (labels, reason) in labeller.declassified.unwrap_or_default() {
                declassified.push((node.name.clone(), labels, reason));
            }
        }
        let failure_labels = (0..count)
            .map(|i| {
                let node = &body.nodes[i];
                let mut labels = BTreeSet::new();
                for expr in node.kind.exprs() {
                    labels.extend(read_labels(&plan, expr, &node_labels));
                }
                let answer = match &node.kind {
                    NodeKind::Infer { model, .. } => body.model(model).map(|m| m.output.clone()),
                    NodeKind::Retrieve { corpus, .. } => {
                        if let Some(corpus) = body.corpus(corpus) {
                            labels.extend(corpus.labels.iter().cloned());
                        }
                        Some(node.ty.clone())
                    }
                    NodeKind::Action { .. } => Some(node.ty.clone()),
                    _ => None,
                };
                if let Some(ty) = answer {
                    deep_labels(body, &ty, &mut labels, &mut BTreeSet::new());
                }
                labels.into_iter().collect()
            })
            .collect();
        let gates: Vec<u32> =
            (0..count as u32).filter(|&i| matches!(body.nodes[i as usize].kind, NodeKind::Gate { .. })).collect();
        let gate_words = gates.len().div_ceil(64);
        let mut feeds = vec![0u64; count * gate_words];
        for &id in plan.order().iter().rev() {
            let i = id.index();
            for &(next, _) in plan.successors(id) {
                let n = next.index();
                for w in 0..gate_words {
                    feeds[i * gate_words + w] |= feeds[n * gate_words + w];
                }
                if let Ok(g) = gates.binary_search(&(n as u32)) {
                    feeds[i * gate_words + g / 64] |= 1 << (g % 64);
                }
            }
        }
        let steps: Vec<NodeId> = plan.order().iter().copied().filter(|id| !is_rule(&plan.node(*id).kind)).collect();
        let hash = plan.hash().into();
        let timed: Vec<usize> = (plan.body().nodes.iter().enumerate())
            .filter(|(_, node)| node.timing.as_ref().is_some_and(|t| !t.deadlines.is_empty()))
            .map(|(i, _)| i)
            .collect();
        let mut analysis = Analysis {
            plan,
            hash,
            node_labels,
            operands,
            failure_labels,
            arg_labels,
            declassified,
            param_defaults: Vec::new(),
            index,
            resolved,
            timed,
            gates,
            steps,
            feeds,
            gate_words,
            #[cfg(feature = "jit")]
            native: std::sync::OnceLock::new(),
            #[cfg(feature = "jit")]
            straight: std::sync::OnceLock::new(),
        };
        let defaults = analysis
            .body()
            .nodes
            .iter()
            .filter_map(|node| match &node.kind {
                NodeKind::Param { default } => {
                    Some((node.name.clone(), crate::interp::eval(analysis.body(), &BeforeRun, default)))
                }
                _ => None,
            })
            .collect();
        analysis.param_defaults = defaults;
        analysis
    }

    pub fn body(&self) -> &PlanBody {
        self.plan.body()
    }

    /// The plan's native code, compiled on the first call (once per loaded plan), or why the
    /// plan runs on the interpreter.
    #[cfg(feature = "jit")]
    pub fn native(&self) -> Result<&crate::jit::Native, &str> {
        let native = self.native.get_or_init(|| {
            let index = |name: &str| self.index.get(name).copied();
            // A bug of the code generator must not take the runtime down: the plan then runs
            // on the interpreter, and its runs' evidence says why.
            let compiled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                crate::jit::Native::compile(self.body(), &index)
            }));
            compiled.unwrap_or_else(|_| Err("the native code generator failed (a bug)".to_owned()))
        });
        native.as_ref().map_err(String::as_str)
    }

    /// Whether this plan's runs kept in memory are decided straight: never without native
    /// code (with it, `straight.rs` says).
    #[cfg(not(feature = "jit"))]
    pub fn decides_straight(&self) -> bool {
        false
    }

    /// What evaluates this plan's expressions with `engine`: `jit`, `interpreter`, or
    /// `interpreter` with the reason native code could not be had.
    pub fn engine_label(&self, engine: Engine) -> String {
        self.engine_name(engine).to_string()
    }

    /// [`Analysis::engine_label`], as a run's first event records it.
    pub fn engine_name(&self, engine: Engine) -> SmolStr {
        match engine {
            Engine::Interpreter => SmolStr::new_static("interpreter"),
            #[cfg(feature = "jit")]
            Engine::Jit => match self.native() {
                Ok(_) => SmolStr::new_static("jit"),
                Err(reason) => format!("interpreter (no native code: {reason})").into(),
            },
            #[cfg(not(feature = "jit"))]
            Engine::Jit => SmolStr::new_static("interpreter (no native code: built without the `jit` feature)"),
        }
    }

    /// The plan's hash.
    pub fn hash(&self) -> &std::sync::Arc<str> {
        &self.hash
    }

    /// The index of the node of this name.
    pub fn id(&self, name: &str) -> Option<NodeId> {
        self.index.get(name).map(|i| NodeId(*i))
    }

    /// What a `Node` or `Field` expression of the plan reads: a node index or a field
    /// position; `None` for an expression that is not the plan's.
    pub fn resolved(&self, expr: &Expr) -> Option<u32> {
        self.resolved.get(&(expr as *const Expr as usize)).copied()
    }

    /// The nodes that are not rules ([`is_rule`]), in the plan's order.
    pub(crate) fn steps(&self) -> &[NodeId] {
        &self.steps
    }

    /// The plan's gates, by node index.
    pub fn gates(&self) -> impl Iterator<Item = usize> + '_ {
        self.gates.iter().map(|&g| g as usize)
    }

    /// Whether node `node` feeds the gate at position `gate` of [`Analysis::gates`]: the
    /// gate waits for it, directly or through other nodes.
    pub fn feeds(&self, node: usize, gate: usize) -> bool {
        self.feeds[node * self.gate_words + gate / 64] & (1 << (gate % 64)) != 0
    }

    /// A set of the plan's gates (by position in [`Analysis::gates`]), empty.
    pub(crate) fn no_gates(&self) -> smallvec::SmallVec<[u64; 2]> {
        smallvec::smallvec![0; self.gate_words]
    }

    /// Whether node `node` feeds every gate of `gates` (a set from [`Analysis::no_gates`]).
    pub(crate) fn feeds_all(&self, node: usize, gates: &[u64]) -> bool {
        let feeds = &self.feeds[node * self.gate_words..][..self.gate_words];
        gates.iter().zip(feeds).all(|(g, f)| g & !f == 0)
    }

    /// Whether node `node` feeds some gate of `gates` (a set from [`Analysis::no_gates`]).
    pub(crate) fn feeds_any(&self, node: usize, gates: &[u64]) -> bool {
        let feeds = &self.feeds[node * self.gate_words..][..self.gate_words];
        gates.iter().zip(feeds).any(|(g, f)| g & f != 0)
    }

    /// Each param with its default value.
    pub fn param_defaults(&self) -> &[(SmolStr, Result<Value, crate::interp::EvalError>)] {
        &self.param_defaults
    }

    pub fn node_labels(&self, node: &str) -> &[SmolStr] {
        self.id(node).map(|id| self.node_labels[id.index()].as_slice()).unwrap_or(&[])
    }

    /// The labels of the text of a step's failure.
    pub fn failure_labels(&self, node: &str) -> &[SmolStr] {
        self.id(node).map(|id| self.failure_labels[id.index()].as_slice()).unwrap_or(&[])
    }

    /// Every label declared on a field reachable inside values of `ty`.
    pub(crate) fn type_labels(&self, ty: &Ty) -> Vec<SmolStr> {
        let mut labels = BTreeSet::new();
        deep_labels(self.body(), ty, &mut labels, &mut BTreeSet::new());
        labels.into_iter().collect()
    }

    pub fn operands(&self, node: &str) -> &[Operand] {
        self.id(node).map(|id| self.operands[id.index()].as_slice()).unwrap_or(&[])
    }

    /// The labels argument `arg` that step `node` sends its model or system carries as a
    /// whole.
    pub fn arg_labels(&self, node: &str, arg: &str) -> &[SmolStr] {
        let Some(id) = self.id(node) else { return &[] };
        self.arg_labels[id.index()].iter().find(|(name, _)| name == arg).map_or(&[], |(_, labels)| labels.as_slice())
    }

    /// The labels read along a place `node.field…`.
    pub fn path_labels(&self, node: &str, path: &[SmolStr]) -> Vec<SmolStr> {
        let root = SmolStr::new(node);
        place_labels(&self.plan, &root, &path.iter().collect::<Vec<_>>(), &self.node_labels)
    }

    /// Whether a principal holding `roles` is granted `kind` (on `target`).
    pub fn granted(&self, roles: &[String], kind: GrantKind, target: Option<&str>) -> bool {
        let body = self.body();
        body.grants
            .iter()
            .filter(|g| g.kind == kind && g.target.as_deref() == target)
            .any(|g| g.roles.iter().any(|role| holds(body, roles, role)))
    }

    /// The roles granted `kind` (on `target`).
    pub fn grantees(&self, kind: GrantKind, target: Option<&str>) -> Vec<SmolStr> {
        let mut roles: Vec<SmolStr> = self
            .body()
            .grants
            .iter()
            .filter(|g| g.kind == kind && g.target.as_deref() == target)
            .flat_map(|g| g.roles.iter().cloned())
            .collect();
        roles.sort();
        roles.dedup();
        roles
    }

    /// The declassifications of the plan: the node, the labels taken off, and the reason.
    pub fn declassifications(&self) -> Vec<(SmolStr, Vec<SmolStr>, SmolStr)> {
        self.declassified.clone()
    }

    /// The labels of what an expression's value holds, whole: everything it reads, record
    /// fields and what a record built of it holds included, but what it declassifies.
    fn sent_labels(&self, expr: &Expr, calls: &mut Calls) -> Vec<SmolStr> {
        condition_labels(&self.plan, expr, &self.node_labels, calls)
    }

    /// Where the plan's values would reach a place their labels keep them from — the
    /// runtime's own proof of information flow, made whenever a plan is loaded, whoever
    /// compiled it: each model and system receives only what it is cleared for (including
    /// whether it is called at all, which reveals the conditions of the gates it waits for
    /// and the action's own condition), each field of a record built by the plan holds only
    /// what its declared labels cover, and a declassification takes off only labels the
    /// flow's owner may view.
    pub fn leaks(&self) -> Vec<String> {
        let body = self.body();
        let mut out = Vec::new();
        let exceeding = |labels: &[SmolStr], allowed: &[SmolStr]| -> Vec<String> {
            labels.iter().filter(|l| !allowed.contains(l)).map(|l| l.to_string()).collect()
        };
        // One memory of calls for what is sent and one for the records checked (which a call
        // remembered without checking them would skip).
        let (mut sent_calls, mut leak_calls) = (Calls::default(), Calls::default());
        let gates: Vec<(usize, Vec<SmolStr>)> = body
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| match &n.kind {
                NodeKind::Gate { level, condition, .. } if *level != flow_ir::plan::GateLevel::Info => {
                    Some((i, self.sent_labels(condition, &mut sent_calls)))
                }
                _ => None,
            })
            .collect();
        for (i, node) in body.nodes.iter().enumerate() {
            let name = &node.name;
            match &node.kind {
                // An output carries no label as a whole (its record's fields carry theirs):
                // what it is given must carry none.
                NodeKind::Emit { value } => {
                    let labels = match value.place() {
                        Some((root, path)) => along(&self.plan, root, &path, &self.node_labels),
                        None => expr_labels(&self.plan, value, &self.node_labels, &mut sent_calls),
                    };
                    if !labels.is_empty() {
                        out.push(format!(
                            "`{name}` emits {} data into output `{name}`, which is not labelled so",
                            labels.join(", ")
                        ));
                    }
                }
                NodeKind::Infer { model, args, .. } => {
                    let Some(model) = body.model(model) else { continue };
                    for arg in args {
                        let leak = exceeding(&self.sent_labels(&arg.value, &mut sent_calls), &model.clearance);
                        if !leak.is_empty() {
                            out.push(format!(
                                "`{name}` sends {} data to model `{}`, which is not cleared for it",
                                leak.join(", "),
                                model.name
                            ));
                        }
                    }
                    for (gate, labels) in &gates {
                        // Rules first: the call waits for the gates it does not feed.
                        let fed = self.gates.binary_search(&(*gate as u32)).is_ok_and(|g| self.feeds(i, g));
                        if !fed {
                            let leak = exceeding(labels, &model.clearance);
                            if !leak.is_empty() {
                                out.push(format!(
                                    "whether `{name}` calls model `{}` depends on {} data (gate `{}`), and it is not cleared for it",
                                    model.name, leak.join(", "), body.nodes[*gate].name
                                ));
                            }
                        }
                    }
                }
                NodeKind::Retrieve { corpus, query, .. } => {
                    let Some(corpus) = body.corpus(corpus) else { continue };
                    let leak = exceeding(&self.sent_labels(query, &mut sent_calls), &corpus.clearance);
                    if !leak.is_empty() {
                        out.push(format!(
                            "`{name}` sends {} data to the retriever of corpus `{}`, which is not cleared for it",
                            leak.join(", "),
                            corpus.name
                        ));
                    }
                    for (gate, labels) in &gates {
                        let fed = self.gates.binary_search(&(*gate as u32)).is_ok_and(|g| self.feeds(i, g));
                        if !fed {
                            let leak = exceeding(labels, &corpus.clearance);
                            if !leak.is_empty() {
                                out.push(format!(
                                    "whether `{name}` searches corpus `{}` depends on {} data (gate `{}`), and it is not cleared for it",
                                    corpus.name, leak.join(", "), body.nodes[*gate].name
                                ));
                            }
                        }
                    }
                }
                NodeKind::Action { system, args, condition, idempotency, .. } => {
                    let Some(target) = body.system(system) else { continue };
                    let mut sent: Vec<SmolStr> = Vec::new();
                    for expr in args.iter().map(|a| &a.value).chain(idempotency) {
                        sent.extend(self.sent_labels(expr, &mut sent_calls));
                    }
                    if let Some(condition) = condition {
                        sent.extend(self.sent_labels(condition, &mut sent_calls));
                    }
                    if let Some(key) = idempotency {
                        let labels = self.sent_labels(key, &mut sent_calls);
                        if !labels.is_empty() {
                            out.push(format!(
                                "`{name}` is keyed by {} data, and an idempotency key is shown to everyone who may see the run",
                                labels.join(", ")
                            ));
                        }
                    }
                    for (_, labels) in &gates {
                        sent.extend(labels.iter().cloned());
                    }
                    sent.sort();
                    sent.dedup();
                    let leak = exceeding(&sent, &target.clearance);
                    if !leak.is_empty() {
                        out.push(format!(
                            "`{name}` lets {} data reach system `{system}`, which is not cleared for it",
                            leak.join(", ")
                        ));
                    }
                }
                _ => {}
            }
            let mut labeller =
                Labeller::new(&self.plan, &self.node_labels, Some((name.as_str(), &mut out)), &mut leak_calls);
            for root in node.kind.exprs() {
                labeller.content(root, &[], 0);
            }
        }
        if leak_calls.exceeded {
            out.push(format!(
                "the plan's functions are called with more than {MAX_FOLLOWED} different arguments, more than the \
                 proof follows: the records they build cannot be checked"
            ));
        }
        let owner = [body.flow.owner.to_string()];
        let viewable = self.views(&owner);
        for (node, labels, _) in self.declassifications() {
            let refused = exceeding(&labels, &viewable);
            if !refused.is_empty() {
                out.push(format!(
                    "`{node}` declassifies {} data, which the flow's owner `{}` may not view",
                    refused.join(", "),
                    body.flow.owner
                ));
            }
        }
        // Only a flow's steps declassify, where the owner's grants are checked above: a
        // function that does would take labels off whatever it is given (`E2022`).
        for function in &body.functions {
            let mut found = false;
            function.body.walk(&mut |e| found |= matches!(e.kind, ExprKind::Declassify { .. }));
            if found {
                out.push(format!(
                    "function `{}` declassifies, which only a flow's step may do: it would take labels off \
                     whatever it is given",
                    function.name
                ));
            }
        }
        out
    }

    /// The labels a principal holding `roles` may view.
    pub fn views(&self, roles: &[String]) -> Vec<SmolStr> {
        self.body().labels.iter().filter(|l| self.granted(roles, GrantKind::View, Some(l))).cloned().collect()
    }
}

/// Where a param's default is evaluated: before any run, with no node holding a value, the
/// clock at the epoch and no one who started it (a default is a constant; the verifier
/// refuses one that reads anything else).
struct BeforeRun;

impl crate::interp::Scope for BeforeRun {
    fn node(&self, _name: &str) -> Option<&Value> {
        None
    }

    fn degraded(&self, _name: &str) -> bool {
        false
    }

    fn clock(&self) -> flow_ir::expr::Timestamp {
        flow_ir::expr::Timestamp { seconds: 0, nanos: 0 }
    }

    fn starter(&self) -> Option<&str> {
        Some("")
    }
}

/// Whether one of `roles` is `role` or extends it.
pub fn holds(body: &PlanBody, roles: &[String], role: &str) -> bool {
    roles.iter().any(|held| extends(body, held, role))
}

/// The roles among `roles` that hold one of `wanted`.
pub fn roles_used(body: &PlanBody, roles: &[String], wanted: &[SmolStr]) -> Vec<String> {
    roles.iter().filter(|held| wanted.iter().any(|w| extends(body, held, w))).cloned().collect()
}

/// The labels an expression's value carries as a whole. A record built by the expression
/// (or by the body of a function it calls) carries none as a whole: its fields carry their
/// declared labels, which the compiler proved cover what each field reads (and loading
/// proves again: `Analysis::leaks`).
fn expr_labels(plan: &VerifiedPlan, expr: &Expr, node_labels: &[Vec<SmolStr>], calls: &mut Calls) -> Vec<SmolStr> {
    Labeller::new(plan, node_labels, None, calls).whole(expr, &[], 0).into_iter().collect()
}

/// The labels of everything an expression's value holds, record fields included, but what
/// it declassifies; through the bodies of the functions it calls, so that a function that
/// reads only unlabelled fields of a record passed whole gives an unlabelled value.
fn condition_labels(plan: &VerifiedPlan, expr: &Expr, node_labels: &[Vec<SmolStr>], calls: &mut Calls) -> Vec<SmolStr> {
    Labeller::new(plan, node_labels, None, calls).content(expr, &[], 0).into_iter().collect()
}

/// How deep calls are followed into function bodies (as the compiler does): a call deeper
/// gives everything its arguments hold.
const MAX_INLINING: usize = 32;

/// How many function bodies one proof follows (each function, depth and set of arguments
/// once): past that, a call carries everything its arguments hold, and a proof of where
/// labelled data goes refuses the plan, since it could not look inside.
const MAX_FOLLOWED: usize = 20_000;

/// An argument of a function call, as the function's body can tell it. Two arguments
/// alike are one, so that a body is followed once for both.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Arg {
    /// A place of a node's value: the labels it carries as a whole, and its type, whose
    /// fields keep their declared labels.
    At(BTreeSet<SmolStr>, Ty),
    /// A record built in place: it carries nothing as a whole, each field what its value
    /// does (as the compiler keeps it), by field name.
    Built(Vec<(SmolStr, Arg)>),
    /// A computed value: what it carries as a whole, and everything it holds (what any
    /// part of it may carry).
    Value { whole: BTreeSet<SmolStr>, content: BTreeSet<SmolStr> },
}

/// How deep records built in place are passed field by field (each argument is at most
/// this deep, so hashing, comparing and dropping one recurses no deeper).
const MAX_BUILT: usize = 64;

impl Arg {
    fn value(labels: BTreeSet<SmolStr>) -> Arg {
        Arg::Value { whole: labels.clone(), content: labels }
    }

    /// How deep records built in place nest in it.
    fn nesting(&self) -> usize {
        match self {
            Arg::Built(fields) => 1 + fields.iter().map(|(_, arg)| arg.nesting()).max().unwrap_or(0),
            _ => 0,
        }
    }

    /// The part of the argument at `path`.
    fn at(&self, body: &PlanBody, path: &[&SmolStr]) -> Arg {
        match (self, path) {
            (_, []) => self.clone(),
            (Arg::At(labels, ty), _) => match labels_from(body, labels.clone(), ty, path) {
                (labels, Some(ty)) => Arg::At(labels, ty),
                (labels, None) => Arg::value(labels),
            },
            (Arg::Built(fields), [field, rest @ ..]) => match fields.iter().find(|(name, _)| name == *field) {
                Some((_, arg)) => arg.at(body, rest),
                // An optional field left out.
                None => Arg::value(BTreeSet::new()),
            },
            // A part of a computed value may carry anything the value holds.
            (Arg::Value { content, .. }, _) => Arg::value(content.clone()),
        }
    }

    /// The labels of the part at `path`: of everything it holds (`content`), or that it
    /// carries as a whole.
    fn labels_at(&self, body: &PlanBody, path: &[&SmolStr], content: bool) -> BTreeSet<SmolStr> {
        match (self, path) {
            (Arg::Built(fields), [field, rest @ ..]) => match fields.iter().find(|(name, _)| name == *field) {
                Some((_, arg)) => arg.labels_at(body, rest, content),
                None => BTreeSet::new(),
            },
            (Arg::Built(_), []) => self.labels(body, content),
            _ => self.at(body, path).labels(body, content),
        }
    }

    /// An item of the list it is: a place's item carries what the list carries as a whole
    /// and its fields their declared labels; a computed list's, everything the list holds.
    fn item(&self, body: &PlanBody) -> Arg {
        match self {
            Arg::At(labels, ty) if let Ty::List(item) = ty.unwrap_optional() => {
                Arg::At(labels.clone(), (**item).clone())
            }
            _ => Arg::value(self.labels(body, true)),
        }
    }

    /// The labels of everything it holds (`content`), or that it carries as a whole.
    fn labels(&self, body: &PlanBody, content: bool) -> BTreeSet<SmolStr> {
        match self {
            Arg::At(labels, ty) => {
                let mut labels = labels.clone();
                if content {
                    deep_labels(body, ty, &mut labels, &mut BTreeSet::new());
                }
                labels
            }
            Arg::Built(fields) if content => fields.iter().flat_map(|(_, arg)| arg.labels(body, true)).collect(),
            Arg::Built(_) => BTreeSet::new(),
            Arg::Value { whole, content: all } => match content {
                true => all.clone(),
                false => whole.clone(),
            },
        }
    }
}

/// What the calls followed gave, shared by the proofs of one plan.
#[derive(Default)]
pub(crate) struct Calls {
    /// By function, whether its value as a whole was asked, depth and arguments.
    given: FxHashMap<(SmolStr, bool, usize, Vec<Arg>), BTreeSet<SmolStr>>,
    /// Whether a call was not followed because [`MAX_FOLLOWED`] bodies had been.
    pub(crate) exceeded: bool,
}

/// Computes the labels values hold, and with `leaks`, notes each record built (in a step's
/// expressions or in the body of a function they call) with a field holding labels it is
/// not declared with.
struct Labeller<'a, 'o> {
    plan: &'a VerifiedPlan,
    node_labels: &'a [Vec<SmolStr>],
    leaks: Option<(&'a str, &'o mut Vec<String>)>,
    /// What each call gave: a body is followed once for each function, depth and set of
    /// arguments, so that functions that call each other many times take time in
    /// proportion to the plan, not to the calls made.
    calls: &'o mut Calls,
    /// What each expression gave, whole or not, by body being followed: the step's own
    /// expressions, then one for each call followed (its arguments fixed), dropped when
    /// the call returns. A record's field is asked both ways, and a field nested in
    /// another's would otherwise be walked twice at each level, which a plan's nesting
    /// makes exponential.
    walked: Vec<FxHashMap<(*const Expr, bool), BTreeSet<SmolStr>>>,
    /// The items of the `any`/`all` conditions being walked, innermost last.
    locals: Vec<Arg>,
    /// With `Some`, each `declassify` walked: the labels of what it is given (items of
    /// `any`/`all` included), and its reason.
    declassified: Option<Vec<(Vec<SmolStr>, SmolStr)>>,
}

impl<'a, 'o> Labeller<'a, 'o> {
    fn new(
        plan: &'a VerifiedPlan,
        node_labels: &'a [Vec<SmolStr>],
        leaks: Option<(&'a str, &'o mut Vec<String>)>,
        calls: &'o mut Calls,
    ) -> Labeller<'a, 'o> {
        Labeller {
            plan,
            node_labels,
            leaks,
            calls,
            walked: vec![FxHashMap::default()],
            locals: Vec::new(),
            declassified: None,
        }
    }

    /// The labels the value carries as a whole (`whole`) or of everything it holds, each
    /// expression of a body walked once each way.
    fn walk(&mut self, expr: &'a Expr, args: &[Arg], depth: usize, whole: bool) -> BTreeSet<SmolStr> {
        // What a literal or a node's value carries is found without walking.
        let cached = !matches!(expr.kind, ExprKind::Lit(_) | ExprKind::Node(_) | ExprKind::Variant(_));
        let key = (expr as *const Expr, whole);
        if cached && let Some(labels) = self.walked.last().and_then(|w| w.get(&key)) {
            return labels.clone();
        }
        // Bodies may nest a plan's deepest expressions 32 calls deep: stack to spare.
        let labels = stacker::maybe_grow(256 * 1024, 2 * 1024 * 1024, || match whole {
            true => self.whole_of(expr, args, depth),
            false => self.content_of(expr, args, depth),
        });
        if cached && let Some(walked) = self.walked.last_mut() {
            walked.insert(key, labels.clone());
        }
        labels
    }

    fn whole(&mut self, expr: &'a Expr, args: &[Arg], depth: usize) -> BTreeSet<SmolStr> {
        self.walk(expr, args, depth, true)
    }

    fn content(&mut self, expr: &'a Expr, args: &[Arg], depth: usize) -> BTreeSet<SmolStr> {
        self.walk(expr, args, depth, false)
    }

    /// The labels of everything the value at `root.path` holds.
    fn place(&self, root: &SmolStr, path: &[&SmolStr]) -> BTreeSet<SmolStr> {
        place_labels(self.plan, root, path, self.node_labels).into_iter().collect()
    }

    /// The argument or `any`/`all` item a name bound in a body stands for.
    fn bound<'b>(&'b self, args: &'b [Arg], bound: Bound) -> Option<&'b Arg> {
        match bound {
            Bound::Param(i) => args.get(i as usize),
            Bound::Local(depth) => self.locals.iter().rev().nth(depth as usize),
        }
    }

    /// The labels of the value at `path` inside what `bound` stands for: of everything it
    /// holds (`content`), or as a whole.
    fn param(&self, args: &[Arg], bound: Bound, path: &[&SmolStr], content: bool) -> BTreeSet<SmolStr> {
        match self.bound(args, bound) {
            Some(arg) => arg.labels_at(self.plan.body(), path, content),
            None => BTreeSet::new(),
        }
    }

    /// An argument passed to a call, as the called body can tell it.
    fn arg(&mut self, expr: &'a Expr, args: &[Arg], depth: usize) -> Arg {
        if let Some((root, path)) = expr.place() {
            return match labels_along(self.plan, root, &path, self.node_labels) {
                (labels, Some(ty)) => Arg::At(labels, ty),
                (labels, None) => Arg::value(labels),
            };
        }
        if let Some((bound, path)) = bound_place(expr) {
            return match self.bound(args, bound) {
                Some(arg) => arg.at(self.plan.body(), &path),
                None => Arg::value(BTreeSet::new()),
            };
        }
        match &expr.kind {
            ExprKind::Record(fields) => {
                if self.leaks.is_some() {
                    // The record built is checked against its fields' declared labels.
                    self.content(expr, args, depth);
                }
                let built =
                    Arg::Built(fields.iter().map(|f| (f.name.clone(), self.arg(&f.value, args, depth))).collect());
                // Records built inside records passed down calls may nest as deep as the
                // calls times the expressions: past a depth, what it holds, as a value
                // (which carries nothing as a whole, as a record built does).
                match built.nesting() > MAX_BUILT {
                    true => Arg::Value { whole: BTreeSet::new(), content: built.labels(self.plan.body(), true) },
                    false => built,
                }
            }
            _ => Arg::Value { whole: self.whole(expr, args, depth), content: self.content(expr, args, depth) },
        }
    }

    /// What a call of `function` with `bound` gives, its body followed once (`whole`: as a
    /// whole); past [`MAX_FOLLOWED`] bodies, everything its arguments hold.
    fn call(
        &mut self,
        function: &'a flow_ir::plan::Function,
        whole: bool,
        depth: usize,
        bound: Vec<Arg>,
    ) -> BTreeSet<SmolStr> {
        let key = (function.name.clone(), whole, depth, bound);
        if let Some(labels) = self.calls.given.get(&key) {
            return labels.clone();
        }
        if self.calls.given.len() >= MAX_FOLLOWED {
            self.calls.exceeded = true;
            return self.joined(&key.3);
        }
        self.walked.push(FxHashMap::default());
        let outer = std::mem::take(&mut self.locals);
        let labels = self.walk(&function.body, &key.3, depth + 1, whole);
        self.locals = outer;
        self.walked.pop();
        self.calls.given.insert(key, labels.clone());
        labels
    }

    /// Everything the arguments of a call hold: what a call not followed gives.
    fn joined(&self, bound: &[Arg]) -> BTreeSet<SmolStr> {
        let mut labels = BTreeSet::new();
        for arg in bound {
            labels.extend(arg.labels_at(self.plan.body(), &[], true));
        }
        labels
    }

    /// The labels the value carries as a whole: a place's own and those along its path;
    /// none for a record built here or by the function called (its fields carry their
    /// declared labels); else all it holds.
    fn whole_of(&mut self, expr: &'a Expr, args: &[Arg], depth: usize) -> BTreeSet<SmolStr> {
        // A place: its node's own labels and those along its path (a record there keeps its
        // fields' labels on its fields, which its type declares, types being named).
        if let Some((root, path)) = expr.place() {
            return along(self.plan, root, &path, self.node_labels).into_iter().collect();
        }
        if let Some((bound, path)) = bound_place(expr) {
            return self.param(args, bound, &path, false);
        }
        match &expr.kind {
            ExprKind::Record(_) => BTreeSet::new(),
            // The value chosen carries what chose it, and what each choice carries whole.
            ExprKind::If { branches, otherwise } => {
                let mut labels = self.whole(otherwise, args, depth);
                for branch in branches {
                    labels.extend(self.content(&branch.condition, args, depth));
                    labels.extend(self.whole(&branch.then, args, depth));
                }
                labels
            }
            ExprKind::Call { function, args: passed } if depth < MAX_INLINING => {
                match self.plan.body().function(function) {
                    Some(f) => {
                        let bound: Vec<Arg> = passed.iter().map(|a| self.arg(a, args, depth)).collect();
                        self.call(f, true, depth, bound)
                    }
                    None => self.content(expr, args, depth),
                }
            }
            _ => self.content(expr, args, depth),
        }
    }

    /// The labels of everything the value holds, record fields included.
    fn content_of(&mut self, expr: &'a Expr, args: &[Arg], depth: usize) -> BTreeSet<SmolStr> {
        if let Some((root, path)) = expr.place() {
            return self.place(root, &path);
        }
        if let Some((bound, path)) = bound_place(expr) {
            return self.param(args, bound, &path, true);
        }
        match &expr.kind {
            ExprKind::Declassify { value, reason } => {
                if self.leaks.is_some() || self.declassified.is_some() {
                    // What it takes labels off is still checked for records built inside.
                    let labels = self.content(value, args, depth);
                    if let Some(found) = &mut self.declassified {
                        found.push((labels.into_iter().collect(), reason.clone()));
                    }
                }
                BTreeSet::new()
            }
            ExprKind::Call { function, args: passed } => {
                let bound: Vec<Arg> = passed.iter().map(|a| self.arg(a, args, depth)).collect();
                match self.plan.body().function(function) {
                    Some(f) if depth < MAX_INLINING => self.call(f, false, depth, bound),
                    _ => self.joined(&bound),
                }
            }
            // How old a record is, and so whether it is stale, reveals its `as_of` field.
            ExprKind::Age(node) | ExprKind::Stale(node) => {
                as_of_labels(self.plan, node, self.node_labels).into_iter().collect()
            }
            // Which items there are carries what the list carries as a whole; what the
            // condition says of each, what it reads of the item (its `Local`).
            ExprKind::Quantifier { list, body, .. } => {
                let mut labels = self.whole(list, args, depth);
                if self.leaks.is_some() || self.declassified.is_some() {
                    // Records built in it are checked.
                    self.content(list, args, depth);
                }
                let item = self.arg(list, args, depth).item(self.plan.body());
                self.locals.push(item);
                labels.extend(self.content(body, args, depth));
                self.locals.pop();
                labels
            }
            ExprKind::Record(fields) => {
                let mut labels = BTreeSet::new();
                for field in fields {
                    let carried = match self.leaks {
                        Some(_) => self.whole(&field.value, args, depth),
                        None => BTreeSet::new(),
                    };
                    if let Some((node, leaks)) = &mut self.leaks
                        && let Ty::Named(record) = expr.ty.unwrap_optional()
                        && let Some(declared) = self.plan.body().record(record).and_then(|r| r.field(&field.name))
                    {
                        let leak: Vec<&str> =
                            carried.iter().filter(|l| !declared.labels.contains(l)).map(SmolStr::as_str).collect();
                        if !leak.is_empty() {
                            let inside = if depth > 0 { " (in a function it calls)" } else { "" };
                            leaks.push(format!(
                                "`{node}` puts {} data into field `{}` of `{record}`{inside}, which is not labelled so",
                                leak.join(", "),
                                field.name
                            ));
                        }
                    }
                    labels.extend(self.content(&field.value, args, depth));
                }
                labels
            }
            _ => {
                let mut children = Vec::new();
                expr.for_each_child(|child| children.push(child));
                let mut labels = BTreeSet::new();
                for child in children {
                    labels.extend(self.content(child, args, depth));
                }
                labels
            }
        }
    }
}

/// The labels of everything an expression reads: the places it reads (record fields
/// included), and what `age()` and `stale()` reveal.
fn read_labels(plan: &VerifiedPlan, expr: &Expr, node_labels: &[Vec<SmolStr>]) -> BTreeSet<SmolStr> {
    let mut labels = BTreeSet::new();
    for (root, path) in expr.places_read() {
        labels.extend(place_labels(plan, root, &path, node_labels));
    }
    // How old a record is reveals its `as_of` field.
    expr.walk(&mut |e| {
        if let ExprKind::Age(input) | ExprKind::Stale(input) = &e.kind {
            labels.extend(as_of_labels(plan, input, node_labels));
        }
    });
    labels
}

/// The labels of the `as_of` field of the source input `node` comes from (what `age(node)`
/// and `stale(node)` reveal); of the whole input when its source names none.
fn as_of_labels(plan: &VerifiedPlan, node: &SmolStr, node_labels: &[Vec<SmolStr>]) -> Vec<SmolStr> {
    let body = plan.body();
    let as_of = match body.node(node).map(|n| &n.kind) {
        Some(NodeKind::Input { source: Some(source) }) => body.source(source).and_then(|s| s.as_of.clone()),
        _ => None,
    };
    match &as_of {
        Some(field) => place_labels(plan, node, &[field], node_labels),
        None => place_labels(plan, node, &[], node_labels),
    }
}

/// A name bound inside a body: a function's parameter, or the item of an `any`/`all`
/// condition (counted from the innermost outwards).
#[derive(Clone, Copy)]
enum Bound {
    Param(u32),
    Local(u32),
}

/// The bound name and field path this expression reads, when it is a place inside a
/// function's parameter or an `any`/`all` item (`p.amount`).
fn bound_place(expr: &Expr) -> Option<(Bound, Vec<&SmolStr>)> {
    match &expr.kind {
        ExprKind::Param(i) => Some((Bound::Param(*i), Vec::new())),
        ExprKind::Local(depth) => Some((Bound::Local(*depth), Vec::new())),
        ExprKind::Field { base, field } => {
            let (bound, mut path) = bound_place(base)?;
            path.push(field);
            Some((bound, path))
        }
        ExprKind::Unwrap(inner) => bound_place(inner),
        _ => None,
    }
}

/// The type of the value at `path` in node `root`'s value.
pub(crate) fn place_type(body: &PlanBody, root: &str, path: &[SmolStr]) -> Option<Ty> {
    let mut ty = body.node(root)?.ty.clone();
    for field in path {
        ty = body.field_type(ty.unwrap_optional(), field)?.into_owned();
    }
    Some(ty)
}

/// The labels of the value at `root.path`: the node's own, each field's declared labels
/// along the path, and, when a whole record is read into a computation, every label its
/// fields may carry.
fn place_labels(plan: &VerifiedPlan, root: &SmolStr, path: &[&SmolStr], node_labels: &[Vec<SmolStr>]) -> Vec<SmolStr> {
    let (mut labels, ty) = labels_along(plan, root, path, node_labels);
    if let Some(ty) = ty {
        deep_labels(plan.body(), &ty, &mut labels, &mut BTreeSet::new());
    }
    labels.into_iter().collect()
}

/// The labels of the value at `root.path` as a whole: the node's own and those declared on
/// each field along the path (a record there keeps its fields' labels on its fields).
fn along(plan: &VerifiedPlan, root: &SmolStr, path: &[&SmolStr], node_labels: &[Vec<SmolStr>]) -> Vec<SmolStr> {
    labels_along(plan, root, path, node_labels).0.into_iter().collect()
}

/// The labels read along `root.path`, and the type found at its end (`None` when the path
/// leaves the plan's types).
fn labels_along(
    plan: &VerifiedPlan,
    root: &SmolStr,
    path: &[&SmolStr],
    node_labels: &[Vec<SmolStr>],
) -> (BTreeSet<SmolStr>, Option<Ty>) {
    let Some(id) = plan.node_id(root) else { return (BTreeSet::new(), None) };
    let labels: BTreeSet<SmolStr> = node_labels[id.index()].iter().cloned().collect();
    labels_from(plan.body(), labels, &plan.node(id).ty, path)
}

/// The labels read along `path` inside a value of type `ty` that carries `labels` as a
/// whole, and the type found at its end (`None` when the path leaves the plan's types).
fn labels_from(
    body: &PlanBody,
    mut labels: BTreeSet<SmolStr>,
    ty: &Ty,
    path: &[&SmolStr],
) -> (BTreeSet<SmolStr>, Option<Ty>) {
    let mut ty = ty.clone();
    for field in path {
        let inner = ty.unwrap_optional().clone();
        if let Ty::Named(record) = &inner
            && let Some(f) = body.record(record).and_then(|r| r.field(field))
        {
            labels.extend(f.labels.iter().cloned());
        }
        ty = match body.field_type(&inner, field) {
            Some(next) => next.into_owned(),
            None => return (labels, None),
        };
    }
    (labels, Some(ty))
}

/// Every label declared on a field reachable inside values of `ty`.
/// Found without recursion: a plan may chain records as long as it likes.
fn deep_labels(body: &PlanBody, ty: &Ty, out: &mut BTreeSet<SmolStr>, seen: &mut BTreeSet<SmolStr>) {
    let mut stack = vec![ty];
    while let Some(ty) = stack.pop() {
        match ty {
            Ty::Optional(inner) | Ty::List(inner) => stack.push(inner),
            Ty::Named(name) => {
                if let Some(record) = body.record(name)
                    && seen.insert(name.clone())
                {
                    for field in &record.fields {
                        out.extend(field.labels.iter().cloned());
                        stack.push(&field.ty);
                    }
                }
            }
            _ => {}
        }
    }
}
