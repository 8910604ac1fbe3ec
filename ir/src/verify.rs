//! The verifier: the only way to a [`VerifiedPlan`], the type the runtime executes.
//!
//! It re-checks everything the runtime relies on, whoever produced the plan: the hash
//! over the canonical encoding; every list in canonical order; every name resolves; every
//! declaration keeps the language's rules; every expression type-checks; and, on the
//! graph, that every read has its edge, the graph is acyclic, every node is reachable from
//! what the run receives, every output is emitted, every effect waits for every gate,
//! review and approval (governance dominance), and every reader of a field a review may
//! edit runs after that review.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use smol_str::SmolStr;

use crate::check::{Checker, Context, check_type};
use crate::encode;
use crate::error::{VerifyError, VerifyErrors};
use crate::expr::Expr;
use crate::plan::{
    EdgeKind, FORMAT_VERSION, GateLevel, GrantKind, LANGUAGE_VERSION, MAX_TOP, Node, NodeKind, Plan, PlanBody,
    Requirement, Timeout, Timing,
};
use crate::ty::Ty;

/// A node of a verified plan: its index in the plan's (name-ordered) node list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

impl NodeId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A plan that passed verification. Only [`verify`], [`load`] and [`seal_and_verify`] make
/// one. Two are equal when their plans are.
#[derive(Clone, Debug)]
pub struct VerifiedPlan {
    plan: Plan,
    order: Vec<NodeId>,
    predecessors: Adjacency,
    successors: Adjacency,
}

/// Edges grouped by node, in one allocation: the neighbours of node `i` are
/// `items[starts[i]..starts[i + 1]]`.
#[derive(Clone, Debug)]
struct Adjacency {
    starts: Vec<u32>,
    items: Vec<(NodeId, EdgeKind)>,
}

impl Adjacency {
    /// Groups `(node, neighbour, kind)` triples by node, keeping their order within a node.
    fn build(count: usize, triples: &[(usize, usize, EdgeKind)]) -> Adjacency {
        let mut starts = vec![0u32; count + 1];
        for &(node, _, _) in triples {
            starts[node + 1] += 1;
        }
        for i in 0..count {
            starts[i + 1] += starts[i];
        }
        let mut next: Vec<u32> = starts[..count].to_vec();
        let mut items = vec![(NodeId(0), EdgeKind::Data); triples.len()];
        for &(node, neighbour, kind) in triples {
            items[next[node] as usize] = (NodeId(neighbour as u32), kind);
            next[node] += 1;
        }
        Adjacency { starts, items }
    }

    fn len(&self) -> usize {
        self.starts.len() - 1
    }
}

impl std::ops::Index<usize> for Adjacency {
    type Output = [(NodeId, EdgeKind)];

    fn index(&self, node: usize) -> &[(NodeId, EdgeKind)] {
        &self.items[self.starts[node] as usize..self.starts[node + 1] as usize]
    }
}

impl PartialEq for VerifiedPlan {
    fn eq(&self, other: &VerifiedPlan) -> bool {
        self.plan == other.plan
    }
}

impl Eq for VerifiedPlan {}

impl VerifiedPlan {
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    pub fn body(&self) -> &PlanBody {
        &self.plan.plan
    }

    pub fn hash(&self) -> &str {
        &self.plan.hash
    }

    pub fn into_plan(self) -> Plan {
        self.plan
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.plan.plan.nodes[id.index()]
    }

    pub fn node_id(&self, name: &str) -> Option<NodeId> {
        let nodes = &self.plan.plan.nodes;
        nodes.binary_search_by(|n| n.name.as_str().cmp(name)).ok().map(|i| NodeId(i as u32))
    }

    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> + use<> {
        (0..self.plan.plan.nodes.len() as u32).map(NodeId)
    }

    /// Every node in an order in which each runs after everything it waits for; among
    /// nodes ready at the same time, by name.
    pub fn order(&self) -> &[NodeId] {
        &self.order
    }

    /// The nodes `id` waits for, with the kind of each edge.
    pub fn predecessors(&self, id: NodeId) -> &[(NodeId, EdgeKind)] {
        &self.predecessors[id.index()]
    }

    /// The nodes that wait for `id`, with the kind of each edge.
    pub fn successors(&self, id: NodeId) -> &[(NodeId, EdgeKind)] {
        &self.successors[id.index()]
    }

    /// The nodes in stages: each node's stage is one more than the latest stage it waits
    /// for, so the nodes of one stage may run at the same time.
    pub fn stages(&self) -> Vec<Vec<NodeId>> {
        let mut level = vec![0usize; self.plan.plan.nodes.len()];
        for &id in &self.order {
            level[id.index()] = self.predecessors(id).iter().map(|(p, _)| level[p.index()] + 1).max().unwrap_or(0);
        }
        let mut stages: Vec<Vec<NodeId>> = Vec::new();
        for &id in &self.order {
            let stage = level[id.index()];
            if stages.len() <= stage {
                stages.resize(stage + 1, Vec::new());
            }
            stages[stage].push(id);
        }
        stages
    }

    /// The steps that may be degraded — an `infer` with a fallback, a `retrieve` of a
    /// corpus that takes another snapshot (`on mismatch degrade`) — whose degradation
    /// nothing observes: no gate, review or approval condition and no emitted output reads
    /// `degraded(x)`, directly or through `let`s (`W2002`).
    pub fn silent_fallbacks(&self) -> Vec<SmolStr> {
        let body = self.body();
        let mut silent = Vec::new();
        for node in &body.nodes {
            let degradable = match &node.kind {
                NodeKind::Infer { fallback, .. } => fallback.is_some(),
                NodeKind::Retrieve { corpus, .. } => {
                    body.corpus(corpus).is_some_and(|c| c.on_mismatch == crate::plan::Mismatch::Degrade)
                }
                _ => false,
            };
            if !degradable {
                continue;
            }
            // Nodes that read `degraded(node)`, then values computed from them by `let`s.
            let mut frontier: Vec<NodeId> = body
                .nodes
                .iter()
                .enumerate()
                .filter(|(_, reader)| {
                    reader.kind.exprs().iter().any(|e| {
                        let mut found = false;
                        e.walk(&mut |x| {
                            found |= matches!(&x.kind, crate::expr::ExprKind::Degraded(s) if *s == node.name)
                        });
                        found
                    })
                })
                .map(|(i, _)| NodeId(i as u32))
                .collect();
            let mut seen: BTreeSet<NodeId> = frontier.iter().copied().collect();
            let mut observed = false;
            while let Some(id) = frontier.pop() {
                let reader = self.node(id);
                if reader.kind.is_governance() || matches!(reader.kind, NodeKind::Emit { .. }) {
                    observed = true;
                    break;
                }
                if matches!(reader.kind, NodeKind::Let { .. }) {
                    for &(next, kind) in self.successors(id) {
                        if kind == EdgeKind::Data && seen.insert(next) {
                            frontier.push(next);
                        }
                    }
                }
            }
            if !observed {
                silent.push(node.name.clone());
            }
        }
        silent
    }
}

/// Reads and verifies a plan file.
pub fn load(bytes: &[u8]) -> Result<VerifiedPlan, VerifyErrors> {
    let plan = encode::parse(bytes).map_err(|e| VerifyErrors(vec![e]))?;
    verify(plan)
}

