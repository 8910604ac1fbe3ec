//! Events against a plan, as `flowc verify` checks a bundle's: any JSON events give a list of
//! problems, never a panic.
#![no_main]

use std::sync::LazyLock;

static PLAN: LazyLock<flow_runtime::analysis::Analysis> = LazyLock::new(|| {
    let plan = flow_ir::load(include_bytes!("../seeds/spend_approval.plan.json")).expect("the seed plan verifies");
    flow_runtime::analysis::Analysis::new(plan)
});

libfuzzer_sys::fuzz_target!(|text: &str| {
    if let Ok(serde_json::Value::Array(events)) = serde_json::from_str(text) {
        let _ = flow_runtime::conformance::problems(&PLAN, &events);
    }
});
