//! What the file says: the TOML shape of the server configuration.
//! Unknown keys are errors; every field is optional here, and
//! [`Config::resolve`](super::Config::resolve) supplies the defaults.

use std::{net::IpAddr, path::PathBuf};

use serde::{Deserialize, Serialize};

/// What the file says.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Control-connection listen addresses.
    pub listen: Option<Vec<String>>,
    /// Served tree.
    pub root: Option<PathBuf>,
    /// Name in the banner.
    pub server_name: Option<String>,
    /// IP, DNS name, or "none".
    pub masquerade_address: Option<String>,
    /// Inclusive passive port range.
    pub passive_ports: Option<[u16; 2]>,
    /// What to do when the range is exhausted.
    pub passive_exhausted: Option<ExhaustedPolicy>,
    /// How long `wait` waits.
    pub passive_wait_ms: Option<u64>,
    /// "per-transfer" (default: a listener per PASV) or "pooled" (the whole
    /// range listening; leases by client address and port).
    pub passive_mode: Option<PassiveMode>,
    /// `true`, `false`, or a list of CIDRs.
    pub allow_foreign_address: Option<ForeignAddress>,
    /// `refuse` (default) or `substitute` (ProFTPD 1.3.8 with MasqueradeAddress).
    pub port_private_address: Option<PrivatePortPolicy>,
    /// Anonymous login.
    pub anonymous: Option<bool>,
    /// Whether anonymous users may write (STOR, APPE, DELE, MKD, RMD,
    /// RNFR/RNTO, MFMT, MDTM with a time). Default false, ProFTPD's
    /// `<Limit WRITE> DenyAll` in `<Anonymous>` and vsftpd's default.
    pub anonymous_upload: Option<bool>,
    /// Optional log file (in addition to stderr).
    pub log_file: Option<PathBuf>,
    /// PEM certificate chain for explicit FTPS (`AUTH TLS`); relative to
    /// the config file.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// `off` (default: TLS offered, not required), `control` (login only
    /// over TLS) or `all` (also every data connection: `PROT P`).
    pub tls_required: Option<TlsRequired>,
    /// TLS data connections must resume the control connection's TLS
    /// session (default true, as ProFTPD and vsftpd require: a thief's data
    /// connection cannot).
    pub tls_session_reuse: Option<bool>,
    /// Pause after a failed login, milliseconds; an address with recent
    /// failures also waits this long per failure before its password is
    /// checked.
    pub login_failure_delay_ms: Option<u64>,
    /// Started as root: the account to run as after binding the listeners
    /// (default: the owner of `root` if that is not root).
    pub run_as: Option<String>,
    /// Allow sessions to run as root (default false: started as root with
    /// no unprivileged account to switch to, the server refuses to start).
    pub allow_root: Option<bool>,
    /// `[ban]`
    #[serde(default)]
    pub ban: RawBan,
    /// Local users.
    #[serde(default)]
    pub user: Vec<RawUser>,
    /// `[limits]`
    #[serde(default)]
    pub limits: RawLimits,
    /// `[timeouts]`
    #[serde(default)]
    pub timeouts: RawTimeouts,
    /// `[[class]]`
    #[serde(default)]
    pub class: Vec<RawClass>,
    /// `[[vhost]]`
    #[serde(default)]
    pub vhost: Vec<RawVhost>,
}

/// A local user.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawUser {
    /// Login name.
    pub name: String,
    /// Argon2 PHC string (`ftpnat-server --hash-password` prints one).
    pub password_hash: String,
}

/// `[limits]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Commands refused with 501, like `<Limit EPSV PASV> DenyAll`.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Concurrent sessions.
    pub max_clients: Option<usize>,
    /// Concurrent sessions per client address.
    pub max_clients_per_ip: Option<usize>,
    /// Longest command line.
    pub max_line: Option<usize>,
    /// Failed logins before disconnect.
    pub max_login_failures: Option<u32>,
    /// Sessions per client address not logged in yet.
    pub max_unauthenticated_per_ip: Option<usize>,
    /// Password verifications (argon2) running at once.
    pub password_checks: Option<usize>,
}

/// `[ban]`: failed logins per client address.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawBan {
    /// Failures within `window` that ban the address (0: never).
    pub max_failures: Option<u32>,
    /// Seconds failures are counted over.
    pub window: Option<u64>,
    /// Seconds a ban lasts.
    pub duration: Option<u64>,
    /// Addresses tracked at once.
    pub table_size: Option<usize>,
}

/// `[timeouts]`, seconds.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    /// Until a successful login.
    pub login: Option<u64>,
    /// Between commands.
    pub idle: Option<u64>,
    /// Without a transfer.
    pub no_transfer: Option<u64>,
    /// From PASV/PORT until the data connection is made.
    pub data_connect: Option<u64>,
}

/// `[[class]]`: settings for clients whose address is in `from`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawClass {
    /// Class name (for logs).
    pub name: String,
    /// Client CIDRs.
    pub from: Vec<String>,
    /// IP, name, or "none".
    pub masquerade_address: Option<String>,
}

/// `[[vhost]]`: settings for connections arriving on a local address.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawVhost {
    /// The local address the control connection arrives on.
    pub address: IpAddr,
    /// Banner name.
    pub server_name: Option<String>,
    /// IP, name, or "none".
    pub masquerade_address: Option<String>,
}

/// How passive listeners are made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PassiveMode {
    /// Bind a port of the range at each PASV/EPSV, close it at accept.
    #[default]
    PerTransfer,
    /// Bind the whole range at start-up; a PASV leases (client address, port).
    Pooled,
}

/// Policy when the passive range has no free port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExhaustedPolicy {
    /// Bind a kernel-assigned port outside the range and log a warning (ProFTPD).
    #[default]
    Fallback,
    /// Reply 425.
    Refuse,
    /// Wait up to `passive_wait_ms` for a port, then 425.
    Wait,
}

/// What to do with a PORT/EPRT carrying an RFC 1918 address from a public client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PrivatePortPolicy {
    /// Treat it like any foreign address (refuse unless allowed) — the seed.
    #[default]
    Refuse,
    /// Use the client's real address instead (ProFTPD 1.3.8 with MasqueradeAddress).
    Substitute,
}

/// `allow_foreign_address = true | false | ["cidr", …]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ForeignAddress {
    /// Allow all or none.
    All(bool),
    /// Allow these networks.
    Cidrs(Vec<String>),
}

/// `tls_required`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsRequired {
    /// TLS offered, not required.
    #[default]
    Off,
    /// USER/PASS only after `AUTH TLS` (and no `CCC`).
    Control,
    /// The control connection and every data connection (`PROT P`).
    All,
}
