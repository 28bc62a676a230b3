//! The validated, resolved configuration the rest of the server sees.

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use ipnet::IpNet;
use serde::Serialize;

use super::{ExhaustedPolicy, PassiveMode, PrivatePortPolicy, TlsRequired};

/// A masquerade setting after resolution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Masquerade {
    /// Use the control connection's local address.
    None,
    /// Use this address; `name` is the DNS name it came from, if any.
    Addr {
        /// The address put into 227 replies.
        ip: IpAddr,
        /// The DNS name it was resolved from.
        name: Option<String>,
    },
}

impl Masquerade {
    /// The address, if any.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Masquerade::None => None,
            Masquerade::Addr { ip, .. } => Some(*ip),
        }
    }
}

/// Resolved per-client class.
#[derive(Debug, Clone, Serialize)]
pub struct Class {
    /// Name.
    pub name: String,
    /// Client networks.
    pub from: Vec<IpNet>,
    /// Masquerade override.
    pub masquerade: Option<Masquerade>,
}

/// Resolved virtual host.
#[derive(Debug, Clone, Serialize)]
pub struct Vhost {
    /// Local address.
    pub address: IpAddr,
    /// Banner name override.
    pub server_name: Option<String>,
    /// Masquerade override.
    pub masquerade: Option<Masquerade>,
}

/// A local user.
#[derive(Debug, Clone, Serialize)]
pub struct User {
    /// Login name.
    pub name: String,
    /// Argon2 PHC string.
    #[serde(skip)]
    pub password_hash: String,
}

/// The validated configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// Listen addresses.
    pub listen: Vec<SocketAddr>,
    /// Served tree (absolute, canonical).
    pub root: PathBuf,
    /// Banner name.
    pub server_name: String,
    /// Global masquerade.
    pub masquerade: Masquerade,
    /// Passive range (inclusive), if any.
    pub passive_ports: Option<(u16, u16)>,
    /// Exhaustion policy.
    pub passive_exhausted: ExhaustedPolicy,
    /// Wait bound for `wait`.
    pub passive_wait: Duration,
    /// Per-transfer listeners or the pooled range.
    pub passive_mode: PassiveMode,
    /// Networks allowed in PORT/EPRT and as passive peers besides the control peer.
    pub allow_foreign: Vec<IpNet>,
    /// RFC 1918 PORT address policy.
    pub port_private_address: PrivatePortPolicy,
    /// Anonymous logins allowed.
    pub anonymous: bool,
    /// Anonymous users may write.
    pub anonymous_upload: bool,
    /// Local users.
    pub users: Vec<User>,
    /// Denied verbs (upper-case).
    pub deny: Vec<String>,
    /// Session caps.
    pub max_clients: usize,
    /// Per-address session cap.
    pub max_clients_per_ip: usize,
    /// Longest command line.
    pub max_line: usize,
    /// Failed logins before disconnect.
    pub max_login_failures: u32,
    /// Pause after a failed login (and per recent failure before a check).
    pub login_failure_delay: Duration,
    /// Sessions per address not logged in yet.
    pub max_unauthenticated_per_ip: usize,
    /// Password verifications at once.
    pub password_checks: usize,
    /// Failed-login bans.
    pub ban: crate::ban::BanPolicy,
    /// The account to switch to when started as root.
    pub run_as: Option<String>,
    /// Sessions may run as root.
    pub allow_root: bool,
    /// Until login.
    pub timeout_login: Duration,
    /// Between commands.
    pub timeout_idle: Duration,
    /// Without a transfer.
    pub timeout_no_transfer: Duration,
    /// PASV/PORT to data connection.
    pub timeout_data_connect: Duration,
    /// Classes, in file order (first match wins).
    pub classes: Vec<Class>,
    /// Virtual hosts.
    pub vhosts: Vec<Vhost>,
    /// Log file.
    pub log_file: Option<PathBuf>,
    /// FTPS, when `tls_cert` and `tls_key` are set.
    #[serde(skip)]
    pub tls: Option<crate::tls::TlsSetup>,
    /// What must be protected.
    pub tls_required: TlsRequired,
    /// Data connections must resume this session's TLS session.
    pub tls_session_reuse: bool,
}

impl Config {
    /// The effective masquerade for a session: class (first match) over vhost over global.
    pub fn masquerade_for(&self, local: IpAddr, peer: IpAddr) -> (&Masquerade, Option<&str>) {
        if let Some(c) = self.class_for(peer) {
            if let Some(m) = &c.masquerade {
                return (m, Some(&c.name));
            }
        }
        if let Some(m) = self.vhost_for(local).and_then(|v| v.masquerade.as_ref()) {
            return (m, None);
        }
        (&self.masquerade, None)
    }

    /// The first class whose networks contain `peer`.
    pub fn class_for(&self, peer: IpAddr) -> Option<&Class> {
        self.classes
            .iter()
            .find(|c| c.from.iter().any(|n| n.contains(&peer)))
    }

    /// The vhost bound to `local`.
    pub fn vhost_for(&self, local: IpAddr) -> Option<&Vhost> {
        self.vhosts.iter().find(|v| v.address == local)
    }

    /// Whether `ip` may appear in PORT/EPRT or connect to a passive port
    /// although it is not the control peer.
    pub fn foreign_allowed(&self, ip: IpAddr) -> bool {
        self.allow_foreign.iter().any(|n| n.contains(&ip))
    }
}
