//! A plan's governance as an auditor asks about it: which checks stand before which people
//! and which effects, who decides each, who may override it, who may not approve, and what
//! each says; and a picture of it that stays readable however many gates a flow has.
//!
//! The plan's governance edges join every gate, review and approval to every action and
//! emit (the verifier proves it: nothing leaves a run before every check passed or was
//! decided), and the runtime asks no person and calls no model while a blocking gate holds.
//! Drawn edge by edge that is a complete bipartite graph — one row thousands of pixels wide
//! in which every gate points at every effect. Drawn here as what it means: three columns
//! (checks, people, effects), each joined to the next by one arrow.

use std::fmt::Write as _;

use crate::VerifiedPlan;
use crate::plan::{GateLevel, GrantKind, NodeKind};
use crate::print;

/// A gate, review or approval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    /// `gate (block)`, `gate (soft)`, `gate (info)`, `review`, `approval`.
    pub kind: String,
    /// What it does to a run, in words.
    pub does: &'static str,
    /// When it holds (a gate), or when it asks (a review with a condition).
    pub when: Option<String>,
    /// What it says to whoever meets it.
    pub message: Option<String>,
    /// Who decides: a soft gate's approvers, a review's roles, or each approval row.
    pub decided_by: Vec<String>,
    /// The outcomes a review may give.
    pub outcomes: Vec<String>,
    /// The roles granted `override` of this gate.
    pub overridden_by: Vec<String>,
    /// Whom an approval's approvers must differ from.
    pub distinct_from: Vec<String>,
}

impl Check {
    /// Checked before anyone is asked: blocking and info gates.
    pub fn is_first(&self) -> bool {
        self.kind == "gate (block)" || self.kind == "gate (info)"
    }
}

/// An action or an output: what leaves a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Effect {
    pub name: String,
    /// `action SYSTEM.ACTION` or `output`.
    pub kind: String,
    pub when: Option<String>,
    /// The approvals it follows whatever their outcome (`regardless of`): it waits for them
    /// to complete, not to approve.
    pub regardless: Vec<String>,
}

/// A plan's governance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Governance {
    pub checks: Vec<Check>,
    /// The models the run asks (infer steps), which wait for the blocking gates too.
    pub models: Vec<String>,
    pub effects: Vec<Effect>,
}

/// The governance of a plan, its steps in the plan's order.
pub fn of(plan: &VerifiedPlan) -> Governance {
    let body = plan.body();
    let grantees = |target: &str| {
        let mut roles: Vec<String> = body
            .grants
            .iter()
            .filter(|g| g.kind == GrantKind::Override && g.target.as_deref() == Some(target))
            .flat_map(|g| g.roles.iter().map(ToString::to_string))
            .collect();
        roles.sort();
        roles.dedup();
        roles
    };
    let names = |items: &[smol_str::SmolStr]| items.iter().map(ToString::to_string).collect::<Vec<_>>();
    let mut governance = Governance { checks: Vec::new(), models: Vec::new(), effects: Vec::new() };
    for &id in plan.order() {
        let node = plan.node(id);
        let name = node.name.to_string();
        match &node.kind {
            NodeKind::Gate { level, condition, approvers, message } => governance.checks.push(Check {
                kind: format!("gate ({})", level.as_str()),
                does: match level {
                    GateLevel::Block => "stops the run when it holds; only an override moves it on",
                    GateLevel::Soft => "waits, when it holds, for one of its approvers",
                    GateLevel::Info => "is recorded when it holds; never stops the run",
                },
                when: Some(print::expr(condition)),
                message: message.clone(),
                decided_by: names(approvers),
                outcomes: Vec::new(),
                overridden_by: grantees(&name),
                distinct_from: Vec::new(),
                name,
            }),
            NodeKind::Review { roles, condition, outcomes, .. } => governance.checks.push(Check {
                kind: "review".to_owned(),
                does: if condition.is_some() {
                    "asks a person when its condition holds (else it is skipped)"
                } else {
                    "asks a person on every run"
                },
                when: condition.as_ref().map(print::expr),
                message: None,
                decided_by: names(roles),
                outcomes: names(outcomes),
                overridden_by: Vec::new(),
                distinct_from: Vec::new(),
                name,
            }),
            NodeKind::Approval { rows, distinct_from } => governance.checks.push(Check {
                kind: "approval".to_owned(),
                does: "needs the signatures of the first row whose condition holds",
                when: None,
                message: None,
                decided_by: rows
                    .iter()
                    .map(|row| {
                        let when = row.condition.as_ref().map_or_else(|| "otherwise".to_owned(), print::expr);
                        format!("{when} → {}", print::requirement(&row.requirement))
                    })
                    .collect(),
                outcomes: Vec::new(),
                overridden_by: Vec::new(),
                distinct_from: distinct_from.iter().map(print::expr).collect(),
                name,
            }),
            NodeKind::Infer { model, .. } => governance.models.push(format!("{name} ({model})")),
            NodeKind::Retrieve { corpus, .. } => governance.models.push(format!("{name} (corpus {corpus})")),
            NodeKind::Action { system, action, condition, .. } => governance.effects.push(Effect {
                name,
                kind: format!("action {system}.{action}"),
                when: condition.as_ref().map(print::expr),
                regardless: names(&node.regardless),
            }),
            NodeKind::Emit { .. } => governance.effects.push(Effect {
                name,
                kind: "output".to_owned(),
                when: None,
                regardless: names(&node.regardless),
            }),
            NodeKind::Input { .. } | NodeKind::Param { .. } | NodeKind::Let { .. } => {}
        }
    }
    governance
}

