//! Child processes inside a namespace: output captured to files, the whole
//! process group killed and reaped when the handle drops.

use std::{
    fs::File,
    io,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use nix::{sys::signal::Signal, unistd::Pid};

/// A running child (its own process group).
#[derive(Debug)]
pub struct NsProcess {
    child: Child,
    /// Captured standard output.
    pub stdout_path: PathBuf,
    /// Captured standard error.
    pub stderr_path: PathBuf,
}

impl NsProcess {
    /// Spawns `cmd` (already prepared with [`super::Netns::command`]) with its
    /// output going to `<dir>/<label>.stdout` / `.stderr`.
    pub fn spawn(mut cmd: Command, dir: &Path, label: &str) -> io::Result<NsProcess> {
        let stdout_path = dir.join(format!("{label}.stdout"));
        let stderr_path = dir.join(format!("{label}.stderr"));
        cmd.stdin(Stdio::null())
            .stdout(File::create(&stdout_path)?)
            .stderr(File::create(&stderr_path)?);
        let child = cmd.spawn()?;
        Ok(NsProcess {
            child,
            stdout_path,
            stderr_path,
        })
    }

    /// The child's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it has exited (reaping it if so).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends a signal to the process group.
    pub fn signal(&self, sig: Signal) {
        let _ = nix::sys::signal::killpg(Pid::from_raw(self.child.id() as i32), sig);
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL; always reaps.
    pub fn stop(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        if let Some(s) = self.exited() {
            self.signal(Signal::SIGKILL); // stragglers in the group
            return Some(s);
        }
        self.signal(Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(s) = self.exited() {
                self.signal(Signal::SIGKILL);
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.signal(Signal::SIGKILL);
        self.child.wait().ok()
    }

    /// The captured standard error so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

impl Drop for NsProcess {
    fn drop(&mut self) {
        self.signal(Signal::SIGKILL);
        let _ = self.child.wait();
    }
}
