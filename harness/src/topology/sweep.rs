//! Removing what dead runs left behind: their temporary folders, Docker
//! containers and named namespaces (with any process still inside). Every
//! name carries the owning run's PID (`fn<pid>x<n>…`, `ftpnat-fn<pid>x-…`),
//! so a sweep removes only leftovers of processes that are gone; live runs
//! side by side are never touched.

use std::{io, path::Path};

use super::{
    docker,
    netns::{self, owner_pid, pid_alive},
};

/// What a sweep removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Swept {
    /// Namespaces unmounted and deleted.
    pub namespaces: Vec<String>,
    /// Processes killed (PID).
    pub processes: Vec<i32>,
    /// Temporary folders of dead runs removed (see [`netns::run_tempdir`]).
    pub tempdirs: Vec<std::path::PathBuf>,
    /// Containers of dead runs removed (docker substrate).
    pub containers: Vec<String>,
}

/// Removes temporary folders of dead runs.
fn sweep_tempdirs(swept: &mut Swept) {
    let Ok(dir) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in dir.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("ftpnat-").and_then(owner_pid) else {
            continue;
        };
        if pid_alive(pid) {
            continue;
        }
        if std::fs::remove_dir_all(entry.path()).is_ok() {
            swept.tempdirs.push(entry.path());
        }
    }
}

/// Removes every leftover of dead runs: temporary folders, containers (when
/// a Docker engine is there) and namespaces with the processes inside them.
pub fn sweep() -> io::Result<Swept> {
    let mut swept = Swept::default();
    sweep_tempdirs(&mut swept);
    if Path::new("/var/run/docker.sock").exists() {
        swept.containers = docker::sweep();
    }
    netns::sweep_namespaces(&mut swept)?;
    Ok(swept)
}
