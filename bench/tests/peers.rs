//! The Flow plan, the Cedar policies and the CEL program decide every generated application
//! alike — with either Flow engine, from prepared values and from JSON — and the cases reach
//! every gate, every blocking gate and every matrix row. The benchmarks measure these cases.

use std::collections::BTreeSet;

use flow_bench::{Case, Cedar, Cel, Decision, Flow, GATES};
use flow_runtime::Engine;

const CASES: u64 = 5_000;

#[test]
fn flow_cedar_and_cel_decide_alike() {
    let interp = Flow::new(Engine::Interpreter).expect("the plan loads");
    let jit = Flow::new(Engine::Jit).expect("the plan loads");
    assert!(jit.analysis.native().is_ok(), "native code for the plan: {:?}", jit.analysis.native().err());
    let expected: Vec<String> = GATES.iter().map(|g| g.0.to_owned()).collect();
    assert_eq!(jit.gate_order(), expected, "GATES follows the plan's order");
    let (cedar, cel) = (Cedar::new().expect("the policies parse"), Cel::new().expect("the program compiles"));

    let mut fired = BTreeSet::new();
    let mut rows = BTreeSet::new();
    for i in 0..CASES {
        let case = Case::generate(i);
        let flow = interp.decide(&interp.prepare(&case).expect("the case decodes"));
        let native = jit.decide(&jit.prepare(&case).expect("the case decodes"));
        assert_eq!(native, flow, "case {i}: {case:?}");
        let request = cedar.request(&case).expect("a request");
        assert_eq!(cedar.decide(&request), flow, "case {i}, Cedar: {case:?}");
        let request = cedar.request_from_json(&case.peer_json()).expect("a request");
        assert_eq!(cedar.decide(&request), flow, "case {i}, Cedar from JSON: {case:?}");
        assert_eq!(cel.decide(&cel.context(&case)), Ok(flow.clone()), "case {i}, CEL: {case:?}");
        let context = cel.context_from_json(&case.peer_json()).expect("a context");
        assert_eq!(cel.decide(&context), Ok(flow.clone()), "case {i}, CEL from JSON: {case:?}");
        if i % 10 == 0 {
            // Whole runs, with either engine, reach the same outcome.
            assert_eq!(interp.run(&case), Ok(flow.outcome()), "case {i}, run: {case:?}");
            assert_eq!(jit.run(&case), Ok(flow.outcome()), "case {i}, run natively: {case:?}");
        }
        match flow {
            Decision::Blocked(gate) => {
                fired.insert(gate);
            }
            Decision::Decided { fired: gates, row } => {
                fired.extend(gates);
                rows.insert(row);
            }
        }
    }
    assert_eq!(fired.len(), GATES.len(), "gates reached: {fired:?}");
    assert_eq!(rows, BTreeSet::from([1, 2, 3]));
}

/// The approval matrix of 3,700 rows the benchmarks use: native code and the interpreter
/// choose the same row for every case, rows from the first to `otherwise`.
#[test]
fn a_large_matrix_chooses_the_same_row_natively() {
    let plan = flow_bench::big_matrix(3_700).expect("the plan verifies");
    let interp = Flow::with_plan(plan.clone(), Engine::Interpreter).expect("the plan loads");
    let jit = Flow::with_plan(plan, Engine::Jit).expect("the plan loads");
    let mut rows = BTreeSet::new();
    for i in 0..600 {
        let case = Case::generate(i);
        let row = interp.row(&interp.prepare(&case).expect("the case decodes"));
        assert_eq!(jit.row(&jit.prepare(&case).expect("the case decodes")), row, "case {i}: {case:?}");
        rows.insert(row);
    }
    assert!(rows.len() > 100 && rows.contains(&3_700), "{} rows chosen", rows.len());
}

/// The backtest of `docs/benchmarks.md` runs the generated cases with `flowc run --batch
/// --as carl --principals bench/principals.toml`: every principal a case names is listed
/// there (or every case is refused and the backtest measures nothing), and carl is a clerk,
/// whom the flow grants `trigger on behalf`.
#[test]
fn the_backtests_principals_admit_every_case() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/principals.toml")).expect("reads");
    let listed: Vec<(&str, &str)> =
        text.lines().filter(|l| !l.starts_with('#')).filter_map(|l| l.split_once(" = ")).collect();
    assert!(listed.contains(&("carl", "[\"clerk\"]")), "{listed:?}");
    for i in 0..CASES {
        let case = Case::generate(i).flow_json();
        let applicant = case["applicant"].as_str().expect("an applicant");
        assert!(listed.iter().any(|(id, _)| *id == applicant), "case {i} names `{applicant}`, not listed");
    }
}
