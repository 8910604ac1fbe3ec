//! The interpreter's arithmetic, approval matching, evidence digests and the
//! `openai-compatible` provider against a local HTTP server.

#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

use std::io::{BufRead, BufReader, Read, Write};

use flow_ir::expr::{BinaryOp, Money, Timestamp};
use serde_json::json;

use crate::interp::{EvalError, binary};
use crate::value::Value;

fn dec(text: &str) -> Value {
    Value::Decimal(text.parse().unwrap())
}

fn money(text: &str) -> Value {
    Value::Money(Money::parse(text).unwrap())
}

#[test]
fn decimal_arithmetic_is_exact() {
    assert_eq!(binary(BinaryOp::Add, dec("0.1"), dec("0.2")).unwrap(), dec("0.3"));
    assert_eq!(
        binary(BinaryOp::Eq, binary(BinaryOp::Add, dec("0.1"), dec("0.2")).unwrap(), dec("0.3")).unwrap(),
        Value::Bool(true)
    );
    assert_eq!(binary(BinaryOp::Mul, money("19.99 USD"), dec("3")).unwrap(), money("59.97 USD"));
    assert_eq!(binary(BinaryOp::Div, money("10.00 EUR"), money("4.00 EUR")).unwrap(), dec("2.5"));
    assert_eq!(binary(BinaryOp::Sub, money("0.30 USD"), money("0.10 USD")).unwrap(), money("0.20 USD"));
}

#[test]
fn errors_of_values_are_errors_not_answers() {
    assert!(matches!(binary(BinaryOp::Add, Value::Int(i64::MAX), Value::Int(1)), Err(EvalError::Overflow { .. })));
    assert!(matches!(binary(BinaryOp::Mul, Value::Int(i64::MIN), Value::Int(-1)), Err(EvalError::Overflow { .. })));
    assert!(matches!(
        binary(BinaryOp::Mul, dec("79228162514264337593543950335"), dec("2")),
        Err(EvalError::Overflow { .. })
    ));
    assert!(matches!(binary(BinaryOp::Div, dec("1"), dec("0")), Err(EvalError::DivisionByZero { .. })));
    assert!(matches!(binary(BinaryOp::Div, money("1 USD"), money("0 USD")), Err(EvalError::DivisionByZero { .. })));
    // The error names no value (it is shown to everyone); its detail, kept labelled, does.
    let mismatch = binary(BinaryOp::Lt, money("1 USD"), money("1 EUR")).unwrap_err();
    assert_eq!(mismatch.to_string(), "currency mismatch: `<` of amounts in two currencies, which Flow never converts");
    assert_eq!(mismatch.detail().unwrap(), "currency mismatch: `1 USD < 1 EUR` mixes USD and EUR");
    let zero = binary(BinaryOp::Div, dec("123456.78"), dec("0")).unwrap_err();
    assert_eq!(zero.to_string(), "division by zero (`/` of decimals)");
    assert_eq!(zero.detail().unwrap(), "division by zero in `123456.78 / 0`");
    let large = binary(BinaryOp::Mul, Value::Int(i64::MAX), Value::Int(2)).unwrap_err();
    assert!(!large.to_string().contains(&i64::MAX.to_string()), "{large}");
    assert!(matches!(binary(BinaryOp::Add, money("1 USD"), money("1 EUR")), Err(EvalError::CurrencyMismatch { .. })));
    assert!(matches!(binary(BinaryOp::Eq, money("1 USD"), money("1 EUR")), Err(EvalError::CurrencyMismatch { .. })));
    assert!(matches!(binary(BinaryOp::Add, Value::Int(1), dec("1")), Err(EvalError::Internal(_))));
}

#[test]
fn instants_and_durations() {
    let at = |seconds| Value::Timestamp(Timestamp { seconds, nanos: 0 });
    assert_eq!(binary(BinaryOp::Sub, at(100), at(40)).unwrap(), Value::Duration(60));
    assert_eq!(binary(BinaryOp::Add, at(100), Value::Duration(3_600)).unwrap(), at(3_700));
    assert_eq!(binary(BinaryOp::Div, Value::Duration(90), Value::Duration(60)).unwrap(), dec("1.5"));
    assert!(matches!(binary(BinaryOp::Add, at(i64::MAX), Value::Duration(1)), Err(EvalError::Overflow { .. })));
    let early = Value::Timestamp(Timestamp { seconds: 10, nanos: 500 });
    assert_eq!(binary(BinaryOp::Sub, at(11), early.clone()).unwrap(), Value::Duration(0), "whole seconds, toward zero");
    assert_eq!(binary(BinaryOp::Sub, early, at(11)).unwrap(), Value::Duration(0), "the same the other way");
    let late = Value::Timestamp(Timestamp { seconds: 12, nanos: 0 });
    let mid = Value::Timestamp(Timestamp { seconds: 9, nanos: 600 });
    assert_eq!(binary(BinaryOp::Sub, late.clone(), mid.clone()).unwrap(), Value::Duration(2));
    assert_eq!(binary(BinaryOp::Sub, mid, late).unwrap(), Value::Duration(-2));
    // Instants past the year 9999 (or before 0000) cannot be written, so they are errors.
    let last = at(flow_ir::time::LAST);
    let past = binary(BinaryOp::Add, last.clone(), Value::Duration(1)).unwrap_err();
    assert_eq!(past.to_string(), "overflow: the instant falls outside the years 0000 to 9999");
    assert!(binary(BinaryOp::Sub, at(flow_ir::time::FIRST), Value::Duration(1)).is_err());
    assert_eq!(binary(BinaryOp::Add, last, Value::Duration(0)).unwrap(), at(flow_ir::time::LAST));
    assert_eq!(flow_ir::time::format_timestamp(flow_ir::time::LAST, 0), "9999-12-31T23:59:59Z");
    assert_eq!(flow_ir::time::format_timestamp(flow_ir::time::FIRST, 0), "0000-01-01T00:00:00Z");
    assert_eq!(flow_ir::time::parse_timestamp("9999-12-31T23:59:59-01:00"), None, "past 9999 in UTC");
}

