//! A plan's graph for people, in Graphviz DOT or Mermaid.
//!
//! Three views: the whole graph (every node with its kind, data, governance and
//! edited-value edges styled apart); the runtime layer (the stages of execution, nodes
//! numbered in execution order); and the governance layer (gates, reviews and approvals,
//! each shaped and coloured by kind, with the actions and outputs each guards).

use std::fmt::Write;

use crate::plan::{EdgeKind, GateLevel, Node, NodeKind};
use crate::print;
use crate::verify::{NodeId, VerifiedPlan};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphFormat {
    Dot,
    Mermaid,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    /// Every node and edge.
    All,
    /// Execution order: stages of nodes that may run at the same time.
    Runtime,
    /// Gates, reviews and approvals, and the effects each guards.
    Governance,
}

/// How a node is drawn.
struct Style {
    dot_shape: &'static str,
    fill: &'static str,
    /// Mermaid's opening and closing brackets for the shape.
    mermaid: (&'static str, &'static str),
    class: &'static str,
}

fn style(node: &Node) -> Style {
    let s = |dot_shape, fill, mermaid, class| Style { dot_shape, fill, mermaid, class };
    match &node.kind {
        NodeKind::Input { .. } => s("parallelogram", "#e5e7eb", ("[/", "/]"), "input"),
        NodeKind::Param { .. } => s("note", "#f3f4f6", (">", "]"), "param"),
        NodeKind::Let { .. } => s("box", "#ffffff", ("(", ")"), "let"),
        NodeKind::Infer { .. } => s("box3d", "#bfdbfe", ("[[", "]]"), "infer"),
        NodeKind::Gate { level: GateLevel::Info, .. } => s("octagon", "#dbeafe", ("{{", "}}"), "gate_info"),
        NodeKind::Gate { level: GateLevel::Soft, .. } => s("octagon", "#fde68a", ("{{", "}}"), "gate_soft"),
        NodeKind::Gate { level: GateLevel::Block, .. } => s("doubleoctagon", "#fca5a5", ("{{", "}}"), "gate_block"),
        NodeKind::Review { .. } => s("trapezium", "#ddd6fe", ("[\\", "/]"), "review"),
        NodeKind::Approval { .. } => s("hexagon", "#c4b5fd", ("[/", "\\]"), "approval"),
        NodeKind::Action { .. } => s("cds", "#86efac", ("[(", ")]"), "action"),
        NodeKind::Emit { .. } => s("invhouse", "#bbf7d0", ("((", "))"), "emit"),
    }
}

const MERMAID_CLASSES: &[&str] = &[
    "input fill:#e5e7eb,stroke:#6b7280",
    "param fill:#f3f4f6,stroke:#9ca3af",
    "let fill:#ffffff,stroke:#6b7280",
    "infer fill:#bfdbfe,stroke:#1d4ed8",
    "gate_info fill:#dbeafe,stroke:#2563eb",
    "gate_soft fill:#fde68a,stroke:#b45309",
    "gate_block fill:#fca5a5,stroke:#b91c1c,stroke-width:3px",
    "review fill:#ddd6fe,stroke:#6d28d9",
    "approval fill:#c4b5fd,stroke:#5b21b6",
    "action fill:#86efac,stroke:#15803d",
    "emit fill:#bbf7d0,stroke:#15803d",
];

/// The text inside a node: its kind and name, and for governance steps what they decide.
fn label(node: &Node, number: Option<usize>, detailed: bool) -> Vec<String> {
    let kind = match &node.kind {
        NodeKind::Gate { level, .. } => format!("gate ({})", level.as_str()),
        other => other.keyword().to_owned(),
    };
    let mut lines = vec![match number {
        Some(n) => format!("{n}. {kind} {}", node.name),
        None => format!("{kind} {}", node.name),
    }];
    if detailed {
        match &node.kind {
            NodeKind::Gate { condition, approvers, .. } => {
                lines.push(format!("when {}", print::expr(condition)));
                if !approvers.is_empty() {
                    lines.push(format!("approve by {}", approvers.join(", ")));
                }
            }
            NodeKind::Review { roles, condition, .. } => {
                lines.push(format!("by {}", roles.join(", ")));
                if let Some(condition) = condition {
                    lines.push(format!("when {}", print::expr(condition)));
                }
            }
            NodeKind::Approval { rows, .. } => {
                for row in rows {
                    let when = row.condition.as_ref().map_or_else(|| "otherwise".to_owned(), print::expr);
                    lines.push(format!("{when} => {}", print::requirement(&row.requirement)));
                }
            }
            NodeKind::Action { system, action, .. } => lines.push(format!("{system}.{action}")),
            _ => {}
        }
    }
    lines
}

fn dot_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

fn mermaid_escape(text: &str) -> String {
    text.replace('"', "#quot;").replace('<', "#lt;").replace('>', "#gt;")
}

/// The nodes and edges a layer shows, with the number of each node in execution order.
struct View {
    nodes: Vec<(NodeId, Option<usize>)>,
    edges: Vec<(NodeId, NodeId, EdgeKind)>,
    stages: Vec<Vec<NodeId>>,
    detailed: bool,
}

