//! New flows: the one decision a packet without state gets, in order —
//! an ALG expectation it fulfils, traffic to the gateway's own addresses
//! (echo, port forwards, inbound on a NAT mapping per the filtering
//! behaviour, hairpin), then transit (source NAT from inside to outside).
//! Each admitted flow is tracked and its first packet forwarded like any
//! other; everything else is dropped with its reason.

use std::net::SocketAddrV4;

use super::{
    conntrack::{Dir, NewConn},
    counters::DropReason,
    nat::MapKey,
    router::{IcmpError, Output, Packet, Router},
    wire::{self, flags, BROADCAST, ICMP, TCP},
};
use crate::engine::{AlgMode, CtState, Direction, Side};

impl Router {
    /// Decides a packet no flow knows.
    pub(super) fn new_flow(&mut self, p: Packet, out: &mut Vec<Output>) {
        if p.ip.l4.is_none() {
            self.drop(&p, DropReason::NoTransport);
            return;
        }
        if self.expects.expects(p.ip.src, p.ip.dst_sa(), p.now) {
            return self.new_related(p, out);
        }
        match self.our_iface(p.ip.dst) {
            Some(own_if) => self.addressed_to_gateway(p, own_if, out),
            None => self.transit(p, out),
        }
    }

    /// Whether `p` is a TCP segment other than a SYN (no flow to start).
    fn invalid_tcp(&mut self, p: &Packet) -> bool {
        let tcp_flags = p.ip.l4.and_then(|l| l.tcp).map_or(0, |t| t.flags);
        let is_syn = tcp_flags & (flags::SYN | flags::ACK) == flags::SYN;
        if p.ip.proto == TCP && !is_syn {
            self.drop(p, DropReason::Invalid);
            return true;
        }
        false
    }

    /// The direction of a flow entering on `p`'s interface.
    fn direction(&self, p: &Packet) -> Direction {
        if self.side(p.iface) == Side::Outside {
            Direction::In
        } else {
            Direction::Out
        }
    }

    /// A data connection an ALG expectation admits (a non-SYN leaves
    /// the expectation for the real SYN).
    fn new_related(&mut self, p: Packet, out: &mut Vec<Output>) {
        if self.invalid_tcp(&p) {
            return;
        }
        let Some(e) = self.expects.take(p.ip.src, p.ip.dst_sa(), p.now) else {
            return;
        };
        let to = e.to;
        let Some(out_if) = self.route(*to.ip()) else {
            return;
        };
        self.counters.expectations_used += 1;
        let dir = self.direction(&p);
        if !self.firewall_new(&p, dir, to, CtState::Related, out) {
            return;
        }
        self.counters.related_flows += 1;
        let id = self.track(&p, (p.ip.src_sa(), to), out_if, dir, None);
        self.note(
            p.now,
            p.iface,
            "new related flow (ALG expectation)",
            Some(&p.ip),
        );
        self.forward_known(p, (id, Dir::Orig), out);
    }

    /// Addressed to one of the gateway's own addresses (on `own_if`).
    fn addressed_to_gateway(&mut self, p: Packet, own_if: usize, out: &mut Vec<Output>) {
        if p.ip.proto == ICMP && p.ip.l4.and_then(|l| l.icmp).is_some_and(|(t, _)| t == 8) {
            let src_mac = wire::parse(p.frame).map_or(BROADCAST, |x| x.src_mac);
            let my = self.cfg.ifaces[p.iface].mac;
            if let Some(r) = wire::echo_reply(p.frame, &p.ip, my, src_mac) {
                self.tx(p.iface, r, out);
            }
            return;
        }
        if self.invalid_tcp(&p) {
            return;
        }
        let dport = p.ip.dst_sa().port();
        let forward = (self.side(own_if) == Side::Outside)
            .then(|| {
                self.cfg.forwards.iter().find_map(|f| {
                    f.map(p.ip.proto, dport)
                        .map(|port| SocketAddrV4::new(f.to, port))
                })
            })
            .flatten();
        let hairpin = self.cfg.nat.as_ref().is_some_and(|n| n.hairpin);
        match (self.side(p.iface), forward) {
            (Side::Outside, Some(to)) => self.open_inbound(p, to, None, out),
            (Side::Outside, None) => self.inbound_on_mapping(p, out),
            (Side::Inside, Some(to)) if hairpin => self.hairpin(p, to, own_if, out),
            (Side::Inside, Some(_)) => self.drop(&p, DropReason::HairpinDisabled),
            (Side::Inside, None) => self.unsolicited(&p, DropReason::NoServiceOnGateway, out),
        }
    }

    /// Unsolicited inbound to the public address: through a NAT mapping
    /// when the filtering behaviour lets its source in.
    fn inbound_on_mapping(&mut self, p: Packet, out: &mut Vec<Output>) {
        let filtering = self.cfg.nat.as_ref().map(|n| n.filtering);
        let (key, allowed) =
            self.nat
                .inbound(p.ip.proto, p.ip.dst_sa().port(), p.ip.src_sa(), filtering);
        match key {
            Some(k) if allowed => {
                let to = k.internal;
                self.open_inbound(p, to, Some(k), out);
            }
            Some(_) => self.unsolicited(&p, DropReason::Filtered, out),
            None => self.unsolicited(&p, DropReason::NoMappingOrForward, out),
        }
    }

