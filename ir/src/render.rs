//! A plan's graph for people, in Graphviz DOT, Mermaid, or SVG drawn here (no external
//! program: a layered layout, [`layout`]).
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
    /// An SVG picture, laid out here.
    Svg,
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
        NodeKind::Retrieve { .. } => s("folder", "#fed7aa", ("[(", ")]"), "retrieve"),
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
    "retrieve fill:#fed7aa,stroke:#c2410c",
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
            NodeKind::Retrieve { corpus, top, .. } => lines.push(format!("top {top} of {corpus}")),
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
        GraphFormat::Svg => svg(plan, &view, layer, None),
    }
}

/// What became of a node in one run, for a picture of the path the run took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// It ran (a gate: it let the run through).
    Ran,
    /// A gate that held the run: it blocked, or a person rejected it.
    Held,
    /// It waits for a person.
    Waiting,
    /// Its condition did not hold, so it did not run.
    Skipped,
    /// It failed.
    Failed,
}

impl Mark {
    pub fn as_str(self) -> &'static str {
        match self {
            Mark::Ran => "ran",
            Mark::Held => "held",
            Mark::Waiting => "waiting",
            Mark::Skipped => "skipped",
            Mark::Failed => "failed",
        }
    }

    /// The outline's colour and dashes.
    fn outline(self) -> (&'static str, &'static str) {
        match self {
            Mark::Ran => ("#15803d", ""),
            Mark::Held => ("#b91c1c", ""),
            Mark::Waiting => ("#b45309", r#" stroke-dasharray="6 3""#),
            Mark::Skipped => ("#6b7280", r#" stroke-dasharray="2 3""#),
            Mark::Failed => ("#b91c1c", r#" stroke-dasharray="6 3""#),
        }
    }
}

/// The SVG picture of a plan (every node and edge) with the path one run took: each node
/// `marks` names outlined by what became of it, the nodes it does not name (not reached)
/// faded.
pub fn svg_of_run(plan: &VerifiedPlan, marks: &std::collections::BTreeMap<String, Mark>) -> String {
    let view = view(plan, Layer::All);
    svg(plan, &view, Layer::All, Some(marks))
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

/// A node placed in a picture: its box (top left corner, width, height, in pixels).
#[derive(Clone, Debug, PartialEq)]
pub struct Placed {
    pub node: NodeId,
    pub rank: usize,
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
    pub lines: Vec<String>,
}

/// A laid out graph: nodes in ranks from top to bottom (execution goes down), the edges
/// between them, and the size of the picture.
#[derive(Clone, Debug)]
pub struct Layout {
    pub nodes: Vec<Placed>,
    pub edges: Vec<(usize, usize, EdgeKind)>,
    pub width: f64,
    pub height: f64,
    /// The top of each rank, and whether ranks are the runtime's stages.
    pub ranks: Vec<f64>,
    pub stages: bool,
}

const CHAR_WIDTH: f64 = 7.0;
const LINE_HEIGHT: f64 = 15.0;
const PAD: f64 = 10.0;
const GAP_X: f64 = 28.0;
const GAP_Y: f64 = 56.0;
const MARGIN: f64 = 24.0;
const TITLE: f64 = 34.0;

/// Lays a layer of a plan out: each node one rank below the lowest node it depends on (the
/// runtime's stages in that layer), nodes of a rank ordered by the mean place of their
/// neighbours (a few sweeps down and up), and ranks centred.
pub fn layout(plan: &VerifiedPlan, layer: Layer) -> Layout {
    laid_out(plan, &view(plan, layer))
}

fn laid_out(plan: &VerifiedPlan, view: &View) -> Layout {
    let index: std::collections::HashMap<NodeId, usize> =
        view.nodes.iter().enumerate().map(|(i, (id, _))| (*id, i)).collect();
    let edges: Vec<(usize, usize, EdgeKind)> =
        view.edges.iter().filter_map(|(from, to, kind)| Some((*index.get(from)?, *index.get(to)?, *kind))).collect();
    let mut rank = vec![0usize; view.nodes.len()];
    if view.stages.is_empty() {
        // Nodes come in execution order, so each node's predecessors are ranked before it.
        for to in 0..view.nodes.len() {
            rank[to] = edges.iter().filter(|e| e.1 == to).map(|e| rank[e.0] + 1).max().unwrap_or(0);
        }
    } else {
        for (r, stage) in view.stages.iter().enumerate() {
            for id in stage {
                if let Some(&i) = index.get(id) {
                    rank[i] = r;
                }
            }
        }
    }
    let ranks = rank.iter().copied().max().map_or(0, |r| r + 1);
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); ranks];
    for (i, r) in rank.iter().enumerate() {
        rows[*r].push(i);
    }
    // Barycentre sweeps: order each rank by the mean position of its neighbours in the rank
    // above (going down) or below (going up).
    for sweep in 0..4 {
        let mut position = vec![0.0f64; view.nodes.len()];
        for row in &rows {
            for (p, &i) in row.iter().enumerate() {
                position[i] = p as f64;
            }
        }
        let down = sweep % 2 == 0;
        let order: Vec<usize> = if down { (1..ranks).collect() } else { (0..ranks.saturating_sub(1)).rev().collect() };
        for r in order {
            let mean = |i: usize| {
                let near: Vec<f64> = edges
                    .iter()
                    .filter_map(|&(from, to, _)| match down {
                        true if to == i && rank[from] < r => Some(position[from]),
                        false if from == i && rank[to] > r => Some(position[to]),
                        _ => None,
                    })
                    .collect();
                if near.is_empty() { position[i] } else { near.iter().sum::<f64>() / near.len() as f64 }
            };
            let mut keyed: Vec<(f64, usize)> = rows[r].iter().map(|&i| (mean(i), i)).collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            rows[r] = keyed.into_iter().map(|(_, i)| i).collect();
            for (p, &i) in rows[r].iter().enumerate() {
                position[i] = p as f64;
            }
        }
    }
    let lines: Vec<Vec<String>> =
        view.nodes.iter().map(|(id, number)| label(plan.node(*id), *number, view.detailed)).collect();
    let size = |i: usize| {
        let longest = lines[i].iter().map(|l| l.chars().count()).max().unwrap_or(0) as f64;
        (longest * CHAR_WIDTH + 2.0 * PAD + 16.0, lines[i].len() as f64 * LINE_HEIGHT + 2.0 * PAD)
    };
    let widths: Vec<f64> = rows
        .iter()
        .map(|row| row.iter().map(|&i| size(i).0).sum::<f64>() + GAP_X * row.len().saturating_sub(1) as f64)
        .collect();
    let widest = widths.iter().copied().fold(0.0, f64::max);
    let label_room = if view.stages.is_empty() { 0.0 } else { 70.0 };
    let mut placed: Vec<Option<Placed>> = vec![None; view.nodes.len()];
    let mut top = MARGIN + TITLE;
    let mut tops = Vec::with_capacity(ranks);
    for (r, row) in rows.iter().enumerate() {
        tops.push(top);
        let tallest = row.iter().map(|&i| size(i).1).fold(0.0, f64::max);
        let mut x = MARGIN + label_room + (widest - widths[r]) / 2.0;
        for &i in row {
            let (width, height) = size(i);
            let y = top + (tallest - height) / 2.0;
            placed[i] = Some(Placed { node: view.nodes[i].0, rank: r, x, y, width, height, lines: lines[i].clone() });
            x += width + GAP_X;
        }
        top += tallest + GAP_Y;
    }
    let title_width = plan.body().flow.name.chars().count() as f64 * CHAR_WIDTH + 200.0;
    Layout {
        nodes: placed.into_iter().flatten().collect(),
        edges,
        width: (widest + label_room).max(title_width) + 2.0 * MARGIN,
        height: (top - GAP_Y + MARGIN).max(MARGIN * 2.0 + TITLE),
        ranks: tops,
        stages: !view.stages.is_empty(),
    }
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The outline of a node's box, by kind, as SVG.
fn outline(node: &Node, p: &Placed, fill: &str) -> String {
    let (x, y, w, h) = (p.x, p.y, p.width, p.height);
    let points = |pts: &[(f64, f64)]| {
        let text: Vec<String> = pts.iter().map(|(a, b)| format!("{a:.1},{b:.1}")).collect();
        text.join(" ")
    };
    let c = 10.0f64.min(h / 3.0);
    match &node.kind {
        NodeKind::Gate { level, .. } => {
            let width = if *level == GateLevel::Block { 3 } else { 1 };
            let octagon = [
                (x + c, y),
                (x + w - c, y),
                (x + w, y + c),
                (x + w, y + h - c),
                (x + w - c, y + h),
                (x + c, y + h),
                (x, y + h - c),
                (x, y + c),
            ];
            format!(
                r##"<polygon points="{}" fill="{fill}" stroke="#374151" stroke-width="{width}"/>"##,
                points(&octagon)
            )
        }
        NodeKind::Approval { .. } => {
            let hexagon = [
                (x + c, y),
                (x + w - c, y),
                (x + w, y + h / 2.0),
                (x + w - c, y + h),
                (x + c, y + h),
                (x, y + h / 2.0),
            ];
            format!(r##"<polygon points="{}" fill="{fill}" stroke="#374151"/>"##, points(&hexagon))
        }
        NodeKind::Review { .. } => {
            let trapezium = [(x + c, y), (x + w - c, y), (x + w, y + h), (x, y + h)];
            format!(r##"<polygon points="{}" fill="{fill}" stroke="#374151"/>"##, points(&trapezium))
        }
        NodeKind::Input { .. } => {
            let parallelogram = [(x + c, y), (x + w, y), (x + w - c, y + h), (x, y + h)];
            format!(r##"<polygon points="{}" fill="{fill}" stroke="#374151"/>"##, points(&parallelogram))
        }
        NodeKind::Action { .. } | NodeKind::Emit { .. } => format!(
            r##"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" rx="{:.1}" fill="{fill}" stroke="#374151"/>"##,
            h / 2.0
        ),
        NodeKind::Retrieve { .. } => {
            let tab = [(x, y), (x + w / 3.0, y), (x + w / 3.0 + c, y + c), (x + w, y + c), (x + w, y + h), (x, y + h)];
            format!(r##"<polygon points="{}" fill="{fill}" stroke="#374151"/>"##, points(&tab))
        }
        NodeKind::Infer { .. } => format!(
            r##"<rect x="{:.1}" y="{:.1}" width="{w:.1}" height="{h:.1}" fill="#93c5fd" stroke="#374151"/><rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="{fill}" stroke="#374151"/>"##,
            x + 3.0,
            y + 3.0
        ),
        NodeKind::Let { .. } | NodeKind::Param { .. } => format!(
            r##"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" rx="4" fill="{fill}" stroke="#374151"/>"##
        ),
    }
}

fn svg(
    plan: &VerifiedPlan,
    view: &View,
    layer: Layer,
    marks: Option<&std::collections::BTreeMap<String, Mark>>,
) -> String {
    let laid = laid_out(plan, view);
    let flow = &plan.body().flow;
    let title = match layer {
        Layer::All => "",
        Layer::Runtime => " (runtime)",
        Layer::Governance => " (governance)",
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}" font-family="Helvetica, Arial, sans-serif" font-size="12" role="img">"#,
        w = laid.width,
        h = laid.height
    );
    let _ = writeln!(out, "<title>flow {} {}{title}</title>", xml_escape(&flow.name), xml_escape(&flow.version));
    out.push_str("<defs>\n");
    for (id, colour) in [("data", "#6b7280"), ("governance", "#b91c1c"), ("edited", "#6d28d9")] {
        let _ = writeln!(
            out,
            r#"<marker id="arrow-{id}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>"#
        );
    }
    out.push_str("</defs>\n");
    let _ = writeln!(out, r##"<rect width="100%" height="100%" fill="#ffffff"/>"##);
    let _ = writeln!(
        out,
        r#"<text x="{MARGIN}" y="{:.0}" font-size="15" font-weight="bold">flow {} {}{title}</text>"#,
        MARGIN + 16.0,
        xml_escape(&flow.name),
        xml_escape(&flow.version)
    );
    if laid.stages {
        for (r, top) in laid.ranks.iter().enumerate() {
            let _ =
                writeln!(out, r##"<text x="{MARGIN}" y="{:.0}" fill="#6b7280">stage {}</text>"##, top + 18.0, r + 1);
        }
    }
    out.push_str("<g class=\"edges\" fill=\"none\">\n");
    for &(from, to, kind) in &laid.edges {
        let (a, b) = (&laid.nodes[from], &laid.nodes[to]);
        let (x1, y1) = (a.x + a.width / 2.0, a.y + a.height);
        let (x2, y2) = (b.x + b.width / 2.0, b.y);
        let bend = (y2 - y1).abs() / 2.0;
        let (id, colour, dash) = match kind {
            EdgeKind::Data => ("data", "#6b7280", ""),
            EdgeKind::Governance => ("governance", "#b91c1c", r#" stroke-dasharray="6 4""#),
            EdgeKind::Edited => ("edited", "#6d28d9", r#" stroke-dasharray="2 3""#),
        };
        let _ = writeln!(
            out,
            r#"<path d="M{x1:.1},{y1:.1} C{x1:.1},{:.1} {x2:.1},{:.1} {x2:.1},{y2:.1}" stroke="{colour}"{dash} marker-end="url(#arrow-{id})"><title>{} → {} ({})</title></path>"#,
            y1 + bend,
            y2 - bend,
            xml_escape(&plan.node(a.node).name),
            xml_escape(&plan.node(b.node).name),
            id
        );
    }
    out.push_str("</g>\n<g class=\"nodes\">\n");
    for placed in &laid.nodes {
        let node = plan.node(placed.node);
        let style = style(node);
        let mark = marks.map(|marks| marks.get(node.name.as_str()).copied());
        let (state, faded) = match mark {
            None => (String::new(), ""),
            Some(None) => (" not-reached".to_owned(), r#" opacity="0.4""#),
            Some(Some(mark)) => (format!(" {}", mark.as_str()), ""),
        };
        let _ = writeln!(out, r#"<g class="node {}{state}" id="node-{}"{faded}>"#, style.class, xml_escape(&node.name));
        if let Some(mark) = mark {
            let said = mark.map_or("not reached", Mark::as_str);
            let _ = writeln!(out, "<title>{}: {said}</title>", xml_escape(&node.name));
        }
        if let Some(Some(mark)) = mark {
            let (colour, dash) = mark.outline();
            let _ = writeln!(
                out,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" rx="7" fill="none" stroke="{colour}" stroke-width="3"{dash}/>"#,
                placed.x - 5.0,
                placed.y - 5.0,
                placed.width + 10.0,
                placed.height + 10.0
            );
        }
        out.push_str(&outline(node, placed, style.fill));
        out.push('\n');
        for (n, line) in placed.lines.iter().enumerate() {
            let weight = if n == 0 { r#" font-weight="bold""# } else { "" };
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle"{weight}>{}</text>"#,
                placed.x + placed.width / 2.0,
                placed.y + PAD + LINE_HEIGHT * (n as f64 + 1.0) - 4.0,
                xml_escape(line)
            );
        }
        out.push_str("</g>\n");
    }
    out.push_str("</g>\n</svg>\n");
    out
}
