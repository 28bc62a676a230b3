//! Data-connection set-up: PASV/EPSV (a passive listener per session, or a
//! pooled lease), PORT/EPRT (checked by [`active_policy`]), and turning the
//! plan into a connected stream when a transfer starts.

use std::{
    io,
    net::{IpAddr, SocketAddr, SocketAddrV4},
    sync::Arc,
};

use ipnet::IpNet;
use tokio::{
    net::{TcpSocket, TcpStream},
    sync::oneshot,
    task::JoinHandle,
    time::Instant,
};
use tracing::{info, warn};

use super::{Flow, Handled, Session};
use crate::{
    config::{Config, ExhaustedPolicy, PrivatePortPolicy},
    passive::{bind_listener, PassiveListener},
    pooled::PooledPassive,
    protocol::addr::{self, canonical_ip, is_non_public},
};

/// A data-connection plan set up by PASV/EPSV/PORT/EPRT.
pub(super) enum DataPlan {
    None,
    Passive {
        rx: oneshot::Receiver<io::Result<TcpStream>>,
        task: AbortOnDrop,
    },
    Active(SocketAddr),
}

/// Aborts the passive accept task when the plan is dropped or superseded,
/// which drops the listener and returns its port.
pub(super) struct AbortOnDrop(Option<JoinHandle<()>>);

impl AbortOnDrop {
    /// Aborts and waits until the task (and so its listener) is gone.
    async fn finish(mut self) {
        if let Some(t) = self.0.take() {
            t.abort();
            let _ = t.await;
        }
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            t.abort();
        }
    }
}

/// What a pooled PASV came to.
enum PooledOpen {
    /// A (client address, port) lease: the port to announce.
    Leased(u16),
    /// 425 was sent.
    Refused,
    /// Exhausted for this client, policy `fallback`: use a kernel port.
    Fallback,
}

/// The facts the PORT/EPRT policy looks at, besides the target.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ActiveRules<'a> {
    /// The control connection's peer.
    pub peer: IpAddr,
    /// A masquerade address applies to this session.
    pub masquerading: bool,
    /// `port_private_address`.
    pub private: PrivatePortPolicy,
    /// `allow_foreign_address`.
    pub allow_foreign: &'a [IpNet],
}

/// What the PORT/EPRT policy decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ActiveVerdict {
    /// Connect to this address; `substituted` when an RFC 1918 address was
    /// replaced by the peer's (ProFTPD 1.3.8 with MasqueradeAddress).
    Connect {
        target: SocketAddr,
        substituted: bool,
    },
    /// The address is not the peer's and not allowed.
    AddressMismatch,
    /// A port below 1024 (RFC 2577: bounce attack).
    LowPort(u16),
}

/// The PORT/EPRT policy (RFC 2577 and the seed's ProFTPD behaviour), pure:
/// the target must be the control peer unless allowed by
/// `allow_foreign_address` (or substituted per `port_private_address`), and
/// its port 1024 or above.
pub(crate) fn active_policy(target: SocketAddr, rules: ActiveRules<'_>) -> ActiveVerdict {
    let ip = canonical_ip(target.ip());
    let mut target = SocketAddr::new(ip, target.port());
    let mut substituted = false;
    if ip != rules.peer {
        let substitute = rules.private == PrivatePortPolicy::Substitute
            && rules.masquerading
            && is_non_public(ip)
            && !is_non_public(rules.peer);
        if substitute {
            target.set_ip(rules.peer);
            substituted = true;
        } else if !rules.allow_foreign.iter().any(|n| n.contains(&ip)) {
            return ActiveVerdict::AddressMismatch;
        }
    }
    if target.port() < 1024 {
        return ActiveVerdict::LowPort(target.port());
    }
    ActiveVerdict::Connect {
        target,
        substituted,
    }
}

impl Session {
    pub(super) async fn cmd_pasv(&mut self) -> Handled {
        if self.epsv_all {
            return self
                .ok(500, "Illegal PASV command, EPSV ALL in effect")
                .await;
        }
        let IpAddr::V4(local_v4) = self.local.ip() else {
            return self
                .ok(500, "Illegal PASV command on an IPv6 connection, use EPSV")
                .await;
        };
        let port = match self.open_passive().await? {
            Some(p) => p,
            None => return Ok(Flow::Continue),
        };
        let shown = match self.masquerade {
            Some(IpAddr::V4(m)) => m,
            _ => local_v4,
        };
        let addr = SocketAddrV4::new(shown, port);
        info!(reply_addr = %addr, "PASV");
        self.ok(227, addr::format_pasv_text(addr)).await
    }