/// Verifies a plan, hash included.
pub fn verify(plan: Plan) -> Result<VerifiedPlan, VerifyErrors> {
    verify_plan(plan, true).map_err(|failed| failed.1)
}

/// Seals a plan body (computes its hash) and verifies the result; on failure, gives back
/// the plan with the reasons. The compiler's way to a plan: the hash is computed once.
pub fn seal_and_verify(
    body: PlanBody,
    compiler: String,
    descriptions: BTreeMap<String, String>,
    source_map: crate::plan::SourceMap,
) -> Result<VerifiedPlan, Box<(Plan, VerifyErrors)>> {
    verify_plan(encode::seal(body, compiler, descriptions, source_map), false)
}

/// Verifies a plan; `check_hash` is false only for a plan sealed just now.
fn verify_plan(mut plan: Plan, check_hash: bool) -> Result<VerifiedPlan, Box<(Plan, VerifyErrors)>> {
    let names = Names::new(&plan.plan);
    let typing = type_expressions(&mut plan.plan, &names);
    let mut v = Verifier { body: &plan.plan, names: &names, errors: Vec::new() };
    if plan.format_version != FORMAT_VERSION || plan.language_version != LANGUAGE_VERSION {
        v.errors.push(VerifyError::Version(format!(
            "the plan has format version {} of language version {}, but this runtime reads format version {FORMAT_VERSION} of language version {LANGUAGE_VERSION}",
            plan.format_version, plan.language_version
        )));
    }
    if check_hash {
        let computed = encode::content_hash(plan.format_version, &plan.language_version, &plan.plan);
        if computed != plan.hash {
            v.errors.push(VerifyError::Hash { recorded: plan.hash.clone(), computed });
        }
    }
    v.declarations();
    v.errors.extend(typing);
    v.nodes();
    let graph = v.graph();
    let errors = v.errors;
    drop(names);
    if !errors.is_empty() {
        return Err(Box::new((plan, VerifyErrors(errors))));
    }
    let Some((order, predecessors, successors)) = graph else {
        let error = VerifyError::Malformed("the plan's graph could not be built".to_owned());
        return Err(Box::new((plan, VerifyErrors(vec![error]))));
    };
    Ok(VerifiedPlan { plan, order, predecessors, successors })
}

/// Types every expression of the plan in place (a plan writes only the types that its
/// operands do not determine), against what each place wants. Each node's expressions are
/// taken out of the plan while they are typed, so that the rest of the plan can be read.
fn type_expressions(body: &mut PlanBody, names: &Names) -> Vec<VerifyError> {
    let mut errors = Vec::new();
    let placeholder = || Expr::new(Ty::Nothing, crate::expr::ExprKind::Now);
    for index in 0..body.functions.len() {
        let mut expr = std::mem::replace(&mut body.functions[index].body, placeholder());
        let plan: &PlanBody = body;
        let function = &plan.functions[index];
        let cx = Context { body: plan, names, fn_params: Some(&function.params), constant: false };
        if let Err(message) = Checker::new(cx).check_fits(&mut expr, &function.result) {
            errors.push(VerifyError::IllTyped { at: format!("the body of function `{}`", function.name), message });
        }
        body.functions[index].body = expr;
    }
    for index in 0..body.nodes.len() {
        let mut kind = std::mem::replace(&mut body.nodes[index].kind, NodeKind::Input { source: None });
        type_node(body, names, index, &mut kind, &mut errors);
        body.nodes[index].kind = kind;
    }
    errors
}

/// Types one expression against what it is wanted as (if anything); `constant` for a
/// param's default; `what` names the place for a message.
type Check<'a> = dyn FnMut(&mut Expr, Option<&Ty>, bool, &dyn Fn() -> String) + 'a;

/// Types the expressions of one node (`kind`, taken out of node `index` of `body`).
fn type_node(body: &PlanBody, names: &Names, index: usize, kind: &mut NodeKind, errors: &mut Vec<VerifyError>) {
    let node = &body.nodes[index];
    let keyword = kind.keyword();
    let at = || format!("{keyword} `{}`", node.name);
    let mut check = |expr: &mut Expr, expected: Option<&Ty>, constant: bool, what: &dyn Fn() -> String| {
        let cx = Context { body, names, fn_params: None, constant };
        let mut checker = Checker::new(cx);
        let result = match expected {
            Some(expected) => checker.check_fits(expr, expected),
            None => checker.check(expr),
        };
        if let Err(message) = result {
            let what = what();
            let at = if what.is_empty() { at() } else { format!("{what} of {}", at()) };
            errors.push(VerifyError::IllTyped { at, message });
        }
    };
    let args = |params: &[crate::plan::Param], args: &mut [crate::expr::Named], check: &mut Check<'_>| {
        // Mismatched argument lists are reported with the node's other rules.
        if args.len() == params.len() && args.iter().zip(params).all(|(a, p)| a.name == p.name) {
            for (arg, param) in args.iter_mut().zip(params) {
                let name = arg.name.clone();
                check(&mut arg.value, Some(&param.ty), false, &|| format!("argument `{name}`"));
            }
        }
    };
    match kind {
        NodeKind::Input { .. } => {}
        NodeKind::Param { default } => check(default, Some(&node.ty), true, &|| "the default".to_owned()),
        NodeKind::Let { value } => check(value, Some(&node.ty), false, &|| "".to_owned()),
        NodeKind::Gate { condition, .. } => check(condition, Some(&Ty::Bool), false, &|| "the condition".to_owned()),
        NodeKind::Infer { model, args: given, fallback } => {
            if let Some(model) = body.model(model) {
                args(&model.inputs, given, &mut check);
                if let Some(fallback) = fallback {
                    check(fallback, Some(&model.output), false, &|| "the fallback".to_owned());
                }
            }
        }
        NodeKind::Retrieve { query, .. } => check(query, Some(&Ty::Text), false, &|| "the query".to_owned()),
        NodeKind::Review { condition, .. } => {
            if let Some(condition) = condition {
                check(condition, Some(&Ty::Bool), false, &|| "the condition".to_owned());
            }
        }
        NodeKind::Approval { rows, distinct_from } => {
            for (row, entry) in rows.iter_mut().enumerate() {
                if let Some(condition) = &mut entry.condition {
                    check(condition, Some(&Ty::Bool), false, &|| format!("the condition of row {}", row + 1));
                }
            }
            for principal in distinct_from {
                check(principal, None, false, &|| "`distinct from`".to_owned());
            }
        }
        NodeKind::Action { system, action, args: given, condition, idempotency } => {
            if let Some(target) = body.system(system).and_then(|s| s.actions.iter().find(|a| a.name == *action)) {
                args(&target.params, given, &mut check);
            }
            if let Some(condition) = condition {
                check(condition, Some(&Ty::Bool), false, &|| "the condition".to_owned());
            }
            if let Some(key) = idempotency {
                check(key, None, false, &|| "the idempotency key".to_owned());
            }
        }
        NodeKind::Emit { value } => {
            if let Some(output) = body.output(&node.name) {
                check(value, Some(&output.ty), false, &|| "".to_owned());
            }
        }
    }
}

/// Text formatted only when it is shown: the places that messages name are built for
/// every item, and shown only for the rare item that is wrong.
struct Lazy<F: Fn(&mut std::fmt::Formatter<'_>) -> std::fmt::Result>(F);

impl<F: Fn(&mut std::fmt::Formatter<'_>) -> std::fmt::Result> std::fmt::Display for Lazy<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (self.0)(f)
    }
}

