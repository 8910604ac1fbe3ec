//! The one connection of a SQLite store, shared by the threads of a process: appends that
//! arrive together are committed together, and the write-ahead log is copied into the
//! database by a thread of its own rather than by whichever commit happens to fill it.
//!
//! **Group commit.** A thread that appends while another holds the connection announces
//! itself first. Whoever holds the connection runs its commits in a savepoint of the open
//! write transaction and then looks behind it: if someone is waiting to add theirs, it
//! leaves the transaction open and waits for its end; the last one with nobody behind it
//! extends the store's log once for everyone, commits, and tells the others how it went.
//! So a group is never held open for someone who is not already there, and no thread waits
//! on a timer. Every member's own conflicts stay its own (its savepoint is rolled back and
//! it alone is refused, once the group has ended: what refused it may have been a commit of
//! the group; the group's first member needs no savepoint, since rolling the group back undoes
//! it alone); a group that cannot commit is rolled back whole and every member is told so:
//! nothing is acknowledged that is not committed. Any other use of the connection commits
//! the open group first, so nothing reads what is not yet committed.
//!
//! **Checkpoints.** With SQLite's automatic checkpoints, one commit in a few dozen also
//! copied the log into the database and synchronised it, and every thread behind it waited
//! (a 10–30 ms tail). Here a thread of its own checkpoints, passively (never blocking
//! writers), every [`CHECKPOINT_EVERY`] commits and when the store falls idle, and restarts
//! the log once it has grown past [`RESTART_FRAMES`] if it can without waiting; SQLite's
//! own automatic checkpoint stays as a backstop at [`BACKSTOP_FRAMES`].

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::Connection;

use super::{Texts, log_append, unusable};
use crate::checkpoint::Entry;
use crate::store::{Commit, Result, Signer, StoreError};

/// The most members (appends, landed or refused) a group takes before it commits, whoever
/// waits behind it: a group holds the file's write lock.
const MOST_IN_A_GROUP: usize = 64;

/// Commits between two passive checkpoints.
const CHECKPOINT_EVERY: usize = 256;

/// The log's length, in frames (pages), past which the checkpoint thread restarts it — when
/// it can at once: it never waits for writers or readers.
const RESTART_FRAMES: i64 = 4096;

/// The log's length at which SQLite checkpoints on a commit, should the thread fall behind.
const BACKSTOP_FRAMES: i64 = 16384;

pub(super) struct Writer {
    // Dropped first: the last connection to close checkpoints and removes the log.
    checkpoints: Option<Checkpointer>,
    state: Mutex<State>,
    /// Signalled when a group ends.
    ended: Condvar,
    /// Threads that want to append and are waiting for the connection.
    arriving: AtomicUsize,
    /// Transactions that ended groups, and the appends they took.
    groups: AtomicU64,
    appends: AtomicU64,
}

struct State {
    conn: Connection,
    open: Option<Group>,
    next: u64,
    /// Set when a transaction could not be closed: nothing more is written through this
    /// connection (a write would join a transaction nobody commits).
    broken: bool,
    /// Ended groups whose members have not all read how they ended.
    outcomes: Vec<Outcome>,
}

/// The open write transaction and what its members added to it.
struct Group {
    id: u64,
    /// Commits in it.
    commits: usize,
    /// Appends that joined it, whether their commits landed or were refused.
    members: usize,
    /// Members waiting for its end.
    waiting: usize,
    /// The store's log entries of its commits, appended once when it commits.
    entries: Vec<Entry>,
    key: Option<OwnedSigner>,
}

struct Outcome {
    id: u64,
    error: Option<StoreError>,
    unread: usize,
}

/// A [`Signer`] the group keeps (members come and go; their borrows do not last).
struct OwnedSigner {
    key: ed25519_dalek::SigningKey,
    trusted: Vec<String>,
}

impl OwnedSigner {
    fn of(signer: Signer<'_>) -> OwnedSigner {
        OwnedSigner { key: signer.key.clone(), trusted: signer.trusted.to_vec() }
    }