    /// Hairpin: an inside host reaching a forward via the public address —
    /// DNAT to the server, SNAT to the public address.
    fn hairpin(&mut self, p: Packet, to: SocketAddrV4, own_if: usize, out: &mut Vec<Output>) {
        let Some(out_if) = self.route(*to.ip()) else {
            return;
        };
        let src = p.ip.src_sa();
        let Some((mk, ext)) = self.map(p.ip.proto, src, to, own_if, p.now) else {
            self.table_full(&p, out);
            return;
        };
        if !self.firewall_new(&p, Direction::Out, to, CtState::New, out) {
            return;
        }
        let id = self.track(&p, (ext, to), out_if, Direction::Out, Some(mk));
        self.note(p.now, p.iface, "new hairpin flow", Some(&p.ip));
        self.forward_known(p, (id, Dir::Orig), out);
    }

    /// An inbound flow to `to`, through a port forward (`mk` = None) or a
    /// NAT mapping.
    fn open_inbound(
        &mut self,
        p: Packet,
        to: SocketAddrV4,
        mk: Option<MapKey>,
        out: &mut Vec<Output>,
    ) {
        let Some(out_if) = self.route(*to.ip()) else {
            self.drop(&p, DropReason::ForwardTargetUnroutable);
            return;
        };
        if !self.firewall_new(&p, Direction::In, to, CtState::New, out) {
            return;
        }
        if let Some(k) = mk {
            self.nat.add_ref(k);
        }
        let src = p.ip.src_sa();
        let id = self.track(&p, (src, to), out_if, Direction::In, mk);
        let what = if mk.is_some() {
            "new inbound flow on a mapping"
        } else {
            "new inbound flow (port forward)"
        };
        self.note(p.now, p.iface, what, Some(&p.ip));
        self.forward_known(p, (id, Dir::Orig), out);
    }

    /// Transit: routed, with source NAT from inside to outside.
    fn transit(&mut self, p: Packet, out: &mut Vec<Output>) {
        let Some(egress) = self.route(p.ip.dst) else {
            self.drop(&p, DropReason::NoRoute);
            self.icmp_back(p.iface, p.frame, &p.ip, IcmpError::NET_UNREACHABLE, out);
            return;
        };
        if egress == p.iface {
            self.drop(&p, DropReason::WouldLeaveWhereItCameIn);
            return;
        }
        if self.invalid_tcp(&p) {
            return;
        }
        let dir = self.direction(&p);
        let snat = self.side(p.iface) == Side::Inside
            && self.side(egress) == Side::Outside
            && self.cfg.nat.is_some();
        let (src, dst) = (p.ip.src_sa(), p.ip.dst_sa());
        if !self.firewall_new(&p, dir, dst, CtState::New, out) {
            return;
        }
        let (xsrc, mk) = if snat {
            match self.map(p.ip.proto, src, dst, egress, p.now) {
                Some((mk, ext)) => (ext, Some(mk)),
                None => {
                    self.table_full(&p, out);
                    return;
                }
            }
        } else {
            (src, None)
        };
        let id = self.track(&p, (xsrc, dst), egress, dir, mk);
        let what = if snat {
            "new flow (source NAT)"
        } else {
            "new flow (routed)"
        };
        self.note(p.now, p.iface, what, Some(&p.ip));
        self.forward_known(p, (id, Dir::Orig), out);
    }

    /// The NAT mapping for `internal` talking to `remote` out of `egress`
    /// (counted when new); `None` when the table is full.
    fn map(
        &mut self,
        proto: u8,
        internal: SocketAddrV4,
        remote: SocketAddrV4,
        egress: usize,
        now: std::time::Instant,
    ) -> Option<(MapKey, SocketAddrV4)> {
        let nat = self.cfg.nat.as_ref()?;
        let ext_ip = self.cfg.ifaces[egress].addr.addr();
        let (key, ext, created) = self.nat.map(
            nat,
            &self.cfg.forwards,
            (proto, internal, remote),
            ext_ip,
            now,
        )?;
        if created {
            self.counters.mappings_created += 1;
        }
        Some((key, ext))
    }

    /// Tracks the new flow `p` starts, leaving as `xlat` through `out_if`.
    fn track(
        &mut self,
        p: &Packet,
        xlat: (SocketAddrV4, SocketAddrV4),
        out_if: usize,
        dir: Direction,
        mapping: Option<MapKey>,
    ) -> u64 {
        let proto = p.ip.proto;
        let alg = self.cfg.alg != AlgMode::Off
            && proto == TCP
            && self.cfg.alg_ports.contains(&xlat.1.port());
        if let Some(k) = mapping {
            self.nat.add_remote(k, xlat.1);
        }
        self.counters.conns_created += 1;
        self.conns.insert(
            NewConn {
                proto,
                orig: (p.ip.src_sa(), p.ip.dst_sa()),
                xlat,
                in_if: p.iface,
                out_if,
                dir,
                mapping,
                alg,
            },
            p.now,
        )
    }
}
