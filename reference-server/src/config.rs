//! Server configuration: TOML whose keys mirror the ProFTPD directives users
//! know. [`RawConfig`] is what the file says (unknown keys are errors);
//! [`Config`] is the validated, resolved form the rest of the server sees.
//!
//! Every default lives in [`defaults`]. A DNS name given as
//! `masquerade_address` is resolved **once**, when [`Config::resolve`] runs at
//! start-up — the ProFTPD behaviour, and the source of the seed's pitfall (a
//! name that resolves to the LAN address inside the LAN).

use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Every default in one place.
pub mod defaults {
    /// `listen`
    pub const LISTEN: &str = "0.0.0.0:21";
    /// `server_name`
    pub const SERVER_NAME: &str = "ftpnat";
    /// `passive_wait_ms`
    pub const PASSIVE_WAIT_MS: u64 = 2000;
    /// `anonymous`
    pub const ANONYMOUS: bool = true;
    /// `limits.max_clients`
    pub const MAX_CLIENTS: usize = 200;
    /// `limits.max_clients_per_ip`
    pub const MAX_CLIENTS_PER_IP: usize = 20;
    /// `limits.max_line`: longest command line in bytes.
    pub const MAX_LINE: usize = 4096;
    /// `limits.max_login_failures`
    pub const MAX_LOGIN_FAILURES: u32 = 3;
    /// `timeouts.login` (seconds)
    pub const TIMEOUT_LOGIN: u64 = 30;
    /// `timeouts.idle`
    pub const TIMEOUT_IDLE: u64 = 300;
    /// `timeouts.no_transfer`
    pub const TIMEOUT_NO_TRANSFER: u64 = 600;
    /// `timeouts.data_connect`
    pub const TIMEOUT_DATA_CONNECT: u64 = 15;
    /// `login_failure_delay_ms`: pause before answering a failed login.
    pub const LOGIN_FAILURE_DELAY_MS: u64 = 1000;
}

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
    /// RNFR/RNTO). Default true; false is ProFTPD's `<Limit WRITE> DenyAll`
    /// in `<Anonymous>`.
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
    /// Pause after a failed login, milliseconds.
    pub login_failure_delay_ms: Option<u64>,
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
    /// Pause after a failed login.
    pub login_failure_delay: Duration,
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

/// Why a configuration was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// TOML syntax or type error, with position.
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        /// File.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A key has an invalid value.
    #[error("{path}{}: invalid `{key}`: {reason}", position.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default())]
    Invalid {
        /// File.
        path: PathBuf,
        /// Line and column of the value, when the file holds the key.
        position: Option<(usize, usize)>,
        /// Key path, e.g. `class[0].from`.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

/// Line and column of the value of `key` (`a.b`, `class[0].from`) in a TOML
/// text, if it is there.
pub fn key_position(text: &str, key: &str) -> Option<(usize, usize)> {
    let doc = toml_edit::ImDocument::parse(text).ok()?;
    let mut item: &toml_edit::Item = doc.as_item();
    for seg in key.split('.') {
        let (name, index) = match seg.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (seg, None),
        };
        item = item.get(name)?;
        if let Some(i) = index {
            item = item.get(i)?;
        }
    }
    let span = item
        .span()
        .or_else(|| item.as_value().and_then(|v| v.span()))?;
    Some(line_col(text, span.start))
}

/// How DNS names are resolved at start-up (injectable so a test or the
/// harness can model a split-horizon DNS view).
pub type Resolver<'a> = &'a dyn Fn(&str) -> std::io::Result<Vec<IpAddr>>;

/// The system resolver (getaddrinfo).
pub fn system_resolver(name: &str) -> std::io::Result<Vec<IpAddr>> {
    use std::net::ToSocketAddrs;
    Ok((name, 0).to_socket_addrs()?.map(|a| a.ip()).collect())
}

/// Converts a byte offset into 1-based line and column.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
    (line, col)
}

