//! The semantic difference between two plans, as a steward reads it ("gate `over_credit`:
//! threshold 10,000 USD → 5,000 USD"), and whether it is material: anything but
//! descriptions and the flow's version number changes what the flow decides or who may do
//! what, and needs approving again.

use std::collections::{BTreeMap, BTreeSet};

use smol_str::SmolStr;

use crate::expr::{Expr, ExprKind, Literal, Named};
use crate::plan::{NodeKind, Plan, PlanBody};
use crate::print;
use crate::time;

/// One difference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// What changed, such as ``gate `over_credit` ``.
    pub subject: String,
    /// How, such as `threshold 10,000 USD → 5,000 USD`.
    pub detail: String,
    /// Whether the change needs the flow approved again.
    pub material: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diff {
    pub old_hash: String,
    pub new_hash: String,
    pub changes: Vec<Change>,
}

impl Diff {
    pub fn is_material(&self) -> bool {
        self.changes.iter().any(|c| c.material)
    }

    /// The diff as JSON: both hashes, whether they are identical, whether the change is
    /// material, and each change.
    pub fn to_json(&self) -> serde_json::Value {
        let changes: Vec<serde_json::Value> = self
            .changes
            .iter()
            .map(|c| serde_json::json!({ "subject": c.subject, "change": c.detail, "material": c.material }))
            .collect();
        serde_json::json!({
            "old": self.old_hash,
            "new": self.new_hash,
            "identical": self.old_hash == self.new_hash && self.changes.is_empty(),
            "material": self.is_material(),
            "changes": changes,
        })
    }
}

struct Differ {
    changes: Vec<Change>,
}

impl Differ {
    fn push(&mut self, subject: impl Into<String>, detail: impl Into<String>) {
        self.changes.push(Change { subject: subject.into(), detail: detail.into(), material: true });
    }

    fn note(&mut self, subject: impl Into<String>, detail: impl Into<String>) {
        self.changes.push(Change { subject: subject.into(), detail: detail.into(), material: false });
    }

    /// `what: old → new` when they differ.
    fn value<T: PartialEq + std::fmt::Display>(&mut self, subject: &str, what: &str, old: T, new: T) {
        if old != new {
            let what = if what.is_empty() { String::new() } else { format!("{what} ") };
            self.push(subject, format!("{what}{old} → {new}"));
        }
    }

    /// Additions and removals in a set of names.
    fn set(&mut self, subject: &str, what: &str, old: &[SmolStr], new: &[SmolStr]) {
        let old: BTreeSet<&SmolStr> = old.iter().collect();
        let new: BTreeSet<&SmolStr> = new.iter().collect();
        let added: Vec<String> = new.difference(&old).map(|s| format!("`{s}`")).collect();
        let removed: Vec<String> = old.difference(&new).map(|s| format!("`{s}`")).collect();
        let mut parts = Vec::new();
        if !added.is_empty() {
            parts.push(format!("adds {}", added.join(", ")));
        }
        if !removed.is_empty() {
            parts.push(format!("removes {}", removed.join(", ")));
        }
        if !parts.is_empty() {
            self.push(subject, format!("{what} {}", parts.join(" and ")));
        }
    }

    fn expr(&mut self, subject: &str, what: &str, old: &Expr, new: &Expr) {
        self.expr_with(subject, what, old, new, &[]);
    }

    /// As [`Differ::expr`], in a function whose parameters have these names.
    fn expr_with(&mut self, subject: &str, what: &str, old: &Expr, new: &Expr, params: &[SmolStr]) {
        if old == new {
            return;
        }
        let (old_shape, old_literals) = strip(old);
        let (new_shape, new_literals) = strip(new);
        if old_shape == new_shape {
            let changed: Vec<usize> = (0..old_literals.len()).filter(|&i| old_literals[i] != new_literals[i]).collect();
            if let [index] = changed.as_slice() {
                let noun = match what {
                    "body" => "constant".to_owned(),
                    condition if condition.ends_with("condition") => condition.replace("condition", "threshold"),
                    other => other.to_owned(),
                };
                let (a, b) = (&old_literals[*index], &new_literals[*index]);
                // Where the constant stands, unless it is the whole expression.
                let place = match literal_contexts(new, params).get(*index) {
                    Some(Some(context)) => format!(" (in `{context}`)"),
                    _ => String::new(),
                };
                self.push(subject, format!("{noun} {} → {}{place}", print::literal_prose(a), print::literal_prose(b)));
                return;
            }
        }
        self.push(subject, format!("{what} `{}` → `{}`", print::fn_expr(old, params), print::fn_expr(new, params)));
    }

