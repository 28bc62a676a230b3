//! Pure-FTPd as a scenario server (`server = { kind = "pure-ftpd", … }`).
//!
//! Pure-FTPd takes its settings on the command line: `-S ip,port`, `-p
//! lo:hi` for `passive_ports`, `-P ip` (force passive IP) for
//! `masquerade_address`, `-W` (anonymous FXP) for `allow_foreign_address =
//! true`, `-c`/`-C` for the client limits (50 each unless set: Pure-FTPd's
//! defaults are far lower), `-I` (minutes) for the idle timeout. It serves
//! anonymous users only (`-e`), read-only (`-i`) unless `anonymous_upload =
//! true`.
//! Anything else is an error saying it is "not supported by pure-ftpd".
//!
//! Anonymous FTP in Pure-FTPd needs a system account named `ftp` whose home
//! is the served tree. The harness never edits the machine's account files:
//! the server runs in its own mount namespace where a copy of `/etc/passwd`
//! with that one extra line is bind-mounted over the original.
//!
//! It logs to syslog only; the scenario's server log is its transfer log
//! (`-O clf:`) plus whatever it prints.
//!
//! The binary is `$FTPNAT_PUREFTPD`, `/usr/sbin/pure-ftpd`, or
//! `target/peers/pure-ftpd/usr/sbin/pure-ftpd` (unpacked by `ci/test.sh`).

use std::{
    net::SocketAddr,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::Command,
};

use ftpnat_server::config::{ExhaustedPolicy, ForeignAddress, RawConfig};

use super::{daemon, Package, RealServer, Site};
use crate::error::SetupError;

/// Pure-FTPd.
#[derive(Debug, Clone, Copy)]
pub struct PureFtpd;

const NAME: &str = "pure-ftpd";

const PACKAGE: Package = Package {
    name: NAME,
    env_var: "FTPNAT_PUREFTPD",
    system: "/usr/sbin/pure-ftpd",
    peer: "pure-ftpd/usr/sbin/pure-ftpd",
};

/// The command-line arguments for `raw`, or the first key Pure-FTPd cannot
/// honour.
pub fn args(raw: &RawConfig, xferlog: &Path) -> Result<(Vec<String>, SocketAddr), SetupError> {
    let unsupported = |k: &str| Err(SetupError::unsupported(NAME, k));
    match raw.passive_exhausted {
        None | Some(ExhaustedPolicy::Refuse) => {}
        Some(_) => {
            return unsupported(
                "passive_exhausted other than \"refuse\" (Pure-FTPd answers 425 when the range is full)",
            )
        }
    }
    if raw.passive_wait_ms.is_some() {
        return unsupported("passive_wait_ms");
    }
    if raw.timeouts.data_connect.is_some()
        || raw.timeouts.login.is_some()
        || raw.timeouts.no_transfer.is_some()
    {
        return unsupported("timeouts other than idle");
    }
    if raw.server_name.is_some() {
        return unsupported("server_name (the banner is fixed)");
    }
    if !raw.limits.deny.is_empty() {
        return unsupported("limits.deny");
    }
    daemon::reject_reference_only(raw, NAME)?;
    if raw.tls_session_reuse == Some(true) {
        return unsupported("tls_session_reuse (it never requires it)");
    }
    if matches!(raw.allow_foreign_address, Some(ForeignAddress::Cidrs(_))) {
        return unsupported("allow_foreign_address as a list of networks");
    }
    let addr = daemon::listen_addr(raw, NAME)?;
    let mut a = vec![
        "-S".to_string(),
        if addr.ip().is_unspecified() {
            format!(",{}", addr.port())
        } else {
            format!("{},{}", addr.ip(), addr.port())
        },
        "-e".into(),
        "-H".into(),
        "-f".into(),
        "none".into(),
        "-O".into(),
        format!("clf:{}", xferlog.display()),
    ];
    a.push(if addr.is_ipv6() { "-6" } else { "-4" }.into());
    match (&raw.tls_cert, &raw.tls_key) {
        (Some(cert), Some(key)) => {
            use ftpnat_server::config::TlsRequired;
            a.push("-2".into());
            a.push(format!("{},{}", cert.display(), key.display()));
            a.push("-Y".into());
            a.push(
                match raw.tls_required.unwrap_or_default() {
                    TlsRequired::Off => "1",
                    TlsRequired::Control => "2",
                    TlsRequired::All => "3",
                }
                .into(),
            );
        }
        (None, None) if raw.tls_required.is_none() => {}
        _ => return unsupported("tls_required without tls"),
    }
    if raw.anonymous_upload != Some(true) {
        a.push("-i".into());
    }
    if let Some([lo, hi]) = raw.passive_ports {
        a.push("-p".into());
        a.push(format!("{lo}:{hi}"));
    }
    if let Some(m) = daemon::masquerade_ip(raw, NAME)? {
        a.push("-P".into());
        a.push(m.to_string());
    }
    // Without -W (its default) Pure-FTPd refuses a foreign PORT address
    // and silently drops a passive connection from a foreign address (the
    // real client keeps waiting); there is no switch to make it refuse.
    if matches!(raw.allow_foreign_address, Some(ForeignAddress::All(true))) {
        a.push("-W".into());
    }
    // Pure-FTPd's own defaults (5 clients, and fewer per address for
    // anonymous users) would turn every multi-session scenario into a
    // client-limit test: unless the scenario sets limits, allow 50.
    a.push("-c".into());
    a.push(raw.limits.max_clients.unwrap_or(50).to_string());
    // Pure-FTPd 1.0.50 aborts ("malloc(): invalid size (unsorted)") on
    // the first connection when given -C with a one-port passive range:
    // there, -C is passed only when the scenario asks for a per-IP limit.
    let one_port = raw.passive_ports.is_some_and(|[lo, hi]| lo == hi);
    match (raw.limits.max_clients_per_ip, one_port) {
        (Some(n), _) => {
            a.push("-C".into());
            a.push(n.to_string());
        }
        (None, false) => {
            a.push("-C".into());
            a.push("50".into());
        }
        (None, true) => {}
    }
    if let Some(t) = raw.timeouts.idle {
        a.push("-I".into());
        a.push(t.div_ceil(60).max(1).to_string());
    }
    Ok((a, addr))
}

