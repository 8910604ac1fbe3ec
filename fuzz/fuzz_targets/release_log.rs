//! The release log verifier: any bytes are a verified release log or a list of problems.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    let text = String::from_utf8_lossy(bytes);
    let _ = flow_runtime::release::verify_bundle(&text, &[], false);
    let _ = flow_runtime::release::verify_bundle(&text, &[], true);
});
