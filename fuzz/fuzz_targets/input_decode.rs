//! Run inputs: JSON read exactly (or refused) and decoded against every input type of the
//! benchmark's credit plan and the spend approval example's plan, never a panic; what is
//! decoded writes back to JSON that decodes to the same value; and a case line holding it,
//! read straight into values by the input's type (as a backtest reads it), gives what the
//! general reading gives, or gives up.
#![no_main]

use std::sync::LazyLock;

static PLANS: LazyLock<Vec<flow_ir::VerifiedPlan>> = LazyLock::new(|| {
    [&include_bytes!("../../runtime/benches/rules.plan.json")[..], include_bytes!("../seeds/spend_approval.plan.json")]
        .iter()
        .map(|bytes| flow_ir::load(bytes).expect("the seed plans verify"))
        .collect()
});

libfuzzer_sys::fuzz_target!(|text: &str| {
    for plan in PLANS.iter() {
        let body = plan.body();
        for node in body.nodes.iter().filter(|n| matches!(n.kind, flow_ir::plan::NodeKind::Input { .. })) {
            let line = format!("{{\"inputs\": {{\"{}\": {text}}}}}", node.name);
            let Some(read) = flow_runtime::read::case_inputs(body, &line) else { continue };
            let general = flow_runtime::value::parse_exact(&line).expect("what is read straight is JSON read exactly");
            let json = &general["inputs"][node.name.as_str()];
            let value = flow_runtime::value::decode(body, json, &node.ty, "$").expect("and decodes");
            assert_eq!(read, [(node.name.to_string(), value)]);
        }
    }
    let Ok(json) = flow_runtime::value::parse_exact(text) else { return };
    for plan in PLANS.iter() {
        let body = plan.body();
        for node in body.nodes.iter().filter(|n| matches!(n.kind, flow_ir::plan::NodeKind::Input { .. })) {
            if let Ok(value) = flow_runtime::value::decode(body, &json, &node.ty, "$") {
                let again = flow_runtime::value::decode(body, &value.to_json(), &node.ty, "$")
                    .expect("a decoded value's JSON decodes");
                assert_eq!(again, value);
            }
        }
    }
});