const WIDTH: f64 = 300.0;
const GAP: f64 = 90.0;
const BOX: f64 = 44.0;
const STEP: f64 = 54.0;
const TOP: f64 = 64.0;
const MARGIN: f64 = 16.0;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// At most `n` characters of `text`, with `…` where it was cut.
fn cut(text: &str, n: usize) -> String {
    if text.chars().count() <= n {
        text.to_owned()
    } else {
        format!("{}…", text.chars().take(n - 1).collect::<String>())
    }
}

/// A box of the picture: its first line, its second, its fill.
type Boxed<'a> = (String, String, &'a str);

/// One column's boxes: a heading, then each box with its first line bold and its second
/// plain, the whole text in its tooltip. The box tops, for the arrows.
fn column(out: &mut String, x: f64, heading: &str, boxes: &[Boxed<'_>]) -> Vec<f64> {
    let _ = writeln!(
        out,
        r##"<text x="{x:.0}" y="{:.0}" font-weight="bold" fill="#374151">{}</text>"##,
        TOP - 14.0,
        escape(heading)
    );
    let mut tops = Vec::new();
    for (n, (first, second, fill)) in boxes.iter().enumerate() {
        let y = TOP + n as f64 * STEP;
        tops.push(y);
        let _ = writeln!(
            out,
            r##"<g><title>{}</title><rect x="{x:.0}" y="{y:.0}" width="{WIDTH:.0}" height="{BOX:.0}" rx="5" fill="{fill}" stroke="#374151"/><text x="{:.0}" y="{:.0}" font-weight="bold">{}</text><text x="{:.0}" y="{:.0}" fill="#374151">{}</text></g>"##,
            escape(&format!("{first}\n{second}")),
            x + 8.0,
            y + 17.0,
            escape(&cut(first, 44)),
            x + 8.0,
            y + 34.0,
            escape(&cut(second, 46)),
        );
    }
    tops
}

/// The arrows from every box of one column into a bus, and one arrow from the bus to the
/// next column's heading, labelled.
fn bus(out: &mut String, from_x: f64, tops: &[f64], to_x: f64, to_bottom: f64, label: &str) {
    if tops.is_empty() {
        return;
    }
    let bus_x = from_x + WIDTH + GAP / 2.0;
    for top in tops {
        let y = top + BOX / 2.0;
        let _ =
            writeln!(out, r##"<path d="M{:.0},{y:.0} H{bus_x:.0}" stroke="#b91c1c" fill="none"/>"##, from_x + WIDTH);
    }
    let (first, last) = (tops[0] + BOX / 2.0, tops[tops.len() - 1] + BOX / 2.0);
    let middle = (TOP + to_bottom.max(last)) / 2.0;
    let _ = writeln!(
        out,
        r##"<path d="M{bus_x:.0},{:.0} V{:.0} M{bus_x:.0},{middle:.0} H{:.0}" stroke="#b91c1c" stroke-width="2" fill="none" marker-end="url(#arrow)"><title>{}</title></path>"##,
        first.min(middle),
        last.max(middle),
        to_x - 4.0,
        escape(label)
    );
}

/// The governance of a plan as an SVG picture: checked first (blocking and info gates),
/// then the people (soft gates, reviews, approvals) and the models, then what leaves the
/// run (actions and outputs), each column joined to the next by one arrow.
pub fn svg(plan: &VerifiedPlan) -> String {
    let governance = of(plan);
    let flow = &plan.body().flow;
    let fill = |check: &Check| match check.kind.as_str() {
        "gate (block)" => "#fee2e2",
        "gate (soft)" => "#fef3c7",
        "gate (info)" => "#f3f4f6",
        _ => "#dbeafe",
    };
    let first: Vec<Boxed<'_>> = governance
        .checks
        .iter()
        .filter(|c| c.is_first())
        .map(|c| (format!("{} {}", c.kind, c.name), format!("when {}", c.when.clone().unwrap_or_default()), fill(c)))
        .collect();
    let mut people: Vec<Boxed<'_>> = governance
        .checks
        .iter()
        .filter(|c| !c.is_first())
        .map(|c| {
            let by = if c.kind == "approval" {
                let rows = format!("{} rows, the first that holds decides", c.decided_by.len());
                let rows = if c.distinct_from.is_empty() { rows } else { format!("{} rows", c.decided_by.len()) };
                if c.distinct_from.is_empty() { rows } else { format!("{rows}; never {}", c.distinct_from.join(", ")) }
            } else {
                format!("by {}", c.decided_by.join(", "))
            };
            (format!("{} {}", c.kind, c.name), by, fill(c))
        })
        .collect();
    people.extend(
        governance
            .models
            .iter()
            .map(|m| (format!("model {m}"), "not asked while a blocking gate holds".to_owned(), "#ede9fe")),
    );
    let effects: Vec<Boxed<'_>> = governance
        .effects
        .iter()
        .map(|e| {
            (
                format!("{} {}", e.kind, e.name),
                e.when.as_ref().map_or_else(|| "always".to_owned(), |w| format!("when {w}")),
                "#dcfce7",
            )
        })
        .collect();
    let columns: Vec<(&str, &Vec<Boxed<'_>>)> =
        [("Checked first", &first), ("Then people and models", &people), ("Then what leaves the run", &effects)]
            .into_iter()
            .filter(|(_, boxes)| !boxes.is_empty())
            .collect();
    let rows = columns.iter().map(|(_, b)| b.len()).max().unwrap_or(0);
    let width = MARGIN * 2.0 + columns.len() as f64 * WIDTH + columns.len().saturating_sub(1) as f64 * GAP;
    let height = TOP + rows as f64 * STEP + MARGIN;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="Helvetica, Arial, sans-serif" font-size="12" role="img">"#
    );
    let _ = writeln!(out, "<title>the governance of flow {} {}</title>", escape(&flow.name), escape(&flow.version));
    out.push_str(r##"<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" markerHeight="8" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#b91c1c"/></marker></defs>"##);
    out.push('\n');
    let _ = writeln!(out, r##"<rect width="100%" height="100%" fill="#ffffff"/>"##);
    let _ = writeln!(
        out,
        r#"<text x="{MARGIN}" y="24" font-size="15" font-weight="bold">flow {} {}: what stands before what</text>"#,
        escape(&flow.name),
        escape(&flow.version)
    );
    let mut previous: Option<(f64, Vec<f64>)> = None;
    for (n, (heading, boxes)) in columns.iter().enumerate() {
        let x = MARGIN + n as f64 * (WIDTH + GAP);
        let tops = column(&mut out, x, heading, boxes);
        if let Some((from_x, from_tops)) = previous {
            let label = if *heading == "Then what leaves the run" {
                "every check passed or decided before anything leaves the run"
            } else {
                "no person or model is asked while a blocking gate holds"
            };
            bus(&mut out, from_x, &from_tops, x, TOP + boxes.len() as f64 * STEP - (STEP - BOX), label);
        }
        previous = Some((x, tops));
    }
    out.push_str("</svg>\n");
    out
}