struct Verifier<'p> {
    body: &'p PlanBody,
    names: &'p Names,
    errors: Vec<VerifyError>,
}

/// The index of each node by name.
pub(crate) struct Names(rustc_hash::FxHashMap<SmolStr, usize>);

impl Names {
    fn new(body: &PlanBody) -> Names {
        Names(body.nodes.iter().enumerate().map(|(i, n)| (n.name.clone(), i)).collect())
    }

    pub(crate) fn get(&self, name: &str) -> Option<usize> {
        self.0.get(name).copied()
    }
}

/// What a node reads, found in one walk over its expressions: the nodes (by index, sorted),
/// whether it reads the clock, and the places it reads (node and field path).
struct Reads<'p> {
    nodes: Vec<usize>,
    clock: bool,
    places: Vec<(usize, Vec<&'p SmolStr>)>,
}

impl<'p> Reads<'p> {
    /// What `node` reads; the places only `with_places`, as only edits need them.
    fn of(node: &'p Node, names: &Names, with_places: bool) -> Reads<'p> {
        use crate::expr::ExprKind;
        let mut reads = Reads { nodes: Vec::new(), clock: false, places: Vec::new() };
        let mut stack: Vec<&'p Expr> = node.kind.exprs();
        while let Some(expr) = stack.pop() {
            if let Some((root, path)) = expr.place() {
                if let Some(index) = names.get(root) {
                    reads.nodes.push(index);
                    if with_places {
                        reads.places.push((index, path));
                    }
                }
                continue;
            }
            match &expr.kind {
                ExprKind::Node(name) | ExprKind::Degraded(name) => reads.nodes.extend(names.get(name)),
                ExprKind::Age(name) | ExprKind::Stale(name) => {
                    reads.nodes.extend(names.get(name));
                    reads.clock = true;
                }
                // Who started the run is something the run receives, as its clock is.
                ExprKind::Now | ExprKind::StartedBy => reads.clock = true,
                _ => expr.for_each_child(|child| stack.push(child)),
            }
        }
        if let NodeKind::Review { edits, .. } = &node.kind {
            reads.nodes.extend(edits.iter().filter_map(|e| names.get(&e.node)));
        }
        reads.nodes.sort_unstable();
        reads.nodes.dedup();
        reads
    }

    /// Whether a place read overlaps the edited path: the field itself, a field inside it,
    /// or a value that contains it.
    fn reads_edited(&self, edit: &crate::plan::EditPath, names: &Names) -> bool {
        let Some(target) = names.get(&edit.node) else { return false };
        self.places.iter().any(|(node, path)| *node == target && path.iter().zip(&edit.fields).all(|(a, b)| *a == b))
    }
}

type Graph = (Vec<NodeId>, Adjacency, Adjacency);

/// Whether a monitor may watch `node` as `subject`.
fn monitored(body: &PlanBody, node: &Node, subject: crate::monitor::Subject) -> bool {
    use crate::monitor::Subject;
    let human = matches!(
        node.kind,
        NodeKind::Review { .. } | NodeKind::Approval { .. } | NodeKind::Gate { level: GateLevel::Soft, .. }
    );
    let deadlines = || node.timing.iter().flat_map(|t| &t.deadlines);
    match subject {
        Subject::Nothing | Subject::Status => false,
        Subject::Inference => match &node.kind {
            NodeKind::Infer { fallback, .. } => fallback.is_some(),
            NodeKind::Retrieve { corpus, .. } => {
                body.corpus(corpus).is_some_and(|c| c.on_mismatch == crate::plan::Mismatch::Degrade)
            }
            _ => false,
        },
        Subject::BlockingGate => matches!(node.kind, NodeKind::Gate { level: GateLevel::Block, .. }),
        Subject::HumanStep => human,
        Subject::Escalating => human && deadlines().any(|d| !d.then.is_final()),
        Subject::Ending => human && deadlines().any(|d| d.then.is_final()),
    }
}

/// Whether `names` are strictly increasing: sorted, without duplicates.
fn strictly_sorted<T: Ord>(names: impl IntoIterator<Item = T>) -> bool {
    let mut names = names.into_iter();
    let Some(mut previous) = names.next() else { return true };
    for name in names {
        if name <= previous {
            return false;
        }
        previous = name;
    }
    true
}

impl<'p> Verifier<'p> {
    fn malformed(&mut self, message: impl Into<String>) {
        self.errors.push(VerifyError::Malformed(message.into()));
    }

    fn ill_typed(&mut self, at: &dyn std::fmt::Display, message: impl Into<String>) {
        self.errors.push(VerifyError::IllTyped { at: at.to_string(), message: message.into() });
    }

    /// Checks that a list is in canonical order; `what` names it.
    fn canonical<T: Ord, W: std::fmt::Display>(
        &mut self,
        names: impl IntoIterator<Item = T>,
        what: impl FnOnce() -> W,
    ) {
        if !strictly_sorted(names) {
            self.malformed(format!("{} are not in canonical order (sorted by name, each once)", what()));
        }
    }

    fn role(&mut self, role: &str, at: &dyn std::fmt::Display) {
        if self.body.role(role).is_none() {
            self.malformed(format!("{at} names role `{role}`, which the plan does not declare"));
        }
    }

    fn label(&mut self, label: &str, at: &dyn std::fmt::Display) {
        if !self.body.has_label(label) {
            self.malformed(format!("{at} names label `{label}`, which the plan does not declare"));
        }
    }

    fn ty(&mut self, ty: &Ty, at: &dyn std::fmt::Display) {
        if let Err(message) = check_type(self.body, ty) {
            self.ill_typed(at, message);
        }
    }

    /// A type that a declaration's value may have: no step results and not nothing.
    fn value_ty(&mut self, ty: &Ty, at: &dyn std::fmt::Display) {
        if let Err(message) = check_type(self.body, ty) {
            self.ill_typed(at, message);
        }
        let mut bad = false;
        let mut current = ty;
        loop {
            match current {
                Ty::List(inner) | Ty::Optional(inner) => current = inner,
                Ty::Outcome(_) | Ty::Reason(_) | Ty::Review(_) | Ty::Approval(_) | Ty::Nothing => {
                    bad = true;
                    break;
                }
                _ => break,
            }
        }
        if bad {
            self.ill_typed(at, format!("a declared value cannot be `{ty}`"));
        }
    }

