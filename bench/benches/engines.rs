//! Flow's engines against each other and against Cedar and CEL, on the same generated
//! applications (whose decisions `tests/peers.rs` proves identical):
//!
//! - `gate`: one gate condition of five comparisons (`prime`: three whole numbers, an enum,
//!   money) on an application laid out for the run, interpreter vs native code;
//! - `decision_logic`: the ten gates and the approval matrix on a prepared application —
//!   Flow's two engines, Cedar's authorizer on a prepared request, CEL on a prepared context;
//! - `decision_from_json`: a whole decision from the application's JSON — Flow's
//!   `Runtime::evaluate` (inputs decoded and checked, every step, outputs; with native code
//!   decided straight, without the executor), Cedar
//!   (context from JSON, request, authorization), CEL (context from JSON, execution);
//! - `compile`: compiling the rules plan, and the plan with the large matrix, to native code;
//!   and plans whose matrices have 1,000 to 64,000 rows (compiling grows with the rows);
//! - `matrix_3700`: an approval matrix of 3,700 rows (five comparisons each), for an
//!   application that falls through to `otherwise` (every row evaluated) and one matched
//!   half-way; `matrix_64000`: 64,000 rows, falling through.
//!
//! `cargo bench -p flow-bench --bench engines`; results in `docs/benchmarks.md`.

#![expect(clippy::unwrap_used, reason = "benchmarks fail loudly")]

use divan::{Bencher, black_box};
use flow_bench::{Case, Cedar, Cel, Flow};
use flow_runtime::Engine;

fn main() {
    divan::main();
}

const ENGINES: [&str; 2] = ["interp", "jit"];

fn engine(name: &str) -> Engine {
    name.parse().unwrap()
}

/// A case every gate condition reads in full (no short-circuit stops `prime` early).
fn prime_case() -> Case {
    Case {
        id: 1,
        amount: 12_000_000,
        income: 9_000_000,
        existing_debt: 100_000,
        score: 812,
        segment: "retail",
        age_days: 700,
        defaults: 0,
        verified: true,
    }
}

#[divan::bench(args = ENGINES, sample_count = 200, sample_size = 5_000)]
fn gate(bencher: Bencher<'_, '_>, name: &str) {
    let flow = Flow::new(engine(name)).unwrap();
    let prepared = flow.prepare(&prime_case()).unwrap();
    let test = flow.gate_test("prime").unwrap();
    assert!(test(&prepared));
    bencher.bench_local(|| test(black_box(&prepared)));
}

/// The cases measured: 64 generated applications, in turn.
fn cases() -> Vec<Case> {
    (0..64).map(Case::generate).collect()
}

#[divan::bench_group(sample_count = 200, sample_size = 640)]
mod decision_logic {
    use super::*;

    #[divan::bench(args = ENGINES)]
    fn flow(bencher: Bencher<'_, '_>, name: &str) {
        let flow = Flow::new(engine(name)).unwrap();
        let prepared: Vec<_> = cases().iter().map(|c| flow.prepare(c).unwrap()).collect();
        let mut i = 0;
        bencher.bench_local(|| {
            i = (i + 1) % prepared.len();
            flow.decide(black_box(&prepared[i]))
        });
    }

    #[divan::bench]
    fn cedar(bencher: Bencher<'_, '_>) {
        let cedar = Cedar::new().unwrap();
        let requests: Vec<_> = cases().iter().map(|c| cedar.request(c).unwrap()).collect();
        let mut i = 0;
        bencher.bench_local(|| {
            i = (i + 1) % requests.len();
            cedar.decide(black_box(&requests[i]))
        });
    }

    #[divan::bench]
    fn cel(bencher: Bencher<'_, '_>) {
        let cel = Cel::new().unwrap();
        let contexts: Vec<_> = cases().iter().map(|c| cel.context(c)).collect();
        let mut i = 0;
        bencher.bench_local(|| {
            i = (i + 1) % contexts.len();
            cel.decide(black_box(&contexts[i])).unwrap()
        });
    }
}

#[divan::bench_group(sample_count = 100, sample_size = 200)]
mod decision_from_json {
    use super::*;

    #[divan::bench(args = ENGINES)]
    fn flow(bencher: Bencher<'_, '_>, name: &str) {
        let flow = Flow::new(engine(name)).unwrap();
        let inputs: Vec<_> = cases().iter().map(Flow::inputs).collect();
        let mut i = 0;
        bencher.bench_local(|| {
            i = (i + 1) % inputs.len();
            flow.run_inputs(black_box(&inputs[i])).unwrap()
        });
    }

