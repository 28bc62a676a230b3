//! `ftpnat-server` — a NAT-aware FTP server, and the reference peer of the
//! ftpnat harness.
//!
//! What it is: an RFC 959/2428/3659 FTP server whose NAT behaviour mirrors the
//! ProFTPD directives users know — `masquerade_address` (per vhost and per
//! client class), `passive_ports` with an O(1) allocator and an exhaustion
//! policy, the PORT/EPRT refusal rules of RFC 2577 — with explicit FTPS
//! (RFC 4217). What it is not: a general file server with quotas, virtual
//! users beyond a flat list, or implicit FTPS.
//!
//! # Layout
//! * [`protocol`] — the wire layer: commands, replies, the 227/229/PORT/EPRT
//!   codecs, the bounded line reader. Pure; shared with the harness.
//! * [`config`] — TOML → validated [`config::Config`] (raw, resolve,
//!   validated, diagnostics); every default in [`config::defaults`].
//! * [`passive`] — the passive-port allocator (a listener per PASV).
//! * [`pooled`] — `passive_mode = "pooled"`: the whole range listening,
//!   leases by (client address, port).
//! * [`fs`] — the sandboxed tree.
//! * [`session`] — one control connection's state machine, one file per
//!   command family (login, fs, data, transfer, listing, tls, info).
//! * [`tls`] — FTPS: the control stream that can start and stop TLS, TLS
//!   data connections, per-session resumption caches.
//! * [`server`] — the accept loop, limits and draining shutdown.
//! * [`admission`] — session counts per client address (`max_clients`,
//!   per-address and unauthenticated caps).
//! * [`ban`] — failed logins per address and bans, bounded, sans-IO.
//! * [`privilege`] — dropping root after binding (the binary; an embedding
//!   process such as the harness keeps its own privileges).
//!
//! # Example
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use ftpnat_server::{config::Config, server::Server};
//! let config = Config::load(std::path::Path::new("ftpnat-server.toml")).unwrap();
//! let server = Server::new(config);
//! let listeners = server.bind()?;
//! server.run(listeners, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```
#![warn(missing_docs)]

pub mod admission;
pub mod ban;
pub mod config;
pub mod fs;
pub mod passive;
pub mod pooled;
pub mod privilege;
pub mod protocol;
pub mod server;
pub mod session;
pub mod tls;
