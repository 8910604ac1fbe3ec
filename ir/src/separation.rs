//! Separation of duties against a directory of principals (`E2019`): can every
//! review and soft gate be decided, and can every row of every approval matrix be met by
//! distinct principals, even when the principals named by `distinct from` are among the
//! eligible ones?
//!
//! Without a directory nothing is decided here: the language declares roles, not who holds
//! them, so the runtime enforces separation when decisions arrive. A `distinct from` value
//! that is a list has no size before the run; only single principals are counted.

use std::collections::{BTreeMap, BTreeSet};

use smol_str::SmolStr;

use crate::expr::Expr;
use crate::plan::{NodeKind, PlanBody, Requirement};
use crate::print;
use crate::ty::Ty;
use crate::verify::VerifiedPlan;

/// Who holds which roles, as a deployment's principals file says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Directory {
    principals: BTreeMap<String, BTreeSet<String>>,
}

impl Directory {
    pub fn new(principals: impl IntoIterator<Item = (String, Vec<String>)>) -> Directory {
        Directory { principals: principals.into_iter().map(|(id, roles)| (id, roles.into_iter().collect())).collect() }
    }

    pub fn principals(&self) -> impl Iterator<Item = (&str, &BTreeSet<String>)> {
        self.principals.iter().map(|(id, roles)| (id.as_str(), roles))
    }

    /// Whether `principal` holds `role`: has it, or a role that extends it.
    pub fn holds(&self, body: &PlanBody, principal: &str, role: &str) -> bool {
        self.principals.get(principal).is_some_and(|roles| roles.iter().any(|held| extends(body, held, role)))
    }
}

/// Whether role `held` is `role` or extends it, directly or through other roles.
pub fn extends(body: &PlanBody, held: &str, role: &str) -> bool {
    if held == role {
        return true;
    }
    if body.role(held).is_none_or(|declared| declared.extends.is_empty()) {
        // Extends nothing (or is not declared): no search to make.
        return false;
    }
    let mut stack = vec![held];
    let mut seen = BTreeSet::new();
    while let Some(current) = stack.pop() {
        if current == role {
            return true;
        }
        if seen.insert(current)
            && let Some(declared) = body.role(current)
        {
            stack.extend(declared.extends.iter().map(SmolStr::as_str));
        }
    }
    false
}

/// A step that the directory's principals cannot decide.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsatisfiable {
    /// The review, gate or approval.
    pub step: SmolStr,
    /// For an approval, the row (from 1).
    pub row: Option<usize>,
    pub message: String,
}

/// How many distinct principals a slot assignment needs: each term's approvers, one role
/// per slot.
fn slots(terms: &[Requirement]) -> Vec<&str> {
    let mut slots = Vec::new();
    for term in terms {
        match term {
            Requirement::Auto => {}
            Requirement::Count { count, role } => {
                slots.extend(std::iter::repeat_n(role.as_str(), *count as usize));
            }
            Requirement::AllOf(roles) => slots.extend(roles.iter().map(SmolStr::as_str)),
        }
    }
    slots
}

/// Whether distinct principals among `candidates` can fill every slot (Kuhn's matching).
fn fillable(slots: &[&str], candidates: &[(&str, Vec<bool>)]) -> bool {
    fn assign(slot: usize, candidates: &[(&str, Vec<bool>)], owner: &mut [Option<usize>], seen: &mut [bool]) -> bool {
        for (c, (_, eligible)) in candidates.iter().enumerate() {
            if eligible[slot] && !seen[c] {
                seen[c] = true;
                let free = match owner[c] {
                    None => true,
                    Some(other) => assign(other, candidates, owner, seen),
                };
                if free {
                    owner[c] = Some(slot);
                    return true;
                }
            }
        }
        false
    }
    let mut owner: Vec<Option<usize>> = vec![None; candidates.len()];
    (0..slots.len()).all(|slot| assign(slot, candidates, &mut owner, &mut vec![false; candidates.len()]))
}

