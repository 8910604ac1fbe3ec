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
}