/// A plan body with nothing in it.
fn empty_body() -> flow_ir::PlanBody {
    serde_json::from_value(json!({
        "flow": {"name": "f", "version": "1", "owner": "manager", "steward": "manager"},
        "outputs": [], "nodes": [], "edges": [], "grants": [], "evidence": {"retain": null},
        "roles": [], "labels": [], "records": [], "enums": [], "sources": [], "models": [], "systems": [], "functions": []
    }))
    .unwrap()
}

#[test]
fn approvals_match_distinct_principals_to_slots() {
    use flow_ir::plan::{Requirement, Role};
    let mut body = empty_body();
    body.roles = vec![
        Role { name: "director".into(), extends: vec!["manager".into()] },
        Role { name: "manager".into(), extends: vec![] },
    ];
    let terms = [Requirement::Count { count: 1, role: "manager".into() }, Requirement::AllOf(vec!["director".into()])];
    let slots = crate::state::slots(&terms);
    let who = |id: &str, role: &str| (id.to_owned(), vec![role.to_owned()]);
    // A director holds `manager` too, but fills one slot.
    assert_eq!(crate::state::matched(&body, &slots, &[who("d", "director")]).0, 1);
    // Given in the order that makes a greedy choice fail: the director first takes `manager`.
    assert_eq!(crate::state::matched(&body, &slots, &[who("d", "director"), who("m", "manager")]).0, 2);
    assert_eq!(crate::state::matched(&body, &slots, &[who("m", "manager"), who("n", "manager")]).0, 1);
    assert_eq!(crate::state::requirement_text(&terms), "1 of manager, all of director");
}

fn terms() -> impl proptest::strategy::Strategy<Value = Vec<flow_ir::plan::Requirement>> {
    use flow_ir::plan::Requirement;
    use proptest::prelude::*;
    let role = proptest::sample::select(vec!["clerk", "manager", "director"]).prop_map(smol_str::SmolStr::new);
    let term = prop_oneof![
        Just(Requirement::Auto),
        (0u32..3, role.clone()).prop_map(|(count, role)| Requirement::Count { count, role }),
        proptest::collection::vec(role, 0..3).prop_map(Requirement::AllOf),
    ];
    proptest::collection::vec(term, 0..4)
}

proptest::proptest! {
    /// An approval nobody approved yet owes every slot of its terms: each role as many
    /// times as its slots, in the order of the slots; and it has slots exactly when its
    /// terms name any.
    #[test]
    fn an_approval_nobody_approved_owes_every_slot(terms in terms()) {
        let wait = crate::state::ApprovalWait {
            row: 1,
            requirement: crate::state::requirement_text(&terms),
            terms: terms.clone(),
            excluded: Vec::new(),
            approvals: Vec::new(),
        };
        let body = empty_body();
        let mut expected: Vec<(smol_str::SmolStr, usize)> = Vec::new();
        for role in crate::state::slots(&terms) {
            match expected.iter_mut().find(|(r, _)| *r == role) {
                Some((_, n)) => *n += 1,
                None => expected.push((role, 1)),
            }
        }
        proptest::prop_assert_eq!(crate::state::outstanding(&body, &wait), expected);
        proptest::prop_assert_eq!(crate::state::has_slots(&terms), !crate::state::slots(&terms).is_empty());
    }

    /// A requirement's text writes its counts (by hand) as the formatter does.
    #[test]
    fn a_requirement_text_writes_counts_as_the_formatter_does(count in proptest::prelude::any::<u32>(), small in 0u32..12) {
        use flow_ir::plan::Requirement;
        let terms = [
            Requirement::Count { count, role: "manager".into() },
            Requirement::Auto,
            Requirement::Count { count: small, role: "director".into() },
        ];
        proptest::prop_assert_eq!(
            crate::state::requirement_text(&terms),
            format!("{count} of manager, auto, {small} of director")
        );
    }
}

/// Taking a wrapper's salt off leaves its other keys in their order, wherever the salt was
/// written (a system's answer may put it first).
#[test]
fn a_salt_taken_off_leaves_the_keys_in_order() {
    let mut json: serde_json::Value =
        serde_json::from_str(r#"{"$salt": "x", "$labels": ["pii"], "$value": 1, "z": 2}"#).unwrap();
    crate::labels::unsalt(&mut json);
    let keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["$labels", "$value", "z"]);
}

