//! The compiler end to end, and plans as the runtime loads them:
//! - `check_lower_verify_*`: parse, resolve, type-check, every front-end check, lowering
//!   every flow to a plan and verifying it, in a fresh database on one thread, over the
//!   workspaces of the front-end benchmark (realistic examples, and dense generated flows);
//! - `load_plan_200_nodes`: reading a plan file of a generated flow of 200 nodes from bytes
//!   and verifying it (hash, canonical order, references, types, graph proofs), as the
//!   runtime does before it executes a plan;
//! - `svg_of_a_run_of_the_largest_example`, `governance_svg_of_the_largest_example`: the
//!   pictures the web pages draw on the server, of the example with the most nodes.
//!
//! Run with `cargo bench -p flow-lower --bench plan`.

#[path = "../../sema/benches/generate.rs"]
#[expect(dead_code, reason = "shared with the front-end benchmark, which uses all of it")]
mod generate;

use divan::counter::{BytesCount, ItemsCount};
use flow_sema::{Database, Db};

fn main() {
    divan::main();
}

fn database(files: &[(String, String)], prompts: &[(String, Vec<u8>)]) -> Database {
    let mut db = Database::default();
    for (path, bytes) in prompts {
        db.set_entry(path.clone(), flow_sema::Entry::Asset(bytes.clone().into()));
    }
    for (path, text) in files {
        db.set_file(path, text.clone().into_bytes());
    }
    db
}

/// Checks, lowers and verifies everything; returns the number of diagnostics and of plans.
fn compile(files: &[(String, String)], prompts: &[(String, Vec<u8>)]) -> (usize, usize) {
    let db = database(files, prompts);
    let sources: Vec<_> = db.workspace().sources(&db).iter().copied().collect();
    let diagnostics = sources.iter().map(|file| flow_lower::file_diagnostics(&db, *file).len()).sum();
    let plans = sources
        .iter()
        .map(|file| flow_lower::lower_file(&db, *file).flows.iter().filter(|f| f.plan.is_some()).count())
        .sum();
    (diagnostics, plans)
}

#[divan::bench(sample_count = 10, sample_size = 1)]
fn check_lower_verify_examples_100k_lines(bencher: divan::Bencher<'_, '_>) {
    let (files, prompts, lines) = generate::examples_workspace(106);
    let (diagnostics, plans) = compile(&files, &prompts);
    assert_eq!(diagnostics, 0, "the examples must compile clean");
    assert_eq!(plans, 6 * 106);
    bencher.counter(ItemsCount::new(lines)).bench(|| compile(divan::black_box(&files), &prompts));
}

#[divan::bench(sample_count = 10, sample_size = 1)]
fn check_lower_verify_dense_100k_lines(bencher: divan::Bencher<'_, '_>) {
    let (files, lines) = generate::workspace(200);
    let (diagnostics, plans) = compile(&files, &[]);
    assert_eq!(diagnostics, 0, "the generated workspace must compile clean");
    assert_eq!(plans, 400);
    bencher.counter(ItemsCount::new(lines)).bench(|| compile(divan::black_box(&files), &[]));
}

/// The plan file of a generated flow of 200 nodes.
fn plan_200_nodes() -> Vec<u8> {
    let mut text = generate::common(0);
    text.push_str(&generate::flow("big", 0, 185, 24));
    let db = database(&[("big.flow".to_owned(), text)], &[]);
    let file = db.workspace().sources(&db)[0];
    assert!(flow_lower::file_diagnostics(&db, file).is_empty());
    let plan = flow_lower::lower_file(&db, file).flows[0].plan.clone().expect("the flow compiles");
    assert_eq!(plan.body().nodes.len(), 200);
    flow_ir::encode::to_json(plan.plan()).into_bytes()
}

#[divan::bench(sample_count = 200, sample_size = 5)]
fn load_plan_200_nodes(bencher: divan::Bencher<'_, '_>) {
    let bytes = plan_200_nodes();
    assert!(flow_ir::load(&bytes).is_ok());
    // The plan is returned, so that divan drops it outside the measurement: loading is the
    // work measured, not freeing a plan the runtime keeps.
    bencher.counter(BytesCount::new(bytes.len())).bench(|| flow_ir::load(divan::black_box(&bytes)));
}

/// The plan of the example with the most nodes.
fn largest_example() -> flow_ir::VerifiedPlan {
    let (files, prompts, _) = generate::examples_workspace(1);
    let db = database(&files, &prompts);
    let sources: Vec<_> = db.workspace().sources(&db).iter().copied().collect();
    sources
        .iter()
        .flat_map(|file| {
            flow_lower::lower_file(&db, *file).flows.iter().filter_map(|f| f.plan.clone()).collect::<Vec<_>>()
        })
        .max_by_key(|plan| plan.body().nodes.len())
        .expect("the examples compile")
}

/// The run page's picture of the largest example: every node and edge, each node marked
/// (as a run that reached every step), as the server draws it for each page.
#[divan::bench(sample_count = 200, sample_size = 10)]
fn svg_of_a_run_of_the_largest_example(bencher: divan::Bencher<'_, '_>) {
    let plan = largest_example();
    let marks: std::collections::BTreeMap<String, flow_ir::render::Mark> =
        plan.body().nodes.iter().map(|n| (n.name.to_string(), flow_ir::render::Mark::Ran)).collect();
    bencher
        .counter(ItemsCount::new(plan.body().nodes.len()))
        .bench(|| flow_ir::render::svg_of_run(divan::black_box(&plan), &marks));
}

/// The stewards' page's picture of the largest example's governance, in columns.
#[divan::bench(sample_count = 200, sample_size = 10)]
fn governance_svg_of_the_largest_example(bencher: divan::Bencher<'_, '_>) {
    let plan = largest_example();
    bencher.bench(|| flow_ir::governance::svg(divan::black_box(&plan)));
}