fn view(plan: &VerifiedPlan, layer: Layer) -> View {
    let number = |id: NodeId| plan.order().iter().position(|n| *n == id).map(|p| p + 1);
    let all_edges = || {
        let mut edges: Vec<(NodeId, NodeId, EdgeKind)> = plan
            .node_ids()
            .flat_map(|to| plan.predecessors(to).iter().map(move |&(from, kind)| (from, to, kind)))
            .collect();
        edges.sort();
        edges
    };
    match layer {
        Layer::All => View {
            nodes: plan.order().iter().map(|&id| (id, None)).collect(),
            edges: all_edges(),
            stages: Vec::new(),
            detailed: false,
        },
        Layer::Runtime => View {
            nodes: plan.order().iter().map(|&id| (id, number(id))).collect(),
            edges: all_edges(),
            stages: plan.stages(),
            detailed: false,
        },
        Layer::Governance => {
            let shown = |id: NodeId| {
                let kind = &plan.node(id).kind;
                kind.is_governance() || kind.is_effect()
            };
            View {
                nodes: plan.order().iter().filter(|id| shown(**id)).map(|&id| (id, None)).collect(),
                edges: all_edges().into_iter().filter(|(_, _, kind)| *kind == EdgeKind::Governance).collect(),
                stages: Vec::new(),
                detailed: true,
            }
        }
    }
}

/// The graph of a verified plan in the chosen format and layer.
pub fn graph(plan: &VerifiedPlan, format: GraphFormat, layer: Layer) -> String {
    let view = view(plan, layer);
    match format {
        GraphFormat::Dot => dot(plan, &view, layer),
        GraphFormat::Mermaid => mermaid(plan, &view),
    }
}

fn dot(plan: &VerifiedPlan, view: &View, layer: Layer) -> String {
    let flow = &plan.body().flow;
    let mut out = String::new();
    let title = match layer {
        Layer::All => "",
        Layer::Runtime => " (runtime)",
        Layer::Governance => " (governance)",
    };
    let _ = writeln!(out, "digraph \"{}\" {{", dot_escape(&flow.name));
    let _ = writeln!(out, "  label=\"flow {} {}{title}\";", dot_escape(&flow.name), dot_escape(&flow.version));
    out.push_str("  labelloc=t;\n  rankdir=TB;\n  node [fontname=\"Helvetica\", fontsize=11, style=filled];\n");
    out.push_str("  edge [fontname=\"Helvetica\", fontsize=9];\n");
    let node_line = |out: &mut String, id: NodeId, number: Option<usize>, indent: &str| {
        let node = plan.node(id);
        let style = style(node);
        let text: Vec<String> = label(node, number, view.detailed).iter().map(|l| dot_escape(l)).collect();
        let _ = writeln!(
            out,
            "{indent}\"{}\" [label=\"{}\", shape={}, fillcolor=\"{}\"];",
            node.name,
            text.join("\\n"),
            style.dot_shape,
            style.fill
        );
    };
    if view.stages.is_empty() {
        for &(id, number) in &view.nodes {
            node_line(&mut out, id, number, "  ");
        }
    } else {
        for (index, stage) in view.stages.iter().enumerate() {
            let _ = writeln!(out, "  subgraph cluster_stage_{} {{", index + 1);
            let _ = writeln!(out, "    label=\"stage {}\"; style=dashed; color=\"#9ca3af\";", index + 1);
            for &id in stage {
                let number = view.nodes.iter().find(|(n, _)| *n == id).and_then(|(_, number)| *number);
                node_line(&mut out, id, number, "    ");
            }
            out.push_str("  }\n");
        }
    }
    for &(from, to, kind) in &view.edges {
        let style = match kind {
            EdgeKind::Data => "",
            EdgeKind::Governance if layer == Layer::Governance => {
                " [label=\"guards\", style=dashed, color=\"#b91c1c\"]"
            }
            EdgeKind::Governance => " [style=dashed, color=\"#b91c1c\"]",
            EdgeKind::Edited => " [label=\"edited\", style=dotted, color=\"#6d28d9\"]",
        };
        let _ = writeln!(out, "  \"{}\" -> \"{}\"{style};", plan.node(from).name, plan.node(to).name);
    }
    out.push_str("}\n");
    out
}

fn mermaid(plan: &VerifiedPlan, view: &View) -> String {
    let mut out = String::from("flowchart TD\n");
    let node_line = |out: &mut String, id: NodeId, number: Option<usize>, indent: &str| {
        let node = plan.node(id);
        let style = style(node);
        let text: Vec<String> = label(node, number, view.detailed).iter().map(|l| mermaid_escape(l)).collect();
        let (open, close) = style.mermaid;
        let _ = writeln!(out, "{indent}n_{}{open}\"{}\"{close}:::{}", node.name, text.join("<br/>"), style.class);
    };
    if view.stages.is_empty() {
        for &(id, number) in &view.nodes {
            node_line(&mut out, id, number, "  ");
        }
    } else {
        for (index, stage) in view.stages.iter().enumerate() {
            let _ = writeln!(out, "  subgraph stage_{}[\"stage {}\"]", index + 1, index + 1);
            for &id in stage {
                let number = view.nodes.iter().find(|(n, _)| *n == id).and_then(|(_, number)| *number);
                node_line(&mut out, id, number, "    ");
            }
            out.push_str("  end\n");
        }
    }
    for &(from, to, kind) in &view.edges {
        let arrow = match kind {
            EdgeKind::Data => "-->",
            EdgeKind::Governance => "-.->|guards|",
            EdgeKind::Edited => "==>|edited|",
        };
        let _ = writeln!(out, "  n_{} {arrow} n_{}", plan.node(from).name, plan.node(to).name);
    }
    for class in MERMAID_CLASSES {
        let _ = writeln!(out, "  classDef {class}");
    }
    out
}
