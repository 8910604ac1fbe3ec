//! What every [`Store`] must do, whatever it is built on, as checks an implementation runs
//! from its tests: `suite::check(&open)`, where each call of `open` opens another handle on
//! one and the same store, empty at the first call. The checks go through the trait only,
//! with runs and events of their own (the store does not read events: the runtime does), so
//! a store passes them before any runtime is put on it.
//!
//! The contract, check by check: plans are kept by hash; a run is created once, and each
//! append is atomic and ordered — it lands whole on the sequence it expected or not at all,
//! also when two handles race on one run; what a run waits for is replaced by each commit;
//! the first result recorded for an action's key stands; refusals form a chain; a shadow
//! replaces its earlier self; the log has an entry for every change, under a checkpoint that
//! covers it; reading every run visits them in order and stops when asked; what one
//! handle wrote, another reads; a run that executes is leased to one owner until its lease
//! runs out, then claimed by exactly one of the handles that race for it; renewing a lease
//! makes it last and releasing it ends it; and an action key is claimed by one call at a
//! time, until the result recorded for it answers every later claim; and a queued case is
//! taken by one handle at a time, again only once its lease runs out, and done once; and a
//! group of commits lands whole, under one checkpoint, or not at all; notices are queued
//! with the commit or refusal they tell (not when it conflicts), once per endpoint and id,
//! taken by one handle at a time, and tried again only when their time comes.

use serde_json::json;

use super::{ActionResult, Commit, RawEvent, Result, RunRecord, ShadowRecord, Store, StoreError, Waiting};
use crate::event::Status;

/// Opens another handle on the store under test.
pub type Open<'a> = &'a (dyn Fn() -> Result<Box<dyn Store>> + Sync);

/// Runs every check; the failures, each named by its check (none when the store conforms).
pub fn check(open: Open<'_>) -> Vec<String> {
    let store = match open() {
        Ok(store) => store,
        Err(error) => return vec![format!("the store does not open: {error}")],
    };
    let checks: [(&str, Check); 23] = [
        ("plans are kept by hash", plans_are_kept_by_hash),
        ("a new run and its events", a_new_run_and_its_events),
        ("an append that expects other events writes nothing", an_append_that_expects_other_events_writes_nothing),
        ("a run is created once", a_run_is_created_once),
        ("waiting steps are replaced by each commit", waiting_steps_are_replaced_by_each_commit),
        (
            "pending runs are listed oldest first with their steps",
            pending_runs_are_listed_oldest_first_with_their_steps,
        ),
        ("runs with timers due are listed soonest first, a page after another", timers_are_listed_when_due),
        ("the first result of an action's key stands", the_first_result_of_an_actions_key_stands),
        ("refusals form a chain", refusals_form_a_chain),
        ("a shadow replaces its earlier self", a_shadow_replaces_its_earlier_self),
        ("the log covers every change", the_log_covers_every_change),
        ("reading every run visits them in order", reading_every_run_visits_them_in_order),
        ("two handles racing on one run", two_handles_racing_on_one_run),
        ("threads appending through one handle at once", threads_appending_through_one_handle_at_once),
        ("a run's lease is its holder's until it runs out", a_runs_lease_is_its_holders_until_it_runs_out),
        ("an interrupted run is claimed by one handle", an_interrupted_run_is_claimed_by_one_handle),
        ("renewed leases last, released ones end", renewed_leases_last_released_ones_end),
        ("an action key is claimed by one call", an_action_key_is_claimed_by_one_call),
        ("two handles racing for an action key", two_handles_racing_for_an_action_key),
        ("queued cases are taken once and done once", queued_cases_are_taken_once_and_done_once),
        ("a group of commits lands whole or not at all", a_group_of_commits_lands_whole_or_not_at_all),
        ("notices are queued with what they tell", notices_are_queued_with_what_they_tell),
        ("monitor counts add up by minute; one alert is open at a time", monitor_counts_and_alerts),
    ];
    checks
        .into_iter()
        .filter_map(|(name, check)| check(store.as_ref(), open).err().map(|why| format!("{name}: {why}")))
        .collect()
}

type Outcome = std::result::Result<(), String>;

/// One check: the store under test, and how to open more handles on it.
type Check = fn(&dyn Store, Open<'_>) -> Outcome;

fn ensure(holds: bool, why: impl FnOnce() -> String) -> Outcome {
    if holds { Ok(()) } else { Err(why()) }
}

/// A store error, as a failed check.
fn failed(what: &str) -> impl Fn(StoreError) -> String + '_ {
    move |error| format!("{what}: {error}")
}

fn record(id: &str, status: Status, seq: u64, created: &str) -> RunRecord {
    RunRecord {
        id: id.to_owned(),
        plan: "blake3:plan".to_owned(),
        flow: "suite".to_owned(),
        status,
        created: created.to_owned(),
        seq,
        head: hash(id, seq),
        signature: None,
        principal: "ana".to_owned(),
        owner: None,
    }
}

fn hash(run: &str, seq: u64) -> String {
    if seq == 0 { crate::digest::GENESIS.to_owned() } else { crate::digest::digest(&json!([run, seq])) }
}

/// The events `from + 1 ..= to` of `run`, chained.
fn events(run: &str, from: u64, to: u64) -> Vec<RawEvent> {
    (from + 1..=to)
        .map(|seq| RawEvent {
            seq,
            at: format!("2026-12-03T00:00:{:02}Z", seq % 60),
            prev: hash(run, seq - 1),
            hash: hash(run, seq),
            body: json!({"event": "settled", "n": seq}).to_string(),
        })
        .collect()
}

/// Appends the events `from + 1 ..= to` to `run`, expecting `from`.
fn append(store: &dyn Store, run: &RunRecord, from: u64, waiting: &[Waiting], results: &[ActionResult]) -> Result<()> {
    let events = events(&run.id, from, run.seq);
    store.append(&Commit {
        run,
        expected_seq: from,
        events: &events,
        waiting,
        results,
        key: None,
        lease: None,
        released: &[],
        notices: &[],
        tallies: &[],
        check: None,
    })
}

fn plans_are_kept_by_hash(store: &dyn Store, _: Open<'_>) -> Outcome {
    store.put_plan("blake3:suite-plan", b"{\"plan\": 1}").map_err(failed("put"))?;
    store.put_plan("blake3:suite-plan", b"{\"plan\": 1}").map_err(failed("put again"))?;
    let kept = store.plan("blake3:suite-plan").map_err(failed("read"))?;
    ensure(kept.as_deref() == Some(&b"{\"plan\": 1}"[..]), || format!("read back {kept:?}"))?;
    let missing = store.plan("blake3:no-such-plan").map_err(failed("read a missing plan"))?;
    ensure(missing.is_none(), || "a plan never put is found".to_owned())?;
    store.put_plan("blake3:another-plan", b"{\"plan\": 2}").map_err(failed("put another"))?;
    let listed = store.plans().map_err(failed("list"))?;
    ensure(listed == ["blake3:another-plan", "blake3:suite-plan"], || format!("the plans are listed as {listed:?}"))
}

fn a_new_run_and_its_events(store: &dyn Store, _: Open<'_>) -> Outcome {
    let run = record("r-suite-new", Status::Pending, 3, "2026-12-03T00:00:00Z");
    append(store, &run, 0, &[], &[]).map_err(failed("append"))?;
    let stored = store.run(&run.id).map_err(failed("read the run"))?;
    ensure(stored.as_ref() == Some(&run), || format!("the run reads back as {stored:?}"))?;
    let read = store.events(&run.id).map_err(failed("read the events"))?;
    let seqs: Vec<u64> = read.iter().map(|e| e.seq).collect();
    ensure(seqs == [1, 2, 3], || format!("the events read back as {seqs:?}"))?;
    for (raw, written) in read.into_iter().zip(events(&run.id, 0, 3)) {
        let (seq, parsed) = (written.seq, raw.parse(&run.id).map_err(failed("parse an event"))?);
        let written = written.parse(&run.id).map_err(failed("parse a written event"))?;
        ensure(parsed == written, || format!("event {seq} reads back as {parsed:?}"))?;
    }
    let pending = store.runs(Some(Status::Pending)).map_err(failed("list pending runs"))?;
    ensure(pending.iter().any(|r| r.id == run.id), || "the run is not listed as pending".to_owned())?;
    let completed = store.runs(Some(Status::Completed)).map_err(failed("list completed runs"))?;
    ensure(!completed.iter().any(|r| r.id == run.id), || "the pending run is listed as completed".to_owned())?;
    let missing = store.run("r-suite-never").map_err(failed("read a missing run"))?;
    ensure(missing.is_none(), || "a run never appended is found".to_owned())
}