    fn declarations(&mut self) {
        let body = self.body;
        self.role(&body.flow.owner, &"the flow's `owner`");
        self.role(&body.flow.steward, &"the flow's `steward`");
        if body.flow.version.trim().is_empty() || body.flow.name.is_empty() {
            self.malformed("the flow has no name or no version");
        }
        self.canonical(body.roles.iter().map(|r| &r.name), || "the roles");
        for role in &body.roles {
            self.canonical(&role.extends, || format!("the roles role `{}` extends", role.name));
            for parent in &role.extends {
                self.role(parent, &format!("role `{}`", role.name));
            }
        }
        if let Some(cycle) = find_cycle(body.roles.iter().map(|r| (&r.name, r.extends.iter().collect()))) {
            self.malformed(format!("the roles extend each other in a cycle: {cycle}"));
        }
        self.canonical(&body.labels, || "the labels");
        self.canonical(body.enums.iter().map(|e| &e.name), || "the enums");
        for e in &body.enums {
            self.canonical(&e.variants, || format!("the variants of enum `{}`", e.name));
            if e.variants.is_empty() {
                self.malformed(format!("enum `{}` has no variants", e.name));
            }
            if body.record(&e.name).is_some() {
                self.malformed(format!("`{}` is declared both as a record and as an enum", e.name));
            }
        }
        self.canonical(body.records.iter().map(|r| &r.name), || "the records");
        for record in &body.records {
            self.canonical(record.fields.iter().map(|f| &f.name), || format!("the fields of `{}`", record.name));
            for field in &record.fields {
                let at = Lazy(|f| write!(f, "field `{}` of `{}`", field.name, record.name));
                self.value_ty(&field.ty, &at);
                self.canonical(&field.labels, || format!("the labels of {at}"));
                for label in &field.labels {
                    self.label(label, &at);
                }
            }
        }
        let contains = body.records.iter().map(|r| {
            let mut inner = Vec::new();
            for field in &r.fields {
                let mut ty = &field.ty;
                while let Ty::List(t) | Ty::Optional(t) = ty {
                    ty = t;
                }
                if let Ty::Named(name) = ty
                    && body.record(name).is_some()
                {
                    inner.push(name);
                }
            }
            (&r.name, inner)
        });
        if let Some(cycle) = find_cycle(contains) {
            self.malformed(format!("records contain each other in a cycle: {cycle}"));
        }
        self.canonical(body.sources.iter().map(|s| &s.name), || "the sources");
        for source in &body.sources {
            let at = Lazy(|f| write!(f, "source `{}`", source.name));
            self.value_ty(&source.ty, &at);
            if source.authority.trim().is_empty() {
                self.malformed(format!("{at} does not name its authority"));
            }
            if let Some(as_of) = &source.as_of {
                let ok = body.field_type(&source.ty, as_of).is_some_and(|t| *t.unwrap_optional() == Ty::Timestamp);
                if !ok {
                    self.ill_typed(
                        &at,
                        format!("`as_of` names `{as_of}`, which is not a `Timestamp` field of `{}`", source.ty),
                    );
                }
            }
        }
        self.canonical(body.models.iter().map(|m| &m.name), || "the models");
        for model in &body.models {
            let at = Lazy(|f| write!(f, "model `{}`", model.name));
            if model.version.trim().is_empty() || !is_pinned_digest(&model.digest) {
                self.malformed(format!("{at} is not pinned: it needs a version and a `sha256:` or `sha512:` digest"));
            }
            if let Some(prompt) = &model.prompt
                && encode::blake3_text(prompt.text.as_bytes()) != prompt.hash
            {
                self.malformed(format!("the prompt of {at} does not match its recorded hash"));
            }
            self.canonical(model.inputs.iter().map(|p| &p.name), || format!("the inputs of {at}"));
            for input in &model.inputs {
                self.value_ty(&input.ty, &Lazy(|f| write!(f, "input `{}` of {at}", input.name)));
            }
            self.value_ty(&model.output, &Lazy(|f| write!(f, "the output of {at}")));
            self.canonical(&model.clearance, || format!("the clearance of {at}"));
            for label in &model.clearance {
                self.label(label, &at);
            }
        }
        self.canonical(body.corpora.iter().map(|c| &c.name), || "the corpora");
        for corpus in &body.corpora {
            let at = Lazy(|f| write!(f, "corpus `{}`", corpus.name));
            if !is_snapshot(&corpus.snapshot) {
                self.malformed(format!(
                    "{at} is not pinned: its snapshot must be a digest or a version (letters, digits, `.:_+/-`)"
                ));
            }
            if corpus.authority.trim().is_empty() {
                self.malformed(format!("{at} does not name its authority"));
            }
            if !matches!(&corpus.document, Ty::Named(record) if body.record(record).is_some()) {
                self.ill_typed(
                    &at,
                    format!("its documents are `{}`, which is not a record of the plan", corpus.document),
                );
            }
            if corpus.freshness.is_some_and(|f| f <= 0) {
                self.malformed(format!("the freshness of {at} is not a positive duration"));
            }
            for (list, what) in [(&corpus.labels, "labels"), (&corpus.clearance, "clearance")] {
                self.canonical(list, || format!("the {what} of {at}"));
                for label in list {
                    self.label(label, &at);
                }
            }
        }
        self.canonical(body.systems.iter().map(|s| &s.name), || "the systems");
        for system in &body.systems {
            let at = Lazy(|f| write!(f, "system `{}`", system.name));
            self.canonical(&system.clearance, || format!("the clearance of {at}"));
            for label in &system.clearance {
                self.label(label, &at);
            }
            self.canonical(system.actions.iter().map(|a| &a.name), || format!("the actions of {at}"));
            for action in &system.actions {
                let at = Lazy(|f| write!(f, "action `{}.{}`", system.name, action.name));
                self.canonical(action.params.iter().map(|p| &p.name), || format!("the parameters of {at}"));
                for param in &action.params {
                    self.value_ty(&param.ty, &Lazy(|f| write!(f, "parameter `{}` of {at}", param.name)));
                }
                if action.result != Ty::Nothing {
                    self.value_ty(&action.result, &Lazy(|f| write!(f, "the result of {at}")));
                }
            }
        }
        self.canonical(body.functions.iter().map(|f| &f.name), || "the functions");
        for function in &body.functions {
            let at = Lazy(|f| write!(f, "function `{}`", function.name));
            for param in &function.params {
                self.value_ty(&param.ty, &Lazy(|f| write!(f, "parameter `{}` of {at}", param.name)));
            }
            self.value_ty(&function.result, &Lazy(|f| write!(f, "the result of {at}")));
        }
        let calls = body.functions.iter().map(|f| {
            let mut called = Vec::new();
            f.body.walk(&mut |e| {
                if let crate::expr::ExprKind::Call { function, .. } = &e.kind {
                    called.push(function);
                }
            });
            (&f.name, called)
        });
        if let Some(cycle) = find_cycle(calls) {
            self.malformed(format!("functions call each other in a cycle: {cycle}"));
        }
        self.canonical(body.outputs.iter().map(|o| &o.name), || "the outputs");
        for output in &body.outputs {
            self.value_ty(&output.ty, &Lazy(|f| write!(f, "output `{}`", output.name)));
        }
        self.canonical(body.grants.iter().map(|g| (g.kind, &g.target)), || "the grants");
        for grant in &body.grants {
            let at = match &grant.target {
                Some(target) => format!("the grant `{} {target}`", grant.kind.as_str()),
                None => format!("the grant `{}`", grant.kind.as_str()),
            };
            self.canonical(&grant.roles, || format!("the roles of {at}"));
            if grant.roles.is_empty() {
                self.malformed(format!("{at} names no role"));
            }
            for role in &grant.roles {
                self.role(role, &at);
            }
            match (grant.kind, &grant.target) {
                (GrantKind::View, Some(label)) => self.label(label, &at),
                (GrantKind::Override, Some(gate)) => {
                    let ok = matches!(
                        body.node(gate).map(|n| &n.kind),
                        Some(NodeKind::Gate { level: GateLevel::Block, .. })
                    );
                    if !ok {
                        self.malformed(format!("{at} names no `block` gate of the flow"));
                    }
                }
                (GrantKind::View | GrantKind::Override, None) => self.malformed(format!("{at} has no target")),
                (_, Some(_)) => self.malformed(format!("{at} takes no target")),
                (_, None) => {}
            }
        }
    }

