//! Exact JSON: the reader refuses what floating point would change and otherwise agrees
//! with serde_json.
#![no_main]

libfuzzer_sys::fuzz_target!(|text: &str| {
    if let Ok(json) = flow_runtime::value::parse_exact(text) {
        let plain: serde_json::Value = serde_json::from_str(text).expect("what reads exactly reads");
        assert_eq!(json, plain);
    }
});