    fn optional_expr(&mut self, subject: &str, what: &str, old: Option<&Expr>, new: Option<&Expr>) {
        match (old, new) {
            (Some(a), Some(b)) => self.expr(subject, what, a, b),
            (None, Some(b)) => self.push(subject, format!("now has {what} `{}`", print::expr(b))),
            (Some(a), None) => self.push(subject, format!("no longer has {what} `{}`", print::expr(a))),
            (None, None) => {}
        }
    }

    fn args(&mut self, subject: &str, old: &[Named], new: &[Named]) {
        let old: BTreeMap<&SmolStr, &Expr> = old.iter().map(|a| (&a.name, &a.value)).collect();
        let new: BTreeMap<&SmolStr, &Expr> = new.iter().map(|a| (&a.name, &a.value)).collect();
        for name in old.keys().chain(new.keys()).collect::<BTreeSet<_>>() {
            let what = format!("argument `{name}`");
            self.optional_expr(subject, &what, old.get(name).copied(), new.get(name).copied());
        }
    }
}

/// The expression with every literal replaced, and the literals in order: two
/// expressions of the same shape differ only in constants.
fn strip(expr: &Expr) -> (Expr, Vec<Literal>) {
    fn go(expr: &mut Expr, literals: &mut Vec<Literal>) {
        if let ExprKind::Lit(literal) = &mut expr.kind {
            literals.push(std::mem::replace(literal, Literal::Bool(false)));
            expr.ty = crate::ty::Ty::Nothing;
            return;
        }
        crate::with_stack(|| expr.for_each_child_mut(|child| go(child, literals)));
    }
    let mut copy = expr.clone();
    let mut literals = Vec::new();
    go(&mut copy, &mut literals);
    (copy, literals)
}

/// For each literal of `expr`, in the order [`strip`] finds them, the smallest operation
/// around it (a comparison or arithmetic), printed; `None` for a literal that stands alone.
fn literal_contexts(expr: &Expr, params: &[SmolStr]) -> Vec<Option<String>> {
    fn go(expr: &Expr, around: Option<&Expr>, params: &[SmolStr], out: &mut Vec<Option<String>>) {
        if let ExprKind::Lit(_) = expr.kind {
            out.push(around.map(|e| print::fn_expr(e, params)));
            return;
        }
        let around = match expr.kind {
            ExprKind::Binary { .. } => Some(expr),
            _ => around,
        };
        crate::with_stack(|| expr.for_each_child(|child| go(child, around, params, out)));
    }
    let mut out = Vec::new();
    go(expr, None, params, &mut out);
    out
}

fn node_subject(kind: &NodeKind, name: &str) -> String {
    match kind {
        NodeKind::Approval { .. } => format!("matrix `{name}`"),
        other => format!("{} `{name}`", other.keyword()),
    }
}

