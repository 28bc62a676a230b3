//! Actors that run inside hosts: FTP servers.
//!
//! * [`reference`] — the reference server, in-process (scenarios), or as
//!   the `ftpnat-server` program ([`reference::Program`], the speed tool).
//! * Real servers, each a [`RealServer`]: [`vsftpd`], [`proftpd`],
//!   [`pureftpd`] and [`command`] (any program with a config template). A
//!   server file holds only what is its own — where the binary is, how the
//!   scenario's keys map to its configuration, and which keys it has no
//!   equivalent for ([`crate::error::SetupError::Unsupported`]); the start-up
//!   itself is [`daemon::launch`], one path for all.
//!
//! [`real_server`] maps a scenario's server kind to its implementation:
//! the one place that knows every kind. Adding a kind is a new file with a
//! [`RealServer`] and a line there.

pub mod command;
pub mod daemon;
pub mod proftpd;
pub mod pureftpd;
pub mod reference;
pub mod vsftpd;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
};

use ftpnat_server::config::RawConfig;

use crate::{error::SetupError, scenario::resolve::ServerKind, topology::Netns};

/// Where a real server starts: its host's namespace, the served tree and
/// the run's folder.
#[derive(Debug)]
pub struct Site<'a> {
    /// The host's namespace.
    pub ns: &'a Netns,
    /// The served tree (the scenario's files).
    pub root: &'a Path,
    /// The run's folder: configs, state, logs go here.
    pub dir: &'a Path,
    /// File-name-safe host name, the prefix of its files in `dir`.
    pub label: &'a str,
    /// The (empty) log file the server should write: what `check` reads.
    pub log: &'a Path,
}

impl Site<'_> {
    /// `dir/<label>-<name>`: a file or folder of this server.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{}-{name}", self.label))
    }

    /// Creates the folder [`Site::path`]`(name)`.
    pub fn folder(&self, name: &str) -> Result<PathBuf, SetupError> {
        let p = self.path(name);
        std::fs::create_dir_all(&p).map_err(SetupError::io(p.display()))?;
        Ok(p)
    }

    /// Writes `text` to [`Site::path`]`(name)`.
    pub fn write(&self, name: &str, text: &str) -> Result<PathBuf, SetupError> {
        let p = self.path(name);
        std::fs::write(&p, text).map_err(SetupError::io(p.display()))?;
        Ok(p)
    }
}

/// Where a packaged server's program is found: `$env_var`, then the
/// system path, then `target/peers/<peer>` (where `ci/test.sh` unpacks the
/// Debian package) in the current folder or any parent.
#[derive(Debug, Clone, Copy)]
pub struct Package {
    /// Its name (and the Debian package's).
    pub name: &'static str,
    /// Environment variable that overrides the path.
    pub env_var: &'static str,
    /// The installed path.
    pub system: &'static str,
    /// The path below `target/peers`.
    pub peer: &'static str,
}

/// An FTP server that runs as a child process in a host's namespace.
pub trait RealServer: std::fmt::Debug + Send + Sync {
    /// Its name (file names, log, messages).
    fn name(&self) -> &'static str;

    /// The program to run (`SetupError::Missing` when the machine lacks it).
    fn binary(&self) -> Result<PathBuf, SetupError>;

    /// Writes the server's configuration for `raw` under `site.dir` and
    /// returns its command line and control address; or the first setting
    /// it cannot honour.
    fn command(
        &self,
        bin: &Path,
        raw: &RawConfig,
        site: &Site,
    ) -> Result<(Command, SocketAddr), SetupError>;
}

/// The real server a scenario's server runs as: the user's `command`
/// when given, else the kind's own; `None` for the in-process reference
/// server.
pub fn real_server(
    kind: ServerKind,
    command: Option<&command::CommandSpec>,
) -> Option<Box<dyn RealServer>> {
    if let Some(c) = command {
        return Some(Box::new(c.clone()));
    }
    match kind {
        ServerKind::Reference => None,
        ServerKind::Vsftpd => Some(Box::new(vsftpd::Vsftpd)),
        ServerKind::Proftpd => Some(Box::new(proftpd::Proftpd)),
        ServerKind::PureFtpd => Some(Box::new(pureftpd::PureFtpd)),
    }
}
