//! Tests of the pest surface that `flow-syntax` relies on.

use crate::{FlowParser, Parser, Rule, attempted_rule, set_error_detail};

#[test]
fn attempts_name_their_rules() {
    set_error_detail(true);
    let error = FlowParser::parse(Rule::item_entry, "type foo {}").err();
    let attempts = error.and_then(|e| e.parse_attempts()).map(|a| a.call_stacks()).unwrap_or_default();
    let rules: Vec<Rule> = attempts.iter().filter_map(|s| attempted_rule(&s.deepest)).collect();
    assert_eq!(rules, vec![Rule::type_name]);
}

#[test]
fn whole_language_rule_accepts_a_flow() {
    let text = "role clerk\nflow f {\n  version \"1.0.0\"\n  owner clerk\n  steward clerk\n}\n";
    assert!(FlowParser::parse(Rule::file, text).is_ok());
}
