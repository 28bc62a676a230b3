//! Network namespaces: create, enter, spawn into, delete, sweep.
//!
//! Contract:
//! * A namespace is made by a short-lived thread that calls
//!   `unshare(CLONE_NEWNET)`; the calling thread's namespace never changes.
//! * As root, it is bind-mounted at `/run/netns/<name>` (so `ip netns exec`
//!   works while a run is paused) — names are `fn<pid>x<n>-<node>`, and the
//!   pid lets [`super::sweep()`] tell a dead run's leftovers from a live one's. Without
//!   root (inside a user namespace) it is anonymous: only our file descriptor
//!   keeps it alive, so it disappears with the process.
//! * [`Netns::run`] executes a closure on a thread that has `setns`'d into the
//!   namespace; sockets created there stay in that namespace wherever they
//!   are used afterwards. [`Netns::spawn`] enters it in the child before exec.
//! * Dropping a [`Netns`] kills the processes still inside it (by PID, found
//!   through `/proc/<pid>/ns/net`) and unmounts it.

use std::{
    fs::File,
    io,
    os::fd::{AsFd, AsRawFd, OwnedFd},
    os::unix::{fs::MetadataExt, process::CommandExt},
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

use nix::{
    mount::{mount, umount2, MntFlags, MsFlags},
    sched::{setns, unshare, CloneFlags},
};

use super::sweep::Swept;

/// Where named namespaces live (the `ip netns` convention).
pub const NETNS_DIR: &str = "/run/netns";

static NEXT_RUN: AtomicU32 = AtomicU32::new(0);

/// A fresh per-run prefix: `fn<pid>x<n>`.
pub fn new_prefix() -> String {
    format!(
        "fn{}x{}",
        std::process::id(),
        NEXT_RUN.fetch_add(1, Ordering::Relaxed)
    )
}

/// Whether we can create named namespaces (root in the initial user namespace).
pub fn can_name_namespaces() -> bool {
    nix::unistd::geteuid().is_root() && !crate::topology::rootless::in_private_userns()
}

/// One network namespace owned by this process.
#[derive(Debug)]
pub struct Netns {
    name: String,
    fd: OwnedFd,
    mounted: Option<PathBuf>,
    inode: u64,
}

impl Netns {
    /// Creates a namespace named `name` (mounted when running as root).
    pub fn create(name: &str) -> io::Result<Netns> {
        let named = can_name_namespaces();
        let path = Path::new(NETNS_DIR).join(name);
        if named {
            std::fs::create_dir_all(NETNS_DIR)?;
            if path.exists() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists", path.display()),
                ));
            }
            File::create(&path)?;
        }
        let mount_at = named.then(|| path.clone());
        let fd = std::thread::scope(|s| {
            s.spawn(|| -> io::Result<OwnedFd> {
                unshare(CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
                if let Some(p) = &mount_at {
                    mount(
                        Some("/proc/thread-self/ns/net"),
                        p,
                        None::<&str>,
                        MsFlags::MS_BIND,
                        None::<&str>,
                    )
                    .map_err(io::Error::from)?;
                }
                Ok(File::open("/proc/thread-self/ns/net")?.into())
            })
            .join()
            .map_err(|_| io::Error::other("namespace thread panicked"))?
        });
        let fd = match fd {
            Ok(fd) => fd,
            Err(e) => {
                if named {
                    let _ = std::fs::remove_file(&path);
                }
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot create network namespace {name}: {e}"),
                ));
            }
        };
        let inode = File::from(fd.try_clone()?).metadata()?.ino();
        let ns = Netns {
            name: name.to_string(),
            fd,
            mounted: mount_at,
            inode,
        };
        // Loopback up, so 127.0.0.1 works inside every host.
        ns.run(crate::topology::link::loopback_up)??;
        Ok(ns)
    }

    /// Adopts the network namespace of process `pid` (a container's main
    /// process), under `name`; nothing is mounted.
    pub fn adopt(name: &str, pid: i32) -> io::Result<Netns> {
        let file = File::open(format!("/proc/{pid}/ns/net")).map_err(|e| {
            io::Error::new(e.kind(), format!("network namespace of pid {pid}: {e}"))
        })?;
        let inode = file.metadata()?.ino();
        let ns = Netns {
            name: name.to_string(),
            fd: file.into(),
            mounted: None,
            inode,
        };
        ns.run(crate::topology::link::loopback_up)??;
        Ok(ns)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace's inode (identifies it in `/proc/<pid>/ns/net`).
    pub fn inode(&self) -> u64 {
        self.inode
    }

    /// A file descriptor referring to the namespace.
    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Runs `f` on a thread inside the namespace.
    pub fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> io::Result<R> {
        std::thread::scope(|s| {
            s.spawn(|| {
                setns(self.fd.as_fd(), CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
                Ok(f())
            })
            .join()
            .map_err(|_| io::Error::other("namespace thread panicked"))?
        })
    }

    /// Prepares `cmd` to run inside the namespace, in its own process group.
    pub fn command(&self, cmd: &mut Command) -> io::Result<()> {
        let fd = self.fd.try_clone()?;
        cmd.process_group(0);
        // SAFETY: setns is a plain system call, safe between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Ok(())
    }

    /// PIDs of processes whose network namespace is this one.
    pub fn pids(&self) -> Vec<i32> {
        pids_in_namespace(self.inode)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for pid in self.pids() {
            if pid as u32 != std::process::id() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        if let Some(p) = &self.mounted {
            let _ = umount2(p, MntFlags::MNT_DETACH);
            let _ = std::fs::remove_file(p);
        }
    }
}

/// PIDs (whole processes, not threads) whose network namespace has `inode`.
pub fn pids_in_namespace(inode: u64) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::metadata(format!("/proc/{pid}/ns/net"))
                .map(|m| m.ino() == inode)
                .unwrap_or(false)
        })
        .collect()
}

