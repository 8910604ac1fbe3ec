//! Tests of lowering as a query: incrementality, and naming files in plans independently
//! of where the compiler runs.

use flow_sema::Database;

use crate::lower::relative_to;
use crate::{file_diagnostics, lower_file};

#[test]
fn other_files_are_named_relative_to_the_flow() {
    assert_eq!(relative_to("", "lib/shared.flow"), "lib/shared.flow");
    assert_eq!(relative_to("examples", "examples/lib/shared.flow"), "lib/shared.flow");
    assert_eq!(relative_to("examples/flows", "examples/common/org.flow"), "../common/org.flow");
    assert_eq!(relative_to("/srv/a", "/srv/b/c.flow"), "../b/c.flow");
}

fn flow(name: &str, limit: &str) -> Vec<u8> {
    format!(
        "import \"types.flow\"\nrole clerk\nflow {name} {{\n  version \"1.0.0\"\n  owner clerk\n  steward clerk\n  input r: Request\n  output big: Bool\n  emit big = r.amount > {limit}\n}}\n"
    )
    .into_bytes()
}

#[test]
fn editing_one_flow_lowers_only_that_flow_again() {
    let (mut db, log) = Database::logging();
    let a = db.set_file("a.flow", flow("a", "10 USD"));
    let b = db.set_file("b.flow", flow("b", "10 USD"));
    db.set_file("types.flow", b"type Request { amount: Money[USD] }\n".to_vec());
    for file in [a, b] {
        assert!(file_diagnostics(&db, file).is_empty());
    }
    let before = lower_file(&db, a).flows[0].plan.as_ref().map(|p| p.hash().to_owned());
    db.executed(&log);

    db.set_file("b.flow", flow("b", "20 USD"));
    for file in [a, b] {
        assert!(file_diagnostics(&db, file).is_empty());
    }
    let ran = db.executed(&log);
    assert!(ran.iter().any(|q| q.starts_with("lower_file(b.flow)")), "{ran:#?}");
    assert!(!ran.iter().any(|q| q.contains("(a.flow)")), "{ran:#?}");
    assert_eq!(lower_file(&db, a).flows[0].plan.as_ref().map(|p| p.hash().to_owned()), before);

    // A change of meaning in a shared declaration lowers both again, with new hashes.
    db.set_file("types.flow", b"type Request { amount: Money[USD], note: Text? }\n".to_vec());
    assert!(file_diagnostics(&db, a).is_empty());
    let ran = db.executed(&log);
    assert!(ran.iter().any(|q| q.starts_with("lower_file(a.flow)")), "{ran:#?}");
    assert_ne!(lower_file(&db, a).flows[0].plan.as_ref().map(|p| p.hash().to_owned()), before);
}

#[test]
fn files_with_errors_are_not_lowered() {
    let mut db = Database::default();
    let a = db.set_file("a.flow", flow("a", "10 EUR"));
    db.set_file("types.flow", b"type Request { amount: Money[USD] }\n".to_vec());
    assert!(file_diagnostics(&db, a).iter().any(|d| d.code == flow_diagnostics::Code::E1009));
    assert!(lower_file(&db, a).flows.is_empty());
}
