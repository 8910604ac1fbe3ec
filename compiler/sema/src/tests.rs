//! Unit tests of the queries: incrementality and the loader.

use crate::{Database, Db, ReadError, file_diagnostics, normalize};

fn load(files: &[(&str, &str)]) -> (Database, Vec<crate::SourceFile>) {
    let mut db = Database::default();
    let map: std::collections::BTreeMap<String, String> =
        files.iter().map(|(p, t)| (normalize(p), (*t).to_owned())).collect();
    let roots: Vec<String> = files.iter().map(|(p, _)| (*p).to_owned()).collect();
    let (loaded, _) =
        db.load(&roots, &mut |path| map.get(path).map(|t| t.clone().into_bytes()).ok_or(ReadError::NotFound));
    (db, loaded)
}

#[test]
fn normalizes_paths() {
    assert_eq!(normalize("a/./b/../c.flow"), "a/c.flow");
    assert_eq!(normalize("../x.flow"), "../x.flow");
    assert_eq!(normalize("/a/../../b"), "/b");
}

#[test]
fn clean_file_has_no_diagnostics() {
    let (db, files) =
        load(&[("a.flow", "role clerk\nflow f {\n  version \"1.0.0\"\n  owner clerk\n  steward clerk\n}\n")]);
    let diagnostics = file_diagnostics(&db, files[0]);
    assert!(diagnostics.is_empty(), "{diagnostics:#?}");
    let _ = db.workspace();
}