fn an_append_that_expects_other_events_writes_nothing(store: &dyn Store, _: Open<'_>) -> Outcome {
    let run = record("r-suite-stale", Status::Pending, 2, "2026-12-03T00:00:01Z");
    append(store, &run, 0, &[], &[]).map_err(failed("append"))?;
    let log = store.log().map_err(failed("read the log"))?.len();
    // Expecting one event where there are two: as a process that read the run before
    // another appended to it would.
    let later = record("r-suite-stale", Status::Completed, 4, "2026-12-03T00:00:01Z");
    let waiting = [Waiting {
        run: later.id.clone(),
        flow: "suite".to_owned(),
        step: "check".to_owned(),
        kind: "review".to_owned(),
        roles: vec!["clerk".to_owned()],
        due: None,
    }];
    let mut events = events(&later.id, 1, 4);
    events.retain(|e| e.seq > 2);
    let stale = Commit {
        run: &later,
        expected_seq: 1,
        events: &events,
        waiting: &waiting,
        results: &[],
        key: None,
        lease: None,
        released: &[],
        notices: &[],
        tallies: &[],
        check: None,
    };
    let refused = store.append(&stale);
    ensure(matches!(refused, Err(StoreError::Conflict(_))), || format!("expected a conflict, got {refused:?}"))?;
    let stored = store.run(&run.id).map_err(failed("read the run"))?;
    ensure(stored.as_ref() == Some(&run), || format!("the refused append changed the run: {stored:?}"))?;
    let seqs: Vec<u64> = store.events(&run.id).map_err(failed("read the events"))?.iter().map(|e| e.seq).collect();
    ensure(seqs == [1, 2], || format!("the refused append changed the events: {seqs:?}"))?;
    let waits = store.waiting().map_err(failed("read the waiting steps"))?;
    ensure(!waits.iter().any(|w| w.run == run.id), || "the refused append left a waiting step".to_owned())?;
    let after = store.log().map_err(failed("read the log"))?.len();
    ensure(after == log, || format!("the refused append changed the log ({log} entries, then {after})"))
}

fn a_run_is_created_once(store: &dyn Store, _: Open<'_>) -> Outcome {
    let run = record("r-suite-once", Status::Pending, 1, "2026-12-03T00:00:02Z");
    append(store, &run, 0, &[], &[]).map_err(failed("append"))?;
    let again = record("r-suite-once", Status::Completed, 1, "2026-12-03T00:00:02Z");
    let refused = append(store, &again, 0, &[], &[]);
    ensure(matches!(refused, Err(StoreError::Conflict(_))), || format!("created twice: {refused:?}"))?;
    let stored = store.run(&run.id).map_err(failed("read the run"))?;
    ensure(stored.as_ref() == Some(&run), || format!("the second creation changed the run: {stored:?}"))
}

fn waiting_steps_are_replaced_by_each_commit(store: &dyn Store, _: Open<'_>) -> Outcome {
    let step = |run: &str, step: &str| Waiting {
        run: run.to_owned(),
        flow: "suite".to_owned(),
        step: step.to_owned(),
        kind: "approval".to_owned(),
        roles: vec!["manager".to_owned(), "director".to_owned()],
        due: None,
    };
    let run = record("r-suite-waits", Status::Pending, 1, "2026-12-03T00:00:03Z");
    let first = [step(&run.id, "check"), step(&run.id, "sign")];
    append(store, &run, 0, &first, &[]).map_err(failed("append"))?;
    let mut waits: Vec<Waiting> =
        store.waiting().map_err(failed("read the waiting steps"))?.into_iter().filter(|w| w.run == run.id).collect();
    waits.sort_by(|a, b| a.step.cmp(&b.step));
    ensure(waits == first, || format!("the waiting steps read back as {waits:?}"))?;
    let run = record("r-suite-waits", Status::Completed, 2, "2026-12-03T00:00:03Z");
    append(store, &run, 1, &[], &[]).map_err(failed("append the end"))?;
    let waits = store.waiting().map_err(failed("read the waiting steps"))?;
    ensure(!waits.iter().any(|w| w.run == run.id), || "a completed run still waits".to_owned())
}

fn pending_runs_are_listed_oldest_first_with_their_steps(store: &dyn Store, _: Open<'_>) -> Outcome {
    let step = |run: &str, step: &str| Waiting {
        run: run.to_owned(),
        flow: "suite".to_owned(),
        step: step.to_owned(),
        kind: "review".to_owned(),
        roles: vec!["clerk".to_owned()],
        due: None,
    };
    // Created in an order other than their ids': the later id began first.
    let later = record("r-suite-inbox-a", Status::Pending, 1, "2026-12-03T00:01:02Z");
    let earlier = record("r-suite-inbox-b", Status::Pending, 1, "2026-12-03T00:01:01Z");
    let bare = record("r-suite-inbox-c", Status::Pending, 1, "2026-12-03T00:01:03Z");
    let done = record("r-suite-inbox-d", Status::Completed, 1, "2026-12-03T00:01:00Z");
    append(store, &later, 0, &[step(&later.id, "check")], &[]).map_err(failed("append"))?;
    append(store, &earlier, 0, &[step(&earlier.id, "sign"), step(&earlier.id, "check")], &[])
        .map_err(failed("append"))?;
    append(store, &bare, 0, &[], &[]).map_err(failed("append"))?;
    append(store, &done, 0, &[], &[]).map_err(failed("append"))?;
    let listed: Vec<(String, Option<String>)> = store
        .pending_steps()
        .map_err(failed("list the pending steps"))?
        .into_iter()
        .filter(|p| p.run.starts_with("r-suite-inbox-"))
        .map(|p| (p.run, p.waiting.map(|w| w.step)))
        .collect();
    let expected: Vec<(String, Option<String>)> = vec![
        (earlier.id.clone(), Some("check".to_owned())),
        (earlier.id.clone(), Some("sign".to_owned())),
        (later.id.clone(), Some("check".to_owned())),
        (bare.id.clone(), None),
    ];
    ensure(listed == expected, || format!("listed as {listed:?}"))?;
    let first = store.pending_steps().map_err(failed("list the pending steps"))?;
    let first = first.into_iter().find(|p| p.run == earlier.id);
    let whole = first.as_ref().is_some_and(|p| {
        p.plan == earlier.plan
            && p.created == earlier.created
            && p.waiting.as_ref() == Some(&step(&earlier.id, "check"))
    });
    ensure(whole, || format!("a listed step reads back as {first:?}"))
}

fn the_first_result_of_an_actions_key_stands(store: &dyn Store, _: Open<'_>) -> Outcome {
    let result = |run: &str, number: &str| ActionResult {
        system: "ledger".to_owned(),
        key: "suite/K-1".to_owned(),
        result: json!({"number": number}),
        run: run.to_owned(),
        seq: 1,
        args: "blake3:args".to_owned(),
    };
    let first = record("r-suite-act-1", Status::Completed, 1, "2026-12-03T00:00:04Z");
    append(store, &first, 0, &[], &[result(&first.id, "B-1")]).map_err(failed("append the first"))?;
    let second = record("r-suite-act-2", Status::Completed, 1, "2026-12-03T00:00:05Z");
    // A second run that recorded a result for the same key (it lost a race to call the
    // system): the first stands.
    append(store, &second, 0, &[], &[result(&second.id, "B-2")]).map_err(failed("append the second"))?;
    let stored = store.action_result("ledger", "suite/K-1").map_err(failed("read the result"))?;
    ensure(stored.as_ref() == Some(&result(&first.id, "B-1")), || format!("the key's result is {stored:?}"))?;
    let all = store.action_results().map_err(failed("read every result"))?;
    let for_key = all.iter().filter(|r| r.system == "ledger" && r.key == "suite/K-1").count();
    ensure(for_key == 1, || format!("{for_key} results for one key"))?;
    let missing = store.action_result("ledger", "suite/none").map_err(failed("read a missing result"))?;
    ensure(missing.is_none(), || "a result never recorded is found".to_owned())
}

