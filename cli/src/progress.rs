//! Progress of long commands (`run --batch`, `replay --all`, `stats`, `test` over many
//! files), shown on standard error while it is a terminal: one line, rewritten at most ten
//! times a second, cleared when the work is done. Nothing is shown when standard error is
//! not a terminal, so logs and pipes get only the results.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The progress line of one piece of work.
pub struct Progress {
    what: &'static str,
    /// When the line was last drawn, and whether it is on the screen; `None` when nothing
    /// is shown (standard error is not a terminal).
    line: Option<Mutex<(Option<Instant>, bool)>>,
}

impl Progress {
    /// Progress of `what` (`runs`, `cases`, `tests`), shown if standard error is a terminal.
    pub fn new(what: &'static str) -> Progress {
        let shown = std::io::stderr().is_terminal();
        Progress { what, line: shown.then(|| Mutex::new((None, false))) }
    }

    /// `done` of `total` are done.
    pub fn update(&self, done: usize, total: usize) {
        let percent = (done * 100).checked_div(total).unwrap_or(100);
        self.draw(done >= total, || format!("{done} of {total} {} ({percent}%)", self.what));
    }

    /// `done` are done, and `part` of `whole` of what they come from (a file's bytes) has
    /// been read: for work whose count is not known ahead.
    pub fn update_read(&self, done: usize, (part, whole): (u64, u64)) {
        // A pipe has no size, and a file may grow while it is read: then only the count.
        match (part.saturating_mul(100)).checked_div(whole).filter(|percent| *percent <= 100) {
            Some(percent) => self.draw(false, || format!("{done} {} ({percent}% of the file read)", self.what)),
            None => self.draw(false, || format!("{done} {}", self.what)),
        }
    }

    /// Rewrites the line with `text`, unless it was drawn less than a tenth of a second ago
    /// and the work is not `finished`.
    fn draw(&self, finished: bool, text: impl FnOnce() -> String) {
        let Some(line) = &self.line else { return };
        let mut line = line.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let due = line.0.is_none_or(|last| last.elapsed() >= Duration::from_millis(100));
        if !due && !finished {
            return;
        }
        // `\r` and erase-line: the line is rewritten in place.
        eprint!("\r\x1b[2K{}", text());
        let _ = std::io::stderr().flush();
        *line = (Some(Instant::now()), true);
    }

    /// Clears the line, so that what is printed next starts on a clean one.
    pub fn finish(&self) {
        let Some(line) = &self.line else { return };
        let mut line = line.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if line.1 {
            eprint!("\r\x1b[2K");
            let _ = std::io::stderr().flush();
            line.1 = false;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Shows how far `runtime`'s operations over many stored runs are, as `runs`.
pub fn of_runtime(runtime: &mut flow_runtime::Runtime) -> Arc<Progress> {
    let progress = Arc::new(Progress::new("runs"));
    let shown = Arc::clone(&progress);
    runtime.set_progress(Arc::new(move |done, total| shown.update(done, total)));
    progress
}
