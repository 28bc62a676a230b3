//! Cleanup that survives the runner: a run killed by SIGKILL, or aborted,
//! runs no destructor, and a CI runner that runs once never gets to the
//! sweep the next start does. So a run-like command starts a watchdog
//! first: this same program again, in its own process group (a kill of the
//! runner's group spares it), holding the read end of a pipe whose only
//! write end the runner keeps (close-on-exec, so the servers it starts do
//! not hold it). When the runner is gone for any reason the pipe reaches
//! end-of-file, and the watchdog waits for the runner's pid to die and then
//! [`sweep`](super::sweep())s: namespaces, processes inside them, temporary
//! folders and containers of dead runs.

use std::{
    io::Read,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// The environment variable that turns the program into a watchdog for the
/// pid it holds.
pub const ENV: &str = "FTPNAT_WATCHDOG_FOR";

/// Starts the watchdog for this process. Its pipe's write end is kept open
/// (leaked) for the life of the process.
pub fn spawn() -> std::io::Result<()> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .env(ENV, std::process::id().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()?;
    // Dropping a ChildStdin closes it: keep it for the life of the process.
    std::mem::forget(child.stdin.take());
    Ok(())
}

/// If this process was started as a watchdog, waits for its runner to die,
/// sweeps, and returns true (the caller exits); otherwise false at once.
pub fn run_if_asked() -> bool {
    let Some(pid) = std::env::var(ENV).ok().and_then(|v| v.parse::<i32>().ok()) else {
        return false;
    };
    let mut stdin = std::io::stdin();
    let mut buf = [0u8; 64];
    // Nothing is ever written: this returns at end-of-file (the runner
    // exited or was killed) or on an error.
    while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
    // The pipe closes while the process exits; its namespaces are swept
    // only once it is dead (a zombie counts as dead). Bounded.
    let t0 = Instant::now();
    while super::netns::pid_alive(pid) && t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    if super::netns::pid_alive(pid) {
        return true;
    }
    let _ = super::sweep();
    // The docker daemon finishes container creations a killed run had in
    // flight after its death: sweep again until two rounds find nothing
    // (bounded).
    if std::path::Path::new("/var/run/docker.sock").exists() {
        let mut quiet = 0;
        let t0 = Instant::now();
        while quiet < 2 && t0.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_secs(1));
            quiet = if super::docker::sweep().is_empty() {
                quiet + 1
            } else {
                0
            };
        }
    }
    true
}
