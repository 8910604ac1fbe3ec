//! Unit tests of the plan crate: time formats, the type syntax, and the verifier's
//! refusals of hand-made plans.

use crate::time::{format_timestamp, parse_duration, parse_timestamp};
use crate::ty::Ty;

#[test]
fn timestamps_round_trip() {
    for text in ["2026-04-11T13:35:00Z", "1969-12-31T23:59:59.5Z", "2000-02-29T00:00:00Z", "0001-01-01T00:00:00Z"] {
        let (seconds, nanos) = parse_timestamp(text).expect(text);
        assert_eq!(format_timestamp(seconds, nanos), text);
    }
    assert_eq!(parse_timestamp("2026-04-11T15:35:00+02:00"), parse_timestamp("2026-04-11T13:35:00Z"));
    assert_eq!(parse_timestamp("2026-04-11"), parse_timestamp("2026-04-11T00:00:00Z"));
    for bad in ["2026-02-30", "2026-04-11T25:00:00Z", "2026-04-11T13:35:00", "nonsense", "2026-04-11T13:35:00.Z"] {
        assert_eq!(parse_timestamp(bad), None, "{bad}");
    }
}

#[test]
fn durations_read_as_written() {
    assert_eq!(parse_duration("72h"), Some(72 * 3600));
    assert_eq!(parse_duration("-30m"), Some(-1800));
    assert_eq!(parse_duration("7y"), Some(7 * 365 * 86_400));
    assert_eq!(parse_duration("1_000s"), Some(1000));
    assert_eq!(parse_duration("h"), None);
    assert_eq!(parse_duration("9999999999999999999d"), None);
}

#[test]
fn types_round_trip_through_their_syntax() {
    for text in [
        "Bool",
        "Money",
        "Money[USD]",
        "List[Text]?",
        "RiskTier",
        "triage.outcome",
        "triage.reason",
        "review triage",
        "approval spend",
        "List[List[Int]]",
        "Nothing",
    ] {
        let ty: Ty = text.parse().expect(text);
        assert_eq!(ty.to_string(), text);
    }
    for bad in ["Money[usd]", "Text??", "List[", "lowercase", "", "List[Text"] {
        assert!(bad.parse::<Ty>().is_err(), "{bad}");
    }
    // Nested as deep as a type's text allows, and far deeper: read, or refused without
    // recursing as deep (which overflowed the stack of a test's thread).
    let nested = |depth: usize| format!("{}Int{}", "List[".repeat(depth), "]".repeat(depth));
    assert!(nested(150).parse::<Ty>().is_ok());
    assert!(nested(1_000_000).parse::<Ty>().is_err());
}

/// A plan of one input `x: Bool` and a `let` of `depth` nested `not`s over it, sealed.
fn deep_plan(depth: usize) -> Vec<u8> {
    let expr = format!("{}[\"node\",\"x\"]{}", "[\"not\",".repeat(depth), "]".repeat(depth));
    let body = format!(
        r#"{{"flow":{{"name":"f","version":"1.0.0","owner":"r","steward":"r"}},"outputs":[],"nodes":[{{"name":"x","ty":"Bool","kind":{{"input":{{"source":null}}}}}},{{"name":"y","ty":"Bool","kind":{{"let":{{"value":{expr}}}}}}}],"edges":[["x","y","data"]],"grants":[],"evidence":{{"retain":null}},"roles":[{{"name":"r","extends":[]}}],"labels":[],"records":[],"enums":[],"sources":[],"models":[],"systems":[],"functions":[]}}"#
    );
    let text = format!(r#"{{"format_version":1,"language_version":"1","hash":"HASH","plan":{body}}}"#);
    let Ok(parsed) = crate::encode::parse(text.as_bytes()) else { return text.into_bytes() };
    let hash = crate::encode::content_hash(1, "1", &parsed.plan);
    text.replace("HASH", &hash).into_bytes()
}

#[test]
fn the_deepest_expressions_load_on_a_small_stack_and_deeper_ones_are_refused() {
    // A thread with the default stack of a spawned thread (2 MiB), as an embedder's.
    let result = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            let deepest = crate::load(&deep_plan(crate::wire::MAX_DEPTH - 1));
            let verified = deepest.map_err(|e| e.to_string())?;
            let printed = crate::print::dump(&verified);
            let too_deep = crate::load(&deep_plan(crate::wire::MAX_DEPTH + 1)).err().map(|e| e.to_string());
            Ok::<_, String>((printed.len(), too_deep))
        })
        .map(|handle| handle.join());
    let Ok(Ok(Ok((printed, too_deep)))) = result else { panic!("the deep plan was not loaded: {result:?}") };
    assert!(printed > 4 * crate::wire::MAX_DEPTH);
    let too_deep = too_deep.unwrap_or_default();
    assert!(too_deep.contains("[E2101]") && too_deep.contains("nest deeper than 1024 levels"), "{too_deep}");
}

/// A list value (a test's values are lowered to the plan's expressions) is written with
/// its type and read back as written.
#[test]
fn list_values_round_trip_through_the_wire_format() {
    use crate::expr::{Expr, ExprKind, Literal};
    let text = |t: &str| Expr { kind: ExprKind::Lit(Literal::Text(t.into())), ty: Ty::Text };
    let list = Expr { kind: ExprKind::List(vec![text("a"), text("b")]), ty: Ty::List(Box::new(Ty::Text)) };
    let json = serde_json::to_value(&list).expect("a list is written");
    assert_eq!(json, serde_json::json!(["list", "List[Text]", ["lit", "Text", "a"], ["lit", "Text", "b"]]));
    let read: Expr = serde_json::from_value(json).expect("and read back");
    assert_eq!(read, list);
    let empty: Expr = serde_json::from_value(serde_json::json!(["list", "List[Int]"])).expect("an empty list");
    assert_eq!(empty.kind, ExprKind::List(Vec::new()));
}
