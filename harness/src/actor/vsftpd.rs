//! vsftpd as a scenario server (`server = { kind = "vsftpd", config = {…} }`).
//!
//! The scenario's reference-server keys are translated to vsftpd.conf:
//! `masquerade_address` → `pasv_address` (+ `pasv_addr_resolve` for a name),
//! `passive_ports` → `pasv_min_port`/`pasv_max_port`, `allow_foreign_address`
//! → `port_promiscuous`/`pasv_promiscuous` (`YES` for true, `NO` — vsftpd's
//! default, written out — for false), `limits.deny = ["PASV",
//! "EPSV"]` → `pasv_enable=NO`. Keys vsftpd has no equivalent for are an
//! error saying so ("not supported by vsftpd"), never silently dropped.
//!
//! The binary is found as `$FTPNAT_VSFTPD`, `/usr/sbin/vsftpd`, or
//! `target/peers/vsftpd/usr/sbin/vsftpd` (where `ci/test.sh` unpacks the
//! Debian package without running its maintainer scripts, so no daemon ever
//! starts in the root namespace). Anonymous logins map to the existing
//! `daemon` account (its home must exist for vsftpd's chdir before chroot).

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
};

use ftpnat_server::config::{ForeignAddress, RawConfig};

use super::{daemon, Package, RealServer, Site};
use crate::error::SetupError;

/// vsftpd.
#[derive(Debug, Clone, Copy)]
pub struct Vsftpd;

const NAME: &str = "vsftpd";

const PACKAGE: Package = Package {
    name: NAME,
    env_var: "FTPNAT_VSFTPD",
    system: "/usr/sbin/vsftpd",
    peer: "vsftpd/usr/sbin/vsftpd",
};

/// Renders vsftpd.conf, or names the first key vsftpd cannot honour.
pub fn render(
    raw: &RawConfig,
    root: &Path,
    empty: &Path,
    log: &Path,
) -> Result<(String, SocketAddr), SetupError> {
    let unsupported = |k: &str| Err(SetupError::unsupported(NAME, k));
    if raw.passive_exhausted.is_some() || raw.passive_wait_ms.is_some() {
        return unsupported("passive_exhausted");
    }
    daemon::reject_reference_only(raw, NAME)?;
    if matches!(raw.allow_foreign_address, Some(ForeignAddress::Cidrs(_))) {
        return unsupported("allow_foreign_address as a list of networks");
    }
    let addr = daemon::listen_addr(raw, NAME)?;
    let mut c = vec![
        "listen=YES".to_string(),
        format!("listen_port={}", addr.port()),
        "background=NO".into(),
        "anonymous_enable=YES".into(),
        format!("anon_root={}", root.display()),
        "no_anon_password=YES".into(),
        "local_enable=NO".into(),
        if raw.anonymous_upload == Some(true) {
            "write_enable=YES\nanon_upload_enable=YES\nanon_mkdir_write_enable=YES\nanon_other_write_enable=YES\nanon_umask=022".into()
        } else {
            "write_enable=NO".into()
        },
        "seccomp_sandbox=NO".into(),
        format!("secure_chroot_dir={}", empty.display()),
        "nopriv_user=nobody".into(),
        "ftp_username=daemon".into(),
        "log_ftp_protocol=YES".into(),
        format!("vsftpd_log_file={}", log.display()),
        "xferlog_enable=YES".into(),
        "xferlog_std_format=NO".into(),
        "syslog_enable=NO".into(),
        "connect_from_port_20=NO".into(),
    ];
    if addr.is_ipv6() {
        c[0] = "listen_ipv6=YES".into();
    } else if !addr.ip().is_unspecified() {
        c.push(format!("listen_address={}", addr.ip()));
    }
    let denied: Vec<String> = raw
        .limits
        .deny
        .iter()
        .map(|d| d.to_ascii_uppercase())
        .collect();
    match denied.as_slice() {
        [] => c.push("pasv_enable=YES".into()),
        d if d.iter().all(|v| v == "PASV" || v == "EPSV") && d.len() == 2 => {
            c.push("pasv_enable=NO".into())
        }
        _ => return unsupported("limits.deny other than [\"PASV\", \"EPSV\"]"),
    }
    if let Some([lo, hi]) = raw.passive_ports {
        c.push(format!("pasv_min_port={lo}"));
        c.push(format!("pasv_max_port={hi}"));
    }
    if let Some(m) = daemon::masquerade_ip(raw, NAME)? {
        c.push(format!("pasv_address={m}"));
    }
    // Written either way (NO is vsftpd's default): the config shows the
    // port-theft protection the scenario asked for.
    let promiscuous = if matches!(raw.allow_foreign_address, Some(ForeignAddress::All(true))) {
        "YES"
    } else {
        "NO"
    };
    c.push(format!("port_promiscuous={promiscuous}"));
    c.push(format!("pasv_promiscuous={promiscuous}"));
    if let Some(name) = &raw.server_name {
        c.push(format!("ftpd_banner={name}"));
    }
    if let Some(n) = raw.limits.max_clients {
        c.push(format!("max_clients={n}"));
    }
    if let Some(n) = raw.limits.max_clients_per_ip {
        c.push(format!("max_per_ip={n}"));
    }
    if let Some(t) = raw.timeouts.data_connect {
        c.push(format!("data_connection_timeout={t}"));
        c.push(format!("connect_timeout={t}"));
        c.push(format!("accept_timeout={t}"));
    }
    if let Some(t) = raw.timeouts.idle {
        c.push(format!("idle_session_timeout={t}"));
    }
    match (&raw.tls_cert, &raw.tls_key) {
        (Some(cert), Some(key)) => {
            use ftpnat_server::config::TlsRequired;
            let required = raw.tls_required.unwrap_or_default();
            let yes = |b: bool| if b { "YES" } else { "NO" };
            c.push("ssl_enable=YES".into());
            c.push("allow_anon_ssl=YES".into());
            c.push(format!("rsa_cert_file={}", cert.display()));
            c.push(format!("rsa_private_key_file={}", key.display()));
            // vsftpd's default cipher list (DES-CBC3-SHA) has nothing a
            // modern client offers.
            c.push("ssl_ciphers=HIGH".into());
            c.push("ssl_request_cert=NO".into());
            c.push(format!(
                "require_ssl_reuse={}",
                yes(raw.tls_session_reuse.unwrap_or(true))
            ));
            c.push(format!(
                "force_anon_logins_ssl={}",
                yes(required != TlsRequired::Off)
            ));
            c.push(format!(
                "force_anon_data_ssl={}",
                yes(required == TlsRequired::All)
            ));
        }
        (None, None) if raw.tls_required.is_none() && raw.tls_session_reuse.is_none() => {}
        _ => return unsupported("tls_required/tls_session_reuse without tls"),
    }
    Ok((c.join("\n") + "\n", addr))
}