impl Config {
    /// Reads, parses and validates a file with the system resolver.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::load_with(path, &system_resolver)
    }

    /// Reads, parses and validates a file with the given resolver.
    pub fn load_with(path: &Path, resolver: Resolver<'_>) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, path, resolver)
    }

    /// Parses and validates TOML text; `path` only names the source in errors,
    /// and a relative `root` is taken relative to its directory.
    pub fn from_toml(
        text: &str,
        path: &Path,
        resolver: Resolver<'_>,
    ) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
            ConfigError::Syntax {
                path: path.to_owned(),
                line,
                column,
                message: e.message().to_string(),
            }
        })?;
        Self::resolve(raw, path, resolver).map_err(|e| match e {
            ConfigError::Invalid {
                path,
                position: None,
                key,
                reason,
            } => ConfigError::Invalid {
                position: key_position(text, &key),
                path,
                key,
                reason,
            },
            e => e,
        })
    }

    /// Validates a raw configuration.
    pub fn resolve(
        raw: RawConfig,
        path: &Path,
        resolver: Resolver<'_>,
    ) -> Result<Config, ConfigError> {
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            path: path.to_owned(),
            position: None,
            key: key.to_string(),
            reason,
        };
        let listen = raw
            .listen
            .unwrap_or_else(|| vec![defaults::LISTEN.to_string()])
            .iter()
            .map(|s| {
                s.parse::<SocketAddr>().map_err(|_| {
                    invalid(
                        "listen",
                        format!("{s:?} is not a socket address like \"0.0.0.0:21\" or \"[::]:21\""),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if listen.is_empty() {
            return Err(invalid("listen", "needs at least one address".into()));
        }
        let root = raw
            .root
            .ok_or_else(|| invalid("root", "is required (the directory to serve)".into()))?;
        let root = if root.is_relative() {
            path.parent().unwrap_or(Path::new(".")).join(root)
        } else {
            root
        };
        let root = root
            .canonicalize()
            .map_err(|e| invalid("root", format!("{}: {e}", root.display())))?;
        if !root.is_dir() {
            return Err(invalid(
                "root",
                format!("{} is not a directory", root.display()),
            ));
        }
        let masq = |key: &str, value: &Option<String>| -> Result<Option<Masquerade>, ConfigError> {
            value
                .as_deref()
                .map(|v| parse_masquerade(v, resolver).map_err(|reason| invalid(key, reason)))
                .transpose()
        };
        let masquerade =
            masq("masquerade_address", &raw.masquerade_address)?.unwrap_or(Masquerade::None);
        let passive_ports = match raw.passive_ports {
            None => None,
            Some([lo, hi]) if lo >= 1024 && lo <= hi => Some((lo, hi)),
            Some([lo, hi]) => {
                return Err(invalid(
                    "passive_ports",
                    format!("[{lo}, {hi}] must be [low, high] with 1024 <= low <= high <= 65535"),
                ))
            }
        };
        let passive_mode = raw.passive_mode.unwrap_or_default();
        if passive_mode == PassiveMode::Pooled && passive_ports.is_none() {
            return Err(invalid(
                "passive_mode",
                "\"pooled\" needs passive_ports (the range it listens on)".into(),
            ));
        }
        let allow_foreign = match raw.allow_foreign_address {
            None | Some(ForeignAddress::All(false)) => vec![],
            Some(ForeignAddress::All(true)) => {
                vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()]
            }
            Some(ForeignAddress::Cidrs(list)) => list
                .iter()
                .map(|c| parse_cidr(c).map_err(|r| invalid("allow_foreign_address", r)))
                .collect::<Result<_, _>>()?,
        };
        let mut users = Vec::new();
        for (i, u) in raw.user.iter().enumerate() {
            if u.name.is_empty() || u.name.contains(char::is_whitespace) {
                return Err(invalid(
                    &format!("user[{i}].name"),
                    format!("{:?} is not a login name", u.name),
                ));
            }
            argon2::PasswordHash::new(&u.password_hash).map_err(|e| {
                invalid(
                    &format!("user[{i}].password_hash"),
                    format!("not an argon2 PHC string ({e}); make one with `ftpnat-server --hash-password`"),
                )
            })?;
            users.push(User {
                name: u.name.clone(),
                password_hash: u.password_hash.clone(),
            });
        }
        let deny = raw
            .limits
            .deny
            .iter()
            .map(|v| {
                let up = v.to_ascii_uppercase();
                if crate::protocol::command::HELP_VERBS
                    .split(' ')
                    .any(|k| k == up)
                {
                    Ok(up)
                } else {
                    Err(invalid(
                        "limits.deny",
                        format!("{v:?} is not a command this server knows"),
                    ))
                }
            })
            .collect::<Result<_, _>>()?;
        let mut classes = Vec::new();
        for (i, c) in raw.class.iter().enumerate() {
            let from = c
                .from
                .iter()
                .map(|s| parse_cidr(s).map_err(|r| invalid(&format!("class[{i}].from"), r)))
                .collect::<Result<Vec<_>, _>>()?;
            if from.is_empty() {
                return Err(invalid(
                    &format!("class[{i}].from"),
                    "needs at least one CIDR".into(),
                ));
            }
            classes.push(Class {
                name: c.name.clone(),
                from,
                masquerade: masq(
                    &format!("class[{i}].masquerade_address"),
                    &c.masquerade_address,
                )?,
            });
        }
        let mut vhosts = Vec::new();
        for (i, v) in raw.vhost.iter().enumerate() {
            vhosts.push(Vhost {
                address: v.address,
                server_name: v.server_name.clone(),
                masquerade: masq(
                    &format!("vhost[{i}].masquerade_address"),
                    &v.masquerade_address,
                )?,
            });
        }
        let secs = |v: Option<u64>, d: u64, key: &str| -> Result<Duration, ConfigError> {
            match v.unwrap_or(d) {
                0 => Err(invalid(key, "must be at least 1 second".into())),
                s => Ok(Duration::from_secs(s)),
            }
        };
        let rel = |p: &Path| {
            if p.is_relative() {
                path.parent().unwrap_or(Path::new(".")).join(p)
            } else {
                p.to_owned()
            }
        };
        let tls = match (&raw.tls_cert, &raw.tls_key) {
            (None, None) => None,
            (Some(_), None) => return Err(invalid("tls_key", "is required with tls_cert".into())),
            (None, Some(_)) => return Err(invalid("tls_cert", "is required with tls_key".into())),
            (Some(c), Some(k)) => {
                Some(crate::tls::TlsSetup::load(&rel(c), &rel(k)).map_err(|r| {
                    invalid(
                        if r.starts_with("tls_key") {
                            "tls_key"
                        } else {
                            "tls_cert"
                        },
                        r,
                    )
                })?)
            }
        };
        let tls_required = raw.tls_required.unwrap_or_default();
        if tls.is_none() && tls_required != TlsRequired::Off {
            return Err(invalid("tls_required", "needs tls_cert and tls_key".into()));
        }
        let max_line = raw.limits.max_line.unwrap_or(defaults::MAX_LINE);
        if max_line < 64 {
            return Err(invalid(
                "limits.max_line",
                format!("{max_line} is below the minimum of 64 bytes"),
            ));
        }
        Ok(Config {
            listen,
            root,
            server_name: raw
                .server_name
                .unwrap_or_else(|| defaults::SERVER_NAME.into()),
            masquerade,
            passive_ports,
            passive_exhausted: raw.passive_exhausted.unwrap_or_default(),
            passive_mode,
            passive_wait: Duration::from_millis(
                raw.passive_wait_ms.unwrap_or(defaults::PASSIVE_WAIT_MS),
            ),
            allow_foreign,
            port_private_address: raw.port_private_address.unwrap_or_default(),
            anonymous: raw.anonymous.unwrap_or(defaults::ANONYMOUS),
            anonymous_upload: raw.anonymous_upload.unwrap_or(true),
            users,
            deny,
            max_clients: raw.limits.max_clients.unwrap_or(defaults::MAX_CLIENTS),
            max_clients_per_ip: raw
                .limits
                .max_clients_per_ip
                .unwrap_or(defaults::MAX_CLIENTS_PER_IP),
            max_line,
            max_login_failures: raw
                .limits
                .max_login_failures
                .unwrap_or(defaults::MAX_LOGIN_FAILURES),
            login_failure_delay: Duration::from_millis(
                raw.login_failure_delay_ms
                    .unwrap_or(defaults::LOGIN_FAILURE_DELAY_MS),
            ),
            timeout_login: secs(
                raw.timeouts.login,
                defaults::TIMEOUT_LOGIN,
                "timeouts.login",
            )?,
            timeout_idle: secs(raw.timeouts.idle, defaults::TIMEOUT_IDLE, "timeouts.idle")?,
            timeout_no_transfer: secs(
                raw.timeouts.no_transfer,
                defaults::TIMEOUT_NO_TRANSFER,
                "timeouts.no_transfer",
            )?,
            timeout_data_connect: secs(
                raw.timeouts.data_connect,
                defaults::TIMEOUT_DATA_CONNECT,
                "timeouts.data_connect",
            )?,
            classes,
            vhosts,
            log_file: raw.log_file,
            tls,
            tls_required,
            tls_session_reuse: raw.tls_session_reuse.unwrap_or(true),
        })
    }

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

fn parse_cidr(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{s:?} is not a CIDR like \"192.168.1.0/24\""))
}

fn parse_masquerade(value: &str, resolver: Resolver<'_>) -> Result<Masquerade, String> {
    if value.eq_ignore_ascii_case("none") {
        return Ok(Masquerade::None);
    }
    if let Ok(ip) = value.parse::<IpAddr>() {
        return Ok(Masquerade::Addr { ip, name: None });
    }
    let valid_name = !value.is_empty()
        && value.len() <= 253
        && value.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !valid_name {
        return Err(format!(
            "{value:?} is neither an IP address, a DNS name, nor \"none\""
        ));
    }
    // The last label of a DNS name is never all digits (RFC 3696 §2): this
    // is a mistyped address, not a name to look up.
    if value
        .rsplit('.')
        .next()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("{value:?} is not a valid IP address"));
    }
    let addrs = resolver(value).map_err(|e| format!("cannot resolve {value:?}: {e}"))?;
    // Prefer IPv4: 227 can only carry IPv4.
    let ip = addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("{value:?} resolves to no address"))?;
    Ok(Masquerade::Addr {
        ip,
        name: Some(value.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_dns(name: &str) -> std::io::Result<Vec<IpAddr>> {
        match name {
            "ftp.example.test" => Ok(vec!["192.168.1.2".parse().unwrap()]),
            _ => Err(std::io::Error::other("no such host")),
        }
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let text = text.replace("@ROOT@", &dir.path().display().to_string());
        Config::from_toml(&text, Path::new("test.toml"), &no_dns)
    }

    #[test]
    fn full_example_parses() {
        let c = parse(
            r#"
listen = ["0.0.0.0:2121", "[::]:2121"]
root = "@ROOT@"
masquerade_address = "203.0.113.1"
passive_ports = [60000, 60010]
passive_exhausted = "wait"
passive_wait_ms = 500
allow_foreign_address = ["198.51.100.0/24"]
[limits]
deny = ["PASV", "epsv"]
[timeouts]
data_connect = 5
[[class]]
name = "internal"
from = ["192.168.1.0/24"]
masquerade_address = "none"
[[vhost]]
address = "192.168.1.2"
masquerade_address = "none"
"#,
        )
        .unwrap();
        assert_eq!(c.listen.len(), 2);
        assert_eq!(c.masquerade.ip(), Some("203.0.113.1".parse().unwrap()));
        assert_eq!(c.passive_ports, Some((60000, 60010)));
        assert_eq!(c.deny, vec!["PASV", "EPSV"]);
        assert_eq!(c.timeout_data_connect, Duration::from_secs(5));
        assert!(c.foreign_allowed("198.51.100.9".parse().unwrap()));
        assert!(!c.foreign_allowed("203.0.113.9".parse().unwrap()));
        let lan: IpAddr = "192.168.1.2".parse().unwrap();
        let wan_peer: IpAddr = "203.0.113.10".parse().unwrap();
        assert_eq!(
            c.masquerade_for(lan, "192.168.1.50".parse().unwrap()).0,
            &Masquerade::None
        );
        assert_eq!(
            c.masquerade_for(lan, wan_peer).0,
            &Masquerade::None,
            "vhost applies"
        );
        assert_eq!(
            c.masquerade_for("10.0.0.1".parse().unwrap(), wan_peer)
                .0
                .ip(),
            Some("203.0.113.1".parse().unwrap())
        );
    }

    #[test]
    fn dns_name_resolved_once_with_name_kept() {
        let c = parse("root = \"@ROOT@\"\nmasquerade_address = \"ftp.example.test\"").unwrap();
        assert_eq!(
            c.masquerade,
            Masquerade::Addr {
                ip: "192.168.1.2".parse().unwrap(),
                name: Some("ftp.example.test".into())
            }
        );
    }

    #[test]
    fn errors_name_position_or_key() {
        let e = parse("root = \"@ROOT@\"\npassive_port = [1, 2]")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("test.toml:2:1: unknown field `passive_port`"),
            "{e}"
        );
        let e = parse("root = \"@ROOT@\"\npassive_ports = [70000, 2]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("test.toml:2:"), "{e}");
        let e = parse("root = \"@ROOT@\"\npassive_ports = [60010, 60000]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid `passive_ports`"), "{e}");
        let e = parse("root = \"@ROOT@\"\nmasquerade_address = \"nowhere.invalid\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot resolve \"nowhere.invalid\""), "{e}");
        let e = parse("root = \"@ROOT@\"\nmasquerade_address = \"bad name!\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("neither an IP address"), "{e}");
        let e = parse("root = \"@ROOT@\"\n[limits]\ndeny = [\"FROB\"]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("limits.deny"), "{e}");
        let e = parse("root = \"@ROOT@\"\n[[class]]\nname=\"x\"\nfrom=[\"300.1.1.1/8\"]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("class[0].from"), "{e}");
        let e = parse("listen = [\"nope\"]\nroot = \"@ROOT@\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid `listen`"), "{e}");
        let e = parse("[[user]]\nname=\"a\"\npassword_hash=\"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`root`") || e.contains("password_hash"), "{e}");
        let e = parse("root = 5").unwrap_err().to_string();
        assert!(e.contains("test.toml:1:8"), "{e}");
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("ab", 99), (1, 3));
    }
}
