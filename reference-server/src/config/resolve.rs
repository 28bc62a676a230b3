//! Raw → validated: reading the file, checking every key, resolving names
//! once, filling in defaults. Errors name the key (and, through
//! [`Config::from_toml`], its line and column).

use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use ipnet::IpNet;

use super::{
    defaults, key_position, line_col, system_resolver, Class, Config, ConfigError, ForeignAddress,
    Masquerade, PassiveMode, RawConfig, Resolver, TlsRequired, User, Vhost,
};

/// Builds [`ConfigError::Invalid`] for one file (position filled in later).
struct Invalid<'a> {
    path: &'a Path,
}

impl Invalid<'_> {
    fn err(&self, key: &str, reason: String) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_owned(),
            position: None,
            key: key.to_string(),
            reason,
        }
    }
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
        let inv = Invalid { path };
        let listen = resolve_listen(&raw, &inv)?;
        let root = resolve_root(&raw, path, &inv)?;
        let masq = |key: &str, value: &Option<String>| -> Result<Option<Masquerade>, ConfigError> {
            value
                .as_deref()
                .map(|v| parse_masquerade(v, resolver).map_err(|reason| inv.err(key, reason)))
                .transpose()
        };
        let masquerade =
            masq("masquerade_address", &raw.masquerade_address)?.unwrap_or(Masquerade::None);
        let (passive_ports, passive_mode) = resolve_passive(&raw, &inv)?;
        let allow_foreign = resolve_foreign(&raw, &inv)?;
        let users = resolve_users(&raw, &inv)?;
        let deny = resolve_deny(&raw, &inv)?;
        let classes = resolve_classes(&raw, &inv, &masq)?;
        let vhosts = resolve_vhosts(&raw, &masq)?;
        let (tls, tls_required) = resolve_tls(&raw, path, &inv)?;
        let max_line = raw.limits.max_line.unwrap_or(defaults::MAX_LINE);
        if max_line < 64 {
            return Err(inv.err(
                "limits.max_line",
                format!("{max_line} is below the minimum of 64 bytes"),
            ));
        }
        let secs = |v: Option<u64>, d: u64, key: &str| -> Result<Duration, ConfigError> {
            match v.unwrap_or(d) {
                0 => Err(inv.err(key, "must be at least 1 second".into())),
                s => Ok(Duration::from_secs(s)),
            }
        };
        let t = &raw.timeouts;
        let l = &raw.limits;
        Ok(Config {
            listen,
            root,
            server_name: raw
                .server_name
                .clone()
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
            anonymous_upload: raw.anonymous_upload.unwrap_or(defaults::ANONYMOUS_UPLOAD),
            users,
            deny,
            max_clients: l.max_clients.unwrap_or(defaults::MAX_CLIENTS),
            max_clients_per_ip: l.max_clients_per_ip.unwrap_or(defaults::MAX_CLIENTS_PER_IP),
            max_line,
            max_login_failures: l.max_login_failures.unwrap_or(defaults::MAX_LOGIN_FAILURES),
            login_failure_delay: Duration::from_millis(
                raw.login_failure_delay_ms
                    .unwrap_or(defaults::LOGIN_FAILURE_DELAY_MS),
            ),
            max_unauthenticated_per_ip: at_least_one(
                l.max_unauthenticated_per_ip,
                defaults::MAX_UNAUTHENTICATED_PER_IP,
                "limits.max_unauthenticated_per_ip",
                &inv,
            )?,
            password_checks: at_least_one(
                l.password_checks,
                defaults::PASSWORD_CHECKS,
                "limits.password_checks",
                &inv,
            )?,
            ban: resolve_ban(&raw, &inv)?,
            run_as: resolve_run_as(&raw, &inv)?,
            allow_root: raw.allow_root.unwrap_or(defaults::ALLOW_ROOT),
            timeout_login: secs(t.login, defaults::TIMEOUT_LOGIN, "timeouts.login")?,
            timeout_idle: secs(t.idle, defaults::TIMEOUT_IDLE, "timeouts.idle")?,
            timeout_no_transfer: secs(
                t.no_transfer,
                defaults::TIMEOUT_NO_TRANSFER,
                "timeouts.no_transfer",
            )?,
            timeout_data_connect: secs(
                t.data_connect,
                defaults::TIMEOUT_DATA_CONNECT,
                "timeouts.data_connect",
            )?,
            classes,
            vhosts,
            log_file: raw.log_file,
            tls,
            tls_required,
            tls_session_reuse: raw.tls_session_reuse.unwrap_or(defaults::TLS_SESSION_REUSE),
        })
    }
}

