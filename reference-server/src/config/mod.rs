//! Server configuration: TOML whose keys mirror the ProFTPD directives users
//! know. [`RawConfig`] is what the file says (unknown keys are errors);
//! [`Config`] is the validated, resolved form the rest of the server sees.
//!
//! Every default lives in [`defaults`]. A DNS name given as
//! `masquerade_address` is resolved **once**, when [`Config::resolve`] runs at
//! start-up — the ProFTPD behaviour, and the source of the seed's pitfall (a
//! name that resolves to the LAN address inside the LAN).
//!
//! # Layout
//! * `raw` — the file's shape ([`RawConfig`] and the value enums).
//! * `resolve` — raw → validated ([`Config::resolve`], [`Config::load`]).
//! * `validated` — [`Config`] and what sessions ask of it.
//! * [`defaults`] — every default.
//! * `diagnostics` — [`ConfigError`], [`line_col`], [`key_position`].

pub mod defaults;
mod diagnostics;
mod raw;
mod resolve;
mod validated;

use std::net::IpAddr;

pub use diagnostics::{key_position, line_col, ConfigError};
pub use raw::{
    ExhaustedPolicy, ForeignAddress, PassiveMode, PrivatePortPolicy, RawBan, RawClass, RawConfig,
    RawLimits, RawTimeouts, RawUser, RawVhost, TlsRequired,
};
pub use validated::{Class, Config, Masquerade, User, Vhost};

/// How DNS names are resolved at start-up (injectable so a test or the
/// harness can model a split-horizon DNS view).
pub type Resolver<'a> = &'a dyn Fn(&str) -> std::io::Result<Vec<IpAddr>>;

/// The system resolver (getaddrinfo).
pub fn system_resolver(name: &str) -> std::io::Result<Vec<IpAddr>> {
    use std::net::ToSocketAddrs;
    Ok((name, 0).to_socket_addrs()?.map(|a| a.ip()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{path::Path, time::Duration};

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
