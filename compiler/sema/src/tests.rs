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

#[test]
fn editing_one_file_rechecks_only_what_depends_on_it() {
    let (mut db, log) = Database::logging();
    let types = "type Request { amount: Money[USD] }\n";
    let flow = |limit: &str| {
        format!(
            "import \"types.flow\"\nrole clerk\nflow f {{\n  version \"1.0.0\"\n  owner clerk\n  steward clerk\n  input r: Request\n  let big = r.amount > {limit}\n}}\n"
        )
    };
    let main = db.set_file("main.flow", flow("10 USD").into_bytes());
    let other = db.set_file("types.flow", types.as_bytes().to_vec());
    assert!(file_diagnostics(&db, main).is_empty());
    assert!(file_diagnostics(&db, other).is_empty());
    db.executed(&log);

    // A change inside a flow of `main.flow` re-parses and re-checks it, and runs nothing
    // of `types.flow`.
    db.set_file("main.flow", flow("20 USD").into_bytes());
    assert!(file_diagnostics(&db, main).is_empty());
    assert!(file_diagnostics(&db, other).is_empty());
    let ran = db.executed(&log);
    assert!(ran.iter().any(|q| q.starts_with("parse(main.flow)")), "{ran:#?}");
    assert!(ran.iter().any(|q| q.starts_with("check_file(main.flow)")), "{ran:#?}");
    assert!(!ran.iter().any(|q| q.contains("types.flow")), "{ran:#?}");

    // Checking again without a change executes nothing.
    assert!(file_diagnostics(&db, main).is_empty());
    assert_eq!(db.executed(&log), Vec::<String>::new());
}
