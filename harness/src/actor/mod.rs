//! Actors that run inside hosts: the in-process reference server, and real
//! FTP servers (vsftpd, ProFTPD, Pure-FTPd, a user's `command`) as child
//! processes.
//!
//! [`start_process`] is the one place a server kind maps onto the actor
//! that starts it as a process; the runner and the tools call it.

use std::{path::Path, sync::Arc};

use ftpnat_server::config::RawConfig;

use crate::{scenario::resolve::ServerKind, topology::Netns};

pub mod command;
pub mod daemon;
pub mod proftpd;
pub mod pureftpd;
pub mod reference;
pub mod vsftpd;

/// Starts a real server (or the user's `command`, which takes precedence
/// over `kind`) in `ns`, serving `root`, with its files under `dir` named
/// after `label`. `None` for the reference server, which the caller runs
/// its own way (in-process for scenarios, the binary for `speed`).
pub fn start_process(
    kind: ServerKind,
    command: Option<&command::CommandSpec>,
    ns: Arc<Netns>,
    raw: &RawConfig,
    root: &Path,
    dir: &Path,
    label: &str,
) -> Option<Result<daemon::Daemon, String>> {
    Some(match (command, kind) {
        (Some(cmd), _) => command::start(cmd, ns, raw, root, dir, label),
        (None, ServerKind::Reference) => return None,
        (None, ServerKind::Vsftpd) => vsftpd::start(ns, raw, root, dir, label),
        (None, ServerKind::Proftpd) => proftpd::start(ns, raw, root, dir, label),
        (None, ServerKind::PureFtpd) => pureftpd::start(ns, raw, root, dir, label),
    })
}