    pub(super) async fn cmd_epsv(&mut self, arg: Option<String>) -> Handled {
        let family = if self.local.is_ipv4() { "1" } else { "2" };
        match arg.as_deref().map(str::trim) {
            None => {}
            Some(a) if a.eq_ignore_ascii_case("ALL") => {
                self.epsv_all = true;
                return self.ok(200, "EPSV ALL command successful").await;
            }
            Some(a) if a == family => {}
            Some("1") | Some("2") => {
                return self
                    .ok(
                        522,
                        format!("Network protocol not supported, use ({family})"),
                    )
                    .await;
            }
            Some(other) => {
                return self
                    .ok(501, format!("EPSV: invalid argument {other:?}"))
                    .await
            }
        }
        let Some(port) = self.open_passive().await? else {
            return Ok(Flow::Continue);
        };
        info!(port, "EPSV");
        self.ok(229, addr::format_epsv_text(port)).await
    }

    /// Opens the session's passive listener; `Ok(None)` when a 425 was sent.
    async fn open_passive(&mut self) -> io::Result<Option<u16>> {
        self.clear_data().await; // supersede: releases any pending port first
        if let Some(pooled) = self.shared.pooled.clone() {
            match self.open_pooled(&pooled).await? {
                PooledOpen::Leased(port) => return Ok(Some(port)),
                PooledOpen::Refused => return Ok(None),
                PooledOpen::Fallback => {}
            }
        }
        let pl = match self.bind_passive().await {
            Ok(pl) => pl,
            Err(e) => {
                let (lo, hi) = self.cfg.passive_ports.unwrap_or((0, 0));
                let policy = self.cfg.passive_exhausted;
                warn!(policy = ?policy, "unable to find open port in PassivePorts range {lo}-{hi}: {e}");
                self.reply(
                    425,
                    "Unable to open passive connection: no free port in the passive range",
                )
                .await?;
                return Ok(None);
            }
        };
        if pl.fallback {
            let (lo, hi) = self.cfg.passive_ports.unwrap_or((0, 0));
            warn!(
                "unable to find open port in PassivePorts range {lo}-{hi}: defaulting to INPORT_ANY (consider defining a larger PassivePorts range)"
            );
        }
        let port = pl.listener.local_addr()?.port();
        let (tx, rx) = oneshot::channel();
        let peer = self.peer.ip();
        let cfg = Arc::clone(&self.cfg);
        let deadline = Instant::now() + cfg.timeout_data_connect;
        let span = tracing::Span::current();
        let task = tokio::spawn(tracing::Instrument::instrument(
            async move {
                let res = accept_data(pl, peer, &cfg, deadline).await;
                let _ = tx.send(res);
            },
            span,
        ));
        self.data = DataPlan::Passive {
            rx,
            task: AbortOnDrop(Some(task)),
        };
        Ok(Some(port))
    }

    /// A passive listener from the range (per the exhaustion policy), or on
    /// a kernel-assigned port without a range or when a pooled range ran
    /// out under `fallback`.
    async fn bind_passive(&self) -> Result<PassiveListener, crate::passive::PassiveError> {
        let ip = self.local.ip();
        let kernel_port = |fallback: bool| {
            bind_listener(SocketAddr::new(ip, 0))
                .map(|listener| PassiveListener {
                    listener,
                    lease: None,
                    fallback,
                })
                .map_err(Into::into)
        };
        match &self.shared.pool {
            // Pooled range exhausted for this client, policy fallback.
            _ if self.shared.pooled.is_some() => kernel_port(true),
            Some(pool) => {
                let pool = Arc::clone(pool);
                pool.open(ip, self.cfg.passive_exhausted, self.cfg.passive_wait)
                    .await
            }
            None => kernel_port(false),
        }
    }