    fn nodes(&mut self) {
        let body = self.body;
        self.canonical(body.nodes.iter().map(|n| &n.name), || "the nodes");
        for node in &body.nodes {
            self.node(node);
        }
        self.monitors();
    }

    /// The monitors: by name; each metric of what the plan has (a degraded step is an infer
    /// step with a fallback, an escalated step has a deadline that escalates, …); thresholds
    /// of the metric's measure that can be crossed; windows in whole minutes; routes that are
    /// roles of the plan or channels.
    fn monitors(&mut self) {
        use crate::monitor::{CHANNELS, FINAL_STATUSES, LONGEST_WINDOW, Measure, QUANTILES, Subject};
        let body = self.body;
        self.canonical(body.monitors.iter().map(|m| &m.name), || "the monitors");
        for monitor in &body.monitors {
            let at = Lazy(|f| write!(f, "monitor `{}`", monitor.name));
            let (subject, required) = monitor.metric.subject();
            let fits = match (&monitor.subject, subject) {
                (None, _) => !required,
                (Some(_), Subject::Nothing) => false,
                (Some(status), Subject::Status) => FINAL_STATUSES.contains(&status.as_str()),
                (Some(step), subject) => body.node(step).is_some_and(|node| monitored(body, node, subject)),
            };
            if !fits {
                self.malformed(format!("{at} watches `{}`, which the flow does not have", monitor.metric_text()));
            }
            let latency = monitor.metric.measure() == Measure::Duration;
            if latency != monitor.quantile.is_some_and(|q| QUANTILES.contains(&q)) {
                self.malformed(format!("{at}: a quantile goes with a latency, and only there"));
            }
            if monitor.window <= 0 || monitor.window > LONGEST_WINDOW || monitor.window % 60 != 0 {
                self.malformed(format!("{at}: its window must be whole minutes, at most a year"));
            }
            let crossable = match monitor.metric.measure() {
                Measure::Count => monitor.threshold >= 0 && (monitor.above || monitor.threshold > 0),
                Measure::Rate => {
                    (0..=1_000_000).contains(&monitor.threshold)
                        && if monitor.above { monitor.threshold < 1_000_000 } else { monitor.threshold > 0 }
                }
                Measure::Duration => monitor.above && monitor.threshold > 0,
            };
            if !crossable {
                self.malformed(format!("{at}: its threshold can never be crossed"));
            }
            self.canonical(&monitor.routes, || format!("the routes of {at}"));
            if monitor.routes.is_empty() {
                self.malformed(format!("{at} alerts no one"));
            }
            for route in &monitor.routes {
                if !CHANNELS.contains(&route.as_str()) {
                    self.role(route, &at);
                }
            }
        }
    }

    /// A human step's deadlines: only on a step that waits for people, positive and
    /// increasing, nothing after one that ends the step, outcomes and reasons of the step,
    /// escalation roles of the plan, positive reminders in order.
    fn timing(&mut self, node: &'p Node, timing: &Timing) {
        let at = Lazy(|f| write!(f, "{} `{}`", node.kind.keyword(), node.name));
        let (outcomes, reasons): (Vec<&str>, Option<&[SmolStr]>) = match &node.kind {
            NodeKind::Review { outcomes, reasons, .. } => {
                (outcomes.iter().map(SmolStr::as_str).collect(), Some(reasons))
            }
            NodeKind::Gate { level: GateLevel::Soft, .. } | NodeKind::Approval { .. } => {
                (vec!["approve", "reject"], None)
            }
            _ => {
                self.malformed(format!(
                    "{at} has deadlines, but only a review, soft gate or approval waits for people"
                ));
                return;
            }
        };
        if timing.deadlines.is_empty() && timing.reminders.is_empty() && !timing.forever {
            self.malformed(format!("{at}: an empty `timing` is written as none"));
        }
        let mut previous = 0;
        for (index, deadline) in timing.deadlines.iter().enumerate() {
            if deadline.after > crate::plan::LONGEST_DEADLINE {
                self.malformed(format!("{at}: a deadline longer than 100 years"));
            }
            if deadline.after <= previous {
                self.malformed(format!("{at}: its deadlines must be positive and increasing"));
            }
            previous = deadline.after;
            if index + 1 < timing.deadlines.len() && deadline.then.is_final() {
                self.malformed(format!("{at}: a deadline follows the one that ends the step"));
            }
            match &deadline.then {
                Timeout::Escalate { roles } => {
                    self.canonical(roles, || format!("the escalation roles of {at}"));
                    if roles.is_empty() {
                        self.malformed(format!("{at} escalates to no role"));
                    }
                    for role in roles {
                        self.role(role, &at);
                    }
                }
                Timeout::Decide { outcome, reason } => {
                    if !outcomes.contains(&outcome.as_str()) {
                        self.malformed(format!(
                            "{at}: a deadline decides `{outcome}`, which is not one of its outcomes"
                        ));
                    }
                    let fits = match (reasons, reason) {
                        (Some(reasons), Some(reason)) => reasons.contains(reason),
                        (Some(_), None) => false,
                        // The default code is written as none, so that one meaning has one hash.
                        (None, Some(reason)) => {
                            reason != "deadline"
                                && !reason.is_empty()
                                && reason.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                        }
                        (None, None) => true,
                    };
                    if !fits {
                        self.malformed(format!("{at}: a deadline decides it without a reason it has"));
                    }
                }
                Timeout::Block => {}
            }
        }
        if !strictly_sorted(&timing.reminders)
            || timing.reminders.first().is_some_and(|r| *r <= 0)
            || timing.reminders.last().is_some_and(|r| *r > crate::plan::LONGEST_DEADLINE)
        {
            self.malformed(format!("{at}: its reminders must be positive, sorted and distinct"));
        }
        if timing.forever && timing.ends() {
            self.malformed(format!("{at} may wait forever, but a deadline ends it"));
        }
    }

