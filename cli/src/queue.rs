//! Batches through the store's queue: `flowc run --batch CASES --queue` (queue the cases,
//! work on them with whichever workers share the store, wait, summarise), `flowc worker`
//! (take queued cases and interrupted runs until stopped or idle), `flowc batch ID` (where a
//! batch stands).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use flow_runtime::{BatchState, Error, Principal, Runtime};
use serde_json::json;

use crate::DataFormat;
use crate::deploy::{self, Deployment};
use crate::runs::fail;

/// Cases a worker thread takes at once: enough to spread each round trip to the queue over
/// many runs, few enough that a worker that dies leaves little for its lease to hold up.
const TAKE: usize = 32;

/// Operations of the store a worker thread lets fail one after another before it stops.
const CUT_OFF: u32 = 3;

/// The principals of the deployment, by the id a run names them by.
pub(crate) fn directory(deployment: &Deployment) -> anyhow::Result<impl Fn(&str) -> Option<Principal> + Sync> {
    let principals: BTreeMap<String, Vec<String>> = deploy::principals(deployment)?
        .into_iter()
        .map(|(id, roles)| (flow_runtime::value::principal_id(&id), roles))
        .collect();
    Ok(move |id: &str| principals.get(id).map(|roles| Principal::new(id.to_owned(), roles.clone())))
}

/// Works on the queue with every core until `stop` says so, or, with `until_idle`, until
/// the queue has nothing free; how many cases this process took.
fn work(
    runtime: &Runtime,
    principals: &(dyn Fn(&str) -> Option<Principal> + Sync),
    stop: &(dyn Fn() -> bool + Sync),
    until_idle: bool,
) -> Result<usize, Error> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let taken = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Vec<Result<(), Error>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                let (taken, failed) = (&taken, &failed);
                scope.spawn(move || {
                    let mut idle = Duration::from_millis(20);
                    let mut said = String::new();
                    let mut cut_off = 0;
                    while !stop() && !failed.load(Ordering::Relaxed) {
                        let took = match runtime.work(principals, TAKE) {
                            Ok(took) => {
                                cut_off = 0;
                                took
                            }
                            // An operation cut off by the store (a restart, the network): what
                            // it held is given up or runs out; the worker goes on over a new
                            // connection, and stops only when the store stays away (each
                            // attempt already waited for it for `[store] reconnect`).
                            Err(error) if error.kind() == flow_runtime::ErrorKind::Store && cut_off < CUT_OFF => {
                                cut_off += 1;
                                eprintln!(
                                    "flowc: a worker's operation was cut off, going on: error[{}]: {error}",
                                    error.code()
                                );
                                std::thread::sleep(Duration::from_millis(200) * cut_off);
                                continue;
                            }
                            Err(error) => {
                                failed.store(true, Ordering::Relaxed);
                                return Err(error);
                            }
                        };
                        taken.fetch_add(took, Ordering::Relaxed);
                        if took > 0 {
                            idle = Duration::from_millis(20);
                            continue;
                        }
                        // Idle: runs another worker left interrupted are resumed (by one
                        // thread), each error said once.
                        if thread == 0
                            && let Err(error) = runtime.resume_interrupted()
                            && error.to_string() != said
                        {
                            said = error.to_string();
                            eprintln!("flowc: could not resume an interrupted run: error[{}]: {error}", error.code());
                        }
                        if until_idle {
                            break;
                        }
                        std::thread::sleep(idle);
                        idle = (idle * 2).min(Duration::from_secs(1));
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(Error::Store("a worker panicked".into()))))
            .collect()
    });
    results.into_iter().collect::<Result<(), Error>>()?;
    Ok(taken.into_inner())
}