/// Resolves a `masquerade_address` value found under a key.
type Masq<'a> = dyn Fn(&str, &Option<String>) -> Result<Option<Masquerade>, ConfigError> + 'a;

fn resolve_classes(
    raw: &RawConfig,
    inv: &Invalid<'_>,
    masq: &Masq<'_>,
) -> Result<Vec<Class>, ConfigError> {
    let mut classes = Vec::new();
    for (i, c) in raw.class.iter().enumerate() {
        let from = c
            .from
            .iter()
            .map(|s| parse_cidr(s).map_err(|r| inv.err(&format!("class[{i}].from"), r)))
            .collect::<Result<Vec<_>, _>>()?;
        if from.is_empty() {
            return Err(inv.err(
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
    Ok(classes)
}

fn resolve_vhosts(raw: &RawConfig, masq: &Masq<'_>) -> Result<Vec<Vhost>, ConfigError> {
    raw.vhost
        .iter()
        .enumerate()
        .map(|(i, v)| {
            Ok(Vhost {
                address: v.address,
                server_name: v.server_name.clone(),
                masquerade: masq(
                    &format!("vhost[{i}].masquerade_address"),
                    &v.masquerade_address,
                )?,
            })
        })
        .collect()
}

fn at_least_one(
    v: Option<usize>,
    default: usize,
    key: &str,
    inv: &Invalid<'_>,
) -> Result<usize, ConfigError> {
    match v.unwrap_or(default) {
        0 => Err(inv.err(key, "must be at least 1".into())),
        n => Ok(n),
    }
}

fn resolve_ban(raw: &RawConfig, inv: &Invalid<'_>) -> Result<crate::ban::BanPolicy, ConfigError> {
    let b = &raw.ban;
    let secs = |v: Option<u64>, d: u64, key: &str| match v.unwrap_or(d) {
        0 => Err(inv.err(key, "must be at least 1 second".into())),
        s => Ok(Duration::from_secs(s)),
    };
    Ok(crate::ban::BanPolicy {
        max_failures: b.max_failures.unwrap_or(defaults::BAN_MAX_FAILURES),
        window: secs(b.window, defaults::BAN_WINDOW, "ban.window")?,
        duration: secs(b.duration, defaults::BAN_DURATION, "ban.duration")?,
        capacity: at_least_one(
            b.table_size,
            defaults::BAN_TABLE_SIZE,
            "ban.table_size",
            inv,
        )?,
    })
}

/// `run_as` must name an account of this system.
fn resolve_run_as(raw: &RawConfig, inv: &Invalid<'_>) -> Result<Option<String>, ConfigError> {
    let Some(name) = &raw.run_as else {
        return Ok(None);
    };
    match nix::unistd::User::from_name(name) {
        Ok(Some(_)) => Ok(Some(name.clone())),
        Ok(None) => Err(inv.err(
            "run_as",
            format!("no account named {name:?} on this system"),
        )),
        Err(e) => Err(inv.err("run_as", format!("cannot look up {name:?}: {e}"))),
    }
}

fn resolve_listen(raw: &RawConfig, inv: &Invalid<'_>) -> Result<Vec<SocketAddr>, ConfigError> {
    let listen = raw
        .listen
        .clone()
        .unwrap_or_else(|| vec![defaults::LISTEN.to_string()])
        .iter()
        .map(|s| {
            s.parse::<SocketAddr>().map_err(|_| {
                inv.err(
                    "listen",
                    format!("{s:?} is not a socket address like \"0.0.0.0:21\" or \"[::]:21\""),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if listen.is_empty() {
        return Err(inv.err("listen", "needs at least one address".into()));
    }
    Ok(listen)
}

/// `root`, relative to the file's folder, canonical, a directory.
fn resolve_root(raw: &RawConfig, path: &Path, inv: &Invalid<'_>) -> Result<PathBuf, ConfigError> {
    let root = raw
        .root
        .clone()
        .ok_or_else(|| inv.err("root", "is required (the directory to serve)".into()))?;
    let root = relative_to(path, &root);
    let root = root
        .canonicalize()
        .map_err(|e| inv.err("root", format!("{}: {e}", root.display())))?;
    if !root.is_dir() {
        return Err(inv.err("root", format!("{} is not a directory", root.display())));
    }
    Ok(root)
}

/// A path from the file, taken relative to the file's folder.
fn relative_to(file: &Path, p: &Path) -> PathBuf {
    if p.is_relative() {
        file.parent().unwrap_or(Path::new(".")).join(p)
    } else {
        p.to_owned()
    }
}

type PassiveSettings = (Option<(u16, u16)>, PassiveMode);

fn resolve_passive(raw: &RawConfig, inv: &Invalid<'_>) -> Result<PassiveSettings, ConfigError> {
    let passive_ports = match raw.passive_ports {
        None => None,
        Some([lo, hi]) if lo >= 1024 && lo <= hi => Some((lo, hi)),
        Some([lo, hi]) => {
            return Err(inv.err(
                "passive_ports",
                format!("[{lo}, {hi}] must be [low, high] with 1024 <= low <= high <= 65535"),
            ))
        }
    };
    let passive_mode = raw.passive_mode.unwrap_or_default();
    if passive_mode == PassiveMode::Pooled && passive_ports.is_none() {
        return Err(inv.err(
            "passive_mode",
            "\"pooled\" needs passive_ports (the range it listens on)".into(),
        ));
    }
    Ok((passive_ports, passive_mode))
}

fn resolve_foreign(raw: &RawConfig, inv: &Invalid<'_>) -> Result<Vec<IpNet>, ConfigError> {
    Ok(match &raw.allow_foreign_address {
        None | Some(ForeignAddress::All(false)) => vec![],
        Some(ForeignAddress::All(true)) => {
            vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()]
        }
        Some(ForeignAddress::Cidrs(list)) => list
            .iter()
            .map(|c| parse_cidr(c).map_err(|r| inv.err("allow_foreign_address", r)))
            .collect::<Result<_, _>>()?,
    })
}

fn resolve_users(raw: &RawConfig, inv: &Invalid<'_>) -> Result<Vec<User>, ConfigError> {
    let mut users = Vec::new();
    for (i, u) in raw.user.iter().enumerate() {
        if u.name.is_empty() || u.name.contains(char::is_whitespace) {
            return Err(inv.err(
                &format!("user[{i}].name"),
                format!("{:?} is not a login name", u.name),
            ));
        }
        argon2::PasswordHash::new(&u.password_hash).map_err(|e| {
            inv.err(
                &format!("user[{i}].password_hash"),
                format!(
                    "not an argon2 PHC string ({e}); make one with `ftpnat-server --hash-password`"
                ),
            )
        })?;
        users.push(User {
            name: u.name.clone(),
            password_hash: u.password_hash.clone(),
        });
    }
    Ok(users)
}

fn resolve_deny(raw: &RawConfig, inv: &Invalid<'_>) -> Result<Vec<String>, ConfigError> {
    raw.limits
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
                Err(inv.err(
                    "limits.deny",
                    format!("{v:?} is not a command this server knows"),
                ))
            }
        })
        .collect()
}

type TlsSettings = (Option<crate::tls::TlsSetup>, TlsRequired);

fn resolve_tls(
    raw: &RawConfig,
    path: &Path,
    inv: &Invalid<'_>,
) -> Result<TlsSettings, ConfigError> {
    let tls = match (&raw.tls_cert, &raw.tls_key) {
        (None, None) => None,
        (Some(_), None) => return Err(inv.err("tls_key", "is required with tls_cert".into())),
        (None, Some(_)) => return Err(inv.err("tls_cert", "is required with tls_key".into())),
        (Some(c), Some(k)) => Some(
            crate::tls::TlsSetup::load(&relative_to(path, c), &relative_to(path, k)).map_err(
                |r| {
                    let key = if r.starts_with("tls_key") {
                        "tls_key"
                    } else {
                        "tls_cert"
                    };
                    inv.err(key, r)
                },
            )?,
        ),
    };
    let tls_required = raw.tls_required.unwrap_or_default();
    if tls.is_none() && tls_required != TlsRequired::Off {
        return Err(inv.err("tls_required", "needs tls_cert and tls_key".into()));
    }
    Ok((tls, tls_required))
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
