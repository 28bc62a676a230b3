//! ProFTPD as a scenario server (`server = { kind = "proftpd", … }`).
//!
//! The scenario's keys map onto the directives users know from the NAT
//! HOWTO: `masquerade_address` → `MasqueradeAddress`, `passive_ports` →
//! `PassivePorts`, `allow_foreign_address = true` → `AllowForeignAddress on`
//! and `false` (the default) → `AllowForeignAddress off` (ProFTPD 1.3.8
//! checks who connects to a passive port only when the directive appears:
//! without it a thief receives the file and nothing is logged),
//! `limits.deny` → `<Limit …> DenyAll`, `server_name` → `ServerIdent`, the
//! client limits → `MaxClients`/`MaxClientsPerHost`, login/idle/no-transfer
//! timeouts → `TimeoutLogin`/`TimeoutIdle`/`TimeoutNoTransfer`. It always
//! gets `TCPBackLog 255`, as an admin expecting bursts sets it.
//! `passive_exhausted = "fallback"` is ProFTPD's own (and only) behaviour.
//! Anything else is an error saying it is "not supported by proftpd".
//!
//! The binary is `$FTPNAT_PROFTPD`, `/usr/sbin/proftpd`, or
//! `target/peers/proftpd/usr/sbin/proftpd` (Debian's proftpd-core, unpacked
//! by `ci/test.sh`; only the statically compiled modules are used, so no
//! module path is needed). Anonymous logins map to the `daemon` account.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
};

use ftpnat_server::config::{ExhaustedPolicy, ForeignAddress, RawConfig};

use super::{daemon, Package, RealServer, Site};
use crate::{error::SetupError, topology::Netns};

/// ProFTPD.
#[derive(Debug, Clone, Copy)]
pub struct Proftpd;

const NAME: &str = "proftpd";

const PACKAGE: Package = Package {
    name: NAME,
    env_var: "FTPNAT_PROFTPD",
    system: "/usr/sbin/proftpd",
    peer: "proftpd/usr/sbin/proftpd",
};