#[test]
fn a_redacted_part_keeps_the_digest_of_what_it_replaced() {
    let salt = crate::labels::fresh_salt();
    let event = json!({
        "event": "evaluated",
        "value": {"$labels": ["pii"], "$salt": salt, "$value": "secret"},
        "n": [1, 2.5, null, true]
    });
    let mut redacted = event.clone();
    crate::labels::redact(&mut redacted, &[]);
    assert_eq!(redacted["value"]["$labels"], json!(["pii"]));
    assert!(!redacted.to_string().contains("secret"));
    assert_eq!(crate::digest::digest(&event), crate::digest::digest(&redacted));
    let mut shown = event.clone();
    crate::labels::redact(&mut shown, &["pii".into()]);
    assert_eq!(shown, event);
    let mut changed = event.clone();
    changed["value"]["$value"] = json!("secreT");
    assert_ne!(crate::digest::digest(&event), crate::digest::digest(&changed));
    // The marker is not the digest of the value with its labels alone, which anyone could
    // compute for each guess.
    let guess = json!({"$labels": ["pii"], "$value": "secret"});
    assert_ne!(redacted["value"]["$redacted"], json!(crate::digest::digest(&guess)));
    // A value only shown (unsalted) is salted as it is redacted: afresh each time.
    let (mut once, mut twice) = (json!({"v": guess.clone()}), json!({"v": guess.clone()}));
    crate::labels::redact(&mut once, &[]);
    crate::labels::redact(&mut twice, &[]);
    assert_ne!(once["v"]["$redacted"], json!(crate::digest::digest(&guess)));
    assert_ne!(once, twice);
}

/// The digest as `docs/evidence.md` defines it, written plainly: what the remembered and
/// text-reading digests must agree with.
fn reference_digest(json: &serde_json::Value) -> [u8; 32] {
    use serde_json::Value as Json;
    let mut hasher = blake3::Hasher::new();
    match json {
        Json::Null => drop(hasher.update(b"n")),
        Json::Bool(b) => drop(hasher.update(if *b { b"t" } else { b"f" })),
        Json::Number(n) => drop(hasher.update(format!("#{n}").as_bytes())),
        Json::String(s) => drop(hasher.update(format!("s{s}").as_bytes())),
        Json::Array(items) => {
            hasher.update(b"a");
            for item in items {
                hasher.update(&reference_digest(item));
            }
        }
        Json::Object(object) => {
            if let Some(Json::String(marker)) = object.get("$redacted")
                && object.len() <= 2
                && let Some(hex) = marker.strip_prefix("blake3:")
                && hex.len() == 64
                && let Ok(bytes) =
                    (0..32).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)).collect::<Result<Vec<u8>, _>>()
            {
                return bytes.try_into().unwrap();
            }
            hasher.update(b"o");
            let mut keys: Vec<&String> = object.keys().collect();
            keys.sort();
            for key in keys {
                hasher.update(blake3::hash(key.as_bytes()).as_bytes());
                hasher.update(&reference_digest(&object[key]));
            }
        }
    }
    *hasher.finalize().as_bytes()
}

fn hex_of(bytes: [u8; 32]) -> String {
    format!("blake3:{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// JSON text of every shape: nesting, escapes, numbers of every kind, repeated keys and
/// redaction markers (well formed or not).
fn json_text() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let quoted = |s: String| serde_json::to_string(&s).unwrap();
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("false".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        (-1e30f64..1e30).prop_map(|f| format!("{f:e}")),
        Just("1.50".to_owned()),
        Just("18446744073709551616".to_owned()),
        r#"[a-c\\"é\n ]{0,6}"#.prop_map(quoted),
        // Long enough to be hashed incrementally rather than at once.
        "[a-z]{500,700}".prop_map(quoted),
        Just(format!("\"{}\"", hex_of([7; 32]))),
    ];
    leaf.prop_recursive(4, 40, 5, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(|items| format!("[{}]", items.join(","))),
            proptest::collection::vec(
                (prop_oneof![Just("$redacted"), Just("a"), Just("b"), Just("é\\u0041")], inner),
                0..4
            )
            .prop_map(|entries| {
                let entries: Vec<String> = entries.into_iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
                format!("{{{}}}", entries.join(", "))
            }),
        ]
    })
}

proptest::proptest! {
    /// The digest of JSON text (as stored events are checked) and of the value it reads as
    /// (as events are written) are the reference digest, remembered or not.
    #[test]
    fn digests_of_text_and_values_agree_with_the_definition(text in json_text()) {
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let expected = hex_of(reference_digest(&value));
        let hash = crate::digest::event_hash(crate::digest::GENESIS, 12, "t", &value);
        proptest::prop_assert!(crate::digest::is_event_hash(&hash, crate::digest::GENESIS, 12, "t", &text).unwrap());
        proptest::prop_assert!(!crate::digest::is_event_hash(&hash, crate::digest::GENESIS, 13, "t", &text).unwrap());
        proptest::prop_assert_eq!(
            crate::digest::event_hash_of_text(crate::digest::GENESIS, 12, "t", &text).unwrap(),
            hash.clone()
        );
        for _ in 0..2 {
            proptest::prop_assert_eq!(crate::digest::digest(&value), expected.clone());
            proptest::prop_assert_eq!(crate::digest::digest_text(&text).unwrap(), expected.clone());
        }
    }
}

proptest::proptest! {
    /// Digests are written as two lowercase hexadecimal digits a byte.
    #[test]
    fn hex_is_two_lowercase_digits_a_byte(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80)) {
        let text = crate::digest::hex(&bytes);
        proptest::prop_assert_eq!(&text, &bytes.iter().map(|b| format!("{b:02x}")).collect::<String>());
        proptest::prop_assert_eq!(crate::digest::unhex(&text), Some(bytes));
    }
}

#[test]
fn text_that_is_not_json_has_no_digest() {
    for text in ["", "{", "[1,]", "{\"a\" 1}", "1 2", "nul"] {
        assert!(crate::digest::digest_text(text).is_err(), "{text}");
        assert!(crate::digest::is_event_hash("", crate::digest::GENESIS, 0, "t", text).is_err(), "{text}");
    }
}

