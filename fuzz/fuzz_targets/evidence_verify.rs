//! The evidence verifier: any bytes are a verified bundle or a list of problems.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    let _ = flow_runtime::evidence::verify(bytes);
});