fn refusals_form_a_chain(store: &dyn Store, _: Open<'_>) -> Outcome {
    let before = store.refusals().map_err(failed("read the refusals"))?.len();
    for principal in ["zed", "yan"] {
        let refusal = ["2026-12-03T00:00:06Z", principal, "trigger", "trigger", "may not start `suite`"];
        store.record_refusal(refusal, None, &[]).map_err(failed("record a refusal"))?;
    }
    let refusals = store.refusals().map_err(failed("read the refusals"))?;
    ensure(refusals.len() == before + 2, || format!("{} refusals after two more than {before}", refusals.len()))?;
    let mut prev = crate::digest::GENESIS.to_owned();
    for (n, refusal) in refusals.iter().enumerate() {
        ensure(refusal.seq == n as u64, || format!("refusal {n} has number {}", refusal.seq))?;
        ensure(refusal.prev == prev, || format!("refusal {n} does not follow the one before it"))?;
        let fields = [&*refusal.at, &*refusal.principal, &*refusal.operation, &*refusal.grant, &*refusal.message];
        let hash = crate::checkpoint::refusal_hash(&refusal.prev, refusal.seq, fields);
        ensure(refusal.hash == hash, || format!("refusal {n}'s hash is not the hash of what it says"))?;
        prev.clone_from(&refusal.hash);
    }
    let last: Vec<&str> = refusals[before..].iter().map(|r| r.principal.as_str()).collect();
    ensure(last == ["zed", "yan"], || format!("the refusals read back as {last:?}"))
}

fn a_shadow_replaces_its_earlier_self(store: &dyn Store, _: Open<'_>) -> Outcome {
    let shadow = |outcome: &str| ShadowRecord {
        run: "r-suite-shadowed".to_owned(),
        candidate: "blake3:candidate".to_owned(),
        flow: "suite".to_owned(),
        created: "2026-12-03T00:00:07Z".to_owned(),
        production: "completed".to_owned(),
        outcome: outcome.to_owned(),
        changes: json!([{"node": "big", "before": false, "after": true}]),
        signature: None,
    };
    store.put_shadow(&shadow("blocked"), None).map_err(failed("keep a shadow"))?;
    store.put_shadow(&shadow("completed"), None).map_err(failed("keep it again"))?;
    let kept = store.shadows(Some("r-suite-shadowed")).map_err(failed("read the run's shadows"))?;
    ensure(kept == [shadow("completed")], || format!("the run's shadows read back as {kept:?}"))?;
    let all = store.shadows(None).map_err(failed("read every shadow"))?;
    ensure(all.iter().filter(|s| s.run == "r-suite-shadowed").count() == 1, || "listed twice".to_owned())
}

fn the_log_covers_every_change(store: &dyn Store, _: Open<'_>) -> Outcome {
    use crate::checkpoint::Kind;
    let before = store.log().map_err(failed("read the log"))?.len();
    let run = record("r-suite-logged", Status::Pending, 2, "2026-12-03T00:00:08Z");
    append(store, &run, 0, &[], &[]).map_err(failed("append"))?;
    // A commit without events (a heartbeat) changes no chain: nothing to log.
    let beat = Commit {
        run: &run,
        expected_seq: 2,
        events: &[],
        waiting: &[],
        results: &[],
        key: None,
        lease: None,
        released: &[],
        notices: &[],
        tallies: &[],
        check: None,
    };
    store.append(&beat).map_err(failed("append no events"))?;
    let run = record("r-suite-logged", Status::Completed, 3, "2026-12-03T00:00:08Z");
    append(store, &run, 2, &[], &[]).map_err(failed("append again"))?;
    let log = store.log().map_err(failed("read the log"))?;
    let added: Vec<(Kind, &str, u64, &str)> =
        log[before..].iter().map(|e| (e.kind, e.subject.as_str(), e.seq, e.hash.as_str())).collect();
    let heads = [hash(&run.id, 2), hash(&run.id, 3)];
    let expected = [(Kind::Run, run.id.as_str(), 2, heads[0].as_str()), (Kind::Run, &run.id, 3, &heads[1])];
    ensure(added == expected, || format!("the log gained {added:?}"))?;
    let checkpoint = store.checkpoint().map_err(failed("read the checkpoint"))?.ok_or("no checkpoint")?;
    ensure(checkpoint.size == log.len() as u64, || {
        format!("the checkpoint covers {} entries of {}", checkpoint.size, log.len())
    })?;
    let mut frontier = crate::checkpoint::Frontier::default();
    for entry in &log {
        frontier.push(entry.leaf());
    }
    ensure(checkpoint.root_bytes() == Some(frontier.root()), || "the checkpoint is not the log's root".to_owned())
}

fn reading_every_run_visits_them_in_order(store: &dyn Store, _: Open<'_>) -> Outcome {
    for (id, seq) in [("r-suite-scan-b", 2), ("r-suite-scan-a", 1)] {
        append(store, &record(id, Status::Completed, seq, "2026-12-03T00:00:09Z"), 0, &[], &[])
            .map_err(failed("append"))?;
    }
    let mut seen: Vec<(String, Vec<u64>)> = Vec::new();
    store
        .scan_events(&mut |run, events| {
            seen.push((run.to_owned(), events.iter().map(|e| e.seq).collect()));
            true
        })
        .map_err(failed("read every run"))?;
    let ids: Vec<&str> = seen.iter().map(|(id, _)| id.as_str()).collect();
    ensure(ids.is_sorted(), || format!("runs visited out of order: {ids:?}"))?;
    let scanned = |id: &str| seen.iter().find(|(run, _)| run == id).map(|(_, seqs)| seqs.clone());
    ensure(scanned("r-suite-scan-a") == Some(vec![1]), || format!("r-suite-scan-a: {:?}", scanned("r-suite-scan-a")))?;
    ensure(scanned("r-suite-scan-b") == Some(vec![1, 2]), || {
        format!("r-suite-scan-b: {:?}", scanned("r-suite-scan-b"))
    })?;
    let mut visited = 0;
    store
        .scan_events(&mut |_, _| {
            visited += 1;
            false
        })
        .map_err(failed("read every run, stopping"))?;
    ensure(visited == 1, || format!("asked to stop at the first run, it visited {visited}"))
}

fn two_handles_racing_on_one_run(store: &dyn Store, open: Open<'_>) -> Outcome {
    let run = record("r-suite-race", Status::Pending, 1, "2026-12-03T00:00:10Z");
    append(store, &run, 0, &[], &[]).map_err(failed("append"))?;
    let handles = [open().map_err(failed("open a second handle"))?, open().map_err(failed("open a third handle"))?];
    // What one handle wrote, another reads.
    let seen = handles[0].run(&run.id).map_err(failed("read through another handle"))?;
    ensure(seen.as_ref() == Some(&run), || format!("another handle reads the run as {seen:?}"))?;
    let rounds = race(&handles, 20, &|handle, racer, round| {
        let from = 1 + round;
        let mut next = record("r-suite-race", Status::Pending, from + 1, "2026-12-03T00:00:10Z");
        next.principal = racer.to_owned();
        append(handle, &next, from, &[], &[])
    });
    for (round, outcomes) in rounds.iter().enumerate() {
        let won = outcomes.iter().filter(|o| o.is_ok()).count();
        let lost = outcomes.iter().filter(|o| matches!(o, Err(StoreError::Conflict(_)))).count();
        ensure(won == 1 && lost == 1, || format!("round {round}: {outcomes:?}"))?;
    }
    let seqs: Vec<u64> = store.events(&run.id).map_err(failed("read the events"))?.iter().map(|e| e.seq).collect();
    ensure(seqs == (1..=21).collect::<Vec<u64>>(), || format!("the raced run's events: {seqs:?}"))
}