    /// The rules of a node other than the types of its expressions (which
    /// [`type_expressions`] checked).
    fn node(&mut self, node: &'p Node) {
        let body = self.body;
        let name = &node.name;
        let at = Lazy(|f| write!(f, "{} `{name}`", node.kind.keyword()));
        self.ty(&node.ty, &at);
        if !node.regardless.is_empty() {
            if !node.kind.is_effect() {
                self.malformed(format!("{at} runs regardless of approvals, but only an action or emit can"));
            }
            self.canonical(&node.regardless, || format!("the approvals {at} runs regardless of"));
            for approval in &node.regardless {
                if !matches!(body.node(approval).map(|n| &n.kind), Some(NodeKind::Approval { .. })) {
                    self.malformed(format!("{at} runs regardless of `{approval}`, which is no approval of the flow"));
                }
            }
        }
        if let Some(timing) = &node.timing {
            self.timing(node, timing);
        }
        let expect_ty = |v: &mut Self, ty: &Ty| {
            if &node.ty != ty {
                v.ill_typed(&at, format!("gives `{}`, but is recorded as giving `{}`", ty, node.ty));
            }
        };
        match &node.kind {
            NodeKind::Input { source } => {
                self.value_ty(&node.ty, &at);
                if let Some(source) = source {
                    match body.source(source) {
                        Some(s) if s.ty == node.ty => {}
                        Some(s) => {
                            self.ill_typed(&at, format!("is `{}`, but source `{source}` gives `{}`", node.ty, s.ty))
                        }
                        None => self
                            .malformed(format!("{at} comes from source `{source}`, which the plan does not declare")),
                    }
                }
            }
            NodeKind::Param { .. } | NodeKind::Let { .. } => self.value_ty(&node.ty, &at),
            NodeKind::Gate { level, approvers, .. } => {
                expect_ty(self, &Ty::Nothing);
                self.canonical(approvers, || format!("the approvers of {at}"));
                for role in approvers {
                    self.role(role, &at);
                }
                if (*level == GateLevel::Soft) == approvers.is_empty() {
                    self.malformed(format!("{at}: a `soft` gate, and only a `soft` gate, names who may approve it"));
                }
            }
            NodeKind::Infer { model, args, .. } => {
                let Some(model) = body.model(model) else {
                    self.malformed(format!("{at} calls model `{model}`, which the plan does not declare"));
                    return;
                };
                expect_ty(self, &model.output);
                self.canonical(args.iter().map(|a| &a.name), || format!("the arguments of {at}"));
                let given: Vec<&SmolStr> = args.iter().map(|a| &a.name).collect();
                let wanted: Vec<&SmolStr> = model.inputs.iter().map(|p| &p.name).collect();
                if given != wanted {
                    self.ill_typed(
                        &at,
                        format!("model `{}` takes the arguments {wanted:?}, but is given {given:?}", model.name),
                    );
                }
            }
            NodeKind::Retrieve { corpus, top, .. } => {
                let Some(corpus) = body.corpus(corpus) else {
                    self.malformed(format!("{at} searches corpus `{corpus}`, which the plan does not declare"));
                    return;
                };
                expect_ty(self, &Ty::List(Box::new(corpus.document.clone())));
                if *top == 0 || *top > MAX_TOP {
                    self.malformed(format!("{at} asks for {top} documents: at least 1 and at most {MAX_TOP}"));
                }
            }
            NodeKind::Review { roles, condition, outcomes, reasons, edits } => {
                expect_ty(self, &Ty::Review(name.clone()));
                self.canonical(roles, || format!("the roles of {at}"));
                self.canonical(outcomes, || format!("the outcomes of {at}"));
                self.canonical(reasons, || format!("the reasons of {at}"));
                self.canonical(edits, || format!("the edits of {at}"));
                if roles.is_empty() || outcomes.is_empty() || reasons.is_empty() {
                    self.malformed(format!("{at} needs roles, outcomes and reasons"));
                }
                for role in roles {
                    self.role(role, &at);
                }
                if condition.is_some() && outcomes.iter().any(|o| o == "skipped") {
                    self.malformed(format!("{at} has a condition, so `skipped` cannot be one of its outcomes"));
                }
                for edit in edits {
                    let target = body.node(&edit.node);
                    if !matches!(target.map(|n| &n.kind), Some(NodeKind::Let { .. } | NodeKind::Infer { .. })) {
                        self.malformed(format!(
                            "{at} may edit `{edit}`, but only a `let` or `infer` result can be edited"
                        ));
                        continue;
                    }
                    let mut ty = target.map(|n| n.ty.clone()).unwrap_or(Ty::Nothing);
                    for field in &edit.fields {
                        match body.field_type(&ty, field) {
                            Some(next) => ty = next.into_owned(),
                            None => {
                                self.ill_typed(&at, format!("may edit `{edit}`, but `{ty}` has no field `{field}`"));
                                break;
                            }
                        }
                    }
                }
            }
            NodeKind::Approval { rows, distinct_from } => {
                expect_ty(self, &Ty::Approval(name.clone()));
                if rows.is_empty() {
                    self.malformed(format!("{at} has no rows"));
                }
                for (index, row) in rows.iter().enumerate() {
                    let row_at = format!("row {} of {at}", index + 1);
                    if row.condition.is_none() && index + 1 < rows.len() {
                        self.malformed(format!("{row_at} is `otherwise`, so the rows after it never apply"));
                    }
                    self.canonical(&row.requirement, || format!("the requirement of {row_at}"));
                    let auto = row.requirement.contains(&Requirement::Auto);
                    if row.requirement.is_empty() || (auto && row.requirement.len() > 1) {
                        self.malformed(format!("{row_at} must be `auto` alone or name approvers"));
                    }
                    for term in &row.requirement {
                        match term {
                            Requirement::Auto => {}
                            Requirement::Count { count, role } => {
                                if *count == 0 {
                                    self.malformed(format!("{row_at} requires 0 approvers"));
                                }
                                self.role(role, &row_at);
                            }
                            Requirement::AllOf(roles) => {
                                self.canonical(roles, || format!("the roles of `all of` in {row_at}"));
                                if roles.is_empty() {
                                    self.malformed(format!("{row_at} has an empty `all of`"));
                                }
                                for role in roles {
                                    self.role(role, &row_at);
                                }
                            }
                        }
                    }
                }
                for principal in distinct_from {
                    let ok = matches!(principal.ty.unwrap_optional(), Ty::Principal)
                        || principal.ty == Ty::List(Box::new(Ty::Principal));
                    if !ok {
                        self.ill_typed(&at, format!("`distinct from` names principals, not `{}`", principal.ty));
                    }
                }
            }
            NodeKind::Action { system, action, args, condition, idempotency } => {
                let Some(target) = body.system(system).and_then(|s| s.actions.iter().find(|a| a.name == *action))
                else {
                    self.malformed(format!("{at} calls `{system}.{action}`, which the plan does not declare"));
                    return;
                };
                let result = match (&target.result, condition) {
                    (Ty::Nothing, _) => Ty::Nothing,
                    (ty, Some(_)) => ty.clone().optional(),
                    (ty, None) => ty.clone(),
                };
                expect_ty(self, &result);
                self.canonical(args.iter().map(|a| &a.name), || format!("the arguments of {at}"));
                let given: Vec<&SmolStr> = args.iter().map(|a| &a.name).collect();
                let wanted: Vec<&SmolStr> = target.params.iter().map(|p| &p.name).collect();
                if given != wanted {
                    self.ill_typed(
                        &at,
                        format!("`{system}.{action}` takes the arguments {wanted:?}, but is given {given:?}"),
                    );
                }
                if let Some(key) = idempotency
                    && !matches!(key.ty, Ty::Text | Ty::Int)
                {
                    self.ill_typed(&at, format!("an idempotency key is `Text` or `Int`, not `{}`", key.ty));
                }
            }
            NodeKind::Emit { .. } => {
                expect_ty(self, &Ty::Nothing);
                if body.output(name).is_none() {
                    self.malformed(format!("{at} emits no output of the flow: there is no output `{name}`"));
                }
            }
        }
    }