/// Serves `answers` in turn on a local port, one HTTP request each; returns the base URL
/// and the requests' bodies.
fn serve(answers: Vec<(u16, String)>) -> (String, std::thread::JoinHandle<Vec<String>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let mut bodies = Vec::new();
        for (status, answer) in answers {
            let (mut stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            bodies.push(String::from_utf8(body).unwrap());
            let reply = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
            stream.write_all(reply.as_bytes()).unwrap();
        }
        bodies
    });
    (url, handle)
}

#[test]
fn the_openai_compatible_provider_asks_for_json_and_retries_server_errors() {
    use crate::provider::{ModelProvider, ModelRequest, OpenAiCompatible};
    let content = json!({"tier": "low", "confidence": "0.9"}).to_string();
    let completion = json!({"choices": [{"message": {"role": "assistant", "content": content}}]}).to_string();
    let (url, server) = serve(vec![(503, "{}".to_owned()), (200, completion)]);
    let provider = OpenAiCompatible {
        base_url: url,
        api_key: Some("k".to_owned()),
        timeout: std::time::Duration::from_secs(10),
        retries: 2,
    };
    let model: flow_ir::plan::Model = serde_json::from_value(json!({
        "name": "scorer", "provider": "openai-compatible", "model_name": "acme-scorer", "version": "1",
        "digest": "sha256:00", "prompt": {"hash": "blake3:00", "text": "Classify."},
        "inputs": [], "output": "Score", "clearance": []
    }))
    .unwrap();
    let request =
        ModelRequest { step: "risk", model: &model, prompt: Some("Classify."), input: json!({"amount": "1.00 USD"}) };
    let reply = provider.infer(&request).unwrap();
    assert_eq!(reply.output, json!({"tier": "low", "confidence": "0.9"}));
    assert_eq!(reply.attempts, 2);
    let bodies = server.join().unwrap();
    let sent: serde_json::Value = serde_json::from_str(&bodies[1]).unwrap();
    assert_eq!(sent["model"], "acme-scorer");
    assert_eq!(sent["response_format"], json!({"type": "json_object"}));
    assert_eq!(sent["messages"][0], json!({"role": "system", "content": "Classify."}));
    assert_eq!(sent["messages"][1]["content"], json!({"amount": "1.00 USD"}).to_string());

    // A client error is not retried; the failure says what the endpoint answered.
    let (url, server) = serve(vec![(401, "{\"error\": \"bad key\"}".to_owned())]);
    let provider =
        OpenAiCompatible { base_url: url, api_key: None, timeout: std::time::Duration::from_secs(10), retries: 2 };
    let error = provider.infer(&request).err().unwrap();
    assert_eq!(error.attempts, 1);
    assert!(error.message.contains("answered 401"), "{}", error.message);
    server.join().unwrap();
}