fn nodes(d: &mut Differ, old: &PlanBody, new: &PlanBody) {
    let old_nodes: BTreeMap<&SmolStr, &crate::plan::Node> = old.nodes.iter().map(|n| (&n.name, n)).collect();
    let new_nodes: BTreeMap<&SmolStr, &crate::plan::Node> = new.nodes.iter().map(|n| (&n.name, n)).collect();
    for name in old_nodes.keys().chain(new_nodes.keys()).collect::<BTreeSet<_>>() {
        let (a, b) = match (old_nodes.get(name), new_nodes.get(name)) {
            (Some(a), Some(b)) => (*a, *b),
            (Some(a), None) => {
                d.push(node_subject(&a.kind, name), "removed");
                continue;
            }
            (None, Some(b)) => {
                d.push(node_subject(&b.kind, name), format!("added: {}", print::node_summary(&b.kind)));
                continue;
            }
            (None, None) => continue,
        };
        let subject = node_subject(&b.kind, name);
        if a.kind.keyword() != b.kind.keyword() {
            d.push(
                subject,
                format!("was a {}, is now a {}: {}", a.kind.keyword(), b.kind.keyword(), print::node_summary(&b.kind)),
            );
            continue;
        }
        d.value(&subject, "type", &a.ty, &b.ty);
        d.set(&subject, "runs regardless of:", &a.regardless, &b.regardless);
        let timing = |t: &Option<crate::plan::Timing>| {
            t.as_ref().map_or_else(|| "none".to_owned(), |t| format!("`{}`", print::timing(t)))
        };
        d.value(&subject, "deadlines", timing(&a.timing), timing(&b.timing));
        match (&a.kind, &b.kind) {
            (NodeKind::Input { source: x }, NodeKind::Input { source: y }) => {
                let show = |s: &Option<SmolStr>| s.as_ref().map_or_else(|| "none".to_owned(), |s| format!("`{s}`"));
                d.value(&subject, "source", show(x), show(y));
            }
            (NodeKind::Param { default: x }, NodeKind::Param { default: y }) => d.expr(&subject, "default", x, y),
            (NodeKind::Let { value: x }, NodeKind::Let { value: y })
            | (NodeKind::Emit { value: x }, NodeKind::Emit { value: y }) => {
                d.expr(&subject, "value", x, y);
            }
            (
                NodeKind::Gate { level: l1, condition: c1, approvers: r1, message: m1 },
                NodeKind::Gate { level: l2, condition: c2, approvers: r2, message: m2 },
            ) => {
                d.value(&subject, "", l1.as_str(), l2.as_str());
                d.expr(&subject, "condition", c1, c2);
                d.set(&subject, "approvers:", r1, r2);
                let show = |m: &Option<String>| m.as_deref().map_or_else(|| "none".to_owned(), print::text_literal);
                d.value(&subject, "message", show(m1), show(m2));
            }
            (
                NodeKind::Infer { model: m1, args: a1, fallback: f1 },
                NodeKind::Infer { model: m2, args: a2, fallback: f2 },
            ) => {
                d.value(&subject, "model", m1, m2);
                d.args(&subject, a1, a2);
                d.optional_expr(&subject, "fallback", f1.as_ref(), f2.as_ref());
            }
            (
                NodeKind::Retrieve { corpus: c1, query: q1, top: t1 },
                NodeKind::Retrieve { corpus: c2, query: q2, top: t2 },
            ) => {
                d.value(&subject, "corpus", c1, c2);
                d.expr(&subject, "query", q1, q2);
                d.value(&subject, "top", t1, t2);
            }
            (
                NodeKind::Review { roles: r1, condition: c1, outcomes: o1, reasons: s1, edits: e1 },
                NodeKind::Review { roles: r2, condition: c2, outcomes: o2, reasons: s2, edits: e2 },
            ) => {
                d.set(&subject, "reviewers:", r1, r2);
                d.optional_expr(&subject, "condition", c1.as_ref(), c2.as_ref());
                d.set(&subject, "outcomes:", o1, o2);
                d.set(&subject, "reasons:", s1, s2);
                let show =
                    |e: &[crate::plan::EditPath]| e.iter().map(|p| SmolStr::new(p.to_string())).collect::<Vec<_>>();
                d.set(&subject, "may edit:", &show(e1), &show(e2));
            }
            (
                NodeKind::Approval { rows: r1, distinct_from: x1 },
                NodeKind::Approval { rows: r2, distinct_from: x2 },
            ) => {
                for (index, (row1, row2)) in r1.iter().zip(r2).enumerate() {
                    let row = format!("row {}", index + 1);
                    match (&row1.condition, &row2.condition) {
                        (Some(c1), Some(c2)) => d.expr(&subject, &format!("{row} condition"), c1, c2),
                        (None, Some(c2)) => {
                            d.push(&subject, format!("{row} now applies when `{}` (was `otherwise`)", print::expr(c2)))
                        }
                        (Some(c1), None) => {
                            d.push(&subject, format!("{row} is now `otherwise` (was when `{}`)", print::expr(c1)))
                        }
                        (None, None) => {}
                    }
                    if row1.requirement != row2.requirement {
                        d.push(
                            &subject,
                            format!(
                                "{row} now requires {} (was {})",
                                print::requirement(&row2.requirement),
                                print::requirement(&row1.requirement)
                            ),
                        );
                    }
                }
                let row_text = |row: &crate::plan::Row| {
                    let when = row
                        .condition
                        .as_ref()
                        .map_or_else(|| "otherwise".to_owned(), |c| format!("when {}", print::expr(c)));
                    format!("`{when} => {}`", print::requirement(&row.requirement))
                };
                for (index, row) in r2.iter().enumerate().skip(r1.len()) {
                    d.push(&subject, format!("row {} added: {}", index + 1, row_text(row)));
                }
                for (index, row) in r1.iter().enumerate().skip(r2.len()) {
                    d.push(&subject, format!("row {} removed: {}", index + 1, row_text(row)));
                }
                let show = |x: &[Expr]| x.iter().map(|e| SmolStr::new(print::expr(e))).collect::<Vec<_>>();
                d.set(&subject, "distinct from:", &show(x1), &show(x2));
            }
            (
                NodeKind::Action { system: s1, action: n1, args: a1, condition: c1, idempotency: k1 },
                NodeKind::Action { system: s2, action: n2, args: a2, condition: c2, idempotency: k2 },
            ) => {
                d.value(&subject, "calls", format!("`{s1}.{n1}`"), format!("`{s2}.{n2}`"));
                d.args(&subject, a1, a2);
                d.optional_expr(&subject, "condition", c1.as_ref(), c2.as_ref());
                d.optional_expr(&subject, "idempotency key", k1.as_ref(), k2.as_ref());
            }
            _ => {}
        }
    }
}