    fn borrow(&self) -> Signer<'_> {
        Signer { key: &self.key, trusted: &self.trusted }
    }

    fn is(&self, other: Signer<'_>) -> bool {
        self.key.as_bytes() == other.key.as_bytes() && self.trusted == other.trusted
    }
}

/// The connection, for anything but an append, with no group open.
pub(super) struct Connected<'a>(MutexGuard<'a, State>);

impl std::ops::Deref for Connected<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.0.conn
    }
}

impl std::ops::DerefMut for Connected<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.0.conn
    }
}

impl Writer {
    /// `file`: the store's path and its `synchronous` setting, for the checkpoint thread
    /// (none for a store in memory, which has no log).
    pub(super) fn new(conn: Connection, file: Option<(&Path, &str)>) -> Writer {
        let checkpoints = file.and_then(|(path, sync)| Checkpointer::start(path, sync));
        if checkpoints.is_some() {
            // Should this fail, SQLite checkpoints as often as it did: slower, not wrong.
            let _ = conn.pragma_update(None, "wal_autocheckpoint", BACKSTOP_FRAMES);
        }
        Writer {
            checkpoints,
            state: Mutex::new(State { conn, open: None, next: 0, broken: false, outcomes: Vec::new() }),
            ended: Condvar::new(),
            arriving: AtomicUsize::new(0),
            groups: AtomicU64::new(0),
            appends: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while a group's statements run rolls the group back before it unwinds (see
        // `append` and `end`), so a poisoned lock guards no transaction left half done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The connection for anything but an append: the open group is committed first.
    pub(super) fn conn(&self) -> Result<Connected<'_>> {
        let mut state = self.lock();
        // Its members learn how it ended; this caller goes on either way.
        let _ = self.end(&mut state);
        broken(&state)?;
        Ok(Connected(state))
    }

    /// Appends `commits` atomically, in the group of whoever else is appending now; returns
    /// once they are committed (or failed).
    pub(super) fn append(&self, commits: &[Commit<'_>]) -> Result<()> {
        let key = commits.iter().find_map(|c| c.key);
        let texts: Vec<Texts> = commits.iter().map(Texts::of).collect();
        let mut state = {
            let _arriving = Arriving::new(&self.arriving);
            self.lock()
        };
        broken(&state)?;
        // A group signs its log entries with one key: one signed otherwise ends first. (The
        // commits of one runtime all come with its key.)
        let other_signer = state.open.as_ref().is_some_and(|g| match (&g.key, key) {
            (None, None) => false,
            (Some(held), Some(key)) => !held.is(key),
            _ => true,
        });
        if other_signer {
            let _ = self.end(&mut state);
        }
        if state.open.is_none() {
            state.conn.execute_batch("BEGIN IMMEDIATE").map_err(unusable("cannot write the run store"))?;
            let id = state.next;
            state.next += 1;
            state.open = Some(Group {
                id,
                commits: 0,
                members: 0,
                waiting: 0,
                entries: Vec::new(),
                key: key.map(OwnedSigner::of),
            });
        }
        // The group's first member needs no savepoint: should its commits fail, the group,
        // which holds nothing else, is rolled back. (A savepoint keeps a copy of every page
        // it changes, which a large group spills to a file.)
        let first = state.open.as_ref().is_some_and(|group| group.members == 0);
        let own = match std::panic::catch_unwind(AssertUnwindSafe(|| member(&state.conn, commits, &texts, first))) {
            Ok(Ok(own)) => own,
            Ok(Err(error)) => {
                self.abandon(&mut state, error.clone());
                return Err(error);
            }
            Err(panic) => {
                let error =
                    StoreError::Unusable("the run store's writer failed; nothing of this commit was kept".into());
                self.abandon(&mut state, error);
                std::panic::resume_unwind(panic)
            }
        };
        if first && let Err(error) = &own {
            let error = error.clone();
            self.abandon(&mut state, error.clone());
            return Err(error);
        }
        // Opened above; only `abandon` (returned from above) or `end` closes it.
        let Some(group) = state.open.as_mut() else {
            return Err(StoreError::Unusable("the run store's writer lost its transaction".into()));
        };
        group.members += 1;
        if let Ok(entries) = &own {
            group.commits += commits.len();
            group.entries.extend_from_slice(entries);
        }
        let someone_behind = self.arriving.load(Ordering::SeqCst) > 0 && group.members < MOST_IN_A_GROUP;
        // A refused append waits for the group too: what refused it may be a commit of the
        // group, and if the group fails, that commit never was — its error is the group's.
        let group_ended = if someone_behind {
            group.waiting += 1;
            let id = group.id;
            loop {
                state = self.ended.wait(state).unwrap_or_else(PoisonError::into_inner);
                if let Some(outcome) = take_outcome(&mut state, id) {
                    break outcome;
                }
            }
        } else {
            self.end(&mut state)
        };
        group_ended.and(own.map(drop))
    }

    /// The groups ended so far, and the appends they took.
    pub(super) fn groups(&self) -> (u64, u64) {
        (self.groups.load(Ordering::Relaxed), self.appends.load(Ordering::Relaxed))
    }

    /// Commits the open group (if any) and tells its members.
    fn end(&self, state: &mut State) -> Result<()> {
        let Some(group) = state.open.take() else { return Ok(()) };
        self.groups.fetch_add(1, Ordering::Relaxed);
        self.appends.fetch_add(group.members as u64, Ordering::Relaxed);
        let committed = std::panic::catch_unwind(AssertUnwindSafe(|| {
            if !group.entries.is_empty() {
                log_append(&state.conn, &group.entries, group.key.as_ref().map(OwnedSigner::borrow))?;
            }
            state.conn.execute_batch("COMMIT").map_err(unusable("cannot commit to the run store"))
        }));
        let result = match committed {
            Ok(result) => result,
            Err(panic) => {
                state.open = Some(group);
                let error =
                    StoreError::Unusable("the run store's writer failed; nothing of this commit was kept".into());
                self.abandon(state, error);
                std::panic::resume_unwind(panic)
            }
        };
        if result.is_err() {
            // A commit that failed may have left the transaction open.
            close(state);
        }
        self.told(state, &group, result.as_ref().err().cloned());
        if let (Some(checkpoints), Ok(())) = (&self.checkpoints, &result) {
            checkpoints.committed(group.commits);
        }
        result
    }

    /// Rolls the open group back, telling its members why.
    fn abandon(&self, state: &mut State, error: StoreError) {
        if let Some(group) = state.open.take() {
            close(state);
            self.told(state, &group, Some(error));
        }
    }

    fn told(&self, state: &mut State, group: &Group, error: Option<StoreError>) {
        if group.waiting > 0 {
            state.outcomes.push(Outcome { id: group.id, error, unread: group.waiting });
            self.ended.notify_all();
        }
    }
}

/// Rolls back whatever transaction is open; a connection that keeps one open is broken.
fn close(state: &mut State) {
    for _ in 0..2 {
        if state.conn.is_autocommit() {
            return;
        }
        let _ = state.conn.execute_batch("ROLLBACK");
    }
    state.broken = !state.conn.is_autocommit();
}

fn broken(state: &State) -> Result<()> {
    if state.broken {
        return Err(StoreError::Unusable(
            "the run store's connection kept a transaction it could not close: nothing more is written through \
             it; restart the process"
                .into(),
        ));
    }
    Ok(())
}

/// Counts a thread waiting for the connection to append, until it has it.
struct Arriving<'a>(&'a AtomicUsize);

impl<'a> Arriving<'a> {
    fn new(count: &'a AtomicUsize) -> Arriving<'a> {
        count.fetch_add(1, Ordering::SeqCst);
        Arriving(count)
    }
}

impl Drop for Arriving<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn take_outcome(state: &mut State, id: u64) -> Option<Result<()>> {
    let i = state.outcomes.iter().position(|o| o.id == id)?;
    let outcome = &mut state.outcomes[i];
    outcome.unread -= 1;
    let result = outcome.error.clone().map_or(Ok(()), Err);
    if outcome.unread == 0 {
        state.outcomes.swap_remove(i);
    }
    Some(result)
}

/// One member's commits in a savepoint of the open group: all kept, or none. Returns their
/// entries in the store's log, or why they were refused; `Err` when the group cannot go on
/// (its savepoint could not be closed: what it holds is no longer known). The group's
/// `first` member writes without a savepoint: when it is refused, the caller rolls back the
/// group, which holds nothing else.
fn member(conn: &Connection, commits: &[Commit<'_>], texts: &[Texts], first: bool) -> Result<Result<Vec<Entry>>> {
    if !first && let Err(error) = conn.execute_batch("SAVEPOINT member") {
        return Ok(Err(unusable("cannot write the run store")(error)));
    }
    let written = commits.iter().zip(texts).try_for_each(|(commit, texts)| super::append_in(conn, commit, texts));
    if !first {
        let closed = match &written {
            Ok(()) => conn.execute_batch("RELEASE member"),
            Err(_) => conn.execute_batch("ROLLBACK TO member; RELEASE member"),
        };
        closed.map_err(unusable("cannot write the run store"))?;
    }
    Ok(written.map(|()| commits.iter().filter_map(crate::store::commit_entry).collect()))
}

/// The thread that checkpoints a store file's write-ahead log.
struct Checkpointer {
    shared: Arc<(Mutex<Due>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
struct Due {
    commits: usize,
    stop: bool,
}

impl Checkpointer {
    /// None when a second connection cannot be opened: SQLite's automatic checkpoints then
    /// do the work, as often as SQLite does them by default.
    fn start(path: &Path, sync: &str) -> Option<Checkpointer> {
        let conn = Connection::open(path).ok()?;
        // Never waits: a checkpoint that cannot go on at once is tried at the next turn. (A
        // restart waiting for a long reader, such as a backup, would hold up every writer.)
        conn.busy_timeout(Duration::ZERO).ok()?;
        conn.pragma_update(None, "synchronous", sync).ok()?;
        let shared = Arc::new((Mutex::new(Due::default()), Condvar::new()));
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("flow-checkpoint".into())
            .spawn(move || checkpoint(&conn, &theirs))
            .ok()?;
        Some(Checkpointer { shared, thread: Some(thread) })
    }

    fn committed(&self, commits: usize) {
        let (due, wake) = &*self.shared;
        let mut due = due.lock().unwrap_or_else(PoisonError::into_inner);
        due.commits += commits;
        if due.commits >= CHECKPOINT_EVERY {
            wake.notify_one();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let (due, wake) = &*self.shared;
        due.lock().unwrap_or_else(PoisonError::into_inner).stop = true;
        wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The checkpoint thread: a passive checkpoint every [`CHECKPOINT_EVERY`] commits, or a
/// second after the last commit; a restart of the log once it is long. A checkpoint that
/// fails is tried again at the next turn (and SQLite's backstop bounds the log meanwhile).
fn checkpoint(conn: &Connection, shared: &(Mutex<Due>, Condvar)) {
    let (due, wake) = shared;
    loop {
        {
            let mut state = due.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                if state.stop {
                    return;
                }
                if state.commits >= CHECKPOINT_EVERY {
                    break;
                }
                let (next, waited) =
                    wake.wait_timeout(state, Duration::from_secs(1)).unwrap_or_else(PoisonError::into_inner);
                state = next;
                if waited.timed_out() && state.commits > 0 {
                    break;
                }
            }
            state.commits = 0;
        }
        let frames = |mode: &str| {
            conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| row.get::<_, i64>(1)).unwrap_or(0)
        };
        if frames("PASSIVE") >= RESTART_FRAMES {
            frames("RESTART");
        }
    }
}