/// `run --batch CASES --queue`: queues the cases, works on them beside the other workers,
/// and summarises once every case is done; with `detach`, prints the batch's id and leaves
/// the cases to the workers.
pub(crate) fn run_queued(
    deployment: &Deployment,
    runtime: &Runtime,
    analysis: &Arc<flow_runtime::analysis::Analysis>,
    who: &Principal,
    (path, detach): (&str, bool),
    options: &flow_runtime::BatchOptions,
    format: DataFormat,
) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read `{path}`: {e}"))?;
    let cases: Vec<(u64, String)> =
        text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).map(|(i, l)| (i as u64, l.to_owned())).collect();
    let started = Instant::now();
    let batch = match runtime.enqueue(analysis, who, &cases, options) {
        Ok(batch) => batch,
        Err(error) => return fail(error, format == DataFormat::Json),
    };
    if detach {
        match format {
            DataFormat::Json => crate::print(&format!("{}\n", json!({"batch": batch, "cases": cases.len()}))),
            DataFormat::Human => crate::print(&format!(
                "queued batch {batch}: {} cases, for the workers (`flowc worker`); `flowc batch {batch}` says how far \
                 it is\n",
                cases.len()
            )),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let principals = directory(deployment)?;
    let progress = crate::progress::Progress::new("cases");
    // How far the batch is (other workers take its cases too), read at most five times a
    // second whoever asks.
    let state = std::sync::Mutex::new((None::<Instant>, None::<Result<BatchState, Error>>));
    let finished = || {
        let mut state = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.0.is_none_or(|last| last.elapsed() >= Duration::from_millis(200)) {
            let now = runtime.batch_state(&batch);
            if let Ok(now) = &now {
                progress.update(now.done as usize, now.cases as usize);
            }
            *state = (Some(Instant::now()), Some(now));
        }
        state.1.as_ref().is_none_or(|now| now.as_ref().map_or(true, BatchState::finished))
    };
    let worked = work(runtime, &principals, &finished, false);
    progress.finish();
    if let Err(error) = worked {
        return fail(error, format == DataFormat::Json);
    }
    let state = match runtime.batch_state(&batch) {
        Ok(state) => state,
        Err(error) => return fail(error, format == DataFormat::Json),
    };
    let refused: Vec<String> = state.refused.iter().map(|(n, why)| format!("line {}: {why}", n + 1)).collect();
    let runs: u64 = state.outcomes.values().sum();
    let engine = analysis.engine_label(runtime.engine());
    crate::runs::print_batch(
        &crate::runs::BatchSummary {
            runs,
            outcomes: &state.outcomes,
            refused: &refused,
            seconds: started.elapsed().as_secs_f64(),
            engine: &engine,
            shadows: None,
            batch: Some(&batch),
        },
        format,
    );
    Ok(if refused.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// `flowc worker`: resumes interrupted runs and works on the queue, until stopped or, with
/// `until_idle`, until nothing is free.
pub(crate) fn worker(deployment: &Deployment, until_idle: bool, format: DataFormat) -> anyhow::Result<ExitCode> {
    let runtime = crate::runs::open(deployment)?;
    let principals = directory(deployment)?;
    let started = Instant::now();
    let never = || false;
    let taken = match work(&runtime, &principals, &never, until_idle) {
        Ok(taken) => taken,
        Err(error) => return fail(error, format == DataFormat::Json),
    };
    // Runs interrupted while this worker worked (another worker died) are resumed too.
    let resumed = match runtime.resume_interrupted() {
        Ok(resumed) => resumed.len(),
        Err(error) => return fail(error, format == DataFormat::Json),
    };
    let seconds = started.elapsed().as_secs_f64();
    match format {
        DataFormat::Json => {
            crate::print(&format!("{}\n", json!({"cases": taken, "resumed": resumed, "seconds": seconds})))
        }
        DataFormat::Human => {
            crate::print(&format!("worked on {taken} cases in {seconds:.2}s; resumed {resumed} interrupted runs\n"))
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `flowc batch ID`: where a batch stands.
pub(crate) fn batch(deployment: &Deployment, id: &str, format: DataFormat) -> anyhow::Result<ExitCode> {
    let runtime = deploy::runtime(deployment)?;
    let state = match runtime.batch_state(id) {
        Ok(state) => state,
        Err(error) => return fail(error, format == DataFormat::Json),
    };
    let refused: Vec<String> = state.refused.iter().map(|(n, why)| format!("line {}: {why}", n + 1)).collect();
    match format {
        DataFormat::Json => crate::print(&format!(
            "{}\n",
            json!({"batch": id, "cases": state.cases, "done": state.done, "outcomes": state.outcomes, "refused": refused})
        )),
        DataFormat::Human => {
            let mut text = format!("batch {id}: {} of {} cases done\n", state.done, state.cases);
            for (status, count) in &state.outcomes {
                text.push_str(&format!("  {status}: {count}\n"));
            }
            for line in &refused {
                text.push_str(&format!("  not run: {line}\n"));
            }
            crate::print(&text);
        }
    }
    Ok(ExitCode::SUCCESS)
}
