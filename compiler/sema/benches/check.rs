//! Front-end throughput: parse, resolve, type-check and every check, each in a fresh
//! database on one thread, of
//! - a workspace of about 100,000 lines made of the example flows, copied (realistic),
//! - a generated workspace of about 100,000 dense lines (nearly every line a long
//!   expression: a stress case),
//! - a single generated 1,000-line flow.
//!
//! Run with `cargo bench -p flow-sema --bench check`.

mod generate;

/// The allocator `flowc` runs with, so that the numbers are those of `flowc check`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use divan::counter::ItemsCount;
use flow_sema::{Database, Db, file_diagnostics};

fn main() {
    divan::main();
}

/// Loads the files (and prompt files) into a fresh database and checks every one;
/// returns the number of diagnostics (which must be zero).
fn check(files: &[(String, String)]) -> usize {
    check_with_prompts(files, &[])
}

fn check_with_prompts(files: &[(String, String)], prompts: &[(String, Vec<u8>)]) -> usize {
    let mut db = Database::default();
    for (path, bytes) in prompts {
        db.set_entry(path.clone(), flow_sema::Entry::Asset(bytes.clone().into()));
    }
    for (path, text) in files {
        db.set_file(path, text.clone().into_bytes());
    }
    let sources: Vec<_> = db.workspace().sources(&db).iter().copied().collect();
    sources.iter().map(|file| file_diagnostics(&db, *file).len()).sum()
}

fn assert_clean(files: &[(String, String)]) {
    let diagnostics = check(files);
    assert_eq!(diagnostics, 0, "the generated workspace must check clean");
}

/// Counts lines: the reported throughput is lines per second.
#[divan::bench(sample_count = 10, sample_size = 1)]
fn examples_100k_lines(bencher: divan::Bencher<'_, '_>) {
    let (files, prompts, lines) = generate::examples_workspace(106);
    assert_eq!(check_with_prompts(&files, &prompts), 0, "the examples must check clean");
    bencher.counter(ItemsCount::new(lines)).bench(|| check_with_prompts(divan::black_box(&files), &prompts));
}

#[divan::bench(sample_count = 10, sample_size = 1)]
fn dense_100k_lines(bencher: divan::Bencher<'_, '_>) {
    let (files, lines) = generate::workspace(200);
    assert_clean(&files);
    bencher.counter(ItemsCount::new(lines)).bench(|| check(divan::black_box(&files)));
}

#[divan::bench(sample_count = 50, sample_size = 1)]
fn single_flow_1000_lines(bencher: divan::Bencher<'_, '_>) {
    let (files, lines) = generate::single_flow();
    assert_clean(&files);
    bencher.counter(ItemsCount::new(lines)).bench(|| check(divan::black_box(&files)));
}