/// Threads of one process share a handle (a store may commit their appends together): each
/// append lands or fails on its own — a conflict is its thread's alone — and the store's
/// log covers every one that landed, in the order they landed, under one checkpoint.
fn threads_appending_through_one_handle_at_once(store: &dyn Store, _: Open<'_>) -> Outcome {
    const THREADS: usize = 8;
    const RUNS: usize = 12;
    let before = store.log().map_err(failed("read the log"))?.len();
    let contended = record("r-suite-many-shared", Status::Completed, 2, "2026-12-03T00:04:00Z");
    let barrier = std::sync::Barrier::new(THREADS);
    let outcomes: Vec<(Vec<Result<()>>, Result<()>)> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let (barrier, contended) = (&barrier, &contended);
                scope.spawn(move || {
                    barrier.wait();
                    let mut mine = Vec::new();
                    for r in 0..RUNS {
                        let id = format!("r-suite-many-{t}-{r}");
                        let first = record(&id, Status::Pending, 2, "2026-12-03T00:04:00Z");
                        mine.push(append(store, &first, 0, &[], &[]));
                        let then = record(&id, Status::Completed, 4, "2026-12-03T00:04:00Z");
                        mine.push(append(store, &then, 2, &[], &[]));
                        // A stale append of one's own: refused, and nothing else with it.
                        mine.push(match append(store, &then, 2, &[], &[]) {
                            Err(StoreError::Conflict(_)) => Ok(()),
                            Ok(()) => Err(StoreError::Unusable(format!("{id} was appended twice from 2"))),
                            Err(other) => Err(other),
                        });
                    }
                    let mut shared = contended.clone();
                    shared.principal = format!("racer-{t}");
                    (mine, append(store, &shared, 0, &[], &[]))
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().unwrap_or_else(|_| (vec![], Err(StoreError::Unusable("panicked".into())))))
            .collect()
    });
    for (t, (mine, _)) in outcomes.iter().enumerate() {
        ensure(mine.len() == RUNS * 3, || format!("thread {t} stopped early"))?;
        if let Some(error) = mine.iter().find_map(|o| o.as_ref().err()) {
            return Err(format!("thread {t}: {error}"));
        }
    }
    let won: Vec<usize> = outcomes.iter().enumerate().filter(|(_, (_, o))| o.is_ok()).map(|(t, _)| t).collect();
    let lost = outcomes.iter().filter(|(_, o)| matches!(o, Err(StoreError::Conflict(_)))).count();
    ensure(won.len() == 1 && lost == THREADS - 1, || format!("the contended run was created by {won:?}, {lost} lost"))?;
    let stored = store.run(&contended.id).map_err(failed("read the contended run"))?;
    let winner = format!("racer-{}", won[0]);
    ensure(stored.as_ref().is_some_and(|r| r.principal == winner), || format!("the contended run reads {stored:?}"))?;
    for t in 0..THREADS {
        for r in 0..RUNS {
            let id = format!("r-suite-many-{t}-{r}");
            let seqs: Vec<u64> = store.events(&id).map_err(failed("read the events"))?.iter().map(|e| e.seq).collect();
            ensure(seqs == [1, 2, 3, 4], || format!("{id} has the events {seqs:?}"))?;
        }
    }
    let log = store.log().map_err(failed("read the log"))?;
    let added = &log[before..];
    ensure(added.len() == THREADS * RUNS * 2 + 1, || format!("the log gained {} entries", added.len()))?;
    // Each run's entries in the order of its chain.
    for t in 0..THREADS {
        for r in 0..RUNS {
            let id = format!("r-suite-many-{t}-{r}");
            let seqs: Vec<u64> = added.iter().filter(|e| e.subject == id).map(|e| e.seq).collect();
            ensure(seqs == [2, 4], || format!("the log has {id} at {seqs:?}"))?;
        }
    }
    let checkpoint = store.checkpoint().map_err(failed("read the checkpoint"))?.ok_or("no checkpoint")?;
    let mut frontier = crate::checkpoint::Frontier::default();
    for entry in &log {
        frontier.push(entry.leaf());
    }
    ensure(checkpoint.size == log.len() as u64 && checkpoint.root_bytes() == Some(frontier.root()), || {
        format!("the checkpoint covers {} entries of {}, or not their root", checkpoint.size, log.len())
    })
}

/// Appends a run that executes, leased to `owner` for `ttl_ms`.
fn executing(store: &dyn Store, id: &str, owner: &str, ttl_ms: i64) -> Result<RunRecord> {
    let run = record(id, Status::Running, 1, "2026-12-03T00:01:00Z");
    let events = events(id, 0, 1);
    let commit = Commit {
        run: &run,
        expected_seq: 0,
        events: &events,
        waiting: &[],
        results: &[],
        key: None,
        lease: Some((owner, ttl_ms)),
        released: &[],
        notices: &[],
        tallies: &[],
        check: None,
    };
    store.append(&commit)?;
    Ok(run)
}

/// Settles a run appended by [`executing`] (its lease ends with it).
fn settle(store: &dyn Store, run: &RunRecord, results: &[ActionResult], released: &[(String, String)]) -> Result<()> {
    let mut done = run.clone();
    done.status = Status::Completed;
    done.seq = run.seq + 1;
    done.head = hash(&run.id, done.seq);
    let events = events(&run.id, run.seq, done.seq);
    let commit = Commit {
        run: &done,
        expected_seq: run.seq,
        events: &events,
        waiting: &[],
        results,
        key: None,
        lease: None,
        released,
        notices: &[],
        tallies: &[],
        check: None,
    };
    store.append(&commit)
}

fn a_runs_lease_is_its_holders_until_it_runs_out(store: &dyn Store, _: Open<'_>) -> Outcome {
    let run = executing(store, "r-suite-leased", "owner-a", 60_000).map_err(failed("append"))?;
    let read = store.run(&run.id).map_err(failed("read the run"))?;
    let lease = read.and_then(|r| r.owner);
    ensure(lease.as_ref().is_some_and(|l| l.owner == "owner-a" && l.remaining_ms > 50_000), || {
        format!("the run's lease reads back as {lease:?}")
    })?;
    let other = store.claim_run(&run.id, "owner-b", 60_000).map_err(failed("claim by another"))?;
    ensure(other.as_ref().is_some_and(|l| l.owner == "owner-a"), || format!("another owner's claim: {other:?}"))?;
    let again = store.claim_run(&run.id, "owner-a", 60_000).map_err(failed("claim by its holder"))?;
    ensure(again.is_none(), || format!("its holder's own claim: {again:?}"))?;
    let interrupted = store.claim_interrupted("owner-b", 60_000).map_err(failed("claim an interrupted run"))?;
    ensure(interrupted.is_none(), || format!("a run with a live lease was claimed as interrupted: {interrupted:?}"))?;
    settle(store, &run, &[], &[]).map_err(failed("settle"))?;
    let settled = store.run(&run.id).map_err(failed("read the run"))?.and_then(|r| r.owner);
    ensure(settled.is_none(), || format!("a settled run keeps a lease: {settled:?}"))?;
    let claim = store.claim_run(&run.id, "owner-b", 60_000).map_err(failed("claim a settled run"))?;
    ensure(claim.is_none(), || format!("a settled run is leased: {claim:?}"))?;
    let lease = store.run(&run.id).map_err(failed("read the run"))?.and_then(|r| r.owner);
    ensure(lease.is_none(), || format!("claiming a settled run leased it: {lease:?}"))
}

/// Races `handles` on `attempt` (each handle with its owner's name) in `rounds` rounds: the
/// outcomes of each round, in handle order.
fn race<T: Send>(
    handles: &[Box<dyn Store>],
    rounds: u64,
    attempt: &(dyn Fn(&dyn Store, &str, u64) -> Result<T> + Sync),
) -> Vec<Vec<Result<T>>> {
    (0..rounds)
        .map(|round| {
            let barrier = std::sync::Barrier::new(handles.len());
            std::thread::scope(|scope| {
                let racers: Vec<_> = handles
                    .iter()
                    .enumerate()
                    .map(|(who, handle)| {
                        let barrier = &barrier;
                        scope.spawn(move || {
                            barrier.wait();
                            attempt(handle.as_ref(), &format!("racer-{who}"), round)
                        })
                    })
                    .collect();
                racers
                    .into_iter()
                    .map(|r| r.join().unwrap_or_else(|_| Err(StoreError::Unusable("panicked".into()))))
                    .collect()
            })
        })
        .collect()
}