/// Renders proftpd.conf (state files under `state`), or names the first key
/// ProFTPD cannot honour. `host_addr` is the host's own address: the
/// `DefaultAddress` of a server listening on all addresses, as a real
/// install takes it from the host name (its start-up line then names it).
pub fn render(
    raw: &RawConfig,
    root: &Path,
    state: &Path,
    log: &Path,
    modules: Option<&Path>,
    host_addr: Option<std::net::IpAddr>,
) -> Result<(String, SocketAddr), SetupError> {
    let unsupported = |k: &str| Err(SetupError::unsupported(NAME, k));
    match raw.passive_exhausted {
        None | Some(ExhaustedPolicy::Fallback) => {}
        Some(_) => {
            return unsupported("passive_exhausted other than \"fallback\" (ProFTPD always falls back to a kernel port)")
        }
    }
    if raw.passive_wait_ms.is_some() {
        return unsupported("passive_wait_ms");
    }
    if raw.timeouts.data_connect.is_some() {
        return unsupported("timeouts.data_connect");
    }
    daemon::reject_reference_only(raw, NAME)?;
    if matches!(raw.allow_foreign_address, Some(ForeignAddress::Cidrs(_))) {
        return unsupported("allow_foreign_address as a list of networks");
    }
    let addr = daemon::listen_addr(raw, NAME)?;
    let mut c = vec![
        "ServerType standalone".to_string(),
        "DefaultServer on".into(),
        format!("Port {}", addr.port()),
        "UseReverseDNS off".into(),
        "User nobody".into(),
        "Group nogroup".into(),
        "AuthOrder mod_auth_unix.c".into(),
        "RequireValidShell off".into(),
        "WtmpLog off".into(),
        "DelayEngine off".into(),
        // As an admin expecting bursts of clients sets it (the default
        // backlog of 128 overflows first under load: `ListenOverflows`).
        "TCPBackLog 255".into(),
        format!("PidFile {}", state.join("proftpd.pid").display()),
        format!(
            "ScoreboardFile {}",
            state.join("proftpd.scoreboard").display()
        ),
        format!("SystemLog {}", log.display()),
        format!("TransferLog {}", state.join("xferlog").display()),
    ];
    if addr.is_ipv6() {
        c.push("UseIPv6 on".into());
    } else {
        c.push("UseIPv6 off".into());
    }
    if !addr.ip().is_unspecified() {
        c.push(format!("DefaultAddress {}", addr.ip()));
        c.push("SocketBindTight on".into());
    } else if let Some(a) = host_addr.filter(|a| a.is_ipv6() == addr.is_ipv6()) {
        // Still bound to all addresses (SocketBindTight off).
        c.push(format!("DefaultAddress {a}"));
    }
    if let Some([lo, hi]) = raw.passive_ports {
        if lo >= hi {
            return unsupported("passive_ports with a single port");
        }
        c.push(format!("PassivePorts {lo} {hi}"));
    }
    if let Some(m) = daemon::masquerade_ip(raw, NAME)? {
        c.push(format!("MasqueradeAddress {m}"));
    }
    // Rendered either way: without the directive ProFTPD does not check
    // passive connections at all.
    if matches!(raw.allow_foreign_address, Some(ForeignAddress::All(true))) {
        c.push("AllowForeignAddress on".into());
    } else {
        c.push("AllowForeignAddress off".into());
    }
    match &raw.server_name {
        Some(name) => c.push(format!("ServerIdent on \"{}\"", name.replace('"', ""))),
        None => c.push("ServerName \"ftpnat proftpd\"".into()),
    }
    if let Some(n) = raw.limits.max_clients {
        c.push(format!("MaxClients {n}"));
    }
    if let Some(n) = raw.limits.max_clients_per_ip {
        c.push(format!("MaxClientsPerHost {n}"));
    }
    if let Some(t) = raw.timeouts.login {
        c.push(format!("TimeoutLogin {t}"));
    }
    if let Some(t) = raw.timeouts.idle {
        c.push(format!("TimeoutIdle {t}"));
    }
    if let Some(t) = raw.timeouts.no_transfer {
        c.push(format!("TimeoutNoTransfer {t}"));
    }
    c.push(format!("<Anonymous {}>", root.display()));
    c.push("  User daemon".into());
    c.push("  Group daemon".into());
    c.push("  UserAlias anonymous daemon".into());
    c.push("  UserAlias ftp daemon".into());
    c.push("  RequireValidShell off".into());
    if raw.anonymous_upload != Some(true) {
        c.push("  <Limit WRITE>\n    DenyAll\n  </Limit>".into());
    }
    if !raw.limits.deny.is_empty() {
        let cmds: Vec<String> = raw
            .limits
            .deny
            .iter()
            .map(|d| d.to_ascii_uppercase())
            .collect();
        if let Some(bad) = cmds
            .iter()
            .find(|d| !d.bytes().all(|b| b.is_ascii_alphabetic()))
        {
            return Err(SetupError::Failed(format!(
                "limits.deny {bad:?} is not a command name"
            )));
        }
        c.push(format!(
            "  <Limit {}>\n    DenyAll\n  </Limit>",
            cmds.join(" ")
        ));
    }
    c.push("</Anonymous>".into());
    match (&raw.tls_cert, &raw.tls_key) {
        (Some(cert), Some(key)) => {
            use ftpnat_server::config::TlsRequired;
            let Some(modules) = modules else {
                return unsupported(
                    "FTPS (mod_tls.so not found: ci/test.sh unpacks proftpd-mod-crypto)",
                );
            };
            c.push(format!("ModulePath {}", modules.display()));
            c.push("LoadModule mod_tls.c".into());
            c.push("TLSEngine on".into());
            c.push("TLSProtocol TLSv1.2 TLSv1.3".into());
            // rcgen's keys are ECDSA; an RSA key would go to TLSRSA….
            c.push(format!("TLSECCertificateFile {}", cert.display()));
            c.push(format!("TLSECCertificateKeyFile {}", key.display()));
            c.push("TLSVerifyClient off".into());
            c.push("TLSRenegotiate none".into());
            c.push(format!("TLSLog {}", state.join("tls.log").display()));
            c.push(format!(
                "TLSRequired {}",
                match raw.tls_required.unwrap_or_default() {
                    TlsRequired::Off => "off",
                    TlsRequired::Control => "ctrl",
                    TlsRequired::All => "on",
                }
            ));
            // mod_tls requires data connections to reuse the control
            // connection's TLS session unless told otherwise.
            if raw.tls_session_reuse == Some(false) {
                c.push("TLSOptions NoSessionReuseRequired".into());
            }
        }
        (None, None) if raw.tls_required.is_none() && raw.tls_session_reuse.is_none() => {}
        _ => return unsupported("tls_required/tls_session_reuse without tls"),
    }
    Ok((c.join("\n") + "\n", addr))
}

/// Where Debian's proftpd-mod-crypto put mod_tls.so, next to the binary.
fn module_dir(bin: &Path) -> Option<PathBuf> {
    let dir = bin.parent()?.parent()?.join("lib/proftpd");
    dir.join("mod_tls.so").exists().then_some(dir)
}

impl RealServer for Proftpd {
    fn name(&self) -> &'static str {
        NAME
    }

    /// `$FTPNAT_PROFTPD`, `/usr/sbin/proftpd`, or the unpacked package.
    fn binary(&self) -> Result<PathBuf, SetupError> {
        daemon::binary(&PACKAGE)
    }

    /// Writes proftpd.conf (state files in a folder of their own) and
    /// runs it in the foreground (`-n`).
    fn command(
        &self,
        bin: &Path,
        raw: &RawConfig,
        site: &Site,
    ) -> Result<(Command, SocketAddr), SetupError> {
        let state = site.folder("proftpd")?;
        let modules = module_dir(bin);
        let (conf, addr) = render(
            raw,
            site.root,
            &state,
            site.log,
            modules.as_deref(),
            host_address(site.ns),
        )?;
        let conf_path = site.write("proftpd.conf", &conf)?;
        let mut cmd = Command::new(bin);
        cmd.arg("-n").arg("-q").arg("-c").arg(&conf_path);
        Ok((cmd, addr))
    }
}