    /// Checks the edges and proves the graph properties; returns the graph when the edges
    /// are sound.
    fn graph(&mut self) -> Option<Graph> {
        let body = self.body;
        let count = body.nodes.len();
        let names = self.names;
        self.canonical(&body.edges, || "the edges");
        let mut edges: Vec<(usize, usize, EdgeKind)> = Vec::with_capacity(body.edges.len());
        let mut sound = true;
        for edge in &body.edges {
            let (Some(from), Some(to)) = (names.get(&edge.from), names.get(&edge.to)) else {
                self.malformed(format!("an edge joins `{}` and `{}`, which are not both nodes", edge.from, edge.to));
                sound = false;
                continue;
            };
            if from == to {
                self.malformed(format!("`{}` has an edge to itself", edge.from));
                sound = false;
                continue;
            }
            edges.push((from, to, edge.kind));
        }
        let successors = Adjacency::build(count, &edges);
        let reversed: Vec<(usize, usize, EdgeKind)> = edges.iter().map(|&(from, to, kind)| (to, from, kind)).collect();
        let predecessors = Adjacency::build(count, &reversed);
        edges.sort_unstable();
        edges.dedup();
        let edits = body.nodes.iter().any(|n| matches!(&n.kind, NodeKind::Review { edits, .. } if !edits.is_empty()));
        let summaries: Vec<Reads<'p>> = body.nodes.iter().map(|node| Reads::of(node, names, edits)).collect();
        // Data edges: exactly the reads.
        let mut reads: Vec<(usize, usize)> = Vec::new();
        for (to, summary) in summaries.iter().enumerate() {
            for &from in &summary.nodes {
                reads.push((from, to));
                if edges.binary_search(&(from, to, EdgeKind::Data)).is_err() {
                    let from_name = &body.nodes[from].name;
                    self.errors.push(VerifyError::MissingEdge {
                        from: from_name.clone(),
                        to: body.nodes[to].name.clone(),
                        kind: EdgeKind::Data,
                        why: format!("reads `{from_name}`"),
                    });
                }
            }
        }
        reads.sort_unstable();
        for &(from, to, kind) in &edges {
            let (source, target) = (&body.nodes[from], &body.nodes[to]);
            let justified = match kind {
                EdgeKind::Data => reads.binary_search(&(from, to)).is_ok(),
                EdgeKind::Governance => source.kind.is_governance() && target.kind.is_effect(),
                EdgeKind::Edited => match &source.kind {
                    NodeKind::Review { edits, .. } => edits.iter().any(|e| summaries[to].reads_edited(e, names)),
                    _ => false,
                },
            };
            if !justified {
                self.malformed(format!(
                    "the {} edge from `{}` to `{}` stands for nothing: {}",
                    kind.as_str(),
                    source.name,
                    target.name,
                    match kind {
                        EdgeKind::Data => format!("`{}` does not read `{}`", target.name, source.name),
                        EdgeKind::Governance =>
                            "governance edges lead from a gate, review or approval to an action or emit".to_owned(),
                        EdgeKind::Edited => format!("`{}` reads no field that `{}` may edit", target.name, source.name),
                    }
                ));
            }
        }
        if !sound {
            return None;
        }
        let order = match topological_order(&predecessors, &successors) {
            Ok(order) => order,
            Err(remaining) => {
                let cycle = find_graph_cycle(&successors, &remaining);
                let path = cycle.iter().map(|&(n, kind)| (body.nodes[n].name.clone(), kind)).collect();
                self.errors.push(VerifyError::Cycle(path));
                return None;
            }
        };
        self.reachability(&successors, &summaries);
        self.outputs();
        self.governance(&predecessors);
        self.outcomes(&order, &summaries);
        self.edits(&predecessors, &summaries);
        Some((order, predecessors, successors))
    }

    /// Every action and emit reads the outcome of every approval (`spend.approved`, directly
    /// or through what it reads), or says it runs regardless of it: an approval that was rejected
    /// completes with `approved == false` and the run goes on, so an effect that does not
    /// look would act on a rejected request.
    fn outcomes(&mut self, order: &[NodeId], summaries: &[Reads<'_>]) {
        let body = self.body;
        let approvals: Vec<usize> = body
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| matches!(n.kind, NodeKind::Approval { .. }))
            .map(|(i, _)| i)
            .collect();
        if approvals.is_empty() {
            return;
        }
        // By node: the approvals whose outcome it reads.
        let mut reads: Vec<Vec<usize>> = vec![Vec::new(); body.nodes.len()];
        for &id in order {
            let i = id.index();
            let node = &body.nodes[i];
            let mut read: Vec<usize> = Vec::new();
            let mut stack = node.kind.exprs();
            while let Some(expr) = stack.pop() {
                match expr.place() {
                    Some((root, path)) => {
                        if path.first().is_some_and(|f| *f == "approved")
                            && let Some(index) = self.names.get(root)
                            && approvals.contains(&index)
                        {
                            read.push(index);
                        }
                    }
                    None => expr.for_each_child(|child| stack.push(child)),
                }
            }
            for &n in &summaries[i].nodes {
                read.extend(reads[n].iter().copied());
            }
            read.sort_unstable();
            read.dedup();
            if node.kind.is_effect() {
                for &a in &approvals {
                    let approval = &body.nodes[a].name;
                    if !read.contains(&a) && !node.regardless.contains(approval) {
                        self.errors.push(VerifyError::OutcomeUnread {
                            effect: (node.name.clone(), node.kind.keyword()),
                            approval: approval.clone(),
                        });
                    }
                }
            }
            reads[i] = read;
        }
    }