fn an_interrupted_run_is_claimed_by_one_handle(store: &dyn Store, open: Open<'_>) -> Outcome {
    let handles = [open().map_err(failed("open a second handle"))?, open().map_err(failed("open a third handle"))?];
    let rounds = race(&handles, 10, &|handle, owner, round| {
        if owner == "racer-0" {
            // One run per round whose holder died: its lease ran out.
            let id = format!("r-suite-interrupted-{round}");
            executing(store, &id, "owner-gone", 1)?;
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        handle.claim_interrupted(owner, 60_000)
    });
    for (round, outcomes) in rounds.iter().enumerate() {
        let claimed: Vec<&String> = outcomes.iter().filter_map(|o| o.as_ref().ok().and_then(Option::as_ref)).collect();
        let errors: Vec<&StoreError> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
        ensure(errors.is_empty(), || format!("round {round}: {errors:?}"))?;
        ensure(claimed.len() <= 1, || format!("round {round}: one interrupted run claimed twice: {claimed:?}"))?;
        // The racer that did not append may have claimed before the run existed.
        let id = format!("r-suite-interrupted-{round}");
        let lease = store.run(&id).map_err(failed("read the run"))?.and_then(|r| r.owner);
        if claimed.is_empty() {
            let later = store.claim_interrupted("owner-late", 60_000).map_err(failed("claim"))?;
            ensure(later.as_deref() == Some(id.as_str()), || format!("round {round}: nobody claimed {id}: {later:?}"))?;
        } else {
            ensure(claimed[0] == &id, || format!("round {round}: claimed {} instead of {id}", claimed[0]))?;
            ensure(lease.as_ref().is_some_and(|l| l.owner.starts_with("racer-") && !l.expired()), || {
                format!("round {round}: the claimed run's lease is {lease:?}")
            })?;
        }
        let run = store.run(&id).map_err(failed("read the run"))?.ok_or("the run is gone")?;
        settle(store, &run, &[], &[]).map_err(failed("settle"))?;
    }
    Ok(())
}

fn renewed_leases_last_released_ones_end(store: &dyn Store, _: Open<'_>) -> Outcome {
    let run = executing(store, "r-suite-renewed", "owner-a", 150).map_err(failed("append"))?;
    let held = [super::Held::Run(run.id.clone()), super::Held::Action("suite".to_owned(), "renewed".to_owned())];
    let claim = store.claim_action("suite", "renewed", &run.id, "owner-a", 150).map_err(failed("claim an action"))?;
    ensure(claim == super::ActionClaim::Claimed, || format!("a free action key: {claim:?}"))?;
    store.renew("owner-a", &held, 60_000).map_err(failed("renew"))?;
    // A renewal by another owner changes nothing.
    store.renew("owner-b", &held, 1).map_err(failed("renew by another"))?;
    std::thread::sleep(std::time::Duration::from_millis(200));
    let other = store.claim_run(&run.id, "owner-b", 60_000).map_err(failed("claim the run"))?;
    ensure(other.is_some(), || "a renewed lease ran out".to_owned())?;
    let action = store.claim_action("suite", "renewed", "r-suite-other", "owner-b", 60_000).map_err(failed("claim"))?;
    ensure(matches!(action, super::ActionClaim::Held(_)), || format!("a renewed action claim: {action:?}"))?;
    // Released by another owner: nothing happens.
    store.release("owner-b", &held).map_err(failed("release by another"))?;
    let other = store.claim_run(&run.id, "owner-b", 60_000).map_err(failed("claim the run"))?;
    ensure(other.is_some(), || "a lease released by another owner ended".to_owned())?;
    store.release("owner-a", &held).map_err(failed("release"))?;
    let taken = store.claim_run(&run.id, "owner-b", 60_000).map_err(failed("claim the released run"))?;
    ensure(taken.is_none(), || format!("a released run is still held: {taken:?}"))?;
    let action = store.claim_action("suite", "renewed", "r-suite-other", "owner-b", 60_000).map_err(failed("claim"))?;
    ensure(action == super::ActionClaim::Claimed, || format!("a released action key: {action:?}"))?;
    // And a lease that is not renewed runs out.
    let short = executing(store, "r-suite-short", "owner-a", 50).map_err(failed("append"))?;
    std::thread::sleep(std::time::Duration::from_millis(100));
    let taken = store.claim_run(&short.id, "owner-b", 60_000).map_err(failed("claim a run whose lease ran out"))?;
    ensure(taken.is_none(), || format!("a lease that ran out still holds: {taken:?}"))?;
    let run = store.run(&run.id).map_err(failed("read"))?.ok_or("the run is gone")?;
    settle(store, &run, &[], &[("suite".to_owned(), "renewed".to_owned())]).map_err(failed("settle"))?;
    let short = store.run(&short.id).map_err(failed("read"))?.ok_or("the run is gone")?;
    settle(store, &short, &[], &[]).map_err(failed("settle"))
}

fn an_action_key_is_claimed_by_one_call(store: &dyn Store, _: Open<'_>) -> Outcome {
    use super::ActionClaim::{Claimed, Done, Held};
    let run = executing(store, "r-suite-acts", "owner-a", 60_000).map_err(failed("append"))?;
    let claim = |key: &str, run: &str, owner: &str| store.claim_action("suite", key, run, owner, 60_000);
    let first = claim("k", &run.id, "owner-a").map_err(failed("claim"))?;
    ensure(first == Claimed, || format!("a free key: {first:?}"))?;
    let again = claim("k", &run.id, "owner-a").map_err(failed("claim again"))?;
    ensure(again == Claimed, || format!("the same run and owner claiming again: {again:?}"))?;
    let other_run = claim("k", "r-suite-acts-2", "owner-a").map_err(failed("claim for another run"))?;
    ensure(matches!(other_run, Held(_)), || format!("another run of the same owner: {other_run:?}"))?;
    let other_owner = claim("k", &run.id, "owner-b").map_err(failed("claim by another owner"))?;
    ensure(matches!(&other_owner, Held(lease) if lease.owner == "owner-a"), || {
        format!("another owner: {other_owner:?}")
    })?;
    let failing = claim("failing", &run.id, "owner-a").map_err(failed("claim"))?;
    ensure(failing == Claimed, || format!("a free key: {failing:?}"))?;
    // The run records the result of `k`, and gives `failing` up (its handler failed).
    let result = ActionResult {
        system: "suite".to_owned(),
        key: "k".to_owned(),
        result: json!({"ok": true}),
        run: run.id.clone(),
        seq: 1,
        args: "blake3:args".to_owned(),
    };
    settle(store, &run, std::slice::from_ref(&result), &[("suite".to_owned(), "failing".to_owned())])
        .map_err(failed("settle"))?;
    let later = claim("k", "r-suite-acts-2", "owner-b").map_err(failed("claim a key with a result"))?;
    ensure(later == Done(result), || format!("a key with a recorded result: {later:?}"))?;
    let retried = claim("failing", "r-suite-acts-2", "owner-b").map_err(failed("claim a given-up key"))?;
    ensure(retried == Claimed, || format!("a key given up: {retried:?}"))?;
    // An expired claim is taken over.
    let short = store.claim_action("suite", "short", "r-suite-acts", "owner-a", 1).map_err(failed("claim"))?;
    ensure(short == Claimed, || format!("a free key: {short:?}"))?;
    std::thread::sleep(std::time::Duration::from_millis(10));
    let taken = claim("short", "r-suite-acts-2", "owner-b").map_err(failed("claim an expired key"))?;
    ensure(taken == Claimed, || format!("a claim whose lease ran out: {taken:?}"))?;
    store
        .release(
            "owner-b",
            &[
                super::Held::Action("suite".to_owned(), "short".to_owned()),
                super::Held::Action("suite".to_owned(), "failing".to_owned()),
            ],
        )
        .map_err(failed("release"))
}

fn two_handles_racing_for_an_action_key(_: &dyn Store, open: Open<'_>) -> Outcome {
    let handles = [open().map_err(failed("open a second handle"))?, open().map_err(failed("open a third handle"))?];
    let rounds = race(&handles, 20, &|handle, owner, round| {
        handle.claim_action("suite", &format!("raced-{round}"), &format!("r-suite-{owner}"), owner, 60_000)
    });
    for (round, outcomes) in rounds.iter().enumerate() {
        let claimed = outcomes.iter().filter(|o| matches!(o, Ok(super::ActionClaim::Claimed))).count();
        let held = outcomes.iter().filter(|o| matches!(o, Ok(super::ActionClaim::Held(_)))).count();
        ensure(claimed == 1 && held == 1, || format!("round {round}: {outcomes:?}"))?;
    }
    Ok(())
}

fn queued_cases_are_taken_once_and_done_once(store: &dyn Store, open: Open<'_>) -> Outcome {
    let batch = super::QueuedBatch {
        id: "b-suite".to_owned(),
        plan: "blake3:plan".to_owned(),
        principal: "ana".to_owned(),
        options: json!({"durable": true}),
        created: "2026-12-03T00:02:00Z".to_owned(),
        cases: 40,
    };
    let cases: Vec<(u64, String)> = (0..40).map(|n| (n, format!("{{\"case\": {n}}}"))).collect();
    store.enqueue(&batch, &cases).map_err(failed("enqueue"))?;
    let read = store.batch(&batch.id).map_err(failed("read the batch"))?;
    ensure(read.as_ref() == Some(&batch), || format!("the batch reads back as {read:?}"))?;
    // Two handles take cases at once, round after round: no case is taken twice.
    let handles = [open().map_err(failed("open a second handle"))?, open().map_err(failed("open a third handle"))?];
    let rounds = race(&handles, 5, &|handle, owner, _| handle.take_cases(owner, 60_000, 3));
    let mut taken: Vec<u64> = Vec::new();
    for outcomes in &rounds {
        for outcome in outcomes {
            let cases = outcome.as_ref().map_err(|e| format!("take: {e}"))?;
            for case in cases {
                let text = format!("{{\"case\": {}}}", case.n);
                ensure(case.batch == batch.id && case.body == text, || format!("taken as {case:?}"))?;
                taken.push(case.n);
            }
        }
    }
    let mut unique = taken.clone();
    unique.sort_unstable();
    unique.dedup();
    ensure(unique.len() == taken.len() && taken.len() == 30, || format!("taken: {taken:?}"))?;
    // What is held is not taken again; the rest is.
    let rest = store.take_cases("owner-c", 1, 100).map_err(failed("take the rest"))?;
    let rest: Vec<u64> = rest.iter().map(|c| c.n).collect();
    ensure(rest.len() == 10 && rest.iter().all(|n| !taken.contains(n)), || format!("the rest: {rest:?}"))?;
    // Done once: a second outcome of a case does not replace its first.
    let done: Vec<(String, u64, serde_json::Value)> =
        taken.iter().map(|n| (batch.id.clone(), *n, json!({"status": "completed", "n": n}))).collect();
    store.finish_cases("racer-0", &done).map_err(failed("finish"))?;
    store
        .finish_cases("racer-1", &[(batch.id.clone(), taken[0], json!({"status": "failed"}))])
        .map_err(failed("finish again"))?;
    // `owner-c`'s lease of the rest ran out: they are taken again, and only they.
    std::thread::sleep(std::time::Duration::from_millis(10));
    let again = store.take_cases("owner-d", 60_000, 100).map_err(failed("take again"))?;
    let mut again: Vec<u64> = again.iter().map(|c| c.n).collect();
    again.sort_unstable();
    let mut expected = rest.clone();
    expected.sort_unstable();
    ensure(again == expected, || format!("taken after the lease ran out: {again:?}, expected {expected:?}"))?;
    let outcomes = store.outcomes(&batch.id).map_err(failed("read the outcomes"))?;
    ensure(outcomes.len() == 40, || format!("{} outcomes", outcomes.len()))?;
    for (n, outcome) in outcomes {
        let expected = taken.contains(&n).then(|| json!({"status": "completed", "n": n}));
        ensure(outcome == expected, || format!("case {n}: {outcome:?}"))?;
    }
    let missing = store.batch("b-suite-none").map_err(failed("read a missing batch"))?;
    ensure(missing.is_none(), || "a batch never queued is found".to_owned())
}

fn a_group_of_commits_lands_whole_or_not_at_all(store: &dyn Store, _: Open<'_>) -> Outcome {
    let existing = record("r-suite-group-0", Status::Completed, 2, "2026-12-03T00:03:00Z");
    append(store, &existing, 0, &[], &[]).map_err(failed("append"))?;
    let before = store.log().map_err(failed("read the log"))?.len();
    let runs: Vec<RunRecord> =
        (1..=3).map(|i| record(&format!("r-suite-group-{i}"), Status::Completed, 2, "2026-12-03T00:03:00Z")).collect();
    let events: Vec<Vec<RawEvent>> = runs.iter().map(|run| events(&run.id, 0, 2)).collect();
    fn commit<'a>(run: &'a RunRecord, events: &'a [RawEvent], expected_seq: u64) -> Commit<'a> {
        Commit {
            run,
            expected_seq,
            events,
            waiting: &[],
            results: &[],
            key: None,
            lease: None,
            released: &[],
            notices: &[],
            tallies: &[],
            check: None,
        }
    }
    // The existing run again, as new: the group conflicts, and nothing of it lands.
    let existing_events = self::events(&existing.id, 0, 2);
    let mut group: Vec<Commit<'_>> = runs.iter().zip(&events).map(|(run, events)| commit(run, events, 0)).collect();
    group.insert(1, commit(&existing, &existing_events, 0));
    let refused = store.append_all(&group);
    ensure(matches!(refused, Err(StoreError::Conflict(_))), || format!("a group with a conflict: {refused:?}"))?;
    for run in &runs {
        let stored = store.run(&run.id).map_err(failed("read a run"))?;
        ensure(stored.is_none(), || format!("{} landed from a group that conflicted", run.id))?;
    }
    let after = store.log().map_err(failed("read the log"))?.len();
    ensure(after == before, || format!("the log grew from {before} to {after} entries by a group that conflicted"))?;
    group.remove(1);
    store.append_all(&group).map_err(failed("append the group"))?;
    for run in &runs {
        let stored = store.run(&run.id).map_err(failed("read a run"))?;
        ensure(stored.as_ref() == Some(run), || format!("{} reads back as {stored:?}", run.id))?;
    }
    let log = store.log().map_err(failed("read the log"))?;
    let heads: Vec<&str> = log[before..].iter().map(|e| e.subject.as_str()).collect();
    ensure(heads == ["r-suite-group-1", "r-suite-group-2", "r-suite-group-3"], || format!("logged: {heads:?}"))?;
    let checkpoint = store.checkpoint().map_err(failed("read the checkpoint"))?;
    ensure(checkpoint.is_some_and(|c| c.size == log.len() as u64), || "the checkpoint does not cover the group".into())
}

fn notices_are_queued_with_what_they_tell(store: &dyn Store, open: Open<'_>) -> Outcome {
    use super::{Attempt, DeliveryState, Notice};
    let notice = |endpoint: &str, id: &str| Notice {
        endpoint: endpoint.to_owned(),
        id: id.to_owned(),
        kind: "run.ended".to_owned(),
        data: json!({"run": "r-suite-notice", "status": "completed"}),
    };
    let run = record("r-suite-notice", Status::Completed, 2, "2026-12-03T00:04:00Z");
    let events = events(&run.id, 0, 2);
    let notices = [notice("ops", "r-suite-notice.1"), notice("audit", "r-suite-notice.1")];
    let commit = |expected_seq| Commit {
        run: &run,
        expected_seq,
        events: &events,
        waiting: &[],
        results: &[],
        key: None,
        lease: None,
        released: &[],
        notices: &notices,
        tallies: &[],
        check: None,
    };
    store.append(&commit(0)).map_err(failed("append with notices"))?;
    // The same commit again conflicts: its notices are not queued twice.
    let again = store.append(&commit(0));
    ensure(matches!(again, Err(StoreError::Conflict(_))), || format!("appending the same commit again: {again:?}"))?;
    let refusal = ["2026-12-03T00:04:01Z", "zed", "trigger", "trigger", "may not start `suite`"];
    store.record_refusal(refusal, None, &[notice("ops", "ignored")]).map_err(failed("record a refusal"))?;
    let seq = store.refusals().map_err(failed("read the refusals"))?.last().map_or(0, |r| r.seq);
    let queued = store.deliveries(Some(DeliveryState::Pending)).map_err(failed("read the notices"))?;
    let mut ids: Vec<(String, String)> =
        queued.iter().map(|d| (d.notice.endpoint.clone(), d.notice.id.clone())).collect();
    ids.sort();
    let mut expected = vec![
        ("audit".to_owned(), "r-suite-notice.1".to_owned()),
        ("ops".to_owned(), "r-suite-notice.1".to_owned()),
        ("ops".to_owned(), format!("refusals.{seq}")),
    ];
    expected.sort();
    ensure(ids == expected, || format!("queued: {ids:?}, expected {expected:?}"))?;
    ensure(queued.iter().all(|d| d.notice.data == notice("", "").data && d.attempts == 0), || {
        format!("queued notices do not read back as queued: {queued:?}")
    })?;

    // A handle takes only its endpoints' notices (a lease of no time leaves them free).
    let both = ["ops".to_owned(), "audit".to_owned()];
    let audit = store.take_deliveries(&both[1..], "suite-x", 0, 10).map_err(failed("take notices"))?;
    let audit: Vec<&str> = audit.iter().map(|d| d.notice.endpoint.as_str()).collect();
    ensure(audit == ["audit"], || format!("taken for `audit` alone: {audit:?}"))?;
    let unknown = store.take_deliveries(&["nobody".to_owned()], "suite-x", 0, 10).map_err(failed("take notices"))?;
    ensure(unknown.is_empty(), || format!("{} notices taken for an endpoint that has none", unknown.len()))?;

    // Two handles take at once: each notice goes to one of them.
    let other = open().map_err(failed("open another handle"))?;
    let (mine, theirs) = std::thread::scope(|scope| {
        let theirs = scope.spawn(|| other.take_deliveries(&both, "suite-b", 60_000, 10));
        (store.take_deliveries(&both, "suite-a", 60_000, 10), theirs.join())
    });
    let mine = mine.map_err(failed("take notices"))?;
    let theirs = theirs.map_err(|_| "a handle panicked".to_owned())?.map_err(failed("take notices"))?;
    ensure(mine.len() + theirs.len() == 3, || format!("taken {} and {} of 3", mine.len(), theirs.len()))?;
    let none = store.take_deliveries(&both, "suite-c", 60_000, 10).map_err(failed("take notices"))?;
    ensure(none.is_empty(), || format!("{} notices taken while leased to others", none.len()))?;
    let all: Vec<(&str, Notice)> = mine
        .iter()
        .map(|d| ("suite-a", d.notice.clone()))
        .chain(theirs.iter().map(|d| ("suite-b", d.notice.clone())))
        .collect();

    // Who does not hold a notice's lease records nothing of it.
    let (_, first) = &all[0];
    store.finish_delivery("suite-z", &first.endpoint, &first.id, &Attempt::Delivered).map_err(failed("record"))?;
    let every = store.deliveries(None).map_err(failed("read the notices"))?;
    let untouched = every.iter().all(|d| d.state == DeliveryState::Pending && d.attempts == 0);
    ensure(untouched, || "a delivery was recorded by a process that did not hold its lease".to_owned())?;

    // One delivered, one to try again at once, one given up.
    let outcomes = [
        Attempt::Delivered,
        Attempt::Retry { after_ms: 0, error: "503".to_owned() },
        Attempt::GaveUp { error: "401".to_owned() },
    ];
    for ((owner, notice), attempt) in all.iter().zip(&outcomes) {
        store.finish_delivery(owner, &notice.endpoint, &notice.id, attempt).map_err(failed("record a delivery"))?;
    }
    // A delivered notice stays delivered, whatever a late attempt says.
    let (owner, first) = &all[0];
    store.finish_delivery(owner, &first.endpoint, &first.id, &outcomes[2]).map_err(failed("record a delivery"))?;
    let every = store.deliveries(None).map_err(failed("read the notices"))?;
    let state_of = |n: &Notice| every.iter().find(|d| d.notice.id == n.id && d.notice.endpoint == n.endpoint);
    let states: Vec<_> = all.iter().map(|(_, n)| state_of(n).map(|d| (d.state, d.attempts, d.error.clone()))).collect();
    let expected = vec![
        Some((DeliveryState::Delivered, 1, None)),
        Some((DeliveryState::Pending, 1, Some("503".to_owned()))),
        Some((DeliveryState::Failed, 1, Some("401".to_owned()))),
    ];
    ensure(states == expected, || format!("after the attempts: {states:?}, expected {expected:?}"))?;
    // Due at once: taken again; then tried again only when its time comes.
    let (_, again) = &all[1];
    let due = store.take_deliveries(&both, "suite-c", 60_000, 10).map_err(failed("take notices"))?;
    let due: Vec<_> = due.iter().map(|d| (d.notice.id.clone(), d.attempts)).collect();
    ensure(due == [(again.id.clone(), 1)], || format!("due again: {due:?}"))?;
    let later = Attempt::Retry { after_ms: 60_000, error: "503".to_owned() };
    store.finish_delivery("suite-c", &again.endpoint, &again.id, &later).map_err(failed("record a delivery"))?;
    let early = store.take_deliveries(&both, "suite-c", 60_000, 10).map_err(failed("take notices"))?;
    ensure(early.is_empty(), || format!("{} notices taken before their time", early.len()))
}

fn timers_are_listed_when_due(store: &dyn Store, _: Open<'_>) -> Outcome {
    let step = |run: &str, step: &str, due: Option<i64>| Waiting {
        run: run.to_owned(),
        flow: "suite".to_owned(),
        step: step.to_owned(),
        kind: "review".to_owned(),
        roles: vec!["clerk".to_owned()],
        due,
    };
    let runs: Vec<RunRecord> =
        (0..4).map(|n| record(&format!("r-suite-due-{n}"), Status::Pending, 1, "2026-12-03T00:02:00Z")).collect();
    // Run 0: two steps, the sooner at 300; 1: at 100; 2: at 900 (not due by 500); 3: none.
    append(store, &runs[0], 0, &[step(&runs[0].id, "a", Some(400)), step(&runs[0].id, "b", Some(300))], &[])
        .map_err(failed("append"))?;
    append(store, &runs[1], 0, &[step(&runs[1].id, "a", Some(100))], &[]).map_err(failed("append"))?;
    append(store, &runs[2], 0, &[step(&runs[2].id, "a", Some(900))], &[]).map_err(failed("append"))?;
    append(store, &runs[3], 0, &[step(&runs[3].id, "a", None)], &[]).map_err(failed("append"))?;
    let mine = |listed: Vec<(String, i64)>| -> Vec<(String, i64)> {
        listed.into_iter().filter(|(run, _)| run.starts_with("r-suite-due-")).collect()
    };
    let due = mine(store.due_runs(500, None, 100).map_err(failed("list the runs due"))?);
    let expected = vec![(runs[1].id.clone(), 100), (runs[0].id.clone(), 300)];
    ensure(due == expected, || format!("due by 500: {due:?}"))?;
    let page = store.due_runs(500, None, 1).map_err(failed("list the runs due"))?;
    let next = store.due_runs(500, page.last().map(|(run, at)| (*at, run.as_str())), 100).map_err(failed("list"))?;
    ensure(mine(next.clone()) == expected[1..], || format!("the page after {page:?}: {next:?}"))?;
    // Once the run's steps wait no more, it is not due.
    let done = record(&runs[1].id, Status::Completed, 2, "2026-12-03T00:02:00Z");
    append(store, &done, 1, &[], &[]).map_err(failed("append the end"))?;
    let due = mine(store.due_runs(500, None, 100).map_err(failed("list the runs due"))?);
    ensure(due == expected[1..], || format!("after the end: {due:?}"))
}

fn monitor_counts_and_alerts(store: &dyn Store, open: Open<'_>) -> Outcome {
    use super::{Alert, Notice, Tally};
    let tally = |series: &str, minute: i64, counted: i64, of: i64| Tally {
        flow: "suite".to_owned(),
        series: series.to_owned(),
        minute,
        counted,
        of,
    };
    // Commits add to their minute's counts, in their transaction: a conflicting commit
    // adds nothing; commits of one group add up.
    let first = record("r-suite-count-1", Status::Completed, 1, "2026-12-03T00:05:00Z");
    let second = record("r-suite-count-2", Status::Completed, 1, "2026-12-03T00:05:00Z");
    let (first_events, second_events) = (events(&first.id, 0, 1), events(&second.id, 0, 1));
    let tallies = [tally("degraded(score)", 100, 1, 2), tally("runs", 100, 1, 0)];
    let later = [tally("degraded(score)", 101, 0, 3)];
    let commit = |run, events, tallies| Commit {
        run,
        expected_seq: 0,
        events,
        waiting: &[],
        results: &[],
        key: None,
        lease: None,
        released: &[],
        notices: &[],
        tallies,
        check: None,
    };
    store.append(&commit(&first, &first_events, &tallies)).map_err(failed("append with counts"))?;
    let again = store.append(&commit(&first, &first_events, &tallies));
    ensure(matches!(again, Err(StoreError::Conflict(_))), || format!("appending the same commit again: {again:?}"))?;
    store
        .append_all(&[commit(&second, &second_events, &tallies), commit(&second, &second_events, &later)])
        .err()
        .ok_or("a group with two creations of one run was stored")?;
    store.append_all(&[commit(&second, &second_events, &later)]).map_err(failed("append a group"))?;
    // The tallies wait until they are folded into the counts; two handles folding at once
    // fold each once.
    let unfolded = store.monitor_window("suite", "runs", 0).map_err(failed("read the counts"))?;
    ensure(unfolded == (0, 0), || format!("counts before folding: {unfolded:?}"))?;
    let other = open().map_err(failed("open another handle"))?;
    let (mine, theirs) = std::thread::scope(|scope| {
        let theirs = scope.spawn(|| other.fold_monitor_pending());
        (store.fold_monitor_pending(), theirs.join())
    });
    let mine = mine.map_err(failed("fold"))?;
    let theirs = theirs.map_err(|_| "a handle panicked".to_owned())?.map_err(failed("fold"))?;
    ensure(mine + theirs == 2, || format!("two commits' tallies folded as {mine} and {theirs}"))?;
    let none = store.fold_monitor_pending().map_err(failed("fold again"))?;
    ensure(none == 0, || format!("{none} commits folded again"))?;
    let window = |series: &str, after: i64| store.monitor_window("suite", series, after);
    let counts = [window("degraded(score)", 99), window("degraded(score)", 100), window("runs", 0)];
    let counts: Vec<(i64, i64)> = counts.into_iter().collect::<Result<_>>().map_err(failed("read the counts"))?;
    ensure(counts == [(1, 5), (0, 3), (1, 0)], || format!("the windows read {counts:?}"))?;
    let none = window("degraded(other)", 0).map_err(failed("read the counts"))?;
    ensure(none == (0, 0), || format!("a series without counts reads {none:?}"))?;
    let totals = store.monitor_totals().map_err(failed("read the totals"))?;
    let totals: Vec<(String, i64, i64)> = totals.into_iter().map(|t| (t.series, t.counted, t.of)).collect();
    ensure(totals == [("degraded(score)".to_owned(), 1, 5), ("runs".to_owned(), 1, 0)], || {
        format!("totals {totals:?}")
    })?;
    // Old minutes folded into minute 0: the totals stay, later minutes too.
    store.fold_monitor_counts(100).map_err(failed("fold the counts"))?;
    store.fold_monitor_counts(100).map_err(failed("fold the counts again"))?;
    let folded = store.monitor_totals().map_err(failed("read the totals"))?;
    let folded: Vec<(String, i64, i64)> = folded.into_iter().map(|t| (t.series, t.counted, t.of)).collect();
    ensure(folded == totals, || format!("folding changed the totals: {folded:?}"))?;
    let counts = [window("degraded(score)", 100), window("degraded(score)", 0), window("degraded(score)", -1)];
    let counts: Vec<(i64, i64)> = counts.into_iter().collect::<Result<_>>().map_err(failed("read the counts"))?;
    ensure(counts == [(0, 3), (0, 3), (1, 5)], || format!("after folding, the windows read {counts:?}"))?;

    // One alert of a flow's monitor is open at a time, whoever raises it; its notices are
    // queued with it, and again when it is resolved.
    let alert = |id: &str| Alert {
        id: id.to_owned(),
        flow: "suite".to_owned(),
        monitor: "fallbacks".to_owned(),
        severity: "high".to_owned(),
        routes: vec!["platform".to_owned(), "risk".to_owned()],
        condition: "degraded(score) over 1h above 20%".to_owned(),
        raised: "2026-12-03T00:06:00Z".to_owned(),
        value: "33% (1 of 3)".to_owned(),
        resolved: None,
        cleared: None,
    };
    let notice = |id: &str| Notice {
        endpoint: "pager".to_owned(),
        id: id.to_owned(),
        kind: "alert.raised".to_owned(),
        data: json!({"alert": id}),
    };
    let other = open().map_err(failed("open another handle"))?;
    let (mine, theirs) = std::thread::scope(|scope| {
        let theirs =
            scope.spawn(|| other.raise_alert(&alert("suite/fallbacks/2"), &[notice("suite/fallbacks/2.raised")]));
        (store.raise_alert(&alert("suite/fallbacks/1"), &[notice("suite/fallbacks/1.raised")]), theirs.join())
    });
    let mine = mine.map_err(failed("raise an alert"))?;
    let theirs = theirs.map_err(|_| "a handle panicked".to_owned())?.map_err(failed("raise an alert"))?;
    ensure(mine != theirs, || format!("two handles raising at once: {mine} and {theirs}"))?;
    let open_alerts = store.alerts(true, 10).map_err(failed("read the alerts"))?;
    ensure(open_alerts.len() == 1, || format!("open: {open_alerts:?}"))?;
    let raised = open_alerts[0].clone();
    ensure(raised.routes == ["platform", "risk"] && raised.resolved.is_none(), || format!("read back {raised:?}"))?;
    let queued = store.deliveries(None).map_err(failed("read the notices"))?;
    let alert_notices: Vec<&str> =
        queued.iter().filter(|d| d.notice.kind == "alert.raised").map(|d| d.notice.id.as_str()).collect();
    ensure(alert_notices == [format!("{}.raised", raised.id)], || format!("alert notices {alert_notices:?}"))?;
    let resolved = store
        .resolve_alert(&raised.id, "2026-12-03T00:09:00Z", "0% (0 of 3)", &[notice(&format!("{}.resolved", raised.id))])
        .map_err(failed("resolve the alert"))?;
    let twice = store.resolve_alert(&raised.id, "2026-12-03T00:10:00Z", "0%", &[]).map_err(failed("resolve again"))?;
    ensure(resolved && !twice, || format!("resolved: {resolved}, then again: {twice}"))?;
    ensure(store.alerts(true, 10).map_err(failed("read the alerts"))?.is_empty(), || "still open".to_owned())?;
    let again = store.raise_alert(&alert("suite/fallbacks/3"), &[]).map_err(failed("raise again"))?;
    ensure(again, || "an alert cannot be raised again once resolved".to_owned())?;
    let all = store.alerts(false, 10).map_err(failed("read the alerts"))?;
    let listed: Vec<(&str, Option<&str>)> = all.iter().map(|a| (a.id.as_str(), a.cleared.as_deref())).collect();
    ensure(listed == [("suite/fallbacks/3", None), (raised.id.as_str(), Some("0% (0 of 3)"))], || {
        format!("alerts listed {listed:?}")
    })
}