/// Name prefix of this process's temporary folders (`ftpnat-fn<pid>x-…`),
/// so a sweep can tell whose they are.
fn tempdir_prefix(pid: u32) -> String {
    format!("ftpnat-fn{pid}x-")
}

/// A temporary folder for this run (removed on drop; if the process is
/// killed, the next run's [`sweep`] removes it).
pub fn run_tempdir() -> io::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(&tempdir_prefix(std::process::id()))
        .tempdir()
}

/// Removes the named namespaces of dead runs (`fn<pid>x…` whose pid is gone),
/// killing any process still inside them; adds their names and the killed
/// PIDs to `swept`. Live runs are left alone.
pub(super) fn sweep_namespaces(swept: &mut Swept) -> io::Result<()> {
    let Ok(dir) = std::fs::read_dir(NETNS_DIR) else {
        return Ok(());
    };
    for entry in dir.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = owner_pid(&name) else {
            continue;
        };
        if pid_alive(pid) {
            continue;
        }
        let path = entry.path();
        if let Ok(m) = std::fs::metadata(&path) {
            // A mounted nsfs file has the namespace's inode; an unmounted one is a plain file.
            for p in pids_in_namespace(m.ino()) {
                if nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p),
                    nix::sys::signal::Signal::SIGKILL,
                )
                .is_ok()
                {
                    swept.processes.push(p);
                }
            }
        }
        let _ = umount2(&path, MntFlags::MNT_DETACH);
        match std::fs::remove_file(&path) {
            Ok(()) => swept.namespaces.push(name),
            // Another sweeper (a run's cleanup watchdog) got there first.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    swept.namespaces.sort();
    Ok(())
}

/// The pid in a name `fn<pid>x<n>-…`.
pub fn owner_pid(name: &str) -> Option<i32> {
    let rest = name.strip_prefix("fn")?;
    let end = rest.find('x')?;
    rest[..end].parse().ok()
}

/// Whether `pid` is a live (not zombie) process.
pub fn pid_alive(pid: i32) -> bool {
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => {
            // A zombie is dead for our purposes.
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| {
                    !s.rsplit(')')
                        .next()
                        .unwrap_or("")
                        .trim_start()
                        .starts_with('Z')
                })
                .unwrap_or(false)
        }
        Err(nix::errno::Errno::EPERM) => true,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_parses_prefix() {
        assert_eq!(owner_pid("fn1234x0-gw"), Some(1234));
        assert_eq!(owner_pid("fn1x22-server"), Some(1));
        assert_eq!(owner_pid("blue"), None);
        assert_eq!(owner_pid("fnabcx1-gw"), None);
    }

    #[test]
    fn prefixes_are_unique_in_a_process() {
        assert_ne!(new_prefix(), new_prefix());
    }
}
