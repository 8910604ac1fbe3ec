//! The edges a plan's nodes call for, derived from what they read and the governance rule:
//! the compiler writes exactly these, and the verifier proves the properties they give.

use std::collections::BTreeSet;

use crate::plan::{Edge, EdgeKind, EditPath, Node, NodeKind, PlanBody};

/// Whether `reader` reads a place that overlaps the edited path: the field itself, a
/// field inside it, or a value that contains it.
pub fn reads_edited(reader: &Node, edit: &EditPath) -> bool {
    reader.kind.exprs().iter().any(|e| {
        e.places_read()
            .iter()
            .any(|(node, path)| **node == edit.node && path.iter().zip(&edit.fields).all(|(a, b)| *a == b))
    })
}

/// The nodes a node reads: the nodes its expressions read, and what a review may edit.
pub fn reads(node: &Node) -> BTreeSet<&str> {
    let mut read: BTreeSet<&str> =
        node.kind.exprs().into_iter().flat_map(|e| e.nodes_read()).map(|n| n.as_str()).collect();
    if let NodeKind::Review { edits, .. } = &node.kind {
        read.extend(edits.iter().map(|e| e.node.as_str()));
    }
    read
}

/// Every edge the nodes of `body` call for, in canonical order:
/// - data: from every node a node reads (its value, its record's age, its degradation);
/// - governance: from every gate, review and approval to every action and emit;
/// - edited: from a review to every node that reads a field the review may edit, unless
///   the review itself waits for that node.
pub fn edges(body: &PlanBody) -> Vec<Edge> {
    let exists = |name: &str| body.node(name).is_some();
    let mut edges: BTreeSet<Edge> = BTreeSet::new();
    for node in &body.nodes {
        for from in reads(node) {
            if from != node.name && exists(from) {
                edges.insert(Edge { from: from.into(), to: node.name.clone(), kind: EdgeKind::Data });
            }
        }
    }
    for governance in body.nodes.iter().filter(|n| n.kind.is_governance()) {
        for effect in body.nodes.iter().filter(|n| n.kind.is_effect()) {
            edges.insert(Edge { from: governance.name.clone(), to: effect.name.clone(), kind: EdgeKind::Governance });
        }
    }
    // Who waits for whom, through data and governance edges, by the waiting node.
    let mut waits: std::collections::BTreeMap<&str, Vec<&str>> = std::collections::BTreeMap::new();
    for edge in &edges {
        waits.entry(edge.to.as_str()).or_default().push(edge.from.as_str());
    }
    let mut edited: Vec<Edge> = Vec::new();
    for review in &body.nodes {
        let NodeKind::Review { edits, .. } = &review.kind else { continue };
        if edits.is_empty() {
            continue;
        }
        // What the review waits for, through data and governance edges.
        let mut waits_for: BTreeSet<&str> = BTreeSet::new();
        let mut stack = vec![review.name.as_str()];
        while let Some(current) = stack.pop() {
            for &from in waits.get(current).map(Vec::as_slice).unwrap_or(&[]) {
                if waits_for.insert(from) {
                    stack.push(from);
                }
            }
        }
        for reader in &body.nodes {
            if reader.name == review.name || waits_for.contains(reader.name.as_str()) {
                continue;
            }
            if edits.iter().any(|edit| reads_edited(reader, edit)) {
                edited.push(Edge { from: review.name.clone(), to: reader.name.clone(), kind: EdgeKind::Edited });
            }
        }
    }
    edges.extend(edited);
    edges.into_iter().collect()
}
