//! The FTP ALG on a control flow: what a PORT/EPRT command or a 227/229
//! reply found in a segment makes the gateway do ([`plan`]: rewrite the
//! address, skip, or — the broken `block-extended` mode — drop), and the
//! expectations it leaves ([`Expectations`]): the data connection it will
//! admit as "related", for [`EXPECT_TTL`].
//!
//! Pure: the port allocator comes in as a closure, `now` as a value.

use std::{
    net::{Ipv4Addr, SocketAddrV4},
    ops::Range,
    time::{Duration, Instant},
};

use ftpnat_server::protocol::addr::{format_eprt, format_host_port};

use super::{alg::Found, conntrack::Conn};
use crate::engine::AlgMode;

/// How long an expectation waits for its data connection.
pub(super) const EXPECT_TTL: Duration = Duration::from_secs(300);

/// A data connection the ALG expects: from `src_ip` to `dst` (the public
/// side), translated to `to`.
#[derive(Debug, Clone)]
pub(super) struct Expect {
    pub(super) src_ip: Ipv4Addr,
    pub(super) dst: SocketAddrV4,
    pub(super) to: SocketAddrV4,
    pub(super) expires: Instant,
}

/// Live expectations (one per public endpoint).
#[derive(Debug, Default)]
pub(super) struct Expectations {
    list: Vec<Expect>,
}

impl Expectations {
    fn position(&self, src_ip: Ipv4Addr, dst: SocketAddrV4, now: Instant) -> Option<usize> {
        self.list
            .iter()
            .position(|e| e.src_ip == src_ip && e.dst == dst && now < e.expires)
    }

    /// Whether a live expectation admits a new flow from `src_ip` to `dst`.
    pub(super) fn expects(&self, src_ip: Ipv4Addr, dst: SocketAddrV4, now: Instant) -> bool {
        self.position(src_ip, dst, now).is_some()
    }

    /// Takes the expectation a new flow from `src_ip` to `dst` fulfils.
    pub(super) fn take(
        &mut self,
        src_ip: Ipv4Addr,
        dst: SocketAddrV4,
        now: Instant,
    ) -> Option<Expect> {
        let pos = self.position(src_ip, dst, now)?;
        Some(self.list.remove(pos))
    }

    /// The public port already promised to `src_ip` for `to` (a
    /// retransmitted PORT maps to the same port).
    pub(super) fn port_for(&self, to: SocketAddrV4, src_ip: Ipv4Addr) -> Option<u16> {
        self.list
            .iter()
            .find(|e| e.to == to && e.src_ip == src_ip)
            .map(|e| e.dst.port())
    }

    /// Adds `e`, replacing any expectation for the same public endpoint.
    pub(super) fn insert(&mut self, e: Expect) {
        self.list.retain(|x| x.dst != e.dst);
        self.list.push(e);
    }

    /// Drops expired expectations; returns their public ports (to free).
    pub(super) fn expire(&mut self, now: Instant) -> Vec<u16> {
        let mut freed = Vec::new();
        self.list.retain(|e| {
            let live = now < e.expires;
            if !live {
                freed.push(e.dst.port());
            }
            live
        });
        freed
    }
}

/// A rewrite the ALG decided on.
#[derive(Debug)]
pub(super) struct Rewrite {
    /// Bytes of the payload to replace.
    pub(super) span: Range<usize>,
    /// What replaces them.
    pub(super) text: String,
    /// The data connection it implies.
    pub(super) expect: Expect,
}

impl Rewrite {
    /// How much longer the payload gets.
    pub(super) fn delta(&self) -> i32 {
        self.text.len() as i32 - (self.span.end - self.span.start) as i32
    }
}

/// What the ALG does with a segment.
#[derive(Debug)]
pub(super) enum Plan {
    /// Nothing to do.
    Pass,
    /// Found something but leaves it (a broken mode, or an address that is
    /// not the flow's own).
    Skip,
    /// Swallow the segment (`block-extended` on EPSV/EPRT).
    Block,
    /// Rewrite and expect.
    Rewrite(Rewrite),
}

/// Decides what `mode` does with `found` on flow `c`. `alloc(to)` gives
/// the public port for an active-mode endpoint `to` (reused or allocated).
pub(super) fn plan(
    mode: AlgMode,
    found: Found,
    c: &Conn,
    now: Instant,
    alloc: impl FnOnce(SocketAddrV4) -> Option<u16>,
) -> Plan {
    let extended = matches!(
        found,
        Found::Eprt { .. } | Found::Epsv { .. } | Found::EpsvCmd
    );
    if mode == AlgMode::BlockExtended && matches!(found, Found::Eprt { .. } | Found::EpsvCmd) {
        return Plan::Block;
    }
    if mode == AlgMode::PasvOnly && extended {
        return Plan::Skip;
    }
    let expect = |to: SocketAddrV4, dst: SocketAddrV4, src_ip: Ipv4Addr| Expect {
        src_ip,
        dst,
        to,
        expires: now + EXPECT_TTL,
    };
    let is_port = matches!(found, Found::Port { .. });
    let rewrite = match found {
        Found::EpsvCmd => return Plan::Pass,
        Found::Port { addr, span } | Found::Eprt { addr, span } => {
            // Client inside behind source NAT, naming its own inside address.
            if c.orig_src.ip() == c.xlat_src.ip() || addr.ip() != c.orig_src.ip() {
                return Plan::Skip;
            }
            let Some(port) = alloc(addr) else {
                return Plan::Pass;
            };
            let public = SocketAddrV4::new(*c.xlat_src.ip(), port);
            let text = if is_port {
                format_host_port(public)
            } else {
                format_eprt(public.into())
            };
            Rewrite {
                span,
                text,
                expect: expect(addr, public, *c.xlat_dst.ip()),
            }
        }
        Found::Pasv { addr, span } => {
            // Server inside behind a port forward, naming its inside address.
            if c.orig_dst.ip() == c.xlat_dst.ip() || addr.ip() != c.xlat_dst.ip() {
                return Plan::Skip;
            }
            let public = SocketAddrV4::new(*c.orig_dst.ip(), addr.port());
            Rewrite {
                span,
                text: format_host_port(public),
                expect: expect(addr, public, *c.orig_src.ip()),
            }
        }
        Found::Epsv { port, span } => {
            if c.orig_dst.ip() == c.xlat_dst.ip() {
                return Plan::Skip;
            }
            let public = SocketAddrV4::new(*c.orig_dst.ip(), port);
            let to = SocketAddrV4::new(*c.xlat_dst.ip(), port);
            Rewrite {
                span,
                text: port.to_string(),
                expect: expect(to, public, *c.orig_src.ip()),
            }
        }
    };
    if mode == AlgMode::SameLengthOnly && rewrite.delta() != 0 {
        return Plan::Skip;
    }
    Plan::Rewrite(rewrite)
}
