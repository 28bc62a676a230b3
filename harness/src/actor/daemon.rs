//! The one launch path of every real FTP server ([`launch`]): find the
//! binary (system path, or the Debian package `ftpnat peers install`
//! unpacked), give the anonymous account the upload folders, let the
//! server kind write its config, start it inside the host's namespace as a
//! child process, wait until its control port answers 220; then its log,
//! and stopping it by PID ([`Daemon`]). Also the key checks the kinds
//! share (listen address, masquerade address, reference-only keys).

use std::{
    io::{BufRead, BufReader},
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use ftpnat_server::config::RawConfig;

use super::{Package, RealServer, Site};
use crate::{
    error::SetupError,
    topology::{Netns, NsProcess},
};

/// Locates a packaged server's binary: `$env_var`, then the system path,
/// then the peers folders ([`crate::peers::search_dirs`]: the per-user
/// folder `ftpnat peers install` fills, and `target/peers` of older
/// checkouts).
pub fn binary(pkg: &Package) -> Result<PathBuf, SetupError> {
    let Package {
        name,
        env_var,
        system,
        peer,
    } = *pkg;
    if let Ok(p) = std::env::var(env_var) {
        return Ok(PathBuf::from(p));
    }
    Some(PathBuf::from(system))
        .filter(|p| p.exists())
        .or_else(|| crate::peers::find(peer))
        .ok_or_else(|| SetupError::Missing {
            tool: name.into(),
            install: format!(
                "ftpnat peers install {name} (unpacks Debian's {name} into {}), or set {env_var}",
                crate::peers::dir().display()
            ),
        })
}

/// The single listen address of `raw` (default `0.0.0.0:21`), or the error
/// saying `name` cannot listen on several.
pub fn listen_addr(raw: &RawConfig, name: &str) -> Result<SocketAddr, SetupError> {
    let listen = raw
        .listen
        .clone()
        .unwrap_or_else(|| vec!["0.0.0.0:21".into()]);
    if listen.len() != 1 {
        return Err(SetupError::unsupported(
            name,
            "more than one listen address",
        ));
    }
    listen[0]
        .parse()
        .map_err(|_| SetupError::Failed(format!("listen {:?} is not an address", listen[0])))
}

/// The masquerade address as an IP literal (`None` when unset or "none"), or
/// the error saying `name` would resolve a name with the system resolver
/// (a real DNS query, which a scenario must never make).
pub fn masquerade_ip(raw: &RawConfig, name: &str) -> Result<Option<IpAddr>, SetupError> {
    match raw.masquerade_address.as_deref() {
        None | Some("none") => Ok(None),
        Some(m) => m.parse().map(Some).map_err(|_| {
            SetupError::unsupported(
                name,
                "masquerade_address as a DNS name (it resolves with the system resolver)",
            )
        }),
    }
}

/// Keys no real server kind takes from a scenario (they are the reference
/// server's own extensions); the first one set is named in the error.
pub fn reject_reference_only(raw: &RawConfig, name: &str) -> Result<(), SetupError> {
    let unsupported = |k: &str| Err(SetupError::unsupported(name, k));
    if !raw.class.is_empty() {
        return unsupported("[[class]] (per-client masquerade)");
    }
    if !raw.vhost.is_empty() {
        return unsupported("[[vhost]]");
    }
    if raw.port_private_address.is_some() {
        return unsupported("port_private_address");
    }
    if !raw.user.is_empty() {
        return unsupported("[[user]]");
    }
    if raw.anonymous == Some(false)
        || raw.login_failure_delay_ms.is_some()
        || raw.limits.max_login_failures.is_some()
    {
        return unsupported("login policy (anonymous = false, login failure delay/limit)");
    }
    Ok(())
}

/// With `anonymous_upload = true`, gives every folder below `root` (not
/// `root` itself: vsftpd refuses a writable anonymous root) to uid/gid 1,
/// the anonymous account of the real servers, so uploads into them work.
pub fn prepare_uploads(raw: &RawConfig, root: &Path) -> Result<(), SetupError> {
    fn give(dir: &Path) -> std::io::Result<()> {
        for e in std::fs::read_dir(dir)? {
            let p = e?.path();
            if p.is_dir() && !p.is_symlink() {
                std::os::unix::fs::chown(&p, Some(1), Some(1))?;
                give(&p)?;
            }
        }
        Ok(())
    }
    if raw.anonymous_upload != Some(true) {
        return Ok(());
    }
    give(root).map_err(SetupError::io(root.display()))
}

/// Starts `server` for `raw` in `ns`: its binary, an empty log at
/// `dir/<label>-server.log`, upload folders, its config and command line,
/// then the child process; returns once the control port answers 220
/// (within 5 s). The one start-up path of every real server kind.
pub fn launch(
    server: &dyn RealServer,
    ns: Arc<Netns>,
    raw: &RawConfig,
    root: &Path,
    dir: &Path,
    label: &str,
) -> Result<Daemon, SetupError> {
    let bin = server.binary()?;
    let log = dir.join(format!("{label}-server.log"));
    std::fs::write(&log, "").map_err(SetupError::io(log.display()))?;
    prepare_uploads(raw, root)?;
    let site = Site {
        ns: &ns,
        root,
        dir,
        label,
        log: &log,
    };
    let (cmd, addr) = server.command(&bin, raw, &site)?;
    Daemon::start(ns, cmd, addr, dir, label, server.name(), log)
}

/// A real FTP server running as a child process in a host's namespace.
#[derive(Debug)]
pub struct Daemon {
    proc: NsProcess,
    name: &'static str,
    /// The log `check = "<host>"` reads.
    pub log_path: PathBuf,
}

impl Daemon {
    /// Spawns `cmd` in `ns` (stdout/stderr go to `dir/<label>-<name>.std*`)
    /// and returns once `addr`'s control port answers 220, within 5 s.
    pub fn start(
        ns: Arc<Netns>,
        mut cmd: Command,
        addr: SocketAddr,
        dir: &Path,
        label: &str,
        name: &'static str,
        log_path: PathBuf,
    ) -> Result<Daemon, SetupError> {
        ns.command(&mut cmd)
            .map_err(SetupError::io(format!("entering {}", ns.name())))?;
        let program = cmd.get_program().to_string_lossy().into_owned();
        let proc = NsProcess::spawn(cmd, dir, &format!("{label}-{name}"))
            .map_err(SetupError::io(&program))?;
        let probe = if addr.ip().is_unspecified() {
            let lo: IpAddr = if addr.is_ipv6() {
                std::net::Ipv6Addr::LOCALHOST.into()
            } else {
                std::net::Ipv4Addr::LOCALHOST.into()
            };
            SocketAddr::new(lo, addr.port())
        } else {
            addr
        };
        let mut d = Daemon {
            proc,
            name,
            log_path,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let ready = ns
                .run(|| -> std::io::Result<bool> {
                    let s =
                        std::net::TcpStream::connect_timeout(&probe, Duration::from_millis(200))?;
                    s.set_read_timeout(Some(Duration::from_secs(2)))?;
                    let mut line = String::new();
                    BufReader::new(s).read_line(&mut line)?;
                    Ok(line.starts_with("220"))
                })
                .map_err(SetupError::io(format!("probing {probe}")))?;
            if matches!(ready, Ok(true)) {
                return Ok(d);
            }
            if let Some(st) = d.proc.exited() {
                return Err(SetupError::Failed(format!(
                    "{name} exited ({st}): {}",
                    d.proc.stderr().trim()
                )));
            }
            if Instant::now() >= deadline {
                return Err(SetupError::Failed(format!(
                    "{name} did not answer 220 on {probe} within 5 s: {}",
                    d.proc.stderr().trim()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The log so far (plus anything the server wrote to stderr).
    pub fn log(&self) -> String {
        let mut log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let err = self.proc.stderr();
        if !err.trim().is_empty() {
            log.push_str(&err);
        }
        log
    }

    /// Which server this is.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The child's PID.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Stops (SIGTERM, then SIGKILL after 2 s) and reaps it.
    pub fn stop(&mut self) {
        self.proc.stop(Duration::from_secs(2));
    }
}
