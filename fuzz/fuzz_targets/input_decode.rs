//! Run inputs: JSON read exactly (or refused) and decoded against every input type of the
//! benchmark's credit plan and the spend approval example's plan, never a panic; what is
//! decoded writes back to JSON that decodes to the same value.
#![no_main]

use std::sync::LazyLock;

static PLANS: LazyLock<Vec<flow_ir::VerifiedPlan>> = LazyLock::new(|| {
    [&include_bytes!("../../runtime/benches/rules.plan.json")[..], include_bytes!("../seeds/spend_approval.plan.json")]
        .iter()
        .map(|bytes| flow_ir::load(bytes).expect("the seed plans verify"))
        .collect()
});

libfuzzer_sys::fuzz_target!(|text: &str| {
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