impl RealServer for PureFtpd {
    fn name(&self) -> &'static str {
        NAME
    }

    /// `$FTPNAT_PUREFTPD`, `/usr/sbin/pure-ftpd`, or the unpacked package.
    fn binary(&self) -> Result<PathBuf, SetupError> {
        daemon::binary(&PACKAGE)
    }

    /// Its flags, run in a private mount namespace whose `/etc/passwd` has
    /// an `ftp` account rooted at the served tree.
    fn command(
        &self,
        bin: &Path,
        raw: &RawConfig,
        site: &Site,
    ) -> Result<(Command, SocketAddr), SetupError> {
        let (args, addr) = args(raw, site.log)?;
        let passwd_path = site.write("pure-ftpd.passwd", &passwd(site.root)?)?;
        let mut cmd = Command::new(bin);
        cmd.args(&args);
        with_passwd(&mut cmd, &passwd_path)?;
        Ok((cmd, addr))
    }
}

/// A copy of `/etc/passwd` whose `ftp` account (uid/gid 1, daemon:
/// Pure-FTPd refuses an `ftp` account with uid 0) has `root` as its home.
fn passwd(root: &Path) -> Result<String, SetupError> {
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(SetupError::io("/etc/passwd"))?;
    let mut passwd: String = passwd
        .lines()
        .filter(|l| !l.starts_with("ftp:"))
        .map(|l| format!("{l}\n"))
        .collect();
    passwd.push_str(&format!(
        "ftp:x:1:1::{}:/usr/sbin/nologin\n",
        root.display()
    ));
    Ok(passwd)
}

/// Makes `cmd` run in a private mount namespace with `passwd` bind-mounted
/// over `/etc/passwd` (the machine's own file is never touched).
fn with_passwd(cmd: &mut Command, passwd: &Path) -> Result<(), SetupError> {
    let src = std::ffi::CString::new(passwd.as_os_str().as_encoded_bytes())
        .map_err(|e| SetupError::Failed(e.to_string()))?;
    // SAFETY: unshare and mount are plain system calls, safe between fork
    // and exec; the CStrings were allocated before the fork.
    unsafe {
        cmd.pre_exec(move || {
            use std::io::Error;
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(Error::last_os_error());
            }
            let none = c"none";
            let slash = c"/";
            if libc::mount(
                none.as_ptr(),
                slash.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
            {
                return Err(Error::last_os_error());
            }
            let target = c"/etc/passwd";
            if libc::mount(
                src.as_ptr(),
                target.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            ) != 0
            {
                return Err(Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_keys_to_flags_and_refuses_the_rest() {
        let raw: RawConfig = toml::from_str(
            "masquerade_address = \"203.0.113.1\"\npassive_ports = [60000, 60010]\nallow_foreign_address = true\nlisten = [\"192.168.1.2:2121\"]\ntimeouts = { idle = 90 }\n",
        )
        .unwrap();
        let (a, addr) = args(&raw, Path::new("/x")).unwrap();
        assert_eq!(addr.port(), 2121);
        let joined = a.join(" ");
        for want in [
            "-S 192.168.1.2,2121",
            "-p 60000:60010",
            "-P 203.0.113.1",
            "-W",
            "-I 2",
            "clf:/x",
        ] {
            assert!(joined.contains(want), "{want} in {joined}");
        }
        for (toml, err) in [
            (
                "passive_exhausted = \"fallback\"",
                "passive_exhausted other than \"refuse\"",
            ),
            ("server_name = \"x\"", "server_name"),
            ("limits = { deny = [\"PASV\"] }", "limits.deny"),
        ] {
            let raw: RawConfig = toml::from_str(toml).unwrap();
            assert!(
                args(&raw, Path::new("/x"))
                    .unwrap_err()
                    .to_string()
                    .contains(err),
                "{toml}"
            );
        }
    }

    /// Pure-FTPd's whole command line for a NAT server (a change to any
    /// flag shows in review).
    #[test]
    fn rendered_flags_snapshot() {
        let raw: RawConfig = toml::from_str(concat!(
            "masquerade_address = \"203.0.113.1\"\npassive_ports = [60000, 60010]\n",
            "anonymous_upload = true\n",
            "limits = { max_clients = 20, max_clients_per_ip = 4 }\n",
            "timeouts = { idle = 90 }\n",
        ))
        .unwrap();
        let (args, addr) = args(&raw, Path::new("/run/server.log")).unwrap();
        assert_eq!(addr.to_string(), "0.0.0.0:21");
        insta::assert_snapshot!(args.join("\n"));
    }
}