/// The subsets of `0..n` of exactly `k` elements, in order, at most `limit` of them.
fn subsets(n: usize, k: usize, limit: usize) -> Option<Vec<Vec<usize>>> {
    let mut out = Vec::new();
    let mut current: Vec<usize> = (0..k).collect();
    if k > n {
        return Some(vec![(0..n).collect()]);
    }
    loop {
        out.push(current.clone());
        if out.len() > limit {
            return None;
        }
        let Some(i) = (0..k).rev().find(|&i| current[i] < n - k + i) else { return Some(out) };
        current[i] += 1;
        for j in i + 1..k {
            current[j] = current[j - 1] + 1;
        }
    }
}

/// How many principals a `distinct from` value can exclude, when that is known.
fn excluded(expr: &Expr) -> usize {
    match expr.ty.unwrap_optional() {
        Ty::Principal => 1,
        _ => 0,
    }
}

/// The steps of `plan` that the principals of `directory` cannot decide.
pub fn check(plan: &VerifiedPlan, directory: &Directory) -> Vec<Unsatisfiable> {
    let body = plan.body();
    let mut problems = Vec::new();
    let holders = |roles: &[SmolStr]| -> Vec<&str> {
        directory
            .principals()
            .filter(|(id, _)| roles.iter().any(|r| directory.holds(body, id, r)))
            .map(|(id, _)| id)
            .collect()
    };
    for node in &body.nodes {
        match &node.kind {
            NodeKind::Review { roles, .. } | NodeKind::Gate { approvers: roles, .. }
                if !roles.is_empty() && holders(roles).is_empty() =>
            {
                let what = if matches!(node.kind, NodeKind::Review { .. }) { "review" } else { "gate" };
                problems.push(Unsatisfiable {
                    step: node.name.clone(),
                    row: None,
                    message: format!(
                        "no principal can decide {what} `{}`: nobody holds {}",
                        node.name,
                        roles.iter().map(|r| format!("`{r}`")).collect::<Vec<_>>().join(" or ")
                    ),
                });
            }
            NodeKind::Approval { rows, distinct_from } => {
                let exclude: usize = distinct_from.iter().map(excluded).sum();
                let excluded_names: Vec<String> =
                    distinct_from.iter().filter(|e| excluded(e) > 0).map(|e| format!("`{}`", print::expr(e))).collect();
                for (index, row) in rows.iter().enumerate() {
                    let slots = slots(&row.requirement);
                    if slots.is_empty() {
                        continue;
                    }
                    let candidates: Vec<(&str, Vec<bool>)> = directory
                        .principals()
                        .map(|(id, _)| (id, slots.iter().map(|role| directory.holds(body, id, role)).collect()))
                        .filter(|(_, eligible): &(&str, Vec<bool>)| eligible.iter().any(|e| *e))
                        .collect();
                    let needed = print::requirement(&row.requirement);
                    let mut problem = None;
                    if !fillable(&slots, &candidates) {
                        problem = Some(format!(
                            "row {} of approval `{}` needs {} distinct approvers ({needed}), but the principals cannot fill it",
                            index + 1,
                            node.name,
                            slots.len()
                        ));
                    } else if exclude > 0 {
                        // The excluded principals may be any of the eligible ones.
                        let Some(removals) = subsets(candidates.len(), exclude, 100_000) else { continue };
                        for removed in removals {
                            let rest: Vec<(&str, Vec<bool>)> = candidates
                                .iter()
                                .enumerate()
                                .filter(|(i, _)| !removed.contains(i))
                                .map(|(_, c)| c.clone())
                                .collect();
                            if !fillable(&slots, &rest) {
                                let who: Vec<&str> = removed.iter().map(|&i| candidates[i].0).collect();
                                problem = Some(format!(
                                    "row {} of approval `{}` needs {} distinct approvers ({needed}) other than {}, but when that is {} the others cannot fill it",
                                    index + 1,
                                    node.name,
                                    slots.len(),
                                    excluded_names.join(" and "),
                                    who.iter().map(|w| format!("`{w}`")).collect::<Vec<_>>().join(" and ")
                                ));
                                break;
                            }
                        }
                    }
                    if let Some(message) = problem {
                        problems.push(Unsatisfiable { step: node.name.clone(), row: Some(index + 1), message });
                    }
                }
            }
            _ => {}
        }
    }
    problems
}
