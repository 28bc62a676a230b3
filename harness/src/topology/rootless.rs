//! Running without root: enter a fresh user + network namespace in which we
//! are uid 0, so namespaces, veths and sysctls work for an unprivileged user.
//!
//! Must run while the process is single-threaded (before any runtime
//! starts): the kernel refuses `unshare(CLONE_NEWUSER)` in a threaded process.

use std::{
    io,
    sync::atomic::{AtomicBool, Ordering},
};

use nix::sched::{unshare, CloneFlags};

static ENTERED: AtomicBool = AtomicBool::new(false);

/// True once [`enter`] has moved this process into its own user namespace.
pub fn in_private_userns() -> bool {
    ENTERED.load(Ordering::Relaxed)
}

/// If not root, enters a private user+network namespace mapped to uid/gid 0.
/// Returns whether it did. Fails with advice if the kernel forbids it.
pub fn enter_if_unprivileged() -> io::Result<bool> {
    let uid = nix::unistd::geteuid();
    if uid.is_root() {
        return Ok(false);
    }
    let gid = nix::unistd::getegid();
    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET).map_err(|e| {
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "cannot create a user namespace as uid {uid} ({e}); run as root, or allow unprivileged user namespaces \
                 (sysctl kernel.unprivileged_userns_clone=1 / user.max_user_namespaces > 0)"
            ),
        )
    })?;
    std::fs::write("/proc/self/setgroups", "deny")?;
    std::fs::write("/proc/self/uid_map", format!("0 {uid} 1"))?;
    std::fs::write("/proc/self/gid_map", format!("0 {gid} 1"))?;
    ENTERED.store(true, Ordering::Relaxed);
    Ok(true)
}
