//! Dropping root after the listeners are bound — what the `ftpnat-server`
//! binary does between [`Server::bind`](crate::server::Server::bind) and
//! [`Server::run`](crate::server::Server::run).
//!
//! Started as root (to bind port 21), the process switches to `run_as`, or,
//! without it, to the owner of the served `root` when that is not root:
//! supplementary groups cleared, then the account's group, then its user —
//! real, effective and saved ids, so root cannot be regained (checked).
//! With no unprivileged account to switch to, it refuses to serve unless
//! `allow_root = true`. Not started as root, nothing changes (a `run_as`
//! naming another account is an error: only root can switch).
//!
//! A process that embeds the server (the harness runs it in-process inside
//! its network namespaces) keeps its own privileges: it does not call this.

use std::{os::unix::fs::MetadataExt, path::PathBuf};

use nix::unistd::{getuid, setgid, setgroups, setuid, Gid, Uid, User};

use crate::config::Config;

/// What [`drop_after_bind`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Privileges {
    /// Not started as root: unchanged.
    Unprivileged,
    /// Switched to this account.
    Dropped {
        /// Account name (or the uid, when it has none).
        user: String,
        /// Its uid.
        uid: u32,
        /// Its gid.
        gid: u32,
    },
    /// Still root, because `allow_root = true`.
    Root,
}

/// Why privileges could not be dropped.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// Root with nobody to become, and `allow_root` is false.
    #[error("started as root and `root` ({}) is owned by root: set run_as = \"ftp\" (an unprivileged account that can read it), chown it to that account, or set allow_root = true to serve as root", root.display())]
    RootRefused {
        /// The served tree.
        root: PathBuf,
    },
    /// `run_as` names another account, but the process is not root.
    #[error("run_as = {user:?} needs the server to start as root (it runs as uid {uid})")]
    NotRoot {
        /// `run_as`.
        user: String,
        /// The current uid.
        uid: u32,
    },
    /// The account does not exist (any more).
    #[error("run_as: no account named {0:?}")]
    NoAccount(String),
    /// A set*id call failed.
    #[error("cannot switch to {user}: {source}")]
    Switch {
        /// The account.
        user: String,
        /// The failed call's error.
        source: nix::Error,
    },
    /// Root could be regained after the switch.
    #[error("still able to become root after switching to {0}")]
    StillRoot(String),
    /// The account cannot read the served tree.
    #[error("{user} cannot read `root` ({}): {source}", root.display())]
    CannotRead {
        /// The account.
        user: String,
        /// The served tree.
        root: PathBuf,
        /// The error reading it.
        source: std::io::Error,
    },
}

/// Drops root per `run_as` / the owner of `root` / `allow_root` (see the
/// module docs). Call once, after binding, before serving.
pub fn drop_after_bind(cfg: &Config) -> Result<Privileges, PrivilegeError> {
    let uid = getuid();
    if !uid.is_root() {
        if let Some(name) = &cfg.run_as {
            let me = User::from_uid(uid).ok().flatten().map(|u| u.name);
            if me.as_deref() != Some(name.as_str()) {
                return Err(PrivilegeError::NotRoot {
                    user: name.clone(),
                    uid: uid.as_raw(),
                });
            }
        }
        return Ok(Privileges::Unprivileged);
    }
    let target = match &cfg.run_as {
        Some(name) => {
            let u = User::from_name(name)
                .ok()
                .flatten()
                .ok_or_else(|| PrivilegeError::NoAccount(name.clone()))?;
            Some((u.name, u.uid, u.gid))
        }
        None => std::fs::metadata(&cfg.root)
            .ok()
            .filter(|m| m.uid() != 0)
            .map(|m| {
                let uid = Uid::from_raw(m.uid());
                match User::from_uid(uid).ok().flatten() {
                    Some(u) => (u.name, u.uid, u.gid),
                    None => (m.uid().to_string(), uid, Gid::from_raw(m.gid())),
                }
            }),
    };
    let Some((user, uid, gid)) = target.filter(|(_, uid, _)| !uid.is_root()) else {
        return if cfg.allow_root {
            Ok(Privileges::Root)
        } else {
            Err(PrivilegeError::RootRefused {
                root: cfg.root.clone(),
            })
        };
    };
    let switch = |source| PrivilegeError::Switch {
        user: user.clone(),
        source,
    };
    setgroups(&[gid]).map_err(switch)?;
    setgid(gid).map_err(switch)?;
    setuid(uid).map_err(switch)?;
    if setuid(Uid::from_raw(0)).is_ok() || getuid().is_root() {
        return Err(PrivilegeError::StillRoot(user));
    }
    std::fs::read_dir(&cfg.root).map_err(|source| PrivilegeError::CannotRead {
        user: user.clone(),
        root: cfg.root.clone(),
        source,
    })?;
    Ok(Privileges::Dropped {
        user,
        uid: uid.as_raw(),
        gid: gid.as_raw(),
    })
}
