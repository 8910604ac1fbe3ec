//! The language server's analysis of a document as an editor sends it: the same checks as
//! `check`, with a second version of the text applied over the first (what an edit does to
//! the incremental database), never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: (&str, &str)| {
    let (first, second) = input;
    let mut db = flow_sema::Database::default();
    let file = db.set_file("main.flow", first.as_bytes().to_vec());
    let _ = flow_lower::file_diagnostics(&db, file);
    let file = db.set_file("main.flow", second.as_bytes().to_vec());
    let _ = flow_lower::file_diagnostics(&db, file);
    let _ = flow_sema::scope(&db, file);
});
