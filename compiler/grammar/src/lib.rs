//! The Flow grammar: `flow.pest` is the single source of the language's syntax.
//!
//! This crate only derives the pest parser. Turning pest pairs into an owned syntax tree,
//! recovering from errors and wording diagnostics is `flow-syntax`'s job; no other crate of
//! the workspace may depend on pest.

#![expect(missing_docs, reason = "pest_derive generates the undocumented `Rule` enum")]

use pest_derive::Parser;

/// The pest parser derived from `flow.pest`.
#[derive(Parser)]
#[grammar = "flow.pest"]
pub struct FlowParser;

pub use pest::Parser;
pub use pest::error::{Error, InputLocation};
pub use pest::iterators::{Pair, Pairs};
pub use pest::set_error_detail;

use std::collections::HashMap;
use std::sync::OnceLock;

/// The rule of one of pest's recorded parse attempts (`RulesCallStack::deepest`), or `None`
/// for an attempt at a literal token.
///
/// pest does not export the attempt's type by name, only its `Debug` form (`Rule(name)` or
/// `Token`), so the rule is recovered from that.
pub fn attempted_rule(attempt: &impl std::fmt::Debug) -> Option<Rule> {
    static BY_NAME: OnceLock<HashMap<String, Rule>> = OnceLock::new();
    let by_name = BY_NAME.get_or_init(|| Rule::all_rules().iter().map(|rule| (format!("{rule:?}"), *rule)).collect());
    let text = format!("{attempt:?}");
    let name = text.strip_prefix("Rule(")?.strip_suffix(')')?;
    by_name.get(name).copied()
}

#[cfg(test)]
mod tests;
