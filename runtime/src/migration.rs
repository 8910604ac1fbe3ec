//! When a run waiting on one version of a flow may continue on another (`migrate waiting`):
//! the one check that `flowc diff`, a release's proposal, the runtime, the verifier of
//! evidence and replay all make.
//!
//! A run migrates with what it has: its inputs, params and every value computed so far stay
//! as they were, and the steps still ahead run as the new version says. That is
//! well-defined only when everything the run may have recorded means the same under the
//! new version — so the check is of the whole old plan, not of one run's progress:
//!
//! - the same flow, and the new version declares `migrate waiting`;
//! - the same inputs and params, with the same types;
//! - every type the old version declares (records, with their fields' labels, and enums)
//!   declared alike;
//! - every step of the old version present, of the same kind and type: a gate of the same
//!   level; a review with the same outcomes, reasons and editable fields; an approval with
//!   the same rows and `distinct from` (what it required of a run is recorded by row);
//! - every output of the old version, of the same type;
//! - no value the old version labels loses a label: every step keeps at least the labels
//!   it had, its failures too (a value computed under the old labels is read under the new);
//!   every label stays declared, and no role may view a label it could not view before
//!   (the new version's grants apply to the whole run, what it recorded before included).
//!
//! Steps may be added, and the conditions and formulas of everything but an approval's rows,
//! models, corpora, systems, the roles of reviews and soft gates, deadlines, and grants that
//! widen no `view` may change: they apply to what the run does next (`docs/language.md`,
//! "Versions and waiting runs").

use crate::analysis::Analysis;
use flow_ir::plan::NodeKind;

/// Why runs waiting on `old` may not continue on `new`: every problem, none when they may.
pub fn problems(old: &Analysis, new: &Analysis) -> Vec<String> {
    let (before, after) = (old.body(), new.body());
    let mut out = Vec::new();
    if before.flow.name != after.flow.name {
        out.push(format!("it is another flow (`{}`, not `{}`)", after.flow.name, before.flow.name));
        return out;
    }
    if !after.flow.migrate_waiting {
        out.push("the new version does not declare `migrate waiting`".to_owned());
    }
    for record in &before.records {
        match after.records.iter().find(|r| r.name == record.name) {
            Some(same) if same == record => {}
            Some(_) => out.push(format!("type `{}` changes (its fields, their types or labels)", record.name)),
            None => out.push(format!("type `{}` is removed", record.name)),
        }
    }
    for declared in &before.enums {
        match after.enums.iter().find(|e| e.name == declared.name) {
            Some(same) if same == declared => {}
            Some(_) => out.push(format!("enum `{}` changes its variants", declared.name)),
            None => out.push(format!("enum `{}` is removed", declared.name)),
        }
    }
    for node in &before.nodes {
        let name = &node.name;
        let Some(now) = after.node(name) else {
            out.push(format!("{} `{name}` is removed", what(&node.kind)));
            continue;
        };
        if now.ty != node.ty {
            out.push(format!("`{name}` changes its type from {} to {}", node.ty, now.ty));
        }
        if std::mem::discriminant(&now.kind) != std::mem::discriminant(&node.kind) {
            out.push(format!("`{name}` is no longer {} but {}", what(&node.kind), what(&now.kind)));
            continue;
        }
        match (&node.kind, &now.kind) {
            (NodeKind::Gate { level, .. }, NodeKind::Gate { level: now, .. }) if level != now => {
                out.push(format!("gate `{name}` changes from {} to {}", level.as_str(), now.as_str()))
            }
            (
                NodeKind::Review { outcomes, reasons, edits, .. },
                NodeKind::Review { outcomes: o, reasons: r, edits: e, .. },
            ) if (outcomes, reasons, edits) != (o, r, e) => {
                out.push(format!("review `{name}` changes its outcomes, reasons or the fields it may edit"))
            }
            (NodeKind::Approval { .. }, NodeKind::Approval { .. }) if node.kind != now.kind => {
                out.push(format!("approval `{name}` changes its matrix"))
            }
            _ => {}
        }
        let lost = |had: &[smol_str::SmolStr], has: &[smol_str::SmolStr]| {
            had.iter().filter(|l| !has.contains(l)).map(|l| format!("`{l}`")).collect::<Vec<_>>()
        };
        let mut labels = lost(old.node_labels(name), new.node_labels(name));
        for label in lost(old.failure_labels(name), new.failure_labels(name)) {
            if !labels.contains(&label) {
                labels.push(label);
            }
        }
        if !labels.is_empty() {
            out.push(format!(
                "`{name}` loses label {}: a value labelled so would be read unlabelled",
                labels.join(", ")
            ));
        }
    }
    for output in &before.outputs {
        match after.output(&output.name) {
            Some(now) if now.ty == output.ty => {}
            Some(now) => {
                out.push(format!("output `{}` changes its type from {} to {}", output.name, output.ty, now.ty))
            }
            None => out.push(format!("output `{}` is removed", output.name)),
        }
    }
    // Who may see what the run recorded: no role sees a label of the old version that it
    // could not see there (as a what-if never shows more than the run's plan lets).
    for label in &before.labels {
        if !after.labels.contains(label) {
            out.push(format!("label `{label}` is no longer declared"));
        }
    }
    let roles: std::collections::BTreeSet<&str> =
        before.roles.iter().chain(&after.roles).map(|role| role.name.as_str()).collect();
    for role in roles {
        let holder = [role.to_owned()];
        let before_views = old.views(&holder);
        let wider: Vec<String> = new
            .views(&holder)
            .into_iter()
            .filter(|label| before.labels.contains(label) && !before_views.contains(label))
            .map(|label| format!("`{label}`"))
            .collect();
        if !wider.is_empty() {
            out.push(format!(
                "role `{role}` may view {} there: it would see what the runs recorded under the old version, \
                 which did not let it",
                wider.join(", ")
            ));
        }
    }
    for node in &after.nodes {
        if matches!(node.kind, NodeKind::Input { .. } | NodeKind::Param { .. }) && before.node(&node.name).is_none() {
            out.push(format!("{} `{}` is added: the runs waiting have no value for it", what(&node.kind), node.name));
        }
    }
    out
}

fn what(kind: &NodeKind) -> &'static str {
    match kind {
        NodeKind::Input { .. } => "input",
        NodeKind::Param { .. } => "param",
        NodeKind::Let { .. } => "let",
        NodeKind::Gate { .. } => "gate",
        NodeKind::Infer { .. } => "infer step",
        NodeKind::Retrieve { .. } => "retrieve step",
        NodeKind::Review { .. } => "review",
        NodeKind::Approval { .. } => "approval",
        NodeKind::Action { .. } => "action",
        NodeKind::Emit { .. } => "emit",
    }
}
