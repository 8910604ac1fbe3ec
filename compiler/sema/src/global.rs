//! Checks that look across every file of the workspace: cycles of imports, of role
//! inheritance, of record types containing themselves, and of functions calling
//! themselves (`E1005`, `E1006`, `E1016`).

use std::collections::{BTreeMap, BTreeSet};

use flow_diagnostics::{Code, Diagnostic, FileId, Label, Span};
use flow_syntax::ast::{self, ExprKind as A, ItemKind};
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

use crate::db::{Db, DeclId};
use crate::names::{DefKind, imports, parse, scope};
use crate::signatures::{Decl, decls};
use crate::ty::Ty;

/// Diagnostics of the workspace-wide checks, by the file they are reported in.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct GlobalChecks {
    pub by_file: BTreeMap<FileId, Vec<Diagnostic>>,
}

/// A node of one of the graphs: a file or a declaration, with the name to show.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Node {
    key: DeclId,
    name: String,
    span: Span,
}

#[salsa::tracked(returns(ref))]
pub fn global_checks(db: &dyn Db) -> GlobalChecks {
    let workspace = db.workspace();
    let files = workspace.sources(db).clone();
    let mut result = GlobalChecks::default();

    // Imports.
    let mut graph = Graphs::default();
    for file in files.iter() {
        let id = file.id(db);
        let from = graph.node(Node {
            key: DeclId { file: id, index: u32::MAX },
            name: file.path(db).clone(),
            span: Span::default(),
        });
        for import in &imports(db, *file).imports {
            let Some(target) = import.target else { continue };
            let to = graph.node(Node {
                key: DeclId { file: target.id(db), index: u32::MAX },
                name: target.path(db).clone(),
                span: Span::default(),
            });
            graph.edge(from, to, id, import.span);
        }
    }
    for cycle in graph.cycles() {
        let (file, span) = cycle[0].1;
        let path: Vec<String> = cycle
            .iter()
            .map(|(node, _)| format!("`{}`", graph.graph[*node].name))
            .chain([format!("`{}`", graph.graph[cycle[0].0].name)])
            .collect();
        let mut diagnostic = Diagnostic::new(
            Code::E1005,
            file,
            span,
            format!("these files import each other in a cycle: {}", path.join(" → ")),
        )
        .with_help("move the declarations both files need into a third file that both import");
        for (_, (file, span)) in cycle.iter().skip(1) {
            diagnostic.secondary.push(Label::new(*file, *span, "imported here"));
        }
        result.by_file.entry(file).or_default().push(diagnostic);
    }

    // Roles, records and functions.
    let mut roles = Graphs::default();
    let mut records = Graphs::default();
    let mut functions = Graphs::default();
    for file in files.iter() {
        let id = file.id(db);
        let parsed = parse(db, *file);
        let file_scope = scope(db, *file);
        for (index, decl) in decls(db, *file).items.iter().enumerate() {
            let Some(decl) = decl else { continue };
            let item = &parsed.file.items[index];
            let Some(name) = item.kind.name() else { continue };
            let key = DeclId { file: id, index: index as u32 };
            let node = Node { key, name: name.text.to_string(), span: name.span };
            match (decl, &item.kind) {
                (Decl::Role(sig), ItemKind::Role(role)) => {
                    let from = roles.node(node);
                    for (parent, written) in sig.extends.iter().zip(&role.extends) {
                        let to = roles.node_for(db, *parent);
                        roles.edge(from, to, id, written.span);
                    }
                }
                (Decl::Record(sig), ItemKind::Type(ty)) => {
                    let from = records.node(node);
                    for (field, written) in sig.fields.iter().zip(&ty.fields) {
                        for contained in contained_records(&field.ty) {
                            let to = records.node_for(db, contained);
                            records.edge(from, to, id, written.ty.span);
                        }
                    }
                }
                (Decl::Fn(_), ItemKind::Fn(function)) => {
                    let from = functions.node(node);
                    for callee in calls(&function.body) {
                        if let Some(def) = file_scope.get(&callee.text).filter(|d| d.kind == DefKind::Fn) {
                            let to = functions.node_for(db, def.id);
                            functions.edge(from, to, id, callee.span);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    for (graph, code, what, verb, help) in [
        (
            &roles,
            Code::E1006,
            "these roles extend each other in a cycle",
            "extends",
            "role inheritance must not loop; remove one of these `extends`",
        ),
        (
            &records,
            Code::E1016,
            "these types contain each other in a cycle",
            "contains",
            "a record cannot contain itself, directly or through other types",
        ),
        (
            &functions,
            Code::E1016,
            "these functions call each other in a cycle",
            "calls",
            "functions may not call themselves, directly or through others",
        ),
    ] {
        for cycle in graph.cycles() {
            let first = &graph.graph[cycle[0].0];
            let path: Vec<String> = cycle
                .iter()
                .map(|(node, _)| format!("`{}`", graph.graph[*node].name))
                .chain([format!("`{}`", first.name)])
                .collect();
            let mut diagnostic =
                Diagnostic::new(code, first.key.file, first.span, format!("{what}: {}", path.join(" → ")))
                    .with_help(help);
            for (position, (node, (file, span))) in cycle.iter().enumerate() {
                let next = cycle.get(position + 1).map_or(cycle[0].0, |(n, _)| *n);
                let (this, next) = (&graph.graph[*node].name, &graph.graph[next].name);
                diagnostic.secondary.push(Label::new(*file, *span, format!("`{this}` {verb} `{next}` here")));
            }
            result.by_file.entry(first.key.file).or_default().push(diagnostic);
        }
    }
    result
}

/// The record types a field of type `ty` contains.
fn contained_records(ty: &Ty) -> Vec<DeclId> {
    match ty {
        Ty::Record(record) => vec![record.id],
        Ty::Optional(inner) | Ty::List(inner) => contained_records(inner),
        _ => Vec::new(),
    }
}

/// The names called in an expression.
fn calls(expr: &ast::Expr) -> Vec<&ast::Ident> {
    let mut out = Vec::new();
    let mut stack = vec![expr];
    while let Some(expr) = stack.pop() {
        if let A::Call { callee, .. } = &expr.kind {
            out.push(callee);
        }
        expr.for_each_child(|child, _| stack.push(child));
    }
    out
}

/// A graph of declarations (or files) whose edges remember where they are written.
#[derive(Default)]
struct Graphs {
    graph: DiGraph<Node, (FileId, Span)>,
    nodes: BTreeMap<DeclId, NodeIndex>,
}

impl Graphs {
    fn node(&mut self, node: Node) -> NodeIndex {
        if let Some(&index) = self.nodes.get(&node.key) {
            // A node first seen as an edge target gets its name and span now.
            self.graph[index] = node;
            return index;
        }
        let key = node.key;
        let index = self.graph.add_node(node);
        self.nodes.insert(key, index);
        index
    }

    /// The node of a declaration seen as an edge target.
    fn node_for(&mut self, db: &dyn Db, id: DeclId) -> NodeIndex {
        if let Some(&index) = self.nodes.get(&id) {
            return index;
        }
        let (name, span) = db
            .workspace()
            .file(db, id.file)
            .and_then(|file| parse(db, file).file.items.get(id.index as usize).and_then(|i| i.kind.name().cloned()))
            .map_or((String::new(), Span::default()), |ident| (ident.text.to_string(), ident.span));
        let index = self.graph.add_node(Node { key: id, name, span });
        self.nodes.insert(id, index);
        index
    }

    fn edge(&mut self, from: NodeIndex, to: NodeIndex, file: FileId, span: Span) {
        self.graph.add_edge(from, to, (file, span));
    }

    /// Each cycle once: the nodes of a strongly connected component in the order of a
    /// cycle through its first node, each with the place of the edge to the next.
    fn cycles(&self) -> Vec<Vec<(NodeIndex, (FileId, Span))>> {
        let mut cycles = Vec::new();
        for component in petgraph::algo::tarjan_scc(&self.graph) {
            let cyclic = component.len() > 1 || self.graph.contains_edge(component[0], component[0]);
            if !cyclic {
                continue;
            }
            let members: BTreeSet<NodeIndex> = component.iter().copied().collect();
            let start = *component.iter().min_by_key(|n| (&self.graph[**n].key, **n)).unwrap_or(&component[0]);
            // Breadth-first search for the shortest way back to the start.
            let mut parent: BTreeMap<NodeIndex, (NodeIndex, (FileId, Span))> = BTreeMap::new();
            let mut queue = std::collections::VecDeque::from([start]);
            let mut found = None;
            'search: while let Some(node) = queue.pop_front() {
                for edge in self.graph.edges(node) {
                    let target = edge.target();
                    if target == start {
                        found = Some((node, *edge.weight()));
                        break 'search;
                    }
                    if members.contains(&target) && !parent.contains_key(&target) {
                        parent.insert(target, (node, *edge.weight()));
                        queue.push_back(target);
                    }
                }
            }
            let Some((last, closing)) = found else { continue };
            let mut cycle = vec![(last, closing)];
            let mut current = last;
            while current != start {
                let (previous, place) = parent[&current];
                cycle.push((previous, place));
                current = previous;
            }
            cycle.reverse();
            cycles.push(cycle);
        }
        cycles
    }
}
