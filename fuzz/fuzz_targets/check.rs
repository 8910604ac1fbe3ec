//! The whole checker, as `flowc check` runs it on one file: parsing, names, types, flows,
//! matrices, information flow, lowering and the plan proofs. Diagnostics, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    let mut db = flow_sema::Database::default();
    let file = db.set_file("main.flow", bytes.to_vec());
    let _ = flow_lower::file_diagnostics(&db, file);
});