/// The first global address of the namespace's interfaces (IPv4 first).
fn host_address(ns: &Netns) -> Option<std::net::IpAddr> {
    let addrs: Vec<std::net::IpAddr> = ns
        .run(|| {
            nix::ifaddrs::getifaddrs().map(|it| {
                it.filter_map(|i| {
                    let a = i.address?;
                    a.as_sockaddr_in()
                        .map(|s| std::net::IpAddr::V4(s.ip()))
                        .or_else(|| a.as_sockaddr_in6().map(|s| std::net::IpAddr::V6(s.ip())))
                })
                .filter(|ip| {
                    !ip.is_loopback()
                        && !matches!(ip, std::net::IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80)
                })
                .collect()
            })
        })
        .ok()?
        .ok()?;
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_howto_directives_and_refuses_the_rest() {
        let raw: RawConfig = toml::from_str(
            "masquerade_address = \"203.0.113.1\"\npassive_ports = [60000, 60010]\nallow_foreign_address = true\nlisten = [\"192.168.1.2:21\"]\nlimits = { deny = [\"pasv\", \"EPSV\"] }\n",
        )
        .unwrap();
        let (c, addr) = render(
            &raw,
            Path::new("/r"),
            Path::new("/s"),
            Path::new("/l"),
            None,
            None,
        )
        .unwrap();
        assert_eq!(addr.to_string(), "192.168.1.2:21");
        for line in [
            "MasqueradeAddress 203.0.113.1",
            "PassivePorts 60000 60010",
            "AllowForeignAddress on",
            "DefaultAddress 192.168.1.2",
            "SocketBindTight on",
            "SystemLog /l",
            "<Anonymous /r>",
            "  <Limit PASV EPSV>",
        ] {
            assert!(c.lines().any(|l| l == line), "{line} in\n{c}");
        }
        // Defaults: port-theft protection on; all addresses, the host's own
        // as DefaultAddress.
        let (c, _) = render(
            &RawConfig::default(),
            Path::new("/r"),
            Path::new("/s"),
            Path::new("/l"),
            None,
            Some("192.168.1.2".parse().unwrap()),
        )
        .unwrap();
        for line in [
            "AllowForeignAddress off",
            "DefaultAddress 192.168.1.2",
            "Port 21",
        ] {
            assert!(c.lines().any(|l| l == line), "{line} in\n{c}");
        }
        assert!(!c.contains("SocketBindTight"), "{c}");
        for (toml, err) in [
            (
                "passive_exhausted = \"wait\"",
                "passive_exhausted other than \"fallback\"",
            ),
            (
                "masquerade_address = \"ftp.example.com\"",
                "masquerade_address as a DNS name",
            ),
            ("timeouts = { data_connect = 2 }", "timeouts.data_connect"),
            ("limits = { deny = [\"PA SV\"] }", "is not a command name"),
        ] {
            let raw: RawConfig = toml::from_str(toml).unwrap();
            let e = render(
                &raw,
                Path::new("/r"),
                Path::new("/s"),
                Path::new("/l"),
                None,
                None,
            )
            .unwrap_err();
            assert!(e.to_string().contains(err), "{toml}: {e}");
        }
    }

    /// The whole proftpd.conf of a NAT server with FTPS, a denied command
    /// and timeouts (a change to any line shows in review).
    #[test]
    fn rendered_config_snapshot() {
        let raw: RawConfig = toml::from_str(concat!(
            "masquerade_address = \"203.0.113.1\"\npassive_ports = [60000, 60010]\n",
            "anonymous_upload = true\nserver_name = \"ftpnat test\"\n",
            "limits = { max_clients = 20, max_clients_per_ip = 4, deny = [\"EPSV\"] }\n",
            "timeouts = { login = 30, idle = 90 }\n",
            "tls_cert = \"/run/tls/cert.pem\"\ntls_key = \"/run/tls/key.pem\"\ntls_required = \"all\"\n",
        ))
        .unwrap();
        let (conf, addr) = render(
            &raw,
            Path::new("/srv/root"),
            Path::new("/run/state"),
            Path::new("/run/server.log"),
            Some(Path::new("/usr/lib/proftpd")),
            Some("192.168.1.2".parse().unwrap()),
        )
        .unwrap();
        assert_eq!(addr.to_string(), "0.0.0.0:21");
        insta::assert_snapshot!(conf);
    }
}