    /// Every node is reached from what the run receives: its inputs and params, the
    /// decisions of people (reviews and approvals), and its clock.
    fn reachability(&mut self, successors: &Adjacency, summaries: &[Reads<'_>]) {
        let body = self.body;
        let mut reached = vec![false; body.nodes.len()];
        let mut stack: Vec<usize> = Vec::new();
        for (index, node) in body.nodes.iter().enumerate() {
            let source = matches!(
                node.kind,
                NodeKind::Input { .. } | NodeKind::Param { .. } | NodeKind::Review { .. } | NodeKind::Approval { .. }
            ) || summaries[index].clock;
            if source {
                reached[index] = true;
                stack.push(index);
            }
        }
        while let Some(index) = stack.pop() {
            for &(next, _) in &successors[index] {
                if !reached[next.index()] {
                    reached[next.index()] = true;
                    stack.push(next.index());
                }
            }
        }
        for (index, node) in body.nodes.iter().enumerate() {
            if !reached[index] {
                self.errors.push(VerifyError::Unreachable(node.name.clone(), node.kind.keyword()));
            }
        }
    }

    fn outputs(&mut self) {
        let body = self.body;
        for output in &body.outputs {
            if !matches!(body.node(&output.name).map(|n| &n.kind), Some(NodeKind::Emit { .. })) {
                self.errors.push(VerifyError::NotEmitted(output.name.clone()));
            }
        }
    }

    /// Governance dominance: every gate, review and approval precedes every action and
    /// emit. A node runs only after everything it waits for, so an effect that has every
    /// governance step among its ancestors cannot run before any of them decided.
    fn governance(&mut self, predecessors: &Adjacency) {
        let body = self.body;
        let governance: Vec<usize> =
            body.nodes.iter().enumerate().filter(|(_, n)| n.kind.is_governance()).map(|(i, _)| i).collect();
        for (index, node) in body.nodes.iter().enumerate() {
            if !node.kind.is_effect() {
                continue;
            }
            let ancestors = ancestors(predecessors, index, |_| true);
            for &g in &governance {
                if !ancestors[g] {
                    let g = &body.nodes[g];
                    self.errors.push(VerifyError::Bypass {
                        effect: (node.name.clone(), node.kind.keyword()),
                        governance: (g.name.clone(), g.kind.keyword()),
                    });
                }
            }
        }
    }

    /// Every reader of a field that a review may edit, other than what the review itself
    /// waits for, runs after the review.
    fn edits(&mut self, predecessors: &Adjacency, summaries: &[Reads<'_>]) {
        let body = self.body;
        for (review_index, review) in body.nodes.iter().enumerate() {
            let NodeKind::Review { edits, .. } = &review.kind else { continue };
            if edits.is_empty() {
                continue;
            }
            let before = ancestors(predecessors, review_index, |kind| kind != EdgeKind::Edited);
            for (index, reader) in body.nodes.iter().enumerate() {
                if index == review_index || before[index] {
                    continue;
                }
                let Some(edit) = edits.iter().find(|edit| summaries[index].reads_edited(edit, self.names)) else {
                    continue;
                };
                if !ancestors(predecessors, index, |_| true)[review_index] {
                    self.errors.push(VerifyError::MissingEdge {
                        from: review.name.clone(),
                        to: reader.name.clone(),
                        kind: EdgeKind::Edited,
                        why: format!("reads `{edit}`, which review `{}` may edit", review.name),
                    });
                }
            }
        }
    }
}

/// Whether `digest` pins a model's content: `sha256:` and 64 hexadecimal digits, or
/// `sha512:` and 128. The compiler checks a model's `digest` with it, the verifier a plan's.
pub fn is_pinned_digest(digest: &str) -> bool {
    let (algorithm, hex) = digest.split_once(':').unwrap_or(("", ""));
    let length = match algorithm {
        "sha256" => 64,
        "sha512" => 128,
        _ => return false,
    };
    hex.len() == length && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether `snapshot` names a corpus's snapshot: a digest or a version, 1 to 128 letters,
/// digits and `.`, `_`, `:`, `+`, `/`, `-`. The compiler checks a corpus's pin with it, the
/// verifier a plan's, and the runtime what a retriever says it searched (recorded for
/// everyone who may see the run: it cannot carry much of what the retriever was sent).
pub fn is_snapshot(snapshot: &str) -> bool {
    (1..=128).contains(&snapshot.len()) && snapshot.bytes().all(|b| b.is_ascii_alphanumeric() || b".:_+/-".contains(&b))
}

/// The nodes from which `start` can be reached through edges `follow` accepts.
fn ancestors(predecessors: &Adjacency, start: usize, follow: impl Fn(EdgeKind) -> bool) -> Vec<bool> {
    let mut seen = vec![false; predecessors.len()];
    let mut stack = vec![start];
    while let Some(index) = stack.pop() {
        for &(previous, kind) in &predecessors[index] {
            if follow(kind) && !seen[previous.index()] {
                seen[previous.index()] = true;
                stack.push(previous.index());
            }
        }
    }
    seen
}

/// Kahn's algorithm, taking the smallest ready node first; the nodes left when it stops
/// lie on or after a cycle.
fn topological_order(predecessors: &Adjacency, successors: &Adjacency) -> Result<Vec<NodeId>, Vec<usize>> {
    let mut waiting: Vec<usize> = (0..predecessors.len()).map(|i| predecessors[i].len()).collect();
    let mut ready: BinaryHeap<Reverse<usize>> =
        waiting.iter().enumerate().filter(|(_, n)| **n == 0).map(|(i, _)| Reverse(i)).collect();
    let mut order = Vec::with_capacity(waiting.len());
    while let Some(Reverse(index)) = ready.pop() {
        order.push(NodeId(index as u32));
        for &(next, _) in &successors[index] {
            waiting[next.index()] -= 1;
            if waiting[next.index()] == 0 {
                ready.push(Reverse(next.index()));
            }
        }
    }
    if order.len() == waiting.len() {
        Ok(order)
    } else {
        Err(waiting.iter().enumerate().filter(|(_, n)| **n > 0).map(|(i, _)| i).collect())
    }
}

/// A shortest cycle among `remaining` (nodes Kahn's algorithm could not order), through
/// the smallest node that lies on a cycle: each node with the kind of its edge to the next.
fn find_graph_cycle(successors: &Adjacency, remaining: &[usize]) -> Vec<(usize, EdgeKind)> {
    let mut graph: petgraph::graph::DiGraph<usize, EdgeKind> = petgraph::graph::DiGraph::new();
    let index: BTreeMap<usize, petgraph::graph::NodeIndex> =
        remaining.iter().map(|&n| (n, graph.add_node(n))).collect();
    for (&n, &from) in &index {
        for &(next, kind) in &successors[n] {
            if let Some(&to) = index.get(&next.index()) {
                graph.add_edge(from, to, kind);
            }
        }
    }
    let on_cycle: BTreeSet<usize> =
        petgraph::algo::tarjan_scc(&graph).into_iter().filter(|c| c.len() > 1).flatten().map(|n| graph[n]).collect();
    let Some(&start) = on_cycle.iter().next() else { return Vec::new() };
    // Breadth-first from `start` back to itself.
    let mut parent: BTreeMap<usize, (usize, EdgeKind)> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(n) = queue.pop_front() {
        let mut nexts: Vec<(NodeId, EdgeKind)> = successors[n].to_vec();
        nexts.sort();
        for (next, kind) in nexts {
            let next = next.index();
            if !on_cycle.contains(&next) {
                continue;
            }
            if next == start {
                let mut path = vec![(n, kind)];
                let mut current = n;
                while current != start {
                    let (previous, kind) = parent[&current];
                    path.push((previous, kind));
                    current = previous;
                }
                path.reverse();
                return path;
            }
            if let std::collections::btree_map::Entry::Vacant(entry) = parent.entry(next) {
                entry.insert((n, kind));
                queue.push_back(next);
            }
        }
    }
    Vec::new()
}

/// A cycle in a relation between names, written `a → b → a`.
fn find_cycle<'a>(relation: impl Iterator<Item = (&'a SmolStr, Vec<&'a SmolStr>)>) -> Option<String> {
    let relation: BTreeMap<&SmolStr, Vec<&SmolStr>> = relation.collect();
    // 0: unvisited, 1: on the path, 2: done.
    let mut state: BTreeMap<&SmolStr, u8> = BTreeMap::new();
    for &start in relation.keys() {
        if state.get(start).copied().unwrap_or(0) != 0 {
            continue;
        }
        let mut path: Vec<(&SmolStr, usize)> = vec![(start, 0)];
        state.insert(start, 1);
        while let Some((name, next)) = path.last_mut() {
            let targets = relation.get(*name).map(Vec::as_slice).unwrap_or(&[]);
            if *next >= targets.len() {
                state.insert(*name, 2);
                path.pop();
                continue;
            }
            let target = targets[*next];
            *next += 1;
            match state.get(target).copied().unwrap_or(0) {
                1 => {
                    let from = path.iter().position(|(n, _)| *n == target).unwrap_or(0);
                    let mut names: Vec<String> = path[from..].iter().map(|(n, _)| format!("`{n}`")).collect();
                    names.push(format!("`{target}`"));
                    return Some(names.join(" → "));
                }
                0 if relation.contains_key(target) => {
                    state.insert(target, 1);
                    path.push((target, 0));
                }
                _ => {}
            }
        }
    }
    None
}