/// Differences of a list of named declarations: added, removed, and `compare` for both.
fn named<'a, T>(
    d: &mut Differ,
    what: &str,
    old: &'a [T],
    new: &'a [T],
    name: impl Fn(&T) -> &SmolStr,
    mut compare: impl FnMut(&mut Differ, &str, &'a T, &'a T),
) {
    let old: BTreeMap<&SmolStr, &T> = old.iter().map(|x| (name(x), x)).collect();
    let new: BTreeMap<&SmolStr, &T> = new.iter().map(|x| (name(x), x)).collect();
    for key in old.keys().chain(new.keys()).collect::<BTreeSet<_>>() {
        let subject = format!("{what} `{key}`");
        match (old.get(key), new.get(key)) {
            (Some(a), Some(b)) => compare(d, &subject, a, b),
            (Some(_), None) => d.push(subject, "removed"),
            (None, Some(_)) => d.push(subject, "added"),
            (None, None) => {}
        }
    }
}

fn declarations(d: &mut Differ, old: &PlanBody, new: &PlanBody) {
    let flow = (&old.flow, &new.flow);
    let subject = format!("flow `{}`", flow.1.name);
    d.value(&subject, "name", &flow.0.name, &flow.1.name);
    if flow.0.version != flow.1.version {
        d.note(&subject, format!("version {} → {}", flow.0.version, flow.1.version));
    }
    d.value(&subject, "owner", &flow.0.owner, &flow.1.owner);
    d.value(&subject, "steward", &flow.0.steward, &flow.1.steward);
    if flow.0.migrate_waiting != flow.1.migrate_waiting {
        let says = |migrate: bool| if migrate { "migrate to a new version" } else { "stay on their version" };
        d.push(&subject, format!("waiting runs: {} → {}", says(flow.0.migrate_waiting), says(flow.1.migrate_waiting)));
    }
    let retain = |r: Option<i64>| r.map_or_else(|| "unset".to_owned(), time::format_duration);
    d.value("evidence", "retention", retain(old.evidence.retain), retain(new.evidence.retain));
    named(d, "output", &old.outputs, &new.outputs, |o| &o.name, |d, s, a, b| d.value(s, "type", &a.ty, &b.ty));
    named(
        d,
        "monitor",
        &old.monitors,
        &new.monitors,
        |m| &m.name,
        |d, s, a, b| {
            d.value(s, "condition", a.describe(), b.describe());
            d.value(s, "severity", a.severity.as_str(), b.severity.as_str());
            d.value(s, "routes", a.routes.join(", "), b.routes.join(", "));
        },
    );
    let grants = |body: &PlanBody| -> BTreeMap<String, Vec<SmolStr>> {
        body.grants
            .iter()
            .map(|g| {
                let target = g.target.as_ref().map(|t| format!(" {t}")).unwrap_or_default();
                (format!("{}{target}", g.kind.as_str()), g.roles.clone())
            })
            .collect()
    };
    let (old_grants, new_grants) = (grants(old), grants(new));
    for key in old_grants.keys().chain(new_grants.keys()).collect::<BTreeSet<_>>() {
        let empty = Vec::new();
        let subject = format!("access `{key}`");
        d.set(&subject, "roles:", old_grants.get(key).unwrap_or(&empty), new_grants.get(key).unwrap_or(&empty));
    }
    named(d, "role", &old.roles, &new.roles, |r| &r.name, |d, s, a, b| d.set(s, "extends:", &a.extends, &b.extends));
    d.set("labels", "", &old.labels, &new.labels);
    named(
        d,
        "type",
        &old.records,
        &new.records,
        |r| &r.name,
        |d, s, a, b| {
            named(
                d,
                &format!("{s}: field"),
                &a.fields,
                &b.fields,
                |f| &f.name,
                |d, s, x, y| {
                    d.value(s, "type", &x.ty, &y.ty);
                    d.set(s, "labels:", &x.labels, &y.labels);
                },
            );
        },
    );
    named(d, "enum", &old.enums, &new.enums, |e| &e.name, |d, s, a, b| d.set(s, "variants:", &a.variants, &b.variants));
    named(
        d,
        "source",
        &old.sources,
        &new.sources,
        |x| &x.name,
        |d, s, a, b| {
            d.value(s, "type", &a.ty, &b.ty);
            d.value(s, "authority", print::text_literal(&a.authority), print::text_literal(&b.authority));
            let fresh = |f: Option<i64>| f.map_or_else(|| "unset".to_owned(), time::format_duration);
            d.value(s, "freshness", fresh(a.freshness), fresh(b.freshness));
            let as_of = |f: &Option<SmolStr>| f.as_ref().map_or_else(|| "unset".to_owned(), |f| format!("`{f}`"));
            d.value(s, "as_of", as_of(&a.as_of), as_of(&b.as_of));
        },
    );
    named(
        d,
        "model",
        &old.models,
        &new.models,
        |m| &m.name,
        |d, s, a, b| {
            d.value(s, "provider", print::text_literal(&a.provider), print::text_literal(&b.provider));
            d.value(s, "name", print::text_literal(&a.model_name), print::text_literal(&b.model_name));
            d.value(s, "version", print::text_literal(&a.version), print::text_literal(&b.version));
            d.value(s, "digest", &a.digest, &b.digest);
            let prompt =
                |p: &Option<crate::plan::Prompt>| p.as_ref().map_or_else(|| "none".to_owned(), |p| p.hash.clone());
            d.value(s, "prompt", prompt(&a.prompt), prompt(&b.prompt));
            named(
                d,
                &format!("{s}: input"),
                &a.inputs,
                &b.inputs,
                |p| &p.name,
                |d, s, x, y| d.value(s, "type", &x.ty, &y.ty),
            );
            d.value(s, "output", &a.output, &b.output);
            d.set(s, "clearance:", &a.clearance, &b.clearance);
        },
    );
    named(
        d,
        "corpus",
        &old.corpora,
        &new.corpora,
        |c| &c.name,
        |d, s, a, b| {
            d.value(s, "retriever", print::text_literal(&a.retriever), print::text_literal(&b.retriever));
            d.value(s, "authority", print::text_literal(&a.authority), print::text_literal(&b.authority));
            d.value(s, "snapshot", print::text_literal(&a.snapshot), print::text_literal(&b.snapshot));
            d.value(s, "documents", &a.document, &b.document);
            d.set(s, "labels:", &a.labels, &b.labels);
            d.set(s, "clearance:", &a.clearance, &b.clearance);
            let fresh = |f: Option<i64>| f.map_or_else(|| "unset".to_owned(), time::format_duration);
            d.value(s, "freshness", fresh(a.freshness), fresh(b.freshness));
            d.value(s, "on mismatch", a.on_mismatch.as_str(), b.on_mismatch.as_str());
        },
    );
    named(
        d,
        "system",
        &old.systems,
        &new.systems,
        |x| &x.name,
        |d, s, a, b| {
            d.set(s, "clearance:", &a.clearance, &b.clearance);
            named(
                d,
                &format!("{s}: action"),
                &a.actions,
                &b.actions,
                |x| &x.name,
                |d, s, x, y| {
                    named(
                        d,
                        &format!("{s}: parameter"),
                        &x.params,
                        &y.params,
                        |p| &p.name,
                        |d, s, p, q| d.value(s, "type", &p.ty, &q.ty),
                    );
                    d.value(s, "result", &x.result, &y.result);
                },
            );
        },
    );
    named(
        d,
        "fn",
        &old.functions,
        &new.functions,
        |f| &f.name,
        |d, s, a, b| {
            let signature = |f: &crate::plan::Function| {
                let params: Vec<String> = f.params.iter().map(|p| format!("{}: {}", p.name, p.ty)).collect();
                format!("({}) -> {}", params.join(", "), f.result)
            };
            d.value(s, "signature", signature(a), signature(b));
            if a.params == b.params {
                let names: Vec<SmolStr> = a.params.iter().map(|p| p.name.clone()).collect();
                d.expr_with(s, "body", &a.body, &b.body, &names);
            } else if a.body != b.body {
                let names = |f: &crate::plan::Function| f.params.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
                d.push(
                    s,
                    format!("body `{}` → `{}`", print::fn_expr(&a.body, &names(a)), print::fn_expr(&b.body, &names(b))),
                );
            }
        },
    );
}