    /// Pooled mode: leases (peer address, port) with no system call; the
    /// accept loops deliver the matching connection.
    async fn open_pooled(&mut self, pooled: &Arc<PooledPassive>) -> io::Result<PooledOpen> {
        let peer = self.peer.ip();
        let lease = match self.cfg.passive_exhausted {
            ExhaustedPolicy::Wait => pooled.lease_wait(peer, self.cfg.passive_wait).await,
            _ => pooled.try_lease(peer),
        };
        let Some(lease) = lease else {
            if self.cfg.passive_exhausted == ExhaustedPolicy::Fallback {
                return Ok(PooledOpen::Fallback);
            }
            pooled.count_refused();
            let (lo, hi) = pooled.range();
            warn!(policy = ?self.cfg.passive_exhausted, "every port of the pooled range {lo}-{hi} is leased to {peer}");
            self.reply(
                425,
                "Unable to open passive connection: no free port in the passive range",
            )
            .await?;
            return Ok(PooledOpen::Refused);
        };
        let port = lease.port();
        let (tx, rx) = oneshot::channel();
        let deadline = Instant::now() + self.cfg.timeout_data_connect;
        let span = tracing::Span::current();
        let task = tokio::spawn(tracing::Instrument::instrument(
            async move {
                let mut lease = lease;
                let res = match tokio::time::timeout_at(deadline, &mut lease.connection).await {
                    Ok(Ok(stream)) => Ok(stream),
                    Ok(Err(_)) => Err(io::Error::other("pooled lease ended")),
                    Err(_) => Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no data connection within data_connect",
                    )),
                };
                drop(lease);
                let _ = tx.send(res);
            },
            span,
        ));
        self.data = DataPlan::Passive {
            rx,
            task: AbortOnDrop(Some(task)),
        };
        Ok(PooledOpen::Leased(port))
    }

    pub(super) async fn cmd_port(&mut self, arg: String) -> Handled {
        if self.epsv_all {
            return self
                .ok(500, "Illegal PORT command, EPSV ALL in effect")
                .await;
        }
        let target = match addr::parse_host_port(&arg) {
            Ok(a) => SocketAddr::V4(a),
            Err(e) => {
                warn!("Refused PORT {arg} ({e})");
                return self.ok(501, "Illegal PORT command").await;
            }
        };
        self.set_active("PORT", &arg, target).await
    }

    pub(super) async fn cmd_eprt(&mut self, arg: String) -> Handled {
        if self.epsv_all {
            return self
                .ok(500, "Illegal EPRT command, EPSV ALL in effect")
                .await;
        }
        let target = match addr::parse_eprt(&arg) {
            Ok(a) => a,
            Err(addr::AddrError::Protocol(_)) => {
                return self
                    .ok(522, "Network protocol not supported, use (1,2)")
                    .await;
            }
            Err(e) => {
                warn!("Refused EPRT {arg} ({e})");
                return self.ok(501, "Illegal EPRT command").await;
            }
        };
        self.set_active("EPRT", &arg, target).await
    }

    /// Drops the current plan; a pending passive listener is closed and its
    /// port returned before this returns.
    pub(super) async fn clear_data(&mut self) {
        if let DataPlan::Passive { task, .. } = std::mem::replace(&mut self.data, DataPlan::None) {
            task.finish().await;
        }
    }

    async fn set_active(&mut self, verb: &str, arg: &str, sent: SocketAddr) -> Handled {
        self.clear_data().await;
        let peer = self.peer.ip();
        let rules = ActiveRules {
            peer,
            masquerading: self.masquerade.is_some(),
            private: self.cfg.port_private_address,
            allow_foreign: &self.cfg.allow_foreign,
        };
        match active_policy(sent, rules) {
            ActiveVerdict::AddressMismatch => {
                warn!("Refused {verb} {arg} (address mismatch)");
                self.ok(500, format!("Illegal {verb} command")).await
            }
            ActiveVerdict::LowPort(port) => {
                warn!("Refused {verb} {arg} (port {port} below 1024, possible bounce attack)");
                self.ok(500, format!("Illegal {verb} command")).await
            }
            ActiveVerdict::Connect {
                target,
                substituted,
            } => {
                if substituted {
                    let ip = canonical_ip(sent.ip());
                    info!("client sent RFC1918 address '{ip}' in {verb} command, ignoring it and using '{peer}'");
                }
                info!(target = %target, "{verb} accepted");
                self.data = DataPlan::Active(target);
                self.ok(200, format!("{verb} command successful")).await
            }
        }
    }

    /// Turns the current plan into a connected data stream.
    pub(super) async fn open_data(&mut self) -> io::Result<TcpStream> {
        match std::mem::replace(&mut self.data, DataPlan::None) {
            DataPlan::None => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "use PORT or PASV first",
            )),
            DataPlan::Passive { mut rx, .. } => (&mut rx)
                .await
                .unwrap_or_else(|_| Err(io::Error::other("passive listener closed"))),
            DataPlan::Active(target) => {
                let socket = if target.is_ipv4() {
                    TcpSocket::new_v4()?
                } else {
                    TcpSocket::new_v6()?
                };
                if self.local.ip().is_ipv4() == target.is_ipv4() {
                    socket.bind(SocketAddr::new(self.local.ip(), 0))?;
                }
                match tokio::time::timeout(self.cfg.timeout_data_connect, socket.connect(target))
                    .await
                {
                    Ok(r) => r,
                    Err(_) => Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "connection timed out",
                    )),
                }
            }
        }
    }
}