    #[divan::bench]
    fn cedar(bencher: Bencher<'_, '_>) {
        let cedar = Cedar::new().unwrap();
        let json: Vec<_> = cases().iter().map(Case::peer_json).collect();
        let mut i = 0;
        bencher.bench_local(|| {
            i = (i + 1) % json.len();
            cedar.decide(&cedar.request_from_json(black_box(&json[i])).unwrap())
        });
    }

    #[divan::bench]
    fn cel(bencher: Bencher<'_, '_>) {
        let cel = Cel::new().unwrap();
        let json: Vec<_> = cases().iter().map(Case::peer_json).collect();
        let mut i = 0;
        bencher.bench_local(|| {
            i = (i + 1) % json.len();
            cel.decide(&cel.context_from_json(black_box(&json[i])).unwrap()).unwrap()
        });
    }
}

#[divan::bench_group(sample_count = 50, sample_size = 20)]
mod matrix_3700 {
    use super::*;

    fn setup(name: &str, case: Case) -> (Flow, flow_bench::Prepared) {
        let flow = Flow::with_plan(flow_bench::big_matrix(3_700).unwrap(), engine(name)).unwrap();
        let prepared = flow.prepare(&case).unwrap();
        (flow, prepared)
    }

    /// Score 500: below every band, so all 3,699 conditional rows are evaluated.
    #[divan::bench(args = ENGINES)]
    fn otherwise(bencher: Bencher<'_, '_>, name: &str) {
        let (flow, prepared) = setup(name, Case { score: 500, ..prime_case() });
        assert_eq!(flow.row(&prepared), 3_700);
        bencher.bench_local(|| flow.row(black_box(&prepared)));
    }

    /// A case matched by a row about half-way down.
    #[divan::bench(args = ENGINES)]
    fn middle(bencher: Bencher<'_, '_>, name: &str) {
        let (flow, prepared) =
            setup(name, Case { score: 745, amount: 100_000_000, segment: "business", ..prime_case() });
        let row = flow.row(&prepared);
        assert!((1_000..3_000).contains(&row), "row {row}");
        bencher.bench_local(|| flow.row(black_box(&prepared)));
    }
}

/// Compiling a plan's expressions and matrices to native code (once per plan, when it is
/// first run): the rules plan, and the plan with the 3,700-row matrix.
#[divan::bench_group(sample_count = 10, sample_size = 1)]
mod compile {
    use super::*;

    fn compile(plan: &flow_ir::VerifiedPlan) -> flow_runtime::jit::Native {
        let body = plan.body();
        let index = |name: &str| body.nodes.iter().position(|n| n.name == name).map(|i| i as u32);
        flow_runtime::jit::Native::compile(body, &index).unwrap()
    }

    #[divan::bench]
    fn rules(bencher: Bencher<'_, '_>) {
        let plan = flow_ir::load(flow_bench::PLAN).unwrap();
        bencher.bench_local(|| compile(&plan));
    }

    #[divan::bench]
    fn matrix_3700(bencher: Bencher<'_, '_>) {
        let plan = flow_bench::big_matrix(3_700).unwrap();
        bencher.bench_local(|| compile(&plan));
    }

    /// How compiling grows with a matrix's rows (built as the 3,700 rows are).
    #[divan::bench(args = [1_000, 4_000, 16_000, 64_000])]
    fn matrix_rows(bencher: Bencher<'_, '_>, rows: usize) {
        let plan = flow_bench::big_matrix(rows).unwrap();
        bencher.bench_local(|| compile(&plan));
    }
}

/// Deciding a matrix of 64,000 rows that no row matches (`otherwise`): every row ruled out.
#[divan::bench_group(sample_count = 20, sample_size = 5)]
mod matrix_64000 {
    use super::*;

    #[divan::bench(args = ENGINES)]
    fn otherwise(bencher: Bencher<'_, '_>, name: &str) {
        let flow = Flow::with_plan(flow_bench::big_matrix(64_000).unwrap(), engine(name)).unwrap();
        let prepared = flow.prepare(&Case { score: 500, ..prime_case() }).unwrap();
        assert_eq!(flow.row(&prepared), 64_000);
        bencher.bench_local(|| flow.row(black_box(&prepared)));
    }
}