fn descriptions(d: &mut Differ, old: &Plan, new: &Plan) {
    for key in old.descriptions.keys().chain(new.descriptions.keys()).collect::<BTreeSet<_>>() {
        let subject = format!("description of `{key}`");
        match (old.descriptions.get(key), new.descriptions.get(key)) {
            (Some(a), Some(b)) if a != b => d.note(subject, "changed"),
            (Some(_), None) => d.note(subject, "removed"),
            (None, Some(_)) => d.note(subject, "added"),
            _ => {}
        }
    }
}

/// The differences from `old` to `new`, in the steward's words.
pub fn diff(old: &Plan, new: &Plan) -> Diff {
    let mut d = Differ { changes: Vec::new() };
    let (a, b) = (&old.plan, &new.plan);
    declarations(&mut d, a, b);
    nodes(&mut d, a, b);
    // Edges follow from the nodes; a difference that nothing above explains is still a
    // difference of meaning.
    let explained = d.changes.iter().any(|c| c.material);
    let mut same_version = a.clone();
    same_version.flow.version = b.flow.version.clone();
    if !explained && (same_version != *b || old.format_version != new.format_version) {
        d.push("the plan", "differs in its structure (edges or encoding) although no item changed");
    }
    descriptions(&mut d, old, new);
    // Whoever approves a change says whether the runs waiting on the old version continue on
    // the new: said whenever the new version migrates them, not only when that changes.
    if a.flow.migrate_waiting && b.flow.migrate_waiting && d.changes.iter().any(|c| c.material) {
        d.note(
            format!("flow `{}`", b.flow.name),
            "waiting runs: the new version says they migrate, as the old one did",
        );
    }
    Diff { old_hash: old.hash.clone(), new_hash: new.hash.clone(), changes: d.changes }
}
