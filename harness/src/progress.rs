//! Progress of long commands (`load`, `speed`, `matrix`, `diff`, `image
//! build`, `validate-ruleset`): a bar with what is being done, on standard
//! error when it is a terminal, and nothing at all on a pipe or in CI
//! (`CI` set) so logs stay clean.
//!
//! One bar per process: a command [`start`]s it; the tools it calls report
//! into it with [`message`] and [`inc`] (no-ops when no bar is shown), so a
//! tool needs no handle threaded through its arguments.

use std::{
    io::IsTerminal,
    sync::{Mutex, MutexGuard},
};

use indicatif::{ProgressBar, ProgressStyle};

static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

fn bar() -> MutexGuard<'static, Option<ProgressBar>> {
    BAR.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether progress is drawn: standard error is a terminal and `CI` is not set.
pub fn shown() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("CI").is_none()
}

/// Starts the bar: `len` units of work (0: a spinner without a total),
/// labelled `what`. Ends the previous one.
pub fn start(len: u64, what: &str) {
    finish();
    if !shown() {
        return;
    }
    let b = if len == 0 {
        let b = ProgressBar::new_spinner();
        b.set_style(
            ProgressStyle::with_template("{spinner} {prefix} [{elapsed}] {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        b.enable_steady_tick(std::time::Duration::from_millis(120));
        b
    } else {
        let b = ProgressBar::new(len);
        b.set_style(
            ProgressStyle::with_template(
                "{prefix} {bar:30} {pos}/{len} [{elapsed}, ~{eta} left] {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    };
    b.set_prefix(what.to_string());
    *bar() = Some(b);
}

/// What is being done now (shown after the bar).
pub fn message(msg: impl Into<String>) {
    if let Some(b) = bar().as_ref() {
        b.set_message(msg.into());
    }
}

/// `n` more units done.
pub fn inc(n: u64) {
    if let Some(b) = bar().as_ref() {
        b.inc(n);
    }
}

/// Adds `n` units to the total (work discovered on the way).
pub fn grow(n: u64) {
    if let Some(b) = bar().as_ref() {
        b.inc_length(n);
    }
}

/// Prints `line` on standard error above the bar (or plainly without one).
pub fn println(line: impl AsRef<str>) {
    match bar().as_ref() {
        Some(b) => b.println(line.as_ref()),
        None => eprintln!("{}", line.as_ref()),
    }
}

/// Removes the bar.
pub fn finish() {
    if let Some(b) = bar().take() {
        b.finish_and_clear();
    }
}

/// Ends the bar when dropped: `let _bar = progress::Guard::start(…)`.
#[derive(Debug)]
pub struct Guard(());

impl Guard {
    /// [`start`]s a bar that ends with the guard.
    pub fn start(len: u64, what: &str) -> Guard {
        start(len, what);
        Guard(())
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_terminal_nothing_is_drawn_and_reports_are_no_ops() {
        // cargo test captures stderr: not a terminal.
        assert!(!shown());
        let _g = Guard::start(3, "test");
        assert!(bar().is_none());
        message("x");
        inc(1);
        grow(1);
    }
}