impl RealServer for Vsftpd {
    fn name(&self) -> &'static str {
        NAME
    }

    /// `$FTPNAT_VSFTPD`, `/usr/sbin/vsftpd`, or the unpacked package.
    fn binary(&self) -> Result<PathBuf, SetupError> {
        daemon::binary(&PACKAGE)
    }

    /// Writes vsftpd.conf (and the empty secure_chroot_dir it needs).
    fn command(
        &self,
        bin: &Path,
        raw: &RawConfig,
        site: &Site,
    ) -> Result<(Command, SocketAddr), SetupError> {
        let empty = site.folder("vsftpd-empty")?;
        let (conf, addr) = render(raw, site.root, &empty, site.log)?;
        let conf_path = site.write("vsftpd.conf", &conf)?;
        let mut cmd = Command::new(bin);
        cmd.arg(&conf_path);
        Ok((cmd, addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_nat_keys_and_refuses_the_rest() {
        let raw: RawConfig = toml::from_str("masquerade_address = \"203.0.113.1\"\npassive_ports = [60000, 60010]\nallow_foreign_address = true\n").unwrap();
        let (c, addr) = render(&raw, Path::new("/r"), Path::new("/e"), Path::new("/l")).unwrap();
        assert_eq!(addr.port(), 21);
        for line in [
            "pasv_address=203.0.113.1",
            "pasv_min_port=60000",
            "pasv_max_port=60010",
            "port_promiscuous=YES",
            "anon_root=/r",
        ] {
            assert!(c.lines().any(|l| l == line), "{line} in\n{c}");
        }
        let raw: RawConfig = toml::from_str("passive_exhausted = \"wait\"").unwrap();
        assert_eq!(
            render(&raw, Path::new("/r"), Path::new("/e"), Path::new("/l"))
                .unwrap_err()
                .to_string(),
            "passive_exhausted is not supported by vsftpd"
        );
    }

    /// The whole vsftpd.conf of a NAT server with FTPS and timeouts
    /// (a change to any line shows in review).
    #[test]
    fn rendered_config_snapshot() {
        let raw: RawConfig = toml::from_str(concat!(
            "masquerade_address = \"203.0.113.1\"\npassive_ports = [60000, 60010]\n",
            "anonymous_upload = true\nserver_name = \"ftpnat test\"\n",
            "limits = { max_clients = 20, max_clients_per_ip = 4 }\n",
            "timeouts = { data_connect = 3, idle = 90 }\n",
            "tls_cert = \"/run/tls/cert.pem\"\ntls_key = \"/run/tls/key.pem\"\ntls_required = \"control\"\n",
        ))
        .unwrap();
        let (conf, addr) = render(
            &raw,
            Path::new("/srv/root"),
            Path::new("/run/empty"),
            Path::new("/run/server.log"),
        )
        .unwrap();
        assert_eq!(addr.to_string(), "0.0.0.0:21");
        insta::assert_snapshot!(conf);
    }
}