/// What a command prints is read as any JSON from outside: a number binary floating point
/// would change is refused, and so is JSON text hidden under `serde_json`'s raw-value key.
#[test]
fn a_command_s_json_is_read_exactly_or_refused() {
    let printed = |text: &str| {
        crate::provider::run_command(
            &["sh".to_owned(), "-c".to_owned(), format!("printf '%s' '{text}'")],
            None,
            &json!({}),
            std::time::Duration::from_secs(10),
        )
    };
    assert_eq!(printed(r#"{"rate": 0.25}"#).unwrap(), json!({"rate": 0.25}));
    let error = printed(r#"{"rate": 0.10000000000000001}"#).unwrap_err();
    assert!(error.contains("cannot be read exactly"), "{error}");
    let error = printed(r#"{"$serde_json::private::RawValue": "{\"rate\": 0.10000000000000001}"}"#).unwrap_err();
    assert!(error.contains("reads specially"), "{error}");
}

#[test]
fn a_command_that_hangs_is_stopped_at_its_timeout() {
    let started = std::time::Instant::now();
    let error = crate::provider::run_command(
        &["sleep".to_owned(), "5".to_owned()],
        None,
        &json!({}),
        std::time::Duration::from_millis(200),
    )
    .unwrap_err();
    assert!(error.contains("did not answer within 200ms"), "{error}");
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
}

/// A plan declaring only a record `Item` (an enum `Kind`, an optional text, a list of
/// amounts in EUR) and its enum.
fn item_plan() -> flow_ir::PlanBody {
    serde_json::from_value(json!({
        "flow": {"name": "f", "version": "1", "owner": "r", "steward": "r"},
        "outputs": [], "nodes": [], "edges": [], "grants": [], "evidence": {"retain": null},
        "roles": [], "labels": [],
        "records": [{"name": "Item", "fields": [
            {"name": "kind", "ty": "Kind", "labels": []},
            {"name": "note", "ty": "Text?", "labels": []},
            {"name": "prices", "ty": "List[Money[EUR]]", "labels": []}
        ]}],
        "enums": [{"name": "Kind", "variants": ["a", "b"]}],
        "sources": [], "models": [], "systems": [], "functions": []
    }))
    .unwrap()
}

#[test]
fn values_that_do_not_fit_their_type_are_refused_with_their_path() {
    let body = item_plan();
    let ty: flow_ir::ty::Ty = "Item".parse().unwrap();
    let decode = |json| crate::value::decode(&body, &json, &ty, "$.item");
    let ok = decode(json!({"kind": "a", "prices": ["1.50 EUR"]})).unwrap();
    assert_eq!(ok.field("note"), Some(&Value::Absent));
    let error = |json| decode(json).unwrap_err().to_string();
    assert_eq!(
        error(json!({"kind": "c", "prices": []})),
        "$.item.kind: `c` is not a variant of `Kind`; expected one of a, b"
    );
    assert_eq!(
        error(json!({"kind": "a", "prices": ["1 EUR", "2 USD"]})),
        "$.item.prices[1]: expected an amount in EUR, found `2 USD`"
    );
    assert_eq!(
        error(json!({"kind": "a", "prices": [], "colour": 1})),
        "$.item: `Item` has no field `colour`; its fields are kind, note, prices"
    );
    assert_eq!(error(json!({"prices": []})), "$.item.kind: missing field `kind` of type `Kind`");
    assert_eq!(error(json!([1])), "$.item: expected a `Item` record, found an array");
}

proptest::proptest! {
    /// What a record's JSON decodes to (or which error it gets) does not depend on the
    /// order of its keys, but for which of several unknown keys is named (the first
    /// written); a missing field is reported before an unknown key.
    #[test]
    fn a_record_decodes_the_same_whatever_the_order_of_its_keys(
        given in proptest::sample::subsequence(vec!["kind", "note", "prices", "colour", "zz"], 0..=5),
        order in proptest::collection::vec(proptest::prelude::any::<u8>(), 5),
    ) {
        let body = item_plan();
        let ty: flow_ir::ty::Ty = "Item".parse().unwrap();
        let value = |key: &str| match key {
            "kind" => json!("b"),
            "note" => json!("n"),
            "prices" => json!(["1.50 EUR"]),
            _ => json!(1),
        };
        let object = |keys: &[&str]| serde_json::Value::Object(keys.iter().map(|k| ((*k).to_owned(), value(k))).collect());
        let mut shuffled = given.clone();
        for (i, swap) in order.iter().enumerate().take(shuffled.len()) {
            let j = usize::from(*swap) % shuffled.len();
            shuffled.swap(i, j);
        }
        let decode = |json: &serde_json::Value| crate::value::decode(&body, json, &ty, "$.item").map_err(|e| e.to_string());
        let decoded = decode(&object(&shuffled));
        // Only which unknown key is named depends on the order: the first written.
        let unknowns = given.iter().filter(|k| ["colour", "zz"].contains(k)).count();
        if unknowns < 2 {
            proptest::prop_assert_eq!(&decoded, &decode(&object(&given)));
        }
        let missing = ["kind", "prices"].into_iter().find(|f| !given.contains(f));
        let unknown = shuffled.iter().find(|k| ["colour", "zz"].contains(k));
        match (missing, unknown, &decoded) {
            (Some(field), _, Err(error)) => {
                let expected = format!("missing field `{field}`");
                proptest::prop_assert!(error.contains(&expected), "{error}");
            }
            (None, Some(key), Err(error)) => {
                let expected = format!("has no field `{key}`");
                proptest::prop_assert!(error.contains(&expected), "{error}");
            }
            (None, None, Ok(record)) => {
                proptest::prop_assert_eq!(record.field("kind"), Some(&Value::Variant("b".into())));
                let note = if given.contains(&"note") { Value::Text("n".to_owned()) } else { Value::Absent };
                proptest::prop_assert_eq!(record.field("note"), Some(&note));
            }
            other => proptest::prop_assert!(false, "unexpected {other:?}"),
        }
    }
}

/// A record of more fields than are matched one by one decodes its keys, in any order, to
/// the same value, and reports a missing field before an unknown key, the first written.
#[test]
fn a_long_record_decodes_whatever_the_order_of_its_keys() {
    let names: Vec<String> = (0..20).map(|i| format!("f{i:02}")).collect();
    let fields: Vec<_> = names.iter().map(|n| json!({"name": n, "ty": "Int", "labels": []})).collect();
    let body: flow_ir::PlanBody = serde_json::from_value(json!({
        "flow": {"name": "f", "version": "1", "owner": "r", "steward": "r"},
        "outputs": [], "nodes": [], "edges": [], "grants": [], "evidence": {"retain": null},
        "roles": [], "labels": [],
        "records": [{"name": "Wide", "fields": fields}],
        "enums": [], "sources": [], "models": [], "systems": [], "functions": []
    }))
    .unwrap();
    let ty: flow_ir::ty::Ty = "Wide".parse().unwrap();
    let decode = |keys: &[&str]| {
        let object = keys.iter().map(|k| ((*k).to_owned(), json!(k[1..].parse::<i64>().unwrap_or(-1)))).collect();
        crate::value::decode(&body, &serde_json::Value::Object(object), &ty, "$.w").map_err(|e| e.to_string())
    };
    let mut keys: Vec<&str> = names.iter().map(String::as_str).collect();
    keys.reverse();
    keys.swap(3, 17);
    let record = decode(&keys).unwrap();
    for (i, name) in names.iter().enumerate() {
        assert_eq!(record.field(name), Some(&Value::Int(i as i64)), "{name}");
    }
    let with_unknown: Vec<&str> = keys.iter().copied().chain(["zz", "aa"]).collect();
    assert_eq!(
        decode(&with_unknown).unwrap_err(),
        format!("$.w: `Wide` has no field `zz`; its fields are {}", names.join(", "))
    );
    let missing: Vec<&str> = with_unknown.iter().copied().filter(|k| *k != "f07").collect();
    assert_eq!(decode(&missing).unwrap_err(), "$.w.f07: missing field `f07` of type `Int`");
}

/// A plan without native code (here: made to fail) runs on the interpreter, to the same
/// outcome, and its runs' evidence says so and why.
#[cfg(feature = "jit")]
#[test]
fn a_plan_without_native_code_runs_on_the_interpreter_and_says_why() {
    use std::sync::Arc;

    use crate::analysis::Analysis;
    use crate::store::SqliteStore;
    use crate::{Engine, Principal, Runtime, StartOptions, Status};

    let bytes = include_bytes!("../benches/rules.plan.json");
    let who = Principal::new("carl".to_owned(), vec!["clerk".to_owned()]);
    let app = json!({
        "id": "A1", "applicant": "ana", "amount": "1000.00 USD", "income": "80000.00 USD", "score": 750,
        "segment": "retail", "existing_debt": "0.00 USD", "age_days": 400, "defaults": 0, "verified": true
    });
    let inputs = [("app".to_owned(), app)];
    let mut pages = Vec::new();
    for fails in [false, true] {
        let plan = flow_ir::load(bytes).unwrap();
        let runtime = Runtime::new(Box::new(SqliteStore::open(std::path::Path::new(":memory:")).unwrap()));
        assert_eq!(runtime.engine(), Engine::Jit);
        let analysis = Arc::new(Analysis::new(plan.clone()));
        if fails {
            analysis.native.set(Err("made to fail".to_owned())).unwrap();
        }
        runtime.store().put_plan(analysis.hash(), bytes).unwrap();
        runtime.lock_plans().insert(analysis.hash().to_string(), analysis.clone());
        let analysis = runtime.install(plan).unwrap();
        let view = runtime.start(&analysis, &who, &inputs, &StartOptions::default()).unwrap();
        assert_eq!(view.status, Status::Completed);
        let page = runtime.show(&view.run, Some(&who)).unwrap();
        let label = if fails { "interpreter (no native code: made to fail)" } else { "jit" };
        assert!(page.contains(&format!("engine {label}")), "{page}");
        pages.push((view.outputs, view.why));
    }
    assert_eq!(pages[0], pages[1]);
}

/// Code the generator cannot translate is an error with a message, never a panic.
#[cfg(feature = "jit")]
#[test]
fn untranslatable_code_is_an_error_not_a_panic() {
    use flow_ir::expr::{Expr, ExprKind};
    use flow_ir::plan::{Node, NodeKind};
    use flow_ir::ty::Ty;

    let plan = flow_ir::load(include_bytes!("../benches/rules.plan.json")).unwrap();
    let mut body = plan.body().clone();
    let call = Expr::new(Ty::Int, ExprKind::Call { function: "missing".into(), args: Vec::new() });
    body.nodes.push(Node {
        name: "x".into(),
        ty: Ty::Int,
        kind: NodeKind::Let { value: call },
        regardless: Vec::new(),
        timing: None,
    });
    let names: Vec<_> = body.nodes.iter().map(|n| n.name.clone()).collect();
    let index = |name: &str| names.iter().position(|n| n == name).map(|i| i as u32);
    let error = crate::jit::Native::compile(&body, &index).unwrap_err();
    assert!(error.contains("missing"), "{error}");
}

/// A run replays exactly with either engine; a recorded value that the plan does not give
/// again (as a forger who rebuilt the hash chain would leave it) is named with both values.
#[test]
fn replay_reproduces_a_run_and_names_the_first_difference() {
    use crate::event::Event;
    use crate::store::SqliteStore;
    use crate::{Engine, Principal, Runtime, StartOptions};

    let plan = flow_ir::load(include_bytes!("../benches/rules.plan.json")).unwrap();
    let mut runtime = Runtime::new(Box::new(SqliteStore::open(std::path::Path::new(":memory:")).unwrap()));
    let analysis = runtime.install(plan).unwrap();
    let who = Principal::new("carl".to_owned(), vec!["clerk".to_owned()]);
    let app = json!({
        "id": "A1", "applicant": "ana", "amount": "90000.00 USD", "income": "80000.00 USD", "score": 650,
        "segment": "retail", "existing_debt": "0.00 USD", "age_days": 30, "defaults": 0, "verified": true
    });
    let view = runtime.start(&analysis, &who, &[("app".to_owned(), app)], &StartOptions::default()).unwrap();
    let manager = Principal::new("max".to_owned(), vec!["manager".to_owned()]);
    let approve =
        crate::DecisionInput { outcome: "approve".to_owned(), reason: Some("ok".to_owned()), ..Default::default() };
    runtime.decide(&view.run, "sign", &manager, &approve).unwrap();
    let (analysis, _, events) = runtime.load_events(&view.run, false).unwrap();
    // Bulk replay compares computed events as text: an event's encoding is the stored text.
    let stored = runtime.store.events(&view.run).unwrap();
    assert_eq!(stored.len(), events.len());
    let mut encoded = Vec::new();
    for (raw, event) in stored.iter().zip(&events) {
        crate::event::codec::encode_event_text(&analysis, event, &mut encoded);
        assert_eq!(String::from_utf8_lossy(&encoded), raw.body);
        // Stored as the text of the event's JSON value, as before it was written directly (the
        // flow has no labelled value, whose salt would differ).
        assert_eq!(crate::event::codec::encode_event(&analysis, event.clone()).to_string(), raw.body);
    }
    for engine in [Engine::Jit, Engine::Interpreter] {
        runtime.set_engine(engine);
        let replay = crate::replay::replay(&analysis, &events, engine);
        assert_eq!(replay.divergence, None, "{engine:?}");
        assert_eq!(replay.events, events.len());
        assert_eq!(replay.status, crate::Status::Completed);
    }
    // The `new_customer` gate held (30 days); record that it did not.
    let mut forged = events.clone();
    let at = forged
        .iter()
        .position(|e| matches!(e, Event::Gate { node, holds: true, .. } if node == "new_customer"))
        .unwrap();
    if let Event::Gate { holds, .. } = &mut forged[at] {
        *holds = false;
    }
    let divergence = crate::replay::replay(&analysis, &forged, Engine::Jit).divergence.unwrap();
    assert_eq!(divergence.index, at);
    assert_eq!(divergence.node.as_deref(), Some("new_customer"));
    assert_eq!(divergence.recorded["holds"], false);
    assert_eq!(divergence.replayed["holds"], true);
    // A decision by someone who may not make it is refused again.
    let mut forged = events.clone();
    let decided = forged.iter().position(|e| matches!(e, Event::ApprovalDecided { .. })).unwrap();
    if let Event::ApprovalDecided { decision, .. } = &mut forged[decided] {
        decision.principal = "ana".to_owned();
    }
    let divergence = crate::replay::replay(&analysis, &forged, Engine::Jit).divergence.unwrap();
    assert_eq!((divergence.index, divergence.node.as_deref()), (decided, Some("sign")));
}

/// A what-if against another plan: a param the run was started with at its default takes
/// the new plan's default; one set when the run started keeps its value.
#[test]
fn a_new_plan_brings_its_defaults_but_keeps_params_a_run_was_given() {
    use flow_ir::expr::{ExprKind, Literal};
    use flow_ir::plan::NodeKind;

    use crate::store::SqliteStore;
    use crate::{Principal, ReplayChanges, Runtime, StartOptions};

    let plan = flow_ir::load(include_bytes!("../benches/rules.plan.json")).unwrap();
    let mut body = plan.body().clone();
    let limit = body.nodes.iter_mut().find(|n| n.name == "limit").unwrap();
    let NodeKind::Param { default } = &mut limit.kind else { panic!("`limit` is a param") };
    let ExprKind::Lit(Literal::Money(money)) = &mut default.kind else { panic!("a money default") };
    *money = Money::parse("100000 USD").unwrap();
    let candidate = flow_ir::seal_and_verify(body, String::new(), Default::default(), Default::default())
        .unwrap_or_else(|failed| panic!("{}", failed.1));
    let runtime = Runtime::new(Box::new(SqliteStore::open(std::path::Path::new(":memory:")).unwrap()));
    let analysis = runtime.install(plan).unwrap();
    let candidate = runtime.install(candidate).unwrap();
    let who = Principal::new("carl".to_owned(), vec!["clerk".to_owned()]);
    let auditor = Principal::new("aud".to_owned(), vec!["auditor".to_owned()]);
    let app = json!({
        "id": "A1", "applicant": "ana", "amount": "90000.00 USD", "income": "80000.00 USD", "score": 650,
        "segment": "retail", "existing_debt": "0.00 USD", "age_days": 400, "defaults": 0, "verified": true
    });
    let given = StartOptions { params: vec![("limit".to_owned(), json!("80000 USD"))], ..StartOptions::default() };
    let changes = ReplayChanges { plan: Some(candidate), ..ReplayChanges::default() };
    let nodes = |run: &str| -> Vec<(String, serde_json::Value)> {
        let whatif = runtime.what_if(run, &auditor, &changes).unwrap();
        whatif.changes.into_iter().map(|c| (c.node, c.after)).collect()
    };
    // Started at the default (50,000 USD): the candidate's 100,000 USD applies, and 90,000 USD
    // is no longer over the limit.
    let default_run =
        runtime.start(&analysis, &who, &[("app".to_owned(), app.clone())], &StartOptions::default()).unwrap();
    assert_eq!(
        nodes(&default_run.run),
        [("limit".to_owned(), json!("100000 USD")), ("over_limit".to_owned(), json!("does not hold"))]
    );
    // Started with 80,000 USD: that value stays, and nothing changes.
    let given_run = runtime.start(&analysis, &who, &[("app".to_owned(), app)], &given).unwrap();
    assert_eq!(nodes(&given_run.run), []);
}

/// Division and multiplication round to 28 decimal places, half to even, the same in both
/// engines (native code calls this arithmetic); a result of amounts that are not zero that
/// would round to zero is an error, not a silent zero.
#[test]
fn decimal_rounding_is_documented_and_underflow_is_an_error() {
    let third = binary(BinaryOp::Div, money("0.10 USD"), dec("3")).unwrap();
    assert_eq!(third, money("0.0333333333333333333333333333 USD"));
    assert_eq!(binary(BinaryOp::Mul, third, dec("3")).unwrap(), money("0.0999999999999999999999999999 USD"));
    assert_eq!(binary(BinaryOp::Div, dec("2"), dec("3")).unwrap(), dec("0.6666666666666666666666666667"));
    let tiny = dec("0.000000000000001");
    let lost = binary(BinaryOp::Mul, tiny.clone(), tiny).unwrap_err();
    assert!(matches!(lost, EvalError::Underflow { .. }), "{lost:?}");
    assert_eq!(lost.to_string(), "underflow: `*` of decimals is too small to hold (it would round to zero)");
    assert_eq!(binary(BinaryOp::Mul, dec("0"), dec("0.5")).unwrap(), dec("0"), "zero times anything is zero");
}

proptest::proptest! {
    /// A principal's id is taken as it is only when normalizing it would not change it.
    #[test]
    fn an_id_is_normal_exactly_when_normalizing_keeps_it(id in "[ \t\u{b}aAzZ0-9_.@\u{c9}\u{e9}\u{1c5}\u{3a3}\u{a0}]{0,8}") {
        proptest::prop_assert_eq!(crate::value::is_principal_id(&id), crate::value::principal_id(&id) == id);
        let who = crate::Principal::new(id.clone(), vec!["clerk".to_owned()]);
        proptest::prop_assert_eq!(&who.normalized().id, &crate::value::principal_id(&id));
    }
}

proptest::proptest! {
    /// What a string holds is never read as a number, whatever its escapes and digits; a
    /// number after it is.
    #[test]
    fn numbers_in_strings_are_text_and_numbers_after_them_are_checked(
        text in "[\\\\\"a0-9.e\\-]{0,12}",
        key in "[\\\\\"0-9]{0,4}",
    ) {
        let string = |s: &str| serde_json::Value::String(s.to_owned()).to_string();
        let inside = format!("{text}12345678901234567890.123456789{text}");
        let exact = format!("{{{}: [{}, 1, {}]}}", string(&key), string(&inside), string(&text));
        proptest::prop_assert!(crate::value::parse_exact(&exact).is_ok(), "{}", exact);
        let inexact = format!("{{{}: [{}, 12345678901234567890.123456789]}}", string(&key), string(&text));
        proptest::prop_assert!(crate::value::parse_exact(&inexact).is_err(), "{}", inexact);
    }
}

/// JSON numbers are read exactly or refused: a number that binary floating point would
/// change must be written as a string, and an amount is never rounded to fit.
#[test]
fn numbers_are_read_exactly_or_refused() {
    use crate::value::parse_exact;
    for exact in ["0.1", "12.50", "-3", "1e3", "123456789012345", "9007199254740993"] {
        assert!(parse_exact(exact).is_ok(), "{exact}");
    }
    for inexact in ["12345678901234567890.123456789", "0.10000000000000001", "1.7976931348623157e308123"] {
        if let Ok(json) = parse_exact(inexact) {
            panic!("{inexact} read as {json}");
        }
    }
    assert!(parse_exact(r#"{"a": "12345678901234567890.123456789", "b": [1, 2.5]}"#).is_ok());
    let plan = empty_body();
    let decimal = |json: serde_json::Value| crate::value::decode(&plan, &json, &flow_ir::ty::Ty::Decimal, "$");
    assert_eq!(decimal(json!("12345678901234567890.123456789")).unwrap(), dec("12345678901234567890.123456789"));
    assert!(decimal(json!(1.2345678901234567e19)).is_err(), "digits beyond what a float keeps are refused");
    assert!(decimal(json!("1e-40")).is_err(), "beyond 28 decimal places is refused, not rounded");
    let amount = |text: &str| crate::value::decode(&plan, &json!(text), &flow_ir::ty::Ty::Money(None), "$");
    assert!(amount("79228162514264337593543950335 USD").is_ok());
    assert!(amount("79228162514264337593543950335.5 USD").is_err(), "not rounded to fit");
    assert!(amount("792281625142643375935439503350 USD").is_err());
}

/// Run ids are 24 hex digits after `r-`, all distinct, and sort by when they were drawn
/// (their first twelve digits are the time in milliseconds), so a store's indexes take new
/// runs at their end.
#[test]
fn run_ids_are_distinct_and_sort_by_when_they_were_drawn() {
    let ids: Vec<String> = (0..100_000).map(|_| crate::identity::new_run_id()).collect();
    for id in &ids {
        let lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        assert!(id.len() == 26 && id.starts_with("r-") && id[2..].bytes().all(lower_hex), "{id}");
    }
    let distinct: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len());
    assert!(ids.windows(2).all(|pair| pair[0][..14] <= pair[1][..14]), "the time never goes back");
    let ms = u64::from_str_radix(&ids[0][2..14], 16).expect("hex");
    let now = crate::identity::now();
    let now_ms = now.seconds as u64 * 1000;
    assert!(now_ms.abs_diff(ms) < 60_000, "the first twelve digits are the time: {ms} against {now_ms}");
}

/// How an amount was read before plain amounts had their own reading: the definition.
fn money_by_definition(text: &str) -> Option<(flow_ir::ty::Currency, [u8; 16])> {
    let (amount, currency) = text.trim().rsplit_once(' ')?;
    let amount = amount.trim().replace('_', "");
    let amount = rust_decimal::Decimal::from_str_exact(&amount).ok()?;
    Some((flow_ir::ty::Currency::new(currency)?, amount.serialize()))
}

proptest::proptest! {
    /// Amounts read the same, scale and sign included, whichever way they are read: plain
    /// ones (`1200.50 USD`) directly, anything else the general way.
    #[test]
    fn amounts_read_as_the_definition_reads_them(
        plain in "[0-9]{0,20}(\\.[0-9]{0,20})? [A-Z]{3}",
        other in "[ 0-9._+-]{0,24} ?[A-Za-z ]{0,5}",
    ) {
        for text in [&plain, &other] {
            let read = Money::parse(text).map(|m| (m.currency, m.amount.serialize()));
            proptest::prop_assert_eq!(read, money_by_definition(text), "{:?}", text);
        }
    }
}
