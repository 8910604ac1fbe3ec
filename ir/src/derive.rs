//! The edges a plan's nodes call for, derived from what they read and the governance rule:
//! the compiler writes exactly these, and the verifier proves the properties they give.

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

/// The nodes a node reads, each once: the nodes its expressions read, and what a review
/// may edit.
pub fn reads(node: &Node) -> Vec<&str> {
    let mut read: Vec<&str> = node.kind.exprs().into_iter().flat_map(|e| e.nodes_read()).map(|n| n.as_str()).collect();
    if let NodeKind::Review { edits, .. } = &node.kind {
        read.extend(edits.iter().map(|e| e.node.as_str()));
    }
    read.sort_unstable();
    read.dedup();
    read
}

/// Every edge the nodes of `body` call for, in canonical order:
/// - data: from every node a node reads (its value, its record's age, its degradation);
/// - governance: from every gate, review and approval to every action and emit;
/// - edited: from a review to every node that reads a field the review may edit, unless
///   the review itself waits for that node.
pub fn edges(body: &PlanBody) -> Vec<Edge> {
    // Nodes by index: in a canonical plan their order is their names' order, and the edges
    // are sorted at the end whatever it is.
    let index: rustc_hash::FxHashMap<&str, usize> =
        body.nodes.iter().enumerate().map(|(i, n)| (n.name.as_str(), i)).collect();
    let mut edges: Vec<(usize, usize, EdgeKind)> = Vec::new();
    for (to, node) in body.nodes.iter().enumerate() {
        for from in reads(node) {
            if let Some(&from) = index.get(from)
                && from != to
            {
                edges.push((from, to, EdgeKind::Data));
            }
        }
    }
    let governance: Vec<usize> = (0..body.nodes.len()).filter(|&i| body.nodes[i].kind.is_governance()).collect();
    let effects: Vec<usize> = (0..body.nodes.len()).filter(|&i| body.nodes[i].kind.is_effect()).collect();
    for &from in &governance {
        edges.extend(effects.iter().map(|&to| (from, to, EdgeKind::Governance)));
    }
    // Who waits for whom, through data and governance edges, by the waiting node.
    let mut waits: Vec<Vec<usize>> = vec![Vec::new(); body.nodes.len()];
    for &(from, to, _) in &edges {
        waits[to].push(from);
    }
    let mut edited = Vec::new();
    for (review_index, review) in body.nodes.iter().enumerate() {
        let NodeKind::Review { edits, .. } = &review.kind else { continue };
        if edits.is_empty() {
            continue;
        }
        // What the review waits for, through data and governance edges.
        let mut waits_for = vec![false; body.nodes.len()];
        let mut stack = vec![review_index];
        while let Some(current) = stack.pop() {
            for &from in &waits[current] {
                if !waits_for[from] {
                    waits_for[from] = true;
                    stack.push(from);
                }
            }
        }
        for (reader_index, reader) in body.nodes.iter().enumerate() {
            if reader_index == review_index || waits_for[reader_index] {
                continue;
            }
            if edits.iter().any(|edit| reads_edited(reader, edit)) {
                edited.push((review_index, reader_index, EdgeKind::Edited));
            }
        }
    }
    edges.extend(edited);
    let mut edges: Vec<Edge> = edges
        .into_iter()
        .map(|(from, to, kind)| Edge { from: body.nodes[from].name.clone(), to: body.nodes[to].name.clone(), kind })
        .collect();
    edges.sort();
    edges.dedup();
    edges
}