/// Accepts the data connection for a passive plan. Connections from other
/// addresses than the control peer are closed and logged; the listener (and
/// its port lease) is dropped on return.
async fn accept_data(
    pl: PassiveListener,
    peer: IpAddr,
    cfg: &Config,
    deadline: Instant,
) -> io::Result<TcpStream> {
    loop {
        match tokio::time::timeout_at(deadline, pl.listener.accept()).await {
            Err(_) => {
                info!(
                    port = pl.listener.local_addr().map(|a| a.port()).unwrap_or(0),
                    "passive data connection not made within data_connect; port released"
                );
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no data connection within the data_connect timeout",
                ));
            }
            Ok(Err(e)) => return Err(e),
            Ok(Ok((stream, from))) => {
                let from_ip = canonical_ip(from.ip());
                if from_ip == peer || cfg.foreign_allowed(from_ip) {
                    return Ok(stream);
                }
                warn!(from = %from, expected = %peer, "SECURITY VIOLATION: passive data connection from a foreign address, closed");
                drop(stream);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    const PEER: &str = "203.0.113.10";

    fn rules(allow: &[IpNet], private: PrivatePortPolicy, masq: bool) -> ActiveRules<'_> {
        ActiveRules {
            peer: PEER.parse().unwrap(),
            masquerading: masq,
            private,
            allow_foreign: allow,
        }
    }

    #[rstest]
    #[case::peer_high_port("203.0.113.10:50000", ActiveVerdict::Connect { target: sa("203.0.113.10:50000"), substituted: false })]
    #[case::peer_port_1024("203.0.113.10:1024", ActiveVerdict::Connect { target: sa("203.0.113.10:1024"), substituted: false })]
    #[case::bounce_port_20("203.0.113.10:20", ActiveVerdict::LowPort(20))]
    #[case::foreign("203.0.113.1:50000", ActiveVerdict::AddressMismatch)]
    #[case::rfc1918_refused("192.168.1.2:50000", ActiveVerdict::AddressMismatch)]
    #[case::mapped_v6_is_the_peer("[::ffff:203.0.113.10]:50000", ActiveVerdict::Connect { target: sa("203.0.113.10:50000"), substituted: false })]
    fn default_rules(#[case] target: &str, #[case] verdict: ActiveVerdict) {
        let r = rules(&[], PrivatePortPolicy::Refuse, true);
        assert_eq!(active_policy(sa(target), r), verdict);
    }

    #[test]
    fn substitute_needs_masquerade_a_private_target_and_a_public_peer() {
        let sub = rules(&[], PrivatePortPolicy::Substitute, true);
        assert_eq!(
            active_policy(sa("192.168.1.2:50000"), sub),
            ActiveVerdict::Connect {
                target: sa("203.0.113.10:50000"),
                substituted: true
            }
        );
        // A public foreign address is still a mismatch.
        assert_eq!(
            active_policy(sa("198.51.100.7:50000"), sub),
            ActiveVerdict::AddressMismatch
        );
        // Substitution keeps the bounce check.
        assert_eq!(
            active_policy(sa("192.168.1.2:21"), sub),
            ActiveVerdict::LowPort(21)
        );
        let no_masq = rules(&[], PrivatePortPolicy::Substitute, false);
        assert_eq!(
            active_policy(sa("192.168.1.2:50000"), no_masq),
            ActiveVerdict::AddressMismatch
        );
    }

    #[test]
    fn allow_foreign_lists_networks() {
        let allow: Vec<IpNet> = vec!["198.51.100.0/24".parse().unwrap()];
        let r = rules(&allow, PrivatePortPolicy::Refuse, false);
        assert_eq!(
            active_policy(sa("198.51.100.9:40000"), r),
            ActiveVerdict::Connect {
                target: sa("198.51.100.9:40000"),
                substituted: false
            }
        );
        assert_eq!(
            active_policy(sa("198.51.100.9:80"), r),
            ActiveVerdict::LowPort(80)
        );
        assert_eq!(
            active_policy(sa("192.0.2.9:40000"), r),
            ActiveVerdict::AddressMismatch
        );
    }
}
