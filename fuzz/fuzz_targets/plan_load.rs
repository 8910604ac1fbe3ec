//! The plan loader and verifier, as the runtime loads a plan file: refused with reasons, or
//! verified — and a verified plan reads back the same from its own encoding.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    if let Ok(plan) = flow_ir::load(bytes) {
        let again = flow_ir::encode::to_json(plan.plan());
        let reloaded = flow_ir::load(again.as_bytes()).expect("a verified plan's own encoding verifies");
        assert_eq!(reloaded.hash(), plan.hash());
        // What the runtime derives from it, and its own information-flow proof.
        let analysis = flow_runtime::analysis::Analysis::new(plan);
        let _ = analysis.leaks();
    }
});
